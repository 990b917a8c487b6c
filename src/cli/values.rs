//! Command-line names of the library's enums: clap's `ValueEnum` wrappers,
//! so that the library's types do not depend on the CLI.

use clap::ValueEnum;
use coupon_stream_core::workload::Profile;

use crate::kafka::config::Guarantee;

/// `--profile`: the shape of generated traffic ([`Profile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    Steady,
    FlashSale,
}

impl From<ProfileArg> for Profile {
    fn from(arg: ProfileArg) -> Profile {
        match arg {
            ProfileArg::Steady => Profile::Steady,
            ProfileArg::FlashSale => Profile::FlashSale,
        }
    }
}

/// `--guarantee`: what a crash, restart or rebalance may do to the output
/// ([`Guarantee`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuaranteeArg {
    /// Idempotent producer; input offsets are committed after the broker
    /// acknowledged every decision they produced. After a crash the input
    /// since the last commit is decided again: the repeated decisions are
    /// byte-identical to the first ones.
    AtLeastOnce,
    /// Kafka transactions: each commit interval's decisions, dead letters
    /// and input offsets are committed atomically. A `read_committed`
    /// reader sees every decision exactly once.
    ExactlyOnce,
}

impl From<GuaranteeArg> for Guarantee {
    fn from(arg: GuaranteeArg) -> Guarantee {
        match arg {
            GuaranteeArg::AtLeastOnce => Guarantee::AtLeastOnce,
            GuaranteeArg::ExactlyOnce => Guarantee::ExactlyOnce,
        }
    }
}

/// `--log-format`: how log lines on stderr look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
