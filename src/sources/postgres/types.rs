//! PostgreSQL types: column types from OIDs and type modifiers, and text-format values (as
//! pgoutput and the snapshot's queries deliver them) parsed into [`Value`]s.
//!
//! The session runs with `DateStyle=ISO, YMD`, `IntervalStyle=postgres`, `TimeZone=UTC` and
//! `extra_float_digits=3`, so every text form below is fixed.

use crate::format::debezium::days_from_civil;
use crate::model::{ColumnType, Value};

pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const MONEY: u32 = 790;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const POINT: u32 = 600;
    pub const JSONB: u32 = 3802;
}

/// Built-in array type → element type.
pub fn array_element(array_oid: u32) -> Option<u32> {
    Some(match array_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1002 => oid::CHAR,
        1003 => oid::NAME,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1009 => oid::TEXT,
        1014 => oid::BPCHAR,
        1015 => oid::VARCHAR,
        1016 => oid::INT8,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1028 => oid::OID,
        791 => oid::MONEY,
        1231 => oid::NUMERIC,
        1115 => oid::TIMESTAMP,
        1182 => oid::DATE,
        1183 => oid::TIME,
        1185 => oid::TIMESTAMPTZ,
        1187 => oid::INTERVAL,
        1270 => oid::TIMETZ,
        1561 => oid::BIT,
        1563 => oid::VARBIT,
        2951 => oid::UUID,
        199 => oid::JSON,
        3807 => oid::JSONB,
        _ => return None,
    })
}

/// Built-in type names, for `source_type` and messages.
pub fn builtin_name(type_oid: u32) -> Option<&'static str> {
    Some(match type_oid {
        oid::BOOL => "bool",
        oid::BYTEA => "bytea",
        oid::CHAR => "char",
        oid::NAME => "name",
        oid::INT8 => "int8",
        oid::INT2 => "int2",
        oid::INT4 => "int4",
        oid::TEXT => "text",
        oid::OID => "oid",
        oid::JSON => "json",
        oid::FLOAT4 => "float4",
        oid::FLOAT8 => "float8",
        oid::MONEY => "money",
        oid::BPCHAR => "bpchar",
        oid::VARCHAR => "varchar",
        oid::DATE => "date",
        oid::TIME => "time",
        oid::TIMESTAMP => "timestamp",
        oid::TIMESTAMPTZ => "timestamptz",
        oid::INTERVAL => "interval",
        oid::TIMETZ => "timetz",
        oid::BIT => "bit",
        oid::VARBIT => "varbit",
        oid::NUMERIC => "numeric",
        oid::UUID => "uuid",
        oid::POINT => "point",
        oid::JSONB => "jsonb",
        _ => return None,
    })
}

/// What the catalog says about a non-built-in type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomType {
    Enum {
        name: String,
        values: Vec<String>,
    },
    /// A domain over `base` (with the domain's type modifier).
    Domain {
        name: String,
        base: u32,
        typmod: i32,
    },
    Array {
        name: String,
        element: u32,
    },
    /// Composite, range, extension types…: carried as text.
    Other {
        name: String,
    },
}

