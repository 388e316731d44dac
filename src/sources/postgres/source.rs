//! The PostgreSQL source: a logical replication slot streamed with pgoutput.
//!
//! ```text
//!  catalog connection ── publication, slot checks, types, snapshot (exported snapshot)
//!  replication connection ── CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT, START_REPLICATION
//!        │ XLogData(pgoutput) ──▶ events ──▶ batches (checkpoint = commit end LSN)
//!        ▲ standby status: flush = durable position only
//! ```
//!
//! Resuming: from the stored LSN; the slot must exist, not be lost, and not be past the
//! stored LSN (else changes in between were consumed elsewhere). The slot only ever hears
//! of positions the sink has made durable, so WAL is kept until then. On an idle or
//! filtered-out database, keepalive LSNs outside transactions become checkpoints, so the slot
//! still advances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Buf;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use super::catalog::{self, TypeCache};
use super::pgoutput::{self, PG_EPOCH_OFFSET_US, PgMessage, Relation, TupleValue};
use super::protocol::{ConnectParams, PgConnection, quote_ident, quote_literal, quote_table};
use super::spool::Spool;
use super::types::push_text;
use crate::config::{Config, PgSourceConfig, SnapshotMode};
use crate::error::CdcError;
use crate::model::{
    Batch, ChangeEvent, Lsn, Op, PgPosition, Position, Row, SnapshotMarker, SnapshotProgress, SourceInfo, SourceMeta,
    TableId, TableSchema, Value,
};
use crate::pipeline::{Source, SourceContext};
use crate::sources::RepeatWindow;
use crate::sources::filter::TableFilter;

pub struct PgSource {
    params: ConnectParams,
    slot: String,
    publication: String,
    filter: TableFilter,
    all_tables: bool,
    snapshot: SnapshotMode,
    batch_events: usize,
    chunk_rows: usize,
    /// Connections reading tables at the same time in a snapshot.
    snapshot_connections: usize,
    /// Request in-progress streaming (servers 14+).
    streaming: bool,
    spool_dir: std::path::PathBuf,
    spool_max_bytes: u64,
}

impl PgSource {
    pub fn new(config: &Config, pg: &PgSourceConfig) -> PgSource {
        let (slot, publication) = crate::sources::pg_names(config, pg);
        let spool_dir = pg.spool_dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("cdc-spool-{slot}")));
        PgSource {
            params: ConnectParams::from_url(pg.url.url()),
            slot,
            publication,
            filter: TableFilter::new(&pg.tables, &pg.exclude_tables),
            all_tables: pg.tables.iter().all(|t| t == "*.*") && pg.exclude_tables.is_empty(),
            snapshot: pg.snapshot,
            batch_events: config.pipeline.batch_events.max(1),
            chunk_rows: pg.snapshot_chunk_rows.max(1),
            snapshot_connections: pg.snapshot_connections.max(1),
            streaming: pg.streaming,
            spool_dir,
            spool_max_bytes: pg.spool_max_mb.saturating_mul(1 << 20),
        }
    }
}

/// Longest a partial batch waits for more input while the sink is busy.
const LINGER: Duration = Duration::from_millis(10);

fn pg_position(lsn: u64, tx: Option<u64>) -> Position {
    Position::Postgres(PgPosition { lsn: Lsn(lsn), tx_lsn: tx.map(Lsn), snapshot: None })
}

