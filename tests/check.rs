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
    assert!(out.contains("PASS connect: MariaDB 10.11") && out.contains(", unencrypted)"), "{out}");
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
    assert!(out.contains("PASS target: PostgreSQL 15.") && out.contains(" (unencrypted)"), "{out}");
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

/// `cdc check` failed, saying `text`.
fn assert_refused((code, out): (i32, String), text: &str) {
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(text), "no `{text}` in:\n{out}");
}

/// `cdc check` of a `kind` source at `url` (`extra`: more source settings); exit code and output.
fn check_source(kind: &str, url: &str, extra: &str) -> (i32, String) {
    let (code, out, err) =
        cdc(&["check"], &format!("name = \"tls\"\n[source]\nkind = \"{kind}\"\nurl = \"{url}\"\n{extra}"));
    (code, format!("{out}{err}"))
}

/// A `cdc run` configuration in a new directory (kept while the directory lives).
fn run_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cdc.toml");
    std::fs::write(&config, text).unwrap();
    (dir, config)
}

/// PostgreSQL reachable only over TLS, SCRAM for the cdc user: each `sslmode` does what libpq's
/// does, and a replica runs with both its source and its target over TLS.
#[test]
fn postgres_over_tls_as_sslmode_asks() {
    let hba = "local all all trust\n\
               hostssl all tlsuser 127.0.0.1/32 scram-sha-256\n\
               hostssl all certuser 127.0.0.1/32 cert\n\
               hostssl all all 127.0.0.1/32 trust\n\
               hostnossl all all 127.0.0.1/32 reject\n";
    let (pg, tls) = Postgres::start_tls(15, hba);
    pg.sql("postgres", "CREATE ROLE tlsuser LOGIN SUPERUSER PASSWORD 'p@ss'");
    let db = pg.create_db("tlssrc");
    let target = pg.create_db("tlsdst");
    pg.sql(&db, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'copied');");
    let url = |db: &str, query: &str| format!("postgres://tlsuser:p%40ss@127.0.0.1:{}/{db}?{query}", pg.port());
    let verify_full = format!("sslmode=verify-full&sslrootcert={}", tls.ca.display());
    let check = |query: &str| check_source("postgres", &url(&db, query), "");
    for query in ["sslmode=require", "sslmode=prefer", "sslmode=verify-ca&sslrootcert=CA", &verify_full] {
        let (code, out) = check(&query.replace("CA", &tls.ca.display().to_string()));
        assert_eq!(code, 0, "{query}: {out}");
        assert!(out.contains("PASS connect: PostgreSQL 15") && out.contains(", TLS)"), "{query}: {out}");
    }
    // Without TLS the server's pg_hba.conf refuses the connection, and cdc says so.
    assert_refused(
        check("sslmode=disable"),
        "rejects connection for host \"127.0.0.1\", user \"tlsuser\", database \"tlssrc\", no encryption",
    );
    // A certificate signed by an authority the URL does not trust.
    assert_refused(
        check(&format!("sslmode=verify-full&sslrootcert={}", tls.other_ca.display())),
        "is not trusted (sslmode=verify-full)",
    );
    // A server without TLS, and a URL that requires it.
    assert_refused(
        check_source("postgres", &format!("{}?sslmode=require", shared_pg15().url("postgres")), ""),
        "does not accept TLS connections, and the URL says sslmode=require",
    );
    // A user the server knows by its client certificate.
    pg.sql("postgres", "CREATE ROLE certuser LOGIN SUPERUSER");
    let cert_check = |client: &str| {
        let url = format!(
            "postgres://certuser@127.0.0.1:{}/{db}?sslmode=verify-full&sslrootcert={}{client}",
            pg.port(),
            tls.ca.display()
        );
        check_source("postgres", &url, "")
    };
    let client = format!("&sslcert={}&sslkey={}", tls.client_cert.display(), tls.client_key.display());
    let (code, out) = cert_check(&client);
    assert_eq!(code, 0, "{out}");
    assert_refused(cert_check(""), "certificate");
    assert_refused(check("sslmode=on"), "sslmode `on` is not one of disable, allow, prefer, require");

    // Snapshot, stream and apply, every connection encrypted.
    let (_dir, config) = run_config(&format!(
        "name = \"tlsrep\"\n[source]\nkind = \"postgres\"\nurl = \"{}\"\ntables = [\"public.*\"]\n\
             [sink]\nkind = \"postgres\"\nurl = \"{}\"\n",
        url(&db, &verify_full),
        url(&target, "sslmode=require")
    ));
    let _cdc = harness::spawn_cdc(&config);
    pg.sql(&db, "INSERT INTO t VALUES (2, 'streamed'); UPDATE t SET v = 'changed' WHERE id = 1;");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let want = "1|changed\n2|streamed";
    loop {
        let got = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-c", "SELECT id, v FROM public.t ORDER BY id"])
            .arg(pg.url(&target))
            .output()
            .unwrap();
        if String::from_utf8_lossy(&got.stdout).trim_end() == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not replicated:\n{}", harness::cdc_log(&config));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The server saw only encrypted connections from cdc.
    let plain = pg.sql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.usename = 'tlsuser' AND NOT s.ssl",
    );
    assert_eq!(plain, "0");
    let encrypted = pg.sql(
        "postgres",
        "SELECT count(*) > 1 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'tlsuser' AND s.ssl",
    );
    assert_eq!(encrypted, "t");
}

