-- The executor's text orders (`cryptoflow execute`): one row per proposal, as the book of text
-- orders keeps it (`record`, its JSON form), so a restart re-arms what was armed and never fires
-- an order twice. `status` moves pending → armed → fired | skipped | cancelled, or pending →
-- rejected | expired | done (a cancel command); see the README's "Text orders".
CREATE TABLE IF NOT EXISTS text_orders (
    id text PRIMARY KEY,
    status text NOT NULL,
    origin text NOT NULL,
    text text NOT NULL,
    description text NOT NULL,
    record jsonb NOT NULL,
    proposed_at bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS text_orders_live ON text_orders (status) WHERE status IN ('pending', 'armed');

-- The executor's switches that outlive a restart: `killed` (the kill switch; only
-- `cryptoflow execute --reset-kill` turns it off again).
CREATE TABLE IF NOT EXISTS executor_switches (
    name text PRIMARY KEY,
    value boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
