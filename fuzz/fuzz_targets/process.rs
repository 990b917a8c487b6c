//! Fuzzes the whole decision step: the input is split on `\n` into
//! messages for one partition's core. Every message must get exactly one
//! decision, which must be a JSON object whose `outcome` matches the
//! verdict; nothing may panic. The same messages through
//! `DecisionCore::process_batch` (as the Kafka processor and `replay`
//! decide them) must give the same decisions, byte for byte.

#![no_main]

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, KeyCheck, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = CoreConfig {
        max_event_bytes: 4096,
        ..CoreConfig::default()
    };
    let messages: Vec<Message<'_>> = data
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(offset, value)| Message {
            value,
            source: Source {
                partition: (offset % 4) as i32,
                offset: offset as i64,
            },
            key_check: (offset % 3 == 0).then_some(KeyCheck {
                key: Some(b"seller-1"),
                partition_count: Some(4),
            }),
        })
        .collect();
    let mut core = DecisionCore::new(config);
    let mut out = Vec::new();
    let mut decided = Vec::new();
    for (offset, message) in messages.iter().enumerate() {
        out.clear();
        let verdict = core.process(message, &mut out);
        let decision: serde_json::Value =
            serde_json::from_slice(&out).expect("a decision is valid JSON");
        assert_eq!(decision["outcome"], verdict.outcome.as_str());
        assert_eq!(decision["source"]["offset"], offset);
        decided.extend_from_slice(&out);
    }
    let mut batched = Vec::new();
    let mut core = DecisionCore::new(config);
    let mut count = 0;
    let result: Result<(), ()> = core.process_batch(&messages, &mut batched, |i, _, _| {
        assert_eq!(i, count);
        count += 1;
        Ok(())
    });
    assert_eq!(result, Ok(()));
    assert_eq!(count, messages.len());
    assert!(
        batched == decided,
        "batched decisions differ from one by one"
    );
});
