//! Initial snapshot: every selected table read in consistent transactions of one instant, with
//! the binlog position of exactly that instant, so streaming continues with no gap and no
//! duplicate. `snapshot_connections` readers each take the next table from a queue; one merge
//! step turns their chunks into batches (`SnapshotBatcher`, shared with PostgreSQL).
//!
//! Locks: on MariaDB none — `START TRANSACTION WITH CONSISTENT SNAPSHOT` plus the
//! `binlog_snapshot_file/position` status variables give the position of each reader's
//! snapshot, and they are opened again until all are equal. On MySQL a global read lock
//! (`FLUSH TABLES WITH READ LOCK`, needs RELOAD) is held only while the readers' transactions
//! start and the position is read, then released before any row is read.
//!
//! Tables are read in primary-key order, in chunks of `snapshot_chunk_rows` (one query each,
//! all in the reader's transaction). After each chunk the next batch carries a checkpoint: the
//! snapshot's position plus how far it got (`SnapshotProgress`: table and last key delivered).
//! After a crash the snapshot goes on from there in a new consistent read (no lock needed: its
//! position is not used) and streaming then starts at the original snapshot position. Rows
//! read in the second part are newer than that position, so the changes between the two reads
//! come again from the binlog: at-least-once, converging to the same state. A table without a
//! primary key is read in one query and, if interrupted, read again whole.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::ddl::ColumnDecl;
use super::schema_history::TableDef;
use super::server::{ServerFacts, connect, current_position, mariadb_gtid_at, sql_err};
use crate::error::CdcError;
use crate::format::debezium::days_from_civil;
use crate::model::{
    Batch, BinlogCoordinates, ChangeEvent, Column, ColumnType, MySqlPosition, Op, Position, SnapshotMarker, SourceInfo,
    SourceMeta, TableId, TableSchema, Value,
};
use crate::pipeline::SourceContext;
use crate::sources::filter::TableFilter;
use crate::sources::snapshot::{SnapshotBatcher, SnapshotChunk, TableQueue, TableRead};

const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// What to read and how.
pub struct SnapshotPlan<'a> {
    pub filter: &'a TableFilter,
    pub batch_events: usize,
    pub chunk_rows: usize,
    /// Tables read at the same time, each on its own connection.
    pub connections: usize,
    /// An interrupted snapshot to go on with: its position carries the progress.
    pub resume: Option<MySqlPosition>,
}

/// Attempts at opening every reader's snapshot at one binlog position on MariaDB before the
/// snapshot makes do with one connection.
const SAME_POSITION_ATTEMPTS: usize = 10;

