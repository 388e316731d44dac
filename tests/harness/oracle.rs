//! Debezium 3.6 as the oracle for encodings: its embedded engine (`tests/oracle/DbzOracle.java`)
//! captures the same changes as cdc, and these helpers compare the two.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{ChildGuard, free_port, spawn_watchdog, test_prefix};

/// Compiles the Java helpers (`tests/oracle/*.java`) once per test binary; their class path.
fn class_path() -> String {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    let libs = test_prefix().join("debezium/libs");
    assert!(libs.exists(), "Debezium jars missing at {}: run scripts/setup.sh", libs.display());
    let jars = format!("{}/*", libs.display());
    let classes = CLASSES.get_or_init(|| {
        let classes = tempfile::tempdir().unwrap().keep();
        let sources = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle");
        let out = Command::new("javac")
            .args(["-cp", &jars, "-d"])
            .arg(&classes)
            .args([format!("{sources}/DbzOracle.java"), format!("{sources}/SchemaRegistry.java")])
            .output()
            .expect("run javac (Java 17)");
        assert!(out.status.success(), "javac failed: {}", String::from_utf8_lossy(&out.stderr));
        classes
    });
    format!("{jars}:{}", classes.display())
}

/// How the oracle converts records (`DbzOracle`'s last argument).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode<'a> {
    /// JsonConverter without schemas: one envelope per line.
    Json,
    /// JsonConverter with `schemas.enable=true`: `{"key": …, "value": …}` per line.
    JsonSchemas,
    /// Confluent's AvroConverter registering its schemas in the registry at this URL; each
    /// event is printed as the JSON of what its Avro bytes decode to.
    Avro(&'a str),
}

/// A running Debezium engine printing one event per line.
pub struct Oracle {
    /// Debezium's standard output, line by line (read on a thread so every wait is bounded).
    lines: Receiver<String>,
    _process: ChildGuard,
    log_dir: tempfile::TempDir,
}

impl Oracle {
    /// Starts Debezium's `kind` connector (`postgres` or `mysql`) on `table` of `db`; returns
    /// once its task runs (the caller checks it streams).
    pub fn start(kind: &str, port: u16, db: &str, table: &str, events: usize, mode: Mode) -> Oracle {
        let classes = tempfile::tempdir().unwrap();
        let mut args = vec!["-cp".to_string(), class_path(), "DbzOracle".into(), kind.into(), port.to_string()];
        args.extend([db.to_string(), table.to_string(), events.to_string()]);
        match mode {
            Mode::Json => {}
            Mode::JsonSchemas => args.push("schemas".into()),
            Mode::Avro(registry) => args.push(format!("avro={registry}")),
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
        spawn_watchdog(process.0.id(), classes.path());
        let stdout = process.0.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut oracle = Oracle { lines, _process: process, log_dir: classes };
        while oracle.next_line(Duration::from_secs(120), "start streaming") != "READY" {}
        oracle
    }

    /// The next line Debezium printed; panics with its log when none comes within `wait`.
    fn next_line(&mut self, wait: Duration, doing: &str) -> String {
        let log = || std::fs::read_to_string(self.log_dir.path().join("oracle.log")).unwrap_or_default();
        match self.lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("Debezium did not {doing} within {wait:?}:\n{}", log()),
            Err(RecvTimeoutError::Disconnected) => panic!("Debezium exited before it could {doing}:\n{}", log()),
        }
    }

    /// Waits until Debezium's log (its standard error) contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(self.log_dir.path().join("oracle.log")).unwrap_or_default();
            if log.contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "Debezium never logged {needle:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
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

/// A Confluent-compatible schema registry (`tests/oracle/SchemaRegistry.java`: Confluent's
/// in-memory registry behind its REST API) on a free port.
pub struct SchemaRegistry {
    pub url: String,
    _process: ChildGuard,
}

impl SchemaRegistry {
    pub fn start() -> SchemaRegistry {
        SchemaRegistry::start_on(free_port())
    }

