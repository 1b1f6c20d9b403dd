//! The in-process read model of `cryptoflow run`: what the primary sink has committed, kept in
//! bounded memory per symbol, and pushed to WebSocket clients.
//!
//! The board is fed by the primary sink's commit observer ([`Board::observer`]), so a client
//! never sees a record that is not durable in the primary store. Each process keeps the records
//! its own workers produced: in a multi-process run, a process's board holds the symbols it owns
//! (the `serve` command reads the whole cluster's tables instead).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use cryptoflow_operators::model::{
    Candle, CoinMarket, EnrichedTrade, FeatureRow, Gap, IndicatorRow, Interval, KlineMismatch,
    LateTrade, MacroObservation, Millis, NewsItem, Output, Polled, SentimentRow,
    SentimentWindowRow, Symbol, WhaleAlert,
};
use cryptoflow_sinks::kafka::{outgoing, topic_key, Topics};
use cryptoflow_sinks::task::CommitObserver;
use serde::Serialize;

use super::fanout::{ClientFeed, Fanout, Subscription};
pub use super::push::{Push, PushKind};

/// How much history the board keeps.
#[derive(Debug, Clone, Copy)]
pub struct BoardLimits {
    /// Final candles per (symbol, interval), and indicator and feature rows per symbol.
    pub per_symbol: usize,
    /// Final candles, indicator and feature rows over all series; each series keeps at most
    /// `total / series` (at least one).
    pub total: usize,
    /// Whale alerts, news items, gaps and other data-quality events, over all symbols.
    pub recent: usize,
    /// Pushes queued per WebSocket client; a client further behind is closed.
    pub push_buffer: usize,
}

impl Default for BoardLimits {
    fn default() -> Self {
        BoardLimits {
            per_symbol: 1_000,
            total: 200_000,
            recent: 1_000,
            push_buffer: 4_096,
        }
    }
}

/// The latest trade of a symbol with its analytics.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PriceNow {
    /// The trade and its moving averages.
    #[serde(flatten)]
    pub trade: EnrichedTrade,
    /// Trades of the symbol the board has seen.
    pub trades_seen: u64,
}

/// A data-quality event (a hole, a late trade, a kline that disagrees).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QualityEvent {
    /// A possible hole in a stream.
    Gap(Gap),
    /// A trade that arrived after its candle was final.
    Late(LateTrade),
    /// A closed exchange kline that disagrees with the computed candle.
    Mismatch(KlineMismatch),
}

/// The board's tables.
#[derive(Default)]
struct Tables {
    prices: BTreeMap<Symbol, PriceNow>,
    candles: HashMap<(Symbol, Interval), VecDeque<Candle>>,
    forming: HashMap<(Symbol, Interval), Candle>,
    indicators: HashMap<(Symbol, Interval), VecDeque<IndicatorRow>>,
    features: HashMap<(Symbol, Interval), VecDeque<FeatureRow>>,
    whales: VecDeque<WhaleAlert>,
    sentiment: BTreeMap<(String, String), SentimentWindowRow>,
    scored: VecDeque<SentimentRow>,
    news: VecDeque<NewsItem>,
    quality: VecDeque<QualityEvent>,
    markets: BTreeMap<(String, String), CoinMarket>,
    macros: BTreeMap<String, VecDeque<MacroObservation>>,
    records: u64,
}

/// The items of `q` whose time is in `[from, to)`, in order.
fn in_range<T: Clone>(
    q: Option<&VecDeque<T>>,
    from: Millis,
    to: Millis,
    time: impl Fn(&T) -> Millis,
) -> Vec<T> {
    q.map(|q| {
        q.iter()
            .filter(|x| (from..to).contains(&time(x)))
            .cloned()
            .collect()
    })
    .unwrap_or_default()
}

/// The last `limit` items of `v` (the newest, oldest first).
fn newest<T>(mut v: Vec<T>, limit: usize) -> Vec<T> {
    let skip = v.len().saturating_sub(limit);
    v.split_off(skip)
}