/// Runs the snapshot; returns the position to stream from and, after a resume, a position at
/// or after the resumed read's start; `None` if shut down.
pub async fn run(
    url: &str,
    facts: &ServerFacts,
    plan: SnapshotPlan<'_>,
    out: &mpsc::Sender<Batch>,
    ctx: &SourceContext,
) -> Result<Option<(MySqlPosition, Option<MySqlPosition>)>, CdcError> {
    let q = |doing: &'static str| sql_err(doing);
    let mut first = reader_connection(url).await?;
    let no_backslash_escapes = first
        .query_first::<String, _>("SELECT @@SESSION.sql_mode")
        .await
        .map_err(q("reading sql_mode"))?
        .is_some_and(|m| m.contains("NO_BACKSLASH_ESCAPES"));
    let tables = list_tables(&mut first, plan.filter).await?;
    let resume = plan.resume.and_then(|mut p| p.snapshot.take().map(|progress| (p, progress)));
    let mut conns = vec![first];
    for _ in 1..plan.connections.clamp(1, tables.len().max(1)) {
        conns.push(reader_connection(url).await?);
    }
    let (position, resumed_at) = match &resume {
        Some((position, progress)) => {
            for conn in &mut conns {
                start_snapshot(conn).await?;
            }
            // Read after every reader's snapshot began: at or past them, which is all the stream
            // needs to know.
            let resumed_at = current_position(&mut conns[0], facts).await?;
            tracing::info!(position = %Position::MySql(position.clone()), table = %format!("{}.{}", progress.table.0, progress.table.1), "Snapshot resumed");
            (position.clone(), Some(resumed_at))
        }
        None if facts.mariadb => (begin_at_one_position(&mut conns).await?, None),
        None => {
            // Commits wait while the lock is held: every reader's snapshot and the position are
            // of one instant.
            conns[0]
                .query_drop("FLUSH TABLES WITH READ LOCK")
                .await
                .map_err(q("taking the global read lock for the snapshot"))?;
            for conn in &mut conns {
                start_snapshot(conn).await?;
            }
            let p = current_position(&mut conns[0], facts).await;
            conns[0].query_drop("UNLOCK TABLES").await.map_err(q("releasing the global read lock"))?;
            (p?, None)
        }
    };
    let ts_ms = crate::model::now_ms();
    let mut batcher = SnapshotBatcher::new(
        tables,
        Position::MySql(position.clone()),
        resume.as_ref().map(|(_, p)| p),
        plan.chunk_rows,
        ts_ms,
    );
    let queue = Arc::new(TableQueue::new(batcher.to_read()));
    if resume.is_none() {
        tracing::info!(tables = batcher.tables().len(), position = %Position::MySql(position.clone()), connections = conns.len(), "Snapshot started");
    }
    let file: Arc<str> = Arc::from(position.binlog.as_ref().map_or("", |b| b.file.as_str()));
    let pos = position.binlog.as_ref().map_or(0, |b| b.pos);
    let template = SourceInfo {
        ts_ms,
        snapshot: SnapshotMarker::Yes,
        meta: SourceMeta::MySql {
            server_id: facts.server_id,
            gtid: None,
            file,
            pos,
            row: 0,
            thread: None,
            query: None,
        },
    };
    // Room for one chunk per reader: readers stay at most a chunk ahead of the pipeline.
    let (chunks_tx, mut chunks) = mpsc::channel::<Result<SnapshotChunk, CdcError>>(conns.len());
    let mut tasks = JoinSet::new();
    for conn in conns {
        let reader = Reader {
            queue: queue.clone(),
            chunks: chunks_tx.clone(),
            batch_events: plan.batch_events,
            chunk_rows: plan.chunk_rows,
            no_backslash_escapes,
            template: template.clone(),
        };
        tasks.spawn(async move {
            let chunks = reader.chunks.clone();
            if let Err(e) = reader.run(conn).await {
                let _ = chunks.send(Err(e)).await;
            }
        });
    }
    drop(chunks_tx);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk?;
        if ctx.shutdown.is_cancelled() {
            return Ok(None);
        }
        if let Some(batch) = batcher.push(chunk, &ctx.status)
            && out.send(batch).await.is_err()
        {
            return Ok(None);
        }
    }
    if ctx.shutdown.is_cancelled() || out.send(batcher.finish(&ctx.status)?).await.is_err() {
        return Ok(None);
    }
    Ok(Some((position, resumed_at)))
}

/// A connection for reading the snapshot: UTC, repeatable read.
async fn reader_connection(url: &str) -> Result<mysql_async::Conn, CdcError> {
    let mut conn = connect(url, "source.url").await?;
    let q = |doing: &'static str| sql_err(doing);
    conn.query_drop("SET SESSION time_zone = '+00:00'").await.map_err(q("setting the session time zone"))?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.map_err(q("setting isolation"))?;
    Ok(conn)
}

async fn start_snapshot(conn: &mut mysql_async::Conn) -> Result<(), CdcError> {
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT").await.map_err(sql_err("starting the snapshot"))
}

/// MariaDB: opens every connection's snapshot without a lock and returns their position.
/// Each snapshot comes with the binlog position it matches (`binlog_snapshot_file/position`);
/// when all readers report the same one, no commit came between them and they see one state.
/// The snapshots are opened at the same time, and again while a commit falls between them.
/// If commits keep coming between them, the snapshot goes on with the first connection alone.
async fn begin_at_one_position(conns: &mut Vec<mysql_async::Conn>) -> Result<MySqlPosition, CdcError> {
    let q = |doing: &'static str| sql_err(doing);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if attempt == SAME_POSITION_ATTEMPTS && conns.len() > 1 {
            tracing::warn!(
                attempts = attempt - 1,
                "Commits kept coming between the snapshot's connections: the snapshot is read with one connection"
            );
            conns.truncate(1);
        }
        // All at once: a commit can only fall between them in the moment they take to arrive.
        futures_util::future::try_join_all(conns.iter_mut().map(start_snapshot)).await?;
        let mut positions = Vec::with_capacity(conns.len());
        for conn in conns.iter_mut() {
            let rows: Vec<(String, String)> =
                conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await.map_err(q("reading the snapshot position"))?;
            let get = |k: &str| rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
            let file = get("binlog_snapshot_file").unwrap_or_default();
            let pos: u64 = get("binlog_snapshot_position").and_then(|p| p.parse().ok()).unwrap_or(4);
            positions.push((file, pos));
        }
        if positions.windows(2).all(|w| w[0] == w[1]) {
            let (file, pos) = positions.swap_remove(0);
            let gtid_set = mariadb_gtid_at(&mut conns[0], &file, pos).await?;
            return Ok(MySqlPosition { gtid_set, binlog: Some(BinlogCoordinates { file, pos }), snapshot: None });
        }
        tracing::debug!(attempt, ?positions, "A commit came between the snapshot's connections: opening them again");
        for conn in conns.iter_mut() {
            conn.query_drop("ROLLBACK").await.map_err(q("restarting the snapshot"))?;
        }
    }
}

