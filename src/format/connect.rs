//! Kafka Connect schemas of the Debezium envelope, as Debezium 3 declares them by default:
//! what `JsonConverter` with `schemas.enable=true` puts in each record's `schema` part.
//!
//! The mapping mirrors the value encodings of [`super::debezium::write_value`] (checked
//! against Debezium itself in `tests/pg_debezium.rs`), so a record's payload always fits the
//! schema sent with it.

use std::io::Write;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::model::{ChangeEvent, Column, ColumnType, SourceMeta, TableId, TableSchema};

use super::debezium::{time_in_millis, write_str};

/// A Kafka Connect schema type.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Boolean,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bytes,
    Array(Box<ConnectSchema>),
    Struct(Vec<(String, ConnectSchema)>),
}

/// A Kafka Connect schema: a type with its optional name, version, parameters and default.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectSchema {
    pub kind: Kind,
    pub optional: bool,
    pub name: Option<String>,
    pub version: Option<u32>,
    pub doc: Option<&'static str>,
    pub parameters: Vec<(&'static str, String)>,
    pub default: Option<&'static str>,
}

impl ConnectSchema {
    fn of(kind: Kind, optional: bool) -> ConnectSchema {
        ConnectSchema { kind, optional, name: None, version: None, doc: None, parameters: Vec::new(), default: None }
    }

    /// A logical type: a named schema of version 1 (Debezium's `io.debezium.time.Date`, …).
    fn named(kind: Kind, optional: bool, name: &str) -> ConnectSchema {
        ConnectSchema { name: Some(name.to_string()), version: Some(1), ..ConnectSchema::of(kind, optional) }
    }

    fn with_parameter(mut self, key: &'static str, value: impl ToString) -> ConnectSchema {
        self.parameters.push((key, value.to_string()));
        self
    }

    fn field(name: &str, schema: ConnectSchema) -> (String, ConnectSchema) {
        (name.to_string(), schema)
    }

    /// Appends the schema in `JsonConverter`'s layout, with `"field"` when it is a struct field.
    pub fn write_json(&self, out: &mut Vec<u8>, field: Option<&str>) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(self.type_name().as_bytes());
        out.push(b'"');
        match &self.kind {
            Kind::Struct(fields) => {
                out.extend_from_slice(b",\"fields\":[");
                for (i, (name, schema)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    schema.write_json(out, Some(name));
                }
                out.push(b']');
            }
            Kind::Array(items) => {
                out.extend_from_slice(b",\"items\":");
                items.write_json(out, None);
            }
            _ => {}
        }
        out.extend_from_slice(if self.optional { b",\"optional\":true" } else { b",\"optional\":false" });
        if let Some(name) = &self.name {
            out.extend_from_slice(b",\"name\":");
            write_str(out, name);
        }
        if let Some(version) = self.version {
            let _ = write!(out, ",\"version\":{version}");
        }
        if let Some(doc) = self.doc {
            out.extend_from_slice(b",\"doc\":");
            write_str(out, doc);
        }
        if !self.parameters.is_empty() {
            out.extend_from_slice(b",\"parameters\":{");
            for (i, (key, value)) in self.parameters.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_str(out, value);
            }
            out.push(b'}');
        }
        if let Some(default) = self.default {
            out.extend_from_slice(b",\"default\":");
            write_str(out, default);
        }
        if let Some(field) = field {
            out.extend_from_slice(b",\"field\":");
            write_str(out, field);
        }
        out.push(b'}');
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Boolean => "boolean",
            Kind::Int16 => "int16",
            Kind::Int32 => "int32",
            Kind::Int64 => "int64",
            Kind::Float32 => "float",
            Kind::Float64 => "double",
            Kind::String => "string",
            Kind::Bytes => "bytes",
            Kind::Array(_) => "array",
            Kind::Struct(_) => "struct",
        }
    }
}

/// Which Debezium connector's `source` block the envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connector {
    MySql,
    Postgres,
}

