//! TABLE_MAP events: the column types, metadata and (with `binlog_row_metadata=FULL`) names and
//! key of a table, which every following rows event refers to by table id.

use std::sync::Arc;

use super::charset::Charset;
use super::schema_history::TableDef;
use crate::model::{Column, ColumnType, TableId, TableSchema};
use crate::sources::reader::{DecodeError, Reader, malformed};

/// Binlog column type codes (`enum_field_types`).
pub mod types {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}
use types::*;

/// How to read one column's value from a row image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDef {
    /// Real type (ENUM/SET/CHAR resolved from STRING's metadata).
    pub type_code: u8,
    /// Type-specific parameter from the metadata block: length-prefix bytes, fsp, precision…
    pub meta: u16,
    /// Second parameter: DECIMAL scale, STRING max length, BIT bits.
    pub meta2: u16,
    pub unsigned: bool,
    pub charset: Option<Charset>,
    pub enum_values: Vec<String>,
    pub set_values: Vec<String>,
}

/// A parsed TABLE_MAP.
#[derive(Debug)]
pub struct TableMap {
    pub table_id: u64,
    pub columns: Vec<ColumnDef>,
    pub schema: Arc<TableSchema>,
    /// Column names came from the event (binlog_row_metadata=FULL).
    pub has_names: bool,
}

impl TableMap {
    /// Parses the event body (after the common header). `id_len` is 6, or 4 for pre-5.1.4 FDEs.
    pub fn parse(data: &[u8], id_len: usize) -> Result<TableMap, DecodeError> {
        let mut r = Reader::new(data);
        let table_id = r.uint_le(id_len)?;
        let _flags = r.uint_le(2)?;
        let db_len = r.u8()? as usize;
        let db = String::from_utf8_lossy(r.bytes(db_len)?).into_owned();
        r.u8()?;
        let tbl_len = r.u8()? as usize;
        let table = String::from_utf8_lossy(r.bytes(tbl_len)?).into_owned();
        r.u8()?;
        let count = r.lenenc()? as usize;
        if count > 4096 {
            return Err(malformed(format!("TABLE_MAP for {db}.{table} claims {count} columns")));
        }
        let raw_types = r.bytes(count)?.to_vec();
        let meta_block = r.lenenc_bytes()?;
        let nulls = r.bytes(count.div_ceil(8))?;

        let mut columns = Vec::with_capacity(count);
        let mut m = Reader::new(meta_block);
        for &t in &raw_types {
            columns.push(read_meta(t, &mut m)?);
        }

        let mut names: Vec<String> = Vec::new();
        let mut key: Vec<usize> = Vec::new();
        let mut default_charset: Option<(u16, Vec<(usize, u16)>)> = None;
        let mut column_charsets: Option<Vec<u16>> = None;
        let mut enum_set_default: Option<(u16, Vec<(usize, u16)>)> = None;
        let mut enum_set_charsets: Option<Vec<u16>> = None;
        let mut signedness: Option<&[u8]> = None;
        let mut enum_strs: Vec<Vec<String>> = Vec::new();
        let mut set_strs: Vec<Vec<String>> = Vec::new();
        while !r.is_empty() {
            let kind = r.u8()?;
            let value = r.lenenc_bytes()?;
            let mut v = Reader::new(value);
            match kind {
                1 => signedness = Some(value),
                2 => default_charset = Some(read_default_charset(&mut v)?),
                3 => column_charsets = Some(read_lenenc_list(&mut v)?),
                4 => {
                    while !v.is_empty() {
                        names.push(String::from_utf8_lossy(v.lenenc_bytes()?).into_owned());
                    }
                }
                5 => set_strs = read_str_values(&mut v)?,
                6 => enum_strs = read_str_values(&mut v)?,
                8 => key = read_lenenc_list(&mut v)?.into_iter().map(|i| i as usize).collect(),
                9 => {
                    while !v.is_empty() {
                        key.push(v.lenenc()? as usize);
                        v.lenenc()?;
                    }
                }
                10 => enum_set_default = Some(read_default_charset(&mut v)?),
                11 => enum_set_charsets = Some(read_lenenc_list(&mut v)?),
                _ => {} // geometry type, visibility, vector dimensions: not needed to decode values
            }
        }

        // Signedness: one bit per numeric column, most significant bit first.
        if let Some(bits) = signedness {
            for (n, c) in columns.iter_mut().filter(|c| is_numeric(c.type_code)).enumerate() {
                c.unsigned = bits.get(n / 8).is_some_and(|b| b & (0x80 >> (n % 8)) != 0);
            }
        }
        assign_charsets(&mut columns, is_character, default_charset, column_charsets);
        assign_charsets(&mut columns, |t| t == ENUM || t == SET, enum_set_default, enum_set_charsets);
        let mut enums = enum_strs.into_iter();
        let mut sets = set_strs.into_iter();
        for c in columns.iter_mut() {
            match c.type_code {
                ENUM => c.enum_values = enums.next().unwrap_or_default(),
                SET => c.set_values = sets.next().unwrap_or_default(),
                _ => {}
            }
        }

        let has_names = names.len() == count;
        let schema_columns = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Column {
                name: if has_names { names[i].clone() } else { format!("@{}", i + 1) },
                source_type: source_type_name(c),
                kind: column_type(c),
                nullable: nulls.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0),
                charset: c.charset.map(|cs| cs.name().to_string()),
                existing_rows_value: None,
            })
            .collect();
        key.retain(|&i| i < count);
        let schema = TableSchema { id: TableId::new(db, table), columns: schema_columns, key, version: 0 };
        Ok(TableMap { table_id, columns, schema: Arc::new(schema), has_names })
    }
}

