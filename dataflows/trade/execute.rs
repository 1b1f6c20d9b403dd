//! The order executor's core: an intent through the risk gate, written ahead to the journal,
//! placed on an exchange, its outcome and fills journaled; and the recovery at a start.
//!
//! One order per intent, across crashes:
//! 1. the risk gate approves (or the rejection is journaled with its rule and reason);
//! 2. the intent is written `pending` **before** anything is sent, and an id already in the
//!    journal is never sent again;
//! 3. the exchange's answer moves the row on (`accepted`, `filled`, …; `unknown` when the
//!    outcome could not be learnt) and its fills go to `fills` and `positions`;
//! 4. at a start, positions are rebuilt from `fills`, every journaled id is marked handled, and
//!    every `pending` or `unknown` row is resolved with [`Exchange::reconcile`]: a query by
//!    client order id first, a placement only once the exchange confirms there is no such order.
//!
//! A kill between 2 and 3 (the process dies while the request is on the wire) leaves a `pending`
//! row; the next start finds the order on the exchange by its id and journals it, so the
//! exchange holds exactly one order for the intent.

use std::future::Future;

use anyhow::{Context, Result};
use cryptoflow_operators::model::{Millis, Trade};
use cryptoflow_operators::trading::engine::{Engine, EngineConfig, Gate, JournalEvent};
use cryptoflow_operators::trading::paper::OrderStatus as PaperStatus;
use cryptoflow_operators::trading::risk::SymbolFilters;
use cryptoflow_operators::trading::signals::Signal;
use cryptoflow_operators::trading::{Fill, Intent};
use cryptoflow_sinks::binance_orders::{BinanceOrders, OrderError, OrderOutcome, OrderStatus};
use cryptoflow_sinks::journal::{Journal, OrderState};
use rust_decimal::Decimal;

/// What an exchange said about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The order's state.
    pub state: OrderState,
    /// The exchange's order id.
    pub exchange_order_id: Option<u64>,
    /// Quantity executed so far.
    pub executed_qty: Decimal,
    /// The fills known.
    pub fills: Vec<Fill>,
}

/// Why an exchange did not place an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPlaced {
    /// Refused: not placed (`rule` is the exchange's code, e.g. `binance:-2010`).
    Rejected {
        /// Who refused and the code.
        rule: String,
        /// The exchange's message.
        reason: String,
    },
    /// It may or may not be on the exchange: resolve with [`Exchange::reconcile`].
    Unknown(String),
}

/// A live exchange, as the executor uses it.
pub trait Exchange {
    /// Its name in the journal (`binance`).
    fn name(&self) -> &'static str;
    /// Places an order with the intent's id as the client order id.
    fn place(&self, intent: &Intent) -> impl Future<Output = Result<Placed, NotPlaced>> + Send;
    /// Finds the order of an intent that may have been sent; places it only once the exchange
    /// confirms that it does not exist.
    fn reconcile(&self, intent: &Intent) -> impl Future<Output = Result<Placed, NotPlaced>> + Send;
    /// The trading rules of `symbol` (`None`: not trading there).
    fn filters(
        &self,
        symbol: &cryptoflow_operators::model::Symbol,
    ) -> impl Future<Output = Result<Option<SymbolFilters>>> + Send;
}

fn placed(o: OrderOutcome) -> Placed {
    let state = match o.status {
        OrderStatus::New | OrderStatus::PendingNew => OrderState::Accepted,
        OrderStatus::PartiallyFilled => OrderState::PartiallyFilled,
        OrderStatus::Filled => OrderState::Filled,
        OrderStatus::Canceled | OrderStatus::PendingCancel => OrderState::Cancelled,
        OrderStatus::Rejected => OrderState::Rejected,
        OrderStatus::Expired | OrderStatus::ExpiredInMatch => OrderState::Expired,
        OrderStatus::Other(_) => OrderState::Unknown,
    };
    Placed {
        state,
        exchange_order_id: Some(o.exchange_order_id),
        executed_qty: o.executed_qty,
        fills: o.fills,
    }
}

