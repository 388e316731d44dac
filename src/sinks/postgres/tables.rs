//! Target tables: created from the source schema when missing, checked when present, and
//! altered when the source schema changes (add, drop, rename column; type change).

use std::collections::HashMap;
use std::sync::Arc;

use super::binary::{FieldCodec, field_codec};
use super::values::{forced_nullable, target_type};
use crate::error::CdcError;
use crate::model::{ColumnType, TableSchema};
use crate::sinks::SourceEngine;
use crate::sinks::schema_change;
use crate::sources::postgres::protocol::{PgConnection, quote_ident, quote_literal};

/// How changes of one source table are written: quoted names and the fixed SQL parts.
#[derive(Debug)]
pub struct TablePlan {
    /// The source schema this plan was made for.
    pub schema: Arc<TableSchema>,
    /// `"schema"."table"` on the target.
    pub target: String,
    /// Quoted target column names, in source column order.
    pub columns: Vec<String>,
    /// ` ON CONFLICT ("id") DO UPDATE SET "a" = EXCLUDED."a"` (empty for a keyless table).
    pub upsert_tail: String,
    /// Temporary table (this session only, emptied at commit) that upserts are copied into.
    pub stage: String,
    /// What parallel apply may run beside changes of this table.
    pub isolation: Isolation,
    /// How each column is written in binary COPY, when every column can be (else COPY text).
    pub binary: Option<Vec<FieldCodec>>,
}

/// What changes of a table may run beside, on other apply connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Changes of other rows: the primary key is the table's only unique constraint.
    Rows,
    /// Changes of other tables: the table has more unique constraints, which rows of other
    /// keys can meet.
    Table,
    /// Nothing: the table has foreign keys on the target (or is referenced by one).
    Alone,
}

impl TablePlan {
    fn new(schema: Arc<TableSchema>, namespace: &str, stage: &str) -> TablePlan {
        let target = format!("{}.{}", quote_ident(namespace), quote_ident(&schema.id.name));
        let columns: Vec<String> = schema.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let upsert_tail = if schema.key.is_empty() {
            String::new()
        } else {
            let key: Vec<&str> = schema.key.iter().filter_map(|&i| columns.get(i)).map(String::as_str).collect();
            let rest: Vec<String> = columns
                .iter()
                .enumerate()
                .filter(|(i, _)| !schema.key.contains(i))
                .map(|(_, c)| format!("{c} = EXCLUDED.{c}"))
                .collect();
            if rest.is_empty() {
                format!(" ON CONFLICT ({}) DO NOTHING", key.join(","))
            } else {
                format!(" ON CONFLICT ({}) DO UPDATE SET {}", key.join(","), rest.join(", "))
            }
        };
        TablePlan {
            schema,
            target,
            columns,
            upsert_tail,
            stage: format!("pg_temp.{}", quote_ident(stage)),
            isolation: Isolation::Rows,
            binary: None,
        }
    }

    /// The same plan with another staging table (for another connection).
    pub fn with_stage(&self, stage: &str) -> TablePlan {
        TablePlan {
            schema: self.schema.clone(),
            target: self.target.clone(),
            columns: self.columns.clone(),
            upsert_tail: self.upsert_tail.clone(),
            stage: format!("pg_temp.{}", quote_ident(stage)),
            isolation: self.isolation,
            binary: self.binary.clone(),
        }
    }

    /// (Re)creates the staging table on the connection this plan is for.
    pub fn stage_ddl(&self) -> String {
        format!(
            "DROP TABLE IF EXISTS {stage}; CREATE TEMP TABLE {stage} (LIKE {target}) ON COMMIT DELETE ROWS;\n",
            stage = self.stage,
            target = self.target
        )
    }
}

/// One column of an existing target table.
struct TargetColumn {
    name: String,
    not_null: bool,
    has_default: bool,
}

