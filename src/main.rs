//! The `coupon-stream` binary: parses flags, wires adapters to the library,
//! and turns errors into one line on stderr and an exit code (2 for bad
//! flags and unreadable files, 1 for failures while running).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use coupon_stream::cli::ProfileArg;
use coupon_stream::kafka::config::{Guarantee, KafkaConfig, parse_property};
use coupon_stream::kafka::processor::Processor;
use coupon_stream::ops::health::Health;
use coupon_stream::ops::http::HttpServer;
use coupon_stream::cli::StageReport;
use coupon_stream::replay::{ReplayOptions, replay_sharded};
use coupon_stream::tools::loadgen;
use coupon_stream_core::config::{
    CoreConfig, RETENTION_MS_DEFAULT, SellerDefaults, parse_timezone,
};
use coupon_stream_core::reason::Outcome;
use coupon_stream_core::workload::{Workload, WorkloadConfig};

/// Decides, from a stream of events, whether coupons may be issued and
/// redeemed, enforcing every quota and validity window.
#[derive(Parser, Debug)]
#[command(name = "coupon-stream", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the processor: consume events from Kafka, produce decisions and dead letters.
    Run(RunArgs),
    /// Decide events offline: one input value per line in, one decision per line out.
    Replay(ReplayArgs),
    /// Generate contract-valid coupon traffic as JSON lines, or produce it to Kafka.
    Loadgen(LoadgenArgs),
    /// Run everything in one process: an embedded broker, the processor and
    /// the load generator, with live throughput and /metrics.
    Demo(DemoArgs),
    /// End-to-end benchmark against a broker: throughput, latency
    /// percentiles, CPU and memory of the processor (and of a plain copy
    /// with --baseline).
    Bench(BenchArgs),
    /// Benchmark baseline: copy the input topic to the output topic with the
    /// processor's client settings and no decisions (used by `bench`).
    #[command(hide = true)]
    Copy(RunArgs),
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// A Kafka cluster to run against instead of the embedded broker.
    #[arg(long, env = "COUPON_STREAM_BROKERS")]
    brokers: Option<String>,
    /// A librdkafka property for every client (and the processor), e.g. -X linger.ms=1.
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "COUPON_STREAM_KAFKA_PROPERTIES", value_delimiter = ';', value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Events to produce.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Events per second offered; 0 for saturation.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Partitions of the benchmark's topics.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=1024))]
    partitions: i32,
    /// Traffic profile.
    #[arg(long, value_enum, default_value_t = ProfileArg::Steady)]
    profile: ProfileArg,
    /// Number of sellers in the generated traffic.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    sellers: u32,
    /// Seed of the generated traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also measure a plain consume-and-produce copy of the same events first.
    #[arg(long)]
    baseline: bool,
    /// Guarantee of the processor under test; repeat it to run the processor once per guarantee, side by side.
    #[arg(long, value_enum, default_values_t = [Guarantee::AtLeastOnce])]
    guarantee: Vec<Guarantee>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// State retention of the processor under test, in ms (see `run --help`); 0 keeps every campaign.
    #[arg(long, env = "COUPON_STREAM_RETENTION_MS", default_value_t = RETENTION_MS_DEFAULT)]
    retention_ms: u64,
}

