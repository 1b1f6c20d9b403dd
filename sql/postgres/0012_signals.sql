-- Strategy signals computed in the pipeline (`[[trading.strategies]]` over the indicators of each
-- final candle). The id is derived from (strategy, venue, symbol, interval, open time, side), so
-- a replay or a redelivery stores each signal once (`ON CONFLICT (id) DO NOTHING`).
CREATE TABLE IF NOT EXISTS signals (
    id         TEXT        PRIMARY KEY,
    strategy   TEXT        NOT NULL,
    venue      TEXT        NOT NULL,
    symbol     TEXT        NOT NULL,
    interval   TEXT        NOT NULL,
    open_time  TIMESTAMPTZ NOT NULL,
    close_time TIMESTAMPTZ NOT NULL,
    side       TEXT        NOT NULL CHECK (side IN ('buy', 'sell')),
    price      NUMERIC     NOT NULL,
    reason     TEXT        NOT NULL,
    -- The indicator values the strategy compared, by column name (`close`: the candle's close).
    inputs     JSONB       NOT NULL
);
CREATE INDEX IF NOT EXISTS signals_by_instrument ON signals (venue, symbol, interval, close_time);
