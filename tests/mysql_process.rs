//! `cdc run` as a process against MariaDB: the HTTP admin endpoints, and kill -9 at random
//! instants during a steady stream followed by restarts — nothing is lost.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{ChildGuard, free_port, shared_mariadb};

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the admin port");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

fn write_config(dir: &std::path::Path, db: &str, url: &str, http: Option<u16>, server_id: u32) -> std::path::PathBuf {
    let http = http.map(|p| format!("[http]\nlisten = \"127.0.0.1:{p}\"\n")).unwrap_or_default();
    let text = format!(
        "name = \"{db}\"\n[source]\nkind = \"mysql\"\nurl = \"{url}\"\nserver_id = {server_id}\ntables = [\"{db}.*\"]\n\
         snapshot = \"initial\"\nheartbeat_secs = 1\n[sink]\nkind = \"file\"\npath = \"{out}\"\n\
         [positions]\npath = \"{pos}\"\n[pipeline]\ncheckpoint_interval_ms = 20\n{http}",
        out = dir.join("out.jsonl").display(),
        pos = dir.join("positions.json").display(),
    );
    let path = dir.join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn_cdc(config: &std::path::Path) -> ChildGuard {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(config.with_file_name("cdc.log")).unwrap();
    ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

#[test]
fn admin_endpoints_report_health_readiness_metrics_and_status() {
    let db = shared_mariadb();
    db.sql("CREATE DATABASE admin_db; CREATE TABLE admin_db.t (id INT PRIMARY KEY); INSERT INTO admin_db.t VALUES (1),(2);");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = db.url("").replace("root@", "root:hunter2@");
    db.sql("CREATE USER 'adminpw'@'127.0.0.1' IDENTIFIED BY 'hunter2'; GRANT ALL ON *.* TO 'adminpw'@'127.0.0.1';");
    let url = url.replace("root:", "adminpw:");
    let config = write_config(dir.path(), "admin_db", &url, Some(port), 6101);
    let _cdc = spawn_cdc(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && http_get(port, "/ready").0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_get(port, "/health"), (200, "ok\n".to_string()));
    db.sql("INSERT INTO admin_db.t VALUES (3)");
    // The three events are counted and checkpointed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (code, body) = http_get(port, "/status");
        assert_eq!(code, 200);
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status["events_checkpointed"] == 3 {
            break status;
        }
        assert!(Instant::now() < deadline, "status never showed 3 checkpointed events: {status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["name"], "admin_db");
    assert_eq!(status["phase"], "streaming");
    assert_eq!(status["lag_events"], 0);
    // Binlog bytes between the durable position and the server's head: reported (checked at
    // the heartbeat interval) and small once caught up (other tests' writes share the server).
    let deadline = Instant::now() + Duration::from_secs(10);
    let lag = loop {
        let status: serde_json::Value = serde_json::from_str(&http_get(port, "/status").1).unwrap();
        if let Some(lag) = status["source_lag_bytes"].as_u64() {
            break lag;
        }
        assert!(Instant::now() < deadline, "no source_lag_bytes in /status: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(lag < 1 << 20, "{lag} bytes behind after catching up");
    assert!(status["checkpointed_position"].as_str().unwrap().starts_with("mysql:file="));
    // Other databases' transactions move the source position on; the checkpoint never passes it.
    let source: cdc::model::Position = status["source_position"].as_str().unwrap().parse().unwrap();
    let checkpoint: cdc::model::Position = status["checkpointed_position"].as_str().unwrap().parse().unwrap();
    assert_ne!(checkpoint.compare(&source).unwrap(), std::cmp::Ordering::Greater);
    let (code, metrics) = http_get(port, "/metrics");
    assert_eq!(code, 200);
    for line in [
        "cdc_events_total{pipeline=\"admin_db\"} 3",
        "cdc_events_checkpointed_total{pipeline=\"admin_db\"} 3",
        "cdc_errors_total{pipeline=\"admin_db\",kind=\"definite\"} 0",
        "cdc_ready{pipeline=\"admin_db\"} 1",
        "# TYPE cdc_bytes_total counter",
        "# TYPE cdc_source_lag_bytes gauge",
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing `{line}` in:\n{metrics}");
    }
    assert!(metrics.contains("cdc_checkpoint_age_seconds{pipeline=\"admin_db\"}"));
    let (_, all) = http_get(port, "/status");
    assert!(!all.contains("hunter2") && !metrics.contains("hunter2"));
}

/// kill -9 at random instants while rows stream in; each restart resumes from the stored
/// position. At the end every row is in the output at least once.
#[test]
fn kill_9_and_restart_loses_nothing() {
    let db = shared_mariadb();
    db.sql("CREATE DATABASE crash_db; CREATE TABLE crash_db.t (id INT PRIMARY KEY, v VARCHAR(20));");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "crash_db", &db.url(""), None, 6102);
    const ROWS: i64 = 600;
    let writer = {
        let port = db.port();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                use mysql_async::prelude::Queryable;
                let mut c =
                    mysql_async::Conn::from_url(format!("mysql://root@127.0.0.1:{port}/crash_db")).await.unwrap();
                for i in 1..=ROWS {
                    c.query_drop(format!("INSERT INTO t VALUES ({i}, 'row{i}')")).await.unwrap();
                    if i % 50 == 0 {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                }
            });
        })
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..6 {
        let mut cdc = spawn_cdc(&config);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 400));
        cdc.0.kill().unwrap(); // SIGKILL
        cdc.0.wait().unwrap();
        // The position file is always whole.
        cdc::positions::FilePositionStore::read(&dir.path().join("positions.json")).unwrap();
    }
    writer.join().unwrap();
    let log = || std::fs::read_to_string(dir.path().join("cdc.log")).unwrap_or_default();
    let streams_before = log().matches("Streaming binlog").count();
    let mut cdc = spawn_cdc(&config);
    // Earlier runs may already have written every row: the SIGTERM below must reach a cdc that
    // is running (its signal handler installed), not one still starting.
    let deadline = Instant::now() + Duration::from_secs(60);
    while log().matches("Streaming binlog").count() == streams_before {
        assert!(Instant::now() < deadline, "the last run never streamed:\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = dir.path().join("out.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let ids: std::collections::HashSet<i64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["after"]["id"].as_i64())
            .collect();
        if ids.len() == ROWS as usize {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of {ROWS} rows after the restarts", ids.len());
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { kill(cdc.0.id() as i32, 15) };
    let status = cdc.0.wait().unwrap();
    assert!(status.success(), "{status}: {}", log());
    // Every line is whole JSON (a kill never leaves a torn line that is not the last one of a run).
    let text = std::fs::read_to_string(&out).unwrap();
    let parsed = text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).count();
    assert!(parsed + 6 >= text.lines().count(), "torn lines beyond one per kill");
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
