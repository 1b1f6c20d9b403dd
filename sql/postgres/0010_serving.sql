-- Indexes for what the API and the dashboards read: whale trades by symbol and time (the
-- whale_trades view no longer scans every trade), ML feature vectors by time.
CREATE INDEX IF NOT EXISTS trades_whales ON trades (symbol, ts_exchange) WHERE is_whale;
CREATE INDEX IF NOT EXISTS ml_features_symbol_close ON ml_features (symbol, interval, close_time);
