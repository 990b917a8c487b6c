//! Kafka transactions on the embedded broker: a transactional producer
//! commits a transaction carrying records and consumer offsets, aborts the
//! next, and commits again; the committed offsets are visible afterwards
//! and the aborted transaction's offsets are not.
#![cfg(feature = "embedded-broker")]

use std::time::{Duration, Instant};

use coupon_stream::kafka::admin::ensure_topics;
use coupon_stream::tools::embedded_broker::EmbeddedBroker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

fn send(producer: &BaseProducer, topic: &str, payloads: &[&str]) {
    for payload in payloads {
        producer
            .send(BaseRecord::to(topic).key("k").payload(*payload))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
}

fn offsets(topic: &str, offset: i64) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    list
}

fn committed(consumer: &BaseConsumer, topic: &str) -> Offset {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    consumer
        .committed_offsets(list, TIMEOUT)
        .unwrap()
        .find_partition(topic, 0)
        .unwrap()
        .offset()
}

/// Every payload on `topic` partition 0 as seen with `isolation.level`,
/// reading until `last` arrives.
fn read_all(bootstrap: &str, topic: &str, isolation: &str, last: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap();
    consumer
        .assign(&{
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(topic, 0, Offset::Beginning)
                .unwrap();
            list
        })
        .unwrap();
    let mut payloads = Vec::new();
    let started = Instant::now();
    while started.elapsed() < TIMEOUT {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            let done = payload == last;
            payloads.push(payload);
            if done {
                return payloads;
            }
        }
    }
    panic!("{last} not read within {TIMEOUT:?} ({isolation}); read {payloads:?}");
}

#[test]
fn transactions_commit_and_abort() {
    let broker = EmbeddedBroker::start(1).unwrap();
    let bootstrap = broker.bootstrap_servers();
    ensure_topics(&bootstrap, &[], &[("txn-in", 1), ("txn-out", 1)], TIMEOUT).unwrap();

    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    send(&plain, "txn-in", &["i0", "i1", "i2", "i3", "i4", "i5"]);

    let group = "txn-group";
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.assign(&offsets("txn-in", 0)).unwrap();
    let metadata = consumer.group_metadata().unwrap();

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "txn-test")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();

    producer.begin_transaction().unwrap();
    send(
        &producer,
        "txn-out",
        &["committed-0", "committed-1", "committed-2"],
    );
    producer
        .send_offsets_to_transaction(&offsets("txn-in", 3), &metadata, TIMEOUT)
        .unwrap();
    producer.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(committed(&consumer, "txn-in"), Offset::Offset(3));

    producer.begin_transaction().unwrap();
    send(&producer, "txn-out", &["aborted-0", "aborted-1"]);
    producer
        .send_offsets_to_transaction(&offsets("txn-in", 5), &metadata, TIMEOUT)
        .unwrap();
    producer.abort_transaction(TIMEOUT).unwrap();
    // The aborted transaction's offsets are discarded.
    assert_eq!(committed(&consumer, "txn-in"), Offset::Offset(3));

    producer.begin_transaction().unwrap();
    send(&producer, "txn-out", &["committed-3"]);
    producer
        .send_offsets_to_transaction(&offsets("txn-in", 6), &metadata, TIMEOUT)
        .unwrap();
    producer.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(committed(&consumer, "txn-in"), Offset::Offset(6));

    let read_committed = read_all(&bootstrap, "txn-out", "read_committed", "committed-3");
    let read_uncommitted = read_all(&bootstrap, "txn-out", "read_uncommitted", "committed-3");
    // An observation, not a requirement: Tansu 0.6 does not hide aborted
    // records from read_committed consumers.
    eprintln!("read_committed: {read_committed:?}");
    eprintln!("read_uncommitted: {read_uncommitted:?}");
    for payload in ["committed-0", "committed-1", "committed-2", "committed-3"] {
        assert!(read_committed.iter().any(|p| p == payload), "{payload}");
    }
}
