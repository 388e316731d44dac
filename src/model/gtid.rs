//! GTID sets of both MySQL flavours.
//!
//! * MySQL: `uuid:1-5:7-9` per server UUID, optionally with tags (8.4+):
//!   `uuid:1-5:tag:1-3` — intervals after a tag belong to that tag.
//! * MariaDB: a list of `domain-server-seq`, one entry per replication domain; the
//!   sequence number of a domain only grows (we require `gtid_strict_mode=ON`).
//!
//! Both print in the server's own canonical form, so a stored set can be pasted into
//! `SET GLOBAL gtid_purged` / `@slave_connect_state` as is.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::position::PositionError;

/// A set of transaction identifiers, in the flavour of the server that wrote them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GtidSet {
    MySql(MySqlGtidSet),
    MariaDb(MariaDbGtidList),
}

impl GtidSet {
    /// Parses either flavour: MariaDB entries are three numbers, MySQL ones start with a UUID.
    pub fn parse(text: &str) -> Result<GtidSet, PositionError> {
        let text = text.trim();
        let first = text.split(',').next().unwrap_or("").trim();
        let looks_mariadb = !first.is_empty()
            && first.split('-').count() == 3
            && first.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if looks_mariadb { Ok(GtidSet::MariaDb(text.parse()?)) } else { Ok(GtidSet::MySql(text.parse()?)) }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::MySql(s) => s.is_empty(),
            GtidSet::MariaDb(l) => l.is_empty(),
        }
    }

    /// True when every transaction in `other` is also in `self`.
    pub fn contains(&self, other: &GtidSet) -> Result<bool, PositionError> {
        match (self, other) {
            (GtidSet::MySql(a), GtidSet::MySql(b)) => Ok(a.contains(b)),
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => Ok(a.contains(b)),
            _ => Err(PositionError::Incomparable("a MySQL GTID set and a MariaDB GTID list".into())),
        }
    }

    /// The union of both sets (same flavour only).
    pub fn union(&self, other: &GtidSet) -> Result<GtidSet, PositionError> {
        match (self, other) {
            (GtidSet::MySql(a), GtidSet::MySql(b)) => {
                let mut out = a.clone();
                out.union_with(b);
                Ok(GtidSet::MySql(out))
            }
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => {
                let mut out = a.clone();
                out.union_with(b);
                Ok(GtidSet::MariaDb(out))
            }
            _ => Err(PositionError::Incomparable("a MySQL GTID set and a MariaDB GTID list".into())),
        }
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::MySql(s) => s.fmt(f),
            GtidSet::MariaDb(l) => l.fmt(f),
        }
    }
}

/// Key of one interval list: server UUID (lower case, canonical 36 chars) and tag ("" = untagged).
type SidTag = (String, String);

/// A MySQL GTID set: for each (server UUID, tag) a sorted list of disjoint, non-adjacent
/// closed intervals of transaction numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MySqlGtidSet {
    intervals: BTreeMap<SidTag, Vec<(u64, u64)>>,
}

impl MySqlGtidSet {
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Adds one transaction `uuid[:tag]:gno`.
    pub fn add(&mut self, uuid: &str, tag: &str, gno: u64) -> Result<(), PositionError> {
        let uuid = canonical_uuid(uuid)?;
        check_tag(tag)?;
        if gno == 0 {
            return Err(PositionError::Malformed(format!("GTID {uuid}:{gno}: transaction numbers start at 1")));
        }
        insert_interval(self.intervals.entry((uuid, tag.to_string())).or_default(), gno, gno);
        Ok(())
    }

    pub fn contains_gtid(&self, uuid: &str, tag: &str, gno: u64) -> bool {
        let Ok(uuid) = canonical_uuid(uuid) else {
            return false;
        };
        self.intervals.get(&(uuid, tag.to_string())).is_some_and(|list| list.iter().any(|&(a, b)| a <= gno && gno <= b))
    }

    pub fn contains(&self, other: &MySqlGtidSet) -> bool {
        other.intervals.iter().all(|(key, theirs)| {
            let Some(ours) = self.intervals.get(key) else {
                return false;
            };
            theirs.iter().all(|&(a, b)| ours.iter().any(|&(x, y)| x <= a && b <= y))
        })
    }

    /// Each (server UUID, tag) with its intervals, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &[(u64, u64)])> {
        self.intervals.iter().map(|((u, t), l)| (u.as_str(), t.as_str(), l.as_slice()))
    }

    pub fn union_with(&mut self, other: &MySqlGtidSet) {
        for (key, list) in &other.intervals {
            let ours = self.intervals.entry(key.clone()).or_default();
            for &(a, b) in list {
                insert_interval(ours, a, b);
            }
        }
    }
}

/// Inserts [a, b] into a sorted list of disjoint intervals, merging overlapping and adjacent ones.
fn insert_interval(list: &mut Vec<(u64, u64)>, a: u64, b: u64) {
    let (mut a, mut b) = (a, b);
    let mut out = Vec::with_capacity(list.len() + 1);
    let mut placed = false;
    for &(x, y) in list.iter() {
        if y.saturating_add(1) < a {
            out.push((x, y));
        } else if b.saturating_add(1) < x {
            if !placed {
                out.push((a, b));
                placed = true;
            }
            out.push((x, y));
        } else {
            a = a.min(x);
            b = b.max(y);
        }
    }
    if !placed {
        out.push((a, b));
    }
    out.sort_unstable();
    *list = out;
}

