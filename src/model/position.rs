//! Source positions: where a change was read, and where to resume.
//!
//! Text forms (stable: they are stored on disk and accepted by `--from`):
//!
//! | form | meaning |
//! | --- | --- |
//! | `mysql:gtid=3e11fa47-71ca-11e1-9e33-c80aa9429562:1-42` | MySQL GTID set (executed so far) |
//! | `mysql:gtid=0-1-100,1-2-7` | MariaDB GTID list |
//! | `mysql:file=binlog.000003:pos=1547` | binlog coordinates (next event to read) |
//! | `mysql:file=binlog.000003:pos=1547:gtid=…` | both; GTID is used to resume when present |
//! | `pg:lsn=0/16B3748` | PostgreSQL LSN (everything before it is processed) |
//! | `pg:lsn=0/16B3748:tx_lsn=0/16B3700` | …with the start LSN of the transaction |
//! | `…;snapshot={"table":["shop","orders"],"after":["3432"]}` | an initial snapshot taken at that position, delivered up to there (key values in hex) |

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::gtid::GtidSet;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PositionError {
    #[error("malformed position: {0}")]
    Malformed(String),
    #[error("positions cannot be compared: {0}")]
    Incomparable(String),
}

/// A point in one source's change history, totally ordered within one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    MySql(MySqlPosition),
    Postgres(PgPosition),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MySqlPosition {
    /// Transactions executed up to here (resume point when set).
    pub gtid_set: Option<GtidSet>,
    /// Binlog coordinates of the next event to read.
    pub binlog: Option<BinlogCoordinates>,
    /// Set while the initial snapshot taken here is still being delivered.
    pub snapshot: Option<SnapshotProgress>,
}

/// How far an initial snapshot got: the tables before `table` (in snapshot order) are
/// delivered, and of `table` the rows up to primary key `after` (`None`: none of it yet, or a
/// table without a key, which is read again whole). Tables after it that were read at the same
/// time (several connections) are in `also`. The position it belongs to is where the snapshot
/// was taken: streaming starts there once the snapshot is complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// Namespace (database or schema) and name.
    pub table: (String, String),
    /// Key column values in the source's text form, hex-encoded (binary keys stay exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<String>>,
    /// Tables after `table` in snapshot order that are started or done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<TableProgress>,
}

/// How far one table after the first unfinished one got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    pub table: (String, String),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

impl TableProgress {
    pub fn new(table: &super::TableId, after: Option<&[Vec<u8>]>, done: bool) -> TableProgress {
        TableProgress { table: names(table), after: after.map(hex_key), done }
    }

    /// The key values after which the table's read goes on, as bytes.
    pub fn after_key(&self) -> Option<Vec<Vec<u8>>> {
        self.after.as_deref().map(unhex_key)
    }
}

impl SnapshotProgress {
    pub fn new(table: &super::TableId, after: Option<&[Vec<u8>]>) -> SnapshotProgress {
        SnapshotProgress { table: names(table), after: after.map(hex_key), also: Vec::new() }
    }

    /// The key values after which the snapshot goes on, as bytes.
    pub fn after_key(&self) -> Option<Vec<Vec<u8>>> {
        self.after.as_deref().map(unhex_key)
    }

    /// Whether `table` is being read and not finished (tables not started yet are not).
    pub fn is_reading(&self, table: &super::TableId) -> bool {
        let is = |t: &(String, String)| *t.0 == *table.namespace && *t.1 == *table.name;
        is(&self.table) || self.also.iter().any(|t| !t.done && is(&t.table))
    }
}

fn names(table: &super::TableId) -> (String, String) {
    (table.namespace.to_string(), table.name.to_string())
}

fn hex_key(key: &[Vec<u8>]) -> Vec<String> {
    key.iter().map(|v| hex(v)).collect()
}

