//! docker-compose.yml and connectors/ stay correct for users, though no Docker engine runs
//! here: the compose file parses, its services are configured as cdc needs, and every config
//! it (or a user) mounts is valid for `cdc check`'s parser.

mod harness;

use std::collections::BTreeMap;
use std::path::Path;

use cdc::config::{Config, SinkConfig, SourceConfig};
use serde_yaml::Value as Yaml;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("docker-compose.yml")).unwrap()).expect("compose parses")
}

fn strings(v: &Yaml) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

#[test]
fn compose_services_have_the_settings_cdc_needs() {
    let c = compose();
    let s = &c["services"];
    let mysql = strings(&s["mysql"]["command"]);
    assert!(s["mysql"]["image"].as_str().unwrap().starts_with("mysql:8.4"));
    for flag in ["--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--gtid-mode=ON"] {
        assert!(mysql.iter().any(|f| f == flag), "mysql lacks {flag}");
    }
    assert!(s["postgres"]["image"].as_str().unwrap().starts_with("postgres:17"));
    assert!(strings(&s["postgres"]["command"]).iter().any(|f| f == "wal_level=logical"));
    let kafka_env = &s["kafka"]["environment"];
    assert_eq!(kafka_env["KAFKA_PROCESS_ROLES"].as_str(), Some("broker,controller"), "Kafka in KRaft mode");
    assert!(s["cdc"]["build"].as_str().is_some() && root().join("Dockerfile").exists());
    // Every file a service mounts exists.
    for (name, svc) in s.as_mapping().unwrap() {
        for vol in strings(&svc["volumes"]) {
            if let Some(src) = vol.strip_prefix("./") {
                let src = src.split(':').next().unwrap();
                assert!(root().join(src).exists(), "{name:?} mounts missing {src}");
            }
        }
    }
}

fn with_env<T>(vars: &BTreeMap<String, String>, f: impl FnOnce() -> T) -> T {
    // Tests in this binary do not read these variables concurrently.
    for (k, v) in vars {
        unsafe { std::env::set_var(k, v) };
    }
    let out = f();
    for k in vars.keys() {
        unsafe { std::env::remove_var(k) };
    }
    out
}

#[test]
fn the_configs_compose_runs_are_valid_with_their_environment() {
    let c = compose();
    let mut checked = Vec::new();
    for (name, service) in c["services"].as_mapping().unwrap() {
        let cmd = strings(&service["command"]);
        let Some(at) = cmd.iter().position(|a| a == "--config") else { continue };
        let file = cmd[at + 1].strip_prefix("/etc/cdc/").expect("config comes from the connectors mount");
        let env: BTreeMap<String, String> = service["environment"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (k.as_str().unwrap().to_string(), v.as_str().map(String::from).unwrap_or_else(|| format!("{v:?}")))
            })
            .collect();
        let text = std::fs::read_to_string(root().join("connectors").join(file)).unwrap();
        let config = with_env(&env, || Config::parse(&text, file)).unwrap_or_else(|e| panic!("{e}"));
        let SourceConfig::Mysql(m) = &config.source else { panic!("compose streams MySQL") };
        assert_eq!(m.url.url().host_str(), Some("mysql"));
        assert_eq!(config.http.as_ref().map(|h| h.listen.to_string()), Some("0.0.0.0:8080".into()));
        if let SinkConfig::Postgres(p) = &config.sink {
            assert_eq!(p.url.url().host_str(), Some("postgres"));
        }
        checked.push(name.as_str().unwrap().to_string());
    }
    assert_eq!(checked, ["cdc", "cdc-replica"]);
}

