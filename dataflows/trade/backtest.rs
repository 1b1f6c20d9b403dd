//! `cryptoflow backtest`: the strategies, the risk gate and the paper broker over a replay, in
//! event time, deterministically.
//!
//! The trades of the file are read in file order. Each trade first closes the candles it is past
//! (per symbol and strategy interval, the same [`CandleAcc`] and [`IndicatorSet`] the pipeline
//! uses), whose indicators go to the strategies; their signals are checked by the risk gate at
//! the candle's close time and placed with the paper broker; then the trade itself moves the mark
//! and fills what it can. So a market order of a signal fills at the first trade after the candle
//! that fired it, never with a price from before the signal. A trade older than its symbol's open
//! candle (late) moves the mark and fills orders but changes no candle; a trade id seen before
//! is left out.
//!
//! The report: orders, fills, rejections by rule, round trips (from flat to flat) and their win
//! rate, PnL and fees, the maximum drawdown of the equity curve, its Sharpe ratio and the share
//! of time with a position. The equity (capital + realised + unrealised at the last trade
//! prices) is sampled at every candle close of the shortest strategy interval.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cryptoflow_operators::math::indicators::{Bar, IndicatorSet};
use cryptoflow_operators::math::{to_f64, CandleAcc, IdSet};
use cryptoflow_operators::model::{Event, IndicatorRow, Interval, Millis, Symbol, Trade, Venue};
use cryptoflow_operators::trading::engine::{Engine, JournalEvent};
use cryptoflow_operators::trading::signals::Strategies;
use cryptoflow_operators::trading::Fill;
use cryptoflow_sources::replay::{replay_file, ReplayOptions};
use cryptoflow_sources::stats::SourceStats;
use rust_decimal::Decimal;
use serde::Serialize;

use super::TradingSection;

/// What to backtest.
#[derive(Debug, Clone)]
pub struct BacktestInput {
    /// The replay files (JSON lines or CSV dumps), read one after the other.
    pub files: Vec<PathBuf>,
    /// Replay options (symbol and venue of CSV dumps).
    pub replay: ReplayOptions,
    /// Where to write every journal event as a JSON line (optional).
    pub journal: Option<PathBuf>,
}

/// The outcome of a backtest.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Trades read (after duplicates were left out).
    pub trades: u64,
    /// Final candles the strategies saw.
    pub candles: u64,
    /// Signals the strategies made.
    pub signals: u64,
    /// Orders the risk gate let through.
    pub orders: u64,
    /// Orders refused, by rule.
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// Signals that made no order (a sell with nothing held).
    pub skipped: u64,
    /// Fills.
    pub fills: u64,
    /// Positions opened and closed again (flat → held → flat).
    pub round_trips: u64,
    /// Round trips with a positive result (fees included).
    pub wins: u64,
    /// wins / round_trips (0 without round trips).
    pub win_rate: f64,
    /// Starting capital.
    pub capital: Decimal,
    /// Final equity − capital: realised plus unrealised at the last prices, fees included.
    pub pnl: Decimal,
    /// Realised PnL (fees included).
    pub realised: Decimal,
    /// Fees paid.
    pub fees: Decimal,
    /// pnl / capital.
    pub return_pct: f64,
    /// The largest fall of equity from a previous peak, quote asset.
    pub max_drawdown: f64,
    /// That fall as a fraction of the peak.
    pub max_drawdown_pct: f64,
    /// Mean / standard deviation of the per-sample equity returns, × √(samples per year).
    pub sharpe: f64,
    /// Share of the samples with any position held.
    pub exposure_time: f64,
    /// Largest gross exposure at a sample, quote asset.
    pub max_exposure: f64,
    /// Equity samples.
    pub equity_points: usize,
    /// First and last trade times, ms.
    pub span_ms: (Millis, Millis),
    /// The equity curve (time ms, equity), not in the JSON report.
    #[serde(skip)]
    pub equity: Vec<(Millis, f64)>,
}

struct Series {
    acc: Option<CandleAcc>,
    indicators: IndicatorSet,
}

struct Run {
    strategies: Strategies,
    engine: Engine,
    intervals: Vec<Interval>,
    sample_every: Interval,
    series: HashMap<(Venue, Symbol, Interval), Series>,
    seen: HashMap<(Venue, Symbol), IdSet>,
    report: Report,
    last_sample: Millis,
    peak: f64,
    held_since: HashMap<Symbol, Decimal>,
    journal: Option<std::io::BufWriter<std::fs::File>>,
    journal_error: Option<std::io::Error>,
    returns: Vec<f64>,
}

