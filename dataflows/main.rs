//! The `cryptoflow` command line.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use cryptoflow::bench::{
    baseline, bench, bulk_reference, compare, BenchOptions, BenchSink, BulkOptions, BulkServer,
};
use cryptoflow::config::Config;
use cryptoflow::layout::LayoutFlags;
use cryptoflow::publish::LiveFrames;
use cryptoflow::runtime::{run, Cluster, ReplayFailed, RunReport, SourceSpec};
use cryptoflow_operators::model::Symbol;
use cryptoflow_sources::binance::CsvKind;
use cryptoflow_sources::generate::{generate, GenerateOptions};
use cryptoflow_sources::record::Recorder;
use cryptoflow_sources::replay::{Pace, ReplayOptions};
use cryptoflow_sources::rest::RestConfig;
use cryptoflow_sources::ws::WsConfig;

/// Streaming dataflow pipeline for crypto market data: Binance trades in, candles, moving
/// averages, whale alerts and clean tables out.
#[derive(Parser)]
#[command(name = "cryptoflow", version, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Args, Clone, Default)]
struct Common {
    /// Config file (TOML); see cryptoflow.example.toml. Defaults are embedded.
    #[arg(long, short, env = "CRYPTOFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Timely worker threads in this process.
    #[arg(long, short)]
    workers: Option<usize>,
    /// Number of processes in a multi-process run (default 1).
    ///
    /// Without the flag, the environment variable CRYPTOFLOW_PROCESSES.
    #[arg(long, value_name = "N")]
    processes: Option<usize>,
    /// Index of this process (0-based).
    ///
    /// Without the flag, the environment variable CRYPTOFLOW_PROCESS; without either (and more
    /// than one process), the trailing -<ordinal> of the hostname (HOSTNAME, else the system's),
    /// as a StatefulSet names its pods: cryptoflow-2 is process 2.
    #[arg(long, value_name = "I")]
    process: Option<usize>,
    /// Comma-separated host:port, one per process (not with --hostfile).
    ///
    /// Without the flag, the environment variable CRYPTOFLOW_HOSTS. A single entry holding {i}
    /// stands for every process, {i} replaced by 0..N-1, e.g.
    /// cryptoflow-{i}.cryptoflow-cluster.cryptoflow.svc.cluster.local:2101.
    #[arg(long, value_name = "LIST")]
    hosts: Option<String>,
    /// File with one host:port line per process (not with --hosts / CRYPTOFLOW_HOSTS).
    #[arg(long)]
    hostfile: Option<PathBuf>,
    /// Write records to PostgreSQL (overrides sinks.postgres.url).
    #[arg(long, env = "CRYPTOFLOW_POSTGRES_URL")]
    postgres: Option<String>,
    /// Write records to MySQL / MariaDB (overrides sinks.mysql.url).
    #[arg(long, env = "CRYPTOFLOW_MYSQL_URL")]
    mysql: Option<String>,
    /// Write records to Kafka topics at these bootstrap servers (overrides sinks.kafka.brokers).
    #[arg(long, env = "CRYPTOFLOW_KAFKA_SINK")]
    kafka_sink: Option<String>,
    /// Write JSON lines to this file (overrides sinks.jsonl).
    #[arg(long)]
    jsonl: Option<PathBuf>,
    /// Write undecodable input to this file (overrides sinks.dead_letters).
    #[arg(long)]
    dead_letters: Option<PathBuf>,
    /// Do not print candles and whales.
    #[arg(long)]
    quiet: bool,
    /// Serve the HTTP API, WebSocket push and metrics on this address (`off`: do not serve).
    /// `run` serves on serve.listen (127.0.0.1:8080) without it; `replay` and `consume` only
    /// with it.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run live: Binance WebSocket streams of the configured symbols, and the pollers when
    /// `poll.enabled` (CoinGecko, RSS/Atom, Reddit, FRED, MyInvestor), into the configured sinks.
    Run(RunArgs),
    /// Consume raw Binance payloads from Kafka (consumer group `kafka.group_id`) into the
    /// configured sinks; offsets are committed only once every sink has the data.
    Consume(ConsumeArgs),
    /// Replay captures or Binance CSV dumps through the pipeline (no file: the bundled sample).
    Replay(ReplayArgs),
    /// Serve the HTTP API, WebSocket push and dashboard as a process of its own: history from
    /// the pipeline's PostgreSQL tables (read-only), live pushes from its Kafka topics.
    Serve(ServeArgs),
    /// Record Binance WebSocket frames with their receive time, in the format `replay` reads, or
    /// publish them to a Kafka topic (one frame per message, keyed by symbol) for `consume`.
    Record(RecordArgs),
    /// Write deterministic synthetic Binance trade payloads (JSON lines).
    Generate(GenerateArgs),
    /// Apply database migrations (idempotent) to PostgreSQL and/or MySQL/MariaDB.
    Migrate(MigrateArgs),
    /// Benchmark the pipeline on a file of Binance trade JSON lines; prints one RESULT line (with
    /// --compare, one COMPARE line).
    Bench(BenchArgs),
    /// Benchmark the API: a paced replay serving it, WebSocket clients and an open-loop HTTP load
    /// from this process; prints one APIBENCH line.
    BenchApi(BenchApiArgs),
    /// Backtest the `[trading]` strategies, risk gate and paper broker over replay files, in
    /// event time; prints the report as JSON.
    Backtest(BacktestArgs),
    /// The order executor: strategies over the pipeline's Kafka topics, the risk gate, paper
    /// trading by default (live Binance orders only with --live), a journal in PostgreSQL.
    Execute(ExecuteArgs),
    /// Talk to a running executor's control API: status, positions, pnl, pause, resume, kill,
    /// orders, a text order, its confirmation (token from CRYPTOFLOW_CONTROL_TOKEN).
    Control(ControlArgs),
    /// Load and validate the configuration; print it resolved (secrets redacted).
    CheckConfig(ConfigArg),
    /// Print the ML feature catalogue (Markdown; docs/FEATURES.md is this output).
    Features,
    /// Score a hand-labelled file (`positive|negative|neutral<TAB>text` lines) with the
    /// configured sentiment model (`[sentiment]`) and print accuracy, macro-F1 and the confusion
    /// matrix (three classes by VADER's ±0.05 compound convention).
    SentimentEval(SentimentEvalArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Run the enabled pollers (sets poll.enabled).
    #[arg(long)]
    poll: bool,
    /// Pollers only: no Binance streams (implies --poll).
    #[arg(long)]
    pollers_only: bool,
    /// Poll each enabled poller once, then stop (with --pollers-only: the run ends then).
    #[arg(long)]
    poll_once: bool,
    /// Symbols to stream, comma-separated or repeated (overrides binance.symbols), e.g.
    /// `--symbols BTCUSDT,ETHUSDT`.
    #[arg(long, value_delimiter = ',', value_name = "SYMBOL")]
    symbols: Vec<String>,
}

#[derive(Args)]
struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    /// Bootstrap servers (overrides kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Topic to consume (repeatable; overrides kafka.topics).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Consumer group (overrides kafka.group_id).
    #[arg(long)]
    group: Option<String>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
}

