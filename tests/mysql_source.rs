//! The MySQL/MariaDB source against a real MariaDB: every type, transactions, snapshot hand-over,
//! DDL, rotation, resume, and the errors a user meets.

mod harness;

use std::time::Duration;

use base64::Engine;
use cdc::model::Position;
use harness::pipeline::start_pipeline;
use harness::{MYSQL_TYPES_DDL, MYSQL_TYPES_ROWS, MariaDb, debezium_decimal as decimal, shared_mariadb};
use serde_json::{Value as Json, json};

fn config(db: &MariaDb, name: &str, snapshot: &str) -> String {
    format!(
        r#"
name = "{name}"
[source]
kind = "mysql"
url = "{url}"
server_id = {sid}
tables = ["{name}.*"]
snapshot = "{snapshot}"
heartbeat_secs = 1
[pipeline]
checkpoint_interval_ms = 50
batch_events = 64
"#,
        url = db.url(""),
        sid = 1000 + name.len() as u32 * 7 + name.bytes().map(u32::from).sum::<u32>(),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn check_types(e: &[Json]) {
    let after = |i: usize| &e[i]["after"];
    let r1 = after(0);
    assert_eq!(r1["id"], 1);
    assert_eq!((r1["ti"].clone(), r1["tiu"].clone(), r1["si"].clone()), (json!(-128), json!(0), json!(-32768)));
    assert_eq!(
        (r1["mi"].clone(), r1["i"].clone(), r1["bi"].clone()),
        (json!(-8388608), json!(-2147483648i64), json!(i64::MIN))
    );
    assert_eq!(decimal(&r1["d1"], 30), "-99999999999999999999999999999999999.999999999999999999999999999999");
    assert_eq!(decimal(&r1["d2"], 2), "-12345678.90");
    assert_eq!((r1["f"].clone(), r1["dbl"].clone()), (json!(-1.5), json!(-2.5e-300)));
    assert_eq!(r1["b1"], false);
    assert_eq!(r1["b12"], b64(&[0x01, 0x00])); // little-endian bytes, as Debezium
    assert_eq!(r1["b64"], b64(&[0; 8]));
    assert_eq!(r1["y"], 1901);
    assert_eq!(r1["dt"], -354_285); // days from 1970-01-01 to 1000-01-01
    assert_eq!(r1["t0"], -((838 * 3600 + 59 * 60 + 59) as i64) * 1_000_000);
    assert_eq!(r1["t6"], -1_000_001);
    assert_eq!(r1["dtm"], -354_285i64 * 86_400_000); // DATETIME(0) in ms
    assert_eq!(r1["dtm3"], 1); // DATETIME(3) in ms
    assert_eq!(r1["dtm6"], 253_402_300_799_999_999i64); // DATETIME(6) in µs
    assert_eq!(r1["ts"], "1970-01-01T00:00:01Z");
    assert_eq!(r1["ts6"], "2038-01-19T03:14:07.999999Z");
    assert_eq!((r1["c"].clone(), r1["vc"].clone(), r1["l1"].clone()), (json!("abc"), json!("😀 emoji"), json!("café")));
    assert_eq!(r1["txt"], "long text");
    assert_eq!(
        (r1["bin"].clone(), r1["vb"].clone(), r1["bl"].clone()),
        (json!(b64(&[1, 2, 3, 4])), json!(b64(&[0, 0xff])), json!(b64(&[0xde, 0xad, 0xbe, 0xef])))
    );
    assert_eq!((r1["e"].clone(), r1["s"].clone()), (json!("red"), json!("a,c")));
    let j: Json = serde_json::from_str(r1["j"].as_str().unwrap()).unwrap();
    assert_eq!(j, json!({"k": [1, 2.5, "x"]}));
    let mut wkb = vec![1u8, 1, 0, 0, 0];
    wkb.extend_from_slice(&1f64.to_le_bytes());
    wkb.extend_from_slice(&2f64.to_le_bytes());
    assert_eq!(r1["g"], json!({"wkb": b64(&wkb), "srid": null}));

    let r2 = after(1);
    assert_eq!((r2["ti"].clone(), r2["tiu"].clone(), r2["miu"].clone()), (json!(127), json!(255), json!(16777215)));
    assert_eq!((r2["iu"].clone(), r2["bi"].clone()), (json!(4294967295u64), json!(i64::MAX)));
    assert_eq!(r2["biu"], json!(u64::MAX)); // exact, not wrapped
    assert_eq!(decimal(&r2["d1"], 30), "99999999999999999999999999999999999.999999999999999999999999999999");
    assert_eq!(decimal(&r2["d2"], 2), "0.01");
    assert_eq!((r2["f"].clone(), r2["dbl"].clone()), (json!(3.25), json!(1e308)));
    assert_eq!(r2["b1"], true);
    assert_eq!(r2["b12"], b64(&[0x00, 0x08]));
    assert_eq!(r2["b64"], b64(&[0xff; 8]));
    assert_eq!(r2["y"], 2155);
    assert_eq!(r2["dt"], Json::Null); // zero date → null
    assert_eq!(r2["t0"], ((838 * 3600 + 59 * 60 + 59) as i64) * 1_000_000);
    assert_eq!(r2["t6"], 123 * 3_600_000_000i64 + 500_000);
    assert_eq!(r2["dtm"], Json::Null);
    assert_eq!(r2["dtm3"], 1_709_210_096_789i64);
    assert_eq!(r2["dtm6"], 1_709_210_096_000_001i64);
    assert_eq!(r2["ts"], Json::Null);
    assert_eq!(r2["ts6"], "2000-01-01T00:00:00.500000Z");
    assert_eq!((r2["c"].clone(), r2["vc"].clone(), r2["bin"].clone()), (json!(""), json!(""), json!(b64(&[0; 4]))));
    assert_eq!((r2["e"].clone(), r2["s"].clone(), r2["j"].clone()), (json!("blue"), json!(""), json!("[]")));

    let r3 = after(2);
    assert_eq!(r3["id"], 3);
    let obj = r3.as_object().unwrap();
    assert_eq!(obj.len(), 37);
    assert!(obj.iter().filter(|(k, _)| *k != "id").all(|(_, v)| v.is_null()), "{r3}");
}

#[test]
fn streams_every_type_with_edge_values() {
    let db = shared_mariadb();
    db.sql(&format!("CREATE DATABASE types_db; USE types_db; {MYSQL_TYPES_DDL}"));
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(db, "types_db", "never"), &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        db.sql(&format!("USE types_db; {MYSQL_TYPES_ROWS}"));
        let e = p.wait_for(3).await;
        assert!(e.iter().all(|x| x["op"] == "c"));
        assert_eq!(e[0]["source"]["db"], "types_db");
        assert_eq!(e[0]["source"]["table"], "types");
        assert_eq!(e[0]["source"]["connector"], "mysql");
        assert!(e[0]["source"]["gtid"].as_str().unwrap().starts_with("0-1-"));
        check_types(&e);
        let (outcome, pos, _) = p.stop().await;
        outcome.unwrap();
        assert!(pos.unwrap().to_string().contains(":gtid=0-1-"));
    });
}

