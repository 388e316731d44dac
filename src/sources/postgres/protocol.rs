//! A small PostgreSQL wire-protocol client: TLS as libpq's `sslmode` asks, startup (trust,
//! password, MD5, SCRAM-SHA-256), the simple query protocol with rows streamed one at a time,
//! and the CopyBoth sub-protocol of a replication connection. `postgres-protocol` provides SCRAM and the frontend message
//! encoders; framing and the backend messages we need are read here, because the replication
//! messages (CopyBothResponse) are not in its parser.

use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::error::CdcError;

/// A piece of what [`PgConnection::run_script`] sends.
pub enum ScriptPart {
    Sql(String),
    /// `COPY … FROM STDIN` and its data in COPY text format.
    Copy {
        statement: String,
        data: Vec<u8>,
    },
}

/// One backend message: tag and body.
pub struct BackendMessage {
    pub tag: u8,
    pub body: BytesMut,
}

/// A server error with its SQLSTATE.
#[derive(Debug, Clone)]
pub struct PgError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    /// `schema.table` the error is about, when the server says.
    pub table: Option<String>,
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl PgError {
    /// Transient (retry) or definite (stop, with a remedy) by SQLSTATE class.
    pub fn classify(&self, doing: &str) -> CdcError {
        let cause = format!("{doing}: {self}");
        match self.code.as_str() {
            "28P01" | "28000" => CdcError::definite(cause, "check the user and password in source.url and pg_hba.conf"),
            "42501" => CdcError::definite(
                cause,
                "grant the cdc user REPLICATION (ALTER ROLE cdc REPLICATION) and SELECT on the tables",
            ),
            "3D000" => CdcError::definite(cause, "check the database name in source.url"),
            // At login: the database is closed to connections for now (ALLOW_CONNECTIONS false
            // during maintenance), which passes.
            "55000" if doing == "connecting" => CdcError::transient(cause),
            "55000" | "42704" => {
                CdcError::definite(cause, "see the message: the slot or publication is missing or unusable")
            }
            "53300" | "57P01" | "57P02" | "57P03" | "08006" | "08003" | "55006" | "40001" | "40P01" => {
                CdcError::transient(cause)
            }
            _ => CdcError::definite(cause, "see the server's message"),
        }
    }
}

/// Connection parameters from a `postgres://user:password@host:port/database` URL.
#[derive(Clone)]
pub struct ConnectParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// libpq's `sslmode` URL parameter.
    pub ssl_mode: SslMode,
    /// libpq's `sslrootcert`: a PEM file of the certificate authority to trust (instead of the
    /// system's) when verifying the server.
    pub ssl_root_cert: Option<String>,
    /// libpq's `sslcert` and `sslkey`: a client certificate (PEM) and its PKCS#8 PEM key, for
    /// servers that authenticate clients by certificate.
    pub ssl_client: Option<(String, String)>,
}