#[derive(Args)]
struct BenchApiArgs {
    /// Generated trades to replay (`cryptoflow generate`).
    #[arg(long)]
    input: PathBuf,
    /// Replay rate, trades per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// WebSocket clients, each subscribed to one symbol's trades (round robin).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// HTTP requests per second to /api/v1/prices/current/{symbol}.
    #[arg(long, default_value_t = 2000)]
    http_rps: u32,
    /// Seconds of HTTP load.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// The server's executable (default: this one), to measure another build against the same
    /// clients.
    #[arg(long)]
    server: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Config file (serve.*, whales.*, sinks.kafka.topics, kafka.consumer).
    #[arg(long, short, env = "CRYPTOFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// The pipeline's database (a role with SELECT on its tables and views is enough).
    #[arg(long, env = "CRYPTOFLOW_SERVE_POSTGRES_URL")]
    postgres: String,
    /// Kafka bootstrap servers of the pipeline's topics, for live pushes (default:
    /// sinks.kafka.brokers; "" for none).
    #[arg(long)]
    kafka: Option<String>,
    /// Address to listen on (default: serve.listen).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
}

#[derive(Args)]
struct ReplayArgs {
    /// Files: JSON lines (raw frames, combined wrappers, captures, REST trade items), or CSV
    /// dumps; .gz is fine.
    files: Vec<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// Replay at this many events per second.
    #[arg(long, conflicts_with = "speed")]
    rate: Option<f64>,
    /// Replay at this multiple of recorded time.
    #[arg(long)]
    speed: Option<f64>,
    /// Symbol of CSV dumps whose file name does not start with it, and of REST
    /// `aggTrades` / `historicalTrades` items (JSON lines without a symbol).
    #[arg(long)]
    symbol: Option<String>,
    /// Kind of CSV dumps (default: from the column count).
    #[arg(long, value_enum)]
    csv_kind: Option<CsvKindArg>,
    /// Venue of files without a capture header (binance, binance-usdm, binance-coinm;
    /// default binance); a capture header naming another venue is an error.
    #[arg(long)]
    venue: Option<String>,
    /// With --listen: after the replay, keep serving its results until Ctrl-C or SIGTERM.
    #[arg(long, requires = "listen")]
    keep_serving: bool,
    /// Show each file's progress (bytes of the file read; compressed bytes for .gz) on stderr
    /// even when it is not a terminal, as a `progress:` line every few seconds. On a terminal a
    /// bar is shown for files over 8 MB without it.
    #[arg(long)]
    progress: bool,
}

#[derive(Args)]
struct RecordArgs {
    /// Output file (.gz compresses).
    #[arg(
        long,
        short,
        required_unless_present = "kafka",
        conflicts_with = "kafka"
    )]
    out: Option<PathBuf>,
    /// Publish to Kafka at these bootstrap servers instead of a file.
    #[arg(long)]
    kafka: Option<String>,
    /// Topic for --kafka.
    #[arg(long, default_value = "crypto-trades-raw")]
    topic: String,
    /// Config file (symbols, streams, endpoint).
    #[arg(long, short, env = "CRYPTOFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many frames.
    #[arg(long)]
    max_frames: Option<u64>,
}

#[derive(Args)]
struct GenerateArgs {
    /// Output file (.gz compresses; default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Number of symbols.
    #[arg(long, default_value_t = 10)]
    symbols: usize,
    /// Number of trades over all symbols.
    #[arg(long, default_value_t = 100_000)]
    trades: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Time of the first trade, ms since the epoch.
    #[arg(long, default_value_t = 1_700_000_000_000)]
    start_ms: i64,
    /// Milliseconds between trades.
    #[arg(long, default_value_t = 5)]
    step_ms: i64,
    /// Wrap payloads as combined-stream frames.
    #[arg(long)]
    combined: bool,
}