/// The snapshot reads the same values the binlog carries: one decoder of truth for both paths.
#[test]
fn snapshot_values_equal_streamed_values() {
    let db = shared_mariadb();
    db.sql(&format!("CREATE DATABASE snap_types; USE snap_types; {MYSQL_TYPES_DDL}; {MYSQL_TYPES_ROWS}"));
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(db, "snap_types", "initial"), &dir.path().join("p.json"), None).await;
        let e = p.wait_for(3).await;
        assert!(e.iter().all(|x| x["op"] == "r"), "{e:?}");
        assert_eq!(e[0]["source"]["snapshot"], "first");
        assert_eq!(e[2]["source"]["snapshot"], "last");
        check_types(&e);
        p.stop().await.0.unwrap();
    });
}

#[test]
fn snapshot_hands_over_to_the_stream_without_gap_or_duplicate() {
    let db = shared_mariadb();
    db.sql("CREATE DATABASE handover; USE handover; CREATE TABLE t (id INT PRIMARY KEY, v INT);");
    let values: Vec<String> = (1..=500).map(|i| format!("({i}, 0)")).collect();
    db.sql(&format!("USE handover; INSERT INTO t VALUES {}", values.join(",")));
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        // Writes keep coming while the snapshot runs.
        let writer = {
            let port = db.port();
            std::thread::spawn(move || {
                let url = format!("mysql://root@127.0.0.1:{port}/handover");
                let pool = mysql_async::Pool::new(url.as_str());
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    use mysql_async::prelude::Queryable;
                    let mut c = pool.get_conn().await.unwrap();
                    for i in 501..=700 {
                        c.query_drop(format!("INSERT INTO t VALUES ({i}, 1)")).await.unwrap();
                        c.query_drop(format!("UPDATE t SET v = v + 1 WHERE id = {}", i - 500)).await.unwrap();
                    }
                });
            })
        };
        let p = start_pipeline(&config(db, "handover", "initial"), &dir.path().join("p.json"), None).await;
        writer.join().unwrap();
        let final_rows: i64 = db.sql("SELECT COUNT(*) FROM handover.t").parse().unwrap();
        assert_eq!(final_rows, 700);
        // Replay snapshot + stream into a model; it must equal the table.
        let expected = db.sql("SELECT id, v FROM handover.t ORDER BY id");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let e = p.events.lock().unwrap().clone();
            let mut model = std::collections::BTreeMap::new();
            let mut seen_snapshot_ids = std::collections::HashSet::new();
            for x in &e {
                let row = if x["op"] == "d" { &x["before"] } else { &x["after"] };
                let id = row["id"].as_i64().unwrap();
                if x["op"] == "r" {
                    assert!(seen_snapshot_ids.insert(id), "snapshot row {id} twice");
                }
                model.insert(id, row["v"].as_i64().unwrap());
            }
            let got: Vec<String> = model.iter().map(|(k, v)| format!("{k}\t{v}")).collect();
            if got.join("\n") == expected {
                // No duplicate at the hand-over: each streamed insert arrives once.
                let inserts = e.iter().filter(|x| x["op"] == "c").count();
                let snapshot_rows = e.iter().filter(|x| x["op"] == "r").count();
                assert_eq!(inserts + snapshot_rows, 700, "every row is read once by the snapshot or inserted once");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "model never matched the table");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p.stop().await.0.unwrap();
    });
}

