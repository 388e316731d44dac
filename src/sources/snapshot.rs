//! What both sources' initial snapshots share: turning rows, read table by table in key order
//! (by one connection or several), into batches with the snapshot markers and checkpoints that
//! say how far the snapshot got.
//!
//! A reader sends `SnapshotChunk`s: rows of one table, the key of the last one, and whether the
//! table is finished. `SnapshotBatcher` keeps each table's state (pending, last key delivered,
//! done), marks the snapshot's first row `first`, puts a checkpoint with the progress on a batch
//! every `chunk_rows` rows, and holds one batch back so the snapshot's final row can be marked
//! `last` when it is known to be the final one.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::admin::Metrics;
use crate::error::CdcError;
use crate::model::{Batch, ChangeEvent, Position, SnapshotMarker, SnapshotProgress, TableId, TableProgress};

/// Rows of one table, in key order.
pub struct SnapshotChunk {
    /// Index of the table in the snapshot's table list.
    pub table: usize,
    pub events: Vec<ChangeEvent>,
    /// Key of the chunk's last row (tables with a primary key).
    pub last_key: Option<Vec<Vec<u8>>>,
    /// The table's last chunk.
    pub finished: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TableState {
    Pending,
    /// Started; rows up to this key delivered (`None`: none yet, or no key).
    Reading(Option<Vec<Vec<u8>>>),
    Done,
}

/// A table still to read, and after which key (a resumed read).
pub struct TableRead {
    pub index: usize,
    pub id: TableId,
    pub after: Option<Vec<Vec<u8>>>,
}

/// The tables left to read, shared by a snapshot's reader connections: each takes the next.
pub struct TableQueue(Mutex<VecDeque<TableRead>>);

impl TableQueue {
    pub fn new(tables: Vec<TableRead>) -> TableQueue {
        TableQueue(Mutex::new(tables.into()))
    }

    /// The next table to read; `None` once all are taken.
    pub fn next(&self) -> Result<Option<TableRead>, CdcError> {
        Ok(self.0.lock().map_err(|_| CdcError::transient("snapshot queue poisoned"))?.pop_front())
    }
}

pub struct SnapshotBatcher {
    tables: Vec<TableId>,
    states: Vec<TableState>,
    /// The snapshot's position: streaming starts there.
    start: Position,
    resumed: bool,
    chunk_rows: usize,
    ts_ms: i64,
    rows: Vec<u64>,
    total: u64,
    since_checkpoint: usize,
    last_log: Instant,
    held: Option<Batch>,
}

impl SnapshotBatcher {
    /// A snapshot of `tables` (in snapshot order) taken at `start`, going on after `resume`.
    pub fn new(
        tables: Vec<TableId>,
        start: Position,
        resume: Option<&SnapshotProgress>,
        chunk_rows: usize,
        ts_ms: i64,
    ) -> SnapshotBatcher {
        let states = initial_states(&tables, resume);
        SnapshotBatcher {
            rows: vec![0; tables.len()],
            tables,
            states,
            start,
            resumed: resume.is_some(),
            chunk_rows: chunk_rows.max(1),
            ts_ms,
            total: 0,
            since_checkpoint: 0,
            last_log: Instant::now(),
            held: None,
        }
    }

    /// The tables left to read, in snapshot order.
    pub fn to_read(&self) -> Vec<TableRead> {
        self.states
            .iter()
            .enumerate()
            .filter_map(|(index, state)| {
                let after = match state {
                    TableState::Done => return None,
                    TableState::Reading(after) => after.clone(),
                    TableState::Pending => None,
                };
                Some(TableRead { index, id: self.tables[index].clone(), after })
            })
            .collect()
    }

    pub fn tables(&self) -> &[TableId] {
        &self.tables
    }

