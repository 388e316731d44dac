//! Typed column values, independent of the source engine and of the output encoding.

/// One column value. Temporal values are kept as integers (the form Debezium emits) so no
/// calendar library sits on the hot path; the column's [`ColumnType`](super::ColumnType)
/// says how to present them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal as text: optional `-`, digits, optional `.` and digits (no exponent).
    /// PostgreSQL's `NaN`, `Infinity` and `-Infinity` are kept as those words.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01 (negative before).
    Date(i32),
    /// Time of day or duration in microseconds; MySQL TIME may be negative or over 24 h.
    Time(i64),
    /// Time of day with a UTC offset (PostgreSQL timetz): microseconds and offset in seconds east of UTC.
    TimeTz {
        micros: i64,
        offset_secs: i32,
    },
    /// A wall-clock date and time without zone (MySQL DATETIME, PostgreSQL timestamp),
    /// in microseconds since 1970-01-01T00:00:00.
    DateTime(i64),
    /// An instant (MySQL TIMESTAMP, PostgreSQL timestamptz), microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// PostgreSQL interval.
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    /// JSON document as text.
    Json(String),
    Uuid([u8; 16]),
    Enum(String),
    Set(Vec<String>),
    /// A bit string of `len` bits: its value as a big-endian unsigned number (the last bit of
    /// the string is the lowest bit of the last byte).
    Bit {
        len: u32,
        /// Boxed slices here and in `Geometry` keep `Value` at 32 bytes (rows are vectors of it).
        bytes: Box<[u8]>,
    },
    Array(Vec<Value>),
    /// Well-known binary and spatial reference id.
    Geometry {
        wkb: Box<[u8]>,
        srid: Option<u32>,
    },
    /// A value the source did not send because it did not change (PostgreSQL TOAST).
    Unchanged,
    /// A value with no valid representation in the target model (MySQL zero dates,
    /// PostgreSQL ±infinity timestamps); kept as the source's text.
    Special(String),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Lowercase hex digits of `bytes`, two a byte.
pub fn write_hex_digits(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

/// `8-4-4-4-12` lowercase hex, the text form of a UUID on every engine.
pub fn write_uuid_text(out: &mut String, bytes: &[u8; 16]) {
    use std::fmt::Write;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
}

/// The `0`/`1` text of a [`Value::Bit`]: `len` bits, the last one the lowest bit of `bytes`.
pub fn write_bit_text(out: &mut String, len: u32, bytes: &[u8]) {
    for i in (0..len as usize).rev() {
        let byte = bytes.len().checked_sub(1 + i / 8).and_then(|at| bytes.get(at)).copied().unwrap_or(0);
        out.push(if byte >> (i % 8) & 1 == 1 { '1' } else { '0' });
    }
}

/// `HH:MM:SS[.ffffff]` of a time of day or a duration in microseconds; a negative or longer
/// than a day one keeps its sign and hours (`-838:59:59`).
pub fn write_clock_text(out: &mut String, micros: i64) {
    use std::fmt::Write;
    if micros < 0 {
        out.push('-');
    }
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    let _ = write!(out, "{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if !m.is_multiple_of(1_000_000) {
        let _ = write!(out, ".{:06}", m % 1_000_000);
    }
}
