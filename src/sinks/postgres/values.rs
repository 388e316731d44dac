//! The PostgreSQL side of the type mapping: which column type a source column becomes, and
//! how a [`Value`] is written as an SQL literal in PostgreSQL's text input format.
//!
//! Literals other than numbers and booleans are written quoted and untyped: PostgreSQL
//! coerces them to the target column's type, so a table the user created with a different
//! but compatible type (text for varchar, numeric for bigint) just works.

use std::fmt::Write;

use crate::format::debezium::civil_from_days;
use crate::model::value::{push_padded, write_bit_text, write_clock_text, write_uuid_text};
use crate::model::{Column, ColumnType, Value};
use crate::sinks::{LiteralError, SourceEngine};

/// The PostgreSQL type of a column created for `column`. `Other` types of a PostgreSQL
/// source keep their name when the target knows it (`known_other`), else become `text`.
pub fn target_type(column: &Column, engine: SourceEngine, known_other: bool) -> String {
    kind_type(&column.kind, &column.source_type, engine, known_other)
}

fn kind_type(kind: &ColumnType, source_type: &str, engine: SourceEngine, known_other: bool) -> String {
    let pg = engine == SourceEngine::Postgres;
    match kind {
        ColumnType::Bool => "boolean".into(),
        ColumnType::Int { bytes: 1 | 2, unsigned: false } | ColumnType::Int { bytes: 1, unsigned: true } => {
            "smallint".into()
        }
        ColumnType::Int { bytes: 2 | 3, .. } | ColumnType::Int { bytes: 4, unsigned: false } => "integer".into(),
        ColumnType::Int { bytes: 4, unsigned: true } if pg && source_type == "oid" => "oid".into(),
        ColumnType::Int { bytes: 4, unsigned: true } | ColumnType::Int { bytes: 8, unsigned: false } => "bigint".into(),
        // BIGINT UNSIGNED needs 20 digits; nothing narrower holds 18446744073709551615.
        ColumnType::Int { .. } => "numeric(20,0)".into(),
        ColumnType::Float => "real".into(),
        ColumnType::Double => "double precision".into(),
        ColumnType::Decimal { .. } if pg && source_type == "money" => "money".into(),
        ColumnType::Decimal { precision: Some(p), scale } if *p > 0 => format!("numeric({p},{})", scale.unwrap_or(0)),
        ColumnType::Decimal { .. } => "numeric".into(),
        // MySQL lengths in the binlog are in bytes, not characters: `text` never truncates.
        ColumnType::Text { max_len } if pg => match (source_type, max_len) {
            ("varchar", Some(n)) => format!("varchar({n})"),
            ("varchar", None) => "varchar".into(),
            ("bpchar", Some(n)) => format!("char({n})"),
            ("bpchar", None) => "char".into(),
            ("name", _) => "name".into(),
            ("char", _) => "\"char\"".into(),
            _ => "text".into(),
        },
        ColumnType::Text { .. } => "text".into(),
        ColumnType::Bytes { .. } => "bytea".into(),
        ColumnType::Date => "date".into(),
        ColumnType::Time { fsp } if pg => format!("time({fsp})"),
        // MySQL TIME is a duration (-838:59:59 to 838:59:59); `interval` holds every value.
        ColumnType::Time { .. } => "interval".into(),
        ColumnType::TimeTz { fsp } => format!("timetz({fsp})"),
        ColumnType::DateTime { fsp } => format!("timestamp({fsp})"),
        ColumnType::Timestamp { fsp } => format!("timestamptz({fsp})"),
        ColumnType::Year => "smallint".into(),
        ColumnType::Interval => "interval".into(),
        ColumnType::Json if pg && source_type == "json" => "json".into(),
        ColumnType::Json => "jsonb".into(),
        ColumnType::Uuid => "uuid".into(),
        ColumnType::Enum { .. } | ColumnType::Set { .. } => "text".into(),
        ColumnType::Bit { len } if pg && source_type == "varbit" => {
            if *len > 0 {
                format!("varbit({len})")
            } else {
                "varbit".into()
            }
        }
        ColumnType::Bit { len } => format!("bit({})", (*len).max(1)),
        ColumnType::Array { element } => {
            let element_source = source_type.strip_prefix('_').unwrap_or("");
            format!("{}[]", kind_type(element, element_source, engine, known_other))
        }
        ColumnType::Geometry if pg && source_type == "point" => "point".into(),
        ColumnType::Geometry => "bytea".into(),
        ColumnType::Other if pg && known_other => source_type.to_string(),
        ColumnType::Other => "text".into(),
    }
}

