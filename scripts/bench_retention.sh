#!/usr/bin/env bash
# The cost of the trades retention in PostgreSQL, simulated: DAYS days of ROWS_PER_DAY trades each
# (rows shaped like the sink's: numeric price and qty, two times, a moving average, an EMA) in
# (a) the day-partitioned `trades` of migration 0014 and (b) the one plain table before it, both
# with the key and the two indexes of the schema. Removing the oldest day is a DROP TABLE of one
# partition in (a) and a DELETE of the same rows (then the VACUUM that makes their space
# reusable) in (b). Prints one RETENTION line per layout: rows, bytes per row with indexes, the
# time and WAL of removing one day. Runs in a private database on the server of URL, dropped at
# the end.
#
#   bash scripts/bench_retention.sh [URL] [DAYS] [ROWS_PER_DAY]
#   (default postgres://root@127.0.0.1:5432/postgres 10 1000000)
set -euo pipefail
URL=${1:-postgres://root@127.0.0.1:5432/postgres}
DAYS=${2:-10}
PER_DAY=${3:-1000000}
DB=cf_retention_$$
BASE=${URL%/*}
psql -qX "$URL" -c "CREATE DATABASE $DB" >/dev/null
trap 'psql -qX "$URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
DBURL="$BASE/$DB"
q() { psql -qXAt -v ON_ERROR_STOP=1 "$DBURL" "$@"; }

COLUMNS="venue TEXT NOT NULL, symbol TEXT NOT NULL, trade_id BIGINT NOT NULL,
  price NUMERIC NOT NULL, qty NUMERIC NOT NULL, side TEXT NOT NULL,
  ts_exchange TIMESTAMPTZ NOT NULL, ts_received TIMESTAMPTZ NOT NULL,
  first_trade_id BIGINT, last_trade_id BIGINT, is_whale BOOLEAN NOT NULL,
  moving_average NUMERIC NOT NULL, ema DOUBLE PRECISION,
  inserted_at TIMESTAMPTZ NOT NULL DEFAULT now()"
# 10 symbols, a trade every 86400/PER_DAY s, prices around 43,000 with 2 decimals, quantities
# with 5, one whale in 500.
ROWS="SELECT 'binance', 'SYM' || (g % 10), g,
    round((43000 + (g % 9973) * 0.37)::numeric, 2), round(((g % 7919) * 0.00013 + 0.00001)::numeric, 5),
    CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END,
    timestamptz '2025-01-01 00:00:00+00' + (g * (86400.0 / $PER_DAY)) * interval '1 second',
    timestamptz '2025-01-01 00:00:00.004+00' + (g * (86400.0 / $PER_DAY)) * interval '1 second',
    NULL, NULL, g % 500 = 0, round((43000 + (g % 9973) * 0.37)::numeric, 6) + 0.123456, 43000.5 + g % 1000
  FROM generate_series(0, $DAYS * $PER_DAY - 1) g"

q <<SQL
CREATE TABLE plain ($COLUMNS, PRIMARY KEY (venue, symbol, trade_id));
CREATE INDEX plain_symbol_time ON plain (symbol, ts_exchange);
CREATE INDEX plain_whales ON plain (symbol, ts_exchange) WHERE is_whale;
CREATE TABLE parted ($COLUMNS, PRIMARY KEY (venue, symbol, trade_id, ts_exchange))
  PARTITION BY RANGE (ts_exchange);
CREATE INDEX parted_symbol_time ON parted (symbol, ts_exchange);
CREATE INDEX parted_whales ON parted (symbol, ts_exchange) WHERE is_whale;
SELECT format('CREATE TABLE parted_%s PARTITION OF parted FOR VALUES FROM (%L) TO (%L)', d,
              timestamptz '2025-01-01 00:00:00+00' + d * interval '1 day',
              timestamptz '2025-01-01 00:00:00+00' + (d + 1) * interval '1 day')
  FROM generate_series(0, $DAYS) d \gexec
INSERT INTO plain $ROWS;
INSERT INTO parted $ROWS;
VACUUM ANALYZE plain;
VACUUM ANALYZE parted;
SQL

size_plain=$(q -c "SELECT pg_total_relation_size('plain')")
size_parted=$(q -c "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'parted'::regclass")
rows=$((DAYS * PER_DAY))

# One removal of the oldest day, timed by the server's client (psql's \timing, the statement
# alone): milliseconds and WAL bytes.
removal() {
    local sql=$1 ms w0 w1
    w0=$(q -c "SELECT pg_current_wal_insert_lsn()")
    ms=$(q -c '\timing on' -c "$sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
    w1=$(q -c "SELECT pg_current_wal_insert_lsn()")
    echo "${ms%.*} $(q -c "SELECT pg_wal_lsn_diff('$w1', '$w0')::bigint")"
}
read -r drop_ms drop_wal < <(removal "DROP TABLE parted_0")
read -r delete_ms delete_wal < <(removal "DELETE FROM plain WHERE ts_exchange < timestamptz '2025-01-02 00:00:00+00'")
read -r vacuum_ms vacuum_wal < <(removal "VACUUM plain")
left_plain=$(q -c "SELECT count(*) FROM plain")
left_parted=$(q -c "SELECT count(*) FROM parted")
echo "RETENTION layout=partitioned rows=$rows bytes_per_row=$((size_parted / rows)) remove_day_rows=$PER_DAY remove_ms=$drop_ms remove_wal_bytes=$drop_wal rows_left=$left_parted"
echo "RETENTION layout=plain rows=$rows bytes_per_row=$((size_plain / rows)) remove_day_rows=$PER_DAY remove_ms=$delete_ms remove_wal_bytes=$delete_wal vacuum_ms=$vacuum_ms vacuum_wal_bytes=$vacuum_wal rows_left=$left_plain"
