//! `cdc run` with the Kafka sink against a real broker (tansu), read back with a real consumer:
//! topics, keys, values, tombstones, headers, order; outages; crashes.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use harness::kafka::{Record, read_topic};
use harness::{ChildGuard, shared_kafka, shared_mariadb, shared_pg15, spawn_cdc};
use serde_json::json;

/// Config for `name` with a Kafka sink on `bootstrap`; `source` is the `[source]` body.
fn write_config(dir: &Path, name: &str, source: &str, bootstrap: &str, extra: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\n[source]\n{source}\n[sink]\nkind = \"kafka\"\nbrokers = \"{bootstrap}\"\n{extra}\n\
         [positions]\npath = \"{pos}\"\n[pipeline]\ncheckpoint_interval_ms = 20\n",
        pos = dir.join("positions.json").display(),
    );
    let path = dir.join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Adds `line` at the top of the `[section]` table of a config file.
fn add_to_section(config: &Path, section: &str, line: &str) {
    let header = format!("[{section}]\n");
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(&header), "no [{section}] in {}", config.display());
    std::fs::write(config, text.replacen(&header, &format!("{header}{line}\n"), 1)).unwrap();
}

/// Waits (30 s at most) until the log of the cdc started with `config` contains `text`.
fn wait_for_log(config: &Path, text: &str) {
    harness::wait_for_cdc_log(config, text, Duration::from_secs(30));
}

/// Waits (30 s at most) for cdc to exit, and checks it failed; `running` says what it means
/// if it keeps running.
fn assert_failed_within_30s(cdc: &mut ChildGuard, running: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = cdc.0.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "{running}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
}

fn summary(records: &[Record], id_field: &str) -> Vec<(String, Option<i64>)> {
    records
        .iter()
        .map(|r| {
            let key = r.key.as_ref().and_then(|k| k[id_field].as_i64());
            (r.op().unwrap_or("tombstone").to_string(), key)
        })
        .collect()
}

