//! Avro in the Confluent wire format, from the Kafka Connect schemas of [`super::connect`], the
//! way Confluent's `AvroConverter` (AvroData) turns Debezium's records into Avro: the same
//! schema conventions (`connect.name`, `connect.version`, `connect.parameters`, `connect.type`,
//! the decimal logical type, `["null", T]` unions for optional fields, named types defined once
//! and referenced after), so a consumer reading Debezium's Avro topics reads cdc's unchanged
//! (checked against Debezium itself in `tests/pg_debezium.rs` and `tests/mysql_debezium.rs`).
//!
//! Values are encoded from the Debezium JSON payload of the same event, so the value mapping
//! has one home ([`super::debezium`]); this module only re-encodes it under the schema.

use std::collections::HashSet;

use base64::Engine as _;
use serde_json::{Map, Value as Json, json};

use super::connect::{ConnectSchema, Kind};

/// The Avro schema (JSON text) of a Connect schema.
pub fn schema_text(schema: &ConnectSchema) -> String {
    let mut defined = HashSet::new();
    avro_type(schema, &mut defined).to_string()
}

/// The Avro type of a schema, with its optional union when it is optional.
fn avro_type(schema: &ConnectSchema, defined: &mut HashSet<String>) -> Json {
    let base = base_type(schema, defined);
    match (schema.optional, schema.default) {
        (false, _) => base,
        // A union's default must be of its first branch.
        (true, Some(_)) => json!([base, "null"]),
        (true, None) => json!(["null", base]),
    }
}

fn base_type(schema: &ConnectSchema, defined: &mut HashSet<String>) -> Json {
    let primitive = match &schema.kind {
        Kind::Boolean => "boolean",
        Kind::Int16 | Kind::Int32 => "int",
        Kind::Int64 => "long",
        Kind::Float32 => "float",
        Kind::Float64 => "double",
        Kind::String => "string",
        Kind::Bytes => "bytes",
        Kind::Array(items) => {
            let mut array = Map::new();
            array.insert("type".into(), "array".into());
            array.insert("items".into(), avro_type(items, defined));
            return Json::Object(array);
        }
        Kind::Struct(fields) => return record_type(schema, fields, defined),
    };
    let mut props = connect_props(schema);
    if props.is_empty() {
        return primitive.into();
    }
    props.insert("type".into(), primitive.into());
    if schema.name.as_deref() == Some("org.apache.kafka.connect.data.Decimal") {
        let parameter = |key: &str| schema.parameters.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        let scale: u32 = parameter("scale").and_then(|s| s.parse().ok()).unwrap_or(0);
        // AvroData's precision when Connect gives none.
        let precision: u32 = parameter("connect.decimal.precision").and_then(|p| p.parse().ok()).unwrap_or(64);
        props.insert("logicalType".into(), "decimal".into());
        props.insert("precision".into(), precision.into());
        props.insert("scale".into(), scale.into());
    }
    Json::Object(props)
}

/// A record, or a reference to it by full name once it has been defined.
fn record_type(schema: &ConnectSchema, fields: &[(String, ConnectSchema)], defined: &mut HashSet<String>) -> Json {
    let full_name = schema.name.as_deref().unwrap_or("io.confluent.connect.avro.ConnectDefault");
    let (namespace, name) = match full_name.rsplit_once('.') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, full_name),
    };
    let namespace = namespace.map(|n| n.split('.').map(avro_name).collect::<Vec<_>>().join("."));
    let name = avro_name(name);
    let qualified = match &namespace {
        Some(namespace) => format!("{namespace}.{name}"),
        None => name.clone(),
    };
    if !defined.insert(qualified.clone()) {
        return qualified.into();
    }
    let fields: Vec<Json> = fields
        .iter()
        .map(|(field, schema)| {
            let mut f = Map::new();
            f.insert("name".into(), avro_name(field).into());
            f.insert("type".into(), avro_type(schema, defined));
            if schema.optional {
                f.insert("default".into(), schema.default.map_or(Json::Null, Json::from));
            }
            Json::Object(f)
        })
        .collect();
    let mut record = connect_props(schema);
    record.insert("type".into(), "record".into());
    record.insert("name".into(), name.into());
    if let Some(namespace) = namespace {
        record.insert("namespace".into(), namespace.into());
    }
    record.insert("fields".into(), fields.into());
    Json::Object(record)
}