impl TableMap {
    /// This map with names, key, signedness, ENUM/SET values and charsets from a definition
    /// (schema history or catalog) where the event itself lacks them. The definition must
    /// describe the same columns: as many (`exact`), or at least as many when it is today's
    /// catalog and columns may have been added since; each of a compatible type. `None` when
    /// it does not fit: naming columns from a definition of another moment would be a guess.
    pub fn named(&self, def: &TableDef, exact: bool) -> Option<TableMap> {
        let n = self.columns.len();
        if def.columns.len() < n || (exact && def.columns.len() != n) {
            return None;
        }
        let declared: Vec<ColumnType> = def.columns[..n]
            .iter()
            .map(|c| super::snapshot::column_kind_of_type(&c.column_type, c.charset.as_deref()))
            .collect();
        if !self.schema.columns.iter().zip(&declared).all(|(a, b)| compatible(&a.kind, b)) {
            return None;
        }
        let mut columns = self.columns.clone();
        for ((c, decl), kind) in columns.iter_mut().zip(&def.columns).zip(&declared) {
            match kind {
                ColumnType::Int { unsigned: true, .. } => c.unsigned = true,
                ColumnType::Enum { values } if c.enum_values.is_empty() => c.enum_values = values.clone(),
                ColumnType::Set { values } if c.set_values.is_empty() => c.set_values = values.clone(),
                _ => {}
            }
            if decl.column_type.contains("unsigned") {
                c.unsigned = true;
            }
            if c.charset.is_none()
                && let Some(name) = &decl.charset
                && (is_character(c.type_code) || c.type_code == ENUM || c.type_code == SET)
            {
                c.charset = Some(Charset::from_name(name));
            }
        }
        let mut schema = (*self.schema).clone();
        for ((col, c), decl) in schema.columns.iter_mut().zip(&columns).zip(&def.columns) {
            col.name = decl.name.clone();
            col.source_type = source_type_name(c);
            col.kind = column_type(c);
            col.charset = c.charset.map(|cs| cs.name().to_string());
        }
        if schema.key.is_empty() {
            schema.key = def.key.iter().filter_map(|k| schema.columns.iter().position(|c| &c.name == k)).collect();
        }
        Some(TableMap { table_id: self.table_id, columns, schema: Arc::new(schema), has_names: true })
    }
}

