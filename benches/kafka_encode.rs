//! Cost per record of each Kafka value encoding, on the rows of the Sakila binlog fixture (47k
//! rows, 16 tables): Debezium JSON, JSON with Connect schemas (`json_schemas`), and Avro
//! (`format = "avro"`: the JSON payload re-encoded under the registered schema).
//!
//! `cargo bench --bench kafka_encode`

use std::collections::HashMap;
use std::path::PathBuf;

use cdc::format::avro;
use cdc::format::connect::{ConnectSchema, Connector, JsonSchemas, envelope_schema};
use cdc::format::debezium::{EnvelopeContext, write_envelope};
use cdc::model::ChangeEvent;
use cdc::sources::mysql::file::{decode_bytes, read_maybe_gzip};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mysql-binlogs/mysql-binlog-connector-java/mysql-bin.sakila.gz");
    let bytes = read_maybe_gzip(&path).expect("read the Sakila binlog");
    let mut events: Vec<ChangeEvent> = Vec::new();
    decode_bytes(&bytes, "bench", None, None, &mut |b| events.extend(b.events.iter().cloned())).expect("decodes");
    let ctx = EnvelopeContext { name: "bench".into(), now_us: 0 };
    let schemas: HashMap<_, ConnectSchema> =
        events.iter().map(|e| (e.table.id.clone(), envelope_schema(&e.table, "bench", Connector::MySql))).collect();

    let mut group = c.benchmark_group("kafka_value");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    let mut out = Vec::with_capacity(1 << 16);
    group.bench_function("debezium_json", |b| {
        b.iter(|| {
            for e in &events {
                out.clear();
                write_envelope(&mut out, e, &ctx);
            }
        })
    });
    group.bench_function("json_with_schemas", |b| {
        let mut json_schemas = JsonSchemas::new("bench");
        b.iter(|| {
            for e in &events {
                out.clear();
                json_schemas.write_value(&mut out, e, |o| write_envelope(o, e, &ctx));
            }
        })
    });
    group.bench_function("avro", |b| {
        let mut json = Vec::with_capacity(1 << 16);
        b.iter(|| {
            for e in &events {
                json.clear();
                write_envelope(&mut json, e, &ctx);
                out.clear();
                avro::write_header(&mut out, 1);
                avro::encode(&schemas[&e.table.id], &json, &mut out).unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