#[test]
fn mariadb_to_kafka_topics_keys_values_tombstones_headers() {
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql(
        "CREATE DATABASE kshop; CREATE TABLE kshop.orders (id INT PRIMARY KEY, item VARCHAR(20), qty INT);
         CREATE TABLE kshop.nokey (v INT);
         INSERT INTO kshop.orders VALUES (1,'apple',1),(2,'pear',2);",
    );
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "kind = \"mysql\"\nurl = \"{}\"\nserver_id = 7101\ntables = [\"kshop.*\"]\nheartbeat_secs = 1",
        db.url("")
    );
    let config = write_config(dir.path(), "kmaria", &source, &kafka.bootstrap(), "");
    let _cdc = spawn_cdc(&config);
    // The snapshot is in Kafka: what follows is streamed.
    read_topic(&kafka.bootstrap(), "kmaria.kshop.orders", 2, false, Duration::ZERO);
    db.sql(
        "INSERT INTO kshop.orders VALUES (3,'plum',3);
         UPDATE kshop.orders SET qty = 30 WHERE id = 3;
         DELETE FROM kshop.orders WHERE id = 1;
         UPDATE kshop.orders SET id = 20 WHERE id = 2;
         INSERT INTO kshop.nokey VALUES (5);",
    );
    let got = read_topic(&kafka.bootstrap(), "kmaria.kshop.orders", 9, false, Duration::from_millis(500));
    assert_eq!(
        summary(&got, "id"),
        [
            ("r", Some(1)),
            ("r", Some(2)),
            ("c", Some(3)),
            ("u", Some(3)),
            ("d", Some(1)),
            ("tombstone", Some(1)),
            // A key change: delete of the old key, its tombstone, create of the new key.
            ("d", Some(2)),
            ("tombstone", Some(2)),
            ("c", Some(20)),
        ]
        .map(|(op, k)| (op.to_string(), k))
    );
    assert_eq!(got[0].key, Some(json!({"id": 1})));
    let after = &got[3].value.as_ref().unwrap()["after"];
    assert_eq!(after, &json!({"id": 3, "item": "plum", "qty": 30}));
    assert_eq!(got[4].value.as_ref().unwrap()["before"], json!({"id": 1, "item": "apple", "qty": 1}));
    let source = &got[2].value.as_ref().unwrap()["source"];
    assert_eq!(source["connector"], "mysql");
    assert_eq!(source["name"], "kmaria");
    assert_eq!((source["db"].as_str(), source["table"].as_str()), (Some("kshop"), Some("orders")));
    // Headers: where the change is in the binlog, and its transaction.
    let position = &got[2].headers["cdc.position"];
    assert_eq!(position, &format!("mysql:file={}:pos={}", source["file"].as_str().unwrap(), source["pos"]));
    assert_eq!(got[2].headers["cdc.tx_id"], source["gtid"].as_str().unwrap());
    assert_ne!(got[2].headers["cdc.tx_id"], got[3].headers["cdc.tx_id"], "two transactions");
    assert_eq!(got[5].headers["cdc.tx_id"], got[4].headers["cdc.tx_id"], "the tombstone carries its delete's headers");
    assert_eq!(got[6].headers["__debezium.newkey"], r#"{"id":20}"#);
    assert_eq!(got[8].headers["__debezium.oldkey"], r#"{"id":2}"#);
    assert!(!got[0].headers.contains_key("cdc.tx_id"), "snapshot rows have no transaction");
    // A table without a key: null keys, its own topic.
    let nokey = read_topic(&kafka.bootstrap(), "kmaria.kshop.nokey", 1, false, Duration::from_millis(200));
    assert_eq!(nokey.len(), 1);
    assert_eq!(nokey[0].key, None);
    assert_eq!(nokey[0].value.as_ref().unwrap()["after"], json!({"v": 5}));
}

#[test]
fn postgres_to_kafka_with_routing_and_no_tombstones() {
    let pg = shared_pg15();
    let kafka = shared_kafka();
    let dbname = pg.create_db("kafka_pg");
    pg.sql(
        &dbname,
        "CREATE TABLE public.items (id BIGINT PRIMARY KEY, name TEXT, price NUMERIC(8,2));
         CREATE TABLE public.audit (id SERIAL PRIMARY KEY, note TEXT);
         INSERT INTO public.items VALUES (1, 'tea', 2.50);",
    );
    let dir = tempfile::tempdir().unwrap();
    let source = format!("kind = \"postgres\"\nurl = \"{}\"\ntables = [\"public.*\"]", pg.url(&dbname));
    let extra = "tombstones_on_delete = false\ntopic_prefix = \"pgk\"\n[sink.topics]\n\"public.audit\" = \"audit-log\"";
    let config = write_config(dir.path(), "pgkafka", &source, &kafka.bootstrap(), extra);
    let _cdc = spawn_cdc(&config);
    read_topic(&kafka.bootstrap(), "pgk.public.items", 1, false, Duration::ZERO);
    pg.sql(
        &dbname,
        "BEGIN; INSERT INTO public.items VALUES (2, 'coffee', 3.10); INSERT INTO public.audit (note) VALUES ('two'); COMMIT;
         UPDATE public.items SET price = 2.75 WHERE id = 1;
         DELETE FROM public.items WHERE id = 2;",
    );
    let items = read_topic(&kafka.bootstrap(), "pgk.public.items", 4, false, Duration::from_millis(500));
    assert_eq!(
        summary(&items, "id"),
        [("r", Some(1)), ("c", Some(2)), ("u", Some(1)), ("d", Some(2))].map(|(op, k)| (op.to_string(), k))
    );
    let update = items[2].value.as_ref().unwrap();
    assert_eq!(update["after"]["name"], "tea");
    assert_eq!(update["source"]["connector"], "postgresql");
    assert_eq!(update["source"]["schema"], "public");
    let lsn = update["source"]["lsn"].as_u64().unwrap();
    assert_eq!(items[2].headers["cdc.position"], format!("pg:lsn={:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff));
    assert_eq!(items[2].headers["cdc.tx_id"], update["source"]["txId"].to_string());
    assert_eq!(
        items[1].headers["cdc.tx_id"],
        read_topic(&kafka.bootstrap(), "audit-log", 1, false, Duration::ZERO)[0].headers["cdc.tx_id"],
        "one source transaction, one id"
    );
}

/// Inserts rows `ids` into `db.t (id INT PRIMARY KEY)`, one transaction each, pausing now and then.
fn insert_rows(port: u16, db: &str, ids: std::ops::RangeInclusive<i64>) -> std::thread::JoinHandle<()> {
    let url = format!("mysql://root@127.0.0.1:{port}/{db}");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            use mysql_async::prelude::Queryable;
            let mut c = mysql_async::Conn::from_url(url).await.unwrap();
            for i in ids {
                c.query_drop(format!("INSERT INTO t VALUES ({i})")).await.unwrap();
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
        });
    })
}

fn ids_of(records: &[Record]) -> Vec<i64> {
    records
        .iter()
        .filter(|r| r.value.is_some())
        .filter_map(|r| r.value.as_ref().unwrap()["after"]["id"].as_i64())
        .collect()
}

fn mysql_source(db: &harness::MariaDb, database: &str, server_id: u32) -> String {
    format!(
        "kind = \"mysql\"\nurl = \"{}\"\nserver_id = {server_id}\ntables = [\"{database}.*\"]\nheartbeat_secs = 1",
        db.url("")
    )
}