/// Several tables read at once, each on its own connection, while transactions keep moving
/// value between them: every reader's snapshot is of one instant (each key's two halves add up
/// in the snapshot rows), the tables' rows arrive interleaved, and the stream goes on from
/// that instant with no gap and no duplicate.
#[test]
fn snapshot_on_two_connections_reads_one_instant() {
    let db = shared_mariadb();
    db.sql(
        "CREATE DATABASE twosnap; USE twosnap; \
         CREATE TABLE a (id INT PRIMARY KEY, v INT); CREATE TABLE b (id INT PRIMARY KEY, v INT); \
         CREATE TABLE c (id INT PRIMARY KEY);",
    );
    let rows: Vec<String> = (1..=3000).map(|i| format!("({i}, 10)")).collect();
    db.sql(&format!("USE twosnap; INSERT INTO a VALUES {0}; INSERT INTO b VALUES {0};", rows.join(",")));
    let dir = tempfile::tempdir().unwrap();
    let config =
        config(db, "twosnap", "initial").replace("heartbeat_secs = 1", "heartbeat_secs = 1\nsnapshot_connections = 2");
    rt().block_on(async {
        // Each transaction moves one unit from a row of `a` to the same row of `b` and adds a
        // row to `c`, before, while and after the snapshot opens.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let port = db.port();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let url = format!("mysql://root@127.0.0.1:{port}/twosnap");
                let pool = mysql_async::Pool::new(url.as_str());
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    use mysql_async::prelude::Queryable;
                    let mut c = pool.get_conn().await.unwrap();
                    let mut n = 0;
                    while n < 300 || !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        let k = n % 3000 + 1;
                        c.query_drop(format!(
                            "BEGIN; UPDATE a SET v = v - 1 WHERE id = {k}; UPDATE b SET v = v + 1 WHERE id = {k}; \
                             INSERT INTO c VALUES ({n}); COMMIT"
                        ))
                        .await
                        .unwrap();
                    }
                });
            })
        };
        while db.sql("SELECT COUNT(*) FROM twosnap.c").parse::<i64>().unwrap() < 50 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let p = start_pipeline(&config, &dir.path().join("p.json"), None).await;
        p.wait_for(6000).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        let expected: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|t| {
                db.sql(&format!(
                    "SELECT COUNT(*), COALESCE(SUM({v}), 0) FROM twosnap.{t}",
                    v = if *t == "c" { "id" } else { "v" }
                ))
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let e = p.events.lock().unwrap().clone();
            let snapshot: Vec<&Json> = e.iter().filter(|x| x["op"] == "r").collect();
            // One instant: for every key, a.v + b.v = 20 among the snapshot's rows.
            let mut halves = std::collections::HashMap::new();
            for x in snapshot.iter().filter(|x| x["source"]["table"] != "c") {
                *halves.entry(x["after"]["id"].as_i64().unwrap()).or_insert(0) += x["after"]["v"].as_i64().unwrap();
            }
            assert_eq!(halves.len(), 3000);
            assert!(halves.values().all(|&sum| sum == 20), "the snapshot's tables were read at different instants");
            // Read at the same time: a row of `b` arrived before the last row of `a`.
            let position = |table: &str, last: bool| {
                let mut rows =
                    snapshot.iter().enumerate().filter(|(_, x)| x["source"]["table"] == table).map(|(i, _)| i);
                if last { rows.next_back() } else { rows.next() }.unwrap()
            };
            assert!(position("b", false) < position("a", true), "the tables were read one after the other");
            // Snapshot + stream replayed into a model equals the tables, each row once.
            let mut model: std::collections::BTreeMap<(String, i64), i64> = std::collections::BTreeMap::new();
            let mut duplicate = false;
            for x in &e {
                let table = x["source"]["table"].as_str().unwrap().to_string();
                let row = &x["after"];
                let id = row["id"].as_i64().unwrap();
                let value = if table == "c" { id } else { row["v"].as_i64().unwrap() };
                let replaced = model.insert((table, id), value);
                duplicate |= replaced.is_some() && x["op"] != "u";
            }
            assert!(!duplicate, "a row arrived twice");
            let got: Vec<String> = ["a", "b", "c"]
                .iter()
                .map(|t| {
                    let values: Vec<i64> = model.iter().filter(|((table, _), _)| table == t).map(|(_, v)| *v).collect();
                    format!("{}\t{}", values.len(), values.iter().sum::<i64>())
                })
                .collect();
            if got == expected {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "model never matched the tables: {got:?} against {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p.stop().await.0.unwrap();
    });
}

