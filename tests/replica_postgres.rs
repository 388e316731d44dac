//! `cdc run` with the PostgreSQL replica sink: PG → PG across major versions and MariaDB → PG,
//! checked by reading both databases back; crashes at random instants must neither lose nor
//! repeat a change.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use harness::{Postgres, cdc_log, cdc_verify, shared_mariadb, shared_pg15, spawn_cdc, wait_exit};

fn pg13() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start(13))
}

fn pg17() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start(17))
}

/// Config for `name` applying `source` (the `[source]` body) to `target_url`.
fn write_config(dir: &Path, name: &str, source: &str, target_url: &str, extra_sink: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\n[source]\n{source}\n[sink]\nkind = \"postgres\"\nurl = \"{target_url}\"\n{extra_sink}\n\
         [pipeline]\ncheckpoint_interval_ms = 20\n"
    );
    let path = dir.join("cdc.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn pg_source(pg: &Postgres, db: &str, tables: &str) -> String {
    format!("kind = \"postgres\"\nurl = \"{}\"\ntables = [{tables}]", pg.url(db))
}

/// Every row of `table`, in key order, as PostgreSQL prints it (UTC for timestamptz).
fn dump(pg: &Postgres, db: &str, table: &str) -> String {
    pg.sql(db, &format!("SET TimeZone = 'UTC'; SELECT * FROM {table} ORDER BY 1"))
}

