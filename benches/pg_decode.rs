//! pgoutput decode throughput: Insert messages of a 12-column mixed table, decoded and their
//! text values parsed into `Value`s (what the source does per change, minus I/O).

use cdc::model::ColumnType;
use cdc::sources::postgres::pgoutput::{PgMessage, TupleValue, decode};
use cdc::sources::postgres::types::{column_type, oid, push_text};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn insert_message(i: u64) -> Vec<u8> {
    let values: [String; 12] = [
        i.to_string(),
        (i % 100_000).to_string(),
        (i * 7).to_string(),
        format!("name-{i}-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        format!("{}.{:02}", i / 100, i % 100),
        format!("{}", i as f64 * 1.5),
        "2024-02-29 12:34:56.789012".into(),
        "2024-02-29 12:34:56.789+00".into(),
        "2024-02-29".into(),
        "t".repeat(60),
        if i.is_multiple_of(2) { "t".into() } else { "f".into() },
        (i % 100).to_string(),
    ];
    let mut m = vec![b'I'];
    m.extend_from_slice(&16384u32.to_be_bytes());
    m.push(b'N');
    m.extend_from_slice(&12u16.to_be_bytes());
    for v in &values {
        m.push(b't');
        m.extend_from_slice(&(v.len() as u32).to_be_bytes());
        m.extend_from_slice(v.as_bytes());
    }
    m
}

fn bench(c: &mut Criterion) {
    let none = |_| None;
    let types: Vec<ColumnType> = [
        (oid::INT8, -1),
        (oid::INT4, -1),
        (oid::INT8, -1),
        (oid::VARCHAR, 68),
        (oid::NUMERIC, (12 << 16 | 2) + 4),
        (oid::FLOAT8, -1),
        (oid::TIMESTAMP, -1),
        (oid::TIMESTAMPTZ, 3),
        (oid::DATE, -1),
        (oid::TEXT, -1),
        (oid::BOOL, -1),
        (oid::INT2, -1),
    ]
    .iter()
    .map(|(o, m)| column_type(*o, *m, &none))
    .collect();
    let messages: Vec<Vec<u8>> = (0..100_000u64).map(insert_message).collect();
    let mut group = c.benchmark_group("pgoutput");
    group.sample_size(10);
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("decode_insert_and_parse_values", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for m in &messages {
                let Ok(PgMessage::Insert { new, .. }) = decode(m, false) else { panic!("not an insert") };
                // As the source's `row` does it.
                let mut row = Vec::with_capacity(types.len());
                for (t, v) in types.iter().zip(new.iter()) {
                    match v {
                        TupleValue::Text(bytes) => push_text(t, std::str::from_utf8(bytes).unwrap(), &mut row).unwrap(),
                        _ => row.push(cdc::model::Value::Null),
                    }
                }
                n += row.len();
            }
            n
        })
    });
    // The PostgreSQL replica sink's side: those rows written as COPY text.
    let columns: Vec<cdc::model::Column> = types
        .iter()
        .map(|t| cdc::model::Column {
            name: "c".into(),
            source_type: String::new(),
            kind: t.clone(),
            nullable: true,
            charset: None,
            existing_rows_value: None,
        })
        .collect();
    let rows: Vec<Vec<cdc::model::Value>> = messages
        .iter()
        .map(|m| {
            let Ok(PgMessage::Insert { new, .. }) = decode(m, false) else { panic!("not an insert") };
            let mut row = Vec::with_capacity(types.len());
            for (t, v) in types.iter().zip(new.iter()) {
                if let TupleValue::Text(bytes) = v {
                    push_text(t, std::str::from_utf8(bytes).unwrap(), &mut row).unwrap();
                }
            }
            row
        })
        .collect();
    // The snapshot's side: the same rows as lines of `COPY … TO STDOUT` text, parsed.
    let lines: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| {
            let Ok(PgMessage::Insert { new, .. }) = decode(m, false) else { panic!("not an insert") };
            let mut line = Vec::new();
            for (i, v) in new.iter().enumerate() {
                if i > 0 {
                    line.push(b'\t');
                }
                if let TupleValue::Text(bytes) = v {
                    line.extend_from_slice(bytes);
                }
            }
            line.push(b'\n');
            line
        })
        .collect();
    group.bench_function("copy_text_rows_to_values", |b| {
        let mut key = Vec::new();
        b.iter(|| {
            let mut n = 0usize;
            for line in &lines {
                n += cdc::sources::postgres::types::parse_copy_row(&columns, line, &[0], &mut key).unwrap().len();
            }
            n
        })
    });
    group.bench_function("values_to_copy_text", |b| {
        let mut data = Vec::with_capacity(1 << 20);
        let mut scratch = String::new();
        b.iter(|| {
            data.clear();
            for row in &rows {
                for (i, (value, column)) in row.iter().zip(&columns).enumerate() {
                    if i > 0 {
                        data.push(b'\t');
                    }
                    cdc::sinks::postgres::values::write_copy_field(&mut data, &mut scratch, value, column).unwrap();
                }
                data.push(b'\n');
            }
            data.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
