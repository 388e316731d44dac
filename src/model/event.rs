//! The change event every source produces and every sink consumes.

use std::sync::Arc;

use super::{Position, TableSchema, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Update,
    Delete,
    /// A row read by a snapshot.
    Read,
    Truncate,
}

impl Op {
    /// Debezium's one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// Column values in the order of [`TableSchema::columns`].
pub type Row = Vec<Value>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotMarker {
    /// A streamed change.
    No,
    /// A snapshot row; `First`/`Last` mark the snapshot's first and last rows.
    First,
    Yes,
    Last,
}

impl SnapshotMarker {
    /// Debezium's `source.snapshot` string.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::No => "false",
            SnapshotMarker::First => "first",
            SnapshotMarker::Yes => "true",
            SnapshotMarker::Last => "last",
        }
    }
}

/// Engine-specific facts about where a change came from (Debezium's `source` block).
#[derive(Clone, Debug, PartialEq)]
pub enum SourceMeta {
    MySql {
        server_id: u32,
        /// GTID of the transaction (`uuid:n` or `domain-server-seq`).
        gtid: Option<Arc<str>>,
        file: Arc<str>,
        /// Offset of the event that carried the row.
        pos: u64,
        /// Index of the row within its rows event.
        row: u32,
        thread: Option<u64>,
        query: Option<String>,
    },
    Postgres {
        /// Database name (Debezium's `source.db`).
        database: Arc<str>,
        tx_id: Option<u32>,
        /// LSN of the change itself.
        lsn: u64,
        /// LSN of the previous commit (Debezium's `sequence[0]`).
        last_commit_lsn: Option<u64>,
        xmin: Option<u64>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    /// Commit time on the source, milliseconds since the Unix epoch.
    pub ts_ms: i64,
    pub snapshot: SnapshotMarker,
    pub meta: SourceMeta,
}

/// Transaction block (Debezium's `transaction`): id, and order of this event in it.
#[derive(Clone, Debug, PartialEq)]
pub struct TxInfo {
    pub id: String,
    pub total_order: u64,
    pub data_collection_order: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    /// The schema the row was written under.
    pub table: Arc<TableSchema>,
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub source: SourceInfo,
    pub transaction: Option<TxInfo>,
}

impl ChangeEvent {
    /// The row that identifies the changed record: `after` for inserts and updates, else `before`.
    pub fn key_row(&self) -> Option<&Row> {
        self.after.as_ref().or(self.before.as_ref())
    }
}

/// Events a source hands to the pipeline in one go, in source order.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub events: Vec<ChangeEvent>,
    /// Set when the batch ends on a transaction boundary: once this batch and all before it are
    /// durable in the sink, the source can resume from here without losing a change.
    pub checkpoint: Option<Position>,
    /// Source time of the newest change in the batch (ms since epoch), for lag reporting.
    pub source_ts_ms: Option<i64>,
    /// The changes may already be in the sink (streamed again after a resumed snapshot):
    /// a sink must not assume an insert is a new row.
    pub may_repeat: bool,
    /// Set by the runtime when the next batch was already waiting as this one went to the sink
    /// (catching up): a database sink may leave its transaction open over this checkpoint and
    /// commit with a later one, which costs no latency because the next batch is right there.
    pub more_queued: bool,
}

impl Batch {
    /// Cuts a batch from a source's accumulated `events`. `checkpoint` is the newest
    /// transaction boundary with the number of events before it: events after the boundary
    /// stay in `events` for the next batch, so a checkpoint always ends its batch (a sink
    /// committing "up to the checkpoint" commits exactly the batch).
    pub fn cut(
        events: &mut Vec<ChangeEvent>,
        checkpoint: Option<(Position, usize)>,
        source_ts_ms: Option<i64>,
    ) -> Batch {
        // The next batch starts with room for as many events as this one: growing a vector
        // from empty again for each batch copied every event a few times into fresh pages.
        let capacity = events.capacity();
        match checkpoint {
            Some((position, at)) if at < events.len() => {
                let mut rest = Vec::with_capacity(capacity);
                rest.extend(events.drain(at..));
                Batch {
                    events: std::mem::replace(events, rest),
                    checkpoint: Some(position),
                    source_ts_ms,
                    ..Batch::default()
                }
            }
            checkpoint => Batch {
                events: std::mem::replace(events, Vec::with_capacity(capacity)),
                checkpoint: checkpoint.map(|(p, _)| p),
                source_ts_ms,
                ..Batch::default()
            },
        }
    }