/// Waits (60 s at most) until `table` reads the same on both sides; panics with both dumps.
fn wait_same(source: (&Postgres, &str), target: (&Postgres, &str), table: &str, config: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let want = dump(source.0, source.1, table);
        let target_has = target.0.sql(target.1, &format!("SELECT to_regclass('{table}') IS NOT NULL"));
        let got = if target_has == "t" { dump(target.0, target.1, table) } else { String::new() };
        if want == got {
            return;
        }
        if Instant::now() > deadline {
            let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
            let first = (0..w.len().max(g.len())).find(|&i| w.get(i) != g.get(i)).unwrap_or(0);
            panic!(
                "{table} differs: source {} rows, target {} rows; first difference at row {first}:\n\
                 source: {:?}\ntarget: {:?}\n--- cdc log\n{}",
                w.len(),
                g.len(),
                &w[first.min(w.len())..(first + 3).min(w.len())],
                &g[first.min(g.len())..(first + 3).min(g.len())],
                cdc_log(config)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const KINDS_DDL: &str = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (id int PRIMARY KEY, i2 int2, i8 int8, n numeric(20,5), nn numeric, f4 float4, f8 float8,
  b bool, t text, vc varchar(10), c char(3), by bytea, d date, tm time, ttz timetz, ts timestamp(3),
  tstz timestamptz, iv interval, u uuid, j json, jb jsonb, ip inet, ai int4[], at text[], m mood, bt bit(4),
  vb varbit(8));
CREATE TABLE scalars AS SELECT id, i2, i8, n, nn, f4, f8, b, t, vc, c, by, d, tm, ttz, ts, tstz, iv, u, j, jb, m, bt, vb
  FROM kinds;
ALTER TABLE scalars ADD PRIMARY KEY (id);";

/// `kinds` without the columns binary COPY does not write (inet, arrays): cdc writes this
/// table to the target in binary, `kinds` in text.
const SCALARS_COPY: &str =
    "INSERT INTO scalars SELECT id, i2, i8, n, nn, f4, f8, b, t, vc, c, by, d, tm, ttz, ts, tstz, iv,
  u, j, jb, m, bt, vb FROM kinds";

const KINDS_ROWS: &str = r#"INSERT INTO kinds VALUES
 (1, 1, 9223372036854775807, 123456789012345.12345, 'NaN', 'Infinity', -1.5e300, true, 'it''s "q" \ back',
  'abc', 'ab', '\x00ff27', '-infinity', '24:00:00', '13:00:00+05:30', '2000-01-01 00:00:00.123',
  '1999-12-31 23:59:59.999999+00', '1 year 2 mons -3 days 04:05:06.000007', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"a": [1, 2]}', '{"b": null}', '192.168.0.1/24', '{1,NULL,3}', '{{a,b},{"c,d",NULL}}', 'happy', B'1010', B'101'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, -32768, -9223372036854775808, -0.00001, 1e-30, '-Infinity', 'NaN', false, '', 'ünï©ødé', 'x', '\x',
  '0044-03-15 BC', '00:00:00.000001', '00:00:00-14', '0044-03-15 12:00:00 BC', 'infinity', '-178000000 years',
  '00000000-0000-0000-0000-000000000000', '[]', '{"k": "v", "a": 1}', '::1', '{}', '{"",NULL}', 'sad', B'0000', B'')"#;

/// The mixed workload of the issue on a source that already holds `kinds` and `orders`:
/// inserts, updates (key changes too), deletes, a transaction larger than a batch,
/// TRUNCATE, and column add / rename / drop.
fn mixed_workload(pg: &Postgres, db: &str) {
    pg.sql(db, KINDS_ROWS);
    pg.sql(db, SCALARS_COPY);
    pg.sql(
        db,
        "BEGIN; UPDATE kinds SET t = 'updated', f8 = 2.5 WHERE id = 1; UPDATE kinds SET id = 20 WHERE id = 2;
         DELETE FROM kinds WHERE id = 3; COMMIT;",
    );
    // Upserts through the staging table too (a key change is a delete and an insert).
    pg.sql(db, "UPDATE scalars SET t = E'tab\\there' WHERE id <> 2; UPDATE scalars SET id = 10 WHERE id = 1;");
    // More rows than one batch (1024 events) in one transaction.
    pg.sql(db, "INSERT INTO orders SELECT g, 'item ' || g, g % 7 FROM generate_series(1, 5000) g");
    pg.sql(
        db,
        "BEGIN; DELETE FROM orders WHERE id % 3 = 0; UPDATE orders SET qty = qty + 100 WHERE id % 5 = 0; COMMIT;",
    );
    pg.sql(db, "INSERT INTO scratch VALUES (1), (2); TRUNCATE scratch; INSERT INTO scratch VALUES (3);");
    // Added with a default: the rows not changed since are never in the log, yet read 'none'.
    pg.sql(
        db,
        "ALTER TABLE orders ADD COLUMN note text DEFAULT 'none'; UPDATE orders SET note = 'n' || id WHERE id < 10;",
    );
    pg.sql(db, "ALTER TABLE orders RENAME COLUMN item TO label; UPDATE orders SET label = 'renamed' WHERE id = 1;");
    pg.sql(db, "ALTER TABLE orders DROP COLUMN qty; INSERT INTO orders VALUES (9999, 'last', 'end');");
}

/// `via_socket`: cdc reaches the target through its Unix socket.
fn replicate_across_versions(source: &Postgres, target: &Postgres, name: &str, extra_sink: &str, via_socket: bool) {
    let db = source.create_db(name);
    source.sql(&db, KINDS_DDL);
    source.sql(
        &db,
        "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int); CREATE TABLE scratch (v int PRIMARY KEY);",
    );
    // A row for the snapshot.
    source.sql(
        &db,
        "INSERT INTO orders VALUES (-1, 'before snapshot', 1); INSERT INTO scalars (id, t) VALUES (-1, 'copied');",
    );
    let target_db = target.create_db(name);
    let dir = tempfile::tempdir().unwrap();
    let target_url = if via_socket { target.socket_url(&target_db) } else { target.url(&target_db) };
    let config = write_config(dir.path(), name, &pg_source(source, &db, "\"public.*\""), &target_url, extra_sink);
    let _cdc = spawn_cdc(&config);
    wait_same((source, &db), (target, &target_db), "orders", &config);
    mixed_workload(source, &db);
    for table in ["kinds", "scalars", "orders", "scratch"] {
        wait_same((source, &db), (target, &target_db), table, &config);
    }
    // The enum became text; every other column kept its type.
    let types = target.sql(
        &target_db,
        "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) FROM information_schema.columns \
         WHERE table_name = 'kinds' AND column_name IN ('n', 'ts', 'ip', 'ai', 'm', 'vb')",
    );
    assert_eq!(types, "n numeric, ts timestamp without time zone, ip inet, ai ARRAY, m text, vb bit varying");
    // Each table copied got its primary key after its copy.
    let keys = target.sql(
        &target_db,
        "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         WHERE i.indisprimary AND c.relname IN ('kinds', 'orders', 'scalars', 'scratch')",
    );
    assert_eq!(keys, "kinds,orders,scalars,scratch");
    // Both COPY formats were used: binary where every column has a binary form, else text.
    let log = cdc_log(&config);
    assert!(log.contains("\"scalars\" copy=binary") && log.contains("\"kinds\" copy=text"), "{log}");
    assert!(cdc_log(&config).contains("key_after_copy=true"), "{}", cdc_log(&config));
    if via_socket {
        let over_socket = target.sql(
            "postgres",
            &format!("SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = '{target_db}' AND application_name = 'cdc' AND client_addr IS NULL"),
        );
        assert_eq!(over_socket, "t", "cdc's target connection is not on the Unix socket");
    }
    // The applied position is in the target, and it is the source's newest.
    let stored = target.sql(&target_db, &format!("SELECT position FROM cdc_positions WHERE name = '{name}'"));
    assert!(stored.starts_with("pg:lsn="), "{stored}");

    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK   public.orders → public.orders: 3336 rows"), "{out}");
    assert!(out.ends_with("SAME: 4 tables, 3343 source rows, 3343 target rows\n"), "{out}");
    // A replica changed behind cdc's back: verify names each row and exits 2.
    target.sql(
        &target_db,
        "UPDATE orders SET label = 'tampered' WHERE id = 2; DELETE FROM orders WHERE id = 4; \
         INSERT INTO orders VALUES (100000, 'extra', NULL); UPDATE kinds SET ai = '{1,2}' WHERE id = 1;",
    );
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 2, "{out}");
    for line in [
        "DIFF public.orders → public.orders: source 3336 rows, target 3336 rows; 1 missing on the target, 1 extra, 1 different",
        "     key (2): column label: source item 2, target tampered",
        "     key (4): missing on the target",
        "     key (100000): extra on the target (deleted on the source?)",
        "     key (1): column ai: source [1,NULL,3], target [1,2]",
        "DIFFERENT: 4 tables, 3343 source rows, 3343 target rows",
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in:\n{out}");
    }
}

#[test]
fn pg13_to_pg17_mixed_workload() {
    replicate_across_versions(pg13(), pg17(), "up13to17", "", false);
}

#[test]
fn pg13_to_pg17_mixed_workload_on_three_connections() {
    replicate_across_versions(pg13(), pg17(), "up13to17par", "apply_connections = 3", false);
}

#[test]
fn pg17_to_pg15_mixed_workload() {
    replicate_across_versions(pg17(), shared_pg15(), "down17to15", "", true);
}

#[test]
fn mariadb_to_postgres_type_mapping_and_edge_values() {
    let my = shared_mariadb();
    let pg = shared_pg15();
    my.sql(
        "CREATE DATABASE myshop; CREATE TABLE myshop.items (id BIGINT UNSIGNED PRIMARY KEY, s TINYINT, u INT UNSIGNED,
           d DECIMAL(30,10), f FLOAT, db DOUBLE, vc VARCHAR(20), lat VARCHAR(10) CHARACTER SET latin1,
           bin VARBINARY(8), dt DATETIME(6), ts TIMESTAMP(3) NULL, dd DATE, tm TIME(1), y YEAR, j JSON,
           e ENUM('a','b'), st SET('x','y','z'), bt BIT(10), zd DATE NOT NULL) CHARACTER SET utf8mb4;
         CREATE TABLE myshop.nokey (a INT, b VARCHAR(5));",
    );
    let target_db = pg.create_db("frommaria");
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "kind = \"mysql\"\nurl = \"{}\"\nserver_id = 7301\ntables = [\"myshop.*\"]\nheartbeat_secs = 1",
        my.url("")
    );
    // At-least-once here (position in a file): every row goes through the upsert path.
    let positions = format!("[positions]\nstore = \"file\"\npath = \"{}\"", dir.path().join("pos.json").display());
    let config = write_config(dir.path(), "frommaria", &source, &pg.url(&target_db), &positions);
    let _cdc = spawn_cdc(&config);
    my.sql(
        "SET time_zone = '+00:00'; SET sql_mode = '';
         INSERT INTO myshop.items VALUES
          (18446744073709551615, -128, 4294967295, -12345678901234567890.0123456789, 1.5, -2.25e-300, 'naïve ☃',
           'café', 0x00FF27, '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.499', '1000-01-01', '-838:59:59.0',
           2155, '{\"k\": [1, \"x\"]}', 'b', 'x,z', b'1000000101', '0000-00-00'),
          (1, 0, 0, 0, 0, 0, '', '', '', '1970-01-01 00:00:00', NULL, '9999-12-31', '00:00:00', 1901, 'null', 'a', '',
           b'0', '2000-01-01');
         INSERT INTO myshop.nokey VALUES (1, 'a'), (1, 'a'), (2, 'b');
         UPDATE myshop.items SET vc = 'changed', id = 2 WHERE id = 1;
         DELETE FROM myshop.nokey WHERE a = 1 LIMIT 1; UPDATE myshop.nokey SET b = 'c' WHERE a = 2;",
    );
    let query = "SET TimeZone = 'UTC'; SELECT id, s, u, d, f, db, vc, lat, bin, dt, ts, dd, tm, y, j, e, st, bt, zd \
                 FROM myshop.items ORDER BY id";
    let want = "2|0|0|0.0000000000|0|0|changed||\\x|1970-01-01 00:00:00||9999-12-31|00:00:00|1901|null|a||0000000000|2000-01-01\n\
                18446744073709551615|-128|4294967295|-12345678901234567890.0123456789|1.5|-2.25e-300|naïve ☃|café|\\x00ff27|\
                2024-02-29 23:59:59.999999|2038-01-19 03:14:07.499+00|1000-01-01|-838:59:59|2155|{\"k\": [1, \"x\"]}|b|x,z|\
                1000000101|";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = pg.sql(&target_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'myshop'");
        if got == "2" && pg.sql(&target_db, "SELECT count(*) FROM myshop.nokey WHERE b = 'c'") == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "changes did not arrive:\n{}", cdc_log(&config));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(pg.sql(&target_db, query), want, "{}", cdc_log(&config));
    assert_eq!(pg.sql(&target_db, "SELECT a, b FROM myshop.nokey ORDER BY a, b"), "1|a\n2|c");
    // Every MySQL type here has a binary COPY form on PostgreSQL.
    assert!(cdc_log(&config).contains("\"items\" copy=binary"), "{}", cdc_log(&config));
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK   myshop.items → myshop.items: 2 rows"), "{out}");
    assert!(out.contains("OK   myshop.nokey → myshop.nokey: 2 rows"), "{out}");
    // Columns added with constant defaults: the row not changed since reads them on the target
    // too (no row event carries them; cdc takes them from the ALTER statement).
    my.sql(
        "ALTER TABLE myshop.items ADD COLUMN qty INT NOT NULL DEFAULT -5, ADD COLUMN note VARCHAR(10) DEFAULT 'it''s',
           ADD COLUMN since DATE DEFAULT '2024-02-29', ADD COLUMN price DECIMAL(6,2) DEFAULT 1.50;
         UPDATE myshop.items SET s = 1 WHERE id = 2;",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg.sql(&target_db, "SELECT count(*) FROM myshop.items WHERE id = 2 AND s = 1") != "1" {
        assert!(Instant::now() < deadline, "the update did not arrive:\n{}", cdc_log(&config));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        pg.sql(&target_db, "SELECT id, qty, note, since, price FROM myshop.items ORDER BY id"),
        "2|-5|it's|2024-02-29|1.50\n18446744073709551615|-5|it's|2024-02-29|1.50",
        "{}",
        cdc_log(&config)
    );
    // A row duplicated on the target of a table without a key is a difference, not lag.
    pg.sql(&target_db, "INSERT INTO myshop.nokey VALUES (2, 'c')");
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "DIFF myshop.nokey → myshop.nokey: source 2 rows, target 3 rows; 0 missing on the target, 1 extra, 0 different\n"
        ),
        "{out}"
    );
    let types = pg.sql(
        &target_db,
        "SELECT string_agg(column_name || ' ' || udt_name, ', ' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_schema = 'myshop' AND table_name = 'items'",
    );
    assert_eq!(
        types,
        "id numeric, s int2, u int8, d numeric, f float4, db float8, vc text, lat text, bin bytea, dt timestamp, \
         ts timestamptz, dd date, tm interval, y int2, j text, e text, st text, bt bit, zd date, qty int4, note text, \
         since date, price numeric"
    );
}

