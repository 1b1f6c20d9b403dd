//! The API's OpenAPI 3.1 document (`/openapi.json`), built from the same tables the handlers
//! check their parameters against ([`Endpoint`]) and from the Rust types they answer with
//! (JSON Schemas derived with `schemars`), so the document cannot drift from the code.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::{json, Map, Value};

use cryptoflow_operators::model::{
    Candle, CoinMarket, IndicatorRow, MacroObservation, NewsItem, SentimentRow, SentimentWindowRow,
    WhaleAlert,
};

use super::board::PriceNow;
use super::Readiness;

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    /// In the path.
    Path,
    /// In the query string.
    Query,
}

/// What a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An instrument.
    Symbol,
    /// A coin ticker.
    Coin,
    /// A macro series id.
    Series,
    /// A candle interval.
    Interval,
    /// Epoch milliseconds or an RFC 3339 time.
    Time,
    /// A row count, 1 to [`super::error::MAX_LIMIT`].
    Limit,
    /// `true` or `false`.
    Bool,
    /// A sentiment window, `1h` or `24h`.
    Window,
}

/// One parameter of an endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Path or query.
    pub at: In,
    /// What it holds.
    pub kind: Kind,
    /// What it does.
    pub doc: &'static str,
}

const fn q(name: &'static str, kind: Kind, doc: &'static str) -> Param {
    Param {
        name,
        at: In::Query,
        kind,
        doc,
    }
}

const fn p(name: &'static str, kind: Kind, doc: &'static str) -> Param {
    Param {
        name,
        at: In::Path,
        kind,
        doc,
    }
}

const SYMBOL: Param = p("symbol", Kind::Symbol, "The instrument, e.g. BTCUSDT.");
const INTERVAL: Param = q("interval", Kind::Interval, "Candle interval (default 1m).");
const FROM: Param = q(
    "from",
    Kind::Time,
    "Rows with open time at or after this (epoch ms or RFC 3339).",
);
const TO: Param = q("to", Kind::Time, "Rows with open time before this.");
const LIMIT: Param = q("limit", Kind::Limit, "At most this many rows, the newest.");

/// `/api/v1/candles/{symbol}`.
pub const CANDLES: &[Param] = &[
    SYMBOL,
    INTERVAL,
    FROM,
    TO,
    LIMIT,
    q(
        "forming",
        Kind::Bool,
        "Also the candle still forming (default false).",
    ),
];
/// `/api/v1/technical/{symbol}`.
pub const TECHNICAL: &[Param] = &[SYMBOL, INTERVAL, FROM, TO, LIMIT];
/// `/api/v1/prices/current/{symbol}`.
pub const PRICE: &[Param] = &[SYMBOL];
/// `/api/v1/symbols`, `/api/v1/markets`.
pub const NONE: &[Param] = &[];
/// `/api/v1/whales`.
pub const WHALES: &[Param] = &[
    q("symbol", Kind::Symbol, "Only this instrument."),
    q("since", Kind::Time, "Trades at or after this time."),
    LIMIT,
];
/// `/api/v1/sentiment/{coin}`.
pub const SENTIMENT: &[Param] = &[
    p("coin", Kind::Coin, "The coin ticker, e.g. BTC."),
    q("window", Kind::Window, "Window length (default 1h)."),
];
/// `/api/v1/news/latest`.
pub const NEWS: &[Param] = &[q("coin", Kind::Coin, "Only items about this coin."), LIMIT];
/// `/api/v1/ml-features/{symbol}`.
pub const FEATURES: &[Param] = &[
    SYMBOL,
    INTERVAL,
    q(
        "at",
        Kind::Time,
        "The vector in force at this time (default: the newest).",
    ),
];
/// `/api/v1/quality`.
pub const QUALITY: &[Param] = &[LIMIT];
/// `/api/v1/macro/{series}`.
pub const MACRO: &[Param] = &[p("series", Kind::Series, "The FRED series id, e.g. DGS10.")];