/// The `connect.*` properties AvroData keeps so a Connect schema survives the round trip.
fn connect_props(schema: &ConnectSchema) -> Map<String, Json> {
    let mut props = Map::new();
    if schema.kind == Kind::Int16 {
        props.insert("connect.type".into(), "int16".into());
    }
    if let Some(doc) = schema.doc {
        props.insert("connect.doc".into(), doc.into());
    }
    if let Some(version) = schema.version {
        props.insert("connect.version".into(), version.into());
    }
    if !schema.parameters.is_empty() {
        let parameters: Map<String, Json> =
            schema.parameters.iter().map(|(k, v)| (k.to_string(), Json::from(v.as_str()))).collect();
        props.insert("connect.parameters".into(), parameters.into());
    }
    if let Some(default) = schema.default {
        props.insert("connect.default".into(), default.into());
    }
    if let Some(name) = &schema.name {
        props.insert("connect.name".into(), name.as_str().into());
    }
    props
}

/// An Avro name (`[A-Za-z_][A-Za-z0-9_]*`): other characters become `_`, a leading digit gets
/// a `_` before it. Connect names are kept as they are in `connect.name`.
pub fn avro_name(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Appends the Confluent wire format header: magic byte 0 and the schema id (big-endian).
pub fn write_header(out: &mut Vec<u8>, schema_id: u32) {
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Appends the Avro binary encoding of `value` (a Debezium JSON payload) under `schema`;
/// on a value the schema cannot hold, the path of the field and why.
pub fn encode(schema: &ConnectSchema, value: &Json, out: &mut Vec<u8>) -> Result<(), String> {
    encode_at(schema, value, out, &mut String::new())
}

fn encode_at(schema: &ConnectSchema, value: &Json, out: &mut Vec<u8>, path: &mut String) -> Result<(), String> {
    let value = fitted(schema, value);
    if schema.optional {
        // Union branch: null is first unless the field has a default.
        let null_branch = if schema.default.is_some() { 1 } else { 0 };
        if value.is_null() {
            write_long(out, null_branch);
            return Ok(());
        }
        write_long(out, 1 - null_branch);
    }
    let wrong = |path: &str, what: &str| Err(format!("{}: {what} {value}", if path.is_empty() { "." } else { path }));
    match &schema.kind {
        Kind::Boolean => match value.as_bool() {
            Some(b) => out.push(b as u8),
            None => return wrong(path, "not a boolean:"),
        },
        Kind::Int16 | Kind::Int32 | Kind::Int64 => match (value.as_i64(), value.as_u64()) {
            (Some(i), _) => write_long(out, i),
            // BIGINT UNSIGNED above i64::MAX: the same 64 bits, as Debezium's `long` mode sends them.
            (None, Some(u)) => write_long(out, u as i64),
            _ => return wrong(path, "not an integer:"),
        },
        Kind::Float32 => match float(&value) {
            Some(f) => out.extend_from_slice(&(f as f32).to_le_bytes()),
            None => return wrong(path, "not a number:"),
        },
        Kind::Float64 => match float(&value) {
            Some(f) => out.extend_from_slice(&f.to_le_bytes()),
            None => return wrong(path, "not a number:"),
        },
        Kind::String => match value.as_str() {
            Some(s) => write_bytes(out, s.as_bytes()),
            None => return wrong(path, "not a string:"),
        },
        Kind::Bytes => match value.as_str().and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok()) {
            Some(bytes) => write_bytes(out, &bytes),
            None => return wrong(path, "not base64 bytes:"),
        },
        Kind::Array(items) => {
            let Some(elements) = value.as_array() else { return wrong(path, "not an array:") };
            let mut flat = Vec::new();
            flatten(items, elements, &mut flat);
            if !flat.is_empty() {
                write_long(out, flat.len() as i64);
                let len = path.len();
                for (i, element) in flat.into_iter().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    encode_at(items, element, out, path)?;
                    path.truncate(len);
                }
            }
            write_long(out, 0);
        }
        Kind::Struct(fields) => {
            let Some(object) = value.as_object() else { return wrong(path, "not an object:") };
            let len = path.len();
            for (name, field) in fields {
                path.push('.');
                path.push_str(name);
                encode_at(field, object.get(name).unwrap_or(&Json::Null), out, path)?;
                path.truncate(len);
            }
        }
    }
    Ok(())
}

