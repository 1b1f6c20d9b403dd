-- The newest technical indicators per (instrument, interval).
CREATE OR REPLACE VIEW latest_indicators AS
    SELECT DISTINCT ON (venue, symbol, interval) *
    FROM indicators
    ORDER BY venue, symbol, interval, open_time DESC;
COMMENT ON VIEW latest_indicators IS
    'The newest row of indicators per (venue, symbol, interval); read by /api/v1/technical.';