#[async_trait]
impl Source for PgSource {
    async fn run(
        &mut self,
        start: Option<Position>,
        out: mpsc::Sender<Batch>,
        ctx: SourceContext,
    ) -> Result<(), CdcError> {
        let mut cat = PgConnection::connect(&self.params, false).await?;
        tracing::info!(version = %cat.server_version, database = %self.params.database, "Connected to the source");
        let wal_level = catalog::setting(&mut cat, "wal_level").await?;
        if wal_level != "logical" {
            return Err(CdcError::definite(
                format!("wal_level is {wal_level} on the source, not logical"),
                "set wal_level = logical in postgresql.conf and restart PostgreSQL",
            ));
        }
        self.ensure_publication(&mut cat).await?;
        let mut slot = catalog::slot(&mut cat, &self.slot).await?;
        if start.is_none() && slot.is_some() && self.snapshot != SnapshotMode::Never {
            // No position stored means no snapshot ever became durable downstream (e.g. the
            // sink refused it). The slot's exported snapshot is gone, so a new snapshot needs
            // a new slot; nothing read from the old one was kept.
            tracing::warn!(slot = %self.slot, "Slot exists but no position is stored: recreating it for a new snapshot");
            cat.query(&format!("SELECT pg_drop_replication_slot({})", quote_literal(&self.slot))).await?;
            slot = None;
        }
        let mut repl = PgConnection::connect(&self.params, true).await?;
        let slot_name = &self.slot;
        let mut repeat = RepeatWindow::default();
        let start_lsn = match (start, slot) {
            (Some(Position::Postgres(p)), Some(s)) => {
                if s.wal_status.as_deref() == Some("lost") {
                    return Err(CdcError::definite(
                        format!(
                            "replication slot {slot_name} is invalidated (wal_status = lost): WAL it needed was removed"
                        ),
                        "drop the slot (cdc slot drop), clear the stored position and take a new snapshot",
                    ));
                }
                if let Some(confirmed) = s.confirmed_flush
                    && confirmed > p.lsn
                {
                    return Err(CdcError::definite(
                        format!(
                            "replication slot {slot_name} is at {confirmed}, past the stored position {}: changes in between were consumed by someone else",
                            p.lsn
                        ),
                        "make sure only this cdc uses the slot; to accept the gap, resume with --from pg:lsn=<slot position>, else take a new snapshot",
                    ));
                }
                if s.plugin != "pgoutput" || s.database != self.params.database {
                    return Err(CdcError::definite(
                        format!("slot {slot_name} uses plugin {} on database {}", s.plugin, s.database),
                        "choose another source.slot",
                    ));
                }
                if let Some(progress) = &p.snapshot {
                    // An interrupted snapshot goes on in a new read; the slot still holds
                    // everything since the snapshot's point, so streaming starts there after.
                    tracing::info!(position = %Lsn(p.lsn.0), table = %format!("{}.{}", progress.table.0, progress.table.1), "Snapshot resumed");
                    ctx.status.set_phase("snapshot");
                    ctx.status.set_ready(true);
                    let Some(resumed_at) = self.snapshot(&mut cat, None, p.lsn, Some(progress), &out, &ctx).await?
                    else {
                        return Ok(());
                    };
                    if self.snapshot == SnapshotMode::InitialOnly {
                        return Ok(());
                    }
                    repeat = RepeatWindow::until(resumed_at.map(|l| pg_position(l, None)));
                }
                p.lsn.0
            }
            (Some(Position::Postgres(p)), None) => {
                return Err(CdcError::definite(
                    format!(
                        "replication slot {slot_name} does not exist (dropped?): changes after {} cannot be read",
                        p.lsn
                    ),
                    "clear the stored position and restart to create the slot with a new snapshot",
                ));
            }
            (Some(other), _) => {
                return Err(CdcError::definite(
                    format!("the stored position {other} is not a PostgreSQL position"),
                    "point positions.path at this source's file, or start with --from",
                ));
            }
            (None, Some(s)) => {
                let lsn = s.confirmed_flush.map_or(0, |l| l.0);
                tracing::warn!(slot = %slot_name, lsn = %Lsn(lsn), "Slot exists but no position is stored: streaming from the slot (snapshot = never)");
                lsn
            }
            (None, None) => {
                let export = self.snapshot != SnapshotMode::Never;
                let sql = format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {}",
                    quote_ident(slot_name),
                    if export { "EXPORT_SNAPSHOT" } else { "NOEXPORT_SNAPSHOT" }
                );
                let rows = repl.query(&sql).await?;
                let row = rows.into_iter().next().unwrap_or_default();
                let consistent: Lsn = row
                    .get(1)
                    .cloned()
                    .flatten()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| CdcError::transient("CREATE_REPLICATION_SLOT returned no consistent point"))?;
                tracing::info!(slot = %slot_name, lsn = %consistent, "Replication slot created");
                if export {
                    let name = row.get(2).cloned().flatten().unwrap_or_default();
                    ctx.status.set_phase("snapshot");
                    ctx.status.set_ready(true);
                    let done = self.snapshot(&mut cat, Some((&name, &mut repl)), consistent, None, &out, &ctx).await?;
                    if done.is_none() || self.snapshot == SnapshotMode::InitialOnly {
                        return Ok(());
                    }
                }
                consistent.0
            }
        };
        self.stream(repl, cat, start_lsn, repeat, out, ctx).await
    }
}

