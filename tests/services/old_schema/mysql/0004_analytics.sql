-- Technical indicators per final candle and the sentiment of news and posts (as sql/postgres/0006).
CREATE TABLE IF NOT EXISTS indicators (
    venue         VARCHAR(16)    NOT NULL,
    symbol        VARCHAR(24)    NOT NULL,
    `interval`    VARCHAR(4)     NOT NULL,
    open_time     DATETIME(3)    NOT NULL,
    close_time    DATETIME(3)    NOT NULL,
    close         DECIMAL(38,18) NOT NULL,
    sma_20        DOUBLE NULL,
    ema_20        DOUBLE NULL,
    wma_20        DOUBLE NULL,
    rsi_14        DOUBLE NULL,
    macd          DOUBLE NULL,
    macd_signal   DOUBLE NULL,
    macd_hist     DOUBLE NULL,
    bb_upper      DOUBLE NULL,
    bb_middle     DOUBLE NULL,
    bb_lower      DOUBLE NULL,
    atr_14        DOUBLE NULL,
    obv           DOUBLE NULL,
    stoch_k       DOUBLE NULL,
    stoch_d       DOUBLE NULL,
    roc_10        DOUBLE NULL,
    mom_10        DOUBLE NULL,
    volatility_20 DOUBLE NULL,
    zscore_20     DOUBLE NULL,
    vwap_20       DECIMAL(38,18) NULL,
    PRIMARY KEY (venue, symbol, `interval`, open_time)
);

-- The sentiment of each news item and social post, once per (item, model).
CREATE TABLE IF NOT EXISTS sentiment (
    item_key     VARCHAR(255) NOT NULL,
    model        VARCHAR(32)  NOT NULL,
    kind         VARCHAR(8)   NOT NULL,
    published_at DATETIME(3)  NOT NULL,
    coins        JSON         NOT NULL,
    neg          DOUBLE       NOT NULL,
    neu          DOUBLE       NOT NULL,
    pos          DOUBLE       NOT NULL,
    compound     DOUBLE       NOT NULL,
    PRIMARY KEY (item_key, model),
    KEY sentiment_published (published_at)
);

CREATE OR REPLACE VIEW sentiment_coin_rolling AS
    SELECT j.coin AS coin, s.model AS model, w.label AS span,
           count(*) AS items,
           avg(s.compound) AS mean_compound,
           avg(CASE WHEN s.compound >= 0.05 THEN 1.0 ELSE 0.0 END) AS positive_share,
           avg(CASE WHEN s.compound <= -0.05 THEN 1.0 ELSE 0.0 END) AS negative_share
    FROM sentiment s,
         JSON_TABLE(s.coins, '$[*]' COLUMNS (coin VARCHAR(32) PATH '$')) AS j,
         (SELECT '1h' AS label, 3600 AS secs UNION ALL SELECT '24h', 86400) AS w
    WHERE s.published_at > UTC_TIMESTAMP(3) - INTERVAL w.secs SECOND
    GROUP BY j.coin, s.model, w.label;

CREATE TABLE IF NOT EXISTS ml_features (
    venue      VARCHAR(16) NOT NULL,
    symbol     VARCHAR(24) NOT NULL,
    `interval` VARCHAR(4)  NOT NULL,
    open_time  DATETIME(3) NOT NULL,
    close_time DATETIME(3) NOT NULL,
    features   JSON        NOT NULL,
    PRIMARY KEY (venue, symbol, `interval`, open_time)
);