fn not_placed(e: OrderError) -> NotPlaced {
    match e {
        OrderError::Rejected { code, msg, .. } => NotPlaced::Rejected {
            rule: format!("binance:{code}"),
            reason: msg,
        },
        OrderError::NotTrading { .. } => NotPlaced::Rejected {
            rule: "binance:not_trading".into(),
            reason: e.to_string(),
        },
        // Anything else may have reached the exchange, or not: never guess.
        other => NotPlaced::Unknown(other.to_string()),
    }
}

impl Exchange for BinanceOrders {
    fn name(&self) -> &'static str {
        "binance"
    }

    async fn place(&self, intent: &Intent) -> Result<Placed, NotPlaced> {
        BinanceOrders::place(self, intent)
            .await
            .map(placed)
            .map_err(not_placed)
    }

    async fn reconcile(&self, intent: &Intent) -> Result<Placed, NotPlaced> {
        BinanceOrders::reconcile(self, intent)
            .await
            .map(placed)
            .map_err(not_placed)
    }

    async fn filters(
        &self,
        symbol: &cryptoflow_operators::model::Symbol,
    ) -> Result<Option<SymbolFilters>> {
        let info = self
            .exchange_info(std::slice::from_ref(symbol))
            .await
            .with_context(|| format!("exchangeInfo of {symbol}"))?;
        Ok(info.symbols.get(symbol).map(|i| i.filters.clone()))
    }
}

/// What a start's recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Fills read back from the journal.
    pub fills: usize,
    /// Pending or unknown intents found on (or placed on) the exchange.
    pub resolved: usize,
    /// Refused by the exchange after all.
    pub rejected: usize,
    /// Still unknown: left `unknown` for the next attempt.
    pub unknown: usize,
}

/// The executor: the engine's risk gate, a live exchange (or the paper broker: `None`) and the
/// journal.
pub struct Executor<X> {
    engine: Engine,
    exchange: Option<X>,
    journal: Journal,
}

impl<X: Exchange> Executor<X> {
    /// Starts: rebuilds the positions from the journal's fills, marks every journaled intent as
    /// handled, and resolves the ones a crash or a timeout left open (on the exchange; with the
    /// paper broker, whose book does not survive a restart, they are cancelled).
    pub async fn start(
        config: EngineConfig,
        exchange: Option<X>,
        journal: Journal,
    ) -> Result<(Self, Recovery)> {
        let mut engine = Engine::new(config);
        let fills = journal.fills().await.context("read the journal's fills")?;
        let mut recovery = Recovery {
            fills: fills.len(),
            ..Recovery::default()
        };
        engine.record_fills(fills);
        for id in journal.intent_ids().await.context("read the journal")? {
            engine.mark_seen(&id);
        }
        let mut executor = Executor {
            engine,
            exchange,
            journal,
        };
        for intent in executor
            .journal
            .unresolved()
            .await
            .context("read the journal")?
        {
            let Some(exchange) = executor.exchange.as_ref() else {
                executor
                    .journal
                    .set_state(
                        &intent.id,
                        OrderState::Cancelled,
                        None,
                        Decimal::ZERO,
                        Some(("paper_restart", "the paper book does not survive a restart")),
                    )
                    .await
                    .context("journal a lost paper order")?;
                continue;
            };
            match exchange.reconcile(&intent).await {
                Ok(p) => {
                    recovery.resolved += 1;
                    executor.settle(&intent, p).await?;
                }
                Err(e) => {
                    match &e {
                        NotPlaced::Rejected { .. } => recovery.rejected += 1,
                        NotPlaced::Unknown(_) => recovery.unknown += 1,
                    }
                    executor.refused(&intent, e).await?;
                }
            }
        }
        Ok((executor, recovery))
    }

    /// Reads the exchange's filters of `symbol` once (live: `exchangeInfo`); a symbol that is
    /// not trading gets none, so the risk gate refuses its orders (`no_filters`).
    pub async fn ensure_filters(
        &mut self,
        symbol: &cryptoflow_operators::model::Symbol,
    ) -> Result<()> {
        if self.engine.has_filters(symbol) {
            return Ok(());
        }
        if let Some(exchange) = &self.exchange {
            if let Some(filters) = exchange.filters(symbol).await? {
                self.engine.set_filters(*symbol, filters);
            }
        }
        Ok(())
    }

