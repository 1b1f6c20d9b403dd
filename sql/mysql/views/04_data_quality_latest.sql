-- The newest data-quality snapshot per source and symbol.
CREATE OR REPLACE VIEW data_quality_latest AS
    SELECT d.* FROM data_quality d
    JOIN (SELECT source, symbol, MAX(snapshot_at) AS snapshot_at FROM data_quality GROUP BY source, symbol) l
      ON d.source = l.source AND d.symbol = l.symbol AND d.snapshot_at = l.snapshot_at;
