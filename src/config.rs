//! The TOML configuration file: `${ENV}` substitution, strict parsing, validation.
//!
//! Every string value may contain `${NAME}` or `${NAME:-default}`; an unset variable without
//! a default is an error naming the variable and the field. Unknown keys are errors.
//! Secrets (passwords in URLs, `*password*` settings) print as `***` in Debug and Display.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

#[derive(Debug, thiserror::Error)]
#[error("config {file}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// Dotted path of the offending field (`source.url`), or `-` for the whole file.
    pub field: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Logical server name: topic prefix, `source.name`, metrics label.
    pub name: String,
    pub source: SourceConfig,
    #[serde(default)]
    pub sink: SinkConfig,
    #[serde(default)]
    pub positions: PositionsConfig,
    pub http: Option<HttpConfig>,
    #[serde(default)]
    pub pipeline: PipelineConfig,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    Mysql(MySqlSourceConfig),
    Postgres(PgSourceConfig),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MySqlSourceConfig {
    /// `mysql://user:password@host:port`
    pub url: DbUrl,
    /// This replica's server id; must differ from every other replica of the source.
    pub server_id: u32,
    #[serde(default = "all_tables")]
    pub tables: Vec<String>,
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Rows per primary-key chunk of the initial snapshot; a checkpoint follows each chunk.
    #[serde(default = "default_snapshot_chunk_rows")]
    pub snapshot_chunk_rows: usize,
    /// Tables read at the same time in the initial snapshot, each on its own connection in a
    /// snapshot of the same instant.
    #[serde(default = "default_snapshot_connections")]
    pub snapshot_connections: usize,
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u32,
    /// Where table definitions are kept for servers that log no column names
    /// (`binlog_row_metadata` ≠ FULL); default `schema-history.jsonl` next to positions.path.
    pub schema_history: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSourceConfig {
    /// `postgres://user:password@host:port/database`
    pub url: DbUrl,
    /// Replication slot name (default `cdc_<name>`).
    pub slot: Option<String>,
    /// Publication name (default `cdc_<name>`).
    pub publication: Option<String>,
    #[serde(default = "all_tables")]
    pub tables: Vec<String>,
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    #[serde(default)]
    pub snapshot: SnapshotMode,
    /// Rows per primary-key chunk of the initial snapshot; a checkpoint follows each chunk.
    #[serde(default = "default_snapshot_chunk_rows")]
    pub snapshot_chunk_rows: usize,
    /// Tables read at the same time in the initial snapshot, each on its own connection in
    /// the same exported snapshot.
    #[serde(default = "default_snapshot_connections")]
    pub snapshot_connections: usize,
    /// Ask the server (14+) to stream large transactions before they commit; cdc keeps them
    /// in a local spool until the commit.
    #[serde(default = "yes")]
    pub streaming: bool,
    /// Where in-progress transactions are spooled (default: the system temp dir).
    pub spool_dir: Option<std::path::PathBuf>,
    /// Most local disk the spool may use, in MB.
    #[serde(default = "default_spool_max_mb")]
    pub spool_max_mb: u64,
}

fn default_snapshot_chunk_rows() -> usize {
    50_000
}

fn default_snapshot_connections() -> usize {
    2
}

fn default_spool_max_mb() -> u64 {
    10 * 1024
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Snapshot the selected tables when no position is stored, then stream.
    #[default]
    Initial,
    /// Stream only, from the stored position or the source's current one.
    Never,
    /// Snapshot, then stop.
    InitialOnly,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkConfig {
    Stdout(StdoutSinkConfig),
    File(FileSinkConfig),
    Kafka(KafkaSinkConfig),
    Postgres(DbSinkConfig),
    Mysql(DbSinkConfig),
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig::Stdout(StdoutSinkConfig {})
    }
}

impl SinkConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Stdout(_) => "stdout",
            SinkConfig::File(_) => "file",
            SinkConfig::Kafka(_) => "kafka",
            SinkConfig::Postgres(_) => "postgres",
            SinkConfig::Mysql(_) => "mysql",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// JSON-lines file, appended to.
    pub path: PathBuf,
    /// fsync after each batch before acknowledging it (default true).
    #[serde(default = "yes")]
    pub fsync: bool,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic prefix (default: `name`): topics are `<prefix>.<db or schema>.<table>`.
    pub topic_prefix: Option<String>,
    /// One topic for every table (overrides the prefix scheme).
    pub topic: Option<String>,
    /// Per-table topic, keyed by `db.table` / `schema.table`.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// A tombstone (key, null value) after each delete, for log compaction.
    #[serde(default = "yes")]
    pub tombstones_on_delete: bool,
    /// Create missing topics through the admin API; `false` requires them to exist.
    #[serde(default = "yes")]
    pub create_topics: bool,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Transactional producer: each checkpoint's messages and its position record are
    /// committed in one Kafka transaction (requires `positions.store = "kafka"`).
    #[serde(default)]
    pub exactly_once: bool,
    /// Transactional id for `exactly_once` (default `cdc-<name>`): instances sharing it fence each other.
    pub transactional_id: Option<String>,
    /// What keeps its order across partitions: each key (default; the key picks the
    /// partition) or each table (all changes of a table go to one partition).
    #[serde(default)]
    pub order_by: OrderBy,
    /// BEGIN/END records on `<prefix>.transaction` and the `transaction` block in each event
    /// (Debezium's `provide.transaction.metadata`).
    #[serde(default)]
    pub transaction_metadata: bool,
    /// Each key and value as `{"schema": …, "payload": …}` with its Kafka Connect schema, as
    /// Kafka Connect's `JsonConverter` writes them with `schemas.enable=true`.
    #[serde(default)]
    pub json_schemas: bool,
    /// How keys and values are encoded: Debezium's JSON (default) or Avro in the Confluent
    /// wire format with schemas in `schema_registry`.
    #[serde(default)]
    pub format: KafkaFormat,
    /// The Confluent-compatible schema registry for `format = "avro"`.
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Passed through to librdkafka as is; values of keys containing `password` are secret.
    #[serde(default)]
    pub properties: BTreeMap<String, Secretish>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum KafkaFormat {
    #[default]
    Json,
    Avro,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// `http://host:8081` or `https://…`.
    pub url: String,
    /// HTTP basic authentication (Confluent Cloud: the API key and secret).
    pub username: Option<String>,
    pub password: Option<Secretish>,
    /// Subject names: `<topic>-key` / `<topic>-value` (default, Confluent's
    /// TopicNameStrategy) or the record names `<prefix>.<db>.<table>.Key` / `….Envelope`
    /// (RecordNameStrategy, for several tables in one topic).
    #[serde(default)]
    pub subjects: SubjectNames,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SubjectNames {
    #[default]
    Topic,
    Record,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OrderBy {
    #[default]
    Key,
    Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbSinkConfig {
    /// `postgres://user:password@host:port/database` or `mysql://user:password@host:port`
    pub url: DbUrl,
    /// Source namespace (MySQL database, PostgreSQL schema) → target schema or database.
    /// Unlisted namespaces keep their name.
    #[serde(default)]
    pub namespaces: BTreeMap<String, String>,
    /// Create missing tables (and schemas) from the source schema; `false` requires them.
    #[serde(default = "yes")]
    pub create_tables: bool,
    /// Table holding each pipeline's applied position (`positions.store = "sink"`).
    #[serde(default = "default_positions_table")]
    pub positions_table: String,
    /// A source schema change cdc cannot replay exactly (a changed key, columns dropped and
    /// added at once): stop applying that table, or stop the pipeline.
    #[serde(default)]
    pub unreplayable_schema_change: UnreplayableSchemaChange,
    /// Target connections applying independent transactions at the same time (changes of
    /// one row, and of a table written as a whole, keep their order; commits stay in source
    /// order). PostgreSQL targets only.
    #[serde(default = "one")]
    pub apply_connections: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnreplayableSchemaChange {
    /// The table's changes are no longer applied (recorded in the target's
    /// `cdc_stopped_tables`); the other tables go on.
    #[default]
    StopTable,
    StopPipeline,
}

impl DbSinkConfig {
    /// The target namespace of a source namespace.
    pub fn target_namespace<'a>(&'a self, source: &'a str) -> &'a str {
        self.namespaces.get(source).map_or(source, String::as_str)
    }
}

fn default_positions_table() -> String {
    "cdc_positions".into()
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    File,
    Kafka,
    Sink,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionsConfig {
    #[serde(default)]
    pub store: StoreKind,
    #[serde(default = "default_positions_path")]
    pub path: PathBuf,
    /// Compacted topic for `store = "kafka"` (default `<name>.positions`); uses the Kafka
    /// sink's brokers and properties.
    pub topic: Option<String>,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        PositionsConfig { store: StoreKind::File, path: default_positions_path(), topic: None }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Batches that may wait between source and sink (backpressure bound).
    #[serde(default = "default_channel_batches")]
    pub channel_batches: usize,
    /// Most events in one batch.
    #[serde(default = "default_batch_events")]
    pub batch_events: usize,
    /// Least time between two position-store writes.
    #[serde(default = "default_checkpoint_ms")]
    pub checkpoint_interval_ms: u64,
    /// First wait after a transient error; doubles up to 30 s.
    #[serde(default = "default_retry_ms")]
    pub retry_initial_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            channel_batches: default_channel_batches(),
            batch_events: default_batch_events(),
            checkpoint_interval_ms: default_checkpoint_ms(),
            retry_initial_ms: default_retry_ms(),
        }
    }
}

fn all_tables() -> Vec<String> {
    vec!["*.*".to_string()]
}
fn default_partitions() -> i32 {
    1
}
fn default_replication_factor() -> i32 {
    1
}
fn default_heartbeat_secs() -> u32 {
    10
}
fn yes() -> bool {
    true
}
fn default_positions_path() -> PathBuf {
    PathBuf::from("./cdc-state/positions.json")
}
fn default_channel_batches() -> usize {
    16
}
fn default_batch_events() -> usize {
    1024
}
fn default_checkpoint_ms() -> u64 {
    1000
}
fn default_retry_ms() -> u64 {
    100
}

/// A database URL whose password never appears in Debug or Display output.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(url::Url);

impl DbUrl {
    pub fn url(&self) -> &url::Url {
        &self.0
    }

    /// The URL with the password, for handing to a client library only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn redacted(&self) -> String {
        let mut u = self.0.clone();
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        u.to_string()
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DbUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let url = url::Url::parse(&text).map_err(|e| serde::de::Error::custom(format!("not a URL: {e}")))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(serde::de::Error::custom("the URL has no host"));
        }
        Ok(DbUrl(url))
    }
}

/// A pass-through setting that is hidden in output when its key names a secret.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secretish(pub String);

impl fmt::Debug for Secretish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are not known here; hide every value rather than risk one secret.
        f.write_str("\"***\"")
    }
}

