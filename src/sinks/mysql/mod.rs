//! MySQL / MariaDB replica sink: applies the change stream to a MySQL or MariaDB database.
//!
//! The same contract as the PostgreSQL sink (see `sinks/postgres`): whole source transactions
//! per target transaction, the position upserted into the positions table in the same
//! transaction, restart from that position when the connection drops inside a transaction.
//! Differences MySQL imposes: DDL commits implicitly, so a table is created or altered only
//! between transactions when possible (a schema change in the middle of a source transaction
//! commits what came before it — replayed as idempotent upserts after a crash at that instant);
//! TRUNCATE is DDL too, so a source truncate is applied as `DELETE FROM`.
//!
//! Statements: consecutive inserts and whole-row updates of one table become one multi-row
//! `INSERT … ON DUPLICATE KEY UPDATE`, consecutive deletes one `DELETE … WHERE (key) IN (…)`;
//! the batch goes out as one multi-statement query.

pub mod script;
pub mod values;

use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use rustc_hash::{FxHashMap, FxHashSet};

use self::script::{Part, ScriptWriter};
use self::values::{LoadColumn, load_column, target_type, write_literal};
use crate::config::{DbSinkConfig, UnreplayableSchemaChange};
use crate::error::CdcError;
use crate::model::{Batch, ChangeEvent, Position, TableId, TableSchema};
use crate::pipeline::{Ack, Sink};
use crate::sinks::row_change::classify;
use crate::sinks::{SourceEngine, batch_tables, lost_transaction, schema_change, unconfirmed_at_flush};

pub struct MySqlSink {
    name: String,
    url: String,
    config: DbSinkConfig,
    /// `db`.`table` of the positions, when the position is kept in the target.
    positions_table: Option<String>,
    /// The connection, when no script is running on it.
    conn: Option<mysql_async::Conn>,
    /// The last batch's script, running on the connection while the next one is built.
    running: Option<Running>,
    /// The `LOAD DATA` the running script ends with, still reading rows: the next batch's
    /// inserts into that table, in the same source transaction, go on in it.
    streaming: Option<Streaming>,
    /// Batches applied since the last commit with a position; acknowledged at that commit.
    open_tx: Option<Vec<Ack>>,
    /// A transaction is open on the connection (DDL ends one implicitly).
    in_transaction: bool,
    /// DDL committed part of the source transaction being applied, and the positions table says
    /// so (row `<name>#partial`) until that transaction commits: inserts of a transaction read
    /// again after a restart may then be on the target already, so they go as upserts.
    partial_committed: bool,
    plans: FxHashMap<TableId, Arc<Plan>>,
    /// The target takes `LOAD DATA LOCAL INFILE` (its `local_infile` is on).
    local_infile: bool,
    /// Source tables whose changes are no longer applied (`cdc_stopped_tables`).
    stopped: FxHashSet<TableId>,
}

/// A script running on the connection (a task of its own, so the target works on one batch
/// while the next is built), and the batches its commit acknowledges.
struct Running {
    task: tokio::task::JoinHandle<(mysql_async::Conn, Result<(), CdcError>)>,
    acks: Vec<Ack>,
}

/// The open end of a streaming `LOAD DATA`: dropping it ends the file.
struct Streaming {
    plan: Arc<Plan>,
    rows: tokio::sync::mpsc::Sender<bytes::Bytes>,
}

/// How changes of one source table are written.
pub struct Plan {
    schema: Arc<TableSchema>,
    target: String,
    columns: Vec<String>,
    /// `INSERT INTO t (…) VALUES `
    insert_head: String,
    /// ` ON DUPLICATE KEY UPDATE a = VALUES(a), …`
    upsert_tail: String,
    /// How inserts go by `LOAD DATA`, when every column can go through it.
    load: Option<LoadPlan>,
}

/// `LOAD DATA LOCAL INFILE … INTO TABLE t …`, and how each column's field is written.
pub struct LoadPlan {
    statement: String,
    columns: Vec<LoadColumn>,
}

fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The positions table as `db`.`table`: unqualified names live in database `cdc`.
pub fn positions_table_name(configured: &str) -> String {
    match configured.split_once('.') {
        Some((db, table)) => format!("{}.{}", ident(db), ident(table)),
        None => format!("`cdc`.{}", ident(configured)),
    }
}

pub fn positions_table_ddl(table: &str) -> Vec<String> {
    let db = table.split('.').next().unwrap_or("`cdc`");
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {db}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (name VARCHAR(191) PRIMARY KEY, position TEXT NOT NULL, \
             saved_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        ),
    ]
}

pub fn position_upsert(table: &str, name: &str, position: &Position) -> String {
    format!(
        "INSERT INTO {table} (name, position, saved_at) VALUES ({}, {}, CURRENT_TIMESTAMP(3)) \
         ON DUPLICATE KEY UPDATE position = VALUES(position), saved_at = VALUES(saved_at);\n",
        quote(name),
        quote(&position.to_string())
    )
}

/// The positions-table row that marks a source transaction partly committed by DDL.
fn partial_marker(name: &str) -> String {
    format!("{name}#partial")
}

/// Session settings every connection to a MySQL target gets.
pub const SESSION_SETUP: &str = "SET NAMES utf8mb4, time_zone = '+00:00', \
    sql_mode = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'";

fn sql_error(doing: &str, e: mysql_async::Error) -> CdcError {
    match e {
        mysql_async::Error::Server(s) => refused(doing, s.code, &s.message),
        other => CdcError::transient(format!("target connection while {doing}: {other}")),
    }
}

/// The error of a statement the target refused with error `code`.
fn refused(doing: &str, code: u16, message: &str) -> CdcError {
    let cause = format!("the target refused {doing}: {message} (error {code})");
    match code {
        // Lock wait timeout, deadlock, server shutting down, too many connections.
        1205 | 1213 | 1053 | 1040 => CdcError::transient(cause),
        1045 | 1044 | 1142 => CdcError::definite(cause, "check the user, password and privileges in sink.url"),
        1062 | 1451 | 1452 | 3819 | 4025 => CdcError::definite(
            cause,
            "the target table has a constraint the source does not; remove it or fix the row on the target, \
                     then restart (nothing after the last applied transaction was applied)",
        ),
        1146 | 1054 => CdcError::definite(
            cause,
            "the target table or column is missing: create it, or set sink.create_tables = true",
        ),
        1264 | 1265 | 1292 | 1366 | 1406 => {
            CdcError::definite(cause, "the target column's type cannot hold the value; widen it")
        }
        _ => CdcError::definite(cause, "see the target's message"),
    }
}

impl MySqlSink {
    pub fn new(name: &str, config: DbSinkConfig, keep_positions: bool) -> MySqlSink {
        let positions_table = keep_positions.then(|| positions_table_name(&config.positions_table));
        MySqlSink {
            name: name.to_string(),
            url: config.url.expose().to_string(),
            config,
            positions_table,
            conn: None,
            running: None,
            streaming: None,
            open_tx: None,
            in_transaction: false,
            partial_committed: false,
            local_infile: false,
            stopped: FxHashSet::default(),
            plans: FxHashMap::default(),
        }
    }

