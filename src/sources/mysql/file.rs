//! Reading binlog files from disk (`cdc inspect-binlog`, fixture tests).

use std::path::Path;

use super::decoder::{BinlogDecoder, RawEvent, event_type, parse_event_header};
use super::schema_history::SchemaHistory;
use crate::model::{Batch, BinlogCoordinates, MySqlPosition};
use crate::sources::filter::TableFilter;
use crate::sources::reader::{DecodeError, malformed};

const MAGIC: &[u8; 4] = b"\xfebin";

/// Decodes a whole binlog file, calling `on_batch` with the change events of each event
/// boundary it reaches. `from_pos`/`stop_pos` limit which events are decoded (events before
/// `from_pos` still update the table maps and format).
pub fn decode_file(
    path: &Path,
    from_pos: Option<u64>,
    stop_pos: Option<u64>,
    mut on_batch: impl FnMut(Batch),
) -> Result<FileSummary, DecodeError> {
    let bytes = read_maybe_gzip(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    decode_bytes(&bytes, &name, from_pos, stop_pos, &mut on_batch)
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct FileSummary {
    pub events: u64,
    pub skipped_unknown: u64,
    pub server_version: String,
    pub checksums: bool,
}

pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DecodeError> {
    let raw = std::fs::read(path).map_err(|e| malformed(format!("cannot read {}: {e}", path.display())))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| malformed(format!("cannot gunzip {}: {e}", path.display())))?;
        return Ok(out);
    }
    Ok(raw)
}

pub fn decode_bytes(
    bytes: &[u8],
    name: &str,
    from_pos: Option<u64>,
    stop_pos: Option<u64>,
    on_batch: &mut dyn FnMut(Batch),
) -> Result<FileSummary, DecodeError> {
    if bytes.len() < 4 || &bytes[..4] != MAGIC {
        return Err(malformed(format!("{name} is not a binlog file (no fe 62 69 6e magic)")));
    }
    let mut decoder = BinlogDecoder::new(TableFilter::all(), name, None);
    // Tables created in the file get their column names from the CREATE TABLE when the
    // binlog logs none; other tables keep positional names (`@1`…).
    let start = MySqlPosition {
        gtid_set: None,
        binlog: Some(BinlogCoordinates { file: name.to_string(), pos: 4 }),
        snapshot: None,
    };
    decoder.track_schemas(SchemaHistory::default(), start);
    // Offline files may come from statement-based servers: decode what is row-based.
    decoder.refuse_statements = false;
    let mut summary = FileSummary::default();
    let mut pos = 4usize;
    let mut checksums = false;
    while pos < bytes.len() {
        let header = bytes.get(pos..pos + 19).ok_or_else(|| {
            malformed(format!("{name}: truncated event header at offset {pos} ({} bytes left)", bytes.len() - pos))
        })?;
        let (type_code, timestamp, server_id, size, log_pos, flags) = parse_event_header(header)?;
        let size_us = size as usize;
        if size_us < 19 {
            return Err(malformed(format!("{name}: event at offset {pos} claims size {size}")));
        }
        let event = bytes.get(pos..pos + size_us).ok_or_else(|| {
            malformed(format!(
                "{name}: truncated event at offset {pos}: needs {size} bytes, {} left",
                bytes.len() - pos
            ))
        })?;
        let mut body_end = size_us;
        if type_code == event_type::FORMAT_DESCRIPTION {
            let (has_alg, version) = fde_footer(event)?;
            summary.server_version = version;
            if has_alg {
                checksums = event[size_us - 5] == 1;
                body_end -= 5;
                if checksums {
                    verify_crc(event, name, pos)?;
                }
            }
        } else if checksums {
            verify_crc(event, name, pos)?;
            body_end -= 4;
        }
        if body_end < 19 {
            return Err(malformed(format!("{name}: event at offset {pos} is shorter than its header and footer")));
        }
        // Pre-4.x style positions are absolute offsets in the file; use the real one.
        let log_pos = if log_pos == 0 { 0 } else { (pos + size_us) as u64 };
        let raw = RawEvent { type_code, timestamp, server_id, size, log_pos, flags, data: &event[19..body_end] };
        let in_range = from_pos.is_none_or(|f| pos as u64 >= f) && stop_pos.is_none_or(|s| (pos as u64) < s);
        let structural =
            matches!(type_code, event_type::FORMAT_DESCRIPTION | event_type::TABLE_MAP | event_type::ROTATE);
        if in_range || structural {
            decoder.handle(&raw)?;
        }
        if !in_range {
            decoder.take_batch(); // keep only events in range
        } else {
            while decoder.pending_events() > 0 || decoder.has_checkpoint() {
                on_batch(decoder.take_batch());
            }
        }
        summary.events += 1;
        pos += size_us;
        if stop_pos.is_some_and(|s| pos as u64 >= s) {
            break;
        }
    }
    summary.checksums = checksums;
    summary.skipped_unknown = decoder.skipped_unknown;
    Ok(summary)
}

/// Whether the FDE carries a checksum-algorithm byte (servers from 5.6.1 / MariaDB 5.3), and
/// the server version.
fn fde_footer(event: &[u8]) -> Result<(bool, String), DecodeError> {
    let version_bytes = event.get(19 + 2..19 + 52).ok_or_else(|| malformed("truncated FORMAT_DESCRIPTION"))?;
    let version = String::from_utf8_lossy(version_bytes.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
    let mariadb = version.contains("MariaDB");
    let has_alg = super::server::version_at_least(&version, if mariadb { (5, 3, 0) } else { (5, 6, 1) });
    Ok((has_alg, version))
}

fn verify_crc(event: &[u8], name: &str, pos: usize) -> Result<(), DecodeError> {
    let n = event.len();
    if n < 23 {
        return Err(malformed(format!("{name}: event at offset {pos} too short for a checksum")));
    }
    let stored = u32::from_le_bytes([event[n - 4], event[n - 3], event[n - 2], event[n - 1]]);
    let computed = if event[4] == event_type::FORMAT_DESCRIPTION && event[17] & 1 != 0 {
        // The server clears LOG_EVENT_BINLOG_IN_USE_F when it closes the file without
        // recomputing the checksum, which was computed with the flag cleared.
        let mut h = crc32fast::Hasher::new();
        h.update(&event[..17]);
        h.update(&[event[17] & !1]);
        h.update(&event[18..n - 4]);
        h.finalize()
    } else {
        crc32fast::hash(&event[..n - 4])
    };
    if stored != computed {
        return Err(malformed(format!(
            "{name}: CRC32 mismatch in event at offset {pos} (stored {stored:08x}, computed {computed:08x}): the file is corrupt"
        )));
    }
    Ok(())
}
