//! Debezium 3.6 itself as the oracle for the MySQL encodings: its MySQL connector (embedded
//! engine, default settings, against a MariaDB that reports a 5.7 version, which is what it
//! accepts) and cdc capture the same changes to a table of every type; `before`, `after`,
//! `op`, keys and — with Kafka Connect schemas on — the key and envelope schemas must match.

mod harness;

use std::time::Duration;

use harness::kafka::read_topic;
use harness::oracle::{Mode, Oracle, SchemaRegistry, avro_differences, envelope_differences, record_differences};
use harness::pipeline::start_pipeline;
use harness::{MYSQL_TYPES_DDL, MYSQL_TYPES_ROWS, MariaDb, shared_kafka, spawn_cdc};

/// Columns where cdc differs from Debezium on purpose (docs/decisions.md): BIGINT UNSIGNED
/// above 2^63 (`biu`) is exact where Debezium wraps it to a negative number.
const DELIBERATE: &[&str] = &["biu"];
/// `gtid` is left out: Debezium's MySQL connector reads no MariaDB GTIDs (null), cdc sends them.
const SOURCE_FIELDS: &[&str] = &["connector", "snapshot", "db", "table", "server_id", "file", "row", "ts_ms"];
const EVENTS: usize = 5;

/// One server for this file's tests, reporting the version Debezium's MySQL connector accepts.
fn spoofed_mariadb() -> &'static MariaDb {
    static SERVER: std::sync::OnceLock<MariaDb> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| MariaDb::start_with(&["--version=5.7.19-MariaDB-spoofed"]))
}

/// Debezium capturing `db.types`, streaming once this returns.
fn start_oracle(db: &MariaDb, database: &str, mode: Mode) -> Oracle {
    let oracle = Oracle::start("mysql", db.port(), database, &format!("{database}.types"), EVENTS, mode);
    // Its binlog client logs this once it reads from the position of its (schema) snapshot.
    // (Counting binlog dump threads would be fooled by the other tests on this server.)
    oracle.wait_for_log(&format!("Connected to 127.0.0.1:{}", db.port()));
    oracle
}

/// Three inserts of edge values, an update, a delete.
fn run_workload(db: &MariaDb, database: &str) {
    db.sql(&format!("USE {database}; {MYSQL_TYPES_ROWS}"));
    db.sql(&format!(
        "USE {database}; UPDATE types SET vc = 'changed', d2 = 2.5 WHERE id = 1; DELETE FROM types WHERE id = 2;"
    ));
}

/// Starts cdc streaming `types` of `database` to Kafka, named `oracle` like the Debezium
/// connector (schema names start with the topic prefix), into the topic named after
/// `database`; `sink` adds settings to `[sink]`.
fn start_cdc(db: &MariaDb, database: &str, server_id: u32, dir: &std::path::Path, sink: &str) -> harness::ChildGuard {
    let config = dir.join("cdc.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"oracle\"\n[source]\nkind = \"mysql\"\nurl = \"{}\"\nserver_id = {server_id}\n\
             tables = [\"{database}.types\"]\nsnapshot = \"never\"\n[positions]\npath = \"{}\"\n\
             [sink]\nkind = \"kafka\"\nbrokers = \"{}\"\ntopic = \"{database}\"\n{sink}\n",
            db.url(""),
            dir.join("positions.json").display(),
            shared_kafka().bootstrap(),
        ),
    )
    .unwrap();
    let cdc = spawn_cdc(&config);
    harness::wait_for_cdc_log(&config, "Streaming binlog", Duration::from_secs(60));
    cdc
}

#[test]
fn mysql_events_equal_debeziums() {
    let db = spoofed_mariadb();
    db.sql(&format!("CREATE DATABASE dbzmy; USE dbzmy; {MYSQL_TYPES_DDL}"));
    let mut oracle = start_oracle(db, "dbzmy", Mode::Json);
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "name = \"oracle\"\n[source]\nkind = \"mysql\"\nurl = \"{}\"\nserver_id = 7201\ntables = [\"dbzmy.types\"]\nsnapshot = \"never\"\n",
        db.url("")
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ours = rt.block_on(async {
        let p = start_pipeline(&cfg, &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        run_workload(db, "dbzmy");
        let e = p.wait_for(EVENTS).await;
        p.stop().await.0.unwrap();
        e
    });
    let diffs = envelope_differences(&oracle.events(EVENTS), &ours, DELIBERATE, SOURCE_FIELDS);
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}

#[test]
fn mysql_records_with_schemas_equal_debeziums() {
    let db = spoofed_mariadb();
    let kafka = shared_kafka();
    db.sql(&format!("CREATE DATABASE dbzmys; USE dbzmys; {MYSQL_TYPES_DDL}"));
    let mut oracle = start_oracle(db, "dbzmys", Mode::JsonSchemas);
    let dir = tempfile::tempdir().unwrap();
    let _cdc = start_cdc(db, "dbzmys", 7202, dir.path(), "json_schemas = true");
    run_workload(db, "dbzmys");
    let theirs = oracle.events(EVENTS);
    let ours = read_topic(&kafka.bootstrap(), "dbzmys", EVENTS + 1, false, Duration::ZERO);
    let ours: Vec<_> = ours.into_iter().filter(|r| r.value.is_some()).collect();
    let diffs = record_differences(&theirs, &ours, DELIBERATE, SOURCE_FIELDS);
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}

/// With `format = "avro"` cdc registers the same Avro schemas as Debezium with Confluent's
/// AvroConverter, and its records decode to the same envelopes.
#[test]
fn mysql_avro_records_equal_debeziums() {
    let db = spoofed_mariadb();
    let kafka = shared_kafka();
    db.sql(&format!("CREATE DATABASE dbzmya; USE dbzmya; {MYSQL_TYPES_DDL}"));
    let (their_registry, our_registry) = (SchemaRegistry::start(), SchemaRegistry::start());
    let mut oracle = start_oracle(db, "dbzmya", Mode::Avro(&their_registry.url));
    let dir = tempfile::tempdir().unwrap();
    let registry = format!("format = \"avro\"\nschema_registry = {{ url = \"{}\" }}", our_registry.url);
    let _cdc = start_cdc(db, "dbzmya", 7203, dir.path(), &registry);
    run_workload(db, "dbzmya");
    let theirs = oracle.events(EVENTS);
    let ours = read_topic(&kafka.bootstrap(), "dbzmya", EVENTS + 1, false, Duration::ZERO);
    let ours: Vec<_> = ours.into_iter().filter(|r| r.value.is_some()).collect();
    let diffs = avro_differences(
        (&their_registry, "oracle.dbzmya.types", &theirs),
        (&our_registry, "dbzmya", &ours),
        DELIBERATE,
        SOURCE_FIELDS,
    );
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}