/// The contract's configuration values, shared by every command that decides.
#[derive(Args, Debug, Clone)]
struct CoreArgs {
    /// Duplicate window in milliseconds of event time (contract section 4).
    #[arg(long, env = "COUPON_STREAM_DEDUP_WINDOW_MS", default_value_t = 600_000)]
    dedup_window_ms: u64,
    /// Largest accepted input value in bytes; longer values are `too_large`.
    #[arg(long, env = "COUPON_STREAM_MAX_EVENT_BYTES", default_value_t = 65_536)]
    max_event_bytes: usize,
    /// Coupons a seller may issue per local day until a `seller` event says otherwise.
    #[arg(
        long,
        env = "COUPON_STREAM_DEFAULT_DAILY_ISSUE_LIMIT",
        default_value_t = 16_000
    )]
    default_daily_issue_limit: u64,
    /// Most recipients of one `issue` event until a `seller` event says otherwise.
    #[arg(
        long,
        env = "COUPON_STREAM_DEFAULT_MAX_RECIPIENTS",
        default_value_t = 20
    )]
    default_max_recipients: u64,
    /// IANA time zone where a seller's day starts until a `seller` event says otherwise.
    #[arg(
        long,
        env = "COUPON_STREAM_DEFAULT_TIMEZONE",
        default_value = "Asia/Shanghai"
    )]
    default_timezone: String,
    /// How long (ms of event time) a campaign is kept after the last moment
    /// it can matter (valid_until, issue_until, its coupons' expiry) before
    /// it is dropped with its coupons and counters; 0 (the default) keeps
    /// every campaign. 604800000 (7 days) is the recommended production value;
    /// late events for a dropped campaign get unknown_campaign / unknown_coupon.
    #[arg(long, env = "COUPON_STREAM_RETENTION_MS", default_value_t = RETENTION_MS_DEFAULT)]
    retention_ms: u64,
}

