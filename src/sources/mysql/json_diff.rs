//! MySQL partial JSON updates (`binlog_row_value_options = PARTIAL_JSON`): the after image of a
//! JSON column holds diffs (replace / insert / remove at a JSON path) to apply to the before image.

use serde_json::Value as Json;

use crate::sources::reader::{DecodeError, Reader, malformed};

#[derive(Debug, Clone, PartialEq)]
pub enum DiffOp {
    Replace(Json),
    Insert(Json),
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JsonDiff {
    pub path: Vec<PathLeg>,
    pub op: DiffOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathLeg {
    Key(String),
    Index(usize),
}

/// Reads the diff list of one column.
pub fn read_diffs(
    bytes: &[u8],
    json_value: impl Fn(&[u8]) -> Result<Json, DecodeError>,
) -> Result<Vec<JsonDiff>, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        let op = r.u8()?;
        let path =
            parse_path(std::str::from_utf8(r.lenenc_bytes()?).map_err(|_| malformed("JSON path is not UTF-8"))?)?;
        let op = match op {
            0 => DiffOp::Replace(json_value(r.lenenc_bytes()?)?),
            1 => DiffOp::Insert(json_value(r.lenenc_bytes()?)?),
            2 => DiffOp::Remove,
            other => return Err(malformed(format!("unknown JSON diff operation {other}"))),
        };
        out.push(JsonDiff { path, op });
    }
    Ok(out)
}

/// `$.a."b c"[2]` → [Key a, Key "b c", Index 2].
pub fn parse_path(text: &str) -> Result<Vec<PathLeg>, DecodeError> {
    let bad = || malformed(format!("unsupported JSON path `{text}`"));
    let rest = text.trim().strip_prefix('$').ok_or_else(bad)?;
    let b = rest.as_bytes();
    let mut legs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                if b.get(i) == Some(&b'"') {
                    i += 1;
                    let mut key = String::new();
                    while i < b.len() && b[i] != b'"' {
                        if b[i] == b'\\' && i + 1 < b.len() {
                            i += 1;
                        }
                        key.push(b[i] as char);
                        i += 1;
                    }
                    if i >= b.len() {
                        return Err(bad());
                    }
                    i += 1;
                    legs.push(PathLeg::Key(key));
                } else {
                    let start = i;
                    while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                        i += 1;
                    }
                    legs.push(PathLeg::Key(rest[start..i].to_string()));
                }
            }
            b'[' => {
                let end = rest[i..].find(']').ok_or_else(bad)? + i;
                let n = rest[i + 1..end].trim().parse().map_err(|_| bad())?;
                legs.push(PathLeg::Index(n));
                i = end + 1;
            }
            b' ' => i += 1,
            _ => return Err(bad()),
        }
    }
    Ok(legs)
}

/// Applies diffs in order; a path that does not exist is an error (the binlog would be corrupt).
pub fn apply(doc: &mut Json, diffs: &[JsonDiff]) -> Result<(), DecodeError> {
    for d in diffs {
        let Some((last, parents)) = d.path.split_last() else {
            match &d.op {
                DiffOp::Replace(v) | DiffOp::Insert(v) => *doc = v.clone(),
                DiffOp::Remove => return Err(malformed("JSON diff removes the whole document")),
            }
            continue;
        };
        let mut node = &mut *doc;
        for leg in parents {
            node = match (leg, node) {
                (PathLeg::Key(k), Json::Object(m)) => m.get_mut(k),
                (PathLeg::Index(n), Json::Array(a)) => a.get_mut(*n),
                _ => None,
            }
            .ok_or_else(|| malformed("JSON diff path does not exist in the before image"))?;
        }
        match (last, node, &d.op) {
            (PathLeg::Key(k), Json::Object(m), DiffOp::Replace(v) | DiffOp::Insert(v)) => {
                m.insert(k.clone(), v.clone());
            }
            (PathLeg::Key(k), Json::Object(m), DiffOp::Remove) => {
                m.remove(k);
            }
            (PathLeg::Index(n), Json::Array(a), DiffOp::Replace(v)) if *n < a.len() => a[*n] = v.clone(),
            (PathLeg::Index(n), Json::Array(a), DiffOp::Insert(v)) => a.insert((*n).min(a.len()), v.clone()),
            (PathLeg::Index(n), Json::Array(a), DiffOp::Remove) if *n < a.len() => {
                a.remove(*n);
            }
            _ => return Err(malformed("JSON diff does not fit the before image")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_operations() {
        assert_eq!(
            parse_path("$.a.\"b c\"[2]").unwrap(),
            vec![PathLeg::Key("a".into()), PathLeg::Key("b c".into()), PathLeg::Index(2)]
        );
        let mut doc = json!({"a": {"b": [1, 2, 3]}, "x": 1});
        let diffs = vec![
            JsonDiff { path: parse_path("$.a.b[1]").unwrap(), op: DiffOp::Replace(json!("two")) },
            JsonDiff { path: parse_path("$.a.b[0]").unwrap(), op: DiffOp::Insert(json!(0)) },
            JsonDiff { path: parse_path("$.x").unwrap(), op: DiffOp::Remove },
            JsonDiff { path: parse_path("$.y").unwrap(), op: DiffOp::Insert(json!(null)) },
        ];
        apply(&mut doc, &diffs).unwrap();
        assert_eq!(doc, json!({"a": {"b": [0, 1, "two", 3]}, "y": null}));
        assert!(apply(&mut doc, &[JsonDiff { path: parse_path("$.nope.z").unwrap(), op: DiffOp::Remove }]).is_err());
    }
}
