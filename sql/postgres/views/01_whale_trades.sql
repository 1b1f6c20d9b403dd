-- Trades over their quote asset's whale threshold, with their notional. COIN-M quantities are
-- contracts of a fixed USD value (100 USD for BTCUSD_* contracts, 10 USD for the others): their
-- notional is qty x contract size, not price x qty.
CREATE OR REPLACE VIEW whale_trades AS
    SELECT venue, symbol, trade_id, price, qty,
           CASE WHEN venue = 'binance-coinm'
                THEN qty * CASE WHEN left(symbol, 7) = 'BTCUSD_' THEN 100 ELSE 10 END
                ELSE price * qty
           END AS notional,
           side, ts_exchange, ts_received, first_trade_id, last_trade_id
    FROM trades
    WHERE is_whale;
