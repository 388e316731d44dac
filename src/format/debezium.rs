//! The Debezium envelope in JSON, written straight into a byte buffer.
//!
//! Field names, field order and value encodings follow Debezium 3's defaults
//! (`decimal.handling.mode=precise`, `time.precision.mode=adaptive` /
//! `adaptive_time_microseconds`, `binary.handling.mode=bytes`), so that a consumer written
//! for Debezium reads our events unchanged. Deliberate differences are listed in
//! `docs/decisions.md` (e.g. BIGINT UNSIGNED above 2^63 is written exactly, not wrapped).

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::model::{ChangeEvent, Column, ColumnType, Row, SourceMeta, TableSchema, TxInfo, Value};

/// Debezium's placeholder for a value the source did not send (unchanged TOAST column).
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// What the envelope needs besides the event itself.
#[derive(Clone, Debug)]
pub struct EnvelopeContext {
    /// Logical server name (`name` in the config): `source.name`.
    pub name: String,
    /// Processing time written as the envelope's `ts_ms`.
    pub now_us: i64,
}

/// Appends one event as a Debezium envelope (no trailing newline).
pub fn write_envelope(out: &mut Vec<u8>, event: &ChangeEvent, ctx: &EnvelopeContext) {
    write_envelope_in_tx(out, event, ctx, event.transaction.as_ref())
}

/// As [`write_envelope`], with the `transaction` block given by the caller (a sink that
/// numbers the events of each transaction).
pub fn write_envelope_in_tx(
    out: &mut Vec<u8>,
    event: &ChangeEvent,
    ctx: &EnvelopeContext,
    transaction: Option<&TxInfo>,
) {
    out.extend_from_slice(b"{\"before\":");
    write_row(out, &event.table, event.before.as_ref());
    out.extend_from_slice(b",\"after\":");
    write_row(out, &event.table, event.after.as_ref());
    out.extend_from_slice(b",\"source\":");
    write_source(out, event, ctx);
    out.extend_from_slice(b",\"transaction\":");
    match transaction {
        None => out.extend_from_slice(b"null"),
        Some(tx) => {
            out.extend_from_slice(b"{\"id\":");
            write_str(out, &tx.id);
            out.extend_from_slice(b",\"total_order\":");
            push_int(out, tx.total_order);
            out.extend_from_slice(b",\"data_collection_order\":");
            push_int(out, tx.data_collection_order);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"op\":\"");
    out.extend_from_slice(event.op.code().as_bytes());
    out.extend_from_slice(b"\",\"ts_ms\":");
    push_int(out, ctx.now_us.div_euclid(1000));
    out.extend_from_slice(b",\"ts_us\":");
    push_int(out, ctx.now_us);
    out.extend_from_slice(b",\"ts_ns\":");
    push_int(out, ctx.now_us as i128 * 1000);
    out.push(b'}');
}

/// `ts_us` and `ts_ns` of the source block (the change's commit time, at millisecond precision).
fn write_source_ts(out: &mut Vec<u8>, ts_ms: i64) {
    out.extend_from_slice(b",\"ts_us\":");
    push_int(out, ts_ms as i128 * 1000);
    out.extend_from_slice(b",\"ts_ns\":");
    push_int(out, ts_ms as i128 * 1_000_000);
}

/// Appends a record of Debezium's transaction metadata topic: `BEGIN` (no counts) or `END`
/// with the number of events in all and per table (`db.table` / `schema.table`).
pub fn write_transaction_record(out: &mut Vec<u8>, id: &str, end: Option<(u64, &[(String, u64)])>, ts_ms: i64) {
    out.extend_from_slice(b"{\"status\":");
    out.extend_from_slice(if end.is_some() { b"\"END\"" } else { b"\"BEGIN\"" });
    out.extend_from_slice(b",\"id\":");
    write_str(out, id);
    match end {
        None => out.extend_from_slice(b",\"event_count\":null,\"data_collections\":null"),
        Some((total, tables)) => {
            out.extend_from_slice(b",\"event_count\":");
            push_int(out, total);
            out.extend_from_slice(b",\"data_collections\":[");
            for (i, (table, count)) in tables.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"data_collection\":");
                write_str(out, table);
                out.extend_from_slice(b",\"event_count\":");
                push_int(out, *count);
                out.push(b'}');
            }
            out.push(b']');
        }
    }
    out.extend_from_slice(b",\"ts_ms\":");
    push_int(out, ts_ms);
    out.push(b'}');
}