impl Connector {
    /// The connector whose `source` block describes changes from this source.
    pub fn of(meta: &SourceMeta) -> Connector {
        match meta {
            SourceMeta::MySql { .. } => Connector::MySql,
            SourceMeta::Postgres { .. } => Connector::Postgres,
        }
    }
}

/// Debezium's schema name prefix of a table: `<prefix>.<db or schema>.<table>`.
pub fn record_name(prefix: &str, table: &TableId) -> String {
    format!("{prefix}.{}.{}", table.namespace, table.name)
}

/// The key schema: the key columns, `<record>.Key`. None for a table without a key.
pub fn key_schema(table: &TableSchema, prefix: &str) -> Option<ConnectSchema> {
    if table.key.is_empty() {
        return None;
    }
    let fields = table.key_columns().map(|c| (c.name.clone(), column_schema(c))).collect();
    Some(ConnectSchema {
        name: Some(format!("{}.Key", record_name(prefix, &table.id))),
        ..ConnectSchema::of(Kind::Struct(fields), false)
    })
}

/// The envelope schema, `<record>.Envelope` version 2, in Debezium's field order.
pub fn envelope_schema(table: &TableSchema, prefix: &str, connector: Connector) -> ConnectSchema {
    let record = record_name(prefix, &table.id);
    let row = ConnectSchema {
        name: Some(format!("{record}.Value")),
        ..ConnectSchema::of(
            Kind::Struct(table.columns.iter().map(|c| (c.name.clone(), column_schema(c))).collect()),
            true,
        )
    };
    let int64 = |optional| ConnectSchema::of(Kind::Int64, optional);
    let transaction = ConnectSchema {
        name: Some("event.block".to_string()),
        version: Some(1),
        ..ConnectSchema::of(
            Kind::Struct(vec![
                ConnectSchema::field("id", ConnectSchema::of(Kind::String, false)),
                ConnectSchema::field("total_order", int64(false)),
                ConnectSchema::field("data_collection_order", int64(false)),
            ]),
            true,
        )
    };
    ConnectSchema {
        name: Some(format!("{record}.Envelope")),
        version: Some(2),
        ..ConnectSchema::of(
            Kind::Struct(vec![
                ConnectSchema::field("before", row.clone()),
                ConnectSchema::field("after", row),
                ConnectSchema::field("source", source_schema(connector)),
                ConnectSchema::field("transaction", transaction),
                ConnectSchema::field("op", ConnectSchema::of(Kind::String, false)),
                ConnectSchema::field("ts_ms", int64(true)),
                ConnectSchema::field("ts_us", int64(true)),
                ConnectSchema::field("ts_ns", int64(true)),
            ]),
            false,
        )
    }
}

/// The key and value schemas of the transaction metadata records on `<prefix>.transaction`
/// (`write_transaction_key` / `write_transaction_record`), as Debezium declares them.
pub fn transaction_schemas() -> (ConnectSchema, ConnectSchema) {
    let string = || ConnectSchema::of(Kind::String, false);
    let key = ConnectSchema::named(
        Kind::Struct(vec![ConnectSchema::field("id", string())]),
        false,
        "io.debezium.connector.common.TransactionMetadataKey",
    );
    let collection = ConnectSchema::named(
        Kind::Struct(vec![
            ConnectSchema::field("data_collection", string()),
            ConnectSchema::field("event_count", ConnectSchema::of(Kind::Int64, false)),
        ]),
        true,
        "event.collection",
    );
    let value = ConnectSchema::named(
        Kind::Struct(vec![
            ConnectSchema::field("status", string()),
            ConnectSchema::field("id", string()),
            ConnectSchema::field("event_count", ConnectSchema::of(Kind::Int64, true)),
            ConnectSchema::field("data_collections", ConnectSchema::of(Kind::Array(Box::new(collection)), true)),
            ConnectSchema::field("ts_ms", ConnectSchema::of(Kind::Int64, false)),
        ]),
        false,
        "io.debezium.connector.common.TransactionMetadataValue",
    );
    (key, value)
}

