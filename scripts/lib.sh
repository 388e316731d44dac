# Shell helpers shared by demo.sh and the benchmark scripts. Source it; needs $DIR (a temp dir).

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_mariadb PORT: a private MariaDB in $DIR with the binlog settings cdc needs.
# Sets MARIADB_PID and SOCK; `sql "..."` then runs statements as root.
start_mariadb() {
  local port="$1"
  SOCK="$DIR/sock"
  mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal --skip-test-db \
    --datadir="$DIR/data" >/dev/null
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

# start_postgres PORT: a private PostgreSQL 15 in $DIR with wal_level=logical, trust auth on
# 127.0.0.1. initdb refuses root, so the server runs as the `postgres` user when we are root.
# Sets POSTGRES_PID; `psql_run "..."` then runs SQL in database postgres.
start_postgres() {
  local port="$1" bin=/usr/lib/postgresql/15/bin as=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$DIR"
    as=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  "${as[@]}" "$bin/initdb" -D "$DIR/pgdata" -U postgres --auth=trust --locale=C -E UTF8 >/dev/null
  "${as[@]}" "$bin/postgres" -D "$DIR/pgdata" -p "$port" -k "$DIR" -c listen_addresses=127.0.0.1 \
    -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 >"$DIR/postgres.log" 2>&1 &
  POSTGRES_PID=$!
  PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  for _ in $(seq 1 200); do
    psql -X -q -c 'SELECT 1' "$PG_URL" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "PostgreSQL did not start; see $DIR/postgres.log" >&2
  return 1
}

psql_run() { psql -X -q -v ON_ERROR_STOP=1 -c "$1" "$PG_URL"; }