async fn target_columns(conn: &mut PgConnection, target: &str) -> Result<Option<Vec<TargetColumn>>, CdcError> {
    if !conn.query_true(&format!("SELECT to_regclass({}) IS NOT NULL", quote_literal(target))).await? {
        return Ok(None);
    }
    let rows = conn
        .query(&format!(
            "SELECT a.attname, a.attnotnull::text, a.atthasdef::text FROM pg_attribute a \
             WHERE a.attrelid = to_regclass({}) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            quote_literal(target)
        ))
        .await?;
    Ok(Some(
        rows.into_iter()
            .map(|r| {
                let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                TargetColumn { name: get(0), not_null: get(1) == "true", has_default: get(2) == "true" }
            })
            .collect(),
    ))
}

/// Column definition for `CREATE TABLE` / `ADD COLUMN`.
async fn column_definition(
    conn: &mut PgConnection,
    schema: &TableSchema,
    index: usize,
    engine: SourceEngine,
) -> Result<String, CdcError> {
    let column = &schema.columns[index];
    // Extension and user-defined types of a PostgreSQL source keep their type when the
    // target has one of that name.
    let known_other = if engine == SourceEngine::Postgres && column.kind == ColumnType::Other {
        conn.query_true(&format!("SELECT to_regtype({}) IS NOT NULL", quote_literal(&column.source_type))).await?
    } else {
        false
    };
    let ty = target_type(column, engine, known_other);
    let not_null = !column.nullable && !forced_nullable(column, engine) || schema.key.contains(&index);
    Ok(format!("{} {ty}{}", quote_ident(&column.name), if not_null { " NOT NULL" } else { "" }))
}

/// Where and how [`prepare`] makes a target table.
pub struct Preparation<'a> {
    pub namespace: &'a str,
    pub engine: SourceEngine,
    /// Create the table when it is missing.
    pub create: bool,
    pub defer_key: bool,
    /// Name of the staging table to (re)create.
    pub stage: &'a str,
    /// Changes are applied on several connections: read what may run beside the table's.
    pub parallel: bool,
}

/// Makes the target table fit `schema` and returns how to write to it. `previous` is the
/// schema the table was last written under in this run (its changes are replayed); `stage`
/// names the staging table to (re)create for it.
///
/// `defer_key`: a table created here gets its primary key later, from the returned statement
/// (run it before anything but a snapshot row is written): a bulk copy into a table without
/// an index is cheaper than maintaining the index row by row.
pub async fn prepare(
    conn: &mut PgConnection,
    schema: &Arc<TableSchema>,
    previous: Option<&TableSchema>,
    how: &Preparation<'_>,
) -> Result<(TablePlan, Option<String>), CdcError> {
    let mut plan = TablePlan::new(schema.clone(), how.namespace, how.stage);
    let deferred_key = fit_table(conn, &plan, previous, how.namespace, how.engine, how.create, how.defer_key).await?;
    run_ddl(conn, &plan.stage_ddl(), &plan.target).await?;
    if how.parallel {
        plan.isolation = isolation(conn, &plan.target).await?;
    }
    plan.binary = binary_codecs(conn, &plan).await?;
    tracing::info!(table = %plan.target, copy = %if plan.binary.is_some() { "binary" } else { "text" }, "Prepared target table");
    Ok((plan, deferred_key))
}

/// The binary COPY codec of every column, from the target's column types; `None` when one
/// column has none (the table is then written in COPY text).
async fn binary_codecs(conn: &mut PgConnection, plan: &TablePlan) -> Result<Option<Vec<FieldCodec>>, CdcError> {
    let sql = format!(
        "SELECT a.attname, CASE WHEN t.typnamespace = 'pg_catalog'::regnamespace THEN t.typname END \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = {}::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        quote_literal(&plan.target)
    );
    let types: HashMap<String, String> =
        conn.query(&sql).await?.into_iter().filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?))).collect();
    Ok(plan.schema.columns.iter().map(|c| types.get(&c.name).and_then(|t| field_codec(&c.kind, t))).collect())
}