/// The column type for a type OID and modifier; `custom` resolves non-built-in OIDs.
pub fn column_type(type_oid: u32, typmod: i32, custom: &dyn Fn(u32) -> Option<CustomType>) -> ColumnType {
    let fsp = |m: i32| if m < 0 { 6 } else { m.min(6) as u8 };
    match type_oid {
        oid::BOOL => ColumnType::Bool,
        oid::INT2 => ColumnType::Int { bytes: 2, unsigned: false },
        oid::INT4 => ColumnType::Int { bytes: 4, unsigned: false },
        oid::INT8 => ColumnType::Int { bytes: 8, unsigned: false },
        oid::OID => ColumnType::Int { bytes: 4, unsigned: true },
        oid::FLOAT4 => ColumnType::Float,
        oid::FLOAT8 => ColumnType::Double,
        oid::NUMERIC if typmod >= 4 => {
            let m = typmod - 4;
            ColumnType::Decimal { precision: Some(((m >> 16) & 0xffff) as u32), scale: Some((m & 0xffff) as u32) }
        }
        oid::NUMERIC => ColumnType::Decimal { precision: None, scale: None },
        oid::MONEY => ColumnType::Decimal { precision: None, scale: Some(2) },
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR => {
            ColumnType::Text { max_len: (typmod >= 4).then(|| (typmod - 4) as u32) }
        }
        oid::BYTEA => ColumnType::Bytes { max_len: None },
        oid::DATE => ColumnType::Date,
        oid::TIME => ColumnType::Time { fsp: fsp(typmod) },
        oid::TIMETZ => ColumnType::TimeTz { fsp: fsp(typmod) },
        oid::TIMESTAMP => ColumnType::DateTime { fsp: fsp(typmod) },
        oid::TIMESTAMPTZ => ColumnType::Timestamp { fsp: fsp(typmod) },
        oid::INTERVAL => ColumnType::Interval,
        oid::UUID => ColumnType::Uuid,
        oid::JSON | oid::JSONB => ColumnType::Json,
        oid::BIT | oid::VARBIT => ColumnType::Bit { len: typmod.max(0) as u32 },
        oid::POINT => ColumnType::Geometry,
        other => {
            if let Some(element) = array_element(other) {
                return ColumnType::Array { element: Box::new(column_type(element, -1, custom)) };
            }
            match custom(other) {
                Some(CustomType::Enum { values, .. }) => ColumnType::Enum { values },
                Some(CustomType::Domain { base, typmod, .. }) => column_type(base, typmod, custom),
                Some(CustomType::Array { element, .. }) => {
                    ColumnType::Array { element: Box::new(column_type(element, -1, custom)) }
                }
                _ => ColumnType::Other,
            }
        }
    }
}

/// Parses a row of text-format values (`None` = NULL) for `columns`; errors name the column.
pub fn parse_row(columns: &[crate::model::Column], texts: Vec<Option<String>>) -> Result<Vec<Value>, String> {
    columns
        .iter()
        .zip(texts)
        .map(|(c, v)| match v {
            None => Ok(Value::Null),
            Some(text) => parse_text(&c.kind, &text).map_err(|e| format!("{}: {e}", c.name)),
        })
        .collect()
}

/// Parses one row of `COPY … TO STDOUT` text format for `columns`: fields separated by tabs,
/// `\N` for NULL, backslash escapes. The text of the fields at `key_columns` goes into `key`
/// (in that order), for the snapshot's progress.
pub fn parse_copy_row(
    columns: &[crate::model::Column],
    line: &[u8],
    key_columns: &[usize],
    key: &mut Vec<Vec<u8>>,
) -> Result<Vec<Value>, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    // One UTF-8 check for the whole line: fields split at a tab (ASCII) stay valid.
    let line = std::str::from_utf8(line).map_err(|e| {
        let at = line[..e.valid_up_to()].iter().filter(|&&b| b == b'\t').count();
        format!("{}: not UTF-8", columns.get(at).map_or("a column", |c| c.name.as_str()))
    })?;
    let mut values = Vec::with_capacity(columns.len());
    // The key buffers are kept from row to row (no allocation per row).
    key.resize(key_columns.len(), Vec::new());
    key.iter_mut().for_each(Vec::clear);
    let mut unescaped = Vec::new();
    for (i, field) in line.split('\t').enumerate() {
        let column = columns.get(i).ok_or_else(|| format!("more than the {} columns in a COPY row", columns.len()))?;
        if field == "\\N" {
            values.push(Value::Null);
            continue;
        }
        let text = if memchr::memchr(b'\\', field.as_bytes()).is_none() {
            field
        } else {
            // Octal and hex escapes can spell any byte: check what they made.
            unescape_copy(field.as_bytes(), &mut unescaped);
            std::str::from_utf8(&unescaped).map_err(|_| format!("{}: not UTF-8", column.name))?
        };
        if let Some(k) = key_columns.iter().position(|&c| c == i) {
            key[k].extend_from_slice(text.as_bytes());
        }
        push_text(&column.kind, text, &mut values).map_err(|e| format!("{}: {e}", column.name))?;
    }
    if values.len() != columns.len() {
        return Err(format!("{} fields in a COPY row for {} columns", values.len(), columns.len()));
    }
    Ok(values)
}

/// COPY text escapes: `\b \f \n \r \t \v \\`, octal `\NNN`, hex `\xHH`; any other
/// escaped byte stands for itself.
fn unescape_copy(field: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' || i == field.len() {
            out.push(b);
            continue;
        }
        let c = field[i];
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                for _ in 0..2 {
                    match field.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
}