/// Whether a column created by [`target_type`] must accept NULL even when the source column
/// does not: MySQL zero dates have no PostgreSQL value and are written as NULL.
pub fn forced_nullable(column: &Column, engine: SourceEngine) -> bool {
    engine == SourceEngine::MySql
        && matches!(column.kind, ColumnType::Date | ColumnType::DateTime { .. } | ColumnType::Timestamp { .. })
}

/// Appends `value` as an SQL literal for `column`.
pub fn write_literal(out: &mut String, value: &Value, column: &Column) -> Result<(), LiteralError> {
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::UInt(u) => out.push_str(itoa::Buffer::new().format(*u)),
        // MySQL zero dates (`0000-00-00`) have no PostgreSQL value.
        Value::Special(s) if s.starts_with("0000") => out.push_str("NULL"),
        Value::Unchanged => {
            return Err(LiteralError(format!("column {} has no value (an unchanged TOAST value)", column.name)));
        }
        other => {
            out.push('\'');
            let start = out.len();
            write_text(out, other, &column.kind)?;
            if out[start..].contains('\0') {
                return Err(LiteralError(format!(
                    "column {} holds a NUL character, which PostgreSQL text cannot store",
                    column.name
                )));
            }
            if out[start..].contains('\'') {
                let escaped = out[start..].replace('\'', "''");
                out.truncate(start);
                out.push_str(&escaped);
            }
            out.push('\'');
        }
    }
    Ok(())
}

/// Appends `value` as one field of a `COPY … FROM STDIN` text row (`\N` for NULL, with
/// backslash, tab, newline and carriage return escaped). `scratch` is a reusable buffer.
pub fn write_copy_field(
    out: &mut Vec<u8>,
    scratch: &mut String,
    value: &Value,
    column: &Column,
) -> Result<(), LiteralError> {
    match value {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Special(s) if s.starts_with("0000") => out.extend_from_slice(b"\\N"),
        Value::Unchanged => {
            return Err(LiteralError(format!("column {} has no value (an unchanged TOAST value)", column.name)));
        }
        other => {
            scratch.clear();
            write_text(scratch, other, &column.kind)?;
            // Most values hold nothing to escape: copied whole.
            if !scratch.bytes().any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0)) {
                out.extend_from_slice(scratch.as_bytes());
                return Ok(());
            }
            for b in scratch.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    0 => {
                        return Err(LiteralError(format!(
                            "column {} holds a NUL character, which PostgreSQL text cannot store",
                            column.name
                        )));
                    }
                    _ => out.push(b),
                }
            }
        }
    }
    Ok(())
}

/// Appends `value` in PostgreSQL's text input format (no SQL quoting).
pub(super) fn write_text(out: &mut String, value: &Value, kind: &ColumnType) -> Result<(), LiteralError> {
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Bool(b) => out.push_str(if *b { "t" } else { "f" }),
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::UInt(u) => out.push_str(itoa::Buffer::new().format(*u)),
        Value::Float(f) => write_float(out, f64::from(*f), Some(*f)),
        Value::Double(d) => write_float(out, *d, None),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) | Value::Enum(s) | Value::Special(s) => out.push_str(s),
        Value::Bytes(b) => write_hex(out, b),
        Value::Geometry { wkb, .. } => write_hex(out, wkb),
        Value::Date(days) => write_date(out, i64::from(*days)),
        Value::Time(micros) => write_clock_text(out, *micros),
        Value::TimeTz { micros, offset_secs } => {
            write_clock_text(out, *micros);
            write_offset(out, *offset_secs);
        }
        Value::DateTime(micros) => write_date_time(out, *micros),
        Value::Timestamp(micros) => {
            write_date_time(out, *micros);
            out.push_str("+00");
        }
        Value::Interval { months, days, micros } => {
            let _ = write!(out, "{months} mons {days} days {micros} microseconds");
        }
        Value::Uuid(b) => write_uuid_text(out, b),
        Value::Set(items) => out.push_str(&items.join(",")),
        Value::Bit { len, bytes } => write_bit_text(out, *len, bytes),
        Value::Array(items) => {
            let element = match kind {
                ColumnType::Array { element } => element.as_ref(),
                other => other,
            };
            out.push('{');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::Null => out.push_str("NULL"),
                    // A nested array is a dimension of the same array, written bare.
                    Value::Array(_) => write_text(out, item, kind)?,
                    _ => {
                        let mut text = String::new();
                        write_text(&mut text, item, element)?;
                        out.push('"');
                        for c in text.chars() {
                            if c == '"' || c == '\\' {
                                out.push('\\');
                            }
                            out.push(c);
                        }
                        out.push('"');
                    }
                }
            }
            out.push('}');
        }
        Value::Unchanged => return Err(LiteralError("an unchanged TOAST value has no text".into())),
    }
    Ok(())
}

