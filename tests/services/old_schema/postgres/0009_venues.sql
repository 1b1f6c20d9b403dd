-- Venues: `binance` (spot), `binance-usdm` (USDⓈ-M futures), `binance-coinm` (COIN-M futures).
-- Every natural key already starts with the venue, so spot and futures BTCUSDT are separate rows.
-- COIN-M quantities are contracts of a fixed USD value (100 USD for BTCUSD_* contracts, 10 USD for
-- the others): their notional is qty x contract size, not price x qty.
CREATE OR REPLACE VIEW whale_trades AS
    SELECT venue, symbol, trade_id, price, qty,
           CASE WHEN venue = 'binance-coinm'
                THEN qty * CASE WHEN left(symbol, 7) = 'BTCUSD_' THEN 100 ELSE 10 END
                ELSE price * qty
           END AS notional,
           side, ts_exchange, ts_received
    FROM trades
    WHERE is_whale;
