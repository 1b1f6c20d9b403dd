-- Technical indicators per final candle (see operators::math::indicators for the conventions,
-- which follow TA-Lib). NULL while an indicator warms up. The first row written for a candle is
-- kept: a restart re-warms the indicators from its first candle, and does not overwrite rows that
-- were computed with more history.
CREATE TABLE IF NOT EXISTS indicators (
    venue         TEXT             NOT NULL,
    symbol        TEXT             NOT NULL,
    interval      TEXT             NOT NULL,
    open_time     TIMESTAMPTZ      NOT NULL,
    close_time    TIMESTAMPTZ      NOT NULL,
    close         NUMERIC          NOT NULL,
    sma_20        DOUBLE PRECISION,
    ema_20        DOUBLE PRECISION,
    wma_20        DOUBLE PRECISION,
    rsi_14        DOUBLE PRECISION,
    macd          DOUBLE PRECISION,
    macd_signal   DOUBLE PRECISION,
    macd_hist     DOUBLE PRECISION,
    bb_upper      DOUBLE PRECISION,
    bb_middle     DOUBLE PRECISION,
    bb_lower      DOUBLE PRECISION,
    atr_14        DOUBLE PRECISION,
    obv           DOUBLE PRECISION,
    stoch_k       DOUBLE PRECISION,
    stoch_d       DOUBLE PRECISION,
    roc_10        DOUBLE PRECISION,
    mom_10        DOUBLE PRECISION,
    volatility_20 DOUBLE PRECISION,
    zscore_20     DOUBLE PRECISION,
    vwap_20       NUMERIC,
    PRIMARY KEY (venue, symbol, interval, open_time)
);

-- The sentiment of each news item and social post, once per (item, model).
CREATE TABLE IF NOT EXISTS sentiment (
    item_key     TEXT             NOT NULL,
    model        TEXT             NOT NULL,
    kind         TEXT             NOT NULL CHECK (kind IN ('news', 'social')),
    published_at TIMESTAMPTZ      NOT NULL,
    coins        TEXT[]           NOT NULL,
    neg          DOUBLE PRECISION NOT NULL,
    neu          DOUBLE PRECISION NOT NULL,
    pos          DOUBLE PRECISION NOT NULL,
    compound     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (item_key, model)
);
CREATE INDEX IF NOT EXISTS sentiment_published ON sentiment (published_at);

-- Point-in-time ML feature vectors, one per final candle (catalogue: docs/FEATURES.md). The first
-- vector written for a candle is kept.
CREATE TABLE IF NOT EXISTS ml_features (
    venue      TEXT        NOT NULL,
    symbol     TEXT        NOT NULL,
    interval   TEXT        NOT NULL,
    open_time  TIMESTAMPTZ NOT NULL,
    close_time TIMESTAMPTZ NOT NULL,
    features   JSONB       NOT NULL,
    PRIMARY KEY (venue, symbol, interval, open_time)
);