/// Parses a text-format value for a column of `kind`.
pub fn parse_text(kind: &ColumnType, text: &str) -> Result<Value, String> {
    let mut one = Vec::with_capacity(1);
    push_text(kind, text, &mut one)?;
    Ok(one.pop().unwrap_or(Value::Null))
}

/// Parses a text-format value and appends it to `row`. Each arm pushes its own value: building
/// it first and moving it into the row cost a store-forwarding stall per column.
#[inline(always)]
pub fn push_text(kind: &ColumnType, text: &str, row: &mut Vec<Value>) -> Result<(), String> {
    let bad = |what: &str| format!("`{}` is not a valid {what}", text.chars().take(60).collect::<String>());
    match kind {
        ColumnType::Bool => row.push(Value::Bool(matches!(text, "t" | "true"))),
        ColumnType::Int { unsigned: true, .. } => row.push(Value::UInt(text.parse().map_err(|_| bad("integer"))?)),
        ColumnType::Int { .. } => row.push(Value::Int(text.parse().map_err(|_| bad("integer"))?)),
        ColumnType::Float => row.push(Value::Float(parse_float(text).ok_or_else(|| bad("real"))? as f32)),
        ColumnType::Double => row.push(Value::Double(parse_float(text).ok_or_else(|| bad("double"))?)),
        ColumnType::Decimal { scale: Some(2), precision: None } if text.contains('$') || text.contains(',') => {
            // money in the C locale: -$1,234.56
            let negative = text.starts_with('-') || text.starts_with('(');
            let digits: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
            row.push(Value::Decimal(if negative { format!("-{digits}") } else { digits }))
        }
        ColumnType::Decimal { .. } => row.push(Value::Decimal(text.to_string())),
        ColumnType::Bytes { .. } => row.push(Value::Bytes(parse_bytea(text).ok_or_else(|| bad("bytea"))?)),
        ColumnType::Date => match text {
            "infinity" | "-infinity" => row.push(Value::Special(text.to_string())),
            _ => row.push(Value::Date(parse_date(text).ok_or_else(|| bad("date"))? as i32)),
        },
        ColumnType::Time { .. } => row.push(Value::Time(parse_clock(text).ok_or_else(|| bad("time"))?)),
        ColumnType::TimeTz { .. } => {
            let split = text.rfind(['+', '-']).ok_or_else(|| bad("timetz"))?;
            let micros = parse_clock(&text[..split]).ok_or_else(|| bad("timetz"))?;
            let offset_secs = parse_offset(&text[split..]).ok_or_else(|| bad("timetz"))?;
            row.push(Value::TimeTz { micros, offset_secs })
        }
        ColumnType::DateTime { .. } => match text {
            "infinity" | "-infinity" => row.push(Value::Special(text.to_string())),
            _ => row.push(Value::DateTime(parse_timestamp(text, false).ok_or_else(|| bad("timestamp"))?)),
        },
        ColumnType::Timestamp { .. } => match text {
            "infinity" | "-infinity" => row.push(Value::Special(text.to_string())),
            _ => row.push(Value::Timestamp(parse_timestamp(text, true).ok_or_else(|| bad("timestamptz"))?)),
        },
        ColumnType::Interval => {
            let (months, days, micros) = parse_interval(text).ok_or_else(|| bad("interval"))?;
            row.push(Value::Interval { months, days, micros })
        }
        ColumnType::Uuid => row.push(Value::Uuid(parse_uuid(text).ok_or_else(|| bad("uuid"))?)),
        ColumnType::Json => row.push(Value::Json(text.to_string())),
        ColumnType::Bit { .. } => {
            if !text.bytes().all(|b| b == b'0' || b == b'1') {
                return Err(bad("bit string"));
            }
            row.push(Value::Bit { len: text.len() as u32, bytes: bits_to_bytes(text).into() })
        }
        ColumnType::Enum { .. } => row.push(Value::Enum(text.to_string())),
        ColumnType::Array { element } => row.push(parse_array(element, text)?),
        ColumnType::Geometry => {
            // point: `(x,y)`, sent like Debezium's Point: well-known binary, no SRID.
            let inner = text.trim().trim_start_matches('(').trim_end_matches(')');
            let (x, y) = inner.split_once(',').ok_or_else(|| bad("point"))?;
            let x: f64 = x.trim().parse().map_err(|_| bad("point"))?;
            let y: f64 = y.trim().parse().map_err(|_| bad("point"))?;
            let mut wkb = vec![1u8, 1, 0, 0, 0];
            wkb.extend_from_slice(&x.to_le_bytes());
            wkb.extend_from_slice(&y.to_le_bytes());
            row.push(Value::Geometry { wkb: wkb.into(), srid: None })
        }
        _ => row.push(Value::Text(text.to_string())),
    }
    Ok(())
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

/// A run of ASCII digits (1 to 18 of them) as a number. The date and time parsers below work
/// on bytes without splitting into substrings: they run for every temporal value decoded.
fn number(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 18 {
        return None;
    }
    b.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + (c - b'0') as i64))
}

