//! [`RunArgs`]: the flags of `run` (and of the hidden `copy`), and their
//! conversion into a [`KafkaConfig`] on top of [`KafkaConfig::new`]'s
//! defaults. [`KafkaClientArgs`] (brokers and `-X` properties) is shared
//! with `loadgen`.

use clap::Args;

use super::{CoreArgs, GuaranteeArg, HttpArgs, LogFormat};
use crate::kafka::config::{
    BATCH_MESSAGES_MAX_DEFAULT, DECISION_THREADS_MAX, DLQ_TOPIC_DEFAULT, DRAIN_TIMEOUT_MS_DEFAULT,
    GROUP_ID_DEFAULT, Guarantee, INPUT_TOPIC_DEFAULT, KafkaConfig, OUTPUT_TOPIC_DEFAULT,
    RESTORE_THREADS_DEFAULT, RESTORE_TIMEOUT_MS_DEFAULT, SESSION_TIMEOUT_MS_DEFAULT,
    SNAPSHOT_INTERVAL_MS_DEFAULT, STATE_TOPIC_DEFAULT, TOPIC_WAIT_TIMEOUT_MS_DEFAULT,
    TRANSACTION_TIMEOUT_MS_DEFAULT, default_transactional_id, parse_property, parse_topic,
};
use crate::kafka::topics::StateTopicPolicy;

/// Where Kafka is and how to reach it, shared by `run` and `loadgen`.
#[derive(Args, Debug)]
pub struct KafkaClientArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "COUPON_STREAM_BROKERS", default_value = "localhost:9092")]
    pub brokers: String,
    /// A librdkafka property, e.g. -X security.protocol=SASL_SSL; repeatable
    /// (the environment variable takes several separated by `;`).
    #[arg(short = 'X', value_name = "KEY=VALUE", env = "COUPON_STREAM_KAFKA_PROPERTIES", value_delimiter = ';', value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaClientArgs,
    /// Consumer group; instances with the same group split the partitions.
    #[arg(long, env = "COUPON_STREAM_GROUP_ID", default_value = GROUP_ID_DEFAULT)]
    pub group_id: String,
    /// Topic of input events, keyed by seller_id.
    #[arg(long, env = "COUPON_STREAM_INPUT_TOPIC", default_value = INPUT_TOPIC_DEFAULT, value_parser = parse_topic)]
    pub input_topic: String,
    /// Topic decisions are produced to.
    #[arg(long, env = "COUPON_STREAM_OUTPUT_TOPIC", default_value = OUTPUT_TOPIC_DEFAULT, value_parser = parse_topic)]
    pub output_topic: String,
    /// Topic invalid input values are copied to.
    #[arg(long, env = "COUPON_STREAM_DLQ_TOPIC", default_value = DLQ_TOPIC_DEFAULT, value_parser = parse_topic)]
    pub dlq_topic: String,
    /// Do not check that each message sits on murmur2(seller_id) mod partition count.
    #[arg(long, env = "COUPON_STREAM_NO_VERIFY_PARTITIONING")]
    pub no_verify_partitioning: bool,
    /// Most messages decided per batch.
    #[arg(long, env = "COUPON_STREAM_BATCH_MESSAGES_MAX", default_value_t = BATCH_MESSAGES_MAX_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_messages_max: u64,
    /// at-least-once: idempotent producer, offsets committed after the decisions are acknowledged; exactly-once: Kafka transactions.
    #[arg(long, env = "COUPON_STREAM_GUARANTEE", value_enum, default_value_t = GuaranteeArg::AtLeastOnce)]
    pub guarantee: GuaranteeArg,
    #[arg(long, env = "COUPON_STREAM_COMMIT_INTERVAL_MS", value_parser = clap::value_parser!(u64).range(1..=600_000), help = commit_interval_help())]
    pub commit_interval_ms: Option<u64>,
    /// The producer's transactional.id under exactly-once; unique per instance [default: GROUP-HOSTNAME-PID, or GROUP-INSTANCE with -X group.instance.id=INSTANCE].
    #[arg(long, env = "COUPON_STREAM_TRANSACTIONAL_ID")]
    pub transactional_id: Option<String>,
    /// How long the broker keeps a dead instance's open transaction, in milliseconds (exactly-once).
    #[arg(long, env = "COUPON_STREAM_TRANSACTION_TIMEOUT_MS", default_value_t = TRANSACTION_TIMEOUT_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(1_000..=900_000))]
    pub transaction_timeout_ms: u64,
    /// Longest wait for outstanding decisions on shutdown and on revoke, in milliseconds.
    #[arg(long, env = "COUPON_STREAM_DRAIN_TIMEOUT_MS", default_value_t = DRAIN_TIMEOUT_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub drain_timeout_ms: u64,
    /// Topic of partition snapshots (durable state): compacted, at least as many partitions as the input; created at start-up when missing.
    #[arg(long, env = "COUPON_STREAM_STATE_TOPIC", default_value = STATE_TOPIC_DEFAULT, value_parser = parse_topic)]
    pub state_topic: String,
    /// How often each partition's state is snapshotted, in milliseconds; 0 turns durable state off.
    #[arg(long, env = "COUPON_STREAM_SNAPSHOT_INTERVAL_MS", default_value_t = SNAPSHOT_INTERVAL_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub snapshot_interval_ms: u64,
    /// Longest time to restore one assigned partition (read its snapshot, replay), in milliseconds.
    #[arg(long, env = "COUPON_STREAM_RESTORE_TIMEOUT_MS", default_value_t = RESTORE_TIMEOUT_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    pub restore_timeout_ms: u64,
    /// Threads restoring newly assigned partitions in parallel (each reads a snapshot and replays the input since it).
    #[arg(long, env = "COUPON_STREAM_RESTORE_THREADS", default_value_t = RESTORE_THREADS_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub restore_threads: u64,
    /// Most threads deciding one polled batch, the polling thread among them; each takes whole partitions [default: the cores available minus one, at least 1].
    #[arg(long, env = "COUPON_STREAM_DECISION_THREADS", value_parser = clap::value_parser!(u64).range(1..=DECISION_THREADS_MAX as u64))]
    pub decision_threads: Option<u64>,
    /// Do not create the state topic when it is missing: wait for it like the other topics and stop if it does not appear.
    #[arg(long, env = "COUPON_STREAM_NO_CREATE_STATE_TOPIC")]
    pub no_create_state_topic: bool,
    /// Replication factor of a state topic the processor creates [default: the broker's default.replication.factor].
    #[arg(long, env = "COUPON_STREAM_STATE_TOPIC_REPLICATION_FACTOR", value_parser = clap::value_parser!(i32).range(1..=32_767))]
    pub state_topic_replication_factor: Option<i32>,
    /// min.insync.replicas of a state topic the processor creates [default: the broker's min.insync.replicas].
    #[arg(long, env = "COUPON_STREAM_STATE_TOPIC_MIN_INSYNC_REPLICAS", value_parser = clap::value_parser!(u32).range(1..=32_767))]
    pub state_topic_min_insync_replicas: Option<u32>,
    /// Longest wait at start-up for the input, output and dead-letter topics (and, with --no-create-state-topic, the state topic) to exist, in milliseconds; the processor starts as soon as they do.
    #[arg(long, env = "COUPON_STREAM_TOPIC_WAIT_TIMEOUT_MS", default_value_t = TOPIC_WAIT_TIMEOUT_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub topic_wait_timeout_ms: u64,
    /// How long a dead instance keeps its partitions before the group moves them, in milliseconds.
    #[arg(long, env = "COUPON_STREAM_SESSION_TIMEOUT_MS", default_value_t = SESSION_TIMEOUT_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    pub session_timeout_ms: u64,
    /// Log format on stderr; the level comes from RUST_LOG (default info).
    #[arg(long, env = "COUPON_STREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub core: CoreArgs,
}

