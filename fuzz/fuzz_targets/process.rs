//! Fuzzes the whole decision step: the input is split on `\n` into
//! messages for one partition's core. Every message must get exactly one
//! decision, which must be a JSON object whose `outcome` matches the
//! verdict; nothing may panic.

#![no_main]

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision_core::{DecisionCore, KeyCheck, Message};
use coupon_stream_core::decision::Source;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut core = DecisionCore::new(CoreConfig {
        max_event_bytes: 4096,
        ..CoreConfig::default()
    });
    let mut out = Vec::new();
    for (offset, value) in data.split(|&b| b == b'\n').enumerate() {
        out.clear();
        let key_check = (offset % 3 == 0).then_some(KeyCheck {
            key: Some(b"seller-1"),
            partition_count: Some(4),
        });
        let verdict = core.process(
            &Message {
                value,
                source: Source {
                    partition: (offset % 4) as i32,
                    offset: offset as i64,
                },
                key_check,
            },
            &mut out,
        );
        let decision: serde_json::Value =
            serde_json::from_slice(&out).expect("a decision is valid JSON");
        assert_eq!(decision["outcome"], verdict.outcome.as_str());
        assert_eq!(decision["source"]["offset"], offset);
    }
});
