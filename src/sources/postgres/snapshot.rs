//! The initial snapshot of a PostgreSQL source: every published table read in one snapshot of
//! the database, several tables at a time.
//!
//! ```text
//!  catalog connection ── holds the snapshot (the slot's exported one, or its own on a resume)
//!  reader connections (snapshot_connections) ── SET TRANSACTION SNAPSHOT; next table from the
//!        queue; COPY (SELECT … ORDER BY key) TO STDOUT ──▶ chunks of rows
//!  merge ── chunks in arrival order ──▶ batches; a checkpoint every chunk_rows rows holds how
//!        far each table got
//! ```
//!
//! Tables with a primary key are read in key order, so a checkpoint can say how far the
//! snapshot got: the snapshot's position plus, per table started, done or its last key
//! delivered (`SnapshotProgress`). Rows read after a resume are newer than the snapshot; the
//! changes in between come again from the slot (at-least-once, converging to the same state).
//! A table without a primary key is read again whole when interrupted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::catalog::{self, TypeCache};
use super::protocol::{ConnectParams, PgConnection, quote_ident, quote_literal, quote_table};
use super::types::parse_copy_row;
use crate::error::CdcError;
use crate::model::{
    Batch, ChangeEvent, Lsn, Op, PgPosition, Position, SnapshotMarker, SnapshotProgress, SourceInfo, SourceMeta,
    TableId, TableProgress,
};
use crate::pipeline::SourceContext;

/// What a snapshot reads and how.
pub(super) struct SnapshotPlan<'a> {
    pub params: &'a ConnectParams,
    /// The tables, in snapshot order (the order progress is kept in).
    pub tables: Vec<TableId>,
    /// The snapshot to read in (exported by the slot or by the catalog connection).
    pub snapshot_name: String,
    /// Where the snapshot was taken: streaming starts there.
    pub consistent: Lsn,
    /// How far an interrupted snapshot got.
    pub resume: Option<&'a SnapshotProgress>,
    pub connections: usize,
    pub batch_events: usize,
    pub chunk_rows: usize,
}

#[derive(Clone, Debug, PartialEq)]
enum TableState {
    Pending,
    /// Started; rows up to this key delivered (`None`: none yet, or no key).
    Reading(Option<Vec<Vec<u8>>>),
    Done,
}

/// Rows of one table, in key order, from one reader.
struct Chunk {
    table: usize,
    events: Vec<ChangeEvent>,
    /// Key of the chunk's last row (tables with a primary key).
    last_key: Option<Vec<Vec<u8>>>,
    /// The table's last chunk.
    finished: bool,
}

/// A table to read, and after which key (a resumed read).
struct TableRead {
    index: usize,
    id: TableId,
    after: Option<Vec<Vec<u8>>>,
}

