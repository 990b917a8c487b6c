//! The process allocator: jemalloc, with the kernel's own huge-page policy.
//!
//! jemalloc keeps the state's millions of small records dense and returns
//! freed memory in bulk. It does not ask for transparent huge pages
//! (`thp:default`): from 2026-11-23 to 2026-12-04 the binary asked
//! (`thp:always`), when the rules ran 13-22% faster with them. Since the
//! tables became open-addressed with lookups fetched ahead, huge pages save
//! no user time (within 4%), while each first touch of a 2 MB page is one
//! long fault: on a VM whose hypervisor takes freed memory back, 10-15 ms
//! of kernel time per page, which made a replay's CPU 1.28x and the
//! processor's CPU per event 1.11x its cost without them. Measured:
//! docs/PERFORMANCE.md#huge-pages-turned-off-tenth-session.
//! `_RJEM_MALLOC_CONF=thp:always,metadata_thp:always` asks for them again
//! at run time.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its compiled-in options from this symbol.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"thp:default,metadata_thp:disabled\0";
