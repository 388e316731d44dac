//! Avro keys and values with their schemas in a Confluent-compatible schema registry: each
//! table's key and envelope schemas are registered (under `<topic>-key` / `<topic>-value`, or
//! the record names) when the table is first seen and again whenever its schema changes; the
//! registry decides whether the new version is compatible with the old.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::config::{SchemaRegistryConfig, SubjectNames};
use crate::error::CdcError;
use crate::format::avro;
use crate::format::connect::{ConnectSchema, Connector, envelope_schema, key_schema, transaction_schemas};
use crate::model::{ChangeEvent, TableId, TableSchema};
use crate::sources::CheckItem;

/// A Confluent-compatible schema registry's REST API (the part a producer needs).
struct Registry {
    http: reqwest::Client,
    url: String,
    username: Option<String>,
    password: Option<String>,
}

impl Registry {
    fn new(config: &SchemaRegistryConfig) -> Result<Registry, CdcError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                CdcError::definite(format!("cannot set up the schema registry client: {e}"), "report this as a bug")
            })?;
        Ok(Registry {
            http,
            url: config.url.clone(),
            username: config.username.clone(),
            password: config.password.as_ref().map(|p| p.0.clone()),
        })
    }

    /// A request to `path` of the registry's REST API, with its media type and credentials.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.url.trim_end_matches('/')))
            .header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
        match &self.username {
            Some(user) => request.basic_auth(user, self.password.as_deref()),
            None => request,
        }
    }

    /// Registers `schema` (of `what`: a table, or the transaction records) under `subject`, or
    /// finds it registered already, and returns its id.
    async fn register(&self, subject: &str, schema: &str, what: &str) -> Result<u32, CdcError> {
        tracing::debug!(subject, what, schema, "Registering an Avro schema");
        let body = serde_json::json!({ "schema": schema }).to_string();
        let request = self
            .request(reqwest::Method::POST, &format!("/subjects/{}/versions", url_segment(subject)))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(body);
        let unreachable = |e: reqwest::Error| {
            CdcError::transient(format!("schema registry at {} did not answer: {}", self.url, error_chain(&e)))
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        let message = answer["message"].as_str().unwrap_or(&text).to_string();
        match status {
            200..=299 => answer["id"].as_u64().and_then(|id| u32::try_from(id).ok()).ok_or_else(|| {
                CdcError::definite(
                    format!("schema registry at {} answered without a schema id: {text}", self.url),
                    "check that sink.schema_registry.url points at a Confluent-compatible schema registry",
                )
            }),
            401 | 403 => Err(CdcError::definite(
                format!("schema registry refused to register subject `{subject}` ({status}): {message}"),
                "check sink.schema_registry.username/password and the registry's permissions for the subject",
            )),
            409 => Err(CdcError::definite(
                format!("schema registry refused the new schema of {what} under subject `{subject}`: {message}"),
                "make the schema change compatible, relax the subject's compatibility level in the registry, \
                 or route the table to a new topic",
            )),
            // A registry briefly overloaded or restarting.
            408 | 429 | 500..=599 => {
                Err(CdcError::transient(format!("schema registry at {} answered {status}: {message}", self.url)))
            }
            _ => Err(CdcError::definite(
                format!("schema registry rejected the schema of subject `{subject}` ({status}): {message}"),
                "check sink.schema_registry.url; if it is right, report this as a bug with the schema from the debug log",
            )),
        }
    }
}

/// `cdc check`: the registry answers (with these credentials) and how many subjects it holds.
pub async fn check(config: &SchemaRegistryConfig) -> CheckItem {
    let registry = match Registry::new(config) {
        Ok(r) => r,
        Err(e) => return CheckItem::Fail(format!("schema registry: {e}")),
    };
    match registry.request(reqwest::Method::GET, "/subjects").send().await {
        Err(e) => CheckItem::Fail(format!("schema registry at {} did not answer: {}", registry.url, error_chain(&e))),
        Ok(response) if response.status().is_success() => {
            let text = response.text().await.unwrap_or_default();
            match serde_json::from_str::<Vec<String>>(&text).map(|s| s.len()) {
                Ok(n) => CheckItem::Pass(format!("schema registry at {} answers ({n} subjects)", registry.url)),
                Err(e) => CheckItem::Fail(format!(
                    "schema registry at {} answered without a list of subjects ({e}): is it a Confluent-compatible registry?",
                    registry.url
                )),
            }
        }
        Ok(response) => CheckItem::Fail(format!(
            "schema registry at {} answered {} to GET /subjects: check sink.schema_registry.url and its credentials",
            registry.url,
            response.status()
        )),
    }
}

