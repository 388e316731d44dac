//! Column character sets (by collation id) and their conversion to UTF-8.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb3 / utf8mb4: already UTF-8.
    Utf8,
    /// MySQL `latin1` is Windows-1252.
    Latin1,
    Ascii,
    /// `binary`: bytes, not text.
    Binary,
    Ucs2,
    Utf16,
    Utf16Le,
    Utf32,
}

impl Charset {
    pub fn from_collation(id: u16) -> Charset {
        match id {
            63 => Charset::Binary,
            5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
            11 | 65 => Charset::Ascii,
            35 | 90 | 128..=151 | 159 => Charset::Ucs2,
            54 | 55 | 101..=124 => Charset::Utf16,
            56 | 62 => Charset::Utf16Le,
            60 | 61 | 160..=183 => Charset::Utf32,
            // utf8mb3, utf8mb4 (incl. MySQL 8 and MariaDB uca1400 ids) and anything unknown:
            // decoded as UTF-8, invalid sequences replaced.
            _ => Charset::Utf8,
        }
    }

    /// From a character set name as `information_schema` or DDL spell it.
    pub fn from_name(name: &str) -> Charset {
        match name.to_ascii_lowercase().as_str() {
            "latin1" => Charset::Latin1,
            "ascii" => Charset::Ascii,
            "binary" => Charset::Binary,
            "ucs2" => Charset::Ucs2,
            "utf16" => Charset::Utf16,
            "utf16le" => Charset::Utf16Le,
            "utf32" => Charset::Utf32,
            _ => Charset::Utf8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf8mb4",
            Charset::Latin1 => "latin1",
            Charset::Ascii => "ascii",
            Charset::Binary => "binary",
            Charset::Ucs2 => "ucs2",
            Charset::Utf16 => "utf16",
            Charset::Utf16Le => "utf16le",
            Charset::Utf32 => "utf32",
        }
    }

    /// Converts column bytes to a UTF-8 string.
    pub fn decode(self, bytes: &[u8]) -> String {
        if bytes.is_ascii() && !matches!(self, Charset::Ucs2 | Charset::Utf16 | Charset::Utf16Le | Charset::Utf32) {
            // ASCII is the same in every single-byte and UTF-8 charset: one copy, no per-char work.
            return String::from_utf8(bytes.to_vec()).unwrap_or_default();
        }
        match self {
            Charset::Utf8 | Charset::Ascii | Charset::Binary => match std::str::from_utf8(bytes) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(bytes).into_owned(),
            },
            Charset::Latin1 => bytes.iter().map(|&b| cp1252(b)).collect(),
            Charset::Ucs2 | Charset::Utf16 => {
                let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                String::from_utf16_lossy(&units)
            }
            Charset::Utf16Le => {
                let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
                String::from_utf16_lossy(&units)
            }
            Charset::Utf32 => bytes
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}'))
                .collect(),
        }
    }
}

fn cp1252(b: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D,
        0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match b {
        0x80..=0x9f => char::from_u32(HIGH[(b - 0x80) as usize] as u32).unwrap_or('\u{fffd}'),
        _ => b as char,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_cp1252() {
        assert_eq!(Charset::from_collation(8).decode(b"caf\xe9 \x80"), "café €");
        assert_eq!(Charset::from_collation(45).decode("😀".as_bytes()), "😀");
        assert_eq!(Charset::from_collation(63), Charset::Binary);
    }
}
