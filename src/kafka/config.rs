//! [`KafkaConfig`]: where the processor reads and writes, and the librdkafka
//! settings of its consumer and producer. Every default is written once,
//! here: [`KafkaConfig::new`] applies them and the `run` flags show them.
//! Users' `-X key=value` properties are applied last, so TLS, SASL and any
//! tuning pass straight through.

use rdkafka::ClientConfig;

use crate::kafka::topics::StateTopicPolicy;

/// The contract's topics and the consumer group of `run`.
pub const GROUP_ID_DEFAULT: &str = "coupon-stream";
pub const INPUT_TOPIC_DEFAULT: &str = "coupon-events";
pub const OUTPUT_TOPIC_DEFAULT: &str = "coupon-decisions";
pub const DLQ_TOPIC_DEFAULT: &str = "coupon-events-dlq";
pub const STATE_TOPIC_DEFAULT: &str = "coupon-state";
pub const BATCH_MESSAGES_MAX_DEFAULT: usize = 10_000;
/// librdkafka's `fetch.queue.backoff.ms` for every reading client (the
/// processor's consumer, the restore reader). Once a partition's local
/// queue is past its threshold, librdkafka pauses that partition's fetching
/// for this long (default 1 s), and a reader deciding faster than that
/// empties the queue and waits: draining a 2 M event backlog from Tansu,
/// the default averaged about 290,000 events/s in bursts with idle seconds
/// between, 50 ms 550,000-630,000; a restore's replay ran 4x faster
/// (docs/PERFORMANCE.md).
pub const FETCH_QUEUE_BACKOFF_MS: &str = "50";
pub const DRAIN_TIMEOUT_MS_DEFAULT: u64 = 30_000;
pub const SNAPSHOT_INTERVAL_MS_DEFAULT: u64 = 60_000;
pub const RESTORE_TIMEOUT_MS_DEFAULT: u64 = 300_000;
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 10_000;
pub const TRANSACTION_TIMEOUT_MS_DEFAULT: u64 = 10_000;
pub const RESTORE_THREADS_DEFAULT: usize = 4;
pub const TOPIC_WAIT_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Most threads `--decision-threads` accepts.
pub const DECISION_THREADS_MAX: usize = 256;

/// The default of `--decision-threads`: the cores this process may use (a
/// cgroup CPU limit included), one left to librdkafka's broker threads
/// (they decompress the input and compress the decisions: 0.8-1.0
/// CPU-seconds per million events at saturation in `bench`), at least one.
/// On 2 cores a batch is decided on the polling thread alone: a second
/// deciding thread took that core from the broker threads, and the
/// processor spent 5-13% more CPU (medians of four series) for
/// throughput within the noise (docs/PERFORMANCE.md).
pub fn decision_threads_default() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).clamp(1, DECISION_THREADS_MAX)
}

/// What a crash, restart or rebalance may do to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
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

impl Guarantee {
    pub fn as_str(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }

    /// How often offsets are committed unless configured otherwise.
    pub fn commit_interval_ms_default(self) -> u64 {
        match self {
            Guarantee::AtLeastOnce => 1_000,
            // As Kafka Streams under exactly-once: read_committed readers
            // see decisions only when their transaction commits.
            Guarantee::ExactlyOnce => 100,
        }
    }
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    pub input_topic: String,
    pub output_topic: String,
    pub dlq_topic: String,
    /// Check that each message sits on murmur2(key) mod partition count.
    pub verify_partitioning: bool,
    /// librdkafka properties from `-X`, applied to both clients, last.
    pub properties: Vec<(String, String)>,
    /// Most messages decided between two looks at acknowledgements.
    pub batch_messages_max: usize,
    /// How often acknowledged offsets are committed.
    pub commit_interval_ms: u64,
    /// Longest wait for outstanding decisions on revoke and shutdown.
    pub drain_timeout_ms: u64,
    /// Topic of partition snapshots (durable state).
    pub state_topic: String,
    /// How often each partition's state is snapshotted; 0 turns durable
    /// state off (no snapshots, no restore: a new owner starts empty).
    pub snapshot_interval_ms: u64,
    /// Longest time to restore one assigned partition.
    pub restore_timeout_ms: u64,
    /// Threads restoring assigned partitions in parallel.
    pub restore_threads: usize,
    /// Most threads deciding one batch, the polling thread among them;
    /// each takes whole partitions (a partition is decided by one thread,
    /// in offset order).
    pub decision_threads: usize,
    /// How the state topic is created and checked at start-up.
    pub state_topic_policy: StateTopicPolicy,
    /// Longest wait at start-up for the topics to exist.
    pub topic_wait_timeout_ms: u64,
    /// The consumer's `session.timeout.ms`: how long a dead member keeps
    /// its partitions.
    pub session_timeout_ms: u64,
    pub guarantee: Guarantee,
    /// The producer's `transactional.id` under exactly-once: unique per
    /// live instance, stable across its restarts where possible, so a
    /// restarted instance aborts its predecessor's open transaction at once.
    pub transactional_id: String,
    /// The producer's `transaction.timeout.ms`: how long the broker keeps
    /// the transaction of an instance that died before aborting it.
    pub transaction_timeout_ms: u64,
}

