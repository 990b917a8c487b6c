//! Topic administration for `demo` and `bench`: creates the topics they
//! need, accepting topics that already exist.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("creating the admin client: {0}")]
    Client(#[source] KafkaError),
    #[error("starting the admin runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("creating the topics: {0}")]
    Request(#[source] KafkaError),
    #[error("creating topic {topic}: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates each `(topic, partitions)` with replication factor 1 unless it
/// exists already. `properties` (`-X`) are applied to the admin client.
pub fn ensure_topics(
    brokers: &str,
    properties: &[(String, String)],
    topics: &[(&str, i32)],
    timeout: Duration,
) -> Result<(), AdminError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        config.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = config.create().map_err(AdminError::Client)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|&(name, partitions)| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AdminError::Runtime)?;
    let results = runtime
        .block_on(admin.create_topics(&new_topics, &options))
        .map_err(AdminError::Request)?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    Ok(())
}
