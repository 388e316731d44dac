//! `cdc run` with the Kafka sink against a real broker (tansu), read back with a real consumer:
//! topics, keys, values, tombstones, headers, order; outages; crashes.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::kafka::{Record, read_topic};
use harness::{ChildGuard, shared_kafka, shared_mariadb, shared_pg15};
use serde_json::json;

fn spawn_cdc(config: &Path) -> ChildGuard {
    let log = config.with_extension("log");
    ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_cdc"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
            .spawn()
            .unwrap(),
    )
}

/// Config for `name` with a Kafka sink on `bootstrap`; `source` is the `[source]` body.
fn write_config(dir: &Path, name: &str, source: &str, bootstrap: &str, extra: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\n[source]\n{source}\n[sink]\nkind = \"kafka\"\nbrokers = \"{bootstrap}\"\n{extra}\n\
         [positions]\npath = \"{pos}\"\n[pipeline]\ncheckpoint_interval_ms = 20\n",
        pos = dir.join("positions.json").display(),
    );
    let path = dir.join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn summary(records: &[Record], id_field: &str) -> Vec<(String, Option<i64>)> {
    records
        .iter()
        .map(|r| {
            let key = r.key.as_ref().and_then(|k| k[id_field].as_i64());
            (r.op().unwrap_or("tombstone").to_string(), key)
        })
        .collect()
}