fn write_float(out: &mut String, d: f64, single: Option<f32>) {
    if d.is_nan() {
        out.push_str("NaN");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let mut buf = ryu::Buffer::new();
        // The shortest text that reads back as the same single-precision value.
        out.push_str(match single {
            Some(f) => buf.format_finite(f),
            None => buf.format_finite(d),
        });
    }
}

fn write_hex(out: &mut String, bytes: &[u8]) {
    out.push_str("\\x");
    crate::model::write_hex_digits(out, bytes);
}

/// `YYYY-MM-DD`, with ` BC` for years before 1 (year 0 is 1 BC).
fn write_date(out: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    write_ymd(out, if y <= 0 { 1 - y } else { y }, m, d);
    if y <= 0 {
        out.push_str(" BC");
    }
}

fn write_ymd(out: &mut String, year: i64, m: u32, d: u32) {
    push_padded(out, year.unsigned_abs(), 4);
    out.push('-');
    push_padded(out, u64::from(m), 2);
    out.push('-');
    push_padded(out, u64::from(d), 2);
}

fn write_offset(out: &mut String, offset_secs: i32) {
    out.push(if offset_secs < 0 { '-' } else { '+' });
    let o = u64::from(offset_secs.unsigned_abs());
    push_padded(out, o / 3600, 2);
    out.push(':');
    push_padded(out, o / 60 % 60, 2);
    out.push(':');
    push_padded(out, o % 60, 2);
}

