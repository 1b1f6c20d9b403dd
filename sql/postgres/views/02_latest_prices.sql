-- The last price, trade id and moving average per instrument.
CREATE OR REPLACE VIEW latest_prices AS
    SELECT venue, symbol, last_price AS price, last_trade_id AS trade_id, moving_average, updated_at
    FROM trade_aggregates;
