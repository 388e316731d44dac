//! Table definitions as of each point of the binlog, for servers that log no column names
//! (`binlog_row_metadata` MINIMAL or NO_LOG, MySQL 5.7). A row event must be decoded with the
//! columns its table had when it was written, not today's: the history starts from
//! `information_schema` at the start position, follows the DDL read from the binlog (see
//! [`super::ddl`]), and is kept in a JSON-lines file so a restart from an earlier position
//! gets the definitions of that position back.
//!
//! Each line of the file is one [`HistoryRecord`]: a table's whole definition from a position
//! on (or none: dropped, or changed by DDL not understood, so it must be read from the server
//! again). On start, the records at or before the start position are replayed in order.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ddl::{AlterOp, ColumnDecl, Ddl, Place};
use crate::error::CdcError;
use crate::model::{MySqlPosition, Position, TableId};
use crate::sources::filter::TableFilter;

/// A table's columns (in order) and primary key, as declared.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub columns: Vec<ColumnDecl>,
    pub key: Vec<String>,
}

/// One line of the history file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The position from which this definition holds.
    pub at: String,
    pub db: String,
    pub table: String,
    /// `None`: the table is gone, or must be read from the server again.
    pub definition: Option<TableDef>,
    /// The statement that led here, for people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddl: Option<String>,
}

/// The definitions known at the decoder's current position.
#[derive(Debug, Default)]
pub struct SchemaHistory {
    filter: Option<TableFilter>,
    tables: HashMap<TableId, TableDef>,
    /// Records made since the last [`SchemaHistory::take_records`].
    unsaved: Vec<HistoryRecord>,
}

impl SchemaHistory {
    /// Follows the tables `filter` selects.
    pub fn new(filter: TableFilter) -> SchemaHistory {
        SchemaHistory { filter: Some(filter), ..Default::default() }
    }

    pub fn get(&self, id: &TableId) -> Option<&TableDef> {
        self.tables.get(id)
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    fn follows(&self, id: &TableId) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches_id(id))
    }

    /// Records `def` (or its absence) for `id` from `at` on.
    pub fn set(&mut self, id: &TableId, def: Option<TableDef>, at: &MySqlPosition, ddl: Option<&str>) {
        if !self.follows(id) {
            return;
        }
        if self.tables.get(id) == def.as_ref() {
            return;
        }
        self.unsaved.push(HistoryRecord {
            at: Position::MySql(at.clone()).to_string(),
            db: id.namespace.clone(),
            table: id.name.clone(),
            definition: def.clone(),
            ddl: ddl.map(|s| s.chars().take(2000).collect()),
        });
        match def {
            Some(def) => self.tables.insert(id.clone(), def),
            None => self.tables.remove(id),
        };
    }

    /// Applies one statement read from the binlog at `at` (the position after it).
    pub fn apply(&mut self, sql: &str, default_db: &str, at: &MySqlPosition) {
        let ddl = super::ddl::parse(sql, default_db);
        let changes: Vec<(TableId, Option<TableDef>)> = match ddl {
            Ddl::NoColumnChange => return,
            Ddl::Create { table, columns, key, if_not_exists } => {
                if if_not_exists && self.tables.contains_key(&table) {
                    return;
                }
                vec![(table, Some(TableDef { columns, key }))]
            }
            Ddl::CreateLike { table, like, if_not_exists } => {
                if if_not_exists && self.tables.contains_key(&table) {
                    return;
                }
                vec![(table, self.tables.get(&like).cloned())]
            }
            Ddl::Alter { table, ops } => {
                let Some(def) = self.tables.get(&table) else { return };
                let mut name = table.clone();
                let altered = alter(def.clone(), &ops, &mut name);
                if altered.is_none() {
                    tracing::warn!(table = %table, statement = sql, "ALTER TABLE names a column the schema history does not have: the table's definition will be read from the server");
                }
                if name != table { vec![(table, None), (name, altered)] } else { vec![(table, altered)] }
            }
            Ddl::Rename(pairs) => {
                let mut changes = Vec::new();
                for (from, to) in pairs {
                    let def = self.tables.get(&from).cloned();
                    changes.push((from, None));
                    changes.push((to, def));
                }
                changes
            }
            Ddl::Drop(tables) => tables.into_iter().map(|t| (t, None)).collect(),
            Ddl::DropDatabase(db) => {
                self.tables.keys().filter(|t| t.namespace == db).map(|t| (t.clone(), None)).collect()
            }
            Ddl::NotUnderstood(table) => {
                let tables: Vec<TableId> = match table {
                    Some(t) => vec![t],
                    None => self.tables.keys().cloned().collect(),
                };
                if !tables.is_empty() {
                    tracing::warn!(statement = %sql.chars().take(200).collect::<String>(), "DDL not understood: the definitions of the tables it may change will be read from the server");
                }
                tables.into_iter().map(|t| (t, None)).collect()
            }
        };
        for (table, def) in changes {
            self.set(&table, def, at, Some(sql));
        }
    }

    /// Records made since the last call, to be written to the history file.
    pub fn take_records(&mut self) -> Vec<HistoryRecord> {
        std::mem::take(&mut self.unsaved)
    }

    /// Replays a record read back from the history file.
    fn replay(&mut self, record: HistoryRecord) {
        let id = TableId::new(record.db, record.table);
        match record.definition {
            Some(def) => self.tables.insert(id, def),
            None => self.tables.remove(&id),
        };
    }
}