impl PgSource {
    async fn ensure_publication(&self, cat: &mut PgConnection) -> Result<(), CdcError> {
        if catalog::publication_tables(cat, &self.publication).await?.is_some() {
            return Ok(());
        }
        let sql = if self.all_tables {
            format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_ident(&self.publication))
        } else {
            let tables = catalog::selected_tables(cat, &self.filter).await?;
            if tables.is_empty() {
                return Err(CdcError::definite(
                    "no table of the database matches source.tables",
                    "fix source.tables (schema.table patterns)",
                ));
            }
            let list: Vec<String> = tables.iter().map(quote_table).collect();
            format!("CREATE PUBLICATION {} FOR TABLE {}", quote_ident(&self.publication), list.join(", "))
        };
        cat.query(&sql).await?;
        tracing::info!(publication = %self.publication, "Publication created");
        Ok(())
    }

    /// Reads every published table in the snapshot `exported` by the replication connection
    /// `repl` (a new slot), or, going on with an interrupted snapshot (`resume`), in a new read
    /// from where it stopped (`super::snapshot`). `None` if shut down; else, after a resume, an
    /// LSN at or past the new read's start (see `RepeatWindow`).
    async fn snapshot(
        &self,
        cat: &mut PgConnection,
        exported: Option<(&str, &mut PgConnection)>,
        consistent: Lsn,
        resume: Option<&SnapshotProgress>,
        out: &mpsc::Sender<Batch>,
        ctx: &SourceContext,
    ) -> Result<Option<Option<u64>>, CdcError> {
        // The tables are listed in the snapshot itself.
        cat.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let mut resumed_at = None;
        let (snapshot_name, repl) = match exported {
            Some((name, repl)) => {
                cat.query(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(name))).await?;
                (name.to_string(), Some(repl))
            }
            None => {
                // The first statement takes the read's snapshot; the WAL position it reads is at or past it.
                let row =
                    cat.query("SELECT pg_export_snapshot(), pg_current_wal_lsn()::text").await?.into_iter().next();
                let mut values = row.unwrap_or_default().into_iter();
                let name = values
                    .next()
                    .flatten()
                    .ok_or_else(|| CdcError::transient("pg_export_snapshot returned nothing"))?;
                resumed_at = values.next().flatten().and_then(|l| l.parse::<Lsn>().ok()).map(|l| l.0);
                (name, None)
            }
        };
        let tables: Vec<TableId> = catalog::publication_tables(cat, &self.publication)
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|t| self.filter.matches_id(t))
            .collect();
        let holder = match repl {
            // The slot's snapshot lives until the replication connection's next command.
            Some(repl) => {
                cat.query("COMMIT").await?;
                (repl, "IDENTIFY_SYSTEM")
            }
            None => (cat, "COMMIT"),
        };
        let plan = super::snapshot::SnapshotPlan {
            params: &self.params,
            tables,
            snapshot_name,
            consistent,
            resume,
            connections: self.snapshot_connections,
            batch_events: self.batch_events,
            chunk_rows: self.chunk_rows,
            holder,
        };
        if !super::snapshot::read(plan, out, ctx).await? {
            return Ok(None);
        }
        Ok(Some(resumed_at))
    }

    async fn stream(
        &self,
        mut repl: PgConnection,
        mut cat: PgConnection,
        start_lsn: u64,
        repeat: RepeatWindow,
        out: mpsc::Sender<Batch>,
        mut ctx: SourceContext,
    ) -> Result<(), CdcError> {
        let proto = match repl.server_version_num {
            v if v >= 160000 => 4,
            v if v >= 150000 => 3,
            v if v >= 140000 => 2,
            _ => 1,
        };
        // Version 2 added streaming of in-progress transactions.
        let streaming = self.streaming && proto >= 2;
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (proto_version '{proto}', publication_names {}{})",
            quote_ident(&self.slot),
            Lsn(start_lsn),
            quote_literal(&quote_ident(&self.publication)),
            if streaming { ", streaming 'on'" } else { "" }
        );
        repl.start_copy_both(&sql).await?;
        tracing::info!(slot = %self.slot, lsn = %Lsn(start_lsn), proto_version = proto, streaming, "Streaming from the replication slot");
        self.report_slot_lag(&mut cat, &ctx).await;
        ctx.status.set_phase("streaming");
        ctx.status.set_ready(true);

        let mut state = StreamState {
            database: Arc::from(self.params.database.as_str()),
            filter: self.filter.clone(),
            relations: FxHashMap::default(),
            types: TypeCache::default(),
            tx: None,
            in_stream: None,
            last_commit_lsn: None,
            received: start_lsn,
            checkpointed: start_lsn,
            events: Vec::new(),
            checkpoint: None,
            newest_ts_ms: None,
            repeat,
        };
        let mut spool = Spool::new(self.spool_dir.clone(), self.spool_max_bytes);
        let interval = status_interval(&mut cat).await;
        let durable = ctx.durable.borrow().as_ref().and_then(pg_lsn).unwrap_or(start_lsn);
        let mut feedback = Feedback { durable, sent_at: Instant::now(), interval };
        // Set while a partial batch waits for more input because the sink is still busy.
        let mut linger: Option<tokio::time::Instant> = None;
        loop {
            let msg = if repl.has_buffered_message() && !ctx.shutdown.is_cancelled() {
                // A whole message is already here: read it without arming the select's timers
                // (a timeout per message read the clock and touched the timer wheel each time).
                // The other branches get their turn whenever the buffer runs dry.
                repl.read_message().await?
            } else {
                tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => {
                        if let Some(batch) = state.final_batch() {
                            let _ = out.send(batch).await;
                        }
                        return Ok(());
                    }
                    _ = ctx.durable.changed() => {
                        feedback.send(&mut repl, state.received, &ctx).await?;
                        continue;
                    }
                    // A lingering batch goes when the sink takes what it had (the input may stay
                    // dry: a transaction's last message already read) or at the deadline.
                    _ = ctx.batch_taken.notified(), if linger.is_some() => {
                        let sink_waiting = out.capacity() == out.max_capacity();
                        if sink_waiting {
                            linger = None;
                            if !feedback.deliver(&out, state.take_batch(), &mut repl, state.received, &ctx).await? {
                                return Ok(());
                            }
                        }
                        continue;
                    }
                    _ = tokio::time::sleep_until(linger.unwrap_or_else(tokio::time::Instant::now)), if linger.is_some() => {
                        linger = None;
                        if !feedback.deliver(&out, state.take_batch(), &mut repl, state.received, &ctx).await? {
                            return Ok(());
                        }
                        continue;
                    }
                    m = tokio::time::timeout(feedback.interval, repl.read_message()) => match m {
                        Err(_) => {
                            feedback.send(&mut repl, state.received, &ctx).await?;
                            continue;
                        }
                        Ok(m) => m?,
                    }
                }
            };
            match msg.tag {
                b'd' => {
                    let mut body = msg.body;
                    if body.is_empty() {
                        continue;
                    }
                    match body.get_u8() {
                        b'w' => {
                            if body.len() < 24 {
                                return Err(CdcError::transient("short XLogData message"));
                            }
                            let wal_start = body.get_u64();
                            let _wal_end = body.get_u64();
                            body.advance(8);
                            state.received = state.received.max(wal_start);
                            let message = decode_at(&body, state.in_stream.is_some(), wal_start)?;
                            match message {
                                PgMessage::StreamStart { xid, .. } => state.in_stream = Some(xid),
                                PgMessage::StreamStop => state.in_stream = None,
                                PgMessage::StreamAbort { xid, subxid } => {
                                    spool.abort(xid, subxid)?;
                                    ctx.status.set_spooled_bytes(spool.bytes());
                                }
                                PgMessage::StreamCommit { xid, commit_lsn, end_lsn, commit_ts_us } => {
                                    state
                                        .handle(
                                            PgMessage::Begin { final_lsn: commit_lsn, commit_ts_us, xid },
                                            wal_start,
                                            &mut cat,
                                        )
                                        .await?;
                                    if let Some(mut spooled) = spool.take(xid)? {
                                        ctx.status.set_spooled_bytes(spool.bytes());
                                        tracing::info!(xid, "Replaying a transaction streamed before its commit");
                                        while let Some((lsn, bytes)) = spooled.next()? {
                                            state.handle(decode_at(bytes, true, lsn)?, lsn, &mut cat).await?;
                                            if state.events.len() >= self.batch_events {
                                                let batch = state.take_batch();
                                                if ctx.shutdown.is_cancelled()
                                                    || !feedback
                                                        .deliver(&out, batch, &mut repl, state.received, &ctx)
                                                        .await?
                                                {
                                                    return Ok(());
                                                }
                                            }
                                        }
                                    }
                                    state
                                        .handle(
                                            PgMessage::Commit { commit_lsn, end_lsn, commit_ts_us },
                                            wal_start,
                                            &mut cat,
                                        )
                                        .await?;
                                }
                                message => match state.in_stream {
                                    Some(xid) => {
                                        spool.append(xid, wal_start, &body)?;
                                        ctx.status.set_spooled_bytes(spool.bytes());
                                    }
                                    None => state.handle(message, wal_start, &mut cat).await?,
                                },
                            }
                        }
                        b'k' => {
                            if body.len() < 17 {
                                return Err(CdcError::transient("short keepalive message"));
                            }
                            let wal_end = body.get_u64();
                            body.advance(8);
                            let reply = body.get_u8() == 1;
                            state.received = state.received.max(wal_end);
                            // Outside a transaction everything up to wal_end is processed: let the
                            // slot advance. A streamed transaction still open commits later than
                            // wal_end, so the server would send it again whole after a restart.
                            if state.tx.is_none() && wal_end > state.checkpointed {
                                state.checkpoint = Some((pg_position(wal_end, None), state.events.len()));
                                state.checkpointed = wal_end;
                            }
                            if reply {
                                feedback.send(&mut repl, state.received, &ctx).await?;
                            }
                        }
                        other => tracing::debug!(kind = other, "Ignoring unknown replication message"),
                    }
                }
                b'E' => return Err(super::protocol::parse_error(msg.body).classify("streaming")),
                b'c' => return Err(CdcError::transient("the server ended the replication stream")),
                b'N' => {}
                other => {
                    return Err(CdcError::transient(format!("unexpected message {:?} while streaming", other as char)));
                }
            }
            if feedback.sent_at.elapsed() > feedback.interval {
                feedback.send(&mut repl, state.received, &ctx).await?;
                self.report_slot_lag(&mut cat, &ctx).await;
            }
            // A batch goes out when full, or when the input runs dry and the sink is waiting
            // for work. While the sink is still busy with earlier batches, a partial batch
            // keeps growing for up to LINGER: fewer, larger batches (one target transaction
            // each for a database sink) at no cost in latency when the pipeline is idle.
            let full = state.events.len() >= self.batch_events;
            let idle = !repl.has_buffered_message();
            let has_work = !state.events.is_empty() || state.checkpoint.is_some();
            let sink_waiting = out.capacity() == out.max_capacity();
            if has_work && (full || (idle && sink_waiting)) {
                linger = None;
                if !feedback.deliver(&out, state.take_batch(), &mut repl, state.received, &ctx).await? {
                    return Ok(());
                }
            } else if has_work && idle && linger.is_none() {
                linger = Some(tokio::time::Instant::now() + LINGER);
            }
        }
    }
}