/// One connection reading tables from the queue until it is empty.
struct Reader {
    queue: Arc<TableQueue>,
    chunks: mpsc::Sender<Result<SnapshotChunk, CdcError>>,
    batch_events: usize,
    chunk_rows: usize,
    no_backslash_escapes: bool,
    template: SourceInfo,
}

impl Reader {
    async fn run(self, mut conn: mysql_async::Conn) -> Result<(), CdcError> {
        while let Some(table) = self.queue.next()? {
            if !self.read_table(&mut conn, table).await? {
                return Ok(());
            }
        }
        // Read-only: a server that ended the session while it waited costs nothing.
        let _ = conn.query_drop("COMMIT").await;
        Ok(())
    }

    /// Sends one table's rows in chunks of `batch_events`, one query per `chunk_rows` rows in
    /// key order (a table without a key: one query); `false` once nobody listens.
    async fn read_table(&self, conn: &mut mysql_async::Conn, table: TableRead) -> Result<bool, CdcError> {
        let q = |doing: &'static str| sql_err(doing);
        let id = &table.id;
        let schema = Arc::new(table_schema(conn, id).await?);
        let key = &schema.key;
        let table_sql = format!("`{}`.`{}`", id.namespace.replace('`', "``"), id.name.replace('`', "``"));
        let key_names: Vec<String> =
            key.iter().map(|&k| format!("`{}`", schema.columns[k].name.replace('`', "``"))).collect();
        let mut after = table.after.filter(|_| !key.is_empty());
        let mut events: Vec<ChangeEvent> = Vec::with_capacity(self.batch_events);
        loop {
            let sql = if key.is_empty() {
                format!("SELECT * FROM {table_sql}")
            } else {
                let range = match &after {
                    Some(values) => {
                        format!(
                            " WHERE {}",
                            after_key_condition(&schema, &key_names, values, self.no_backslash_escapes)
                        )
                    }
                    None => String::new(),
                };
                format!("SELECT * FROM {table_sql}{range} ORDER BY {} LIMIT {}", key_names.join(", "), self.chunk_rows)
            };
            let mut result = conn.query_iter(sql).await.map_err(q("reading a table for the snapshot"))?;
            let mut chunk_rows = 0usize;
            while let Some(row) = result.next().await.map_err(q("reading a table for the snapshot"))? {
                let values = row.unwrap();
                if !key.is_empty() {
                    let key_bytes: Vec<Vec<u8>> = key
                        .iter()
                        .map(|&k| match values.get(k) {
                            Some(mysql_async::Value::Bytes(b)) => b.clone(),
                            _ => Vec::new(),
                        })
                        .collect();
                    after = Some(key_bytes);
                }
                let after_row: Vec<Value> = schema
                    .columns
                    .iter()
                    .zip(values)
                    .map(|(c, v)| text_value(c, v))
                    .collect::<Result<_, _>>()
                    .map_err(|e| CdcError::definite(format!("snapshot of {id}: {e}"), "report this value"))?;
                events.push(ChangeEvent {
                    op: Op::Read,
                    table: schema.clone(),
                    before: None,
                    after: Some(after_row),
                    source: self.template.clone(),
                    transaction: None,
                });
                chunk_rows += 1;
                if events.len() >= self.batch_events {
                    let chunk = SnapshotChunk {
                        table: table.index,
                        events: std::mem::replace(&mut events, Vec::with_capacity(self.batch_events)),
                        last_key: after.clone(),
                        finished: false,
                    };
                    if self.chunks.send(Ok(chunk)).await.is_err() {
                        return Ok(false);
                    }
                }
            }
            if key.is_empty() || chunk_rows < self.chunk_rows {
                break;
            }
        }
        let chunk = SnapshotChunk { table: table.index, events, last_key: after, finished: true };
        Ok(self.chunks.send(Ok(chunk)).await.is_ok())
    }
}

