//! The test harness starts each real server with the settings cdc needs.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;

use harness::*;

#[test]
fn mariadb_has_row_binlog_settings() {
    let db = shared_mariadb();
    let got = db.sql(
        "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@gtid_strict_mode, @@server_id",
    );
    assert_eq!(got, "1\tROW\tFULL\tFULL\t1\t1");
    db.sql("CREATE DATABASE harness_check; CREATE TABLE harness_check.t (id INT PRIMARY KEY); INSERT INTO harness_check.t VALUES (1)");
    assert!(db.sql("SELECT @@gtid_binlog_pos").starts_with("0-1-"));
}

#[test]
fn per_test_mariadb_is_removed_on_drop() {
    let db = MariaDb::start();
    let dir = db.process.dir.clone();
    assert!(dir.join("data").exists());
    drop(db);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

fn check_pg(pg: &Postgres, major: u32) {
    let version: u32 = pg.sql("postgres", "SHOW server_version_num").parse().unwrap();
    assert_eq!(version / 10000, major);
    assert_eq!(pg.sql("postgres", "SHOW wal_level"), "logical");
    let db = pg.create_db("harness_check");
    pg.sql(&db, "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)");
    assert_eq!(pg.sql(&db, "SELECT count(*) FROM t"), "1");
}

#[test]
fn postgres_15_from_debian() {
    check_pg(shared_pg15(), 15);
}

#[test]
fn postgres_13_and_17_from_npm() {
    let pg13 = Postgres::start(13);
    check_pg(&pg13, 13);
    let pg17 = Postgres::start(17);
    check_pg(&pg17, 17);
}

/// The broker answers a Kafka ApiVersions request (v0): it speaks the protocol, not just TCP.
#[test]
fn kafka_broker_answers_api_versions() {
    let broker = shared_kafka();
    let mut s = TcpStream::connect(broker.bootstrap()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let client_id = b"cdc-test";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api_key ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // api_version 0
    body.extend_from_slice(&42i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(i32::from_be_bytes(resp[0..4].try_into().unwrap()), 42, "correlation id");
    assert_eq!(i16::from_be_bytes(resp[4..6].try_into().unwrap()), 0, "error code");
    let n = i32::from_be_bytes(resp[6..10].try_into().unwrap());
    let keys: Vec<i16> =
        (0..n as usize).map(|i| i16::from_be_bytes(resp[10 + i * 6..12 + i * 6].try_into().unwrap())).collect();
    assert!(keys.contains(&0) && keys.contains(&1) && keys.contains(&3), "Produce, Fetch, Metadata in {keys:?}");
}