    pub fn start_on(port: u16) -> SchemaRegistry {
        let mut process = ChildGuard(
            Command::new("java")
                .args(["-cp", &class_path(), "SchemaRegistry", &port.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        spawn_watchdog(process.0.id(), &std::env::temp_dir().join("no-such-dir"));
        let mut ready = String::new();
        BufReader::new(process.0.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "READY", "schema registry did not start");
        SchemaRegistry { url: format!("http://127.0.0.1:{port}"), _process: process }
    }

    /// `GET path` (e.g. `/subjects/t-value/versions/latest`): status and JSON body.
    pub fn get(&self, path: &str) -> (u16, Json) {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", &format!("{}{path}", self.url)])
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (status.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Json::Null))
    }

    /// The schema registered last under `subject`.
    pub fn latest(&self, subject: &str) -> Json {
        let (status, body) = self.get(&format!("/subjects/{subject}/versions/latest"));
        assert_eq!(status, 200, "no schema under {subject}: {body}");
        serde_json::from_str(body["schema"].as_str().unwrap()).unwrap()
    }
}

/// What a Confluent-framed Avro record (magic byte, schema id, Avro body) holds, with its
/// schema fetched from `registry` by id, as JSON the way Kafka Connect's JsonConverter writes
/// it (bytes in base64, unions unwrapped, non-finite floats as "NaN"/"Infinity").
pub fn avro_to_json(registry: &SchemaRegistry, bytes: &[u8]) -> Json {
    assert!(bytes.len() > 5 && bytes[0] == 0, "not in the Confluent wire format: {bytes:?}");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let (status, body) = registry.get(&format!("/schemas/ids/{id}"));
    assert_eq!(status, 200, "schema {id} not in the registry: {body}");
    let schema = apache_avro::Schema::parse_str(body["schema"].as_str().unwrap()).expect("registered schema parses");
    let mut reader = &bytes[5..];
    let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .and_then(|r| r.read_value(&mut reader))
        .expect("Avro body decodes");
    assert!(reader.is_empty(), "{} bytes after the Avro body", reader.len());
    connect_json(value)
}

/// The same as `avro_to_json`, read by Python's fastavro instead (`tests/scripts/fastavro_decode.py`,
/// installed by scripts/setup.sh): an Avro implementation independent of both cdc's encoder and
/// the Rust reader, to show the bytes are standard Avro.
pub fn fastavro_to_json(registry: &SchemaRegistry, records: &[&[u8]]) -> Vec<Json> {
    use std::io::Write as _;
    let mut input = String::new();
    for bytes in records {
        assert!(bytes.len() > 5 && bytes[0] == 0, "not in the Confluent wire format: {bytes:?}");
        let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
        let (status, body) = registry.get(&format!("/schemas/ids/{id}"));
        assert_eq!(status, 200, "schema {id} not in the registry: {body}");
        let hex: String = bytes[5..].iter().map(|b| format!("{b:02x}")).collect();
        input += &serde_json::json!({"schema": body["schema"], "body": hex}).to_string();
        input.push('\n');
    }
    let mut child = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/fastavro_decode.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 (scripts/setup.sh installs fastavro)");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "fastavro failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn connect_json(value: apache_avro::types::Value) -> Json {
    use apache_avro::types::Value as A;
    use base64::Engine as _;
    let base64 = |b: &[u8]| Json::from(base64::engine::general_purpose::STANDARD.encode(b));
    let float = |f: f64, text: String| {
        if f.is_finite() { serde_json::from_str(&text).unwrap() } else { Json::from(text.replace("inf", "Infinity")) }
    };
    match value {
        A::Null => Json::Null,
        A::Boolean(b) => b.into(),
        A::Int(i) => i.into(),
        A::Long(l) => l.into(),
        // Shortest text that reads back as the same f32, as Java prints a float.
        A::Float(f) => float(f as f64, format!("{f:?}")),
        A::Double(d) => float(d, format!("{d:?}")),
        A::Bytes(b) | A::Fixed(_, b) => base64(&b),
        A::Decimal(d) => base64(&Vec::<u8>::try_from(&d).unwrap()),
        A::String(s) | A::Enum(_, s) => s.into(),
        A::Union(_, inner) => connect_json(*inner),
        A::Array(items) => items.into_iter().map(connect_json).collect(),
        A::Record(fields) => {
            fields.into_iter().map(|(k, v)| (k, connect_json(v))).collect::<serde_json::Map<_, _>>().into()
        }
        other => panic!("unexpected Avro value {other:?}"),
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

/// Differences between two JSON documents (e.g. Avro schemas), by path: object members by
/// name, array elements by position.
pub fn json_differences(at: &str, theirs: &Json, ours: &Json) -> Vec<String> {
    match (theirs, ours) {
        (Json::Object(d), Json::Object(c)) => {
            let mut keys: Vec<&String> = d.keys().chain(c.keys()).collect();
            keys.sort();
            keys.dedup();
            let null = Json::Null;
            keys.into_iter()
                .flat_map(|k| {
                    let (dv, cv) = (d.get(k).unwrap_or(&null), c.get(k).unwrap_or(&null));
                    json_differences(&format!("{at}.{k}"), dv, cv)
                })
                .collect()
        }
        (Json::Array(d), Json::Array(c)) if d.len() == c.len() => d
            .iter()
            .zip(c)
            .enumerate()
            .flat_map(|(i, (dv, cv))| {
                let label = dv["name"].as_str().map_or(i.to_string(), str::to_string);
                json_differences(&format!("{at}[{label}]"), dv, cv)
            })
            .collect(),
        _ if theirs == ours => vec![],
        _ => vec![format!("{at}: Debezium {theirs}\n    cdc {ours}")],
    }
}

/// Differences between Debezium's Avro records and cdc's, each side with its own registry:
/// the latest key and value schemas registered under the subject prefixes (`<topic>` of
/// TopicNameStrategy), the envelopes cdc's records decode to, and their keys (the key columns
/// of the row).
pub fn avro_differences(
    (their_registry, their_topic, theirs): (&SchemaRegistry, &str, &[Json]),
    (our_registry, our_topic, ours): (&SchemaRegistry, &str, &[super::kafka::Record]),
    deliberate: &[&str],
    source: &[&str],
) -> Vec<String> {
    let mut diffs = Vec::new();
    for part in ["key", "value"] {
        let (theirs, ours) = (format!("{their_topic}-{part}"), format!("{our_topic}-{part}"));
        diffs.extend(json_differences(&ours, &their_registry.latest(&theirs), &our_registry.latest(&ours)));
    }
    let values: Vec<Json> = ours.iter().map(|r| avro_to_json(our_registry, r.raw_value.as_ref().unwrap())).collect();
    let keys: Vec<Json> = ours.iter().map(|r| avro_to_json(our_registry, r.raw_key.as_ref().expect("a key"))).collect();
    diffs.extend(envelope_differences(theirs, &values, deliberate, source));
    // An independent Avro implementation reads the same bytes to the same values.
    let bodies: Vec<&[u8]> =
        ours.iter().flat_map(|r| [r.raw_value.as_deref().unwrap(), r.raw_key.as_deref().unwrap()]).collect();
    let rust = values.iter().zip(&keys).flat_map(|(v, k)| [v, k]);
    for (i, (python, rust)) in fastavro_to_json(our_registry, &bodies).iter().zip(rust).enumerate() {
        if python != rust {
            diffs.push(format!(
                "record {} {}: fastavro reads {python}, apache-avro {rust}",
                i / 2,
                ["value", "key"][i % 2]
            ));
        }
    }
    for (value, key) in values.iter().zip(keys) {
        let row = if value["after"].is_null() { &value["before"] } else { &value["after"] };
        let columns = key.as_object().expect("a key record");
        if columns.is_empty() || columns.iter().any(|(name, v)| row[name] != *v) {
            diffs.push(format!("key {key} of the change to {row}"));
        }
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
