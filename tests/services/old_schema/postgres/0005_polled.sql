-- Items of the pollers. Each table's primary key is the item's natural key: inserts are
-- insert-or-ignore, so a re-emitted item never makes a second row.

-- CoinGecko: one row per coin, quote currency, endpoint and CoinGecko update time.
CREATE TABLE IF NOT EXISTS coingecko_data (
    coin_id              TEXT        NOT NULL,
    vs_currency          TEXT        NOT NULL,
    endpoint             TEXT        NOT NULL CHECK (endpoint IN ('markets', 'simple_price')),
    last_updated         TIMESTAMPTZ NOT NULL,
    symbol               TEXT,
    name                 TEXT,
    price                NUMERIC,
    market_cap           NUMERIC,
    market_cap_rank      INTEGER,
    total_volume         NUMERIC,
    high_24h             NUMERIC,
    low_24h              NUMERIC,
    price_change_24h     NUMERIC,
    price_change_pct_24h NUMERIC,
    circulating_supply   NUMERIC,
    total_supply         NUMERIC,
    max_supply           NUMERIC,
    ath                  NUMERIC,
    atl                  NUMERIC,
    fetched_at           TIMESTAMPTZ NOT NULL,
    raw                  JSONB       NOT NULL,
    PRIMARY KEY (coin_id, vs_currency, endpoint, last_updated)
);

CREATE OR REPLACE VIEW coingecko_latest AS
    SELECT DISTINCT ON (coin_id, vs_currency) * FROM coingecko_data
    WHERE endpoint = 'markets' ORDER BY coin_id, vs_currency, last_updated DESC;

-- RSS/Atom news items, keyed by guid, else a hash of the link.
CREATE TABLE IF NOT EXISTS news (
    item_key       TEXT        PRIMARY KEY,
    feed           TEXT        NOT NULL,
    guid           TEXT,
    title          TEXT        NOT NULL,
    link           TEXT,
    summary        TEXT        NOT NULL,
    published_at   TIMESTAMPTZ NOT NULL,
    published_from TEXT        NOT NULL CHECK (published_from IN ('published', 'updated', 'fetched')),
    fetched_at     TIMESTAMPTZ NOT NULL,
    coins          TEXT[]      NOT NULL
);
CREATE INDEX IF NOT EXISTS news_published ON news (published_at);
CREATE INDEX IF NOT EXISTS news_coins ON news USING GIN (coins);

-- Social posts (Reddit), keyed by the platform's id.
CREATE TABLE IF NOT EXISTS social_posts (
    platform     TEXT        NOT NULL,
    post_id      TEXT        NOT NULL,
    community    TEXT        NOT NULL,
    author       TEXT,
    title        TEXT        NOT NULL,
    body         TEXT        NOT NULL,
    url          TEXT,
    permalink    TEXT,
    score        BIGINT      NOT NULL,
    num_comments BIGINT      NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    fetched_at   TIMESTAMPTZ NOT NULL,
    coins        TEXT[]      NOT NULL,
    PRIMARY KEY (platform, post_id)
);
CREATE INDEX IF NOT EXISTS social_posts_created ON social_posts (created_at);

-- Macro series (FRED), one row per observation date and vintage (point-in-time).
CREATE TABLE IF NOT EXISTS macro_observations (
    series_id      TEXT        NOT NULL,
    date           DATE        NOT NULL,
    realtime_start DATE        NOT NULL,
    realtime_end   DATE        NOT NULL,
    value          NUMERIC,
    fetched_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (series_id, date, realtime_start)
);

-- The value of each observation as published now (the latest vintage).
CREATE OR REPLACE VIEW macro_latest AS
    SELECT DISTINCT ON (series_id, date) * FROM macro_observations
    ORDER BY series_id, date, realtime_start DESC;

-- Fund NAVs per share (MyInvestor catalogue).
CREATE TABLE IF NOT EXISTS fund_navs (
    isin       TEXT        NOT NULL,
    nav_date   DATE        NOT NULL,
    name       TEXT        NOT NULL,
    currency   TEXT        NOT NULL,
    nav        NUMERIC     NOT NULL,
    source     TEXT        NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (isin, nav_date)
);