#[derive(Args)]
struct MigrateArgs {
    /// PostgreSQL URL.
    #[arg(long, env = "CRYPTOFLOW_POSTGRES_URL")]
    postgres: Option<String>,
    /// MySQL / MariaDB URL (`mysql://user:pass@host:3306/db`).
    #[arg(long, env = "CRYPTOFLOW_MYSQL_URL")]
    mysql: Option<String>,
    /// PostgreSQL only: then make `trades` a compressed TimescaleDB hypertable (1-day chunks,
    /// compressed after 2 days) instead of the day partitions, when the server has the
    /// extension (an error otherwise). Untested here.
    #[arg(long, requires = "postgres")]
    timescaledb: bool,
}

#[derive(Args)]
struct BenchArgs {
    /// Input file.
    #[arg(long)]
    input: PathBuf,
    /// Also write to PostgreSQL (mode=postgres).
    #[arg(long)]
    postgres: Option<String>,
    /// Measure this sink instead: `mysql`, `influx` or `kafka` (with --url; for kafka the
    /// bootstrap servers).
    #[arg(long, value_parser = ["mysql", "influx", "kafka"], requires = "url")]
    sink: Option<String>,
    /// URL of the sink given with --sink.
    #[arg(long)]
    url: Option<String>,
    /// Pace at this many trades per second and report latency percentiles.
    #[arg(long)]
    rate: Option<f64>,
    /// Publish the input to a fresh Kafka topic at these bootstrap servers (paced by --rate)
    /// and consume it through the pipeline: end-to-end latency through the broker.
    #[arg(long, requires = "rate")]
    kafka_source: Option<String>,
    /// Run the single-thread reference loop instead of the pipeline (decode, per-symbol SMA
    /// and whale flag, nothing else): mode=baseline.
    #[arg(long, conflicts_with_all = ["postgres", "sink", "rate", "kafka_source", "compare"])]
    baseline: bool,
    /// Run the baseline and the pipeline (no sinks) alternately N times each after one warm-up
    /// each; print the median rates and their ratio (COMPARE line), and fail unless both agree
    /// on trades, whales and ma_sum.
    /// With --bulk-reference: N runs (each a sink run and a bulk load), medians.
    #[arg(long, value_name = "N", conflicts_with_all = ["rate", "kafka_source"])]
    compare: Option<usize>,
    /// Measure the sink (--postgres URL, or --sink mysql --url URL) against the server's own
    /// bulk load of the very rows it stored: the pipeline runs into a fresh database, every
    /// table it wrote is read back and loaded into a second fresh database with `COPY … FROM
    /// STDIN` (PostgreSQL) or `LOAD DATA LOCAL INFILE` (MySQL/MariaDB); prints one BULKREF line
    /// and fails unless both databases end with the same rows.
    #[arg(long, conflicts_with_all = ["rate", "kafka_source", "baseline"])]
    bulk_reference: bool,
    /// With --bulk-reference: name the two databases `<NAME>_sink` and `<NAME>_ref` and keep
    /// them after the last run (default: private names, dropped).
    #[arg(long, value_name = "NAME", requires = "bulk_reference")]
    bulk_databases: Option<String>,
    /// Timely worker threads.
    #[arg(long, short, default_value_t = 1)]
    workers: usize,
    /// Config file.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct BacktestArgs {
    /// Replay files (JSON lines or CSV dumps; .gz is fine), read in order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Config file (its `[trading]` section).
    #[arg(long, short, env = "CRYPTOFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Strategies instead of the configured ones: KIND:INTERVAL (ma_cross:1m, rsi_bands:1h,
    /// bollinger_breakout:15m); repeatable.
    #[arg(long)]
    strategy: Vec<String>,
    /// Write the report here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Draw the equity curve to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Write every signal, order, rejection and fill as a JSON line here.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Symbol of CSV dumps whose file name does not start with it.
    #[arg(long)]
    symbol: Option<String>,
}

#[derive(Args)]
struct ExecuteArgs {
    /// Kafka bootstrap servers of the pipeline's topics (`[sinks.kafka.topics]` names them).
    #[arg(long)]
    kafka: String,
    /// The journal's PostgreSQL URL (orders, fills, positions, pnl_daily; migrated first).
    #[arg(long, env = "CRYPTOFLOW_EXECUTE_POSTGRES")]
    postgres: String,
    /// Config file (`[trading]`: strategies, risk limits, sizing, paper costs).
    #[arg(long, short, env = "CRYPTOFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka consumer group.
    #[arg(long, default_value = "cryptoflow-execute")]
    group: String,
    /// Read the topics from their beginning when the group has no offsets (default: the newest).
    #[arg(long)]
    from_beginning: bool,
    /// LIVE TRADING: place real orders on Binance spot (keys from BINANCE_API_KEY and
    /// BINANCE_API_SECRET). Without it, orders go to the paper broker.
    #[arg(long)]
    live: bool,
    /// With --live: Binance's REST base URL (e.g. https://testnet.binance.vision).
    #[arg(long, requires = "live")]
    binance_rest: Option<String>,
    /// With --live: Binance's WebSocket base URL for the user data stream (e.g.
    /// wss://stream.testnet.binance.vision).
    #[arg(long, requires = "live")]
    binance_ws: Option<String>,
    /// Stop when no message came for this many seconds (a batch run over a finished pipeline).
    #[arg(long)]
    exit_when_idle: Option<f64>,
    /// The control API's address (default `[trading.execute] control`, 127.0.0.1:8091; `off`
    /// for none).
    #[arg(long)]
    control: Option<String>,
    /// The clock: `wall` (default; live data) or `event` (paper trading over a replay: the
    /// data's own time).
    #[arg(long, value_parser = ["wall", "event"])]
    clock: Option<String>,
    /// Turn a kill switch pulled before this start off again.
    #[arg(long)]
    reset_kill: bool,
}

