-- Items of the pollers (as sql/postgres/0005). Primary keys are the natural keys; inserts are
-- insert-or-ignore. Coin lists are JSON arrays.

CREATE TABLE IF NOT EXISTS coingecko_data (
    coin_id              VARCHAR(128)   NOT NULL,
    vs_currency          VARCHAR(16)    NOT NULL,
    endpoint             VARCHAR(16)    NOT NULL,
    last_updated         DATETIME(3)    NOT NULL,
    symbol               VARCHAR(64)    NULL,
    name                 VARCHAR(255)   NULL,
    price                DECIMAL(38,18) NULL,
    market_cap           DECIMAL(38,4)  NULL,
    market_cap_rank      INT            NULL,
    total_volume         DECIMAL(38,4)  NULL,
    high_24h             DECIMAL(38,18) NULL,
    low_24h              DECIMAL(38,18) NULL,
    price_change_24h     DECIMAL(38,18) NULL,
    price_change_pct_24h DECIMAL(38,10) NULL,
    circulating_supply   DECIMAL(38,8)  NULL,
    total_supply         DECIMAL(38,8)  NULL,
    max_supply           DECIMAL(38,8)  NULL,
    ath                  DECIMAL(38,18) NULL,
    atl                  DECIMAL(38,18) NULL,
    fetched_at           DATETIME(3)    NOT NULL,
    raw                  JSON           NOT NULL,
    PRIMARY KEY (coin_id, vs_currency, endpoint, last_updated),
    CONSTRAINT coingecko_endpoint CHECK (endpoint IN ('markets', 'simple_price'))
);

CREATE TABLE IF NOT EXISTS news (
    item_key       VARCHAR(255)  NOT NULL PRIMARY KEY,
    feed           VARCHAR(1024) NOT NULL,
    guid           TEXT          NULL,
    title          TEXT          NOT NULL,
    link           TEXT          NULL,
    summary        MEDIUMTEXT    NOT NULL,
    published_at   DATETIME(3)   NOT NULL,
    published_from VARCHAR(16)   NOT NULL,
    fetched_at     DATETIME(3)   NOT NULL,
    coins          JSON          NOT NULL,
    KEY news_published (published_at)
);

CREATE TABLE IF NOT EXISTS social_posts (
    platform     VARCHAR(16)  NOT NULL,
    post_id      VARCHAR(64)  NOT NULL,
    community    VARCHAR(128) NOT NULL,
    author       VARCHAR(128) NULL,
    title        TEXT         NOT NULL,
    body         MEDIUMTEXT   NOT NULL,
    url          TEXT         NULL,
    permalink    TEXT         NULL,
    score        BIGINT       NOT NULL,
    num_comments BIGINT       NOT NULL,
    created_at   DATETIME(3)  NOT NULL,
    fetched_at   DATETIME(3)  NOT NULL,
    coins        JSON         NOT NULL,
    PRIMARY KEY (platform, post_id),
    KEY social_posts_created (created_at)
);

CREATE TABLE IF NOT EXISTS macro_observations (
    series_id      VARCHAR(64)    NOT NULL,
    date           DATE           NOT NULL,
    realtime_start DATE           NOT NULL,
    realtime_end   DATE           NOT NULL,
    value          DECIMAL(38,10) NULL,
    fetched_at     DATETIME(3)    NOT NULL,
    PRIMARY KEY (series_id, date, realtime_start)
);

CREATE TABLE IF NOT EXISTS fund_navs (
    isin       CHAR(12)       NOT NULL,
    nav_date   DATE           NOT NULL,
    name       VARCHAR(255)   NOT NULL,
    currency   CHAR(3)        NOT NULL,
    nav        DECIMAL(38,10) NOT NULL,
    source     VARCHAR(32)    NOT NULL,
    fetched_at DATETIME(3)    NOT NULL,
    PRIMARY KEY (isin, nav_date)
);