/// Pseudo-random numbers for kill instants; the seed is printed so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next_in(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

#[test]
fn kill_9_during_apply_loses_nothing_and_applies_nothing_twice() {
    kill_9_during_apply("killapply", "");
}

#[test]
fn kill_9_during_parallel_apply_loses_nothing_and_applies_nothing_twice() {
    kill_9_during_apply("killparallel", "apply_connections = 3");
}

/// kill -9 at random instants while `name` applies a stream of small transactions that touch
/// the same rows again and again; checked with audit triggers on the target.
fn kill_9_during_apply(name: &str, extra_sink: &str) {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db(name);
    source.sql(
        &db,
        "CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL);
         CREATE TABLE events (id bigserial PRIMARY KEY, counter int NOT NULL);
         INSERT INTO counters SELECT g, 0 FROM generate_series(1, 20) g;",
    );
    // The target tables exist already (accepted as compatible), with audit triggers that log
    // every row the sink writes: a change applied twice shows up as a second audit row.
    let target_db = target.create_db(name);
    // `at` orders the audit rows as they were written, whichever connection wrote them.
    target.sql(
        &target_db,
        "CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL);
         CREATE TABLE events (id bigint PRIMARY KEY, counter int NOT NULL);
         CREATE TABLE audit (tbl text, id bigint, op text, n int, at bigserial);
         CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF TG_TABLE_NAME = 'counters' THEN
               INSERT INTO audit (tbl, id, op, n) VALUES (TG_TABLE_NAME, NEW.id, TG_OP, NEW.n);
             ELSE
               INSERT INTO audit (tbl, id, op) VALUES (TG_TABLE_NAME, NEW.id, TG_OP);
             END IF;
             RETURN NULL;
           END $$;
         CREATE TRIGGER audit_counters AFTER INSERT OR UPDATE ON counters FOR EACH ROW EXECUTE FUNCTION audit_row();
         CREATE TRIGGER audit_events AFTER INSERT OR UPDATE ON events FOR EACH ROW EXECUTE FUNCTION audit_row();",
    );
    let dir = tempfile::tempdir().unwrap();
    let config =
        write_config(dir.path(), name, &pg_source(source, &db, "\"public.*\""), &target.url(&target_db), extra_sink);

    // The workload: small transactions touching two counters and logging an event, and now
    // and then one larger than a batch (3000 events), so kills land inside those too.
    let mut script = String::new();
    for i in 0..2400u32 {
        let (a, b) = (i % 20 + 1, (i * 7) % 20 + 1);
        script.push_str(&format!(
            "BEGIN; UPDATE counters SET n = n + 1 WHERE id = {a}; UPDATE counters SET n = n + 1 WHERE id = {b}; \
             INSERT INTO events (counter) VALUES ({a}); COMMIT;\n"
        ));
        if i % 400 == 399 {
            script.push_str("INSERT INTO events (counter) SELECT 0 FROM generate_series(1, 3000);\n");
        }
        if i % 40 == 39 {
            script.push_str("SELECT pg_sleep(0.05);\n");
        }
    }
    let mut writer = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .arg(source.url(&db))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut cdc = spawn_cdc(&config);
    // The snapshot lands first, so every increment below is a streamed update.
    wait_same((source, &db), (target, &target_db), "counters", &config);
    {
        use std::io::Write;
        writer.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    }
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("kill instants seed {seed}");
    let mut rng = Lcg(seed);
    let mut kills = 0;
    while writer.try_wait().unwrap().is_none() || kills < 6 {
        std::thread::sleep(Duration::from_millis(rng.next_in(150, 900)));
        cdc.0.kill().unwrap();
        cdc.0.wait().unwrap();
        kills += 1;
        cdc = spawn_cdc(&config);
    }
    assert!(writer.wait().unwrap().success());
    for table in ["counters", "events"] {
        wait_same((source, &db), (target, &target_db), table, &config);
    }
    let log = cdc_log(&config);
    let resumed = log.matches("Resuming from stored position").count();
    assert!(resumed >= 3, "only {resumed} of {kills} restarts resumed from the target's position:\n{log}");

    // Each source change was applied exactly once: one audit row per counter increment (plus
    // the snapshot's insert), one insert and no update per event.
    let increments = source.sql(&db, "SELECT string_agg(id || ':' || n, ',' ORDER BY id) FROM counters");
    let applied = target.sql(
        &target_db,
        "SELECT string_agg(id || ':' || c, ',' ORDER BY id) FROM \
         (SELECT id, count(*) FILTER (WHERE op = 'UPDATE') AS c FROM audit WHERE tbl = 'counters' GROUP BY id) x",
    );
    assert_eq!(applied, increments, "counter updates applied ≠ made on the source");
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE tbl = 'counters' AND op = 'INSERT'"), "20");
    let events = source.sql(&db, "SELECT count(*) FROM events");
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE tbl = 'events' AND op = 'INSERT'"), events);
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE tbl = 'events' AND op = 'UPDATE'"), "0");
    // Audit values follow each counter's history in order: n = 1, 2, 3, … with no gap or repeat.
    let out_of_order = target.sql(
        &target_db,
        "SELECT count(*) FROM (SELECT id, n, row_number() OVER (PARTITION BY id ORDER BY at) AS k \
         FROM audit WHERE tbl = 'counters' AND op = 'UPDATE') x WHERE n <> k",
    );
    assert_eq!(out_of_order, "0");
}

