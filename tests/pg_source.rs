//! The PostgreSQL source against real PostgreSQL 15 (Debian) and 13 / 17 (npm builds).

mod harness;

use std::time::Duration;

use harness::pipeline::start_pipeline;
use harness::{Postgres, shared_pg15};
use serde_json::{Value as Json, json};

fn config(pg: &Postgres, db: &str, snapshot: &str) -> String {
    format!(
        r#"
name = "{db}"
[source]
kind = "postgres"
url = "{url}"
tables = ["public.*"]
snapshot = "{snapshot}"
[pipeline]
checkpoint_interval_ms = 50
batch_events = 64
"#,
        url = pg.url(db),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn basic_flow(pg: &Postgres, db: &str) {
    pg.create_db(db);
    pg.sql(
        db,
        "CREATE TABLE t (id int PRIMARY KEY, name text, n numeric(10,2)); INSERT INTO t VALUES (1, 'snap', 1.50);",
    );
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let p = start_pipeline(&config(pg, db, "initial"), &dir.path().join("p.json"), None).await;
        let e = p.wait_for(1).await;
        assert_eq!(e[0]["op"], "r");
        assert_eq!(e[0]["after"]["name"], "snap");
        assert_eq!(e[0]["source"]["connector"], "postgresql");
        pg.sql(db, "BEGIN; INSERT INTO t VALUES (2, 'two', 2); UPDATE t SET name = 'uno' WHERE id = 1; DELETE FROM t WHERE id = 2; COMMIT;");
        let e = p.wait_for(4).await;
        let ops: Vec<&str> = e.iter().map(|x| x["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["r", "c", "u", "d"]);
        assert_eq!(e[1]["after"], json!({"id": 2, "name": "two", "n": "AMg="}));
        assert_eq!(e[2]["after"]["name"], "uno");
        assert_eq!(e[2]["before"], Json::Null); // default replica identity: no old row for a non-key update
        assert_eq!(e[3]["before"], json!({"id": 2, "name": null, "n": null})); // key only
        assert_eq!(e[1]["source"]["schema"], "public");
        assert_eq!(e[1]["source"]["db"], db);
        assert_eq!(e[1]["source"]["txId"], e[3]["source"]["txId"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (outcome, pos, _) = p.stop().await;
        outcome.unwrap();
        assert!(pos.unwrap().to_string().starts_with("pg:lsn="));
    });
}

#[test]
fn pg15_snapshot_then_stream() {
    basic_flow(shared_pg15(), "basic15");
}

#[test]
fn pg13_and_pg17_snapshot_then_stream() {
    let pg13 = Postgres::start(13);
    basic_flow(&pg13, "basic13");
    let pg17 = Postgres::start(17);
    basic_flow(&pg17, "basic17");
}
