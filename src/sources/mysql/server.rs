//! Talking SQL to the source server: connecting, classifying errors, reading the settings
//! and positions the replication stream depends on.

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};

use crate::error::CdcError;
use crate::model::{BinlogCoordinates, GtidSet, MySqlPosition};

/// Connects with the configured URL (`mariadb://` is accepted as an alias). TLS follows the
/// MySQL client's `ssl-mode`, `ssl-ca`, `ssl-cert` and `ssl-key` URL parameters (see
/// [`TlsMode`]). `setting` names the URL in errors: `source.url` or `sink.url`.
pub async fn connect(url: &str, setting: &str) -> Result<Conn, CdcError> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    };
    let (url, TlsParams { mode, ca, client }) = tls_params(&url)?;
    let identity = match &client {
        Some((cert, key)) => Some(client_identity(cert, key, setting)?),
        None => None,
    };
    let opts =
        Opts::from_url(&url).map_err(|e| CdcError::definite(format!("{setting}: {e}"), format!("fix {setting}")))?;
    let host = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    let doing = format!("connecting to {host}");
    let tls = |ssl: SslOpts| {
        Opts::from(OptsBuilder::from_opts(opts.clone()).ssl_opts(ssl.with_client_identity(identity.clone())))
    };
    let unverified =
        || SslOpts::default().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true);
    let verified = || match &ca {
        Some(path) => SslOpts::default()
            .with_root_certs(vec![std::path::PathBuf::from(path).into()])
            .with_disable_built_in_roots(true),
        None => SslOpts::default(),
    };
    let result = match mode {
        TlsMode::Disabled => Conn::new(opts.clone()).await,
        TlsMode::Preferred => match Conn::new(tls(unverified())).await {
            Err(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)) => {
                Conn::new(opts.clone()).await
            }
            other => other,
        },
        TlsMode::Required => Conn::new(tls(unverified())).await,
        TlsMode::VerifyCa => Conn::new(tls(verified().with_danger_skip_domain_validation(true))).await,
        TlsMode::VerifyIdentity => Conn::new(tls(verified())).await,
    };
    result.map_err(|e| match &e {
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => CdcError::definite(
            format!("{doing}: the server does not accept TLS connections, and the URL says ssl-mode={}", mode.name()),
            "configure TLS on the server (ssl_cert, ssl_key), or lower ssl-mode in the URL",
        ),
        mysql_async::Error::Io(mysql_async::IoError::Tls(t)) if t.to_string().contains("certificate") => {
            CdcError::definite(
                format!("{doing}: the server's TLS certificate is not trusted (ssl-mode={}): {t}", mode.name()),
                "give the server's certificate authority as ssl-ca in the URL (VERIFY_IDENTITY also needs the host name in the certificate)",
            )
        }
        mysql_async::Error::Server(s) if s.code == 1045 => CdcError::definite(
            format!("{doing}: access denied ({})", s.message),
            format!("check the user and password in {setting}"),
        ),
        _ => classify(e, &doing),
    })
}

/// TLS of a MySQL connection, with the MySQL client's `--ssl-mode` names and meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Disabled,
    /// TLS when the server offers it, unverified (the MySQL client's default).
    Preferred,
    /// TLS or no connection, the certificate not verified.
    Required,
    /// TLS with a certificate signed by a trusted authority.
    VerifyCa,
    /// TLS with a trusted certificate for the host name connected to.
    VerifyIdentity,
}