/// Reads the snapshot and sends it as batches. `false` if shut down before the end.
pub(super) async fn read(
    plan: SnapshotPlan<'_>,
    out: &mpsc::Sender<Batch>,
    ctx: &SourceContext,
) -> Result<bool, CdcError> {
    let mut states = initial_states(&plan.tables, plan.resume);
    let queue: VecDeque<TableRead> = states
        .iter()
        .enumerate()
        .filter_map(|(index, state)| match state {
            TableState::Done => None,
            TableState::Reading(after) => {
                Some(TableRead { index, id: plan.tables[index].clone(), after: after.clone() })
            }
            TableState::Pending => Some(TableRead { index, id: plan.tables[index].clone(), after: None }),
        })
        .collect();
    if plan.resume.is_none() {
        tracing::info!(tables = plan.tables.len(), position = %plan.consistent, connections = plan.connections, "Snapshot started");
    }
    let ts_ms = crate::model::now_ms();
    let database: Arc<str> = Arc::from(plan.params.database.as_str());
    let template = SourceInfo {
        ts_ms,
        snapshot: SnapshotMarker::Yes,
        meta: SourceMeta::Postgres { database, tx_id: None, lsn: plan.consistent.0, last_commit_lsn: None, xmin: None },
    };
    let readers = plan.connections.clamp(1, queue.len().max(1));
    let queue = Arc::new(Mutex::new(queue));
    // Room for one chunk per reader: readers stay at most a chunk ahead of the pipeline.
    let (chunks_tx, mut chunks) = mpsc::channel::<Result<Chunk, CdcError>>(readers);
    let mut tasks = JoinSet::new();
    for _ in 0..readers {
        let reader = Reader {
            params: plan.params.clone(),
            snapshot_name: plan.snapshot_name.clone(),
            queue: queue.clone(),
            chunks: chunks_tx.clone(),
            batch_events: plan.batch_events,
            template: template.clone(),
        };
        tasks.spawn(async move {
            let chunks = reader.chunks.clone();
            if let Err(e) = reader.run().await {
                let _ = chunks.send(Err(e)).await;
            }
        });
    }
    drop(chunks_tx);

    let start = Position::Postgres(PgPosition { lsn: plan.consistent, tx_lsn: None, snapshot: None });
    let total_tables = plan.tables.len();
    let mut done_tables = states.iter().filter(|s| **s == TableState::Done).count();
    let mut rows = vec![0u64; total_tables];
    let mut total = 0u64;
    let mut since_checkpoint = 0usize;
    let mut last_log = Instant::now();
    // One batch always stays behind, so the snapshot's final row can be marked `last`.
    let mut held: Option<Batch> = None;
    while let Some(chunk) = chunks.recv().await {
        let mut chunk = chunk?;
        if ctx.shutdown.is_cancelled() {
            return Ok(false);
        }
        if total == 0
            && plan.resume.is_none()
            && let Some(first) = chunk.events.first_mut()
        {
            first.source.snapshot = SnapshotMarker::First;
        }
        let n = chunk.events.len();
        total += n as u64;
        rows[chunk.table] += n as u64;
        since_checkpoint += n;
        let id = &plan.tables[chunk.table];
        states[chunk.table] = if chunk.finished {
            done_tables += 1;
            tracing::info!(table = %id, rows = rows[chunk.table], "Snapshot of table finished");
            TableState::Done
        } else {
            TableState::Reading(chunk.last_key)
        };
        ctx.status.set_snapshot_progress(Some(format!("{done_tables}/{total_tables} tables, {total} rows")));
        if last_log.elapsed() > Duration::from_secs(10) {
            tracing::info!(table = %id, rows = rows[chunk.table], total, "Snapshot in progress");
            last_log = Instant::now();
        }
        let checkpoint = (since_checkpoint >= plan.chunk_rows).then(|| {
            since_checkpoint = 0;
            start.with_snapshot(progress(&plan.tables, &states))
        });
        if chunk.events.is_empty() && checkpoint.is_none() {
            continue;
        }
        let batch = Batch { events: chunk.events, checkpoint, source_ts_ms: Some(ts_ms), may_repeat: false };
        if let Some(previous) = held.replace(batch)
            && out.send(previous).await.is_err()
        {
            return Ok(false);
        }
    }
    if ctx.shutdown.is_cancelled() {
        return Ok(false);
    }
    if let Some(unread) = states.iter().position(|s| *s != TableState::Done) {
        // Every reader stopped without an error, so this cannot happen; refuse to call it complete.
        return Err(CdcError::transient(format!("snapshot of {} did not finish", plan.tables[unread])));
    }
    let mut last =
        held.unwrap_or(Batch { events: Vec::new(), checkpoint: None, source_ts_ms: Some(ts_ms), may_repeat: false });
    if let Some(event) = last.events.last_mut() {
        event.source.snapshot =
            if total == 1 && plan.resume.is_none() { SnapshotMarker::First } else { SnapshotMarker::Last };
    }
    last.checkpoint = Some(start);
    if out.send(last).await.is_err() {
        return Ok(false);
    }
    tracing::info!(rows = total, position = %plan.consistent, "Snapshot finished");
    ctx.status.set_snapshot_progress(None);
    Ok(true)
}

