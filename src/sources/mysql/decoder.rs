//! Turns binlog events into change events and transaction-boundary positions.
//!
//! The same decoder serves the replication stream and offline files: both hand it
//! [`RawEvent`]s (header fields and the body without checksum). It keeps the table maps,
//! the transaction state and the executed GTID set, and accumulates change events until the
//! driver takes a [`Batch`]; the batch's checkpoint is the last transaction boundary in it.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::rows::{PartialJson, RowsKind, parse_header, read_partial_header, read_row};
use super::schema_history::{HistoryRecord, SchemaHistory, TableDef};
use super::table_map::TableMap;
use crate::model::{
    Batch, BinlogCoordinates, ChangeEvent, ColumnType, GtidSet, MariaDbGtid, MariaDbGtidList, MySqlGtidSet,
    MySqlPosition, Op, Position, SnapshotMarker, SourceInfo, SourceMeta, TableId,
};
use crate::sources::filter::TableFilter;
use crate::sources::reader::{DecodeError, Reader, malformed};

/// Binlog event type codes used here.
pub mod event_type {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const HEARTBEAT: u8 = 27;
    pub const IGNORABLE: u8 = 28;
    pub const ROWS_QUERY: u8 = 29;
    pub const WRITE_ROWS: u8 = 30;
    pub const UPDATE_ROWS: u8 = 31;
    pub const DELETE_ROWS: u8 = 32;
    pub const GTID: u8 = 33;
    pub const ANONYMOUS_GTID: u8 = 34;
    pub const PREVIOUS_GTIDS: u8 = 35;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const HEARTBEAT_V2: u8 = 41;
    pub const GTID_TAGGED: u8 = 42;
    pub const MARIADB_ANNOTATE_ROWS: u8 = 160;
    pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
    pub const MARIADB_GTID: u8 = 162;
    pub const MARIADB_GTID_LIST: u8 = 163;
    pub const MARIADB_QUERY_COMPRESSED: u8 = 165;
    pub const MARIADB_WRITE_ROWS_COMPRESSED_V1: u8 = 166;
    pub const MARIADB_UPDATE_ROWS_COMPRESSED_V1: u8 = 167;
    pub const MARIADB_DELETE_ROWS_COMPRESSED_V1: u8 = 168;
    pub const MARIADB_WRITE_ROWS_COMPRESSED: u8 = 169;
    pub const MARIADB_UPDATE_ROWS_COMPRESSED: u8 = 170;
    pub const MARIADB_DELETE_ROWS_COMPRESSED: u8 = 171;
}
use event_type::*;

/// One binlog event: header fields and the body without its checksum.
#[derive(Clone, Copy, Debug)]
pub struct RawEvent<'a> {
    pub type_code: u8,
    pub timestamp: u32,
    pub server_id: u32,
    pub size: u32,
    /// Offset just after this event (0 for artificial events and events inside a payload).
    pub log_pos: u64,
    pub flags: u16,
    pub data: &'a [u8],
}

impl RawEvent<'_> {
    /// The 19-byte common header as the server wrote it (for checksums).
    pub fn header_bytes(&self) -> [u8; 19] {
        let mut head = [0u8; 19];
        head[0..4].copy_from_slice(&self.timestamp.to_le_bytes());
        head[4] = self.type_code;
        head[5..9].copy_from_slice(&self.server_id.to_le_bytes());
        head[9..13].copy_from_slice(&self.size.to_le_bytes());
        head[13..17].copy_from_slice(&(self.log_pos as u32).to_le_bytes());
        head[17..19].copy_from_slice(&self.flags.to_le_bytes());
        head
    }

    /// Offset where this event starts.
    pub fn start_pos(&self) -> u64 {
        self.log_pos.saturating_sub(self.size as u64)
    }
}

/// Parses the 19-byte common header.
pub fn parse_event_header(bytes: &[u8]) -> Result<(u8, u32, u32, u32, u64, u16), DecodeError> {
    let mut r = Reader::new(bytes);
    let timestamp = r.uint_le(4)? as u32;
    let type_code = r.u8()?;
    let server_id = r.uint_le(4)? as u32;
    let size = r.uint_le(4)? as u32;
    let log_pos = r.uint_le(4)?;
    let flags = r.uint_le(2)? as u16;
    Ok((type_code, timestamp, server_id, size, log_pos, flags))
}