impl TlsMode {
    pub fn parse(text: &str) -> Option<TlsMode> {
        Some(match text.to_ascii_uppercase().as_str() {
            "DISABLED" => TlsMode::Disabled,
            "PREFERRED" => TlsMode::Preferred,
            "REQUIRED" => TlsMode::Required,
            "VERIFY_CA" => TlsMode::VerifyCa,
            "VERIFY_IDENTITY" => TlsMode::VerifyIdentity,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "DISABLED",
            TlsMode::Preferred => "PREFERRED",
            TlsMode::Required => "REQUIRED",
            TlsMode::VerifyCa => "VERIFY_CA",
            TlsMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }
}

/// The TLS parameters of a MySQL URL.
struct TlsParams {
    mode: TlsMode,
    /// `ssl-ca`: a PEM file of the authorities to trust (instead of the system's).
    ca: Option<String>,
    /// `ssl-cert` and `ssl-key`: a client certificate (PEM, the chain after it) and its PEM key,
    /// for users the server knows by certificate (`REQUIRE X509`, `REQUIRE SUBJECT …`).
    client: Option<(String, String)>,
}

/// Takes `ssl-mode`, `ssl-ca`, `ssl-cert` and `ssl-key` out of the URL (the client library
/// knows none of them).
fn tls_params(url: &str) -> Result<(String, TlsParams), CdcError> {
    let bad = |what: String| CdcError::definite(what, "fix the URL");
    let mut parsed = url::Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
    let mut mode = TlsMode::Preferred;
    let (mut ca, mut cert, mut cert_key) = (None, None, None);
    let mut rest = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match &*key {
            "ssl-mode" => {
                mode =
                    TlsMode::parse(&value).ok_or_else(|| bad(format!("ssl-mode `{value}` is not a MySQL ssl-mode")))?
            }
            "ssl-ca" => ca = Some(value.into_owned()),
            "ssl-cert" => cert = Some(value.into_owned()),
            "ssl-key" => cert_key = Some(value.into_owned()),
            _ => rest.push((key.into_owned(), value.into_owned())),
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let client = match (cert, cert_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(bad("ssl-cert and ssl-key go together: the URL has one without the other".into())),
    };
    if client.is_some() && mode == TlsMode::Disabled {
        return Err(bad("ssl-cert and ssl-key need TLS, and the URL says ssl-mode=DISABLED".into()));
    }
    Ok((parsed.to_string(), TlsParams { mode, ca, client }))
}

/// The client certificate and key as the PKCS#12 archive the client library takes (the MySQL
/// client and the server's own settings use PEM files).
fn client_identity(cert: &str, key: &str, setting: &str) -> Result<ClientIdentity, CdcError> {
    // Only inside this process: the archive needs a password, not a secret one.
    const PASSWORD: &str = "cdc";
    let fix = |what: &str| format!("fix {what} in {setting}: a PEM file readable by cdc");
    let read = |path: &str, what: &str| {
        std::fs::read(path).map_err(|e| CdcError::definite(format!("{what} {path}: {e}"), fix(what)))
    };
    let not_pem = |path: &str, what: &str, e: openssl::error::ErrorStack| {
        CdcError::definite(format!("{what} {path}: {e}"), fix(what))
    };
    let mut chain = openssl::x509::X509::stack_from_pem(&read(cert, "ssl-cert")?)
        .map_err(|e| not_pem(cert, "ssl-cert", e))?
        .into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| CdcError::definite(format!("ssl-cert {cert}: no PEM certificate in it"), fix("ssl-cert")))?;
    let pkey =
        openssl::pkey::PKey::private_key_from_pem(&read(key, "ssl-key")?).map_err(|e| not_pem(key, "ssl-key", e))?;
    let mut builder = openssl::pkcs12::Pkcs12::builder();
    builder.name("cdc").pkey(&pkey).cert(&leaf);
    let mut rest = openssl::stack::Stack::new().map_err(|e| not_pem(cert, "ssl-cert", e))?;
    for c in chain {
        rest.push(c).map_err(|e| not_pem(cert, "ssl-cert", e))?;
    }
    if !rest.is_empty() {
        builder.ca(rest);
    }
    let archive = builder.build2(PASSWORD).and_then(|p| p.to_der()).map_err(|e| {
        CdcError::definite(
            format!("ssl-cert {cert} and ssl-key {key} do not make a client identity: {e}"),
            format!("give the key that belongs to the certificate in {setting}"),
        )
    })?;
    Ok(ClientIdentity::new(archive.into()).with_password(PASSWORD))
}

/// Maps a client error to transient (retry) or definite (stop, with a remedy).
pub fn classify(e: mysql_async::Error, doing: &str) -> CdcError {
    match &e {
        mysql_async::Error::Server(s) => match s.code {
            1045 => CdcError::definite(
                format!("{doing}: access denied ({})", s.message),
                "check the user and password in source.url",
            ),
            1044 | 1142 | 1227 | 1370 => CdcError::definite(
                format!("{doing}: missing privilege ({})", s.message),
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO the cdc user",
            ),
            1236 => CdcError::definite(
                format!("{doing}: the server cannot send the requested binlog position ({})", s.message),
                "the position was purged or belongs to another server: clear the stored position and take a new snapshot (snapshot = \"initial\"), or resume with --from a position the server still has",
            ),
            // 1412: a table rebuilt (ALTER … FORCE, a COPY-algorithm ALTER) after the snapshot's
            // read view was opened; the copy resumes under a new snapshot.
            1040 | 1053 | 1205 | 1213 | 1412 | 2006 | 2013 => CdcError::transient(format!("{doing}: {}", s.message)),
            _ => CdcError::definite(
                format!("{doing}: server error {} ({})", s.code, s.message),
                "see the server's error message",
            ),
        },
        _ => CdcError::transient(format!("{doing}: {e}")),
    }
}

pub fn sql_err(doing: &str) -> impl Fn(mysql_async::Error) -> CdcError + '_ {
    move |e| classify(e, doing)
}

/// Server facts `cdc check` reports and the source relies on.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    pub version: String,
    pub mariadb: bool,
    pub log_bin: bool,
    pub binlog_format: String,
    pub row_image: String,
    /// MySQL 8.0.1+ and MariaDB 10.5+; `None` where the variable does not exist.
    pub row_metadata: Option<String>,
    /// MySQL `gtid_mode`; MariaDB always has GTIDs.
    pub gtid_mode: Option<String>,
    pub expire_seconds: Option<u64>,
    pub server_id: u32,
}

