//! The live source: a replica connection streaming the binlog into change-event batches.
//!
//! Start: the stored position (or `--from`) when there is one; otherwise a snapshot
//! (`snapshot = "initial"`) or the server's current position (`"never"`). Before streaming,
//! the server must still have the position (`gtid_purged`, binlog file list). Resume uses
//! the GTID state when the position has one (MariaDB `@slave_connect_state`, MySQL
//! `COM_BINLOG_DUMP_GTID`), else file:pos. A heartbeat is requested and its absence for
//! three periods is treated as a dead connection (transient: the runtime reconnects).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use mysql_async::BinlogStreamRequest;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use super::decoder::{BinlogDecoder, RawEvent, event_type};
use super::schema_history::HistoryFile;
use super::server::{ServerFacts, connect, current_position, sql_err, verify_available};
use super::snapshot;
use crate::config::{Config, MySqlSourceConfig, SnapshotMode};
use crate::error::CdcError;
use crate::model::{Batch, GtidSet, MySqlPosition, Position};
use crate::pipeline::{Source, SourceContext};
use crate::sources::RepeatWindow;
use crate::sources::filter::TableFilter;

pub struct MySqlSource {
    url: String,
    server_id: u32,
    filter: TableFilter,
    snapshot: SnapshotMode,
    heartbeat: Duration,
    batch_events: usize,
    chunk_rows: usize,
    snapshot_connections: usize,
    schema_history: PathBuf,
}

impl MySqlSource {
    pub fn new(config: &Config, cfg: &MySqlSourceConfig) -> MySqlSource {
        let batch_events = config.pipeline.batch_events;
        let schema_history =
            cfg.schema_history.clone().unwrap_or_else(|| config.positions.path.with_file_name("schema-history.jsonl"));
        MySqlSource {
            schema_history,
            url: cfg.url.expose().to_string(),
            server_id: cfg.server_id,
            filter: TableFilter::new(&cfg.tables, &cfg.exclude_tables),
            snapshot: cfg.snapshot,
            heartbeat: Duration::from_secs(cfg.heartbeat_secs.max(1) as u64),
            batch_events: batch_events.max(1),
            chunk_rows: cfg.snapshot_chunk_rows.max(1),
            snapshot_connections: cfg.snapshot_connections.max(1),
        }
    }
}

async fn send(out: &mpsc::Sender<Batch>, batch: Batch) -> bool {
    out.send(batch).await.is_ok()
}

#[async_trait]
impl Source for MySqlSource {
    async fn run(
        &mut self,
        start: Option<Position>,
        out: mpsc::Sender<Batch>,
        ctx: SourceContext,
    ) -> Result<(), CdcError> {
        let mut conn = connect(&self.url, "source.url").await?;
        let facts = ServerFacts::read(&mut conn).await?;
        facts.require_row_binlog()?;
        tracing::info!(version = %facts.version, server_id = facts.server_id, "Connected to the source");

        let mut repeat = RepeatWindow::default();
        let start = match start {
            Some(Position::MySql(p)) if p.snapshot.is_some() => {
                // An interrupted snapshot: it only makes sense if streaming can start where it was taken.
                let base = complete_gtids(&mut conn, &facts, MySqlPosition { snapshot: None, ..p.clone() }).await?;
                verify_available(&mut conn, &facts, &base).await?;
                let resume = MySqlPosition { snapshot: p.snapshot, ..base };
                match self.snapshot(&facts, Some(resume), &out, &ctx).await? {
                    Some((p, until)) => {
                        repeat = RepeatWindow::until(until.map(Position::MySql));
                        p
                    }
                    None => return Ok(()),
                }
            }
            Some(Position::MySql(p)) => p,
            Some(other) => {
                return Err(CdcError::definite(
                    format!("the stored position {other} is not a MySQL position"),
                    "point positions.path at this source's file, or start with --from",
                ));
            }
            None if self.snapshot == SnapshotMode::Never => {
                let p = current_position(&mut conn, &facts).await?;
                tracing::info!(position = %Position::MySql(p.clone()), "No stored position and snapshot = never: starting at the current end of the binlog");
                p
            }
            None => match self.snapshot(&facts, None, &out, &ctx).await? {
                Some((p, _)) => p,
                None => return Ok(()),
            },
        };
        let start = complete_gtids(&mut conn, &facts, start).await?;
        verify_available(&mut conn, &facts, &start).await?;
        drop(conn);
        self.stream(start, &facts, repeat, out, ctx).await
    }
}

