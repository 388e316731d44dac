//! The PostgreSQL source against real PostgreSQL 15 (Debian) and 13 / 17 (npm builds).

mod harness;

use std::time::Duration;

use harness::pipeline::start_pipeline;
use harness::{Postgres, shared_pg15};
use serde_json::{Value as Json, json};

fn config(pg: &Postgres, db: &str, snapshot: &str) -> String {
    format!(
        r#"
name = "{db}"
[source]
kind = "postgres"
url = "{url}"
tables = ["public.*"]
snapshot = "{snapshot}"
[pipeline]
checkpoint_interval_ms = 50
batch_events = 64
"#,
        url = pg.url(db),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn basic_flow(pg: &Postgres, db: &str) {
    pg.create_db(db);
    pg.sql(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, name text, n numeric(10,2)); INSERT INTO t VALUES (1, 'snap', 1.50);
         INSERT INTO t SELECT g, 'bulk', 0 FROM generate_series(100, 226) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(pg, db, "initial"), &dir.path().join("p.json"), None).await;
        // 128 rows: two full batches of 64; the first row is marked `first`, the final `last`.
        let e = p.wait_for(128).await;
        assert_eq!(e[0]["op"], "r");
        assert_eq!(e[0]["after"]["name"], "snap");
        assert_eq!(e[0]["source"]["connector"], "postgresql");
        let markers: Vec<&str> = e[..128].iter().map(|x| x["source"]["snapshot"].as_str().unwrap()).collect();
        assert_eq!((markers[0], markers[127]), ("first", "last"));
        assert!(markers[1..127].iter().all(|m| *m == "true"), "{markers:?}");
        pg.sql(db, "BEGIN; INSERT INTO t VALUES (2, 'two', 2); UPDATE t SET name = 'uno' WHERE id = 1; DELETE FROM t WHERE id = 2; COMMIT;");
        let e = p.wait_for(131).await;
        let e = &e[127..];
        let ops: Vec<&str> = e.iter().map(|x| x["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["r", "c", "u", "d"]);
        assert_eq!(e[1]["after"], json!({"id": 2, "name": "two", "n": "AMg="}));
        assert_eq!(e[2]["after"]["name"], "uno");
        assert_eq!(e[2]["before"], Json::Null); // default replica identity: no old row for a non-key update
        assert_eq!(e[3]["before"], json!({"id": 2, "name": null, "n": null})); // key only
        assert_eq!(e[1]["source"]["schema"], "public");
        assert_eq!(e[1]["source"]["db"], db);
        assert_eq!(e[1]["source"]["txId"], e[3]["source"]["txId"]);
        // Slot lag is reported (bytes between the server's WAL head and the slot's confirmed flush).
        assert!(p.metrics.status().source_lag_bytes.is_some());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (outcome, pos, _) = p.stop().await;
        outcome.unwrap();
        assert!(pos.unwrap().to_string().starts_with("pg:lsn="));
    });
}

#[test]
fn pg15_snapshot_then_stream() {
    basic_flow(shared_pg15(), "basic15");
}

#[test]
fn pg13_and_pg17_snapshot_then_stream() {
    let pg13 = Postgres::start(13);
    basic_flow(&pg13, "basic13");
    let pg17 = Postgres::start(17);
    basic_flow(&pg17, "basic17");
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Java's BigInteger.toByteArray() of `n`, base64: Debezium's precise decimal.
fn unscaled(n: i128) -> String {
    let bytes = n.to_be_bytes();
    let mut start = 0;
    while start < 15
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    b64(&bytes[start..])
}

#[test]
fn every_type_with_edge_values_in_debezium_encoding() {
    let pg = shared_pg15();
    let db = pg.create_db("pgtypes");
    pg.sql(&db, harness::PG_TYPES_DDL);
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(pg, &db, "never"), &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        pg.sql(&db, harness::PG_TYPES_ROWS);
        let e = p.wait_for(3).await;
        let r = &e[0]["after"];
        assert_eq!(
            (r["i2"].clone(), r["i4"].clone(), r["i8"].clone()),
            (json!(-32768), json!(-2147483648i64), json!(i64::MIN))
        );
        assert_eq!((r["f4"].clone(), r["f8"].clone()), (json!("NaN"), json!("-Infinity")));
        assert_eq!(r["n"], unscaled(-12345678901234567890123456780123456789));
        assert_eq!(r["nv"], Json::Null); // NaN has no precise form
        assert_eq!(r["m"], unscaled(-9223372036854775808));
        assert_eq!(
            (r["b"].clone(), r["t"].clone(), r["vc"].clone(), r["c"].clone()),
            (json!(true), json!("emoji 😀"), json!("abc"), json!("ab "))
        );
        assert_eq!(r["by"], b64(&[0, 255]));
        assert_eq!(r["d"], -719_528); // 0001-01-01 BC is proleptic year 0
        assert_eq!(r["tm"], 86_400_000_000i64); // time: MicroTime
        assert_eq!(r["tm3"], 45_296_789); // time(3): Time in ms
        assert_eq!(r["ttz"], "06:30:00Z");
        assert_eq!(r["ts"], 1); // MicroTimestamp
        assert_eq!(r["ts3"], 946_684_800_123i64); // timestamp(3): Timestamp in ms
        assert_eq!(r["tstz"], "2024-02-29T10:34:56.789000Z"); // fraction as wide as the column
        assert_eq!(r["iv"], 37_091_106_500_000i64); // MicroDuration, 365.25/12-day months
        assert_eq!(r["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert_eq!((r["j"].clone(), r["jb"].clone()), (json!(r#"{"a": [1, 2]}"#), json!(r#"{"b": 1}"#)));
        assert_eq!(
            (r["ip"].clone(), r["net"].clone(), r["mac"].clone()),
            (json!("192.168.0.1/24"), json!("10.0.0.0/8"), json!("08:00:2b:01:02:03"))
        );
        assert_eq!(
            (r["bt"].clone(), r["bt8"].clone(), r["vb"].clone()),
            (json!(true), json!(b64(&[0x81])), json!(b64(&[0x05])))
        );
        assert_eq!(
            (r["ai"].clone(), r["at"].clone(), r["a2"].clone()),
            (json!([1, null, 3]), json!(["a b", "c"]), json!([[1, 2], [3, 4]]))
        );
        assert_eq!(
            (r["e"].clone(), r["dom"].clone(), r["rng"].clone(), r["pt"].clone()),
            (
                json!("happy"),
                json!(5),
                json!("[1,10)"),
                json!({"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": null, "x": 1.0, "y": 2.0})
            )
        );

        let r = &e[1]["after"];
        assert_eq!(
            (r["i2"].clone(), r["i8"].clone(), r["f4"].clone(), r["f8"].clone()),
            (json!(32767), json!(i64::MAX), json!("Infinity"), json!(1e308))
        );
        assert_eq!(r["n"], unscaled(1));
        assert_eq!(r["nv"], json!({"scale": 3, "value": unscaled(123456)}));
        assert_eq!(r["m"], unscaled(9223372036854775807));
        assert_eq!((r["t"].clone(), r["c"].clone(), r["by"].clone()), (json!(""), json!("   "), json!("")));
        // ±infinity: the numbers Debezium emits for date and timestamp, the text for timestamptz.
        assert_eq!(
            (r["d"].clone(), r["ts"].clone(), r["tstz"].clone()),
            (json!(-2147472692i64), json!(9223372036825200000i64), json!("-infinity"))
        );
        assert_eq!(r["ts3"], json!(-9223372036832400i64));
        assert_eq!(r["ttz"], "11:59:59.999999Z");
        assert_eq!(r["iv"], -86_401_000_000i64);
        assert_eq!((r["bt"].clone(), r["bt8"].clone(), r["vb"].clone()), (json!(false), json!(""), json!("")));
        assert_eq!((r["ai"].clone(), r["j"].clone(), r["rng"].clone()), (json!([]), json!("null"), json!("empty")));
        let r3 = e[2]["after"].as_object().unwrap();
        assert_eq!(r3.len(), 39);
        assert!(r3.iter().filter(|(k, _)| *k != "id").all(|(_, v)| v.is_null()));
        p.stop().await.0.unwrap();
    });
}

#[test]
fn toast_with_and_without_replica_identity_full_truncate_and_ddl() {
    let pg = shared_pg15();
    let db = pg.create_db("pgtoast");
    pg.sql(&db, "CREATE TABLE plain (id int PRIMARY KEY, big text, n int);
                 CREATE TABLE full_ri (id int PRIMARY KEY, big text, n int); ALTER TABLE full_ri REPLICA IDENTITY FULL;
                 ALTER TABLE plain ALTER COLUMN big SET STORAGE EXTERNAL; ALTER TABLE full_ri ALTER COLUMN big SET STORAGE EXTERNAL;");
    let big: String = "x".repeat(10_000);
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(pg, &db, "never"), &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        pg.sql(&db, &format!("INSERT INTO plain VALUES (1, '{big}', 0); INSERT INTO full_ri VALUES (1, '{big}', 0);"));
        pg.sql(&db, "UPDATE plain SET n = 1; UPDATE full_ri SET n = 1;");
        pg.sql(
            &db,
            "ALTER TABLE plain ADD COLUMN added text DEFAULT 'd'; INSERT INTO plain (id, big, n) VALUES (2, 's', 2);",
        );
        pg.sql(&db, "TRUNCATE plain;");
        let e = p.wait_for(6).await;
        let ops: Vec<&str> = e.iter().map(|x| x["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["c", "c", "u", "u", "c", "t"]);
        // Unchanged TOAST value without the old row: Debezium's placeholder, never an empty or wrong value.
        assert_eq!(e[2]["after"]["big"], "__debezium_unavailable_value");
        assert_eq!(e[2]["after"]["n"], 1);
        // REPLICA IDENTITY FULL: taken from the old row.
        assert_eq!(e[3]["after"]["big"].as_str().unwrap().len(), 10_000);
        // Keyed by the primary key, not by the replica identity's columns (FULL: all of them).
        let keys = p.keys.lock().unwrap().clone();
        assert_eq!(keys[..4], [json!({"id": 1}), json!({"id": 1}), json!({"id": 1}), json!({"id": 1})]);
        assert_eq!(e[3]["before"]["n"], 0);
        // The column added mid-stream is in the next event.
        assert_eq!(e[4]["after"], json!({"id": 2, "big": "s", "n": 2, "added": "d"}));
        assert_eq!((e[5]["before"].clone(), e[5]["after"].clone()), (Json::Null, Json::Null));
        assert_eq!(e[5]["source"]["table"], "plain");
        p.stop().await.0.unwrap();
    });
}

#[test]
fn resume_from_the_stored_lsn_and_definite_errors() {
    let pg = shared_pg15();
    let db = pg.create_db("pgresume");
    pg.sql(&db, "CREATE TABLE t (id int PRIMARY KEY)");
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("p.json");
    rt().block_on(async {
        let p = start_pipeline(&config(pg, &db, "initial"), &positions, None).await;
        p.wait_ready().await;
        pg.sql(&db, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);");
        p.wait_for(2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, stored, _) = p.stop().await;
        let stored = stored.unwrap();
        // The slot was never told more than the stored position (the last checkpoint, saved at
        // shutdown after the stream closed, reaches the slot on the next start).
        let confirmed: cdc::model::Lsn = pg
            .sql(&db, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc_pgresume'")
            .parse()
            .unwrap();
        let cdc::model::Position::Postgres(saved) = &stored else { panic!("{stored}") };
        assert!(confirmed <= saved.lsn, "slot at {confirmed}, stored {}", saved.lsn);
        assert!(confirmed.0 > 0);
        pg.sql(&db, "INSERT INTO t VALUES (3); INSERT INTO t VALUES (4);");
        let p = start_pipeline(&config(pg, &db, "initial"), &positions, None).await;
        p.wait_for(2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, _, e) = p.stop().await;
        let ids: Vec<i64> = e.iter().map(|x| x["after"]["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [3, 4], "only the changes after the stored position");

        // A stored position older than the slot: someone else consumed changes.
        let err = run_error(pg, &db, &positions, Some("pg:lsn=0/10")).await;
        assert!(err.contains("past the stored position"), "{err}");
        // The slot dropped behind our back.
        pg.sql(&db, "SELECT pg_drop_replication_slot('cdc_pgresume')");
        let err = run_error(pg, &db, &positions, None).await;
        assert!(err.contains("does not exist") && err.contains("snapshot"), "{err}");
    });
}

async fn run_error(pg: &Postgres, db: &str, positions: &std::path::Path, from: Option<&str>) -> String {
    start_pipeline(&config(pg, db, "initial"), positions, from.map(|f| f.parse().unwrap())).await.definite_error().await
}

#[test]
fn missing_replication_privilege_and_wrong_password() {
    let pg = shared_pg15();
    let db = pg.create_db("pgprivs");
    pg.sql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY); CREATE ROLE norepl LOGIN PASSWORD 'pw';
                 CREATE PUBLICATION cdc_pgprivs FOR TABLE t; GRANT SELECT ON t TO norepl;",
    );
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = config(pg, &db, "never").replace("postgres://postgres@", "postgres://norepl:pw@");
        let err = start_pipeline(&cfg, &dir.path().join("p.json"), None).await.definite_error().await;
        assert!(err.contains("REPLICATION"), "{err}");
    });
}

/// With nothing to capture (changes only in unpublished tables), keepalives still move the
/// slot forward, so WAL does not pile up; a stalled sink does not cost the connection.
#[test]
fn idle_or_filtered_database_still_advances_the_slot() {
    let pg = Postgres::start_with(15, &[("wal_sender_timeout", "2s")]);
    let db = pg.create_db("pgidle");
    pg.sql(&db, "CREATE TABLE captured (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let cfg = config(&pg, &db, "never").replace("tables = [\"public.*\"]", "tables = [\"public.captured\"]");
        let p = start_pipeline(&cfg, &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        let slot_lsn =
            || pg.sql(&db, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc_pgidle'");
        let before: cdc::model::Lsn = slot_lsn().parse().unwrap();
        pg.sql(&db, "INSERT INTO other SELECT generate_series(1, 1000)");
        let target: cdc::model::Lsn = pg.sql(&db, "SELECT pg_current_wal_lsn()").parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let now: cdc::model::Lsn = slot_lsn().parse().unwrap();
            if now >= target {
                assert!(now > before);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "slot stuck at {now}, WAL at {target}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Still streaming after several sender timeouts, and nothing was emitted.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!p.task.is_finished());
        assert!(p.events.lock().unwrap().is_empty());

        // A sink stalled for 4 sender timeouts: the connection stays (same walsender), and
        // every row arrives once it moves again.
        let walsender = || pg.sql(&db, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'cdc_pgidle'");
        let pid = walsender();
        p.hold_at(0);
        pg.sql(&db, "INSERT INTO captured SELECT generate_series(1, 5000)");
        tokio::time::sleep(Duration::from_secs(8)).await;
        p.release();
        p.wait_for(5000).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ids: Vec<i64> = p.events.lock().unwrap().iter().map(|x| x["after"]["id"].as_i64().unwrap()).collect();
        assert!(ids == (1..=5000).collect::<Vec<i64>>(), "{} rows, not 1..=5000 once each", ids.len());
        assert_eq!(walsender(), pid, "the replication connection was dropped while the sink stalled");
        p.stop().await.0.unwrap();
    });
}

/// Waits until `check` holds (30 s at most).
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A transaction over `logical_decoding_work_mem` is streamed by the server before it commits
/// (protocol 2+): cdc spools it to local disk and emits it at its commit, in commit order with
/// the transactions around it, without the subtransaction rolled back inside it; an aborted
/// one never shows. A restart while one is open loses nothing: the server sends it at commit.
#[test]
fn large_transactions_stream_before_commit_through_a_spool() {
    use std::io::Write;
    let pg = shared_pg15();
    let db = pg.create_db("pgstream");
    // The walsender of this database streams any transaction over 64 kB.
    pg.sql(&db, "ALTER DATABASE pgstream SET logical_decoding_work_mem = '64kB'");
    pg.sql(&db, "CREATE TABLE t (id int PRIMARY KEY, v text)");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let spooled_files = || std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    let cfg = config(pg, &db, "never")
        .replace("snapshot = \"never\"", &format!("snapshot = \"never\"\nspool_dir = \"{}\"", spool.display()));
    let positions = dir.path().join("p.json");
    // A psql session holding a transaction open.
    let open_tx = |sql: &str| {
        let mut child = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg(pg.url(&db))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "BEGIN; {sql}").unwrap();
        stdin.flush().unwrap();
        (child, stdin)
    };
    let commit = |(mut child, mut stdin): (std::process::Child, std::process::ChildStdin)| {
        writeln!(stdin, "COMMIT;").unwrap();
        drop(stdin);
        assert!(child.wait().unwrap().success());
    };
    rt().block_on(async {
        let p = start_pipeline(&cfg, &positions, None).await;
        p.wait_ready().await;
        // 20k rows, a rolled-back savepoint of 5k, 10k more.
        let a = open_tx(
            "INSERT INTO t SELECT g, repeat('a', 50) FROM generate_series(1, 20000) g;
             SAVEPOINT s1; INSERT INTO t SELECT g, 'rolled back' FROM generate_series(100001, 105000) g;
             ROLLBACK TO SAVEPOINT s1;
             INSERT INTO t SELECT g, repeat('b', 50) FROM generate_series(20001, 30000) g;",
        );
        until("the open transaction in the spool", || p.metrics.status().spooled_bytes > 0).await;
        assert_eq!(spooled_files(), 1);
        // A small transaction commits meanwhile and goes out at once; nothing of the open one has.
        pg.sql(&db, "INSERT INTO t VALUES (500000, 'small')");
        let e = p.wait_for(1).await;
        assert_eq!(e[0]["after"]["id"], 500000);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(p.events.lock().unwrap().len(), 1, "only committed changes go out");
        commit(a);
        // A large transaction that aborts after being streamed, then one more small one.
        pg.sql(&db, "BEGIN; INSERT INTO t SELECT g, 'aborted' FROM generate_series(200001, 220000) g; ROLLBACK;");
        pg.sql(&db, "INSERT INTO t VALUES (500001, 'after')");

        let e = p.wait_for(30_002).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(p.events.lock().unwrap().len(), e.len(), "nothing more than the committed rows");
        let ids: Vec<i64> = e.iter().map(|x| x["after"]["id"].as_i64().unwrap()).collect();
        let expected: Vec<i64> = [500_000].into_iter().chain(1..=30_000).chain([500_001]).collect();
        assert_eq!(ids, expected, "committed rows once, in commit order, without the rolled-back savepoint");
        assert!(e.iter().all(|x| x["op"] == "c"));
        assert_eq!(e[1]["after"]["v"], "a".repeat(50));
        assert_eq!(e[30_000]["after"]["v"], "b".repeat(50));
        let tx = &e[1]["source"]["txId"];
        assert!(e[1..30_001].iter().all(|x| x["source"]["txId"] == *tx));
        assert_ne!(e[30_001]["source"]["txId"], *tx);
        until("an empty spool", || p.metrics.status().spooled_bytes == 0 && spooled_files() == 0).await;

        // Stopped while a streamed transaction is open: its spool goes; after the restart the
        // server sends it whole at its commit.
        let b = open_tx("INSERT INTO t SELECT g, 'b2' FROM generate_series(300001, 320000) g;");
        until("the second open transaction in the spool", || p.metrics.status().spooled_bytes > 0).await;
        let (outcome, _, _) = p.stop().await;
        outcome.unwrap();
        assert_eq!(spooled_files(), 0, "the spool is removed on shutdown");
        let p = start_pipeline(&cfg, &positions, None).await;
        p.wait_ready().await;
        commit(b);
        let e = p.wait_for(20_000).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(p.events.lock().unwrap().len(), 20_000);
        let ids: Vec<i64> = e.iter().map(|x| x["after"]["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, (300_001..=320_000).collect::<Vec<i64>>());

        // The server really streamed: the first, the aborted and the second transaction.
        let streamed: i64 = pg
            .sql(&db, "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'cdc_pgstream'")
            .parse()
            .unwrap();
        assert!(streamed >= 3, "stream_txns = {streamed}");
        p.stop().await.0.unwrap();
    });
}

/// An initial snapshot stopped part-way goes on after the last key delivered (a composite key
/// declared in another order than its columns), then streams from the slot's consistent point: both parts plus the streamed changes are
/// exactly the tables' contents.
/// Prepared transactions (two-phase commit) arrive when they commit, whole, in commit order:
/// cdc does not ask pgoutput for `two_phase`, so the server decodes a prepared transaction at
/// COMMIT PREPARED, and one rolled back never shows.
#[test]
fn prepared_transactions_arrive_at_commit_prepared() {
    let pg = shared_pg15();
    pg.create_db("twophase");
    pg.sql("twophase", "CREATE TABLE t (id int PRIMARY KEY, note text)");
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(pg, "twophase", "never"), &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        pg.sql(
            "twophase",
            "BEGIN; INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'a'); PREPARE TRANSACTION 'a'",
        );
        pg.sql("twophase", "BEGIN; INSERT INTO t VALUES (10, 'b'); PREPARE TRANSACTION 'b'");
        pg.sql("twophase", "INSERT INTO t VALUES (3, 'plain')");
        let e = p.wait_for(1).await;
        assert_eq!(e[0]["after"]["id"], 3);
        pg.sql("twophase", "ROLLBACK PREPARED 'b'");
        pg.sql("twophase", "COMMIT PREPARED 'a'");
        pg.sql("twophase", "INSERT INTO t VALUES (4, 'plain')");
        p.wait_for_event("the insert after COMMIT PREPARED", |e| e["after"]["id"] == 4).await;
        let (outcome, _, e) = p.stop().await;
        outcome.unwrap();
        let ids: Vec<i64> = e.iter().map(|x| x["after"]["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [3, 1, 2, 4]);
        // Rows 1 and 2 are one transaction.
        assert_eq!(e[1]["source"]["txId"], e[2]["source"]["txId"]);
        assert_ne!(e[1]["source"]["txId"], e[0]["source"]["txId"]);
    });
}

#[test]
fn interrupted_snapshot_resumes_after_the_last_key_delivered() {
    let pg = shared_pg15();
    let db = pg.create_db("pgsnapresume");
    pg.sql(
        &db,
        "CREATE TABLE a (k1 int, k2 text, v int, PRIMARY KEY (k2, k1));
         CREATE TABLE b (v int);
         CREATE TABLE c (id int PRIMARY KEY, v int);
         INSERT INTO a SELECT g / 4, (ARRAY['a', 'B', 'c', 'D'])[g % 4 + 1], g FROM generate_series(0, 3999) g;
         INSERT INTO b SELECT generate_series(1, 50);
         INSERT INTO c SELECT g, g FROM generate_series(1, 3000) g;",
    );
    let cfg = config(pg, &db, "initial")
        .replace("snapshot = \"initial\"", "snapshot = \"initial\"\nsnapshot_chunk_rows = 500");
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("p.json");
    let key_of = |table: &str, row: &Json| match table {
        "a" => format!("{}/{}", row["k1"], row["k2"]),
        "b" => row.to_string(),
        _ => row["id"].to_string(),
    };
    rt().block_on(async {
        let p = start_pipeline(&cfg, &positions, None).await;
        p.hold_at(1500);
        p.wait_for_snapshot_progress().await;
        pg.sql(&db, "UPDATE a SET v = -1 WHERE k1 = 0 AND k2 = 'a'; DELETE FROM c WHERE id = 3000; INSERT INTO c VALUES (3001, 3001);");
        p.release();
        let (outcome, stored, first) = p.stop().await;
        outcome.unwrap();
        let stored = stored.unwrap();
        let progress = stored.snapshot_progress().expect("stopped inside the snapshot").clone();
        assert_eq!(progress.table, ("public".to_string(), "a".to_string()), "{stored}");

        let p = start_pipeline(&cfg, &positions, None).await;
        p.wait_for_event("the streamed insert", |e| e["op"] == "c" && e["after"]["id"] == 3001).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (outcome, end, second) = p.stop().await;
        outcome.unwrap();
        assert!(end.unwrap().snapshot_progress().is_none());

        let key = progress.after_key().expect("a keyed table");
        // In the key's order: (k2, k1).
        let stored_key = format!("{}/\"{}\"", String::from_utf8_lossy(&key[1]), String::from_utf8_lossy(&key[0]));
        let order: Vec<String> = pg
            .sql(&db, "SELECT k1 || '/\"' || k2 || '\"' FROM a ORDER BY k2, k1")
            .lines()
            .map(str::to_string)
            .collect();
        let at = order.iter().position(|k| *k == stored_key).unwrap_or_else(|| panic!("{stored_key} not in a"));
        let first_of = |table: &str| second.iter().find(|e| e["source"]["table"] == table).unwrap();
        let next_a = first_of("a");
        assert_eq!((next_a["op"].as_str(), key_of("a", &next_a["after"])), (Some("r"), order[at + 1].clone()));
        // Two connections: b and c are read beside a (their rows come before a's last one),
        // and a table the progress records as done is not read again.
        let all: Vec<&Json> = first.iter().chain(second.iter()).collect();
        let last_a = all.iter().rposition(|e| e["source"]["table"] == "a").unwrap();
        assert!(all[..last_a].iter().any(|e| e["source"]["table"] != "a"), "tables were read one after another");
        if progress.also.iter().any(|t| t.table.1 == "b" && t.done) {
            assert!(second.iter().all(|e| e["source"]["table"] != "b"), "b was done: not read again");
        }
        if let Some(c) = progress.also.iter().find(|t| t.table.1 == "c" && !t.done) {
            let after: i64 = String::from_utf8(c.after_key().unwrap()[0].clone()).unwrap().parse().unwrap();
            assert_eq!(first_of("c")["after"]["id"], after + 1, "c goes on after its key");
        }
        assert!(first.iter().any(|e| e["source"]["table"] == "a" && key_of("a", &e["after"]) == stored_key));

        let all: Vec<Json> = first.iter().chain(second.iter()).cloned().collect();
        let replica = harness::pipeline::replay(&all, key_of);
        let mut expected = std::collections::BTreeMap::new();
        for line in pg.sql(&db, "SELECT json_build_object('k1', k1, 'k2', k2, 'v', v) FROM a").lines() {
            let row: Json = serde_json::from_str(line).unwrap();
            expected.insert(("a".to_string(), key_of("a", &row)), row);
        }
        for line in pg.sql(&db, "SELECT json_build_object('v', v) FROM b").lines() {
            let row: Json = serde_json::from_str(line).unwrap();
            expected.insert(("b".to_string(), key_of("b", &row)), row);
        }
        for line in pg.sql(&db, "SELECT json_build_object('id', id, 'v', v) FROM c").lines() {
            let row: Json = serde_json::from_str(line).unwrap();
            expected.insert(("c".to_string(), key_of("c", &row)), row);
        }
        assert_eq!(replica.len(), expected.len());
        assert!(replica == expected, "replayed events differ from the tables");
        assert!(second.iter().any(|e| e["op"] == "u" && e["after"]["v"] == -1));
    });
}

/// The catalog connection ends its transaction once every reader has imported the snapshot:
/// a server whose `idle_in_transaction_session_timeout` is shorter than the snapshot (held here
/// by a stalled sink) does not cut it, and the stream that follows uses it without a restart.
#[test]
fn a_snapshot_longer_than_idle_in_transaction_timeout() {
    let pg = shared_pg15();
    let db = pg.create_db("idletx");
    pg.sql(
        &db,
        "ALTER DATABASE idletx SET idle_in_transaction_session_timeout = '300ms';
         CREATE TABLE t (id int PRIMARY KEY, pad text);
         INSERT INTO t SELECT g, repeat('p', 100) FROM generate_series(1, 300000) g;",
    );
    let cfg = config(pg, &db, "initial");
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("p.json");
    rt().block_on(async {
        let p = start_pipeline(&cfg, &positions, None).await;
        // The sink stalls inside the snapshot for well over the timeout.
        p.hold_at(1000);
        p.wait_for(1000).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        p.release();
        p.wait_ready().await;
        pg.sql(&db, "INSERT INTO t VALUES (400000, 'streamed')");
        p.wait_for_event("the streamed insert", |e| e["op"] == "c" && e["after"]["id"] == 400000).await;
        let metrics = p.metrics.render_prometheus();
        assert!(metrics.contains("kind=\"transient\"} 0"), "the pipeline restarted:\n{metrics}");
        let (outcome, _, events) = p.stop().await;
        outcome.unwrap();
        assert_eq!(events.iter().filter(|e| e["op"] == "r").count(), 300000);
    });
}
