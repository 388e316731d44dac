//! Sources: where change events come from.

pub mod filter;
pub mod mysql;
pub mod postgres;
pub mod reader;
pub mod snapshot;

use std::fmt;

use crate::config::{Config, SourceConfig};
use crate::error::CdcError;
use crate::model::Position;
use crate::pipeline::Source;

/// One line of `cdc check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckItem {
    Pass(String),
    Warn(String),
    Fail(String),
}

impl CheckItem {
    pub fn is_fail(&self) -> bool {
        matches!(self, CheckItem::Fail(_))
    }
}

impl fmt::Display for CheckItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckItem::Pass(s) => write!(f, "PASS {s}"),
            CheckItem::Warn(s) => write!(f, "WARN {s}"),
            CheckItem::Fail(s) => write!(f, "FAIL {s}"),
        }
    }
}

/// Builds the configured source.
pub fn build(config: &Config) -> Result<Box<dyn Source>, CdcError> {
    match &config.source {
        SourceConfig::Mysql(m) => Ok(Box::new(mysql::MySqlSource::new(config, m))),
        SourceConfig::Postgres(p) => Ok(Box::new(postgres::PgSource::new(config, p))),
    }
}

/// Preflight checks of the configured source.
pub async fn check(config: &Config) -> Vec<CheckItem> {
    match &config.source {
        SourceConfig::Mysql(m) => mysql::server::check(m.url.expose(), m.server_id).await,
        SourceConfig::Postgres(p) => {
            let (slot, publication) = pg_names(config, p);
            let params = postgres::protocol::ConnectParams::from_url(p.url.url());
            let filter = filter::TableFilter::new(&p.tables, &p.exclude_tables);
            postgres::catalog::check(&params, (&slot, &publication), &filter, p.snapshot_connections).await
        }
    }
}

/// The source's current head position, for `positions show`.
pub async fn current_position(config: &Config) -> Result<Option<Position>, CdcError> {
    match &config.source {
        SourceConfig::Mysql(m) => {
            let mut conn = mysql::server::connect(m.url.expose(), "source.url").await?;
            let facts = mysql::server::ServerFacts::read(&mut conn).await?;
            Ok(Some(Position::MySql(mysql::server::current_position(&mut conn, &facts).await?)))
        }
        SourceConfig::Postgres(p) => {
            let params = postgres::protocol::ConnectParams::from_url(p.url.url());
            let lsn = postgres::catalog::current_lsn(&params).await?;
            Ok(Some(Position::Postgres(crate::model::PgPosition { lsn, tx_lsn: None, snapshot: None })))
        }
    }
}

/// Slot and publication names of a PostgreSQL source (configured, or `cdc_<name>`).
pub fn pg_names(config: &Config, p: &crate::config::PgSourceConfig) -> (String, String) {
    let default = config.default_pg_name();
    (p.slot.clone().unwrap_or_else(|| default.clone()), p.publication.clone().unwrap_or(default))
}

/// `cdc slot drop`: drops the PostgreSQL replication slot.
pub async fn drop_slot(config: &Config) -> Result<String, CdcError> {
    match &config.source {
        SourceConfig::Postgres(p) => {
            let (slot, _) = pg_names(config, p);
            let params = postgres::protocol::ConnectParams::from_url(p.url.url());
            Ok(if postgres::catalog::drop_slot(&params, &slot).await? {
                format!("replication slot {slot} dropped")
            } else {
                format!("replication slot {slot} does not exist")
            })
        }
        SourceConfig::Mysql(_) => Err(CdcError::definite("MySQL sources have no replication slot", "nothing to drop")),
    }
}

/// How far `stored` is behind `current`, in words.
pub fn describe_gap(stored: &Position, current: &Position) -> String {
    match (stored, current) {
        (Position::Postgres(a), Position::Postgres(b)) => {
            format!("{} bytes of WAL", b.lsn.0.saturating_sub(a.lsn.0))
        }
        _ => match stored.compare(current) {
            Ok(std::cmp::Ordering::Equal) => "nothing (up to date)".into(),
            Ok(_) => format!("from {stored} to {current}"),
            Err(e) => format!("unknown: {e}"),
        },
    }
}

/// After a resumed snapshot, the changes between the snapshot's position and the start of the
/// resumed read are streamed over rows that may already hold them. Batches up to a checkpoint
/// at or past `until` (where the resumed read began, or later) are marked `may_repeat`.
#[derive(Default)]
pub struct RepeatWindow {
    until: Option<crate::model::Position>,
}

impl RepeatWindow {
    pub fn until(until: Option<crate::model::Position>) -> RepeatWindow {
        RepeatWindow { until }
    }

    pub fn mark(&mut self, mut batch: crate::model::Batch) -> crate::model::Batch {
        if let Some(until) = &self.until {
            batch.may_repeat = true;
            if let Some(c) = &batch.checkpoint
                && c.compare(until).is_ok_and(|o| o != std::cmp::Ordering::Less)
            {
                self.until = None;
            }
        }
        batch
    }
}

/// Sets the columns' `existing_rows_value` from (column, text) pairs: PostgreSQL's
/// `attmissingval`, or a MySQL `ADD COLUMN … DEFAULT` constant, parsed as PostgreSQL text. A
/// text that does not parse as the column's type is left out (the replica then reads NULL
/// there, as without it), and so are the kinds `skip` names.
pub fn with_existing_rows_values(
    mut schema: std::sync::Arc<crate::model::TableSchema>,
    values: &[(String, String)],
    skip: impl Fn(&crate::model::ColumnType) -> bool,
) -> std::sync::Arc<crate::model::TableSchema> {
    if values.is_empty() {
        return schema;
    }
    let table = std::sync::Arc::make_mut(&mut schema);
    for column in &mut table.columns {
        let Some((_, text)) = values.iter().find(|(name, _)| *name == column.name) else { continue };
        if skip(&column.kind) {
            continue;
        }
        let mut parsed = Vec::with_capacity(1);
        if postgres::types::push_text(&column.kind, text, &mut parsed).is_ok() {
            column.existing_rows_value = parsed.pop();
        }
    }
    schema
}
