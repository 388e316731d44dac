//! The `cdc` binary: bad configs exit non-zero with one line naming the field; positions commands.

use std::process::Command;

fn cdc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cdc")).args(args).env_remove("RUST_LOG").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const GOOD: &str = r#"
name = "shop"
[source]
kind = "postgres"
url = "postgres://cdc:secret@127.0.0.1:1/shop"
[positions]
path = "POS"
"#;

/// Runs `cdc check` on a config and expects exactly one stderr line containing all `needles`.
fn expect_config_error(text: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(&dir, text);
    let (code, _out, err) = cdc(&["check", "--config", &cfg]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "stderr should be one line: {err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    assert!(!err.contains("secret"), "password leaked: {err}");
}

#[test]
fn unknown_key() {
    expect_config_error(
        &GOOD.replace("kind = \"postgres\"", "kind = \"postgres\"\nslott = \"x\""),
        &["source", "unknown field `slott`"],
    );
    expect_config_error(&format!("{GOOD}\n[surprise]\nx = 1\n"), &["unknown field `surprise`"]);
}

#[test]
fn missing_field() {
    expect_config_error(&GOOD.replace("name = \"shop\"", ""), &["missing field `name`"]);
    expect_config_error(
        "name = \"x\"\n[source]\nkind = \"mysql\"\nurl = \"mysql://u@127.0.0.1:3306\"\n",
        &["source", "missing field `server_id`"],
    );
}

#[test]
fn bad_url() {
    expect_config_error(
        &GOOD.replace("postgres://cdc:secret@127.0.0.1:1/shop", "not a url"),
        &["source.url", "not a URL"],
    );
    expect_config_error(&GOOD.replace("postgres://", "mysql://"), &["source.url", "scheme `mysql`"]);
    expect_config_error(&GOOD.replace("/shop\"", "\""), &["source.url", "must name the database"]);
}

#[test]
fn unset_env_variable() {
    expect_config_error(
        &GOOD.replace("secret", "${CDC_TEST_SURELY_UNSET}"),
        &["source.url", "CDC_TEST_SURELY_UNSET is not set"],
    );
}

#[test]
fn bad_sink_kind_and_missing_file() {
    expect_config_error(&format!("{GOOD}\n[sink]\nkind = \"carrier-pigeon\"\n"), &["sink", "carrier-pigeon"]);
    let (code, _, err) = cdc(&["check", "--config", "/nonexistent/cdc.toml"]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/cdc.toml") && err.contains("cannot read"), "{err}");
}

#[test]
fn positions_set_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let pos = dir.path().join("positions.json");
    let cfg = write_config(&dir, &GOOD.replace("POS", &pos.display().to_string()));
    let (code, out, _) = cdc(&["positions", "show", "--config", &cfg]);
    assert_eq!(code, 0);
    assert!(out.contains("no stored position"), "{out}");
    let (code, _, err) = cdc(&["positions", "set", "--config", &cfg, "pg:lsn=0/16B3748"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cdc(&["positions", "show", "--config", &cfg]);
    assert_eq!(code, 0);
    assert!(out.contains("position: pg:lsn=0/16B3748"), "{out}");
    let (code, _, err) = cdc(&["positions", "set", "--config", &cfg, "pg:lsn=banana"]);
    assert_ne!(code, 0);
    assert!(err.contains("not an LSN"), "{err}");
}
