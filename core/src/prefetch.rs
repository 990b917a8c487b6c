//! [`prefetch`]: a hint to the processor to start fetching a value into
//! cache without waiting for it, so that a batch's cache misses overlap.
//! A hint only: it never changes what a program computes.

/// Starts fetching the cache line that holds the start of `value` into
/// every cache level. A no-op where the platform has no such hint.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: SSE, which the instruction needs, is part of every x86_64
    // processor; a prefetch reads nothing the program sees and cannot
    // fault, whatever the address, and this one comes from a reference.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
