//! The data-quality ledger: per source and symbol, what arrived, what was missing and what was
//! done about it. Sources and the runtime update it; it is snapshotted periodically into the
//! `data_quality` table and rendered in the Prometheus text format for the metrics endpoint.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cryptoflow_operators::model::{DataQuality, Millis};

/// Counters of one (source, symbol): the snapshot row type, whose counter fields the ledger
/// updates (`source`, `symbol`, `snapshot_at`, the age and the stale flag are filled in by
/// [`Ledger::snapshot`]).
pub type Counters = DataQuality;

/// A counter metric: name, help text, and how to read it from a row.
type Metric = (&'static str, &'static str, fn(&DataQuality) -> u64);

/// The ledger. Cheap to share (`Arc<Ledger>`), safe to update from any thread.
#[derive(Debug)]
pub struct Ledger {
    rows: Mutex<BTreeMap<(String, String), Counters>>,
    /// Frames of known types that are not processed, by source and type.
    ignored: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    stale_after_ms: Millis,
    stale_after_per_symbol: BTreeMap<String, Millis>,
    created_ms: Millis,
}

impl Ledger {
    /// A ledger flagging symbols silent for longer than `stale_after_ms`; `now_ms` is the start.
    pub fn new(stale_after_ms: Millis, now_ms: Millis) -> Self {
        Ledger {
            rows: Mutex::new(BTreeMap::new()),
            ignored: Mutex::new(BTreeMap::new()),
            stale_after_ms,
            stale_after_per_symbol: BTreeMap::new(),
            created_ms: now_ms,
        }
    }

    /// Per-symbol stale times that override the default (symbols upper-case).
    pub fn with_stale_overrides(mut self, overrides: BTreeMap<String, Millis>) -> Self {
        self.stale_after_per_symbol = overrides
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        self
    }

    /// Declares a (source, symbol) so that it is reported (and can be stale) before its first event.
    pub fn register(&self, source: &str, symbol: &str) {
        self.update(source, symbol, |_| {});
    }

    /// Updates the counters of (source, symbol).
    pub fn update(&self, source: &str, symbol: &str, f: impl FnOnce(&mut Counters)) {
        if let Ok(mut rows) = self.rows.lock() {
            f(rows
                .entry((source.to_string(), symbol.to_string()))
                .or_default());
        }
    }

    /// Counts one frame of `source` of a type that is not processed (`24hrTicker`, `response`, …).
    pub fn count_ignored(&self, source: &str, ty: &str) {
        // Looked up by `&str`: no allocation once a (source, type) has been seen.
        if let Ok(mut m) = self.ignored.lock() {
            if !m.contains_key(source) {
                m.insert(source.to_string(), BTreeMap::new());
            }
            if let Some(per_type) = m.get_mut(source) {
                match per_type.get_mut(ty) {
                    Some(n) => *n += 1,
                    None => {
                        per_type.insert(ty.to_string(), 1);
                    }
                }
            }
        }
    }

    /// Ignored frames as (source, type, count), sorted.
    pub fn ignored(&self) -> Vec<(String, String, u64)> {
        let Ok(m) = self.ignored.lock() else {
            return Vec::new();
        };
        m.iter()
            .flat_map(|(src, types)| {
                types
                    .iter()
                    .map(move |(ty, n)| (src.clone(), ty.clone(), *n))
            })
            .collect()
    }

