#!/usr/bin/env bash
# Does splitting a PostgreSQL source over several slots (a publication per table) raise the
# single-walsender ceiling? Two tables t and t2, ROWS rows in alternating 1,000-row
# transactions; each round drains the same WAL first through one slot publishing both (one
# cdc), then through two slots publishing one table each (two cdc processes at once).
#   ROWS=500000 bash scripts/bench-pg-slots.sh            # cdc -> stdout (/dev/null)
#   SINK=kafka ROWS=500000 bash scripts/bench-pg-slots.sh  # cdc -> tansu
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
cargo build --release --quiet
source scripts/lib.sh
ROWS=${ROWS:-500000}
SINK=${SINK:-stdout}
DIR=$(mktemp -d /tmp/cdc-bench-XXXXXX); chmod 777 "$DIR"
PG_PORT=$(free_port)
start_postgres "$PG_PORT"
PIDS="$POSTGRES_PID"
if [ "$SINK" = kafka ]; then KAFKA_PORT=$(free_port); start_tansu "$KAFKA_PORT"; PIDS="$PIDS $TANSU_PID"; fi
trap 'kill $PIDS 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
T2="${POSTGRES_BENCH_TABLE/CREATE TABLE t /CREATE TABLE t2 }"
psql_run "$POSTGRES_BENCH_TABLE; $T2; CREATE PUBLICATION both_t FOR TABLE t, t2; CREATE PUBLICATION only_t FOR TABLE t; CREATE PUBLICATION only_t2 FOR TABLE t2;"
# Six slots a round; the server allows 10, so one round per run (run it twice to compare).
for s in one a b rone ra rb; do psql_run "SELECT pg_create_logical_replication_slot('${s}1', 'pgoutput')" >/dev/null; done
for ((s = 1; s <= ROWS; s += 1000)); do
  e=$((s + 999))
  tbl=t; [ $(( (s / 1000) % 2 )) = 1 ] && tbl=t2
  echo "INSERT INTO $tbl SELECT g, g % 100000, g * 7, 'name-' || g || '-' || repeat('x', 40), g / 100.0, g * 1.5,
        now(), now(), current_date, repeat('t', 60), g % 2 = 0, g % 100 FROM generate_series($s, $e) g;"
done | psql -X -q "$PG_URL"
# pipeline NAME SLOT PUBLICATION PORT: config
pipeline() {
cat > $DIR/$1.toml <<T
name = "$1"
[source]
kind = "postgres"
url = "$PG_URL"
slot = "$2"
publication = "$3"
snapshot = "never"
[sink]
kind = "$SINK"
$([ "$SINK" = kafka ] && echo "brokers = \"127.0.0.1:$KAFKA_PORT\"")
[positions]
path = "$DIR/$1.json"
[http]
listen = "127.0.0.1:$4"
T
}
END="$(psql -X -At -c 'SELECT pg_current_wal_lsn()' "$PG_URL")"
recv() { pg_recvlogical -d "$PG_URL" -S "$1" --start --endpos="$END" -o proto_version=1 -o publication_names="$2" --plugin=pgoutput -f /dev/null --no-loop; }
for r in 1; do
  start=$(date +%s.%N); recv rone$r both_t; t=$(echo "$(date +%s.%N) - $start" | bc)
  echo "round $r: pg_recvlogical, one slot: $(echo "$ROWS / $t" | bc) rows/s"
  start=$(date +%s.%N); recv ra$r only_t & R=$!; recv rb$r only_t2; wait $R; t=$(echo "$(date +%s.%N) - $start" | bc)
  echo "round $r: pg_recvlogical, two slots: $(echo "$ROWS / $t" | bc) rows/s"
  P=$(free_port); pipeline one$r one$r both_t $P
  start=$(date +%s.%N)
  "${CARGO_TARGET_DIR:-target}/release/cdc" run --config $DIR/one$r.toml >/dev/null 2>$DIR/one$r.log & C=$!
  wait_checkpointed $P $ROWS $C $DIR/one$r.log; t=$(echo "$(date +%s.%N) - $start" | bc)
  echo "round $r: cdc, one slot: $(echo "$ROWS / $t" | bc) rows/s, CPU $(cpu_seconds $C) s"; kill $C; wait $C || true
  PA=$(free_port); pipeline a$r a$r only_t $PA; PB=$(free_port); pipeline b$r b$r only_t2 $PB
  start=$(date +%s.%N)
  "${CARGO_TARGET_DIR:-target}/release/cdc" run --config $DIR/a$r.toml >/dev/null 2>$DIR/a$r.log & CA=$!
  "${CARGO_TARGET_DIR:-target}/release/cdc" run --config $DIR/b$r.toml >/dev/null 2>$DIR/b$r.log & CB=$!
  wait_checkpointed $PA $((ROWS / 2)) $CA $DIR/a$r.log; wait_checkpointed $PB $((ROWS / 2)) $CB $DIR/b$r.log
  t=$(echo "$(date +%s.%N) - $start" | bc)
  echo "round $r: cdc, two slots: $(echo "$ROWS / $t" | bc) rows/s, CPU $(cpu_seconds $CA) + $(cpu_seconds $CB) s"; kill $CA $CB; wait $CA $CB || true
done
