//! `cryptoflow bench-api`: the API under load, measured from outside the server's process.
//!
//! The server under test is a child `cryptoflow replay FILE --rate R --listen … --keep-serving`.
//! While it replays, this process holds `clients` WebSocket clients (each subscribed to the
//! trades of one symbol, round robin) and sends `http_rps` requests a second to
//! `/api/v1/prices/current/{symbol}` on a fixed schedule (open loop: a slow answer does not slow
//! the sending). It reports request latency percentiles, push latency (the envelope's
//! `committed_at_us` to the client's receipt, same clock), trades missed by the clients (ids are
//! consecutive per symbol in generated files), clients closed as too slow, and the server's peak
//! RSS, with the machine's load average.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ApiBench {
    /// Generated trades (JSON lines) to replay.
    pub input: PathBuf,
    /// Replay rate, events per second.
    pub rate: f64,
    /// WebSocket clients.
    pub clients: usize,
    /// HTTP requests per second.
    pub http_rps: u32,
    /// How long to send requests, seconds.
    pub seconds: f64,
}

/// Latencies in microseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i.min(self.0.len() - 1)] as f64 / 1000.0
    }
}

/// One client's tally.
#[derive(Default)]
struct Tally {
    pushes: AtomicU64,
    missed: AtomicU64,
    closed_slow: AtomicU64,
    latency_us: Mutex<Vec<u64>>,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Runs the bench; returns its report line.
pub fn run(b: &ApiBench) -> Result<String> {
    if !b.input.exists() {
        bail!(
            "{} does not exist (make one with `cryptoflow generate`)",
            b.input.display()
        );
    }
    let symbols = symbols_of(&b.input)?;
    let exe = std::env::current_exe().context("own executable")?;
    let mut child = Command::new(exe)
        .arg("replay")
        .arg(&b.input)
        .args(["--quiet", "--jsonl", "/dev/null", "--listen", "127.0.0.1:0"])
        .args(["--keep-serving", "--rate", &b.rate.to_string()])
        .env("CRYPTOFLOW__SERVE__RATE_LIMIT_PER_S", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the server under test")?;
    let pid = child.id();
    let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| anyhow!("the server did not start"))?;
        if let Some(b) = line.split("serving on ").nth(1) {
            break b.trim().to_string();
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(measure(b, &base, &symbols, &rx));
    #[cfg(unix)]
    // SAFETY: signalling our own child by its pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let rss_kb = peak_rss_kb(pid);
    let _ = child.wait();
    let mut line = result?;
    line.push_str(&format!(
        " server_peak_rss_mb={:.1} load={}",
        rss_kb.map_or(f64::NAN, |k| k as f64 / 1024.0),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join("/"))
            .unwrap_or_default()
    ));
    Ok(line)
}

/// The symbols of a generated file (its first lines cycle through them).
fn symbols_of(path: &PathBuf) -> Result<Vec<String>> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut out: Vec<String> = Vec::new();
    for line in std::io::BufReader::new(f).lines().take(10_000) {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        if let Some(s) = v["s"].as_str() {
            if !out.iter().any(|x| x == s) {
                out.push(s.to_string());
            }
        }
    }
    if out.is_empty() {
        bail!("no trades in {}", path.display());
    }
    Ok(out)
}