/// The broker stops answering for 30 s (SIGSTOP: a memory broker would lose its data on a
/// restart). cdc keeps running, its checkpoint does not pass what the broker has not
/// acknowledged, and once the broker is back every change arrives, once, in order.
#[test]
fn broker_paused_30s_mid_stream_then_everything_arrives_once() {
    let db = shared_mariadb();
    let broker = harness::KafkaBroker::start();
    db.sql("CREATE DATABASE kpause; CREATE TABLE kpause.t (id INT PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "kpause", &mysql_source(db, "kpause", 7102), &broker.bootstrap(), "");
    let mut cdc = spawn_cdc(&config);
    insert_rows(db.port(), "kpause", 1..=50).join().unwrap();
    read_topic(&broker.bootstrap(), "kpause.kpause.t", 50, false, Duration::ZERO);
    let before_pause: cdc::model::Position = {
        let status = db.sql("SHOW MASTER STATUS");
        let mut f = status.split_whitespace();
        format!("mysql:file={}:pos={}", f.next().unwrap(), f.next().unwrap()).parse().unwrap()
    };
    broker.pause();
    insert_rows(db.port(), "kpause", 51..=100).join().unwrap();
    std::thread::sleep(Duration::from_secs(30));
    assert!(cdc.0.try_wait().unwrap().is_none(), "cdc must wait for the broker, not exit");
    let (stored, _, _) = cdc::positions::FilePositionStore::read(&dir.path().join("positions.json")).unwrap().unwrap();
    let cdc::model::Position::MySql(stored_my) = &stored else { panic!("{stored}") };
    let cdc::model::Position::MySql(before_my) = &before_pause else { panic!() };
    assert_ne!(
        stored_my.binlog.as_ref().unwrap().compare(before_my.binlog.as_ref().unwrap()).unwrap(),
        std::cmp::Ordering::Greater,
        "checkpoint {stored} passed changes the broker never acknowledged ({before_pause})"
    );
    broker.resume();
    let got = read_topic(&broker.bootstrap(), "kpause.kpause.t", 100, false, Duration::from_secs(1));
    assert_eq!(ids_of(&got), (1..=100).collect::<Vec<_>>());
}

/// No broker at all when cdc starts: it says what it waits for, then delivers everything once
/// a broker listens on the configured address (a fresh topic: nothing was acknowledged before).
#[test]
fn broker_unreachable_at_start_then_delivers_when_it_appears() {
    let db = shared_mariadb();
    db.sql("CREATE DATABASE kdown; CREATE TABLE kdown.t (id INT PRIMARY KEY); INSERT INTO kdown.t VALUES (1),(2);");
    let port = harness::free_port();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    let config = write_config(dir.path(), "kdown", &mysql_source(db, "kdown", 7103), &bootstrap, "");
    let mut cdc = spawn_cdc(&config);
    insert_rows(db.port(), "kdown", 3..=20).join().unwrap();
    wait_for_log(&config, "Kafka unreachable");
    assert!(cdc.0.try_wait().unwrap().is_none(), "cdc must wait for the broker, not exit");
    assert!(!dir.path().join("positions.json").exists(), "nothing may be checkpointed yet");
    let broker = harness::KafkaBroker::start_on(port);
    let got = read_topic(&broker.bootstrap(), "kdown.kdown.t", 20, false, Duration::from_secs(1));
    assert_eq!(ids_of(&got), (1..=20).collect::<Vec<_>>());
}

/// kill -9 at random instants during a steady stream, positions kept in Kafka: after the
/// restarts every row is in the topic at least once (at-least-once mode).
#[test]
fn kill_9_with_positions_in_kafka_loses_nothing() {
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql("CREATE DATABASE kcrash; CREATE TABLE kcrash.t (id INT PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "kcrash", &mysql_source(db, "kcrash", 7104), &kafka.bootstrap(), "");
    add_to_section(&config, "positions", "store = \"kafka\"");
    const ROWS: i64 = 600;
    let writer = insert_rows(db.port(), "kcrash", 1..=ROWS);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let position_in_kafka = || {
        let shown = Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(["positions", "show", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        String::from_utf8_lossy(&shown.stdout).contains("position: mysql:")
    };
    for run in 0..6 {
        let mut cdc = spawn_cdc(&config);
        // Killed while streaming (not while starting up on a busy machine). The log holds
        // every run's lines: wait for this run's.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while harness::cdc_log(&config).matches("Streaming binlog").count() <= run {
            assert!(std::time::Instant::now() < deadline, "run {run} not streaming:\n{}", harness::cdc_log(&config));
            std::thread::sleep(Duration::from_millis(50));
        }
        if run == 0 {
            // The first position reaches Kafka however slow the machine: every restart has one.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !position_in_kafka() {
                assert!(std::time::Instant::now() < deadline, "no position stored in Kafka within 30 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 500));
        cdc.0.kill().unwrap();
        cdc.0.wait().unwrap();
    }
    let resumed = harness::cdc_log(&config).matches("Resuming from stored position").count();
    assert_eq!(resumed, 5, "every restart resumes from the position in Kafka");
    writer.join().unwrap();
    assert!(!dir.path().join("positions.json").exists(), "positions live in Kafka, not on disk");
    let _cdc = spawn_cdc(&config);
    let got = harness::kafka::read_topic_until(&kafka.bootstrap(), "kcrash.kcrash.t", false, Duration::ZERO, |r| {
        ids_of(r).into_iter().collect::<std::collections::BTreeSet<_>>().len() == ROWS as usize
    });
    let ids = ids_of(&got);
    assert!(ids.len() >= ROWS as usize);
    let shown =
        Command::new(env!("CARGO_BIN_EXE_cdc")).args(["positions", "show", "--config"]).arg(&config).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("position: mysql:") && shown.contains("Kafka topic kcrash.positions"), "{shown}");
    let positions = read_topic(&kafka.bootstrap(), "kcrash.positions", 1, false, Duration::ZERO);
    let last = positions.last().unwrap();
    assert_eq!(last.key, Some(json!("kcrash")));
    assert_eq!(last.value.as_ref().unwrap()["name"], "kcrash");
    assert!(last.value.as_ref().unwrap()["position"].as_str().unwrap().starts_with("mysql:"));
}

/// Exactly-once mode: kill -9 at random instants while large source transactions stream,
/// until a kill has cut off an open Kafka transaction with messages on the broker; after the
/// restarts the committed transactions hold every row exactly once, in order.
///
/// tansu serves aborted transactions to `read_committed` consumers (measured), so the test
/// decides what Kafka would have committed itself: a transaction is committed when its
/// position record (matched by the `cdc.kafka_txn` header) exists and the next instance, which
/// fenced it before reading positions, resumed at or after that position.
#[test]
fn exactly_once_kill_9_committed_transactions_hold_each_change_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql("CREATE DATABASE keos; CREATE TABLE keos.t (id INT PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let config =
        write_config(dir.path(), "keos", &mysql_source(db, "keos", 7105), &kafka.bootstrap(), "exactly_once = true");
    // Small batches, large source transactions: one Kafka transaction spans many batches.
    add_to_section(&config, "positions", "store = \"kafka\"");
    add_to_section(&config, "pipeline", "batch_events = 10");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicI64::new(0));
    let writer = {
        let url = format!("mysql://root@127.0.0.1:{}/keos", db.port());
        let (stop, written) = (stop.clone(), written.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                use mysql_async::prelude::Queryable;
                let mut c = mysql_async::Conn::from_url(url).await.unwrap();
                while !stop.load(Ordering::SeqCst) {
                    let start = written.load(Ordering::SeqCst) + 1;
                    // Large enough that cdc spends most of its time inside a transaction, so
                    // a kill at a random instant cuts one off even on a fast machine.
                    let values: Vec<String> = (start..start + 20000).map(|i| format!("({i})")).collect();
                    c.query_drop(format!("INSERT INTO t VALUES {}", values.join(","))).await.unwrap();
                    written.store(start + 19999, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(600)).await;
                }
            });
        })
    };
    // Per instance, in order: its `cdc.kafka_txn` prefix and where it resumed: `None` if it was
    // killed before reading the stored position, `Some(None)` if there was none.
    type Resumed = Option<Option<cdc::model::Position>>;
    let mut instances: Vec<(Option<String>, Resumed)> = Vec::new();
    let mut note = |log: &str| {
        let resumed = log.lines().find_map(|l| {
            if l.contains("Resuming from stored position") {
                Some(field_of(l, "position").and_then(|p| p.parse().ok()))
            } else if l.contains("No stored position") {
                Some(None)
            } else {
                None
            }
        });
        instances.push((field_of(log, "kafka_txn_prefix"), resumed));
    };
    // The log holds every instance's lines: each instance is noted from its own.
    let mut log_seen = 0;
    let mut new_log_lines = || {
        let log = harness::cdc_log(&config);
        let new = log[log_seen..].to_string();
        log_seen = log.len();
        new
    };
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut kills = 0;
    let cut_off = loop {
        let mut cdc = spawn_cdc(&config);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(500 + seed % 700));
        cdc.0.kill().unwrap();
        cdc.0.wait().unwrap();
        note(&new_log_lines());
        kills += 1;
        let cut_off = without_position_record(&kafka.bootstrap(), "keos");
        if cut_off > 0 || kills == 40 {
            break cut_off;
        }
    };
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let rows = written.load(Ordering::SeqCst);
    assert!(cut_off > 0, "no kill of {kills} cut off a Kafka transaction; the test proved nothing");
    let mut last = spawn_cdc(&config);
    let got = harness::kafka::read_topic_until(&kafka.bootstrap(), "keos.keos.t", true, Duration::from_secs(2), |r| {
        ids_of(r).into_iter().collect::<std::collections::BTreeSet<_>>().len() == rows as usize
    });
    last.0.kill().unwrap();
    last.0.wait().unwrap();
    note(&new_log_lines());
    // Position of each transaction's record, by label.
    let positions = harness::kafka::read_to_end(&kafka.bootstrap(), "keos.positions", false);
    let record_position: std::collections::HashMap<String, cdc::model::Position> = positions
        .iter()
        .filter_map(|r| {
            let p = r.value.as_ref()?["position"].as_str()?.parse().ok()?;
            Some((r.headers.get("cdc.kafka_txn")?.clone(), p))
        })
        .collect();
    let committed = |label: &str| {
        let Some(p) = record_position.get(label) else { return false };
        let prefix = label.rsplit_once('-').map(|(run, _)| run).unwrap_or_default();
        let i = instances.iter().position(|(run, _)| run.as_deref() == Some(prefix)).expect("instance of a label");
        // The next instance that got as far as reading the stored position decides.
        match instances[i + 1..].iter().find_map(|(_, resumed)| resumed.as_ref()) {
            None => true, // the last instance: it was stopped after everything arrived
            Some(Some(resumed)) => p.compare(resumed).unwrap() != std::cmp::Ordering::Greater,
            Some(None) => false,
        }
    };
    let kept: Vec<Record> = got.iter().filter(|r| committed(&r.headers["cdc.kafka_txn"])).cloned().collect();
    eprintln!(
        "rows {rows}, {kills} kills, {} messages on the broker, {} in committed transactions",
        got.len(),
        kept.len()
    );
    assert!(got.len() > kept.len(), "cut-off transactions left messages on the broker");
    assert_eq!(ids_of(&kept), (1..=rows).collect::<Vec<_>>(), "committed transactions: each row once, in order");
}

