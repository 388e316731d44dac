//! `cdc run` with the MySQL/MariaDB replica sink: PostgreSQL → MariaDB and MariaDB → MariaDB,
//! checked by reading the target back and with `cdc verify`.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{cdc_log, cdc_verify, shared_mariadb, shared_pg15, spawn_cdc, wait_exit};

fn write_config(dir: &Path, name: &str, source: &str, target_url: &str, extra_sink: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\n[source]\n{source}\n[sink]\nkind = \"mysql\"\nurl = \"{target_url}\"\n{extra_sink}\n\
         [pipeline]\ncheckpoint_interval_ms = 20\n"
    );
    let path = dir.join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The config of a replica of PostgreSQL 15 database `db` (schema `public`) into the MariaDB
/// database `<name>_public`.
fn postgres_to_mariadb(dir: &Path, name: &str, db: &str) -> PathBuf {
    let source = format!("kind = \"postgres\"\nurl = \"{}\"\ntables = [\"public.*\"]", shared_pg15().url(db));
    let namespaces = format!("namespaces = {{ public = \"{name}_public\" }}");
    write_config(dir, name, &source, &shared_mariadb().url(""), &namespaces)
}

/// Waits (60 s at most) until `query` on the MariaDB target returns `want`.
fn wait_for(query: &str, want: &str, config: &Path) {
    let my = shared_mariadb();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "--default-character-set=utf8mb4", "-uroot", "-N", "-B", "-S"])
            .arg(my.process.dir.join("sock"))
            .arg("-e")
            .arg(format!("SET time_zone = '+00:00'; {query}"))
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "`{query}` gave\n{got}\nnot\n{want}\n--- cdc log\n{}", cdc_log(config));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn postgres_to_mariadb_types_workload_and_verify() {
    let pg = shared_pg15();
    let db = pg.create_db("tomaria");
    pg.sql(
        &db,
        "CREATE TABLE items (id int PRIMARY KEY, big int8, n numeric(12,3), nn numeric, f8 float8, b bool, t text,
           vc varchar(10), by bytea, d date, ts timestamp(6), tstz timestamptz, u uuid, j jsonb, bt bit(5));
         CREATE TABLE tags (name text PRIMARY KEY, n int);
         INSERT INTO items VALUES (1, -9223372036854775808, -123456789.125, 1.5, 2.5e-300, true, 'it''s \\ ok', 'ünï',
           '\\x00ff', '2024-02-29', '1999-12-31 23:59:59.999999', '2038-01-19 03:14:08+00',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2]}', B'10101');",
    );
    let dir = tempfile::tempdir().unwrap();
    let my = shared_mariadb();
    // The PostgreSQL schema `public` becomes the MariaDB database `tomaria_public`.
    let config = postgres_to_mariadb(dir.path(), "tomaria", &db);
    let _cdc = spawn_cdc(&config);
    pg.sql(
        &db,
        "INSERT INTO items (id, t) VALUES (2, 'two'), (3, 'three');
         UPDATE items SET t = 'moved', id = 20 WHERE id = 2; DELETE FROM items WHERE id = 3;
         INSERT INTO tags SELECT 'tag' || g, g FROM generate_series(1, 3000) g;
         BEGIN; UPDATE tags SET n = n + 1 WHERE n % 2 = 0; DELETE FROM tags WHERE n % 3 = 0; COMMIT;
         ALTER TABLE tags ADD COLUMN flag bool NOT NULL DEFAULT true, ADD COLUMN label text DEFAULT 'it''s';
         UPDATE tags SET label = 'x' WHERE name = 'tag1';
         INSERT INTO tags VALUES ('Tag1', 0);",
    );
    // Columns added with a default: the rows never changed since read it on the target too.
    wait_for("SELECT COUNT(*) FROM tomaria_public.tags WHERE flag = 1 AND label = 'it''s'", "2000", &config);
    let want = pg.sql(&db, "SELECT count(*) || E'\\t' || sum(n) FROM tags");
    wait_for("SELECT COUNT(*), SUM(n) FROM tomaria_public.tags", &want, &config);
    wait_for(
        "SELECT id, big, n, nn, f8, b, t, vc, HEX(`by`), d, ts, tstz, u, j, BIN(bt) FROM tomaria_public.items ORDER BY id",
        "1\t-9223372036854775808\t-123456789.125\t1.500000000000000000000000000000\t2.5e-300\t1\tit's \\\\ ok\tünï\t00FF\t\
         2024-02-29\t1999-12-31 23:59:59.999999\t2038-01-19 03:14:08.000000\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t\
         {\"a\": [1, 2]}\t10101\n\
         20\tNULL\tNULL\tNULL\tNULL\tNULL\tmoved\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL",
        &config,
    );
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK   public.tags → tomaria_public.tags: 2001 rows"), "{out}");
    assert!(out.contains("OK   public.items → tomaria_public.items: 2 rows"), "{out}");
    let stored = my.sql("SELECT position FROM cdc.cdc_positions WHERE name = 'tomaria'");
    assert!(stored.starts_with("pg:lsn="), "{stored}");
}