#[derive(Default)]
struct TxState {
    /// Between BEGIN (or a MariaDB transactional GTID event) and XID/COMMIT.
    open: bool,
    /// The next QUERY ends the transaction (DDL after a GTID event).
    standalone: bool,
    gtid: Option<Arc<str>>,
    mysql_gtid: Option<(String, String, u64)>,
    mariadb_gtid: Option<MariaDbGtid>,
    thread: Option<u64>,
}

pub struct BinlogDecoder {
    filter: TableFilter,
    /// Current binlog file name.
    file: Arc<str>,
    /// Table ids are 4 bytes in pre-5.1.4 formats.
    table_id_len: usize,
    tables: FxHashMap<u64, (Vec<u8>, Option<Arc<TableMap>>)>,
    tx: TxState,
    /// Executed GTIDs up to the last commit, when known.
    gtids: Option<GtidSet>,
    events: Vec<ChangeEvent>,
    /// Newest transaction boundary, with the number of events before it.
    checkpoint: Option<(Position, usize)>,
    newest_ts_ms: Option<i64>,
    /// Statements that changed rows without rows events (binlog_format ≠ ROW).
    pub refuse_statements: bool,
    /// Events of unknown type skipped so far (for logs and tests).
    pub skipped_unknown: u64,
    /// Events found inside the last TRANSACTION_PAYLOAD.
    pub last_payload_events: usize,
    /// Included tables whose TABLE_MAP carried no column names (binlog_row_metadata=MINIMAL)
    /// and that the schema history could not name.
    needs_names: Vec<u64>,
    /// Table definitions for binlogs without column names, following the DDL read.
    history: Option<SchemaHistory>,
    /// Position of the last transaction boundary (or the start).
    last_boundary: Option<MySqlPosition>,
    /// Columns added by `ALTER TABLE … ADD … DEFAULT <constant>` read in this run: the value
    /// rows older than the column hold, which no row event carries (set on the table's schema
    /// as `existing_rows_value`).
    added_defaults: FxHashMap<TableId, Vec<(String, String)>>,
}

