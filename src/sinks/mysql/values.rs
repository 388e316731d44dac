//! The MySQL/MariaDB side of the type mapping: which column type a source column becomes, and
//! how a [`Value`] is written as an SQL literal (the session runs with
//! `NO_BACKSLASH_ESCAPES`, so only quotes are doubled).

use std::fmt::Write;

use crate::format::debezium::civil_from_days;
use crate::model::value::{push_padded, write_bit_text, write_clock_text, write_uuid_text};
use crate::model::{Column, ColumnType, Value};
use crate::sinks::{LiteralError, SourceEngine};

/// The MySQL type of a column created for `column`. Key columns of text types become
/// `VARCHAR(255)`: MySQL cannot index `TEXT` without a prefix length.
pub fn target_type(column: &Column, engine: SourceEngine, is_key: bool) -> String {
    let my = engine == SourceEngine::MySql;
    let unsigned = |base: &str, u: bool| if u { format!("{base} UNSIGNED") } else { base.to_string() };
    match &column.kind {
        ColumnType::Bool => "BOOLEAN".into(),
        ColumnType::Int { bytes: 1, unsigned: u } => unsigned("TINYINT", *u),
        ColumnType::Int { bytes: 2, unsigned: u } => unsigned("SMALLINT", *u),
        ColumnType::Int { bytes: 3, unsigned: u } => unsigned("MEDIUMINT", *u),
        // PostgreSQL oid is unsigned 32-bit.
        ColumnType::Int { bytes: 4, unsigned: u } => unsigned("INT", *u),
        ColumnType::Int { unsigned: u, .. } => unsigned("BIGINT", *u),
        ColumnType::Float => "FLOAT".into(),
        ColumnType::Double => "DOUBLE".into(),
        ColumnType::Decimal { precision: Some(p), scale } if (1..=65).contains(p) => {
            format!("DECIMAL({p},{})", scale.unwrap_or(0).min(30))
        }
        // PostgreSQL numeric without a declared precision: the widest MySQL decimal.
        ColumnType::Decimal { .. } => "DECIMAL(65,30)".into(),
        ColumnType::Text { .. } if is_key => "VARCHAR(255)".into(),
        ColumnType::Text { max_len: Some(n) } if !my && *n <= 16_383 => match column.source_type.as_str() {
            "bpchar" => format!("CHAR({n})"),
            _ => format!("VARCHAR({n})"),
        },
        ColumnType::Text { .. } => "LONGTEXT".into(),
        ColumnType::Bytes { .. } if is_key => "VARBINARY(255)".into(),
        ColumnType::Bytes { .. } => "LONGBLOB".into(),
        ColumnType::Date => "DATE".into(),
        ColumnType::Time { fsp } => format!("TIME({fsp})"),
        // MySQL has no time with zone: kept as text (`13:00:00+05:30`).
        ColumnType::TimeTz { .. } => "VARCHAR(32)".into(),
        ColumnType::DateTime { fsp } => format!("DATETIME({fsp})"),
        // MySQL TIMESTAMP keeps its type; a PostgreSQL timestamptz becomes DATETIME in UTC
        // (MySQL TIMESTAMP ends in 2038).
        ColumnType::Timestamp { fsp } if my => format!("TIMESTAMP({fsp}) NULL"),
        ColumnType::Timestamp { fsp } => format!("DATETIME({fsp})"),
        ColumnType::Year => "YEAR".into(),
        ColumnType::Interval => "VARCHAR(64)".into(),
        ColumnType::Json => "JSON".into(),
        ColumnType::Uuid => "CHAR(36)".into(),
        ColumnType::Enum { values } if !values.is_empty() => format!("ENUM({})", quoted_list(values)),
        ColumnType::Set { values } if !values.is_empty() => format!("SET({})", quoted_list(values)),
        ColumnType::Enum { .. } | ColumnType::Set { .. } => "VARCHAR(255)".into(),
        ColumnType::Bit { len } if (1..=64).contains(len) => format!("BIT({len})"),
        // Longer bit strings (PostgreSQL varbit) as their 0/1 text.
        ColumnType::Bit { .. } => "VARCHAR(1024)".into(),
        // PostgreSQL arrays as JSON arrays.
        ColumnType::Array { .. } => "JSON".into(),
        ColumnType::Geometry if my => "GEOMETRY".into(),
        ColumnType::Geometry | ColumnType::Other => "LONGTEXT".into(),
    }
}

