-- Id holes and reconnects, and data-quality ledger snapshots (as sql/postgres/0002 and 0004).

CREATE TABLE IF NOT EXISTS gaps (
    venue       VARCHAR(16)  NOT NULL,
    symbol      VARCHAR(24)  NOT NULL,
    kind        VARCHAR(16)  NOT NULL,
    reason      VARCHAR(16)  NOT NULL,
    -- Missing ids, -1 when unknown (reconnect markers).
    from_id     BIGINT       NOT NULL,
    to_id       BIGINT       NOT NULL,
    since       DATETIME(3)  NOT NULL,
    detected_at DATETIME(3)  NOT NULL,
    -- Set when the REST refill delivered every missing id; NULL for holes that remain.
    resolved_at DATETIME(3)  NULL,
    detail      TEXT         NOT NULL,
    PRIMARY KEY (venue, symbol, kind, reason, from_id, to_id, detected_at),
    CONSTRAINT gaps_reason CHECK (reason IN ('reconnect', 'id_hole', 'restart'))
);

CREATE OR REPLACE VIEW open_gaps AS
    SELECT * FROM gaps WHERE resolved_at IS NULL AND reason <> 'reconnect';

CREATE TABLE IF NOT EXISTS data_quality (
    source            VARCHAR(32)  NOT NULL,
    symbol            VARCHAR(24)  NOT NULL,
    snapshot_at       DATETIME(3)  NOT NULL,
    frames            BIGINT       NOT NULL,
    trades            BIGINT       NOT NULL,
    gaps_detected     BIGINT       NOT NULL,
    gaps_refilled     BIGINT       NOT NULL,
    ids_refilled      BIGINT       NOT NULL,
    ids_unrefillable  BIGINT       NOT NULL,
    duplicates        BIGINT       NOT NULL,
    late_events       BIGINT       NOT NULL,
    reconnects        BIGINT       NOT NULL,
    decode_errors     BIGINT       NOT NULL,
    kline_mismatches  BIGINT       NOT NULL,
    last_event_at     DATETIME(3)  NULL,
    last_event_age_ms BIGINT       NOT NULL,
    stale             BOOLEAN      NOT NULL,
    PRIMARY KEY (source, symbol, snapshot_at)
);

CREATE OR REPLACE VIEW data_quality_latest AS
    SELECT d.* FROM data_quality d
    JOIN (SELECT source, symbol, MAX(snapshot_at) AS snapshot_at FROM data_quality GROUP BY source, symbol) l
      ON d.source = l.source AND d.symbol = l.symbol AND d.snapshot_at = l.snapshot_at;
