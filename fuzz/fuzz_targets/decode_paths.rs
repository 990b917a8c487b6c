//! Differential fuzzing of the decoder's two paths: whenever the fast path
//! (issue, redeem and release in their common shape) takes a value, the
//! strict decoder must return the same event for it; and the decoder as a
//! whole must agree with the strict decoder on every input.

#![no_main]

use coupon_stream_core::decode::{decode, decode_strict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        decode(data, usize::MAX),
        decode_strict(data),
        "fast and strict decoding disagree"
    );
});
