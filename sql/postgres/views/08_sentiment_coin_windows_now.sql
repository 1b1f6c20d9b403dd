-- The window of each (coin, model, span) that holds the present moment: the first window end at
-- or after now(). A coin without items in the span has no row.
CREATE OR REPLACE VIEW sentiment_coin_windows_now AS
    SELECT DISTINCT ON (coin, model, span) *
    FROM sentiment_coin_windows
    WHERE window_end >= now()
      AND window_end < now() + CASE span WHEN '1h' THEN interval '5 minutes' ELSE interval '1 hour' END
    ORDER BY coin, model, span, window_end;