/// The key of a transaction metadata record: `{"id":"…"}`.
pub fn write_transaction_key(out: &mut Vec<u8>, id: &str) {
    out.extend_from_slice(b"{\"id\":");
    write_str(out, id);
    out.push(b'}');
}

/// Appends the record key: the key columns as a JSON object (`null` for a keyless table).
pub fn write_key(out: &mut Vec<u8>, event: &ChangeEvent) {
    let table = &event.table;
    let Some(row) = event.key_row() else {
        out.extend_from_slice(b"null");
        return;
    };
    if table.key.is_empty() {
        out.extend_from_slice(b"null");
        return;
    }
    out.push(b'{');
    for (n, &i) in table.key.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let (Some(column), Some(value)) = (table.columns.get(i), row.get(i)) else {
            continue;
        };
        write_str(out, &column.name);
        out.push(b':');
        write_value(out, column, value);
    }
    out.push(b'}');
}

fn write_row(out: &mut Vec<u8>, table: &TableSchema, row: Option<&Row>) {
    let Some(row) = row else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'{');
    for (i, (column, value)) in table.columns.iter().zip(row.iter()).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &column.name);
        out.push(b':');
        write_value(out, column, value);
    }
    out.push(b'}');
}

/// The source block, its fields in the order of Debezium's schema (as JsonConverter writes them,
/// and as the Avro encoder reads them).
fn write_source(out: &mut Vec<u8>, event: &ChangeEvent, ctx: &EnvelopeContext) {
    let s = &event.source;
    out.extend_from_slice(concat!("{\"version\":\"", env!("CARGO_PKG_VERSION"), "\",\"connector\":").as_bytes());
    match &s.meta {
        SourceMeta::MySql { .. } => out.extend_from_slice(b"\"mysql\""),
        SourceMeta::Postgres { .. } => out.extend_from_slice(b"\"postgresql\""),
    }
    out.extend_from_slice(b",\"name\":");
    write_str(out, &ctx.name);
    out.extend_from_slice(b",\"ts_ms\":");
    push_int(out, s.ts_ms);
    out.extend_from_slice(b",\"snapshot\":\"");
    out.extend_from_slice(s.snapshot.as_str().as_bytes());
    out.extend_from_slice(b"\",\"db\":");
    let table = &event.table.id;
    match &s.meta {
        SourceMeta::MySql { server_id, gtid, file, pos, row, thread, query } => {
            write_str(out, &table.namespace);
            out.extend_from_slice(b",\"sequence\":null");
            write_source_ts(out, s.ts_ms);
            out.extend_from_slice(b",\"table\":");
            write_str(out, &table.name);
            out.extend_from_slice(b",\"server_id\":");
            push_int(out, *server_id);
            out.extend_from_slice(b",\"gtid\":");
            write_opt_str(out, gtid.as_deref());
            out.extend_from_slice(b",\"file\":");
            write_str(out, file);
            out.extend_from_slice(b",\"pos\":");
            push_int(out, *pos);
            out.extend_from_slice(b",\"row\":");
            push_int(out, *row);
            out.extend_from_slice(b",\"thread\":");
            write_opt_num(out, *thread);
            out.extend_from_slice(b",\"query\":");
            write_opt_str(out, query.as_deref());
        }
        SourceMeta::Postgres { database, tx_id, lsn, last_commit_lsn, xmin } => {
            write_str(out, database);
            // Debezium: a JSON array of two LSN strings, itself sent as a string.
            out.extend_from_slice(b",\"sequence\":\"[");
            match last_commit_lsn {
                Some(l) => {
                    let _ = write!(out, "\\\"{l}\\\"");
                }
                None => out.extend_from_slice(b"null"),
            }
            let _ = write!(out, ",\\\"{lsn}\\\"]\"");
            write_source_ts(out, s.ts_ms);
            out.extend_from_slice(b",\"schema\":");
            write_str(out, &table.namespace);
            out.extend_from_slice(b",\"table\":");
            write_str(out, &table.name);
            out.extend_from_slice(b",\"txId\":");
            write_opt_num(out, tx_id.map(u64::from));
            out.extend_from_slice(b",\"lsn\":");
            push_int(out, *lsn);
            out.extend_from_slice(b",\"xmin\":");
            write_opt_num(out, *xmin);
            out.extend_from_slice(b",\"origin\":null,\"origin_lsn\":null");
        }
    }
    out.push(b'}');
}

