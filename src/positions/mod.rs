//! Position stores: where the last durable position is kept between runs.
//!
//! Contract of every store: `save` is durable when it returns (a crash right after loses
//! nothing), a stored position never moves backward except through an explicit `reset`,
//! and `load` returns exactly what the last successful `save`/`reset` wrote.

mod file;
mod kafka;
mod sink;

pub use file::FilePositionStore;
pub use kafka::KafkaPositionStore;
pub use sink::SinkPositionStore;

use std::cmp::Ordering;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::CdcError;
use crate::model::{Position, now_ms};

#[async_trait]
pub trait PositionStore: Send + Sync {
    /// The last saved position, if any.
    async fn load(&self) -> Result<Option<Position>, CdcError>;

    /// Durably records `position` as the resume point. A position older than the stored one
    /// is not written (returns `Ok(false)`); positions that cannot be compared with the stored
    /// one (another source, diverged GTID sets) are a definite error.
    async fn save(&self, position: &Position) -> Result<bool, CdcError>;

    /// Overwrites the stored position, even with an older one (`--from`, `positions set`).
    async fn reset(&self, position: &Position) -> Result<(), CdcError>;

    /// Human-readable location for logs (`file ./cdc-state/positions.json`).
    fn describe(&self) -> String;
}

/// A stored position, version 1: the content of the position file and of each record in the
/// Kafka positions topic. Golden-tested: do not change field meanings.
#[derive(Debug, Serialize, Deserialize)]
pub struct PositionRecord {
    pub format: u32,
    /// Logical server name of the pipeline that wrote it.
    pub name: String,
    /// Everything before this point is durable in the sink.
    pub position: Position,
    /// Wall-clock time of the write, ms since the Unix epoch.
    pub saved_at_ms: i64,
}

impl PositionRecord {
    /// Pretty JSON with a trailing newline, stamped with the current time.
    pub fn encode(name: &str, position: &Position) -> Vec<u8> {
        let record =
            PositionRecord { format: 1, name: name.to_string(), position: position.clone(), saved_at_ms: now_ms() };
        // Serializing plain strings and numbers cannot fail.
        let mut bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// `whence` names where the bytes came from, for the error message.
    pub fn decode(bytes: &[u8], whence: &str) -> Result<PositionRecord, CdcError> {
        let record: PositionRecord = serde_json::from_slice(bytes).map_err(|e| {
            CdcError::definite(
                format!("{whence} is not a valid stored position: {e}"),
                "restore it from a backup, or remove it and start from a snapshot or --from POSITION",
            )
        })?;
        if record.format != 1 {
            return Err(CdcError::definite(
                format!("{whence} has format {}, this cdc reads format 1", record.format),
                "run the cdc version that wrote it",
            ));
        }
        Ok(record)
    }
}

/// Decides whether `position` should be written over `stored`: `Some(false)` when it is older
/// (never move backward), `Some(true)` when it is the same, `None` when it must be written.
fn needs_write(
    stored: Option<&Position>,
    position: &Position,
    remedy: impl FnOnce() -> String,
) -> Result<Option<bool>, CdcError> {
    let Some(stored) = stored else { return Ok(None) };
    match position.compare(stored) {
        Ok(Ordering::Less) => Ok(Some(false)),
        Ok(Ordering::Equal) if position == stored => Ok(Some(true)),
        Ok(_) => Ok(None),
        Err(e) => Err(CdcError::definite(format!("cannot save {position} over stored {stored}: {e}"), remedy())),
    }
}
