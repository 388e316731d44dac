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
