-- Per-coin rolling sentiment maintained by the dataflow (differential `reduce`): the 1 h windows
-- ending every 5 minutes and the 24 h windows ending every hour; a window ending at window_end
-- holds the items published in (window_end - span, window_end]. Rows are upserted as windows
-- change; a row is never replaced by one with fewer items.
CREATE TABLE IF NOT EXISTS sentiment_coin_windows (
    coin           TEXT             NOT NULL,
    model          TEXT             NOT NULL,
    span           TEXT             NOT NULL CHECK (span IN ('1h', '24h')),
    window_end     TIMESTAMPTZ      NOT NULL,
    items          BIGINT           NOT NULL,
    mean_compound  DOUBLE PRECISION NOT NULL,
    positive_share DOUBLE PRECISION NOT NULL,
    negative_share DOUBLE PRECISION NOT NULL,
    updated_at     TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (coin, model, span, window_end)
);
CREATE INDEX IF NOT EXISTS sentiment_coin_windows_end ON sentiment_coin_windows (window_end);

-- The window of each (coin, model, span) that holds the present moment: the first window end at
-- or after now(). A coin without items in the span has no row.
CREATE OR REPLACE VIEW sentiment_coin_windows_now AS
    SELECT DISTINCT ON (coin, model, span) *
    FROM sentiment_coin_windows
    WHERE window_end >= now()
      AND window_end < now() + CASE span WHEN '1h' THEN interval '5 minutes' ELSE interval '1 hour' END
    ORDER BY coin, model, span, window_end;
