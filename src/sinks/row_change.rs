//! What a change event asks a database replica to do, whatever the target's SQL: the one
//! place that decides between writing a whole row, updating a row found by its old key (or,
//! without a key, by its old values), deleting, or truncating.

use crate::error::CdcError;
use crate::model::{ChangeEvent, Op, Row, Value};

pub enum RowChange<'a> {
    Truncate,
    /// Write this whole row (an upsert by key); `insert` for new rows (inserts, snapshot rows).
    Put {
        row: &'a Row,
        insert: bool,
    },
    /// Set the columns `set` has values for (not `Unchanged`) in the row identified by `old`:
    /// its key columns, or all its columns for a table without a key.
    Update {
        set: &'a Row,
        old: &'a Row,
    },
    /// Delete the row identified by `old` (key columns, or all columns without a key).
    Delete {
        old: &'a Row,
    },
}

/// Classifies `event`. A change without the row it needs is a definite error.
pub fn classify(event: &ChangeEvent) -> Result<RowChange<'_>, CdcError> {
    let keyed = !event.table.key.is_empty();
    match event.op {
        Op::Truncate => Ok(RowChange::Truncate),
        Op::Create | Op::Read => {
            Ok(RowChange::Put { row: event.after.as_ref().ok_or_else(|| missing_row(event, "new row"))?, insert: true })
        }
        Op::Update => {
            let after = event.after.as_ref().ok_or_else(|| missing_row(event, "new row"))?;
            let key_changed = match &event.before {
                Some(before) if keyed => event.table.key.iter().any(|&i| before.get(i) != after.get(i)),
                _ => false,
            };
            if !keyed || key_changed {
                let old = event.before.as_ref().ok_or_else(|| missing_row(event, "old row"))?;
                Ok(RowChange::Update { set: after, old })
            } else if after.iter().any(|v| matches!(v, Value::Unchanged)) {
                // Unchanged TOAST values: only the columns that came, found by the key.
                Ok(RowChange::Update { set: after, old: after })
            } else {
                Ok(RowChange::Put { row: after, insert: false })
            }
        }
        Op::Delete => {
            Ok(RowChange::Delete { old: event.before.as_ref().ok_or_else(|| missing_row(event, "old row"))? })
        }
    }
}

fn missing_row(event: &ChangeEvent, what: &str) -> CdcError {
    let remedy = if event.table.key.is_empty() {
        "give the table a primary key, or make the source send full old rows \
         (PostgreSQL: ALTER TABLE … REPLICA IDENTITY FULL; MySQL: binlog_row_image = FULL)"
    } else {
        "report this: the source sent a change without the row it needs"
    };
    CdcError::definite(format!("a {} change of {} has no {what}", event.op.code(), event.table.id), remedy)
}
