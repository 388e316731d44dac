//! Real binlog files written by MySQL 5.5–9.x, Percona, Aurora and MariaDB servers
//! (`tests/fixtures/mysql-binlogs/`, copied with their licenses' attribution in SOURCES.md): every file decodes, the broken
//! ones fail with a clear error, and values recorded in SOURCES.md come out exactly.

use std::path::{Path, PathBuf};

use cdc::format::debezium::{EnvelopeContext, write_envelope};
use cdc::sources::mysql::file::{decode_bytes, decode_file};
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    let dir = std::env::var("CDC_MYSQL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mysql-binlogs"));
    assert!(dir.join("SOURCES.md").exists(), "binlog fixtures not found at {} (set CDC_MYSQL_FIXTURES)", dir.display());
    dir
}

/// Decodes a fixture into Debezium JSON events.
fn events(rel: &str) -> Vec<Json> {
    let ctx = EnvelopeContext { name: "fx".into(), now_us: 0 };
    let mut out = Vec::new();
    decode_file(&fixtures().join(rel), None, None, |batch| {
        for e in &batch.events {
            let mut buf = Vec::new();
            write_envelope(&mut buf, e, &ctx);
            out.push(serde_json::from_slice(&buf).expect("valid JSON"));
        }
    })
    .unwrap_or_else(|e| panic!("{rel}: {e}"));
    out
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else if !matches!(p.extension().and_then(|e| e.to_str()), Some("md" | "txt")) {
            out.push(p);
        }
    }
}

/// Files that must fail, and what the error must say.
const NEGATIVE: &[(&str, &str)] = &[
    // MariaDB 10.0 "hires" TIMESTAMP(3) with no width in the table map: cannot be decoded. The
    // column is named from the CREATE TABLE earlier in the file.
    ("tiflow/mysql-bin.000001", "steven.t column id"),
    // MySQL 8 partial JSON updates logged with a NOBLOB/MINIMAL before image: the document to
    // apply the diff to is not in the binlog, so the new value cannot be known.
    ("rust_mysql_common/json.binlog.000001", "binlog_row_image is not FULL"),
];

#[test]
fn every_fixture_decodes_or_fails_clearly() {
    let mut files = Vec::new();
    all_files(&fixtures(), &mut files);
    files.sort();
    assert!(files.len() >= 40, "found only {} fixture files", files.len());
    for f in &files {
        let rel = f.strip_prefix(fixtures()).unwrap().to_string_lossy().into_owned();
        let result = decode_file(f, None, None, |_| {});
        match NEGATIVE.iter().find(|(name, _)| *name == rel) {
            Some((_, needle)) => {
                let err = result.expect_err(&rel).to_string();
                assert!(err.contains(needle), "{rel}: error `{err}` should mention `{needle}`");
            }
            None => {
                let summary = result.unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert!(summary.events >= 1, "{rel}: no events");
            }
        }
    }
}

#[test]
fn truncated_and_corrupt_input_is_an_error_not_a_panic() {
    let good = std::fs::read(fixtures().join("mysql-binlog-connector-java/mysql-bin.checksum-crc32")).unwrap();
    // Cut at every offset in the first 2 KB: each prefix either decodes or reports truncation.
    for cut in (4..2048).step_by(7) {
        match decode_bytes(&good[..cut], "cut", None, None, &mut |_| {}) {
            Ok(_) => {}
            Err(e) => assert!(e.to_string().contains("truncated"), "cut at {cut}: {e}"),
        }
    }
    // A flipped byte inside an event is a CRC32 mismatch.
    let mut bad = good.clone();
    bad[600] ^= 0x40;
    let err = decode_bytes(&bad, "flipped", None, None, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("CRC32 mismatch"), "{err}");
    // The 14-byte file described in SOURCES.md: magic plus half a header.
    let err = decode_bytes(&good[..14], "tiny", None, None, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("truncated event header at offset 4"), "{err}");
    let err = decode_bytes(b"not a binlog", "text", None, None, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("not a binlog file"), "{err}");
}

#[test]
fn negative_time_with_hour_overflow() {
    // SOURCES.md: -(21 days 03:48:27), as Debezium's MicroTime.
    let e = events("rust_mysql_common/time_issue.000001");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["after"]["@1"], -((21 * 86_400 + 3 * 3600 + 48 * 60 + 27) as i64) * 1_000_000);
}

#[test]
fn unsigned_int_with_minimal_metadata() {
    let e = events("rust_mysql_common/minimal_row_metadata.000001");
    assert_eq!(e[0]["after"]["@5"], 3_230_202_323u64);
    assert_eq!(e[0]["after"]["@1"], 1);
}