/// Same kind of value, ignoring lengths and precisions; text and bytes are alike (without
/// charset metadata the binlog cannot tell TEXT from BLOB).
fn compatible(a: &ColumnType, b: &ColumnType) -> bool {
    use ColumnType::*;
    match (a, b) {
        (Int { bytes: x, .. }, Int { bytes: y, .. }) => x == y,
        (Text { .. } | Bytes { .. } | Json | Other, Text { .. } | Bytes { .. } | Json | Other) => true,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

fn read_meta(t: u8, m: &mut Reader<'_>) -> Result<ColumnDef, DecodeError> {
    let mut def = ColumnDef {
        type_code: t,
        meta: 0,
        meta2: 0,
        unsigned: false,
        charset: None,
        enum_values: vec![],
        set_values: vec![],
    };
    match t {
        FLOAT | DOUBLE | BLOB | TINY_BLOB | MEDIUM_BLOB | LONG_BLOB | GEOMETRY | JSON | VECTOR | TIMESTAMP2
        | DATETIME2 | TIME2 => def.meta = m.u8()? as u16,
        VARCHAR | VAR_STRING => def.meta = m.uint_le(2)? as u16,
        BIT => {
            let bits = m.u8()? as u16;
            let bytes = m.u8()? as u16;
            def.meta2 = bytes * 8 + bits;
        }
        NEWDECIMAL => {
            def.meta = m.u8()? as u16;
            def.meta2 = m.u8()? as u16;
        }
        STRING | ENUM | SET => {
            let b0 = m.u8()?;
            let b1 = m.u8()?;
            if b0 != 0 && (b0 & 0x30) != 0x30 {
                // CHAR longer than 255 bytes: two length bits live in b0.
                def.type_code = b0 | 0x30;
                def.meta2 = b1 as u16 | ((((b0 & 0x30) ^ 0x30) as u16) << 4);
            } else {
                def.type_code = if b0 == 0 { t } else { b0 };
                def.meta2 = b1 as u16;
            }
            // For ENUM/SET meta2 is the packed size in bytes.
        }
        _ => {}
    }
    if matches!(def.type_code, TINY_BLOB | MEDIUM_BLOB | LONG_BLOB) {
        def.type_code = BLOB;
    }
    Ok(def)
}

fn is_numeric(t: u8) -> bool {
    matches!(t, TINY | SHORT | INT24 | LONG | LONGLONG | DECIMAL | NEWDECIMAL | FLOAT | DOUBLE | YEAR)
}

fn is_character(t: u8) -> bool {
    matches!(t, STRING | VAR_STRING | VARCHAR | BLOB)
}

fn read_lenenc_list(v: &mut Reader<'_>) -> Result<Vec<u16>, DecodeError> {
    let mut out = Vec::new();
    while !v.is_empty() {
        out.push(v.lenenc()? as u16);
    }
    Ok(out)
}

fn read_default_charset(v: &mut Reader<'_>) -> Result<(u16, Vec<(usize, u16)>), DecodeError> {
    let default = v.lenenc()? as u16;
    let mut exceptions = Vec::new();
    while !v.is_empty() {
        let idx = v.lenenc()? as usize;
        let coll = v.lenenc()? as u16;
        exceptions.push((idx, coll));
    }
    Ok((default, exceptions))
}

fn read_str_values(v: &mut Reader<'_>) -> Result<Vec<Vec<String>>, DecodeError> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let n = v.lenenc()? as usize;
        let mut values = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            values.push(String::from_utf8_lossy(v.lenenc_bytes()?).into_owned());
        }
        out.push(values);
    }
    Ok(out)
}

/// Charsets are listed for the character (or enum/set) columns only, in column order.
fn assign_charsets(
    columns: &mut [ColumnDef],
    applies: impl Fn(u8) -> bool,
    default: Option<(u16, Vec<(usize, u16)>)>,
    per_column: Option<Vec<u16>>,
) {
    let targets = columns.iter_mut().filter(|c| applies(c.type_code));
    if let Some(list) = per_column {
        for (c, coll) in targets.zip(list) {
            c.charset = Some(Charset::from_collation(coll));
        }
    } else if let Some((default, exceptions)) = default {
        for (n, c) in targets.enumerate() {
            let coll = exceptions.iter().find(|(i, _)| *i == n).map_or(default, |(_, coll)| *coll);
            c.charset = Some(Charset::from_collation(coll));
        }
    }
}

fn fsp(c: &ColumnDef) -> u8 {
    (c.meta as u8).min(6)
}

