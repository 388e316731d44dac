//! The change-event model shared by all sources and sinks.

mod event;
mod gtid;
mod position;
mod schema;
pub mod value;

pub use event::{Batch, ChangeEvent, Op, Row, SnapshotMarker, SourceInfo, SourceMeta, TxInfo};
pub use gtid::{GtidSet, MariaDbGtid, MariaDbGtidList, MySqlGtidSet};
pub use position::{
    BinlogCoordinates, Lsn, MySqlPosition, PgPosition, Position, PositionError, SnapshotProgress, TableProgress,
};
pub use schema::{Column, ColumnType, TableId, TableSchema};
pub use value::{Value, write_hex_digits};

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    now_us() / 1000
}

/// Wall-clock microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