#[test]
fn enum_set_and_long_char_with_full_metadata() {
    let e = events("rust_mysql_common/mysql-enum-string-set.000001");
    let ops: Vec<&str> = e.iter().map(|x| x["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["c", "u", "d"]);
    let after = &e[1]["after"];
    assert_eq!(after["f1"], "field1");
    assert_eq!(after["f3"], "variant2");
    assert_eq!(after["f4"], "two,four");
    assert_eq!(e[1]["source"]["gtid"], "93e95066-a2f4-11ec-9b69-9657f0ae95e2:4");
    assert_eq!(e[2]["after"], Json::Null);
}

#[test]
fn vectors_as_float_arrays() {
    let e = events("rust_mysql_common/vector.binlog");
    assert_eq!(e[0]["after"]["vector_column"], serde_json::json!([1.1, 2.2, 3.3]));
    assert_eq!(e[3]["after"]["vector_column2"], serde_json::json!([42.0, 43.0, 44.0, 45.0]));
    assert_eq!(e[3]["after"]["foo"], "YmFy"); // VARBINARY 'bar'
}

#[test]
fn compressed_transactions_and_tagged_gtids() {
    let e = events("rust_mysql_common/transaction_compression.000001");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0]["source"]["db"].as_str(), e[0]["source"]["table"].as_str()), (Some("test"), Some("tb1")));
    let e = events("rust_mysql_common/binlog_transaction_with_GTID_TAG.000001");
    assert_eq!(e[0]["source"]["gtid"], "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3");
    let e = events("mysql-binlog-connector-rust/mysql-bin.000057");
    assert_eq!(e.len(), 3);
}

#[test]
fn utf8mb4_emoji_and_mariadb_events() {
    // The utf8mb4 table's row holds an empty VARCHAR(255) (2-byte length 0), as the bytes show.
    // The binlog logs no column names; they come from the CREATE TABLE earlier in the file.
    let e = events("mysql-binlog-connector-rust/mysql-bin.000080");
    let emoji: Vec<&Json> = e.iter().filter(|x| x["source"]["table"] == "emoji").collect();
    assert_eq!(emoji.len(), 1);
    assert_eq!(emoji[0]["after"], serde_json::json!({"id": 2, "value": ""}));
    assert_eq!(e.iter().filter(|x| x["op"] == "d").count(), 4);
    let e = events("rust_mysql_common/mariadb-bin.000001");
    assert_eq!(e[0]["after"]["id"], 62);
    assert_eq!(e[0]["after"]["event_type"], "JSON");
    assert_eq!(e[0]["after"]["created"], "2022-04-20T22:18:04Z");
    assert_eq!(e[0]["source"]["gtid"], "0-1-1"); // as mariadb-binlog prints it
    assert_eq!(e[1]["source"]["gtid"], "0-1-2");
}

#[test]
fn sakila_pre_56_temporal_types() {
    let e = events("mysql-binlog-connector-java/mysql-bin.sakila.gz");
    assert_eq!(e.len(), 47_273);
    // Every row decoded to a full image of its table.
    assert!(e.iter().all(|x| x["op"] == "c" && x["after"].as_object().is_some_and(|o| !o.is_empty())));
}

/// Checkpoints are transaction ends with exact GTID-bearing positions.
#[test]
fn checkpoints_fall_on_transaction_ends() {
    let path = fixtures().join("binlog-parser/gtid-fixtures/mysql-bin.01");
    let mut checkpoints = Vec::new();
    decode_file(&path, None, None, |b| {
        if let Some(p) = b.checkpoint {
            checkpoints.push(p.to_string());
        }
    })
    .unwrap();
    assert!(checkpoints.len() >= 17, "{checkpoints:?}");
    assert!(checkpoints.iter().all(|c| c.starts_with("mysql:file=mysql-bin.01:pos=")));
}

/// Random corruption of a binlog without checksums (so nothing stops it before the decoder)
/// yields an error or a decode, never a panic.
#[test]
fn corrupted_events_never_panic() {
    for (file, rounds) in
        [("mysql-binlog-connector-java/mysql-bin.checksum-none", 2000), ("binlog-parser/mysql-bin.07", 2000)]
    {
        corrupt_and_decode(&fixtures().join(file), rounds);
    }
}

fn corrupt_and_decode(path: &Path, rounds: usize) {
    let good = std::fs::read(path).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut errors = 0;
    for _ in 0..rounds {
        let mut bad = good.clone();
        for _ in 0..1 + next() % 4 {
            let at = 4 + (next() as usize) % (bad.len() - 4);
            bad[at] = next() as u8;
        }
        if decode_bytes(&bad, "fuzz", None, None, &mut |_| {}).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0, "{}: no corruption was ever detected", path.display());
}