/// Whether and how the connection is encrypted, with libpq's names and meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, unverified (libpq's default). `allow` is read as this.
    Prefer,
    /// TLS or no connection, the server's certificate not verified.
    Require,
    /// TLS with a certificate signed by a trusted authority, for any host name.
    VerifyCa,
    /// TLS with a trusted certificate for the host name connected to.
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl ConnectParams {
    /// Reads the URL as libpq does. An unknown `sslmode` reads as `prefer` here: the
    /// configuration check refuses it before any connection is made.
    pub fn from_url(url: &url::Url) -> ConnectParams {
        let decode = |s: &str| percent_decode(s);
        let query = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        ConnectParams {
            // libpq's `host` parameter overrides the URL's host; a path is a Unix-socket directory.
            host: query("host")
                .unwrap_or_else(|| url.host_str().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_string()),
            port: url.port().unwrap_or(5432),
            user: if url.username().is_empty() { "postgres".into() } else { decode(url.username()) },
            password: url.password().map(decode),
            database: decode(url.path().trim_start_matches('/')),
            ssl_mode: query("sslmode").and_then(|m| SslMode::parse(&m)).unwrap_or(SslMode::Prefer),
            ssl_root_cert: query("sslrootcert"),
            ssl_client: query("sslcert").zip(query("sslkey")),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connection's byte stream: plain TCP or TLS over it.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Transport for T {}

pub struct PgConnection {
    stream: Box<dyn Transport>,
    buf: BytesMut,
    out: BytesMut,
    pub server_version_num: u32,
    pub server_version: String,
}

/// Negotiates TLS on a new connection as `p.ssl_mode` asks (PostgreSQL's SSLRequest, then the
/// handshake), or leaves it plain.
async fn secure(mut tcp: TcpStream, p: &ConnectParams, addr: &str) -> Result<Box<dyn Transport>, CdcError> {
    if p.ssl_mode == SslMode::Disable {
        return Ok(Box::new(tcp));
    }
    // SSLRequest: length 8, code 1234.5679.
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.map_err(|e| io_err("asking for TLS", e))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(|e| io_err("asking for TLS", e))?;
    if answer[0] != b'S' {
        if p.ssl_mode == SslMode::Prefer {
            return Ok(Box::new(tcp));
        }
        return Err(CdcError::definite(
            format!(
                "the server at {addr} does not accept TLS connections, and the URL says sslmode={}",
                p.ssl_mode.name()
            ),
            "turn ssl on in the server's configuration, or lower sslmode in the URL",
        ));
    }
    let mut builder = native_tls::TlsConnector::builder();
    match p.ssl_mode {
        // libpq checks nothing in these modes: encryption only.
        SslMode::Prefer | SslMode::Require => {
            builder.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyCa => {
            builder.danger_accept_invalid_hostnames(true);
        }
        SslMode::VerifyFull | SslMode::Disable => {}
    }
    // The files named in the URL (`param`: which one, for the message).
    let read = |path: &str, param: &str| {
        std::fs::read(path).map_err(|e| {
            CdcError::definite(
                format!("cannot read {param} {path}: {e}"),
                format!("point {param} at a readable PEM file"),
            )
        })
    };
    if let Some(path) = &p.ssl_root_cert {
        let cert = native_tls::Certificate::from_pem(&read(path, "sslrootcert")?).map_err(|e| {
            CdcError::definite(
                format!("sslrootcert {path} is not a PEM certificate: {e}"),
                "point sslrootcert at a PEM file",
            )
        })?;
        builder.add_root_certificate(cert).disable_built_in_roots(true);
    }
    if let Some((cert, key)) = &p.ssl_client {
        let identity =
            native_tls::Identity::from_pkcs8(&read(cert, "sslcert")?, &read(key, "sslkey")?).map_err(|e| {
                CdcError::definite(
                    format!("sslcert {cert} with sslkey {key} is not a usable client certificate: {e}"),
                    "give a PEM certificate and a PKCS#8 PEM key (openssl pkcs8 -topk8 -nocrypt converts one)",
                )
            })?;
        builder.identity(identity);
    }
    let connector = builder
        .build()
        .map_err(|e| CdcError::definite(format!("cannot set up TLS: {e}"), "check the TLS settings in the URL"))?;
    match tokio_native_tls::TlsConnector::from(connector).connect(&p.host, tcp).await {
        Ok(tls) => Ok(Box::new(tls)),
        Err(e) if e.to_string().contains("certificate") => Err(CdcError::definite(
            format!("the TLS certificate of {addr} is not trusted (sslmode={}): {e}", p.ssl_mode.name()),
            "give the server's certificate authority as sslrootcert in the URL (verify-full also needs the host name in the certificate)",
        )),
        Err(e) => Err(io_err(&format!("TLS handshake with {addr}"), e)),
    }
}

fn io_err(doing: &str, e: impl std::fmt::Display) -> CdcError {
    CdcError::transient(format!("{doing}: {e}"))
}

impl PgConnection {
    /// Connects and authenticates; `replication` opens a `replication=database` connection.
    pub async fn connect(p: &ConnectParams, replication: bool) -> Result<PgConnection, CdcError> {
        let stream: Box<dyn Transport> = if p.host.starts_with('/') {
            // A server on this machine: no TCP, and no TLS (libpq does not use it there either).
            let path = format!("{}/.s.PGSQL.{}", p.host, p.port);
            Box::new(UnixStream::connect(&path).await.map_err(|e| io_err(&format!("connecting to {path}"), e))?)
        } else {
            let addr = format!("{}:{}", p.host, p.port);
            let tcp = TcpStream::connect(&addr).await.map_err(|e| io_err(&format!("connecting to {addr}"), e))?;
            let _ = tcp.set_nodelay(true);
            secure(tcp, p, &addr).await?
        };
        let mut conn = PgConnection {
            stream,
            buf: BytesMut::with_capacity(1 << 16),
            out: BytesMut::new(),
            server_version_num: 0,
            server_version: String::new(),
        };
        let mut params: Vec<(&str, &str)> = vec![
            ("user", &p.user),
            ("database", &p.database),
            ("application_name", "cdc"),
            ("client_encoding", "UTF8"),
            // Text output in one fixed form, whatever the server defaults are.
            ("DateStyle", "ISO, YMD"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("extra_float_digits", "3"),
        ];
        if replication {
            params.push(("replication", "database"));
        }
        frontend::startup_message(params.iter().copied(), &mut conn.out).map_err(|e| io_err("startup", e))?;
        conn.flush().await?;
        conn.authenticate(p).await?;
        loop {
            let m = conn.read_message().await?;
            match m.tag {
                b'S' => {
                    let mut body = m.body;
                    let name = read_cstr(&mut body);
                    let value = read_cstr(&mut body);
                    if name == "server_version" {
                        conn.server_version = value.clone();
                        conn.server_version_num = parse_version_num(&value);
                    }
                }
                b'K' | b'N' => {}
                b'Z' => break,
                b'E' => return Err(parse_error(m.body).classify("connecting")),
                other => {
                    return Err(CdcError::transient(format!("unexpected message {:?} during startup", other as char)));
                }
            }
        }
        Ok(conn)
    }

    async fn authenticate(&mut self, p: &ConnectParams) -> Result<(), CdcError> {
        let missing_password = || {
            CdcError::definite(
                "the server asks for a password and source.url has none",
                "add the password to source.url",
            )
        };
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'R' => {
                    let mut body = m.body;
                    if body.len() < 4 {
                        return Err(CdcError::transient("short authentication message"));
                    }
                    match body.get_i32() {
                        0 => return Ok(()),
                        3 => {
                            let pw = p.password.as_deref().ok_or_else(missing_password)?;
                            let mut z = pw.as_bytes().to_vec();
                            z.push(0);
                            frontend::password_message(&z, &mut self.out).map_err(|e| io_err("auth", e))?;
                            self.flush().await?;
                        }
                        5 => {
                            let pw = p.password.as_deref().ok_or_else(missing_password)?;
                            if body.len() < 4 {
                                return Err(CdcError::transient("short MD5 salt"));
                            }
                            let salt = [body[0], body[1], body[2], body[3]];
                            let hashed =
                                postgres_protocol::authentication::md5_hash(p.user.as_bytes(), pw.as_bytes(), salt);
                            let mut z = hashed.into_bytes();
                            z.push(0);
                            frontend::password_message(&z, &mut self.out).map_err(|e| io_err("auth", e))?;
                            self.flush().await?;
                        }
                        10 => {
                            let mechanisms: Vec<String> =
                                body[..].split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
                            if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                                return Err(CdcError::definite(
                                    format!("the server offers only SASL mechanisms {mechanisms:?}"),
                                    "allow SCRAM-SHA-256 (without channel binding) for the cdc user in pg_hba.conf",
                                ));
                            }
                            let pw = p.password.as_deref().ok_or_else(missing_password)?;
                            let mut scram = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                            frontend::sasl_initial_response(SCRAM_SHA_256, scram.message(), &mut self.out)
                                .map_err(|e| io_err("auth", e))?;
                            self.flush().await?;
                            let cont = self.expect_auth(11).await?;
                            scram
                                .update(&cont)
                                .map_err(|e| CdcError::definite(format!("SCRAM: {e}"), "check the password"))?;
                            frontend::sasl_response(scram.message(), &mut self.out).map_err(|e| io_err("auth", e))?;
                            self.flush().await?;
                            let fin = self.expect_auth(12).await?;
                            scram
                                .finish(&fin)
                                .map_err(|e| CdcError::definite(format!("SCRAM: {e}"), "check the password"))?;
                        }
                        other => {
                            return Err(CdcError::definite(
                                format!("unsupported authentication method {other}"),
                                "use trust, password, md5 or scram-sha-256 for the cdc user in pg_hba.conf",
                            ));
                        }
                    }
                }
                b'E' => return Err(parse_error(m.body).classify("authenticating")),
                b'N' => {}
                other => {
                    return Err(CdcError::transient(format!(
                        "unexpected message {:?} during authentication",
                        other as char
                    )));
                }
            }
        }
    }

    async fn expect_auth(&mut self, kind: i32) -> Result<BytesMut, CdcError> {
        let m = self.read_message().await?;
        match m.tag {
            b'R' => {
                let mut body = m.body;
                if body.len() >= 4 && body.get_i32() == kind {
                    Ok(body)
                } else {
                    Err(CdcError::transient("unexpected SASL step"))
                }
            }
            b'E' => Err(parse_error(m.body).classify("authenticating")),
            other => Err(CdcError::transient(format!("unexpected message {:?} during SASL", other as char))),
        }
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        let out = self.out.split();
        self.stream.write_all(&out).await.map_err(|e| io_err("writing to the server", e))
    }

    /// Reads one message. Cancellation-safe: partial input stays in the buffer.
    pub async fn read_message(&mut self) -> Result<BackendMessage, CdcError> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                if len < 4 {
                    return Err(CdcError::transient(format!("invalid message length {len} from the server")));
                }
                let total = 1 + len as usize;
                if self.buf.len() >= total {
                    let mut frame = self.buf.split_to(total);
                    let tag = frame[0];
                    frame.advance(5);
                    return Ok(BackendMessage { tag, body: frame });
                }
                self.buf.reserve(total - self.buf.len());
            }
            let n = self.stream.read_buf(&mut self.buf).await.map_err(|e| io_err("reading from the server", e))?;
            if n == 0 {
                return Err(CdcError::transient("the server closed the connection"));
            }
        }
    }

    /// Runs one statement with the simple query protocol, calling `on_row` for each row (text
    /// values, `None` for NULL). Returns the column names.
    pub async fn query_each(
        &mut self,
        sql: &str,
        on_row: impl FnMut(Vec<Option<String>>) -> Result<(), CdcError>,
    ) -> Result<Vec<String>, CdcError> {
        match self.simple_query(sql, on_row).await? {
            Ok(columns) => Ok(columns),
            Err(e) => Err(e.classify(&format!("running `{}`", sql.chars().take(80).collect::<String>()))),
        }
    }

    /// Runs `sql` (one or more statements) with the simple query protocol. The outer error is
    /// the connection's (or `on_row`'s), the inner one the server's answer to the statements.
    pub async fn simple_query(
        &mut self,
        sql: &str,
        mut on_row: impl FnMut(Vec<Option<String>>) -> Result<(), CdcError>,
    ) -> Result<Result<Vec<String>, PgError>, CdcError> {
        frontend::query(sql, &mut self.out).map_err(|e| io_err("query", e))?;
        self.flush().await?;
        let mut columns = Vec::new();
        let mut error: Option<PgError> = None;
        let mut callback_error: Option<CdcError> = None;
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'T' => {
                    let mut b = m.body;
                    let n = if b.len() >= 2 { b.get_i16() } else { 0 };
                    columns.clear();
                    for _ in 0..n {
                        columns.push(read_cstr(&mut b));
                        if b.len() >= 18 {
                            b.advance(18);
                        }
                    }
                }
                b'D' => {
                    if callback_error.is_none() && error.is_none() {
                        let row = parse_data_row(m.body)?;
                        if let Err(e) = on_row(row) {
                            callback_error = Some(e);
                        }
                    }
                }
                b'E' => error = Some(parse_error(m.body)),
                b'Z' => break,
                b'C' | b'I' | b'N' | b'S' => {}
                b'H' | b'G' | b'W' => {
                    let head = sql.chars().take(80).collect::<String>();
                    return Err(CdcError::definite(format!("`{head}` started a COPY"), "report this"));
                }
                other => return Err(CdcError::transient(format!("unexpected message {:?} in a query", other as char))),
            }
        }
        if let Some(e) = callback_error {
            return Err(e);
        }
        Ok(match error {
            Some(e) => Err(e),
            None => Ok(columns),
        })
    }

    /// Sends every part in one write and reads all the answers: statements, and `COPY …
    /// FROM STDIN` with its data sent right behind it (without waiting for CopyInResponse;
    /// if the COPY fails first, the server ignores the copy messages that follow). Rows are
    /// discarded. The inner error is the server's first.
    pub async fn run_script(&mut self, parts: &[ScriptPart]) -> Result<Result<(), PgError>, CdcError> {
        self.send_script(parts).await?;
        self.read_script_results(parts.len()).await
    }

    /// The sending half of [`run_script`](Self::run_script): several scripts may be sent
    /// before their results are read (in order, one `read_script_results` per script).
    pub async fn send_script(&mut self, parts: &[ScriptPart]) -> Result<(), CdcError> {
        for part in parts {
            match part {
                ScriptPart::Sql(sql) => frontend::query(sql, &mut self.out).map_err(|e| io_err("query", e))?,
                ScriptPart::Copy { statement, data } => {
                    frontend::query(statement, &mut self.out).map_err(|e| io_err("query", e))?;
                    for chunk in data.chunks(1 << 20) {
                        self.out.extend_from_slice(b"d");
                        self.out.extend_from_slice(&((chunk.len() as i32 + 4).to_be_bytes()));
                        if chunk.len() < 1 << 16 {
                            self.out.extend_from_slice(chunk);
                        } else {
                            // Large chunks go out from where they are, not through a copy in `out`.
                            self.flush().await?;
                            self.stream.write_all(chunk).await.map_err(|e| io_err("writing to the server", e))?;
                        }
                    }
                    frontend::copy_done(&mut self.out);
                }
            }
        }
        self.flush().await
    }

    /// Reads the answers to a script of `parts` parts sent with `send_script`.
    pub async fn read_script_results(&mut self, parts: usize) -> Result<Result<(), PgError>, CdcError> {
        let mut error: Option<PgError> = None;
        let mut ready = 0;
        while ready < parts {
            let m = self.read_message().await?;
            match m.tag {
                b'Z' => ready += 1,
                b'E' => {
                    let e = parse_error(m.body);
                    error.get_or_insert(e);
                }
                b'T' | b'D' | b'C' | b'I' | b'N' | b'S' | b'G' => {}
                other => {
                    return Err(CdcError::transient(format!("unexpected message {:?} in a script", other as char)));
                }
            }
        }
        Ok(match error {
            Some(e) => Err(e),
            None => Ok(()),
        })
    }

    /// All rows of a statement.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, CdcError> {
        let mut rows = Vec::new();
        self.query_each(sql, |r| {
            rows.push(r);
            Ok(())
        })
        .await?;
        Ok(rows)
    }

    /// The first column of the first row of a statement (`None` for no row or NULL).
    pub async fn query_value(&mut self, sql: &str) -> Result<Option<String>, CdcError> {
        let rows = self.query(sql).await?;
        Ok(rows.into_iter().next().and_then(|r| r.into_iter().next().flatten()))
    }

    /// Whether the first column of the first row is boolean true.
    pub async fn query_true(&mut self, sql: &str) -> Result<bool, CdcError> {
        Ok(self.query_value(sql).await?.as_deref() == Some("t"))
    }

    /// Sends `START_REPLICATION …` and waits for the CopyBoth response.
    pub async fn start_copy_both(&mut self, sql: &str) -> Result<(), CdcError> {
        frontend::query(sql, &mut self.out).map_err(|e| io_err("query", e))?;
        self.flush().await?;
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'W' => return Ok(()),
                b'N' => {}
                b'E' => {
                    let e = parse_error(m.body);
                    // Drain to ReadyForQuery so the connection stays usable.
                    return Err(e.classify("starting replication"));
                }
                other => {
                    return Err(CdcError::transient(format!(
                        "unexpected message {:?} starting replication",
                        other as char
                    )));
                }
            }
        }
    }

    /// Sends `COPY (…) TO STDOUT` and waits for the CopyOut response; the rows then come from
    /// [`PgConnection::read_copy_row`], streamed by the server without a round trip per chunk.
    pub async fn start_copy_out(&mut self, sql: &str) -> Result<(), CdcError> {
        frontend::query(sql, &mut self.out).map_err(|e| io_err("query", e))?;
        self.flush().await?;
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'H' => return Ok(()),
                b'N' => {}
                b'E' => {
                    let e = parse_error(m.body);
                    self.read_until_ready().await?;
                    return Err(e.classify("starting a COPY"));
                }
                other => {
                    return Err(CdcError::transient(format!("unexpected message {:?} starting a COPY", other as char)));
                }
            }
        }
    }

    /// The next row of a running `COPY … TO STDOUT` in text format (one CopyData message,
    /// newline included); `None` once the COPY has ended.
    pub async fn read_copy_row(&mut self) -> Result<Option<BytesMut>, CdcError> {
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'd' => return Ok(Some(m.body)),
                b'c' | b'C' | b'N' => {}
                b'Z' => return Ok(None),
                b'E' => {
                    let e = parse_error(m.body);
                    self.read_until_ready().await?;
                    return Err(e.classify("copying a table"));
                }
                other => return Err(CdcError::transient(format!("unexpected message {:?} in a COPY", other as char))),
            }
        }
    }

    async fn read_until_ready(&mut self) -> Result<(), CdcError> {
        while self.read_message().await?.tag != b'Z' {}
        Ok(())
    }

    /// True when a whole message is already buffered (reading it will not wait).
    pub fn has_buffered_message(&self) -> bool {
        self.buf.len() >= 5 && {
            let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
            len >= 4 && self.buf.len() > len as usize
        }
    }

    /// Sends one CopyData message.
    pub async fn send_copy_data(&mut self, payload: &[u8]) -> Result<(), CdcError> {
        self.out.extend_from_slice(b"d");
        self.out.extend_from_slice(&((payload.len() as i32 + 4).to_be_bytes()));
        self.out.extend_from_slice(payload);
        self.flush().await
    }
}