impl Config {
    /// Reads, substitutes, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            field: "-".into(),
            message: format!("cannot read the file: {e}"),
        })?;
        Config::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let err = |field: String, message: String| ConfigError { file: file.to_string(), field, message };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err("-".into(), e.message().to_string() + &line_of(text, e.span())))?;
        for (key, value) in table.iter_mut() {
            substitute_env(value, key).map_err(|(field, message)| err(field, message))?;
        }
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
            let field = e.path().to_string();
            let (field, message) = match field.as_str() {
                "source" | "sink" => {
                    inner_error(&table, &field).unwrap_or((field, e.into_inner().message().to_string()))
                }
                "." => ("-".into(), e.into_inner().message().to_string()),
                _ => (field, e.into_inner().message().to_string()),
            };
            err(field, message)
        })?;
        // A database sink keeps positions in the target unless told otherwise: that is what
        // makes it exactly-once.
        let store_given = table.get("positions").and_then(|p| p.get("store")).is_some();
        if !store_given && matches!(config.sink, SinkConfig::Postgres(_) | SinkConfig::Mysql(_)) {
            config.positions.store = StoreKind::Sink;
        }
        config.validate().map_err(|(field, message)| err(field.to_string(), message))?;
        Ok(config)
    }

    /// Checks what the types alone cannot; errors name the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(("name", format!("`{}` must be non-empty letters, digits, `_`, `-` or `.`", self.name)));
        }
        match &self.source {
            SourceConfig::Mysql(m) => {
                check_mysql_url(&m.url, "source.url")?;
                if m.server_id == 0 {
                    return Err(("source.server_id", "must be a non-zero id unused by other replicas".into()));
                }
                check_patterns(&m.tables, "source.tables")?;
                check_patterns(&m.exclude_tables, "source.exclude_tables")?;
            }
            SourceConfig::Postgres(p) => {
                check_postgres_url(&p.url, "source.url")?;
                if p.url.url().path().trim_start_matches('/').is_empty() {
                    return Err(("source.url", "must name the database, e.g. postgres://cdc@host:5432/shop".into()));
                }
                for (field, name) in [("source.slot", &p.slot), ("source.publication", &p.publication)] {
                    if let Some(n) = name
                        && !is_pg_identifier(n)
                    {
                        return Err((field, format!("`{n}` must be lower-case letters, digits and `_`")));
                    }
                }
                check_patterns(&p.tables, "source.tables")?;
                check_patterns(&p.exclude_tables, "source.exclude_tables")?;
            }
        }
        match &self.sink {
            SinkConfig::Postgres(d) => {
                check_postgres_url(&d.url, "sink.url")?;
                check_positions_table(&d.positions_table)?;
                if !(1..=64).contains(&d.apply_connections) {
                    return Err(("sink.apply_connections", "must be between 1 and 64".into()));
                }
            }
            SinkConfig::Mysql(d) => {
                check_mysql_url(&d.url, "sink.url")?;
                check_positions_table(&d.positions_table)?;
                if d.apply_connections != 1 {
                    return Err((
                        "sink.apply_connections",
                        "a MySQL/MariaDB target is applied on one connection".into(),
                    ));
                }
            }
            SinkConfig::Kafka(k) => {
                if k.brokers.trim().is_empty() {
                    return Err(("sink.brokers", "must list at least one host:port".into()));
                }
                if k.partitions < 1 {
                    return Err(("sink.partitions", "must be at least 1".into()));
                }
                if k.replication_factor < 1 && k.replication_factor != -1 {
                    return Err(("sink.replication_factor", "must be at least 1 (or -1: the broker's default)".into()));
                }
                match (k.format, &k.schema_registry) {
                    (KafkaFormat::Avro, None) => {
                        return Err(("sink.schema_registry", "format = \"avro\" needs schema_registry.url".into()));
                    }
                    (KafkaFormat::Avro, Some(_)) if k.json_schemas => {
                        return Err(("sink.json_schemas", "applies to format = \"json\" only".into()));
                    }
                    (KafkaFormat::Json, Some(_)) => {
                        return Err(("sink.schema_registry", "is used by format = \"avro\" only".into()));
                    }
                    (_, Some(r)) if !(r.url.starts_with("http://") || r.url.starts_with("https://")) => {
                        return Err(("sink.schema_registry.url", "must start with http:// or https://".into()));
                    }
                    _ => {}
                }
                if k.exactly_once && self.positions.store != StoreKind::Kafka {
                    return Err((
                        "sink.exactly_once",
                        "needs positions.store = \"kafka\": the position is committed in the same Kafka transaction"
                            .into(),
                    ));
                }
            }
            _ => {}
        }
        match (self.positions.store, &self.sink) {
            (StoreKind::Kafka, SinkConfig::Kafka(_)) => {}
            (StoreKind::Kafka, _) => {
                return Err(("positions.store", "\"kafka\" needs sink.kind = \"kafka\" (it uses its brokers)".into()));
            }
            (StoreKind::Sink, SinkConfig::Postgres(_) | SinkConfig::Mysql(_)) => {}
            (StoreKind::Sink, _) => {
                return Err(("positions.store", "\"sink\" needs a database sink (kind postgres or mysql)".into()));
            }
            _ => {}
        }
        if self.positions.store == StoreKind::File && self.positions.path.as_os_str().is_empty() {
            return Err(("positions.path", "must not be empty".into()));
        }
        if self.pipeline.channel_batches == 0 {
            return Err(("pipeline.channel_batches", "must be at least 1".into()));
        }
        if self.pipeline.batch_events == 0 {
            return Err(("pipeline.batch_events", "must be at least 1".into()));
        }
        Ok(())
    }

    /// Kafka topic of `positions.store = "kafka"`: configured, or `<name>.positions`.
    pub fn positions_topic(&self) -> String {
        self.positions.topic.clone().unwrap_or_else(|| format!("{}.positions", self.name))
    }

    /// Slot name: configured, or `cdc_<name>` made into a valid identifier.
    pub fn default_pg_name(&self) -> String {
        let clean: String =
            self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        format!("cdc_{clean}")
    }
}

