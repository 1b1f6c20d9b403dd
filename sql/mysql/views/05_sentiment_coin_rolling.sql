-- Per coin, the sentiment of the items published in the last hour and the last 24 hours (VADER's
-- convention: positive at compound >= 0.05, negative at <= -0.05).
CREATE OR REPLACE VIEW sentiment_coin_rolling AS
    SELECT j.coin AS coin, s.model AS model, w.label AS span,
           count(*) AS items,
           avg(s.compound) AS mean_compound,
           avg(CASE WHEN s.compound >= 0.05 THEN 1.0 ELSE 0.0 END) AS positive_share,
           avg(CASE WHEN s.compound <= -0.05 THEN 1.0 ELSE 0.0 END) AS negative_share
    FROM sentiment s,
         JSON_TABLE(s.coins, '$[*]' COLUMNS (coin VARCHAR(32) PATH '$')) AS j,
         (SELECT '1h' AS label, 3600 AS secs UNION ALL SELECT '24h', 86400) AS w
    WHERE s.published_at > UTC_TIMESTAMP(3) - INTERVAL w.secs SECOND
    GROUP BY j.coin, s.model, w.label;