impl CoreArgs {
    fn to_config(&self) -> anyhow::Result<CoreConfig> {
        let config = CoreConfig {
            dedup_window_ms: self.dedup_window_ms,
            max_event_bytes: self.max_event_bytes,
            seller_defaults: SellerDefaults {
                daily_issue_limit: self.default_daily_issue_limit,
                max_recipients: self.default_max_recipients,
                timezone: parse_timezone(&self.default_timezone)?,
            },
            retention_ms: self.retention_ms,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Where Kafka is and how to reach it, shared by `run` and `loadgen`.
#[derive(Args, Debug)]
struct KafkaClientArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "COUPON_STREAM_BROKERS", default_value = "localhost:9092")]
    brokers: String,
    /// A librdkafka property, e.g. -X security.protocol=SASL_SSL; repeatable
    /// (the environment variable takes several separated by `;`).
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "COUPON_STREAM_KAFKA_PROPERTIES", value_delimiter = ';', value_parser = parse_property)]
    properties: Vec<(String, String)>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    kafka: KafkaClientArgs,
    /// Consumer group; instances with the same group split the partitions.
    #[arg(long, env = "COUPON_STREAM_GROUP_ID", default_value = "coupon-stream")]
    group_id: String,
    /// Topic of input events, keyed by seller_id.
    #[arg(
        long,
        env = "COUPON_STREAM_INPUT_TOPIC",
        default_value = "coupon-events"
    )]
    input_topic: String,
    /// Topic decisions are produced to.
    #[arg(
        long,
        env = "COUPON_STREAM_OUTPUT_TOPIC",
        default_value = "coupon-decisions"
    )]
    output_topic: String,
    /// Topic invalid input values are copied to.
    #[arg(
        long,
        env = "COUPON_STREAM_DLQ_TOPIC",
        default_value = "coupon-events-dlq"
    )]
    dlq_topic: String,
    /// Do not check that each message sits on murmur2(seller_id) mod partition count.
    #[arg(long, env = "COUPON_STREAM_NO_VERIFY_PARTITIONING")]
    no_verify_partitioning: bool,
    /// Most messages decided per batch.
    #[arg(long, env = "COUPON_STREAM_BATCH_MESSAGES_MAX", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    batch_messages_max: u64,
    /// at-least-once: idempotent producer, offsets committed after the decisions are acknowledged; exactly-once: Kafka transactions.
    #[arg(long, env = "COUPON_STREAM_GUARANTEE", value_enum, default_value_t = Guarantee::AtLeastOnce)]
    guarantee: Guarantee,
    /// How often input offsets are committed (exactly-once: transactions), in milliseconds [default: 1000, exactly-once 100].
    #[arg(long, env = "COUPON_STREAM_COMMIT_INTERVAL_MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    commit_interval_ms: Option<u64>,
    /// The producer's transactional.id under exactly-once; unique per instance [default: GROUP-HOSTNAME-PID, or GROUP-INSTANCE with -X group.instance.id=INSTANCE].
    #[arg(long, env = "COUPON_STREAM_TRANSACTIONAL_ID")]
    transactional_id: Option<String>,
    /// How long the broker keeps a dead instance's open transaction, in milliseconds (exactly-once).
    #[arg(long, env = "COUPON_STREAM_TRANSACTION_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1_000..=900_000))]
    transaction_timeout_ms: u64,
    /// Longest wait for outstanding decisions on shutdown and on revoke, in milliseconds.
    #[arg(long, env = "COUPON_STREAM_DRAIN_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    drain_timeout_ms: u64,
    /// Topic of partition snapshots (durable state); same partition count as the input, compacted.
    #[arg(
        long,
        env = "COUPON_STREAM_STATE_TOPIC",
        default_value = "coupon-state"
    )]
    state_topic: String,
    /// How often each partition's state is snapshotted, in milliseconds; 0 turns durable state off.
    #[arg(long, env = "COUPON_STREAM_SNAPSHOT_INTERVAL_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    snapshot_interval_ms: u64,
    /// Longest time to restore one assigned partition (read its snapshot, replay), in milliseconds.
    #[arg(long, env = "COUPON_STREAM_RESTORE_TIMEOUT_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    restore_timeout_ms: u64,
    /// How long a dead instance keeps its partitions before the group moves them, in milliseconds.
    #[arg(long, env = "COUPON_STREAM_SESSION_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    session_timeout_ms: u64,
    /// Log format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, env = "COUPON_STREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Address of the HTTP endpoint: /metrics, /healthz, /readyz, /v1/... state queries.
    #[arg(
        long,
        env = "COUPON_STREAM_METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    metrics_addr: SocketAddr,
    #[command(flatten)]
    core: CoreArgs,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// A Kafka cluster to run against instead of the embedded broker.
    #[arg(long, env = "COUPON_STREAM_BROKERS")]
    brokers: Option<String>,
    /// A librdkafka property for every client, e.g. -X security.protocol=SSL.
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "COUPON_STREAM_KAFKA_PROPERTIES", value_delimiter = ';', value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// How long the load generator runs, in seconds.
    #[arg(long, env = "COUPON_STREAM_DEMO_DURATION", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
    /// Partitions of the demo topics (created if missing).
    #[arg(long, env = "COUPON_STREAM_DEMO_PARTITIONS", default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=1024))]
    partitions: i32,
    /// Events per second offered; 0 for as fast as the broker takes them.
    #[arg(long, env = "COUPON_STREAM_DEMO_RATE", default_value_t = 150_000)]
    rate: u64,
    /// Traffic profile.
    #[arg(long, env = "COUPON_STREAM_DEMO_PROFILE", value_enum, default_value_t = ProfileArg::FlashSale)]
    profile: ProfileArg,
    /// The processor's guarantee (see `run --help`); exactly-once commits a transaction every 100 ms.
    #[arg(long, env = "COUPON_STREAM_GUARANTEE", value_enum, default_value_t = Guarantee::AtLeastOnce)]
    guarantee: Guarantee,
    /// Number of sellers in the generated traffic.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    sellers: u32,
    /// Seed of the generated traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Address of the HTTP endpoint (/metrics, /healthz, /readyz, state queries).
    #[arg(
        long,
        env = "COUPON_STREAM_METRICS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    metrics_addr: SocketAddr,
    #[command(flatten)]
    core: CoreArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// Input file of JSON lines; `-` or absent reads standard input.
    #[arg(long, short, env = "COUPON_STREAM_REPLAY_INPUT")]
    input: Option<PathBuf>,
    /// Output file for decisions; `-` or absent writes standard output.
    #[arg(long, short, env = "COUPON_STREAM_REPLAY_OUTPUT")]
    output: Option<PathBuf>,
    /// Print no summary on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Partitions, each with its own state, as an input topic's: a line goes
    /// to murmur2(seller_id) mod N, as Kafka's default partitioner places a
    /// keyed event (a line without a readable seller_id goes to 0). A
    /// decision's source is its partition and its line number (0-based) as
    /// the offset.
    #[arg(long, env = "COUPON_STREAM_REPLAY_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    partitions: u32,
    /// Threads deciding the partitions, at most one per partition; the
    /// output is the same whatever the count [default: min(partitions, cores)].
    #[arg(long, env = "COUPON_STREAM_REPLAY_THREADS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Also print where the time went (read, split, decide, merge, write) on stderr.
    #[arg(long)]
    stage_times: bool,
    #[command(flatten)]
    core: CoreArgs,
}