/// How often the server hears from us at the least: a quarter of its `wal_sender_timeout`
/// (60 s by default), at most 10 s.
async fn status_interval(cat: &mut PgConnection) -> Duration {
    let most = Duration::from_secs(10);
    let timeout_ms = cat
        .query("SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout'")
        .await
        .ok()
        .and_then(|rows| rows.into_iter().next()?.into_iter().next()?)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    match timeout_ms {
        0 => most,
        ms => Duration::from_millis(ms / 4).clamp(Duration::from_millis(100), most),
    }
}

fn decode_at(message: &[u8], in_stream: bool, lsn: u64) -> Result<PgMessage<'_>, CdcError> {
    pgoutput::decode(message, in_stream)
        .map_err(|e| CdcError::definite(format!("cannot decode pgoutput at {}: {e}", Lsn(lsn)), "report this"))
}

/// Standby status updates: the server hears the newest durable position, and hears from us
/// often enough not to drop the connection, also while the sink holds us back.
struct Feedback {
    durable: u64,
    sent_at: Instant,
    interval: Duration,
}

impl Feedback {
    async fn send(&mut self, repl: &mut PgConnection, received: u64, ctx: &SourceContext) -> Result<(), CdcError> {
        if let Some(l) = ctx.durable.borrow().as_ref().and_then(pg_lsn) {
            self.durable = self.durable.max(l);
        }
        send_status(repl, received, self.durable, false).await?;
        self.sent_at = Instant::now();
        Ok(())
    }