    /// The engine (positions, marks, the kill switch).
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// An intent at `now`: the risk gate, the journal, the exchange. Returns the order's state
    /// (`None` for an id handled before: nothing is sent).
    pub async fn submit(&mut self, intent: Intent, now: Millis) -> Result<Option<OrderState>> {
        let intent = match self.engine.gate(intent, now) {
            Gate::Duplicate => return Ok(None),
            Gate::Rejected(JournalEvent::Rejected {
                intent,
                rule,
                reason,
                ..
            }) => {
                self.journal
                    .write_rejected(&intent, &rule, &reason)
                    .await
                    .context("journal a rejection")?;
                return Ok(Some(OrderState::Rejected));
            }
            Gate::Rejected(_) => return Ok(Some(OrderState::Rejected)),
            Gate::Approved(intent) => intent,
        };
        // Written ahead: from here on the intent is never sent again, only resolved.
        if !self
            .journal
            .write_pending(&intent)
            .await
            .context("journal the intent before sending it")?
        {
            return Ok(None);
        }
        let Some(exchange) = self.exchange.as_ref() else {
            let state = match self.engine.paper_submit(intent.clone(), now) {
                Ok(()) => OrderState::Accepted,
                Err(reason) => {
                    self.refused(
                        &intent,
                        NotPlaced::Rejected {
                            rule: "paper".into(),
                            reason,
                        },
                    )
                    .await?;
                    return Ok(Some(OrderState::Rejected));
                }
            };
            self.journal
                .set_state(&intent.id, state, None, Decimal::ZERO, None)
                .await
                .context("journal a paper order")?;
            return Ok(Some(state));
        };
        match exchange.place(&intent).await {
            Ok(p) => {
                let state = p.state;
                self.settle(&intent, p).await?;
                Ok(Some(state))
            }
            Err(e) => {
                let state = match &e {
                    NotPlaced::Rejected { .. } => OrderState::Rejected,
                    NotPlaced::Unknown(_) => OrderState::Unknown,
                };
                self.refused(&intent, e).await?;
                Ok(Some(state))
            }
        }
    }

    async fn settle(&mut self, intent: &Intent, p: Placed) -> Result<()> {
        self.journal
            .set_state(
                &intent.id,
                p.state,
                p.exchange_order_id,
                p.executed_qty,
                None,
            )
            .await
            .context("journal the exchange's answer")?;
        self.record_fills(p.fills).await
    }

    /// Applies fills (from an answer or the user data stream) to the positions and journals
    /// the new ones.
    pub async fn record_fills(&mut self, fills: Vec<Fill>) -> Result<()> {
        let new: Vec<Fill> = self
            .engine
            .record_fills(fills)
            .into_iter()
            .filter_map(|e| match e {
                JournalEvent::Filled { fill } => Some(fill),
                _ => None,
            })
            .collect();
        self.journal
            .write_fills(&new, self.engine.portfolio())
            .await
            .context("journal fills")
    }

    /// A trade of the tape: the new mark, and with the paper broker the fills it makes, each
    /// order's new state journaled.
    pub async fn on_trade(&mut self, trade: &Trade) -> Result<()> {
        let fills: Vec<Fill> = self
            .engine
            .on_trade(trade)
            .into_iter()
            .filter_map(|e| match e {
                JournalEvent::Filled { fill } => Some(fill),
                _ => None,
            })
            .collect();
        if fills.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = fills.iter().map(|f| f.intent_id.clone()).collect();
        ids.sort();
        ids.dedup();
        self.journal
            .write_fills(&fills, self.engine.portfolio())
            .await
            .context("journal paper fills")?;
        for id in ids {
            let Some(order) = self.engine.broker().order(&id) else {
                continue;
            };
            let state = match order.status {
                PaperStatus::Filled => OrderState::Filled,
                PaperStatus::PartiallyFilled => OrderState::PartiallyFilled,
                PaperStatus::Canceled => OrderState::Cancelled,
                PaperStatus::New => OrderState::Accepted,
            };
            let filled = order.filled_qty;
            self.journal
                .set_state(&id, state, None, filled, None)
                .await
                .context("journal a paper order's state")?;
        }
        Ok(())
    }

    async fn refused(&mut self, intent: &Intent, e: NotPlaced) -> Result<()> {
        let (state, rule, reason) = match &e {
            NotPlaced::Rejected { rule, reason } => (OrderState::Rejected, rule.as_str(), reason),
            NotPlaced::Unknown(reason) => (OrderState::Unknown, "unknown_outcome", reason),
        };
        self.journal
            .set_state(&intent.id, state, None, Decimal::ZERO, Some((rule, reason)))
            .await
            .context("journal the exchange's refusal")
    }
}