#[derive(Args, Debug)]
struct LoadgenArgs {
    /// Traffic shape: `steady` (even over sellers) or `flash-sale` (skewed, one hot campaign).
    #[arg(long, env = "COUPON_STREAM_LOADGEN_PROFILE", value_enum, default_value_t = ProfileArg::Steady)]
    profile: ProfileArg,
    /// Number of events to generate, setup events included.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_EVENTS", default_value_t = 100_000)]
    events: u64,
    /// Number of sellers.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_SELLERS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    sellers: u32,
    /// Number of distinct users.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_USERS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    users: u32,
    /// Seed: the same seed and flags give the same events.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_SEED", default_value_t = 1)]
    seed: u64,
    /// Fraction of events that repeat a recent event verbatim (0 to 1).
    #[arg(long, env = "COUPON_STREAM_LOADGEN_DUPLICATE_FRACTION", default_value_t = 0.01, value_parser = parse_fraction)]
    duplicate_fraction: f64,
    /// Fraction of events that are invalid values (0 to 1).
    #[arg(long, env = "COUPON_STREAM_LOADGEN_INVALID_FRACTION", default_value_t = 0.005, value_parser = parse_fraction)]
    invalid_fraction: f64,
    /// Write JSON lines to this file (`-` for standard output) instead of producing to Kafka.
    #[arg(long, short, env = "COUPON_STREAM_LOADGEN_OUTPUT")]
    output: Option<PathBuf>,
    #[command(flatten)]
    kafka: KafkaClientArgs,
    /// Topic to produce to.
    #[arg(
        long,
        env = "COUPON_STREAM_INPUT_TOPIC",
        default_value = "coupon-events"
    )]
    topic: String,
    /// Most events per second when producing; 0 for as fast as possible.
    #[arg(long, env = "COUPON_STREAM_LOADGEN_RATE", default_value_t = 0)]
    rate: u64,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

/// A failure that is the user's to fix before running again: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("{} (see --help)", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run_processor(args),
        Command::Replay(args) => run_replay(args),
        Command::Loadgen(args) => run_loadgen(args),
        Command::Demo(args) => run_demo(args),
        Command::Bench(args) => run_bench(args),
        Command::Copy(args) => run_copy(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let usage = e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<coupon_stream_core::config::ConfigError>()
                    .is_some();
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// Folds clap's message (error, indented details, usage) into one line:
/// the error and its details, without the usage block.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The input as a plain reader: replay reads it in large blocks itself.
fn open_raw_input(path: &Option<PathBuf>) -> anyhow::Result<Box<dyn io::Read>> {
    match path {
        None => Ok(Box::new(io::stdin())),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(io::stdin())),
        Some(p) => {
            let file = File::open(p)
                .map_err(|e| UsageError(format!("cannot open input {}: {e}", p.display())))?;
            Ok(Box::new(file))
        }
    }
}

