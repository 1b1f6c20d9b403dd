-- The newest CoinGecko market snapshot per coin and quote currency.
CREATE OR REPLACE VIEW coingecko_latest AS
    SELECT DISTINCT ON (coin_id, vs_currency) * FROM coingecko_data
    WHERE endpoint = 'markets' ORDER BY coin_id, vs_currency, last_updated DESC;
