//! Rows in `COPY … (FORMAT binary)`: each field as the target type's binary receive function
//! reads it, so the target parses no text. On PostgreSQL 17 here, COPY of 300,000 rows of the
//! 12-column bench table took 0.6–0.9 CPU s in binary against 1.0–1.6 s in text: timestamps,
//! numerics and floats are the costly text inputs (see docs/decisions.md).
//!
//! A table is written in binary only when every column pairs a source kind with a target
//! type listed in [`field_codec`], where the binary value is exactly what the text path would
//! have made the target read; any other table stays on COPY text.

use super::values::write_text;
use crate::model::{Column, ColumnType, Row, Value};
use crate::sinks::LiteralError;

/// How one column is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldCodec {
    /// text, varchar, char, json: the bytes of the value's text (what the text path sends).
    Text,
    /// jsonb: a version byte, then the text.
    Jsonb,
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Bytea,
    Date,
    Time,
    TimeTz,
    /// timestamp and timestamptz: microseconds since 2000-01-01.
    Timestamp,
    Interval,
    Uuid,
    /// bit and varbit: length in bits, then the bits from the first, padded to whole bytes.
    Bit,
}

/// The codec for a column of `kind` in a target column of type `target_type` (a `pg_catalog`
/// type name, `typname`), when binary input gives the same value as the text path.
pub fn field_codec(kind: &ColumnType, target_type: &str) -> Option<FieldCodec> {
    use ColumnType as K;
    Some(match (target_type, kind) {
        // Text input of these types is the text itself, whatever the source kind.
        ("text" | "varchar" | "bpchar" | "json", _) => FieldCodec::Text,
        ("jsonb", _) => FieldCodec::Jsonb,
        ("bool", K::Bool) => FieldCodec::Bool,
        ("int2", K::Int { .. } | K::Year) => FieldCodec::Int2,
        ("int4", K::Int { .. } | K::Year) => FieldCodec::Int4,
        ("int8", K::Int { .. } | K::Year) => FieldCodec::Int8,
        ("numeric", K::Int { .. } | K::Decimal { .. }) => FieldCodec::Numeric,
        // A float4 widened to float8 would read its binary digits, not its shortest text.
        ("float4", K::Float) => FieldCodec::Float4,
        ("float8", K::Double) => FieldCodec::Float8,
        ("bytea", K::Bytes { .. } | K::Geometry) => FieldCodec::Bytea,
        ("date", K::Date) => FieldCodec::Date,
        ("time", K::Time { .. }) => FieldCodec::Time,
        // A MySQL TIME (a duration) goes into interval.
        ("interval", K::Time { .. } | K::Interval) => FieldCodec::Interval,
        ("timetz", K::TimeTz { .. }) => FieldCodec::TimeTz,
        ("timestamp", K::DateTime { .. }) | ("timestamptz", K::Timestamp { .. }) => FieldCodec::Timestamp,
        ("uuid", K::Uuid) => FieldCodec::Uuid,
        ("bit" | "varbit", K::Bit { .. }) => FieldCodec::Bit,
        _ => return None,
    })
}

/// The signature, flags and header extension length that open binary COPY data.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count -1 that ends it.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Days from 1970-01-01 (the model's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_DAYS: i64 = 10_957;
const EPOCH_MICROS: i64 = EPOCH_DAYS * 86_400_000_000;

/// Appends one row: the field count, then each field's length and bytes.
pub fn write_row(
    out: &mut Vec<u8>,
    scratch: &mut String,
    columns: &[Column],
    codecs: &[FieldCodec],
    row: &Row,
) -> Result<(), LiteralError> {
    out.extend_from_slice(&(columns.len() as i16).to_be_bytes());
    for (i, (column, codec)) in columns.iter().zip(codecs).enumerate() {
        write_field(out, scratch, row.get(i).unwrap_or(&Value::Null), column, *codec)?;
    }
    Ok(())
}

