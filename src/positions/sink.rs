//! The position kept in the target database (`positions.store = "sink"`): one row per
//! pipeline in the positions table, written by the database sink in the same transaction as
//! the changes it covers. This store only reads it, and writes it for `--from` and
//! `positions set`; the checkpointer's saves are already durable when it is asked.

use async_trait::async_trait;

use super::PositionStore;
use crate::config::DbSinkConfig;
use crate::error::CdcError;
use crate::model::Position;
use crate::sinks::postgres::{position_upsert, positions_table_ddl};
use crate::sources::postgres::protocol::{ConnectParams, PgConnection, quote_literal};

pub struct SinkPositionStore {
    params: ConnectParams,
    table: String,
    name: String,
}

impl SinkPositionStore {
    pub fn postgres(config: &DbSinkConfig, name: &str) -> SinkPositionStore {
        SinkPositionStore {
            params: ConnectParams::from_url(config.url.url()),
            table: config.positions_table.clone(),
            name: name.to_string(),
        }
    }

    async fn connect(&self) -> Result<PgConnection, CdcError> {
        PgConnection::connect(&self.params, false).await
    }

    /// The stored position and when it was saved (ms since the epoch).
    pub async fn read(&self) -> Result<Option<(Position, i64)>, CdcError> {
        let mut conn = self.connect().await?;
        let exists = conn.query(&format!("SELECT to_regclass({}) IS NOT NULL", quote_literal(&self.table))).await?;
        if exists.first().and_then(|r| r.first()).cloned().flatten().as_deref() != Some("t") {
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
        let position: Position = text.parse().map_err(|e| {
            CdcError::definite(
                format!("{} holds `{text}` for {}, which is not a position: {e}", self.describe(), self.name),
                "fix the row with `cdc positions set`, or delete it and start from a snapshot",
            )
        })?;
        let saved_at = row.get(1).cloned().flatten().and_then(|t| t.parse().ok()).unwrap_or(0);
        Ok(Some((position, saved_at)))
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
        let mut conn = self.connect().await?;
        conn.query(&positions_table_ddl(&self.table)).await?;
        conn.query(position_upsert(&self.table, &self.name, position).trim_end()).await?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("table {} in {}:{}/{}", self.table, self.params.host, self.params.port, self.params.database)
    }
}
