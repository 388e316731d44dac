//! PostgreSQL replica sink: applies the change stream to a PostgreSQL database (12–18) so it
//! stays a copy of the source tables.
//!
//! Each target transaction holds whole source transactions, in source commit order, and ends
//! with the source position written into the positions table (`positions.store = "sink"`):
//! after a crash at any instant the target holds exactly the transactions up to that
//! position, so nothing is lost and nothing is applied twice. A source transaction spread over
//! several batches stays open on the target until its last batch; if the connection drops
//! before that, the pipeline restarts from the stored position (`CdcError::restart`).
//!
//! Statements go out as SQL text with the simple query protocol, one round trip per batch
//! (see `statements.rs` for the batching and `values.rs` for the type mapping).

mod statements;
mod tables;
pub mod values;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use self::statements::StatementWriter;
use self::tables::TablePlan;
use self::values::SourceEngine;
use crate::config::DbSinkConfig;
use crate::error::CdcError;
use crate::model::{Batch, Position, SourceMeta, TableId, TableSchema};
use crate::pipeline::{Ack, Sink};
use crate::sources::postgres::protocol::{ConnectParams, PgConnection, PgError, ScriptPart, quote_literal};

pub struct PostgresSink {
    name: String,
    params: ConnectParams,
    config: DbSinkConfig,
    /// Positions table when the position is kept in the target (`positions.store = "sink"`).
    positions_table: Option<String>,
    conn: Option<PgConnection>,
    /// Batches applied in the open target transaction; acknowledged when it commits.
    open_tx: Option<Vec<Ack>>,
    /// How each source table is written, with the schema it was prepared for.
    plans: HashMap<TableId, Arc<TablePlan>>,
    /// Staging tables created on this connection (for unique names).
    stages: u32,
}

impl PostgresSink {
    pub fn new(name: &str, config: DbSinkConfig, keep_positions: bool) -> PostgresSink {
        let params = ConnectParams::from_url(config.url.url());
        let positions_table = keep_positions.then(|| config.positions_table.clone());
        PostgresSink {
            name: name.to_string(),
            params,
            config,
            positions_table,
            conn: None,
            open_tx: None,
            plans: HashMap::new(),
            stages: 0,
        }
    }

