//! `cdc verify`: compares every selected source table with its copy in the target database,
//! row by row, with values brought to one canonical form across engines (a MySQL `ENUM` and
//! the PostgreSQL `text` it became compare equal, so do `BIGINT UNSIGNED` and `numeric(20,0)`).
//!
//! Both sides are read in primary-key order (text keys in byte order on both engines) by two
//! tasks that stream chunks, and merged: a key on one side only is a missing or extra row, a
//! key on both with different values a differing row. Rows that differ are read again once the
//! target has applied what the source held when the comparison ended, so a replica that was
//! merely behind is reported as lag, not as a difference.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use crate::config::{Config, DbSinkConfig, SinkConfig, SourceConfig};
use crate::error::CdcError;
use crate::model::value::{write_bit_text, write_hex_digits, write_uuid_text};
use crate::model::{ColumnType, Row, TableId, TableSchema, Value};
use crate::sources::filter::TableFilter;
use crate::sources::mysql::{server as my_server, snapshot as my_snapshot};
use crate::sources::postgres::catalog::{self, TypeCache};
use crate::sources::postgres::protocol::{ConnectParams, PgConnection, quote_ident, quote_table};
use crate::sources::postgres::types::parse_row;

const CHUNK_ROWS: usize = 5000;
/// Differences shown per table.
const SHOWN: usize = 10;
/// Differing keys re-read after the lag wait, per table.
const RECHECKED: usize = 10_000;

/// One side of the comparison.
#[derive(Clone)]
enum Db {
    Postgres(ConnectParams),
    /// The URL, and the setting it comes from (for errors).
    MySql(String, &'static str),
}

/// What is wrong with a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    MissingOnTarget,
    ExtraOnTarget,
    Different,
}

/// One row that differs (its key empty for a whole table missing on the target).
pub struct Difference {
    pub key: Vec<Value>,
    pub found: Found,
    pub what: String,
}

/// What differs in one table.
#[derive(Default)]
pub struct TableReport {
    pub source_rows: u64,
    pub target_rows: u64,
    /// The first differences found (at most `RECHECKED`).
    pub differences: Vec<Difference>,
    pub missing: u64,
    pub extra: u64,
    pub differing: u64,
    /// Rows that differed at first and matched once the target caught up.
    pub lagging: u64,
}

impl TableReport {
    /// Counts a difference, and keeps it while fewer than `RECHECKED` are kept.
    fn found(&mut self, key: Vec<Value>, found: Found, what: String) {
        *self.count(found) += 1;
        if self.differences.len() < RECHECKED {
            self.differences.push(Difference { key, found, what });
        }
    }

    fn count(&mut self, found: Found) -> &mut u64 {
        match found {
            Found::MissingOnTarget => &mut self.missing,
            Found::ExtraOnTarget => &mut self.extra,
            Found::Different => &mut self.differing,
        }
    }
}

const MISSING: &str = "missing on the target";
const EXTRA: &str = "extra on the target (deleted on the source?)";

/// Runs the comparison, prints a report, and returns whether every table matched.
pub async fn run(config: &Config) -> Result<bool, CdcError> {
    let (source, filter) = match &config.source {
        SourceConfig::Postgres(p) => {
            (Db::Postgres(ConnectParams::from_url(p.url.url())), TableFilter::new(&p.tables, &p.exclude_tables))
        }
        SourceConfig::Mysql(m) => {
            (Db::MySql(m.url.expose().to_string(), "source.url"), TableFilter::new(&m.tables, &m.exclude_tables))
        }
    };
    let (sink, target): (&DbSinkConfig, Db) = match &config.sink {
        SinkConfig::Postgres(d) => (d, Db::Postgres(ConnectParams::from_url(d.url.url()))),
        SinkConfig::Mysql(d) => (d, Db::MySql(d.url.expose().to_string(), "sink.url")),
        other => {
            return Err(CdcError::definite(
                format!(
                    "cdc verify compares a source with a database replica; this pipeline's sink is {}",
                    other.kind()
                ),
                "run it with a config whose sink.kind is postgres or mysql",
            ));
        }
    };
    let tables = list_tables(&source, &filter).await?;
    if tables.is_empty() {
        return Err(CdcError::definite("no source table matches source.tables", "fix source.tables"));
    }
    let mut all_same = true;
    let mut totals = (0u64, 0u64);
    for id in &tables {
        let target_id = TableId::new(sink.target_namespace(&id.namespace), id.name.clone());
        let (mut report, layout) = compare_table(&source, id, &target, &target_id).await?;
        if let Some(layout) = layout.filter(|l| !l.keyless)
            && report.missing + report.extra + report.differing > 0
        {
            recheck_after_lag(config, &source, &target, &layout, &mut report).await?;
        }
        totals.0 += report.source_rows;
        totals.1 += report.target_rows;
        print_report(id, &target_id, &report);
        all_same &= report.missing + report.extra + report.differing == 0;
    }
    println!(
        "{}: {} tables, {} source rows, {} target rows",
        if all_same { "SAME" } else { "DIFFERENT" },
        tables.len(),
        totals.0,
        totals.1
    );
    Ok(all_same)
}