/// What the target's constraints on a table allow parallel apply to run beside its changes.
async fn isolation(conn: &mut PgConnection, target: &str) -> Result<Isolation, CdcError> {
    let table = quote_literal(target);
    let sql = format!(
        "SELECT (SELECT count(*) FROM pg_constraint WHERE contype = 'f' \
                 AND (conrelid = {table}::regclass OR confrelid = {table}::regclass)), \
                (SELECT count(*) FROM pg_index WHERE indrelid = {table}::regclass AND indisunique \
                 AND NOT indisprimary)"
    );
    let rows = conn.query(&sql).await?;
    let count = |i: usize| rows.first().and_then(|r| r.get(i).cloned().flatten()).is_some_and(|n| n != "0");
    Ok(if count(0) {
        Isolation::Alone
    } else if count(1) {
        Isolation::Table
    } else {
        Isolation::Rows
    })
}

/// Creates or adapts the target table; returns the deferred `ADD PRIMARY KEY`, if any.
async fn fit_table(
    conn: &mut PgConnection,
    plan: &TablePlan,
    previous: Option<&TableSchema>,
    namespace: &str,
    engine: SourceEngine,
    create: bool,
    defer_key: bool,
) -> Result<Option<String>, CdcError> {
    let schema = &plan.schema;
    let table_name = format!("{namespace}.{}", schema.id.name);
    let key: Vec<&str> = schema.key.iter().filter_map(|&i| plan.columns.get(i)).map(String::as_str).collect();
    let add_key = (!key.is_empty()).then(|| format!("ALTER TABLE {} ADD PRIMARY KEY ({})", plan.target, key.join(",")));
    let Some(existing) = target_columns(conn, &plan.target).await? else {
        if !create {
            return Err(CdcError::definite(
                format!("target table {table_name} (for source table {}) does not exist", schema.id),
                "create it, or set sink.create_tables = true",
            ));
        }
        let mut defs = Vec::with_capacity(schema.columns.len() + 1);
        for i in 0..schema.columns.len() {
            defs.push(column_definition(conn, schema, i, engine).await?);
        }
        if !key.is_empty() && !defer_key {
            defs.push(format!("PRIMARY KEY ({})", key.join(",")));
        }
        run_ddl(conn, &format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(namespace)), &table_name).await?;
        run_ddl(conn, &format!("CREATE TABLE {} ({})", plan.target, defs.join(", ")), &table_name).await?;
        tracing::info!(table = %table_name, source = %schema.id, key_after_copy = defer_key && add_key.is_some(), "Created target table");
        return Ok(add_key.filter(|_| defer_key));
    };
    // A key deferred by an earlier run that stopped during the copy (or a table created by
    // hand without one): upserts and deletes need it now.
    if let Some(add_key) = &add_key
        && !has_primary_key(conn, &plan.target).await?
    {
        run_ddl(conn, add_key, &table_name).await?;
        tracing::info!(table = %table_name, "Added the primary key to the target table");
    }

    let on_target: Vec<&str> = existing.iter().map(|c| c.name.as_str()).collect();
    if let Some(prev) = previous {
        replay_schema_change(conn, plan, prev, schema, engine, &on_target).await?;
        return Ok(None);
    }
    for (i, column) in schema.columns.iter().enumerate() {
        if !on_target.contains(&column.name.as_str()) {
            add_column(conn, plan, schema, i, engine).await?;
        }
    }
    if let Some(c) =
        existing.iter().find(|c| c.not_null && !c.has_default && !schema.columns.iter().any(|s| s.name == c.name))
    {
        return Err(CdcError::definite(
            format!(
                "target table {table_name} has a NOT NULL column {} without a default that source table {} lacks: \
                 inserts would fail",
                c.name, schema.id
            ),
            "drop the column, give it a default, or make it nullable",
        ));
    }
    Ok(None)
}

