//! Debezium 3.6 itself as the oracle: the same PostgreSQL changes captured by Debezium's
//! PostgreSQL connector (embedded engine, default settings) and by cdc give the same
//! `before`, `after`, `op` and `source` fields; with Kafka Connect schemas on (JsonConverter's
//! `schemas.enable=true`), the same key and value schemas too.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::kafka::read_topic;
use harness::pipeline::start_pipeline;
use harness::{ChildGuard, Postgres, shared_kafka, shared_pg15, spawn_cdc, test_prefix};
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

/// Debezium's embedded engine capturing `public.types` of `db`, streaming once this returns:
/// the process and its output lines (one event each).
fn start_oracle(
    pg: &Postgres,
    db: &str,
    events: usize,
    schemas: bool,
) -> (ChildGuard, std::io::Lines<BufReader<std::process::ChildStdout>>, tempfile::TempDir) {
    let classes = tempfile::tempdir().unwrap();
    let cp = oracle_classpath(classes.path());
    let mut args = vec!["-cp".to_string(), cp, "DbzOracle".into(), pg.port().to_string(), db.into()];
    args.extend(["public.types".into(), events.to_string()]);
    if schemas {
        args.push("schemas".into());
    }
    let mut oracle =
        ChildGuard(Command::new("java").args(&args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
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
    while pg.sql(db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbz_oracle' AND active") != "1" {
        assert!(Instant::now() < deadline, "Debezium's slot never became active");
        std::thread::sleep(Duration::from_millis(100));
    }
    (oracle, lines, classes)
}

/// The changes both capture: three inserts, an update, a delete.
fn run_workload(pg: &Postgres, db: &str) {
    pg.sql(db, harness::PG_TYPES_ROWS);
    pg.sql(db, "UPDATE types SET t = 'changed', n = 2.5 WHERE id = 1; DELETE FROM types WHERE id = 2;");
}
const EVENTS: usize = 5;

/// Differences between Debezium's envelopes and cdc's: `op`, every column of `before` and
/// `after` (but the deliberate ones) and the `source` fields both fill the same way.
fn envelope_differences(theirs: &[Json], ours: &[Json]) -> Vec<String> {
    let mut diffs = Vec::new();
    for (i, (d, c)) in theirs.iter().zip(ours).enumerate() {
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
    diffs
}

#[test]
fn postgres_events_equal_debeziums() {
    let pg = shared_pg15();
    let db = pg.create_db("dbzoracle");
    pg.sql(&db, harness::PG_TYPES_DDL);
    let (_oracle, mut lines, _classes) = start_oracle(pg, &db, EVENTS, false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "name = \"dbzoracle\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\ntables = [\"public.types\"]\nsnapshot = \"never\"\n",
        pg.url(&db)
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ours = rt.block_on(async {
        let p = start_pipeline(&cfg, &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        run_workload(pg, &db);
        let e = p.wait_for(EVENTS).await;
        p.stop().await.0.unwrap();
        e
    });
    let theirs: Vec<Json> = (0..EVENTS)
        .map(|_| serde_json::from_str(&lines.next().expect("oracle event").unwrap()).expect("oracle JSON"))
        .collect();
    let diffs = envelope_differences(&theirs, &ours);
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}

/// Differences between two Connect schemas, struct field by struct field (so a column that
/// differs is named, not the whole row schema).
fn schema_differences(at: &str, theirs: &Json, ours: &Json) -> Vec<String> {
    let (Some(dfields), Some(cfields)) = (theirs["fields"].as_array(), ours["fields"].as_array()) else {
        return if theirs == ours { vec![] } else { vec![format!("{at}: Debezium {theirs}\n    cdc {ours}")] };
    };
    let strip = |s: &Json| -> Json {
        let mut s = s.clone();
        s.as_object_mut().map(|o| o.remove("fields"));
        s
    };
    let mut diffs = Vec::new();
    if strip(theirs) != strip(ours) {
        diffs.push(format!("{at}: Debezium {}\n    cdc {}", strip(theirs), strip(ours)));
    }
    if dfields.len() != cfields.len() {
        diffs.push(format!("{at}: {} fields from Debezium, {} from cdc", dfields.len(), cfields.len()));
    }
    for (d, c) in dfields.iter().zip(cfields) {
        diffs.extend(schema_differences(&format!("{at}.{}", d["field"].as_str().unwrap_or("?")), d, c));
    }
    diffs
}

/// With `json_schemas = true` each Kafka record carries the key and envelope schemas Debezium
/// declares (JsonConverter, `schemas.enable=true`), around the same payloads.
#[test]
fn postgres_records_with_schemas_equal_debeziums() {
    let pg = shared_pg15();
    let kafka = shared_kafka();
    let db = pg.create_db("dbzschemas");
    pg.sql(&db, harness::PG_TYPES_DDL);
    let (_oracle, mut lines, _classes) = start_oracle(pg, &db, EVENTS, true);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cdc.toml");
    // Named `oracle` like the Debezium connector: schema names start with the topic prefix.
    std::fs::write(
        &config,
        format!(
            "name = \"oracle\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\ntables = [\"public.types\"]\n\
             snapshot = \"never\"\nslot = \"cdc_schemas\"\npublication = \"cdc_schemas\"\n\
             [sink]\nkind = \"kafka\"\nbrokers = \"{}\"\njson_schemas = true\n\
             [positions]\npath = \"{}\"\n",
            pg.url(&db),
            kafka.bootstrap(),
            dir.path().join("positions.json").display()
        ),
    )
    .unwrap();
    let _cdc = spawn_cdc(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !harness::cdc_log(&config).contains("Streaming from the replication slot") {
        assert!(Instant::now() < deadline, "cdc did not start:\n{}", harness::cdc_log(&config));
        std::thread::sleep(Duration::from_millis(50));
    }
    run_workload(pg, &db);
    let theirs: Vec<Json> = (0..EVENTS)
        .map(|_| serde_json::from_str(&lines.next().expect("oracle event").unwrap()).expect("oracle JSON"))
        .collect();
    // Five events and the delete's tombstone.
    let ours = read_topic(&kafka.bootstrap(), "oracle.public.types", EVENTS + 1, false, Duration::ZERO);
    let ours: Vec<_> = ours.into_iter().filter(|r| r.value.is_some()).collect();
    assert_eq!(ours.len(), EVENTS);
    let mut diffs = Vec::new();
    for (i, (d, c)) in theirs.iter().zip(&ours).enumerate() {
        let (ckey, cvalue) = (c.key.as_ref().unwrap(), c.value.as_ref().unwrap());
        diffs.extend(schema_differences(&format!("event {i} key"), &d["key"]["schema"], &ckey["schema"]));
        if d["key"]["payload"] != ckey["payload"] {
            diffs.push(format!("event {i} key: Debezium {} cdc {}", d["key"]["payload"], ckey["payload"]));
        }
        diffs.extend(schema_differences(&format!("event {i} envelope"), &d["value"]["schema"], &cvalue["schema"]));
    }
    let theirs_payloads: Vec<Json> = theirs.iter().map(|d| d["value"]["payload"].clone()).collect();
    let ours_payloads: Vec<Json> = ours.iter().map(|c| c.value.as_ref().unwrap()["payload"].clone()).collect();
    diffs.extend(envelope_differences(&theirs_payloads, &ours_payloads));
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}
