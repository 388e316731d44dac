//! `cdc check` and `cdc slot drop` against real servers, through the binary.

mod harness;

use std::process::Command;

use harness::{Postgres, shared_mariadb, shared_pg15};

fn cdc(args: &[&str], config_text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdc.toml");
    let text = format!("{config_text}\n[positions]\npath = \"{}\"\n", dir.path().join("p.json").display());
    std::fs::write(&path, text).unwrap();
    let mut full: Vec<&str> = args.to_vec();
    let p = path.display().to_string();
    full.extend(["--config", &p]);
    let out = Command::new(env!("CARGO_BIN_EXE_cdc")).args(&full).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn mysql_check_reports_each_setting() {
    let db = shared_mariadb();
    let cfg = format!("name = \"chk\"\n[source]\nkind = \"mysql\"\nurl = \"{}\"\nserver_id = 77\n", db.url(""));
    let (code, out, err) = cdc(&["check"], &cfg);
    assert_eq!(code, 0, "{out}{err}");
    for line in
        ["PASS binlog_format: ROW", "PASS binlog_row_image: FULL", "PASS binlog_row_metadata: FULL", "PASS log_bin: ON"]
    {
        assert!(out.lines().any(|l| l == line), "missing `{line}` in:\n{out}");
    }
    assert!(out.contains("PASS connect: MariaDB 10.11"), "{out}");
    assert!(out.contains("PASS privilege: REPLICATION SLAVE"), "{out}");
    // The replica's server_id must not be the server's own.
    let (code, out, _) = cdc(&["check"], &cfg.replace("server_id = 77", "server_id = 1"));
    assert_ne!(code, 0);
    assert!(out.contains("FAIL source.server_id 1 equals the server's own server_id"), "{out}");
}

#[test]
fn postgres_check_reports_settings_and_replica_identity() {
    let pg = shared_pg15();
    let db = pg.create_db("chkpg");
    pg.sql(&db, "CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE nokey (v int);");
    let cfg = format!("name = \"chkpg\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\n", pg.url(&db));
    let (code, out, err) = cdc(&["check"], &cfg);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().any(|l| l == "PASS wal_level: logical"), "{out}");
    assert!(out.contains("PASS privilege: REPLICATION"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("PASS connections: ") && l.ends_with(" free (a snapshot uses 3)")),
        "{out}"
    );
    assert!(out.contains("PASS table public.keyed: keyed by its primary key"), "{out}");
    assert!(out.contains("WARN table public.nokey: no primary key"), "{out}");
    assert!(out.contains("slot cdc_chkpg: missing"), "{out}");
}

#[test]
fn postgres_check_fails_without_logical_wal_and_slot_drop_works() {
    let pg = Postgres::start_with(15, &[("wal_level", "replica"), ("max_connections", "8")]);
    let cfg = format!("name = \"walrep\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\n", pg.url("postgres"));
    let (code, out, err) = cdc(&["check"], &cfg);
    assert_ne!(code, 0);
    assert!(out.contains("FAIL wal_level: replica (must be logical)"), "{out}");
    assert!(err.contains("check failed"), "{err}");

    // The same server as a replica target: 8 connections, 3 kept for superusers.
    let source = shared_pg15();
    let db = source.create_db("chktarget");
    let sink = |n: usize| {
        format!(
            "name = \"chktarget\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\n[sink]\nkind = \"postgres\"\n\
             url = \"{}\"\napply_connections = {n}\n",
            source.url(&db),
            pg.url("postgres")
        )
    };
    let (code, out, err) = cdc(&["check"], &sink(2));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS target: PostgreSQL 15."), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("PASS target connections: ") && l.ends_with("(the sink uses 2)")),
        "{out}"
    );
    let (code, out, _) = cdc(&["check"], &sink(6));
    assert_ne!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with("FAIL target connections: ")
            && l.contains("the sink uses 6; remedy: lower sink.apply_connections")),
        "{out}"
    );

    let pg = shared_pg15();
    let db = pg.create_db("dropslot");
    pg.sql(&db, "SELECT pg_create_logical_replication_slot('cdc_dropslot', 'pgoutput')");
    let cfg = format!("name = \"dropslot\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\n", pg.url(&db));
    let (code, out, _) = cdc(&["slot", "drop"], &cfg);
    assert_eq!((code, out.trim()), (0, "replication slot cdc_dropslot dropped"));
    assert_eq!(pg.sql(&db, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc_dropslot'"), "0");
    let (_, out, _) = cdc(&["slot", "drop"], &cfg);
    assert_eq!(out.trim(), "replication slot cdc_dropslot does not exist");
}