    async fn connect(&mut self) -> Result<(), CdcError> {
        if self.conn.is_some() || self.running.is_some() {
            return Ok(());
        }
        let mut conn = crate::sources::mysql::server::connect(&self.url, "sink.url").await?;
        conn.query_drop(SESSION_SETUP).await.map_err(|e| sql_error("the session settings", e))?;
        let got: Option<Option<i64>> = conn
            .query_first(format!("SELECT GET_LOCK({}, 0)", quote(&format!("cdc.{}", self.name))))
            .await
            .map_err(|e| sql_error("taking the instance lock", e))?;
        if got.flatten() != Some(1) {
            return Err(CdcError::definite(
                format!("another cdc instance named `{}` is applying to this target", self.name),
                "stop the other instance (or give this pipeline another name)",
            ));
        }
        if let Some(table) = &self.positions_table {
            for sql in positions_table_ddl(table) {
                conn.query_drop(sql).await.map_err(|e| sql_error("creating the positions table", e))?;
            }
        }
        let stopped = self.stopped_tables_table();
        for sql in [
            format!("CREATE DATABASE IF NOT EXISTS {}", stopped.split('.').next().unwrap_or("`cdc`")),
            format!(
                "CREATE TABLE IF NOT EXISTS {stopped} (name VARCHAR(191), source_namespace VARCHAR(191), \
                 source_table VARCHAR(191), reason TEXT NOT NULL, stopped_at TIMESTAMP(3) NOT NULL DEFAULT \
                 CURRENT_TIMESTAMP(3), PRIMARY KEY (name, source_namespace, source_table)) ENGINE=InnoDB \
                 DEFAULT CHARSET=utf8mb4"
            ),
        ] {
            conn.query_drop(sql).await.map_err(|e| sql_error("creating cdc_stopped_tables", e))?;
        }
        let rows: Vec<(String, String)> = conn
            .query(format!("SELECT source_namespace, source_table FROM {stopped} WHERE name = {}", quote(&self.name)))
            .await
            .map_err(|e| sql_error("reading cdc_stopped_tables", e))?;
        self.stopped = rows.into_iter().map(|(ns, t)| TableId::new(ns, t)).collect();
        self.partial_committed = false;
        if let Some(table) = &self.positions_table {
            let marker = format!("SELECT COUNT(*) FROM {table} WHERE name = {}", quote(&partial_marker(&self.name)));
            let found: Option<u64> =
                conn.query_first(marker).await.map_err(|e| sql_error("reading the positions", e))?;
            self.partial_committed = found.unwrap_or(0) > 0;
        }
        let local_infile: Option<u8> =
            conn.query_first("SELECT @@local_infile").await.map_err(|e| sql_error("reading local_infile", e))?;
        self.local_infile = local_infile == Some(1);
        if !self.local_infile {
            tracing::info!(
                "The target's local_infile is OFF: inserts go as multi-row INSERTs \
                 (SET GLOBAL local_infile = ON on the target makes initial copies faster)"
            );
        }
        schema_change::warn_stopped_tables(&self.stopped);
        self.conn = Some(conn);
        Ok(())
    }

    /// Waits for the running script (ending the file of a streaming `LOAD DATA` first);
    /// acknowledges what its commit made durable.
    async fn settle(&mut self) -> Result<(), CdcError> {
        self.streaming = None;
        let Some(running) = self.running.take() else { return Ok(()) };
        let (conn, result) =
            running.task.await.map_err(|e| CdcError::transient(format!("the task applying a batch failed: {e}")))?;
        self.conn = Some(conn);
        result?;
        running.acks.into_iter().for_each(Ack::done);
        Ok(())
    }

    /// The connection, once no script runs on it.
    async fn idle_conn(&mut self) -> Result<&mut mysql_async::Conn, CdcError> {
        self.settle().await?;
        self.conn.as_mut().ok_or_else(|| CdcError::transient("not connected to the target"))
    }

    /// After an error: a script sent before may still commit (its batches then count), then
    /// everything starts over from a new connection; a lost transaction restarts the pipeline.
    async fn after_error<T>(&mut self, result: Result<T, CdcError>) -> Result<T, CdcError> {
        let Err(e) = result else { return result };
        let _ = self.settle().await;
        self.reset();
        Err(lost_transaction(e))
    }

    fn reset(&mut self) {
        self.conn = None;
        self.running = None;
        self.streaming = None;
        self.open_tx = None;
        self.in_transaction = false;
        self.plans.clear();
        self.stopped.clear();
    }