#[test]
fn transactions_ddl_and_rotation() {
    let db = shared_mariadb();
    db.sql("CREATE DATABASE txddl; USE txddl; CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20));");
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(db, "txddl", "never"), &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        db.sql("USE txddl; BEGIN; INSERT INTO t VALUES (1,'a'),(2,'b'); UPDATE t SET name='bb' WHERE id=2; DELETE FROM t WHERE id=1; COMMIT;");
        db.sql("USE txddl; ALTER TABLE t ADD COLUMN extra INT DEFAULT 7; INSERT INTO t (id, name) VALUES (3,'c');");
        db.sql("FLUSH BINARY LOGS; USE txddl; ALTER TABLE t DROP COLUMN name, CHANGE extra extra2 BIGINT; INSERT INTO t VALUES (4, 40);");
        let e = p.wait_for(6).await;
        let ops: Vec<&str> = e.iter().map(|x| x["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["c", "c", "u", "d", "c", "c"]);
        // One transaction: the same GTID on its four events.
        let gtid = &e[0]["source"]["gtid"];
        assert!(e[..4].iter().all(|x| &x["source"]["gtid"] == gtid));
        assert_eq!(e[2]["before"], json!({"id": 2, "name": "b"}));
        assert_eq!(e[2]["after"], json!({"id": 2, "name": "bb"}));
        assert_eq!(e[3]["before"], json!({"id": 1, "name": "a"}));
        assert_eq!(e[4]["after"], json!({"id": 3, "name": "c", "extra": 7}));
        assert_eq!(e[5]["after"], json!({"id": 4, "extra2": 40}));
        // The last event came from the next binlog file.
        assert_ne!(e[5]["source"]["file"], e[0]["source"]["file"]);
        let (outcome, pos, _) = p.stop().await;
        outcome.unwrap();
        let file = e[5]["source"]["file"].as_str().unwrap();
        assert!(pos.unwrap().to_string().starts_with(&format!("mysql:file={file}:pos=")));
    });
}