    /// Sends a batch downstream, waiting for room as long as the sink needs; `false` when the
    /// pipeline is gone.
    async fn deliver(
        &mut self,
        out: &mpsc::Sender<Batch>,
        batch: Batch,
        repl: &mut PgConnection,
        received: u64,
        ctx: &SourceContext,
    ) -> Result<bool, CdcError> {
        loop {
            tokio::select! {
                permit = out.reserve() => {
                    let Ok(permit) = permit else { return Ok(false) };
                    permit.send(batch);
                    if self.sent_at.elapsed() > self.interval {
                        self.send(repl, received, ctx).await?;
                    }
                    return Ok(true);
                }
                _ = tokio::time::sleep(self.interval) => self.send(repl, received, ctx).await?,
            }
        }
    }
}

impl PgSource {
    /// Slot lag for /status and /metrics; a failed query only skips this report.
    async fn report_slot_lag(&self, cat: &mut PgConnection, ctx: &SourceContext) {
        let sql = format!(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint::text FROM pg_replication_slots WHERE slot_name = {}",
            quote_literal(&self.slot)
        );
        if let Ok(rows) = cat.query(&sql).await
            && let Some(bytes) =
                rows.into_iter().next().and_then(|r| r.into_iter().next().flatten()).and_then(|b| b.parse().ok())
        {
            ctx.status.set_source_lag_bytes(bytes);
        }
    }
}