    /// Builds the batch's script and starts it on the connection; returns its size. The batch
    /// is acknowledged once a commit that holds it succeeds.
    async fn apply(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        self.connect().await?;
        // Tables first: DDL commits implicitly in MySQL, so it goes before this batch's BEGIN
        // (and, inside a source transaction spread over batches, commits what came before).
        // Only a table whose schema changes inside the batch is altered in between its rows.
        let mut first_seen = FxHashSet::default();
        for event in &batch.events {
            if first_seen.insert(event.table.id.clone())
                && !self.stopped.contains(&event.table.id)
                && !self.has_plan_for(event)
                && self.refused_change(event).is_none()
            {
                let previous = self.plans.get(&event.table.id).map(|p| (*p.schema).clone());
                let plan = self.prepare(event, previous.as_ref()).await?;
                self.plans.insert(event.table.id.clone(), Arc::new(plan));
            }
        }
        // Inserts go through LOAD DATA only when none can be a replay: a row already there is
        // then a conflict to report, not one to overwrite.
        let load_inserts = self.loads_inserts() && !batch.may_repeat && !self.partial_committed;
        let mut script = ScriptWriter::new(load_inserts);
        let mut bytes = 0u64;
        for event in &batch.events {
            if self.stopped.contains(&event.table.id) {
                continue;
            }
            if !self.has_plan_for(event) {
                if let Some(refused) = self.refused_change(event) {
                    // Recorded in the transaction that holds the table's last applied change.
                    schema_change::log_stopped_table(&event.table.id, &refused);
                    self.begin(&mut script);
                    script.push_sql(&format!(
                        "INSERT IGNORE INTO {} (name, source_namespace, source_table, reason) VALUES ({}, {}, {}, {});\n",
                        self.stopped_tables_table(),
                        quote(&self.name),
                        quote(&event.table.id.namespace),
                        quote(&event.table.id.name),
                        quote(&refused.cause)
                    ));
                    self.stopped.insert(event.table.id.clone());
                    continue;
                }
                // The schema changed between rows of this batch: the rows so far go out under
                // the schema they were written with, then the table is altered.
                let conn = self.idle_conn().await?;
                bytes += run_script(conn, script.take(), &batch_tables(batch)).await?;
                let previous = self.plans.get(&event.table.id).map(|p| (*p.schema).clone());
                let plan = self.prepare(event, previous.as_ref()).await?;
                self.plans.insert(event.table.id.clone(), Arc::new(plan));
            }
            self.begin(&mut script);
            let Some(plan) = self.plans.get(&event.table.id).cloned() else { continue };
            script.add(classify(event)?, &plan).map_err(|e| {
                CdcError::definite(
                    format!("cannot write a change of {} to {}: {}", event.table.id, plan.target, e.0),
                    "create the target column with a type that holds it (see docs/replica.md)",
                )
            })?;
        }
        if let Some(position) = &batch.checkpoint {
            self.begin(&mut script);
            if let Some(table) = &self.positions_table {
                script.push_sql(&position_upsert(table, &self.name, position));
                if std::mem::take(&mut self.partial_committed) {
                    script.push_sql(&format!(
                        "DELETE FROM {table} WHERE name = {};\n",
                        quote(&partial_marker(&self.name))
                    ));
                }
            }
            script.push_sql("COMMIT;\n");
            self.in_transaction = false;
        }
        let mut script = script.take();
        bytes += script_bytes(&script);
        // Inserts that go on with the LOAD DATA streaming in the running script.
        let continues = matches!((&self.streaming, script.first()),
            (Some(streaming), Some(Part::Load { plan, .. })) if Arc::ptr_eq(&streaming.plan, plan));
        if continues && let Part::Load { data, .. } = script.remove(0) {
            let sent = match &self.streaming {
                Some(streaming) => streaming.rows.send(bytes::Bytes::from(data)).await.is_ok(),
                None => false,
            };
            if !sent {
                // The load ended early: its error says why.
                self.settle().await?;
                return Err(CdcError::transient("the streaming LOAD DATA ended before its rows"));
            }
        }
        if script.is_empty() && batch.checkpoint.is_none() {
            self.open_tx.get_or_insert_with(Vec::new).push(ack);
            return Ok(bytes);
        }
        let tables = batch_tables(batch);
        self.idle_conn().await?;
        // Inside a source transaction, a LOAD DATA ending the script stays open for the next
        // batch's rows: one statement keeps the target busy, where one per batch leaves it idle
        // between them.
        if batch.checkpoint.is_none()
            && let Some(Part::Load { plan, .. }) = script.last()
        {
            let plan = plan.clone();
            let (rows, file) = tokio::sync::mpsc::channel(4);
            if let Some(Part::Load { data, .. }) = script.pop() {
                let _ = rows.try_send(bytes::Bytes::from(data));
            }
            script.push(Part::StreamingLoad { plan: plan.clone(), file });
            self.streaming = Some(Streaming { plan, rows });
        }
        let mut conn = self.conn.take().ok_or_else(|| CdcError::transient("not connected to the target"))?;
        let mut acks = self.open_tx.take().unwrap_or_default();
        acks.push(ack);
        if batch.checkpoint.is_none() {
            self.open_tx = Some(acks);
            acks = Vec::new();
        }
        let task = tokio::spawn(async move {
            let result = run_script(&mut conn, script, &tables).await.map(|_| ());
            (conn, result)
        });
        self.running = Some(Running { task, acks });
        Ok(bytes)
    }

