//! Serving the results: the HTTP API, the WebSocket push and the metrics of a running pipeline.
//!
//! - [`board`]: the read model, fed by the primary sink's commits (so a client only sees what
//!   is durable), bounded per symbol, with a broadcast of every committed record.
//! - [`api`]: the router (`/health`, `/ready`, `/metrics`, `/api/v1/…`), JSON errors, bearer
//!   tokens, rate limits, CORS.
//! - [`fanout`]: which client gets which push, each with a bounded queue.
//! - [`ws`]: `/ws`, subscriptions by symbol and kind; a client too slow is closed.
//! - [`metrics`]: the process's `metrics` recorder and its Prometheus exporter.
//! - [`store`]: what the handlers read: the board (`run`) or PostgreSQL ([`pg`], `serve`).
//! - [`standalone`]: `cryptoflow serve`, the API as its own process (PostgreSQL + Kafka).
//! - [`openapi`]: `/openapi.json`, from the endpoint tables and the answers' Rust types.
//! - [`bench`]: `cryptoflow bench-api`, the API under load from outside its process.
//! - [`page`]: the dashboard at `/`, its files embedded in the binary.
//!
//! `cryptoflow run` serves on `serve.listen` (default `127.0.0.1:8080`); `replay` and `consume`
//! serve when given `--listen`.

pub mod api;
pub mod bench;
pub mod board;
pub mod error;
pub mod fanout;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod pg;
pub mod push;
pub mod standalone;
pub mod status;
pub mod store;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use board::{Board, BoardLimits};
pub use status::{Readiness, Status};
use store::Store;

/// `[serve]`: the HTTP API and WebSocket push of `cryptoflow run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address to listen on (`host:port`; port 0 picks a free one; "" = off). Applies to
    /// `run`; `replay` and `consume` serve with `--listen`.
    pub listen: String,
    /// Environment variable holding the accepted bearer tokens (comma-separated). They are
    /// required for `/api` and `/ws` when set, and must be set when `listen` is not loopback.
    pub tokens_env: String,
    /// Requests per second allowed per token (per client address without tokens); 0 = no limit.
    pub rate_limit_per_s: f64,
    /// Origins allowed to call the API from a browser (`*` for any); empty = none.
    pub cors_origins: Vec<String>,
    /// Final candles per (symbol, interval), and indicator and feature rows per symbol, kept
    /// for the API.
    pub keep_per_symbol: usize,
    /// Final candles, indicator and feature rows kept over all symbols: with many symbols each
    /// series keeps `keep_total / series` rows (at least one), so memory stays bounded however
    /// many symbols the run has.
    pub keep_total: usize,
    /// Whale alerts, news items and data-quality events kept for the API.
    pub keep_recent: usize,
    /// Pushes queued per WebSocket client; a client further behind is closed (code 4008).
    pub push_buffer: usize,
    /// Whether this command serves (set by the command line: `run` does unless `--listen off`,
    /// `replay` and `consume` with `--listen`; not read from files).
    #[serde(skip)]
    pub on: bool,
    /// After a replay, keep serving until a signal (`replay --keep-serving`; not in files).
    #[serde(skip)]
    pub keep_serving: bool,
}

impl Default for ServeSection {
    fn default() -> Self {
        ServeSection {
            listen: "127.0.0.1:8080".into(),
            tokens_env: "CRYPTOFLOW_API_TOKENS".into(),
            rate_limit_per_s: 100.0,
            cors_origins: Vec::new(),
            keep_per_symbol: 1_000,
            keep_total: 200_000,
            keep_recent: 1_000,
            push_buffer: 4_096,
            on: false,
            keep_serving: false,
        }
    }
}

impl ServeSection {
    /// Whether the API is on.
    pub fn enabled(&self) -> bool {
        self.on && !self.listen.trim().is_empty()
    }

    /// Applies a command's `--listen` (`off` turns serving off); `serves_by_default` for `run`.
    pub fn apply_listen(&mut self, listen: Option<&str>, serves_by_default: bool) {
        match listen.map(str::trim) {
            Some("off") | Some("") => self.on = false,
            Some(addr) => {
                self.listen = addr.to_string();
                self.on = true;
            }
            None => self.on = serves_by_default,
        }
    }

    /// The board's limits.
    pub fn limits(&self) -> BoardLimits {
        BoardLimits {
            per_symbol: self.keep_per_symbol.max(1),
            total: self.keep_total.max(1),
            recent: self.keep_recent.max(1),
            push_buffer: self.push_buffer.max(16),
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        self.address()?;
        if !(self.rate_limit_per_s >= 0.0 && self.rate_limit_per_s.is_finite()) {
            bail!("serve.rate_limit_per_s must be 0 (no limit) or a positive number");
        }
        Ok(())
    }

    /// The listen address.
    pub fn address(&self) -> Result<SocketAddr> {
        let l = self.listen.trim();
        l.parse::<SocketAddr>()
            .or_else(|_| {
                l.strip_prefix("localhost:")
                    .and_then(|p| p.parse::<u16>().ok())
                    .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
                    .ok_or(())
            })
            .map_err(|_| {
                anyhow::anyhow!("serve.listen `{l}` is not host:port (e.g. 127.0.0.1:8080)")
            })
    }

    /// The accepted tokens, from `tokens_env`; an error when the address is not loopback and
    /// none is set.
    pub fn tokens(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>> {
        let tokens: Vec<String> = env(&self.tokens_env)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let addr = self.address()?;
        if tokens.is_empty() && !addr.ip().is_loopback() {
            bail!(
                "serve.listen {addr} is not a loopback address: set bearer tokens in {} \
                 (comma-separated) or listen on 127.0.0.1",
                self.tokens_env
            );
        }
        Ok(tokens)
    }
}

/// A started server.
pub struct Server {
    /// The address it listens on (with the real port when 0 was asked).
    pub addr: SocketAddr,
}

/// Binds `section.listen` and serves `store`, the pushes of `board` and `status` on `rt` until
/// the runtime ends.
pub fn start(
    section: &ServeSection,
    rt: &tokio::runtime::Runtime,
    store: Store,
    board: Board,
    status: Arc<Status>,
) -> Result<Server> {
    let env = |k: &str| std::env::var(k).ok();
    let tokens = section.tokens(&env)?;
    let addr = section.address()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("cannot listen on {addr} (serve.listen, or --listen)"))?;
    let addr = listener.local_addr().context("listener address")?;
    // No Nagle delay: a push is a small write that must leave at once, not wait for the
    // client's acknowledgement of the previous one.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY on an accepted connection");
        }
    });
    let access = api::Access::new(
        tokens,
        section.rate_limit_per_s,
        section.cors_origins.clone(),
    );
    let app = api::router(
        status::AppState {
            store,
            board,
            status,
        },
        access,
    )
    .into_make_service_with_connect_info::<SocketAddr>();
    rt.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "The API server stopped.");
        }
    });
    Ok(Server { addr })
}
