//! [`LoadgenArgs`]: the flags of `loadgen`, and their conversion into the
//! generator's [`WorkloadConfig`].

use std::path::PathBuf;

use clap::Args;
use coupon_stream_core::workload::WorkloadConfig;

use super::{KafkaClientArgs, ProfileArg};
use crate::kafka::config::{INPUT_TOPIC_DEFAULT, parse_topic};

#[derive(Args, Debug)]
pub struct LoadgenArgs {
    /// Traffic shape: `steady` (even over sellers) or `flash-sale` (skewed, one hot campaign).
    #[arg(long, env = "COUPON_STREAM_LOADGEN_PROFILE", value_enum, default_value_t = ProfileArg::Steady)]
    pub profile: ProfileArg,
    /// Number of events to generate, setup events included.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_EVENTS", default_value_t = 100_000)]
    pub events: u64,
    /// Number of sellers.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_SELLERS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub sellers: u32,
    /// Number of distinct users.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_USERS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub users: u32,
    /// Seed: the same seed and flags give the same events.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Fraction of events that repeat a recent event verbatim (0 to 1).
    #[arg(long, env = "COUPON_STREAM_LOADGEN_DUPLICATE_FRACTION", default_value_t = 0.01, value_parser = parse_fraction)]
    pub duplicate_fraction: f64,
    /// Fraction of events that are invalid values (0 to 1).
    #[arg(long, env = "COUPON_STREAM_LOADGEN_INVALID_FRACTION", default_value_t = 0.005, value_parser = parse_fraction)]
    pub invalid_fraction: f64,
    /// Write JSON lines to this file (`-` for standard output) instead of producing to Kafka.
    #[arg(long, short, env = "COUPON_STREAM_LOADGEN_OUTPUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub kafka: KafkaClientArgs,
    /// Topic to produce to.
    #[arg(long, env = "COUPON_STREAM_INPUT_TOPIC", default_value = INPUT_TOPIC_DEFAULT, value_parser = parse_topic)]
    pub topic: String,
    /// Most events per second when producing; 0 for as fast as possible.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_RATE", default_value_t = 0)]
    pub rate: u64,
}

impl LoadgenArgs {
    /// `--rate` as the load generator takes it: `None` for no limit.
    pub fn rate(&self) -> Option<u64> {
        (self.rate > 0).then_some(self.rate)
    }
}

impl From<&LoadgenArgs> for WorkloadConfig {
    fn from(args: &LoadgenArgs) -> WorkloadConfig {
        WorkloadConfig {
            profile: args.profile.into(),
            sellers: args.sellers,
            users: args.users,
            seed: args.seed,
            duplicate_fraction: args.duplicate_fraction,
            invalid_fraction: args.invalid_fraction,
        }
    }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}