/// `table` or `schema.table`, plain identifiers only (it is written into SQL unquoted).
fn check_positions_table(name: &str) -> Result<(), (&'static str, String)> {
    let ok = |part: &str| {
        !part.is_empty()
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !part.starts_with(|c: char| c.is_ascii_digit())
    };
    match name.split('.').collect::<Vec<_>>().as_slice() {
        [t] if ok(t) => Ok(()),
        [s, t] if ok(s) && ok(t) => Ok(()),
        _ => {
            Err(("sink.positions_table", format!("`{name}` must be `table` or `schema.table` (letters, digits, `_`)")))
        }
    }
}

/// Serde loses the path inside internally tagged enums; deserialize the chosen variant alone
/// to name the exact field (`source.url` rather than `source`).
fn inner_error(table: &toml::Table, section: &str) -> Option<(String, String)> {
    let mut inner = table.get(section)?.as_table()?.clone();
    let kind = inner.remove("kind")?.as_str()?.to_string();
    fn path_of<T: serde::de::DeserializeOwned>(section: &str, t: toml::Table) -> Option<(String, String)> {
        let e = serde_path_to_error::deserialize::<_, T>(toml::Value::Table(t)).err()?;
        let path = e.path().to_string();
        let field = if path == "." { section.to_string() } else { format!("{section}.{path}") };
        Some((field, e.into_inner().message().to_string()))
    }
    match (section, kind.as_str()) {
        ("source", "mysql") => path_of::<MySqlSourceConfig>(section, inner),
        ("source", "postgres") => path_of::<PgSourceConfig>(section, inner),
        ("sink", "stdout") => path_of::<StdoutSinkConfig>(section, inner),
        ("sink", "file") => path_of::<FileSinkConfig>(section, inner),
        ("sink", "kafka") => path_of::<KafkaSinkConfig>(section, inner),
        ("sink", "postgres" | "mysql") => path_of::<DbSinkConfig>(section, inner),
        _ => None,
    }
}

