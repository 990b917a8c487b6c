//! Start-up checks of the topics the processor uses, in the manner of
//! Kafka Streams' `InternalTopicManager`: the input, output and
//! dead-letter topics must exist, and are waited for (bounded: a
//! topic-init job may be creating them right now; the processor starts as
//! soon as they appear); the state topic is the processor's own, created
//! when missing (compacted, as many partitions as the input) and validated
//! when present. Anything wrong ends in one [`TopicError`] naming the topic
//! and the fix. A broker that cannot be reached is retried, logged, until
//! shutdown: an outage is not a misconfiguration.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use thiserror::Error;
use tracing::{info, warn};

use crate::kafka::config::KafkaConfig;

/// Between two looks at the cluster's topics.
const RECHECK: Duration = Duration::from_millis(500);
/// Longest single metadata or admin request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one "still waiting" line per this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum TopicError {
    #[error(
        "topic {topic} does not exist (waited {waited_ms} ms); create it, e.g. `kafka-topics.sh --create --topic {topic} --partitions 8`, or name an existing one with {flag}"
    )]
    Missing {
        topic: String,
        flag: &'static str,
        waited_ms: u64,
    },
    #[error(
        "state topic {topic} does not exist (waited {waited_ms} ms) and --no-create-state-topic is set; create it with `kafka-topics.sh --create --topic {topic} --partitions {partitions} --config cleanup.policy=compact`"
    )]
    StateMissing {
        topic: String,
        partitions: u32,
        waited_ms: u64,
    },
    #[error(
        "state topic {topic} has {found} partitions, fewer than the {needed} of input topic {input}; add partitions (`kafka-topics.sh --alter --topic {topic} --partitions {needed}`) or use a new --state-topic"
    )]
    StatePartitions {
        topic: String,
        found: u32,
        input: String,
        needed: u32,
    },
    #[error(
        "state topic {topic} has cleanup.policy={policy}, not compact, so old snapshots would be lost to retention or never removed; set it with `kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config cleanup.policy=compact`"
    )]
    StateNotCompacted { topic: String, policy: String },
    #[error("creating state topic {topic}: {reason}")]
    Create { topic: String, reason: String },
    #[error("describing the configuration of state topic {topic}: {reason}")]
    Describe { topic: String, reason: String },
    #[error("creating the admin client: {0}")]
    Client(KafkaError),
    #[error("starting the admin runtime: {0}")]
    Runtime(std::io::Error),
    #[error("stopped before the topics were ready")]
    Stopped,
}

/// How the state topic is managed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTopicPolicy {
    /// Create it when missing (`--no-create-state-topic` turns this off).
    pub create: bool,
    /// Replication factor of a created state topic; -1: the broker's default.
    pub replication_factor: i32,
    /// `min.insync.replicas` of a created state topic; `None`: the broker's default.
    pub min_insync_replicas: Option<u32>,
}

impl Default for StateTopicPolicy {
    fn default() -> StateTopicPolicy {
        StateTopicPolicy {
            create: true,
            replication_factor: -1,
            min_insync_replicas: None,
        }
    }
}

/// What the checks found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLayout {
    pub input_partitions: u32,
}

/// Waits for the input, output and dead-letter topics (and the state
/// topic, when it may not be created), then creates or validates the state
/// topic when durable state is on. Returns the input's partition count.
pub fn prepare(config: &KafkaConfig, shutdown: &AtomicBool) -> Result<TopicLayout, TopicError> {
    let admin = Admin::new(config)?;
    let durable = config.snapshot_interval_ms > 0;
    let mut required: Vec<(&str, &'static str)> = vec![
        (&config.input_topic, "--input-topic"),
        (&config.output_topic, "--output-topic"),
        (&config.dlq_topic, "--dlq-topic"),
    ];
    if durable && !config.state_topic_policy.create {
        required.push((&config.state_topic, "--state-topic"));
    }
    let wait = Duration::from_millis(config.topic_wait_timeout_ms);
    let counts = admin.wait_for(&required, wait, shutdown)?;
    let input_partitions = counts[0];
    if durable {
        let found = admin.partitions(&config.state_topic, shutdown)?;
        let found = match found {
            Some(n) => n,
            None => admin.create_state_topic(config, input_partitions, shutdown)?,
        };
        if found < input_partitions {
            return Err(TopicError::StatePartitions {
                topic: config.state_topic.clone(),
                found,
                input: config.input_topic.clone(),
                needed: input_partitions,
            });
        }
        admin.check_compacted(&config.state_topic, shutdown)?;
    }
    Ok(TopicLayout { input_partitions })
}