/// Each table's state when the snapshot starts (or goes on after `resume`).
fn initial_states(tables: &[TableId], resume: Option<&SnapshotProgress>) -> Vec<TableState> {
    let mut states = vec![TableState::Pending; tables.len()];
    let Some(progress) = resume else { return states };
    let find = |t: &(String, String)| tables.iter().position(|id| *id.namespace == *t.0 && *id.name == *t.1);
    let Some(first) = find(&progress.table) else {
        tracing::warn!("The table the snapshot stopped in is gone: reading every table again");
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

/// One connection reading tables from the queue until it is empty.
struct Reader {
    params: ConnectParams,
    snapshot_name: String,
    queue: Arc<Mutex<VecDeque<TableRead>>>,
    chunks: mpsc::Sender<Result<Chunk, CdcError>>,
    batch_events: usize,
    template: SourceInfo,
}

impl Reader {
    async fn run(self) -> Result<(), CdcError> {
        let mut conn = PgConnection::connect(&self.params, false).await?;
        conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        conn.query(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(&self.snapshot_name))).await?;
        let mut types = TypeCache::default();
        loop {
            let next = self.queue.lock().map_err(|_| CdcError::transient("snapshot queue poisoned"))?.pop_front();
            let Some(table) = next else { break };
            if !self.read_table(&mut conn, &mut types, table).await? {
                return Ok(());
            }
        }
        conn.query("COMMIT").await?;
        Ok(())
    }

    /// Sends one table's rows in chunks of `batch_events`; `false` once nobody listens.
    async fn read_table(
        &self,
        conn: &mut PgConnection,
        types: &mut TypeCache,
        table: TableRead,
    ) -> Result<bool, CdcError> {
        let id = &table.id;
        let cols = catalog::table_columns(conn, id).await?;
        types.resolve(conn, &cols.iter().map(|c| c.1).collect::<Vec<_>>()).await?;
        let schema = types.schema(id.clone(), &cols);
        // In the primary key's order, so the read follows its index.
        let key: Vec<usize> = catalog::primary_key_order(conn, id)
            .await?
            .iter()
            .filter_map(|name| schema.columns.iter().position(|c| c.name == *name))
            .collect();
        let key_list = key.iter().map(|&k| quote_ident(&schema.columns[k].name)).collect::<Vec<_>>().join(", ");
        let mut sql = format!("SELECT * FROM {}", quote_table(id));
        if let Some(values) = table.after.filter(|_| !key.is_empty()) {
            let literals: Vec<String> = values.iter().map(|v| quote_literal(&String::from_utf8_lossy(v))).collect();
            sql += &format!(" WHERE ({key_list}) > ({})", literals.join(", "));
        }
        if !key.is_empty() {
            sql += &format!(" ORDER BY {key_list}");
        }
        // COPY streams the rows without a round trip per chunk; TCP holds the server back
        // while the pipeline is busy.
        conn.start_copy_out(&format!("COPY ({sql}) TO STDOUT")).await?;
        let mut key_values: Vec<Vec<u8>> = Vec::new();
        let mut events = Vec::with_capacity(self.batch_events);
        loop {
            let line = conn.read_copy_row().await?;
            let finished = line.is_none();
            if let Some(line) = line {
                let after = parse_copy_row(&schema.columns, &line, &key, &mut key_values)
                    .map_err(|e| CdcError::definite(format!("snapshot of {id}: {e}"), "report this value"))?;
                events.push(ChangeEvent {
                    op: Op::Read,
                    table: schema.clone(),
                    before: None,
                    after: Some(after),
                    source: self.template.clone(),
                    transaction: None,
                });
            }
            if finished || events.len() >= self.batch_events {
                let chunk = Chunk {
                    table: table.index,
                    events: std::mem::replace(&mut events, Vec::with_capacity(self.batch_events)),
                    last_key: (!key.is_empty() && !key_values.is_empty()).then(|| key_values.clone()),
                    finished,
                };
                if self.chunks.send(Ok(chunk)).await.is_err() {
                    return Ok(false);
                }
            }
            if finished {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