#[test]
fn mariadb_to_mariadb_keeps_types_and_survives_kill_9() {
    let my = shared_mariadb();
    my.sql(
        "CREATE DATABASE mm_src; CREATE TABLE mm_src.acc (id BIGINT UNSIGNED PRIMARY KEY, e ENUM('a','b'), s SET('x','y'),
           t TIME(3), y YEAR, dt DATETIME(6), ts TIMESTAMP(3) NULL, bal DECIMAL(20,4), bits BIT(3), z DATE NOT NULL)
           CHARACTER SET utf8mb4;
         CREATE TABLE mm_src.log (id BIGINT PRIMARY KEY, v VARCHAR(20)) CHARACTER SET utf8mb4;
         SET sql_mode = ''; INSERT INTO mm_src.acc VALUES (18446744073709551615, 'b', 'x,y', '-838:59:59.000', 2155,
           '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', -12345.6789, b'101', '0000-00-00');",
    );
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "kind = \"mysql\"\nurl = \"{}\"\nserver_id = 7311\ntables = [\"mm_src.*\"]\nheartbeat_secs = 1",
        my.url("")
    );
    let config = write_config(dir.path(), "mm", &source, &my.url(""), "namespaces = { mm_src = \"mm_dst\" }");
    let mut cdc = spawn_cdc(&config);
    wait_for("SELECT COUNT(*) FROM mm_dst.acc", "1", &config);
    let ddl = my.sql("SHOW CREATE TABLE mm_dst.acc");
    assert!(ddl.contains("enum('a','b')") && ddl.contains("set('x','y')"), "ENUM and SET kept: {ddl}");
    // Counters updated in many transactions while cdc is killed and restarted, and transactions
    // of 3 000 inserts into `log` (a LOAD DATA streaming over several batches when killed).
    for round in 0..5u64 {
        my.sql(&format!(
            "USE mm_src; INSERT INTO mm_src.acc (id, bal, z) SELECT seq, 0, '2000-01-01' FROM seq_{}_to_{};
             UPDATE mm_src.acc SET bal = bal + 1 WHERE id < 1000;
             INSERT INTO mm_src.log SELECT seq, CONCAT('r', seq) FROM seq_{}_to_{};",
            round * 200 + 1,
            round * 200 + 200,
            round * 3000 + 1,
            round * 3000 + 3000
        ));
        std::thread::sleep(Duration::from_millis(150));
        cdc.0.kill().unwrap();
        cdc.0.wait().unwrap();
        cdc = spawn_cdc(&config);
    }
    let want = my.sql("SELECT COUNT(*), SUM(bal) FROM mm_src.acc");
    wait_for("SELECT COUNT(*), SUM(bal) FROM mm_dst.acc", &want, &config);
    wait_for("SELECT COUNT(*), SUM(id), SUM(v = CONCAT('r', id)) FROM mm_dst.log", "15000\t112507500\t15000", &config);
    wait_for(
        "SELECT id, e, s, t, y, dt, ts, bal, BIN(bits), z FROM mm_dst.acc WHERE id > 1000000",
        "18446744073709551615\tb\tx,y\t-838:59:59.000\t2155\t9999-12-31 23:59:59.999999\t2038-01-19 03:14:07.999\t\
         -12345.6789\t101\t0000-00-00",
        &config,
    );
    // A column renamed on the source is renamed on the target, values kept (by an instance
    // that has written the table before: a rename before a restart's first change of the table
    // looks like a new column, see docs/replica.md).
    my.sql("UPDATE mm_src.acc SET bal = bal + 1 WHERE id = 2");
    let want = my.sql("SELECT COUNT(*), SUM(bal) FROM mm_src.acc");
    wait_for("SELECT COUNT(*), SUM(bal) FROM mm_dst.acc", &want, &config);
    my.sql("ALTER TABLE mm_src.acc RENAME COLUMN e TO kind; UPDATE mm_src.acc SET kind = 'a' WHERE id = 1;");
    wait_for(
        "SELECT kind, COUNT(*) FROM mm_dst.acc WHERE kind IS NOT NULL GROUP BY kind ORDER BY kind",
        "a\t1\nb\t1",
        &config,
    );
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK   mm_src.acc → mm_dst.acc: 1001 rows"), "{out}");
    assert!(out.contains("OK   mm_src.log → mm_dst.log: 15000 rows"), "{out}");
}

