//! PostgreSQL source: logical replication with the built-in pgoutput plugin.

pub mod catalog;
pub mod pgoutput;
pub mod protocol;
mod snapshot;
mod source;
mod spool;
pub mod types;

pub use source::PgSource;