/// Keeps at most `n` items, dropping the oldest.
fn push_bounded<T>(q: &mut VecDeque<T>, item: T, n: usize) {
    if q.len() >= n.max(1) {
        q.pop_front();
    }
    q.push_back(item);
}

/// Inserts `item` in `key` order (records commit in batches, not always in time order), keeping
/// the first of equal keys and at most `n` items (the newest).
fn insert_ordered<T, K: Ord>(q: &mut VecDeque<T>, item: T, n: usize, key: impl Fn(&T) -> K) {
    let k = key(&item);
    // Usually the newest: search from the back.
    let mut i = q.len();
    while i > 0 && key(&q[i - 1]) > k {
        i -= 1;
    }
    if i > 0 && key(&q[i - 1]) == k {
        return;
    }
    if q.len() >= n.max(1) {
        if i == 0 {
            return; // older than everything kept
        }
        q.pop_front();
        i -= 1;
    }
    q.insert(i, item);
}

impl Tables {
    /// Rows each (symbol, interval) series may keep: `per_symbol`, less when `total` spread over
    /// every series is smaller.
    fn series_cap(&self, limits: &BoardLimits) -> usize {
        let series = self.candles.len() + self.indicators.len() + self.features.len();
        (limits.total / series.max(1)).clamp(1, limits.per_symbol.max(1))
    }

    /// Drops the oldest rows of every series longer than `cap`.
    fn trim_series(&mut self, cap: usize) {
        fn trim<T>(q: &mut VecDeque<T>, cap: usize) {
            let excess = q.len().saturating_sub(cap);
            q.drain(..excess);
        }
        self.candles.values_mut().for_each(|q| trim(q, cap));
        self.indicators.values_mut().for_each(|q| trim(q, cap));
        self.features.values_mut().for_each(|q| trim(q, cap));
    }

    /// Final candles, indicator and feature rows held.
    #[cfg(test)]
    fn series_rows(&self) -> usize {
        self.candles.values().map(VecDeque::len).sum::<usize>()
            + self.indicators.values().map(VecDeque::len).sum::<usize>()
            + self.features.values().map(VecDeque::len).sum::<usize>()
    }
}

/// The in-process read model; cheap to clone (shared).
#[derive(Clone)]
pub struct Board {
    tables: Arc<RwLock<Tables>>,
    fanout: Fanout,
    limits: BoardLimits,
    topics: Arc<Topics>,
}

impl Board {
    /// An empty board; pushes name the Kafka `topics` messages' kinds.
    pub fn new(limits: BoardLimits, topics: Topics) -> Self {
        Board {
            tables: Arc::new(RwLock::new(Tables::default())),
            fanout: Fanout::new(limits.push_buffer.max(16)),
            limits,
            topics: Arc::new(topics),
        }
    }

    /// Pushes `push` to the subscribed clients (never waits: a client whose queue is full is
    /// dropped and closed).
    pub fn push(&self, push: Push) {
        self.fanout.push(Arc::new(push));
    }

    /// A commit observer that records every committed batch on the board (and then calls
    /// `next`, when given).
    pub fn observer(&self, mut next: Option<CommitObserver>) -> CommitObserver {
        let board = self.clone();
        Box::new(move |records: &[Output], committed: Instant| {
            board.record(records, committed);
            if let Some(next) = next.as_mut() {
                next(records, committed);
            }
        })
    }

    /// A new WebSocket client's feed, from now on.
    pub fn subscribe(&self, sub: Subscription) -> ClientFeed {
        self.fanout.register(sub)
    }

