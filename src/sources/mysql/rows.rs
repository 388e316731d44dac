//! Rows events (WRITE/UPDATE/DELETE, v1 and v2): row images decoded straight into [`Value`]s.
//!
//! Values are read from the event bytes with a bounds-checked reader; a malformed image is
//! an error naming the table and column, never a panic.

use super::charset::Charset;
use super::table_map::{ColumnDef, TableMap, types::*};
use crate::format::debezium::days_from_civil;
use crate::model::{Row, Value};
use crate::sources::reader::{DecodeError, Reader, malformed};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowsKind {
    Write,
    Update,
    Delete,
}

/// The fixed part of a rows event.
pub struct RowsHeader<'a> {
    pub table_id: u64,
    /// Columns present in the before image (delete/update) or the only image (write).
    pub present: &'a [u8],
    /// Columns present in the after image of an update.
    pub present_after: Option<&'a [u8]>,
    pub body: &'a [u8],
    pub column_count: usize,
}

/// Reads the table id and bitmaps; `v2` events carry an extra-data block.
pub fn parse_header(data: &[u8], id_len: usize, kind: RowsKind, v2: bool) -> Result<RowsHeader<'_>, DecodeError> {
    let mut r = Reader::new(data);
    let table_id = r.uint_le(id_len)?;
    let _flags = r.uint_le(2)?;
    if v2 {
        let extra = r.uint_le(2)? as usize;
        r.bytes(extra.saturating_sub(2))?;
    }
    let column_count = r.lenenc()? as usize;
    let width = column_count.div_ceil(8);
    let present = r.bytes(width)?;
    let present_after = if kind == RowsKind::Update { Some(r.bytes(width)?) } else { None };
    Ok(RowsHeader { table_id, present, present_after, body: r.rest(), column_count })
}

#[inline]
fn bit(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// The after image of a PARTIAL_UPDATE_ROWS event: which JSON columns hold diffs, and the
/// before image they apply to.
pub struct PartialJson<'a> {
    /// One bit per JSON column of the table (least significant bit first).
    pub bits: &'a [u8],
    pub before: &'a Row,
}

/// Reads the value options that open a partial after image; `None` when no column is partial.
pub fn read_partial_header<'a>(r: &mut Reader<'a>, table: &TableMap) -> Result<Option<&'a [u8]>, DecodeError> {
    let options = r.lenenc()?;
    if options & 1 == 0 {
        return Ok(None);
    }
    let json_columns = table.columns.iter().filter(|c| c.type_code == JSON).count();
    Ok(Some(r.bytes(json_columns.div_ceil(8))?))
}

/// Decodes one row image; columns absent from the image (MINIMAL row image) are `Unchanged`.
pub fn read_row(
    r: &mut Reader<'_>,
    table: &TableMap,
    present: &[u8],
    column_count: usize,
    partial: Option<PartialJson<'_>>,
) -> Result<Row, DecodeError> {
    let n = column_count.min(table.columns.len());
    let mut json_index = 0usize;
    let present_count = (0..n).filter(|&i| bit(present, i)).count();
    let nulls = r.bytes(present_count.div_ceil(8))?;
    let mut row = Vec::with_capacity(n);
    let mut k = 0usize;
    for i in 0..n {
        let is_json = table.columns[i].type_code == JSON;
        if !bit(present, i) {
            json_index += is_json as usize;
            row.push(Value::Unchanged);
            continue;
        }
        let is_null = bit(nulls, k);
        k += 1;
        if is_null {
            json_index += is_json as usize;
            row.push(Value::Null);
            continue;
        }
        let def = &table.columns[i];
        let nullable = table.schema.columns.get(i).is_some_and(|c| c.nullable);
        if def.type_code == JSON {
            json_index += 1;
            if let Some(p) = &partial
                && bit(p.bits, json_index - 1)
            {
                let value = read_partial_json(r, def, p.before.get(i)).map_err(|e| {
                    let name = table.schema.columns.get(i).map_or("?", |c| c.name.as_str());
                    malformed(format!("{}.{} column {name}: {e}", table.schema.id.namespace, table.schema.id.name))
                })?;
                row.push(value);
                continue;
            }
        }
        push_value(r, def, nullable, &mut row).map_err(|e| {
            let name = table.schema.columns.get(i).map_or("?", |c| c.name.as_str());
            malformed(format!("{}.{} column {name}: {e}", table.schema.id.namespace, table.schema.id.name))
        })?;
    }
    Ok(row)
}