fn quoted_list(values: &[String]) -> String {
    values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(",")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Appends `value` as an SQL literal for `column`.
pub fn write_literal(out: &mut String, value: &Value, column: &Column) -> Result<(), LiteralError> {
    let bad = |why: &str| Err(LiteralError(format!("column {}: {why}", column.name)));
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Unchanged => return bad("no value (an unchanged TOAST value)"),
        Value::Bool(b) => out.push_str(if *b { "1" } else { "0" }),
        Value::Int(i) => {
            out.push_str(itoa::Buffer::new().format(*i));
        }
        Value::UInt(u) => {
            out.push_str(itoa::Buffer::new().format(*u));
        }
        Value::Float(f) if f.is_finite() => out.push_str(ryu::Buffer::new().format_finite(*f)),
        Value::Double(d) if d.is_finite() => out.push_str(ryu::Buffer::new().format_finite(*d)),
        Value::Float(_) | Value::Double(_) => return bad("NaN and infinities have no MySQL value"),
        Value::Decimal(d) if d.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') => out.push_str(d),
        Value::Decimal(d) => return bad(&format!("{d} has no MySQL DECIMAL value")),
        // MySQL zero dates; PostgreSQL ±infinity has no MySQL value.
        Value::Special(s) if s.starts_with("0000") => out.push_str(&quote(s)),
        Value::Special(s) => return bad(&format!("{s} has no MySQL value")),
        Value::Text(s) | Value::Enum(s) | Value::Json(s) => {
            if s.contains('\0') && matches!(column.kind, ColumnType::Json) {
                return bad("a NUL character in JSON");
            }
            out.push_str(&quote(s));
        }
        Value::Set(items) => out.push_str(&quote(&items.join(","))),
        Value::Bytes(b) => write_hex(out, b),
        Value::Geometry { wkb, srid } => {
            if matches!(column.kind, ColumnType::Geometry) && column.source_type != "point" {
                out.push_str("ST_GeomFromWKB(");
                write_hex(out, wkb);
                let _ = write!(out, ", {})", srid.unwrap_or(0));
            } else {
                write_hex(out, wkb);
            }
        }
        Value::Date(days) => {
            out.push('\'');
            write_date(out, i64::from(*days))?;
            out.push('\'');
        }
        Value::Time(micros) => {
            out.push('\'');
            write_clock_text(out, *micros);
            out.push('\'');
        }
        Value::TimeTz { micros, offset_secs } => {
            out.push('\'');
            write_clock_text(out, *micros);
            let o = offset_secs.unsigned_abs();
            let _ = write!(out, "{}{:02}:{:02}'", if *offset_secs < 0 { '-' } else { '+' }, o / 3600, o / 60 % 60);
        }
        Value::DateTime(micros) | Value::Timestamp(micros) => {
            out.push('\'');
            write_date(out, micros.div_euclid(86_400_000_000))?;
            out.push(' ');
            write_clock_text(out, micros.rem_euclid(86_400_000_000));
            out.push('\'');
        }
        Value::Interval { months, days, micros } => {
            let _ = write!(out, "'{months} mons {days} days {micros} microseconds'");
        }
        Value::Uuid(b) => {
            out.push('\'');
            write_uuid_text(out, b);
            out.push('\'');
        }
        Value::Bit { len, bytes } => {
            let mut bits = String::with_capacity(*len as usize);
            write_bit_text(&mut bits, *len, bytes);
            // A BIT column (see `target_type`) takes a bit literal; varbit's VARCHAR the text.
            if matches!(column.kind, ColumnType::Bit { len: 1..=64 }) {
                let _ = write!(out, "b'{bits}'");
            } else {
                out.push_str(&quote(&bits));
            }
        }
        Value::Array(items) => out.push_str(&quote(&json_array(items))),
    }
    Ok(())
}

/// How a column is given to `LOAD DATA`: its field as text, or as hex digits the statement
/// unhexes (arbitrary bytes are not text in the file's character set).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LoadColumn {
    Text,
    Hex,
}

/// How `column` goes through `LOAD DATA` into a target column of MySQL type `target_type`
/// (`information_schema.COLUMNS.DATA_TYPE`); `None` when it cannot: `LOAD DATA` stores a text
/// field into a BIT column as the bits of its characters, and geometries need a function.
pub fn load_column(column: &Column, target_type: &str) -> Option<LoadColumn> {
    const GEOMETRIES: [&str; 8] = [
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    ];
    if target_type.eq_ignore_ascii_case("bit") || GEOMETRIES.iter().any(|g| target_type.eq_ignore_ascii_case(g)) {
        return None;
    }
    match column.kind {
        ColumnType::Bytes { .. } => Some(LoadColumn::Hex),
        ColumnType::Geometry => None,
        _ => Some(LoadColumn::Text),
    }
}