fn open_output(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    match path {
        None => Ok(Box::new(io::stdout().lock())),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(io::stdout().lock())),
        Some(p) => {
            let file = File::create(p)
                .map_err(|e| UsageError(format!("cannot create output {}: {e}", p.display())))?;
            Ok(Box::new(BufWriter::with_capacity(1 << 20, file)))
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn kafka_config(args: RunArgs) -> KafkaConfig {
    let transactional_id = args
        .transactional_id
        .unwrap_or_else(|| default_transactional_id(&args.group_id, &args.kafka.properties));
    KafkaConfig {
        brokers: args.kafka.brokers,
        group_id: args.group_id,
        input_topic: args.input_topic,
        output_topic: args.output_topic,
        dlq_topic: args.dlq_topic,
        verify_partitioning: !args.no_verify_partitioning,
        properties: args.kafka.properties,
        batch_messages_max: args.batch_messages_max as usize,
        commit_interval_ms: args.commit_interval_ms.unwrap_or(match args.guarantee {
            Guarantee::AtLeastOnce => 1_000,
            // As Kafka Streams under exactly-once: read_committed
            // readers see decisions only when their transaction commits.
            Guarantee::ExactlyOnce => 100,
        }),
        drain_timeout_ms: args.drain_timeout_ms,
        state_topic: args.state_topic,
        snapshot_interval_ms: args.snapshot_interval_ms,
        restore_timeout_ms: args.restore_timeout_ms,
        session_timeout_ms: args.session_timeout_ms,
        guarantee: args.guarantee,
        transactional_id,
        transaction_timeout_ms: args.transaction_timeout_ms,
    }
}

/// A `transactional.id` unique per live instance: the static member id
/// when there is one (stable across restarts, so a restart aborts its
/// predecessor's transaction at once), else host and process id (a restart
/// in a container keeps both; elsewhere the predecessor's transaction is
/// aborted by the broker after `transaction.timeout.ms`).
fn default_transactional_id(group: &str, properties: &[(String, String)]) -> String {
    if let Some((_, instance)) = properties.iter().find(|(k, _)| k == "group.instance.id") {
        return format!("{group}-{instance}");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{group}-{host}-{}", std::process::id())
}

fn run_processor(args: RunArgs) -> anyhow::Result<()> {
    let core = args.core.to_config()?;
    init_logging(args.log_format, "info");
    let metrics_addr = args.metrics_addr;
    let config = kafka_config(args);
    let shutdown = shutdown_on_signals()?;
    let metrics = coupon_stream::ops::telemetry::install()?;
    let health = Arc::new(Health::default());
    let processor = Processor::new(config, core, Arc::clone(&health));
    let _http = HttpServer::start(
        metrics_addr,
        metrics,
        health,
        Arc::new(processor.live_state()),
    )?;
    processor.run(&shutdown)?;
    Ok(())
}

fn run_copy(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format, "info");
    let metrics_addr = args.metrics_addr;
    let config = kafka_config(args);
    let shutdown = shutdown_on_signals()?;
    let metrics = coupon_stream::ops::telemetry::install()?;
    let health = Arc::new(Health::default());
    let _http = HttpServer::start(
        metrics_addr,
        metrics,
        Arc::clone(&health),
        Arc::new(coupon_stream::ops::http::NoState),
    )?;
    coupon_stream::tools::copy::copy(&config, health, &shutdown)?;
    Ok(())
}

fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    use coupon_stream::tools::bench::{BenchOptions, run_bench};
    // Refuse a bad retention here, not as a failing child.
    CoreConfig {
        retention_ms: args.retention_ms,
        ..CoreConfig::default()
    }
    .validate()?;
    init_logging(LogFormat::Text, "warn");
    let options = BenchOptions {
        brokers: args.brokers,
        properties: args.properties,
        events: args.events,
        rate: (args.rate > 0).then_some(args.rate),
        partitions: args.partitions,
        profile: args.profile.into(),
        sellers: args.sellers,
        seed: args.seed,
        baseline: args.baseline,
        guarantees: args.guarantee,
        retention_ms: args.retention_ms,
        exe: std::env::current_exe()?,
    };
    let reports = run_bench(&options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    let rate = match options.rate {
        Some(r) => format!("{r} events/s offered"),
        None => "saturation".to_owned(),
    };
    println!(
        "{} events, {} partitions, {}, broker {}{}",
        options.events,
        options.partitions,
        rate,
        reports.first().map_or("", |r| r.broker.as_str()),
        if reports.first().is_some_and(|r| r.embedded_broker) {
            " (embedded)"
        } else {
            ""
        }
    );
    println!(
        "{:<14} {:>12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>12} {:>10}",
        "", "events/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "cpu s", "cpu s/M ev", "peak MiB"
    );
    let label = |r: &coupon_stream::tools::bench::BenchReport| match r.guarantee {
        Some(Guarantee::ExactlyOnce) => "processor eos".to_owned(),
        _ => r.mode.as_str().to_owned(),
    };
    let mut warm_up_kept = false;
    for r in &reports {
        let latency = |f: fn(&coupon_stream::tools::bench::LatencyMs) -> f64| {
            r.latency_ms
                .as_ref()
                .map_or("-".to_owned(), |l| format!("{:.1}", f(l)))
        };
        warm_up_kept |= r.latency_ms.as_ref().is_some_and(|l| !l.warm_up_excluded);
        println!(
            "{:<14} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>10.2} {:>12.2} {:>10.1}",
            label(r),
            r.events_per_second,
            latency(|l| l.p50),
            latency(|l| l.p99),
            latency(|l| l.p999),
            latency(|l| l.max),
            r.cpu_seconds,
            r.cpu_seconds_per_million_events,
            r.peak_rss_bytes as f64 / (1 << 20) as f64
        );
    }
    if warm_up_kept {
        println!(
            "latency: every event counted (too few were produced after the first second to leave it out)"
        );
    }
    for r in &reports {
        let threads: Vec<String> = r
            .cpu_by_thread
            .iter()
            .filter(|t| t.cpu_seconds >= 0.005)
            .map(|t| match t.threads {
                0 | 1 => format!("{} {:.2}", t.name, t.cpu_seconds),
                n => format!("{} x{n} {:.2}", t.name, t.cpu_seconds),
            })
            .collect();
        println!("{} cpu s by thread: {}", label(r), threads.join(", "));
    }
    if let Some(baseline) = reports.iter().find(|r| r.guarantee.is_none()) {
        for processor in reports.iter().filter(|r| r.guarantee.is_some()) {
            println!(
                "{} / baseline throughput: {:.0}%",
                label(processor),
                100.0 * processor.events_per_second / baseline.events_per_second.max(1e-9)
            );
        }
    }
    if let Some(r) = reports.last() {
        let outcomes: Vec<String> = r.outcomes.iter().map(|(o, n)| format!("{o}={n}")).collect();
        println!("outcomes: {}", outcomes.join(" "));
        println!("load generator: {:.0} events/s", r.produced_per_second);
    }
    Ok(())
}

/// The first SIGTERM or SIGINT asks for a graceful stop (drain, flush,
/// commit); a second one exits at once with status 1.
fn shutdown_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&shutdown))?;
        signal_hook::flag::register(signal, Arc::clone(&shutdown))?;
    }
    Ok(shutdown)
}

