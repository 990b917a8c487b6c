//! [`DemoArgs`]: the flags of `demo`, and their conversion into
//! [`DemoOptions`].

use std::time::Duration;

use clap::Args;
use coupon_stream_core::config::{ConfigError, CoreConfig};

use super::{CoreArgs, GuaranteeArg, HttpArgs, ProfileArg};
use crate::kafka::config::parse_property;
use crate::tools::demo::DemoOptions;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// A Kafka cluster to run against instead of the embedded broker.
    #[arg(long, env = "COUPON_STREAM_BROKERS")]
    pub brokers: Option<String>,
    /// A librdkafka property for every client, e.g. -X security.protocol=SSL.
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "COUPON_STREAM_KAFKA_PROPERTIES", value_delimiter = ';', value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// How long the load generator runs, in seconds.
    #[arg(long, env = "COUPON_STREAM_DEMO_DURATION", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Partitions of the demo topics (created if missing).
    #[arg(long, env = "COUPON_STREAM_DEMO_PARTITIONS", default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub partitions: i32,
    /// Events per second offered; 0 for as fast as the broker takes them.
    #[arg(long, env = "COUPON_STREAM_DEMO_RATE", default_value_t = 150_000)]
    pub rate: u64,
    /// Traffic profile.
    #[arg(long, env = "COUPON_STREAM_DEMO_PROFILE", value_enum, default_value_t = ProfileArg::FlashSale)]
    pub profile: ProfileArg,
    /// The processor's guarantee (see `run --help`), committed at that guarantee's default interval.
    #[arg(long, env = "COUPON_STREAM_GUARANTEE", value_enum, default_value_t = GuaranteeArg::AtLeastOnce)]
    pub guarantee: GuaranteeArg,
    /// Number of sellers in the generated traffic.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub sellers: u32,
    /// Seed of the generated traffic.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub core: CoreArgs,
}

impl TryFrom<&DemoArgs> for DemoOptions {
    type Error = ConfigError;

    fn try_from(args: &DemoArgs) -> Result<DemoOptions, ConfigError> {
        Ok(DemoOptions {
            brokers: args.brokers.clone(),
            properties: args.properties.clone(),
            duration: Duration::from_secs(args.duration),
            partitions: args.partitions,
            rate: (args.rate > 0).then_some(args.rate),
            profile: args.profile.into(),
            sellers: args.sellers,
            seed: args.seed,
            metrics_addr: args.http.metrics_addr,
            core: CoreConfig::try_from(&args.core)?,
            guarantee: args.guarantee.into(),
        })
    }
}