/// `--commit-interval-ms` help, with both defaults from [`Guarantee`].
fn commit_interval_help() -> String {
    format!(
        "How often input offsets are committed (exactly-once: transactions), in milliseconds \
         [default: {}, exactly-once {}]",
        Guarantee::AtLeastOnce.commit_interval_ms_default(),
        Guarantee::ExactlyOnce.commit_interval_ms_default()
    )
}

impl From<&RunArgs> for KafkaConfig {
    fn from(args: &RunArgs) -> KafkaConfig {
        let guarantee = Guarantee::from(args.guarantee);
        let defaults = KafkaConfig::new(args.kafka.brokers.clone(), guarantee);
        KafkaConfig {
            group_id: args.group_id.clone(),
            input_topic: args.input_topic.clone(),
            output_topic: args.output_topic.clone(),
            dlq_topic: args.dlq_topic.clone(),
            verify_partitioning: !args.no_verify_partitioning,
            properties: args.kafka.properties.clone(),
            batch_messages_max: args.batch_messages_max as usize,
            commit_interval_ms: args
                .commit_interval_ms
                .unwrap_or(defaults.commit_interval_ms),
            drain_timeout_ms: args.drain_timeout_ms,
            state_topic: args.state_topic.clone(),
            snapshot_interval_ms: args.snapshot_interval_ms,
            restore_timeout_ms: args.restore_timeout_ms,
            restore_threads: args.restore_threads as usize,
            decision_threads: args
                .decision_threads
                .map_or(defaults.decision_threads, |t| t as usize),
            state_topic_policy: StateTopicPolicy {
                create: !args.no_create_state_topic,
                replication_factor: args.state_topic_replication_factor.unwrap_or(-1),
                min_insync_replicas: args.state_topic_min_insync_replicas,
            },
            topic_wait_timeout_ms: args.topic_wait_timeout_ms,
            session_timeout_ms: args.session_timeout_ms,
            transactional_id: args.transactional_id.clone().unwrap_or_else(|| {
                default_transactional_id(&args.group_id, &args.kafka.properties)
            }),
            transaction_timeout_ms: args.transaction_timeout_ms,
            ..defaults
        }
    }
}