impl MySqlSource {
    /// Takes (or, with `resume`, goes on with) the initial snapshot; the position to stream
    /// from and, after a resume, where the resumed read began (see `RepeatWindow`); `None`
    /// when there is nothing more to do (shut down, or `initial_only`).
    async fn snapshot(
        &self,
        facts: &ServerFacts,
        resume: Option<MySqlPosition>,
        out: &mpsc::Sender<Batch>,
        ctx: &SourceContext,
    ) -> Result<Option<(MySqlPosition, Option<MySqlPosition>)>, CdcError> {
        ctx.status.set_phase("snapshot");
        ctx.status.set_ready(true);
        let plan = snapshot::SnapshotPlan {
            filter: &self.filter,
            batch_events: self.batch_events,
            chunk_rows: self.chunk_rows,
            connections: self.snapshot_connections,
            resume,
        };
        let done = snapshot::run(&self.url, facts, plan, out, ctx).await?;
        Ok(done.filter(|_| self.snapshot != SnapshotMode::InitialOnly))
    }
}

impl MySqlSource {
    /// The schema history as of `start`, completed from `information_schema` for selected
    /// tables it does not know (all of them on a first start), handed to the decoder.
    async fn load_schema_history(
        &self,
        decoder: &mut BinlogDecoder,
        start: &MySqlPosition,
    ) -> Result<HistoryFile, CdcError> {
        let (mut file, mut history) = HistoryFile::load(&self.schema_history, self.filter.clone(), start)?;
        let mut conn = connect(&self.url, "source.url").await?;
        let known = history.len();
        for (id, def) in snapshot::table_definitions(&mut conn, &self.filter, None).await? {
            if history.get(&id).is_none() {
                history.set(&id, Some(def), start, None);
            }
        }
        file.append(&history.take_records())?;
        tracing::info!(
            path = %self.schema_history.display(),
            from_history = known,
            from_server = history.len() - known,
            "The binlog has no column names (binlog_row_metadata is not FULL): following table definitions through DDL"
        );
        decoder.track_schemas(history, start.clone());
        Ok(file)
    }
}

/// A file:pos position on MariaDB gets its exact GTID state, so later positions carry it.
async fn complete_gtids(
    conn: &mut mysql_async::Conn,
    facts: &ServerFacts,
    p: MySqlPosition,
) -> Result<MySqlPosition, CdcError> {
    match (&p.gtid_set, &p.binlog, facts.mariadb) {
        (None, Some(b), true) => {
            let gtid_set = super::server::mariadb_gtid_at(conn, &b.file, b.pos).await?;
            Ok(MySqlPosition { gtid_set, binlog: p.binlog, snapshot: None })
        }
        _ => Ok(p),
    }
}

