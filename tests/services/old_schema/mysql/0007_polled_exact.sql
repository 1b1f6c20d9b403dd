-- Exact poller numbers: every value a 96-bit decimal with up to 28 decimal places holds (what the
-- pollers parse) fits DECIMAL(65,28), so a 1e-20 price or a supply with 8+ decimals is neither
-- rounded nor truncated (DECIMAL(38,18) and friends did). The raw CoinGecko payload is a text
-- column checked to be JSON, so its bytes are kept as sent on MySQL too (MySQL's JSON type
-- re-serialises; MariaDB's is the same text column).
ALTER TABLE coingecko_data
    MODIFY price                DECIMAL(65,28) NULL,
    MODIFY market_cap           DECIMAL(65,28) NULL,
    MODIFY total_volume         DECIMAL(65,28) NULL,
    MODIFY high_24h             DECIMAL(65,28) NULL,
    MODIFY low_24h              DECIMAL(65,28) NULL,
    MODIFY price_change_24h     DECIMAL(65,28) NULL,
    MODIFY price_change_pct_24h DECIMAL(65,28) NULL,
    MODIFY circulating_supply   DECIMAL(65,28) NULL,
    MODIFY total_supply         DECIMAL(65,28) NULL,
    MODIFY max_supply           DECIMAL(65,28) NULL,
    MODIFY ath                  DECIMAL(65,28) NULL,
    MODIFY atl                  DECIMAL(65,28) NULL,
    MODIFY raw                  LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL CHECK (JSON_VALID(raw));

ALTER TABLE macro_observations MODIFY value DECIMAL(65,28) NULL;

ALTER TABLE fund_navs MODIFY nav DECIMAL(65,28) NOT NULL;