    /// Takes a chunk; returns a batch ready to send, if one is.
    pub fn push(&mut self, mut chunk: SnapshotChunk, status: &Metrics) -> Option<Batch> {
        if self.total == 0
            && !self.resumed
            && let Some(first) = chunk.events.first_mut()
        {
            first.source.snapshot = SnapshotMarker::First;
        }
        let n = chunk.events.len();
        self.total += n as u64;
        self.rows[chunk.table] += n as u64;
        self.since_checkpoint += n;
        let id = &self.tables[chunk.table];
        let rows = self.rows[chunk.table];
        self.states[chunk.table] = if chunk.finished {
            tracing::info!(table = %id, rows, "Snapshot of table finished");
            TableState::Done
        } else {
            TableState::Reading(chunk.last_key)
        };
        let done = self.states.iter().filter(|s| **s == TableState::Done).count();
        status.set_snapshot_progress(Some(format!("{done}/{} tables, {} rows", self.tables.len(), self.total)));
        if self.last_log.elapsed() > Duration::from_secs(10) {
            tracing::info!(table = %id, rows, total = self.total, "Snapshot in progress");
            self.last_log = Instant::now();
        }
        let checkpoint = (self.since_checkpoint >= self.chunk_rows).then(|| {
            self.since_checkpoint = 0;
            self.start.with_snapshot(progress(&self.tables, &self.states))
        });
        if chunk.events.is_empty() && checkpoint.is_none() {
            return None;
        }
        let batch = Batch { events: chunk.events, checkpoint, source_ts_ms: Some(self.ts_ms), ..Batch::default() };
        self.held.replace(batch)
    }