/// A column dropped between rows that reach the sink in one batch (a backlog), inside one
/// source transaction and between two: each row is written under the schema it was read with
/// (the rows before the drop do not shift into the wrong columns), and the drop is replayed.
/// DDL committed while the initial copy is running, on a table not read yet: the copy and the
/// stream after it converge to the source. (MariaDB's consistent read returns the table as it
/// is now, added column included, and the snapshot takes its columns from the server at that
/// moment too.)
#[test]
fn a_schema_change_during_the_initial_copy_converges() {
    schema_change_during_the_initial_copy("ddl", "ADD COLUMN added INT DEFAULT 5");
}

/// A rebuild of a table the copy has not read yet: InnoDB refuses the snapshot's read of it
/// (error 1412, table definition changed); the copy resumes under a new snapshot.
#[test]
fn a_table_rebuilt_during_the_initial_copy_converges() {
    schema_change_during_the_initial_copy("rebuild", "ADD COLUMN added INT DEFAULT 5, ALGORITHM=COPY");
}

fn schema_change_during_the_initial_copy(name: &str, alter: &str) {
    let my = shared_mariadb();
    my.sql(&format!(
        "CREATE DATABASE {name}_src; USE {name}_src;
         CREATE TABLE aaa (id INT PRIMARY KEY, v VARCHAR(40));
         INSERT INTO aaa SELECT seq, MD5(seq) FROM seq_1_to_300000;
         CREATE TABLE bbb (id INT PRIMARY KEY, keep INT);
         INSERT INTO bbb SELECT seq, seq FROM seq_1_to_100;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let server_id = if name == "ddl" { 7321 } else { 7322 };
    let source = format!(
        "kind = \"mysql\"\nurl = \"{}\"\nserver_id = {server_id}\ntables = [\"{name}_src.*\"]\nheartbeat_secs = 1\n\
         snapshot_chunk_rows = 5000\nsnapshot_connections = 1",
        my.url("")
    );
    // One connection: `bbb` is read after `aaa`, so the ALTER lands before its read.
    let pipeline = format!("{name}copy");
    let config = write_config(
        dir.path(),
        &pipeline,
        &source,
        &my.url(""),
        &format!("namespaces = {{ {name}_src = \"{name}_dst\" }}"),
    );
    let _cdc = spawn_cdc(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    let positions_exist = || {
        my.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'cdc' AND TABLE_NAME = 'cdc_positions'") == "1"
    };
    while !positions_exist()
        || !my
            .sql(&format!("SELECT COALESCE(MAX(position), '') FROM cdc.cdc_positions WHERE name = '{pipeline}'"))
            .contains("snapshot")
    {
        assert!(Instant::now() < deadline, "no copy progress:\n{}", cdc_log(&config));
        std::thread::sleep(Duration::from_millis(10));
    }
    my.sql(&format!("ALTER TABLE {name}_src.bbb {alter}; UPDATE {name}_src.bbb SET keep = -1 WHERE id = 1;"));
    let want = my.sql(&format!("SELECT COUNT(*), SUM(keep), SUM(added) FROM {name}_src.bbb"));
    wait_for(&format!("SELECT COUNT(*), SUM(keep), SUM(added) FROM {name}_dst.bbb"), &want, &config);
    wait_for(&format!("SELECT COUNT(*) FROM {name}_dst.aaa"), "300000", &config);
    if alter.contains("ALGORITHM=COPY") {
        // The case this test is for happened: the read was refused, and the run went on.
        assert!(cdc_log(&config).contains("Table definition has changed"), "{}", cdc_log(&config));
    }
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 0, "{out}\n{}", cdc_log(&config));
}

#[test]
fn a_schema_change_inside_one_batch_applies_each_row_under_its_own_schema() {
    let pg = shared_pg15();
    let db = pg.create_db("dropmid");
    pg.sql(&db, "CREATE TABLE t (id int PRIMARY KEY, a text, b text, c int); INSERT INTO t VALUES (0, 'a0', 'b0', 0);");
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_to_mariadb(dir.path(), "dropmid", &db);
    {
        let _cdc = spawn_cdc(&config);
        wait_for("SELECT id, a, b, c FROM dropmid_public.t", "0\ta0\tb0\t0", &config);
        wait_for("SELECT COUNT(*) FROM cdc.cdc_positions WHERE name = 'dropmid'", "1", &config);
    }
    // cdc is down: the changes pile up and come back as one backlog.
    pg.sql(
        &db,
        "INSERT INTO t VALUES (1, 'a1', 'b1', 1);
         BEGIN; INSERT INTO t VALUES (2, 'a2', 'b2', 2); ALTER TABLE t DROP COLUMN b; INSERT INTO t VALUES (3, 'a3', 3); COMMIT;
         INSERT INTO t VALUES (4, 'a4', 4); UPDATE t SET c = 10 WHERE id = 1;",
    );
    let _cdc = spawn_cdc(&config);
    wait_for(
        "SELECT id, a, c FROM dropmid_public.t ORDER BY id",
        "0\ta0\t0\n1\ta1\t10\n2\ta2\t2\n3\ta3\t3\n4\ta4\t4",
        &config,
    );
    wait_for(
        "SELECT GROUP_CONCAT(column_name ORDER BY ordinal_position) FROM information_schema.columns \
         WHERE table_schema = 'dropmid_public' AND table_name = 't'",
        "id,a,c",
        &config,
    );
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 0, "{out}");
}

/// A schema change the MySQL sink cannot replay stops only that table (recorded in
/// `cdc.cdc_stopped_tables`); the other tables go on, also after a restart.
#[test]
fn an_ambiguous_schema_change_stops_only_that_table() {
    let pg = shared_pg15();
    let db = pg.create_db("mystop");
    pg.sql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, a text, b int); INSERT INTO t VALUES (1, 'x', 1);
         CREATE TABLE u (id int PRIMARY KEY, v int); INSERT INTO u VALUES (1, 1);",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_to_mariadb(dir.path(), "mystop", &db);
    {
        let _cdc = spawn_cdc(&config);
        wait_for("SELECT COUNT(*) FROM mystop_public.u", "1", &config);
        pg.sql(
            &db,
            "ALTER TABLE t RENAME a TO x; ALTER TABLE t RENAME b TO y;
             BEGIN; INSERT INTO t VALUES (2, 'y', 2); INSERT INTO u VALUES (2, 2); COMMIT;",
        );
        wait_for("SELECT COUNT(*) FROM mystop_public.u", "2", &config);
        wait_for(
            "SELECT name, source_namespace, source_table FROM cdc.cdc_stopped_tables",
            "mystop\tpublic\tt",
            &config,
        );
    }
    let _cdc = spawn_cdc(&config);
    pg.sql(&db, "INSERT INTO t VALUES (3, 'z', 3); INSERT INTO u VALUES (3, 3);");
    wait_for("SELECT COUNT(*) FROM mystop_public.u", "3", &config);
    wait_for("SELECT COUNT(*) FROM mystop_public.t", "1", &config);
    assert!(cdc_log(&config).contains("Not applying changes to this table"), "{}", cdc_log(&config));
}