#[derive(Args)]
struct ControlArgs {
    /// The executor's control API.
    #[arg(
        long,
        default_value = "http://127.0.0.1:8091",
        env = "CRYPTOFLOW_CONTROL_URL"
    )]
    url: String,
    /// The command: status, positions, pnl, pause, resume, kill, orders, help;
    /// `order <text…>` (a text order, "buy 0.1 BTC when it drops below 45000": shown back with
    /// its id); `confirm <id>` or `reject <id>` (a proposed text order).
    #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct ConfigArg {
    /// Config file.
    #[arg(long, short, env = "CRYPTOFLOW_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct SentimentEvalArgs {
    /// Config file.
    #[arg(long, short, env = "CRYPTOFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// The labelled file.
    #[arg(long)]
    labelled: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum CsvKindArg {
    Trades,
    AggTrades,
    Klines,
}

/// Whether human logs may use colour: only on a terminal, and not when `NO_COLOR` is set
/// (<https://no-color.org>); pipes and files get plain text.
fn log_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    cryptoflow::notice::set_json(matches!(format, LogFormat::Json));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(matches!(format, LogFormat::Human) && log_colour())
        .with_writer(cryptoflow::secrets::ScrubbedStderr);
    match format {
        LogFormat::Human => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    Config::load(path, std::env::vars())
}

fn apply_common(common: &Common, serves_by_default: bool) -> Result<(Config, Cluster)> {
    let mut cfg = load_config(common.config.as_deref())?;
    cfg.serve
        .apply_listen(common.listen.as_deref(), serves_by_default);
    if let Some(w) = common.workers {
        cfg.pipeline.workers = w;
    }
    if let Some(url) = &common.postgres {
        cfg.sinks.postgres.url = url.clone();
    }
    if let Some(url) = &common.mysql {
        cfg.sinks.mysql.url = url.clone();
    }
    if let Some(b) = &common.kafka_sink {
        cfg.sinks.kafka.brokers = b.clone();
    }
    if let Some(p) = &common.jsonl {
        cfg.sinks.jsonl = p.display().to_string();
    }
    if let Some(p) = &common.dead_letters {
        cfg.sinks.dead_letters = p.display().to_string();
    }
    if common.quiet {
        cfg.sinks.console = false;
    }
    cfg.validate()?;
    let cluster = cryptoflow::layout::resolve(&LayoutFlags {
        processes: common.processes,
        process: common.process,
        hosts: common.hosts.clone(),
        hostfile: common.hostfile.clone(),
    })?;
    Ok((cfg, cluster))
}

fn ws_config(cfg: &Config) -> Result<WsConfig> {
    Ok(WsConfig {
        venue: cfg.binance_venue()?,
        base_url: cfg.binance_ws_base_url()?,
        streams: cfg.stream_names(),
        max_streams_per_connection: cfg.binance.max_streams_per_connection,
        backoff_initial: Duration::from_millis(cfg.binance.reconnect_initial_ms),
        backoff_max: Duration::from_millis(cfg.binance.reconnect_max_ms),
        idle_timeout: Duration::from_millis(cfg.binance.idle_timeout_ms),
        max_connection_age: Duration::from_secs(cfg.binance.max_connection_age_s),
        max_attempts_per_5min: cfg.binance.max_connection_attempts_per_5min,
        ..WsConfig::default()
    })
}

/// The sinks a run writes to, each with where (credentials redacted).
fn describe_sinks(cfg: &Config) -> String {
    let s = &cfg.sinks;
    let mut out = Vec::new();
    for (name, url) in [
        ("postgres", &s.postgres.url),
        ("mysql", &s.mysql.url),
        ("influx", &s.influx.url),
        ("kafka", &s.kafka.brokers),
        ("redis", &s.redis.url),
        ("jsonl", &s.jsonl),
    ] {
        if !url.is_empty() {
            out.push(format!("{name} {}", cryptoflow::secrets::redact(url)));
        }
    }
    if s.console {
        out.push("console".into());
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(", ")
    }
}

/// What `run` connects to, said once at the start.
fn startup_line(cfg: &Config, ws: &WsConfig, rest: Option<&RestConfig>) -> String {
    let live = if ws.streams.is_empty() {
        "no Binance streams".to_string()
    } else {
        let mut symbols = cfg.binance.symbols.clone();
        symbols.sort();
        symbols.dedup();
        format!(
            "{} {} ({} streams: {} of {}), REST refill {}",
            ws.venue.as_str(),
            ws.base_url,
            ws.streams.len(),
            cfg.binance.streams.join(" "),
            symbols.join(" "),
            rest.map(|r| r.base_url.as_str()).unwrap_or("off"),
        )
    };
    let pollers = if cfg.poll.enabled { "on" } else { "off" };
    format!(
        "run: connecting to {live}; pollers {pollers}; sinks: {}",
        describe_sinks(cfg)
    )
}

