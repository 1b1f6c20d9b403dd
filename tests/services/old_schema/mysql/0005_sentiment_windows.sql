-- Per-coin rolling sentiment maintained by the dataflow (as sql/postgres/0007), and room for
-- longer model names (a VADER overlay adds +crypto / +custom-<hash>).
ALTER TABLE sentiment MODIFY model VARCHAR(96) NOT NULL;

CREATE TABLE IF NOT EXISTS sentiment_coin_windows (
    coin           VARCHAR(32) NOT NULL,
    model          VARCHAR(96) NOT NULL,
    span           VARCHAR(4)  NOT NULL,
    window_end     DATETIME(3) NOT NULL,
    items          BIGINT      NOT NULL,
    mean_compound  DOUBLE      NOT NULL,
    positive_share DOUBLE      NOT NULL,
    negative_share DOUBLE      NOT NULL,
    updated_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (coin, model, span, window_end),
    KEY sentiment_coin_windows_end (window_end)
);