/// How `cryptoflow execute` runs.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    /// Kafka bootstrap servers of the pipeline's topics.
    pub brokers: String,
    /// Kafka consumer group (offsets are committed: a restart goes on where it stopped; messages
    /// read twice make no second order, their ids are journaled).
    pub group: String,
    /// Read the topics from their beginning when the group has no offsets (else the newest).
    pub from_beginning: bool,
    /// The journal's PostgreSQL URL (migrated first).
    pub postgres: String,
    /// `Some`: live orders on Binance with these settings; `None`: paper trading.
    pub live: Option<cryptoflow_sinks::binance_orders::BinanceOrdersConfig>,
    /// Stop when no message came for this long (batch runs over a finished pipeline; before
    /// the first message at least 30 s); `None`: run until SIGINT or SIGTERM.
    pub exit_when_idle: Option<std::time::Duration>,
}

/// A trade as `crypto-trades` carries it.
#[derive(serde::Deserialize)]
struct TradeIn {
    venue: cryptoflow_operators::model::Venue,
    symbol: cryptoflow_operators::model::Symbol,
    trade_id: u64,
    price: Decimal,
    qty: Decimal,
    side: cryptoflow_operators::model::Side,
    ts_exchange: Millis,
    ts_received: Millis,
}

/// The kind of a message (`type`), and a gap's fields on `crypto-events`.
#[derive(serde::Deserialize)]
struct Tagged {
    #[serde(rename = "type")]
    kind: Option<String>,
    symbol: Option<cryptoflow_operators::model::Symbol>,
    refilled: Option<bool>,
    open_time: Option<Millis>,
}

/// The two streams the executor reads, merged in event time: a trade at its exchange time, an
/// indicator row at its candle's close (trades before it first). The topics are read at their
/// own paces, so each side waits until the other has passed its time (a trade until the prices
/// topic's candles have opened after it; a row until the tape reached its close), or until the
/// end. A side more than `MERGE_CAP` items ahead goes on regardless.
#[derive(Default)]
struct Merge {
    trades: std::collections::VecDeque<(Trade, Pos)>,
    rows: std::collections::VecDeque<(cryptoflow_operators::model::IndicatorRow, Pos)>,
    /// The newest candle open time on the prices topic.
    prices_time: Millis,
    /// The newest trade time on the trades topic.
    tape_time: Millis,
}

const MERGE_CAP: usize = 1_000_000;

enum Next {
    Trade((Trade, Pos)),
    Row(Box<(cryptoflow_operators::model::IndicatorRow, Pos)>),
}

/// Where a message was read: topic, partition, offset.
type Pos = (String, i32, i64);

/// The offsets the executor may commit: per partition, the one before its oldest message still
/// waiting in the merge (a message is committed only once it was acted on), else the newest read.
#[derive(Default)]
struct Offsets {
    parts: std::collections::HashMap<(String, i32), (std::collections::BTreeSet<i64>, i64, i64)>,
}

impl Offsets {
    /// A message read; `waiting`: it is held in the merge.
    fn read(&mut self, pos: &Pos, waiting: bool) {
        let part = self
            .parts
            .entry((pos.0.clone(), pos.1))
            .or_insert_with(|| (Default::default(), -1, -1));
        if waiting {
            part.0.insert(pos.2);
        }
        part.1 = part.1.max(pos.2);
    }

    /// A waiting message was acted on.
    fn done(&mut self, pos: &Pos) {
        if let Some(part) = self.parts.get_mut(&(pos.0.clone(), pos.1)) {
            part.0.remove(&pos.2);
        }
    }

    /// Stores what may be committed (the consumer commits stored offsets in the background).
    fn store(&mut self, consumer: &rdkafka::consumer::StreamConsumer) {
        use rdkafka::consumer::Consumer;
        for ((topic, partition), (waiting, read, stored)) in &mut self.parts {
            let upto = waiting.first().map_or(*read, |w| w - 1);
            if upto > *stored {
                match consumer.store_offset(topic, *partition, upto) {
                    Ok(()) => *stored = upto,
                    Err(e) => {
                        tracing::warn!(topic, partition, error = %e, "Cannot store an offset.")
                    }
                }
            }
        }
    }
}