/// The value to encode under `schema`. A MySQL zero date (sent as text in the JSON format)
/// becomes null, or the epoch in a NOT NULL column, as Debezium encodes it; a missing
/// non-optional value with a default takes the default.
fn fitted<'a>(schema: &ConnectSchema, value: &'a Json) -> std::borrow::Cow<'a, Json> {
    use std::borrow::Cow;
    let temporal = schema.name.as_deref().is_some_and(|n| n.starts_with("io.debezium.time."));
    match (&schema.kind, value) {
        (Kind::Int32 | Kind::Int64, Json::String(_)) if temporal => {
            Cow::Owned(if schema.optional { Json::Null } else { Json::from(0) })
        }
        (_, Json::Null) if !schema.optional && schema.default.is_some() => {
            Cow::Owned(schema.default.map_or(Json::Null, Json::from))
        }
        _ => Cow::Borrowed(value),
    }
}

/// Elements of a (possibly multi-dimensional) array, row-major: Avro arrays here have one
/// dimension, as Debezium declares them.
fn flatten<'a>(items: &ConnectSchema, elements: &'a [Json], out: &mut Vec<&'a Json>) {
    for element in elements {
        match element {
            Json::Array(inner) if !matches!(items.kind, Kind::Array(_)) => flatten(items, inner, out),
            _ => out.push(element),
        }
    }
}

fn float(value: &Json) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Avro `int` and `long`: zig-zag, then base-128 little-endian varint.
fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(kind: Kind, optional: bool) -> ConnectSchema {
        ConnectSchema { kind, optional, name: None, version: None, doc: None, parameters: Vec::new(), default: None }
    }

    #[test]
    fn longs_are_zigzag_varints() {
        let cases: [(i64, &[u8]); 6] = [
            (0, &[0]),
            (-1, &[1]),
            (1, &[2]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i64::MIN, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ];
        for (n, bytes) in cases {
            let mut out = Vec::new();
            write_long(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
    }

    #[test]
    fn optional_values_are_unions_with_null_first() {
        let schema = of(Kind::String, true);
        let mut out = Vec::new();
        encode(&schema, &json!("ab"), &mut out).unwrap();
        encode(&schema, &Json::Null, &mut out).unwrap();
        assert_eq!(out, [2, 4, b'a', b'b', 0]);
        assert_eq!(schema_text(&schema), r#"["null","string"]"#);
    }

    #[test]
    fn multi_dimensional_arrays_are_flattened_and_bad_values_named() {
        let schema =
            of(Kind::Struct(vec![("a".into(), of(Kind::Array(Box::new(of(Kind::Int32, true))), false))]), false);
        let mut out = Vec::new();
        encode(&schema, &json!({"a": [[1, 2], [null, 3]]}), &mut out).unwrap();
        assert_eq!(out, [8, 2, 2, 2, 4, 0, 2, 6, 0]);
        let err = encode(&schema, &json!({"a": ["x"]}), &mut Vec::new()).unwrap_err();
        assert_eq!(err, r#".a[0]: not an integer: "x""#);
    }

    /// The transaction records' schemas as Debezium 3.6 declares them (`SchemaFactory`) and
    /// Confluent's AvroData 7.0 converts them.
    #[test]
    fn transaction_schemas_equal_avro_datas() {
        let (key, value) = super::super::connect::transaction_schemas();
        let parse = |s: &str| serde_json::from_str::<Json>(s).unwrap();
        assert_eq!(
            parse(&schema_text(&key)),
            parse(
                r#"{"type":"record","name":"TransactionMetadataKey","namespace":"io.debezium.connector.common","fields":[{"name":"id","type":"string"}],"connect.version":1,"connect.name":"io.debezium.connector.common.TransactionMetadataKey"}"#
            )
        );
        assert_eq!(
            parse(&schema_text(&value)),
            parse(
                r#"{"type":"record","name":"TransactionMetadataValue","namespace":"io.debezium.connector.common","fields":[{"name":"status","type":"string"},{"name":"id","type":"string"},{"name":"event_count","type":["null","long"],"default":null},{"name":"data_collections","type":["null",{"type":"array","items":["null",{"type":"record","name":"collection","namespace":"event","fields":[{"name":"data_collection","type":"string"},{"name":"event_count","type":"long"}],"connect.version":1,"connect.name":"event.collection"}]}],"default":null},{"name":"ts_ms","type":"long"}],"connect.version":1,"connect.name":"io.debezium.connector.common.TransactionMetadataValue"}"#
            )
        );
    }

    #[test]
    fn names_are_made_valid_for_avro() {
        assert_eq!(avro_name("order-items"), "order_items");
        assert_eq!(avro_name("1st"), "_1st");
        assert_eq!(avro_name("été"), "_t_");
    }
}
