//! Catalog queries on an ordinary connection: server settings, the publication and the slot,
//! table schemas, and non-built-in types.

use std::collections::HashMap;
use std::sync::Arc;

use super::protocol::{PgConnection, quote_literal, quote_table};
use super::types::{self, CustomType};
use crate::error::CdcError;
use crate::model::{Column, Lsn, TableId, TableSchema};
use crate::sources::filter::TableFilter;

pub struct SlotInfo {
    pub plugin: String,
    pub database: String,
    pub confirmed_flush: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved`, `lost` (PostgreSQL 13+).
    pub wal_status: Option<String>,
    pub active: bool,
}

fn lsn(text: &Option<String>) -> Option<Lsn> {
    text.as_deref().and_then(|t| t.parse().ok())
}

pub async fn setting(conn: &mut PgConnection, name: &str) -> Result<String, CdcError> {
    let rows = conn.query(&format!("SELECT current_setting({}, true)", quote_literal(name))).await?;
    Ok(rows.into_iter().next().and_then(|r| r.into_iter().next().flatten()).unwrap_or_default())
}

pub async fn slot(conn: &mut PgConnection, name: &str) -> Result<Option<SlotInfo>, CdcError> {
    let wal_status = if conn.server_version_num >= 130000 { "wal_status" } else { "NULL" };
    let rows = conn
        .query(&format!(
            "SELECT plugin, database, confirmed_flush_lsn::text, {wal_status}, active::text \
             FROM pg_replication_slots WHERE slot_name = {}",
            quote_literal(name)
        ))
        .await?;
    Ok(rows.into_iter().next().map(|r| SlotInfo {
        plugin: r[0].clone().unwrap_or_default(),
        database: r[1].clone().unwrap_or_default(),
        confirmed_flush: lsn(&r[2]),
        wal_status: r[3].clone(),
        active: r[4].as_deref() == Some("true"),
    }))
}

/// Tables of the database that the filter selects (system schemas excluded).
pub async fn selected_tables(conn: &mut PgConnection, filter: &TableFilter) -> Result<Vec<TableId>, CdcError> {
    let rows = conn
        .query(
            "SELECT schemaname, tablename FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg_toast%' \
             ORDER BY 1, 2",
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some(TableId::new(r[0].clone()?, r[1].clone()?)))
        .filter(|id| filter.matches_id(id))
        .collect())
}

pub async fn publication_tables(conn: &mut PgConnection, publication: &str) -> Result<Option<Vec<TableId>>, CdcError> {
    let exists =
        conn.query(&format!("SELECT 1 FROM pg_publication WHERE pubname = {}", quote_literal(publication))).await?;
    if exists.is_empty() {
        return Ok(None);
    }
    let rows = conn
        .query(&format!(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = {} ORDER BY 1, 2",
            quote_literal(publication)
        ))
        .await?;
    Ok(Some(rows.into_iter().filter_map(|r| Some(TableId::new(r[0].clone()?, r[1].clone()?))).collect()))
}

/// Resolves non-built-in types (enums, domains, arrays of them), caching what it learns.
#[derive(Default)]
pub struct TypeCache {
    known: HashMap<u32, CustomType>,
}

impl TypeCache {
    pub async fn resolve(&mut self, conn: &mut PgConnection, oids: &[u32]) -> Result<(), CdcError> {
        let mut wanted: Vec<u32> = oids
            .iter()
            .copied()
            .filter(|o| {
                types::builtin_name(*o).is_none() && types::array_element(*o).is_none() && !self.known.contains_key(o)
            })
            .collect();
        while !wanted.is_empty() {
            let list = wanted.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let rows = conn
                .query(&format!(
                    "SELECT t.oid::text, t.typname, t.typtype::text, t.typbasetype::text, t.typtypmod::text, t.typelem::text, \
                     t.typcategory::text, \
                     (SELECT string_agg(e.enumlabel, E'\\x1f' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) \
                     FROM pg_type t WHERE t.oid IN ({list})"
                ))
                .await?;
            let mut next = Vec::new();
            for r in rows {
                let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                let oid: u32 = get(0).parse().unwrap_or(0);
                let name = get(1);
                let custom = match (get(2).as_str(), get(6).as_str()) {
                    ("e", _) => CustomType::Enum { name, values: get(7).split('\x1f').map(String::from).collect() },
                    ("d", _) => {
                        let base: u32 = get(3).parse().unwrap_or(0);
                        next.push(base);
                        CustomType::Domain { name, base, typmod: get(4).parse().unwrap_or(-1) }
                    }
                    (_, "A") => {
                        let element: u32 = get(5).parse().unwrap_or(0);
                        next.push(element);
                        CustomType::Array { name, element }
                    }
                    _ => CustomType::Other { name },
                };
                self.known.insert(oid, custom);
            }
            for w in &wanted {
                self.known.entry(*w).or_insert(CustomType::Other { name: format!("oid{w}") });
            }
            wanted = next
                .into_iter()
                .filter(|o| {
                    types::builtin_name(*o).is_none()
                        && types::array_element(*o).is_none()
                        && !self.known.contains_key(o)
                })
                .collect();
        }
        Ok(())
    }

    pub fn get(&self, oid: u32) -> Option<CustomType> {
        self.known.get(&oid).cloned()
    }

    pub fn type_name(&self, oid: u32) -> String {
        if let Some(n) = types::builtin_name(oid) {
            return n.to_string();
        }
        if let Some(e) = types::array_element(oid) {
            return format!("_{}", types::builtin_name(e).unwrap_or("?"));
        }
        match self.known.get(&oid) {
            Some(CustomType::Enum { name, .. } | CustomType::Domain { name, .. } | CustomType::Array { name, .. })
            | Some(CustomType::Other { name }) => name.clone(),
            None => format!("oid{oid}"),
        }
    }

    /// Builds a table schema from (name, type oid, typmod, not null, key) columns.
    pub fn schema(&self, id: TableId, cols: &[(String, u32, i32, bool, bool)]) -> Arc<TableSchema> {
        let lookup = |o: u32| self.get(o);
        let columns = cols
            .iter()
            .map(|(name, oid, typmod, not_null, _)| Column {
                name: name.clone(),
                source_type: self.type_name(*oid),
                kind: types::column_type(*oid, *typmod, &lookup),
                nullable: !not_null,
                charset: None,
                existing_rows_value: None,
            })
            .collect();
        let key = cols.iter().enumerate().filter(|(_, c)| c.4).map(|(i, _)| i).collect();
        Arc::new(TableSchema { id, columns, key, version: 0 })
    }
}

/// Names of the NOT NULL columns of the relation `oid`.
pub async fn column_constraints(conn: &mut PgConnection, oid: u32) -> Result<ColumnConstraints, CdcError> {
    let rows = conn
        .query(&format!(
            "SELECT a.attname, a.attnotnull::text, \
             (EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey)))::text, \
             CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END \
             FROM pg_attribute a WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped"
        ))
        .await?;
    let mut facts = ColumnConstraints::default();
    for row in rows {
        let mut fields = row.into_iter();
        let (Some(Some(name)), Some(not_null), Some(primary), missing) =
            (fields.next(), fields.next(), fields.next(), fields.next().flatten())
        else {
            continue;
        };
        if let Some(value) = missing {
            facts.existing_rows_values.push((name.clone(), value));
        }
        if not_null.as_deref() == Some("true") {
            facts.not_null.push(name.clone());
        }
        if primary.as_deref() == Some("true") {
            facts.primary_key.push(name);
        }
    }
    Ok(facts)
}

/// What pgoutput's Relation message leaves out: which columns are NOT NULL, which form the
/// primary key (its key flags mark the replica identity: every column with REPLICA IDENTITY FULL),
/// and the value rows older than a column read in it (`attmissingval`, as text).
#[derive(Debug, Default)]
pub struct ColumnConstraints {
    pub not_null: Vec<String>,
    pub primary_key: Vec<String>,
    pub existing_rows_values: Vec<(String, String)>,
}

/// The primary key's columns in the key's own order (which the index is sorted by).
pub async fn primary_key_order(conn: &mut PgConnection, id: &TableId) -> Result<Vec<String>, CdcError> {
    let rel = quote_literal(&quote_table(id));
    let rows = conn
        .query(&format!(
            "SELECT a.attname FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = {rel}::regclass AND i.indisprimary ORDER BY k.n"
        ))
        .await?;
    Ok(rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect())
}

/// Columns of a table from the catalog: (name, type oid, typmod, not null, in primary key).
pub async fn table_columns(
    conn: &mut PgConnection,
    id: &TableId,
) -> Result<Vec<(String, u32, i32, bool, bool)>, CdcError> {
    let rel = quote_literal(&quote_table(id));
    let rows = conn
        .query(&format!(
            "SELECT a.attname, a.atttypid::text, a.atttypmod::text, a.attnotnull::text, \
             (EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey)))::text \
             FROM pg_attribute a WHERE a.attrelid = {rel}::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
            (get(0), get(1).parse().unwrap_or(0), get(2).parse().unwrap_or(-1), get(3) == "true", get(4) == "true")
        })
        .collect())
}

/// `cdc check` for PostgreSQL: each setting with pass/warn/fail.
pub async fn check(
    p: &super::protocol::ConnectParams,
    (slot_name, publication): (&str, &str),
    filter: &TableFilter,
    snapshot_connections: usize,
) -> Vec<crate::sources::CheckItem> {
    use crate::sources::CheckItem::{Fail, Pass, Warn};
    let mut conn = match PgConnection::connect(p, false).await {
        Ok(c) => c,
        Err(e) => return vec![Fail(format!("connect: {e}"))],
    };
    let tls = transport(&mut conn).await;
    let mut items = vec![Pass(format!("connect: PostgreSQL {} (database {}, {tls})", conn.server_version, p.database))];
    let get = async |conn: &mut PgConnection, name: &str| setting(conn, name).await.unwrap_or_default();
    let wal_level = get(&mut conn, "wal_level").await;
    items.push(if wal_level == "logical" {
        Pass("wal_level: logical".into())
    } else {
        Fail(format!("wal_level: {wal_level} (must be logical); remedy: set wal_level = logical and restart"))
    });
    for name in ["max_replication_slots", "max_wal_senders"] {
        let v = get(&mut conn, name).await;
        items.push(if v.parse::<u32>().unwrap_or(0) > 0 {
            Pass(format!("{name}: {v}"))
        } else {
            Fail(format!("{name}: {v} (must be ≥ 1)"))
        });
    }
    if conn.server_version_num >= 130000 {
        let v = get(&mut conn, "max_slot_wal_keep_size").await;
        items.push(if v == "-1" {
            Warn(
                "max_slot_wal_keep_size: unlimited — while cdc is down the slot keeps all WAL and can fill the disk"
                    .into(),
            )
        } else {
            Pass(format!("max_slot_wal_keep_size: {v} (a slot further behind is invalidated and needs a new snapshot)"))
        });
    }
    // A snapshot opens a catalog connection and `snapshot_connections` readers (the replication
    // connection counts against max_wal_senders instead).
    if let Ok(Some(free)) = conn.query_value(FREE_CONNECTIONS).await {
        let needed = snapshot_connections.max(1) + 1;
        items.push(if free.parse::<usize>().unwrap_or(0) >= needed {
            Pass(format!("connections: {free} free (a snapshot uses {needed})"))
        } else {
            Warn(format!(
                "connections: {free} free, a snapshot uses {needed}; remedy: lower source.snapshot_connections or raise max_connections"
            ))
        });
    }
    let role = conn.query_value("SELECT (rolreplication OR rolsuper)::text FROM pg_roles WHERE rolname = current_user");
    items.push(match role.await.ok().flatten() {
        Some(v) if v == "true" => Pass("privilege: REPLICATION".into()),
        _ => Fail("privilege: REPLICATION missing; remedy: ALTER ROLE <user> REPLICATION".into()),
    });
    match publication_tables(&mut conn, publication).await {
        Ok(Some(tables)) => items.push(Pass(format!("publication {publication}: {} tables", tables.len()))),
        Ok(None) => items.push(Warn(format!(
            "publication {publication}: missing; cdc run creates it (needs CREATE on the database)"
        ))),
        Err(e) => items.push(Fail(format!("publication {publication}: {e}"))),
    }
    match slot(&mut conn, slot_name).await {
        Ok(Some(s)) if s.wal_status.as_deref() == Some("lost") => items.push(Fail(format!(
            "slot {slot_name}: invalidated (wal_status lost); remedy: drop it and take a new snapshot"
        ))),
        Ok(Some(s)) => items.push(Pass(format!(
            "slot {slot_name}: exists, confirmed to {}, {}",
            s.confirmed_flush.map(|l| l.to_string()).unwrap_or_default(),
            if s.active { "in use" } else { "idle" }
        ))),
        Ok(None) => items.push(Pass(format!("slot {slot_name}: missing; cdc run creates it"))),
        Err(e) => items.push(Fail(format!("slot {slot_name}: {e}"))),
    }
    let idents = conn
        .query(
            "SELECT n.nspname, c.relname, c.relreplident::text, \
             EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
        )
        .await
        .unwrap_or_default();
    for r in idents {
        let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let id = TableId::new(get(0), get(1));
        if !filter.matches_id(&id) {
            continue;
        }
        items.push(match (get(2).as_str(), get(3) == "true") {
            ("f", _) => Pass(format!("table {id}: REPLICA IDENTITY FULL")),
            ("d", true) => Pass(format!("table {id}: keyed by its primary key")),
            ("i", _) => Pass(format!("table {id}: keyed by its replica identity index")),
            ("n", _) => Warn(format!("table {id}: REPLICA IDENTITY NOTHING — UPDATE and DELETE fail on the source")),
            _ => Warn(format!(
                "table {id}: no primary key — UPDATE/DELETE cannot be keyed; ALTER TABLE {id} REPLICA IDENTITY FULL"
            )),
        });
    }
    items
}

/// Drops the slot (deliberate cleanup; cdc never drops it on shutdown).
pub async fn drop_slot(p: &super::protocol::ConnectParams, slot_name: &str) -> Result<bool, CdcError> {
    let mut conn = PgConnection::connect(p, false).await?;
    if slot(&mut conn, slot_name).await?.is_none() {
        return Ok(false);
    }
    conn.query(&format!("SELECT pg_drop_replication_slot({})", quote_literal(slot_name))).await?;
    Ok(true)
}

/// The server's current WAL position.
pub async fn current_lsn(p: &super::protocol::ConnectParams) -> Result<Lsn, CdcError> {
    let mut conn = PgConnection::connect(p, false).await?;
    let rows = conn.query("SELECT pg_current_wal_lsn()::text").await?;
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CdcError::transient("pg_current_wal_lsn() returned nothing"))
}

/// How many more client connections the server accepts from a non-superuser.
pub const FREE_CONNECTIONS: &str = "SELECT (current_setting('max_connections')::int \
     - current_setting('superuser_reserved_connections')::int \
     - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'))::text";

/// `TLS` or `unencrypted`: how this connection reaches the server, as the server sees it.
pub async fn transport(conn: &mut PgConnection) -> &'static str {
    match conn.query_true("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").await {
        Ok(true) => "TLS",
        _ => "unencrypted",
    }
}