/// A reqwest error with its causes (its own message leaves out refused, timed out, TLS…).
fn error_chain(e: &reqwest::Error) -> String {
    let mut why = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        why = format!("{why}: {cause}");
        source = cause.source();
    }
    why
}

/// A subject as one URL path segment.
fn url_segment(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for b in subject.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Avro encoding for the Kafka sink: registered schemas per table, and the records.
pub struct AvroRecords {
    registry: Registry,
    subjects: SubjectNames,
    prefix: String,
    tables: FxHashMap<TableId, Registered>,
    /// The transaction metadata records' key and value schemas, once registered.
    transaction: Option<[(ConnectSchema, u32); 2]>,
    /// The JSON payload of the record being encoded (reused).
    json: Vec<u8>,
}

/// A table's schemas as registered: the Connect schemas and their registry ids.
struct Registered {
    table: Arc<TableSchema>,
    key: Option<(ConnectSchema, u32)>,
    envelope: (ConnectSchema, u32),
}

impl AvroRecords {
    /// `prefix`: Debezium's `topic.prefix`, the first part of every schema name.
    pub fn new(config: &SchemaRegistryConfig, prefix: &str) -> Result<AvroRecords, CdcError> {
        Ok(AvroRecords {
            registry: Registry::new(config)?,
            subjects: config.subjects,
            prefix: prefix.to_string(),
            tables: FxHashMap::default(),
            transaction: None,
            json: Vec::with_capacity(4096),
        })
    }

    /// Registers the event's table schemas unless the current ones are registered already.
    pub async fn prepare(&mut self, event: &ChangeEvent, topic: &str) -> Result<(), CdcError> {
        if let Some(r) = self.tables.get_mut(&event.table.id) {
            if Arc::ptr_eq(&r.table, &event.table) {
                return Ok(());
            }
            if *r.table == *event.table {
                // The same schema in a new allocation (a source may rebuild it per transaction):
                // keep this one so the next events match by pointer.
                r.table = event.table.clone();
                return Ok(());
            }
        }
        let table = &event.table;
        let envelope = envelope_schema(table, &self.prefix, Connector::of(&event.source.meta));
        let key = key_schema(table, &self.prefix);
        let subject = |schema: &ConnectSchema, part: &str| subject(self.subjects, topic, schema, part);
        let what = table.id.to_string();
        let key = match key {
            Some(key) => {
                let id = self.registry.register(&subject(&key, "key"), &avro::schema_text(&key), &what).await?;
                Some((key, id))
            }
            None => None,
        };
        let id = self.registry.register(&subject(&envelope, "value"), &avro::schema_text(&envelope), &what).await?;
        self.tables.insert(table.id.clone(), Registered { table: table.clone(), key, envelope: (envelope, id) });
        Ok(())
    }

    /// Appends the Avro key of `event` (whose JSON `payload` writes) in the wire format.
    pub fn write_key(
        &mut self,
        out: &mut Vec<u8>,
        event: &ChangeEvent,
        payload: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), CdcError> {
        let registered = registered(&self.tables, event)?;
        let Some((schema, id)) = registered.key.as_ref() else {
            return Err(CdcError::definite("an Avro key for a table without a key", "report this as a bug"));
        };
        encode(&mut self.json, out, schema, *id, || event.table.id.to_string(), payload)
    }

    /// Appends the Avro envelope of `event` (whose JSON `payload` writes) in the wire format.
    pub fn write_value(
        &mut self,
        out: &mut Vec<u8>,
        event: &ChangeEvent,
        payload: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), CdcError> {
        let (schema, id) = &registered(&self.tables, event)?.envelope;
        encode(&mut self.json, out, schema, *id, || event.table.id.to_string(), payload)
    }

    /// Registers the transaction metadata records' schemas (for `topic`) unless done already.
    pub async fn prepare_transaction(&mut self, topic: &str) -> Result<(), CdcError> {
        if self.transaction.is_some() {
            return Ok(());
        }
        let (key, value) = transaction_schemas();
        let what = "the transaction metadata records";
        let mut ids = [0; 2];
        for (i, (schema, part)) in [(&key, "key"), (&value, "value")].into_iter().enumerate() {
            let subject = subject(self.subjects, topic, schema, part);
            ids[i] = self.registry.register(&subject, &avro::schema_text(schema), what).await?;
        }
        self.transaction = Some([(key, ids[0]), (value, ids[1])]);
        Ok(())
    }

    /// Appends a transaction metadata record's key (`key = true`) or value, whose JSON
    /// `payload` writes, in the wire format.
    pub fn write_transaction(
        &mut self,
        out: &mut Vec<u8>,
        key: bool,
        payload: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), CdcError> {
        let Some([key_schema, value_schema]) = &self.transaction else {
            return Err(CdcError::definite(
                "a transaction record encoded before its Avro schema was registered",
                "report this as a bug",
            ));
        };
        let (schema, id) = if key { key_schema } else { value_schema };
        encode(&mut self.json, out, schema, *id, || "the transaction metadata".to_string(), payload)
    }
}

fn registered<'a>(tables: &'a FxHashMap<TableId, Registered>, event: &ChangeEvent) -> Result<&'a Registered, CdcError> {
    match tables.get(&event.table.id) {
        Some(r) if Arc::ptr_eq(&r.table, &event.table) || *r.table == *event.table => Ok(r),
        _ => Err(CdcError::definite("a change encoded before its Avro schema was registered", "report this as a bug")),
    }
}