/// Messages in `<name>.<name>.t` of transactions without a position record in
/// `<name>.positions`: transactions that were cut off before their commit.
fn without_position_record(bootstrap: &str, name: &str) -> usize {
    let label = |r: &Record| r.headers.get("cdc.kafka_txn").cloned();
    let positions = harness::kafka::read_to_end(bootstrap, &format!("{name}.positions"), false);
    let committed: std::collections::HashSet<String> = positions.iter().filter_map(label).collect();
    let data = harness::kafka::read_to_end(bootstrap, &format!("{name}.{name}.t"), false);
    data.iter().filter_map(label).filter(|l| !committed.contains(l)).count()
}

/// Two instances with the same transactional id: the newer one fences the older, which
/// stops with an error saying so and commits nothing after the fence (this is what makes a
/// standby instance safe).
#[test]
fn exactly_once_second_instance_fences_the_first() {
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql("CREATE DATABASE kfence; CREATE TABLE kfence.t (id INT PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "kfence",
        &mysql_source(db, "kfence", 7106),
        &kafka.bootstrap(),
        // Tansu sometimes drops the fenced producer's connection at its commit instead of
        // answering PRODUCER_FENCED: the sink then stops once the transaction timeout passes
        // while the cluster answers. A short timeout keeps that path quick.
        "exactly_once = true\n[sink.properties]\n\"transaction.timeout.ms\" = \"10000\"",
    );
    add_to_section(&config, "positions", "store = \"kafka\"");
    let mut first = spawn_cdc(&config);
    insert_rows(db.port(), "kfence", 1..=10).join().unwrap();
    read_topic(&kafka.bootstrap(), "kfence.kfence.t", 10, true, Duration::ZERO);
    let second_dir = tempfile::tempdir().unwrap();
    let second_config = second_dir.path().join("cdc.toml");
    // Same name and transactional id; its own replica server id (MariaDB drops a replica
    // connection when another one with the same id arrives).
    std::fs::write(&second_config, std::fs::read_to_string(&config).unwrap().replace("7106", "7107")).unwrap();
    let _second = spawn_cdc(&second_config);
    wait_for_log(&second_config, "Streaming binlog");
    insert_rows(db.port(), "kfence", 11..=20).join().unwrap();
    // Both instances read rows 11..20; only the second may commit them.
    let first_log = config.with_extension("log");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(&first_log).unwrap();
        if let Some(status) = first.0.try_wait().unwrap() {
            assert!(!status.success());
            assert!(log.contains("another cdc instance with the same transactional id took over"), "{log}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the fenced instance did not stop:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let first_prefix = field_of(&std::fs::read_to_string(&first_log).unwrap(), "kafka_txn_prefix").unwrap();
    let got = read_topic(&kafka.bootstrap(), "kfence.kfence.t", 20, true, Duration::from_millis(500));
    // The position records of the transactions that delivered rows 1..20 (a commit's position
    // record may show up a moment after its data).
    let labels = |r: &[Record]| -> std::collections::HashSet<String> {
        r.iter().filter_map(|r| r.headers.get("cdc.kafka_txn").cloned()).collect()
    };
    let positions =
        harness::kafka::read_topic_until(&kafka.bootstrap(), "kfence.positions", false, Duration::ZERO, |p| {
            let committed = labels(p);
            (1..=20).all(|id| {
                got.iter().any(|r| {
                    r.value.as_ref().unwrap()["after"]["id"] == id && committed.contains(&r.headers["cdc.kafka_txn"])
                })
            })
        });
    let committed = labels(&positions);
    let kept: Vec<Record> = got.iter().filter(|r| committed.contains(&r.headers["cdc.kafka_txn"])).cloned().collect();
    assert_eq!(ids_of(&kept), (1..=20).collect::<Vec<_>>(), "each row committed once");
    assert!(
        kept.iter()
            .filter(|r| r.headers["cdc.kafka_txn"].starts_with(&format!("{first_prefix}-")))
            .all(|r| { r.value.as_ref().unwrap()["after"]["id"].as_i64().unwrap() <= 10 }),
        "the fenced instance committed nothing after the fence"
    );
}

/// The first value of `name=` in a log.
fn field_of(log: &str, name: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| l.split(&format!("{name}=")).nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|v| v.trim_matches('"').to_string())
        .next()
}

/// A change bigger than the producer may send stops the pipeline with one line naming the
/// table, the key and the setting to change; nothing after it is checkpointed.
#[test]
fn oversized_message_is_a_definite_error_naming_table_key_and_setting() {
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql("CREATE DATABASE kbig; CREATE TABLE kbig.t (id INT PRIMARY KEY, body LONGTEXT); INSERT INTO kbig.t VALUES (1, 'small');");
    let dir = tempfile::tempdir().unwrap();
    let extra = "[sink.properties]\n\"message.max.bytes\" = \"20000\"";
    let config = write_config(dir.path(), "kbig", &mysql_source(db, "kbig", 7108), &kafka.bootstrap(), extra);
    let mut cdc = spawn_cdc(&config);
    read_topic(&kafka.bootstrap(), "kbig.kbig.t", 1, false, Duration::ZERO);
    db.sql("INSERT INTO kbig.t VALUES (2, REPEAT('x', 50000)); INSERT INTO kbig.t VALUES (3, 'after');");
    assert_failed_within_30s(&mut cdc, "cdc kept running");
    let log = harness::cdc_log(&config);
    let line = log.lines().find(|l| l.contains("Kafka refused")).unwrap_or_else(|| panic!("{log}"));
    for part in ["kbig.kbig.t", r#"{"id":2}"#, "kbig.t", "message.max.bytes"] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    let got = read_topic(&kafka.bootstrap(), "kbig.kbig.t", 1, false, Duration::from_millis(500));
    assert_eq!(ids_of(&got), [1], "nothing after the refused change is delivered");
}

/// Transaction metadata: BEGIN and END (with per-table counts) on `<name>.transaction`, and
/// each event numbered in its transaction — also when a transaction spans several batches.
#[test]
fn transaction_metadata_begin_end_and_event_order() {
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql("CREATE DATABASE ktx; CREATE TABLE ktx.a (id INT PRIMARY KEY); CREATE TABLE ktx.b (id INT PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "ktx",
        &mysql_source(db, "ktx", 7109),
        &kafka.bootstrap(),
        "transaction_metadata = true",
    );
    add_to_section(&config, "pipeline", "batch_events = 2");
    let _cdc = spawn_cdc(&config);
    wait_for_log(&config, "Streaming binlog");
    db.sql(
        "BEGIN; INSERT INTO ktx.a VALUES (1); INSERT INTO ktx.b VALUES (1); INSERT INTO ktx.a VALUES (2); COMMIT;
         INSERT INTO ktx.b VALUES (2);",
    );
    let tx = read_topic(&kafka.bootstrap(), "ktx.transaction", 4, false, Duration::from_millis(500));
    let values: Vec<serde_json::Value> = tx.iter().map(|r| r.value.clone().unwrap()).collect();
    let (first, second) = (values[0]["id"].as_str().unwrap(), values[2]["id"].as_str().unwrap());
    assert_ne!(first, second);
    assert_eq!(tx[0].key, Some(json!({"id": first})));
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("ts_ms");
        v
    };
    assert_eq!(
        values.iter().map(strip).collect::<Vec<_>>(),
        [
            json!({"status": "BEGIN", "id": first, "event_count": null, "data_collections": null}),
            json!({"status": "END", "id": first, "event_count": 3, "data_collections": [
                {"data_collection": "ktx.a", "event_count": 2}, {"data_collection": "ktx.b", "event_count": 1}]}),
            json!({"status": "BEGIN", "id": second, "event_count": null, "data_collections": null}),
            json!({"status": "END", "id": second, "event_count": 1, "data_collections": [
                {"data_collection": "ktx.b", "event_count": 1}]}),
        ]
    );
    let a = read_topic(&kafka.bootstrap(), "ktx.ktx.a", 2, false, Duration::ZERO);
    let b = read_topic(&kafka.bootstrap(), "ktx.ktx.b", 2, false, Duration::ZERO);
    let block = |r: &Record| r.value.as_ref().unwrap()["transaction"].clone();
    assert_eq!(block(&a[0]), json!({"id": first, "total_order": 1, "data_collection_order": 1}));
    assert_eq!(block(&b[0]), json!({"id": first, "total_order": 2, "data_collection_order": 1}));
    assert_eq!(block(&a[1]), json!({"id": first, "total_order": 3, "data_collection_order": 2}));
    assert_eq!(block(&b[1]), json!({"id": second, "total_order": 1, "data_collection_order": 1}));
}

/// `order_by = "table"`: every change of a table goes to one partition (the Java partitioner's
/// murmur2 of `db.table`), so a table's changes keep their order; by default the key spreads
/// them over the partitions.
#[test]
fn order_by_table_keeps_each_table_in_one_partition() {
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql("CREATE DATABASE kord; CREATE TABLE kord.t (id INT PRIMARY KEY); CREATE TABLE kord.u (id INT PRIMARY KEY);");
    let run = |name: &str, server_id: u32, extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!("topic = \"{name}-all\"\npartitions = 4\n{extra}");
        let config = write_config(dir.path(), name, &mysql_source(db, "kord", server_id), &kafka.bootstrap(), &extra);
        let _cdc = spawn_cdc(&config);
        read_topic(&kafka.bootstrap(), &format!("{name}-all"), 80, false, Duration::from_millis(300))
    };
    let values: Vec<String> = (1..=40).map(|i| format!("({i})")).collect();
    db.sql(&format!("INSERT INTO kord.t VALUES {0}; INSERT INTO kord.u VALUES {0};", values.join(",")));
    let by_table = run("kordt", 7110, "order_by = \"table\"");
    for table in ["t", "u"] {
        let records: Vec<&Record> =
            by_table.iter().filter(|r| r.value.as_ref().unwrap()["source"]["table"] == table).collect();
        let partitions: std::collections::BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "table {table} spread over {partitions:?}");
        let expected = cdc::sinks::kafka::client::murmur2_partition(format!("kord.{table}").as_bytes(), 4);
        assert_eq!(partitions.first(), Some(&expected));
        let ids: Vec<i64> =
            records.iter().map(|r| r.value.as_ref().unwrap()["after"]["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, (1..=40).collect::<Vec<_>>());
    }
    let by_key = run("kordk", 7111, "");
    let partitions: std::collections::BTreeSet<i32> = by_key.iter().map(|r| r.partition).collect();
    assert!(partitions.len() > 1, "keys spread over partitions by default");
}

/// Avro with a schema registry: the registry is down when cdc starts (cdc waits and says so,
/// nothing is lost); an added column registers a second, compatible version and each record
/// names the version it was written with; a change the registry refuses as incompatible (INT
/// to VARCHAR) stops cdc with an error naming the table and subject, and nothing after it is
/// delivered.
#[test]
fn avro_registry_outage_added_column_and_refused_change() {
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql("CREATE DATABASE kavro; CREATE TABLE kavro.t (id INT PRIMARY KEY, a VARCHAR(10)); INSERT INTO kavro.t VALUES (1, 'x'), (2, NULL);");
    let port = harness::free_port();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "format = \"avro\"\ntransaction_metadata = true\nschema_registry = {{ url = \"http://127.0.0.1:{port}\" }}"
    );
    let config = write_config(dir.path(), "kavro", &mysql_source(db, "kavro", 7111), &kafka.bootstrap(), &extra);
    let mut cdc = spawn_cdc(&config);
    wait_for_log(&config, "schema registry at http://127.0.0.1");
    assert!(cdc.0.try_wait().unwrap().is_none(), "cdc must wait for the registry, not exit");
    let registry = harness::oracle::SchemaRegistry::start_on(port);
    let decoded = |want: usize| -> Vec<serde_json::Value> {
        read_topic(&kafka.bootstrap(), "kavro.kavro.t", want, false, Duration::ZERO)
            .iter()
            .map(|r| harness::oracle::avro_to_json(&registry, r.raw_value.as_ref().unwrap()))
            .collect()
    };
    assert_eq!(
        decoded(2).iter().map(|v| v["after"].clone()).collect::<Vec<_>>(),
        [json!({"id": 1, "a": "x"}), json!({"id": 2, "a": null})]
    );
    // The table's and the transaction records' key and value subjects.
    let check = Command::new(env!("CARGO_BIN_EXE_cdc")).args(["check", "--config"]).arg(&config).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.contains(&format!("PASS schema registry at http://127.0.0.1:{port} answers (4 subjects)")),
        "{report}"
    );
    db.sql("ALTER TABLE kavro.t ADD COLUMN b INT; INSERT INTO kavro.t VALUES (3, 'y', 7);");
    let values = decoded(3);
    assert_eq!(values[2]["after"], json!({"id": 3, "a": "y", "b": 7}));
    assert_eq!(registry.get("/subjects/kavro.kavro.t-value/versions"), (200, json!([1, 2])));
    assert_eq!(registry.get("/subjects/kavro.kavro.t-key/versions"), (200, json!([1])));
    // Transaction records are Avro too: BEGIN and END of the insert after the ALTER, with its
    // counts (the first rows came from the snapshot, which has no transactions).
    let transactions: Vec<_> = read_topic(&kafka.bootstrap(), "kavro.transaction", 2, false, Duration::ZERO)
        .iter()
        .map(|r| harness::oracle::avro_to_json(&registry, r.raw_value.as_ref().unwrap()))
        .collect();
    let (begin, end) = (&transactions[0], &transactions[1]);
    assert_eq!((&begin["status"], &begin["event_count"]), (&json!("BEGIN"), &json!(null)));
    assert_eq!(end["status"], "END");
    assert_eq!(end["id"], begin["id"]);
    assert_eq!(end["data_collections"], json!([{"data_collection": "kavro.t", "event_count": 1}]));
    db.sql("ALTER TABLE kavro.t MODIFY b VARCHAR(20); INSERT INTO kavro.t VALUES (4, 'z', 'text');");
    assert_failed_within_30s(&mut cdc, "cdc kept running after the registry refused a schema");
    let log = harness::cdc_log(&config);
    let line = log.lines().find(|l| l.contains("refused the new schema")).unwrap_or_else(|| panic!("{log}"));
    for part in ["kavro.t", "`kavro.kavro.t-value`", "compatib"] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    let got = read_topic(&kafka.bootstrap(), "kavro.kavro.t", 3, false, Duration::from_millis(500));
    assert_eq!(got.len(), 3, "nothing after the refused change is delivered");
}