impl Merge {
    fn next(&mut self, flush: bool) -> Option<Next> {
        match (self.trades.front(), self.rows.front()) {
            (Some((t, _)), Some((r, _))) if t.ts_exchange < r.close_time => {
                self.trades.pop_front().map(Next::Trade)
            }
            (_, Some((r, _)))
                if flush || r.close_time <= self.tape_time || self.rows.len() > MERGE_CAP =>
            {
                self.rows.pop_front().map(|r| Next::Row(Box::new(r)))
            }
            (Some((t, _)), None)
                if flush || t.ts_exchange < self.prices_time || self.trades.len() > MERGE_CAP =>
            {
                self.trades.pop_front().map(Next::Trade)
            }
            _ => None,
        }
    }
}

/// `cryptoflow execute`: strategies over the indicators on `crypto-prices`, marks and paper fills
/// from `crypto-trades`, open gaps from `crypto-events`; orders through the risk gate to the
/// paper broker (default) or Binance, journaled in PostgreSQL. Stops at SIGINT or SIGTERM.
pub async fn run(
    opts: &ExecuteOptions,
    trading: &super::TradingSection,
    topics: &cryptoflow_sinks::kafka::Topics,
) -> Result<Recovery> {
    use cryptoflow_operators::trading::signals::Strategies;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;

    trading.validate()?;
    cryptoflow_sinks::postgres::migrate(&opts.postgres)
        .await
        .context("migrate the journal's database")?;
    let broker = if opts.live.is_some() {
        "binance"
    } else {
        "paper"
    };
    let journal = Journal::connect(&opts.postgres, broker)
        .await
        .context("connect the journal")?;
    let mut engine_cfg = trading.engine.clone();
    if opts.live.is_none() && engine_cfg.default_filters.is_none() {
        // Paper trading without an exchange to ask: no lot or tick rules unless configured
        // (`[trading.engine.default_filters]`), like a backtest.
        engine_cfg.default_filters =
            Some(cryptoflow_operators::trading::risk::SymbolFilters::unrestricted());
    }
    let exchange = match &opts.live {
        Some(cfg) => {
            Some(BinanceOrders::from_env(cfg.clone()).context("live trading needs Binance keys")?)
        }
        None => None,
    };
    let (mut executor, recovery) = Executor::start(engine_cfg, exchange, journal).await?;
    tracing::info!(broker, ?recovery, "Executor started.");
    let mut strategies = Strategies::new(trading.strategies.clone());

    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &opts.brokers)
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "true")
        // Offsets are stored by hand once their messages were acted on (see `Offsets`).
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            if opts.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .set("client.id", "cryptoflow-execute")
        .create()
        .with_context(|| format!("cannot create a Kafka consumer for {}", opts.brokers))?;
    let names = [
        topics.trades.as_str(),
        topics.prices.as_str(),
        topics.events.as_str(),
    ];
    consumer
        .subscribe(&names)
        .with_context(|| format!("cannot subscribe to {names:?}"))?;

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install the SIGTERM handler")?;
    let mut merge = Merge {
        prices_time: Millis::MIN,
        tape_time: Millis::MIN,
        ..Merge::default()
    };
    let mut offsets = Offsets::default();
    let mut signals = 0u64;
    let mut unreadable = 0u64;
    let mut got_any = false;
    let idle = opts
        .exit_when_idle
        .unwrap_or(std::time::Duration::from_secs(u64::MAX / 4));
    let mut flush = false;
    loop {
        let message = tokio::select! {
            // Joining the group takes a while: the first message gets at least 30 s.
            m = tokio::time::timeout(
                if got_any { idle } else { idle.max(std::time::Duration::from_secs(30)) },
                consumer.recv(),
            ) => m.ok(), // None: idle, nothing more to read
            _ = tokio::signal::ctrl_c() => None,
            _ = sigterm.recv() => None,
        };
        match message {
            None => flush = true,
            Some(Err(e)) => tracing::warn!(error = %e, "Kafka error; going on."),
            Some(Ok(message)) => {
                got_any = true;
                let topic = message.topic();
                let pos: Pos = (topic.to_string(), message.partition(), message.offset());
                let payload = message.payload().unwrap_or_default();
                let got = read(topic, payload, topics);
                offsets.read(&pos, matches!(got, Read::Trade(_) | Read::Row(_)));
                match got {
                    Read::Trade(t) => {
                        merge.tape_time = merge.tape_time.max(t.ts_exchange);
                        merge.trades.push_back((t, pos));
                    }
                    Read::Row(r) => merge.rows.push_back((*r, pos)),
                    Read::Candle { open_time } => {
                        merge.prices_time = merge.prices_time.max(open_time)
                    }
                    Read::Gap { symbol, open } => executor.engine().set_gap(symbol, open),
                    Read::Other => {}
                    Read::Unreadable => {
                        unreadable += 1;
                        metrics::counter!("cryptoflow_execute_unreadable_total").increment(1);
                    }
                }
            }
        }
        while let Some(next) = merge.next(flush) {
            match next {
                Next::Trade((t, pos)) => {
                    executor.on_trade(&t).await?;
                    offsets.done(&pos);
                }
                Next::Row(item) => {
                    let (row, pos) = *item;
                    for signal in strategies.on_indicators(&row) {
                        signals += 1;
                        metrics::counter!("cryptoflow_execute_signals_total").increment(1);
                        act(&mut executor, &signal, trading).await?;
                    }
                    offsets.done(&pos);
                }
            }
        }
        offsets.store(&consumer);
        if flush {
            if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                tracing::warn!(error = %e, "Cannot commit the offsets at the end.");
            }
            break;
        }
    }
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "Messages that did not read as the topics' schemas were left out."
        );
    }
    tracing::info!(signals, "Executor stopped.");
    Ok(recovery)
}