fn summarize(report: &RunReport) {
    let acks: Vec<String> = report
        .acks
        .iter()
        .map(|(n, a)| format!("{n}={} records", a.records))
        .collect();
    let replay = report
        .replay
        .map(|r| format!(" lines={} replay_errors={}", r.lines, r.errors))
        .unwrap_or_default();
    let ignored: u64 = report.ignored.iter().map(|(_, n)| n).sum();
    cryptoflow::notice::info(format!(
        "{} events in {:.2}s{replay} decode_errors={} ignored={ignored} reconnects={} sinks: {}",
        report.events,
        report.elapsed.as_secs_f64(),
        report.decode_errors,
        report.reconnects,
        acks.join(", ")
    ));
    if !report.ignored.is_empty() {
        let per_type: Vec<String> = report
            .ignored
            .iter()
            .map(|(ty, n)| format!("{ty}={n}"))
            .collect();
        cryptoflow::notice::info(format!(
            "ignored frames (known types not processed): {}",
            per_type.join(" ")
        ));
    }
    if let Some(l) = &report.live {
        cryptoflow::notice::info(format!(
            "live source: reader_stall_max_ms={} spilled_batches={} spill_peak_batches={} trades_ahead_of_refill={}",
            l.reader_stall_max_ms, l.spilled_batches, l.spill_peak_batches, l.trades_ahead_of_refill
        ));
    }
    for (name, s) in &report.polls {
        cryptoflow::notice::info(format!(
            "poller {name}: polls={} emitted={} duplicates={} errors={}",
            s.polls, s.emitted, s.duplicates, s.errors
        ));
    }
}

fn main() {
    // Like other Unix tools, end quietly when stdout's reader goes away (`cryptoflow features |
    // head`) instead of failing on the closed pipe.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; restores the default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Secrets from the environment are masked in every log line, error and panic message.
    cryptoflow::secrets::remember_env(std::env::vars());
    cryptoflow::secrets::install_panic_hook();
    let cli = Cli::parse();
    init_logs(cli.log_format);
    // Each command loads the configuration it reads: the shared flags (`run`, `consume`,
    // `replay`), `--config` alone, or none at all (`generate`, `migrate`, `features`).
    let result = match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::Consume(args) => cmd_consume(args),
        Command::Replay(args) => cmd_replay(args),
        Command::Serve(args) => cmd_serve(args),
        Command::BenchApi(args) => {
            cryptoflow::serve::bench::run(&cryptoflow::serve::bench::ApiBench {
                input: args.input,
                rate: args.rate,
                clients: args.clients,
                http_rps: args.http_rps,
                seconds: args.seconds,
                server: args.server,
            })
            .map(|line| println!("{line}"))
        }
        Command::Record(args) => cmd_record(args),
        Command::Generate(args) => cmd_generate(args),
        Command::Migrate(args) => cmd_migrate(args),
        Command::Bench(args) => cmd_bench(args),
        Command::Backtest(args) => cmd_backtest(args),
        Command::Execute(args) => cmd_execute(args),
        Command::Control(args) => cmd_control(args),
        Command::CheckConfig(args) => cmd_check_config(args),
        Command::Features => cmd_features(),
        Command::SentimentEval(args) => cmd_sentiment_eval(args),
    };
    if let Err(e) = result {
        cryptoflow::notice::error(cryptoflow::notice::error_chain(&e));
        std::process::exit(1);
    }
}