/// Appends `value` as a `LOAD DATA` field (tab-separated, backslash escapes, `\N` for NULL).
/// `Ok(false)` when the value has no field form for this column (the row then goes as an
/// `INSERT`); errors are those of [`write_literal`]. `scratch` is a reusable buffer.
pub fn write_load_field(
    out: &mut String,
    scratch: &mut String,
    value: &Value,
    column: &Column,
    how: LoadColumn,
) -> Result<bool, LiteralError> {
    match (value, how) {
        (Value::Null, _) => out.push_str("\\N"),
        (Value::Bytes(b), LoadColumn::Hex) => crate::model::write_hex_digits(out, b),
        (_, LoadColumn::Hex) => return Ok(false),
        (Value::Int(i), _) => out.push_str(itoa::Buffer::new().format(*i)),
        (Value::UInt(u), _) => out.push_str(itoa::Buffer::new().format(*u)),
        (Value::Text(s) | Value::Enum(s), _) => push_load_escaped(out, s),
        _ => {
            // The text inside the literal MySQL would have read.
            scratch.clear();
            write_literal(scratch, value, column)?;
            match unquoted_literal(scratch) {
                Some(text) => push_load_escaped(out, &text),
                None => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// The text a MySQL column of a text type holds for `value` once written (`None` for NULL and
/// for values written as bytes or bits).
pub fn text_of(value: &Value, column: &Column) -> Option<String> {
    if matches!(value, Value::Null) {
        return None;
    }
    let mut literal = String::new();
    write_literal(&mut literal, value, column).ok()?;
    unquoted_literal(&literal).map(std::borrow::Cow::into_owned)
}

/// The string a literal of [`write_literal`] stands for: the inside of a quoted literal, a
/// number as it is; `None` for hex and bit literals and function calls.
fn unquoted_literal(literal: &str) -> Option<std::borrow::Cow<'_, str>> {
    if let Some(inner) = literal.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) {
        return Some(if inner.contains('\'') { inner.replace("''", "'").into() } else { inner.into() });
    }
    let number = literal.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    (number && !literal.is_empty()).then_some(literal.into())
}

/// `s` with the characters `LOAD DATA` reads specially escaped by a backslash.
fn push_load_escaped(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            b'\r' => "\\r",
            0 => "\\0",
            _ => continue,
        };
        // The bytes escaped are ASCII, so `i` is a character boundary.
        out.push_str(&s[start..i]);
        out.push_str(escaped);
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// A PostgreSQL array as a JSON array (nested for more dimensions).
fn json_array(items: &[Value]) -> String {
    let values: Vec<serde_json::Value> = items.iter().map(json_of).collect();
    serde_json::Value::Array(values).to_string()
}

fn json_of(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null | Value::Unchanged => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::UInt(u) => J::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(J::Null, J::Number),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::Array(items) => J::Array(items.iter().map(json_of).collect()),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::String(s.clone())),
        other => {
            let mut text = String::new();
            // Scalars as the text their literal carries.
            let column = Column {
                name: String::new(),
                source_type: String::new(),
                kind: ColumnType::Other,
                nullable: true,
                charset: None,
                existing_rows_value: None,
            };
            if write_literal(&mut text, other, &column).is_err() {
                return J::Null;
            }
            let unquoted = unquoted_literal(&text).map(std::borrow::Cow::into_owned);
            J::String(unquoted.unwrap_or(text))
        }
    }
}

fn write_hex(out: &mut String, bytes: &[u8]) {
    out.push_str("X'");
    crate::model::write_hex_digits(out, bytes);
    out.push('\'');
}