fn write_field(
    out: &mut Vec<u8>,
    scratch: &mut String,
    value: &Value,
    column: &Column,
    codec: FieldCodec,
) -> Result<(), LiteralError> {
    let mismatch = || {
        LiteralError(format!(
            "column {} ({:?}) cannot hold {value:?} in binary COPY; please report this",
            column.name, codec
        ))
    };
    let out_of_range =
        |ty: &str| LiteralError(format!("column {}: {value:?} is out of range for type {ty}", column.name));
    match (codec, value) {
        (_, Value::Null) => out.extend_from_slice(&(-1i32).to_be_bytes()),
        // MySQL zero dates have no PostgreSQL value (as in the text path).
        (_, Value::Special(s)) if s.starts_with("0000") => out.extend_from_slice(&(-1i32).to_be_bytes()),
        (_, Value::Unchanged) => {
            return Err(LiteralError(format!("column {} has no value (an unchanged TOAST value)", column.name)));
        }
        (FieldCodec::Text | FieldCodec::Jsonb, _) => {
            let jsonb = codec == FieldCodec::Jsonb;
            let text = match value {
                Value::Text(s) | Value::Json(s) | Value::Enum(s) => s.as_str(),
                other => {
                    scratch.clear();
                    write_text(scratch, other, &column.kind)?;
                    scratch.as_str()
                }
            };
            if text.as_bytes().contains(&0) {
                return Err(LiteralError(format!(
                    "column {} holds a NUL character, which PostgreSQL text cannot store",
                    column.name
                )));
            }
            let len = text.len() + usize::from(jsonb);
            let len = i32::try_from(len).map_err(|_| out_of_range("text (over 2 GB)"))?;
            out.extend_from_slice(&len.to_be_bytes());
            if jsonb {
                out.push(1);
            }
            out.extend_from_slice(text.as_bytes());
        }
        (FieldCodec::Bool, Value::Bool(b)) => put(out, &[u8::from(*b)]),
        (FieldCodec::Int2 | FieldCodec::Int4 | FieldCodec::Int8 | FieldCodec::Numeric, Value::Int(i)) => {
            write_integer(out, codec, i128::from(*i)).map_err(out_of_range)?
        }
        (FieldCodec::Int2 | FieldCodec::Int4 | FieldCodec::Int8 | FieldCodec::Numeric, Value::UInt(u)) => {
            write_integer(out, codec, i128::from(*u)).map_err(out_of_range)?
        }
        (FieldCodec::Numeric, Value::Decimal(s)) => write_numeric(out, s)
            .ok_or_else(|| LiteralError(format!("column {}: `{s}` is not a number", column.name)))?,
        (FieldCodec::Float4, Value::Float(f)) => put(out, &f.to_bits().to_be_bytes()),
        (FieldCodec::Float8, Value::Double(d)) => put(out, &d.to_bits().to_be_bytes()),
        (FieldCodec::Bytea, Value::Bytes(b)) => put(out, b),
        (FieldCodec::Bytea, Value::Geometry { wkb, .. }) => put(out, wkb),
        (FieldCodec::Date, Value::Date(days)) => {
            let days = i32::try_from(i64::from(*days) - EPOCH_DAYS).map_err(|_| out_of_range("date"))?;
            put(out, &days.to_be_bytes())
        }
        // PostgreSQL's infinities are the extreme values of the binary forms.
        (FieldCodec::Date, Value::Special(s)) => {
            put(out, &infinite(s, i32::MIN, i32::MAX).ok_or_else(mismatch)?.to_be_bytes())
        }
        (FieldCodec::Timestamp, Value::DateTime(micros) | Value::Timestamp(micros)) => {
            put(out, &micros.checked_sub(EPOCH_MICROS).ok_or_else(|| out_of_range("timestamp"))?.to_be_bytes())
        }
        (FieldCodec::Timestamp, Value::Special(s)) => {
            put(out, &infinite(s, i64::MIN, i64::MAX).ok_or_else(mismatch)?.to_be_bytes())
        }
        (FieldCodec::Time, Value::Time(micros)) => put(out, &micros.to_be_bytes()),
        (FieldCodec::TimeTz, Value::TimeTz { micros, offset_secs }) => {
            let mut b = [0u8; 12];
            b[..8].copy_from_slice(&micros.to_be_bytes());
            // PostgreSQL keeps the zone as seconds west of UTC.
            b[8..].copy_from_slice(&offset_secs.wrapping_neg().to_be_bytes());
            put(out, &b)
        }
        (FieldCodec::Interval, Value::Interval { months, days, micros }) => {
            put(out, &interval(*micros, *days, *months))
        }
        (FieldCodec::Interval, Value::Time(micros)) => put(out, &interval(*micros, 0, 0)),
        (FieldCodec::Uuid, Value::Uuid(b)) => put(out, b),
        (FieldCodec::Bit, Value::Bit { len, bytes }) => {
            write_bits(out, *len, bytes).ok_or_else(|| out_of_range("bit"))?
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// An integer as an `Int2`/`Int4`/`Int8`/`Numeric` field; the type's name when it does not fit.
fn write_integer(out: &mut Vec<u8>, codec: FieldCodec, n: i128) -> Result<(), &'static str> {
    match codec {
        FieldCodec::Int2 => put(out, &i16::try_from(n).map_err(|_| "smallint")?.to_be_bytes()),
        FieldCodec::Int4 => put(out, &i32::try_from(n).map_err(|_| "integer")?.to_be_bytes()),
        FieldCodec::Int8 => put(out, &i64::try_from(n).map_err(|_| "bigint")?.to_be_bytes()),
        // Digits only: always a number.
        _ => write_numeric(out, itoa::Buffer::new().format(n)).ok_or("numeric")?,
    }
    Ok(())
}

/// A field of fixed bytes: its length, then them.
fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn infinite<T>(special: &str, minus: T, plus: T) -> Option<T> {
    match special {
        "-infinity" => Some(minus),
        "infinity" => Some(plus),
        _ => None,
    }
}

fn interval(micros: i64, days: i32, months: i32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&micros.to_be_bytes());
    b[8..12].copy_from_slice(&days.to_be_bytes());
    b[12..].copy_from_slice(&months.to_be_bytes());
    b
}

/// `len` bits of a big-endian number (the model's form) as PostgreSQL stores them: the first
/// bit is the high bit of the first byte.
fn write_bits(out: &mut Vec<u8>, len: u32, number: &[u8]) -> Option<()> {
    let bytes = len.div_ceil(8) as usize;
    let field = i32::try_from(4 + bytes).ok()?;
    out.extend_from_slice(&field.to_be_bytes());
    out.extend_from_slice(&i32::try_from(len).ok()?.to_be_bytes());
    let start = out.len();
    out.resize(start + bytes, 0);
    for i in 0..len as usize {
        // Bit i of the string is bit (len - 1 - i) of the number.
        let from = len as usize - 1 - i;
        let set = number
            .len()
            .checked_sub(1 + from / 8)
            .and_then(|at| number.get(at))
            .is_some_and(|b| b >> (from % 8) & 1 == 1);
        if set {
            out[start + i / 8] |= 0x80 >> (i % 8);
        }
    }
    Some(())
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// A decimal text (`-123.4500`, `NaN`, `Infinity`) as a numeric field: digit count, weight of
/// the first base-10000 digit, sign, display scale, then the digits. `None` when `text` is not
/// such a number.
fn write_numeric(out: &mut Vec<u8>, text: &str) -> Option<()> {
    let special = match text {
        "NaN" => Some(NUMERIC_NAN),
        "Infinity" => Some(NUMERIC_PINF),
        "-Infinity" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        return Some(());
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let dscale = u16::try_from(frac.len()).ok().filter(|&s| s <= 0x3FFF)?;
    // Base-10000 digits line up on the decimal point: the integer part is padded on the left
    // and the fraction on the right to whole groups of four decimal digits.
    let lead = (4 - int.len() % 4) % 4;
    let int_groups = (lead + int.len()) / 4;
    let decimal = |i: usize| -> u16 {
        // Decimal digit i of the padded sequence.
        let at = i.wrapping_sub(lead);
        let b = if i < lead {
            b'0'
        } else if at < int.len() {
            int.as_bytes()[at]
        } else {
            frac.as_bytes().get(at - int.len()).copied().unwrap_or(b'0')
        };
        u16::from(b - b'0')
    };
    let groups = int_groups + frac.len().div_ceil(4);
    let header = out.len();
    out.extend_from_slice(&[0; 12]);
    let mut first = None;
    let mut last_nonzero = 0;
    let mut ndigits = 0usize;
    for g in 0..groups {
        let d = (0..4).fold(0u16, |acc, k| acc * 10 + decimal(g * 4 + k));
        if first.is_none() {
            if d == 0 {
                continue;
            }
            first = Some(g);
        }
        out.extend_from_slice(&d.to_be_bytes());
        ndigits += 1;
        if d != 0 {
            last_nonzero = ndigits;
        }
    }
    // Trailing zero digits are implied by the scale.
    out.truncate(header + 12 + last_nonzero * 2);
    let (weight, sign) = match first {
        Some(g) => (int_groups as i64 - 1 - g as i64, if negative { NUMERIC_NEG } else { NUMERIC_POS }),
        None => (0, NUMERIC_POS),
    };
    let field = i32::try_from(8 + last_nonzero * 2).ok()?;
    let head = &mut out[header..header + 12];
    head[..4].copy_from_slice(&field.to_be_bytes());
    head[4..6].copy_from_slice(&u16::try_from(last_nonzero).ok()?.to_be_bytes());
    head[6..8].copy_from_slice(&i16::try_from(weight).ok()?.to_be_bytes());
    head[8..10].copy_from_slice(&sign.to_be_bytes());
    head[10..12].copy_from_slice(&dscale.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<u16> {
        let mut out = Vec::new();
        write_numeric(&mut out, text).expect("a number");
        let len = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4);
        out[4..].chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numerics_in_base_10000_digits() {
        // ndigits, weight, sign, dscale, digits…
        assert_eq!(numeric("123456789012345.12345"), [6, 3, 0, 5, 123, 4567, 8901, 2345, 1234, 5000]);
        assert_eq!(numeric("-0.00001"), [1, (-2i16) as u16, 0x4000, 5, 1000]);
        assert_eq!(numeric("10000"), [1, 1, 0, 0, 1]);
        assert_eq!(numeric("0.0000000000"), [0, 0, 0, 10]);
        assert_eq!(numeric("-0"), [0, 0, 0, 0]);
        assert_eq!(numeric("18446744073709551615"), [5, 4, 0, 0, 1844, 6744, 737, 955, 1615]);
        assert_eq!(numeric(".5"), [1, (-1i16) as u16, 0, 1, 5000]);
        assert_eq!(numeric("NaN"), [0, 0, 0xC000, 0]);
        assert_eq!(numeric("-Infinity"), [0, 0, 0xF000, 0]);
        for bad in ["", "-", ".", "1e5", "1.2.3", "abc"] {
            assert!(write_numeric(&mut Vec::new(), bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bits_from_the_first() {
        let mut out = Vec::new();
        // B'1000000101': the number 0x0205 in 10 bits.
        write_bits(&mut out, 10, &[0x02, 0x05]).unwrap();
        assert_eq!(out, [0, 0, 0, 6, 0, 0, 0, 10, 0b1000_0001, 0b0100_0000]);
        out.clear();
        write_bits(&mut out, 0, &[]).unwrap();
        assert_eq!(out, [0, 0, 0, 4, 0, 0, 0, 0]);
    }

    fn field(value: Value, kind: ColumnType, codec: FieldCodec) -> Vec<u8> {
        let mut out = Vec::new();
        write_field(&mut out, &mut String::new(), &value, &Column::new("c", "", kind, true), codec)
            .map_err(|e| e.0)
            .expect("field");
        out
    }

    #[test]
    fn fields_in_receive_format() {
        let b = |v: &[u8]| [&(v.len() as i32).to_be_bytes()[..], v].concat();
        assert_eq!(field(Value::Null, ColumnType::Bool, FieldCodec::Bool), [0xff; 4]);
        assert_eq!(field(Value::Date(EPOCH_DAYS as i32 + 1), ColumnType::Date, FieldCodec::Date), b(&[0, 0, 0, 1]));
        assert_eq!(
            field(Value::Special("infinity".into()), ColumnType::Date, FieldCodec::Date),
            b(&[0x7f, 0xff, 0xff, 0xff])
        );
        assert_eq!(field(Value::Special("0000-00-00".into()), ColumnType::Date, FieldCodec::Date), [0xff; 4]);
        assert_eq!(
            field(Value::Timestamp(EPOCH_MICROS - 1), ColumnType::Timestamp { fsp: 6 }, FieldCodec::Timestamp),
            b(&(-1i64).to_be_bytes())
        );
        assert_eq!(
            field(Value::TimeTz { micros: 1, offset_secs: 19_800 }, ColumnType::TimeTz { fsp: 0 }, FieldCodec::TimeTz),
            b(&[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xb2, 0xa8])
        );
        assert_eq!(field(Value::Json("{}".into()), ColumnType::Json, FieldCodec::Jsonb), b(b"\x01{}"));
        // Text columns take what the text path writes, for any kind.
        assert_eq!(field(Value::Date(0), ColumnType::Date, FieldCodec::Text), b(b"1970-01-01"));
        assert_eq!(
            field(Value::UInt(70_000), ColumnType::Int { bytes: 4, unsigned: true }, FieldCodec::Int4),
            b(&70_000i32.to_be_bytes())
        );
        let kind = ColumnType::Int { bytes: 2, unsigned: false };
        let mut out = Vec::new();
        let e = write_field(
            &mut out,
            &mut String::new(),
            &Value::Int(40_000),
            &Column::new("c", "", kind, true),
            FieldCodec::Int2,
        );
        assert!(e.is_err_and(|e| e.0.contains("out of range for type smallint")));
        let e = write_field(
            &mut out,
            &mut String::new(),
            &Value::Text("a\0".into()),
            &Column::new("c", "", ColumnType::Json, true),
            FieldCodec::Text,
        );
        assert!(e.is_err_and(|e| e.0.contains("NUL")));
    }

    #[test]
    fn codecs_only_where_binary_reads_what_text_would() {
        assert_eq!(field_codec(&ColumnType::Float, "float8"), None);
        assert_eq!(field_codec(&ColumnType::Double, "float8"), Some(FieldCodec::Float8));
        assert_eq!(field_codec(&ColumnType::Int { bytes: 8, unsigned: true }, "numeric"), Some(FieldCodec::Numeric));
        assert_eq!(field_codec(&ColumnType::Timestamp { fsp: 3 }, "timestamp"), None);
        assert_eq!(field_codec(&ColumnType::Enum { values: vec![] }, "text"), Some(FieldCodec::Text));
        assert_eq!(field_codec(&ColumnType::Other, "inet"), None);
        assert_eq!(field_codec(&ColumnType::Array { element: Box::new(ColumnType::Bool) }, "_bool"), None);
    }
}