fn pg_lsn(p: &Position) -> Option<u64> {
    match p {
        Position::Postgres(p) => Some(p.lsn.0),
        _ => None,
    }
}

/// Standby status update: received (write), durable (flush and apply).
async fn send_status(repl: &mut PgConnection, received: u64, durable: u64, reply: bool) -> Result<(), CdcError> {
    let now_us = crate::model::now_us() - PG_EPOCH_OFFSET_US;
    let mut msg = Vec::with_capacity(34);
    msg.push(b'r');
    msg.extend_from_slice(&received.to_be_bytes());
    msg.extend_from_slice(&durable.to_be_bytes());
    msg.extend_from_slice(&durable.to_be_bytes());
    msg.extend_from_slice(&now_us.to_be_bytes());
    msg.push(reply as u8);
    repl.send_copy_data(&msg).await
}

struct Tx {
    xid: u32,
    commit_ts_ms: i64,
}

struct RelationInfo {
    relation: Relation,
    schema: Arc<TableSchema>,
    included: bool,
}

struct StreamState {
    database: Arc<str>,
    filter: TableFilter,
    relations: FxHashMap<u32, RelationInfo>,
    types: TypeCache,
    tx: Option<Tx>,
    /// Inside Stream Start … Stop: the in-progress transaction being streamed.
    in_stream: Option<u32>,
    last_commit_lsn: Option<u64>,
    /// Newest LSN received (reported as written).
    received: u64,
    /// Newest LSN made a checkpoint.
    checkpointed: u64,
    events: Vec<ChangeEvent>,
    /// Newest transaction boundary, with the number of events before it.
    checkpoint: Option<(Position, usize)>,
    newest_ts_ms: Option<i64>,
    repeat: RepeatWindow,
}