/// Whether a time column is Debezium's millisecond `Time` (int32): PostgreSQL time(0..3).
/// MySQL's TIME is always microseconds (`adaptive_time_microseconds`).
pub fn time_in_millis(column: &Column) -> bool {
    matches!(column.kind, ColumnType::Time { fsp } if fsp <= 3 && column.source_type.starts_with("time"))
}

/// Writes one value the way Debezium's JSON converter renders it for this column type.
pub fn write_value(out: &mut Vec<u8>, column: &Column, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => push_int(out, *i),
        Value::UInt(u) => push_int(out, *u),
        Value::Float(f) => write_float(out, *f as f64, Some(*f)),
        Value::Double(d) => write_float(out, *d, None),
        Value::Decimal(text) => write_decimal(out, column, text),
        Value::Text(s) | Value::Enum(s) | Value::Json(s) => write_str(out, s),
        Value::Bytes(b) => write_base64(out, b),
        Value::Date(days) => push_int(out, *days),
        Value::Time(micros) if time_in_millis(column) => push_int(out, micros.div_euclid(1000)),
        Value::Time(micros) => push_int(out, *micros),
        Value::TimeTz { micros, offset_secs } => {
            let utc = (micros - *offset_secs as i64 * 1_000_000).rem_euclid(86_400_000_000);
            out.push(b'"');
            write_clock(out, utc);
            out.extend_from_slice(b"Z\"");
        }
        Value::DateTime(micros) => match column.kind {
            ColumnType::DateTime { fsp } if fsp <= 3 => push_int(out, micros.div_euclid(1000)),
            _ => push_int(out, *micros),
        },
        Value::Timestamp(micros) => {
            // Debezium's ZonedTimestamp prints as many fraction digits as the column has.
            let fsp = match column.kind {
                ColumnType::Timestamp { fsp } => fsp,
                _ => 6,
            };
            out.push(b'"');
            write_iso_instant(out, *micros, fsp);
            out.push(b'"');
        }
        // PostgreSQL ±infinity: the numbers Debezium's PostgreSQL connector emits for them;
        // other special values (timestamptz ±infinity, MySQL zero dates) as their text.
        Value::Special(s) => {
            let positive = s == "infinity";
            match column.kind {
                _ if s != "infinity" && s != "-infinity" => write_str(out, s),
                ColumnType::Date => push_int(out, if positive { -2_147_472_692i64 } else { -2_147_472_691 }),
                ColumnType::DateTime { fsp } => {
                    let micros: i64 = if positive { 9_223_372_036_825_200_000 } else { -9_223_372_036_832_400_000 };
                    push_int(out, if fsp <= 3 { micros / 1000 } else { micros });
                }
                _ => write_str(out, s),
            }
        }
        Value::Interval { months, days, micros } => {
            // Debezium's MicroDuration: a month is 365.25 / 12 days.
            let month_us = 30.4375 * 86_400_000_000.0;
            let total = (*months as f64 * month_us) as i64 + *days as i64 * 86_400_000_000 + micros;
            push_int(out, total);
        }
        Value::Uuid(bytes) => {
            out.push(b'"');
            write_uuid(out, bytes);
            out.push(b'"');
        }
        Value::Set(items) => write_str(out, &items.join(",")),
        Value::Bit { len, bytes } => {
            if *len == 1 {
                let set = bytes.last().is_some_and(|b| b & 1 == 1);
                out.extend_from_slice(if set { b"true" } else { b"false" });
            } else {
                // Debezium sends BIT(n>1) as bytes in little-endian order.
                let reversed: Vec<u8> = bytes.iter().rev().copied().collect();
                write_base64(out, &reversed);
            }
        }
        Value::Array(items) => {
            let element = match &column.kind {
                ColumnType::Array { element } => Column { kind: (**element).clone(), ..column.clone() },
                _ => column.clone(),
            };
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, &element, item);
            }
            out.push(b']');
        }
        Value::Geometry { wkb, srid } => {
            out.push(b'{');
            // A PostgreSQL point is Debezium's Point: x and y first, then the WKB.
            if column.source_type == "point" && wkb.len() == 21 {
                let coord = |at: usize| f64::from_le_bytes(wkb[at..at + 8].try_into().unwrap_or([0; 8]));
                out.extend_from_slice(b"\"x\":");
                write_float(out, coord(5), None);
                out.extend_from_slice(b",\"y\":");
                write_float(out, coord(13), None);
                out.push(b',');
            }
            out.extend_from_slice(b"\"wkb\":");
            write_base64(out, wkb);
            out.extend_from_slice(b",\"srid\":");
            write_opt_num(out, srid.map(u64::from));
            out.push(b'}');
        }
        Value::Unchanged => match column.kind {
            ColumnType::Bytes { .. } => write_base64(out, UNAVAILABLE_VALUE.as_bytes()),
            _ => write_str(out, UNAVAILABLE_VALUE),
        },
    }
}

