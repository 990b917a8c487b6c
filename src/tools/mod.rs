//! Commands around the processor rather than in it: the one-process demo,
//! the end-to-end benchmark and its copy baseline (and its reading of the
//! child's `/metrics`), the load generator, and
//! the broker they run against (a user's cluster or the embedded one).

pub mod bench;
pub mod broker;
pub mod copy;
pub mod demo;
#[cfg(feature = "embedded-broker")]
pub mod embedded_broker;
pub mod loadgen;
pub mod scrape;
