//! One transaction of 1,000,000 rows streams through `cdc run` with memory staying bounded:
//! it is delivered in batches with backpressure, never held whole.

mod harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{ChildGuard, free_port, shared_mariadb, shared_pg15};

const ROWS: u64 = 1_000_000;
/// Peak resident memory allowed for the whole process (the target is 64 MB in release;
/// this is a debug build).
const MAX_RSS_MB: u64 = 100;

fn peak_rss_mb(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// Runs `cdc run` (stdout discarded), from `from` if given, until every row is checkpointed;
/// returns its peak RSS in MB.
fn drain(source: &str, name: &str, from: Option<&str>) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("cdc.toml");
    let positions = dir.path().join("p.json");
    std::fs::write(
        &config,
        format!(
            "name = \"{name}\"\n{source}\n[positions]\npath = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
            positions.display()
        ),
    )
    .unwrap();
    let mut args: Vec<String> = vec!["run".into(), "--config".into(), config.display().to_string()];
    if let Some(f) = from {
        args.extend(["--from".into(), f.into()]);
    }
    let cdc = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(s) = harness::cdc_status(port)
            && s["events_checkpointed"].as_u64() >= Some(ROWS)
        {
            assert_eq!(s["events_checkpointed"].as_u64(), Some(ROWS), "every row once: {s}");
            break;
        }
        assert!(Instant::now() < deadline, "not drained in 10 minutes: {:?}", harness::cdc_status(port));
        std::thread::sleep(Duration::from_millis(200));
    }
    peak_rss_mb(cdc.0.id())
}

#[test]
fn mariadb_million_row_transaction_in_bounded_memory() {
    let db = shared_mariadb();
    db.sql("CREATE DATABASE bigtx; CREATE TABLE bigtx.t (id BIGINT PRIMARY KEY, v VARCHAR(100));");
    let status = db.sql("SHOW MASTER STATUS");
    let mut cols = status.split('\t');
    let from = format!("mysql:file={}:pos={}", cols.next().unwrap(), cols.next().unwrap());
    db.sql(&format!("USE bigtx; INSERT INTO t SELECT seq, REPEAT('x', 100) FROM seq_1_to_{ROWS};"));
    let source = format!(
        "[source]\nkind = \"mysql\"\nurl = \"{}\"\nserver_id = 9001\ntables = [\"bigtx.*\"]\nsnapshot = \"never\"",
        db.url("")
    );
    let rss = drain(&source, "bigtx", Some(&from));
    eprintln!("peak RSS {rss} MB for a {ROWS}-row transaction");
    assert!(rss <= MAX_RSS_MB, "peak RSS {rss} MB for a 1M-row transaction");
}

#[test]
fn postgres_million_row_transaction_in_bounded_memory() {
    let pg = shared_pg15();
    let db = pg.create_db("bigtxpg");
    pg.sql(&db, "CREATE TABLE t (id bigint PRIMARY KEY, v text); CREATE PUBLICATION cdc_bigtxpg FOR TABLE t;");
    // The slot exists before the transaction, so the stream carries it.
    pg.sql(&db, "SELECT pg_create_logical_replication_slot('cdc_bigtxpg', 'pgoutput')");
    pg.sql(&db, &format!("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, {ROWS}) g"));
    let source = format!("[source]\nkind = \"postgres\"\nurl = \"{}\"\nsnapshot = \"never\"", pg.url(&db));
    let rss = drain(&source, "bigtxpg", None);
    eprintln!("peak RSS {rss} MB for a {ROWS}-row transaction");
    assert!(rss <= MAX_RSS_MB, "peak RSS {rss} MB for a 1M-row transaction");
}
