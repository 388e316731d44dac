#!/usr/bin/env bash
# The demo: a throwaway database with a sample table and a background writer, and cdc
# streaming the changes to this terminal as Debezium JSON lines (snapshot rows first, op "r",
# then live inserts/updates/deletes). Ctrl-C stops everything and removes the database.
#
#   bash scripts/demo.sh                 # MariaDB, runs until Ctrl-C
#   bash scripts/demo.sh postgres        # PostgreSQL 15 (logical replication slot)
#   DEMO_SECONDS=10 bash scripts/demo.sh # stops by itself
#
# Installs what it needs first (scripts/setup.sh). CDC_BIN overrides the cdc binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [ -z "${CDC_BIN:-}" ]; then
  cargo build --release --quiet
  CDC_BIN=target/release/cdc
fi

DIR="$(mktemp -d /tmp/cdc-demo-XXXXXX)"
source scripts/lib.sh
PORT="${DEMO_PORT:-$(free_port)}"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Runs cdc on $DIR/cdc.toml until Ctrl-C, or for DEMO_SECONDS.
run_cdc() {
  if [ -n "${DEMO_SECONDS:-}" ]; then
    timeout --signal=INT "$DEMO_SECONDS" "$CDC_BIN" run --config "$DIR/cdc.toml" || true
  else
    "$CDC_BIN" run --config "$DIR/cdc.toml" &
    pids+=($!)
    wait "${pids[-1]}" || true
  fi
}

SOURCE="${1:-mariadb}"
if [ "$SOURCE" = postgres ]; then
  echo "demo: starting PostgreSQL on 127.0.0.1:$PORT (data in $DIR)" >&2
  start_postgres "$PORT"
  pids+=("$POSTGRES_PID")
  psql_run "CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) NOT NULL,
              status text NOT NULL DEFAULT 'new', created timestamptz NOT NULL DEFAULT now());
            INSERT INTO orders (customer, amount) VALUES ('ada', 12.50), ('grace', 99.99);"
  (
    n=0
    while true; do
      n=$((n + 1))
      psql_run "INSERT INTO orders (customer, amount) VALUES ('customer$n', $((n * 7 % 100)).$((n % 100)));
                UPDATE orders SET status = 'paid' WHERE id = (SELECT min(id) FROM orders WHERE status = 'new');" || exit 0
      [ $((n % 5)) -eq 0 ] && psql_run "DELETE FROM orders WHERE id = (SELECT min(id) FROM orders WHERE status = 'paid')" || true
      sleep 0.5
    done
  ) &
  pids+=($!)
  cat >"$DIR/cdc.toml" <<TOML
name = "demo"
[source]
kind = "postgres"
url = "$PG_URL"
tables = ["public.orders"]
snapshot = "initial"
[positions]
path = "$DIR/positions.json"
TOML
  echo "demo: streaming public.orders changes (Ctrl-C to stop)" >&2
  run_cdc
  exit 0
fi

echo "demo: starting MariaDB on 127.0.0.1:$PORT (data in $DIR)" >&2
start_mariadb "$PORT"
pids+=("$MARIADB_PID")
sql "CREATE USER cdc@'127.0.0.1' IDENTIFIED BY 'demo';
     GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO cdc@'127.0.0.1';
     CREATE DATABASE shop;
     CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(40) NOT NULL,
       amount DECIMAL(10,2) NOT NULL, status ENUM('new','paid','shipped') NOT NULL DEFAULT 'new',
       created TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3));
     INSERT INTO shop.orders (customer, amount) VALUES ('ada', 12.50), ('grace', 99.99);"

# Background writer: a new order, a payment, a shipment, sometimes a cancellation.
(
  n=0
  while true; do
    n=$((n + 1))
    sql "INSERT INTO shop.orders (customer, amount) VALUES ('customer$n', $((n * 7 % 100)).$((n % 100)));
         UPDATE shop.orders SET status = 'paid' WHERE status = 'new' ORDER BY id LIMIT 1;
         UPDATE shop.orders SET status = 'shipped' WHERE status = 'paid' AND id % 2 = 0 ORDER BY id LIMIT 1;" || exit 0
    [ $((n % 5)) -eq 0 ] && sql "DELETE FROM shop.orders WHERE status = 'shipped' ORDER BY id LIMIT 1" || true
    sleep 0.5
  done
) &
pids+=($!)

cat >"$DIR/cdc.toml" <<TOML
name = "demo"
[source]
kind = "mysql"
url = "mysql://cdc:\${DEMO_PASSWORD}@127.0.0.1:$PORT"
server_id = 5401
tables = ["shop.*"]
snapshot = "initial"
[positions]
path = "$DIR/positions.json"
TOML

echo "demo: streaming shop.orders changes (Ctrl-C to stop)" >&2
export DEMO_PASSWORD=demo
run_cdc
