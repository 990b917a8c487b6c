//! coupon-stream: the adapters around the pure decision core
//! ([`coupon_stream_core`]), which decides, one event at a time, whether
//! coupons may be issued and redeemed under the contract in `docs/CONTRACT.md`.
//!
//! - [`kafka`] is the Kafka processor: consumer-group source, producer sink,
//!   offset commits, state snapshots to a compacted topic.
//! - [`ops`] is what operators see: the HTTP endpoint, health and metrics.
//! - [`replay`] is the offline adapter (JSON lines in, decisions out).
//! - [`tools`] holds the demo, the end-to-end benchmark, the load generator
//!   and the embedded broker they run against.
//! - [`cli`] holds the command-line arguments of the binary.

#[cfg(feature = "jemalloc")]
pub mod allocator;
pub mod cli;
pub mod kafka;
pub mod ops;
pub mod replay;
pub mod tools;