fn write_date(out: &mut String, days: i64) -> Result<(), LiteralError> {
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(LiteralError(format!("year {y} is outside MySQL's range (0–9999)")));
    }
    push_padded(out, y.unsigned_abs(), 4);
    out.push('-');
    push_padded(out, u64::from(m), 2);
    out.push('-');
    push_padded(out, u64::from(d), 2);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: ColumnType) -> Column {
        Column::new("c", "", kind, true)
    }

    fn lit(value: Value, kind: ColumnType) -> Result<String, String> {
        let mut out = String::new();
        write_literal(&mut out, &value, &col(kind)).map_err(|e| e.0)?;
        Ok(out)
    }

    #[test]
    fn literals_for_mysql() {
        assert_eq!(lit(Value::Text("it's \\".into()), ColumnType::Text { max_len: None }).unwrap(), "'it''s \\'");
        assert_eq!(lit(Value::Bytes(vec![0, 0xff]), ColumnType::Bytes { max_len: None }).unwrap(), "X'00ff'");
        assert_eq!(
            lit(Value::Timestamp(-1), ColumnType::Timestamp { fsp: 6 }).unwrap(),
            "'1969-12-31 23:59:59.999999'"
        );
        assert_eq!(lit(Value::Bit { len: 3, bytes: Box::new([5]) }, ColumnType::Bit { len: 3 }).unwrap(), "b'101'");
        // varbit (no length) is a VARCHAR of its text.
        assert_eq!(lit(Value::Bit { len: 3, bytes: Box::new([5]) }, ColumnType::Bit { len: 0 }).unwrap(), "'101'");
        let ints = ColumnType::Array { element: Box::new(ColumnType::Int { bytes: 4, unsigned: false }) };
        let v = Value::Array(vec![Value::Array(vec![Value::Int(1), Value::Null]), Value::Array(vec![])]);
        assert_eq!(lit(v, ints).unwrap(), "'[[1,null],[]]'");
        assert!(lit(Value::Double(f64::NAN), ColumnType::Double).unwrap_err().contains("NaN"));
        assert!(lit(Value::Date(-800_000), ColumnType::Date).unwrap_err().contains("outside"));
        assert!(lit(Value::Decimal("NaN".into()), ColumnType::Decimal { precision: None, scale: None }).is_err());
    }

    fn field(value: Value, kind: ColumnType) -> Result<Option<String>, String> {
        let column = col(kind);
        let target = if matches!(column.kind, ColumnType::Bit { len: 1..=64 }) { "bit" } else { "varchar" };
        let how = load_column(&column, target).ok_or("not loadable")?;
        let mut out = String::new();
        let written = write_load_field(&mut out, &mut String::new(), &value, &column, how).map_err(|e| e.0)?;
        Ok(written.then_some(out))
    }

    #[test]
    fn load_data_fields() {
        let text = ColumnType::Text { max_len: None };
        let f = |v: &str| field(Value::Text(v.into()), text.clone()).unwrap().unwrap();
        assert_eq!(f("a\tb\nc\rd\\e\0f 'g'"), "a\\tb\\nc\\rd\\\\e\\0f 'g'");
        assert_eq!(f("\\N"), "\\\\N");
        assert_eq!(f("NULL"), "NULL");
        assert_eq!(field(Value::Null, text.clone()).unwrap().unwrap(), "\\N");
        let bytes = ColumnType::Bytes { max_len: None };
        assert_eq!(field(Value::Bytes(vec![0, 9, 0x5c]), bytes.clone()).unwrap().unwrap(), "00095c");
        assert_eq!(field(Value::Text("x".into()), bytes).unwrap(), None, "text for a hex column goes as INSERT");
        assert_eq!(field(Value::Bytes(vec![1]), text.clone()).unwrap(), None, "X'01' has no field form");
        assert_eq!(
            field(Value::Json("{\"a\": \"it's\"}".into()), ColumnType::Json).unwrap().unwrap(),
            "{\"a\": \"it's\"}"
        );
        let dt = ColumnType::DateTime { fsp: 6 };
        assert_eq!(field(Value::DateTime(-1), dt).unwrap().unwrap(), "1969-12-31 23:59:59.999999");
        assert_eq!(field(Value::Double(-2.5e-300), ColumnType::Double).unwrap().unwrap(), "-2.5e-300");
        assert!(field(Value::Double(f64::NAN), ColumnType::Double).unwrap_err().contains("NaN"));
        let set = ColumnType::Set { values: vec!["x".into(), "y".into()] };
        assert_eq!(field(Value::Set(vec!["x".into(), "y".into()]), set).unwrap().unwrap(), "x,y");
        assert!(field(Value::Bit { len: 3, bytes: Box::new([5]) }, ColumnType::Bit { len: 3 }).is_err());
        assert_eq!(
            field(Value::Bit { len: 3, bytes: Box::new([5]) }, ColumnType::Bit { len: 0 }).unwrap().unwrap(),
            "101"
        );
    }

    #[test]
    fn postgres_types_map_to_mysql() {
        let t = |kind: ColumnType, key: bool| target_type(&col(kind), SourceEngine::Postgres, key);
        assert_eq!(t(ColumnType::Text { max_len: None }, true), "VARCHAR(255)");
        assert_eq!(t(ColumnType::Text { max_len: None }, false), "LONGTEXT");
        assert_eq!(t(ColumnType::Decimal { precision: None, scale: None }, false), "DECIMAL(65,30)");
        assert_eq!(t(ColumnType::Timestamp { fsp: 6 }, false), "DATETIME(6)");
        assert_eq!(t(ColumnType::Array { element: Box::new(ColumnType::Float) }, false), "JSON");
    }
}