    /// Ignored frames per type over every source, sorted by type.
    pub fn ignored_by_type(&self) -> Vec<(String, u64)> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for (_, ty, n) in self.ignored() {
            *out.entry(ty).or_default() += n;
        }
        out.into_iter().collect()
    }

    /// Counters of (source, symbol), if any.
    pub fn get(&self, source: &str, symbol: &str) -> Option<Counters> {
        self.rows
            .lock()
            .ok()?
            .get(&(source.to_string(), symbol.to_string()))
            .cloned()
    }

    /// One row per (source, symbol) as of `now_ms`.
    pub fn snapshot(&self, now_ms: Millis) -> Vec<DataQuality> {
        let Ok(rows) = self.rows.lock() else {
            return Vec::new();
        };
        rows.iter()
            .map(|((source, symbol), c)| {
                let since = if c.last_received_ms > 0 {
                    c.last_received_ms
                } else {
                    self.created_ms
                };
                let age = (now_ms - since).max(0);
                let stale_after = self
                    .stale_after_per_symbol
                    .get(symbol)
                    .copied()
                    .unwrap_or(self.stale_after_ms);
                DataQuality {
                    source: source.clone(),
                    symbol: symbol.clone(),
                    snapshot_at: now_ms,
                    last_event_age_ms: age,
                    stale: !symbol.is_empty() && age > stale_after,
                    ..c.clone()
                }
            })
            .collect()
    }

    /// Publishes the ledger to the process's metrics recorder (the `metrics` facade): per
    /// (source, symbol) counters, the newest event's age and staleness, and ignored frames by
    /// type. Called when metrics are scraped.
    pub fn publish_metrics(&self, now_ms: Millis) {
        let snap = self.snapshot(now_ms);
        let counters: [Metric; 11] = [
            ("frames", "Frames received.", |q| q.frames),
            ("trades", "Trades delivered.", |q| q.trades),
            ("gaps_detected", "Id holes detected.", |q| q.gaps_detected),
            ("gaps_refilled", "Id holes refilled completely.", |q| {
                q.gaps_refilled
            }),
            ("ids_refilled", "Trades delivered by REST refills.", |q| {
                q.ids_refilled
            }),
            ("ids_unrefillable", "Ids that could not be refilled.", |q| {
                q.ids_unrefillable
            }),
            ("duplicates", "Trades dropped as duplicates.", |q| {
                q.duplicates
            }),
            ("late_events", "Trades too late for their candle.", |q| {
                q.late_events
            }),
            ("reconnects", "Reconnects.", |q| q.reconnects),
            ("decode_errors", "Undecodable frames.", |q| q.decode_errors),
            (
                "kline_mismatches",
                "Exchange klines that disagree with computed candles.",
                |q| q.kline_mismatches,
            ),
        ];
        for (name, help, get) in counters {
            let name = format!("cryptoflow_source_{name}_total");
            metrics::describe_counter!(name.clone(), help);
            for q in &snap {
                metrics::counter!(name.clone(), "source" => q.source.clone(), "symbol" => q.symbol.clone())
                    .absolute(get(q));
            }
        }
        metrics::describe_counter!(
            "cryptoflow_source_ignored_total",
            "Frames of a known type that is not processed, by type."
        );
        for (source, ty, n) in self.ignored() {
            metrics::counter!("cryptoflow_source_ignored_total", "source" => source, "type" => ty)
                .absolute(n);
        }
        metrics::describe_gauge!(
            "cryptoflow_source_last_event_age_seconds",
            "Seconds since the newest event (event-time lag behind the wall clock)."
        );
        metrics::describe_gauge!(
            "cryptoflow_source_stale",
            "1 when a symbol is silent for longer than its stale time."
        );
        for q in &snap {
            let labels = [("source", q.source.clone()), ("symbol", q.symbol.clone())];
            metrics::gauge!("cryptoflow_source_last_event_age_seconds", &labels)
                .set(q.last_event_age_ms as f64 / 1000.0);
            metrics::gauge!("cryptoflow_source_stale", &labels).set(f64::from(u8::from(q.stale)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `f` publishes, in the Prometheus text format.
    fn rendered(f: impl FnOnce()) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, f);
        handle.render()
    }

    #[test]
    fn counts_ages_and_staleness() {
        let l = Ledger::new(5_000, 1_000)
            .with_stale_overrides([("btcusdt".to_string(), 500)].into_iter().collect());
        l.register("binance", "ETHUSDT");
        l.update("binance", "BTCUSDT", |c| {
            c.trades += 3;
            c.duplicates += 1;
            c.last_received_ms = 9_000;
            c.last_event_ms = 8_990;
        });
        let snap = l.snapshot(10_000);
        assert_eq!(snap.len(), 2);
        let btc = &snap[0];
        assert_eq!(
            (
                btc.symbol.as_str(),
                btc.trades,
                btc.duplicates,
                btc.last_event_age_ms,
                btc.stale
            ),
            ("BTCUSDT", 3, 1, 1_000, true) // its own 500 ms stale time
        );
        let eth = &snap[1];
        assert_eq!(
            (eth.symbol.as_str(), eth.last_event_age_ms, eth.stale),
            ("ETHUSDT", 9_000, true)
        );
        let text = rendered(|| l.publish_metrics(10_000));
        assert!(text
            .contains("cryptoflow_source_trades_total{source=\"binance\",symbol=\"BTCUSDT\"} 3"));
        assert!(text.contains("cryptoflow_source_stale{source=\"binance\",symbol=\"ETHUSDT\"} 1"));
    }

    #[test]
    fn ignored_frames_per_source_and_type() {
        let l = Ledger::new(5_000, 0);
        for ty in ["24hrTicker", "bookTicker", "24hrTicker"] {
            l.count_ignored("binance", ty);
        }
        l.count_ignored("kafka", "bookTicker");
        l.count_ignored("kafka", "a\"b");
        assert_eq!(
            l.ignored_by_type(),
            vec![
                ("24hrTicker".to_string(), 2),
                ("a\"b".to_string(), 1),
                ("bookTicker".to_string(), 2)
            ]
        );
        let text = rendered(|| l.publish_metrics(0));
        assert!(text
            .contains("cryptoflow_source_ignored_total{source=\"binance\",type=\"24hrTicker\"} 2"));
        assert!(
            text.contains("cryptoflow_source_ignored_total{source=\"kafka\",type=\"a\\\"b\"} 1")
        );
    }
}