    /// Records a committed batch and pushes it to the subscribed clients.
    pub fn record(&self, records: &[Output], committed: Instant) {
        let interest = self.fanout.interest();
        let mut pushes = Vec::new();
        {
            let mut t = match self.tables.write() {
                Ok(t) => t,
                Err(poisoned) => poisoned.into_inner(),
            };
            let mut n = t.series_cap(&self.limits);
            let recent = self.limits.recent;
            for r in records {
                // A new series lowers every series' share of the total.
                let new_series = match r {
                    Output::Candle(c) if c.is_final => {
                        !t.candles.contains_key(&(c.symbol, c.interval))
                    }
                    Output::Indicators(i) => !t.indicators.contains_key(&(i.symbol, i.interval)),
                    Output::Features(f) => !t.features.contains_key(&(f.symbol, f.interval)),
                    _ => false,
                };

                t.records += 1;
                // Serialized only when a client subscribed to the record's key.
                if let Some(kind) = PushKind::of(r.kind()).filter(|_| interest.wants(topic_key(r)))
                {
                    if let Some(msg) = outgoing(&self.topics, r) {
                        pushes.push(Arc::new(Push::envelope(
                            kind,
                            Some(msg.key),
                            &msg.payload,
                            committed,
                        )));
                    }
                }
                match r {
                    Output::Trade(e) => {
                        let newest = |x: &EnrichedTrade| (x.trade.ts_exchange, x.trade.trade_id);
                        match t.prices.get_mut(&e.trade.symbol) {
                            Some(p) => {
                                p.trades_seen += 1;
                                if newest(e) >= newest(&p.trade) {
                                    p.trade = e.clone();
                                }
                            }
                            None => {
                                t.prices.insert(
                                    e.trade.symbol,
                                    PriceNow {
                                        trade: e.clone(),
                                        trades_seen: 1,
                                    },
                                );
                            }
                        }
                    }
                    Output::Candle(c) if c.is_final => {
                        let key = (c.symbol, c.interval);
                        if t.forming
                            .get(&key)
                            .is_some_and(|f| f.open_time <= c.open_time)
                        {
                            t.forming.remove(&key);
                        }
                        // A repeat (a replay of stored data) keeps the first.
                        insert_ordered(t.candles.entry(key).or_default(), c.clone(), n, |c| {
                            c.open_time
                        });
                    }
                    Output::Candle(c) => {
                        let key = (c.symbol, c.interval);
                        let closed = t
                            .candles
                            .get(&key)
                            .and_then(|q| q.back())
                            .is_some_and(|last| last.open_time >= c.open_time);
                        let newer = t
                            .forming
                            .get(&key)
                            .is_none_or(|f| f.open_time <= c.open_time);
                        if !closed && newer {
                            t.forming.insert(key, c.clone());
                        }
                    }
                    Output::Indicators(i) => insert_ordered(
                        t.indicators.entry((i.symbol, i.interval)).or_default(),
                        (**i).clone(),
                        n,
                        |r| r.open_time,
                    ),
                    Output::Features(f) => insert_ordered(
                        t.features.entry((f.symbol, f.interval)).or_default(),
                        (**f).clone(),
                        n,
                        |r| r.close_time,
                    ),
                    Output::Whale(w) => push_bounded(&mut t.whales, w.clone(), recent),
                    Output::Gap(g) => {
                        push_bounded(&mut t.quality, QualityEvent::Gap(g.clone()), recent)
                    }
                    Output::Late(l) => {
                        push_bounded(&mut t.quality, QualityEvent::Late(l.clone()), recent)
                    }
                    Output::Mismatch(m) => {
                        push_bounded(&mut t.quality, QualityEvent::Mismatch(m.clone()), recent)
                    }
                    Output::Sentiment(s) => push_bounded(&mut t.scored, (**s).clone(), recent),
                    Output::SentimentWindow(w) => {
                        t.sentiment
                            .insert((w.coin.to_uppercase(), w.span.clone()), (**w).clone());
                    }
                    // Signals are stored and published, not served by the API (yet).
                    Output::Signal(_) => {}
                    Output::Polled(p) => match &**p {
                        Polled::Market(m) => {
                            t.markets
                                .insert((m.coin_id.clone(), m.vs_currency.clone()), m.clone());
                        }
                        Polled::News(item) => push_bounded(&mut t.news, item.clone(), recent),
                        Polled::Macro(o) => {
                            let q = t.macros.entry(o.series_id.to_uppercase()).or_default();
                            // A newer vintage of a date replaces it.
                            match q.iter_mut().find(|x| x.date == o.date) {
                                Some(same) if same.realtime_start <= o.realtime_start => {
                                    *same = o.clone()
                                }
                                Some(_) => {}
                                None => insert_ordered(q, o.clone(), n, |x| x.date),
                            }
                        }
                        Polled::Social(_) | Polled::FundNav(_) => {}
                    },
                    Output::Quality(_) => {}
                }
                if new_series {
                    let cap = t.series_cap(&self.limits);
                    if cap < n {
                        n = cap;
                        t.trim_series(cap);
                    }
                }
            }
        }
        // The whole batch in one pass: one wake-up per client.
        self.fanout.push_all(&pushes);
    }

