//! The Kafka adapter around the decision core: a consumer-group source, a
//! producer sink for decisions and dead letters, offsets, durable state in a
//! topic, and the processor loop that connects them; [`service`] runs it
//! beside the operations endpoint.

pub mod admin;
pub mod backpressure;
pub mod config;
pub mod delivery_errors;
pub mod error_log;
pub mod group;
pub mod offsets;
pub mod processor;
pub mod reader;
pub mod reported_commit;
pub mod service;
pub mod sink;
pub mod snapshot_child;
pub mod state_store;
pub mod topic_handle;
pub mod topics;
