//! Broker trouble, on librdkafka's in-process mock cluster: the broker goes
//! down in the middle of a stream and comes back. The processor must wait,
//! resume, and lose nothing: every input offset gets exactly the decision
//! the core computes for it, and the run ends cleanly on shutdown.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coupon_stream::config::CoreConfig;
use coupon_stream::kafka::config::KafkaConfig;
use coupon_stream::kafka::processor;
use coupon_stream::workload::{Workload, WorkloadConfig};
use rdkafka::mocking::MockCluster;

const PARTITIONS: i32 = 2;

fn messages(workload: &mut Workload, n: usize) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let mut value = Vec::new();
    (0..n)
        .map(|_| {
            let seller = workload.next_into(&mut value);
            (
                Some(workload.seller_id(seller).as_bytes().to_vec()),
                value.clone(),
            )
        })
        .collect()
}

#[test]
fn broker_outage_mid_stream_loses_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    for topic in support::TOPICS {
        cluster.create_topic(topic, PARTITIONS, 1).unwrap();
    }
    let mut workload = Workload::new(WorkloadConfig {
        sellers: 10,
        users: 500,
        seed: 5,
        ..WorkloadConfig::default()
    });
    let first = messages(&mut workload, 300);
    support::produce(&brokers, "coupon-events", &first);

    let shutdown = Arc::new(AtomicBool::new(false));
    let config = KafkaConfig {
        brokers: brokers.clone(),
        group_id: "coupon-stream-mock".into(),
        input_topic: "coupon-events".into(),
        output_topic: "coupon-decisions".into(),
        dlq_topic: "coupon-events-dlq".into(),
        verify_partitioning: true,
        properties: vec![],
        batch_messages_max: 100,
        commit_interval_ms: 200,
        drain_timeout_ms: 30_000,
    };
    let run = {
        let shutdown = Arc::clone(&shutdown);
        std::thread::spawn(move || processor::run(config, CoreConfig::default(), &shutdown))
    };

    // Some decisions flow, then the broker disappears for a while.
    let early = support::read_all(
        &brokers,
        "coupon-decisions",
        PARTITIONS,
        50,
        Duration::from_secs(60),
    );
    assert!(early.len() >= 50, "processing started: {}", early.len());
    cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    cluster.broker_up(1).unwrap();
    let second = messages(&mut workload, 300);
    support::produce(&brokers, "coupon-events", &second);

    let total = first.len() + second.len();
    let input = support::read_all(
        &brokers,
        "coupon-events",
        PARTITIONS,
        total,
        Duration::from_secs(60),
    );
    assert_eq!(input.len(), total);
    let decisions = support::read_all(
        &brokers,
        "coupon-decisions",
        PARTITIONS,
        total,
        Duration::from_secs(120),
    );
    shutdown.store(true, Ordering::Relaxed);
    let summary = run.join().unwrap().expect("processor ends cleanly");
    assert!(summary.messages as usize >= total);

    let expected = support::expected_decisions(&input, PARTITIONS);
    let mut seen = HashMap::new();
    for d in &decisions {
        let v: serde_json::Value = serde_json::from_slice(&d.value).unwrap();
        let src = (
            v["source"]["partition"].as_i64().unwrap() as i32,
            v["source"]["offset"].as_i64().unwrap(),
        );
        assert_eq!(Some(&d.value), expected.get(&src), "decision for {src:?}");
        seen.insert(src, ());
    }
    assert_eq!(seen.len(), total, "every input offset has its decision");
}
