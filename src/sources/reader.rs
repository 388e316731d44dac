//! A bounds-checked little reader over event bytes: every read past the end is an error,
//! never a panic, so a truncated or corrupt event cannot crash the process.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

pub fn malformed(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub fn rest_peek(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let r = &self.buf[self.pos..];
        self.pos = self.buf.len();
        r
    }

    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(malformed(format!("need {n} bytes at offset {}, only {} left", self.pos, self.remaining())));
        }
        let r = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(r)
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    /// Little-endian unsigned integer of `n` bytes (1..=8).
    #[inline]
    pub fn uint_le(&mut self, n: usize) -> Result<u64, DecodeError> {
        let b = self.bytes(n)?;
        let mut v = 0u64;
        for (i, byte) in b.iter().enumerate() {
            v |= (*byte as u64) << (8 * i);
        }
        Ok(v)
    }

    /// Big-endian unsigned integer of `n` bytes (1..=8).
    #[inline]
    pub fn uint_be(&mut self, n: usize) -> Result<u64, DecodeError> {
        let b = self.bytes(n)?;
        Ok(b.iter().fold(0u64, |v, byte| (v << 8) | *byte as u64))
    }

    /// MySQL length-encoded integer.
    pub fn lenenc(&mut self) -> Result<u64, DecodeError> {
        match self.u8()? {
            n @ 0..=250 => Ok(n as u64),
            0xfc => self.uint_le(2),
            0xfd => self.uint_le(3),
            0xfe => self.uint_le(8),
            other => Err(malformed(format!("invalid length-encoded integer prefix 0x{other:02x}"))),
        }
    }

    pub fn lenenc_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.lenenc()?;
        self.bytes(usize::try_from(n).map_err(|_| malformed("length too large"))?)
    }
}
