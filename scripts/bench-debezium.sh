#!/usr/bin/env bash
# cdc against Debezium 3.6 (its embedded engine, the tool cdc must beat), side by side on the
# same backlog in one run: each drains ROWS inserts (the 12-column bench table, transactions of
# TX_ROWS) to JSON lines on standard output (/dev/null), the Debezium envelope without schemas
# for both. Runs alternate Debezium, cdc, Debezium, cdc on the same binlog / WAL:
#   1. MariaDB (reporting version 5.7.19, which Debezium's MySQL connector requires) from the
#      start of the binlog file the load began in;
#   2. PostgreSQL 15 from a slot created before the load, one slot per run;
#   3. the initial snapshot of that table (ROWS rows) from each source: Debezium's
#      snapshot.mode=initial_only against cdc's snapshot = "initial_only", each with its
#      defaults (Debezium reads one table on one connection; cdc on up to 2).
# Reported per run: seconds from process start until the last event was written (Debezium's
# includes starting the JVM, as a user's would), CPU seconds and peak RSS of the process.
# Debezium runs with the JVM's defaults unless JAVA_OPTS says otherwise (e.g. "-Xmx512m").
#
#   ROWS=1000000 TX_ROWS=1000 bash scripts/bench-debezium.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-1000000}"
TX_ROWS="${TX_ROWS:-1000}"
source scripts/lib.sh
bench_init
LIBS="${CDC_TEST_PREFIX:-/opt/cdc-test}/debezium/libs"
mkdir -p "$DIR/classes"
javac -cp "$LIBS/*" -d "$DIR/classes" scripts/DbzBench.java
CLASS_PATH="$LIBS/*:$DIR/classes"
CDC="${CARGO_TARGET_DIR:-target}/release/cdc"

# run_debezium KIND PORT DB TABLE [SLOT PUBLICATION]: one drain; prints its result line.
run_debezium() {
  local start end line
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  java ${JAVA_OPTS:-} -cp "$CLASS_PATH" DbzBench "$1" "$2" "$3" "$4" "$ROWS" "${@:5}" >/dev/null 2>"$DIR/debezium.log" || true
  end=$(date +%s.%N)
  line=$(grep "^debezium: $ROWS events" "$DIR/debezium.log" || true)
  [ -n "$line" ] || { grep -v "^\s*at " "$DIR/debezium.log" | tail -20 >&2; echo "Debezium did not finish" >&2; exit 1; }
  printf 'debezium: %d events in %.2f s = %.0f events/s (%s)\n' "$ROWS" "$(echo "$end - $start" | bc)" \
    "$(echo "$ROWS / ($end - $start)" | bc -l)" "${line#debezium: }"
}

# run_snapshot CONFIG: one cdc run with snapshot = "initial_only" (it exits when done), timed.
run_snapshot() {
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M %U %S" -o "$DIR/time" "$CDC" run --config "$1" >/dev/null 2>>"$DIR/cdc.log" \
    || { tail -5 "$DIR/cdc.log" >&2; exit 1; }
  end=$(date +%s.%N)
  read -r rss user sys <"$DIR/time"
  printf 'cdc: %d events in %.2f s = %.0f events/s (CPU %.2f s; peak RSS %d MB)\n' "$ROWS" "$(echo "$end - $start" | bc)" \
    "$(echo "$ROWS / ($end - $start)" | bc -l)" "$(echo "$user + $sys" | bc)" $((rss / 1024))
}

# run_cdc CONFIG [ARGS...]: one drain to /dev/null, timed until /status counts ROWS events
# delivered and checkpointed (every 100 ms).
run_cdc() {
  local config="$1" port start end
  shift
  port="$(free_port)"
  printf '[http]\nlisten = "127.0.0.1:%s"\n' "$port" >>"$config"
  start=$(date +%s.%N)
  "$CDC" run --config "$config" "$@" >/dev/null 2>>"$DIR/cdc.log" &
  CDC_PID=$!
  wait_checkpointed "$port" "$ROWS" "$CDC_PID" "$DIR/cdc.log"
  end=$(date +%s.%N)
  printf 'cdc: %d events in %.2f s = %.0f events/s (CPU %s s; peak RSS %s MB)\n' "$ROWS" "$(echo "$end - $start" | bc)" \
    "$(echo "$ROWS / ($end - $start)" | bc -l)" "$(cpu_seconds "$CDC_PID")" "$(peak_rss_mb "$CDC_PID")"
  kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID=""
}

