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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;

use self::statements::StatementWriter;
use self::tables::TablePlan;
use crate::config::{DbSinkConfig, UnreplayableSchemaChange};
use crate::error::CdcError;
use crate::model::{Batch, Op, Position, TableId, TableSchema};
use crate::pipeline::{Ack, Sink};
use crate::sinks::{SourceEngine, batch_tables, lost_transaction, schema_change};
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
    in_flight: Option<InFlight>,
    /// How each source table is written, with the schema it was prepared for.
    plans: HashMap<TableId, Arc<TablePlan>>,
    /// Staging tables created on this connection (for unique names).
    stages: u32,
    /// `ADD PRIMARY KEY` of tables created for an initial copy, run when the copy of that
    /// table is over (or before any other change to it).
    deferred_keys: HashMap<TableId, String>,
    /// Source tables whose changes are no longer applied (`cdc_stopped_tables`).
    stopped: HashSet<TableId>,
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
            in_flight: None,
            plans: HashMap::new(),
            stages: 0,
            deferred_keys: HashMap::new(),
            stopped: HashSet::new(),
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
        let stopped = schema_change::stopped_tables_table(&self.config.positions_table);
        conn.query(&format!(
            "CREATE TABLE IF NOT EXISTS {stopped} (name text, source_namespace text, source_table text, \
             reason text NOT NULL, stopped_at timestamptz NOT NULL DEFAULT now(), \
             PRIMARY KEY (name, source_namespace, source_table))"
        ))
        .await?;
        let rows = conn
            .query(&format!(
                "SELECT source_namespace, source_table FROM {stopped} WHERE name = {}",
                quote_literal(&self.name)
            ))
            .await?;
        self.stopped =
            rows.into_iter().filter_map(|r| Some(TableId::new(r.first()?.clone()?, r.get(1)?.clone()?))).collect();
        schema_change::warn_stopped_tables(&self.stopped);
        self.conn = Some(conn);
        Ok(())
    }

    /// Forgets the connection and everything that lived in its open transaction.
    fn reset(&mut self) {
        self.conn = None;
        self.open_tx = None;
        self.in_flight = None;
        // Tables created in a rolled-back transaction are gone: check again.
        self.plans.clear();
        self.deferred_keys.clear();
        self.stopped.clear();
    }

    /// After a failure: forget the connection and what its transaction held.
    fn after_error<T>(&mut self, result: Result<T, CdcError>) -> Result<T, CdcError> {
        result.map_err(|e| {
            self.reset();
            lost_transaction(e)
        })
    }

    fn conn(&mut self) -> Result<&mut PgConnection, CdcError> {
        self.conn.as_mut().ok_or_else(|| CdcError::transient("not connected to the target"))
    }

    /// Reads the results of the script in flight; acknowledges the batches it committed.
    async fn settle(&mut self) -> Result<(), CdcError> {
        let Some(flight) = self.in_flight.take() else { return Ok(()) };
        match self.conn()?.read_script_results(flight.parts).await? {
            Ok(()) => {
                flight.committed.into_iter().flatten().for_each(Ack::done);
                Ok(())
            }
            Err(e) => Err(apply_error(&e, &flight.tables)),
        }
    }

    /// Writes a batch into the open target transaction (committing it with the position when
    /// the batch ends on a checkpoint). The script is sent before the previous one's results
    /// are read, so the target works on one batch while the next is prepared. Returns the
    /// bytes sent.
    async fn apply(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        self.connect().await?;
        let tables = batch_tables(batch);
        let mut sent = 0;
        // Inserts go in by plain COPY only when none can be a repeat: the position is kept
        // here (nothing applied is read again) and the batch is not streamed again after a
        // resumed snapshot.
        let plain_copy = self.positions_table.is_some() && !batch.may_repeat;
        let mut writer = StatementWriter::new(plain_copy);
        if self.open_tx.is_none() {
            writer.push_sql("BEGIN;\n");
            self.open_tx = Some(Vec::new());
        }
        for event in &batch.events {
            if self.stopped.contains(&event.table.id) {
                continue;
            }
            let current = self.plans.get(&event.table.id);
            if !current.is_some_and(|p| Arc::ptr_eq(&p.schema, &event.table) || *p.schema == *event.table) {
                if let Some(old) = current.map(|p| p.schema.clone())
                    && self.config.unreplayable_schema_change == UnreplayableSchemaChange::StopTable
                    && let Err(refused) = tables::replayable(&old, &event.table, SourceEngine::of(&event.source.meta))
                {
                    // Recorded in the transaction that holds the table's last applied change.
                    schema_change::log_stopped_table(&event.table.id, &refused);
                    writer.push_sql(&format!(
                        "INSERT INTO {} (name, source_namespace, source_table, reason) VALUES ({}, {}, {}, {}) \
                         ON CONFLICT DO NOTHING;\n",
                        schema_change::stopped_tables_table(&self.config.positions_table),
                        quote_literal(&self.name),
                        quote_literal(&event.table.id.namespace),
                        quote_literal(&event.table.id.name),
                        quote_literal(&refused.cause)
                    ));
                    self.stopped.insert(event.table.id.clone());
                    continue;
                }
                // A new table or a schema change: what is written so far was written under the
                // old schema and goes out before the table is created or altered.
                let previous: Option<TableSchema> = current.map(|p| (*p.schema).clone());
                self.settle().await?;
                let script = writer.take_script();
                sent += script_bytes(&script);
                if let Err(e) = self.conn()?.run_script(&script).await? {
                    return Err(apply_error(&e, &tables));
                }
                let engine = SourceEngine::of(&event.source.meta);
                self.stages += 1;
                let stage = format!("cdc_stage_{}", self.stages);
                let namespace = self.config.target_namespace(&event.table.id.namespace).to_string();
                let create = self.config.create_tables;
                // Only rows that go in by plain COPY can wait for the key (upserts need it).
                let defer_key = event.op == Op::Read && plain_copy;
                let conn = self.conn()?;
                let how = tables::Preparation { namespace: &namespace, engine, create, defer_key, stage: &stage };
                let (plan, deferred_key) = tables::prepare(conn, &event.table, previous.as_ref(), &how).await?;
                self.plans.insert(event.table.id.clone(), Arc::new(plan));
                if let Some(sql) = deferred_key {
                    self.deferred_keys.insert(event.table.id.clone(), sql);
                }
            }
            if (event.op != Op::Read || !plain_copy)
                && let Some(sql) = self.deferred_keys.remove(&event.table.id)
            {
                writer.push_sql(&format!("{sql};\n"));
            }
            // Prepared just above.
            let Some(plan) = self.plans.get(&event.table.id) else { continue };
            writer.add(event, plan)?;
        }
        if let Some(position) = &batch.checkpoint {
            // Tables whose copy is over get their key in the transaction that completes it.
            let progress = position.snapshot_progress();
            let done: Vec<TableId> =
                self.deferred_keys.keys().filter(|t| !progress.is_some_and(|p| p.is_reading(t))).cloned().collect();
            for table in done {
                if let Some(sql) = self.deferred_keys.remove(&table) {
                    writer.push_sql(&format!("{sql};\n"));
                }
            }
            if let Some(table) = &self.positions_table {
                writer.push_sql(&position_upsert(table, &self.name, position));
            }
            writer.push_sql("COMMIT;\n");
        }
        let script = writer.take_script();
        sent += script_bytes(&script);
        self.conn()?.send_script(&script).await?;
        self.settle().await?;
        let open = self.open_tx.get_or_insert_with(Vec::new);
        open.push(ack);
        let committed = if batch.checkpoint.is_some() { self.open_tx.take() } else { None };
        self.in_flight = Some(InFlight { parts: script.len(), tables, committed });
        Ok(sent)
    }
}