/// `k1 > v1 OR (k1 = v1 AND k2 > v2) …`: rows after `values` in key order, in the columns'
/// own collations (string literals take the column's; binary columns compare bytes).
fn after_key_condition(schema: &TableSchema, key_names: &[String], values: &[Vec<u8>], no_backslash: bool) -> String {
    let literal = |i: usize| {
        let column = &schema.columns[schema.key[i]];
        let text = mysql_async::Value::Bytes(values.get(i).cloned().unwrap_or_default()).as_sql(no_backslash);
        match column.kind {
            ColumnType::Bytes { .. } | ColumnType::Bit { .. } => format!("_binary{text}"),
            _ => text,
        }
    };
    let mut alternatives = Vec::with_capacity(key_names.len());
    for i in 0..key_names.len() {
        let mut terms: Vec<String> = (0..i).map(|j| format!("{} = {}", key_names[j], literal(j))).collect();
        terms.push(format!("{} > {}", key_names[i], literal(i)));
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    alternatives.join(" OR ")
}

pub(crate) async fn list_tables(conn: &mut mysql_async::Conn, filter: &TableFilter) -> Result<Vec<TableId>, CdcError> {
    let rows: Vec<(String, String)> = conn
        .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY 1, 2")
        .await
        .map_err(sql_err("listing tables"))?;
    Ok(rows
        .into_iter()
        .filter(|(db, _)| !SYSTEM_SCHEMAS.contains(&db.as_str()))
        .map(|(db, t)| TableId::new(db, t))
        .filter(|id| filter.matches_id(id))
        .collect())
}

/// Definitions of the tables the filter selects (or of `only`), from `information_schema`,
/// in the form the schema history keeps.
pub async fn table_definitions(
    conn: &mut mysql_async::Conn,
    filter: &TableFilter,
    only: Option<&TableId>,
) -> Result<Vec<(TableId, TableDef)>, CdcError> {
    let (condition, params) = match only {
        Some(id) => ("c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ?", vec![id.namespace.clone(), id.name.clone()]),
        None => ("1 = 1", vec![]),
    };
    let columns: Vec<(String, String, String, String, String, Option<String>)> = conn
        .exec(
            format!(
                "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, c.CHARACTER_SET_NAME \
                 FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
                 ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME AND t.TABLE_TYPE = 'BASE TABLE' \
                 WHERE {condition} ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"
            ),
            params.clone(),
        )
        .await
        .map_err(sql_err("reading table definitions"))?;
    let keys: Vec<(String, String, String)> = conn
        .exec(
            format!(
                "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE c \
                 WHERE {condition} AND c.CONSTRAINT_NAME = 'PRIMARY' ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION"
            ),
            params,
        )
        .await
        .map_err(sql_err("reading primary keys"))?;
    let mut out: Vec<(TableId, TableDef)> = Vec::new();
    for (db, table, name, column_type, nullable, charset) in columns {
        if SYSTEM_SCHEMAS.contains(&db.as_str()) {
            continue;
        }
        let id = TableId::new(db, table);
        if only.is_none() && !filter.matches_id(&id) {
            continue;
        }
        if out.last().is_none_or(|(last, _)| *last != id) {
            out.push((id, TableDef::default()));
        }
        if let Some((_, def)) = out.last_mut() {
            def.columns.push(ColumnDecl {
                name,
                column_type,
                nullable: nullable == "YES",
                charset,
                primary_key: false,
                default: None,
            });
        }
    }
    for (db, table, name) in keys {
        let id = TableId::new(db, table);
        if let Some((_, def)) = out.iter_mut().find(|(t, _)| *t == id) {
            def.key.push(name);
        }
    }
    Ok(out)
}

/// A column's kind from its `COLUMN_TYPE` text (`decimal(12,2) unsigned`, `datetime(6)`,
/// `enum('a','b')`), as [`table_schema`] derives it from the separate catalog columns.
pub fn column_kind_of_type(column_type: &str, charset: Option<&str>) -> ColumnType {
    let lower = column_type.to_ascii_lowercase();
    let data_type = lower.split(['(', ' ']).next().unwrap_or("");
    let args: Vec<u64> = match data_type {
        "enum" | "set" => vec![],
        _ => lower
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(inner, _)| inner.split(',').filter_map(|a| a.trim().parse().ok()).collect())
            .unwrap_or_default(),
    };
    let arg = |i: usize, default: u64| Some(args.get(i).copied().unwrap_or(default));
    let (precision, scale, fsp) = match data_type {
        "decimal" | "numeric" => (arg(0, 10), arg(1, 0), None),
        "bit" => (arg(0, 1), None, None),
        "time" | "datetime" | "timestamp" => (None, None, arg(0, 0)),
        _ => (None, None, None),
    };
    // The original text: ENUM and SET values keep their case.
    column_kind(data_type, column_type, precision, scale, fsp, charset)
}

