//! cdc: change data capture from MySQL/MariaDB binlogs and PostgreSQL logical replication
//! into one change-event model, delivered to stdout, files, Kafka or another database.

pub mod admin;
pub mod config;
pub mod error;
pub mod format;
pub mod model;
pub mod pipeline;
pub mod positions;
pub mod sinks;
pub mod sources;
pub mod verify;

/// mimalloc instead of glibc's malloc: the pipeline allocates and frees a few small values per
/// row, and glibc spent a third of the copy path's CPU there (docs/decisions.md). Declared in
/// the library so the binary, the benchmarks and the tests all run with it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's runtime options (`mi_option_e` of the bundled mimalloc 2).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Makes mimalloc give memory back at once: by default it keeps freed pages committed, and a
/// drain PostgreSQL → stdout peaked at 85 MB RSS (mimalloc 3) against 20 MB with glibc's
/// malloc; 24–26 MB with these settings (docs/decisions.md). Called first thing by the binary.
pub fn return_freed_memory_promptly() {
    const EAGER_COMMIT: std::ffi::c_int = 3;
    const ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
    // SAFETY: plain setters of integer options, valid to call at any time.
    unsafe {
        mi_option_set(EAGER_COMMIT, 0);
        mi_option_set(ARENA_EAGER_COMMIT, 0);
    }
    keep_freed_memory_for_ms(0);
}

/// How long mimalloc keeps freed memory before giving it back (0: at once). Given back at once,
/// the next allocations fault the pages in again, zeroed: 15 % of cdc's CPU in a MariaDB snapshot.
/// 10 ms saved 7–27 % of cdc's CPU on snapshots and 14 % on a PostgreSQL replica for 3–15 MB,
/// but cost the Kafka sink 20 MB and gained it nothing (docs/benchmarks.md, session 13).
pub fn keep_freed_memory_for_ms(ms: std::ffi::c_long) {
    const PURGE_DELAY: std::ffi::c_int = 15;
    // SAFETY: a plain setter of an integer option, valid to call at any time.
    unsafe { mi_option_set(PURGE_DELAY, ms) }
}