impl MySqlSource {
    async fn stream(
        &self,
        start: MySqlPosition,
        facts: &ServerFacts,
        mut repeat: RepeatWindow,
        out: mpsc::Sender<Batch>,
        ctx: SourceContext,
    ) -> Result<(), CdcError> {
        let mut conn = connect(&self.url, "source.url").await?;
        let heartbeat_ns = self.heartbeat.as_nanos() as u64;
        conn.query_drop(format!("SET @master_heartbeat_period = {heartbeat_ns}"))
            .await
            .map_err(sql_err("setting the heartbeat"))?;
        let file = start.binlog.as_ref().map(|b| b.file.clone()).unwrap_or_default();
        let pos = start.binlog.as_ref().map_or(4, |b| b.pos);
        let mut request = BinlogStreamRequest::new(self.server_id);
        let mut sids = Vec::new();
        match (&start.gtid_set, facts.mariadb) {
            (Some(GtidSet::MariaDb(list)), true) if !list.is_empty() => {
                conn.query_drop("SET @mariadb_slave_capability = 4")
                    .await
                    .map_err(sql_err("announcing capabilities"))?;
                conn.exec_drop("SET @slave_connect_state = ?", (list.to_string(),))
                    .await
                    .map_err(sql_err("setting the GTID start"))?;
                conn.query_drop("SET @slave_gtid_strict_mode = 1")
                    .await
                    .map_err(sql_err("setting GTID strict mode"))?;
            }
            (Some(GtidSet::MySql(set)), false) => {
                for (uuid, tag, intervals) in set.iter() {
                    if !tag.is_empty() {
                        return Err(CdcError::definite(
                            "resuming from a tagged GTID set is not supported yet",
                            "resume with --from mysql:file=NAME:pos=N",
                        ));
                    }
                    let mut sid = mysql_common::packets::Sid::new(uuid_bytes(uuid));
                    for &(a, b) in intervals {
                        sid = sid.with_interval(mysql_common::packets::GnoInterval::new(a, b + 1));
                    }
                    sids.push(sid);
                }
                request = request.with_gtid();
            }
            _ => {
                if facts.mariadb {
                    conn.query_drop("SET @mariadb_slave_capability = 4")
                        .await
                        .map_err(sql_err("announcing capabilities"))?;
                }
            }
        }
        let use_file = !(facts.mariadb && start.gtid_set.as_ref().is_some_and(|g| !g.is_empty()));
        if use_file {
            request = request.with_filename(file.as_bytes()).with_pos(pos);
        }
        if !sids.is_empty() {
            request = request.with_gtid_set(sids);
        }
        let mut stream = conn.get_binlog_stream(request).await.map_err(sql_err("requesting the binlog stream"))?;
        let mut decoder = BinlogDecoder::new(self.filter.clone(), &file, start.gtid_set.clone());
        let mut history_file = None;
        if facts.row_metadata.as_deref() != Some("FULL") {
            history_file = Some(self.load_schema_history(&mut decoder, &start).await?);
        }
        tracing::info!(position = %Position::MySql(start.clone()), "Streaming binlog");
        ctx.status.set_phase("streaming");
        ctx.status.set_ready(true);

        // Today's definitions, for tables the schema history cannot name; the binlog lag.
        let mut catalog: Option<mysql_async::Conn> = None;
        let mut next_lag_report = std::time::Instant::now();
        let dead_after = self.heartbeat * 3;
        let mut peeked = None;
        // Events of a TRANSACTION_PAYLOAD the client library also yields one by one; the
        // decoder already handled them from the payload itself.
        let mut skip_inner = 0usize;
        loop {
            let item = match peeked.take() {
                Some(item) => item,
                None => {
                    tokio::select! {
                        _ = ctx.shutdown.cancelled() => {
                            if let Some(batch) = decoder.final_batch() {
                                send(&out, repeat.mark(batch)).await;
                            }
                            return Ok(());
                        }
                        r = tokio::time::timeout(dead_after, stream.next()) => match r {
                            Err(_) => return Err(CdcError::transient(format!("no binlog event or heartbeat for {} s: connection presumed dead", dead_after.as_secs()))),
                            Ok(None) => return Err(CdcError::transient("the server closed the binlog stream")),
                            Ok(Some(item)) => item,
                        }
                    }
                }
            };
            let event = item.map_err(sql_err("reading the binlog stream"))?;
            if skip_inner > 0 {
                skip_inner -= 1;
            } else {
                let header = event.header();
                let type_code = header.event_type_raw();
                let mut raw = RawEvent {
                    type_code,
                    timestamp: header.timestamp(),
                    server_id: header.server_id(),
                    size: header.event_size(),
                    log_pos: header.log_pos() as u64,
                    flags: header.flags_raw(),
                    data: event.data(),
                };
                verify_checksum(&event, &raw, decoder.file())?;
                if type_code == event_type::ROTATE && event.checksum().is_none() {
                    raw.data = strip_unannounced_checksum(&raw);
                }
                decoder.handle(&raw).map_err(|e| {
                    CdcError::definite(
                        format!("cannot decode the binlog at {}:{}: {e}", decoder.file(), raw.start_pos()),
                        "if the event is valid, report it; to skip it, resume with --from a later position",
                    )
                })?;
                if type_code == event_type::TRANSACTION_PAYLOAD {
                    skip_inner = decoder.last_payload_events;
                }
                for (table_id, id) in decoder.take_needs_names() {
                    let conn = match catalog.as_mut() {
                        Some(c) => c,
                        None => catalog.insert(connect(&self.url, "source.url").await?),
                    };
                    let def = snapshot::table_definitions(conn, &self.filter, Some(&id)).await?.pop().map(|(_, d)| d);
                    if !def.is_some_and(|def| decoder.learn_table(table_id, &def)) {
                        tracing::warn!(table = %id, "Table changed since this binlog event and no schema history covers it: its columns keep positional names");
                    }
                }
                if let Some(file) = history_file.as_mut() {
                    file.append(&decoder.take_history_records())?;
                }
            }
            // Heartbeats keep this running while the stream is idle.
            if std::time::Instant::now() >= next_lag_report {
                next_lag_report = std::time::Instant::now() + self.heartbeat;
                if catalog.is_none() {
                    catalog = connect(&self.url, "source.url")
                        .await
                        .inspect_err(|e| tracing::debug!(error = %e, "No connection for the lag"))
                        .ok();
                }
                if let Some(conn) = catalog.as_mut() {
                    report_binlog_lag(conn, &ctx).await;
                }
            }
            let full = decoder.pending_events() >= self.batch_events;
            if !full {
                // Send what we have once the stream has nothing more ready right now.
                if let Some(next) = stream.next().now_or_never() {
                    match next {
                        Some(item) => {
                            peeked = Some(item);
                            continue;
                        }
                        None => {
                            return Err(CdcError::transient("the server closed the binlog stream"));
                        }
                    }
                }
            }
            if (full || decoder.has_checkpoint() || decoder.pending_events() > 0)
                && !send(&out, repeat.mark(decoder.take_batch())).await
            {
                return Ok(());
            }
        }
    }
}

