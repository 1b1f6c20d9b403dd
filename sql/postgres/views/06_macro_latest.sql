-- The value of each observation as published now (the latest vintage).
CREATE OR REPLACE VIEW macro_latest AS
    SELECT DISTINCT ON (series_id, date) * FROM macro_observations
    ORDER BY series_id, date, realtime_start DESC;