fn write_date_time(out: &mut String, micros: i64) {
    let days = micros.div_euclid(86_400_000_000);
    let of_day = micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    write_ymd(out, if y <= 0 { 1 - y } else { y }, m, d);
    out.push(' ');
    write_clock_text(out, of_day);
    if y <= 0 {
        out.push_str(" BC");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ColumnType) -> Column {
        Column::new("c", "", kind, true)
    }

    fn lit(value: Value, kind: ColumnType) -> String {
        let mut out = String::new();
        write_literal(&mut out, &value, &col(kind)).map_err(|e| e.0).expect("literal");
        out
    }

    #[test]
    fn literals_in_postgres_input_format() {
        assert_eq!(lit(Value::UInt(u64::MAX), ColumnType::Int { bytes: 8, unsigned: true }), "18446744073709551615");
        assert_eq!(lit(Value::Text("it's".into()), ColumnType::Text { max_len: None }), "'it''s'");
        assert_eq!(lit(Value::Bytes(vec![0, 0xff, b'\'']), ColumnType::Bytes { max_len: None }), "'\\x00ff27'");
        assert_eq!(lit(Value::Date(-719_528), ColumnType::Date), "'0001-01-01 BC'");
        assert_eq!(lit(Value::Date(0), ColumnType::Date), "'1970-01-01'");
        assert_eq!(lit(Value::DateTime(-1), ColumnType::DateTime { fsp: 6 }), "'1969-12-31 23:59:59.999999'");
        assert_eq!(
            lit(Value::Timestamp(1_500_000), ColumnType::Timestamp { fsp: 6 }),
            "'1970-01-01 00:00:01.500000+00'"
        );
        assert_eq!(lit(Value::Time(-3_020_399_000_000), ColumnType::Time { fsp: 0 }), "'-838:59:59'");
        assert_eq!(
            lit(Value::TimeTz { micros: 3_600_000_000, offset_secs: -19_800 }, ColumnType::TimeTz { fsp: 0 }),
            "'01:00:00-05:30:00'"
        );
        assert_eq!(lit(Value::Double(f64::NEG_INFINITY), ColumnType::Double), "'-Infinity'");
        assert_eq!(lit(Value::Float(0.1), ColumnType::Float), "'0.1'");
        assert_eq!(
            lit(Value::Bit { len: 10, bytes: Box::new([0x02, 0x05]) }, ColumnType::Bit { len: 10 }),
            "'1000000101'"
        );
        assert_eq!(lit(Value::Special("0000-00-00".into()), ColumnType::Date), "NULL");
        assert_eq!(lit(Value::Special("infinity".into()), ColumnType::Date), "'infinity'");
        assert_eq!(lit(Value::Set(vec!["a".into(), "b".into()]), ColumnType::Set { values: vec![] }), "'a,b'");
        let mut uuid = [0u8; 16];
        uuid[15] = 1;
        assert_eq!(lit(Value::Uuid(uuid), ColumnType::Uuid), "'00000000-0000-0000-0000-000000000001'");
    }

    #[test]
    fn arrays_quote_elements_and_nest() {
        let text = ColumnType::Array { element: Box::new(ColumnType::Text { max_len: None }) };
        let v = Value::Array(vec![Value::Text("a\"b\\c".into()), Value::Null, Value::Text("it's".into())]);
        assert_eq!(lit(v, text), r#"'{"a\"b\\c",NULL,"it''s"}'"#);
        let ints = ColumnType::Array { element: Box::new(ColumnType::Int { bytes: 4, unsigned: false }) };
        let v = Value::Array(vec![
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            Value::Array(vec![Value::Int(3), Value::Null]),
        ]);
        assert_eq!(lit(v, ints), r#"'{{"1","2"},{"3",NULL}}'"#);
    }

    #[test]
    fn copy_fields_escape_control_characters() {
        let mut out = Vec::new();
        let mut scratch = String::new();
        let text = col(ColumnType::Text { max_len: None });
        write_copy_field(&mut out, &mut scratch, &Value::Text("a\tb\nc\\d\r".into()), &text).expect("field");
        out.push(b'|');
        write_copy_field(&mut out, &mut scratch, &Value::Null, &text).expect("field");
        out.push(b'|');
        write_copy_field(&mut out, &mut scratch, &Value::Bytes(vec![1]), &col(ColumnType::Bytes { max_len: None }))
            .expect("field");
        assert_eq!(String::from_utf8_lossy(&out), "a\\tb\\nc\\\\d\\r|\\N|\\\\x01");
    }

    #[test]
    fn nul_characters_are_refused() {
        let mut out = String::new();
        let e = write_literal(&mut out, &Value::Text("a\0b".into()), &col(ColumnType::Text { max_len: None }));
        assert!(e.is_err_and(|e| e.0.contains("NUL")));
    }

    #[test]
    fn mysql_types_map_to_postgres() {
        let t = |kind: ColumnType| target_type(&col(kind), SourceEngine::MySql, false);
        assert_eq!(t(ColumnType::Int { bytes: 8, unsigned: true }), "numeric(20,0)");
        assert_eq!(t(ColumnType::Int { bytes: 4, unsigned: true }), "bigint");
        assert_eq!(t(ColumnType::Int { bytes: 1, unsigned: true }), "smallint");
        assert_eq!(t(ColumnType::Decimal { precision: Some(65), scale: Some(30) }), "numeric(65,30)");
        assert_eq!(t(ColumnType::Json), "jsonb");
        assert_eq!(t(ColumnType::DateTime { fsp: 3 }), "timestamp(3)");
        assert_eq!(t(ColumnType::Time { fsp: 1 }), "interval");
        assert_eq!(t(ColumnType::Array { element: Box::new(ColumnType::Float) }), "real[]");
    }
}