impl Run {
    fn write(&mut self, events: &[JournalEvent]) {
        for e in events {
            match e {
                JournalEvent::Signal { .. } => self.report.signals += 1,
                JournalEvent::Skipped { .. } => self.report.skipped += 1,
                JournalEvent::Rejected { rule, .. } => {
                    *self.report.rejected.entry(rule.clone()).or_default() += 1
                }
                JournalEvent::Accepted { .. } => self.report.orders += 1,
                JournalEvent::Filled { fill } => {
                    self.report.fills += 1;
                    self.round_trip(fill);
                }
                JournalEvent::Cancelled { .. } => {}
            }
            if let Some(w) = self.journal.as_mut() {
                use std::io::Write;
                let line = serde_json::to_string(e).unwrap_or_default();
                if let Err(err) = writeln!(w, "{line}") {
                    self.journal_error.get_or_insert(err);
                }
            }
        }
    }

    /// Counts a round trip when a symbol's position goes back to flat.
    fn round_trip(&mut self, fill: &Fill) {
        let symbol = &fill.symbol;
        let p = self
            .engine
            .portfolio()
            .position(symbol)
            .cloned()
            .unwrap_or_default();
        match (self.held_since.get(symbol).copied(), p.is_flat()) {
            (None, false) => {
                // Opened: the realised PnL before this fill (whose fee is realised already).
                self.held_since.insert(*symbol, p.realised_pnl + fill.fee);
            }
            (Some(before), true) => {
                self.held_since.remove(symbol);
                self.report.round_trips += 1;
                if p.realised_pnl > before {
                    self.report.wins += 1;
                }
            }
            _ => {}
        }
    }

    fn equity(&self) -> (f64, f64) {
        let marks = |s: &Symbol| self.engine.mark(s);
        let p = self.engine.portfolio();
        let realised = p.realised_total().unwrap_or_default();
        let unrealised = p.unrealised_total(marks).unwrap_or_default();
        let exposure = p.exposure(marks).unwrap_or_default();
        (
            to_f64(self.report.capital + realised + unrealised),
            to_f64(exposure),
        )
    }

    fn sample(&mut self, at: Millis) {
        if at <= self.last_sample {
            return;
        }
        self.last_sample = at;
        let (equity, exposure) = self.equity();
        if let Some((_, prev)) = self.report.equity.last() {
            if *prev > 0.0 {
                self.returns.push(equity / prev - 1.0);
            }
        }
        self.report.equity.push((at, equity));
        self.peak = self.peak.max(equity);
        let dd = self.peak - equity;
        if dd > self.report.max_drawdown {
            self.report.max_drawdown = dd;
            self.report.max_drawdown_pct = if self.peak > 0.0 { dd / self.peak } else { 0.0 };
        }
        if exposure > 0.0 {
            self.report.exposure_time += 1.0;
        }
        self.report.max_exposure = self.report.max_exposure.max(exposure);
    }

    fn on_trade(&mut self, t: &Trade) {
        if !self
            .seen
            .entry((t.venue, t.symbol))
            .or_default()
            .insert(t.trade_id)
        {
            return;
        }
        self.report.trades += 1;
        if self.report.trades == 1 {
            self.report.span_ms.0 = t.ts_exchange;
        }
        self.report.span_ms.1 = self.report.span_ms.1.max(t.ts_exchange);
        for i in 0..self.intervals.len() {
            let interval = self.intervals[i];
            let open = interval.open_time(t.ts_exchange);
            let key = (t.venue, t.symbol, interval);
            let series = self.series.entry(key).or_insert_with(|| Series {
                acc: None,
                indicators: IndicatorSet::default(),
            });
            let closed = match series.acc.as_mut() {
                None => {
                    series.acc = Some(CandleAcc::new(open, t));
                    None
                }
                Some(acc) if acc.open_time == open => {
                    acc.add(t);
                    None
                }
                Some(acc) if acc.open_time > open => None, // late: no candle changes
                Some(acc) => {
                    let candle = acc.to_candle(t.venue, t.symbol, interval, true);
                    series.acc = Some(CandleAcc::new(open, t));
                    let bar = Bar {
                        high: to_f64(candle.high),
                        low: to_f64(candle.low),
                        close: to_f64(candle.close),
                        volume: to_f64(candle.volume),
                    };
                    let values = series
                        .indicators
                        .update(&bar, candle.quote_volume, candle.volume);
                    Some(IndicatorRow::new(&candle, values))
                }
            };
            if let Some(row) = closed {
                self.report.candles += 1;
                let at = row.close_time;
                if interval == self.sample_every {
                    self.sample(at);
                }
                for signal in self.strategies.on_indicators(&row) {
                    let events = self.engine.on_signal(&signal, at);
                    self.write(&events);
                }
            }
        }
        let events = self.engine.on_trade(t);
        self.write(&events);
    }
}