fn int(r: &mut Reader<'_>, bytes: usize, unsigned: bool) -> Result<Value, DecodeError> {
    let raw = r.uint_le(bytes)?;
    if unsigned {
        Ok(Value::UInt(raw))
    } else {
        let shift = 64 - 8 * bytes as u32;
        Ok(Value::Int(((raw << shift) as i64) >> shift))
    }
}

fn length_prefixed<'a>(r: &mut Reader<'a>, prefix: usize) -> Result<&'a [u8], DecodeError> {
    let n = r.uint_le(prefix)? as usize;
    r.bytes(n)
}

fn text_or_bytes(bytes: &[u8], charset: Option<Charset>, default_binary: bool) -> Value {
    match charset {
        Some(Charset::Binary) => Value::Bytes(bytes.to_vec()),
        Some(cs) => Value::Text(cs.decode(bytes)),
        None if default_binary => Value::Bytes(bytes.to_vec()),
        None => Value::Text(Charset::Utf8.decode(bytes)),
    }
}

/// Fractional seconds of TIME2/DATETIME2/TIMESTAMP2: `fsp` digits in 0/1/2/3 big-endian
/// unsigned bytes, returned as microseconds.
fn frac_micros(r: &mut Reader<'_>, fsp: u16) -> Result<i64, DecodeError> {
    Ok(match fsp {
        1 | 2 => r.uint_be(1)? as i64 * 10_000,
        3 | 4 => r.uint_be(2)? as i64 * 100,
        5 | 6 => r.uint_be(3)? as i64,
        _ => 0,
    })
}

