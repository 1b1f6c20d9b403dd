-- Id holes that remain (not refilled, or a refill still running); reconnect markers aside.
CREATE OR REPLACE VIEW open_gaps AS
    SELECT * FROM gaps WHERE resolved_at IS NULL AND reason <> 'reconnect';