fn run_demo(args: DemoArgs) -> anyhow::Result<()> {
    use coupon_stream::tools::demo::{DemoOptions, run_demo};
    let core = args.core.to_config()?;
    // Warnings and errors only: the demo prints its own progress.
    init_logging(LogFormat::Text, "warn");
    let shutdown = shutdown_on_signals()?;
    let options = DemoOptions {
        brokers: args.brokers,
        properties: args.properties,
        duration: std::time::Duration::from_secs(args.duration),
        partitions: args.partitions,
        rate: (args.rate > 0).then_some(args.rate),
        profile: args.profile.into(),
        sellers: args.sellers,
        seed: args.seed,
        metrics_addr: args.metrics_addr,
        core,
        guarantee: args.guarantee,
    };
    let mut last = (0u64, 0u64, 0f64);
    let report = run_demo(
        &options,
        &shutdown,
        |tick, progress| {
            let t = tick.elapsed.as_secs_f64();
            let dt = (t - last.2).max(1e-9);
            let counts: Vec<String> = [
                Outcome::Issued,
                Outcome::Partial,
                Outcome::Rejected,
                Outcome::Accepted,
                Outcome::Duplicate,
                Outcome::Invalid,
            ]
            .iter()
            .map(|&o| format!("{}={}", o.as_str(), progress.outcome(o)))
            .collect();
            println!(
                "{:>4.0}s  produced {:>10} ({:>7.0}/s)  decided {:>10} ({:>7.0}/s)  {}",
                t,
                tick.produced,
                (tick.produced - last.0.min(tick.produced)) as f64 / dt,
                tick.decided,
                (tick.decided - last.1.min(tick.decided)) as f64 / dt,
                counts.join(" ")
            );
            last = (tick.produced, tick.decided, t);
        },
        |brokers, http| {
            println!(
                "broker {brokers}; metrics at http://{http}/metrics; producing for {} s (Ctrl-C stops early)",
                args.duration
            );
        },
    )?;
    let outcomes: Vec<String> = report
        .outcomes
        .iter()
        .map(|(o, n)| format!("{}={}", o.as_str(), n))
        .collect();
    println!(
        "\nsummary: {} events produced, {} decided in {:.1} s ({:.0} events/s end to end){}",
        report.produced,
        report.decided,
        report.seconds,
        report.decided as f64 / report.seconds.max(1e-9),
        if report.caught_up {
            ""
        } else {
            "; the processor had not caught up when the demo stopped"
        }
    );
    println!("outcomes: {}", outcomes.join(" "));
    println!(
        "coupons issued: {}; records acknowledged by the broker: {} ({} decisions + {} dead letters{}){}",
        report.coupons_issued,
        report.acknowledged,
        report.decided,
        report.invalid,
        if report.acknowledged == report.decided + report.invalid {
            ", all"
        } else {
            ", NOT all"
        },
        if report.embedded {
            "; embedded broker, discarded on exit"
        } else {
            ""
        }
    );
    Ok(())
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<()> {
    let config = args.core.to_config()?;
    let input = open_raw_input(&args.input)?;
    let output = open_output(args.output.as_ref())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let options = ReplayOptions {
        partitions: args.partitions,
        threads: args
            .threads
            .map_or(cores.min(args.partitions as usize), |t| t as usize),
    };
    let started = Instant::now();
    let report = replay_sharded(config, options, input, output)?;
    let seconds = started.elapsed().as_secs_f64();
    let tally = &report.tally;
    if !args.quiet {
        let counts: Vec<String> = Outcome::ALL
            .iter()
            .filter(|&&o| tally.outcome(o) > 0)
            .map(|&o| format!("{}={}", o.as_str(), tally.outcome(o)))
            .collect();
        let stats = &report.stats;
        eprintln!(
            "replayed {} messages in {:.3} s ({:.0} msg/s): {}; state: {} coupons, {} campaigns, {} sellers, {} users, {:.1} MiB heap",
            tally.messages,
            seconds,
            tally.messages as f64 / seconds.max(1e-9),
            counts.join(" "),
            stats.coupons,
            stats.campaigns,
            stats.sellers,
            stats.users,
            stats.heap_bytes as f64 / (1 << 20) as f64,
        );
    }
    if args.stage_times {
        eprintln!(
            "{}",
            StageReport {
                report: &report,
                seconds
            }
        );
    }
    Ok(())
}

fn run_loadgen(args: LoadgenArgs) -> anyhow::Result<()> {
    let mut workload = Workload::new(WorkloadConfig {
        profile: args.profile.into(),
        sellers: args.sellers,
        users: args.users,
        seed: args.seed,
        duplicate_fraction: args.duplicate_fraction,
        invalid_fraction: args.invalid_fraction,
    });
    let Some(path) = &args.output else {
        return produce_load(&args, &mut workload);
    };
    let mut output = open_output(Some(path))?;
    let started = Instant::now();
    let mut value = Vec::with_capacity(512);
    let mut block = Vec::with_capacity(1 << 20);
    for _ in 0..args.events {
        workload.next_into(&mut value);
        block.extend_from_slice(&value);
        block.push(b'\n');
        if block.len() >= 1 << 20 {
            output.write_all(&block)?;
            block.clear();
        }
    }
    output.write_all(&block)?;
    output.flush()?;
    if io::stderr().is_terminal() || path.as_os_str() != "-" {
        eprintln!(
            "generated {} events in {:.3} s",
            args.events,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn produce_load(args: &LoadgenArgs, workload: &mut Workload) -> anyhow::Result<()> {
    let bar = if io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(args.events);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let config = loadgen::producer_config(&args.kafka.brokers, &args.kafka.properties);
    let rate = (args.rate > 0).then_some(args.rate);
    let shutdown = shutdown_on_signals()?;
    let summary = loadgen::produce(
        &config,
        &args.topic,
        workload,
        args.events,
        rate,
        &shutdown,
        |n| bar.set_position(n),
    )?;
    bar.finish_and_clear();
    eprintln!(
        "produced {} events to {} at {} in {:.3} s ({:.0} events/s), all acknowledged",
        summary.events,
        args.topic,
        args.kafka.brokers,
        summary.seconds,
        summary.events as f64 / summary.seconds.max(1e-9)
    );
    Ok(())
}
