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
    if micros < 0 {
        out.push('-');
    }
    let m = micros.unsigned_abs();
    let secs = m / 1_000_000;
    push_padded(out, secs / 3600, 2);
    out.push(':');
    push_padded(out, secs / 60 % 60, 2);
    out.push(':');
    push_padded(out, secs % 60, 2);
    if !m.is_multiple_of(1_000_000) {
        out.push('.');
        push_padded(out, m % 1_000_000, 6);
    }
}

/// `n` in decimal with leading zeros up to `width` digits (more digits when `n` needs them).
/// Without `fmt`: dates and times are written for every row, and `write!` costs several
/// times more.
pub fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_text_pads_each_field_and_keeps_long_hours_and_signs() {
        let text = |micros: i64| {
            let mut s = String::new();
            write_clock_text(&mut s, micros);
            s
        };
        assert_eq!(text(0), "00:00:00");
        assert_eq!(text(86_400_000_000), "24:00:00");
        assert_eq!(text(1), "00:00:00.000001");
        assert_eq!(text(-(838 * 3_600_000_000 + 59 * 60_000_000 + 59_000_000 + 120_000)), "-838:59:59.120000");
        let mut s = String::new();
        push_padded(&mut s, 7, 4);
        push_padded(&mut s, 12345, 4);
        assert_eq!(s, "000712345");
    }
}