/// `cryptoflow execute`.
fn cmd_execute(args: ExecuteArgs) -> Result<()> {
    let mut cfg = load_config(args.config.as_deref())?;
    let execute = &mut cfg.trading.execute;
    if let Some(control) = &args.control {
        execute.control = control.clone();
    }
    match args.clock.as_deref() {
        Some("event") => execute.clock = cryptoflow::trade::Clock::Event,
        Some("wall") => execute.clock = cryptoflow::trade::Clock::Wall,
        _ => {}
    }
    if execute.text_orders.indicator_intervals.is_empty() {
        execute.text_orders.indicator_intervals = cfg.pipeline.candle_intervals.clone();
    }
    let live = args.live.then(|| {
        let mut b = cryptoflow_sinks::binance_orders::BinanceOrdersConfig::default();
        if let Some(rest) = &args.binance_rest {
            b.rest_base = rest.clone();
        }
        if let Some(ws) = &args.binance_ws {
            b.ws_base = ws.clone();
        }
        b
    });
    cryptoflow::notice::info(format!(
        "execute: {}",
        if live.is_some() {
            "LIVE: real orders on Binance"
        } else {
            "paper trading (no order leaves this process; --live places real ones)"
        }
    ));
    let opts = cryptoflow::trade::execute::ExecuteOptions {
        brokers: args.kafka,
        group: args.group,
        from_beginning: args.from_beginning,
        postgres: args.postgres,
        live,
        exit_when_idle: args
            .exit_when_idle
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(std::time::Duration::from_secs_f64),
        reset_kill: args.reset_kill,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let (trading, topics) = (cfg.trading.clone(), cfg.sinks.kafka.topics.clone());
    let recovery = cryptoflow::trade::execute::run_on_worker(&rt, async move {
        cryptoflow::trade::execute::run(&opts, &trading, &topics).await
    })??;
    cryptoflow::notice::info(format!("execute: stopped ({recovery:?} at the start)"));
    Ok(())
}

/// `cryptoflow control`.
fn cmd_control(args: ControlArgs) -> Result<()> {
    use cryptoflow::trade::control::{client, Command};
    use cryptoflow_operators::trading::conditional::Origin;
    let origin = Origin {
        channel: "cli".into(),
        user: "cli".into(),
    };
    let request = Command::from_words(&args.command, origin).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let reply = rt.block_on(client(&args.url, &request))?;
    println!("{}", reply.message);
    println!(
        "{}",
        serde_json::to_string(&reply.data).context("the reply as JSON")?
    );
    if reply.ok {
        Ok(())
    } else {
        anyhow::bail!("not done")
    }
}

/// `cryptoflow backtest`.
fn cmd_backtest(args: BacktestArgs) -> Result<()> {
    use cryptoflow::trade::backtest;
    use cryptoflow_operators::trading::signals::{StrategyConfig, StrategyKind};
    let mut cfg = load_config(args.config.as_deref())?;
    if !args.strategy.is_empty() {
        cfg.trading.strategies = args
            .strategy
            .iter()
            .map(|spec| {
                let (kind, interval) = spec
                    .split_once(':')
                    .ok_or_else(|| anyhow!("--strategy {spec:?}: use KIND:INTERVAL, e.g. rsi_bands:1h"))?;
                let kind: StrategyKind =
                    serde_json::from_value(serde_json::Value::String(kind.into())).map_err(|_| {
                        anyhow!("--strategy {spec:?}: the kind is ma_cross, rsi_bands or bollinger_breakout")
                    })?;
                let interval = interval
                    .parse()
                    .map_err(|e| anyhow!("--strategy {spec:?}: {e}"))?;
                let mut s = StrategyConfig::new(kind, interval);
                s.name = format!("{}_{}", kind.as_str(), spec.rsplit(':').next().unwrap_or(""));
                Ok(s)
            })
            .collect::<Result<_>>()?;
    }
    let input = backtest::BacktestInput {
        files: args.files,
        replay: ReplayOptions {
            symbol: args
                .symbol
                .as_deref()
                .map(Symbol::from_str)
                .transpose()
                .map_err(|e| anyhow!(e))?,
            ..ReplayOptions::default()
        },
        journal: args.journal,
    };
    backtest::refuse_overwriting(&input.files, &[args.out.as_deref(), args.svg.as_deref()])?;
    let report = backtest::run(&cfg.trading, &input)?;
    backtest::write(&report, args.out.as_deref(), args.svg.as_deref())
}

/// `cryptoflow run`: live Binance streams and/or the pollers.
fn cmd_run(args: RunArgs) -> Result<()> {
    let (mut cfg, cluster) = apply_common(&args.common, true)?;
    if !args.symbols.is_empty() {
        cfg.binance.symbols = args
            .symbols
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                Symbol::from_str(s)
                    .map(|sym| sym.as_str().to_string())
                    .map_err(|e| anyhow!("--symbols {s:?}: {e}"))
            })
            .collect::<Result<_>>()?;
        cfg.validate()?;
    }
    cfg.poll.enabled |= args.poll || args.pollers_only || args.poll_once;
    if args.poll_once {
        cfg.poll.max_polls = Some(1);
    }
    if args.pollers_only {
        cfg.binance.streams.clear();
    } else if cfg.binance.symbols.is_empty() || cfg.binance.streams.is_empty() {
        bail!("binance.symbols and binance.streams must not be empty for `cryptoflow run` (or pass --pollers-only)");
    }
    let rest = match cfg.binance.refill {
        true => Some(RestConfig {
            venue: cfg.binance_venue()?,
            base_url: cfg.binance_rest_base_url()?,
            weight_budget_per_minute: cfg.binance.rest_weight_budget_per_minute,
            // An empty variable (as a blank Secret key renders) is no key.
            api_key: std::env::var("CRYPTOFLOW_BINANCE_API_KEY")
                .ok()
                .filter(|k| !k.trim().is_empty()),
            ..RestConfig::default()
        }),
        false => None,
    };
    let ws = ws_config(&cfg)?;
    cryptoflow::notice::info(startup_line(&cfg, &ws, rest.as_ref()));
    let source = SourceSpec::Live {
        ws,
        rest,
        stop_after: args.duration.map(Duration::from_secs_f64),
    };
    let report = run(&cfg, source, &cluster, None)?;
    summarize(&report);
    Ok(())
}

/// `cryptoflow replay`: files (or the bundled sample) through the pipeline.
fn cmd_replay(args: ReplayArgs) -> Result<()> {
    let ReplayArgs {
        files,
        common,
        rate,
        speed,
        symbol,
        csv_kind,
        venue,
        keep_serving,
        progress,
    } = args;
    let (mut cfg, cluster) = apply_common(&common, false)?;
    cfg.serve.keep_serving = keep_serving;
    if files.is_empty() && common.jsonl.is_none() && cfg.sinks.jsonl.is_empty() {
        cfg.sinks.jsonl = "out/cryptoflow.jsonl".into();
    }
    // `--quiet` with no other sink: the replay still runs and its summary counts the records.
    cfg.sinks.count_only = true;
    if describe_sinks(&cfg) == "none" && !cfg.serve.on {
        cryptoflow::notice::info(
            "no sink is configured: the records are counted, not kept (add --jsonl FILE, --postgres URL, … to keep them)",
        );
    }
    let pace = match (rate, speed) {
        (Some(r), _) if r > 0.0 => Pace::Rate(r),
        (_, Some(x)) if x > 0.0 => Pace::Speed(x),
        (None, None) => Pace::Max,
        _ => bail!("--rate and --speed must be positive"),
    };
    let opts = ReplayOptions {
        pace,
        symbol: symbol
            .as_deref()
            .map(Symbol::from_str)
            .transpose()
            .map_err(|e| anyhow!(e))?,
        csv_kind: csv_kind.map(|k| match k {
            CsvKindArg::Trades => CsvKind::Trades,
            CsvKindArg::AggTrades => CsvKind::AggTrades,
            CsvKindArg::Klines => CsvKind::Klines,
        }),
        venue: venue
            .as_deref()
            .map(str::parse::<cryptoflow_operators::model::Venue>)
            .transpose()
            .map_err(|e| anyhow!(e))?,
        ..ReplayOptions::default()
    };
    if files.is_empty() {
        cryptoflow::notice::info("replaying the bundled sample (pass files to replay your own)");
    }
    let jsonl = cfg.sinks.jsonl.clone();
    let result = run(
        &cfg,
        SourceSpec::Replay {
            files,
            opts,
            progress: progress || std::io::IsTerminal::is_terminal(&std::io::stderr()),
        },
        &cluster,
        None,
    );
    // A damaged file: the summary of what was written, then the error (exit 1).
    let report = match &result {
        Ok(report) => Some(report),
        Err(e) => e.downcast_ref::<ReplayFailed>().map(|f| &f.report),
    };
    if let Some(report) = report {
        summarize(report);
        if !jsonl.is_empty() {
            cryptoflow::notice::info(format!("JSON lines written to {jsonl}"));
        }
    }
    result?;
    Ok(())
}

