-- The order executor's journal (`cryptoflow execute`): one writer, written ahead of the wire.
--
-- orders: one row per intent (its id is the exchange's client order id). `state` moves
--   pending (risk-checked, written before it is sent) → accepted | rejected | unknown | filled |
--   partially_filled | cancelled | expired. A row left `pending` or `unknown` by a crash is
--   resolved at the next start by querying the exchange by client order id, never by sending
--   again blindly. A rejection (by the risk gate or the exchange) keeps its rule and reason.
CREATE TABLE IF NOT EXISTS orders (
    intent_id text PRIMARY KEY,
    venue text NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    order_type text NOT NULL,
    qty numeric NOT NULL,
    limit_price numeric,
    created_at bigint NOT NULL,
    state text NOT NULL,
    rule text,
    reason text,
    exchange_order_id bigint,
    executed_qty numeric NOT NULL DEFAULT 0,
    broker text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (state) WHERE state IN ('pending', 'unknown', 'accepted', 'partially_filled');

-- fills: every execution, once (an exchange reports a fill both in its answer and on the user data
-- stream); positions are rebuilt from these in order at a start.
CREATE TABLE IF NOT EXISTS fills (
    intent_id text NOT NULL REFERENCES orders (intent_id),
    fill_id bigint NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL,
    qty numeric NOT NULL,
    price numeric NOT NULL,
    fee numeric NOT NULL,
    ts bigint NOT NULL,
    seq bigserial,
    PRIMARY KEY (intent_id, fill_id)
);

-- positions: the state after the last fill (average cost, fees realised when paid), for readers;
-- the executor itself rebuilds it from `fills`.
CREATE TABLE IF NOT EXISTS positions (
    symbol text PRIMARY KEY,
    qty numeric NOT NULL,
    avg_price numeric NOT NULL,
    cost_basis numeric NOT NULL,
    realised_pnl numeric NOT NULL,
    fees_paid numeric NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- pnl_daily: realised PnL (fees included) and fees per UTC day of the fills.
CREATE TABLE IF NOT EXISTS pnl_daily (
    day date PRIMARY KEY,
    realised numeric NOT NULL,
    fees numeric NOT NULL,
    fills bigint NOT NULL
);

COMMENT ON TABLE orders IS 'The executor''s orders: one per intent (client order id), written before it is sent; rejections keep their rule and reason.';
COMMENT ON TABLE fills IS 'Every execution of the executor''s orders, once per (intent_id, fill_id).';
COMMENT ON TABLE positions IS 'Positions after the last fill (average cost; fees realised when paid).';
COMMENT ON TABLE pnl_daily IS 'Realised PnL and fees per UTC day of the executor''s fills.';