/// MariaDB whose cdc user must use TLS: each `ssl-mode` does what the MySQL client's does,
/// and a replica runs with its binlog stream and its target over TLS.
#[test]
fn mysql_over_tls_as_ssl_mode_asks() {
    let tls = harness::TlsFiles::generate();
    let arg = |name: &str, path: &std::path::Path| format!("--{name}={}", path.display());
    let my = harness::MariaDb::start_with(&[
        &arg("ssl-ca", &tls.ca),
        &arg("ssl-cert", &tls.cert),
        &arg("ssl-key", &tls.key),
    ]);
    my.sql(
        "CREATE USER tlsuser@'%' IDENTIFIED BY 'p@ss' REQUIRE SSL; GRANT ALL PRIVILEGES ON *.* TO tlsuser@'%';
         CREATE DATABASE tlsshop; CREATE TABLE tlsshop.t (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO tlsshop.t VALUES (1, 'copied');",
    );
    let url = |query: &str| format!("mysql://tlsuser:p%40ss@127.0.0.1:{}?{query}", my.port());
    let ca = tls.ca.display().to_string();
    let verify_identity = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}");
    let check = |url: &str| check_source("mysql", url, "server_id = 7401\n");
    for query in ["", "ssl-mode=REQUIRED", &format!("ssl-mode=VERIFY_CA&ssl-ca={ca}"), &verify_identity] {
        let (code, out) = check(&url(query));
        assert_eq!(code, 0, "{query}: {out}");
        assert!(out.contains("PASS connect: MariaDB 10.11") && out.contains(", TLS)"), "{query}: {out}");
    }
    // Without TLS the server refuses the user (REQUIRE SSL).
    assert_refused(check(&url("ssl-mode=DISABLED")), "access denied");
    assert_refused(
        check(&url(&format!("ssl-mode=VERIFY_CA&ssl-ca={}", tls.other_ca.display()))),
        "TLS certificate is not trusted (ssl-mode=VERIFY_CA)",
    );
    assert_refused(
        check(&format!("{}?ssl-mode=REQUIRED", shared_mariadb().url(""))),
        "does not accept TLS connections, and the URL says ssl-mode=REQUIRED",
    );
    assert_refused(check(&url("ssl-mode=ON")), "ssl-mode `ON` is not one of DISABLED, PREFERRED");

    // A user the server knows by its client certificate (the subject the harness gave it).
    my.sql("CREATE USER certuser@'%' REQUIRE SUBJECT '/CN=certuser'; GRANT ALL PRIVILEGES ON *.* TO certuser@'%';");
    let cert_url =
        |query: &str| format!("mysql://certuser@127.0.0.1:{}?ssl-mode=VERIFY_CA&ssl-ca={ca}{query}", my.port());
    let client = format!("&ssl-cert={}&ssl-key={}", tls.client_cert.display(), tls.client_key.display());
    let (code, out) = check(&cert_url(&client));
    assert_eq!(code, 0, "{out}");
    assert_refused(check(&cert_url("")), "access denied");
    assert_refused(
        check(&cert_url(&format!("&ssl-cert={}", tls.client_cert.display()))),
        "ssl-cert and ssl-key go together",
    );
    // A key where the certificate should be.
    assert_refused(
        check(&cert_url(&format!("&ssl-cert={}&ssl-key={}", tls.client_key.display(), tls.client_key.display()))),
        "no PEM certificate in it",
    );
    // The server's key is not the client certificate's.
    assert_refused(
        check(&cert_url(&format!("&ssl-cert={}&ssl-key={}", tls.client_cert.display(), tls.key.display()))),
        "do not make a client identity",
    );

    // Snapshot, binlog stream and apply, every connection encrypted (the user requires it); the
    // target logs in by client certificate.
    let (_dir, config) = run_config(&format!(
        "name = \"mytls\"\n[source]\nkind = \"mysql\"\nurl = \"{}\"\nserver_id = 7402\ntables = [\"tlsshop.*\"]\n\
             [sink]\nkind = \"mysql\"\nurl = \"{}\"\nnamespaces = {{ tlsshop = \"tlsdst\" }}\n",
        url(&verify_identity),
        cert_url(&client)
    ));
    let running = harness::spawn_cdc(&config);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let exists = || my.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'tlsdst'") == "1";
    while !exists() {
        assert!(std::time::Instant::now() < deadline, "no copy:\n{}", harness::cdc_log(&config));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    my.sql("INSERT INTO tlsshop.t VALUES (2, 'streamed'); UPDATE tlsshop.t SET v = 'changed' WHERE id = 1;");
    while my.sql("SELECT id, v FROM tlsdst.t ORDER BY id") != "1\tchanged\n2\tstreamed" {
        assert!(std::time::Instant::now() < deadline, "not replicated:\n{}", harness::cdc_log(&config));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The target connection is the certificate's user's.
    assert_eq!(my.sql("SELECT COUNT(*) > 0 FROM information_schema.PROCESSLIST WHERE USER = 'certuser'"), "1");

    // `cdc check` of the target: how it is reached, and whether it takes writes.
    let sink_check_with = |sink_query: &str| {
        let cfg = format!(
            "name = \"tls\"\n[source]\nkind = \"mysql\"\nurl = \"{}\"\nserver_id = 7403\n\
             [sink]\nkind = \"mysql\"\nurl = \"{}\"\n",
            url("ssl-mode=REQUIRED"),
            url(sink_query)
        );
        let (code, out, err) = cdc(&["check"], &cfg);
        (code, format!("{out}{err}"))
    };
    let sink_check = || sink_check_with("ssl-mode=REQUIRED");
    // Refused without TLS: the remedy names the sink's URL, not the source's.
    let (code, out) = sink_check_with("ssl-mode=DISABLED");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("access denied") && out.contains("remedy: check the user and password in sink.url"), "{out}");
    let (code, out) = sink_check();
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.starts_with("PASS target: MariaDB 10.11") && l.ends_with("(TLS)")), "{out}");
    my.sql("SET GLOBAL read_only = ON");
    let (_, out) = sink_check();
    assert!(out.contains("WARN target read_only is ON"), "{out}");
    my.sql("SET GLOBAL read_only = OFF");

    // A target that refuses LOAD DATA LOCAL: check says so, and inserts go as INSERTs.
    my.sql("SET GLOBAL local_infile = OFF");
    let (_, out) = sink_check();
    assert!(out.contains("WARN target local_infile is OFF"), "{out}");
    drop(running);
    my.sql("INSERT INTO tlsshop.t VALUES (3, 'inserted'), (4, 'while stopped')");
    let _cdc = harness::spawn_cdc(&config);
    while my.sql("SELECT COUNT(*) FROM tlsdst.t") != "4" {
        assert!(std::time::Instant::now() < deadline, "not replicated:\n{}", harness::cdc_log(&config));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = harness::cdc_log(&config);
    assert!(log.contains("The target's local_infile is OFF"), "{log}");
    assert!(log.contains("Prepared target table table=`tlsdst`.`t` load_data=false"), "{log}");
    assert!(log.contains("Prepared target table table=`tlsdst`.`t` load_data=true"), "the first run loaded: {log}");
    my.sql("SET GLOBAL local_infile = ON");
}
