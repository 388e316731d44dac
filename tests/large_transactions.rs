//! One huge transaction streams through `cdc run` with memory staying bounded: it is
//! delivered in batches with backpressure, never held whole. MariaDB and PostgreSQL 13 (no
//! in-progress streaming: the server spills it to its own disk and sends it at commit): 1M
//! rows; PostgreSQL 15: 5M rows, streamed by the server before the commit into cdc's spool.

mod harness;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{ChildGuard, Postgres, free_port, shared_mariadb, shared_pg15};

const ROWS: u64 = 1_000_000;
/// Peak resident memory allowed for the whole process (the target is 64 MB in release;
/// this is a debug build).
const MAX_RSS_MB: u64 = 100;

fn peak_rss_mb(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// Runs `cdc run` (stdout discarded), from `from` if given, until all `rows` are checkpointed;
/// returns its peak RSS in MB.
fn drain(source: &str, name: &str, from: Option<&str>, rows: u64) -> u64 {
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
            && s["events_checkpointed"].as_u64() >= Some(rows)
        {
            assert_eq!(s["events_checkpointed"].as_u64(), Some(rows), "every row once: {s}");
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
    let rss = drain(&source, "bigtx", Some(&from), ROWS);
    eprintln!("peak RSS {rss} MB for a {ROWS}-row transaction");
    assert!(rss <= MAX_RSS_MB, "peak RSS {rss} MB for a 1M-row transaction");
}

/// One transaction of `rows` rows on `pg`, drained by cdc; returns the peak RSS in MB.
fn postgres_transaction(pg: &Postgres, name: &str, rows: u64) -> u64 {
    let db = pg.create_db(name);
    pg.sql(&db, &format!("CREATE TABLE t (id bigint PRIMARY KEY, v text); CREATE PUBLICATION cdc_{name} FOR TABLE t;"));
    // The slot exists before the transaction, so the stream carries it.
    pg.sql(&db, &format!("SELECT pg_create_logical_replication_slot('cdc_{name}', 'pgoutput')"));
    pg.sql(&db, &format!("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, {rows}) g"));
    let source = format!("[source]\nkind = \"postgres\"\nurl = \"{}\"\nsnapshot = \"never\"", pg.url(&db));
    let rss = drain(&source, name, None, rows);
    eprintln!("peak RSS {rss} MB for a {rows}-row transaction on PostgreSQL {}", pg.version);
    rss
}

#[test]
fn postgres_5_million_row_transaction_streamed_in_bounded_memory() {
    const ROWS_15: u64 = 5_000_000;
    let pg = shared_pg15();
    let rss = postgres_transaction(pg, "bigtxpg", ROWS_15);
    assert!(rss <= MAX_RSS_MB, "peak RSS {rss} MB for a {ROWS_15}-row transaction");
    // Larger than logical_decoding_work_mem (64 MB): the server sent it before the commit.
    let streamed = pg.sql(
        "bigtxpg",
        "SELECT stream_txns > 0 AND stream_bytes > 64 * 1024 * 1024 FROM pg_stat_replication_slots WHERE slot_name = 'cdc_bigtxpg'",
    );
    assert_eq!(streamed, "t", "the transaction was not streamed before its commit");
}

#[test]
fn postgres_13_million_row_transaction_sent_at_commit_in_bounded_memory() {
    // No in-progress streaming before 14: the server spills the transaction to pg_replslot
    // and sends it whole after the commit; cdc forwards it batch by batch as it arrives.
    let pg = Postgres::start(13);
    let rss = postgres_transaction(&pg, "bigtxpg13", ROWS);
    assert!(rss <= MAX_RSS_MB, "peak RSS {rss} MB for a {ROWS}-row transaction");
}