/// `YYYY-MM-DD[ BC]` → days since 1970-01-01 (year 1 BC is year 0).
fn parse_date(text: &str) -> Option<i64> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    date_days(body.as_bytes(), bc)
}

fn date_days(b: &[u8], bc: bool) -> Option<i64> {
    // The year may have more than four digits; month and day have two.
    let n = b.len();
    if n < 7 || b[n - 3] != b'-' || b[n - 6] != b'-' {
        return None;
    }
    let y = number(&b[..n - 6])?;
    let m = number(&b[n - 5..n - 3])? as u32;
    let d = number(&b[n - 2..])? as u32;
    let y = if bc { 1 - y } else { y };
    Some(days_from_civil(y, m, d))
}

/// `HH:MM:SS[.ffffff]` → µs (24:00:00 allowed).
fn parse_clock(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let (hms, frac) = match b.iter().position(|&c| c == b'.') {
        Some(dot) => (&b[..dot], &b[dot + 1..]),
        None => (b, &b""[..]),
    };
    let mut parts = hms.splitn(3, |&c| c == b':');
    let h = number(parts.next()?)?;
    let m = number(parts.next()?)?;
    let s = match parts.next() {
        Some(p) => number(p)?,
        None => 0,
    };
    let mut micros = 0i64;
    if !frac.is_empty() {
        if frac.len() > 6 {
            return None;
        }
        micros = number(frac)? * 10i64.pow(6 - frac.len() as u32);
    }
    Some((h * 3600 + m * 60 + s) * 1_000_000 + micros)
}

