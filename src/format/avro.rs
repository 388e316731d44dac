//! Avro in the Confluent wire format, from the Kafka Connect schemas of [`super::connect`], the
//! way Confluent's `AvroConverter` (AvroData) turns Debezium's records into Avro: the same
//! schema conventions (`connect.name`, `connect.version`, `connect.parameters`, `connect.type`,
//! the decimal logical type, `["null", T]` unions for optional fields, named types defined once
//! and referenced after), so a consumer reading Debezium's Avro topics reads cdc's unchanged
//! (checked against Debezium itself in `tests/pg_debezium.rs` and `tests/mysql_debezium.rs`).
//!
//! Values are encoded from the Debezium JSON payload of the same event, so the value mapping
//! has one home ([`super::debezium`]); this module only re-encodes it under the schema.

use std::borrow::Cow;
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

/// Appends the Avro binary encoding of `json` (a Debezium JSON payload) under `schema`; on a
/// value the schema cannot hold, the path of the field and why.
///
/// cdc writes its JSON members in schema order, so one pass transcodes them (about as fast as
/// writing the JSON); a payload that is not in schema order, or a value that does not fit, goes
/// through the tree path, which finds members by name and names the field on error.
pub fn encode(schema: &ConnectSchema, json: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let json = std::str::from_utf8(json).map_err(|e| format!("payload JSON: {e}"))?;
    let start = out.len();
    let mut stream = Parser::new(json);
    if stream.transcode(schema, out).is_ok() && stream.peek().is_none() {
        return Ok(());
    }
    out.truncate(start);
    let value = Parser::new(json).document()?;
    encode_at(schema, &value, out, &mut String::new())
}

fn encode_at(schema: &ConnectSchema, value: &J<'_>, out: &mut Vec<u8>, path: &mut String) -> Result<(), String> {
    let value = fitted(schema, value);
    if schema.optional {
        if matches!(value, J::Null) {
            write_long(out, null_branch(schema));
            return Ok(());
        }
        write_long(out, 1 - null_branch(schema));
    }
    let wrong = |path: &str, what: &str| {
        Err(format!("{}: {what} {}", if path.is_empty() { "." } else { path }, value.describe()))
    };
    match (&schema.kind, value) {
        (Kind::Boolean, J::Bool(b)) => out.push(*b as u8),
        (Kind::Int16 | Kind::Int32 | Kind::Int64, J::Num(n)) => {
            if !write_integer(out, n) {
                return wrong(path, "not an integer:");
            }
        }
        (kind @ (Kind::Float32 | Kind::Float64), v) => match v.float() {
            Some(f) => write_float(out, kind, f),
            None => return wrong(path, "not a number:"),
        },
        (Kind::String, J::Str(s)) => write_bytes(out, s.as_bytes()),
        (Kind::Bytes, J::Str(s)) => match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
            Ok(bytes) => write_bytes(out, &bytes),
            Err(_) => return wrong(path, "not base64 bytes:"),
        },
        (Kind::Array(items), J::Arr(elements)) => {
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
        (Kind::Struct(fields), J::Obj(members)) => {
            let len = path.len();
            // Members mostly come in field order: look from where the last one was found.
            let mut next = 0;
            for (name, field) in fields {
                path.push('.');
                path.push_str(name);
                let found = (next..members.len()).chain(0..next).find(|&i| members[i].0 == name.as_str());
                let member = match found {
                    Some(i) => {
                        next = i + 1;
                        &members[i].1
                    }
                    None => &J::Null,
                };
                encode_at(field, member, out, path)?;
                path.truncate(len);
            }
        }
        (Kind::Boolean, _) => return wrong(path, "not a boolean:"),
        (Kind::Int16 | Kind::Int32 | Kind::Int64, _) => return wrong(path, "not an integer:"),
        (Kind::String, _) => return wrong(path, "not a string:"),
        (Kind::Bytes, _) => return wrong(path, "not base64 bytes:"),
        (Kind::Array(_), _) => return wrong(path, "not an array:"),
        (Kind::Struct(_), _) => return wrong(path, "not an object:"),
    }
    Ok(())
}

/// The value to encode under `schema`. A MySQL zero date (sent as text in the JSON format)
/// becomes null, or the epoch in a NOT NULL column, as Debezium encodes it.
fn fitted<'v, 'a>(schema: &ConnectSchema, value: &'v J<'a>) -> &'v J<'a> {
    static NULL: J<'static> = J::Null;
    static ZERO: J<'static> = J::Num("0");
    match value {
        J::Str(_) if is_temporal_number(schema) => {
            if schema.optional {
                &NULL
            } else {
                &ZERO
            }
        }
        _ => value,
    }
}