    /// The last batch of a stopping source: the events up to its newest transaction boundary,
    /// or nothing without one. The open transaction's events are read again after the restart
    /// (the position is before them): sent now, a sink that delivers at least once would
    /// deliver them twice, and a database sink would roll them back at its flush together
    /// with the whole transactions it was grouping with them.
    pub fn cut_for_stop(
        events: &mut Vec<ChangeEvent>,
        checkpoint: Option<(Position, usize)>,
        source_ts_ms: Option<i64>,
    ) -> Option<Batch> {
        checkpoint.map(|checkpoint| Batch::cut(events, Some(checkpoint), source_ts_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Lsn, PgPosition, TableId};

    fn event(lsn: u64) -> ChangeEvent {
        let table = Arc::new(TableSchema { id: TableId::new("s", "t"), columns: vec![], key: vec![], version: 0 });
        ChangeEvent {
            op: Op::Create,
            table,
            before: None,
            after: Some(vec![]),
            source: SourceInfo {
                ts_ms: 0,
                snapshot: SnapshotMarker::No,
                meta: SourceMeta::Postgres {
                    database: "d".into(),
                    tx_id: None,
                    lsn,
                    last_commit_lsn: None,
                    xmin: None,
                },
            },
            transaction: None,
        }
    }

    fn lsns(events: &[ChangeEvent]) -> Vec<u64> {
        events
            .iter()
            .map(|e| match e.source.meta {
                SourceMeta::Postgres { lsn, .. } => lsn,
                _ => unreachable!(),
            })
            .collect()
    }

    fn at(lsn: u64) -> Position {
        Position::Postgres(PgPosition { lsn: Lsn(lsn), tx_lsn: None, snapshot: None })
    }

    #[test]
    fn a_checkpoint_ends_its_batch() {
        // Two events of a committed transaction, then two of one still open.
        let mut pending: Vec<ChangeEvent> = [1, 2, 3, 4].map(event).to_vec();
        let batch = Batch::cut(&mut pending, Some((at(2), 2)), Some(7));
        assert_eq!(lsns(&batch.events), [1, 2]);
        assert_eq!(batch.checkpoint, Some(at(2)));
        assert_eq!(lsns(&pending), [3, 4], "the open transaction waits for the next batch");
        // No boundary: everything goes, without a checkpoint.
        let batch = Batch::cut(&mut pending, None, None);
        assert_eq!((lsns(&batch.events), batch.checkpoint), (vec![3, 4], None));
        assert!(pending.is_empty());
        // A boundary after the last event: everything goes, with it.
        let mut pending: Vec<ChangeEvent> = [5].map(event).to_vec();
        let batch = Batch::cut(&mut pending, Some((at(5), 1)), None);
        assert_eq!((lsns(&batch.events), batch.checkpoint), (vec![5], Some(at(5))));
    }

    #[test]
    fn a_stopping_source_sends_whole_transactions_only() {
        let mut pending: Vec<ChangeEvent> = [1, 2, 3].map(event).to_vec();
        let batch = Batch::cut_for_stop(&mut pending, Some((at(2), 2)), None).expect("a batch");
        assert_eq!((lsns(&batch.events), batch.checkpoint), (vec![1, 2], Some(at(2))));
        // Only an open transaction: nothing to send.
        assert!(Batch::cut_for_stop(&mut pending, None, None).is_none());
    }
}