/// Inserts (snapshot rows and streamed ones) go through `LOAD DATA LOCAL INFILE` when the
/// position is kept in the target: every character the file format reads specially (tab,
/// newline, CR, backslash, `\N`, the word NULL, quotes, NUL bytes in bytea) arrives intact, as
/// do the other types; a table with a BIT column goes as INSERTs.
#[test]
fn inserts_go_through_load_data_with_every_value_intact() {
    let pg = shared_pg15();
    let db = pg.create_db("loaddata");
    pg.sql(
        &db,
        "CREATE TYPE mood AS ENUM ('ok', 'it''s');
         CREATE TABLE loaded (id int PRIMARY KEY, t text, vc varchar(10), by bytea, j jsonb, js json, d date,
           ts timestamp(6), tstz timestamptz, tt timetz, iv interval, u uuid, n numeric(12,3), f4 real, f8 float8,
           b bool, arr int[], tarr text[], m mood, vb varbit);
         CREATE TABLE flags (id int PRIMARY KEY, bits bit(3));
         INSERT INTO loaded VALUES
           (1, E'tab\\there new\\nline back\\\\slash \\\\N cr\\r end ''q''', 'ünï', '\\x00090a0d5c4e27',
            '{\"k\": \"a\\tb\\\\c\", \"q\": \"it''s\"}', E'[1,\\n\\t2]', '2024-02-29', '1999-12-31 23:59:59.999999',
            '2038-01-19 03:14:08+00', '13:00:00+05:30', '1 year 2 mons 3 days 04:05:06.5',
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', -123456789.125, 1.5, 2.5e-300, true, '{1,NULL,3}',
            ARRAY['a\"b', E'c\\td', NULL], 'it''s', B'1011'),
           (2, 'NULL', '', '\\x', 'null', '[]', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, '{}', '{}',
            'ok', B''),
           (3, '\\N', '\\', '\\x5c4e', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL),
           (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL);
         INSERT INTO flags VALUES (1, B'101');",
    );
    let dir = tempfile::tempdir().unwrap();
    let my = shared_mariadb();
    let config = postgres_to_mariadb(dir.path(), "loaddata", &db);
    let _cdc = spawn_cdc(&config);
    wait_for("SELECT COUNT(*) FROM loaddata_public.loaded", "4", &config);
    // The same rows again, streamed, and a larger streamed insert.
    pg.sql(
        &db,
        "INSERT INTO loaded SELECT id + 4, t, vc, by, j, js, d, ts, tstz, tt, iv, u, n, f4, f8, b, arr, tarr, m, vb
           FROM loaded;
         INSERT INTO loaded (id, t, n) SELECT g, 'row ' || g, g / 7.0 FROM generate_series(100, 2099) g;
         INSERT INTO flags VALUES (2, B'011');",
    );
    wait_for("SELECT COUNT(*) FROM loaddata_public.loaded", "2008", &config);
    wait_for("SELECT COUNT(*) FROM loaddata_public.flags", "2", &config);
    // The bytes of every text and binary value, as the source has them.
    let want = pg.sql(
        &db,
        "SELECT string_agg(concat_ws(',', id, coalesce(upper(encode(convert_to(t, 'UTF8'), 'hex')), '-'),
           coalesce(upper(encode(convert_to(vc, 'UTF8'), 'hex')), '-'), coalesce(upper(encode(by, 'hex')), '-'),
           coalesce(upper(encode(convert_to(j::text, 'UTF8'), 'hex')), '-'),
           coalesce(upper(encode(convert_to(js::text, 'UTF8'), 'hex')), '-'), coalesce(m::text, '-')), E'\\n' ORDER BY id)
         FROM loaded WHERE id < 100",
    );
    wait_for(
        "SELECT CONCAT_WS(',', id, COALESCE(HEX(t), '-'), COALESCE(HEX(vc), '-'), COALESCE(HEX(`by`), '-'),
           COALESCE(HEX(j), '-'), COALESCE(HEX(js), '-'), COALESCE(m, '-')) FROM loaddata_public.loaded
         WHERE id < 100 ORDER BY id",
        &want,
        &config,
    );
    wait_for(
        "SELECT id, d, ts, tstz, tt, iv, u, n, f4, f8, b, arr, tarr, vb FROM loaddata_public.loaded WHERE id IN (1, 5)",
        "1\t2024-02-29\t1999-12-31 23:59:59.999999\t2038-01-19 03:14:08.000000\t13:00:00+05:30\t\
         14 mons 3 days 14706500000 microseconds\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t-123456789.125\t1.5\t2.5e-300\t1\t\
         [1,null,3]\t[\"a\\\\\"b\",\"c\\\\td\",null]\t1011\n\
         5\t2024-02-29\t1999-12-31 23:59:59.999999\t2038-01-19 03:14:08.000000\t13:00:00+05:30\t\
         14 mons 3 days 14706500000 microseconds\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t-123456789.125\t1.5\t2.5e-300\t1\t\
         [1,null,3]\t[\"a\\\\\"b\",\"c\\\\td\",null]\t1011",
        &config,
    );
    let log = cdc_log(&config);
    assert!(log.contains("Prepared target table table=`loaddata_public`.`loaded` load_data=true"), "{log}");
    assert!(log.contains("Prepared target table table=`loaddata_public`.`flags` load_data=false"), "{log}");
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK   public.loaded → loaddata_public.loaded: 2008 rows"), "{out}");
    // verify compares the types kept as text by their text: a changed interval is a difference.
    my.sql("UPDATE loaddata_public.loaded SET iv = '14 mons 3 days 1 microseconds' WHERE id = 5");
    let (code, out) = cdc_verify(&config);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("key (5): column iv: source 14 mons 3 days 14706500000 microseconds, target 14 mons"),
        "{out}"
    );
}