echo "== 1. MariaDB: $ROWS inserts in transactions of $TX_ROWS ==" >&2
MY_PORT="$(free_port)"
start_mariadb "$MY_PORT" --version=5.7.19-MariaDB-spoofed
PIDS+=("$MARIADB_PID")
FILE="$(sql "SHOW MASTER STATUS" | cut -f1)"
load_mariadb_rows "$ROWS" "$TX_ROWS"
for run in 1 2; do
  run_debezium mysql "$MY_PORT" bench bench.t "$FILE" "$DIR/offsets$run.dat" >&2
  cat >"$DIR/my$run.toml" <<TOML
name = "bench$run"
[source]
kind = "mysql"
url = "mysql://root@127.0.0.1:$MY_PORT"
server_id = 550$run
tables = ["bench.t"]
snapshot = "never"
[pipeline]
checkpoint_interval_ms = 100
[positions]
path = "$DIR/my$run.json"
TOML
  run_cdc "$DIR/my$run.toml" --from "mysql:file=$FILE:pos=4" >&2
done

echo "== 3a. MariaDB: initial snapshot of $ROWS rows ==" >&2
for run in 1 2; do
  run_debezium mysql "$MY_PORT" bench bench.t snapshot >&2
  sed -e 's/^snapshot = "never"/snapshot = "initial_only"/' -e "s/^name = \"bench$run\"/name = \"snap$run\"/" \
    -e "s|my$run.json|mysnap$run.json|" -e '/^\[http\]/,$d' "$DIR/my$run.toml" >"$DIR/mysnap$run.toml"
  run_snapshot "$DIR/mysnap$run.toml" >&2
done
kill "$MARIADB_PID"; wait "$MARIADB_PID" 2>/dev/null || true

echo "== 2. PostgreSQL 15: $ROWS inserts in transactions of $TX_ROWS ==" >&2
start_postgres "$(free_port)" /usr/lib/postgresql/15/bin source
PIDS+=("$POSTGRES_PID")
PG_PORT="${PG_URL##*:}"; PG_PORT="${PG_PORT%%/*}"
psql_run "$POSTGRES_BENCH_TABLE; CREATE PUBLICATION bench FOR TABLE t;"
for slot in dbz1 cdc1 dbz2 cdc2; do
  psql_run "SELECT pg_create_logical_replication_slot('$slot', 'pgoutput')" >/dev/null
done
load_postgres_rows "$ROWS" "$TX_ROWS"
for run in 1 2; do
  run_debezium postgres "$PG_PORT" postgres public.t "dbz$run" bench >&2
  cat >"$DIR/pg$run.toml" <<TOML
name = "bench$run"
[source]
kind = "postgres"
url = "$PG_URL"
slot = "cdc$run"
publication = "bench"
snapshot = "never"
[pipeline]
checkpoint_interval_ms = 100
[positions]
path = "$DIR/pg$run.json"
TOML
  run_cdc "$DIR/pg$run.toml" >&2
done

echo "== 3b. PostgreSQL: initial snapshot of $ROWS rows ==" >&2
for run in 1 2; do
  run_debezium postgres "$PG_PORT" postgres public.t snapshot bench >&2
  psql_run "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'dbz_snapshot'" >/dev/null
  sed -e 's/^snapshot = "never"/snapshot = "initial_only"/' -e "s/^name = \"bench$run\"/name = \"snap$run\"/" \
    -e "s/^slot = \"cdc$run\"/slot = \"cdc_snap$run\"/" -e "s|pg$run.json|pgsnap$run.json|" -e '/^\[http\]/,$d' \
    "$DIR/pg$run.toml" >"$DIR/pgsnap$run.toml"
  run_snapshot "$DIR/pgsnap$run.toml" >&2
done