    /// The final batch, once every table is done: its last row marked `last`, its checkpoint
    /// the snapshot's position (the snapshot is complete).
    pub fn finish(self, status: &Metrics) -> Result<Batch, CdcError> {
        if let Some(unread) = self.states.iter().position(|s| *s != TableState::Done) {
            return Err(CdcError::transient(format!("snapshot of {} did not finish", self.tables[unread])));
        }
        let mut last = self.held.unwrap_or(Batch {
            events: Vec::new(),
            checkpoint: None,
            source_ts_ms: Some(self.ts_ms),
            ..Batch::default()
        });
        if let Some(event) = last.events.last_mut() {
            event.source.snapshot =
                if self.total == 1 && !self.resumed { SnapshotMarker::First } else { SnapshotMarker::Last };
        }
        last.checkpoint = Some(self.start.clone());
        tracing::info!(rows = self.total, position = %self.start, "Snapshot finished");
        status.set_snapshot_progress(None);
        Ok(last)
    }
}

/// Each table's state when the snapshot starts (or goes on after `resume`).
fn initial_states(tables: &[TableId], resume: Option<&SnapshotProgress>) -> Vec<TableState> {
    let mut states = vec![TableState::Pending; tables.len()];
    let Some(progress) = resume else { return states };
    let find = |t: &(String, String)| tables.iter().position(|id| *id.namespace == *t.0 && *id.name == *t.1);
    let Some(first) = find(&progress.table) else {
        tracing::warn!(
            table = %format!("{}.{}", progress.table.0, progress.table.1),
            "The table the snapshot stopped in is gone: reading every table again"
        );
        return states;
    };
    states[..first].fill(TableState::Done);
    states[first] = TableState::Reading(progress.after_key());
    for table in &progress.also {
        if let Some(i) = find(&table.table).filter(|&i| i > first) {
            states[i] = if table.done { TableState::Done } else { TableState::Reading(table.after_key()) };
        }
    }
    states
}

/// The progress to checkpoint: the first unfinished table, and the tables after it that are
/// started or done. `None` once every table is done.
fn progress(tables: &[TableId], states: &[TableState]) -> Option<SnapshotProgress> {
    let first = states.iter().position(|s| *s != TableState::Done)?;
    let key = |s: &TableState| match s {
        TableState::Reading(key) => key.clone(),
        _ => None,
    };
    let mut progress = SnapshotProgress::new(&tables[first], key(&states[first]).as_deref());
    for (i, state) in states.iter().enumerate().skip(first + 1) {
        match state {
            TableState::Pending => {}
            TableState::Reading(after) => progress.also.push(TableProgress::new(&tables[i], after.as_deref(), false)),
            TableState::Done => progress.also.push(TableProgress::new(&tables[i], None, true)),
        }
    }
    Some(progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Lsn, Op, PgPosition, SourceInfo, SourceMeta, TableSchema};
    use std::sync::Arc;

    fn ids(names: &[&str]) -> Vec<TableId> {
        names.iter().map(|n| TableId::new("s", *n)).collect()
    }

    #[test]
    fn progress_names_the_first_unfinished_table_and_the_ones_beyond_it() {
        let tables = ids(&["a", "b", "c", "d", "e"]);
        let states = vec![
            TableState::Done,
            TableState::Reading(Some(vec![b"9".to_vec()])),
            TableState::Done,
            TableState::Reading(None),
            TableState::Pending,
        ];
        let p = progress(&tables, &states).unwrap();
        assert_eq!(p.table, ("s".into(), "b".into()));
        assert_eq!(p.after_key(), Some(vec![b"9".to_vec()]));
        assert_eq!(p.also.len(), 2);
        assert!(p.also[0].done && p.also[0].table.1 == "c");
        assert!(!p.also[1].done && p.also[1].table.1 == "d" && p.also[1].after.is_none());
        // Read back, the same states (a pending table stays pending).
        assert_eq!(initial_states(&tables, Some(&p)), states);
        assert_eq!(progress(&tables, &[TableState::Done, TableState::Done]), None);
    }

    #[test]
    fn a_resume_reads_tables_added_since_and_ignores_ones_dropped() {
        let before = ids(&["a", "b", "c"]);
        let states = vec![TableState::Reading(Some(vec![b"1".to_vec()])), TableState::Pending, TableState::Done];
        let p = progress(&before, &states).unwrap();
        // "b" was dropped and "bb" added since.
        let now = ids(&["a", "bb", "c"]);
        assert_eq!(
            initial_states(&now, Some(&p)),
            vec![TableState::Reading(Some(vec![b"1".to_vec()])), TableState::Pending, TableState::Done]
        );
        // The first unfinished table was dropped: everything is read again.
        assert_eq!(initial_states(&ids(&["b", "c"]), Some(&p)), vec![TableState::Pending, TableState::Pending]);
    }

    fn rows(table: &TableId, from: i64, n: i64) -> Vec<ChangeEvent> {
        let schema = Arc::new(TableSchema { id: table.clone(), columns: Vec::new(), key: Vec::new(), version: 0 });
        (from..from + n)
            .map(|i| ChangeEvent {
                op: Op::Read,
                table: schema.clone(),
                before: None,
                after: Some(vec![crate::model::Value::Int(i)]),
                source: SourceInfo {
                    ts_ms: 0,
                    snapshot: SnapshotMarker::Yes,
                    meta: SourceMeta::Postgres {
                        database: Arc::from("d"),
                        tx_id: None,
                        lsn: 0,
                        last_commit_lsn: None,
                        xmin: None,
                    },
                },
                transaction: None,
            })
            .collect()
    }

    #[test]
    fn batches_carry_first_last_and_interleaved_progress() {
        let tables = ids(&["a", "b"]);
        let start = Position::Postgres(PgPosition { lsn: Lsn(100), tx_lsn: None, snapshot: None });
        let status = Metrics::new("t");
        let mut batcher = SnapshotBatcher::new(tables.clone(), start.clone(), None, 3, 0);
        let chunk = |table: usize, from: i64, n: i64, finished: bool| SnapshotChunk {
            table,
            events: rows(&tables[table], from, n),
            last_key: Some(vec![(from + n - 1).to_string().into_bytes()]),
            finished,
        };
        assert!(batcher.push(chunk(0, 1, 2, false), &status).is_none(), "held back");
        let first = batcher.push(chunk(1, 1, 2, false), &status).unwrap();
        assert_eq!(first.events[0].source.snapshot, SnapshotMarker::First);
        assert!(first.checkpoint.is_none(), "2 rows < chunk_rows");
        // 4 rows since the start: b's batch checkpoints both tables' last keys.
        let second = batcher.push(chunk(0, 3, 1, true), &status).unwrap();
        let progress = second.checkpoint.as_ref().unwrap().snapshot_progress().unwrap().clone();
        assert_eq!((progress.table.1.as_str(), progress.after_key()), ("a", Some(vec![b"2".to_vec()])));
        assert_eq!(progress.also, vec![TableProgress::new(&tables[1], Some(&[b"2".to_vec()]), false)]);
        assert!(batcher.push(chunk(1, 3, 0, true), &status).is_none(), "nothing to send");
        let last = batcher.finish(&status).unwrap();
        assert_eq!(last.checkpoint, Some(start), "complete");
        assert_eq!(last.events.len(), 1);
        assert_eq!(last.events[0].source.snapshot, SnapshotMarker::Last);
        assert_eq!(second.events.last().unwrap().source.snapshot, SnapshotMarker::Yes);
    }
}