/// A strategy signal: its intent (sized by the position), the exchange's filters, and the order.
async fn act<X: Exchange>(
    executor: &mut Executor<X>,
    signal: &Signal,
    trading: &super::TradingSection,
) -> Result<()> {
    use cryptoflow_operators::trading::signals::intent_for;
    let held = executor.engine().portfolio().qty(&signal.symbol);
    match intent_for(signal, &trading.engine.sizing, held) {
        Some(intent) => {
            executor.ensure_filters(&intent.symbol).await?;
            let state = executor.submit(intent, signal.close_time).await?;
            tracing::info!(strategy = %signal.strategy, symbol = %signal.symbol, side = signal.side.as_str(), ?state, "Signal.");
        }
        None => {
            tracing::info!(strategy = %signal.strategy, symbol = %signal.symbol, "Signal with nothing to sell.")
        }
    }
    Ok(())
}

/// A message of the executor's topics, read.
enum Read {
    Trade(Trade),
    Row(Box<cryptoflow_operators::model::IndicatorRow>),
    Candle {
        open_time: Millis,
    },
    Gap {
        symbol: cryptoflow_operators::model::Symbol,
        open: bool,
    },
    Other,
    Unreadable,
}

fn read(topic: &str, payload: &[u8], topics: &cryptoflow_sinks::kafka::Topics) -> Read {
    let Ok(tagged) = serde_json::from_slice::<Tagged>(payload) else {
        return Read::Unreadable;
    };
    if topic == topics.trades {
        return match serde_json::from_slice::<TradeIn>(payload) {
            Ok(t) => Read::Trade(Trade {
                venue: t.venue,
                symbol: t.symbol,
                trade_id: t.trade_id,
                price: t.price,
                qty: t.qty,
                side: t.side,
                ts_exchange: t.ts_exchange,
                ts_received: t.ts_received,
                agg: None,
            }),
            Err(_) => Read::Unreadable,
        };
    }
    match (tagged.kind.as_deref(), topic == topics.events) {
        (Some("gap"), true) => match (tagged.symbol, tagged.refilled) {
            (Some(symbol), Some(refilled)) => Read::Gap {
                symbol,
                open: !refilled,
            },
            _ => Read::Unreadable,
        },
        (Some("indicators"), false) => match serde_json::from_slice(payload) {
            Ok(row) => Read::Row(Box::new(row)),
            Err(_) => Read::Unreadable,
        },
        (Some("candle"), false) => match tagged.open_time {
            Some(open_time) => Read::Candle { open_time },
            None => Read::Unreadable,
        },
        _ => Read::Other,
    }
}