/// Credentials the broker refuses stop cdc at once with a definite error (not a wait for an
/// unreachable broker), with positions in Kafka (admin and consumer calls first) and in a file
/// (the producer first); the password never appears in the log.
#[test]
fn refused_sasl_credentials_are_a_definite_error() {
    let db = shared_mariadb();
    let broker = harness::KafkaBroker::start_authenticating();
    db.sql("CREATE DATABASE ksasl; CREATE TABLE ksasl.t (id INT PRIMARY KEY); INSERT INTO ksasl.t VALUES (1);");
    for positions in ["store = \"kafka\"", ""] {
        let dir = tempfile::tempdir().unwrap();
        let sasl = "[sink.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\
                    \"sasl.username\" = \"cdc\"\n\"sasl.password\" = \"hunter2-secret\"";
        let config = write_config(dir.path(), "ksasl", &mysql_source(db, "ksasl", 7112), &broker.bootstrap(), sasl);
        add_to_section(&config, "positions", positions);
        let mut cdc = spawn_cdc(&config);
        assert_failed_within_30s(&mut cdc, &format!("cdc kept waiting with refused credentials ({positions})"));
        let log = harness::cdc_log(&config);
        let last = log.lines().last().unwrap_or_default();
        assert!(last.contains("Kafka authentication failed") && last.contains("sasl"), "{positions}: {last}");
        assert!(!log.contains("hunter2-secret"), "the password leaked into the log");
    }
}