/// Columns and primary key from `information_schema`.
pub async fn table_schema(conn: &mut mysql_async::Conn, id: &TableId) -> Result<TableSchema, CdcError> {
    let def = table_definitions(conn, &TableFilter::all(), Some(id)).await?.pop().map(|(_, d)| d).unwrap_or_default();
    let columns: Vec<Column> = def
        .columns
        .into_iter()
        .map(|c| Column {
            kind: column_kind_of_type(&c.column_type, c.charset.as_deref()),
            source_type: c.column_type.to_ascii_uppercase(),
            name: c.name,
            nullable: c.nullable,
            charset: c.charset,
            existing_rows_value: None,
        })
        .collect();
    let key = def.key.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
    Ok(TableSchema { id: id.clone(), columns, key, version: 0 })
}

fn column_kind(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
    dt_precision: Option<u64>,
    charset: Option<&str>,
) -> ColumnType {
    let unsigned = column_type.contains("unsigned");
    let fsp = dt_precision.unwrap_or(0).min(6) as u8;
    match data_type {
        "tinyint" => ColumnType::Int { bytes: 1, unsigned },
        "smallint" => ColumnType::Int { bytes: 2, unsigned },
        "mediumint" => ColumnType::Int { bytes: 3, unsigned },
        "int" | "integer" => ColumnType::Int { bytes: 4, unsigned },
        "bigint" => ColumnType::Int { bytes: 8, unsigned },
        "decimal" | "numeric" => {
            ColumnType::Decimal { precision: precision.map(|p| p as u32), scale: scale.map(|s| s as u32) }
        }
        "float" => ColumnType::Float,
        "double" | "real" => ColumnType::Double,
        "bit" => ColumnType::Bit { len: precision.unwrap_or(1) as u32 },
        "year" => ColumnType::Year,
        "date" => ColumnType::Date,
        "time" => ColumnType::Time { fsp },
        "datetime" => ColumnType::DateTime { fsp },
        "timestamp" => ColumnType::Timestamp { fsp },
        "enum" => ColumnType::Enum { values: quoted_list(column_type) },
        "set" => ColumnType::Set { values: quoted_list(column_type) },
        "json" => ColumnType::Json,
        "vector" => ColumnType::Array { element: Box::new(ColumnType::Float) },
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" | "geomcollection" => ColumnType::Geometry,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => ColumnType::Bytes { max_len: None },
        _ if charset == Some("binary") => ColumnType::Bytes { max_len: None },
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => ColumnType::Text { max_len: None },
        _ => ColumnType::Other,
    }
}

/// `enum('a','b''c')` → ["a", "b'c"].
fn quoted_list(column_type: &str) -> Vec<String> {
    let inner = column_type.split_once('(').map_or("", |(_, r)| r.strip_suffix(')').unwrap_or(r));
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        match (c, in_quote) {
            ('\'', false) => in_quote = true,
            ('\'', true) if chars.peek() == Some(&'\'') => {
                cur.push('\'');
                chars.next();
            }
            ('\'', true) => {
                in_quote = false;
                out.push(std::mem::take(&mut cur));
            }
            (c, true) => cur.push(c),
            _ => {}
        }
    }
    out
}