fn check_scheme(url: &DbUrl, schemes: &[&str], field: &'static str) -> Result<(), (&'static str, String)> {
    if schemes.contains(&url.url().scheme()) {
        Ok(())
    } else {
        Err((field, format!("scheme `{}` is not one of {}", url.url().scheme(), schemes.join(", "))))
    }
}

/// A PostgreSQL URL: its scheme, and libpq's TLS parameters when given.
fn check_postgres_url(url: &DbUrl, field: &'static str) -> Result<(), (&'static str, String)> {
    check_scheme(url, &["postgres", "postgresql"], field)?;
    for (key, value) in url.url().query_pairs() {
        match &*key {
            "sslmode" if crate::sources::postgres::protocol::SslMode::parse(&value).is_none() => {
                return Err((
                    field,
                    format!("sslmode `{value}` is not one of disable, allow, prefer, require, verify-ca, verify-full"),
                ));
            }
            "host" if !value.starts_with('/') => {
                return Err((field, format!("host `{value}`: the host parameter takes a Unix-socket directory")));
            }
            "host" | "sslmode" | "sslrootcert" | "sslcert" | "sslkey" => {}
            other => {
                return Err((
                    field,
                    format!(
                        "unknown URL parameter `{other}` (cdc reads host, sslmode, sslrootcert, sslcert and sslkey)"
                    ),
                ));
            }
        }
    }
    let has = |name: &str| url.url().query_pairs().any(|(k, _)| k == name);
    if has("sslcert") != has("sslkey") {
        return Err((field, "sslcert and sslkey go together".into()));
    }
    Ok(())
}

