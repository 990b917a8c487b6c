//! coupon-stream-core: the pure decision core of coupon-stream. Events in,
//! decisions out, under the wire and decision contract in `docs/CONTRACT.md`; no
//! I/O, no clock and no threads, so run, replay, benchmarks and fuzzing
//! share it without pulling in Kafka.
//!
//! - [`decode`] turns one input value into a typed [`event::Event`] or an
//!   invalid-input verdict (contract section 6).
//! - [`state`] holds one partition's sellers, campaigns and coupons and applies
//!   the rules of contract section 3 to a valid event.
//! - [`decision_core`] composes decoding, partitioning checks, duplicate
//!   detection (section 4), the rules and the decision encoding (section 5)
//!   into one deterministic step: bytes in, decision bytes out.
//! - [`snapshot`] is the durable binary form of one partition's core, from
//!   which a restarted worker resumes with identical decisions.
//! - [`workload`] generates contract-valid traffic and [`synthetic`] builds
//!   large partition states, for tests, benchmarks and the load generator.

pub mod chunked;
pub mod config;
pub mod decision;
pub mod decision_core;
pub mod decode;
pub mod dedup;
pub mod encode;
pub mod event;
pub mod handle_table;
pub mod id;
pub mod id_map;
pub mod intern;
pub mod json;
pub mod local_day;
pub mod partitioner;
pub mod prefetch;
pub mod reason;
pub mod snapshot;
pub mod state;
pub mod synthetic;
pub mod workload;
pub mod zone;
