//! Sinks: where change events go.

mod footprint;
mod json_lines;
pub mod kafka;
pub mod mysql;
pub mod postgres;
pub mod row_change;
pub mod schema_change;

pub use json_lines::JsonLinesSink;
pub use kafka::KafkaSink;
pub use postgres::PostgresSink;

use crate::config::{Config, SinkConfig, StoreKind};
use crate::error::CdcError;
use crate::model::{Batch, Column, Row, SourceMeta, TableId, TableSchema, Value};
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

// Shared by the database replica sinks.

/// Which engine a change came from: a few type mappings depend on it (a PostgreSQL `json`
/// stays `json`, a MySQL `TIME` is a duration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceEngine {
    MySql,
    Postgres,
}

impl SourceEngine {
    pub fn of(meta: &SourceMeta) -> SourceEngine {
        match meta {
            SourceMeta::MySql { .. } => SourceEngine::MySql,
            SourceMeta::Postgres { .. } => SourceEngine::Postgres,
        }
    }
}

/// Why a value cannot be written to a target column.
#[derive(Debug)]
pub struct LiteralError(pub String);

/// How a database sink writes a value as an SQL literal of its engine.
type WriteLiteral = fn(&mut String, &Value, &Column) -> Result<(), LiteralError>;

/// `(v1,v2)` of the key columns of `row` in `schema`, each written by `write_literal`.
fn write_key_tuple(
    out: &mut String,
    schema: &TableSchema,
    row: &Row,
    write_literal: WriteLiteral,
) -> Result<(), LiteralError> {
    out.push('(');
    for (n, &i) in schema.key.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_literal(out, row.get(i).unwrap_or(&Value::Null), &schema.columns[i])?;
    }
    out.push(')');
    Ok(())
}

/// `a = v1, b = v2` for the columns `row` has a value for (not an unchanged TOAST value);
/// `idents` are the columns' quoted names.
fn write_assignments(
    out: &mut String,
    schema: &TableSchema,
    idents: &[String],
    row: &Row,
    write_literal: WriteLiteral,
) -> Result<(), LiteralError> {
    let mut first = true;
    for (i, column) in schema.columns.iter().enumerate() {
        let value = row.get(i).unwrap_or(&Value::Null);
        if matches!(value, Value::Unchanged) {
            continue;
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str(&idents[i]);
        out.push_str(" = ");
        write_literal(out, value, column)?;
    }
    Ok(())
}

/// At shutdown, the error of the last script sent to a target whose connection is gone: a
/// definite one stands; a transient one means that transaction was not confirmed, and it is
/// read again on restart.
fn unconfirmed_at_flush(e: CdcError) -> Result<(), CdcError> {
    if !e.is_transient() {
        return Err(e);
    }
    tracing::warn!(error = %e, "The last transaction sent to the target was not confirmed");
    Ok(())
}

/// The source tables of a batch (five at most), for error messages. Runs for every batch,
/// so it compares ids and formats only the few it keeps.
fn batch_tables(batch: &Batch) -> String {
    let mut tables: Vec<&TableId> = Vec::new();
    for event in &batch.events {
        if tables.len() == 5 {
            break;
        }
        if !tables.contains(&&event.table.id) {
            tables.push(&event.table.id);
        }
    }
    tables.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

/// A database sink failed with its target transaction open: whatever it held is gone, so a
/// transient failure restarts the pipeline from the position the target holds (exactly once).
fn lost_transaction(e: CdcError) -> CdcError {
    if e.is_transient() { CdcError::restart(e.cause) } else { e }
}