fn print_report(id: &TableId, target_id: &TableId, r: &TableReport) {
    let lag = if r.lagging > 0 { format!(" ({} rows differed only because of lag)", r.lagging) } else { String::new() };
    if r.missing + r.extra + r.differing == 0 {
        println!("OK   {id} → {target_id}: {} rows{lag}", r.source_rows);
        return;
    }
    println!(
        "DIFF {id} → {target_id}: source {} rows, target {} rows; {} missing on the target, {} extra, {} different{lag}",
        r.source_rows, r.target_rows, r.missing, r.extra, r.differing
    );
    for Difference { key, what, .. } in r.differences.iter().take(SHOWN) {
        if key.is_empty() {
            println!("     {what}");
        } else {
            println!("     key {}: {what}", show_key(key));
        }
    }
    let shown = r.differences.len().min(SHOWN) as u64;
    if r.missing + r.extra + r.differing > shown {
        println!("     … and {} more", r.missing + r.extra + r.differing - shown);
    }
}

fn show_key(key: &[Value]) -> String {
    let parts: Vec<String> = key.iter().map(|v| canonical(v).unwrap_or_else(|| "NULL".into())).collect();
    format!("({})", parts.join(", "))
}

async fn list_tables(db: &Db, filter: &TableFilter) -> Result<Vec<TableId>, CdcError> {
    match db {
        Db::Postgres(p) => {
            let mut conn = PgConnection::connect(p, false).await?;
            catalog::selected_tables(&mut conn, filter).await
        }
        Db::MySql(url, setting) => {
            let mut conn = my_server::connect(url, setting).await?;
            my_snapshot::list_tables(&mut conn, filter).await
        }
    }
}

/// Reads a table's schema on either engine; `None` when the table does not exist.
async fn read_schema(db: &Db, id: &TableId) -> Result<Option<TableSchema>, CdcError> {
    match db {
        Db::Postgres(p) => {
            let mut conn = PgConnection::connect(p, false).await?;
            let rel = quote_table(id);
            if !conn.query_true(&format!("SELECT to_regclass('{}') IS NOT NULL", rel.replace('\'', "''"))).await? {
                return Ok(None);
            }
            let cols = catalog::table_columns(&mut conn, id).await?;
            let mut types = TypeCache::default();
            types.resolve(&mut conn, &cols.iter().map(|c| c.1).collect::<Vec<_>>()).await?;
            Ok(Some((*types.schema(id.clone(), &cols)).clone()))
        }
        Db::MySql(url, setting) => {
            let mut conn = my_server::connect(url, setting).await?;
            let schema = my_snapshot::table_schema(&mut conn, id).await?;
            Ok((!schema.columns.is_empty()).then_some(schema))
        }
    }
}

/// The columns to read on each side: the source's, matched by name on the target.
struct Layout {
    source: TableSchema,
    target: TableSchema,
    /// For each source column, its index on the target (None: missing there).
    target_index: Vec<Option<usize>>,
    /// The table has no key: rows are matched on all sortable columns, and a row looked up
    /// again by them says nothing about how many copies there are.
    keyless: bool,
}