#[test]
fn resume_from_gtid_and_from_file_pos() {
    let db = shared_mariadb();
    db.sql("CREATE DATABASE resume; USE resume; CREATE TABLE t (id INT PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("p.json");
    rt().block_on(async {
        let p = start_pipeline(&config(db, "resume", "never"), &positions, None).await;
        p.wait_ready().await;
        db.sql("INSERT INTO resume.t VALUES (1); INSERT INTO resume.t VALUES (2);");
        p.wait_for(2).await;
        tokio::time::sleep(Duration::from_millis(200)).await; // a checkpoint tick
        let (_, stored, _) = p.stop().await;
        let stored = stored.unwrap();
        db.sql("INSERT INTO resume.t VALUES (3); INSERT INTO resume.t VALUES (4);");

        // From the stored position (GTID + file:pos): exactly the new rows.
        let p = start_pipeline(&config(db, "resume", "never"), &positions, None).await;
        let e = p.wait_for(2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ids: Vec<i64> = p.events.lock().unwrap().iter().map(|x| x["after"]["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [3, 4], "{e:?}");
        p.stop().await.0.unwrap();

        // From the GTID only, and from file:pos only: the same rows.
        let text = stored.to_string();
        let (file_part, gtid_part) = text.split_once(":gtid=").unwrap();
        for from in [format!("mysql:gtid={gtid_part}"), file_part.to_string()] {
            let p =
                start_pipeline(&config(db, "resume", "never"), &dir.path().join("q.json"), Some(from.parse().unwrap()))
                    .await;
            p.wait_for(2).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let ids: Vec<i64> = p.events.lock().unwrap().iter().map(|x| x["after"]["id"].as_i64().unwrap()).collect();
            assert_eq!(ids, [3, 4], "resuming from {from}");
            p.stop().await.0.unwrap();
        }
    });
}

fn run_error(cfg: &str, from: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        start_pipeline(cfg, &dir.path().join("p.json"), from.map(|f| f.parse().unwrap())).await.definite_error().await
    })
}

#[test]
fn wrong_password_and_missing_privilege_are_definite_errors() {
    let db = shared_mariadb();
    db.sql("CREATE USER 'noreplication'@'127.0.0.1' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO 'noreplication'@'127.0.0.1';");
    let base = config(db, "privs", "never");
    let wrong = base.replace("mysql://root@", "mysql://root:wrong@");
    let err = run_error(&wrong, None);
    assert!(err.contains("access denied") && err.contains("password"), "{err}");
    let noprivs = base.replace("mysql://root@", "mysql://noreplication:pw@");
    let err = run_error(&noprivs, None);
    assert!(err.contains("REPLICATION"), "{err}");
}

#[test]
fn purged_binlog_is_a_definite_error_naming_the_remedy() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE purged; USE purged; CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);");
    let first = db.sql("SHOW BINARY LOGS").lines().next().unwrap().split('\t').next().unwrap().to_string();
    db.sql("FLUSH BINARY LOGS; INSERT INTO purged.t VALUES (2); FLUSH BINARY LOGS;");
    let last = db.sql("SHOW BINARY LOGS").lines().last().unwrap().split('\t').next().unwrap().to_string();
    db.sql(&format!("PURGE BINARY LOGS TO '{last}'"));
    let cfg = config(&db, "purged", "never");
    let err = run_error(&cfg, Some(&format!("mysql:file={first}:pos=4")));
    assert!(err.contains("purged") && err.contains(&first) && err.contains("snapshot"), "{err}");
    // A GTID position the server no longer has.
    let err = run_error(&cfg, Some("mysql:gtid=0-1-1"));
    assert!(err.contains("purged") || err.contains("cannot send"), "{err}");
}