    /// Connects, fences other instances of this pipeline and prepares the positions table.
    async fn connect(&mut self) -> Result<(), CdcError> {
        if self.conn.is_some() {
            return Ok(());
        }
        let mut conn = PgConnection::connect(&self.params, false).await.map_err(|e| target_error(e, &self.params))?;
        // Literals are written for these settings; timestamps with offset +00 are exact in any zone.
        conn.query("SET standard_conforming_strings = on; SET synchronous_commit = on").await?;
        let lock = conn.query(&format!("SELECT pg_try_advisory_lock(hashtext({}))", lock_name(&self.name))).await?;
        if lock.first().and_then(|r| r.first()).cloned().flatten().as_deref() != Some("t") {
            return Err(CdcError::definite(
                format!(
                    "another cdc instance named `{}` is applying to {}:{}/{}",
                    self.name, self.params.host, self.params.port, self.params.database
                ),
                "stop the other instance (or give this pipeline another name)",
            ));
        }
        if let Some(table) = &self.positions_table {
            conn.query(&positions_table_ddl(table)).await?;
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// Forgets the connection and everything that lived in its open transaction.
    fn reset(&mut self) {
        self.conn = None;
        self.open_tx = None;
        // Tables created in a rolled-back transaction are gone: check again.
        self.plans.clear();
    }

    /// Applies a batch in the open target transaction (committing it with the position when
    /// the batch ends on a checkpoint). Returns the bytes of SQL sent.
    async fn apply(&mut self, batch: &Batch) -> Result<u64, CdcError> {
        self.connect().await?;
        let Some(conn) = self.conn.as_mut() else { return Err(CdcError::transient("not connected")) };
        if self.open_tx.is_none() {
            conn.query("BEGIN").await?;
            self.open_tx = Some(Vec::new());
        }
        let mut sent = 0;
        let mut writer = StatementWriter::new(self.positions_table.is_some());
        for event in &batch.events {
            let current = self.plans.get(&event.table.id);
            let plan = match current {
                Some(p) if Arc::ptr_eq(&p.schema, &event.table) || *p.schema == *event.table => p,
                _ => {
                    // A new table or a schema change: what is written so far was written under
                    // the old schema and goes out before the table is created or altered.
                    sent += execute(conn, &writer.take_script(), batch).await?;
                    let previous: Option<TableSchema> = current.map(|p| (*p.schema).clone());
                    let engine = match event.source.meta {
                        SourceMeta::MySql { .. } => SourceEngine::MySql,
                        SourceMeta::Postgres { .. } => SourceEngine::Postgres,
                    };
                    let namespace = self.config.target_namespace(&event.table.id.namespace);
                    self.stages += 1;
                    let plan = tables::prepare(
                        conn,
                        &event.table,
                        previous.as_ref(),
                        namespace,
                        engine,
                        self.config.create_tables,
                        &format!("cdc_stage_{}", self.stages),
                    )
                    .await?;
                    self.plans.insert(event.table.id.clone(), Arc::new(plan));
                    &self.plans[&event.table.id]
                }
            };
            writer.add(event, plan)?;
        }
        if let Some(position) = &batch.checkpoint {
            if let Some(table) = &self.positions_table {
                writer.push_sql(&position_upsert(table, &self.name, position));
            }
            writer.push_sql("COMMIT;\n");
        }
        sent += execute(conn, &writer.take_script(), batch).await?;
        Ok(sent)
    }
}

/// Sends a script (if not empty); returns its size in bytes.
async fn execute(conn: &mut PgConnection, script: &[ScriptPart], batch: &Batch) -> Result<u64, CdcError> {
    if script.is_empty() {
        return Ok(0);
    }
    let bytes = script
        .iter()
        .map(|p| match p {
            ScriptPart::Sql(s) => s.len(),
            ScriptPart::Copy { statement, data } => statement.len() + data.len(),
        })
        .sum::<usize>() as u64;
    match conn.run_script(script).await? {
        Ok(()) => Ok(bytes),
        Err(e) => Err(apply_error(&e, batch)),
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn open(&mut self) -> Result<(), CdcError> {
        self.connect().await
    }

    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        match self.apply(batch).await {
            Ok(bytes) => {
                let open = self.open_tx.get_or_insert_with(Vec::new);
                open.push(ack);
                if batch.checkpoint.is_some()
                    && let Some(acks) = self.open_tx.take()
                {
                    acks.into_iter().for_each(Ack::done);
                }
                Ok(bytes)
            }
            Err(e) => {
                self.reset();
                // Whatever the open transaction held is gone with it: exactly-once needs the
                // whole pipeline to start again from the position the target holds.
                if e.is_transient() { Err(CdcError::restart(e.cause)) } else { Err(e) }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        // Everything up to the last checkpoint is committed; a source transaction cut off by
        // shutdown is rolled back and read again on restart.
        if self.open_tx.is_some() {
            if let Some(conn) = self.conn.as_mut() {
                let _ = conn.simple_query("ROLLBACK", |_| Ok(())).await;
            }
            self.open_tx = None;
        }
        Ok(())
    }
}

fn lock_name(name: &str) -> String {
    quote_literal(&format!("cdc.{name}"))
}

pub fn positions_table_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, position text NOT NULL, \
         saved_at timestamptz NOT NULL DEFAULT now())"
    )
}

pub fn position_upsert(table: &str, name: &str, position: &Position) -> String {
    format!(
        "INSERT INTO {table} (name, position, saved_at) VALUES ({}, {}, now()) \
         ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, saved_at = EXCLUDED.saved_at;\n",
        quote_literal(name),
        quote_literal(&position.to_string())
    )
}

/// Connection failures name the target, so they are not mistaken for the source's.
fn target_error(e: CdcError, p: &ConnectParams) -> CdcError {
    let cause = format!("target {}:{}/{}: {}", p.host, p.port, p.database, e.cause);
    if e.is_transient() {
        CdcError::transient(cause)
    } else {
        CdcError::definite(cause, "check sink.url: host, port, user, password and database of the target")
    }
}

/// What the target's refusal of a batch means for the user.
fn apply_error(e: &PgError, batch: &Batch) -> CdcError {
    let mut tables: Vec<String> = batch.events.iter().map(|ev| ev.table.id.to_string()).collect();
    tables.dedup();
    tables.truncate(5);
    let about = match &e.table {
        Some(t) => format!("target table {t}"),
        None => format!("changes of {}", tables.join(", ")),
    };
    let cause = format!("the target refused {about}: {e}");
    let class = e.code.get(..2).unwrap_or("");
    match (class, e.code.as_str()) {
        ("08", _) | (_, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03") => {
            CdcError::transient(cause)
        }
        ("23", _) => CdcError::definite(
            cause,
            "the target table has a constraint the source does not; remove it or fix the row on the target, \
             then restart (nothing after the last applied transaction was applied)",
        ),
        (_, "42P10") => CdcError::definite(
            cause,
            "the target table needs a primary key or unique index on the source table's key columns",
        ),
        (_, "42P01" | "42703") => CdcError::definite(
            cause,
            "the target table or column is missing: create it, or set sink.create_tables = true",
        ),
        ("22", _) => CdcError::definite(cause, "the target column's type cannot hold the value; widen it"),
        ("42", _) => {
            CdcError::definite(cause, "the target table does not match the source; see docs/replica.md for the mapping")
        }
        _ => CdcError::definite(cause, "see the target's message"),
    }
}
