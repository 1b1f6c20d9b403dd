-- Source cursors: the highest trade id written per stream, updated in the same transaction as
-- the trades it covers. On start, cryptoflow resumes from here and refills what it missed.
CREATE TABLE IF NOT EXISTS source_offsets (
    venue      TEXT        NOT NULL,
    symbol     TEXT        NOT NULL,
    kind       TEXT        NOT NULL,
    last_id    BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, symbol, kind)
);