/// Applies ALTER TABLE operations; `None` when one names a column that is not there.
fn alter(mut def: TableDef, ops: &[AlterOp], name: &mut TableId) -> Option<TableDef> {
    let index = |def: &TableDef, column: &str| def.columns.iter().position(|c| c.name.eq_ignore_ascii_case(column));
    let place_at = |def: &TableDef, place: &Place, default: usize| -> Option<usize> {
        match place {
            Place::End => Some(default),
            Place::First => Some(0),
            Place::After(c) => index(def, c).map(|i| i + 1),
        }
    };
    for op in ops {
        match op {
            AlterOp::Add { column, place } => {
                let at = place_at(&def, place, def.columns.len())?;
                if column.primary_key {
                    def.key = vec![column.name.clone()];
                }
                def.columns.insert(at, column.clone());
            }
            AlterOp::Change { old, column, place } => {
                let was = index(&def, old)?;
                let old_name = def.columns.remove(was).name;
                let at = place_at(&def, place, was)?;
                def.columns.insert(at, column.clone());
                for k in def.key.iter_mut().filter(|k| k.eq_ignore_ascii_case(&old_name)) {
                    *k = column.name.clone();
                }
            }
            AlterOp::Drop(column) => {
                let at = index(&def, column)?;
                let gone = def.columns.remove(at).name;
                def.key.retain(|k| !k.eq_ignore_ascii_case(&gone));
            }
            AlterOp::RenameColumn { from, to } => {
                let at = index(&def, from)?;
                let old_name = std::mem::replace(&mut def.columns[at].name, to.clone());
                for k in def.key.iter_mut().filter(|k| k.eq_ignore_ascii_case(&old_name)) {
                    *k = to.clone();
                }
            }
            AlterOp::RenameTable(to) => *name = to.clone(),
            AlterOp::AddPrimaryKey(columns) => {
                for c in columns {
                    let at = index(&def, c)?;
                    def.columns[at].nullable = false;
                }
                def.key = columns.clone();
            }
            AlterOp::DropPrimaryKey => def.key.clear(),
            AlterOp::ConvertCharset(charset) => {
                for c in def.columns.iter_mut().filter(|c| c.charset.is_some()) {
                    c.charset = Some(charset.to_ascii_lowercase());
                }
            }
        }
    }
    Some(def)
}

