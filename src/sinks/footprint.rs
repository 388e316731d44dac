//! What a unit of work writes on the target, for parallel apply: two units may run on
//! different connections at the same time only when their footprints do not meet, so the
//! changes of any one row (and of any table written as a whole) keep their source order.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHashSet;

use crate::model::TableId;

#[derive(Default, Debug)]
pub struct Footprint {
    /// Hashes of (table, key) of the rows written. A collision only makes two units wait for
    /// each other needlessly.
    keys: FxHashSet<u64>,
    /// Every table written.
    tables: FxHashSet<TableId>,
    /// Tables written as a whole: DDL, TRUNCATE, rows found by their values (no key), tables
    /// with unique constraints beyond the key.
    whole_tables: FxHashSet<TableId>,
    /// Meets every other footprint (a table with foreign keys on the target: its rows depend
    /// on rows of other tables).
    alone: bool,
}

impl Footprint {
    /// A row of `table` identified by `key` (the key columns' values as text).
    pub fn row(&mut self, table: &TableId, key: &str) {
        let mut h = std::hash::DefaultHasher::new();
        table.hash(&mut h);
        key.hash(&mut h);
        self.keys.insert(h.finish());
        self.table(table);
    }

    /// `table` is written (rows that meet no other unit's rows, like appended inserts).
    pub fn table(&mut self, table: &TableId) {
        if !self.tables.contains(table) {
            self.tables.insert(table.clone());
        }
    }

    pub fn whole_table(&mut self, table: &TableId) {
        self.table(table);
        if !self.whole_tables.contains(table) {
            self.whole_tables.insert(table.clone());
        }
    }

    pub fn alone(&mut self) {
        self.alone = true;
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && !self.alone
    }

    /// Whether the two units must not run at the same time.
    pub fn meets(&self, other: &Footprint) -> bool {
        if self.is_empty() || other.is_empty() {
            return false;
        }
        if self.alone || other.alone {
            return true;
        }
        let (small, large) = if self.keys.len() <= other.keys.len() { (self, other) } else { (other, self) };
        small.keys.iter().any(|k| large.keys.contains(k))
            || self.whole_tables.iter().any(|t| other.tables.contains(t))
            || other.whole_tables.iter().any(|t| self.tables.contains(t))
    }

    pub fn merge(&mut self, other: Footprint) {
        if self.is_empty() {
            *self = other;
            return;
        }
        self.keys.extend(other.keys);
        self.tables.extend(other.tables);
        self.whole_tables.extend(other.whole_tables);
        self.alone |= other.alone;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TableId {
        TableId::new("s".to_string(), name.to_string())
    }

    #[test]
    fn rows_meet_only_on_the_same_key_of_the_same_table() {
        let mut a = Footprint::default();
        a.row(&t("a"), "(1)");
        let mut b = Footprint::default();
        b.row(&t("a"), "(2)");
        b.row(&t("b"), "(1)");
        assert!(!a.meets(&b) && !b.meets(&a));
        b.row(&t("a"), "(1)");
        assert!(a.meets(&b) && b.meets(&a));
    }

    #[test]
    fn a_whole_table_meets_any_row_of_it_and_nothing_else() {
        let mut a = Footprint::default();
        a.whole_table(&t("a"));
        let mut b = Footprint::default();
        b.row(&t("b"), "(1)");
        assert!(!a.meets(&b));
        b.table(&t("a"));
        assert!(a.meets(&b) && b.meets(&a));
    }

    #[test]
    fn alone_meets_everything_but_an_empty_footprint() {
        let mut a = Footprint::default();
        a.table(&t("a"));
        a.alone();
        let mut b = Footprint::default();
        assert!(!a.meets(&b));
        b.row(&t("z"), "(9)");
        assert!(a.meets(&b) && b.meets(&a));
        let mut merged = Footprint::default();
        merged.merge(b);
        merged.merge(a);
        assert!(merged.alone && merged.tables.len() == 2 && merged.keys.len() == 1);
    }
}
