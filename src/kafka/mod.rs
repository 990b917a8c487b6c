//! The Kafka adapter around the decision core: a consumer-group source, a
//! producer sink for decisions and dead letters, and the processor loop that
//! connects them with at-least-once delivery.

pub mod admin;
pub mod backpressure;
pub mod config;
pub mod copy;
pub mod delivery_errors;
pub mod load_producer;
pub mod offsets;
pub mod processor;
pub mod sink;
pub mod state_store;