async fn has_primary_key(conn: &mut PgConnection, target: &str) -> Result<bool, CdcError> {
    let sql =
        format!("SELECT count(*) FROM pg_index WHERE indrelid = {}::regclass AND indisprimary", quote_literal(target));
    Ok(conn.query_value(&sql).await?.is_some_and(|n| n != "0"))
}

/// Whether the change from `old` to `new` can be replayed (`replay_schema_change` would refuse
/// it otherwise).
pub fn replayable(old: &TableSchema, new: &TableSchema, engine: SourceEngine) -> Result<(), CdcError> {
    schema_change::diff(old, new, |a, b| target_type(a, engine, false) == target_type(b, engine, false)).map(|_| ())
}

/// Replays a source schema change: added, dropped and renamed columns, changed types.
async fn replay_schema_change(
    conn: &mut PgConnection,
    plan: &TablePlan,
    old: &TableSchema,
    new: &TableSchema,
    engine: SourceEngine,
    on_target: &[&str],
) -> Result<(), CdcError> {
    let table_name = &plan.target;
    let change = schema_change::diff(old, new, |a, b| target_type(a, engine, false) == target_type(b, engine, false))?;
    if let Some((from, at)) = &change.renamed {
        let to = &new.columns[*at].name;
        let sql = format!("ALTER TABLE {} RENAME COLUMN {} TO {}", plan.target, quote_ident(from), quote_ident(to));
        run_ddl(conn, &sql, table_name).await?;
        tracing::info!(table = %table_name, from = %from, to = %to, "Renamed column");
    }
    for name in &change.dropped {
        if on_target.contains(&name.as_str()) {
            run_ddl(conn, &format!("ALTER TABLE {} DROP COLUMN {}", plan.target, quote_ident(name)), table_name)
                .await?;
            tracing::info!(table = %table_name, column = %name, "Dropped column");
        }
    }
    for &i in &change.added {
        if !on_target.contains(&new.columns[i].name.as_str()) {
            add_column(conn, plan, new, i, engine).await?;
        }
    }
    for &i in &change.retyped {
        let column = &new.columns[i];
        let ty = target_type(column, engine, false);
        let name = quote_ident(&column.name);
        let sql = format!("ALTER TABLE {} ALTER COLUMN {name} TYPE {ty} USING {name}::{ty}", plan.target);
        run_ddl(conn, &sql, table_name).await?;
        tracing::info!(table = %table_name, column = %column.name, to = %ty, "Changed column type");
    }
    Ok(())
}

/// `ADD COLUMN`; the rows already there get the column's `existing_rows_value` (through a
/// default, dropped right after: cdc writes every column of the rows it writes).
async fn add_column(
    conn: &mut PgConnection,
    plan: &TablePlan,
    schema: &TableSchema,
    index: usize,
    engine: SourceEngine,
) -> Result<(), CdcError> {
    let column = &schema.columns[index];
    let mut sql =
        format!("ALTER TABLE {} ADD COLUMN {}", plan.target, column_definition(conn, schema, index, engine).await?);
    let mut fill = String::new();
    if let Some(value) = &column.existing_rows_value
        && super::values::write_literal(&mut fill, value, column).is_ok()
    {
        sql.push_str(&format!(
            " DEFAULT {fill}; ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT",
            plan.target,
            quote_ident(&column.name)
        ));
    }
    run_ddl(conn, &sql, &plan.target).await?;
    tracing::info!(table = %plan.target, column = %column.name, existing_rows = %fill, "Added column to the target table");
    Ok(())
}

async fn run_ddl(conn: &mut PgConnection, sql: &str, table: &str) -> Result<(), CdcError> {
    match conn.simple_query(sql, |_| Ok(())).await? {
        Ok(_) => Ok(()),
        Err(e) => Err(CdcError::definite(
            format!("the target refused `{sql}` for table {table}: {e}"),
            "fix the target table by hand (or let cdc create it), then restart",
        )),
    }
}
