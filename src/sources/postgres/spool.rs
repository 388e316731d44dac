//! In-progress transactions the server streams before their commit (pgoutput `streaming`),
//! kept on local disk until their Stream Commit and dropped on Stream Abort, so a transaction
//! larger than memory passes through in bounded RAM.
//!
//! One file per open top-level transaction, holding its pgoutput messages as received
//! (`lsn u64 LE, length u32 LE, bytes`). A rolled-back subtransaction is cut off the end of
//! the file, as PostgreSQL's own apply worker does: the first offset of each subtransaction's
//! changes is remembered, and a subtransaction's abort truncates at it. Relation and Type
//! messages in the cut part are kept: the server does not send them again for the same stream.
//!
//! Nothing here survives a restart: after one, the server streams open transactions again from
//! their beginning, so leftover files are removed when the spool is first used.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::CdcError;

const HEADER: usize = 12;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Leftovers of an earlier run removed, directory created.
    ready: bool,
    open: HashMap<u32, SpooledTx>,
}

struct SpooledTx {
    path: PathBuf,
    file: BufWriter<File>,
    len: u64,
    /// (subtransaction id, offset of its first message), in order of first appearance.
    subxacts: Vec<(u32, u64)>,
}

impl Spool {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Spool {
        Spool { dir, max_bytes, ready: false, open: HashMap::new() }
    }

    /// Bytes held for transactions not committed or aborted yet.
    pub fn bytes(&self) -> u64 {
        self.open.values().map(|t| t.len).sum()
    }

    /// Appends one message of the in-progress transaction `xid`. `message` is the pgoutput
    /// message as streamed: tag, then the (sub)transaction id.
    pub fn append(&mut self, xid: u32, lsn: u64, message: &[u8]) -> Result<(), CdcError> {
        let total = self.bytes() + (HEADER + message.len()) as u64;
        if total > self.max_bytes {
            return Err(CdcError::definite(
                format!(
                    "in-progress transaction {xid} needs more than the {} MB of local spool allowed in {}",
                    self.max_bytes >> 20,
                    self.dir.display()
                ),
                "raise source.spool_max_mb (with room on that disk), or set source.streaming = false so the server keeps large transactions until they commit",
            ));
        }
        if !self.open.contains_key(&xid) {
            self.prepare_dir()?;
            let path = self.dir.join(format!("{xid}.spool"));
            let file = File::create(&path).map_err(|e| spool_error(&path, e))?;
            self.open.insert(
                xid,
                SpooledTx { path, file: BufWriter::with_capacity(1 << 16, file), len: 0, subxacts: Vec::new() },
            );
        }
        let Some(tx) = self.open.get_mut(&xid) else { return Ok(()) };
        if let Some(subxid) = message.get(1..5).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            && !tx.subxacts.iter().any(|(s, _)| *s == subxid)
        {
            tx.subxacts.push((subxid, tx.len));
        }
        tx.write(lsn, message)
    }

    /// Stream Abort: the whole transaction when `subxid == xid`, else that subtransaction and
    /// everything streamed after its first change.
    pub fn abort(&mut self, xid: u32, subxid: u32) -> Result<(), CdcError> {
        if xid == subxid {
            if let Some(tx) = self.open.remove(&xid) {
                remove(&tx.path);
            }
            return Ok(());
        }
        let Some(tx) = self.open.get_mut(&xid) else { return Ok(()) };
        let Some(i) = tx.subxacts.iter().position(|(s, _)| *s == subxid) else { return Ok(()) };
        let cut = tx.subxacts[i].1;
        tx.subxacts.truncate(i);
        tx.file.flush().map_err(|e| spool_error(&tx.path, e))?;
        let mut kept = Vec::new();
        let mut reader = SpoolReader::open(&tx.path, cut)?;
        while let Some((lsn, message)) = reader.next()? {
            if matches!(message.first(), Some(b'R' | b'Y')) {
                kept.push((lsn, message.to_vec()));
            }
        }
        let file = tx.file.get_mut();
        file.set_len(cut).map_err(|e| spool_error(&tx.path, e))?;
        file.seek(SeekFrom::Start(cut)).map_err(|e| spool_error(&tx.path, e))?;
        tx.len = cut;
        for (lsn, message) in kept {
            tx.write(lsn, &message)?;
        }
        Ok(())
    }

    /// Stream Commit: the transaction's messages in the order they were streamed (`None` when
    /// nothing of it was spooled). The file is removed when the reader is dropped.
    pub fn take(&mut self, xid: u32) -> Result<Option<SpoolReader>, CdcError> {
        let Some(mut tx) = self.open.remove(&xid) else { return Ok(None) };
        tx.file.flush().map_err(|e| spool_error(&tx.path, e))?;
        SpoolReader::open(&tx.path, 0).map(Some)
    }

    fn prepare_dir(&mut self) -> Result<(), CdcError> {
        if self.ready {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| spool_error(&self.dir, e))?;
        let entries = std::fs::read_dir(&self.dir).map_err(|e| spool_error(&self.dir, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "spool") {
                remove(&path);
            }
        }
        self.ready = true;
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        for tx in self.open.values() {
            remove(&tx.path);
        }
    }
}

