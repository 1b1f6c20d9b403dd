-- Core market tables: trades, candles, per-symbol aggregates, and dashboard views.
-- Natural keys are primary keys; every write from cryptoflow is an idempotent upsert on them.

CREATE TABLE IF NOT EXISTS trades (
    venue           TEXT        NOT NULL,
    symbol          TEXT        NOT NULL,
    trade_id        BIGINT      NOT NULL,
    price           NUMERIC     NOT NULL CHECK (price > 0),
    qty             NUMERIC     NOT NULL CHECK (qty > 0),
    side            TEXT        NOT NULL CHECK (side IN ('buy', 'sell')),
    ts_exchange     TIMESTAMPTZ NOT NULL,
    ts_received     TIMESTAMPTZ NOT NULL,
    first_trade_id  BIGINT,
    last_trade_id   BIGINT,
    is_whale        BOOLEAN     NOT NULL,
    moving_average  NUMERIC     NOT NULL,
    ema             DOUBLE PRECISION,
    inserted_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, symbol, trade_id)
);
CREATE INDEX IF NOT EXISTS trades_symbol_time ON trades (symbol, ts_exchange);

CREATE TABLE IF NOT EXISTS candles (
    venue            TEXT        NOT NULL,
    symbol           TEXT        NOT NULL,
    interval         TEXT        NOT NULL,
    open_time        TIMESTAMPTZ NOT NULL,
    close_time       TIMESTAMPTZ NOT NULL,
    open             NUMERIC     NOT NULL,
    high             NUMERIC     NOT NULL,
    low              NUMERIC     NOT NULL,
    close            NUMERIC     NOT NULL,
    volume           NUMERIC     NOT NULL,
    quote_volume     NUMERIC     NOT NULL,
    vwap             NUMERIC     NOT NULL,
    trade_count      BIGINT      NOT NULL,
    taker_buy_volume NUMERIC     NOT NULL,
    first_trade_id   BIGINT      NOT NULL,
    last_trade_id    BIGINT      NOT NULL,
    is_final         BOOLEAN     NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, symbol, interval, open_time)
);

-- Maintained incrementally in the same transaction as the trades it counts: only trades that were
-- newly inserted add to the counters, so replays and redeliveries never double count.
CREATE TABLE IF NOT EXISTS trade_aggregates (
    venue              TEXT        NOT NULL,
    symbol             TEXT        NOT NULL,
    moving_average     NUMERIC     NOT NULL,
    trade_count        BIGINT      NOT NULL,
    total_volume       NUMERIC     NOT NULL,
    total_quote_volume NUMERIC     NOT NULL,
    last_trade_id      BIGINT      NOT NULL,
    last_price         NUMERIC     NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (venue, symbol)
);

CREATE OR REPLACE VIEW whale_trades AS
    SELECT venue, symbol, trade_id, price, qty, price * qty AS notional, side, ts_exchange, ts_received
    FROM trades
    WHERE is_whale;

CREATE OR REPLACE VIEW latest_prices AS
    SELECT venue, symbol, last_price AS price, last_trade_id AS trade_id, moving_average, updated_at
    FROM trade_aggregates;