/// Compares one table; also returns how its rows were matched (`None` when the target table
/// is missing), for the re-read of the rows that differ.
async fn compare_table(
    source: &Db,
    id: &TableId,
    target: &Db,
    target_id: &TableId,
) -> Result<(TableReport, Option<Layout>), CdcError> {
    let Some(mut source_schema) = read_schema(source, id).await? else {
        return Ok((TableReport::default(), None));
    };
    let keyless = source_schema.key.is_empty();
    if keyless {
        // No key: rows are matched on every column both engines sort alike.
        source_schema.key = (0..source_schema.columns.len())
            .filter(|&i| {
                !matches!(
                    source_schema.columns[i].kind,
                    ColumnType::Json | ColumnType::Array { .. } | ColumnType::Geometry | ColumnType::Other
                )
            })
            .collect();
        if source_schema.key.is_empty() {
            return Err(CdcError::definite(
                format!("source table {id} has no primary key and no column to sort its rows by"),
                "exclude it from source.tables for verify, or give it a primary key",
            ));
        }
    }
    let mut report = TableReport::default();
    let Some(target_schema) = read_schema(target, target_id).await? else {
        let rows = stream_table(source.clone(), source_schema.clone(), None);
        report.source_rows = count(rows).await?;
        report.missing = report.source_rows;
        let what = format!("target table {target_id} does not exist");
        report.differences.push(Difference { key: vec![], found: Found::MissingOnTarget, what });
        return Ok((report, None));
    };
    let layout = layout(source_schema, target_schema, keyless);
    let mut src = stream_table(source.clone(), layout.source.clone(), None);
    let mut tgt = stream_table(target.clone(), layout.target.clone(), Some(key_names(&layout)));
    let mut a = next_row(&mut src).await?;
    let mut b = next_row(&mut tgt).await?;
    while a.is_some() || b.is_some() {
        let order = match (&a, &b) {
            (Some(x), Some(y)) => compare_keys(&layout, x, y),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                let row = a.take().unwrap_or_default();
                report.source_rows += 1;
                report.found(key_of(&layout.source, &row), Found::MissingOnTarget, MISSING.into());
                a = next_row(&mut src).await?;
            }
            Ordering::Greater => {
                let row = b.take().unwrap_or_default();
                report.target_rows += 1;
                let key = layout.source.key.iter().filter_map(|&i| layout.target_index[i]).map(|t| row[t].clone());
                report.found(key.collect(), Found::ExtraOnTarget, EXTRA.into());
                b = next_row(&mut tgt).await?;
            }
            Ordering::Equal => {
                let (x, y) = (a.take().unwrap_or_default(), b.take().unwrap_or_default());
                report.source_rows += 1;
                report.target_rows += 1;
                if let Some(what) = row_difference(&layout, &x, &y) {
                    report.found(key_of(&layout.source, &x), Found::Different, what);
                }
                a = next_row(&mut src).await?;
                b = next_row(&mut tgt).await?;
            }
        }
    }
    Ok((report, Some(layout)))
}

fn layout(source: TableSchema, target: TableSchema, keyless: bool) -> Layout {
    let target_index = source.columns.iter().map(|c| target.columns.iter().position(|t| t.name == c.name)).collect();
    Layout { source, target, target_index, keyless }
}

/// `ORDER BY` of the target: the source's key columns, by name.
fn key_names(layout: &Layout) -> Vec<String> {
    layout.source.key.iter().map(|&i| layout.source.columns[i].name.clone()).collect()
}

fn key_of(schema: &TableSchema, row: &Row) -> Vec<Value> {
    schema.key.iter().map(|&i| row.get(i).cloned().unwrap_or(Value::Null)).collect()
}