fn column_type(c: &ColumnDef) -> ColumnType {
    let binary = c.charset == Some(Charset::Binary);
    match c.type_code {
        TINY => ColumnType::Int { bytes: 1, unsigned: c.unsigned },
        SHORT => ColumnType::Int { bytes: 2, unsigned: c.unsigned },
        INT24 => ColumnType::Int { bytes: 3, unsigned: c.unsigned },
        LONG => ColumnType::Int { bytes: 4, unsigned: c.unsigned },
        LONGLONG => ColumnType::Int { bytes: 8, unsigned: c.unsigned },
        FLOAT => ColumnType::Float,
        DOUBLE => ColumnType::Double,
        NEWDECIMAL | DECIMAL => ColumnType::Decimal { precision: Some(c.meta as u32), scale: Some(c.meta2 as u32) },
        YEAR => ColumnType::Year,
        DATE | NEWDATE => ColumnType::Date,
        TIME => ColumnType::Time { fsp: 0 },
        TIME2 => ColumnType::Time { fsp: fsp(c) },
        DATETIME => ColumnType::DateTime { fsp: 0 },
        DATETIME2 => ColumnType::DateTime { fsp: fsp(c) },
        TIMESTAMP => ColumnType::Timestamp { fsp: 0 },
        TIMESTAMP2 => ColumnType::Timestamp { fsp: fsp(c) },
        BIT => ColumnType::Bit { len: c.meta2 as u32 },
        ENUM => ColumnType::Enum { values: c.enum_values.clone() },
        SET => ColumnType::Set { values: c.set_values.clone() },
        JSON => ColumnType::Json,
        GEOMETRY => ColumnType::Geometry,
        VECTOR => ColumnType::Array { element: Box::new(ColumnType::Float) },
        VARCHAR | VAR_STRING | STRING if binary => ColumnType::Bytes { max_len: Some(max_len(c)) },
        VARCHAR | VAR_STRING | STRING => ColumnType::Text { max_len: Some(max_len(c)) },
        // Without charset metadata (servers before 8.0 / MariaDB 10.5) BLOB and TEXT look alike.
        BLOB if binary || c.charset.is_none() => ColumnType::Bytes { max_len: None },
        BLOB => ColumnType::Text { max_len: None },
        _ => ColumnType::Other,
    }
}

fn max_len(c: &ColumnDef) -> u32 {
    match c.type_code {
        STRING => c.meta2 as u32,
        _ => c.meta as u32,
    }
}

fn source_type_name(c: &ColumnDef) -> String {
    let unsigned = if c.unsigned { " UNSIGNED" } else { "" };
    let binary = c.charset == Some(Charset::Binary);
    match c.type_code {
        TINY => format!("TINYINT{unsigned}"),
        SHORT => format!("SMALLINT{unsigned}"),
        INT24 => format!("MEDIUMINT{unsigned}"),
        LONG => format!("INT{unsigned}"),
        LONGLONG => format!("BIGINT{unsigned}"),
        FLOAT => format!("FLOAT{unsigned}"),
        DOUBLE => format!("DOUBLE{unsigned}"),
        NEWDECIMAL | DECIMAL => format!("DECIMAL({},{}){unsigned}", c.meta, c.meta2),
        YEAR => "YEAR".into(),
        DATE | NEWDATE => "DATE".into(),
        TIME => "TIME".into(),
        TIME2 => format!("TIME({})", fsp(c)),
        DATETIME => "DATETIME".into(),
        DATETIME2 => format!("DATETIME({})", fsp(c)),
        TIMESTAMP => "TIMESTAMP".into(),
        TIMESTAMP2 => format!("TIMESTAMP({})", fsp(c)),
        BIT => format!("BIT({})", c.meta2),
        ENUM => "ENUM".into(),
        SET => "SET".into(),
        JSON => "JSON".into(),
        GEOMETRY => "GEOMETRY".into(),
        VECTOR => "VECTOR".into(),
        VARCHAR | VAR_STRING if binary => format!("VARBINARY({})", c.meta),
        VARCHAR | VAR_STRING => format!("VARCHAR({})", c.meta),
        STRING if binary => format!("BINARY({})", c.meta2),
        STRING => format!("CHAR({})", c.meta2),
        BLOB if binary || c.charset.is_none() => "BLOB".into(),
        BLOB => "TEXT".into(),
        other => format!("TYPE{other}"),
    }
}
