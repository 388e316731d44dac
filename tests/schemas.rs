//! The published schemas describe what cdc actually writes.

use std::path::Path;
use std::sync::Arc;

use cdc::format::debezium::{EnvelopeContext, write_envelope};
use cdc::model::*;
use cdc::sources::mysql::file::decode_file;

fn schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/envelope.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("the schema itself is valid")
}

fn check(v: &jsonschema::Validator, event: &serde_json::Value) {
    let errors: Vec<String> = v.iter_errors(event).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}\n{event}");
}

#[test]
fn mysql_events_match_the_json_schema() {
    let v = schema();
    let ctx = EnvelopeContext { name: "fx".into(), now_us: 1 };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mysql-binlogs");
    let mut n = 0;
    for f in [
        "rust_mysql_common/mysql-enum-string-set.000001",
        "rust_mysql_common/mariadb-bin.000001",
        "rust_mysql_common/vector.binlog",
        "mysql-binlog-connector-java/mysql-bin.checksum-crc32",
    ] {
        decode_file(&dir.join(f), None, None, |b| {
            for e in &b.events {
                let mut buf = Vec::new();
                write_envelope(&mut buf, e, &ctx);
                check(&v, &serde_json::from_slice(&buf).unwrap());
                n += 1;
            }
        })
        .unwrap();
    }
    assert!(n > 60);
}

#[test]
fn postgres_events_match_the_json_schema() {
    let table = Arc::new(TableSchema {
        id: TableId::new("public", "t"),
        columns: vec![Column {
            name: "id".into(),
            source_type: "int4".into(),
            kind: ColumnType::Int { bytes: 4, unsigned: false },
            nullable: false,
            charset: None,
        }],
        key: vec![0],
        version: 1,
    });
    let event = ChangeEvent {
        op: Op::Update,
        table,
        before: Some(vec![Value::Int(1)]),
        after: Some(vec![Value::Int(2)]),
        source: SourceInfo {
            ts_ms: 5,
            snapshot: SnapshotMarker::No,
            meta: SourceMeta::Postgres {
                database: "shop".into(),
                tx_id: Some(7),
                lsn: 0x16B3748,
                last_commit_lsn: Some(0x16B3700),
                xmin: None,
            },
        },
        transaction: Some(TxInfo { id: "7:23803720".into(), total_order: 1, data_collection_order: 1 }),
    };
    let mut buf = Vec::new();
    write_envelope(&mut buf, &event, &EnvelopeContext { name: "pg".into(), now_us: 9 });
    let json: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    check(&schema(), &json);
    assert_eq!(json["source"]["sequence"], "[\"23803648\",\"23803720\"]");
}

#[test]
fn avro_template_is_valid_json_with_the_envelope_fields() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/envelope.avsc")).unwrap();
    let avsc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = avsc["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["before", "after", "source", "transaction", "op", "ts_ms", "ts_us", "ts_ns"]);
}