impl StreamState {
    fn take_batch(&mut self) -> Batch {
        let batch = Batch::cut(&mut self.events, self.checkpoint.take(), self.newest_ts_ms.take());
        self.repeat.mark(batch)
    }

    /// The last batch before a stop: whole transactions only (see [`Batch::cut_for_stop`]).
    fn final_batch(&mut self) -> Option<Batch> {
        let batch = Batch::cut_for_stop(&mut self.events, self.checkpoint.take(), self.newest_ts_ms.take())?;
        Some(self.repeat.mark(batch))
    }

    async fn handle(&mut self, message: PgMessage<'_>, lsn: u64, cat: &mut PgConnection) -> Result<(), CdcError> {
        match message {
            PgMessage::Begin { commit_ts_us, xid, .. } => {
                self.tx = Some(Tx { xid, commit_ts_ms: (commit_ts_us + PG_EPOCH_OFFSET_US).div_euclid(1000) });
            }
            PgMessage::Commit { commit_lsn, end_lsn, .. } => {
                self.tx = None;
                self.last_commit_lsn = Some(commit_lsn);
                self.checkpoint = Some((pg_position(end_lsn, Some(commit_lsn)), self.events.len()));
                self.checkpointed = self.checkpointed.max(end_lsn);
            }
            PgMessage::Relation(rel) => {
                let oids: Vec<u32> = rel.columns.iter().map(|c| c.type_oid).collect();
                self.types.resolve(cat, &oids).await?;
                let id = TableId::new(rel.namespace.clone(), rel.name.clone());
                // pgoutput says neither which columns are NOT NULL nor which form the primary key
                // (its key flags are the replica identity's); the catalog does. A column it no
                // longer has counts as nullable. The primary key keys when the replica identity
                // covers it (DEFAULT, FULL), so old rows carry it; else the identity's columns do.
                let facts = catalog::column_constraints(cat, rel.oid).await?;
                let by_primary_key = !facts.primary_key.is_empty()
                    && facts.primary_key.iter().all(|pk| rel.columns.iter().any(|c| c.key && c.name == *pk));
                let cols: Vec<(String, u32, i32, bool, bool)> = rel
                    .columns
                    .iter()
                    .map(|c| {
                        let key = if by_primary_key { facts.primary_key.contains(&c.name) } else { c.key };
                        (c.name.clone(), c.type_oid, c.type_modifier, facts.not_null.contains(&c.name), key)
                    })
                    .collect();
                let schema = crate::sources::with_existing_rows_values(
                    self.types.schema(id.clone(), &cols),
                    &facts.existing_rows_values,
                    |_| false,
                );
                let included = self.filter.matches_id(&id);
                self.relations.insert(rel.oid, RelationInfo { relation: rel, schema, included });
            }
            PgMessage::Insert { relation, new } => {
                let Some(info) = self.included(relation)? else { return Ok(()) };
                let after = row(info, &new, None)?;
                self.push(relation, Op::Create, None, Some(after), lsn);
            }
            PgMessage::Update { relation, old, new } => {
                let Some(info) = self.included(relation)? else { return Ok(()) };
                let old_full = old.as_ref().filter(|(k, _)| *k == b'O').map(|(_, t)| t.as_slice());
                let before = match &old {
                    Some((_, t)) => Some(row(info, t, None)?),
                    None => None,
                };
                let after = row(info, &new, old_full)?;
                self.push(relation, Op::Update, before, Some(after), lsn);
            }
            PgMessage::Delete { relation, old } => {
                let Some(info) = self.included(relation)? else { return Ok(()) };
                let before = row(info, &old.1, None)?;
                self.push(relation, Op::Delete, Some(before), None, lsn);
            }
            PgMessage::Truncate { relations, .. } => {
                for r in relations {
                    if self.included(r)?.is_some() {
                        self.push(r, Op::Truncate, None, None, lsn);
                    }
                }
            }
            PgMessage::Type { .. } | PgMessage::Origin | PgMessage::Message { .. } => {}
            PgMessage::StreamStart { .. }
            | PgMessage::StreamStop
            | PgMessage::StreamCommit { .. }
            | PgMessage::StreamAbort { .. } => {
                // Handled by the stream loop; never spooled.
                return Err(CdcError::definite("a stream control message inside a transaction", "report this"));
            }
        }
        Ok(())
    }