/// `LOAD DATA LOCAL` skips a duplicate and cuts a value that does not fit, with a warning
/// only: cdc turns each into the error the row would have raised, so the pipeline stops with
/// the target's message and nothing of the transaction is applied; once the target is fixed,
/// a restart applies every row once.
#[test]
fn rows_the_target_refuses_through_load_data_stop_the_pipeline_and_nothing_is_lost() {
    let pg = shared_pg15();
    let db = pg.create_db("loadrefused");
    pg.sql(&db, "CREATE TABLE orders (id int PRIMARY KEY, code text, qty int); INSERT INTO orders VALUES (1, 'a', 1), (2, 'a', 2);");
    let my = shared_mariadb();
    my.sql(
        "CREATE DATABASE loadrefused_public;
         CREATE TABLE loadrefused_public.orders (id INT PRIMARY KEY, code VARCHAR(3), qty INT, UNIQUE KEY one_code (code));",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = postgres_to_mariadb(dir.path(), "loadrefused", &db);
    // The last line of the log of a cdc run that stopped (within 60 s).
    let last_line = |cdc: &mut harness::ChildGuard| {
        let (_, log) = wait_exit(cdc, &config, Duration::from_secs(60));
        log.lines().last().unwrap_or_default().to_string()
    };
    let run_until_exit = || last_line(&mut spawn_cdc(&config));
    let last = run_until_exit();
    assert!(
        last.starts_with("cdc: error: the target refused 2 rows loaded into `loadrefused_public`.`orders`: ")
            && last.contains("Duplicate entry 'a' for key 'one_code' (error 1062)")
            && last.contains("remedy:"),
        "{last}"
    );
    assert_eq!(my.sql("SELECT COUNT(*) FROM loadrefused_public.orders"), "0");
    my.sql("ALTER TABLE loadrefused_public.orders DROP KEY one_code");
    pg.sql(&db, "INSERT INTO orders VALUES (3, 'abcdef', 3)");
    let last = run_until_exit();
    assert!(
        last.contains("Data truncated for column 'code'")
            && last.contains("remedy: the target column's type cannot hold the value; widen it"),
        "{last}"
    );
    assert_eq!(my.sql("SELECT COUNT(*) FROM loadrefused_public.orders"), "0");
    my.sql("ALTER TABLE loadrefused_public.orders MODIFY code VARCHAR(10)");
    let mut cdc = spawn_cdc(&config);
    pg.sql(&db, "INSERT INTO orders VALUES (4, 'd', 4)");
    wait_for(
        "SELECT id, code, qty FROM loadrefused_public.orders ORDER BY id",
        "1\ta\t1\n2\ta\t2\n3\tabcdef\t3\n4\td\t4",
        &config,
    );
    // A source transaction of 3 000 inserts streams through one LOAD DATA over several
    // batches; a row the target already has, in its third batch, stops it the same way.
    my.sql("INSERT INTO loadrefused_public.orders VALUES (2500, 'there', 0)");
    pg.sql(&db, "INSERT INTO orders SELECT g, 'n' || g, g FROM generate_series(100, 3099) g");
    let last = last_line(&mut cdc);
    assert!(
        // "rows", not "N rows": the rows went through one LOAD DATA streaming over the batches.
        last.contains(
            "refused rows loaded into `loadrefused_public`.`orders`: Duplicate entry '2500' for key 'PRIMARY'"
        ),
        "{last}"
    );
    assert_eq!(my.sql("SELECT COUNT(*) FROM loadrefused_public.orders"), "5", "none of the transaction applied");
    my.sql("DELETE FROM loadrefused_public.orders WHERE id = 2500");
    let _cdc = spawn_cdc(&config);
    wait_for("SELECT COUNT(*), SUM(qty) FROM loadrefused_public.orders", "3004\t4798510", &config);
}

/// A crash after DDL committed part of a source transaction (MySQL commits implicitly before
/// DDL) and before that transaction's commit: the restart reads the whole transaction again,
/// and its first inserts are on the target already. The positions table marks that case, and
/// the replayed inserts go as upserts (LOAD DATA would stop on the duplicates); the mark goes
/// with the transaction's commit.
#[test]
fn a_transaction_partly_committed_by_ddl_is_replayed_without_duplicates() {
    let pg = shared_pg15();
    let db = pg.create_db("partial");
    pg.sql(&db, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');");
    let dir = tempfile::tempdir().unwrap();
    let my = shared_mariadb();
    let config = postgres_to_mariadb(dir.path(), "partial", &db);
    {
        let _cdc = spawn_cdc(&config);
        wait_for("SELECT COUNT(*) FROM partial_public.t", "1", &config);
        wait_for("SELECT COUNT(*) FROM cdc.cdc_positions WHERE name = 'partial'", "1", &config);
    }
    // While cdc is down: one source transaction of ten inserts.
    pg.sql(&db, "INSERT INTO t SELECT g, 'v' || g FROM generate_series(10, 19) g");
    // What a crash leaves after DDL committed the first half of it.
    my.sql(
        "USE partial_public; INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_10_to_14;
         INSERT INTO cdc.cdc_positions (name, position) VALUES ('partial#partial', 'a source transaction partly committed')",
    );
    let _cdc = spawn_cdc(&config);
    wait_for(
        "SELECT COUNT(*), MIN(id), MAX(id), SUM(v = CONCAT('v', id)) FROM partial_public.t",
        "11\t1\t19\t10",
        &config,
    );
    wait_for("SELECT COUNT(*) FROM cdc.cdc_positions WHERE name = 'partial#partial'", "0", &config);
    // Later transactions load again.
    pg.sql(&db, "INSERT INTO t SELECT g, 'w' || g FROM generate_series(20, 29) g");
    wait_for("SELECT COUNT(*) FROM partial_public.t", "21", &config);
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 0, "{out}");
}
