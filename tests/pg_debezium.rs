//! Debezium 3.6 itself as the oracle: the same PostgreSQL changes captured by Debezium's
//! PostgreSQL connector (embedded engine, default settings, JsonConverter without schemas) and
//! by cdc give the same `before`, `after`, `op` and `source` fields.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::pipeline::start_pipeline;
use harness::{ChildGuard, shared_pg15, test_prefix};
use serde_json::Value as Json;

/// Compiles the oracle program against Debezium's jars (installed by scripts/setup.sh).
fn oracle_classpath(dir: &std::path::Path) -> String {
    let libs = test_prefix().join("debezium/libs");
    assert!(libs.exists(), "Debezium jars missing at {}: run scripts/setup.sh", libs.display());
    let cp = format!("{}/*", libs.display());
    let out = Command::new("javac")
        .args(["-cp", &cp, "-d"])
        .arg(dir)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/DbzOracle.java"))
        .output()
        .expect("run javac (Java 17)");
    assert!(out.status.success(), "javac failed: {}", String::from_utf8_lossy(&out.stderr));
    format!("{cp}:{}", dir.display())
}

/// Columns where cdc differs from Debezium on purpose (see docs/decisions.md).
const DELIBERATE: &[(&str, &str)] = &[
    // Debezium 3.6 emits a multi-dimensional array as [null, null]; cdc keeps the nested values.
    ("a2", "multi-dimensional arrays"),
    // Debezium 3.6 emits null for the `name` type; cdc sends the text.
    ("nm", "the name type"),
];

#[test]
fn postgres_events_equal_debeziums() {
    let pg = shared_pg15();
    let db = pg.create_db("dbzoracle");
    pg.sql(&db, harness::PG_TYPES_DDL);
    let classes = tempfile::tempdir().unwrap();
    let cp = oracle_classpath(classes.path());
    const EVENTS: usize = 5;
    let mut oracle = ChildGuard(
        Command::new("java")
            .args(["-cp", &cp, "DbzOracle", &pg.port().to_string(), &db, "public.types", &EVENTS.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(oracle.0.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines.next().expect("oracle exited before streaming").unwrap();
        if line == "READY" {
            break;
        }
        assert!(Instant::now() < deadline, "Debezium did not start");
    }
    // Debezium is streaming once its slot is active.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg.sql(&db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbz_oracle' AND active") != "1" {
        assert!(Instant::now() < deadline, "Debezium's slot never became active");
        std::thread::sleep(Duration::from_millis(100));
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "name = \"dbzoracle\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\ntables = [\"public.types\"]\nsnapshot = \"never\"\n",
        pg.url(&db)
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ours = rt.block_on(async {
        let p = start_pipeline(&cfg, &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        pg.sql(&db, harness::PG_TYPES_ROWS);
        pg.sql(&db, "UPDATE types SET t = 'changed', n = 2.5 WHERE id = 1; DELETE FROM types WHERE id = 2;");
        let e = p.wait_for(EVENTS).await;
        p.stop().await.0.unwrap();
        e
    });
    let theirs: Vec<Json> = (0..EVENTS)
        .map(|_| serde_json::from_str(&lines.next().expect("oracle event").unwrap()).expect("oracle JSON"))
        .collect();
    let mut diffs = Vec::new();
    for (i, (d, c)) in theirs.iter().zip(&ours).enumerate() {
        if d["op"] != c["op"] {
            diffs.push(format!("event {i} op: Debezium {} cdc {}", d["op"], c["op"]));
        }
        for image in ["before", "after"] {
            let (dv, cv) = (&d[image], &c[image]);
            match (dv.as_object(), cv.as_object()) {
                (Some(dm), Some(cm)) => {
                    for (k, v) in dm {
                        if Some(v) != cm.get(k) && !DELIBERATE.iter().any(|(col, _)| col == k) {
                            diffs.push(format!(
                                "event {i} {image}.{k}: Debezium {v} cdc {}",
                                cm.get(k).unwrap_or(&Json::Null)
                            ));
                        }
                    }
                    if dm.len() != cm.len() {
                        diffs.push(format!(
                            "event {i} {image}: {} columns from Debezium, {} from cdc",
                            dm.len(),
                            cm.len()
                        ));
                    }
                }
                _ if dv != cv => diffs.push(format!("event {i} {image}: Debezium {dv} cdc {cv}")),
                _ => {}
            }
        }
        for field in ["connector", "snapshot", "db", "schema", "table", "txId", "lsn", "xmin", "ts_ms"] {
            if d["source"][field] != c["source"][field] {
                diffs.push(format!(
                    "event {i} source.{field}: Debezium {} cdc {}",
                    d["source"][field], c["source"][field]
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}