/// Parallel apply on three target connections: independent transactions run at the same
/// time (their target transactions overlap), while every row's changes keep their source
/// order, key changes, re-inserted keys, TRUNCATE and DDL included, and the result is the
/// source's.
#[test]
fn parallel_apply_overlaps_independent_transactions_and_keeps_each_rows_order() {
    let source = shared_pg15();
    let target = pg17();
    let name = "parallel";
    let db = source.create_db(name);
    source.sql(
        &db,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, version int NOT NULL);
         CREATE TABLE log (id bigserial PRIMARY KEY, account int NOT NULL, amount int NOT NULL);
         CREATE TABLE items (id int PRIMARY KEY, v text);
         CREATE TABLE tags (tag text);
         INSERT INTO accounts SELECT g, 1000, 0 FROM generate_series(1, 10) g;
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;",
    );
    let target_db = target.create_db(name);
    // Audit triggers: which backend wrote each row change, in which transaction, in what order.
    target.sql(
        &target_db,
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, version int NOT NULL);
         CREATE TABLE log (id bigint PRIMARY KEY, account int NOT NULL, amount int NOT NULL);
         CREATE TABLE audit (tbl text, id bigint, op text, version int, pid int, tx bigint, at bigserial);
         CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO audit (tbl, id, op, version, pid, tx) VALUES (TG_TABLE_NAME, NEW.id, TG_OP,
               (to_jsonb(NEW) ->> 'version')::int, pg_backend_pid(), txid_current());
             RETURN NULL;
           END $$;
         CREATE TRIGGER audit_accounts AFTER INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION audit_row();
         CREATE TRIGGER audit_log AFTER INSERT ON log FOR EACH ROW EXECUTE FUNCTION audit_row();",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        name,
        &pg_source(source, &db, "\"public.*\""),
        &target.url(&target_db),
        "apply_connections = 3",
    );
    let _cdc = spawn_cdc(&config);
    wait_same((source, &db), (target, &target_db), "items", &config);

    // Independent transactions (large appends to `log`) between transactions that touch the
    // same rows: transfers between accounts, a key moved away and back, a row deleted and
    // inserted again with the same key, a TRUNCATE, a new column.
    let mut script = String::new();
    for i in 0..60u32 {
        let (a, b) = (i % 10 + 1, (i * 3 + 1) % 10 + 1);
        // Consecutive transactions touch the same account at opposite ends: run side by side
        // they would each lock the row the other needs.
        script.push_str(&format!(
            "BEGIN; INSERT INTO log (account, amount) SELECT {a}, g FROM generate_series(1, 1500) g; \
             UPDATE accounts SET balance = balance - {i}, version = version + 1 WHERE id = {a}; COMMIT;\n\
             BEGIN; UPDATE accounts SET balance = balance + {i}, version = version + 1 WHERE id = {a}; \
             INSERT INTO log (account, amount) SELECT {b}, g FROM generate_series(1, 1500) g; COMMIT;\n\
             UPDATE items SET id = id + 1000 WHERE id = {k};\nUPDATE items SET id = id - 1000, v = 'back {i}' WHERE id = {k} + 1000;\n\
             DELETE FROM items WHERE id = {d};\nINSERT INTO items VALUES ({d}, 'again {i}');\n\
             INSERT INTO tags VALUES ('t{i}');\n",
            k = i % 50 + 1,
            d = i % 50 + 51
        ));
        if i == 30 {
            script.push_str("TRUNCATE tags;\nALTER TABLE items ADD COLUMN extra int DEFAULT 7;\n");
        }
    }
    source.run_script(&db, &script);
    for table in ["accounts", "log", "items", "tags"] {
        wait_same((source, &db), (target, &target_db), table, &config);
    }
    // Each account's updates were applied once each, in source order: versions 1, 2, 3, …
    let out_of_order = target.sql(
        &target_db,
        "SELECT count(*) FROM (SELECT version, row_number() OVER (PARTITION BY id ORDER BY at) AS k \
         FROM audit WHERE tbl = 'accounts' AND op = 'UPDATE') x WHERE version <> k",
    );
    assert_eq!(out_of_order, "0");
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE tbl = 'accounts' AND op = 'UPDATE'"), "120");
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE tbl = 'log'"), "180000");
    // The work was spread over the connections, and target transactions ran at the same time.
    let pids = target.sql(&target_db, "SELECT count(DISTINCT pid) FROM audit");
    assert!(pids.parse::<u32>().unwrap() >= 2, "one connection wrote everything");
    let overlapping = target.sql(
        &target_db,
        "WITH t AS (SELECT tx, pid, min(at) AS first, max(at) AS last FROM audit GROUP BY tx, pid) \
         SELECT count(*) FROM t a JOIN t b ON a.tx < b.tx AND a.pid <> b.pid AND a.first < b.last AND b.first < a.last",
    );
    assert!(overlapping.parse::<u32>().unwrap() > 0, "no two target transactions overlapped\n{}", cdc_log(&config));
    let stored = target.sql(&target_db, &format!("SELECT position FROM cdc_positions WHERE name = '{name}'"));
    assert!(stored.starts_with("pg:lsn="), "{stored}");
    assert_applied_without_restart_and_verified(&config);
}