/// `+HH[:MM[:SS]]` → seconds east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    let sign = match b.first()? {
        b'-' => -1,
        b'+' => 1,
        _ => return None,
    };
    let mut parts = b[1..].splitn(3, |&c| c == b':');
    let h = number(parts.next()?)?;
    let m = parts.next().map_or(Some(0), number)?;
    let s = parts.next().map_or(Some(0), number)?;
    Some(sign * (h * 3600 + m * 60 + s) as i32)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]][ BC]` → µs since the epoch (offset applied).
fn parse_timestamp(text: &str, with_zone: bool) -> Option<i64> {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let space = body.bytes().position(|c| c == b' ')?;
    let (date, rest) = (&body[..space], &body[space + 1..]);
    let days = date_days(date.as_bytes(), bc)?;
    let (clock, offset) = if with_zone {
        let split = rest.bytes().rposition(|c| c == b'+' || c == b'-')?;
        (&rest[..split], parse_offset(&rest[split..])?)
    } else {
        (rest, 0)
    };
    Some(days * 86_400_000_000 + parse_clock(clock)? - offset as i64 * 1_000_000)
}

/// IntervalStyle `postgres`: `1 year 2 mons -3 days +04:05:06.5`.
fn parse_interval(text: &str) -> Option<(i32, i32, i64)> {
    let (mut months, mut days, mut micros) = (0i32, 0i32, 0i64);
    let mut tokens = text.split_whitespace().peekable();
    while let Some(tok) = tokens.next() {
        if tok.contains(':') {
            let (neg, clock) = match tok.strip_prefix('-') {
                Some(c) => (true, c),
                None => (false, tok.trim_start_matches('+')),
            };
            let us = parse_clock(clock)?;
            micros += if neg { -us } else { us };
            continue;
        }
        let n: i32 = tok.parse().ok()?;
        let unit = tokens.next()?;
        match unit.trim_end_matches('s') {
            "year" => months += n * 12,
            "mon" => months += n,
            "day" => days += n,
            _ => return None,
        }
    }
    Some((months, days, micros))
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// `0101…` → the bits as a big-endian unsigned number (the convention of [`Value::Bit`]),
/// without leading zero bytes, as Debezium's PostgreSQL connector sends bit strings (zero is
/// no bytes at all).
fn bits_to_bytes(bits: &str) -> Vec<u8> {
    let n = bits.len().div_ceil(8);
    let mut out = vec![0u8; n];
    for (i, b) in bits.bytes().rev().enumerate() {
        if b == b'1' {
            out[n - 1 - i / 8] |= 1 << (i % 8);
        }
    }
    let first = out.iter().position(|b| *b != 0).unwrap_or(out.len());
    out.drain(..first);
    out
}

/// Array literals: `{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`, `[0:1]={1,2}`.
fn parse_array(element: &ColumnType, text: &str) -> Result<Value, String> {
    let body = match text.find("={") {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let bytes = body.as_bytes();
    let mut pos = 0;
    let v = parse_array_level(element, bytes, &mut pos)?;
    if pos != bytes.len() {
        return Err(format!("trailing text in array `{text}`"));
    }
    Ok(v)
}

fn parse_array_level(element: &ColumnType, b: &[u8], pos: &mut usize) -> Result<Value, String> {
    let err = || format!("malformed array literal `{}`", String::from_utf8_lossy(b));
    if b.get(*pos) != Some(&b'{') {
        return Err(err());
    }
    *pos += 1;
    let mut items = Vec::new();
    if b.get(*pos) == Some(&b'}') {
        *pos += 1;
        return Ok(Value::Array(items));
    }
    loop {
        match b.get(*pos) {
            Some(b'{') => items.push(parse_array_level(element, b, pos)?),
            Some(b'"') => {
                *pos += 1;
                let mut s = Vec::new();
                loop {
                    match b.get(*pos) {
                        Some(b'\\') => {
                            s.push(*b.get(*pos + 1).ok_or_else(err)?);
                            *pos += 2;
                        }
                        Some(b'"') => {
                            *pos += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            *pos += 1;
                        }
                        None => return Err(err()),
                    }
                }
                push_text(element, &String::from_utf8_lossy(&s), &mut items)?;
            }
            Some(_) => {
                let start = *pos;
                while !matches!(b.get(*pos), Some(b',') | Some(b'}') | None) {
                    *pos += 1;
                }
                let raw = String::from_utf8_lossy(&b[start..*pos]);
                let raw = raw.trim();
                if raw.eq_ignore_ascii_case("NULL") {
                    items.push(Value::Null);
                } else {
                    push_text(element, raw, &mut items)?;
                }
            }
            None => return Err(err()),
        }
        match b.get(*pos) {
            Some(b',') => *pos += 1,
            Some(b'}') => {
                *pos += 1;
                return Ok(Value::Array(items));
            }
            _ => return Err(err()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_rows_with_nulls_escapes_and_keys() {
        use crate::model::{Column, ColumnType};
        let col = |name: &str, kind: ColumnType| Column {
            name: name.into(),
            source_type: String::new(),
            kind,
            nullable: true,
            charset: None,
            existing_rows_value: None,
        };
        let columns = [
            col("id", ColumnType::Int { bytes: 4, unsigned: false }),
            col("t", ColumnType::Text { max_len: None }),
            col("b", ColumnType::Bytes { max_len: None }),
            col("n", ColumnType::Text { max_len: None }),
        ];
        let mut key = Vec::new();
        let row =
            super::parse_copy_row(&columns, b"7\ta\\tb\\nc\\\\d\\101\t\\\\x00ff\t\\N\n", &[0, 1], &mut key).unwrap();
        assert_eq!(
            row,
            vec![Value::Int(7), Value::Text("a\tb\nc\\dA".into()), Value::Bytes(vec![0, 0xff]), Value::Null]
        );
        assert_eq!(key, vec![b"7".to_vec(), b"a\tb\nc\\dA".to_vec()]);
        // The key buffers are reused: the next row's key is its own.
        super::parse_copy_row(&columns, b"8\tz\t\\N\t\\N\n", &[0, 1], &mut key).unwrap();
        assert_eq!(key, vec![b"8".to_vec(), b"z".to_vec()]);
        assert!(super::parse_copy_row(&columns, b"1\tx", &[], &mut key).is_err());
        // Bytes that are not UTF-8, raw or spelled by an escape, in a text column.
        assert_eq!(super::parse_copy_row(&columns, b"1\t\xff\t\\N\t\\N\n", &[], &mut key).unwrap_err(), "t: not UTF-8");
        assert!(super::parse_copy_row(&columns, b"1\t\\377\t\\N\t\\N\n", &[], &mut key).unwrap_err().contains("UTF-8"));
    }

    use super::*;

    #[test]
    fn temporal_text_forms() {
        assert_eq!(parse_timestamp("2024-02-29 12:34:56.789+00", true), Some(1_709_210_096_789_000));
        assert_eq!(parse_timestamp("2024-02-29 14:34:56.789+02", true), Some(1_709_210_096_789_000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:00", false), Some(0));
        assert_eq!(parse_date("0001-01-01 BC"), Some(days_from_civil(0, 1, 1)));
        assert_eq!(parse_interval("1 year 2 mons -3 days +04:05:06.5"), Some((14, -3, 14_706_500_000)));
        assert_eq!(parse_interval("-00:00:01"), Some((0, 0, -1_000_000)));
        assert_eq!(parse_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_offset("+01:02:03"), Some(3723));
        assert_eq!(parse_date("12345-06-07"), Some(days_from_civil(12345, 6, 7)));
        assert_eq!(
            parse_timestamp("0044-03-15 10:00:00.5-01 BC", true),
            Some(days_from_civil(-43, 3, 15) * 86_400_000_000 + 11 * 3_600_000_000 + 500_000)
        );
        assert_eq!(parse_clock("24:00:00"), Some(86_400_000_000));
        assert_eq!(parse_clock("01:02:03.000004"), Some(3_723_000_004));
        assert_eq!(parse_clock("01:02:03.1234567"), None);
        assert_eq!(parse_date("2024-1-01"), None);
    }

    /// Malformed text never panics, for any column type.
    #[test]
    fn malformed_text_never_panics() {
        let kinds = [
            ColumnType::Bool,
            ColumnType::Int { bytes: 4, unsigned: false },
            ColumnType::Double,
            ColumnType::Decimal { precision: None, scale: Some(2) },
            ColumnType::Bytes { max_len: None },
            ColumnType::Date,
            ColumnType::Time { fsp: 6 },
            ColumnType::TimeTz { fsp: 6 },
            ColumnType::DateTime { fsp: 6 },
            ColumnType::Timestamp { fsp: 6 },
            ColumnType::Interval,
            ColumnType::Uuid,
            ColumnType::Bit { len: 8 },
            ColumnType::Geometry,
            ColumnType::Array { element: Box::new(ColumnType::Int { bytes: 4, unsigned: false }) },
        ];
        let inputs = [
            "",
            "-",
            "+",
            ":",
            "{",
            "}",
            "{{",
            "{\"",
            "(",
            "(1",
            "\\x",
            "\\x0",
            "99999-99-99",
            "1-1-1 BC",
            "25:61:61",
            "1 year",
            "year 1",
            "x",
            "1e400",
            "--1",
            "12:00+",
            "2024-01-01 00:00",
            "[1:2]={1}",
            "{1,2}}",
        ];
        for k in &kinds {
            for i in inputs {
                let _ = parse_text(k, i);
            }
        }
    }

    #[test]
    fn arrays_bits_bytea() {
        let int = ColumnType::Int { bytes: 4, unsigned: false };
        assert_eq!(
            parse_array(&int, "{{1,2},{NULL,4}}").unwrap(),
            Value::Array(vec![
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
                Value::Array(vec![Value::Null, Value::Int(4)])
            ])
        );
        let text = ColumnType::Text { max_len: None };
        assert_eq!(
            parse_array(&text, r#"{"a b","c\"d",e}"#).unwrap(),
            Value::Array(vec![Value::Text("a b".into()), Value::Text("c\"d".into()), Value::Text("e".into())])
        );
        assert_eq!(bits_to_bytes("1"), vec![1]);
        assert_eq!(bits_to_bytes("100000000"), vec![1, 0]);
        assert_eq!(bits_to_bytes("0000000000000001"), vec![1]);
        assert_eq!(bits_to_bytes("00000000"), Vec::<u8>::new());
        assert_eq!(parse_bytea("\\x00ff"), Some(vec![0, 255]));
    }
}