impl KafkaConfig {
    /// Every setting at its default, against `brokers` under `guarantee`:
    /// the one place the defaults are assembled. Callers change what they
    /// need with struct update syntax (`KafkaConfig { group_id, ..new }`).
    pub fn new(brokers: impl Into<String>, guarantee: Guarantee) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            group_id: GROUP_ID_DEFAULT.to_owned(),
            input_topic: INPUT_TOPIC_DEFAULT.to_owned(),
            output_topic: OUTPUT_TOPIC_DEFAULT.to_owned(),
            dlq_topic: DLQ_TOPIC_DEFAULT.to_owned(),
            verify_partitioning: true,
            properties: Vec::new(),
            batch_messages_max: BATCH_MESSAGES_MAX_DEFAULT,
            commit_interval_ms: guarantee.commit_interval_ms_default(),
            drain_timeout_ms: DRAIN_TIMEOUT_MS_DEFAULT,
            state_topic: STATE_TOPIC_DEFAULT.to_owned(),
            snapshot_interval_ms: SNAPSHOT_INTERVAL_MS_DEFAULT,
            restore_timeout_ms: RESTORE_TIMEOUT_MS_DEFAULT,
            restore_threads: RESTORE_THREADS_DEFAULT,
            decision_threads: decision_threads_default(),
            state_topic_policy: StateTopicPolicy::default(),
            topic_wait_timeout_ms: TOPIC_WAIT_TIMEOUT_MS_DEFAULT,
            session_timeout_ms: SESSION_TIMEOUT_MS_DEFAULT,
            guarantee,
            transactional_id: default_transactional_id(GROUP_ID_DEFAULT, &[]),
            transaction_timeout_ms: TRANSACTION_TIMEOUT_MS_DEFAULT,
        }
    }

    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("partition.assignment.strategy", "cooperative-sticky")
            // A member that dies (kill -9, node loss) hands its partitions
            // over after 10 s instead of the 45 s default. For restarts in
            // place, static membership (-X group.instance.id=...) avoids
            // the rebalance altogether.
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", "2000")
            // A new group reads from the start: an event produced before the
            // processor first ran is still decided.
            .set("auto.offset.reset", "earliest")
            // Offsets are committed only after the decisions are acknowledged.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            // Measured with `bench` (docs/PERFORMANCE.md): at 100k events/s
            // these cut p50 latency from 107 ms to 28 ms, against 64 KiB /
            // 50 ms, with saturation throughput within run-to-run noise.
            .set("fetch.min.bytes", "1")
            .set("fetch.wait.max.ms", "5")
            .set("queued.min.messages", "200000")
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
            // Consumer lag per partition and broker state, for the metrics.
            .set("statistics.interval.ms", "5000");
        self.apply_properties(&mut c);
        c
    }

    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Keys are seller ids; place decisions as Kafka's Java client would.
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "1")
            .set("batch.size", "1000000")
            .set("compression.type", "lz4")
            // Retry for as long as the broker is away: a decision is never
            // dropped for a transient outage, and offsets wait for it.
            .set("message.timeout.ms", "0")
            .set("queue.buffering.max.messages", "1000000")
            .set("statistics.interval.ms", "5000");
        self.apply_properties(&mut c);
        c
    }

    /// The decision producer's settings: [`Self::producer_config`], made
    /// transactional under exactly-once. (The snapshot store's producer
    /// stays outside the transactions: a snapshot is written only after
    /// the offsets it covers are committed.)
    pub fn decision_producer_config(&self) -> ClientConfig {
        let mut c = self.producer_config();
        if self.guarantee == Guarantee::ExactlyOnce {
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms:
            // a record the broker cannot take within the transaction's life
            // fails it, and the processor aborts, rewinds and retries.
            let timeout = self.transaction_timeout_ms.to_string();
            c.set("transactional.id", &self.transactional_id)
                .set("transaction.timeout.ms", &timeout)
                .set("message.timeout.ms", &timeout);
        }
        c
    }

    fn apply_properties(&self, c: &mut ClientConfig) {
        for (k, v) in &self.properties {
            c.set(k, v);
        }
    }
}

