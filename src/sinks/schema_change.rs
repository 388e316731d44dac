//! What changed between two schemas of one source table, in the terms a database replica can
//! replay — or a definite error when the change cannot be replayed without guessing.

use crate::error::CdcError;
use crate::model::{Column, TableSchema};

/// Column changes, by name; indexes point into the new schema.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SchemaDiff {
    pub dropped: Vec<String>,
    pub added: Vec<usize>,
    /// Columns whose type changed.
    pub retyped: Vec<usize>,
    /// One column renamed: its old name and its index.
    pub renamed: Option<(String, usize)>,
}

/// Compares `old` and `new`; `same_type` says whether two column descriptions give the same
/// target column type (the source may describe one type in two ways: a snapshot reads
/// `information_schema`, the stream the binlog). A changed key, or columns both dropped and
/// added other than one rename in place, stop the pipeline: replaying them by guess could
/// silently lose values.
pub fn diff(
    old: &TableSchema,
    new: &TableSchema,
    same_type: impl Fn(&Column, &Column) -> bool,
) -> Result<SchemaDiff, CdcError> {
    let key =
        |s: &TableSchema| s.key.iter().filter_map(|&i| s.columns.get(i)).map(|c| c.name.clone()).collect::<Vec<_>>();
    let mut d = SchemaDiff {
        dropped: old
            .columns
            .iter()
            .filter(|c| !new.columns.iter().any(|n| n.name == c.name))
            .map(|c| c.name.clone())
            .collect(),
        added: (0..new.columns.len()).filter(|&i| !old.columns.iter().any(|c| c.name == new.columns[i].name)).collect(),
        retyped: (0..new.columns.len())
            .filter(|&i| {
                let c = &new.columns[i];
                old.columns.iter().any(|o| o.name == c.name && !same_type(o, c))
            })
            .collect(),
        renamed: None,
    };
    if let ([gone], [at]) = (d.dropped.as_slice(), d.added.as_slice())
        && old.columns.iter().position(|c| &c.name == gone) == Some(*at)
        && same_type(&old.columns[*at], &new.columns[*at])
    {
        d.renamed = Some((gone.clone(), *at));
        d.dropped.clear();
        d.added.clear();
    }
    let (old_key, new_key) = (key(old), key(new));
    let renamed_key = d.renamed.as_ref().is_some_and(|(from, at)| {
        old_key.iter().map(|k| if k == from { &new.columns[*at].name } else { k }).eq(new_key.iter())
    });
    if old_key != new_key && !renamed_key {
        return Err(CdcError::definite(
            format!(
                "the primary key of {} changed from ({}) to ({}); cdc does not replay key changes",
                new.id,
                old_key.join(", "),
                new_key.join(", ")
            ),
            "change the key of the target table the same way, then restart cdc",
        ));
    }
    if !d.dropped.is_empty() && !d.added.is_empty() {
        let added: Vec<&str> = d.added.iter().map(|&i| new.columns[i].name.as_str()).collect();
        return Err(CdcError::definite(
            format!(
                "columns of {} were dropped ({}) and added ({}) in one change: renames cannot be told from \
                 drops, so it is not replayed",
                new.id,
                d.dropped.join(", "),
                added.join(", ")
            ),
            "apply the same DDL to the target table by hand, then restart cdc",
        ));
    }
    Ok(d)
}

/// The table (next to the positions table) listing the source tables whose changes a replica
/// pipeline stopped applying after a schema change it could not replay.
pub fn stopped_tables_table(positions_table: &str) -> String {
    match positions_table.rsplit_once('.') {
        Some((namespace, _)) => format!("{namespace}.cdc_stopped_tables"),
        None => "cdc_stopped_tables".to_string(),
    }
}

/// The log line of a table stopped by `refused`, a schema change cdc cannot replay.
pub fn log_stopped_table(table: &crate::model::TableId, refused: &CdcError) {
    tracing::error!(
        table = %table,
        cause = %refused.cause,
        "Stopped applying changes to this table (sink.unreplayable_schema_change = \"stop_table\"); the other \
         tables go on. To bring it back: apply the source's DDL to the target table, copy its rows from the \
         source again, delete its row from cdc_stopped_tables and restart cdc"
    );
}

/// At connection: the tables an earlier run stopped, whose changes are still not applied.
pub fn warn_stopped_tables(stopped: &rustc_hash::FxHashSet<crate::model::TableId>) {
    for table in stopped {
        tracing::warn!(table = %table, "Not applying changes to this table: stopped after a schema change cdc could not replay (see cdc_stopped_tables)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ColumnType, TableId};

    fn diff(old: &TableSchema, new: &TableSchema) -> Result<SchemaDiff, CdcError> {
        super::diff(old, new, |a, b| a.kind == b.kind)
    }

    fn schema(cols: &[(&str, ColumnType)], key: &[usize]) -> TableSchema {
        TableSchema {
            id: TableId::new("s", "t"),
            columns: cols
                .iter()
                .map(|(n, k)| Column {
                    name: n.to_string(),
                    source_type: String::new(),
                    kind: k.clone(),
                    nullable: true,
                    charset: None,
                    existing_rows_value: None,
                })
                .collect(),
            key: key.to_vec(),
            version: 0,
        }
    }

    #[test]
    fn renames_adds_drops_and_what_is_refused() {
        let int = || ColumnType::Int { bytes: 4, unsigned: false };
        let text = || ColumnType::Text { max_len: None };
        let base = schema(&[("id", int()), ("a", text()), ("b", int())], &[0]);
        let renamed = diff(&base, &schema(&[("id", int()), ("c", text()), ("b", int())], &[0])).expect("rename");
        assert_eq!(renamed.renamed, Some(("a".to_string(), 1)));
        let added = diff(&base, &schema(&[("id", int()), ("a", text()), ("b", int()), ("n", int())], &[0]));
        assert_eq!(added.expect("add").added, vec![3]);
        let retyped = diff(&base, &schema(&[("id", int()), ("a", text()), ("b", text())], &[0])).expect("type");
        assert_eq!(retyped.retyped, vec![2]);
        let two = diff(&base, &schema(&[("id", int()), ("x", text()), ("y", int())], &[0]));
        assert!(two.is_err_and(|e| e.cause.contains("dropped (a, b) and added (x, y)")));
        let key = diff(&base, &schema(&[("id", int()), ("a", text()), ("b", int())], &[0, 2]));
        assert!(key.is_err_and(|e| e.cause.contains("changed from (id) to (id, b)")));
        let key_renamed = diff(&base, &schema(&[("pk", int()), ("a", text()), ("b", int())], &[0]));
        assert_eq!(key_renamed.expect("rename of the key").renamed, Some(("id".to_string(), 0)));
    }
}
