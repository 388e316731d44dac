# Shell helpers shared by demo.sh and the benchmark scripts. Source it; needs $DIR (a temp dir).

# bench_init: how a benchmark starts: the setup script, a release build, a temp dir ($DIR), and a
# trap at exit that stops cdc ($CDC_PID) and the servers listed in PIDS, keeps cdc's log
# ($DIR/cdc.log) as /tmp/last-cdc.log and removes $DIR.
bench_init() {
  bash scripts/setup.sh
  cargo build --release --quiet
  DIR="$(mktemp -d /tmp/cdc-bench-XXXXXX)"
  CDC_PID=""
  PIDS=()
  trap bench_cleanup EXIT
}

# Each step may fail (a process already gone) without stopping the rest.
bench_cleanup() {
  [ -z "$CDC_PID" ] || kill "$CDC_PID" 2>/dev/null || true
  [ "${#PIDS[@]}" -eq 0 ] || kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  cp "$DIR/cdc.log" /tmp/last-cdc.log 2>/dev/null || true
  rm -rf "$DIR"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_mariadb PORT: a private MariaDB in $DIR with the binlog settings cdc needs.
# Sets MARIADB_PID and SOCK; `sql "..."` then runs statements as root.
start_mariadb() {
  local port="$1"
  SOCK="$DIR/sock"
  # Its own tmpdir: bootstraps sharing /tmp can collide on temporary table names.
  mkdir -p "$DIR/tmp"
  mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal --skip-test-db \
    --datadir="$DIR/data" --tmpdir="$DIR/tmp" >/dev/null
  mariadbd --no-defaults --user=root --datadir="$DIR/data" --port="$port" --bind-address=127.0.0.1 \
    --socket="$SOCK" --pid-file="$DIR/pid" --log-error="$DIR/server.log" --log-bin="$DIR/mariadb-bin" \
    --server-id=1 --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --gtid-strict-mode=ON --innodb-buffer-pool-size=256M --max-allowed-packet=256M "${@:2}" &
  MARIADB_PID=$!
  for _ in $(seq 1 200); do
    mariadb --no-defaults -uroot -S "$SOCK" -e 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "MariaDB did not start; see $DIR/server.log" >&2
  return 1
}

sql() { mariadb --no-defaults --default-character-set=utf8mb4 -uroot -S "$SOCK" -N -B -e "$1"; }

# start_postgres PORT [BIN_DIR] [NAME]: a private PostgreSQL (15 from Debian by default) in
# $DIR/NAME with wal_level=logical, trust auth on 127.0.0.1. initdb refuses root, so the
# server runs as the `postgres` user when we are root. Sets POSTGRES_PID and PG_URL (database
# postgres); `psql_run "..."` then runs SQL there.
start_postgres() {
  local port="$1" bin="${2:-/usr/lib/postgresql/15/bin}" dir="$DIR/${3:-pg}" as=()
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$DIR" "$dir"
    as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  env -u LD_LIBRARY_PATH "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --locale=C -E UTF8 >/dev/null
  env -u LD_LIBRARY_PATH "${as[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" \
    -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 \
    >"$dir/postgres.log" 2>&1 &
  POSTGRES_PID=$!
  PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  for _ in $(seq 1 200); do
    psql -X -q -c 'SELECT 1' "$PG_URL" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "PostgreSQL did not start; see $dir/postgres.log" >&2
  return 1
}

psql_run() { psql -X -q -v ON_ERROR_STOP=1 -c "$1" "$PG_URL"; }

# start_tansu PORT: the Kafka-protocol broker the tests use (memory storage). Sets TANSU_PID.
start_tansu() {
  local port="$1" bin="${CDC_TEST_PREFIX:-/opt/cdc-test}/tansu/bin/tansu"
  "$bin" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$DIR/tansu.log" 2>&1 &
  TANSU_PID=$!
  for _ in $(seq 1 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "tansu did not start; see $DIR/tansu.log" >&2
  return 1
}

# load_mariadb_rows ROWS TX_ROWS: bench.t, 12 mixed columns, ~200 bytes a row.
load_mariadb_rows() {
  local rows="$1" tx="$2"
  sql "CREATE DATABASE IF NOT EXISTS bench; CREATE TABLE bench.t (
    id BIGINT PRIMARY KEY, a INT, b BIGINT UNSIGNED, c VARCHAR(64), d DECIMAL(12,2), e DOUBLE,
    f DATETIME(6), g TIMESTAMP(3), h DATE, i TEXT, j ENUM('x','y','z'), k TINYINT)"
  for ((s = 1; s <= rows; s += tx)); do
    e=$((s + tx - 1)); [ $e -gt "$rows" ] && e=$rows
    echo "INSERT INTO bench.t SELECT seq, seq % 100000, seq * 7, CONCAT('name-', seq, '-', REPEAT('x', 40)),
          seq / 100, seq * 1.5, NOW(6), NOW(3), CURDATE(), REPEAT('t', 60), ELT(1 + seq % 3, 'x', 'y', 'z'),
          seq % 100 FROM seq_${s}_to_${e};"
  done | mariadb --no-defaults -uroot -S "$SOCK" bench
}

# load_postgres_rows ROWS TX_ROWS: table t, the same 12 mixed columns.
load_postgres_rows() {
  local rows="$1" tx="$2"
  for ((s = 1; s <= rows; s += tx)); do
    e=$((s + tx - 1)); [ $e -gt "$rows" ] && e=$rows
    echo "INSERT INTO t SELECT g, g % 100000, g * 7, 'name-' || g || '-' || repeat('x', 40), g / 100.0, g * 1.5,
          now(), now(), current_date, repeat('t', 60), g % 2 = 0, g % 100 FROM generate_series($s, $e) g;"
  done | psql -X -q "$PG_URL"
}

# load_postgres_mixed ROWS TX_ROWS: ROWS changes to the rows load_postgres_rows wrote, in
# transactions of TX_ROWS: updates of half of them, deletes of a quarter, a quarter new rows
# (ids from ROWS + 11).
load_postgres_mixed() {
  local rows="$1" tx="$2"
  for ((s = 1; s <= rows; s += tx)); do
    e=$((s + tx - 1))
    echo "BEGIN;
      UPDATE t SET a = a + 1, c = c || 'u', d = d + 1 WHERE id BETWEEN $s AND $e AND id % 2 = 0;
      DELETE FROM t WHERE id BETWEEN $s AND $e AND id % 4 = 1;
      INSERT INTO t SELECT g + $rows + 10, g, g, 'new-' || g, g / 3.0, g, now(), now(), current_date, 'i', true, 1
        FROM generate_series($s, $e) g WHERE g % 4 = 3;
      COMMIT;"
  done | psql -X -q "$PG_URL"
}

POSTGRES_BENCH_TABLE="CREATE TABLE t (id bigint PRIMARY KEY, a int, b bigint, c varchar(64), d numeric(12,2),
  e double precision, f timestamp, g timestamptz(3), h date, i text, j bool, k smallint)"