    /// Opens a transaction in the script unless one is open.
    fn begin(&mut self, script: &mut ScriptWriter) {
        if !self.in_transaction {
            script.push_sql("START TRANSACTION;\n");
            self.in_transaction = true;
        }
    }

    /// For an event whose schema differs from its table's plan: the change, when cdc cannot
    /// replay it and the table is to be stopped rather than the pipeline.
    fn refused_change(&self, event: &ChangeEvent) -> Option<CdcError> {
        if self.config.unreplayable_schema_change != UnreplayableSchemaChange::StopTable {
            return None;
        }
        let old = &self.plans.get(&event.table.id)?.schema;
        let engine = SourceEngine::of(&event.source.meta);
        schema_change::diff(old, &event.table, |a, b| target_type(a, engine, false) == target_type(b, engine, false))
            .err()
    }

    fn stopped_tables_table(&self) -> String {
        positions_table_name(&schema_change::stopped_tables_table(&self.config.positions_table))
    }

    /// Whether the table's plan was prepared for the schema this event was written under.
    fn has_plan_for(&self, event: &ChangeEvent) -> bool {
        self.plans
            .get(&event.table.id)
            .is_some_and(|p| Arc::ptr_eq(&p.schema, &event.table) || *p.schema == *event.table)
    }

    async fn prepare(&mut self, event: &ChangeEvent, previous: Option<&TableSchema>) -> Result<Plan, CdcError> {
        let schema = &event.table;
        let engine = SourceEngine::of(&event.source.meta);
        let db = self.config.target_namespace(&schema.id.namespace).to_string();
        let target = format!("{}.{}", ident(&db), ident(&schema.id.name));
        let create_tables = self.config.create_tables;
        // DDL commits the open transaction: when that holds part of a source transaction, a row
        // in it says so (see `partial_committed`).
        let partial_marker = match &self.positions_table {
            Some(table) if self.in_transaction => Some(format!(
                "INSERT INTO {table} (name, position) VALUES ({}, 'a source transaction partly committed by DDL') \
                 ON DUPLICATE KEY UPDATE position = VALUES(position)",
                quote(&partial_marker(&self.name))
            )),
            _ => None,
        };
        let conn = self.idle_conn().await?;
        let mut target_columns = read_target_columns(conn, &db, &schema.id.name).await?;
        let existing: Vec<String> = target_columns.iter().map(|(name, _)| name.clone()).collect();
        let definition = |i: usize| {
            let c = &schema.columns[i];
            let is_key = schema.key.contains(&i);
            let ty = target_type(c, engine, is_key);
            let null = if is_key || (!c.nullable && !ty.ends_with(" NULL")) { " NOT NULL" } else { "" };
            format!("{} {ty}{null}", ident(&c.name))
        };
        let mut ddl = Vec::new();
        if existing.is_empty() {
            if !create_tables {
                return Err(CdcError::definite(
                    format!("target table {db}.{} (for source table {}) does not exist", schema.id.name, schema.id),
                    "create it, or set sink.create_tables = true",
                ));
            }
            let mut defs: Vec<String> = (0..schema.columns.len()).map(definition).collect();
            if !schema.key.is_empty() {
                let key: Vec<String> = schema.key.iter().map(|&i| ident(&schema.columns[i].name)).collect();
                defs.push(format!("PRIMARY KEY ({})", key.join(",")));
            }
            ddl.push(format!("CREATE DATABASE IF NOT EXISTS {}", ident(&db)));
            ddl.push(format!(
                "CREATE TABLE {target} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                defs.join(", ")
            ));
        } else {
            let mut renamed_to = None;
            if let Some(old) = previous {
                let change = crate::sinks::schema_change::diff(old, schema, |a, b| {
                    target_type(a, engine, false) == target_type(b, engine, false)
                })?;
                if let Some((from, at)) = &change.renamed {
                    renamed_to = Some(*at);
                    let to = &schema.columns[*at].name;
                    ddl.push(format!("ALTER TABLE {target} RENAME COLUMN {} TO {}", ident(from), ident(to)));
                }
                for name in &change.dropped {
                    if existing.contains(name) {
                        ddl.push(format!("ALTER TABLE {target} DROP COLUMN {}", ident(name)));
                    }
                }
                for &i in &change.retyped {
                    ddl.push(format!("ALTER TABLE {target} MODIFY COLUMN {}", definition(i)));
                }
            }
            for (i, c) in schema.columns.iter().enumerate() {
                if !existing.contains(&c.name) && renamed_to != Some(i) {
                    // The rows already there get what the source's older rows read in the
                    // column, through a default dropped right after.
                    let mut fill = String::new();
                    match &c.existing_rows_value {
                        Some(v) if write_literal(&mut fill, v, c).is_ok() => {
                            ddl.push(format!("ALTER TABLE {target} ADD COLUMN {} DEFAULT ({fill})", definition(i)));
                            ddl.push(format!("ALTER TABLE {target} ALTER COLUMN {} DROP DEFAULT", ident(&c.name)));
                        }
                        _ => ddl.push(format!("ALTER TABLE {target} ADD COLUMN {}", definition(i))),
                    }
                }
            }
        }
        let ran_ddl = !ddl.is_empty();
        if ran_ddl && let Some(marker) = &partial_marker {
            conn.query_drop(marker).await.map_err(|e| sql_error("marking a partly committed transaction", e))?;
        }
        for sql in ddl {
            conn.query_drop(&sql).await.map_err(|e| {
                CdcError::definite(
                    format!("the target refused `{sql}`: {e}"),
                    "fix the target table by hand (or let cdc create it), then restart",
                )
            })?;
            tracing::info!(table = %target, statement = %sql, "Changed the target schema");
        }
        let columns: Vec<String> = schema.columns.iter().map(|c| ident(&c.name)).collect();
        let insert_head = format!("INSERT INTO {target} ({}) VALUES ", columns.join(","));
        let rest: Vec<String> = columns
            .iter()
            .enumerate()
            .filter(|(i, _)| !schema.key.contains(i))
            .map(|(_, c)| format!("{c} = VALUES({c})"))
            .collect();
        let upsert_tail = match (schema.key.is_empty(), rest.is_empty()) {
            (true, _) => String::new(),
            (false, true) => format!(" ON DUPLICATE KEY UPDATE {0} = {0}", columns[schema.key[0]]),
            (false, false) => format!(" ON DUPLICATE KEY UPDATE {}", rest.join(", ")),
        };
        // The types decide whether LOAD DATA fits: read again when the DDL above changed them.
        if ran_ddl {
            target_columns = read_target_columns(conn, &db, &schema.id.name).await?;
        }
        let load_columns: Option<Vec<LoadColumn>> = schema
            .columns
            .iter()
            .map(|c| {
                let (_, ty) = target_columns.iter().find(|(name, _)| name.eq_ignore_ascii_case(&c.name))?;
                load_column(c, ty)
            })
            .collect();
        let load =
            load_columns.map(|how| LoadPlan { statement: load_statement(&target, &columns, &how), columns: how });
        if ran_ddl {
            // The DDL ended the open transaction.
            self.in_transaction = false;
            self.partial_committed |= partial_marker.is_some();
        }
        let load_data = load.is_some() && self.loads_inserts();
        tracing::info!(table = %target, load_data, "Prepared target table");
        Ok(Plan { schema: schema.clone(), target, columns, insert_head, upsert_tail, load })
    }

