//! Binlog decode throughput: rows per second from a binlog file in memory.
//!
//! `CDC_BENCH_BINLOG=/path/to/binlog cargo bench --bench mysql_decode`; without it the Sakila
//! fixture (47k rows, MySQL 5.5) is used. `scripts/bench-mysql.sh` generates a 1M-row binlog
//! from MariaDB and runs this side by side with python-mysql-replication.

use std::path::PathBuf;

use cdc::format::debezium::{EnvelopeContext, write_envelope};
use cdc::sources::mysql::file::{decode_bytes, read_maybe_gzip};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let path = std::env::var("CDC_BENCH_BINLOG").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mysql-binlogs/mysql-binlog-connector-java/mysql-bin.sakila.gz")
    });
    let bytes = read_maybe_gzip(&path).expect("read the benchmark binlog");
    let mut rows = 0u64;
    decode_bytes(&bytes, "bench", None, None, &mut |b| rows += b.events.len() as u64).expect("decodes");
    eprintln!("{}: {} bytes, {rows} rows", path.display(), bytes.len());

    let mut group = c.benchmark_group("mysql_binlog");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut n = 0usize;
            decode_bytes(&bytes, "bench", None, None, &mut |batch| n += batch.events.len()).unwrap();
            n
        })
    });
    group.bench_function("decode_and_debezium_json", |b| {
        let ctx = EnvelopeContext { name: "bench".into(), now_us: 0 };
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            decode_bytes(&bytes, "bench", None, None, &mut |batch| {
                for e in &batch.events {
                    out.clear();
                    write_envelope(&mut out, e, &ctx);
                }
            })
            .unwrap();
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