fn compare_keys(layout: &Layout, source: &Row, target: &Row) -> Ordering {
    for &i in &layout.source.key {
        let Some(t) = layout.target_index[i] else { return Ordering::Less };
        let o = compare_values(&source[i], &target[t]);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// The first column that differs, described; `None` when the rows are the same.
fn row_difference(layout: &Layout, source: &Row, target: &Row) -> Option<String> {
    for (i, column) in layout.source.columns.iter().enumerate() {
        let Some(t) = layout.target_index[i] else {
            return Some(format!("column {} does not exist on the target", column.name));
        };
        let target_kind = &layout.target.columns[t].kind;
        // Types a MySQL target keeps as text (timetz, interval, arrays as JSON): the text the
        // sink wrote for the source value.
        let as_text = matches!(target_kind, ColumnType::Text { .. } | ColumnType::Json)
            && matches!(column.kind, ColumnType::TimeTz { .. } | ColumnType::Interval | ColumnType::Array { .. });
        let source_text = as_text.then(|| crate::sinks::mysql::values::text_of(&source[i], column)).flatten();
        let source_text = source_text.map(Value::Text);
        let source_value = source_text.as_ref().unwrap_or(&source[i]);
        // JSON kept as text on one side (MariaDB's JSON is LONGTEXT) compares as JSON.
        let json = column.kind == ColumnType::Json || *target_kind == ColumnType::Json;
        let (a, b) = if json {
            (canonical(&as_json(source_value)), canonical(&as_json(&target[t])))
        } else {
            (canonical(source_value), canonical(&target[t]))
        };
        if a != b {
            let show = |v: Option<String>| v.map_or("NULL".to_string(), |s| s.chars().take(80).collect());
            return Some(format!("column {}: source {}, target {}", column.name, show(a), show(b)));
        }
    }
    None
}

async fn next_row(rx: &mut mpsc::Receiver<Result<Row, CdcError>>) -> Result<Option<Row>, CdcError> {
    rx.recv().await.transpose()
}

async fn count(mut rx: mpsc::Receiver<Result<Row, CdcError>>) -> Result<u64, CdcError> {
    let mut n = 0;
    while let Some(row) = rx.recv().await {
        row?;
        n += 1;
    }
    Ok(n)
}

/// Streams a table's rows in key order from a task (bounded channel).
fn stream_table(db: Db, schema: TableSchema, order_by: Option<Vec<String>>) -> mpsc::Receiver<Result<Row, CdcError>> {
    let (tx, rx) = mpsc::channel(2 * CHUNK_ROWS);
    tokio::spawn(async move {
        let order_by = order_by.unwrap_or_else(|| schema.key.iter().map(|&i| schema.columns[i].name.clone()).collect());
        // Byte order for text keys on both engines (`COLLATE "C"`, `BINARY`).
        let order: Vec<String> = order_by
            .iter()
            .map(|k| match (&db, is_text(&schema, k)) {
                (Db::Postgres(_), true) => format!("{} COLLATE \"C\"", quote_ident(k)),
                (Db::Postgres(_), false) => quote_ident(k),
                (Db::MySql(..), true) => format!("BINARY {}", my_ident(k)),
                (Db::MySql(..), false) => my_ident(k),
            })
            .collect();
        if let Err(e) = read_rows(&db, &schema, &format!("ORDER BY {}", order.join(", ")), &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

fn is_text(schema: &TableSchema, name: &str) -> bool {
    schema.columns.iter().any(|c| {
        c.name == name && matches!(c.kind, ColumnType::Text { .. } | ColumnType::Enum { .. } | ColumnType::Set { .. })
    })
}

fn my_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Sends each row of `SELECT <schema's columns> FROM <its table> <clause>` into `tx`, as
/// values typed by the schema; stops early when the receiver is gone.
async fn read_rows(
    db: &Db,
    schema: &TableSchema,
    clause: &str,
    tx: &mpsc::Sender<Result<Row, CdcError>>,
) -> Result<(), CdcError> {
    match db {
        Db::Postgres(params) => read_postgres(params, schema, clause, tx).await,
        Db::MySql(url, setting) => read_mysql(url, setting, schema, clause, tx).await,
    }
}

async fn read_postgres(
    params: &ConnectParams,
    schema: &TableSchema,
    clause: &str,
    tx: &mpsc::Sender<Result<Row, CdcError>>,
) -> Result<(), CdcError> {
    let mut conn = PgConnection::connect(params, false).await?;
    let columns: Vec<String> = schema.columns.iter().map(|c| quote_ident(&c.name)).collect();
    conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    conn.query(&format!(
        "DECLARE cdc_verify NO SCROLL CURSOR FOR SELECT {} FROM {} {clause}",
        columns.join(", "),
        quote_table(&schema.id),
    ))
    .await?;
    loop {
        let mut rows: Vec<Row> = Vec::with_capacity(CHUNK_ROWS);
        let mut bad = None;
        conn.query_each(&format!("FETCH FORWARD {CHUNK_ROWS} FROM cdc_verify"), |r| {
            match parse_row(&schema.columns, r) {
                Ok(row) => rows.push(row),
                Err(e) => bad = Some(e),
            }
            Ok(())
        })
        .await?;
        if let Some(e) = bad {
            return Err(CdcError::definite(format!("reading {}: {e}", schema.id), "report this value"));
        }
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            if tx.send(Ok(row)).await.is_err() {
                return Ok(());
            }
        }
    }
}

async fn read_mysql(
    url: &str,
    setting: &str,
    schema: &TableSchema,
    clause: &str,
    tx: &mpsc::Sender<Result<Row, CdcError>>,
) -> Result<(), CdcError> {
    let mut conn = my_server::connect(url, setting).await?;
    let q = |doing: &'static str| my_server::sql_err(doing);
    conn.query_drop("SET SESSION time_zone = '+00:00'").await.map_err(q("setting the session time zone"))?;
    let columns: Vec<String> = schema.columns.iter().map(|c| my_ident(&c.name)).collect();
    let sql = format!(
        "SELECT {} FROM {}.{} {clause}",
        columns.join(", "),
        my_ident(&schema.id.namespace),
        my_ident(&schema.id.name),
    );
    let mut result = conn.query_iter(sql).await.map_err(q("reading a table to verify"))?;
    while let Some(row) = result.next().await.map_err(q("reading a table to verify"))? {
        let row = mysql_row(schema, row)?;
        if tx.send(Ok(row)).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn mysql_row(schema: &TableSchema, row: mysql_async::Row) -> Result<Row, CdcError> {
    schema
        .columns
        .iter()
        .zip(row.unwrap())
        .map(|(c, v)| my_snapshot::text_value(c, v))
        .collect::<Result<_, _>>()
        .map_err(|e| CdcError::definite(format!("reading {}: {e}", schema.id), "report this value"))
}

/// Rows that differed are read again once the target has applied everything the source held
/// at this moment (its stored position reaches the source's current one, 60 s at most).
/// Not for tables without a key (see [`Layout::keyless`]).
async fn recheck_after_lag(
    config: &Config,
    source: &Db,
    target: &Db,
    layout: &Layout,
    report: &mut TableReport,
) -> Result<(), CdcError> {
    if !wait_for_catch_up(config).await? {
        return Ok(());
    }
    let target_key: Vec<usize> = layout.source.key.iter().filter_map(|&i| layout.target_index[i]).collect();
    let mut still = Vec::new();
    for difference in std::mem::take(&mut report.differences) {
        if difference.key.is_empty() {
            still.push(difference);
            continue;
        }
        let a = read_by_key(source, &layout.source, &layout.source.key, &difference.key).await?;
        let b = read_by_key(target, &layout.target, &target_key, &difference.key).await?;
        let (Some(a), Some(b)) = (a, b) else {
            // Cannot be looked up again: stays as found.
            still.push(difference);
            continue;
        };
        let now = match (&a, &b) {
            (None, None) => None,
            (Some(_), None) => Some((Found::MissingOnTarget, MISSING.to_string())),
            (None, Some(_)) => Some((Found::ExtraOnTarget, EXTRA.to_string())),
            (Some(x), Some(y)) => row_difference(layout, x, y).map(|what| (Found::Different, what)),
        };
        // Differences beyond the kept ones were not re-read and keep their counts.
        *report.count(difference.found) -= 1;
        match now {
            Some((found, what)) => {
                *report.count(found) += 1;
                still.push(Difference { key: difference.key, found, what });
            }
            None => report.lagging += 1,
        }
    }
    report.differences = still;
    Ok(())
}

/// Waits until the pipeline's stored position reaches the source's current position.
async fn wait_for_catch_up(config: &Config) -> Result<bool, CdcError> {
    let sink_store = crate::positions::SinkPositionStore::for_sink(&config.sink, &config.name);
    let store = match sink_store.filter(|_| config.positions.store == crate::config::StoreKind::Sink) {
        Some(store) => store,
        None => {
            // Without the position in the target there is nothing to wait on; give it a moment.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Ok(true);
        }
    };
    let Some(current) = crate::sources::current_position(config).await? else { return Ok(true) };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((stored, _)) = store.read().await?
            && matches!(stored.compare(&current), Ok(Ordering::Greater | Ordering::Equal))
        {
            return Ok(true);
        }
        if Instant::now() > deadline {
            println!(
                "note: the replica did not reach the source's position {current} within 60 s; differences may be lag"
            );
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The row of `schema` whose `key` columns hold `values` (NULL-safe), if there is one;
/// `None` when a key value cannot be written in this engine's SQL, so it cannot be looked up.
async fn read_by_key(
    db: &Db,
    schema: &TableSchema,
    key: &[usize],
    values: &[Value],
) -> Result<Option<Option<Row>>, CdcError> {
    let mut condition = String::new();
    for (n, (&i, v)) in key.iter().zip(values).enumerate() {
        if n > 0 {
            condition.push_str(" AND ");
        }
        let column = &schema.columns[i];
        let written = match db {
            Db::Postgres(_) => {
                condition.push_str(&quote_ident(&column.name));
                condition.push_str(" IS NOT DISTINCT FROM ");
                crate::sinks::postgres::values::write_literal(&mut condition, v, column)
            }
            Db::MySql(..) => {
                condition.push_str(&my_ident(&column.name));
                condition.push_str(" <=> ");
                crate::sinks::mysql::values::write_literal(&mut condition, v, column)
            }
        };
        if written.is_err() {
            return Ok(None);
        }
    }
    let (tx, mut rx) = mpsc::channel(2);
    read_rows(db, schema, &format!("WHERE {condition} LIMIT 1"), &tx).await?;
    drop(tx);
    Ok(Some(rx.recv().await.transpose()?))
}

/// The engine-neutral text of a value (`None` for NULL), used to compare a source value with
/// its copy: numbers without trailing zeros, times as microseconds, enums and sets as text,
/// JSON with sorted keys, bytes as hex.
pub fn canonical(value: &Value) -> Option<String> {
    let mut out = String::new();
    match value {
        Value::Null | Value::Unchanged => return None,
        // MySQL zero dates are NULL on a PostgreSQL replica.
        Value::Special(s) if s.starts_with("0000") => return None,
        Value::Special(s) => out.push_str(s),
        // MySQL has no boolean: a PostgreSQL bool lands in TINYINT(1).
        Value::Bool(b) => out.push_str(if *b { "1" } else { "0" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Decimal(d) => out.push_str(&normalize_decimal(d)),
        Value::Float(f) => out.push_str(ryu::Buffer::new().format(*f)),
        Value::Double(d) => out.push_str(ryu::Buffer::new().format(*d)),
        Value::Text(s) | Value::Enum(s) => out.push_str(s),
        Value::Set(items) => out.push_str(&items.join(",")),
        Value::Json(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => out.push_str(&v.to_string()),
            Err(_) => out.push_str(s),
        },
        Value::Bytes(b) => write_hex_digits(&mut out, b),
        Value::Geometry { wkb, .. } => write_hex_digits(&mut out, wkb),
        Value::Date(d) => {
            let _ = write!(out, "date:{d}");
        }
        // A MySQL TIME becomes a PostgreSQL interval of the same length.
        Value::Time(us) | Value::Interval { months: 0, days: 0, micros: us } => {
            let _ = write!(out, "time:{us}");
        }
        Value::TimeTz { micros, offset_secs } => {
            let _ = write!(out, "timetz:{micros}{offset_secs:+}");
        }
        // A PostgreSQL timestamptz lands in a MySQL DATETIME holding UTC: compare the numbers.
        Value::DateTime(us) | Value::Timestamp(us) => {
            let _ = write!(out, "datetime:{us}");
        }
        Value::Interval { months, days, micros } => {
            let _ = write!(out, "interval:{months}:{days}:{micros}");
        }
        // As text, the form a CHAR(36) copy holds.
        Value::Uuid(b) => write_uuid_text(&mut out, b),
        Value::Bit { len, bytes } => write_bit_text(&mut out, *len, bytes),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&canonical(item).unwrap_or_else(|| "NULL".into()));
            }
            out.push(']');
        }
    }
    Some(out)
}

fn as_json(v: &Value) -> Value {
    match v {
        Value::Text(s) => Value::Json(s.clone()),
        other => other.clone(),
    }
}

/// `-012.3400` → `-12.34`; `0.000` → `0`.
fn normalize_decimal(d: &str) -> String {
    let (negative, digits) = match d.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, d),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return d.to_string(); // NaN, Infinity
    }
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    if int.is_empty() && frac.is_empty() {
        return "0".into();
    }
    if negative {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Key order as both databases sort it: numbers by value, text by bytes, the rest by their
/// canonical text (dates and times by their numbers).
fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            Value::Decimal(d) => d.parse().ok(),
            Value::Float(f) => Some(f64::from(*f)),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }
    fn integer(v: &Value) -> Option<i128> {
        match v {
            Value::Int(i) => Some(i128::from(*i)),
            Value::UInt(u) => Some(i128::from(*u)),
            Value::Decimal(d) => d.parse().ok(),
            _ => None,
        }
    }
    fn instant(v: &Value) -> Option<i64> {
        match v {
            Value::Date(d) => Some(i64::from(*d)),
            Value::Time(t) | Value::DateTime(t) | Value::Timestamp(t) => Some(*t),
            Value::Interval { months: 0, days: 0, micros } => Some(*micros),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        // Keys are never NULL; keep the order total anyway.
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => {
            if let (Some(x), Some(y)) = (integer(a), integer(b)) {
                return x.cmp(&y);
            }
            if let (Some(x), Some(y)) = (number(a), number(b)) {
                return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
            }
            if let (Some(x), Some(y)) = (instant(a), instant(b)) {
                return x.cmp(&y);
            }
            canonical(a).cmp(&canonical(b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_equal_across_engines() {
        let same = |a: Value, b: Value| assert_eq!(canonical(&a), canonical(&b), "{a:?} vs {b:?}");
        same(Value::UInt(u64::MAX), Value::Decimal("18446744073709551615".into()));
        same(Value::Decimal("-012.3400".into()), Value::Decimal("-12.34".into()));
        same(Value::Enum("b".into()), Value::Text("b".into()));
        same(Value::Set(vec!["x".into(), "z".into()]), Value::Text("x,z".into()));
        same(Value::Time(-5), Value::Interval { months: 0, days: 0, micros: -5 });
        same(Value::Json("{\"b\": 1, \"a\": [1, 2]}".into()), Value::Json("{\"a\":[1,2],\"b\":1}".into()));
        same(Value::Special("0000-00-00".into()), Value::Null);
        assert_ne!(canonical(&Value::Int(1)), canonical(&Value::Int(2)));
        same(Value::DateTime(1), Value::Timestamp(1));
        same(Value::Bool(true), Value::Int(1));
    }

    #[test]
    fn keys_order_like_the_databases() {
        assert_eq!(compare_values(&Value::Int(-1), &Value::UInt(3)), Ordering::Less);
        assert_eq!(
            compare_values(&Value::UInt(u64::MAX), &Value::Decimal("18446744073709551615".into())),
            Ordering::Equal
        );
        assert_eq!(compare_values(&Value::Text("B".into()), &Value::Text("a".into())), Ordering::Less);
        assert_eq!(compare_values(&Value::Text("é".into()), &Value::Text("z".into())), Ordering::Greater);
    }
}