/// A `transactional.id` unique per live instance: the static member id
/// when there is one (stable across restarts, so a restart aborts its
/// predecessor's transaction at once), else host and process id (a restart
/// in a container keeps both; elsewhere the predecessor's transaction is
/// aborted by the broker after `transaction.timeout.ms`).
pub fn default_transactional_id(group: &str, properties: &[(String, String)]) -> String {
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

/// Parses one `-X key=value` librdkafka property.
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

/// Longest topic name Kafka accepts.
const TOPIC_NAME_MAX: usize = 249;

/// Parses a topic name flag with Kafka's rules (1 to 249 of `a-z`, `A-Z`,
/// `0-9`, `.`, `_`, `-`; not `.` or `..`), so a mistyped or empty name is
/// a usage error at once instead of a wait for a topic that can never
/// exist.
pub fn parse_topic(s: &str) -> Result<String, String> {
    let legal = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if s.is_empty() {
        Err("a topic name cannot be empty".to_owned())
    } else if s.len() > TOPIC_NAME_MAX {
        Err(format!(
            "topic name longer than {TOPIC_NAME_MAX} characters"
        ))
    } else if s == "." || s == ".." {
        Err(format!("{s:?} is not a legal topic name"))
    } else if let Some(c) = s.chars().find(|c| !c.is_ascii() || !legal(*c as u8)) {
        Err(format!(
            "{s:?} is not a legal topic name: {c:?} (use a-z, A-Z, 0-9, '.', '_', '-')"
        ))
    } else {
        Ok(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafkas_rules() {
        for ok in ["coupon-events", "a", "a.b_c-D9", &"x".repeat(249)] {
            assert_eq!(parse_topic(ok).as_deref(), Ok(ok));
        }
        for bad in ["", ".", "..", "has space", "é", "a/b", &"x".repeat(250)] {
            assert!(parse_topic(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn properties_pass_through_and_win() {
        assert_eq!(
            parse_property("security.protocol=SASL_SSL"),
            Ok(("security.protocol".into(), "SASL_SSL".into()))
        );
        assert_eq!(
            parse_property("sasl.password=a=b"),
            Ok(("sasl.password".into(), "a=b".into()))
        );
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=x").is_err());
        let config = KafkaConfig {
            properties: vec![
                ("linger.ms".into(), "20".into()),
                ("auto.offset.reset".into(), "latest".into()),
            ],
            transactional_id: "g-host-1".into(),
            ..KafkaConfig::new("b:9092", Guarantee::AtLeastOnce)
        };
        assert_eq!(config.producer_config().get("linger.ms"), Some("20"));
        assert_eq!(
            config.consumer_config().get("auto.offset.reset"),
            Some("latest")
        );
        assert_eq!(
            config.consumer_config().get("enable.auto.commit"),
            Some("false")
        );
        assert_eq!(
            config.decision_producer_config().get("transactional.id"),
            None
        );
        let eos = KafkaConfig {
            guarantee: Guarantee::ExactlyOnce,
            ..config.clone()
        };
        assert_eq!(
            eos.decision_producer_config().get("transactional.id"),
            Some("g-host-1")
        );
        assert_eq!(
            eos.decision_producer_config().get("message.timeout.ms"),
            Some("10000")
        );
        assert_eq!(eos.producer_config().get("transactional.id"), None);
        assert_eq!(
            config.consumer_config().get("session.timeout.ms"),
            Some("10000")
        );
    }

    #[test]
    fn defaults_follow_the_guarantee() {
        let at_least_once = KafkaConfig::new("b:9092", Guarantee::AtLeastOnce);
        let exactly_once = KafkaConfig::new("b:9092", Guarantee::ExactlyOnce);
        assert_eq!(at_least_once.commit_interval_ms, 1_000);
        assert_eq!(exactly_once.commit_interval_ms, 100);
        assert_eq!(exactly_once.input_topic, "coupon-events");
        assert!(exactly_once.transactional_id.starts_with("coupon-stream-"));
    }

    #[test]
    fn a_static_member_names_its_transactions() {
        let properties = [("group.instance.id".to_owned(), "pod-3".to_owned())];
        assert_eq!(default_transactional_id("g", &properties), "g-pod-3");
        let pid = std::process::id().to_string();
        assert!(default_transactional_id("g", &[]).ends_with(&pid));
    }
}
