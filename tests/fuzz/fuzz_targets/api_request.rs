//! HTTP API requests, through the whole router (`cryptoflow::serve::api::router`) over a board
//! holding candles of two symbols: routing, the edge limits, the bearer token, query parameters and
//! path segments. The input is a request head as text: `METHOD TARGET` on the first line, then
//! `Name: value` header lines; anything after a blank line is the body.
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use axum::Router;
use cryptoflow::serve::api::{router, Access};
use cryptoflow::serve::board::{Board, BoardLimits};
use cryptoflow::serve::status::{AppState, Status};
use cryptoflow::serve::store::Store;
use cryptoflow_operators::model::Output;
use cryptoflow_sources::ledger::Ledger;
use cryptoflow_sources::poll::driver::PollMetrics;
use cryptoflow_sources::stats::SourceStats;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// Candles of two symbols (final and forming), so that symbol-scoped endpoints get past 404.
const BOARD: &str = include_str!("../seeds/board.jsonl");

struct Harness {
    rt: tokio::runtime::Runtime,
    open: Router,
    guarded: Router,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let board = Board::new(BoardLimits::default(), Default::default());
        let records: Vec<Output> = BOARD
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("board record"))
            .collect();
        board.record(&records, Instant::now());
        // The run never stops: the sender is kept for the process's life.
        let (stop_tx, stopping) = tokio::sync::watch::channel(false);
        std::mem::forget(stop_tx);
        let status = Arc::new(Status::new(
            Arc::new(SourceStats::default()),
            Arc::new(Ledger::new(60_000, 0)),
            Arc::new(PollMetrics::default()),
            stopping,
        ));
        let state = AppState {
            store: Store::Board(board.clone()),
            board,
            status,
        };
        let open = router(
            state.clone(),
            Access::new(Vec::new(), 1e12, vec!["*".into()]),
        );
        let guarded = router(
            state,
            Access::new(vec!["fuzz-token".into()], 1e12, Vec::new()),
        );
        Harness { rt, open, guarded }
    })
}

fn request(text: &str) -> Option<Request<Body>> {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let uri: Uri = target.trim_end().parse().ok()?;
    let mut req = Request::builder().method(method).uri(uri);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        let value = HeaderValue::from_str(value.trim()).ok()?;
        req = req.header(name, value);
    }
    let mut req = req.body(Body::from(body.to_string())).ok()?;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    Some(req)
}

fuzz_target!(|data: &[u8]| {
    let Some(text) = cryptoflow_fuzz::text(data) else {
        return;
    };
    let h = harness();
    for app in [&h.open, &h.guarded] {
        let Some(req) = request(text) else {
            return;
        };
        h.rt.block_on(async {
            let resp = app.clone().oneshot(req).await.expect("infallible");
            assert!(
                !resp.status().is_server_error() || resp.status().as_u16() == 503,
                "{} for {text:?}",
                resp.status()
            );
            let _ = axum::body::to_bytes(resp.into_body(), 16 << 20).await;
        });
    }
});
