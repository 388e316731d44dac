//! Sinks: where change events go.

mod json_lines;
pub mod kafka;
pub mod mysql;
pub mod postgres;
pub mod schema_change;

pub use json_lines::JsonLinesSink;
pub use kafka::KafkaSink;
pub use postgres::PostgresSink;

use crate::config::{Config, SinkConfig, StoreKind};
use crate::error::CdcError;
use crate::pipeline::Sink;

/// Builds the configured sink.
pub fn build(config: &Config) -> Result<Box<dyn Sink>, CdcError> {
    match &config.sink {
        SinkConfig::Stdout(_) => Ok(Box::new(JsonLinesSink::stdout(&config.name))),
        SinkConfig::File(f) => Ok(Box::new(JsonLinesSink::file(&config.name, &f.path, f.fsync)?)),
        SinkConfig::Kafka(k) => Ok(Box::new(KafkaSink::new(&config.name, k, &config.positions_topic())?)),
        SinkConfig::Postgres(d) => {
            Ok(Box::new(PostgresSink::new(&config.name, d.clone(), config.positions.store == StoreKind::Sink)))
        }
        SinkConfig::Mysql(d) => {
            Ok(Box::new(mysql::MySqlSink::new(&config.name, d.clone(), config.positions.store == StoreKind::Sink)))
        }
    }
}