/// The history file: read once at start, appended to (and synced) as DDL arrives.
pub struct HistoryFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl HistoryFile {
    /// Reads `path` (if it exists) into a history as of `start`: the records at or before it.
    pub fn load(
        path: &Path,
        filter: TableFilter,
        start: &MySqlPosition,
    ) -> Result<(HistoryFile, SchemaHistory), CdcError> {
        let mut history = SchemaHistory::new(filter);
        let unreadable = |e: std::io::Error| {
            CdcError::definite(
                format!("cannot read the schema history {}: {e}", path.display()),
                "check source.schema_history and the directory's permissions",
            )
        };
        match std::fs::File::open(path) {
            Ok(f) => {
                let lines: Vec<String> =
                    std::io::BufReader::new(f).lines().collect::<Result<_, _>>().map_err(unreadable)?;
                let last = lines.len();
                for (n, line) in lines.into_iter().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let record: HistoryRecord = match serde_json::from_str(&line) {
                        Ok(r) => r,
                        // A line cut short by a crash while it was written: the change it
                        // recorded comes again from the binlog.
                        Err(_) if n + 1 == last => {
                            tracing::warn!(path = %path.display(), "Ignoring an incomplete last line in the schema history");
                            continue;
                        }
                        Err(e) => {
                            return Err(CdcError::definite(
                                format!("schema history {} line {}: {e}", path.display(), n + 1),
                                "restore the file, or delete it to start again from the server's current definitions",
                            ));
                        }
                    };
                    let applies = match record.at.parse::<Position>() {
                        Ok(Position::MySql(at)) => at.compare(start).map(|o| o.is_le()).unwrap_or(false),
                        _ => false,
                    };
                    if applies {
                        history.replay(record);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(unreadable(e)),
        }
        Ok((HistoryFile { path: path.to_path_buf(), file: None }, history))
    }

    /// Appends records and syncs them, before any event decoded with them is delivered.
    pub fn append(&mut self, records: &[HistoryRecord]) -> Result<(), CdcError> {
        if records.is_empty() {
            return Ok(());
        }
        let failed = |e: std::io::Error| {
            CdcError::definite(
                format!("cannot write the schema history {}: {e}", self.path.display()),
                "check source.schema_history, free space and permissions",
            )
        };
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(failed)?;
            }
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(failed)?;
            self.file = Some(f);
        }
        let mut text = String::new();
        for r in records {
            // Serializing plain strings and vectors cannot fail.
            text.push_str(&serde_json::to_string(r).unwrap_or_default());
            text.push('\n');
        }
        let f = self.file.as_mut().ok_or_else(|| failed(std::io::ErrorKind::NotFound.into()))?;
        f.write_all(text.as_bytes()).map_err(failed)?;
        f.sync_data().map_err(failed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BinlogCoordinates;

    fn pos(n: u64) -> MySqlPosition {
        MySqlPosition {
            gtid_set: None,
            binlog: Some(BinlogCoordinates { file: "bin.000001".into(), pos: n }),
            snapshot: None,
        }
    }

    fn names(h: &SchemaHistory, db: &str, t: &str) -> Vec<String> {
        h.get(&TableId::new(db, t)).map(|d| d.columns.iter().map(|c| c.name.clone()).collect()).unwrap_or_default()
    }

    #[test]
    fn follows_ddl_and_replays_up_to_a_position() {
        let mut h = SchemaHistory::new(TableFilter::new(&["d.*".to_string()], &[]));
        h.apply("CREATE TABLE t (id INT PRIMARY KEY, a INT, b TEXT)", "d", &pos(100));
        h.apply("ALTER TABLE t ADD c INT AFTER id, DROP a", "d", &pos(200));
        assert_eq!(names(&h, "d", "t"), ["id", "c", "b"]);
        h.apply("ALTER TABLE t CHANGE id key_id BIGINT, RENAME COLUMN b TO body", "d", &pos(300));
        assert_eq!(names(&h, "d", "t"), ["key_id", "c", "body"]);
        assert_eq!(h.get(&TableId::new("d", "t")).unwrap().key, ["key_id"]);
        h.apply("RENAME TABLE t TO u", "d", &pos(400));
        assert!(h.get(&TableId::new("d", "t")).is_none());
        assert_eq!(names(&h, "d", "u"), ["key_id", "c", "body"]);
        // Not followed: other databases, unknown columns, statements not understood.
        h.apply("CREATE TABLE other.x (a INT)", "d", &pos(450));
        assert!(h.get(&TableId::new("other", "x")).is_none());
        h.apply("ALTER TABLE u DROP nope", "d", &pos(500));
        assert!(h.get(&TableId::new("d", "u")).is_none());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let filter = || TableFilter::new(&["d.*".to_string()], &[]);
        let (mut file, _) = HistoryFile::load(&path, filter(), &pos(0)).unwrap();
        file.append(&h.take_records()).unwrap();
        // A torn last line is ignored.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"at\":").unwrap();
        for (at, expect) in
            [(99, vec![]), (100, vec!["id", "a", "b"]), (250, vec!["id", "c", "b"]), (300, vec!["key_id", "c", "body"])]
        {
            let (_, h) = HistoryFile::load(&path, filter(), &pos(at)).unwrap();
            assert_eq!(names(&h, "d", "t"), expect, "at {at}");
        }
        let (_, h) = HistoryFile::load(&path, filter(), &pos(450)).unwrap();
        assert_eq!(names(&h, "d", "u"), ["key_id", "c", "body"]);
        let (_, h) = HistoryFile::load(&path, filter(), &pos(500)).unwrap();
        assert!(h.is_empty());
    }
}