fn read_cstr(b: &mut BytesMut) -> String {
    let end = b.iter().position(|x| *x == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).into_owned();
    b.advance((end + 1).min(b.len()));
    s
}

fn parse_data_row(mut b: BytesMut) -> Result<Vec<Option<String>>, CdcError> {
    let short = || CdcError::transient("short DataRow from the server");
    if b.len() < 2 {
        return Err(short());
    }
    let n = b.get_i16().max(0) as usize;
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        if b.len() < 4 {
            return Err(short());
        }
        let len = b.get_i32();
        if len < 0 {
            row.push(None);
        } else {
            let len = len as usize;
            if b.len() < len {
                return Err(short());
            }
            let v = b.split_to(len);
            row.push(Some(match String::from_utf8(v.to_vec()) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }));
        }
    }
    Ok(row)
}

pub fn parse_error(mut b: BytesMut) -> PgError {
    let mut e = PgError { code: String::new(), message: String::new(), detail: None, table: None };
    let mut schema = None;
    while !b.is_empty() && b[0] != 0 {
        let field = b.get_u8();
        let value = read_cstr(&mut b);
        match field {
            b'C' => e.code = value,
            b'M' => e.message = value,
            b'D' => e.detail = Some(value),
            b's' => schema = Some(value),
            b't' => e.table = Some(value),
            _ => {}
        }
    }
    if let (Some(s), Some(t)) = (schema, &e.table) {
        e.table = Some(format!("{s}.{t}"));
    }
    e
}

/// `15.4 (Debian …)` → 150004; `9.6.3` → 90603.
fn parse_version_num(v: &str) -> u32 {
    let nums: Vec<u32> = v
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums.as_slice() {
        [major, minor, ..] if *major >= 10 => major * 10000 + minor,
        [major, minor, patch, ..] => major * 10000 + minor * 100 + patch,
        [major] => major * 10000,
        _ => 0,
    }
}

/// Quotes an identifier for SQL.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A table's qualified name, quoted: `"schema"."table"`.
pub fn quote_table(id: &crate::model::TableId) -> String {
    format!("{}.{}", quote_ident(&id.namespace), quote_ident(&id.name))
}

/// Quotes a literal for SQL.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