# wait_checkpointed HTTP_PORT ROWS PID LOG: until cdc's /status counts ROWS checkpointed events.
# One python process polls every 20 ms: a new curl + python every 50 ms took a sizeable share of
# this 2-core machine away from the processes being measured.
wait_checkpointed() {
  python3 - "$@" <<'PY' || { cat "$4" >&2; return 1; }
import json, os, sys, time, urllib.request
port, rows, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
            if json.load(r)["events_checkpointed"] >= rows:
                break
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                sys.exit(1)
    except OSError:
        sys.exit(1)
    time.sleep(0.02)
PY
}

# row_within URL TABLE ID: waits up to 2 s, inside the server, for row ID of TABLE in the
# database at URL; prints 1 when it is there. One psql a call: a new psql every 50 ms took 15 %
# of the machine's CPU, away from the servers being measured. The COMMIT lets a table created
# meanwhile be seen: without it the loop kept the catalog as it was when it began, and a run
# that had to create its table was timed 2 s too long.
row_within() {
  psql -X -q -At -v ON_ERROR_STOP=1 "$1" 2>/dev/null <<SQL
DO \$\$ BEGIN
  FOR i IN 1..200 LOOP
    IF to_regclass('$2') IS NOT NULL THEN
      EXIT WHEN EXISTS (SELECT 1 FROM $2 WHERE id = $3);
    END IF;
    PERFORM pg_sleep(0.01);
    COMMIT;
  END LOOP;
END \$\$;
SELECT count(*) FROM $2 WHERE id = $3;
SQL
}

# peak_rss_mb PID
peak_rss_mb() { echo $(($(grep VmHWM "/proc/$1/status" | awk '{print $2}') / 1024)); }

# cpu_seconds PID...: user + system CPU time the processes have used so far, summed; fails,
# printing nothing, when one of them is gone.
cpu_seconds() {
  local stats
  stats=$(for pid in "$@"; do cat "/proc/$pid/stat" || exit 1; done) || return 1
  awk -v hz="$(getconf CLK_TCK)" '{s += $14 + $15} END {printf "%.2f", s / hz}' <<<"$stats"
}

# server_cpu PID: CPU seconds of a server process and of its children that have exited
# (PostgreSQL backends, walsenders, workers).
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15 + $16 + $17) / hz}' "/proc/$1/stat"
}