/// A script sent to the target whose results are not read yet.
struct InFlight {
    parts: usize,
    /// Source tables of its batch, for error messages.
    tables: String,
    /// The batches of the transaction it commits, if it does.
    committed: Option<Vec<Ack>>,
}

fn script_bytes(script: &[ScriptPart]) -> u64 {
    script
        .iter()
        .map(|p| match p {
            ScriptPart::Sql(s) => s.len(),
            ScriptPart::Copy { statement, data } => statement.len() + data.len(),
        })
        .sum::<usize>() as u64
}

#[async_trait]
impl Sink for PostgresSink {
    async fn open(&mut self) -> Result<(), CdcError> {
        self.connect().await
    }

    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        let result = self.apply(batch, ack).await;
        self.after_error(result)
    }

    async fn tick(&mut self) -> Result<(), CdcError> {
        let result = self.settle().await;
        self.after_error(result)
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        if let Err(e) = self.settle().await {
            self.reset();
            if !e.is_transient() {
                return Err(e);
            }
            // Not committed, not acknowledged: read again on restart.
            tracing::warn!(error = %e, "The last transaction sent to the target was not confirmed");
            return Ok(());
        }
        // Everything up to the last checkpoint is committed; a source transaction cut off by
        // shutdown is rolled back and read again on restart.
        if self.open_tx.take().is_some()
            && let Some(conn) = self.conn.as_mut()
        {
            let _ = conn.simple_query("ROLLBACK", |_| Ok(())).await;
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
fn apply_error(e: &PgError, tables: &str) -> CdcError {
    let about = match &e.table {
        Some(t) => format!("target table {t}"),
        None => format!("changes of {tables}"),
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
