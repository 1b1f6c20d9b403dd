//! Per-coin rolling sentiment, maintained incrementally by differential dataflow.
//!
//! Every scored item counts, for each coin it mentions, in every window that holds its
//! publication time: the 1 h windows ending on each 5-minute boundary and the 24 h windows ending
//! on each hour (a window ending at `T` holds `(T − span, T]`). A differential `reduce` keyed by
//! (coin, model, span, window end) keeps count, mean compound and the positive/negative shares
//! (VADER's ±0.05 convention); each time a window changes, its new value leaves as a
//! [`SentimentWindowRow`], and the sinks upsert it — the last value of a window is its complete
//! value. Items count once per window however often they arrive (distinct item keys).
//!
//! Memory is bounded: per coin, windows that ended more than [`RETAIN_MS`] before the newest
//! publication time seen for that coin are retracted whole (their rows stay in the sinks;
//! the retraction itself is not emitted), and an item older than that horizon no longer changes
//! windows (it is still scored and stored, and the SQL view `sentiment_coin_rolling` counts it).

use std::collections::BTreeMap;

use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;

pub use crate::model::SentimentWindowRow;
use crate::model::{Millis, SentimentRow};

/// The spans: (label, length, step between window ends), in milliseconds.
pub const SPANS: [(&str, Millis, Millis); 2] =
    [("1h", 3_600_000, 300_000), ("24h", 86_400_000, 3_600_000)];

/// How long a window is kept after its end, relative to the coin's newest publication time.
pub const RETAIN_MS: Millis = 48 * 3_600_000;

/// (coin, model, span index, window end).
type WindowKey = (String, String, u8, Millis);
/// (item key, compound in millionths).
type WindowVal = (String, i64);

/// The window ends (per span) whose window holds `published_at`.
pub fn window_ends(published_at: Millis) -> impl Iterator<Item = (u8, Millis)> {
    SPANS
        .iter()
        .enumerate()
        .flat_map(move |(i, &(_, span, step))| {
            let first = published_at.div_euclid(step) * step
                + if published_at.rem_euclid(step) == 0 {
                    0
                } else {
                    step
                };
            (0..span / step).map(move |k| (i as u8, first + k * step))
        })
}

fn to_micros(compound: f64) -> i64 {
    (compound * 1e6).round() as i64
}

/// Counts of one window: (items, Σ compound µ, positive, negative).
type Agg = (u64, i64, u64, u64);

fn row_of(key: &WindowKey, agg: &Agg) -> SentimentWindowRow {
    let (items, sum, pos, neg) = *agg;
    let n = items.max(1) as f64;
    SentimentWindowRow {
        coin: key.0.clone(),
        model: key.1.clone(),
        span: SPANS[usize::from(key.2)].0.to_string(),
        window_end: key.3,
        items,
        mean_compound: sum as f64 / 1e6 / n,
        positive_share: pos as f64 / n,
        negative_share: neg as f64 / n,
    }
}

/// The per-coin rolling windows of a stream of scored items.
pub trait SentimentWindows<'scope> {
    /// Window values, each time a window changes.
    fn sentiment_windows(self) -> StreamVec<'scope, u64, SentimentWindowRow>;
}

impl<'scope> SentimentWindows<'scope> for StreamVec<'scope, u64, SentimentRow> {
    fn sentiment_windows(self) -> StreamVec<'scope, u64, SentimentWindowRow> {
        // One (coin, item) per record, so that each coin's updates meet on one worker.
        let per_coin = self.flat_map(|row| {
            let coins = row.coins.clone();
            coins.into_iter().map(move |coin| (coin, row.clone()))
        });
        let updates = per_coin.unary(
            Exchange::new(|(coin, _): &(String, SentimentRow)| {
                coin.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                })
            }),
            "SentimentWindowUpdates",
            |_cap, _info| {
                // Per coin: newest publication time, and the updates given per window end.
                let mut newest: BTreeMap<String, Millis> = BTreeMap::new();
                let mut given: BTreeMap<(String, Millis), Vec<(WindowKey, WindowVal)>> =
                    BTreeMap::new();
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let Some(&time) = cap.least() else {
                            return;
                        };
                        let mut session = output.session(&cap);
                        for batch in data {
                            for (coin, row) in batch.drain(..) {
                                let high = newest.entry(coin.clone()).or_insert(row.published_at);
                                *high = (*high).max(row.published_at);
                                let horizon = *high - RETAIN_MS;
                                for (span, end) in window_ends(row.published_at) {
                                    if end < horizon {
                                        continue;
                                    }
                                    let key = (coin.clone(), row.model.clone(), span, end);
                                    let val = (row.item_key.clone(), to_micros(row.score.compound));
                                    given
                                        .entry((coin.clone(), end))
                                        .or_default()
                                        .push((key.clone(), val.clone()));
                                    session.give(((key, val), time, 1isize));
                                }
                                // Retract whole windows that fell out of the horizon.
                                let expired: Vec<(String, Millis)> = given
                                    .range((coin.clone(), Millis::MIN)..(coin.clone(), horizon))
                                    .map(|(k, _)| k.clone())
                                    .collect();
                                for k in expired {
                                    for (key, val) in given.remove(&k).unwrap_or_default() {
                                        session.give(((key, val), time, -1isize));
                                    }
                                }
                            }
                        }
                    });
                }
            },
        );
        updates
            .as_collection()
            .reduce(
                |_key: &WindowKey, vals: &[(&WindowVal, isize)], out: &mut Vec<(Agg, isize)>| {
                    let mut agg: Agg = (0, 0, 0, 0);
                    for ((_, micros), count) in vals {
                        if *count <= 0 {
                            continue;
                        }
                        agg.0 += 1;
                        agg.1 += *micros;
                        agg.2 += u64::from(*micros >= 50_000);
                        agg.3 += u64::from(*micros <= -50_000);
                    }
                    if agg.0 > 0 {
                        out.push((agg, 1));
                    }
                },
            )
            .inner
            .flat_map(|((key, agg), _time, diff)| (diff > 0).then(|| row_of(&key, &agg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_lands_in_every_window_that_holds_it() {
        let t = 10 * 3_600_000 + 2 * 60_000; // 10:02
        let ends: Vec<(u8, Millis)> = window_ends(t).collect();
        assert_eq!(ends.len(), 12 + 24);
        let h1: Vec<Millis> = ends.iter().filter(|e| e.0 == 0).map(|e| e.1).collect();
        assert_eq!(h1[0], 10 * 3_600_000 + 300_000); // 10:05
        assert_eq!(h1[11], 11 * 3_600_000); // 11:00 holds (10:00, 11:00]
        for &(span, end) in &ends {
            let (_, len, _) = SPANS[usize::from(span)];
            assert!(end - len < t && t <= end, "{span} {end}");
        }
        // On a boundary the item belongs to the window ending there.
        let on = 10 * 3_600_000;
        assert_eq!(window_ends(on).next(), Some((0, on)));
    }
}
