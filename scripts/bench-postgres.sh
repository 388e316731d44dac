#!/usr/bin/env bash
# PostgreSQL benchmarks, side by side in one run (the ratios are the result):
#   1. pgoutput decode only (criterion, synthetic 12-column inserts);
#   2. backlog drain of ROWS inserted rows from a slot: pg_recvlogical (pgoutput, to /dev/null)
#      and cdc run (stdout to /dev/null), each from its own slot created before the load, so
#      both read the same WAL; rows/s and cdc's peak RSS.
#
#   ROWS=1000000 TX_ROWS=1000 bash scripts/bench-postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-1000000}"
TX_ROWS="${TX_ROWS:-1000}"
bash scripts/setup.sh
cargo build --release --quiet
DIR="$(mktemp -d /tmp/cdc-bench-XXXXXX)"
source scripts/lib.sh
PORT="$(free_port)"
HTTP_PORT="$(free_port)"
CDC_PID=""
cleanup() {
  [ -n "$CDC_PID" ] && kill "$CDC_PID" 2>/dev/null
  kill "$POSTGRES_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
start_postgres "$PORT"

psql_run "$POSTGRES_BENCH_TABLE; CREATE PUBLICATION bench FOR TABLE t;"
# Slots are created outside the transaction that wrote (one statement per psql call).
psql_run "SELECT pg_create_logical_replication_slot('recvlogical', 'pgoutput')" >/dev/null
psql_run "SELECT pg_create_logical_replication_slot('cdc_bench', 'pgoutput')" >/dev/null
echo "bench: loading $ROWS rows in transactions of $TX_ROWS" >&2
load_postgres_rows "$ROWS" "$TX_ROWS"
END_LSN="$(psql -X -At -c 'SELECT pg_current_wal_lsn()' "$PG_URL")"

echo "== 1. pgoutput decode only (criterion) ==" >&2
cargo bench --quiet --bench pg_decode -- --noplot 2>&1 | grep -E "pgoutput/|thrpt" >&2

echo "== 2a. pg_recvlogical ==" >&2
start=$(date +%s.%N)
pg_recvlogical -d "$PG_URL" -S recvlogical --start --endpos="$END_LSN" -o proto_version=1 \
  -o publication_names=bench --plugin=pgoutput -f /dev/null --no-loop
t_recv=$(echo "$(date +%s.%N) - $start" | bc)
printf 'pg_recvlogical: %d rows in %.2f s = %.0f rows/s\n' "$ROWS" "$t_recv" "$(echo "$ROWS / $t_recv" | bc -l)" >&2

echo "== 2b. cdc run -> stdout > /dev/null ==" >&2
cat >"$DIR/cdc.toml" <<TOML
name = "bench"
[source]
kind = "postgres"
url = "$PG_URL"
slot = "cdc_bench"
publication = "bench"
snapshot = "never"
[positions]
path = "$DIR/positions.json"
[http]
listen = "127.0.0.1:$HTTP_PORT"
TOML
start=$(date +%s.%N)
"${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/cdc.toml" >/dev/null 2>"$DIR/cdc.log" &
CDC_PID=$!
wait_checkpointed "$HTTP_PORT" "$ROWS" "$CDC_PID" "$DIR/cdc.log"
t_cdc=$(echo "$(date +%s.%N) - $start" | bc)
rss_mb=$(peak_rss_mb "$CDC_PID")
kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID=""
printf 'cdc: %d rows in %.2f s = %.0f rows/s (%.0f%% of pg_recvlogical), peak RSS %d MB\n' "$ROWS" "$t_cdc" \
  "$(echo "$ROWS / $t_cdc" | bc -l)" "$(echo "100 * $t_recv / $t_cdc" | bc -l)" "$rss_mb" >&2
