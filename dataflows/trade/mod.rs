//! Trading: the `[trading]` settings, `cryptoflow backtest` and `cryptoflow execute`.
//!
//! Both run the same pure code from `cryptoflow_operators::trading`: the strategies, the risk
//! gate, the paper broker and the positions, through one [`Engine`].
//!
//! [`Engine`]: cryptoflow_operators::trading::engine::Engine

use anyhow::{bail, Result};
use cryptoflow_operators::trading::engine::EngineConfig;
use cryptoflow_operators::trading::signals::StrategyConfig;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub mod backtest;
pub mod control;
pub mod execute;
pub mod svg;

/// `[trading]`: the strategies and the engine's risk limits, sizing and paper costs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingSection {
    /// The strategies (`[[trading.strategies]]`).
    #[serde(default)]
    pub strategies: Vec<StrategyConfig>,
    /// Starting capital of a backtest, quote asset.
    pub capital: Decimal,
    /// Risk limits (`[trading.engine.risk]`), sizing, paper costs.
    #[serde(default)]
    pub engine: EngineConfig,
    /// `cryptoflow execute`: its control API, clock, text orders and Telegram.
    #[serde(default)]
    pub execute: ExecuteSection,
}

/// Which clock `cryptoflow execute` judges time by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// The wall clock: a signal is acted on at the time it is read, so a stale feed (no trade
    /// for `max_data_age_ms`) and a signal older than `max_signal_age_ms` are refused. For live
    /// and paper trading on live data.
    #[default]
    Wall,
    /// The data's own time (a signal at its candle's close): for paper trading over a replay.
    Event,
}

/// `[trading.execute]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecuteSection {
    /// The control API's address (`ip:port`; "" for none). Beyond loopback it needs a bearer
    /// token in `CRYPTOFLOW_CONTROL_TOKEN`.
    pub control: String,
    /// The clock (`wall` or `event`).
    pub clock: Clock,
    /// With the wall clock: a signal whose candle closed longer ago than this, ms, is not traded
    /// (a restart re-reading old messages, a consumer far behind). 0: no limit.
    pub max_signal_age_ms: i64,
    /// The book of text orders (`ttl_ms`: how long a proposal may be confirmed;
    /// `indicator_intervals`: empty means the pipeline's candle intervals).
    pub text_orders: cryptoflow_operators::trading::conditional::BookConfig,
    /// Telegram commands and notifications: on when `allowed_chat_ids` is not empty (the
    /// token from the environment variable `token_env`).
    pub telegram: cryptoflow_sources::telegram::TelegramConfig,
}

impl Default for ExecuteSection {
    fn default() -> Self {
        ExecuteSection {
            control: "127.0.0.1:8091".into(),
            clock: Clock::Wall,
            max_signal_age_ms: 120_000,
            text_orders: Default::default(),
            telegram: Default::default(),
        }
    }
}

impl TradingSection {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for s in &self.strategies {
            if let Err(e) = s.validate() {
                bail!("[[trading.strategies]]: {e}");
            }
            if !names.insert(s.name().to_string()) {
                bail!(
                    "[[trading.strategies]]: the name {:?} is used twice; give each a `name`",
                    s.name()
                );
            }
        }
        if let Err(e) = self.execute.text_orders.validate() {
            bail!("[trading.execute.text_orders]: {e}");
        }
        if self.execute.max_signal_age_ms < 0 {
            bail!("trading.execute.max_signal_age_ms must not be negative");
        }
        if self.capital <= Decimal::ZERO {
            bail!("trading.capital must be positive (got {})", self.capital);
        }
        Ok(())
    }
}
