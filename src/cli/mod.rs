//! Command-line arguments of the `coupon-stream` binary. Library types stay
//! free of clap; the wrappers here give them their command-line names.

mod replay_report;

pub use replay_report::StageReport;

use clap::ValueEnum;
use coupon_stream_core::workload::Profile;

/// `--profile`: the shape of generated traffic ([`Profile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Traffic spread evenly over the sellers.
    Steady,
    /// Traffic skewed towards a few sellers, with one hot campaign whose
    /// small budget runs out within seconds.
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