/// The run never restarted nor logged an error, and `cdc verify` finds no difference.
fn assert_applied_without_restart_and_verified(config: &Path) {
    let log = cdc_log(config);
    assert!(!log.contains("Restarting") && !log.contains("ERROR"), "{log}");
    let (code, out) = cdc_verify(config);
    assert_eq!(code, 0, "{out}");
}

/// Parallel apply with target tables that have constraints beyond the key: a unique column
/// whose values move between rows, and a foreign key from `child` to `parent`. Run side by
/// side out of order, these transactions would fail on the target (or wait for each other).
#[test]
fn parallel_apply_respects_unique_and_foreign_keys_on_the_target() {
    let source = shared_pg15();
    let target = pg17();
    let name = "parallelfk";
    let db = source.create_db(name);
    let ddl = "CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE, pad text);
         CREATE TABLE filler (id serial PRIMARY KEY, pad text);
         CREATE TABLE parent (id int PRIMARY KEY, pad text);
         CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent (id), pad text);";
    source.sql(&db, ddl);
    source.sql(&db, "INSERT INTO users SELECT g, 'u' || g, '' FROM generate_series(1, 20) g");
    let target_db = target.create_db(name);
    target.sql(&target_db, ddl);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        name,
        &pg_source(source, &db, "\"public.*\""),
        &target.url(&target_db),
        "apply_connections = 3",
    );
    let _cdc = spawn_cdc(&config);
    wait_same((source, &db), (target, &target_db), "users", &config);
    // Padding makes each transaction long enough to be caught up by the next one.
    let pad = "repeat('x', 200)";
    let mut script = String::new();
    // Each email moves to another user right after its owner gave it up.
    let mut emails: Vec<String> = (0..=20).map(|u| format!("u{u}")).collect();
    for i in 0..40u32 {
        let (a, b) = ((i % 20 + 1) as usize, ((i + 7) % 20 + 1) as usize);
        let freed = std::mem::replace(&mut emails[a], format!("moved{i}"));
        emails[b] = freed.clone();
        // The first transaction writes what the second needs at its very end; the second
        // starts with it (a batch holds one of them: 900 + 50 + 1 events).
        script.push_str(&format!(
            "BEGIN; INSERT INTO filler (pad) SELECT {pad} FROM generate_series(1, 900); \
             INSERT INTO parent SELECT {i} * 100 + g, {pad} FROM generate_series(1, 50) g; \
             UPDATE users SET email = 'moved{i}' WHERE id = {a}; COMMIT;\n\
             BEGIN; INSERT INTO child SELECT {i} * 100 + g, {i} * 100 + g, {pad} FROM generate_series(1, 50) g; \
             UPDATE users SET email = '{freed}' WHERE id = {b}; \
             INSERT INTO filler (pad) SELECT {pad} FROM generate_series(1, 900); COMMIT;\n\
             BEGIN; DELETE FROM child WHERE id = {i} * 100 + 1; DELETE FROM parent WHERE id = {i} * 100 + 1; COMMIT;\n"
        ));
    }
    source.run_script(&db, &script);
    for table in ["users", "parent", "child", "filler"] {
        wait_same((source, &db), (target, &target_db), table, &config);
    }
    assert_applied_without_restart_and_verified(&config);
}