#[test]
fn statement_based_binlog_is_refused() {
    let db = MariaDb::start();
    db.sql("CREATE DATABASE sbr; USE sbr; CREATE TABLE t (id INT PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(&db, "sbr", "never"), &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        db.sql("SET SESSION binlog_format = 'STATEMENT'; INSERT INTO sbr.t VALUES (1);");
        let err = p.definite_error().await;
        assert!(err.contains("binlog_format is not ROW") && err.contains("INSERT INTO sbr.t"), "{err}");
    });
}

/// MariaDB with `log_bin_compress=ON`: compressed query and rows events decode like plain ones.
#[test]
fn mariadb_compressed_binlog_events() {
    let db = MariaDb::start_with(&["--log-bin-compress=ON", "--log-bin-compress-min-len=10"]);
    db.sql("CREATE DATABASE zdb; USE zdb; CREATE TABLE t (id INT PRIMARY KEY, body TEXT);");
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(&db, "zdb", "never"), &dir.path().join("p.json"), None).await;
        p.wait_ready().await;
        let long = "compressible ".repeat(200);
        db.sql(&format!(
            "USE zdb; INSERT INTO t VALUES (1, '{long}'), (2, 'short'); UPDATE t SET body = 'changed' WHERE id = 1; DELETE FROM t WHERE id = 2;"
        ));
        let e = p.wait_for(4).await;
        let ops: Vec<&str> = e.iter().map(|x| x["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["c", "c", "u", "d"]);
        assert_eq!(e[0]["after"]["body"], long);
        assert_eq!(e[2]["after"], json!({"id": 1, "body": "changed"}));
        assert_eq!(e[3]["before"], json!({"id": 2, "body": "short"}));
        p.stop().await.0.unwrap();
    });
    // The server did compress them.
    let events = db.sql("SHOW BINLOG EVENTS");
    assert!(events.contains("Write_rows_compressed"), "{events}");
}