fn canonical_uuid(text: &str) -> Result<String, PositionError> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let dashes_ok = text.len() == 36 && text.char_indices().all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23));
    if hex.len() != 32 || !dashes_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(PositionError::Malformed(format!(
            "`{text}` is not a server UUID (expected 8-4-4-4-12 hex digits)"
        )));
    }
    Ok(text.to_ascii_lowercase())
}

/// MySQL tags: 1–32 characters, a letter or underscore first, then letters, digits, underscores.
fn check_tag(tag: &str) -> Result<(), PositionError> {
    if tag.is_empty() {
        return Ok(());
    }
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if tag.len() > 32 || !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(PositionError::Malformed(format!("`{tag}` is not a valid GTID tag")));
    }
    Ok(())
}

impl FromStr for MySqlGtidSet {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut set = MySqlGtidSet::default();
        // Servers print sets wrapped over lines ("uuid:1-5,\nuuid:1-3").
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.is_empty() {
            return Ok(set);
        }
        for member in compact.split(',') {
            let mut parts = member.split(':');
            let uuid = canonical_uuid(parts.next().unwrap_or(""))?;
            let mut tag = String::new();
            let mut saw_interval = false;
            for part in parts {
                if part.is_empty() {
                    return Err(PositionError::Malformed(format!("empty part in GTID set member `{member}`")));
                }
                if part.as_bytes()[0].is_ascii_digit() {
                    let (a, b) = match part.split_once('-') {
                        Some((a, b)) => (parse_gno(a, member)?, parse_gno(b, member)?),
                        None => {
                            let n = parse_gno(part, member)?;
                            (n, n)
                        }
                    };
                    if a == 0 || b < a {
                        return Err(PositionError::Malformed(format!(
                            "interval `{part}` in `{member}` is empty or starts at 0"
                        )));
                    }
                    insert_interval(set.intervals.entry((uuid.clone(), tag.clone())).or_default(), a, b);
                    saw_interval = true;
                } else {
                    check_tag(part)?;
                    tag = part.to_ascii_lowercase();
                }
            }
            if !saw_interval {
                return Err(PositionError::Malformed(format!("GTID set member `{member}` has no interval")));
            }
        }
        Ok(set)
    }
}

fn parse_gno(text: &str, member: &str) -> Result<u64, PositionError> {
    text.parse::<u64>()
        .map_err(|_| PositionError::Malformed(format!("`{text}` in `{member}` is not a transaction number")))
}

impl fmt::Display for MySqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut current_uuid: Option<&str> = None;
        for ((uuid, tag), list) in &self.intervals {
            if current_uuid != Some(uuid.as_str()) {
                if current_uuid.is_some() {
                    f.write_str(",")?;
                }
                f.write_str(uuid)?;
                current_uuid = Some(uuid);
            }
            if !tag.is_empty() {
                write!(f, ":{tag}")?;
            }
            for &(a, b) in list {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

/// One MariaDB GTID: `domain-server-seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MariaDbGtid {
    pub domain: u32,
    pub server_id: u32,
    pub seq: u64,
}

impl FromStr for MariaDbGtid {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PositionError::Malformed(format!("`{text}` is not a MariaDB GTID (domain-server-seq)"));
        let mut parts = text.trim().split('-');
        let domain = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let server_id = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MariaDbGtid { domain, server_id, seq })
    }
}

impl fmt::Display for MariaDbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

/// A MariaDB GTID position: the last transaction of each replication domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MariaDbGtidList {
    by_domain: BTreeMap<u32, MariaDbGtid>,
}

impl MariaDbGtidList {
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// Records `gtid` as the latest of its domain (a lower sequence number never replaces a higher one).
    pub fn add(&mut self, gtid: MariaDbGtid) {
        let entry = self.by_domain.entry(gtid.domain).or_insert(gtid);
        if gtid.seq >= entry.seq {
            *entry = gtid;
        }
    }

    pub fn get(&self, domain: u32) -> Option<MariaDbGtid> {
        self.by_domain.get(&domain).copied()
    }

    pub fn gtids(&self) -> impl Iterator<Item = &MariaDbGtid> {
        self.by_domain.values()
    }

    /// In strict mode a domain's history is every sequence number up to the latest one.
    pub fn contains(&self, other: &MariaDbGtidList) -> bool {
        other
            .by_domain
            .values()
            .all(|theirs| self.by_domain.get(&theirs.domain).is_some_and(|ours| ours.seq >= theirs.seq))
    }

    pub fn union_with(&mut self, other: &MariaDbGtidList) {
        for gtid in other.by_domain.values() {
            self.add(*gtid);
        }
    }
}

impl FromStr for MariaDbGtidList {
    type Err = PositionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut list = MariaDbGtidList::default();
        for member in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let gtid: MariaDbGtid = member.parse()?;
            if list.by_domain.contains_key(&gtid.domain) {
                return Err(PositionError::Malformed(format!(
                    "MariaDB GTID list `{text}` names domain {} twice",
                    gtid.domain
                )));
            }
            list.add(gtid);
        }
        Ok(list)
    }
}

impl fmt::Display for MariaDbGtidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.by_domain.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            gtid.fmt(f)?;
        }
        Ok(())
    }
}
