//! pgoutput logical replication messages (protocol versions 1–4), decoded without copying
//! tuple data until a value is converted.

use crate::sources::reader::{DecodeError, Reader, malformed};

/// One column of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue<'a> {
    Null,
    /// An unchanged TOASTed value the server did not send.
    Unchanged,
    Text(&'a [u8]),
    Binary(&'a [u8]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (key).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PgMessage<'a> {
    Begin {
        final_lsn: u64,
        commit_ts_us: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        commit_ts_us: i64,
    },
    Origin,
    Relation(Relation),
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Vec<TupleValue<'a>>,
    },
    /// `old` is the key (`K`) or the whole old row (`O`, REPLICA IDENTITY FULL) when sent.
    Update {
        relation: u32,
        old: Option<(u8, Vec<TupleValue<'a>>)>,
        new: Vec<TupleValue<'a>>,
    },
    Delete {
        relation: u32,
        old: (u8, Vec<TupleValue<'a>>),
    },
    Truncate {
        relations: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
    Message {
        transactional: bool,
        lsn: u64,
        prefix: String,
        content: &'a [u8],
    },
    StreamStart {
        xid: u32,
        first: bool,
    },
    StreamStop,
    StreamCommit {
        xid: u32,
        commit_lsn: u64,
        end_lsn: u64,
        commit_ts_us: i64,
    },
    StreamAbort {
        xid: u32,
        subxid: u32,
    },
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

fn cstr(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let rest = r.rest_peek();
    let end = rest.iter().position(|b| *b == 0).ok_or_else(|| malformed("unterminated string"))?;
    let s = String::from_utf8_lossy(&rest[..end]).into_owned();
    r.bytes(end + 1)?;
    Ok(s)
}

fn i64_be(r: &mut Reader<'_>) -> Result<i64, DecodeError> {
    Ok(r.uint_be(8)? as i64)
}

fn tuple<'a>(r: &mut Reader<'a>) -> Result<Vec<TupleValue<'a>>, DecodeError> {
    let n = r.uint_be(2)? as usize;
    let mut out = Vec::with_capacity(n);
    // Each arm pushes its own value (a value built first and then moved stalls per column).
    for _ in 0..n {
        match r.u8()? {
            b'n' => out.push(TupleValue::Null),
            b'u' => out.push(TupleValue::Unchanged),
            b't' => {
                let len = r.uint_be(4)? as usize;
                out.push(TupleValue::Text(r.bytes(len)?))
            }
            b'b' => {
                let len = r.uint_be(4)? as usize;
                out.push(TupleValue::Binary(r.bytes(len)?))
            }
            other => return Err(malformed(format!("unknown tuple column kind {:?}", other as char))),
        }
    }
    Ok(out)
}

/// Decodes one pgoutput message. `in_stream`: inside Stream Start/Stop, where data messages
/// carry the transaction id first.
pub fn decode(data: &[u8], in_stream: bool) -> Result<PgMessage<'_>, DecodeError> {
    let mut r = Reader::new(data);
    let tag = r.u8()?;
    let skip_xid = |r: &mut Reader<'_>| -> Result<(), DecodeError> {
        if in_stream {
            r.bytes(4)?;
        }
        Ok(())
    };
    Ok(match tag {
        b'B' => PgMessage::Begin { final_lsn: r.uint_be(8)?, commit_ts_us: i64_be(&mut r)?, xid: r.uint_be(4)? as u32 },
        b'C' => {
            r.u8()?;
            PgMessage::Commit { commit_lsn: r.uint_be(8)?, end_lsn: r.uint_be(8)?, commit_ts_us: i64_be(&mut r)? }
        }
        b'O' => PgMessage::Origin,
        b'R' => {
            skip_xid(&mut r)?;
            let oid = r.uint_be(4)? as u32;
            let namespace = cstr(&mut r)?;
            let name = cstr(&mut r)?;
            let replica_identity = r.u8()?;
            let n = r.uint_be(2)? as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let flags = r.u8()?;
                let name = cstr(&mut r)?;
                let type_oid = r.uint_be(4)? as u32;
                let type_modifier = r.uint_be(4)? as u32 as i32;
                columns.push(RelationColumn { key: flags & 1 != 0, name, type_oid, type_modifier });
            }
            PgMessage::Relation(Relation { oid, namespace, name, replica_identity, columns })
        }
        b'Y' => {
            skip_xid(&mut r)?;
            let oid = r.uint_be(4)? as u32;
            PgMessage::Type { oid, namespace: cstr(&mut r)?, name: cstr(&mut r)? }
        }
        b'I' => {
            skip_xid(&mut r)?;
            let relation = r.uint_be(4)? as u32;
            if r.u8()? != b'N' {
                return Err(malformed("Insert without a new tuple"));
            }
            PgMessage::Insert { relation, new: tuple(&mut r)? }
        }
        b'U' => {
            skip_xid(&mut r)?;
            let relation = r.uint_be(4)? as u32;
            let mut kind = r.u8()?;
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some((kind, tuple(&mut r)?));
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(malformed("Update without a new tuple"));
            }
            PgMessage::Update { relation, old, new: tuple(&mut r)? }
        }
        b'D' => {
            skip_xid(&mut r)?;
            let relation = r.uint_be(4)? as u32;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(malformed("Delete without an old tuple"));
            }
            PgMessage::Delete { relation, old: (kind, tuple(&mut r)?) }
        }
        b'T' => {
            skip_xid(&mut r)?;
            let n = r.uint_be(4)? as usize;
            let options = r.u8()?;
            let mut relations = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                relations.push(r.uint_be(4)? as u32);
            }
            PgMessage::Truncate { relations, cascade: options & 1 != 0, restart_identity: options & 2 != 0 }
        }
        b'M' => {
            skip_xid(&mut r)?;
            let flags = r.u8()?;
            let lsn = r.uint_be(8)?;
            let prefix = cstr(&mut r)?;
            let len = r.uint_be(4)? as usize;
            PgMessage::Message { transactional: flags & 1 != 0, lsn, prefix, content: r.bytes(len)? }
        }
        b'S' => PgMessage::StreamStart { xid: r.uint_be(4)? as u32, first: r.u8()? == 1 },
        b'E' => PgMessage::StreamStop,
        b'c' => {
            let xid = r.uint_be(4)? as u32;
            r.u8()?;
            PgMessage::StreamCommit {
                xid,
                commit_lsn: r.uint_be(8)?,
                end_lsn: r.uint_be(8)?,
                commit_ts_us: i64_be(&mut r)?,
            }
        }
        b'A' => PgMessage::StreamAbort { xid: r.uint_be(4)? as u32, subxid: r.uint_be(4)? as u32 },
        other => return Err(malformed(format!("unknown pgoutput message {:?}", other as char))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arbitrary bytes are an error or a message, never a panic.
    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let tags = b"BCORYIUDTMSEcA";
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut msg: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = msg.first_mut() {
                *first = tags[(next() % tags.len() as u64) as usize];
            }
            let _ = decode(&msg, next() % 2 == 0);
        }
    }
}