/// Rows with their count (and the instrument, when the request named one).
#[derive(Debug, Serialize, JsonSchema)]
pub struct Rows<T> {
    /// The instrument asked for.
    pub symbol: Option<String>,
    /// Number of rows.
    pub count: usize,
    /// The rows, oldest first (whales and news: newest first).
    pub rows: Vec<T>,
}

/// `/api/v1/symbols`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Symbols {
    /// Instruments with a price, in order.
    pub symbols: Vec<String>,
}

/// One scored news item or post.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NewsEntry {
    /// The news item (null for social posts).
    pub item: Option<NewsItem>,
    /// Its sentiment.
    pub sentiment: SentimentRow,
}

/// `/api/v1/ml-features/{symbol}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Features {
    /// The instrument.
    pub symbol: String,
    /// The candle interval.
    pub interval: String,
    /// Open time of the candle the vector was computed at, ms.
    pub open_time: i64,
    /// Its close time, ms: the vector is known from then.
    pub close_time: i64,
    /// Every feature of the catalogue (docs/FEATURES.md), null while warming up.
    pub features: BTreeMap<String, Option<f64>>,
}

/// `/api/v1/quality`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Quality {
    /// Per (source, symbol): frames, trades, holes found and refilled, late trades, staleness.
    pub sources: Vec<Map<String, Value>>,
    /// Recent data-quality events (gaps, late trades, kline mismatches), newest first.
    pub events: Vec<Map<String, Value>>,
}

/// `/api/v1/macro/{series}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MacroSeries {
    /// The series id.
    pub series: String,
    /// Number of observations.
    pub count: usize,
    /// The observations, oldest first (the newest vintage of each date).
    pub rows: Vec<MacroObservation>,
}

/// `/health`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// Always `up`.
    pub status: String,
}

/// Every error: what was wrong.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The reason, naming the parameter when one is wrong.
    pub error: String,
}

/// One documented endpoint.
pub struct Endpoint {
    /// Path (axum's `{name}` syntax, also OpenAPI's).
    pub path: &'static str,
    /// Operation id.
    pub id: &'static str,
    /// What it answers.
    pub summary: &'static str,
    /// Its parameters.
    pub params: &'static [Param],
    /// The schema of its 200 answer.
    pub ok: fn(&mut SchemaGenerator) -> Schema,
    /// Behind bearer tokens and rate limits.
    pub guarded: bool,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// The documented endpoints (`/ws` is described in the README: OpenAPI has no WebSocket).
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/health",
        id: "health",
        summary: "The process is up.",
        params: NONE,
        ok: schema::<Health>,
        guarded: false,
    },
    Endpoint {
        path: "/ready",
        id: "ready",
        summary: "Ready: source connected, store answering, not draining (503 otherwise).",
        params: NONE,
        ok: schema::<Readiness>,
        guarded: false,
    },
    Endpoint {
        path: "/api/v1/symbols",
        id: "symbols",
        summary: "Instruments with a price.",
        params: NONE,
        ok: schema::<Symbols>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/prices/current/{symbol}",
        id: "currentPrice",
        summary: "The latest trade of an instrument, with its moving averages.",
        params: PRICE,
        ok: schema::<PriceNow>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/candles/{symbol}",
        id: "candles",
        summary: "Final candles (and the forming one), oldest first.",
        params: CANDLES,
        ok: schema::<Rows<Candle>>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/technical/{symbol}",
        id: "technical",
        summary: "Technical indicators at final candles: the latest, or a range.",
        params: TECHNICAL,
        ok: schema::<Rows<IndicatorRow>>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/whales",
        id: "whales",
        summary: "Whale trades, the newest first.",
        params: WHALES,
        ok: schema::<Rows<WhaleAlert>>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/sentiment/{coin}",
        id: "sentiment",
        summary: "A coin's rolling news sentiment window.",
        params: SENTIMENT,
        ok: schema::<SentimentWindowRow>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/news/latest",
        id: "news",
        summary: "The newest scored news items and posts, newest first.",
        params: NEWS,
        ok: schema::<Rows<NewsEntry>>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/ml-features/{symbol}",
        id: "mlFeatures",
        summary: "The point-in-time ML feature vector in force at a time.",
        params: FEATURES,
        ok: schema::<Features>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/quality",
        id: "quality",
        summary: "Data quality per source and symbol, and recent events.",
        params: QUALITY,
        ok: schema::<Quality>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/markets",
        id: "markets",
        summary: "The latest CoinGecko market snapshot.",
        params: NONE,
        ok: schema::<Rows<CoinMarket>>,
        guarded: true,
    },
    Endpoint {
        path: "/api/v1/macro/{series}",
        id: "macro",
        summary: "A macro series (FRED), oldest first.",
        params: MACRO,
        ok: schema::<MacroSeries>,
        guarded: true,
    },
];