async fn var(conn: &mut Conn, name: &str) -> Result<Option<String>, CdcError> {
    let rows: Vec<(String, Option<String>)> = conn
        .query(format!("SHOW GLOBAL VARIABLES LIKE '{name}'"))
        .await
        .map_err(sql_err("reading server variables"))?;
    Ok(rows.into_iter().next().and_then(|(_, v)| v))
}

impl ServerFacts {
    pub async fn read(conn: &mut Conn) -> Result<ServerFacts, CdcError> {
        let version = var(conn, "version").await?.unwrap_or_default();
        let mariadb = version.contains("MariaDB");
        let expire = match var(conn, "binlog_expire_logs_seconds").await? {
            Some(s) => s.parse().ok(),
            None => {
                var(conn, "expire_logs_days").await?.and_then(|d| d.parse::<f64>().ok()).map(|d| (d * 86400.0) as u64)
            }
        };
        Ok(ServerFacts {
            mariadb,
            log_bin: var(conn, "log_bin").await?.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1"),
            binlog_format: var(conn, "binlog_format").await?.unwrap_or_default().to_ascii_uppercase(),
            row_image: var(conn, "binlog_row_image").await?.unwrap_or_default().to_ascii_uppercase(),
            row_metadata: var(conn, "binlog_row_metadata").await?.map(|s| s.to_ascii_uppercase()),
            gtid_mode: if mariadb { None } else { var(conn, "gtid_mode").await? },
            expire_seconds: expire,
            server_id: var(conn, "server_id").await?.and_then(|s| s.parse().ok()).unwrap_or(0),
            version,
        })
    }

    /// Settings without which row changes cannot be captured: a definite error naming the fix.
    pub fn require_row_binlog(&self) -> Result<(), CdcError> {
        if !self.log_bin {
            return Err(CdcError::definite(
                "the source server has no binary log (log_bin is OFF)",
                "start the server with log_bin enabled",
            ));
        }
        if self.binlog_format != "ROW" {
            return Err(CdcError::definite(
                format!(
                    "binlog_format is {} on the source, not ROW: row changes are not in the binlog",
                    self.binlog_format
                ),
                "SET GLOBAL binlog_format = 'ROW' (and in the server config), then restart cdc",
            ));
        }
        Ok(())
    }

    fn mysql_gtids_on(&self) -> bool {
        self.gtid_mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("ON"))
    }
}