/// Jackson writes non-finite numbers as the strings "NaN", "Infinity", "-Infinity".
fn write_float(out: &mut Vec<u8>, d: f64, single: Option<f32>) {
    if d.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if d.is_infinite() {
        out.extend_from_slice(if d > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
    } else if let Some(f) = single {
        // Shortest text that round-trips the f32, so 1.1f32 prints as 1.1, not 1.100000023841858.
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(d).as_bytes());
    }
}

/// Debezium's precise decimals: base64 of the unscaled value as big-endian two's complement;
/// columns without a fixed scale get `{"scale":s,"value":…}` (VariableScaleDecimal).
fn write_decimal(out: &mut Vec<u8>, column: &Column, text: &str) {
    let Some((negative, digits, scale)) = split_decimal(text) else {
        // NaN / ±Infinity have no precise form; Debezium emits null.
        out.extend_from_slice(b"null");
        return;
    };
    let declared_scale = match column.kind {
        ColumnType::Decimal { scale, .. } => scale,
        _ => None,
    };
    // Without a declared scale Debezium drops trailing zeros of the fraction (1.50 → 15, scale 1).
    let (digits, scale) = match declared_scale {
        None => {
            let mut d = digits;
            let mut sc = scale;
            while sc > 0 && d.last() == Some(&0) {
                d.pop();
                sc -= 1;
            }
            (d, sc)
        }
        Some(_) => (digits, scale),
    };
    let (digits, scale) = match declared_scale {
        Some(s) if s as usize >= scale => {
            let mut d = digits;
            d.extend(std::iter::repeat_n(0u8, s as usize - scale));
            (d, s as usize)
        }
        _ => (digits, scale),
    };
    let bytes = twos_complement(negative, &digits);
    match declared_scale {
        Some(_) => write_base64(out, &bytes),
        None => {
            let _ = write!(out, "{{\"scale\":{scale},\"value\":");
            write_base64(out, &bytes);
            out.push(b'}');
        }
    }
}

/// `-12.340` → (true, [1,2,3,4,0], 3). None for anything but plain decimal notation.
fn split_decimal(text: &str) -> Option<(bool, Vec<u8>, usize)> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut digits = Vec::with_capacity(int.len() + frac.len());
    for b in int.bytes().chain(frac.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        digits.push(b - b'0');
    }
    Some((negative, digits, frac.len()))
}

