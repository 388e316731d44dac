//! The README's demo command works: snapshot rows, then live changes, on the terminal.

use std::process::Command;

#[test]
fn mariadb_demo_streams_snapshot_then_live_changes() {
    run_demo("mariadb");
}

#[test]
fn postgres_demo_streams_snapshot_then_live_changes() {
    run_demo("postgres");
}

fn run_demo(source: &str) {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .arg(source)
        .env("CDC_BIN", env!("CARGO_BIN_EXE_cdc"))
        .env("DEMO_SECONDS", "6")
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    let events: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let ops: Vec<&str> = events.iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert!(ops.len() >= 8, "too few events: {ops:?}\n{stderr}");
    assert_eq!(&ops[..2], ["r", "r"], "snapshot rows come first: {ops:?}");
    assert!(ops.contains(&"c") && ops.contains(&"u"), "live inserts and updates: {ops:?}");
    assert!(events.iter().all(|e| e["source"]["table"] == "orders"));
    assert!(stderr.contains("Stopped cleanly"), "{stderr}");
}
