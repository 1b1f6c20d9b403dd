//! The differential per-coin sentiment windows against a brute-force recomputation, and the
//! same on 1 and 2 workers: random items (several coins each, out-of-order publication times,
//! repeated compounds, about 5 days so that windows expire) fed over many dataflow times; the last value of every window must equal
//! the windows recomputed from all items within each coin's retention horizon.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use cryptoflow_operators::sentiment::windows::{SentimentWindowRow, SentimentWindows, RETAIN_MS};
use cryptoflow_operators::sentiment::{SentimentRow, SentimentScore};
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

type Key = (String, String, String, i64);

fn items() -> Vec<SentimentRow> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let coins = ["BTC", "ETH", "SOL", "XRP"];
    let base = 1_790_000_000_000i64;
    (0..700)
        .map(|i| {
            let a = coins[(next() % 4) as usize].to_string();
            let b = coins[(next() % 4) as usize].to_string();
            let mut cs = vec![a, b];
            cs.sort();
            cs.dedup();
            // Mostly forward in time, with some items up to 6 h late.
            let at = base + i * 600_000 - (next() % 4 == 0) as i64 * (next() % 21_600_000) as i64;
            let compound = [-0.9, -0.2, -0.05, 0.0, 0.04, 0.05, 0.3, 0.8][(next() % 8) as usize];
            SentimentRow {
                item_key: format!("news|{i}"),
                kind: "news".into(),
                model: "vader-3.3.2".into(),
                published_at: at,
                coins: cs,
                score: SentimentScore {
                    neg: 0.0,
                    neu: 1.0,
                    pos: 0.0,
                    compound,
                },
            }
        })
        .collect()
}

fn run(workers: usize, items: Vec<SentimentRow>) -> BTreeMap<Key, SentimentWindowRow> {
    let out: Arc<Mutex<Vec<SentimentWindowRow>>> = Arc::default();
    let sink = out.clone();
    let items = Arc::new(items);
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut input = InputHandleVec::<u64, SentimentRow>::new();
        let probe = ProbeHandle::new();
        let sink = sink.clone();
        worker.dataflow::<u64, _, _>(|scope| {
            scope
                .input_from(&mut input)
                .sentiment_windows()
                .inspect(move |w| sink.lock().unwrap().push(w.clone()))
                .probe_with(&probe);
        });
        if worker.index() == 0 {
            for (k, chunk) in items.chunks(7).enumerate() {
                for it in chunk {
                    input.send(it.clone());
                }
                input.advance_to(k as u64 + 1);
                worker.step_while(|| probe.less_than(input.time()));
            }
        }
        input.close();
        worker.step_while(|| !probe.done());
    })
    .unwrap();
    // A window lives on one worker, whose updates arrive in order: the last one is its value.
    let rows = out.lock().unwrap().clone();
    let mut last = BTreeMap::new();
    for w in rows {
        last.insert(
            (
                w.coin.clone(),
                w.model.clone(),
                w.span.clone(),
                w.window_end,
            ),
            w,
        );
    }
    last
}

fn brute_force(items: &[SentimentRow]) -> BTreeMap<Key, (u64, f64)> {
    // Replays arrival order: an item counts in a window only while that window is within its
    // coin's horizon (the newest publication time seen so far minus RETAIN_MS).
    let mut newest: HashMap<String, i64> = HashMap::new();
    let mut acc: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for it in items {
        for coin in &it.coins {
            let n = newest.entry(coin.clone()).or_insert(it.published_at);
            *n = (*n).max(it.published_at);
            let horizon = *n - RETAIN_MS;
            for (label, span, step) in [
                ("1h", 3_600_000i64, 300_000i64),
                ("24h", 86_400_000, 3_600_000),
            ] {
                let mut end = it.published_at - span;
                end = end.div_euclid(step) * step;
                while end <= it.published_at + span {
                    if end - span < it.published_at && it.published_at <= end && end >= horizon {
                        acc.entry((coin.clone(), it.model.clone(), label.into(), end))
                            .or_default()
                            .push(it.score.compound);
                    }
                    end += step;
                }
            }
        }
        // Windows that left the horizon are dropped whole.
        let horizons: HashMap<String, i64> = newest
            .iter()
            .map(|(c, n)| (c.clone(), n - RETAIN_MS))
            .collect();
        acc.retain(|k, _| k.3 >= horizons[&k.0]);
    }
    acc.into_iter()
        .map(|(k, xs)| {
            let n = xs.len() as u64;
            (k, (n, xs.iter().sum::<f64>() / n as f64))
        })
        .collect()
}

#[test]
fn windows_equal_a_recomputation_on_one_and_two_workers() {
    let items = items();
    let one = run(1, items.clone());
    let two = run(2, items.clone());
    assert_eq!(one, two, "1 vs 2 workers");
    let want = brute_force(&items);
    // Windows dropped by the horizon keep their last stored value; all others must match.
    let mut checked = 0;
    for (key, (n, mean)) in &want {
        let got = one.get(key).unwrap_or_else(|| panic!("missing {key:?}"));
        assert_eq!(got.items, *n, "{key:?}");
        assert!((got.mean_compound - mean).abs() < 1e-9, "{key:?}");
        checked += 1;
    }
    assert!(checked > 1_000, "{checked}");
}