/// Converts decimal digits to the minimal big-endian two's-complement byte string (Java's
/// `BigInteger.toByteArray`).
fn twos_complement(negative: bool, digits: &[u8]) -> Vec<u8> {
    // Little-endian base-256 magnitude built by repeated multiply-add.
    let mut mag: Vec<u8> = Vec::with_capacity(digits.len() / 2 + 1);
    for &d in digits {
        let mut carry = d as u32;
        for byte in mag.iter_mut() {
            let v = *byte as u32 * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.push(carry as u8);
            carry >>= 8;
        }
    }
    while mag.last() == Some(&0) {
        mag.pop();
    }
    if mag.is_empty() {
        return vec![0];
    }
    if negative {
        // Two's complement: invert and add one.
        let mut carry = 1u16;
        for byte in mag.iter_mut() {
            let v = (!*byte) as u16 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        if mag.last().is_some_and(|b| b & 0x80 == 0) {
            mag.push(0xff);
        }
        while mag.len() > 1 && mag[mag.len() - 1] == 0xff && mag[mag.len() - 2] & 0x80 != 0 {
            mag.pop();
        }
    } else if mag.last().is_some_and(|b| b & 0x80 != 0) {
        mag.push(0);
    }
    mag.reverse();
    mag
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = BASE64.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

fn write_uuid(out: &mut Vec<u8>, bytes: &[u8; 16]) {
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        let _ = write!(out, "{b:02x}");
    }
}

#[inline]
fn push_2digits(out: &mut Vec<u8>, n: u32) {
    out.push(b'0' + (n / 10 % 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// `HH:MM:SS[.ffffff]` with trailing zeros of the fraction dropped (as java.time prints).
fn write_clock(out: &mut Vec<u8>, micros_of_day: i64) {
    let secs = (micros_of_day / 1_000_000) as u32;
    let mut frac = (micros_of_day % 1_000_000) as u32;
    if secs / 3600 >= 100 {
        push_int(out, secs / 3600);
    } else {
        push_2digits(out, secs / 3600);
    }
    out.push(b':');
    push_2digits(out, secs / 60 % 60);
    out.push(b':');
    push_2digits(out, secs % 60);
    if frac != 0 {
        let mut width = 6;
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        out.push(b'.');
        let digits = itoa::Buffer::new().format(frac).len();
        out.extend(std::iter::repeat_n(b'0', width - digits));
        push_int(out, frac);
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` for microseconds since the epoch, with `fsp` fraction digits.
fn write_iso_instant(out: &mut Vec<u8>, micros: i64, fsp: u8) {
    let days = micros.div_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        push_2digits(out, (y / 100) as u32);
        push_2digits(out, (y % 100) as u32);
    } else {
        // java.time: years beyond four digits carry a sign.
        out.push(if y < 0 { b'-' } else { b'+' });
        let a = y.unsigned_abs();
        if a < 1000 {
            out.extend(std::iter::repeat_n(b'0', 4 - itoa::Buffer::new().format(a).len()));
        }
        push_int(out, a);
    }
    out.push(b'-');
    push_2digits(out, m);
    out.push(b'-');
    push_2digits(out, d);
    out.push(b'T');
    let of_day = micros.rem_euclid(86_400_000_000);
    write_clock(out, of_day - of_day % 1_000_000);
    if fsp > 0 {
        let frac = (of_day % 1_000_000) as u32;
        let mut digits = [b'0'; 6];
        let mut v = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.push(b'.');
        out.extend_from_slice(&digits[..fsp.min(6) as usize]);
    }
    out.push(b'Z');
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day count since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[inline]
fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Most strings need no escaping: copy them whole.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json's escaper writes into any io::Write; a Vec never fails.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_opt_num(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => push_int(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64_decimal(text: &str) -> String {
        let (neg, digits, _) = split_decimal(text).unwrap();
        BASE64.encode(twos_complement(neg, &digits))
    }

    #[test]
    fn decimals_match_java_biginteger_bytes() {
        // BigInteger.valueOf(n).toByteArray(), base64.
        assert_eq!(b64_decimal("0"), "AA==");
        assert_eq!(b64_decimal("1"), "AQ==");
        assert_eq!(b64_decimal("127"), "fw==");
        assert_eq!(b64_decimal("128"), "AIA=");
        assert_eq!(b64_decimal("-1"), "/w==");
        assert_eq!(b64_decimal("-128"), "gA==");
        assert_eq!(b64_decimal("-129"), "/38=");
        assert_eq!(b64_decimal("12.34"), "BNI="); // 1234 = 0x04D2
        assert_eq!(b64_decimal("-12.34"), "+y4="); // -1234 = 0xFB2E
        assert_eq!(b64_decimal("65536"), "AQAA");
        assert_eq!(b64_decimal("-65536"), "/wAA");
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-719_528i64, -1, 0, 1, 59, 60, 10_957, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
    }

    #[test]
    fn instants_print_like_java_time() {
        for (micros, fsp, text) in [
            (1_529_501_823_120_000, 3, "2018-06-20T13:37:03.120Z"),
            (1_529_501_823_120_000, 0, "2018-06-20T13:37:03Z"),
            (-1, 6, "1969-12-31T23:59:59.999999Z"),
            (0, 6, "1970-01-01T00:00:00.000000Z"),
            (10, 6, "1970-01-01T00:00:00.000010Z"),
            (253_402_300_799_999_999, 6, "9999-12-31T23:59:59.999999Z"),
            (-62_167_219_200_000_000, 0, "0000-01-01T00:00:00Z"),
            (-62_167_219_200_000_001, 6, "-0001-12-31T23:59:59.999999Z"),
        ] {
            let mut out = Vec::new();
            write_iso_instant(&mut out, micros, fsp);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
        let mut out = Vec::new();
        write_clock(&mut out, (838 * 3600 + 59 * 60 + 59) * 1_000_000 + 500_000);
        assert_eq!(String::from_utf8(out).unwrap(), "838:59:59.5");
    }
}
