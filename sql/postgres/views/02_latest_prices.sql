-- The last price, trade id and moving average per instrument, with its change and volume over
-- the 24 hours before its newest 1m candle (final or forming; measured on the candles, so a
-- replay of old data has them too). The API's /api/v1/prices and the dashboards read it.
CREATE OR REPLACE VIEW latest_prices AS
    SELECT a.venue, a.symbol, a.last_price AS price, a.last_trade_id AS trade_id,
           a.moving_average, a.updated_at,
           d.open_24h,
           a.last_price - d.open_24h AS change_24h,
           CASE WHEN d.open_24h > 0 THEN (a.last_price - d.open_24h) / d.open_24h * 100 END
               AS change_pct_24h,
           d.volume_24h, d.quote_volume_24h
    FROM trade_aggregates a
    LEFT JOIN LATERAL (
        SELECT (array_agg(c.open ORDER BY c.open_time))[1] AS open_24h,
               sum(c.volume) AS volume_24h,
               sum(c.quote_volume) AS quote_volume_24h
        FROM candles c
        WHERE c.venue = a.venue AND c.symbol = a.symbol AND c.interval = '1m'
          AND c.open_time > (SELECT max(m.open_time) FROM candles m
                             WHERE m.venue = a.venue AND m.symbol = a.symbol
                               AND m.interval = '1m') - interval '24 hours'
    ) d ON true;
COMMENT ON VIEW latest_prices IS
    'Per instrument: last price, trade id and moving average, with the open, change and volume over the 24 hours before its newest 1m candle.';
COMMENT ON COLUMN latest_prices.open_24h IS
    'Open of the oldest 1m candle within 24 hours of the newest one.';
COMMENT ON COLUMN latest_prices.change_pct_24h IS
    'Percent change of price against open_24h.';