/// Without binlog_row_metadata=FULL the binlog has no column names, ENUM values or keys.
/// They come from a schema history: `information_schema` at the first start, then the DDL
/// read from the binlog, kept in a file. A backlog written across several ALTERs while cdc was
/// stopped is decoded with the columns each row had when it was written (today's catalog
/// would name them wrongly or not at all), and a restart from an earlier position replays
/// the history only up to that position.
#[test]
fn minimal_row_metadata_follows_ddl_through_a_schema_history() {
    let db = MariaDb::start_with(&["--binlog-row-metadata=MINIMAL"]);
    db.sql(
        "CREATE DATABASE minimal; USE minimal;
         CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(10), state ENUM('new','done'), n INT UNSIGNED);",
    );
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let cfg = config(&db, "minimal", "never").replace(
        "heartbeat_secs = 1",
        &format!("heartbeat_secs = 1\nschema_history = {:?}", history.display().to_string()),
    );
    let positions = dir.path().join("p.json");
    let position_now = || {
        let status = db.sql("SHOW MASTER STATUS");
        let mut cols = status.split('\t');
        let (file, pos) = (cols.next().unwrap(), cols.next().unwrap());
        format!("mysql:file={file}:pos={pos}").parse::<Position>().unwrap()
    };
    rt().block_on(async {
        let p = start_pipeline(&cfg, &positions, None).await;
        p.wait_ready().await;
        db.sql("INSERT INTO minimal.t VALUES (1, 'a', 'done', 4294967295)");
        let e = p.wait_for(1).await;
        assert_eq!(e[0]["after"], json!({"id": 1, "name": "a", "state": "done", "n": 4294967295u64}));
        p.stop().await.0.unwrap();
    });
    // A backlog while cdc is stopped.
    db.sql(
        "USE minimal;
         INSERT INTO t VALUES (2, 'b', 'new', 2);
         ALTER TABLE t ADD COLUMN extra INT AFTER id;
         INSERT INTO t VALUES (3, 30, 'c', 'new', 3);",
    );
    let before_drop = position_now();
    db.sql(
        "USE minimal;
         ALTER TABLE t DROP COLUMN name;
         INSERT INTO t VALUES (4, 40, 'done', 4);
         ALTER TABLE t CHANGE n amount BIGINT UNSIGNED, MODIFY state ENUM('new','done','gone');
         INSERT INTO t VALUES (5, 50, 'gone', 18446744073709551615);
         ALTER TABLE t RENAME COLUMN extra TO bonus;
         INSERT INTO t VALUES (6, 60, 'new', 6);
         CREATE TABLE t2 (k VARCHAR(5) PRIMARY KEY, v TEXT) DEFAULT CHARSET latin1;
         INSERT INTO t2 VALUES ('k1', 'é');
         RENAME TABLE t2 TO t3;
         INSERT INTO t3 VALUES ('k2', 'v2');",
    );
    let expected = [
        json!({"id": 2, "name": "b", "state": "new", "n": 2}),
        json!({"id": 3, "extra": 30, "name": "c", "state": "new", "n": 3}),
        json!({"id": 4, "extra": 40, "state": "done", "n": 4}),
        json!({"id": 5, "extra": 50, "state": "gone", "amount": 18446744073709551615u64}),
        json!({"id": 6, "bonus": 60, "state": "new", "amount": 6}),
        json!({"k": "k1", "v": "é"}),
        json!({"k": "k2", "v": "v2"}),
    ];
    rt().block_on(async {
        let p = start_pipeline(&cfg, &positions, None).await;
        let e = p.wait_for(7).await;
        let after: Vec<&Json> = e.iter().map(|x| &x["after"]).collect();
        assert_eq!(after, expected.iter().collect::<Vec<_>>());
        assert_eq!(e[5]["source"]["table"], "t2");
        assert_eq!(e[6]["source"]["table"], "t3");
        p.stop().await.0.unwrap();

        // From a position before the DROP: the history as of then, then the DDL again.
        let p = start_pipeline(&cfg, &positions, Some(before_drop)).await;
        let e = p.wait_for(5).await;
        let after: Vec<&Json> = e.iter().map(|x| &x["after"]).collect();
        assert_eq!(after, expected[2..].iter().collect::<Vec<_>>());
        p.stop().await.0.unwrap();
    });
    let lines = std::fs::read_to_string(&history).unwrap();
    assert!(lines.lines().any(|l| l.contains("RENAME COLUMN extra TO bonus")), "{lines}");
}