/// `cryptoflow serve`: the API over the pipeline's tables and topics.
fn cmd_serve(args: ServeArgs) -> Result<()> {
    let mut cfg = load_config(args.config.as_deref())?;
    cfg.serve.apply_listen(args.listen.as_deref(), true);
    cfg.validate()?;
    let kafka = args
        .kafka
        .unwrap_or_else(|| cfg.sinks.kafka.brokers.clone());
    cryptoflow::serve::standalone::serve(
        &cfg,
        cryptoflow::serve::standalone::ServeSources {
            postgres: args.postgres,
            kafka: Some(kafka),
        },
    )
}

/// `cryptoflow consume`: raw Binance payloads from Kafka through the pipeline.
fn cmd_consume(args: ConsumeArgs) -> Result<()> {
    let (mut cfg, cluster) = apply_common(&args.common, false)?;
    if let Some(b) = args.brokers {
        cfg.kafka.brokers = b;
    }
    if !args.topics.is_empty() {
        cfg.kafka.topics = args.topics;
    }
    if let Some(g) = args.group {
        cfg.kafka.group_id = g;
    }
    cfg.validate()?;
    let source = SourceSpec::Kafka {
        kafka: cfg.kafka_source(),
        stop_after: args.duration.map(Duration::from_secs_f64),
    };
    let report = run(&cfg, source, &cluster, None)?;
    summarize(&report);
    Ok(())
}

/// `cryptoflow record`: live frames to a file, or with `--kafka` to a topic.
fn cmd_record(args: RecordArgs) -> Result<()> {
    match (&args.out, &args.kafka) {
        (None, Some(brokers)) => record_to_kafka(brokers, &args),
        _ => record_to_file(&args),
    }
}

fn record_to_kafka(brokers: &str, args: &RecordArgs) -> Result<()> {
    let cfg = load_config(args.config.as_deref())?;
    let ws = ws_config(&cfg)?;
    if ws.streams.is_empty() {
        bail!("nothing to record: binance.symbols and binance.streams are empty");
    }
    let frames = cryptoflow::publish::publish_live(
        ws,
        brokers,
        &args.topic,
        args.duration.map(Duration::from_secs_f64),
        args.max_frames,
    )?;
    cryptoflow::notice::info(format!("published {frames} frames to {}", args.topic));
    Ok(())
}

fn record_to_file(args: &RecordArgs) -> Result<()> {
    let out = args.out.as_ref().context("--out or --kafka is required")?;
    let cfg = load_config(args.config.as_deref())?;
    let ws = ws_config(&cfg)?;
    if ws.streams.is_empty() {
        bail!("nothing to record: binance.symbols and binance.streams are empty");
    }
    let mut rec =
        Recorder::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    rec.write_header(ws.venue)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (duration, max_frames) = (args.duration, args.max_frames);
    let frames = rt.block_on(async move {
        let mut live = LiveFrames::start(ws, duration.map(Duration::from_secs_f64));
        while let Some((text, ts_received)) = live.next().await {
            rec.write_frame(ts_received, &text)?;
            if max_frames.is_some_and(|m| rec.frames >= m) {
                break;
            }
        }
        live.stop().await;
        let n = rec.frames;
        rec.finish()?;
        anyhow::Ok(n)
    })?;
    cryptoflow::notice::info(format!("recorded {frames} frames to {}", out.display()));
    Ok(())
}

/// `cryptoflow generate`: synthetic trade payloads to a file or standard output.
fn cmd_generate(args: GenerateArgs) -> Result<()> {
    let GenerateArgs {
        out,
        symbols,
        trades,
        seed,
        start_ms,
        step_ms,
        combined,
    } = args;
    let opts = GenerateOptions {
        symbols,
        trades,
        seed,
        start_ms,
        step_ms,
        combined,
    };
    match out {
        Some(path) => {
            let f = std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            );
            if path.extension().is_some_and(|e| e == "gz") {
                let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::best());
                generate(&opts, &mut gz)?;
                gz.finish()?;
            } else {
                let mut f = f;
                generate(&opts, &mut f)?;
                std::io::Write::flush(&mut f)?;
            }
            cryptoflow::notice::info(format!(
                "wrote {trades} trades of {symbols} symbols to {}",
                path.display()
            ));
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = std::io::BufWriter::new(stdout.lock());
            generate(&opts, &mut lock)?;
        }
    }
    Ok(())
}