impl SpooledTx {
    fn write(&mut self, lsn: u64, message: &[u8]) -> Result<(), CdcError> {
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(&lsn.to_le_bytes());
        header[8..].copy_from_slice(&(message.len() as u32).to_le_bytes());
        self.file
            .write_all(&header)
            .and_then(|_| self.file.write_all(message))
            .map_err(|e| spool_error(&self.path, e))?;
        self.len += (HEADER + message.len()) as u64;
        Ok(())
    }
}

/// Reads a spooled transaction back, one message at a time.
pub struct SpoolReader {
    path: PathBuf,
    file: BufReader<File>,
    message: Vec<u8>,
    /// Removes the file when done (a committed transaction's spool).
    remove_when_done: bool,
}

impl SpoolReader {
    fn open(path: &Path, from: u64) -> Result<SpoolReader, CdcError> {
        let mut file = OpenOptions::new().read(true).open(path).map_err(|e| spool_error(path, e))?;
        file.seek(SeekFrom::Start(from)).map_err(|e| spool_error(path, e))?;
        Ok(SpoolReader {
            path: path.to_path_buf(),
            file: BufReader::with_capacity(1 << 16, file),
            message: Vec::new(),
            remove_when_done: from == 0,
        })
    }

    /// The next message and the LSN it was streamed at; `None` at the end.
    pub fn next(&mut self) -> Result<Option<(u64, &[u8])>, CdcError> {
        let mut header = [0u8; HEADER];
        match self.file.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(spool_error(&self.path, e)),
        }
        let lsn = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(header[8..].try_into().unwrap_or_default()) as usize;
        self.message.resize(len, 0);
        self.file.read_exact(&mut self.message).map_err(|e| spool_error(&self.path, e))?;
        Ok(Some((lsn, &self.message)))
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        if self.remove_when_done {
            remove(&self.path);
        }
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "Cannot remove a spool file");
    }
}

fn spool_error(path: &Path, e: std::io::Error) -> CdcError {
    CdcError::definite(
        format!("cannot use the spool for in-progress transactions at {}: {e}", path.display()),
        "make source.spool_dir point to a writable directory with free space, or set source.streaming = false",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed change: tag, (sub)transaction id, payload.
    fn msg(tag: u8, xid: u32, payload: &str) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&xid.to_be_bytes());
        m.extend_from_slice(payload.as_bytes());
        m
    }

    fn read_all(spool: &mut Spool, xid: u32) -> Vec<(u64, Vec<u8>)> {
        let mut r = spool.take(xid).unwrap().unwrap();
        let mut out = Vec::new();
        while let Some((lsn, m)) = r.next().unwrap() {
            out.push((lsn, m.to_vec()));
        }
        out
    }

    #[test]
    fn committed_transaction_comes_back_in_order_and_its_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path().join("s"), 1 << 20);
        spool.append(7, 10, &msg(b'I', 7, "a")).unwrap();
        spool.append(8, 11, &msg(b'I', 8, "other")).unwrap();
        spool.append(7, 12, &msg(b'I', 7, "b")).unwrap();
        assert_eq!(spool.bytes(), 3 * 12 + 6 + 6 + 10);
        assert_eq!(read_all(&mut spool, 7), vec![(10, msg(b'I', 7, "a")), (12, msg(b'I', 7, "b"))]);
        assert!(!dir.path().join("s/7.spool").exists());
        assert!(spool.take(7).unwrap().is_none());
        spool.abort(8, 8).unwrap();
        assert!(!dir.path().join("s/8.spool").exists());
        assert_eq!(spool.bytes(), 0);
    }

    #[test]
    fn aborted_subtransaction_is_cut_but_its_relation_messages_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path().to_path_buf(), 1 << 20);
        spool.append(5, 1, &msg(b'I', 5, "top")).unwrap();
        spool.append(5, 2, &msg(b'R', 6, "rel")).unwrap();
        spool.append(5, 3, &msg(b'I', 6, "sub")).unwrap();
        spool.append(5, 4, &msg(b'I', 9, "nested")).unwrap();
        spool.abort(5, 6).unwrap();
        spool.append(5, 5, &msg(b'I', 5, "after")).unwrap();
        spool.abort(5, 42).unwrap(); // a subtransaction with no changes
        assert_eq!(
            read_all(&mut spool, 5),
            vec![(1, msg(b'I', 5, "top")), (2, msg(b'R', 6, "rel")), (5, msg(b'I', 5, "after"))]
        );
    }

    #[test]
    fn over_the_limit_is_a_definite_error_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path().to_path_buf(), 40);
        spool.append(1, 1, &msg(b'I', 1, "0123456789")).unwrap();
        let e = spool.append(1, 2, &msg(b'I', 1, "0123456789")).unwrap_err();
        assert!(!e.is_transient());
        assert!(e.to_string().contains("source.spool_max_mb"), "{e}");
    }

    #[test]
    fn leftovers_of_an_earlier_run_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("99.spool"), b"old").unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"not ours").unwrap();
        let mut spool = Spool::new(dir.path().to_path_buf(), 1 << 20);
        spool.append(1, 1, &msg(b'I', 1, "x")).unwrap();
        assert!(!dir.path().join("99.spool").exists());
        assert!(dir.path().join("keep.txt").exists());
    }
}