/// Waits (60 s at most) until pipeline `name` has stored copy progress in the target.
fn wait_for_copy_progress(target: &Postgres, target_db: &str, name: &str, config: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while target.sql(target_db, "SELECT to_regclass('cdc_positions') IS NOT NULL") != "t"
        || !target
            .sql(target_db, &format!("SELECT position FROM cdc_positions WHERE name = '{name}'"))
            .contains(";snapshot=")
    {
        assert!(Instant::now() < deadline, "no copy progress on the target:\n{}", cdc_log(config));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// DDL committed while the initial copy is running, on a table not read yet: the copy reads
/// that table as of the snapshot (a query would see the new columns), and the stream replays
/// the change after it.
#[test]
fn a_schema_change_during_the_initial_copy_is_replayed_after_it() {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db("ddlcopy");
    source.sql(
        &db,
        "CREATE TABLE aaa (id int PRIMARY KEY, v text); \
         INSERT INTO aaa SELECT g, md5(g::text) FROM generate_series(1, 300000) g; \
         CREATE TABLE bbb (id int PRIMARY KEY, old text, keep int); \
         INSERT INTO bbb SELECT g, 'o' || g, g FROM generate_series(1, 100) g;",
    );
    let target_db = target.create_db("ddlcopy");
    let dir = tempfile::tempdir().unwrap();
    let source_cfg =
        format!("{}\nsnapshot_chunk_rows = 5000\nsnapshot_connections = 1", pg_source(source, &db, "\"public.*\""));
    let config = write_config(dir.path(), "ddlcopy", &source_cfg, &target.url(&target_db), "");
    let _cdc = spawn_cdc(&config);
    wait_for_copy_progress(target, &target_db, "ddlcopy", &config);
    source.sql(&db, "ALTER TABLE bbb ADD COLUMN added int DEFAULT 5; UPDATE bbb SET keep = -1 WHERE id = 1;");
    wait_same((source, &db), (target, &target_db), "bbb", &config);
    wait_same((source, &db), (target, &target_db), "aaa", &config);
    assert_applied_without_restart_and_verified(&config);
}

/// kill -9 during the initial copy: the restart goes on with the copy from the last chunk
/// committed on the target (not from the start), and the changes made meanwhile, which the
/// stream brings again over rows the resumed copy already read, converge to the source.
#[test]
fn kill_9_during_the_initial_copy_resumes_the_copy() {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db("killcopy");
    source.sql(
        &db,
        "CREATE TABLE big (id int PRIMARY KEY, v text); \
         INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g; \
         CREATE TABLE big2 (id int PRIMARY KEY, v text); \
         INSERT INTO big2 SELECT g, md5(g::text) FROM generate_series(1, 100000) g;",
    );
    let target_db = target.create_db("killcopy");
    let dir = tempfile::tempdir().unwrap();
    let source_cfg = format!("{}\nsnapshot_chunk_rows = 5000", pg_source(source, &db, "\"public.*\""));
    let config = write_config(dir.path(), "killcopy", &source_cfg, &target.url(&target_db), "");
    let stored = || target.sql(&target_db, "SELECT position FROM cdc_positions WHERE name = 'killcopy'");
    let mut cdc = spawn_cdc(&config);
    wait_for_copy_progress(target, &target_db, "killcopy", &config);
    // Changes after the copy's snapshot: new rows past the end (read by the resumed copy and
    // streamed again as inserts), updates and deletes on both sides of the copy's progress.
    source.sql(
        &db,
        "INSERT INTO big SELECT g, 'new' FROM generate_series(200001, 200100) g; \
         UPDATE big SET v = 'changed' WHERE id % 1000 = 0; DELETE FROM big WHERE id % 1000 = 1; \
         UPDATE big2 SET v = 'changed' WHERE id % 1000 = 0; DELETE FROM big2 WHERE id % 999 = 1;",
    );
    cdc.0.kill().unwrap();
    cdc.0.wait().unwrap();
    let at_kill = stored();
    assert!(at_kill.contains(";snapshot="), "the copy had finished before the kill: {at_kill}");
    // Two connections copy both tables at once: the progress holds both.
    assert!(at_kill.contains(r#"{"table":["public","big2"]"#), "big2 not read beside big: {at_kill}");
    let _cdc = spawn_cdc(&config);
    wait_same((source, &db), (target, &target_db), "big", &config);
    wait_same((source, &db), (target, &target_db), "big2", &config);
    let log = cdc_log(&config);
    assert!(log.contains("Snapshot resumed"), "the copy started again instead of going on:\n{log}");
    // The key, deferred while copying, was built when the restarted run found the table.
    assert!(log.contains("Added the primary key to the target table"), "{log}");
    let key = target.sql(
        &target_db,
        "SELECT count(*) FROM pg_index WHERE indrelid IN ('public.big'::regclass, 'public.big2'::regclass) AND indisprimary",
    );
    assert_eq!(key, "2");
    assert_eq!(log.matches("Snapshot started").count(), 1, "{log}");
    let (code, report) = cdc_verify(&config);
    assert_eq!(code, 0, "{report}");
}

/// Runs `cdc run` until it exits (60 s at most); returns whether it succeeded, and its log.
fn run_until_exit(config: &Path) -> (bool, String) {
    wait_exit(&mut spawn_cdc(config), config, Duration::from_secs(60))
}

#[test]
fn a_refused_row_stops_the_pipeline_and_nothing_after_it_is_applied() {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db("refused");
    source.sql(&db, "CREATE TABLE orders (id int PRIMARY KEY, qty int)");
    let target_db = target.create_db("refused");
    target.sql(&target_db, "CREATE TABLE orders (id int PRIMARY KEY, qty int CONSTRAINT small CHECK (qty < 100))");
    let dir = tempfile::tempdir().unwrap();
    let config =
        write_config(dir.path(), "refused", &pg_source(source, &db, "\"public.orders\""), &target.url(&target_db), "");
    source.sql(
        &db,
        "INSERT INTO orders VALUES (1, 10); INSERT INTO orders VALUES (2, 500); INSERT INTO orders VALUES (3, 30);",
    );
    let (ok, log) = run_until_exit(&config);
    assert!(!ok);
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("cdc: error: the target refused target table public.orders: ")
            && last.contains("violates check constraint \"small\"")
            && last.contains("remedy:"),
        "{log}"
    );
    // The snapshot transaction held all three rows: none of it is applied, no position stored.
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM orders"), "0");
    // Once the constraint is gone, a restart applies everything, once.
    target.sql(&target_db, "ALTER TABLE orders DROP CONSTRAINT small");
    source.sql(&db, "INSERT INTO orders VALUES (4, 40)");
    let _cdc = spawn_cdc(&config);
    wait_same((source, &db), (target, &target_db), "orders", &config);
}

#[test]
fn a_missing_target_table_is_a_definite_error_when_tables_are_not_created() {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db("missingtbl");
    source.sql(&db, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1);");
    let target_db = target.create_db("missingtbl");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "missingtbl",
        &pg_source(source, &db, "\"public.orders\""),
        &target.url(&target_db),
        "create_tables = false",
    );
    let (ok, log) = run_until_exit(&config);
    assert!(!ok);
    assert_eq!(
        log.lines().last().unwrap_or_default(),
        "cdc: error: target table public.orders (for source table public.orders) does not exist; \
         remedy: create it, or set sink.create_tables = true",
        "{log}"
    );
}

/// Databases `name` on both sides with an `events` table; the target's has an audit trigger
/// recording each INSERT and UPDATE applied, so a change applied twice shows.
fn audited_events(source: &Postgres, target: &Postgres, name: &str) -> (String, String) {
    let db = source.create_db(name);
    source.sql(&db, "CREATE TABLE events (id bigserial PRIMARY KEY, v int NOT NULL)");
    let target_db = target.create_db(name);
    target.sql(
        &target_db,
        "CREATE TABLE events (id bigint PRIMARY KEY, v int NOT NULL);
         CREATE TABLE audit (id bigint, op text);
         CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO audit VALUES (NEW.id, TG_OP); RETURN NULL; END $$;
         CREATE TRIGGER audit_events AFTER INSERT OR UPDATE ON events FOR EACH ROW EXECUTE FUNCTION audit_row();",
    );
    (db, target_db)
}

#[test]
fn dropped_target_connections_restart_from_the_target_position_without_repeats() {
    let source = shared_pg15();
    let target = pg17();
    let (db, target_db) = audited_events(source, target, "dropconn");
    let dir = tempfile::tempdir().unwrap();
    let http = harness::free_port();
    let config = write_config(
        dir.path(),
        "dropconn",
        &pg_source(source, &db, "\"public.events\""),
        &target.url(&target_db),
        &format!("[http]\nlisten = \"127.0.0.1:{http}\""),
    );
    let _cdc = spawn_cdc(&config);
    // Transactions of 2500 rows span three batches: a dropped connection in the middle of one
    // loses the open target transaction, which the restart must redo exactly once.
    let mut terminated = 0;
    let cdc_connections = format!("FROM pg_stat_activity WHERE datname = '{target_db}' AND application_name = 'cdc'");
    for round in 0..8 {
        source.sql(&db, &format!("INSERT INTO events (v) SELECT {round} FROM generate_series(1, 2500)"));
        // Wait for the (re)connected sink, then cut it at a varying point of the apply.
        let deadline = Instant::now() + Duration::from_secs(10);
        while target.sql("postgres", &format!("SELECT count(*) {cdc_connections}")) == "0" {
            assert!(Instant::now() < deadline, "cdc never reconnected:\n{}", cdc_log(&config));
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(20 * (round % 4)));
        let n = target.sql("postgres", &format!("SELECT count(pg_terminate_backend(pid)) {cdc_connections}"));
        terminated += n.parse::<u32>().unwrap();
    }
    wait_same((source, &db), (target, &target_db), "events", &config);
    assert!(terminated >= 4, "only {terminated} connections were dropped");
    let log = cdc_log(&config);
    assert!(log.contains("Restarting the pipeline from the stored position"), "{log}");
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE op = 'INSERT'"), "20000");
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE op = 'UPDATE'"), "0");
    // Caught up: the replica's lag reads zero and its position is the source's.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = harness::cdc_status(http).unwrap_or_default();
        if s["lag_events"] == 0 && s["checkpointed_position"] == s["source_position"] {
            assert_eq!(s["applied_lag_seconds"], 0.0, "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "lag never reached zero: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_ambiguous_schema_change_stops_the_pipeline_naming_the_table() {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db("ambiguous");
    source.sql(&db, "CREATE TABLE t (id int PRIMARY KEY, a text, b int); INSERT INTO t VALUES (1, 'x', 1);");
    let target_db = target.create_db("ambiguous");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "ambiguous",
        &pg_source(source, &db, "\"public.t\""),
        &target.url(&target_db),
        "unreplayable_schema_change = \"stop_pipeline\"",
    );
    let mut cdc = spawn_cdc(&config);
    wait_same((source, &db), (target, &target_db), "t", &config);
    // Two renames before the next change: one new schema with two columns gone and two new.
    source.sql(&db, "ALTER TABLE t RENAME a TO x; ALTER TABLE t RENAME b TO y; INSERT INTO t VALUES (2, 'y', 2);");
    let (ok, log) = wait_exit(&mut cdc, &config, Duration::from_secs(30));
    assert!(!ok);
    assert_eq!(
        log.lines().last().unwrap_or_default(),
        "cdc: error: columns of public.t were dropped (a, b) and added (x, y) in one change: renames cannot be told \
         from drops, so it is not replayed; remedy: apply the same DDL to the target table by hand, then restart cdc",
        "{log}"
    );
    // Nothing of the transaction that brought the change was applied.
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM t"), "1");
}

/// By default a schema change cdc cannot replay stops only that table: it is recorded in
/// `cdc_stopped_tables` with the reason, its later changes are not applied (also after a
/// restart), the other tables go on, and `verify` reports the table as different.
#[test]
fn an_ambiguous_schema_change_stops_only_that_table() {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db("stoptable");
    source.sql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, a text, b int); INSERT INTO t VALUES (1, 'x', 1);
         CREATE TABLE u (id int PRIMARY KEY, v int); INSERT INTO u VALUES (1, 1);",
    );
    let target_db = target.create_db("stoptable");
    let dir = tempfile::tempdir().unwrap();
    let config =
        write_config(dir.path(), "stoptable", &pg_source(source, &db, "\"public.*\""), &target.url(&target_db), "");
    {
        let _cdc = spawn_cdc(&config);
        wait_same((source, &db), (target, &target_db), "t", &config);
        source.sql(
            &db,
            "ALTER TABLE t RENAME a TO x; ALTER TABLE t RENAME b TO y;
             BEGIN; INSERT INTO t VALUES (2, 'y', 2); INSERT INTO u VALUES (2, 2); COMMIT;",
        );
        wait_same((source, &db), (target, &target_db), "u", &config);
        let log = cdc_log(&config);
        let line = log.lines().find(|l| l.contains("Stopped applying changes")).unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains("public.t") && line.contains("renames cannot be told from drops"), "{line}");
    }
    assert_eq!(
        target.sql(&target_db, "SELECT name, source_namespace, source_table FROM cdc_stopped_tables"),
        "stoptable|public|t"
    );
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM t"), "1", "t's change after the refused DDL was applied");
    // After a restart t stays stopped; u goes on.
    let _cdc = spawn_cdc(&config);
    source.sql(&db, "INSERT INTO t VALUES (3, 'z', 3); INSERT INTO u VALUES (3, 3);");
    wait_same((source, &db), (target, &target_db), "u", &config);
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM t"), "1");
    let (code, report) = cdc_verify(&config);
    assert_ne!(code, 0, "verify must report the stopped table: {report}");
    assert!(report.contains("public.t"), "{report}");
}

/// Rows whose key is not an integer are looked up again by their key after the lag wait: a
/// real difference stays a difference (it must not pass as lag because the lookup failed).
#[test]
fn verify_rechecks_rows_by_timestamp_keys() {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db("tskeys");
    source.sql(
        &db,
        "CREATE TABLE readings (at timestamptz PRIMARY KEY, v numeric(6,2));
         INSERT INTO readings VALUES ('2024-01-01 00:00:00+00', 1.50), ('2024-01-02 12:30:00.25+00', 2.00),
           ('2024-01-03 00:00:00+00', 3.25);",
    );
    let target_db = target.create_db("tskeys");
    let dir = tempfile::tempdir().unwrap();
    let config =
        write_config(dir.path(), "tskeys", &pg_source(source, &db, "\"public.*\""), &target.url(&target_db), "");
    let _cdc = spawn_cdc(&config);
    wait_same((source, &db), (target, &target_db), "readings", &config);
    target.sql(
        &target_db,
        "DELETE FROM readings WHERE at = '2024-01-02 12:30:00.25+00'; UPDATE readings SET v = 9 WHERE v = 3.25;",
    );
    let (code, out) = cdc_verify(&config);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "DIFF public.readings → public.readings: source 3 rows, target 2 rows; 1 missing on the target, 0 extra, 1 different\n"
        ),
        "{out}"
    );
    assert!(!out.contains("because of lag"), "{out}");
}