/// An initial snapshot stopped part-way goes on after the last row delivered (in the key's
/// collation order, across chunks of a composite key), then streams from the snapshot's
/// position: the rows read before and after the stop, plus the changes streamed, are exactly
/// the table's contents.
#[test]
fn interrupted_snapshot_resumes_after_the_last_key_delivered() {
    let db = shared_mariadb();
    db.sql(
        "CREATE DATABASE snapresume; USE snapresume;
         CREATE TABLE a (k1 INT, k2 VARCHAR(10) COLLATE utf8mb4_general_ci, v INT, PRIMARY KEY (k1, k2));
         CREATE TABLE b (v INT);
         CREATE TABLE c (id INT PRIMARY KEY, v INT);
         INSERT INTO a SELECT seq DIV 4, ELT(seq MOD 4 + 1, 'a', 'B', 'c', 'D'), seq FROM seq_0_to_3999;
         INSERT INTO b SELECT seq FROM seq_1_to_50;
         INSERT INTO c SELECT seq, seq FROM seq_1_to_3000;",
    );
    let cfg = config(db, "snapresume", "initial")
        .replace("heartbeat_secs = 1", "heartbeat_secs = 1\nsnapshot_chunk_rows = 500");
    let dir = tempfile::tempdir().unwrap();
    let positions = dir.path().join("p.json");
    let key_of = |table: &str, row: &Json| match table {
        "a" => format!("{}/{}", row["k1"], row["k2"]),
        "b" => row.to_string(),
        _ => row["id"].to_string(),
    };
    rt().block_on(async {
        // The sink stops taking rows at 1,500: the snapshot is held inside table `a`.
        let p = start_pipeline(&cfg, &positions, None).await;
        p.hold_at(1500);
        p.wait_for_snapshot_progress().await;
        // Changes meanwhile: to a delivered row, to rows not read yet.
        db.sql("USE snapresume; UPDATE a SET v = -1 WHERE k1 = 0 AND k2 = 'a'; DELETE FROM c WHERE id = 3000; INSERT INTO c VALUES (3001, 3001);");
        p.release();
        let (outcome, stored, first) = p.stop().await;
        outcome.unwrap();
        let stored = stored.unwrap();
        let progress = stored.snapshot_progress().expect("stopped inside the snapshot").clone();
        assert_eq!(progress.table, ("snapresume".to_string(), "a".to_string()), "{stored}");
        assert!(first.iter().all(|e| e["op"] == "r"));

        let p = start_pipeline(&cfg, &positions, None).await;
        p.wait_for_event("the streamed insert", |e| e["op"] == "c" && e["after"]["id"] == 3001).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (outcome, end, second) = p.stop().await;
        outcome.unwrap();
        assert!(end.unwrap().snapshot_progress().is_none());

        // The second part starts right after the stored key, in the column's collation order.
        let key = progress.after_key().expect("a keyed table");
        let stored_key = format!("{}/\"{}\"", String::from_utf8_lossy(&key[0]), String::from_utf8_lossy(&key[1]));
        let order: Vec<String> = db
            .sql("SELECT k1, k2 FROM snapresume.a ORDER BY k1, k2")
            .lines()
            .map(|l| {
                let (k1, k2) = l.split_once('\t').unwrap();
                format!("{k1}/\"{k2}\"")
            })
            .collect();
        let at = order.iter().position(|k| *k == stored_key).unwrap_or_else(|| panic!("{stored_key} not in table a"));
        // Tables are read two at a time: rows of `b` or `c` may come first.
        let first_of_a = second.iter().find(|e| e["source"]["table"] == "a").expect("rows of a after the restart");
        assert_eq!(key_of("a", &first_of_a["after"]), order[at + 1], "the first row of a read after the restart");
        assert_eq!(first_of_a["op"], "r");
        let first_keys: std::collections::HashSet<String> =
            first.iter().filter(|e| e["source"]["table"] == "a").map(|e| key_of("a", &e["after"])).collect();
        assert!(first_keys.contains(&stored_key), "the stored progress covers only delivered rows");

        // Both runs replayed in order are the tables' contents.
        let all: Vec<Json> = first.iter().chain(second.iter()).cloned().collect();
        let replica = harness::pipeline::replay(&all, key_of);
        let mut expected = std::collections::BTreeMap::new();
        for line in db.sql("SELECT k1, k2, v FROM snapresume.a").lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let row = json!({"k1": f[0].parse::<i64>().unwrap(), "k2": f[1], "v": f[2].parse::<i64>().unwrap()});
            expected.insert(("a".to_string(), key_of("a", &row)), row);
        }
        for line in db.sql("SELECT v FROM snapresume.b").lines() {
            let row = json!({"v": line.parse::<i64>().unwrap()});
            expected.insert(("b".to_string(), key_of("b", &row)), row);
        }
        for line in db.sql("SELECT id, v FROM snapresume.c").lines() {
            let (id, v) = line.split_once('\t').unwrap();
            let row = json!({"id": id.parse::<i64>().unwrap(), "v": v.parse::<i64>().unwrap()});
            expected.insert(("c".to_string(), key_of("c", &row)), row);
        }
        assert_eq!(replica.len(), expected.len());
        assert!(replica == expected, "replayed events differ from the tables");
        // The update made before the restart arrives as a change (streamed from the snapshot position).
        assert!(second.iter().any(|e| e["op"] == "u" && e["after"]["v"] == -1));
    });
}
