-- CoinGecko's raw payload is kept byte for byte: JSONB re-serialises (key order, whitespace,
-- number spelling such as 4.2069e14), JSON stores the text as sent. The numeric columns are
-- unconstrained NUMERIC already, so they keep every digit.
DROP VIEW IF EXISTS coingecko_latest;

ALTER TABLE coingecko_data ALTER COLUMN raw TYPE JSON USING raw::text::json;

CREATE OR REPLACE VIEW coingecko_latest AS
    SELECT DISTINCT ON (coin_id, vs_currency) * FROM coingecko_data
    WHERE endpoint = 'markets' ORDER BY coin_id, vs_currency, last_updated DESC;