/// A text-protocol value as the binlog decoder would produce it for the same column.
pub(crate) fn text_value(column: &Column, v: mysql_async::Value) -> Result<Value, String> {
    let bytes = match v {
        mysql_async::Value::NULL => return Ok(Value::Null),
        mysql_async::Value::Bytes(b) => b,
        other => {
            return Err(format!("column {}: unexpected binary value {other:?}", column.name));
        }
    };
    // Numbers and dates are parsed from the bytes in place; text takes the bytes over (a
    // connection in utf8mb4 sends UTF-8; anything else is shown, not refused).
    let str = || std::str::from_utf8(&bytes).unwrap_or_default();
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    };
    let bad =
        |what: &str| format!("column {}: `{}` is not a valid {what}", column.name, String::from_utf8_lossy(&bytes));
    let zero = || {
        if column.nullable { Value::Null } else { Value::Special("0000-00-00".into()) }
    };
    Ok(match &column.kind {
        ColumnType::Int { unsigned: true, .. } => Value::UInt(str().parse().map_err(|_| bad("integer"))?),
        ColumnType::Int { .. } | ColumnType::Year => Value::Int(str().parse().map_err(|_| bad("integer"))?),
        ColumnType::Float => Value::Float(str().parse().map_err(|_| bad("float"))?),
        ColumnType::Double => Value::Double(str().parse().map_err(|_| bad("double"))?),
        ColumnType::Decimal { .. } => Value::Decimal(text(bytes)),
        ColumnType::Date => match parse_date(str()) {
            Some(Some(d)) => Value::Date(d as i32),
            Some(None) => zero(),
            None => return Err(bad("date")),
        },
        ColumnType::DateTime { .. } => match parse_datetime(str()) {
            Some(Some(us)) => Value::DateTime(us),
            Some(None) => zero(),
            None => return Err(bad("datetime")),
        },
        ColumnType::Timestamp { .. } => match parse_datetime(str()) {
            Some(Some(us)) => Value::Timestamp(us),
            Some(None) => zero(),
            None => return Err(bad("timestamp")),
        },
        ColumnType::Time { .. } => Value::Time(parse_time(str()).ok_or_else(|| bad("time"))?),
        ColumnType::Bit { len } => Value::Bit { len: *len, bytes: bytes.into() },
        ColumnType::Enum { .. } => Value::Enum(text(bytes)),
        ColumnType::Set { .. } => {
            let t = text(bytes);
            Value::Set(if t.is_empty() { vec![] } else { t.split(',').map(str::to_string).collect() })
        }
        ColumnType::Json => Value::Json(text(bytes)),
        ColumnType::Bytes { .. } => Value::Bytes(bytes),
        ColumnType::Geometry if bytes.len() >= 4 => Value::Geometry {
            srid: Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])).filter(|&s| s != 0),
            wkb: bytes[4..].into(),
        },
        ColumnType::Array { .. } => Value::Array(
            bytes.chunks_exact(4).map(|c| Value::Float(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        ),
        _ => Value::Text(text(bytes)),
    })
}

/// `YYYY-MM-DD` → Some(Some(days)), zero dates → Some(None).
fn parse_date(s: &str) -> Option<Option<i64>> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if m == 0 || d == 0 {
        return Some(None);
    }
    Some(Some(days_from_civil(y, m, d)))
}

fn parse_datetime(s: &str) -> Option<Option<i64>> {
    let (date, time) = s.split_once(' ').unwrap_or((s, "00:00:00"));
    match parse_date(date)? {
        None => Some(None),
        Some(days) => Some(Some(days * 86_400_000_000 + parse_time(time)?)),
    }
}

/// `[-]H+:MM:SS[.ffffff]` → microseconds.
fn parse_time(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut it = hms.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let sec: i64 = it.next()?.parse().ok()?;
    // Microseconds: the first six digits, padded with zeros.
    let mut micros: i64 = 0;
    for i in 0..6 {
        let digit = match frac.as_bytes().get(i) {
            Some(d) if d.is_ascii_digit() => i64::from(d - b'0'),
            Some(_) => return None,
            None => 0,
        };
        micros = micros * 10 + digit;
    }
    let total = (h * 3600 + m * 60 + sec) * 1_000_000 + micros;
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        assert_eq!(parse_time("-838:59:59.000001"), Some(-((838 * 3600 + 59 * 60 + 59) * 1_000_000 + 1)));
        assert_eq!(parse_datetime("1970-01-02 00:00:01.5"), Some(Some(86_401_500_000)));
        assert_eq!(parse_date("0000-00-00"), Some(None));
        assert_eq!(quoted_list("enum('a','b''c','')"), vec!["a", "b'c", ""]);
    }
}
