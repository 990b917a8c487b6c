//! The process allocator: jemalloc with transparent huge pages.
//!
//! State is tens of millions of small records reached by random lookups.
//! With 4 KiB pages nearly every lookup also misses the TLB; this kernel
//! grants huge pages only to memory that asks for them (`madvise` mode), and
//! glibc's malloc never asks. jemalloc's `thp:always` does, for its own
//! extents and metadata. Measured: docs/PERFORMANCE.md#why-the-replay-target-is-missed.
//! `_RJEM_MALLOC_CONF` overrides these settings at run time.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its compiled-in options from this symbol.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"thp:always,metadata_thp:always\0";
