//! An independent decoder agrees: the same MariaDB binlog read by python-mysql-replication
//! (PyPI `mysql-replication`) gives the same row values as cdc.

mod harness;

use std::collections::BTreeMap;
use std::process::Command;

use harness::pipeline::start_pipeline;
use harness::{debezium_decimal, shared_mariadb};
use serde_json::{Value as Json, json};

/// Debezium JSON of the `xcheck.t` columns → the canonical forms the Python side prints.
fn canonical(row: &Json) -> BTreeMap<String, Json> {
    use base64::Engine;
    let b64 = |v: &Json| base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for (k, v) in row.as_object().unwrap() {
        let c = if v.is_null() {
            Json::Null
        } else {
            match k.as_str() {
                "amt" => json!(debezium_decimal(v, 6)),
                "dbl" => json!(format!("{:?}", v.as_f64().unwrap())),
                "d" => {
                    let (y, m, d) = cdc::format::debezium::civil_from_days(v.as_i64().unwrap());
                    json!(format!("{y:04}-{m:02}-{d:02}"))
                }
                "ts" => json!(iso_to_micros(v.as_str().unwrap())),
                "bl" => json!(b64(v).iter().map(|b| format!("{b:02x}")).collect::<String>()),
                // python-mysql-replication turns an empty SET into None; the row holds '' (not NULL).
                "s" if v == "" => Json::Null,
                _ => v.clone(),
            }
        };
        out.insert(k.clone(), c);
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS[.f]Z` → µs since the epoch.
fn iso_to_micros(s: &str) -> i64 {
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T').unwrap();
    let p: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let days = cdc::format::debezium::days_from_civil(p[0], p[1] as u32, p[2] as u32);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().unwrap() };
    days * 86_400_000_000 + (t[0] * 3600 + t[1] * 60 + t[2]) * 1_000_000 + frac
}

#[test]
fn python_mysql_replication_reads_the_same_values() {
    let db = shared_mariadb();
    db.sql(
        "CREATE DATABASE xcheck; CREATE TABLE xcheck.t (id INT PRIMARY KEY, bu BIGINT UNSIGNED, vc VARCHAR(40),
         amt DECIMAL(20,6), dbl DOUBLE, d DATE, dt DATETIME(6), ts TIMESTAMP(3) NULL, t TIME(6),
         e ENUM('a','b','c'), s SET('a','b','c'), bl BLOB) DEFAULT CHARSET=utf8mb4",
    );
    let status = db.sql("SHOW MASTER STATUS");
    let mut cols = status.split('\t');
    let (file, pos) = (cols.next().unwrap().to_string(), cols.next().unwrap().to_string());
    db.sql(
        "SET time_zone = '+00:00';
         INSERT INTO xcheck.t VALUES (1, 18446744073709551615, 'héllo 😀', -12345678901234.123456, 1.25e-300,
           '1999-12-31', '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.999', '-838:59:59.000000', 'b', 'a,c', 0x00ff10);
         INSERT INTO xcheck.t VALUES (2, 0, '', 0.000001, -0.0, '1000-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:01',
           '00:00:00.000001', 'a', '', '');
         INSERT INTO xcheck.t (id) VALUES (3);
         UPDATE xcheck.t SET vc = 'changed', amt = 42 WHERE id = 2;
         DELETE FROM xcheck.t WHERE id = 3;",
    );
    // python-mysql-replication's view.
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/pymysqlrepl_dump.py"))
        .args([db.port().to_string(), file.clone(), pos.clone(), "xcheck".into()])
        .output()
        .expect("run python3 (scripts/setup.sh installs mysql-replication)");
    assert!(out.status.success(), "python-mysql-replication failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let python: Vec<Json> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(python.len(), 5, "{python:?}");

    // cdc's view, from the same position.
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "name = \"xcheck\"\n[source]\nkind = \"mysql\"\nurl = \"{}\"\nserver_id = 4343\ntables = [\"xcheck.*\"]\nsnapshot = \"never\"\n",
        db.url("")
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ours = rt.block_on(async {
        let from = format!("mysql:file={file}:pos={pos}").parse().unwrap();
        let p = start_pipeline(&cfg, &dir.path().join("p.json"), Some(from)).await;
        let e = p.wait_for(5).await;
        p.stop().await.0.unwrap();
        e
    });
    for (py, us) in python.iter().zip(&ours) {
        assert_eq!(py["op"], us["op"]);
        let image = if us["op"] == "d" { &us["before"] } else { &us["after"] };
        let theirs: BTreeMap<String, Json> = serde_json::from_value(py["row"].clone()).unwrap();
        assert_eq!(canonical(image), theirs, "row differs from python-mysql-replication's");
    }
}
