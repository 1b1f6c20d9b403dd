-- Bounded storage: `trades` becomes a table partitioned by range of `ts_exchange`, one partition
-- per UTC day (`trades_pYYYYMMDD`), which the pipeline creates ahead of time and for the days it
-- writes, and drops once they fall out of `sinks.postgres.retention_days`: dropping a day is a
-- catalogue change, not a DELETE of its rows. Candles stay in `candles`, so the history of prices
-- outlives the trades.
--
-- A partitioned table's unique keys include its partition key: the key becomes (venue, symbol,
-- trade_id, ts_exchange). A trade id has one exchange time, so it identifies the same rows, and
-- the sink's idempotent insert names that key in its `ON CONFLICT`.
--
-- An existing table is converted in place, without copying its rows: it is renamed, its key is
-- rebuilt to include `ts_exchange`, and it is attached as the partition `trades_legacy` of every
-- time before the day after its newest trade (it is dropped whole once that day leaves the
-- retention). An empty one is simply replaced.
DROP VIEW IF EXISTS whale_trades;

ALTER TABLE trades RENAME TO trades_legacy;
ALTER INDEX trades_pkey RENAME TO trades_legacy_old_pkey;
ALTER INDEX trades_symbol_time RENAME TO trades_legacy_symbol_time;
ALTER INDEX trades_whales RENAME TO trades_legacy_whales;

CREATE TABLE trades (
    venue           TEXT        NOT NULL,
    symbol          TEXT        NOT NULL,
    trade_id        BIGINT      NOT NULL,
    -- The checks keep the names of 0001's, which a partition must carry.
    price           NUMERIC     NOT NULL CONSTRAINT trades_price_check CHECK (price > 0),
    qty             NUMERIC     NOT NULL CONSTRAINT trades_qty_check CHECK (qty > 0),
    side            TEXT        NOT NULL CONSTRAINT trades_side_check CHECK (side IN ('buy', 'sell')),
    ts_exchange     TIMESTAMPTZ NOT NULL,
    ts_received     TIMESTAMPTZ NOT NULL,
    first_trade_id  BIGINT,
    last_trade_id   BIGINT,
    is_whale        BOOLEAN     NOT NULL,
    moving_average  NUMERIC     NOT NULL,
    ema             DOUBLE PRECISION,
    inserted_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, symbol, trade_id, ts_exchange)
) PARTITION BY RANGE (ts_exchange);
CREATE INDEX trades_symbol_time ON trades (symbol, ts_exchange);
-- The whale query's partial index (the `whale_trades` view reads `WHERE is_whale`).
CREATE INDEX trades_whales ON trades (symbol, ts_exchange) WHERE is_whale;

DO $$
DECLARE
    upper_bound TIMESTAMPTZ;
BEGIN
    SELECT (date_trunc('day', max(ts_exchange) AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
      INTO upper_bound FROM trades_legacy;
    IF upper_bound IS NULL THEN
        DROP TABLE trades_legacy;
    ELSE
        -- The key with the partition key, in place of the old one (the same rows are unique).
        CREATE UNIQUE INDEX trades_legacy_pkey ON trades_legacy (venue, symbol, trade_id, ts_exchange);
        ALTER TABLE trades_legacy DROP CONSTRAINT trades_legacy_old_pkey;
        ALTER TABLE trades_legacy ADD CONSTRAINT trades_legacy_pkey PRIMARY KEY USING INDEX trades_legacy_pkey;
        EXECUTE format('ALTER TABLE trades ATTACH PARTITION trades_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                       upper_bound);
    END IF;
END
$$;