/// The target refuses every connection for a while (its database closed to connections, the
/// open ones terminated) while the source keeps changing: cdc waits and retries instead of
/// stopping, then catches up with every change applied exactly once.
#[test]
fn target_down_for_a_while_then_everything_applied_once() {
    let source = shared_pg15();
    let target = pg17();
    let (db, target_db) = audited_events(source, target, "targetdown");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "targetdown",
        &pg_source(source, &db, "\"public.events\""),
        &target.url(&target_db),
        "",
    );
    let mut cdc = spawn_cdc(&config);
    source.sql(&db, "INSERT INTO events (v) SELECT 0 FROM generate_series(1, 1000)");
    wait_same((source, &db), (target, &target_db), "events", &config);
    // Down: no new connections, the open ones cut.
    target.sql(
        "postgres",
        &format!(
            "ALTER DATABASE {target_db} ALLOW_CONNECTIONS false;
             SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{target_db}';"
        ),
    );
    for round in 1..=5 {
        source.sql(&db, &format!("INSERT INTO events (v) SELECT {round} FROM generate_series(1, 1000)"));
        source.sql(&db, &format!("UPDATE events SET v = v + 100 WHERE id % 97 = {round}"));
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(cdc.0.try_wait().unwrap().is_none(), "cdc stopped while the target was down:\n{}", cdc_log(&config));
    target.sql("postgres", &format!("ALTER DATABASE {target_db} ALLOW_CONNECTIONS true"));
    wait_same((source, &db), (target, &target_db), "events", &config);
    let updated: u64 = source.sql(&db, "SELECT count(*) FROM events WHERE v >= 100").parse().unwrap();
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE op = 'INSERT'"), "6000");
    assert_eq!(target.sql(&target_db, "SELECT count(*) FROM audit WHERE op = 'UPDATE'"), updated.to_string());
}

