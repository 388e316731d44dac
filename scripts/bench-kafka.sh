#!/usr/bin/env bash
# Kafka sink benchmarks, side by side in one run (absolute numbers on a shared machine are
# noise; the ratios are the result). Database, broker (tansu, memory storage) and cdc share
# this machine.
#   0. the broker's ceiling: one producer with cdc's settings (examples/kafka_produce_ceiling.rs);
#   1. MariaDB → cdc → Kafka: backlog drain of ROWS rows (~200 bytes, 12 mixed columns),
#      rows/s and peak RSS; then the same drain with format = "avro" (schemas in the test
#      schema registry, tests/oracle/SchemaRegistry.java);
#   2. PostgreSQL → Kafka: the same backlog drained by pg_recvlogical (to /dev/null, its own
#      slot) and by cdc → Kafka; rows/s, ratio, peak RSS;
#   3. latency commit → readable in Kafka at a steady RATE rows/s (PostgreSQL and MariaDB
#      sources), measured by a consumer (examples/kafka_latency.rs): p50, p99.
#
#   ROWS=1000000 TX_ROWS=1000 RATE=10000 bash scripts/bench-kafka.sh
# KAFKA_PROPERTIES adds librdkafka settings, e.g. KAFKA_PROPERTIES='"linger.ms" = "0"'.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-1000000}"
TX_ROWS="${TX_ROWS:-1000}"
RATE="${RATE:-10000}"
LAT_SECONDS="${LAT_SECONDS:-10}"
bash scripts/setup.sh
cargo build --release --quiet
cargo build --release --quiet --example kafka_latency --example kafka_produce_ceiling
BIN="${CARGO_TARGET_DIR:-target}/release"
DIR="$(mktemp -d /tmp/cdc-bench-XXXXXX)"
source scripts/lib.sh
MY_PORT="$(free_port)"; PG_PORT="$(free_port)"; KAFKA_PORT="$(free_port)"; HTTP_PORT="$(free_port)"
BROKERS="127.0.0.1:$KAFKA_PORT"
CDC_PID=""
cleanup() {
  [ -n "$CDC_PID" ] && kill "$CDC_PID" 2>/dev/null
  kill "$MARIADB_PID" "$POSTGRES_PID" "$TANSU_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT
start_mariadb "$MY_PORT"
start_postgres "$PG_PORT"
start_tansu "$KAFKA_PORT"

# cdc_config NAME SOURCE-BODY: a Kafka-sink config in $DIR/NAME.toml.
cdc_config() {
  cat >"$DIR/$1.toml" <<TOML
name = "$1"
[source]
$2
snapshot = "never"
[sink]
kind = "kafka"
brokers = "$BROKERS"
[sink.properties]
${KAFKA_PROPERTIES:-}
[positions]
path = "$DIR/$1-positions.json"
[http]
listen = "127.0.0.1:$HTTP_PORT"
TOML
}

# drain NAME [--from POS]: runs cdc until ROWS events are checkpointed; prints rows/s.
drain() {
  local name="$1"; shift
  local start broker_cpu; start=$(date +%s.%N); broker_cpu=$(cpu_seconds "$TANSU_PID")
  # CDC_WRAP runs cdc under another program, e.g. CDC_WRAP="perf record -g -o /tmp/kafka.perf"
  # (the CPU and RSS figures are then the wrapper's).
  ${CDC_WRAP:-} "$BIN/cdc" run --config "$DIR/$name.toml" "$@" 2>"$DIR/$name.log" &
  CDC_PID=$!
  wait_checkpointed "$HTTP_PORT" "$ROWS" "$CDC_PID" "$DIR/$name.log"
  T_CDC=$(echo "$(date +%s.%N) - $start" | bc)
  RSS_MB=$(peak_rss_mb "$CDC_PID")
  echo "  CPU: cdc $(cpu_seconds "$CDC_PID") s, broker $(echo "$(cpu_seconds "$TANSU_PID") - $broker_cpu" | bc) s" >&2
  kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID=""
}

echo "== 0. broker ceiling: one producer, cdc's settings, 1000-byte messages ==" >&2
"$BIN/examples/kafka_produce_ceiling" "$BROKERS" ceiling "$ROWS" 1000 >&2

echo "== 1. MariaDB -> cdc -> Kafka ==" >&2
sql "CREATE DATABASE bench"
sql "FLUSH BINARY LOGS"
FILE="$(sql "SHOW MASTER STATUS" | cut -f1)"
load_mariadb_rows "$ROWS" "$TX_ROWS"
cdc_config mykafka "kind = \"mysql\"
url = \"mysql://root@127.0.0.1:$MY_PORT\"
server_id = 5498
tables = [\"bench.t\"]"
drain mykafka --from "mysql:file=$FILE:pos=4"
printf 'MariaDB -> Kafka: %d rows in %.2f s = %.0f rows/s, peak RSS %d MB\n' "$ROWS" "$T_CDC" \
  "$(echo "$ROWS / $T_CDC" | bc -l)" "$RSS_MB" >&2

echo "== 1b. the same drain as Avro ==" >&2
REGISTRY_PORT="$(free_port)"
JARS="${CDC_TEST_PREFIX:-/opt/cdc-test}/debezium/libs/*"
mkdir -p "$DIR/classes"
javac -cp "$JARS" -d "$DIR/classes" tests/oracle/SchemaRegistry.java
java -cp "$JARS:$DIR/classes" SchemaRegistry "$REGISTRY_PORT" >"$DIR/registry.log" 2>&1 &
REGISTRY_PID=$!
until grep -q READY "$DIR/registry.log"; do sleep 0.2; done
cdc_config myavro "kind = \"mysql\"
url = \"mysql://root@127.0.0.1:$MY_PORT\"
server_id = 5499
tables = [\"bench.t\"]"
sed -i "s|^brokers = .*|&\nformat = \"avro\"\nschema_registry = { url = \"http://127.0.0.1:$REGISTRY_PORT\" }|" "$DIR/myavro.toml"
drain myavro --from "mysql:file=$FILE:pos=4"
kill "$REGISTRY_PID" 2>/dev/null || true
printf 'MariaDB -> Kafka (Avro): %d rows in %.2f s = %.0f rows/s, peak RSS %d MB\n' "$ROWS" "$T_CDC" \
  "$(echo "$ROWS / $T_CDC" | bc -l)" "$RSS_MB" >&2

echo "== 2. PostgreSQL -> Kafka, beside pg_recvlogical ==" >&2
psql_run "$POSTGRES_BENCH_TABLE; CREATE PUBLICATION bench FOR TABLE t;"
psql_run "SELECT pg_create_logical_replication_slot('recvlogical', 'pgoutput')" >/dev/null
psql_run "SELECT pg_create_logical_replication_slot('cdc_bench', 'pgoutput')" >/dev/null
load_postgres_rows "$ROWS" "$TX_ROWS"
END_LSN="$(psql -X -At -c 'SELECT pg_current_wal_lsn()' "$PG_URL")"
start=$(date +%s.%N)
pg_recvlogical -d "$PG_URL" -S recvlogical --start --endpos="$END_LSN" -o proto_version=1 \
  -o publication_names=bench --plugin=pgoutput -f /dev/null --no-loop
t_recv=$(echo "$(date +%s.%N) - $start" | bc)
printf 'pg_recvlogical: %d rows in %.2f s = %.0f rows/s\n' "$ROWS" "$t_recv" "$(echo "$ROWS / $t_recv" | bc -l)" >&2
cdc_config pgkafka "kind = \"postgres\"
url = \"$PG_URL\"
slot = \"cdc_bench\"
publication = \"bench\""
drain pgkafka
printf 'PostgreSQL -> Kafka: %d rows in %.2f s = %.0f rows/s (%.0f%% of pg_recvlogical), peak RSS %d MB\n' \
  "$ROWS" "$T_CDC" "$(echo "$ROWS / $T_CDC" | bc -l)" "$(echo "100 * $t_recv / $T_CDC" | bc -l)" "$RSS_MB" >&2

echo "== 3. latency at $RATE rows/s ==" >&2
# latency NAME TOPIC RUN WARMUP-SQL WRITER-SQL: cdc streams; one warm-up row creates the topic;
# the consumer starts at its end; then the writer inserts at RATE rows/s. RUN is psql_run or sql.
latency() {
  local name="$1" topic="$2" run="$3" warmup="$4" writer="$5"
  "$BIN/cdc" run --config "$DIR/$name.toml" 2>"$DIR/$name-lat.log" &
  CDC_PID=$!
  sleep 1
  "$run" "$warmup"
  local count=$((RATE * LAT_SECONDS * 9 / 10))
  rm -f "$DIR/consumer.log"
  "$BIN/examples/kafka_latency" "$BROKERS" "$topic" "$count" 2>"$DIR/consumer.log" >"$DIR/latency.txt" &
  local consumer=$!
  until grep -q ready "$DIR/consumer.log" 2>/dev/null; do
    kill -0 "$consumer" 2>/dev/null || { cat "$DIR/consumer.log" >&2; return 1; }
    sleep 0.1
  done
  "$run" "$writer"
  wait "$consumer"
  echo "$name: $(cat "$DIR/latency.txt")" >&2
  kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID=""
}
ticks=$((LAT_SECONDS * 100)); per_tick=$((RATE / 100))
psql_run "CREATE TABLE lat (id bigserial PRIMARY KEY, lat_us bigint, pad text); ALTER PUBLICATION bench ADD TABLE lat;
  CREATE PROCEDURE write_lat(ticks int, per_tick int) LANGUAGE plpgsql AS \$\$
  BEGIN FOR i IN 1..ticks LOOP
    INSERT INTO lat (lat_us, pad) SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint, repeat('p', 150)
      FROM generate_series(1, per_tick);
    COMMIT; PERFORM pg_sleep(0.01);
  END LOOP; END \$\$;"
latency pgkafka pgkafka.public.lat psql_run "INSERT INTO lat (lat_us) VALUES (0)" "CALL write_lat($ticks, $per_tick)"
sql "CREATE TABLE bench.lat (id BIGINT AUTO_INCREMENT PRIMARY KEY, lat_us BIGINT, pad TEXT)"
# One client, one statement per tick (autocommit), then a 10 ms pause.
write_mariadb_lat() {
  for ((i = 0; i < ticks; i++)); do
    echo "INSERT INTO bench.lat (lat_us, pad) SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED), REPEAT('p', 150)
          FROM seq_1_to_${per_tick}; DO SLEEP(0.01);"
  done | mariadb --no-defaults -uroot -S "$SOCK" bench
}
sed -i 's/tables = \["bench.t"\]/tables = ["bench.lat"]/' "$DIR/mykafka.toml"
rm -f "$DIR/mykafka-positions.json"
run_mariadb() { if [ "$1" = write ]; then write_mariadb_lat; else sql "$1"; fi; }
latency mykafka mykafka.bench.lat run_mariadb "INSERT INTO bench.lat (lat_us) VALUES (0)" write
