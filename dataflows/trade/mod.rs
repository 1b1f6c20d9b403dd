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
        if self.capital <= Decimal::ZERO {
            bail!("trading.capital must be positive (got {})", self.capital);
        }
        Ok(())
    }
}