/// The `source` block's schema of each connector.
fn source_schema(connector: Connector) -> ConnectSchema {
    let string = |optional| ConnectSchema::of(Kind::String, optional);
    let int64 = |optional| ConnectSchema::of(Kind::Int64, optional);
    let snapshot = ConnectSchema {
        default: Some("false"),
        ..ConnectSchema::named(Kind::String, true, "io.debezium.data.Enum").with_parameter(
            "allowed",
            "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental",
        )
    };
    let mut fields = vec![
        ConnectSchema::field("version", string(false)),
        ConnectSchema::field("connector", string(false)),
        ConnectSchema::field("name", string(false)),
        ConnectSchema::field("ts_ms", int64(false)),
        ConnectSchema::field("snapshot", snapshot),
        ConnectSchema::field("db", string(false)),
        ConnectSchema::field("sequence", string(true)),
        ConnectSchema::field("ts_us", int64(true)),
        ConnectSchema::field("ts_ns", int64(true)),
    ];
    let name = match connector {
        Connector::Postgres => {
            fields.extend([
                ConnectSchema::field("schema", string(false)),
                ConnectSchema::field("table", string(false)),
                ConnectSchema::field("txId", int64(true)),
                ConnectSchema::field("lsn", int64(true)),
                ConnectSchema::field("xmin", int64(true)),
                ConnectSchema::field("origin", string(true)),
                ConnectSchema::field("origin_lsn", int64(true)),
            ]);
            "io.debezium.connector.postgresql.Source"
        }
        Connector::MySql => {
            fields.extend([
                ConnectSchema::field("table", string(true)),
                ConnectSchema::field("server_id", int64(false)),
                ConnectSchema::field("gtid", string(true)),
                ConnectSchema::field("file", string(false)),
                ConnectSchema::field("pos", int64(false)),
                ConnectSchema::field("row", ConnectSchema::of(Kind::Int32, false)),
                ConnectSchema::field("thread", int64(true)),
                ConnectSchema::field("query", string(true)),
            ]);
            "io.debezium.connector.mysql.Source"
        }
    };
    ConnectSchema::named(Kind::Struct(fields), false, name)
}

/// Records in `JsonConverter`'s `{"schema": …, "payload": …}` form (`schemas.enable=true`).
/// Each table's key and envelope schemas are rendered once per table schema.
pub struct JsonSchemas {
    prefix: String,
    tables: FxHashMap<TableId, Rendered>,
    /// The transaction metadata records' key and value schemas, rendered.
    transaction: (Vec<u8>, Vec<u8>),
}

struct Rendered {
    table: Arc<TableSchema>,
    key: Vec<u8>,
    envelope: Vec<u8>,
}

impl JsonSchemas {
    /// `prefix`: Debezium's `topic.prefix`, the first part of every schema name.
    pub fn new(prefix: &str) -> JsonSchemas {
        let (key, value) = transaction_schemas();
        let mut transaction = (Vec::new(), Vec::new());
        key.write_json(&mut transaction.0, None);
        value.write_json(&mut transaction.1, None);
        JsonSchemas { prefix: prefix.to_string(), tables: FxHashMap::default(), transaction }
    }

    fn rendered(&mut self, event: &ChangeEvent) -> &Rendered {
        let current = self
            .tables
            .get(&event.table.id)
            .is_some_and(|r| Arc::ptr_eq(&r.table, &event.table) || *r.table == *event.table);
        if !current {
            let connector = Connector::of(&event.source.meta);
            let mut key = Vec::new();
            if let Some(schema) = key_schema(&event.table, &self.prefix) {
                schema.write_json(&mut key, None);
            }
            let mut envelope = Vec::new();
            envelope_schema(&event.table, &self.prefix, connector).write_json(&mut envelope, None);
            self.tables.insert(event.table.id.clone(), Rendered { table: event.table.clone(), key, envelope });
        }
        // Inserted just above when missing.
        &self.tables[&event.table.id]
    }

