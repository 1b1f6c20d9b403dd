-- Optional: `trades` as a TimescaleDB hypertable with compression, in place of the day
-- partitions of migration 0014. Applied by `cryptoflow migrate --postgres URL --timescaledb`
-- after the migrations, only when the server has the extension (pg_available_extensions) and
-- `trades` is not a hypertable yet; never by a plain `migrate`. Untested in this repository's
-- CI: no TimescaleDB package exists for its PostgreSQL.
--
-- The rows are copied (a declaratively partitioned table cannot become a hypertable), into 1-day
-- chunks with the same key (venue, symbol, trade_id, ts_exchange), checks and indexes, so the
-- sink's `ON CONFLICT` insert is unchanged. Chunks older than 2 days are compressed, segmented
-- by instrument. The pipeline's retention (`sinks.postgres.retention_days`) then drops chunks
-- with `drop_chunks`.
CREATE EXTENSION IF NOT EXISTS timescaledb;
DROP VIEW IF EXISTS whale_trades;
ALTER TABLE trades RENAME TO trades_partitioned;
ALTER INDEX trades_pkey RENAME TO trades_partitioned_pkey;
ALTER INDEX trades_symbol_time RENAME TO trades_partitioned_symbol_time;
ALTER INDEX trades_whales RENAME TO trades_partitioned_whales;
CREATE TABLE trades (
    LIKE trades_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (venue, symbol, trade_id, ts_exchange)
);
SELECT create_hypertable('trades', 'ts_exchange', chunk_time_interval => interval '1 day');
CREATE INDEX trades_symbol_time ON trades (symbol, ts_exchange);
CREATE INDEX trades_whales ON trades (symbol, ts_exchange) WHERE is_whale;
INSERT INTO trades SELECT * FROM trades_partitioned;
DROP TABLE trades_partitioned;
ALTER TABLE trades SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'venue, symbol',
    timescaledb.compress_orderby = 'ts_exchange, trade_id'
);
SELECT add_compression_policy('trades', interval '2 days');
