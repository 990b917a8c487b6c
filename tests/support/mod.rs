//! What the integration tests share, one concern per file: brokers
//! ([`tansu`]), Kafka clients ([`kafka`]), input messages ([`messages`]),
//! the per-partition recomputation that checks the output ([`recompute`]),
//! decisions compared field by field as the contract defines them
//! ([`decision_fields`]),
//! the processor as a child process ([`processes`]), its HTTP endpoint
//! ([`http`]) and JSON logs ([`logs`]), bounded waits ([`wait`]), the
//! lifecycle tests' processor handle and probes ([`lifecycle`]), and a
//! fault-injecting TCP proxy in front of Tansu ([`proxy`]).
//! The measurement binaries in `benches/` include it by path.

// Each test binary uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod decision_fields;
pub mod http;
pub mod kafka;
pub mod lifecycle;
pub mod logs;
pub mod messages;
pub mod processes;
pub mod proxy;
pub mod recompute;
pub mod tansu;
pub mod wait;

pub use kafka::{Record, TOPICS};
pub use messages::Messages;
pub use processes::Running;
pub use tansu::Tansu;
pub use wait::wait_for;
