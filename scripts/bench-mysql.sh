#!/usr/bin/env bash
# MySQL/MariaDB benchmarks, side by side in one run (absolute numbers on a shared machine are
# noise; the ratios are the result):
#   1. decode only: cdc's binlog decoder (criterion, in memory) on a binlog of ROWS row events;
#   2. python-mysql-replication reading the same binlog from the server, decoding every row;
#   3. end to end: MariaDB → cdc run → stdout > /dev/null, rows/s and peak RSS;
#   4. initial snapshot of two tables of ROWS rows to stdout > /dev/null, with
#      snapshot_connections = 1 and 2 alternating (twice each).
#
#   ROWS=1000000 TX_ROWS=1000 bash scripts/bench-mysql.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-1000000}"
TX_ROWS="${TX_ROWS:-1000}"
bash scripts/setup.sh
python3 -m pip install --quiet 'mysql-replication==1.0.9' 2>/dev/null || python3 -m pip install --quiet mysql-replication
cargo build --release --quiet
DIR="$(mktemp -d /tmp/cdc-bench-XXXXXX)"
source scripts/lib.sh
PORT="$(free_port)"
HTTP_PORT="$(free_port)"
CDC_PID=""
cleanup() {
  [ -n "$CDC_PID" ] && kill "$CDC_PID" 2>/dev/null
  kill "$MARIADB_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
start_mariadb "$PORT"

sql "CREATE DATABASE bench"
sql "FLUSH BINARY LOGS"
FILE="$(sql "SHOW MASTER STATUS" | cut -f1)"
echo "bench: loading $ROWS rows in transactions of $TX_ROWS into $FILE" >&2
start=$(date +%s.%N)
load_mariadb_rows "$ROWS" "$TX_ROWS"
sql "FLUSH BINARY LOGS"
echo "bench: loaded in $(echo "$(date +%s.%N) - $start" | bc) s; binlog $(stat -c %s "$DIR/$FILE") bytes" >&2

if [ -z "${SKIP_CRITERION:-}" ]; then
  echo "== 1. cdc decode only (criterion) ==" >&2
  CDC_BENCH_BINLOG="$DIR/$FILE" cargo bench --quiet --bench mysql_decode -- --noplot 2>&1 |
    grep -E "mysql_binlog/|thrpt|rows" >&2
fi

echo "== 2. python-mysql-replication ==" >&2
python3 - "$PORT" "$FILE" "$ROWS" <<'PY' | tee "$DIR/python.txt" >&2
import sys, time
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import WriteRowsEvent
port, file, rows = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
stream = BinLogStreamReader(
    connection_settings={"host": "127.0.0.1", "port": port, "user": "root", "passwd": ""},
    server_id=77, log_file=file, log_pos=4, resume_stream=True, blocking=False,
    only_events=[WriteRowsEvent], is_mariadb=True)
n, t0 = 0, time.time()
for ev in stream:
    for row in ev.rows:
        n += 1
    if n >= rows:
        break
dt = time.time() - t0
print(f"python-mysql-replication: {n} rows in {dt:.2f} s = {n / dt:,.0f} rows/s")
PY

echo "== 3. cdc end to end: MariaDB -> cdc -> stdout > /dev/null ==" >&2
cat >"$DIR/cdc.toml" <<TOML
name = "bench"
[source]
kind = "mysql"
url = "mysql://root@127.0.0.1:$PORT"
server_id = 5499
tables = ["bench.*"]
snapshot = "never"
[positions]
path = "$DIR/positions.json"
[http]
listen = "127.0.0.1:$HTTP_PORT"
TOML
start=$(date +%s.%N)
"${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/cdc.toml" --from "mysql:file=$FILE:pos=4" >/dev/null 2>"$DIR/cdc.log" &
CDC_PID=$!
wait_checkpointed "$HTTP_PORT" "$ROWS" "$CDC_PID" "$DIR/cdc.log"
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
rss_mb=$(peak_rss_mb "$CDC_PID")
kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID=""
printf 'cdc end to end: %d rows in %.2f s = %.0f rows/s, peak RSS %d MB\n' "$ROWS" "$elapsed" \
  "$(echo "$ROWS / $elapsed" | bc -l)" "$rss_mb" | tee "$DIR/e2e.txt" >&2

echo "== 4. cdc initial snapshot of 2 x $ROWS rows -> stdout > /dev/null ==" >&2
sql "CREATE TABLE bench.t2 LIKE bench.t; INSERT INTO bench.t2 SELECT * FROM bench.t"
for run in 1 2 3 4; do
  connections=$((2 - run % 2))
  sed -e 's/^snapshot = "never"/snapshot = "initial_only"/' -e "s/^server_id = 5499/server_id = 5499\nsnapshot_connections = $connections/" \
    -e "s|positions.json|positions-$run.json|" "$DIR/cdc.toml" >"$DIR/snap.toml"
  start=$(date +%s.%N)
  # initial_only: cdc exits once the snapshot is delivered.
  /usr/bin/time -f %M -o "$DIR/rss" "${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/snap.toml" \
    >/dev/null 2>"$DIR/snap.log" || { cat "$DIR/snap.log" >&2; exit 1; }
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  rss_mb=$(($(tail -1 "$DIR/rss") / 1024))
  printf 'cdc snapshot, %d connection(s): %d rows in %.2f s = %.0f rows/s, peak RSS %s MB\n' "$connections" \
    $((2 * ROWS)) "$elapsed" "$(echo "2 * $ROWS / $elapsed" | bc -l)" "$rss_mb" >&2
done
