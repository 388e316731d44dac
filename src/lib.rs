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