impl BinlogDecoder {
    /// `gtids`: the executed set at the start position, when known (enables GTID positions).
    pub fn new(filter: TableFilter, file: &str, gtids: Option<GtidSet>) -> BinlogDecoder {
        BinlogDecoder {
            filter,
            file: Arc::from(file),
            table_id_len: 6,
            tables: FxHashMap::default(),
            tx: TxState::default(),
            gtids,
            events: Vec::new(),
            checkpoint: None,
            newest_ts_ms: None,
            refuse_statements: true,
            skipped_unknown: 0,
            last_payload_events: 0,
            needs_names: Vec::new(),
            history: None,
            last_boundary: None,
            added_defaults: FxHashMap::default(),
        }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// Position reached so far: the last transaction boundary handled.
    pub fn has_checkpoint(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// Takes the accumulated events up to the newest boundary among them (all of them when
    /// none follows it).
    pub fn take_batch(&mut self) -> Batch {
        Batch::cut(&mut self.events, self.checkpoint.take(), self.newest_ts_ms.take())
    }

    /// The last batch before a stop: whole transactions only (see [`Batch::cut_for_stop`]).
    pub fn final_batch(&mut self) -> Option<Batch> {
        Batch::cut_for_stop(&mut self.events, self.checkpoint.take(), self.newest_ts_ms.take())
    }

    pub fn in_transaction(&self) -> bool {
        self.tx.open || self.tx.standalone
    }

    /// Handles one event. `outer_log_pos` is the payload event's end for events inside a
    /// TRANSACTION_PAYLOAD, so boundaries inside it resume after the whole payload.
    pub fn handle(&mut self, ev: &RawEvent<'_>) -> Result<(), DecodeError> {
        match ev.type_code {
            FORMAT_DESCRIPTION => self.on_format_description(ev.data)?,
            ROTATE => self.on_rotate(ev.data)?,
            QUERY | MARIADB_QUERY_COMPRESSED => self.on_query(ev)?,
            XID => self.commit(ev),
            TABLE_MAP => self.on_table_map(ev.data)?,
            WRITE_ROWS_V1 | WRITE_ROWS => self.on_rows(ev, RowsKind::Write)?,
            UPDATE_ROWS_V1 | UPDATE_ROWS => self.on_rows(ev, RowsKind::Update)?,
            DELETE_ROWS_V1 | DELETE_ROWS => self.on_rows(ev, RowsKind::Delete)?,
            GTID => self.on_mysql_gtid(ev.data)?,
            GTID_TAGGED => self.on_mysql_tagged_gtid(ev)?,
            ANONYMOUS_GTID => {
                self.tx = TxState::default();
            }
            MARIADB_GTID => self.on_mariadb_gtid(ev)?,
            MARIADB_GTID_LIST => self.on_mariadb_gtid_list(ev.data)?,
            TRANSACTION_PAYLOAD => self.on_transaction_payload(ev)?,
            PARTIAL_UPDATE_ROWS => self.on_rows(ev, RowsKind::Update)?,
            MARIADB_WRITE_ROWS_COMPRESSED_V1 | MARIADB_WRITE_ROWS_COMPRESSED => self.on_rows(ev, RowsKind::Write)?,
            MARIADB_UPDATE_ROWS_COMPRESSED_V1 | MARIADB_UPDATE_ROWS_COMPRESSED => self.on_rows(ev, RowsKind::Update)?,
            MARIADB_DELETE_ROWS_COMPRESSED_V1 | MARIADB_DELETE_ROWS_COMPRESSED => self.on_rows(ev, RowsKind::Delete)?,
            STOP
            | HEARTBEAT
            | HEARTBEAT_V2
            | IGNORABLE
            | ROWS_QUERY
            | PREVIOUS_GTIDS
            | MARIADB_ANNOTATE_ROWS
            | MARIADB_BINLOG_CHECKPOINT => {}
            other => {
                self.skipped_unknown += 1;
                tracing::debug!(event_type = other, file = %self.file, pos = ev.start_pos(), "Skipping binlog event of unhandled type");
            }
        }
        Ok(())
    }

    fn on_format_description(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        // binlog version (2), server version (50), timestamp (4), header length (1), post-header lengths.
        let mut r = Reader::new(data);
        r.bytes(2 + 50 + 4)?;
        let _header_len = r.u8()?;
        let post = r.rest();
        if let Some(&len) = post.get(TABLE_MAP as usize - 1) {
            self.table_id_len = if len == 6 { 4 } else { 6 };
        }
        // A new binlog file starts: table ids are reassigned by the server after it.
        Ok(())
    }

    fn on_rotate(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        let _pos = r.uint_le(8)?;
        let name = r.rest();
        // MariaDB may append a NUL.
        let name = name.split(|b| *b == 0).next().unwrap_or(name);
        let name = std::str::from_utf8(name).map_err(|_| malformed("ROTATE file name is not UTF-8"))?;
        if name != &*self.file {
            self.file = Arc::from(name);
            self.tables.clear();
        }
        Ok(())
    }

    fn on_query(&mut self, ev: &RawEvent<'_>) -> Result<(), DecodeError> {
        // thread id (4), exec time (4), schema length (1), error code (2), status vars length (2).
        let mut r = Reader::new(ev.data);
        let thread = r.uint_le(4)?;
        r.uint_le(4)?;
        let schema_len = r.u8()? as usize;
        r.uint_le(2)?;
        let status_len = r.uint_le(2)? as usize;
        r.bytes(status_len)?;
        let default_db = String::from_utf8_lossy(r.bytes(schema_len)?).into_owned();
        r.u8()?;
        let text = match ev.type_code {
            MARIADB_QUERY_COMPRESSED => std::borrow::Cow::Owned(mariadb_uncompress(r.rest())?),
            _ => std::borrow::Cow::Borrowed(r.rest()),
        };
        let sql = String::from_utf8_lossy(&text);
        let sql = sql.trim();
        let head: String = sql.chars().take(12).collect::<String>().to_ascii_uppercase();
        if head.starts_with("BEGIN") || head.starts_with("XA START") {
            self.tx.open = true;
            self.tx.thread = Some(thread);
        } else if head.starts_with("COMMIT") || head.starts_with("XA COMMIT") {
            self.commit(ev);
        } else if head.starts_with("ROLLBACK") && !head.starts_with("ROLLBACK TO") {
            // A rolled-back transaction that reached the binlog (non-transactional tables) ends here.
            self.commit(ev);
        } else if self.refuse_statements && is_dml(&head) {
            return Err(malformed(format!(
                "a row change was logged as a statement (binlog_format is not ROW): `{}`",
                sql.chars().take(120).collect::<String>()
            )));
        } else if !self.tx.open || self.tx.standalone {
            // DDL or another standalone statement: its own transaction.
            // Schema may have changed: forget cached table maps so the next ones are re-read.
            self.tables.clear();
            self.commit(ev);
            if head.starts_with("ALTER") {
                self.note_added_defaults(sql, &default_db);
            }
            if let (Some(history), Some(at)) = (self.history.as_mut(), self.last_boundary.as_ref()) {
                history.apply(sql, &default_db, at);
            }
        }
        Ok(())
    }

    fn on_table_map(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        let table_id = r.uint_le(self.table_id_len)?;
        if let Some((raw, _)) = self.tables.get(&table_id)
            && raw.as_slice() == data
        {
            return Ok(()); // same table map as before: keep the parsed one
        }
        let mut map = TableMap::parse(data, self.table_id_len)?;
        let included = self.filter.matches_id(&map.schema.id);
        if included && !map.has_names {
            let known = self.history.as_ref().and_then(|h| h.get(&map.schema.id));
            match known.and_then(|def| map.named(def, true)) {
                Some(named) => map = named,
                None => self.needs_names.push(table_id),
            }
        }
        if included && let Some(defaults) = self.added_defaults.get(&map.schema.id) {
            // A TIMESTAMP literal is in the session's time zone; bit, binary and spatial
            // literals are not written as PostgreSQL text.
            let skip = |kind: &ColumnType| {
                matches!(
                    kind,
                    ColumnType::Timestamp { .. }
                        | ColumnType::Bytes { .. }
                        | ColumnType::Bit { .. }
                        | ColumnType::Geometry
                )
            };
            map.schema = crate::sources::with_existing_rows_values(map.schema.clone(), defaults, skip);
        }
        self.tables.insert(table_id, (data.to_vec(), included.then(|| Arc::new(map))));
        Ok(())
    }

    fn note_added_defaults(&mut self, sql: &str, default_db: &str) {
        let super::ddl::Ddl::Alter { table, ops } = super::ddl::parse(sql, default_db) else { return };
        for op in ops {
            if let super::ddl::AlterOp::Add { column, .. } = op {
                let defaults = self.added_defaults.entry(table.clone()).or_default();
                defaults.retain(|(name, _)| *name != column.name);
                if let Some(value) = column.default {
                    defaults.push((column.name, value));
                }
            }
        }
    }

    fn on_rows(&mut self, ev: &RawEvent<'_>, kind: RowsKind) -> Result<(), DecodeError> {
        let v2 = matches!(
            ev.type_code,
            WRITE_ROWS
                | UPDATE_ROWS
                | DELETE_ROWS
                | PARTIAL_UPDATE_ROWS
                | MARIADB_WRITE_ROWS_COMPRESSED
                | MARIADB_UPDATE_ROWS_COMPRESSED
                | MARIADB_DELETE_ROWS_COMPRESSED
        );
        let compressed = (MARIADB_WRITE_ROWS_COMPRESSED_V1..=MARIADB_DELETE_ROWS_COMPRESSED).contains(&ev.type_code);
        let partial = ev.type_code == PARTIAL_UPDATE_ROWS;
        let header = parse_header(ev.data, self.table_id_len, kind, v2)?;
        let table = match self.tables.get(&header.table_id) {
            Some((_, Some(t))) => t.clone(),
            Some((_, None)) => return Ok(()), // filtered out: rows are not decoded
            None => {
                return Err(malformed(format!(
                    "rows event at {}:{} refers to table id {} without a TABLE_MAP",
                    self.file,
                    ev.start_pos(),
                    header.table_id
                )));
            }
        };
        let ts_ms = ev.timestamp as i64 * 1000;
        self.newest_ts_ms = Some(ts_ms);
        let uncompressed;
        let body = if compressed {
            uncompressed = mariadb_uncompress(header.body)?;
            &uncompressed[..]
        } else {
            header.body
        };
        let mut r = Reader::new(body);
        let mut row_index = 0u32;
        while !r.is_empty() {
            let left = r.remaining();
            let first = read_row(&mut r, &table, header.present, header.column_count, None)?;
            if r.remaining() == left {
                // Only a corrupt event has a row image of no bytes; it would never end.
                return Err(malformed(format!(
                    "rows event at {}:{} has an empty row image",
                    self.file,
                    ev.start_pos()
                )));
            }
            let (op, before, after) = match kind {
                RowsKind::Write => (Op::Create, None, Some(first)),
                RowsKind::Delete => (Op::Delete, Some(first), None),
                RowsKind::Update => {
                    let present = header.present_after.unwrap_or(header.present);
                    let bits = if partial { read_partial_header(&mut r, &table)? } else { None };
                    let json = bits.map(|bits| PartialJson { bits, before: &first });
                    let after = read_row(&mut r, &table, present, header.column_count, json)?;
                    (Op::Update, Some(first), Some(after))
                }
            };
            self.events.push(ChangeEvent {
                op,
                table: table.schema.clone(),
                before,
                after,
                source: SourceInfo {
                    ts_ms,
                    snapshot: SnapshotMarker::No,
                    meta: SourceMeta::MySql {
                        server_id: ev.server_id,
                        gtid: self.tx.gtid.clone(),
                        file: self.file.clone(),
                        pos: ev.start_pos(),
                        row: row_index,
                        thread: self.tx.thread,
                        query: None,
                    },
                },
                transaction: None,
            });
            row_index += 1;
        }
        Ok(())
    }

    fn on_mysql_gtid(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        let _flags = r.u8()?;
        let sid = r.bytes(16)?;
        let gno = r.uint_le(8)?;
        let uuid = format_uuid(sid);
        self.begin_gtid(Arc::from(format!("{uuid}:{gno}")));
        self.tx.mysql_gtid = Some((uuid, String::new(), gno));
        Ok(())
    }

    fn on_mysql_tagged_gtid(&mut self, ev: &RawEvent<'_>) -> Result<(), DecodeError> {
        // MySQL 8.4's serialized format: let mysql_common read it (guarded against panics).
        use mysql_common::binlog::BinlogCtx;
        use mysql_common::binlog::consts::BinlogVersion;
        use mysql_common::binlog::events::{FormatDescriptionEvent, GtidEvent};
        let parsed = std::panic::catch_unwind(|| {
            let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
            let ctx = BinlogCtx { event_size: ev.data.len(), fde: &fde, event_type_raw: GTID_TAGGED };
            mysql_common::io::ParseBuf(ev.data)
                .parse::<GtidEvent>(ctx)
                .map(|g| (g.sid(), g.gno(), g.tag().map(|t| t.to_string())))
        });
        let (sid, gno, tag) = match parsed {
            Ok(Ok(v)) => v,
            _ => return Err(malformed("malformed GTID_TAGGED event")),
        };
        let uuid = format_uuid(&sid);
        let tag = tag.unwrap_or_default().to_ascii_lowercase();
        let text = if tag.is_empty() { format!("{uuid}:{gno}") } else { format!("{uuid}:{tag}:{gno}") };
        self.begin_gtid(Arc::from(text));
        self.tx.mysql_gtid = Some((uuid, tag, gno));
        Ok(())
    }

    fn on_mariadb_gtid(&mut self, ev: &RawEvent<'_>) -> Result<(), DecodeError> {
        let mut r = Reader::new(ev.data);
        let seq = r.uint_le(8)?;
        let domain = r.uint_le(4)? as u32;
        let flags = r.u8()?;
        let gtid = MariaDbGtid { domain, server_id: ev.server_id, seq };
        self.begin_gtid(Arc::from(gtid.to_string()));
        self.tx.mariadb_gtid = Some(gtid);
        // FL_STANDALONE: a single statement (DDL) without BEGIN/COMMIT; otherwise this event is the BEGIN.
        if flags & 1 != 0 {
            self.tx.standalone = true;
        } else {
            self.tx.open = true;
        }
        Ok(())
    }

    fn on_mariadb_gtid_list(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        let count = (r.uint_le(4)? & 0x0fff_ffff) as usize;
        let mut list = MariaDbGtidList::default();
        for _ in 0..count {
            let domain = r.uint_le(4)? as u32;
            let server_id = r.uint_le(4)? as u32;
            let seq = r.uint_le(8)?;
            list.add(MariaDbGtid { domain, server_id, seq });
        }
        // The state at the start of this file: adopt it if we had none (started by file:pos).
        if self.gtids.is_none() {
            self.gtids = Some(GtidSet::MariaDb(list));
        }
        Ok(())
    }

    fn on_transaction_payload(&mut self, ev: &RawEvent<'_>) -> Result<(), DecodeError> {
        let mut r = Reader::new(ev.data);
        let mut compression = 0u64;
        let mut uncompressed = 0u64;
        loop {
            let field = r.lenenc()?;
            if field == 0 {
                break;
            }
            let len = r.lenenc()? as usize;
            let mut v = Reader::new(r.bytes(len)?);
            let value = v.uint_le(len.min(8))?;
            match field {
                2 => compression = value,
                3 => uncompressed = value,
                _ => {}
            }
        }
        let payload = r.rest();
        let bytes = match compression {
            0 => {
                let limit = usize::try_from(uncompressed).unwrap_or(usize::MAX).max(payload.len());
                zstd::bulk::decompress(payload, limit.min(1 << 31))
                    .map_err(|e| malformed(format!("cannot decompress TRANSACTION_PAYLOAD: {e}")))?
            }
            255 => payload.to_vec(),
            other => {
                return Err(malformed(format!("TRANSACTION_PAYLOAD with unknown compression {other}")));
            }
        };
        let mut inner = Reader::new(&bytes);
        self.last_payload_events = 0;
        while !inner.is_empty() {
            self.last_payload_events += 1;
            let head = inner.bytes(19)?;
            let (type_code, timestamp, server_id, size, _log_pos, flags) = parse_event_header(head)?;
            let body = inner.bytes(
                (size as usize).checked_sub(19).ok_or_else(|| malformed("inner event shorter than its header"))?,
            )?;
            // Inner events carry no checksum; boundaries resume after the whole payload.
            let inner_ev =
                RawEvent { type_code, timestamp, server_id, size: ev.size, log_pos: ev.log_pos, flags, data: body };
            if type_code == TRANSACTION_PAYLOAD {
                return Err(malformed("TRANSACTION_PAYLOAD nested in a TRANSACTION_PAYLOAD"));
            }
            self.handle(&inner_ev)?;
        }
        Ok(())
    }

    fn begin_gtid(&mut self, gtid: Arc<str>) {
        self.tx = TxState { gtid: Some(gtid), ..TxState::default() };
    }

    /// Ends the current transaction at `ev`: records its GTID and a resumable position.
    fn commit(&mut self, ev: &RawEvent<'_>) {
        if let Some(g) = self.tx.mariadb_gtid {
            match &mut self.gtids {
                Some(GtidSet::MariaDb(list)) => list.add(g),
                None => {
                    let mut list = MariaDbGtidList::default();
                    list.add(g);
                    // Only this domain's state is known; other domains stay unknown (file:pos still exact).
                    self.gtids = Some(GtidSet::MariaDb(list));
                }
                _ => {}
            }
        }
        if let Some((uuid, tag, gno)) = self.tx.mysql_gtid.take()
            && let Some(GtidSet::MySql(set)) = &mut self.gtids
        {
            let _ = set.add(&uuid, &tag, gno);
        }
        self.tx = TxState::default();
        if ev.log_pos > 0 {
            let position = MySqlPosition {
                gtid_set: self.gtids.clone(),
                binlog: Some(BinlogCoordinates { file: self.file.to_string(), pos: ev.log_pos }),
                snapshot: None,
            };
            if self.history.is_some() {
                self.last_boundary = Some(position.clone());
            }
            self.checkpoint = Some((Position::MySql(position), self.events.len()));
        }
    }

    /// Tables (id and name) whose column names must be looked up before their rows are decoded.
    pub fn take_needs_names(&mut self) -> Vec<(u64, crate::model::TableId)> {
        let ids = std::mem::take(&mut self.needs_names);
        ids.into_iter()
            .filter_map(|id| match self.tables.get(&id) {
                Some((_, Some(map))) => Some((id, map.schema.id.clone())),
                _ => None,
            })
            .collect()
    }

    /// Names a table map's columns from the server's catalog (today's definition), used
    /// when the schema history has none that fits: the event's columns must be a
    /// type-compatible prefix of it (columns added since are the common change). What fitted
    /// goes into the history from the last boundary on. Returns false when it does not fit:
    /// the columns keep positional names.
    pub fn learn_table(&mut self, table_id: u64, catalog: &TableDef) -> bool {
        let Some((raw, Some(map))) = self.tables.get(&table_id) else { return false };
        let Some(named) = map.named(catalog, false) else { return false };
        if let (Some(history), Some(at)) = (self.history.as_mut(), self.last_boundary.as_ref()) {
            let mut def = catalog.clone();
            def.columns.truncate(named.columns.len());
            def.key.retain(|k| def.columns.iter().any(|c| &c.name == k));
            history.set(&named.schema.id, Some(def), at, None);
        }
        let raw = raw.clone();
        self.tables.insert(table_id, (raw, Some(Arc::new(named))));
        true
    }

    /// Follows table definitions from `start` on, for binlogs without column names.
    pub fn track_schemas(&mut self, history: SchemaHistory, start: MySqlPosition) {
        self.history = Some(history);
        self.last_boundary = Some(start);
    }

    /// Schema history records made since the last call, to be saved before the events
    /// decoded with them are delivered.
    pub fn take_history_records(&mut self) -> Vec<HistoryRecord> {
        self.history.as_mut().map(SchemaHistory::take_records).unwrap_or_default()
    }

    /// Starts tracking a MySQL GTID set (from a resume position or `gtid_executed`).
    pub fn set_mysql_gtids(&mut self, set: MySqlGtidSet) {
        self.gtids = Some(GtidSet::MySql(set));
    }
}

/// MariaDB's compressed event payload (`log_bin_compress`): one byte `0x80 | n`, the
/// uncompressed length in `n` big-endian bytes, then a zlib stream.
fn mariadb_uncompress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    use std::io::Read;
    let mut r = Reader::new(data);
    let head = r.u8()?;
    let len_bytes = (head & 0x07) as usize;
    if head & 0x80 == 0 || !(1..=4).contains(&len_bytes) {
        return Err(malformed(format!("invalid compressed event header 0x{head:02x}")));
    }
    let len = r.uint_be(len_bytes)? as usize;
    let mut out = Vec::with_capacity(len.min(1 << 26));
    flate2::read::ZlibDecoder::new(r.rest())
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| malformed(format!("cannot decompress a compressed event: {e}")))?;
    if out.len() != len {
        return Err(malformed(format!("compressed event holds {} bytes, header says {len}", out.len())));
    }
    Ok(out)
}

fn is_dml(head: &str) -> bool {
    ["INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD DATA"].iter().any(|k| head.starts_with(k))
}

fn format_uuid(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if hex.len() != 32 {
        return hex;
    }
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}