    /// Inserts can go by LOAD DATA on this target: it takes LOCAL files, and the position is
    /// kept in it (so no insert is ever replayed over its own row, but see `partial_committed`).
    fn loads_inserts(&self) -> bool {
        self.local_infile && self.positions_table.is_some()
    }
}

/// The target table's columns, `(name, DATA_TYPE)` in their order; empty when it does not exist.
async fn read_target_columns(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> Result<Vec<(String, String)>, CdcError> {
    conn.exec(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
         ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    .await
    .map_err(|e| sql_error("reading the target table", e))
}

/// Runs a script on the target; returns its size. `tables`: the tables it writes, for errors.
async fn run_script(conn: &mut mysql_async::Conn, script: Vec<Part>, tables: &str) -> Result<u64, CdcError> {
    let bytes = script_bytes(&script);
    for part in script {
        match part {
            Part::Sql(sql) => {
                conn.query_drop(sql).await.map_err(|e| sql_error(&format!("changes of {tables}"), e))?;
            }
            Part::Load { plan, data, rows } => {
                // Packets of at most 1 MiB: the server buffers a packet whole.
                let file = bytes::Bytes::from(data);
                let chunks: Vec<std::io::Result<bytes::Bytes>> = (0..file.len())
                    .step_by(1 << 20)
                    .map(|at| Ok(file.slice(at..file.len().min(at + (1 << 20)))))
                    .collect();
                let doing = format!("{rows} rows loaded into {}", plan.target);
                load(conn, &plan, &doing, Box::pin(futures_util::stream::iter(chunks))).await?;
            }
            Part::StreamingLoad { plan, file } => {
                let chunks = futures_util::stream::unfold(file, |mut file| async move {
                    file.recv().await.map(|chunk| (Ok(chunk), file))
                });
                let doing = format!("rows loaded into {}", plan.target);
                load(conn, &plan, &doing, Box::pin(chunks)).await?;
            }
        }
    }
    Ok(bytes)
}

fn script_bytes(script: &[Part]) -> u64 {
    script
        .iter()
        .map(|p| match p {
            Part::Sql(sql) => sql.len(),
            Part::Load { data, .. } => data.len(),
            Part::StreamingLoad { .. } => 0,
        })
        .sum::<usize>() as u64
}

/// `LOAD DATA LOCAL INFILE` of a table's columns: tab-separated fields with backslash escapes
/// (spelled in hex, as the session has `NO_BACKSLASH_ESCAPES`), bytes as hex unhexed on the way.
fn load_statement(target: &str, columns: &[String], how: &[LoadColumn]) -> String {
    let mut fields = Vec::with_capacity(columns.len());
    let mut set = Vec::new();
    for (i, (column, how)) in columns.iter().zip(how).enumerate() {
        match how {
            LoadColumn::Text => fields.push(column.clone()),
            LoadColumn::Hex => {
                fields.push(format!("@cdc_{i}"));
                set.push(format!("{column} = UNHEX(@cdc_{i})"));
            }
        }
    }
    let set = if set.is_empty() { String::new() } else { format!(" SET {}", set.join(", ")) };
    format!(
        "LOAD DATA LOCAL INFILE 'cdc' INTO TABLE {target} CHARACTER SET utf8mb4 FIELDS TERMINATED BY X'09' \
         ESCAPED BY X'5C' LINES TERMINATED BY X'0A' ({}){set}",
        fields.join(",")
    )
}

/// Runs one `LOAD DATA` of `rows` rows. The server reads a LOCAL file leniently (a duplicate key
/// skips the row, a value that does not fit is cut), reporting each as a warning: a warning is
/// therefore the error the same row would have raised as an `INSERT`.
async fn load(
    conn: &mut mysql_async::Conn,
    plan: &Plan,
    doing: &str,
    file: mysql_async::InfileData,
) -> Result<(), CdcError> {
    let Some(LoadPlan { statement, .. }) = &plan.load else {
        return Err(CdcError::definite(format!("no LOAD DATA statement for {}", plan.target), "report this bug"));
    };
    // The handler must be Sync; the stream is only Send.
    let file = std::sync::Mutex::new(Some(file));
    conn.set_infile_handler(async move {
        let file = file.lock().ok().and_then(|mut f| f.take());
        file.ok_or_else(|| std::io::Error::other("the LOAD DATA file was read already").into())
    });
    conn.query_drop(statement.as_str()).await.map_err(|e| sql_error(doing, e))?;
    if conn.get_warnings() == 0 {
        return Ok(());
    }
    let warnings: Vec<(String, u16, String)> =
        conn.query("SHOW WARNINGS").await.map_err(|e| sql_error("reading LOAD DATA's warnings", e))?;
    // Notes (a decimal rounded to the column's scale) pass, as they do for an INSERT.
    match warnings.into_iter().find(|(level, ..)| level != "Note") {
        Some((_, code, message)) => Err(refused(doing, code, &message)),
        None => Ok(()),
    }
}

#[async_trait]
impl Sink for MySqlSink {
    async fn open(&mut self) -> Result<(), CdcError> {
        self.connect().await
    }

    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        let result = self.apply(batch, ack).await;
        self.after_error(result).await
    }

    async fn tick(&mut self) -> Result<(), CdcError> {
        // A finished script's commit acknowledges its batches; a running one (a LOAD DATA
        // streaming the rows of a source transaction) is left to go on.
        if self.running.as_ref().is_some_and(|r| r.task.is_finished()) {
            let result = self.settle().await;
            return self.after_error(result).await;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        if let Err(e) = self.settle().await {
            self.reset();
            return unconfirmed_at_flush(e);
        }
        // Everything up to the last checkpoint is committed; a source transaction cut off by
        // shutdown is rolled back and read again on restart.
        self.open_tx = None;
        if std::mem::take(&mut self.in_transaction)
            && let Some(conn) = self.conn.as_mut()
        {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        Ok(())
    }
}

/// `cdc check` of a MySQL/MariaDB target: reachable (and how), and writable.
pub async fn check(config: &DbSinkConfig) -> Vec<crate::sources::CheckItem> {
    use crate::sources::CheckItem::{Fail, Pass, Warn};
    use crate::sources::mysql::server;
    let url = config.url.url();
    let at = format!("{}:{}", url.host_str().unwrap_or(""), url.port().unwrap_or(3306));
    let mut conn = match server::connect(config.url.expose(), "sink.url").await {
        Ok(c) => c,
        Err(e) => return vec![Fail(format!("target at {at}: {e}"))],
    };
    let version: Option<String> = conn.query_first("SELECT VERSION()").await.ok().flatten();
    let version = version.unwrap_or_default();
    let flavor = if version.contains("MariaDB") { "MariaDB" } else { "MySQL" };
    let tls = server::transport(&mut conn).await;
    let mut items = vec![Pass(format!("target: {flavor} {version} at {at} ({tls})"))];
    let read_only: Option<u8> = conn.query_first("SELECT @@read_only").await.ok().flatten();
    if read_only == Some(1) {
        items.push(Warn(
            "target read_only is ON: only users with SUPER (MariaDB: READ ONLY ADMIN) may write; remedy: \
             SET GLOBAL read_only = OFF on the target, or grant that privilege to the cdc user"
                .into(),
        ));
    }
    let local_infile: Option<u8> = conn.query_first("SELECT @@local_infile").await.ok().flatten();
    if local_infile == Some(0) {
        items.push(Warn(
            "target local_infile is OFF: inserts (the initial copy too) go as multi-row INSERTs, not LOAD DATA; \
             remedy: SET GLOBAL local_infile = ON on the target"
                .into(),
        ));
    }
    items
}