/// Bytes of binlog between the durable position and the server's head (`SHOW BINARY LOGS`:
/// the rest of the durable position's file plus every file after it), into `/status` and
/// `/metrics`. Skipped when unknown (no durable file position yet, the file purged, or no
/// REPLICATION CLIENT / BINLOG MONITOR privilege).
async fn report_binlog_lag(conn: &mut mysql_async::Conn, ctx: &SourceContext) {
    let durable = ctx.durable.borrow().clone();
    let Some(Position::MySql(MySqlPosition { binlog: Some(at), .. })) = durable else { return };
    let files: Vec<mysql_async::Row> = match conn.query("SHOW BINARY LOGS").await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "Cannot list binary logs for the lag");
            return;
        }
    };
    let files: Vec<(String, u64)> =
        files.into_iter().filter_map(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?))).collect();
    if let Some(i) = files.iter().position(|(name, _)| *name == at.file) {
        let rest = files[i].1.saturating_sub(at.pos);
        ctx.status.set_source_lag_bytes(rest + files[i + 1..].iter().map(|f| f.1).sum::<u64>());
    }
}

/// A corrupt event is never decoded: CRC32 mismatch is a definite error.
fn verify_checksum(
    event: &mysql_common::binlog::events::Event,
    raw: &RawEvent<'_>,
    file: &str,
) -> Result<(), CdcError> {
    use mysql_common::binlog::consts::BinlogChecksumAlg;
    let Some(stored) = event.checksum() else {
        return Ok(());
    };
    let Ok(Some(alg @ BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)) = event.footer().get_checksum_alg() else {
        return Ok(());
    };
    let fde = raw.type_code == event_type::FORMAT_DESCRIPTION;
    let mut head = raw.header_bytes();
    if fde {
        // Computed with LOG_EVENT_BINLOG_IN_USE_F cleared, which the server clears on close.
        head[17] &= !1;
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(raw.data);
    if fde {
        h.update(&[alg as u8]);
    }
    if h.finalize() != u32::from_le_bytes(stored) {
        return Err(CdcError::definite(
            format!("CRC32 mismatch in the binlog event at {file}:{} (type {})", raw.start_pos(), raw.type_code),
            "the binlog or the network path is corrupting data; check the server's binlog with mysqlbinlog --verify-binlog-checksum",
        ));
    }
    Ok(())
}

/// The artificial ROTATE that opens a stream comes before the FORMAT_DESCRIPTION that
/// announces checksums, so the client library leaves its CRC32 in the body: drop it when the
/// last four bytes are the checksum of the rest.
fn strip_unannounced_checksum<'a>(raw: &RawEvent<'a>) -> &'a [u8] {
    let data = raw.data;
    if data.len() < 8 + 4 {
        return data;
    }
    let (body, crc) = data.split_at(data.len() - 4);
    let mut h = crc32fast::Hasher::new();
    h.update(&raw.header_bytes());
    h.update(body);
    if h.finalize() == u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) { body } else { data }
}

fn uuid_bytes(uuid: &str) -> [u8; 16] {
    let hex: Vec<u8> = uuid.bytes().filter(|b| *b != b'-').collect();
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).take(16).enumerate() {
        let s = std::str::from_utf8(pair).unwrap_or("00");
        out[i] = u8::from_str_radix(s, 16).unwrap_or(0);
    }
    out
}