/// The initial copy leaves the target tables about as compact as the source's: a COPY goes on
/// over the batches of a chunk, because each COPY statement inside a transaction leaves the
/// pages PostgreSQL extended the table by ahead of it unused (with one COPY per 1 024-row batch
/// this table came out 25 % larger than the source's). Two tables read at once arrive
/// interleaved batch by batch; each table's COPY still goes on over them.
#[test]
fn the_initial_copy_leaves_no_bloat() {
    let source = shared_pg15();
    let target = pg17();
    let db = source.create_db("compact");
    source.sql(
        &db,
        "CREATE TABLE t (id bigint PRIMARY KEY, a int, b bigint, c varchar(64), d numeric(12,2), e float8,
           f timestamp, g timestamptz(3), h date, i text, j bool, k smallint);
         INSERT INTO t SELECT g, g % 100000, g * 7, 'name-' || g || '-' || repeat('x', 40), g / 100.0, g * 1.5,
           now(), now(), current_date, repeat('t', 60), g % 2 = 0, g % 100 FROM generate_series(1, 100000) g;
         CREATE TABLE t2 AS SELECT * FROM t; ALTER TABLE t2 ADD PRIMARY KEY (id);",
    );
    let target_db = target.create_db("compact");
    let dir = tempfile::tempdir().unwrap();
    let source_cfg = format!(
        "{}\nsnapshot = \"initial_only\"\nsnapshot_connections = 2",
        pg_source(source, &db, "\"public.t\", \"public.t2\"")
    );
    let config = write_config(dir.path(), "compact", &source_cfg, &target.url(&target_db), "");
    let (ok, log) = run_until_exit(&config);
    assert!(ok, "{log}");
    assert!(log.contains("connections=2"), "{log}");
    for table in ["t", "t2"] {
        assert_eq!(dump(source, &db, table), dump(target, &target_db, table));
        let size = |pg: &Postgres, db: &str| {
            pg.sql(db, &format!("SELECT pg_relation_size('{table}')")).parse::<u64>().unwrap()
        };
        let (source_size, target_size) = (size(source, &db), size(target, &target_db));
        assert!(
            target_size * 100 <= source_size * 105,
            "{table}: target table {target_size} bytes, source {source_size}"
        );
    }
}
