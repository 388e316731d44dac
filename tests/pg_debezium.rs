//! Debezium 3.6 itself as the oracle: the same PostgreSQL changes captured by Debezium's
//! PostgreSQL connector (embedded engine, default settings) and by cdc give the same
//! `before`, `after`, `op` and `source` fields; with Kafka Connect schemas on (JsonConverter's
//! `schemas.enable=true`), the same key and value schemas too.

mod harness;

use std::time::{Duration, Instant};

use harness::kafka::read_topic;
use harness::oracle::{Mode, Oracle, SchemaRegistry, avro_differences, envelope_differences, record_differences};
use harness::pipeline::start_pipeline;
use harness::{Postgres, shared_kafka, shared_pg15, spawn_cdc};

/// Columns where cdc differs from Debezium on purpose (see docs/decisions.md):
/// Debezium 3.6 emits a multi-dimensional array (`a2`) as [null, null] where cdc keeps the
/// nested values, and null for the `name` type (`nm`) where cdc sends the text.
const DELIBERATE: &[&str] = &["a2", "nm"];
const SOURCE_FIELDS: &[&str] = &["connector", "snapshot", "db", "schema", "table", "txId", "lsn", "xmin", "ts_ms"];

/// Debezium capturing `public.types` of `db`, streaming once this returns.
fn start_oracle(pg: &Postgres, db: &str, mode: Mode) -> Oracle {
    let oracle = Oracle::start("postgres", pg.port(), db, "public.types", EVENTS, mode);
    // Debezium is streaming once its slot is active.
    let deadline = Instant::now() + Duration::from_secs(60);
    // DbzOracle names its slot after the database (slots are per server, and tests share one).
    let active = format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dbz_{db}' AND active");
    while pg.sql(db, &active) != "1" {
        assert!(Instant::now() < deadline, "Debezium's slot never became active");
        std::thread::sleep(Duration::from_millis(100));
    }
    oracle
}

/// The changes both capture: three inserts, an update, a delete.
fn run_workload(pg: &Postgres, db: &str) {
    pg.sql(db, harness::PG_TYPES_ROWS);
    pg.sql(db, "UPDATE types SET t = 'changed', n = 2.5 WHERE id = 1; DELETE FROM types WHERE id = 2;");
}
const EVENTS: usize = 5;

/// Starts cdc streaming `public.types` of `db` to Kafka, named `oracle` like the Debezium
/// connector (schema names start with the topic prefix), into the topic named after `db` (tests
/// share the broker); `sink` adds settings to `[sink]`.
fn start_cdc(pg: &Postgres, db: &str, dir: &std::path::Path, sink: &str) -> harness::ChildGuard {
    let config = dir.join("cdc.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"oracle\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\ntables = [\"public.types\"]\n\
             snapshot = \"never\"\nslot = \"cdc_{db}\"\npublication = \"cdc_{db}\"\n\
             [positions]\npath = \"{}\"\n[sink]\nkind = \"kafka\"\nbrokers = \"{}\"\ntopic = \"{db}\"\n{sink}\n",
            pg.url(db),
            dir.join("positions.json").display(),
            shared_kafka().bootstrap(),
        ),
    )
    .unwrap();
    let cdc = spawn_cdc(&config);
    harness::wait_for_cdc_log(&config, "Streaming from the replication slot", Duration::from_secs(60));
    cdc
}

#[test]
fn postgres_events_equal_debeziums() {
    let pg = shared_pg15();
    let db = pg.create_db("dbzoracle");
    pg.sql(&db, harness::PG_TYPES_DDL);
    let mut oracle = start_oracle(pg, &db, Mode::Json);
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
    let diffs = envelope_differences(&oracle.events(EVENTS), &ours, DELIBERATE, SOURCE_FIELDS);
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}

/// With `json_schemas = true` each Kafka record carries the key and envelope schemas Debezium
/// declares (JsonConverter, `schemas.enable=true`), around the same payloads.
#[test]
fn postgres_records_with_schemas_equal_debeziums() {
    let pg = shared_pg15();
    let kafka = shared_kafka();
    let db = pg.create_db("dbzschemas");
    pg.sql(&db, harness::PG_TYPES_DDL);
    let mut oracle = start_oracle(pg, &db, Mode::JsonSchemas);
    let dir = tempfile::tempdir().unwrap();
    let _cdc = start_cdc(pg, &db, dir.path(), "json_schemas = true");
    run_workload(pg, &db);
    let theirs = oracle.events(EVENTS);
    // Five events and the delete's tombstone.
    let ours = read_topic(&kafka.bootstrap(), &db, EVENTS + 1, false, Duration::ZERO);
    let ours: Vec<_> = ours.into_iter().filter(|r| r.value.is_some()).collect();
    let diffs = record_differences(&theirs, &ours, DELIBERATE, SOURCE_FIELDS);
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}

/// With `format = "avro"` cdc registers the same Avro key and value schemas as Debezium with
/// Confluent's AvroConverter (each in its own registry), and its records decode to the same
/// envelopes.
#[test]
fn postgres_avro_records_equal_debeziums() {
    let pg = shared_pg15();
    let kafka = shared_kafka();
    let db = pg.create_db("dbzavro");
    pg.sql(&db, harness::PG_TYPES_DDL);
    let (their_registry, our_registry) = (SchemaRegistry::start(), SchemaRegistry::start());
    let mut oracle = start_oracle(pg, &db, Mode::Avro(&their_registry.url));
    let dir = tempfile::tempdir().unwrap();
    let _cdc = start_cdc(
        pg,
        &db,
        dir.path(),
        &format!("format = \"avro\"\nschema_registry = {{ url = \"{}\" }}", our_registry.url),
    );
    run_workload(pg, &db);
    let theirs = oracle.events(EVENTS);
    let ours = read_topic(&kafka.bootstrap(), &db, EVENTS + 1, false, Duration::ZERO);
    let ours: Vec<_> = ours.into_iter().filter(|r| r.value.is_some()).collect();
    let diffs = avro_differences(
        (&their_registry, "oracle.public.types", &theirs),
        (&our_registry, &db, &ours),
        DELIBERATE,
        SOURCE_FIELDS,
    );
    assert!(diffs.is_empty(), "{} differences from Debezium:\n{}", diffs.len(), diffs.join("\n"));
}
