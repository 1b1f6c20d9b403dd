-- CoinGecko's raw payload is kept byte for byte: JSONB re-serialises (key order, whitespace,
-- number spelling such as 4.2069e14), JSON stores the text as sent. The numeric columns are
-- unconstrained NUMERIC already, so they keep every digit.
DROP VIEW IF EXISTS coingecko_latest;

ALTER TABLE coingecko_data ALTER COLUMN raw TYPE JSON USING raw::text::json;
-- (`coingecko_latest` is created again from views/, which `migrate` applies after the migrations.)
