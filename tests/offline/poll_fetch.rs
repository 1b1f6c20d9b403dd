//! The pollers' HTTP fetcher against a local server that misbehaves like real APIs: conditional
//! GETs answered with 304, 500s before success, 429 with Retry-After, an exhausted quota header,
//! a permanent 404, and an API that stays down until the circuit breaker opens.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use cryptoflow_sources::poll::fetch::{ApiPolicy, FetchError, Fetched, Fetcher};
use cryptoflow_sources::poll::BreakerState;

#[derive(Clone, Default)]
struct Hits {
    flaky: Arc<AtomicU32>,
    limited: Arc<AtomicU32>,
    down: Arc<AtomicU32>,
}

async fn server() -> (String, Hits) {
    let hits = Hits::default();
    let (f, l, d) = (hits.flaky.clone(), hits.limited.clone(), hits.down.clone());
    let app = Router::new()
        .route(
            "/etag",
            get(|h: HeaderMap| async move {
                if h.get("if-none-match").and_then(|v| v.to_str().ok()) == Some("\"v1\"") {
                    StatusCode::NOT_MODIFIED.into_response()
                } else {
                    ([("etag", "\"v1\"")], "hello").into_response()
                }
            }),
        )
        .route(
            "/flaky",
            get(move || async move {
                if f.fetch_add(1, Ordering::SeqCst) < 2 {
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                } else {
                    "ok".into_response()
                }
            }),
        )
        .route(
            "/limited",
            get(move || async move {
                if l.fetch_add(1, Ordering::SeqCst) == 0 {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "slow down",
                    )
                        .into_response()
                } else {
                    "ok".into_response()
                }
            }),
        )
        .route(
            "/quota",
            get(|| async {
                (
                    [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
                    "last one",
                )
                    .into_response()
            }),
        )
        .route(
            "/down",
            get(move || async move {
                d.fetch_add(1, Ordering::SeqCst);
                StatusCode::SERVICE_UNAVAILABLE
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "too late"
            }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such coin") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

fn policy() -> ApiPolicy {
    ApiPolicy {
        burst: 100,
        max_retries: 3,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        breaker_threshold: 3,
        breaker_cooldown: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
        ..ApiPolicy::new("test", 6000.0)
    }
}

#[tokio::test]
async fn conditional_get_retries_rate_limits_and_rejections() {
    let (base, hits) = server().await;
    let mut f = Fetcher::new(policy(), "cryptoflow-test/1").unwrap();

    assert_eq!(
        f.get(&format!("{base}/etag"), &[]).await.unwrap(),
        Fetched::Body(b"hello".to_vec())
    );
    assert_eq!(
        f.get(&format!("{base}/etag"), &[]).await.unwrap(),
        Fetched::NotModified
    );
    assert_eq!(f.stats.not_modified, 1);

    assert_eq!(
        f.get(&format!("{base}/flaky"), &[]).await.unwrap(),
        Fetched::Body(b"ok".to_vec())
    );
    assert_eq!(
        hits.flaky.load(Ordering::SeqCst),
        3,
        "two 500s, then success"
    );
    assert_eq!(f.breaker_state(), BreakerState::Closed);

    let t = Instant::now();
    assert_eq!(
        f.get(&format!("{base}/limited"), &[]).await.unwrap(),
        Fetched::Body(b"ok".to_vec())
    );
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        t.elapsed()
    );
    assert_eq!(f.stats.rate_limited, 1);

    f.get(&format!("{base}/quota"), &[]).await.unwrap();
    let t = Instant::now();
    f.get(&format!("{base}/etag"), &[]).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "quota reset honoured: {:?}",
        t.elapsed()
    );

    let e = f.get(&format!("{base}/missing"), &[]).await.unwrap_err();
    assert!(matches!(e, FetchError::Rejected { status: 404, .. }), "{e}");
    assert!(e.to_string().contains("no such coin"));
}

#[tokio::test]
async fn the_breaker_opens_then_probes() {
    let (base, hits) = server().await;
    let mut f = Fetcher::new(policy(), "cryptoflow-test/1").unwrap();
    let url = format!("{base}/down");
    let e = f.get(&url, &[]).await.unwrap_err();
    // Three failures open the breaker inside the retries: the fourth attempt is never sent.
    assert!(matches!(e, FetchError::CircuitOpen { .. }), "{e}");
    assert_eq!(hits.down.load(Ordering::SeqCst), 3);
    assert_eq!(f.breaker_state(), BreakerState::Open);
    // While open, nothing is sent.
    assert!(matches!(
        f.get(&url, &[]).await,
        Err(FetchError::CircuitOpen { .. })
    ));
    assert_eq!(hits.down.load(Ordering::SeqCst), 3);
    // After the cooldown one probe goes out; it fails and the breaker opens again.
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(f.breaker_state(), BreakerState::HalfOpen);
    assert!(f.get(&url, &[]).await.is_err());
    assert_eq!(hits.down.load(Ordering::SeqCst), 4, "exactly one probe");
    assert_eq!(f.breaker_state(), BreakerState::Open);
}

#[tokio::test]
async fn slow_responses_time_out_and_are_retried() {
    let (base, _) = server().await;
    let mut f = Fetcher::new(
        ApiPolicy {
            timeout: Duration::from_millis(300),
            max_retries: 1,
            ..policy()
        },
        "cryptoflow-test/1",
    )
    .unwrap();
    let t = Instant::now();
    let e = f.get(&format!("{base}/slow"), &[]).await.unwrap_err();
    assert!(
        matches!(e, FetchError::Exhausted { attempts: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(f.stats.failures, 2);
}
