-- Money without a fixed number of decimal places: DECIMAL(65,30) holds every value cryptoflow
-- computes exactly (a Decimal has at most 28 decimal places and 29 digits), so a price around
-- 1e-8, its moving average and a candle's VWAP keep every significant digit instead of the
-- 10 that DECIMAL(38,18) left at that scale.
ALTER TABLE trades
    MODIFY price          DECIMAL(65,30) NOT NULL,
    MODIFY qty            DECIMAL(65,30) NOT NULL,
    MODIFY moving_average DECIMAL(65,30) NOT NULL;

ALTER TABLE candles
    MODIFY open             DECIMAL(65,30) NOT NULL,
    MODIFY high             DECIMAL(65,30) NOT NULL,
    MODIFY low              DECIMAL(65,30) NOT NULL,
    MODIFY close            DECIMAL(65,30) NOT NULL,
    MODIFY volume           DECIMAL(65,30) NOT NULL,
    MODIFY quote_volume     DECIMAL(65,30) NOT NULL,
    MODIFY vwap             DECIMAL(65,30) NOT NULL,
    MODIFY taker_buy_volume DECIMAL(65,30) NOT NULL;

ALTER TABLE trade_aggregates
    MODIFY moving_average     DECIMAL(65,30) NOT NULL,
    MODIFY total_volume       DECIMAL(65,30) NOT NULL,
    MODIFY total_quote_volume DECIMAL(65,30) NOT NULL,
    MODIFY last_price         DECIMAL(65,30) NOT NULL;

ALTER TABLE indicators
    MODIFY close   DECIMAL(65,30) NOT NULL,
    MODIFY vwap_20 DECIMAL(65,30) NULL;
