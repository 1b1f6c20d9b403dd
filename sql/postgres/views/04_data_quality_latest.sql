-- The newest data-quality snapshot per source and symbol.
CREATE OR REPLACE VIEW data_quality_latest AS
    SELECT DISTINCT ON (source, symbol) * FROM data_quality ORDER BY source, symbol, snapshot_at DESC;