/// Runs a backtest of `trading` over `input`.
pub fn run(trading: &TradingSection, input: &BacktestInput) -> Result<Report> {
    trading.validate()?;
    if trading.strategies.is_empty() {
        bail!("no strategies: add [[trading.strategies]] to the configuration (or use --strategy)");
    }
    let strategies = Strategies::new(trading.strategies.clone());
    let intervals = strategies.intervals();
    let sample_every = intervals[0];
    let mut engine_cfg = trading.engine.clone();
    // Without exchangeInfo a backtest applies no exchange filters unless configured.
    if engine_cfg.default_filters.is_none() {
        engine_cfg.default_filters =
            Some(cryptoflow_operators::trading::risk::SymbolFilters::unrestricted());
    }
    refuse_overwriting(&input.files, &[input.journal.as_deref()])?;
    let journal = match &input.journal {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        )),
        None => None,
    };
    let mut run = Run {
        strategies,
        engine: Engine::new(engine_cfg),
        intervals,
        sample_every,
        series: HashMap::new(),
        seen: HashMap::new(),
        report: Report {
            trades: 0,
            candles: 0,
            signals: 0,
            orders: 0,
            rejected: Default::default(),
            skipped: 0,
            fills: 0,
            round_trips: 0,
            wins: 0,
            win_rate: 0.0,
            capital: trading.capital,
            pnl: Decimal::ZERO,
            realised: Decimal::ZERO,
            fees: Decimal::ZERO,
            return_pct: 0.0,
            max_drawdown: 0.0,
            max_drawdown_pct: 0.0,
            sharpe: 0.0,
            exposure_time: 0.0,
            max_exposure: 0.0,
            equity_points: 0,
            span_ms: (0, 0),
            equity: Vec::new(),
        },
        last_sample: Millis::MIN,
        peak: to_f64(trading.capital),
        held_since: HashMap::new(),
        journal,
        journal_error: None,
        returns: Vec::new(),
    };
    let stats = SourceStats::default();
    for file in &input.files {
        let read = replay_file(
            file,
            &input.replay,
            &stats,
            |batch| {
                for event in batch {
                    if let Event::Trade(t) = event {
                        run.on_trade(&t);
                    }
                }
                true
            },
            |_| {},
        );
        if let Err(failure) = read {
            bail!("{}: {}", file.display(), failure.error);
        }
    }
    if let Some(e) = run.journal_error.take() {
        bail!("writing the journal: {e}");
    }
    if let Some(mut w) = run.journal.take() {
        use std::io::Write;
        w.flush().context("flush the journal")?;
    }
    if run.report.trades == 0 {
        let names: Vec<String> = input
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        bail!("no trades in {}: nothing to backtest", names.join(", "));
    }
    finish(&mut run);
    Ok(run.report)
}

fn finish(run: &mut Run) {
    let end = run.report.span_ms.1;
    run.sample(end.max(run.last_sample.saturating_add(1)));
    let p = run.engine.portfolio();
    let marks = |s: &Symbol| run.engine.mark(s);
    let realised = p.realised_total().unwrap_or_default();
    let unrealised = p.unrealised_total(marks).unwrap_or_default();
    let r = &mut run.report;
    r.realised = realised;
    r.fees = p.fees_total().unwrap_or_default();
    r.pnl = realised + unrealised;
    r.return_pct = to_f64(r.pnl) / to_f64(r.capital);
    r.win_rate = if r.round_trips == 0 {
        0.0
    } else {
        r.wins as f64 / r.round_trips as f64
    };
    r.equity_points = r.equity.len();
    if r.equity_points > 0 {
        r.exposure_time /= r.equity_points as f64;
    }
    let n = run.returns.len() as f64;
    if n >= 2.0 {
        let mean = run.returns.iter().sum::<f64>() / n;
        let var = run.returns.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let per_year = 365.0 * 86_400_000.0 / run.sample_every.millis() as f64;
        r.sharpe = if var > 0.0 {
            mean / var.sqrt() * per_year.sqrt()
        } else {
            0.0
        };
    }
}

/// Refuses an output file that is one of the input files (it would be truncated).
pub fn refuse_overwriting(files: &[PathBuf], outputs: &[Option<&Path>]) -> Result<()> {
    for out in outputs.iter().flatten() {
        let Ok(out_path) = std::fs::canonicalize(out) else {
            continue; // does not exist yet
        };
        if files
            .iter()
            .any(|f| std::fs::canonicalize(f).is_ok_and(|f| f == out_path))
        {
            bail!("{} is an input file: choose another output", out.display());
        }
    }
    Ok(())
}

/// Writes the report as JSON to `out` (or standard output) and the equity curve to `svg`.
pub fn write(report: &Report, out: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    let json = serde_json::to_string_pretty(report).context("serialize the report")?;
    match out {
        Some(p) => {
            std::fs::write(p, json + "\n").with_context(|| format!("write {}", p.display()))?
        }
        None => println!("{json}"),
    }
    if let Some(p) = svg {
        let title = format!(
            "equity: {} → {:.2} ({:+.2} %), max drawdown {:.2} %",
            report.capital,
            to_f64(report.capital + report.pnl),
            report.return_pct * 100.0,
            report.max_drawdown_pct * 100.0
        );
        std::fs::write(
            p,
            super::svg::equity_curve(&report.equity, &title, 900, 360),
        )
        .with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}