    fn read<R>(&self, f: impl FnOnce(&Tables) -> R) -> R {
        match self.tables.read() {
            Ok(t) => f(&t),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Records the board has taken.
    pub fn records(&self) -> u64 {
        self.read(|t| t.records)
    }

    /// Whether the board has seen anything of `symbol` (a trade or a candle).
    pub fn knows(&self, symbol: &Symbol) -> bool {
        self.read(|t| {
            t.prices.contains_key(symbol)
                || t.candles.keys().any(|(s, _)| s == symbol)
                || t.forming.keys().any(|(s, _)| s == symbol)
        })
    }

    /// The symbols with a price, in order.
    pub fn symbols(&self) -> Vec<Symbol> {
        self.read(|t| t.prices.keys().copied().collect())
    }

    /// The latest trade of `symbol`.
    pub fn price(&self, symbol: &Symbol) -> Option<PriceNow> {
        self.read(|t| t.prices.get(symbol).cloned())
    }

    /// Final candles of `symbol` at `interval` with `from <= open_time < to`, the newest
    /// `limit`, oldest first; and the forming candle when `with_forming` and it is in range.
    pub fn candles(
        &self,
        symbol: &Symbol,
        interval: Interval,
        from: Millis,
        to: Millis,
        limit: usize,
        with_forming: bool,
    ) -> Vec<Candle> {
        self.read(|t| {
            let key = (*symbol, interval);
            let mut out = in_range(t.candles.get(&key), from, to, |c| c.open_time);
            if with_forming {
                if let Some(f) = t.forming.get(&key) {
                    let newer = out.last().is_none_or(|l| l.open_time < f.open_time);
                    if newer && f.open_time >= from && f.open_time < to {
                        out.push(f.clone());
                    }
                }
            }
            newest(out, limit)
        })
    }

    /// Indicator rows of `symbol` at `interval` with `from <= open_time < to`, the newest `limit`,
    /// oldest first.
    pub fn indicators(
        &self,
        symbol: &Symbol,
        interval: Interval,
        from: Millis,
        to: Millis,
        limit: usize,
    ) -> Vec<IndicatorRow> {
        self.read(|t| {
            let rows = in_range(t.indicators.get(&(*symbol, interval)), from, to, |r| {
                r.open_time
            });
            newest(rows, limit)
        })
    }

    /// The feature vector of `symbol` at `interval` in force at `at` (the newest whose candle
    /// closed by then), or the newest when `at` is `None`.
    pub fn features_at(
        &self,
        symbol: &Symbol,
        interval: Interval,
        at: Option<Millis>,
    ) -> Option<FeatureRow> {
        self.read(|t| {
            let q = t.features.get(&(*symbol, interval))?;
            match at {
                None => q.back().cloned(),
                Some(at) => q.iter().rev().find(|f| f.close_time <= at).cloned(),
            }
        })
    }

    /// Whale alerts of `symbol` (all when `None`) at or after `since`, the newest trades first.
    pub fn whales(&self, symbol: Option<&Symbol>, since: Millis, limit: usize) -> Vec<WhaleAlert> {
        let mut out: Vec<WhaleAlert> = self.read(|t| {
            t.whales
                .iter()
                .filter(|w| symbol.is_none_or(|s| w.trade.symbol == *s))
                .filter(|w| w.trade.ts_exchange >= since)
                .cloned()
                .collect()
        });
        out.sort_by(|a, b| {
            (b.trade.ts_exchange, b.trade.trade_id).cmp(&(a.trade.ts_exchange, a.trade.trade_id))
        });
        out.truncate(limit);
        out
    }

    /// The current sentiment windows of `coin` (upper case), by span.
    pub fn sentiment(&self, coin: &str) -> Vec<SentimentWindowRow> {
        self.read(|t| {
            t.sentiment
                .iter()
                .filter(|((c, _), _)| c == coin)
                .map(|(_, w)| w.clone())
                .collect()
        })
    }

    /// The newest scored news items and posts about `coin` (all when `None`), newest first.
    pub fn news(&self, coin: Option<&str>, limit: usize) -> Vec<(Option<NewsItem>, SentimentRow)> {
        self.read(|t| {
            t.scored
                .iter()
                .rev()
                .filter(|s| coin.is_none_or(|c| s.coins.iter().any(|x| x.eq_ignore_ascii_case(c))))
                .take(limit)
                .map(|s| {
                    let item = t.news.iter().rev().find(|n| n.item_key == s.item_key);
                    (item.cloned(), s.clone())
                })
                .collect()
        })
    }

    /// The newest data-quality events, newest first.
    pub fn quality_events(&self, limit: usize) -> Vec<QualityEvent> {
        self.read(|t| t.quality.iter().rev().take(limit).cloned().collect())
    }

    /// The latest CoinGecko market rows.
    pub fn markets(&self) -> Vec<CoinMarket> {
        self.read(|t| t.markets.values().cloned().collect())
    }

    /// The observations of a macro series (upper case), oldest first.
    pub fn macro_series(&self, series: &str) -> Option<Vec<MacroObservation>> {
        self.read(|t| t.macros.get(series).map(|q| q.iter().cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoflow_operators::model::Venue;
    use rust_decimal::Decimal;

    fn candle(symbol: &str, open_time: Millis) -> Output {
        let p = Decimal::ONE;
        Output::Candle(Candle {
            venue: Venue::Binance,
            symbol: symbol.parse().expect("symbol"),
            interval: "1m".parse().expect("interval"),
            open_time,
            close_time: open_time + 59_999,
            open: p,
            high: p,
            low: p,
            close: p,
            volume: p,
            quote_volume: p,
            vwap: p,
            trade_count: 1,
            taker_buy_volume: p,
            first_trade_id: 1,
            last_trade_id: 1,
            is_final: true,
        })
    }

    #[test]
    fn many_symbols_share_the_total_and_each_keeps_its_newest() {
        let limits = BoardLimits {
            per_symbol: 10,
            total: 30,
            ..BoardLimits::default()
        };
        let board = Board::new(limits, Topics::default());
        let now = Instant::now();
        let one: Vec<Output> = (0..20).map(|i| candle("AAAUSDT", i * 60_000)).collect();
        board.record(&one, now);
        assert_eq!(board.read(Tables::series_rows), 10, "per-series cap alone");
        for s in 0..100 {
            let symbol = format!("S{s}USDT");
            let rows: Vec<Output> = (0..20).map(|i| candle(&symbol, i * 60_000)).collect();
            board.record(&rows, now);
            let series = s + 2;
            assert!(
                board.read(Tables::series_rows) <= 30.max(series),
                "the total is a bound (one row per series at least)"
            );
        }
        // 101 series over a total of 30: each keeps one row, its newest.
        let newest = board.candles(
            &"S0USDT".parse().expect("symbol"),
            "1m".parse().expect("interval"),
            0,
            Millis::MAX,
            10,
            false,
        );
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].open_time, 19 * 60_000);
        assert_eq!(board.read(Tables::series_rows), 101);
    }
}
