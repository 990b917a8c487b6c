//! Differential fuzzing of the input scanner against serde_json: both must
//! agree on which inputs are JSON objects.

#![no_main]

use coupon_stream_core::json::scan_object;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = scan_object::<2>(data, |name| match name {
        "a" => Some(0),
        "b" => Some(1),
        _ => None,
    });
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    let theirs_object = matches!(theirs, Ok(serde_json::Value::Object(_)));
    assert_eq!(ours.is_ok(), theirs_object, "scanner and serde_json disagree");
    if let Ok(object) = ours {
        // Reading a validated member never fails or panics.
        let _ = object.get(0);
        let _ = object.get(1);
    }
});