/// A Debezium time type carried as a number (`io.debezium.time.Date`, `…Timestamp`, …): text
/// there is a MySQL zero date.
fn is_temporal_number(schema: &ConnectSchema) -> bool {
    matches!(schema.kind, Kind::Int32 | Kind::Int64)
        && schema.name.as_deref().is_some_and(|n| n.starts_with("io.debezium.time."))
}

/// The union branch of null in an optional field: first, unless the field has a default.
fn null_branch(schema: &ConnectSchema) -> i64 {
    if schema.default.is_some() { 1 } else { 0 }
}

/// Writes an integer given as JSON number text; false when it is not one.
fn write_integer(out: &mut Vec<u8>, n: &str) -> bool {
    match (n.parse::<i64>(), n.parse::<u64>()) {
        (Ok(i), _) => write_long(out, i),
        // BIGINT UNSIGNED above i64::MAX: the same 64 bits, as Debezium's `long` mode sends them.
        (_, Ok(u)) => write_long(out, u as i64),
        _ => return false,
    }
    true
}

/// Writes `f` as an Avro float (`Float32`) or double.
fn write_float(out: &mut Vec<u8>, kind: &Kind, f: f64) {
    match kind {
        Kind::Float32 => out.extend_from_slice(&(f as f32).to_le_bytes()),
        _ => out.extend_from_slice(&f.to_le_bytes()),
    }
}

/// Elements of a (possibly multi-dimensional) array, row-major: Avro arrays here have one
/// dimension, as Debezium declares them.
fn flatten<'v, 'a>(items: &ConnectSchema, elements: &'v [J<'a>], out: &mut Vec<&'v J<'a>>) {
    for element in elements {
        match element {
            J::Arr(inner) if !matches!(items.kind, Kind::Array(_)) => flatten(items, inner, out),
            _ => out.push(element),
        }
    }
}

/// A JSON value borrowed from the payload bytes: numbers stay text until the schema says
/// what they are, strings are copied only when they hold escapes, objects keep their order.
/// (Parsing into `serde_json::Value` made Avro 13× slower than JSON; this is the whole cost
/// now, see docs/benchmarks.md.)
#[derive(Debug, PartialEq)]
enum J<'a> {
    Null,
    Bool(bool),
    Num(&'a str),
    Str(Cow<'a, str>),
    Arr(Vec<J<'a>>),
    Obj(Vec<(Cow<'a, str>, J<'a>)>),
}

impl J<'_> {
    fn float(&self) -> Option<f64> {
        match self {
            J::Num(n) => n.parse().ok(),
            J::Str(s) => match s.as_ref() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                _ => None,
            },
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            J::Null => "null".into(),
            J::Bool(b) => b.to_string(),
            J::Num(n) => n.to_string(),
            J::Str(s) => format!("{s:?}"),
            J::Arr(_) => "an array".into(),
            J::Obj(_) => "an object".into(),
        }
    }
}

