//! The position kept in the target database (`positions.store = "sink"`): one row per
//! pipeline in the positions table, written by the database sink in the same transaction as
//! the changes it covers. This store only reads it, and writes it for `--from` and
//! `positions set`; the checkpointer's saves are already durable when it is asked.

use async_trait::async_trait;

use super::PositionStore;
use crate::config::{DbSinkConfig, SinkConfig};
use crate::error::CdcError;
use crate::model::Position;
use crate::sinks::{mysql, postgres};
use crate::sources::postgres::protocol::{ConnectParams, PgConnection, quote_literal};
use mysql_async::prelude::Queryable;

pub struct SinkPositionStore {
    target: Target,
    table: String,
    name: String,
}

enum Target {
    Postgres(ConnectParams),
    MySql(String),
}

impl SinkPositionStore {
    /// The store of a database sink; `None` for other sinks.
    pub fn for_sink(sink: &SinkConfig, name: &str) -> Option<SinkPositionStore> {
        match sink {
            SinkConfig::Postgres(d) => Some(SinkPositionStore::postgres(d, name)),
            SinkConfig::Mysql(d) => Some(SinkPositionStore::mysql(d, name)),
            _ => None,
        }
    }

    fn postgres(config: &DbSinkConfig, name: &str) -> SinkPositionStore {
        SinkPositionStore {
            target: Target::Postgres(ConnectParams::from_url(config.url.url())),
            table: config.positions_table.clone(),
            name: name.to_string(),
        }
    }

    fn mysql(config: &DbSinkConfig, name: &str) -> SinkPositionStore {
        SinkPositionStore {
            target: Target::MySql(config.url.expose().to_string()),
            table: mysql::positions_table_name(&config.positions_table),
            name: name.to_string(),
        }
    }

    /// The stored position and when it was saved (ms since the epoch).
    pub async fn read(&self) -> Result<Option<(Position, i64)>, CdcError> {
        let row = match &self.target {
            Target::Postgres(params) => self.read_postgres(params).await?,
            Target::MySql(url) => self.read_mysql(url).await?,
        };
        let Some((text, saved_at)) = row else { return Ok(None) };
        let position: Position = text.parse().map_err(|e| {
            CdcError::definite(
                format!("{} holds `{text}` for {}, which is not a position: {e}", self.describe(), self.name),
                "fix the row with `cdc positions set`, or delete it and start from a snapshot",
            )
        })?;
        Ok(Some((position, saved_at)))
    }

    async fn read_mysql(&self, url: &str) -> Result<Option<(String, i64)>, CdcError> {
        let mut conn = crate::sources::mysql::server::connect(url, "sink.url").await?;
        let err = crate::sources::mysql::server::sql_err("reading the stored position");
        let (db, table) = self.table.split_once('.').unwrap_or(("`cdc`", &self.table));
        let unquote = |s: &str| s.trim_matches('`').replace("``", "`");
        let exists: Option<i64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (unquote(db), unquote(table)),
            )
            .await
            .map_err(&err)?;
        if exists.unwrap_or(0) == 0 {
            return Ok(None);
        }
        let row: Option<(String, i64)> = conn
            .exec_first(
                format!(
                    "SELECT position, CAST(UNIX_TIMESTAMP(saved_at) * 1000 AS SIGNED) FROM {} WHERE name = ?",
                    self.table
                ),
                (&self.name,),
            )
            .await
            .map_err(&err)?;
        Ok(row)
    }

    async fn read_postgres(&self, params: &ConnectParams) -> Result<Option<(String, i64)>, CdcError> {
        let mut conn = PgConnection::connect(params, false).await?;
        if !conn.query_true(&format!("SELECT to_regclass({}) IS NOT NULL", quote_literal(&self.table))).await? {
            return Ok(None);
        }
        let rows = conn
            .query(&format!(
                "SELECT position, (extract(epoch from saved_at) * 1000)::bigint::text FROM {} WHERE name = {}",
                self.table,
                quote_literal(&self.name)
            ))
            .await?;
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let text = row.first().cloned().flatten().unwrap_or_default();
        let saved_at = row.get(1).cloned().flatten().and_then(|t| t.parse().ok()).unwrap_or(0);
        Ok(Some((text, saved_at)))
    }
}

#[async_trait]
impl PositionStore for SinkPositionStore {
    async fn load(&self) -> Result<Option<Position>, CdcError> {
        Ok(self.read().await?.map(|(p, _)| p))
    }

    async fn save(&self, _position: &Position) -> Result<bool, CdcError> {
        // The sink committed it with the changes it covers.
        Ok(true)
    }

    async fn reset(&self, position: &Position) -> Result<(), CdcError> {
        match &self.target {
            Target::Postgres(params) => {
                let mut conn = PgConnection::connect(params, false).await?;
                conn.query(&postgres::positions_table_ddl(&self.table)).await?;
                conn.query(postgres::position_upsert(&self.table, &self.name, position).trim_end()).await?;
            }
            Target::MySql(url) => {
                let mut conn = crate::sources::mysql::server::connect(url, "sink.url").await?;
                let err = crate::sources::mysql::server::sql_err("writing the stored position");
                conn.query_drop(mysql::SESSION_SETUP).await.map_err(&err)?;
                for sql in mysql::positions_table_ddl(&self.table) {
                    conn.query_drop(sql).await.map_err(&err)?;
                }
                conn.query_drop(mysql::position_upsert(&self.table, &self.name, position)).await.map_err(&err)?;
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Postgres(p) => format!("table {} in {}:{}/{}", self.table, p.host, p.port, p.database),
            Target::MySql(url) => {
                let host = url::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(|h| format!("{h}:{}", u.port().unwrap_or(3306))));
                format!("table {} in {}", self.table, host.unwrap_or_default())
            }
        }
    }
}
