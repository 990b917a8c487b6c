//! coupon-stream: decides, one event at a time, whether coupons may be issued
//! and redeemed, under the wire and decision contract in `README.md`.
//!
//! The crate is a pure decision core wrapped by thin adapters:
//!
//! - [`decode`] turns one input value into a typed [`event::Event`] or an
//!   invalid-input verdict (contract section 6).
//! - [`state`] holds one partition's sellers, campaigns and coupons and applies
//!   the rules of contract section 3 to a valid event.
//! - [`core`] composes decoding, partitioning checks, duplicate detection
//!   (section 4), the rules and the decision encoding (section 5) into one
//!   deterministic step: bytes in, decision bytes out. It has no I/O, no
//!   clock and no threads.
//! - [`snapshot`] is the durable binary form of one partition's core, from
//!   which a restarted worker resumes with identical decisions;
//!   [`snapshot_child`] encodes it in a forked child, off the hot path.
//! - [`kafka`] is the Kafka processor: consumer-group source, producer
//!   sink, at-least-once offset commits.
//! - [`replay`] is the offline adapter (JSON lines in, decisions out);
//!   [`workload`] generates contract-valid traffic for tests and benchmarks.

#[cfg(feature = "jemalloc")]
pub mod allocator;
pub mod bench;
pub mod broker;
pub mod config;
pub mod core;
pub mod decision;
pub mod decode;
pub mod dedup;
pub mod demo;
#[cfg(feature = "embedded-broker")]
pub mod embedded_broker;
pub mod encode;
pub mod event;
pub mod health;
pub mod http;
pub mod id;
pub mod intern;
pub mod json;
pub mod kafka;
pub mod large_state;
pub mod local_day;
pub mod partitioner;
pub mod reason;
pub mod replay;
pub mod snapshot;
pub mod snapshot_child;
pub mod state;
pub mod telemetry;
pub mod workload;
pub mod zone;