/// A strict JSON parser for the payloads cdc itself writes.
struct Parser<'a> {
    /// The document, validated as UTF-8 once: strings are slices of it.
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser { text, bytes: text.as_bytes(), at: 0 }
    }

    fn document(mut self) -> Result<J<'a>, String> {
        let value = self.value(0)?;
        self.skip_space();
        if self.at != self.bytes.len() {
            return Err(self.error("trailing bytes"));
        }
        Ok(value)
    }

    fn error(&self, what: &str) -> String {
        format!("payload JSON: {what} at byte {}", self.at)
    }

    fn skip_space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.bytes.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes.get(self.at).copied()
    }

    /// Transcodes the next value under `schema` in one pass. `Err` when the members are not in
    /// the schema's order or a value does not fit: the caller then takes the tree path.
    fn transcode(&mut self, schema: &ConnectSchema, out: &mut Vec<u8>) -> Result<(), ()> {
        let next = self.peek();
        // A MySQL zero date: text in JSON; null, or 0 when NOT NULL (see `fitted`).
        if next == Some(b'"') && is_temporal_number(schema) {
            self.string().map_err(drop)?;
            write_long(out, if schema.optional { null_branch(schema) } else { 0 });
            return Ok(());
        }
        if schema.optional {
            if next == Some(b'n') {
                self.literal(b"null", J::Null).map_err(drop)?;
                write_long(out, null_branch(schema));
                return Ok(());
            }
            write_long(out, 1 - null_branch(schema));
        }
        match &schema.kind {
            Kind::Boolean => match self.value(0) {
                Ok(J::Bool(b)) => out.push(b as u8),
                _ => return Err(()),
            },
            Kind::Int16 | Kind::Int32 | Kind::Int64 => {
                if !write_integer(out, self.number().ok_or(())?) {
                    return Err(());
                }
            }
            kind @ (Kind::Float32 | Kind::Float64) => {
                let f = match next {
                    Some(b'"') => J::Str(self.string().map_err(drop)?).float(),
                    _ => self.number().and_then(|n| n.parse().ok()),
                };
                write_float(out, kind, f.ok_or(())?);
            }
            Kind::String => {
                let text = self.string().map_err(drop)?;
                write_bytes(out, text.as_bytes());
            }
            Kind::Bytes => {
                let text = self.string().map_err(drop)?;
                let bytes = base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).map_err(drop)?;
                write_bytes(out, &bytes);
            }
            Kind::Array(items) => {
                let (mut body, mut count) = (Vec::new(), 0i64);
                self.transcode_elements(items, &mut body, &mut count)?;
                if count > 0 {
                    write_long(out, count);
                    out.extend_from_slice(&body);
                }
                write_long(out, 0);
            }
            Kind::Struct(fields) => {
                if !self.eat(b'{') {
                    return Err(());
                }
                let mut first = true;
                for (name, field) in fields {
                    // Members left out at the end are null.
                    if self.peek() == Some(b'}') {
                        if !field.optional {
                            return Err(());
                        }
                        write_long(out, null_branch(field));
                        continue;
                    }
                    if !first && !self.eat(b',') {
                        return Err(());
                    }
                    first = false;
                    self.skip_space();
                    if self.string().map_err(drop)? != name.as_str() || !self.eat(b':') {
                        return Err(());
                    }
                    self.transcode(field, out)?;
                }
                if !self.eat(b'}') {
                    return Err(());
                }
            }
        }
        Ok(())
    }

    /// The elements of a JSON array under `items`, flattening nested arrays (see `flatten`).
    fn transcode_elements(&mut self, items: &ConnectSchema, body: &mut Vec<u8>, count: &mut i64) -> Result<(), ()> {
        if !self.eat(b'[') {
            return Err(());
        }
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            if self.peek() == Some(b'[') && !matches!(items.kind, Kind::Array(_)) {
                self.transcode_elements(items, body, count)?;
            } else {
                self.transcode(items, body)?;
                *count += 1;
            }
            if self.eat(b']') {
                return Ok(());
            }
            if !self.eat(b',') {
                return Err(());
            }
        }
    }

    fn number(&mut self) -> Option<&'a str> {
        self.skip_space();
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')) {
            self.at += 1;
        }
        Some(&self.text[start..self.at]).filter(|n| !n.is_empty())
    }

    fn literal(&mut self, text: &[u8], value: J<'a>) -> Result<J<'a>, String> {
        if self.bytes[self.at..].starts_with(text) {
            self.at += text.len();
            Ok(value)
        } else {
            Err(self.error("unexpected literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<J<'a>, String> {
        if depth > 64 {
            return Err(self.error("nested too deep"));
        }
        self.skip_space();
        match self.bytes.get(self.at) {
            Some(b'n') => self.literal(b"null", J::Null),
            Some(b't') => self.literal(b"true", J::Bool(true)),
            Some(b'f') => self.literal(b"false", J::Bool(false)),
            Some(b'"') => Ok(J::Str(self.string()?)),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(self.error("expected , or ]"));
                        }
                    }
                }
                Ok(J::Arr(items))
            }
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.skip_space();
                        let key = self.string()?;
                        if !self.eat(b':') {
                            return Err(self.error("expected :"));
                        }
                        members.push((key, self.value(depth + 1)?));
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(self.error("expected , or }"));
                        }
                    }
                }
                Ok(J::Obj(members))
            }
            Some(b'-' | b'0'..=b'9') => self.number().map(J::Num).ok_or_else(|| self.error("bad number")),
            _ => Err(self.error("unexpected byte")),
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.at + 1;
        let mut end = start;
        let mut escaped = false;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.bytes[end..]) {
                None => return Err(self.error("unterminated string")),
                Some(i) if self.bytes[end + i] == b'"' => {
                    end += i;
                    break;
                }
                Some(i) => {
                    escaped = true;
                    end += i + 2;
                    if end > self.bytes.len() {
                        return Err(self.error("unterminated string"));
                    }
                }
            }
        }
        self.at = end + 1;
        if !escaped {
            // Quotes are ASCII, so both ends fall on character boundaries.
            return Ok(Cow::Borrowed(&self.text[start..end]));
        }
        // Escapes are rare (quotes, control characters in text): let serde_json undo them.
        serde_json::from_slice::<String>(&self.bytes[start - 1..self.at])
            .map(Cow::Owned)
            .map_err(|e| self.error(&format!("bad string escape ({e})")))
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
        encode(&schema, br#""ab""#, &mut out).unwrap();
        encode(&schema, b"null", &mut out).unwrap();
        assert_eq!(out, [2, 4, b'a', b'b', 0]);
        assert_eq!(schema_text(&schema), r#"["null","string"]"#);
    }

    #[test]
    fn multi_dimensional_arrays_are_flattened_and_bad_values_named() {
        let schema =
            of(Kind::Struct(vec![("a".into(), of(Kind::Array(Box::new(of(Kind::Int32, true))), false))]), false);
        let mut out = Vec::new();
        encode(&schema, br#"{"a": [[1, 2], [null, 3]]}"#, &mut out).unwrap();
        assert_eq!(out, [8, 2, 2, 2, 4, 0, 2, 6, 0]);
        let err = encode(&schema, br#"{"a": ["x"]}"#, &mut Vec::new()).unwrap_err();
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

    /// The one-pass transcoder and the tree path give the same bytes, on payloads in schema
    /// order (members left out at the end, zero dates, flattened arrays, escapes).
    #[test]
    fn one_pass_equals_the_tree_path() {
        let int = |optional| of(Kind::Int32, optional);
        let date = ConnectSchema { name: Some("io.debezium.time.Date".into()), ..int(true) };
        let schema = of(
            Kind::Struct(vec![
                ("a".into(), int(false)),
                ("d".into(), date),
                ("s".into(), of(Kind::String, true)),
                ("arr".into(), of(Kind::Array(Box::new(int(true))), true)),
                ("f".into(), of(Kind::Float64, false)),
                ("tail".into(), of(Kind::Bytes, true)),
            ]),
            false,
        );
        let json = br#"{"a":-5,"d":"0000-00-00","s":"q\"uote \u00e9","arr":[[1,null],[3]],"f":"NaN"}"#;
        let mut streamed = Vec::new();
        let json = std::str::from_utf8(json).unwrap();
        let mut stream = Parser::new(json);
        assert!(stream.transcode(&schema, &mut streamed).is_ok());
        let mut tree = Vec::new();
        encode_at(&schema, &Parser::new(json).document().unwrap(), &mut tree, &mut String::new()).unwrap();
        assert_eq!(streamed, tree);
        // Out of order: the one pass gives up, `encode` still gets it right.
        let swapped = br#"{"d":null,"a":1,"f":1.5}"#;
        assert!(Parser::new(std::str::from_utf8(swapped).unwrap()).transcode(&schema, &mut Vec::new()).is_err());
        let (mut out, mut ordered) = (Vec::new(), Vec::new());
        encode(&schema, swapped, &mut out).unwrap();
        encode(&schema, br#"{"a":1,"d":null,"f":1.5}"#, &mut ordered).unwrap();
        assert_eq!(out, ordered);
    }

    /// Real events (binlog fixtures: every MySQL type, MariaDB, vectors) are in schema order:
    /// they take the one pass, and it gives what the tree path gives.
    #[test]
    fn fixture_events_take_the_one_pass() {
        use crate::format::connect::{Connector, envelope_schema};
        use crate::format::debezium::{EnvelopeContext, write_envelope};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mysql-binlogs");
        let ctx = EnvelopeContext { name: "fx".into(), now_us: 1 };
        let mut n = 0;
        for f in [
            "rust_mysql_common/mysql-enum-string-set.000001",
            "rust_mysql_common/mariadb-bin.000001",
            "rust_mysql_common/vector.binlog",
            "mysql-binlog-connector-java/mysql-bin.checksum-crc32",
            "mysql-binlog-connector-java/mysql-bin.sakila.gz",
        ] {
            let bytes = crate::sources::mysql::file::read_maybe_gzip(&dir.join(f)).unwrap();
            crate::sources::mysql::file::decode_bytes(&bytes, "fx", None, None, &mut |b| {
                for e in &b.events {
                    let schema = envelope_schema(&e.table, "fx", Connector::MySql);
                    let mut json = Vec::new();
                    write_envelope(&mut json, e, &ctx);
                    let mut streamed = Vec::new();
                    let json = std::str::from_utf8(&json).unwrap();
                    let one_pass = Parser::new(json).transcode(&schema, &mut streamed);
                    assert!(one_pass.is_ok(), "{f}: not in one pass: {json}");
                    let value = Parser::new(json).document().unwrap();
                    let mut tree = Vec::new();
                    encode_at(&schema, &value, &mut tree, &mut String::new()).unwrap();
                    assert_eq!(streamed, tree, "{f}");
                    n += 1;
                }
            })
            .unwrap();
        }
        assert!(n > 40_000, "{n} events");
    }

    #[test]
    fn names_are_made_valid_for_avro() {
        assert_eq!(avro_name("order-items"), "order_items");
        assert_eq!(avro_name("1st"), "_1st");
        assert_eq!(avro_name("été"), "_t_");
    }
}
