//! Table and column descriptions as the source reported them when the change was written.

use std::fmt;

use super::value::Value;

/// `db.table` for MySQL, `schema.table` for PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// MySQL database or PostgreSQL schema.
    pub namespace: String,
    pub name: String,
}

impl TableId {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> TableId {
        TableId { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// What kind of value a column holds, with the parameters that decide its encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Bool,
    /// Integer of `bytes` width (1, 2, 3, 4, 8).
    Int {
        bytes: u8,
        unsigned: bool,
    },
    Float,
    Double,
    /// Fixed-point; `scale: None` for PostgreSQL numeric without a declared scale.
    Decimal {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    Text {
        max_len: Option<u32>,
    },
    Bytes {
        max_len: Option<u32>,
    },
    Date,
    /// `fsp` = fractional-second digits (0–6).
    Time {
        fsp: u8,
    },
    TimeTz {
        fsp: u8,
    },
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    Year,
    Interval,
    Json,
    Uuid,
    Enum {
        values: Vec<String>,
    },
    Set {
        values: Vec<String>,
    },
    Bit {
        len: u32,
    },
    Array {
        element: Box<ColumnType>,
    },
    Geometry,
    /// Any other type, carried as text under its source type name.
    Other,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    /// The type as the source names it, e.g. `bigint unsigned`, `numeric(10,2)`, `_int4`.
    pub source_type: String,
    pub kind: ColumnType,
    pub nullable: bool,
    /// Character set of text columns, when the source says (MySQL).
    pub charset: Option<String>,
    /// What rows older than the column read in it, when it was added with a constant default
    /// (PostgreSQL's `attmissingval`): those rows are never in the log, so a replica adding
    /// the column must fill them with it.
    pub existing_rows_value: Option<Value>,
}

// Values compare as data here (a NaN default equal to itself would only cost a re-check).
impl Eq for Column {}

impl Column {
    /// A column without a charset or a value for older rows.
    pub fn new(name: impl Into<String>, source_type: impl Into<String>, kind: ColumnType, nullable: bool) -> Column {
        Column {
            name: name.into(),
            source_type: source_type.into(),
            kind,
            nullable,
            charset: None,
            existing_rows_value: None,
        }
    }
}

/// Columns of one table at one point of its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    pub id: TableId,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary (or replica-identity) key, in key order.
    pub key: Vec<usize>,
    /// Increases with every schema change of this table seen by the source.
    pub version: u32,
}

impl TableSchema {
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().filter_map(|&i| self.columns.get(i))
    }
}