fn unhex_key(key: &[String]) -> Vec<Vec<u8>> {
    key.iter().map(|v| unhex(v).unwrap_or_default()).collect()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Within one source position, a snapshot still being delivered comes before its end.
fn snapshot_order(a: &Option<SnapshotProgress>, b: &Option<SnapshotProgress>) -> Ordering {
    match (a, b) {
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinlogCoordinates {
    pub file: String,
    pub pos: u64,
}

impl BinlogCoordinates {
    /// Binlog files are `<base>.<number>`; order is by number within one base name.
    fn split(&self) -> Option<(&str, u64)> {
        let (base, num) = self.file.rsplit_once('.')?;
        Some((base, num.parse().ok()?))
    }

    pub fn compare(&self, other: &BinlogCoordinates) -> Result<Ordering, PositionError> {
        if self.file == other.file {
            return Ok(self.pos.cmp(&other.pos));
        }
        match (self.split(), other.split()) {
            (Some((b1, n1)), Some((b2, n2))) if b1 == b2 => Ok(n1.cmp(&n2).then(self.pos.cmp(&other.pos))),
            _ => Err(PositionError::Incomparable(format!(
                "binlog files `{}` and `{}` do not belong to one series",
                self.file, other.file
            ))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgPosition {
    pub lsn: Lsn,
    /// Start LSN of the transaction the position lies in, when known.
    pub tx_lsn: Option<Lsn>,
    /// Set while the initial snapshot taken here is still being delivered.
    pub snapshot: Option<SnapshotProgress>,
}

/// A PostgreSQL write-ahead-log position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl FromStr for Lsn {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PositionError::Malformed(format!("`{text}` is not an LSN (expected X/Y in hex)"));
        let (hi, lo) = text.split_once('/').ok_or_else(bad)?;
        if hi.is_empty() || lo.is_empty() || hi.len() > 8 || lo.len() > 8 {
            return Err(bad());
        }
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl Position {
    /// Progress of an initial snapshot still being delivered at this position.
    pub fn snapshot_progress(&self) -> Option<&SnapshotProgress> {
        match self {
            Position::MySql(p) => p.snapshot.as_ref(),
            Position::Postgres(p) => p.snapshot.as_ref(),
        }
    }

    /// The same position with the snapshot progress `progress`.
    pub fn with_snapshot(&self, progress: Option<SnapshotProgress>) -> Position {
        let mut p = self.clone();
        match &mut p {
            Position::MySql(m) => m.snapshot = progress,
            Position::Postgres(g) => g.snapshot = progress,
        }
        p
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Position::MySql(_) => "mysql",
            Position::Postgres(_) => "pg",
        }
    }

    /// Orders two positions of the same source. Positions of different engines, GTID sets
    /// of which neither contains the other, or files of different series are an error.
    pub fn compare(&self, other: &Position) -> Result<Ordering, PositionError> {
        match (self, other) {
            (Position::Postgres(a), Position::Postgres(b)) => {
                Ok(a.lsn.cmp(&b.lsn).then_with(|| snapshot_order(&a.snapshot, &b.snapshot)))
            }
            (Position::MySql(a), Position::MySql(b)) => a.compare(b),
            _ => Err(PositionError::Incomparable(format!(
                "a {} position and a {} position",
                self.engine(),
                other.engine()
            ))),
        }
    }
}

impl MySqlPosition {
    pub fn compare(&self, other: &MySqlPosition) -> Result<Ordering, PositionError> {
        Ok(self.compare_log(other)?.then_with(|| snapshot_order(&self.snapshot, &other.snapshot)))
    }

    fn compare_log(&self, other: &MySqlPosition) -> Result<Ordering, PositionError> {
        if let (Some(a), Some(b)) = (&self.gtid_set, &other.gtid_set) {
            return match (a.contains(b)?, b.contains(a)?) {
                (true, true) => Ok(match (&self.binlog, &other.binlog) {
                    (Some(x), Some(y)) => x.compare(y).unwrap_or(Ordering::Equal),
                    _ => Ordering::Equal,
                }),
                (true, false) => Ok(Ordering::Greater),
                (false, true) => Ok(Ordering::Less),
                (false, false) => Err(PositionError::Incomparable(format!(
                    "GTID sets `{a}` and `{b}` have diverged (neither contains the other)"
                ))),
            };
        }
        match (&self.binlog, &other.binlog) {
            (Some(a), Some(b)) => a.compare(b),
            _ => Err(PositionError::Incomparable(
                "one MySQL position has only a GTID set, the other only binlog coordinates".into(),
            )),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::MySql(p) => {
                f.write_str("mysql:")?;
                if let Some(b) = &p.binlog {
                    write!(f, "file={}:pos={}", b.file, b.pos)?;
                    if p.gtid_set.is_some() {
                        f.write_str(":")?;
                    }
                }
                if let Some(g) = &p.gtid_set {
                    write!(f, "gtid={g}")?;
                }
            }
            Position::Postgres(p) => {
                write!(f, "pg:lsn={}", p.lsn)?;
                if let Some(tx) = p.tx_lsn {
                    write!(f, ":tx_lsn={tx}")?;
                }
            }
        }
        if let Some(progress) = self.snapshot_progress() {
            let json = serde_json::to_string(progress).map_err(|_| fmt::Error)?;
            write!(f, "{SNAPSHOT_MARK}{json}")?;
        }
        Ok(())
    }
}

impl FromStr for Position {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (text, progress) = match text.split_once(SNAPSHOT_MARK) {
            Some((base, json)) => {
                let progress: SnapshotProgress = serde_json::from_str(json)
                    .map_err(|e| PositionError::Malformed(format!("snapshot progress `{json}`: {e}")))?;
                let keys = progress.also.iter().map(|t| &t.after).chain([&progress.after]);
                if keys.flatten().flatten().any(|v| unhex(v).is_none()) {
                    return Err(PositionError::Malformed(format!("snapshot progress `{json}`: key values are hex")));
                }
                (base, Some(progress))
            }
            None => (text, None),
        };
        if let Some(rest) = text.strip_prefix("mysql:") {
            return parse_mysql(rest).map(|p| Position::MySql(MySqlPosition { snapshot: progress, ..p }));
        }
        if let Some(rest) = text.strip_prefix("pg:") {
            return parse_pg(rest).map(|p| Position::Postgres(PgPosition { snapshot: progress, ..p }));
        }
        Err(PositionError::Malformed(format!(
            "`{text}` should start with `mysql:` or `pg:` (e.g. mysql:file=binlog.000003:pos=4, pg:lsn=0/16B3748)"
        )))
    }
}

fn parse_mysql(rest: &str) -> Result<MySqlPosition, PositionError> {
    let mut out = MySqlPosition::default();
    let mut rest = rest;
    if let Some(after) = rest.strip_prefix("file=") {
        let (file, after) = after
            .split_once(":pos=")
            .ok_or_else(|| PositionError::Malformed(format!("`file=` without `:pos=` in `{rest}`")))?;
        if file.is_empty() || file.contains(':') {
            return Err(PositionError::Malformed(format!("binlog file name `{file}` is empty or has a colon")));
        }
        let (pos, after) = match after.split_once(':') {
            Some((p, a)) => (p, Some(a)),
            None => (after, None),
        };
        let pos =
            pos.parse().map_err(|_| PositionError::Malformed(format!("binlog offset `{pos}` is not a number")))?;
        out.binlog = Some(BinlogCoordinates { file: file.to_string(), pos });
        rest = match after {
            Some(a) if a.starts_with("gtid=") => a,
            Some(a) => {
                return Err(PositionError::Malformed(format!("unexpected `{a}` after the binlog offset")));
            }
            None => "",
        };
    }
    if let Some(set) = rest.strip_prefix("gtid=") {
        out.gtid_set = Some(GtidSet::parse(set)?);
    } else if !rest.is_empty() {
        return Err(PositionError::Malformed(format!(
            "`{rest}`: a MySQL position is `file=NAME:pos=N`, `gtid=SET`, or both"
        )));
    }
    if out.binlog.is_none() && out.gtid_set.is_none() {
        return Err(PositionError::Malformed("an empty MySQL position".into()));
    }
    Ok(out)
}

fn parse_pg(rest: &str) -> Result<PgPosition, PositionError> {
    let lsn_text = rest
        .strip_prefix("lsn=")
        .ok_or_else(|| PositionError::Malformed(format!("`{rest}`: a PostgreSQL position is `lsn=X/Y`")))?;
    let (lsn, tx) = match lsn_text.split_once(":tx_lsn=") {
        Some((l, t)) => (l, Some(t)),
        None => (lsn_text, None),
    };
    Ok(PgPosition { lsn: lsn.parse()?, tx_lsn: tx.map(str::parse).transpose()?, snapshot: None })
}

/// Separates a position from the progress of a snapshot taken at it.
const SNAPSHOT_MARK: &str = ";snapshot=";

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TableId;

    #[test]
    fn snapshot_progress_round_trips_and_orders_before_its_end() {
        let base: Position = "mysql:file=binlog.000003:pos=1547:gtid=0-1-204".parse().unwrap();
        let key = [b"600".to_vec(), vec![0, 0xff, b';']];
        let mid = base.with_snapshot(Some(SnapshotProgress::new(&TableId::new("shop", "order;s"), Some(&key))));
        let text = mid.to_string();
        assert_eq!(
            text,
            r#"mysql:file=binlog.000003:pos=1547:gtid=0-1-204;snapshot={"table":["shop","order;s"],"after":["363030","00ff3b"]}"#
        );
        let back: Position = text.parse().unwrap();
        assert_eq!(back, mid);
        assert_eq!(back.snapshot_progress().unwrap().after_key().unwrap(), key.to_vec());
        assert_eq!(mid.compare(&base), Ok(Ordering::Less));
        assert_eq!(base.compare(&mid), Ok(Ordering::Greater));
        let pg: Position = r#"pg:lsn=0/16B3748;snapshot={"table":["public","t"]}"#.parse().unwrap();
        assert_eq!(pg.snapshot_progress().unwrap().after_key(), None);
        assert_eq!(pg.with_snapshot(None).to_string(), "pg:lsn=0/16B3748");
        assert!(r#"pg:lsn=0/1;snapshot={"table":["a","b"],"after":["zz"]}"#.parse::<Position>().is_err());
        assert!(r#"pg:lsn=0/1;snapshot={"table":["a","b"],"also":[{"table":["a","c"],"after":["q"]}]}"#.parse::<Position>().is_err());
    }

    #[test]
    fn tables_read_in_parallel_round_trip_with_their_progress() {
        let mut progress = SnapshotProgress::new(&TableId::new("s", "a"), Some(&[b"7".to_vec()]));
        progress.also.push(TableProgress::new(&TableId::new("s", "b"), None, true));
        progress.also.push(TableProgress::new(&TableId::new("s", "c"), Some(&[b"12".to_vec()]), false));
        let pos = Position::Postgres(PgPosition { lsn: Lsn(0x16B3748), tx_lsn: None, snapshot: Some(progress) });
        let text = pos.to_string();
        assert_eq!(
            text,
            r#"pg:lsn=0/16B3748;snapshot={"table":["s","a"],"after":["37"],"also":[{"table":["s","b"],"done":true},{"table":["s","c"],"after":["3132"]}]}"#
        );
        let back: Position = text.parse().unwrap();
        assert_eq!(back, pos);
        let progress = back.snapshot_progress().unwrap();
        assert_eq!(progress.also[1].after_key(), Some(vec![b"12".to_vec()]));
        assert!(progress.is_reading(&TableId::new("s", "a")));
        assert!(!progress.is_reading(&TableId::new("s", "b")), "done");
        assert!(progress.is_reading(&TableId::new("s", "c")));
        assert!(!progress.is_reading(&TableId::new("s", "d")), "not started");
        assert!("pg:lsn=0/1;snapshot=nonsense".parse::<Position>().is_err());
    }
}
