-- Per coin, the sentiment of the items published in the last hour and the last 24 hours (VADER's
-- convention: positive at compound >= 0.05, negative at <= -0.05).
CREATE OR REPLACE VIEW sentiment_coin_rolling AS
    SELECT coin, model, w.label AS span,
           count(*) AS items,
           avg(compound) AS mean_compound,
           avg(CASE WHEN compound >= 0.05 THEN 1.0 ELSE 0.0 END) AS positive_share,
           avg(CASE WHEN compound <= -0.05 THEN 1.0 ELSE 0.0 END) AS negative_share
    FROM sentiment
    CROSS JOIN LATERAL unnest(coins) AS coin
    CROSS JOIN (VALUES ('1h', interval '1 hour'), ('24h', interval '24 hours')) AS w(label, span)
    WHERE published_at > now() - w.span
    GROUP BY coin, model, w.label;
