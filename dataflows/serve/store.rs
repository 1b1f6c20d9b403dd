//! What the handlers read: the in-process [`Board`] of `run`, or the PostgreSQL tables of
//! `serve`. One set of handlers over either; both answer with the same model types.

use cryptoflow_operators::model::{
    Candle, CoinMarket, FeatureRow, IndicatorRow, Interval, MacroObservation, Millis, NewsItem,
    SentimentRow, SentimentWindowRow, Symbol, WhaleAlert,
};

use super::board::{Board, PriceNow};
use super::error::ApiError;
use super::pg::{PgStore, ReadError};

/// The read model behind the API.
#[derive(Clone)]
pub enum Store {
    /// `run`: what this process's primary sink committed, in memory.
    Board(Board),
    /// `serve`: the pipeline's PostgreSQL tables and views.
    Postgres(PgStore),
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        tracing::warn!(error = %e, "A read for the API failed.");
        ApiError::unavailable(format!("the database did not answer: {e}"))
    }
}

type R<T> = Result<T, ApiError>;

impl Store {
    /// Whether the store answers.
    pub async fn ping(&self) -> bool {
        match self {
            Store::Board(_) => true,
            Store::Postgres(p) => p.ping().await,
        }
    }

    /// The instruments with a price.
    pub async fn symbols(&self) -> R<Vec<Symbol>> {
        match self {
            Store::Board(b) => Ok(b.symbols()),
            Store::Postgres(p) => Ok(p.symbols().await?),
        }
    }

    /// Whether the store has anything of `symbol`.
    pub async fn knows(&self, symbol: &Symbol) -> R<bool> {
        match self {
            Store::Board(b) => Ok(b.knows(symbol)),
            Store::Postgres(p) => Ok(p.knows(symbol).await?),
        }
    }

    /// The latest trade of `symbol`.
    pub async fn price(&self, symbol: &Symbol) -> R<Option<PriceNow>> {
        match self {
            Store::Board(b) => Ok(b.price(symbol)),
            Store::Postgres(p) => Ok(p.price(symbol).await?),
        }
    }

    /// Candles in `range`, the newest `limit`, oldest first.
    pub async fn candles(
        &self,
        symbol: &Symbol,
        interval: Interval,
        range: (Millis, Millis),
        limit: usize,
        with_forming: bool,
    ) -> R<Vec<Candle>> {
        match self {
            Store::Board(b) => {
                Ok(b.candles(symbol, interval, range.0, range.1, limit, with_forming))
            }
            Store::Postgres(p) => Ok(p
                .candles(symbol, interval, range, limit, with_forming)
                .await?),
        }
    }

    /// Indicator rows in `range`, the newest `limit`, oldest first.
    pub async fn indicators(
        &self,
        symbol: &Symbol,
        interval: Interval,
        range: (Millis, Millis),
        limit: usize,
    ) -> R<Vec<IndicatorRow>> {
        match self {
            Store::Board(b) => Ok(b.indicators(symbol, interval, range.0, range.1, limit)),
            Store::Postgres(p) => Ok(p.indicators(symbol, interval, range, limit).await?),
        }
    }

    /// The feature vector at `interval` in force at `at` (or the newest).
    pub async fn features_at(
        &self,
        symbol: &Symbol,
        interval: Interval,
        at: Option<Millis>,
    ) -> R<Option<FeatureRow>> {
        match self {
            Store::Board(b) => Ok(b.features_at(symbol, interval, at)),
            Store::Postgres(p) => Ok(p.features_at(symbol, interval, at).await?),
        }
    }

    /// Whale alerts, the newest trades first.
    pub async fn whales(
        &self,
        symbol: Option<&Symbol>,
        since: Millis,
        limit: usize,
    ) -> R<Vec<WhaleAlert>> {
        match self {
            Store::Board(b) => Ok(b.whales(symbol, since, limit)),
            Store::Postgres(p) => Ok(p.whales(symbol, since, limit).await?),
        }
    }

    /// The current sentiment windows of `coin` (upper case).
    pub async fn sentiment(&self, coin: &str) -> R<Vec<SentimentWindowRow>> {
        match self {
            Store::Board(b) => Ok(b.sentiment(coin)),
            Store::Postgres(p) => Ok(p.sentiment(coin).await?),
        }
    }

    /// The newest scored items about `coin`, newest first.
    pub async fn news(
        &self,
        coin: Option<&str>,
        limit: usize,
    ) -> R<Vec<(Option<NewsItem>, SentimentRow)>> {
        match self {
            Store::Board(b) => Ok(b.news(coin, limit)),
            Store::Postgres(p) => Ok(p.news(coin, limit).await?),
        }
    }

    /// The newest data-quality events as JSON, newest first (the board's recent gaps, late
    /// trades and mismatches; the database's open gaps); and the per-source rows the database
    /// holds (`None`: the process's own ledger answers instead).
    pub async fn quality(
        &self,
        limit: usize,
    ) -> R<(Option<Vec<serde_json::Value>>, Vec<serde_json::Value>)> {
        match self {
            Store::Board(b) => Ok((
                None,
                b.quality_events(limit)
                    .into_iter()
                    .filter_map(|e| serde_json::to_value(e).ok())
                    .collect(),
            )),
            Store::Postgres(p) => {
                let (sources, events) = p.quality(limit).await?;
                Ok((Some(sources), events))
            }
        }
    }

    /// The latest CoinGecko market rows.
    pub async fn markets(&self) -> R<Vec<CoinMarket>> {
        match self {
            Store::Board(b) => Ok(b.markets()),
            Store::Postgres(p) => Ok(p.markets().await?),
        }
    }

    /// The observations of a macro series (upper case).
    pub async fn macro_series(&self, series: &str) -> R<Option<Vec<MacroObservation>>> {
        match self {
            Store::Board(b) => Ok(b.macro_series(series)),
            Store::Postgres(p) => Ok(p.macro_series(series).await?),
        }
    }
}