/// A MySQL URL: its scheme, and a known `ssl-mode` when given.
fn check_mysql_url(url: &DbUrl, field: &'static str) -> Result<(), (&'static str, String)> {
    check_scheme(url, &["mysql", "mariadb"], field)?;
    match url.url().query_pairs().find(|(k, _)| k == "ssl-mode") {
        Some((_, mode)) if crate::sources::mysql::server::TlsMode::parse(&mode).is_none() => Err((
            field,
            format!("ssl-mode `{mode}` is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"),
        )),
        _ => Ok(()),
    }
}

fn check_patterns(patterns: &[String], field: &'static str) -> Result<(), (&'static str, String)> {
    for p in patterns {
        let parts: Vec<&str> = p.split('.').collect();
        if parts.len() != 2 || parts.iter().any(|s| s.is_empty()) {
            return Err((field, format!("`{p}` must be `db.table` (`*` allowed in either part)")));
        }
    }
    Ok(())
}

fn is_pg_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => format!(" (line {})", text[..r.start.min(text.len())].lines().count().max(1)),
        None => String::new(),
    }
}

/// Replaces `${NAME}` / `${NAME:-default}` in every string below `value`.
fn substitute_env(value: &mut toml::Value, path: &str) -> Result<(), (String, String)> {
    match value {
        toml::Value::String(s) => {
            *s = expand(s).map_err(|m| (path.to_string(), m))?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_env(item, &format!("{path}[{i}]"))?;
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                substitute_env(v, &format!("{path}.{k}"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{inner}}}` is not a valid environment variable reference"));
        }
        match (std::env::var(name), default) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "shop"
[source]
kind = "mysql"
url = "mysql://cdc:pw@127.0.0.1:3306"
server_id = 5401
"#;

    #[test]
    fn minimal_config_defaults_to_stdout_and_file_store() {
        let c = Config::parse(MINIMAL, "t.toml").unwrap();
        assert!(matches!(c.sink, SinkConfig::Stdout(_)));
        assert_eq!(c.positions.store, StoreKind::File);
        assert_eq!(c.positions.path, PathBuf::from("./cdc-state/positions.json"));
    }

    #[test]
    fn password_is_redacted_in_debug() {
        let c = Config::parse(MINIMAL, "t.toml").unwrap();
        let text = format!("{c:?}");
        assert!(text.contains("cdc:***@127.0.0.1"), "{text}");
        assert!(!text.contains(":pw@"), "{text}");
    }

    #[test]
    fn unknown_key_names_the_field() {
        let e = Config::parse(&MINIMAL.replace("server_id", "serverid"), "t.toml").unwrap_err();
        assert_eq!(e.field, "source.serverid");
        assert!(e.message.contains("serverid"), "{e}");
    }

    #[test]
    fn env_default_and_unset() {
        let text = MINIMAL.replace("pw@", "${CDC_TEST_UNSET_VAR_42:-dflt}@");
        let c = Config::parse(&text, "t.toml").unwrap();
        let SourceConfig::Mysql(m) = c.source else { panic!() };
        assert_eq!(m.url.url().password(), Some("dflt"));
        let e = Config::parse(&MINIMAL.replace("pw@", "${CDC_TEST_UNSET_VAR_42}@"), "t.toml").unwrap_err();
        assert_eq!(e.field, "source.url");
        assert!(e.message.contains("CDC_TEST_UNSET_VAR_42 is not set"), "{e}");
    }

    #[test]
    fn database_url_parameters_are_checked() {
        let pg = |query: &str| {
            let text = format!(
                "name = \"shop\"\n[source]\nkind = \"postgres\"\nurl = \"postgres://cdc@db:5432/shop?{query}\"\n"
            );
            Config::parse(&text, "t.toml").map(|_| ()).map_err(|e| format!("{}: {}", e.field, e.message))
        };
        assert_eq!(pg("sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/c.key&host=/run/pg"), Ok(()));
        let refused = |query: &str, text: &str| {
            let e = pg(query).expect_err(query);
            assert!(e.starts_with("source.url: ") && e.contains(text), "{query}: {e}");
        };
        refused("sslmode=on", "sslmode `on` is not one of");
        refused("sslcert=/c.pem", "sslcert and sslkey go together");
        refused("host=db2", "takes a Unix-socket directory");
        refused("connect_timeout=5", "unknown URL parameter `connect_timeout`");
        let e = Config::parse(&MINIMAL.replace("3306\"", "3306?ssl-mode=STRICT\""), "t.toml").unwrap_err();
        assert_eq!(e.field, "source.url");
        assert!(e.message.contains("ssl-mode `STRICT` is not one of DISABLED"), "{e}");
        assert!(
            Config::parse(&MINIMAL.replace("3306\"", "3306?ssl-mode=verify_identity&ssl-ca=/ca.pem\""), "t.toml")
                .is_ok()
        );
    }
}