/// The server's peak resident set (VmHWM), while it still runs.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn measure(
    b: &ApiBench,
    base: &str,
    symbols: &[String],
    lines: &std::sync::mpsc::Receiver<String>,
) -> Result<String> {
    let ws_base = base.replace("http://", "ws://");
    let tally = Arc::new(Tally::default());
    let mut clients = Vec::new();
    for i in 0..b.clients {
        let sym = symbols[i % symbols.len()].clone();
        let url = format!("{ws_base}/ws?symbols={sym}&kinds=trades");
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("WebSocket client {i}"))?;
        let tally = tally.clone();
        clients.push(tokio::spawn(client(ws, tally)));
    }
    // HTTP, open loop.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let lat = Arc::new(Mutex::new(Samples::default()));
    let errors = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / f64::from(b.http_rps.max(1)));
    let total = (b.seconds * f64::from(b.http_rps)) as u64;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut inflight = Vec::with_capacity(total as usize);
    for n in 0..total {
        tick.tick().await;
        let url = format!(
            "{base}/api/v1/prices/current/{}",
            symbols[n as usize % symbols.len()]
        );
        let (http, lat, errors) = (http.clone(), lat.clone(), errors.clone());
        inflight.push(tokio::spawn(async move {
            let t = Instant::now();
            match http.get(&url).send().await {
                Ok(r) if r.status().is_success() || r.status().as_u16() == 404 => {
                    let _ = r.bytes().await;
                    if let Ok(mut l) = lat.lock() {
                        l.0.push(t.elapsed().as_micros() as u64);
                    }
                }
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in inflight {
        let _ = h.await;
    }
    let sent_for = started.elapsed().as_secs_f64();
    // Let the replay finish, then the last pushes arrive.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(600)) {
        if line.contains("the replay is done") {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for c in &clients {
        c.abort();
    }
    // The server's own view: commit to the push's flush into the client's socket.
    let metrics_text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let server_p99 = histogram_quantile(&metrics_text, "cryptoflow_ws_push_seconds", 0.99);
    let mut http_lat = std::mem::take(&mut *lat.lock().map_err(|_| anyhow!("lock"))?);
    let mut push_lat = Samples(std::mem::take(
        &mut *tally.latency_us.lock().map_err(|_| anyhow!("lock"))?,
    ));
    Ok(format!(
        "APIBENCH http_requests={total} http_rps_achieved={:.0} http_p50_ms={:.3} http_p99_ms={:.3} http_errors={} \
         ws_clients={} pushes={} push_p50_ms={:.3} push_p99_ms={:.3} server_push_p99_ms_le={} \
         missed={} closed_slow={} replay_rate={}",
        total as f64 / sent_for,
        http_lat.pct(0.5),
        http_lat.pct(0.99),
        errors.load(Ordering::Relaxed),
        b.clients,
        tally.pushes.load(Ordering::Relaxed),
        push_lat.pct(0.5),
        push_lat.pct(0.99),
        server_p99.map_or("NaN".to_string(), |v| format!("{:.1}", v * 1000.0)),
        tally.missed.load(Ordering::Relaxed),
        tally.closed_slow.load(Ordering::Relaxed),
        b.rate,
    ))
}

/// The upper bound of the histogram bucket holding quantile `q` of `name` in a Prometheus text.
fn histogram_quantile(text: &str, name: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let n: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, n))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    buckets
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(le, _)| *le)
}

/// The fields of a push the clients read.
#[derive(serde::Deserialize)]
struct Envelope {
    committed_at_us: Option<i64>,
    data: EnvelopeData,
}

#[derive(serde::Deserialize)]
struct EnvelopeData {
    trade_id: Option<u64>,
}

/// One client: counts pushes, latency and holes in the trade ids.
async fn client<S>(mut ws: S, tally: Arc<Tally>)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut last: Option<u64> = None;
    let mut lat = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Text(t) => {
                let Ok(env) = serde_json::from_str::<Envelope>(&t) else {
                    continue;
                };
                let (Some(at), Some(id)) = (env.committed_at_us, env.data.trade_id) else {
                    continue;
                };
                lat.push((now_us() - at).max(0) as u64);
                if let Some(prev) = last {
                    if id > prev + 1 {
                        tally.missed.fetch_add(id - prev - 1, Ordering::Relaxed);
                    }
                }
                last = Some(id.max(last.unwrap_or(0)));
                tally.pushes.fetch_add(1, Ordering::Relaxed);
                if lat.len() >= 1024 {
                    if let Ok(mut l) = tally.latency_us.lock() {
                        l.append(&mut lat);
                    }
                }
            }
            Message::Close(Some(f)) if u16::from(f.code) == super::ws::CLOSE_TOO_SLOW => {
                tally.closed_slow.fetch_add(1, Ordering::Relaxed);
                break;
            }
            _ => {}
        }
        if let Ok(mut l) = tally.latency_us.try_lock() {
            l.append(&mut lat);
        }
    }
    if let Ok(mut l) = tally.latency_us.lock() {
        l.append(&mut lat);
    }
}