/// The server's current end of binlog, with the GTID state at exactly that point.
pub async fn current_position(conn: &mut Conn, facts: &ServerFacts) -> Result<MySqlPosition, CdcError> {
    let newer_mysql = !facts.mariadb && version_at_least(&facts.version, (8, 2, 0));
    let sql = if newer_mysql { "SHOW BINARY LOG STATUS" } else { "SHOW MASTER STATUS" };
    let row: Option<mysql_async::Row> = conn.query_first(sql).await.map_err(sql_err("reading the binlog position"))?;
    let row = row.ok_or_else(|| {
        CdcError::definite("SHOW MASTER STATUS returned nothing: binary logging is off", "enable log_bin")
    })?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or(4);
    let binlog = Some(BinlogCoordinates { file: file.clone(), pos });
    let gtid_set = if facts.mariadb {
        mariadb_gtid_at(conn, &file, pos).await?
    } else if facts.mysql_gtids_on() {
        let executed: Option<String> = row.get(4);
        executed
            .map(|s| GtidSet::parse(&s))
            .transpose()
            .map_err(|e| CdcError::definite(e.to_string(), "report this"))?
    } else {
        None
    };
    Ok(MySqlPosition { gtid_set, binlog, snapshot: None })
}

/// MariaDB's GTID state at a binlog offset (`BINLOG_GTID_POS`).
pub async fn mariadb_gtid_at(conn: &mut Conn, file: &str, pos: u64) -> Result<Option<GtidSet>, CdcError> {
    let gtid: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, pos))
        .await
        .map_err(sql_err("reading the GTID position"))?;
    match gtid.flatten() {
        Some(s) => GtidSet::parse(&s).map(Some).map_err(|e| CdcError::definite(e.to_string(), "report this")),
        None => Ok(None),
    }
}

/// Checks the server still has everything after `pos`; otherwise a definite error naming
/// what is missing and the remedy.
pub async fn verify_available(conn: &mut Conn, facts: &ServerFacts, pos: &MySqlPosition) -> Result<(), CdcError> {
    let remedy = "clear the stored position (cdc positions set, or remove the file) and take a new snapshot with snapshot = \"initial\"";
    if let (Some(GtidSet::MySql(set)), false) = (&pos.gtid_set, facts.mariadb) {
        let missing: Option<String> = conn
            .exec_first("SELECT GTID_SUBTRACT(@@GLOBAL.gtid_purged, ?)", (set.to_string(),))
            .await
            .map_err(sql_err("comparing with gtid_purged"))?;
        if let Some(m) = missing.filter(|m| !m.is_empty()) {
            return Err(CdcError::definite(
                format!("the server has purged transactions cdc has not read: {m}"),
                remedy,
            ));
        }
        return Ok(());
    }
    if pos.gtid_set.is_some() && facts.mariadb {
        // MariaDB reports a purged GTID state when the dump starts (error 1236).
        return Ok(());
    }
    if let Some(b) = &pos.binlog {
        let logs: Vec<mysql_async::Row> =
            conn.query("SHOW BINARY LOGS").await.map_err(sql_err("listing binary logs"))?;
        let names: Vec<String> = logs.iter().filter_map(|r| r.get::<String, _>(0)).collect();
        if !names.contains(&b.file) {
            let (first, last) = (names.first().cloned().unwrap_or_default(), names.last().cloned().unwrap_or_default());
            let purged = names.first().and_then(|f| {
                BinlogCoordinates { file: b.file.clone(), pos: 0 }
                    .compare(&BinlogCoordinates { file: f.clone(), pos: 0 })
                    .ok()
            }) == Some(std::cmp::Ordering::Less);
            let cause = if purged {
                format!(
                    "binlog file {} was purged from the server (oldest is {first}): changes after {}:{} are lost",
                    b.file, b.file, b.pos
                )
            } else {
                format!(
                    "binlog file {} does not exist on the server (it has {first} … {last}): is the position from another server?",
                    b.file
                )
            };
            return Err(CdcError::definite(cause, remedy));
        }
    }
    Ok(())
}

pub fn version_at_least(version: &str, min: (u32, u32, u32)) -> bool {
    let nums: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums.first().copied().unwrap_or(0), nums.get(1).copied().unwrap_or(0), nums.get(2).copied().unwrap_or(0)) >= min
}