/// Decodes one value and appends it to `row`. Each arm pushes its own value: building the
/// value first and moving it into the row cost a store-forwarding stall per column (the
/// move re-read, 16 bytes at a time, what the arm had just written in smaller pieces).
#[inline(always)]
pub fn push_value(r: &mut Reader<'_>, def: &ColumnDef, nullable: bool, row: &mut Row) -> Result<(), DecodeError> {
    let zero_date = || {
        if nullable { Value::Null } else { Value::Special("0000-00-00".into()) }
    };
    match def.type_code {
        TINY => row.push(int(r, 1, def.unsigned)?),
        SHORT => row.push(int(r, 2, def.unsigned)?),
        INT24 => row.push(int(r, 3, def.unsigned)?),
        LONG => row.push(int(r, 4, def.unsigned)?),
        LONGLONG => row.push(int(r, 8, def.unsigned)?),
        FLOAT => row.push(Value::Float(f32::from_bits(r.uint_le(4)? as u32))),
        DOUBLE => row.push(Value::Double(f64::from_bits(r.uint_le(8)?))),
        NEWDECIMAL => row.push(Value::Decimal(read_decimal(r, def.meta as usize, def.meta2 as usize)?)),
        YEAR => {
            let y = r.u8()? as i64;
            row.push(Value::Int(if y == 0 { 0 } else { 1900 + y }))
        }
        DATE | NEWDATE => {
            let v = r.uint_le(3)?;
            let (d, m, y) = ((v & 31) as u32, ((v >> 5) & 15) as u32, (v >> 9) as i64);
            if m == 0 || d == 0 {
                row.push(zero_date())
            } else {
                row.push(Value::Date((civil_micros(y, m, d, 0, 0)? / 86_400_000_000) as i32))
            }
        }
        TIME => {
            let v = r.uint_le(3)?;
            let v = ((v << 40) as i64) >> 40;
            let (neg, v) = (v < 0, v.abs());
            let secs = (v / 10000) * 3600 + (v / 100 % 100) * 60 + v % 100;
            row.push(Value::Time(if neg { -secs } else { secs } * 1_000_000))
        }
        TIME2 => {
            // Packed: 1 sign bit, 1 unused, 10 bits hour, 6 minute, 6 second; then fraction.
            let fsp = def.meta;
            let mut intpart = r.uint_be(3)? as i64 - 0x80_0000;
            let frac = match fsp {
                5 | 6 => {
                    // 6 bytes in total hold int and fraction together.
                    let low = r.uint_be(3)? as i64;
                    let packed = ((intpart + 0x80_0000) << 24 | low) - 0x8000_0000_0000;
                    row.push(Value::Time(time_from_packed(packed)));
                    return Ok(());
                }
                _ => frac_micros(r, fsp)?,
            };
            let mut frac = frac;
            if intpart < 0 && frac != 0 {
                intpart += 1;
                frac -= match fsp {
                    1 | 2 => 0x100 * 10_000,
                    _ => 0x1_0000 * 100,
                };
            }
            row.push(Value::Time(time_from_packed((intpart << 24) + frac)))
        }
        DATETIME => {
            let v = r.uint_le(8)?;
            let (date, time) = (v / 1_000_000, v % 1_000_000);
            let (y, m, d) = ((date / 10000) as i64, (date / 100 % 100) as u32, (date % 100) as u32);
            if m == 0 || d == 0 {
                row.push(zero_date())
            } else {
                let secs = (time / 10000) * 3600 + (time / 100 % 100) * 60 + time % 100;
                row.push(Value::DateTime(civil_micros(y, m, d, secs as i64, 0)?))
            }
        }
        DATETIME2 => {
            let intpart = r.uint_be(5)? as i64 - 0x80_0000_0000;
            let frac = frac_micros(r, def.meta)?;
            let ymd = intpart >> 17;
            let ym = ymd >> 5;
            let hms = intpart % (1 << 17);
            if intpart < 0 {
                return Err(malformed("negative DATETIME2 value"));
            }
            let (y, m, d) = (ym / 13, (ym % 13) as u32, (ymd % (1 << 5)) as u32);
            if m == 0 || d == 0 {
                row.push(zero_date())
            } else {
                let secs = (hms >> 12) * 3600 + ((hms >> 6) % 64) * 60 + hms % 64;
                row.push(Value::DateTime(civil_micros(y, m, d, secs, frac)?))
            }
        }
        TIMESTAMP => {
            let secs = r.uint_le(4)? as i64;
            row.push(if secs == 0 { zero_date() } else { Value::Timestamp(secs * 1_000_000) })
        }
        TIMESTAMP2 => {
            let secs = r.uint_be(4)? as i64;
            let frac = frac_micros(r, def.meta)?;
            if secs == 0 && frac == 0 {
                row.push(zero_date())
            } else {
                row.push(Value::Timestamp(secs * 1_000_000 + frac))
            }
        }
        BIT => {
            let n = (def.meta2 as usize).div_ceil(8);
            row.push(Value::Bit { len: def.meta2 as u32, bytes: r.bytes(n)?.into() })
        }
        ENUM => {
            let idx = r.uint_le(def.meta2.clamp(1, 2) as usize)? as usize;
            row.push(match idx {
                0 => Value::Enum(String::new()),
                i => Value::Enum(def.enum_values.get(i - 1).cloned().unwrap_or_else(|| i.to_string())),
            })
        }
        SET => {
            let bits = r.uint_le((def.meta2 as usize).clamp(1, 8))?;
            let names = (0..64)
                .filter(|i| bits & (1u64 << i) != 0)
                .map(|i| def.set_values.get(i).cloned().unwrap_or_else(|| (i + 1).to_string()))
                .collect();
            row.push(Value::Set(names))
        }
        VARCHAR | VAR_STRING => {
            let prefix = if def.meta < 256 { 1 } else { 2 };
            row.push(text_or_bytes(length_prefixed(r, prefix)?, def.charset, false))
        }
        STRING => {
            let prefix = if def.meta2 < 256 { 1 } else { 2 };
            let bytes = length_prefixed(r, prefix)?;
            if def.charset == Some(Charset::Binary) && bytes.len() < def.meta2 as usize {
                // BINARY(n) is logged without its trailing 0x00 padding: restore it.
                let mut padded = bytes.to_vec();
                padded.resize(def.meta2 as usize, 0);
                row.push(Value::Bytes(padded))
            } else {
                row.push(text_or_bytes(bytes, def.charset, false))
            }
        }
        BLOB => row.push(text_or_bytes(length_prefixed(r, blob_prefix(def)?)?, def.charset, true)),
        JSON => {
            let bytes = length_prefixed(r, blob_prefix(def)?)?;
            row.push(Value::Json(json_text(bytes)?))
        }
        GEOMETRY => {
            let bytes = length_prefixed(r, blob_prefix(def)?)?;
            if bytes.len() < 4 {
                return Err(malformed("geometry shorter than its SRID"));
            }
            let srid = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            // SRID 0 is "none" (Debezium sends null).
            row.push(Value::Geometry { wkb: bytes[4..].into(), srid: (srid != 0).then_some(srid) })
        }
        VECTOR => {
            let bytes = length_prefixed(r, blob_prefix(def)?)?;
            row.push(Value::Array(
                bytes.chunks_exact(4).map(|c| Value::Float(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
            ))
        }
        other => {
            return Err(malformed(format!("unsupported column type {other} in a row image")));
        }
    }
    Ok(())
}

/// Microseconds since the epoch of a calendar date and time of day, checking the ranges MySQL
/// allows so a corrupt value is an error rather than an overflow.
fn civil_micros(y: i64, m: u32, d: u32, secs_of_day: i64, frac: i64) -> Result<i64, DecodeError> {
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
        || !(0..86_400).contains(&secs_of_day)
    {
        return Err(malformed(format!("invalid date/time {y:04}-{m:02}-{d:02} +{secs_of_day}s")));
    }
    Ok(days_from_civil(y, m, d) * 86_400_000_000 + secs_of_day * 1_000_000 + frac)
}

fn blob_prefix(def: &ColumnDef) -> Result<usize, DecodeError> {
    match def.meta {
        1..=4 => Ok(def.meta as usize),
        other => Err(malformed(format!("BLOB length prefix of {other} bytes"))),
    }
}

/// Microseconds of a packed TIME value (sign, 10-bit hour, minute, second, 24-bit fraction).
fn time_from_packed(packed: i64) -> i64 {
    let neg = packed < 0;
    let p = packed.abs();
    let hms = p >> 24;
    let frac = p % (1 << 24);
    let (h, m, s) = ((hms >> 12) % (1 << 10), (hms >> 6) % 64, hms % 64);
    let micros = ((h * 60 + m) * 60 + s) * 1_000_000 + frac;
    if neg { -micros } else { micros }
}

/// MySQL binary DECIMAL: groups of 9 digits in 4 bytes, partial groups in fewer; sign in the
/// top bit of the first byte (set = positive), negative numbers stored complemented.
pub fn read_decimal(r: &mut Reader<'_>, precision: usize, scale: usize) -> Result<String, DecodeError> {
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    if precision == 0 || precision > 65 || scale > precision {
        return Err(malformed(format!("DECIMAL({precision},{scale}) is out of range")));
    }
    let intg = precision - scale;
    let (intg0, intg0x) = (intg / 9, intg % 9);
    let (frac0, frac0x) = (scale / 9, scale % 9);
    let size = intg0 * 4 + DIG2BYTES[intg0x] + frac0 * 4 + DIG2BYTES[frac0x];
    let raw = r.bytes(size)?;
    let mut buf = [0u8; 32];
    buf[..size].copy_from_slice(raw);
    let negative = buf[0] & 0x80 == 0;
    buf[0] ^= 0x80;
    if negative {
        for b in &mut buf[..size] {
            *b = !*b;
        }
    }
    let mut d = Reader::new(&buf[..size]);
    // Digits of the integer part, then of the fraction, zero-padded per group.
    let mut digits = [0u8; 72];
    let mut n = 0usize;
    let mut push_group = |v: u64, width: usize, n: &mut usize| -> Result<(), DecodeError> {
        if v >= 10u64.pow(width as u32) {
            return Err(malformed("DECIMAL digit group out of range"));
        }
        let mut v = v;
        for i in (0..width).rev() {
            digits[*n + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        *n += width;
        Ok(())
    };
    if intg0x > 0 {
        push_group(d.uint_be(DIG2BYTES[intg0x])?, intg0x, &mut n)?;
    }
    for _ in 0..intg0 {
        push_group(d.uint_be(4)?, 9, &mut n)?;
    }
    let int_end = n;
    for _ in 0..frac0 {
        push_group(d.uint_be(4)?, 9, &mut n)?;
    }
    if frac0x > 0 {
        push_group(d.uint_be(DIG2BYTES[frac0x])?, frac0x, &mut n)?;
    }
    let first = digits[..int_end].iter().position(|&c| c != b'0').unwrap_or(int_end);
    let mut out = String::with_capacity(precision + 3);
    if negative {
        out.push('-');
    }
    // All bytes pushed are ASCII digits.
    out.push_str(if first == int_end { "0" } else { std::str::from_utf8(&digits[first..int_end]).unwrap_or("0") });
    if scale > 0 {
        out.push('.');
        out.push_str(std::str::from_utf8(&digits[int_end..n]).unwrap_or(""));
    }
    Ok(out)
}

/// Checks a MySQL binary JSON value (`t`: its type, `data`: from the value on) without
/// allocating: every count, offset and length must lie inside the bytes.
fn check_jsonb(t: u8, data: &[u8], depth: u32) -> Result<(), DecodeError> {
    let bad = || malformed("corrupt binary JSON");
    let le = |at: usize, w: usize| -> Result<usize, DecodeError> {
        let b = data.get(at..at + w).ok_or_else(bad)?;
        Ok(b.iter().rev().fold(0usize, |v, x| (v << 8) | *x as usize))
    };
    if depth > 100 {
        return Err(malformed("binary JSON nested more than 100 levels"));
    }
    match t {
        0..=3 => {
            let (large, object) = (t & 1 == 1, t < 2);
            let w = if large { 4 } else { 2 };
            let (count, size) = (le(0, w)?, le(w, w)?);
            if size > data.len() || size < 2 * w {
                return Err(bad());
            }
            let (key_entry, value_entry) = (if object { w + 2 } else { 0 }, 1 + w);
            let header =
                count.checked_mul(key_entry + value_entry).and_then(|n| n.checked_add(2 * w)).ok_or_else(bad)?;
            if header > size {
                return Err(bad());
            }
            for i in 0..count {
                if object {
                    let (off, len) = (le(2 * w + i * key_entry, w)?, le(2 * w + i * key_entry + w, 2)?);
                    if off.checked_add(len).is_none_or(|end| end > size) {
                        return Err(bad());
                    }
                }
                let entry = 2 * w + count * key_entry + i * value_entry;
                let vt = *data.get(entry).ok_or_else(bad)?;
                let inline = matches!(vt, 4..=6) || (large && matches!(vt, 7 | 8));
                if !inline {
                    let off = le(entry + 1, w)?;
                    if off >= size {
                        return Err(bad());
                    }
                    check_jsonb(vt, &data[off..size], depth + 1)?;
                }
            }
            Ok(())
        }
        4 => data.first().map(|_| ()).ok_or_else(bad),
        5 | 6 => data.get(..2).map(|_| ()).ok_or_else(bad),
        7 | 8 => data.get(..4).map(|_| ()).ok_or_else(bad),
        9..=11 => data.get(..8).map(|_| ()).ok_or_else(bad),
        12 | 15 => {
            let start = if t == 15 { 1 } else { 0 };
            // Variable-length size: 7 bits a byte, high bit set on all but the last (≤ 5 bytes).
            let mut len = 0usize;
            let mut i = start;
            loop {
                let b = *data.get(i).ok_or_else(bad)?;
                len |= ((b & 0x7f) as usize) << (7 * (i - start));
                i += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if i - start >= 5 {
                    return Err(bad());
                }
            }
            if i.checked_add(len).is_none_or(|end| end > data.len()) {
                return Err(bad());
            }
            Ok(())
        }
        _ => Err(bad()),
    }
}

/// A JSON column of a partial after image: diffs applied to the before image's document.
fn read_partial_json(r: &mut Reader<'_>, def: &ColumnDef, before: Option<&Value>) -> Result<Value, DecodeError> {
    let bytes = length_prefixed(r, blob_prefix(def)?)?;
    let diffs = super::json_diff::read_diffs(bytes, |b| {
        json_text(b).and_then(|t| serde_json::from_str(&t).map_err(|e| malformed(e.to_string())))
    })?;
    let mut doc: serde_json::Value = match before {
        Some(Value::Json(text)) => {
            serde_json::from_str(text).map_err(|e| malformed(format!("before image JSON: {e}")))?
        }
        _ => {
            return Err(malformed(
                "a partial JSON update whose before image lacks the document, so the new value cannot be built \
                 (binlog_row_image is not FULL); set binlog_row_image = FULL, or binlog_row_value_options = ''",
            ));
        }
    };
    super::json_diff::apply(&mut doc, &diffs)?;
    Ok(Value::Json(doc.to_string()))
}

/// MySQL's binary JSON to JSON text. mysql_common's parser is used; it is guarded against
/// panics on corrupt input so a bad document is an error, not a crash.
fn json_text(bytes: &[u8]) -> Result<String, DecodeError> {
    use mysql_common::binlog::jsonb;
    use mysql_common::io::ParseBuf;
    // Walk the structure first: counts and offsets must fit the bytes, so the parser never
    // allocates for a corrupt element count.
    if let Some((&t, value)) = bytes.split_first() {
        check_jsonb(t, value, 0)?;
    }
    let owned = bytes.to_vec();
    let parsed = std::panic::catch_unwind(move || -> std::io::Result<serde_json::Value> {
        let value: jsonb::Value<'_> = ParseBuf(&owned).parse(())?;
        Ok(serde_json::Value::from(value.parse()?))
    });
    match parsed {
        Ok(Ok(v)) => Ok(v.to_string()),
        Ok(Err(e)) => Err(malformed(format!("invalid binary JSON: {e}"))),
        Err(_) => Err(malformed("invalid binary JSON (parser failed)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8], p: usize, s: usize) -> String {
        read_decimal(&mut Reader::new(bytes), p, s).unwrap()
    }

    #[test]
    fn decimals() {
        // Examples from MySQL's decimal.c documentation: 1234567890.1234 as DECIMAL(14,4).
        assert_eq!(dec(&[0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2], 14, 4), "1234567890.1234");
        // Its negative: every byte complemented.
        assert_eq!(dec(&[0x7E, 0xF2, 0x04, 0xC7, 0x2D, 0xFB, 0x2D], 14, 4), "-1234567890.1234");
        assert_eq!(dec(&[0x80, 0x00, 0x00], 3, 1), "0.0");
    }

    #[test]
    fn corrupt_binary_json_is_an_error() {
        // A large array claiming 4 billion elements in 8 bytes.
        let huge = [0x03, 0xff, 0xff, 0xff, 0xff, 0x08, 0, 0, 0];
        assert!(json_text(&huge).is_err());
        // An object whose value offset points past its end.
        let past = [0x00, 1, 0, 12, 0, 11, 0, 1, 0, 0x0c, 0x20, 0, b'k'];
        assert!(json_text(&past).is_err());
        // Valid: small array [1] (int16 inline) and the string "ab".
        assert_eq!(json_text(&[0x02, 1, 0, 7, 0, 0x05, 1, 0]).unwrap(), "[1]");
        assert_eq!(json_text(&[0x0c, 2, b'a', b'b']).unwrap(), "\"ab\"");
    }

    #[test]
    fn packed_times() {
        // 838:59:59 and its negative.
        let packed = ((838i64 << 12) | (59 << 6) | 59) << 24;
        assert_eq!(time_from_packed(packed), ((838 * 60 + 59) * 60 + 59) * 1_000_000);
        assert_eq!(time_from_packed(-packed), -((838 * 60 + 59) * 60 + 59) * 1_000_000);
    }
}