    /// Appends `{"schema":<key schema>,"payload":<payload>}` for the event's table.
    pub fn write_key(&mut self, out: &mut Vec<u8>, event: &ChangeEvent, payload: impl FnOnce(&mut Vec<u8>)) {
        let schema = &self.rendered(event).key;
        wrap(out, schema, payload);
    }

    /// Appends `{"schema":<envelope schema>,"payload":<payload>}` for the event's table.
    pub fn write_value(&mut self, out: &mut Vec<u8>, event: &ChangeEvent, payload: impl FnOnce(&mut Vec<u8>)) {
        let schema = &self.rendered(event).envelope;
        wrap(out, schema, payload);
    }

    /// Appends a transaction metadata record's key (`key = true`) or value with its schema.
    pub fn write_transaction(&self, out: &mut Vec<u8>, key: bool, payload: impl FnOnce(&mut Vec<u8>)) {
        wrap(out, if key { &self.transaction.0 } else { &self.transaction.1 }, payload);
    }
}

fn wrap(out: &mut Vec<u8>, schema: &[u8], payload: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"{\"schema\":");
    out.extend_from_slice(schema);
    out.extend_from_slice(b",\"payload\":");
    payload(out);
    out.push(b'}');
}

/// The schema of one column's values, matching how `write_value` encodes them.
pub fn column_schema(column: &Column) -> ConnectSchema {
    kind_schema(column, &column.kind, column.nullable)
}