/// `TLS` or `unencrypted`: how this connection reaches the server, as the server sees it.
pub async fn transport(conn: &mut Conn) -> &'static str {
    let cipher: Option<(String, String)> =
        conn.query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'").await.ok().flatten();
    if cipher.is_some_and(|(_, c)| !c.is_empty()) { "TLS" } else { "unencrypted" }
}

/// `cdc check` for MySQL/MariaDB: each setting with pass/warn/fail.
pub async fn check(url: &str, replica_server_id: u32) -> Vec<crate::sources::CheckItem> {
    use crate::sources::CheckItem::{Fail, Pass, Warn};
    let mut items = Vec::new();
    let mut conn = match connect(url, "source.url").await {
        Ok(c) => c,
        Err(e) => return vec![Fail(format!("connect: {e}"))],
    };
    let facts = match ServerFacts::read(&mut conn).await {
        Ok(f) => f,
        Err(e) => return vec![Fail(format!("server variables: {e}"))],
    };
    let flavor = if facts.mariadb { "MariaDB" } else { "MySQL" };
    let tls = transport(&mut conn).await;
    items.push(Pass(format!("connect: {flavor} {} (server_id {}, {tls})", facts.version, facts.server_id)));
    items.push(if facts.log_bin {
        Pass("log_bin: ON".into())
    } else {
        Fail("log_bin: OFF; remedy: enable the binary log".into())
    });
    items.push(if facts.binlog_format == "ROW" {
        Pass("binlog_format: ROW".into())
    } else {
        Fail(format!(
            "binlog_format: {} (must be ROW); remedy: SET GLOBAL binlog_format='ROW' and in the server config",
            facts.binlog_format
        ))
    });
    items.push(if facts.row_image == "FULL" {
        Pass("binlog_row_image: FULL".into())
    } else {
        Warn(format!(
            "binlog_row_image: {} — before images of updates/deletes lack columns; set FULL for complete events",
            facts.row_image
        ))
    });
    items.push(match facts.row_metadata.as_deref() {
        Some("FULL") => Pass("binlog_row_metadata: FULL".into()),
        Some(other) => Warn(format!(
            "binlog_row_metadata: {other} — column names, keys and enum values are not in the binlog; cdc follows them through DDL in its schema history, FULL is simpler and safer"
        )),
        None => Warn("binlog_row_metadata: not supported by this server (MySQL < 8.0.1 / MariaDB < 10.5): column names are not in the binlog; cdc follows them through DDL in its schema history".into()),
    });
    items.push(match (&facts.gtid_mode, facts.mariadb) {
        (_, true) => Pass("GTID: MariaDB GTIDs (resume by GTID and by file:pos)".into()),
        (Some(m), false) if m.eq_ignore_ascii_case("ON") => Pass("gtid_mode: ON".into()),
        (m, false) => Warn(format!(
            "gtid_mode: {} — resume by file:pos only; GTIDs survive failover, file names do not",
            m.as_deref().unwrap_or("unknown")
        )),
    });
    items.push(match facts.expire_seconds {
        Some(0) | None => Pass("binlog expiry: never".into()),
        Some(s) if s < 86_400 => Warn(format!("binlog expiry: {s} s — less than a day of downtime loses the position")),
        Some(s) => Pass(format!("binlog expiry: {:.1} days", s as f64 / 86_400.0)),
    });
    if facts.server_id == replica_server_id {
        items.push(Fail(format!(
            "source.server_id {replica_server_id} equals the server's own server_id; remedy: choose another id"
        )));
    }
    let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap_or_default();
    let all = grants.join(" ").to_ascii_uppercase();
    let has = |p: &str| all.contains("ALL PRIVILEGES ON *.*") || all.contains(p);
    for (needed, alt, why) in [
        ("REPLICATION SLAVE", "REPLICATION REPLICA", "to read the binlog"),
        ("REPLICATION CLIENT", "BINLOG MONITOR", "to read binlog positions"),
        ("SELECT", "SELECT", "for snapshots and schemas"),
    ] {
        items.push(if has(needed) || has(alt) {
            Pass(format!("privilege: {needed}"))
        } else {
            Fail(format!("privilege: {needed} missing ({why}); remedy: GRANT {needed} ON *.* TO the cdc user"))
        });
    }
    items
}