struct Admin {
    client: AdminClient<DefaultClientContext>,
    runtime: tokio::runtime::Runtime,
}

impl Admin {
    fn new(config: &KafkaConfig) -> Result<Admin, TopicError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers)
            // A metadata request must never create the topic it asks about.
            .set("allow.auto.create.topics", "false");
        for (k, v) in &config.properties {
            if !k.starts_with("group.") {
                c.set(k, v);
            }
        }
        let client = c.create().map_err(TopicError::Client)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TopicError::Runtime)?;
        Ok(Admin { client, runtime })
    }

    /// Runs an admin request until it answers or `shutdown` is set.
    fn run<F: Future>(&self, shutdown: &AtomicBool, request: F) -> Result<F::Output, TopicError> {
        self.runtime.block_on(async {
            tokio::select! {
                out = request => Ok(out),
                () = stopped(shutdown) => Err(TopicError::Stopped),
            }
        })
    }

    /// A topic's partition count, `None` when the broker says it does not
    /// exist; retried while the broker cannot be reached.
    fn partitions(&self, topic: &str, shutdown: &AtomicBool) -> Result<Option<u32>, TopicError> {
        let mut logged: Option<Instant> = None;
        loop {
            if shutdown.load(Ordering::Relaxed) {
                return Err(TopicError::Stopped);
            }
            match self
                .client
                .inner()
                .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            {
                Ok(metadata) => {
                    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
                        return Ok(None);
                    };
                    if t.error().is_some() || t.partitions().is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(t.partitions().len() as u32));
                }
                Err(error) => {
                    if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                        warn!(message = "Cannot reach the brokers to check the topics; retrying.", topic, %error);
                        logged = Some(Instant::now());
                    }
                    std::thread::sleep(RECHECK);
                }
            }
        }
    }

    /// Waits until every `(topic, flag)` exists, at most `wait` once the
    /// broker answers; returns their partition counts in order.
    fn wait_for(
        &self,
        required: &[(&str, &'static str)],
        wait: Duration,
        shutdown: &AtomicBool,
    ) -> Result<Vec<u32>, TopicError> {
        let started = Instant::now();
        let mut logged: Option<Instant> = None;
        loop {
            let mut counts = Vec::with_capacity(required.len());
            let mut missing = None;
            for &(topic, flag) in required {
                match self.partitions(topic, shutdown)? {
                    Some(n) => counts.push(n),
                    None => {
                        missing = Some((topic, flag));
                        break;
                    }
                }
            }
            let Some((topic, flag)) = missing else {
                return Ok(counts);
            };
            let waited_ms = started.elapsed().as_millis() as u64;
            if started.elapsed() >= wait {
                return Err(missing_error(topic, flag, waited_ms, counts.first()));
            }
            if logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                info!(
                    message = "Waiting for a topic to be created.",
                    topic,
                    waited_ms,
                    wait_ms = wait.as_millis() as u64
                );
                logged = Some(Instant::now());
            }
            std::thread::sleep(RECHECK);
        }
    }

    /// Creates the state topic: compacted, `partitions` partitions, the
    /// configured replication. Another instance creating it first is fine.
    fn create_state_topic(
        &self,
        config: &KafkaConfig,
        partitions: u32,
        shutdown: &AtomicBool,
    ) -> Result<u32, TopicError> {
        let topic = &config.state_topic;
        let policy = &config.state_topic_policy;
        let min_insync = policy.min_insync_replicas.map(|n| n.to_string());
        let mut new_topic = NewTopic::new(
            topic,
            partitions as i32,
            TopicReplication::Fixed(policy.replication_factor),
        )
        .set("cleanup.policy", "compact");
        if let Some(n) = &min_insync {
            new_topic = new_topic.set("min.insync.replicas", n);
        }
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .run(shutdown, self.client.create_topics([&new_topic], &options))?
            .map_err(|e| create_error(topic, e.to_string()))?;
        for result in results {
            match result {
                Ok(_) => {
                    info!(message = "Created the state topic.", topic = %topic, partitions, cleanup_policy = "compact", replication_factor = policy.replication_factor)
                }
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(create_error(topic, code.to_string())),
            }
        }
        // Visible to metadata requests once the broker has it.
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            if let Some(n) = self.partitions(topic, shutdown)? {
                return Ok(n);
            }
            if Instant::now() >= deadline {
                return Err(create_error(
                    topic,
                    "created, but not visible in the metadata".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The state topic's `cleanup.policy` must be `compact`. A broker that
    /// describes no configuration value means its default (`delete`). A
    /// broker that does not answer DescribeConfigs (librdkafka's mock
    /// cluster has no such request: the client times out) leaves it
    /// unknown, which is logged, not fatal: the topic is not known to be
    /// wrong.
    fn check_compacted(&self, topic: &str, shutdown: &AtomicBool) -> Result<(), TopicError> {
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let resource = ResourceSpecifier::Topic(topic);
        let described = self.run(
            shutdown,
            self.client.describe_configs([&resource], &options),
        )?;
        let resource = match described.map(|mut r| r.pop()) {
            Ok(Some(Ok(resource))) => resource,
            Err(KafkaError::AdminOp(code)) | Ok(Some(Err(code))) if unanswered(code) => {
                warn!(message = "The broker does not describe topic configurations; the state topic's cleanup.policy is not checked.", topic, %code);
                return Ok(());
            }
            Ok(Some(Err(code))) => return Err(describe_error(topic, code.to_string())),
            Ok(None) => return Err(describe_error(topic, "no answer".into())),
            Err(error) => return Err(describe_error(topic, error.to_string())),
        };
        let policy = resource
            .get("cleanup.policy")
            .and_then(|e| e.value.clone())
            .unwrap_or_else(|| "delete".to_owned());
        if policy.trim() != "compact" {
            return Err(TopicError::StateNotCompacted {
                topic: topic.to_owned(),
                policy,
            });
        }
        Ok(())
    }
}

fn missing_error(
    topic: &str,
    flag: &'static str,
    waited_ms: u64,
    input_partitions: Option<&u32>,
) -> TopicError {
    if flag == "--state-topic" {
        TopicError::StateMissing {
            topic: topic.to_owned(),
            partitions: input_partitions.copied().unwrap_or(1),
            waited_ms,
        }
    } else {
        TopicError::Missing {
            topic: topic.to_owned(),
            flag,
            waited_ms,
        }
    }
}

fn create_error(topic: &str, reason: String) -> TopicError {
    TopicError::Create {
        topic: topic.to_owned(),
        reason,
    }
}

fn describe_error(topic: &str, reason: String) -> TopicError {
    TopicError::Describe {
        topic: topic.to_owned(),
        reason,
    }
}

fn unanswered(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnsupportedFeature
            | RDKafkaErrorCode::UnsupportedVersion
            | RDKafkaErrorCode::InvalidRequest
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::RequestTimedOut
    )
}

/// Resolves once `shutdown` is set.
async fn stopped(shutdown: &AtomicBool) {
    while !shutdown.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
