//! Debezium 3.6 as the oracle for encodings: its embedded engine (`tests/oracle/DbzOracle.java`)
//! captures the same changes as cdc, and these helpers compare the two.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{ChildGuard, test_prefix};

/// How the oracle converts records (`DbzOracle`'s last argument).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// JsonConverter without schemas: one envelope per line.
    Json,
    /// JsonConverter with `schemas.enable=true`: `{"key": …, "value": …}` per line.
    JsonSchemas,
    /// AvroConverter with an in-memory registry: once all events are in, one line per topic
    /// with the key and value schemas it registered.
    Avro,
}

/// A running Debezium engine printing one event per line.
pub struct Oracle {
    /// Debezium's standard output, line by line (read on a thread so every wait is bounded).
    lines: Receiver<String>,
    _process: ChildGuard,
    _classes: tempfile::TempDir,
}

impl Oracle {
    /// Starts Debezium's `kind` connector (`postgres` or `mysql`) on `table` of `db`; returns
    /// once its task runs (the caller checks it streams).
    pub fn start(kind: &str, port: u16, db: &str, table: &str, events: usize, mode: Mode) -> Oracle {
        let classes = tempfile::tempdir().unwrap();
        let libs = test_prefix().join("debezium/libs");
        assert!(libs.exists(), "Debezium jars missing at {}: run scripts/setup.sh", libs.display());
        let cp = format!("{}/*", libs.display());
        let out = Command::new("javac")
            .args(["-cp", &cp, "-d"])
            .arg(classes.path())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/DbzOracle.java"))
            .output()
            .expect("run javac (Java 17)");
        assert!(out.status.success(), "javac failed: {}", String::from_utf8_lossy(&out.stderr));
        let cp = format!("{cp}:{}", classes.path().display());
        let mut args = vec!["-cp".to_string(), cp, "DbzOracle".into(), kind.into(), port.to_string()];
        args.extend([db.to_string(), table.to_string(), events.to_string()]);
        match mode {
            Mode::Json => {}
            Mode::JsonSchemas => args.push("schemas".into()),
            Mode::Avro => args.push("avro".into()),
        }
        let log = classes.path().join("oracle.log");
        let mut process = ChildGuard(
            Command::new("java")
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        // Stopped with the test process even when it exits without unwinding.
        super::spawn_watchdog(process.0.id(), classes.path());
        let stdout = process.0.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut oracle = Oracle { lines, _process: process, _classes: classes };
        while oracle.next_line(Duration::from_secs(120), "start streaming") != "READY" {}
        oracle
    }

    /// The next line Debezium printed; panics with its log when none comes within `wait`.
    fn next_line(&mut self, wait: Duration, doing: &str) -> String {
        let log = || std::fs::read_to_string(self._classes.path().join("oracle.log")).unwrap_or_default();
        match self.lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("Debezium did not {doing} within {wait:?}:\n{}", log()),
            Err(RecvTimeoutError::Disconnected) => panic!("Debezium exited before it could {doing}:\n{}", log()),
        }
    }

    /// The next `n` events Debezium printed.
    pub fn events(&mut self, n: usize) -> Vec<Json> {
        let mut events = Vec::with_capacity(n);
        let deadline = Instant::now() + Duration::from_secs(120);
        while events.len() < n {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line(wait, &format!("print {n} events (got {})", events.len()));
            // Libraries may log to standard output too.
            if line.starts_with('{') {
                events.push(serde_json::from_str(&line).expect("oracle JSON"));
            }
        }
        events
    }
}

/// Differences between Debezium's envelopes and cdc's: `op`, every column of `before` and
/// `after` but the `deliberate` ones, and the listed `source` fields.
pub fn envelope_differences(theirs: &[Json], ours: &[Json], deliberate: &[&str], source: &[&str]) -> Vec<String> {
    let mut diffs = Vec::new();
    if theirs.len() != ours.len() {
        diffs.push(format!("{} events from Debezium, {} from cdc", theirs.len(), ours.len()));
    }
    for (i, (d, c)) in theirs.iter().zip(ours).enumerate() {
        if d["op"] != c["op"] {
            diffs.push(format!("event {i} op: Debezium {} cdc {}", d["op"], c["op"]));
        }
        for image in ["before", "after"] {
            let (dv, cv) = (&d[image], &c[image]);
            match (dv.as_object(), cv.as_object()) {
                (Some(dm), Some(cm)) => {
                    for (k, v) in dm {
                        if Some(v) != cm.get(k) && !deliberate.contains(&k.as_str()) {
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
        for field in source {
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

/// Differences between two Kafka Connect schemas, struct field by struct field (so a column
/// that differs is named, not the whole row schema).
pub fn schema_differences(at: &str, theirs: &Json, ours: &Json) -> Vec<String> {
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

/// Differences between Debezium's records (`{"key","value"}` with schemas) and cdc's Kafka
/// records (tombstones left out): key and envelope schemas, keys, and the envelopes as
/// [`envelope_differences`] sees them.
pub fn record_differences(
    theirs: &[Json],
    ours: &[super::kafka::Record],
    deliberate: &[&str],
    source: &[&str],
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (i, (d, c)) in theirs.iter().zip(ours).enumerate() {
        let (ckey, cvalue) = (c.key.clone().unwrap_or(Json::Null), c.value.clone().unwrap_or(Json::Null));
        diffs.extend(schema_differences(&format!("event {i} key"), &d["key"]["schema"], &ckey["schema"]));
        if d["key"]["payload"] != ckey["payload"] {
            diffs.push(format!("event {i} key: Debezium {} cdc {}", d["key"]["payload"], ckey["payload"]));
        }
        diffs.extend(schema_differences(&format!("event {i} envelope"), &d["value"]["schema"], &cvalue["schema"]));
    }
    let theirs: Vec<Json> = theirs.iter().map(|d| d["value"]["payload"].clone()).collect();
    let ours: Vec<Json> = ours.iter().map(|c| c.value.as_ref().map_or(Json::Null, |v| v["payload"].clone())).collect();
    diffs.extend(envelope_differences(&theirs, &ours, deliberate, source));
    diffs
}