/// `cryptoflow migrate`: the schema of PostgreSQL and/or MySQL / MariaDB.
fn cmd_migrate(args: MigrateArgs) -> Result<()> {
    let MigrateArgs {
        postgres,
        mysql,
        timescaledb,
    } = args;
    if postgres.is_none() && mysql.is_none() {
        bail!("nothing to migrate: pass --postgres URL and/or --mysql URL");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = |engine: &str, applied: Vec<i32>| {
        if applied.is_empty() {
            cryptoflow::notice::info(format!("{engine} schema is up to date"));
        } else {
            cryptoflow::notice::info(format!("{engine}: applied migrations {applied:?}"));
        }
    };
    if let Some(url) = postgres {
        report(
            "PostgreSQL",
            rt.block_on(cryptoflow_sinks::postgres::migrate(&url))
                .map_err(|e| anyhow!(e))?,
        );
        if timescaledb {
            let converted = rt
                .block_on(cryptoflow_sinks::postgres::migrate_timescaledb(&url))
                .map_err(|e| anyhow!(e))?;
            eprintln!(
                "cryptoflow: PostgreSQL: trades {} a TimescaleDB hypertable",
                if converted { "is now" } else { "is already" }
            );
        }
    }
    if let Some(url) = mysql {
        report(
            "MySQL",
            rt.block_on(cryptoflow_sinks::mysql::migrate(&url))
                .map_err(|e| anyhow!(e))?,
        );
    }
    Ok(())
}

/// `cryptoflow bench`: the pipeline (with one sink, paced, or through Kafka), the baseline loop,
/// or both compared.
fn cmd_bench(args: BenchArgs) -> Result<()> {
    let mut cfg = load_config(args.config.as_deref())?;
    cfg.pipeline.workers = args.workers;
    if args.baseline {
        println!("{}", baseline(&args.input, &cfg.analytics())?.line());
        return Ok(());
    }
    if args.bulk_reference {
        let server = match (args.postgres, args.sink.as_deref(), args.url) {
            (Some(u), None, _) => BulkServer::Postgres(u),
            (None, Some("mysql"), Some(u)) => BulkServer::Mysql(u),
            _ => bail!("--bulk-reference needs --postgres URL or --sink mysql --url URL"),
        };
        let r = bulk_reference(
            cfg,
            &BulkOptions {
                input: args.input,
                server,
                runs: args.compare.unwrap_or(1),
                databases: args.bulk_databases,
            },
            |phase, run| cryptoflow::notice::info(format!("{phase}: {}", run.line())),
        )?;
        println!("{}", r.line());
        return Ok(());
    }
    if args.compare.is_some() && (args.postgres.is_some() || args.sink.is_some()) {
        bail!("--compare with a sink needs --bulk-reference (else it compares the pipeline without sinks to the baseline)");
    }
    if let Some(runs) = args.compare {
        let c = compare(cfg, &args.input, runs, |phase, r| {
            cryptoflow::notice::info(format!("{phase}: {}", r.line()));
        })?;
        println!("{}", c.line());
        return Ok(());
    }
    let sink = match (args.sink.as_deref(), args.url) {
        (Some("mysql"), Some(u)) => Some(BenchSink::Mysql(u)),
        (Some("influx"), Some(u)) => Some(BenchSink::Influx(u)),
        (Some("kafka"), Some(u)) => Some(BenchSink::Kafka(u)),
        _ => None,
    };
    let result = bench(
        cfg,
        &BenchOptions {
            input: args.input,
            postgres: args.postgres,
            rate: args.rate,
            sink,
            kafka_source: args.kafka_source,
        },
    )?;
    println!("{}", result.line());
    Ok(())
}

/// `cryptoflow check-config`: the resolved configuration, secrets redacted.
fn cmd_check_config(args: ConfigArg) -> Result<()> {
    let cfg = load_config(args.config.as_deref())?;
    print!("{}", cfg.to_redacted_toml()?);
    cryptoflow::notice::info(format!(
        "configuration is valid ({} streams)",
        cfg.stream_names().len()
    ));
    Ok(())
}

/// `cryptoflow features`: the ML feature catalogue.
fn cmd_features() -> Result<()> {
    print!("{}", cryptoflow_operators::features::catalogue_markdown());
    Ok(())
}

/// `cryptoflow sentiment-eval`: the configured model on a labelled file.
fn cmd_sentiment_eval(args: SentimentEvalArgs) -> Result<()> {
    let cfg = load_config(args.config.as_deref())?;
    let model = cfg.sentiment_model()?;
    let labelled = &args.labelled;
    let text = std::fs::read_to_string(labelled)
        .with_context(|| format!("reading {}", labelled.display()))?;
    let rows = cryptoflow_operators::sentiment::parse_labelled(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", labelled.display()))?;
    let e = cryptoflow_operators::sentiment::evaluate(model.as_ref(), &rows);
    println!(
        "model={} texts={} accuracy={:.4} macro_f1={:.4}",
        model.name(),
        e.n,
        e.accuracy,
        e.macro_f1
    );
    println!("label \\ predicted  negative  neutral  positive");
    for (label, row) in ["negative", "neutral", "positive"].iter().zip(e.confusion) {
        println!("{label:>18}  {:>8}  {:>7}  {:>8}", row[0], row[1], row[2]);
    }
    Ok(())
}
