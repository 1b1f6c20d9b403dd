-- Id holes and reconnects of live streams: every hole ends here, refilled or not.
CREATE TABLE IF NOT EXISTS gaps (
    venue       TEXT        NOT NULL,
    symbol      TEXT        NOT NULL,
    kind        TEXT        NOT NULL,
    reason      TEXT        NOT NULL CHECK (reason IN ('reconnect', 'id_hole', 'restart')),
    -- Missing ids, -1 when unknown (reconnect markers).
    from_id     BIGINT      NOT NULL,
    to_id       BIGINT      NOT NULL,
    since       TIMESTAMPTZ NOT NULL,
    detected_at TIMESTAMPTZ NOT NULL,
    -- Set when the REST refill delivered every missing id; NULL for holes that remain.
    resolved_at TIMESTAMPTZ,
    detail      TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (venue, symbol, kind, reason, from_id, to_id, detected_at)
);