#[test]
fn mariadb_to_kafka_topics_keys_values_tombstones_headers() {
    let db = shared_mariadb();
    let kafka = shared_kafka();
    db.sql(
        "CREATE DATABASE kshop; CREATE TABLE kshop.orders (id INT PRIMARY KEY, item VARCHAR(20), qty INT);
         CREATE TABLE kshop.nokey (v INT);
         INSERT INTO kshop.orders VALUES (1,'apple',1),(2,'pear',2);",
    );
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "kind = \"mysql\"\nurl = \"{}\"\nserver_id = 7101\ntables = [\"kshop.*\"]\nheartbeat_secs = 1",
        db.url("")
    );
    let config = write_config(dir.path(), "kmaria", &source, &kafka.bootstrap(), "");
    let _cdc = spawn_cdc(&config);
    // The snapshot is in Kafka: what follows is streamed.
    read_topic(&kafka.bootstrap(), "kmaria.kshop.orders", 2, false, Duration::ZERO);
    db.sql(
        "INSERT INTO kshop.orders VALUES (3,'plum',3);
         UPDATE kshop.orders SET qty = 30 WHERE id = 3;
         DELETE FROM kshop.orders WHERE id = 1;
         UPDATE kshop.orders SET id = 20 WHERE id = 2;
         INSERT INTO kshop.nokey VALUES (5);",
    );
    let got = read_topic(&kafka.bootstrap(), "kmaria.kshop.orders", 9, false, Duration::from_millis(500));
    assert_eq!(
        summary(&got, "id"),
        [
            ("r", Some(1)),
            ("r", Some(2)),
            ("c", Some(3)),
            ("u", Some(3)),
            ("d", Some(1)),
            ("tombstone", Some(1)),
            // A key change: delete of the old key, its tombstone, create of the new key.
            ("d", Some(2)),
            ("tombstone", Some(2)),
            ("c", Some(20)),
        ]
        .map(|(op, k)| (op.to_string(), k))
    );
    assert_eq!(got[0].key, Some(json!({"id": 1})));
    let after = &got[3].value.as_ref().unwrap()["after"];
    assert_eq!(after, &json!({"id": 3, "item": "plum", "qty": 30}));
    assert_eq!(got[4].value.as_ref().unwrap()["before"], json!({"id": 1, "item": "apple", "qty": 1}));
    let source = &got[2].value.as_ref().unwrap()["source"];
    assert_eq!(source["connector"], "mysql");
    assert_eq!(source["name"], "kmaria");
    assert_eq!((source["db"].as_str(), source["table"].as_str()), (Some("kshop"), Some("orders")));
    // Headers: where the change is in the binlog, and its transaction.
    let position = &got[2].headers["cdc.position"];
    assert_eq!(position, &format!("mysql:file={}:pos={}", source["file"].as_str().unwrap(), source["pos"]));
    assert_eq!(got[2].headers["cdc.tx_id"], source["gtid"].as_str().unwrap());
    assert_ne!(got[2].headers["cdc.tx_id"], got[3].headers["cdc.tx_id"], "two transactions");
    assert_eq!(got[5].headers["cdc.tx_id"], got[4].headers["cdc.tx_id"], "the tombstone carries its delete's headers");
    assert_eq!(got[6].headers["__debezium.newkey"], r#"{"id":20}"#);
    assert_eq!(got[8].headers["__debezium.oldkey"], r#"{"id":2}"#);
    assert!(!got[0].headers.contains_key("cdc.tx_id"), "snapshot rows have no transaction");
    // A table without a key: null keys, its own topic.
    let nokey = read_topic(&kafka.bootstrap(), "kmaria.kshop.nokey", 1, false, Duration::from_millis(200));
    assert_eq!(nokey.len(), 1);
    assert_eq!(nokey[0].key, None);
    assert_eq!(nokey[0].value.as_ref().unwrap()["after"], json!({"v": 5}));
}

#[test]
fn postgres_to_kafka_with_routing_and_no_tombstones() {
    let pg = shared_pg15();
    let kafka = shared_kafka();
    let dbname = pg.create_db("kafka_pg");
    pg.sql(
        &dbname,
        "CREATE TABLE public.items (id BIGINT PRIMARY KEY, name TEXT, price NUMERIC(8,2));
         CREATE TABLE public.audit (id SERIAL PRIMARY KEY, note TEXT);
         INSERT INTO public.items VALUES (1, 'tea', 2.50);",
    );
    let dir = tempfile::tempdir().unwrap();
    let source = format!("kind = \"postgres\"\nurl = \"{}\"\ntables = [\"public.*\"]", pg.url(&dbname));
    let extra = "tombstones_on_delete = false\ntopic_prefix = \"pgk\"\n[sink.topics]\n\"public.audit\" = \"audit-log\"";
    let config = write_config(dir.path(), "pgkafka", &source, &kafka.bootstrap(), extra);
    let _cdc = spawn_cdc(&config);
    read_topic(&kafka.bootstrap(), "pgk.public.items", 1, false, Duration::ZERO);
    pg.sql(
        &dbname,
        "BEGIN; INSERT INTO public.items VALUES (2, 'coffee', 3.10); INSERT INTO public.audit (note) VALUES ('two'); COMMIT;
         UPDATE public.items SET price = 2.75 WHERE id = 1;
         DELETE FROM public.items WHERE id = 2;",
    );
    let items = read_topic(&kafka.bootstrap(), "pgk.public.items", 4, false, Duration::from_millis(500));
    assert_eq!(
        summary(&items, "id"),
        [("r", Some(1)), ("c", Some(2)), ("u", Some(1)), ("d", Some(2))].map(|(op, k)| (op.to_string(), k))
    );
    let update = items[2].value.as_ref().unwrap();
    assert_eq!(update["after"]["name"], "tea");
    assert_eq!(update["source"]["connector"], "postgresql");
    assert_eq!(update["source"]["schema"], "public");
    let lsn = update["source"]["lsn"].as_u64().unwrap();
    assert_eq!(items[2].headers["cdc.position"], format!("pg:lsn={:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff));
    assert_eq!(items[2].headers["cdc.tx_id"], update["source"]["txId"].to_string());
    assert_eq!(
        items[1].headers["cdc.tx_id"],
        read_topic(&kafka.bootstrap(), "audit-log", 1, false, Duration::ZERO)[0].headers["cdc.tx_id"],
        "one source transaction, one id"
    );
}
