//! The initial snapshot of a PostgreSQL source: every published table read in one snapshot of
//! the database, several tables at a time.
//!
//! ```text
//!  catalog connection ── holds the snapshot (the slot's exported one, or its own on a resume)
//!        until every reader has imported it
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

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::catalog::{self, TypeCache};
use super::protocol::{ConnectParams, PgConnection, quote_ident, quote_literal, quote_table};
use super::types::parse_copy_row;
use crate::error::CdcError;
use crate::model::{
    Batch, ChangeEvent, Lsn, Op, PgPosition, Position, SnapshotMarker, SnapshotProgress, SourceInfo, SourceMeta,
    TableId,
};
use crate::pipeline::SourceContext;
use crate::sources::snapshot::{SnapshotBatcher, SnapshotChunk, TableQueue, TableRead};

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
    /// The connection holding the snapshot until every reader has imported it, and the
    /// command that lets it go (a connection idle in a transaction through a long snapshot would
    /// meet `idle_in_transaction_session_timeout`).
    pub holder: (&'a mut PgConnection, &'static str),
}

/// What a reader sends: that it holds the snapshot, then its tables' rows.
enum ReaderMessage {
    Imported,
    Chunk(SnapshotChunk),
}

/// Reads the snapshot and sends it as batches. `false` if shut down before the end.
pub(super) async fn read(
    mut plan: SnapshotPlan<'_>,
    out: &mpsc::Sender<Batch>,
    ctx: &SourceContext,
) -> Result<bool, CdcError> {
    let ts_ms = crate::model::now_ms();
    let start = Position::Postgres(PgPosition { lsn: plan.consistent, tx_lsn: None, snapshot: None });
    let mut batcher = SnapshotBatcher::new(plan.tables, start, plan.resume, plan.chunk_rows, ts_ms);
    let to_read = batcher.to_read();
    if plan.resume.is_none() {
        tracing::info!(tables = batcher.tables().len(), position = %plan.consistent, connections = plan.connections, "Snapshot started");
    }
    let template = SourceInfo {
        ts_ms,
        snapshot: SnapshotMarker::Yes,
        meta: SourceMeta::Postgres {
            database: Arc::from(plan.params.database.as_str()),
            tx_id: None,
            lsn: plan.consistent.0,
            last_commit_lsn: None,
            xmin: None,
        },
    };
    let readers = plan.connections.clamp(1, to_read.len().max(1));
    let queue = Arc::new(TableQueue::new(to_read));
    // Room for one chunk per reader: readers stay at most a chunk ahead of the pipeline.
    let (chunks_tx, mut chunks) = mpsc::channel::<Result<ReaderMessage, CdcError>>(readers);
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
    let mut importing = readers;
    while let Some(message) = chunks.recv().await {
        let chunk = match message? {
            ReaderMessage::Imported => {
                importing -= 1;
                if importing == 0 {
                    let (holder, release) = &mut plan.holder;
                    holder.query(release).await?;
                }
                continue;
            }
            ReaderMessage::Chunk(chunk) => chunk,
        };
        if ctx.shutdown.is_cancelled() {
            return Ok(false);
        }
        if let Some(batch) = batcher.push(chunk, &ctx.status)
            && out.send(batch).await.is_err()
        {
            return Ok(false);
        }
    }
    if ctx.shutdown.is_cancelled() {
        return Ok(false);
    }
    Ok(out.send(batcher.finish(&ctx.status)?).await.is_ok())
}

/// One connection reading tables from the queue until it is empty.
struct Reader {
    params: ConnectParams,
    snapshot_name: String,
    queue: Arc<TableQueue>,
    chunks: mpsc::Sender<Result<ReaderMessage, CdcError>>,
    batch_events: usize,
    template: SourceInfo,
}

impl Reader {
    async fn run(self) -> Result<(), CdcError> {
        let mut conn = PgConnection::connect(&self.params, false).await?;
        conn.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        conn.query(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(&self.snapshot_name))).await?;
        if self.chunks.send(Ok(ReaderMessage::Imported)).await.is_err() {
            return Ok(());
        }
        let mut types = TypeCache::default();
        while let Some(table) = self.queue.next()? {
            if !self.read_table(&mut conn, &mut types, table).await? {
                return Ok(());
            }
        }
        // Read-only and every row is in: a server that ended the session while it waited for
        // the pipeline (idle_in_transaction_session_timeout) costs nothing.
        let _ = conn.query("COMMIT").await;
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
        // The columns as the snapshot's catalog has them. A query reads the table as it is now
        // (DDL committed after the snapshot was taken shows there), so the columns are named:
        // one added since is left to the stream (its schema change brings it), one dropped
        // since reads NULL (the stream then drops it).
        let now = conn.query_each(&format!("SELECT * FROM {} LIMIT 0", quote_table(id)), |_| Ok(())).await?;
        let select: Vec<String> = schema
            .columns
            .iter()
            .map(|c| if now.contains(&c.name) { quote_ident(&c.name) } else { "NULL".to_string() })
            .collect();
        let mut sql = format!("SELECT {} FROM {}", select.join(", "), quote_table(id));
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
                let chunk = SnapshotChunk {
                    table: table.index,
                    events: std::mem::replace(&mut events, Vec::with_capacity(self.batch_events)),
                    last_key: (!key.is_empty() && !key_values.is_empty()).then(|| key_values.clone()),
                    finished,
                };
                if self.chunks.send(Ok(ReaderMessage::Chunk(chunk))).await.is_err() {
                    return Ok(false);
                }
            }
            if finished {
                return Ok(true);
            }
        }
    }
}
