-- One row per instrument with everything a dashboard shows at once: the latest price and its
-- 24 h change, the newest 1m indicators, the coin's newest 1h and 24h news sentiment, and its
-- CoinGecko market data. The coin is the base asset: the symbol (before a futures "_") without
-- its quote asset.
CREATE OR REPLACE VIEW crypto_combined_data AS
    WITH priced AS (
        SELECT p.*,
               regexp_replace(split_part(p.symbol, '_', 1),
                              '(USDT|USDC|FDUSD|BUSD|TUSD|USD|BTC|ETH|BNB|EUR|TRY)$', '') AS coin
        FROM latest_prices p
    ),
    sentiment AS (
        SELECT DISTINCT ON (coin, span) coin, span, mean_compound, items
        FROM sentiment_coin_windows
        ORDER BY coin, span, window_end DESC, updated_at DESC
    )
    SELECT p.venue, p.symbol, p.coin, p.price, p.moving_average, p.change_pct_24h, p.volume_24h,
           p.updated_at,
           i.open_time AS indicators_at, i.sma_20, i.ema_20, i.rsi_14, i.macd, i.macd_signal,
           i.bb_upper, i.bb_lower, i.atr_14,
           s1.mean_compound AS sentiment_1h, s1.items AS sentiment_items_1h,
           s24.mean_compound AS sentiment_24h, s24.items AS sentiment_items_24h,
           g.market_cap, g.market_cap_rank, g.total_volume AS market_volume_24h
    FROM priced p
    LEFT JOIN latest_indicators i
        ON i.venue = p.venue AND i.symbol = p.symbol AND i.interval = '1m'
    LEFT JOIN sentiment s1 ON upper(s1.coin) = p.coin AND s1.span = '1h'
    LEFT JOIN sentiment s24 ON upper(s24.coin) = p.coin AND s24.span = '24h'
    LEFT JOIN LATERAL (
        SELECT c.market_cap, c.market_cap_rank, c.total_volume
        FROM coingecko_latest c
        WHERE upper(c.symbol) = p.coin
        ORDER BY (c.vs_currency = 'usd') DESC, c.last_updated DESC
        LIMIT 1
    ) g ON true;
COMMENT ON VIEW crypto_combined_data IS
    'Per instrument: latest price and 24 h change, newest 1m indicators, the coin''s newest 1h and 24h news sentiment, and its CoinGecko market data.';
