//! `cryptoflow bench-api`: the API under load, measured from outside the server's process.
//!
//! The server under test is a child `cryptoflow replay FILE --rate R --listen … --keep-serving`
//! (this executable, or `server`). While it replays, this process holds `clients` WebSocket
//! clients (each subscribed to the trades of one symbol, round robin) and sends `http_rps`
//! requests a second to `/api/v1/prices/current/{symbol}` on a fixed schedule (open loop: a slow
//! answer does not slow the sending). It reports request latency percentiles, push latency (the
//! envelope's `committed_at_us` to the client's receipt, same clock), trades missed by the
//! clients (ids are consecutive per symbol in generated files), clients closed as too slow, the
//! server's peak RSS and the CPU time of the server and of this process, with the machine's load
//! average.
//!
//! The clients share the machine with the server, so they are kept lean: all of them on one
//! thread (a current-thread runtime), each reading only the two numbers it needs from a push
//! (`committed_at_us` and the trade id) and keeping its own tally (no lock or shared counter per
//! push).

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
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
    /// The server's executable (default: this one).
    pub server: Option<PathBuf>,
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

/// One client's tally (its own: the clients share one thread and no counter).
#[derive(Default)]
struct Tally {
    pushes: u64,
    missed: u64,
    closed_slow: u64,
    latency_us: Vec<u64>,
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
    let exe = match &b.server {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("own executable")?,
    };
    let started = Instant::now();
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
    let server_cpu = cpu_seconds(&format!("/proc/{pid}/stat"));
    let own_cpu = cpu_seconds("/proc/self/stat");
    let wall = started.elapsed().as_secs_f64();
    #[cfg(unix)]
    // SAFETY: signalling our own child by its pid.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let rss_kb = peak_rss_kb(pid);
    let _ = child.wait();
    let mut line = result?;
    line.push_str(&format!(
        " server_peak_rss_mb={:.1} server_cpu_s={:.1} bench_cpu_s={:.1} wall_s={wall:.1} load={}",
        rss_kb.map_or(f64::NAN, |k| k as f64 / 1024.0),
        server_cpu.unwrap_or(f64::NAN),
        own_cpu.unwrap_or(f64::NAN),
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

/// User and system CPU seconds of a process so far, from its `/proc/…/stat`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let s = std::fs::read_to_string(stat).ok()?;
    // The fields after the command (which may hold spaces) in parentheses.
    let rest = s.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = f.nth(11)?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
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
    let urls: Vec<String> = (0..b.clients)
        .map(|i| {
            let sym = &symbols[i % symbols.len()];
            format!("{ws_base}/ws?symbols={sym}&kinds=trades")
        })
        .collect();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    let clients = std::thread::Builder::new()
        .name("bench-ws-clients".into())
        .spawn(move || ws_clients(urls, ready_tx, stop_rx))
        .context("start the clients' thread")?;
    ready_rx
        .await
        .map_err(|_| anyhow!("the clients' thread ended"))??;
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
    let _ = stop_tx.send(());
    let tallies = clients
        .join()
        .map_err(|_| anyhow!("the clients' thread panicked"))??;
    // The server's own view: commit to the push's flush into the client's socket.
    let metrics_text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let server_p99 = histogram_quantile(&metrics_text, "cryptoflow_ws_push_seconds", 0.99);
    let mut http_lat = std::mem::take(&mut *lat.lock().map_err(|_| anyhow!("lock"))?);
    let mut push_lat = Samples(Vec::new());
    let (mut pushes, mut missed, mut closed_slow) = (0, 0, 0);
    for mut t in tallies {
        push_lat.0.append(&mut t.latency_us);
        pushes += t.pushes;
        missed += t.missed;
        closed_slow += t.closed_slow;
    }
    Ok(format!(
        "APIBENCH http_requests={total} http_rps_achieved={:.0} http_p50_ms={:.3} http_p99_ms={:.3} http_errors={} \
         ws_clients={} pushes={} push_p50_ms={:.3} push_p99_ms={:.3} push_p999_ms={:.3} \
         push_max_ms={:.3} server_push_p99_ms_le={} missed={} closed_slow={} replay_rate={}",
        total as f64 / sent_for,
        http_lat.pct(0.5),
        http_lat.pct(0.99),
        errors.load(Ordering::Relaxed),
        b.clients,
        pushes,
        push_lat.pct(0.5),
        push_lat.pct(0.99),
        push_lat.pct(0.999),
        push_lat.pct(1.0),
        server_p99.map_or("NaN".to_string(), |v| format!("{:.1}", v * 1000.0)),
        missed,
        closed_slow,
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

/// The WebSocket clients, on this thread: connects each of `urls` (then says so on `ready`),
/// reads until `stop`, and returns each client's tally.
fn ws_clients(
    urls: Vec<String>,
    ready: tokio::sync::oneshot::Sender<Result<()>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<Vec<Tally>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        // Small buffers: a push is a few hundred bytes.
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0);
        let mut tallies = Vec::with_capacity(urls.len());
        let mut tasks = Vec::with_capacity(urls.len());
        for (i, url) in urls.iter().enumerate() {
            let connected =
                tokio_tungstenite::connect_async_with_config(url, Some(config), true).await;
            let ws = match connected {
                Ok((ws, _)) => ws,
                Err(e) => {
                    let _ = ready.send(Err(anyhow!("WebSocket client {i}: {e}")));
                    return Ok(Vec::new());
                }
            };
            let tally = Rc::new(RefCell::new(Tally::default()));
            tallies.push(tally.clone());
            tasks.push(tokio::task::spawn_local(client(ws, tally)));
        }
        let _ = ready.send(Ok(()));
        let _ = stop.await;
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(tallies
            .into_iter()
            .map(|t| std::mem::take(&mut *t.borrow_mut()))
            .collect())
    })
}

/// The number after `"field":` in a push (the first such field).
fn number_after(text: &str, field: &str) -> Option<u64> {
    let at = text.find(field)? + field.len();
    text[at..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(None, |n: Option<u64>, d| {
            Some(
                n.unwrap_or(0)
                    .wrapping_mul(10)
                    .wrapping_add(u64::from(d - b'0')),
            )
        })
}

/// One client: counts pushes, latency and holes in the trade ids; reads only the commit time
/// and the trade id of each push.
async fn client<S>(mut ws: S, tally: Rc<RefCell<Tally>>)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut last: Option<u64> = None;
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Text(t) => {
                let received = now_us();
                let Some(at) = number_after(&t, "\"committed_at_us\":") else {
                    continue;
                };
                let Some(id) = number_after(&t, "\"trade_id\":") else {
                    continue;
                };
                let mut tally = tally.borrow_mut();
                tally.latency_us.push((received - at as i64).max(0) as u64);
                if let Some(prev) = last {
                    if id > prev + 1 {
                        tally.missed += id - prev - 1;
                    }
                }
                last = Some(id.max(last.unwrap_or(0)));
                tally.pushes += 1;
            }
            Message::Close(Some(f)) if u16::from(f.code) == super::ws::CLOSE_TOO_SLOW => {
                tally.borrow_mut().closed_slow += 1;
                break;
            }
            _ => {}
        }
    }
}