/// The subject a key (`part` = "key") or value schema is registered under.
fn subject(names: SubjectNames, topic: &str, schema: &ConnectSchema, part: &str) -> String {
    match names {
        SubjectNames::Topic => format!("{topic}-{part}"),
        SubjectNames::Record => schema.name.clone().unwrap_or_default(),
    }
}

/// The JSON payload (written into `json`, a reused buffer) of a record of `what` re-encoded as
/// Avro under `schema`, after the wire format header.
fn encode(
    json: &mut Vec<u8>,
    out: &mut Vec<u8>,
    schema: &ConnectSchema,
    id: u32,
    what: impl FnOnce() -> String,
    payload: impl FnOnce(&mut Vec<u8>),
) -> Result<(), CdcError> {
    json.clear();
    payload(json);
    avro::write_header(out, id);
    avro::encode(schema, json, out).map_err(|why| {
        CdcError::definite(
            format!("a record of {} does not fit its Avro schema at {why}", what()),
            "report this as a bug, with the table's definition",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, ColumnType};

    #[test]
    fn subjects_by_topic_or_by_record_name() {
        let table = TableSchema {
            id: TableId::new("shop", "orders"),
            columns: vec![Column {
                name: "id".into(),
                source_type: "int".into(),
                kind: ColumnType::Int { bytes: 4, unsigned: false },
                nullable: false,
                charset: None,
                existing_rows_value: None,
            }],
            key: vec![0],
            version: 1,
        };
        let envelope = envelope_schema(&table, "cdc", Connector::MySql);
        let key = key_schema(&table, "cdc").unwrap();
        assert_eq!(subject(SubjectNames::Topic, "all-changes", &envelope, "value"), "all-changes-value");
        assert_eq!(subject(SubjectNames::Record, "all-changes", &envelope, "value"), "cdc.shop.orders.Envelope");
        assert_eq!(subject(SubjectNames::Record, "all-changes", &key, "key"), "cdc.shop.orders.Key");
        assert_eq!(url_segment("a b/c.d-e"), "a%20b%2Fc.d-e");
    }
}
