-- Core market tables for MySQL / MariaDB (the same as sql/postgres/0001_core.sql).
-- Times are UTC DATETIME(3); money is DECIMAL(38,18).

CREATE TABLE IF NOT EXISTS trades (
    venue           VARCHAR(16)     NOT NULL,
    symbol          VARCHAR(24)     NOT NULL,
    trade_id        BIGINT UNSIGNED NOT NULL,
    price           DECIMAL(38,18)  NOT NULL,
    qty             DECIMAL(38,18)  NOT NULL,
    side            VARCHAR(4)      NOT NULL,
    ts_exchange     DATETIME(3)     NOT NULL,
    ts_received     DATETIME(3)     NOT NULL,
    first_trade_id  BIGINT UNSIGNED NULL,
    last_trade_id   BIGINT UNSIGNED NULL,
    is_whale        BOOLEAN         NOT NULL,
    moving_average  DECIMAL(38,18)  NOT NULL,
    ema             DOUBLE          NULL,
    inserted_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (venue, symbol, trade_id),
    KEY trades_symbol_time (symbol, ts_exchange)
);

CREATE TABLE IF NOT EXISTS candles (
    venue            VARCHAR(16)     NOT NULL,
    symbol           VARCHAR(24)     NOT NULL,
    `interval`       VARCHAR(4)      NOT NULL,
    open_time        DATETIME(3)     NOT NULL,
    close_time       DATETIME(3)     NOT NULL,
    open             DECIMAL(38,18)  NOT NULL,
    high             DECIMAL(38,18)  NOT NULL,
    low              DECIMAL(38,18)  NOT NULL,
    close            DECIMAL(38,18)  NOT NULL,
    volume           DECIMAL(38,18)  NOT NULL,
    quote_volume     DECIMAL(38,18)  NOT NULL,
    vwap             DECIMAL(38,18)  NOT NULL,
    trade_count      BIGINT UNSIGNED NOT NULL,
    taker_buy_volume DECIMAL(38,18)  NOT NULL,
    first_trade_id   BIGINT UNSIGNED NOT NULL,
    last_trade_id    BIGINT UNSIGNED NOT NULL,
    is_final         BOOLEAN         NOT NULL,
    updated_at       DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (venue, symbol, `interval`, open_time)
);

-- Counters grow only by trades that were new in the flush that wrote them (see the sink).
CREATE TABLE IF NOT EXISTS trade_aggregates (
    venue              VARCHAR(16)     NOT NULL,
    symbol             VARCHAR(24)     NOT NULL,
    moving_average     DECIMAL(38,18)  NOT NULL,
    trade_count        BIGINT UNSIGNED NOT NULL,
    total_volume       DECIMAL(38,18)  NOT NULL,
    total_quote_volume DECIMAL(38,18)  NOT NULL,
    last_trade_id      BIGINT UNSIGNED NOT NULL,
    last_price         DECIMAL(38,18)  NOT NULL,
    updated_at         DATETIME(3)     NOT NULL,
    PRIMARY KEY (venue, symbol)
);

CREATE OR REPLACE VIEW whale_trades AS
    SELECT venue, symbol, trade_id, price, qty, price * qty AS notional, side, ts_exchange, ts_received
    FROM trades
    WHERE is_whale;

CREATE OR REPLACE VIEW latest_prices AS
    SELECT venue, symbol, last_price AS price, last_trade_id AS trade_id, moving_average, updated_at
    FROM trade_aggregates;