    fn included(&self, relation: u32) -> Result<Option<&RelationInfo>, CdcError> {
        match self.relations.get(&relation) {
            Some(info) => Ok(info.included.then_some(info)),
            None => Err(CdcError::definite(
                format!("change for relation {relation} before its Relation message"),
                "report this",
            )),
        }
    }

    fn push(&mut self, relation: u32, op: Op, before: Option<Row>, after: Option<Row>, lsn: u64) {
        let Some(info) = self.relations.get(&relation) else { return };
        let ts_ms = self.tx.as_ref().map_or(0, |t| t.commit_ts_ms);
        self.newest_ts_ms = Some(ts_ms);
        self.events.push(ChangeEvent {
            op,
            table: info.schema.clone(),
            before,
            after,
            source: SourceInfo {
                ts_ms,
                snapshot: SnapshotMarker::No,
                meta: SourceMeta::Postgres {
                    database: self.database.clone(),
                    tx_id: self.tx.as_ref().map(|t| t.xid),
                    lsn,
                    last_commit_lsn: self.last_commit_lsn,
                    xmin: None,
                },
            },
            transaction: None,
        });
    }
}

/// Converts a tuple; unchanged TOAST values come from the full old row when there is one.
fn row(info: &RelationInfo, tuple: &[TupleValue<'_>], old_full: Option<&[TupleValue<'_>]>) -> Result<Row, CdcError> {
    let mut out = Vec::with_capacity(tuple.len());
    for (i, (col, v)) in info.schema.columns.iter().zip(tuple.iter()).enumerate() {
        let v = match (v, old_full.and_then(|o| o.get(i))) {
            (TupleValue::Unchanged, Some(old)) => old,
            (v, _) => v,
        };
        match v {
            TupleValue::Null => out.push(Value::Null),
            TupleValue::Unchanged => out.push(Value::Unchanged),
            TupleValue::Text(bytes) => {
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    CdcError::definite(
                        format!("{}.{}: value is not UTF-8", info.relation.name, col.name),
                        "report this",
                    )
                })?;
                push_text(&col.kind, text, &mut out).map_err(|e| {
                    CdcError::definite(
                        format!(
                            "{}.{}.{} ({}): {e}",
                            info.relation.namespace, info.relation.name, col.name, col.source_type
                        ),
                        "report this value",
                    )
                })?
            }
            TupleValue::Binary(_) => {
                return Err(CdcError::definite("binary tuple data was not requested", "report this"));
            }
        }
    }
    Ok(out)
}