fn kind_schema(column: &Column, kind: &ColumnType, optional: bool) -> ConnectSchema {
    use ConnectSchema as S;
    match kind {
        ColumnType::Bool => S::of(Kind::Boolean, optional),
        // MySQL's unsigned types take the next wider signed type (BIGINT UNSIGNED stays int64).
        ColumnType::Int { bytes, unsigned } => S::of(
            match (bytes, unsigned) {
                (1, _) | (2, false) => Kind::Int16,
                (2, true) | (3, _) | (4, false) => Kind::Int32,
                _ => Kind::Int64,
            },
            optional,
        ),
        ColumnType::Float => S::of(Kind::Float32, optional),
        ColumnType::Double => S::of(Kind::Float64, optional),
        ColumnType::Decimal { scale: Some(scale), precision } => {
            let decimal =
                S::named(Kind::Bytes, optional, "org.apache.kafka.connect.data.Decimal").with_parameter("scale", scale);
            match precision {
                Some(p) => decimal.with_parameter("connect.decimal.precision", p),
                None => decimal,
            }
        }
        ColumnType::Decimal { scale: None, .. } => S {
            doc: Some("Variable scaled decimal"),
            ..S::named(
                Kind::Struct(vec![
                    S::field("scale", S::of(Kind::Int32, false)),
                    S::field("value", S::of(Kind::Bytes, false)),
                ]),
                optional,
                "io.debezium.data.VariableScaleDecimal",
            )
        },
        ColumnType::Text { .. } | ColumnType::Other => S::of(Kind::String, optional),
        ColumnType::Bytes { .. } => S::of(Kind::Bytes, optional),
        ColumnType::Date => S::named(Kind::Int32, optional, "io.debezium.time.Date"),
        ColumnType::Time { .. } if time_in_millis(column) => S::named(Kind::Int32, optional, "io.debezium.time.Time"),
        ColumnType::Time { .. } => S::named(Kind::Int64, optional, "io.debezium.time.MicroTime"),
        ColumnType::TimeTz { .. } => S::named(Kind::String, optional, "io.debezium.time.ZonedTime"),
        ColumnType::DateTime { fsp } if *fsp <= 3 => S::named(Kind::Int64, optional, "io.debezium.time.Timestamp"),
        ColumnType::DateTime { .. } => S::named(Kind::Int64, optional, "io.debezium.time.MicroTimestamp"),
        ColumnType::Timestamp { .. } => S::named(Kind::String, optional, "io.debezium.time.ZonedTimestamp"),
        ColumnType::Year => S::named(Kind::Int32, optional, "io.debezium.time.Year"),
        ColumnType::Interval => S::named(Kind::Int64, optional, "io.debezium.time.MicroDuration"),
        ColumnType::Json => S::named(Kind::String, optional, "io.debezium.data.Json"),
        ColumnType::Uuid => S::named(Kind::String, optional, "io.debezium.data.Uuid"),
        ColumnType::Enum { values } => {
            S::named(Kind::String, optional, "io.debezium.data.Enum").with_parameter("allowed", values.join(","))
        }
        ColumnType::Set { values } => {
            S::named(Kind::String, optional, "io.debezium.data.EnumSet").with_parameter("allowed", values.join(","))
        }
        ColumnType::Bit { len: 1 } => S::of(Kind::Boolean, optional),
        // A PostgreSQL varbit without a length declares the largest.
        ColumnType::Bit { len } => S::named(Kind::Bytes, optional, "io.debezium.data.Bits")
            .with_parameter("length", if *len == 0 { i32::MAX as u32 } else { *len }),
        ColumnType::Array { element } => S::of(Kind::Array(Box::new(kind_schema(column, element, true))), optional),
        ColumnType::Geometry if column.source_type == "point" => S {
            doc: Some("Geometry (POINT)"),
            ..S::named(
                Kind::Struct(vec![
                    S::field("x", S::of(Kind::Float64, false)),
                    S::field("y", S::of(Kind::Float64, false)),
                    S::field("wkb", S::of(Kind::Bytes, true)),
                    S::field("srid", S::of(Kind::Int32, true)),
                ]),
                optional,
                "io.debezium.data.geometry.Point",
            )
        },
        ColumnType::Geometry => S {
            doc: Some("Geometry"),
            ..S::named(
                Kind::Struct(vec![
                    S::field("wkb", S::of(Kind::Bytes, false)),
                    S::field("srid", S::of(Kind::Int32, true)),
                ]),
                optional,
                "io.debezium.data.geometry.Geometry",
            )
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, source_type: &str, kind: ColumnType, nullable: bool) -> Column {
        Column::new(name, source_type, kind, nullable)
    }

    #[test]
    fn json_layout_follows_json_converter() {
        let c = column("n", "numeric(38,10)", ColumnType::Decimal { precision: Some(38), scale: Some(10) }, true);
        let mut out = Vec::new();
        column_schema(&c).write_json(&mut out, Some("n"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"10","connect.decimal.precision":"38"},"field":"n"}"#
        );
    }

    /// The transaction records' schemas as Debezium 3.6 declares them (JsonConverter's layout).
    #[test]
    fn transaction_schemas_equal_debeziums() {
        let (key, value) = transaction_schemas();
        let render = |s: &ConnectSchema| {
            let mut out = Vec::new();
            s.write_json(&mut out, None);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            render(&key),
            r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1}"#
        );
        assert_eq!(
            render(&value),
            r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":true,"field":"event_count"},{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},{"type":"int64","optional":false,"field":"event_count"}],"optional":true,"name":"event.collection","version":1},"optional":true,"field":"data_collections"},{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1}"#
        );
    }

    #[test]
    fn mysql_unsigned_integers_widen() {
        let kinds: Vec<&str> = [(1, true), (2, false), (2, true), (3, true), (4, false), (4, true), (8, true)]
            .into_iter()
            .map(|(bytes, unsigned)| {
                column_schema(&column("i", "INT", ColumnType::Int { bytes, unsigned }, false)).type_name()
            })
            .collect();
        assert_eq!(kinds, ["int16", "int16", "int32", "int32", "int32", "int64", "int64"]);
    }
}
