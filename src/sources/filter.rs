//! Include/exclude table filters: `db.table` patterns where `*` matches any run of characters.

use crate::model::TableId;

#[derive(Clone, Debug)]
pub struct TableFilter {
    include: Vec<(String, String)>,
    exclude: Vec<(String, String)>,
}

impl TableFilter {
    /// Patterns were validated by the config (`db.table`).
    pub fn new(include: &[String], exclude: &[String]) -> TableFilter {
        let split = |p: &String| {
            let (a, b) = p.split_once('.').unwrap_or((p.as_str(), "*"));
            (a.to_string(), b.to_string())
        };
        TableFilter { include: include.iter().map(split).collect(), exclude: exclude.iter().map(split).collect() }
    }

    pub fn all() -> TableFilter {
        TableFilter { include: vec![("*".into(), "*".into())], exclude: vec![] }
    }

    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        let hit = |(a, b): &(String, String)| glob(a, namespace) && glob(b, name);
        self.include.iter().any(hit) && !self.exclude.iter().any(hit)
    }

    pub fn matches_id(&self, id: &TableId) -> bool {
        self.matches(&id.namespace, &id.name)
    }
}

/// `*` matches any run (also empty), everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let f = TableFilter::new(&["shop.*".into(), "*.audit_*".into()], &["shop.tmp_*".into()]);
        assert!(f.matches("shop", "orders"));
        assert!(f.matches("crm", "audit_log"));
        assert!(!f.matches("shop", "tmp_x"));
        assert!(!f.matches("crm", "users"));
        assert!(glob("a*b*c", "aXbYc") && !glob("a*b*c", "aXc"));
    }
}
