//! Position stores: where the last durable position is kept between runs.
//!
//! Contract of every store: `save` is durable when it returns (a crash right after loses
//! nothing), a stored position never moves backward except through an explicit `reset`,
//! and `load` returns exactly what the last successful `save`/`reset` wrote.

mod file;

pub use file::FilePositionStore;

use async_trait::async_trait;

use crate::error::CdcError;
use crate::model::Position;

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
