-- Periodic snapshots of the data-quality ledger, per source and symbol.
CREATE TABLE IF NOT EXISTS data_quality (
    source            TEXT        NOT NULL,
    symbol            TEXT        NOT NULL,
    snapshot_at       TIMESTAMPTZ NOT NULL,
    frames            BIGINT      NOT NULL,
    trades            BIGINT      NOT NULL,
    gaps_detected     BIGINT      NOT NULL,
    gaps_refilled     BIGINT      NOT NULL,
    ids_refilled      BIGINT      NOT NULL,
    ids_unrefillable  BIGINT      NOT NULL,
    duplicates        BIGINT      NOT NULL,
    late_events       BIGINT      NOT NULL,
    reconnects        BIGINT      NOT NULL,
    decode_errors     BIGINT      NOT NULL,
    kline_mismatches  BIGINT      NOT NULL,
    last_event_at     TIMESTAMPTZ,
    last_event_age_ms BIGINT      NOT NULL,
    stale             BOOLEAN     NOT NULL,
    PRIMARY KEY (source, symbol, snapshot_at)
);
