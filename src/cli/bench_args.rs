//! [`BenchArgs`]: the flags of `bench`, and their conversion into
//! [`BenchOptions`] (checked here, so a bad value is refused before any
//! processor child starts).

use clap::Args;
use coupon_stream_core::config::{CoreConfig, RETENTION_MS_DEFAULT};

use super::{ArgsError, GuaranteeArg, ProfileArg};
use crate::kafka::config::parse_property;
use crate::tools::bench::BenchOptions;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A Kafka cluster to run against instead of the embedded broker.
    #[arg(long, env = "COUPON_STREAM_BROKERS")]
    pub brokers: Option<String>,
    /// A librdkafka property for every client (and the processor), e.g. -X linger.ms=1.
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "COUPON_STREAM_KAFKA_PROPERTIES", value_delimiter = ';', value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// Events to produce.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Events per second offered; 0 for saturation.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Partitions of the benchmark's topics.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// Traffic profile.
    #[arg(long, value_enum, default_value_t = ProfileArg::Steady)]
    pub profile: ProfileArg,
    /// Number of sellers in the generated traffic.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub sellers: u32,
    /// Seed of the generated traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also measure a plain consume-and-produce copy of the same events first.
    #[arg(long)]
    pub baseline: bool,
    /// Guarantee of the processor under test; repeat it to run the processor once per guarantee, side by side.
    #[arg(long, value_enum, default_values_t = [GuaranteeArg::AtLeastOnce])]
    pub guarantee: Vec<GuaranteeArg>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// State retention of the processor under test, in ms (see `run --help`); 0 keeps every campaign.
    #[arg(long, env = "COUPON_STREAM_RETENTION_MS", default_value_t = RETENTION_MS_DEFAULT)]
    pub retention_ms: u64,
}

impl TryFrom<&BenchArgs> for BenchOptions {
    type Error = ArgsError;

    fn try_from(args: &BenchArgs) -> Result<BenchOptions, ArgsError> {
        // Refuse a bad retention here, not as a failing child.
        CoreConfig {
            retention_ms: args.retention_ms,
            ..CoreConfig::default()
        }
        .validate()?;
        Ok(BenchOptions {
            brokers: args.brokers.clone(),
            properties: args.properties.clone(),
            events: args.events,
            rate: (args.rate > 0).then_some(args.rate),
            partitions: args.partitions,
            profile: args.profile.into(),
            sellers: args.sellers,
            seed: args.seed,
            baseline: args.baseline,
            guarantees: args.guarantee.iter().map(|&g| g.into()).collect(),
            retention_ms: args.retention_ms,
            exe: std::env::current_exe().map_err(ArgsError::CurrentExe)?,
        })
    }
}