#[test]
fn every_connector_parses_and_validates() {
    let env: BTreeMap<String, String> = [
        ("CDC_MYSQL_URL", "mysql://cdc:secret@127.0.0.1:3306"),
        ("CDC_PG_URL", "postgres://cdc:secret@127.0.0.1:5432/shop"),
        ("CDC_TARGET_URL", "postgres://cdc:secret@127.0.0.1:5433/shop"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("connectors")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = with_env(&env, || Config::parse(&text, &path.display().to_string()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!format!("{config:?}").contains("secret"), "{}: secret shown in Debug", path.display());
        n += 1;
    }
    assert!(n >= 4);
}

/// The mysql-to-file connector, run as a user would, against a real MariaDB.
#[test]
fn mysql_to_file_connector_delivers_changes() {
    let db = harness::shared_mariadb();
    db.sql("CREATE DATABASE connector_shop; CREATE TABLE connector_shop.orders (id INT PRIMARY KEY, note VARCHAR(20)); INSERT INTO connector_shop.orders VALUES (1, 'snap');");
    let state = tempfile::tempdir().unwrap();
    let mut child = harness::ChildGuard(
        std::process::Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(["run", "--config"])
            .arg(root().join("connectors/mysql-to-file.toml"))
            .env("CDC_MYSQL_URL", db.url(""))
            .env("CDC_MYSQL_DB", "connector_shop")
            .env("CDC_STATE_DIR", state.path())
            .env("CDC_HTTP_LISTEN", format!("127.0.0.1:{}", harness::free_port()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let file = state.path().join("changes.jsonl");
    let read_lines = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(std::time::Instant::now() < deadline, "changes.jsonl has {} lines", lines.len());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    read_lines(1); // the snapshot is delivered
    db.sql("INSERT INTO connector_shop.orders VALUES (2, 'live')");
    let lines = read_lines(2);
    assert_eq!(lines[0]["op"], "r");
    assert_eq!(lines[0]["after"]["note"], "snap");
    assert_eq!(lines[1]["op"], "c");
    assert_eq!(lines[1]["after"]["note"], "live");
    // SIGTERM: clean exit with a stored position.
    unsafe { libc_kill(child.0.id() as i32, 15) };
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let (pos, _, _) = cdc::positions::FilePositionStore::read(&state.path().join("positions.json")).unwrap().unwrap();
    assert!(pos.to_string().starts_with("mysql:file="));
    let _ = SinkConfig::default();
}

/// The Kafka connectors (the one compose runs, and the exactly-once PostgreSQL one), run as a
/// user would, against real databases and a real broker.
#[test]
fn kafka_connectors_deliver_changes() {
    use harness::kafka::read_topic;
    use std::time::Duration;
    let kafka = harness::shared_kafka();
    let db = harness::shared_mariadb();
    db.sql(
        "CREATE DATABASE kconn; CREATE TABLE kconn.orders (id INT PRIMARY KEY); INSERT INTO kconn.orders VALUES (1);",
    );
    let pg = harness::shared_pg15();
    let pgdb = pg.create_db("kconn_pg");
    pg.sql(&pgdb, "CREATE TABLE public.orders (id INT PRIMARY KEY); INSERT INTO public.orders VALUES (1);");
    let state = tempfile::tempdir().unwrap();
    let spawn = |file: &str, env: &[(&str, String)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cdc"));
        cmd.args(["run", "--config"])
            .arg(root().join("connectors").join(file))
            .env("KAFKA_BROKERS", kafka.bootstrap())
            .env("CDC_STATE_DIR", state.path())
            .env("CDC_HTTP_LISTEN", format!("127.0.0.1:{}", harness::free_port()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        harness::ChildGuard(cmd.spawn().unwrap())
    };
    let _mysql = spawn(
        "mysql-to-kafka.toml",
        &[("CDC_NAME", "kconn".into()), ("CDC_MYSQL_URL", db.url("")), ("CDC_MYSQL_DB", "kconn".into())],
    );
    let _pg = spawn(
        "postgres-to-kafka.toml",
        &[
            ("CDC_NAME", "kconnpg".into()),
            ("CDC_PG_URL", pg.url(&pgdb)),
            ("CDC_PG_SLOT", "kconn_slot".into()),
            ("CDC_PG_PUBLICATION", "kconn_pub".into()),
        ],
    );
    read_topic(&kafka.bootstrap(), "kconn.kconn.orders", 1, false, Duration::ZERO);
    read_topic(&kafka.bootstrap(), "kconnpg.public.orders", 1, true, Duration::ZERO);
    db.sql("INSERT INTO kconn.orders VALUES (2)");
    pg.sql(&pgdb, "INSERT INTO public.orders VALUES (2)");
    for (topic, committed) in [("kconn.kconn.orders", false), ("kconnpg.public.orders", true)] {
        let got = read_topic(&kafka.bootstrap(), topic, 2, committed, Duration::from_millis(300));
        let ops: Vec<_> =
            got.iter().map(|r| (r.op().unwrap().to_string(), r.key.clone().unwrap()["id"].clone())).collect();
        assert_eq!(ops, [("r".to_string(), 1.into()), ("c".to_string(), 2.into())], "{topic}");
    }
    // The exactly-once connector keeps its position in Kafka, not on disk.
    let positions = read_topic(&kafka.bootstrap(), "kconnpg.positions", 1, true, Duration::ZERO);
    assert!(positions[0].value.as_ref().unwrap()["position"].as_str().unwrap().starts_with("pg:lsn="));
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The two replica connectors, run as a user would: MariaDB → PostgreSQL and PostgreSQL →
/// PostgreSQL; `cdc verify` with the same connector then reports the copies identical.
#[test]
fn replica_connectors_copy_and_verify() {
    let my = harness::shared_mariadb();
    let pg = harness::shared_pg15();
    my.sql(
        "CREATE DATABASE deploy_shop; CREATE TABLE deploy_shop.orders (id INT PRIMARY KEY, note VARCHAR(20));
         INSERT INTO deploy_shop.orders VALUES (1, 'snap');",
    );
    let target = pg.create_db("deploy_target");
    let source_db = pg.create_db("deploy_upgrade");
    pg.sql(&source_db, "CREATE TABLE items (id int PRIMARY KEY, qty int); INSERT INTO items VALUES (1, 10);");
    let upgraded = pg.create_db("deploy_upgraded");
    let runs = [
        ("mysql-to-postgres.toml", "replica1", pg.url(&target), "deploy_shop.orders", "1|snap\n2|live"),
        ("postgres-upgrade.toml", "upgrade1", pg.url(&upgraded), "public.items", "1|10\n2|20"),
    ];
    let env = |name: &str, target_url: &str| {
        vec![
            ("CDC_NAME", name.to_string()),
            ("CDC_MYSQL_URL", my.url("")),
            ("CDC_MYSQL_DB", "deploy_shop".to_string()),
            ("CDC_PG_URL", pg.url(&source_db)),
            ("CDC_PG_SLOT", format!("cdc_{name}")),
            ("CDC_PG_PUBLICATION", format!("cdc_{name}")),
            ("CDC_TARGET_URL", target_url.to_string()),
            ("CDC_HTTP_LISTEN", format!("127.0.0.1:{}", harness::free_port())),
        ]
    };
    let mut children = Vec::new();
    for (file, name, target_url, _, _) in &runs {
        children.push(harness::ChildGuard(
            std::process::Command::new(env!("CARGO_BIN_EXE_cdc"))
                .args(["run", "--config"])
                .arg(root().join("connectors").join(file))
                .envs(env(name, target_url))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    my.sql("INSERT INTO deploy_shop.orders VALUES (2, 'live')");
    pg.sql(&source_db, "INSERT INTO items VALUES (2, 20)");
    for (file, name, target_url, table, want) in &runs {
        let db = target_url.rsplit('/').next().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let exists = pg.sql(db, &format!("SELECT to_regclass('{table}') IS NOT NULL"));
            if exists == "t" && pg.sql(db, &format!("SELECT * FROM {table} ORDER BY 1")) == *want {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{file}: {table} never matched");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(["verify", "--config"])
            .arg(root().join("connectors").join(file))
            .envs(env(name, target_url))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{file}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.lines().last().unwrap_or_default().starts_with("SAME: 1 tables, 2 source rows"), "{stdout}");
    }
}