/// The JSON Schema of a parameter.
fn param_schema(kind: Kind) -> Value {
    match kind {
        Kind::Symbol => {
            json!({ "type": "string", "pattern": "^[A-Za-z0-9]+(_[A-Za-z0-9]+)?$", "maxLength": 23 })
        }
        Kind::Coin => json!({ "type": "string", "pattern": "^[A-Za-z0-9]{1,16}$" }),
        Kind::Series => json!({ "type": "string", "pattern": "^[A-Za-z0-9_]{1,40}$" }),
        Kind::Interval => {
            let labels: Vec<&str> = cryptoflow_operators::model::Interval::labels().collect();
            json!({ "type": "string", "enum": labels })
        }
        Kind::Time => json!({ "oneOf": [
            { "type": "integer", "minimum": 0, "maximum": super::error::MAX_TIME_MS,
              "description": "epoch milliseconds" },
            { "type": "string", "format": "date-time" }
        ] }),
        Kind::Limit => {
            json!({ "type": "integer", "minimum": 1, "maximum": super::error::MAX_LIMIT })
        }
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Window => json!({ "type": "string", "enum": ["1h", "24h"] }),
    }
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
    })
}

/// The document.
pub fn document() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    g.subschema_for::<ErrorBody>();
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let ok = (e.ok)(&mut g);
        let params: Vec<Value> = e
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": if p.at == In::Path { "path" } else { "query" },
                    "required": p.at == In::Path,
                    "description": p.doc,
                    "schema": param_schema(p.kind),
                })
            })
            .collect();
        let mut responses = Map::new();
        responses.insert(
            "200".into(),
            json!({ "description": "OK", "content": { "application/json": { "schema": ok } } }),
        );
        if e.path == "/ready" {
            responses.insert(
                "503".into(),
                json!({ "description": "Not ready", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Readiness" } } } }),
            );
        }
        if e.guarded {
            responses.insert(
                "400".into(),
                error("A parameter is wrong (the message names it)."),
            );
            responses.insert(
                "404".into(),
                error("Unknown symbol, coin or series, or nothing yet."),
            );
            responses.insert(
                "401".into(),
                error("A bearer token is required or not accepted."),
            );
            responses.insert(
                "429".into(),
                json!({
                    "description": "Over the token's rate limit.",
                    "headers": { "Retry-After": { "schema": { "type": "integer" }, "description": "Seconds to wait." } },
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
                }),
            );
            responses.insert("503".into(), error("The store did not answer."));
        }
        responses.insert("414".into(), error("The request target is too long."));
        let mut op = json!({
            "operationId": e.id,
            "summary": e.summary,
            "parameters": params,
            "responses": responses,
        });
        if e.guarded {
            op["security"] = json!([{}, { "bearer": [] }]);
        }
        paths.insert(e.path.to_string(), json!({ "get": op }));
    }
    let schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cryptoflow API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Market data, indicators, whales, sentiment and data quality from a cryptoflow pipeline. Live pushes: WebSocket /ws (see the README). Bearer tokens are required when the server is configured with them (always when it listens beyond loopback)."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves_and_every_route_is_documented() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("#/components/schemas/") {
            let name: String = rest[i + 21..].chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "{name} is not defined");
            rest = &rest[i + 21..];
        }
        assert_eq!(doc["paths"].as_object().unwrap().len(), ENDPOINTS.len());
        assert!(schemas.contains_key("Candle"), "{:?}", schemas.keys());
    }
}
