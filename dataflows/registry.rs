//! The one list of the pipeline's parts: every sink and source the configuration can turn on.
//!
//! - A new **sink** is a file in `sinks/src/` (its configuration section, a [`SinkSpec`] for it
//!   and the [`cryptoflow_sinks::Sink`]) plus one line in [`sinks`] and a field in
//!   [`crate::config::SinksConfig`].
//! - A new **source** is a type implementing [`crate::runtime::source::Source`], a variant of
//!   [`SourceSpec`] and an arm in `SourceSpec::into_source`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use cryptoflow_operators::model::Output;
use cryptoflow_sinks::console::ConsoleSink;
use cryptoflow_sinks::jsonl::JsonlSink;
use cryptoflow_sinks::task::{CommitObserver, SinkSpec};
use cryptoflow_sinks::{Sink, SinkError};
use cryptoflow_sources::replay::ReplayOptions;
use cryptoflow_sources::rest::RestConfig;
use cryptoflow_sources::ws::WsConfig;

use crate::config::Config;
use crate::runtime::acks::{spawn_sink, SinkSlot};

/// Where events come from.
pub enum SourceSpec {
    /// Replay of files (in order), or of the bundled sample when `files` is empty.
    Replay {
        /// Files to replay.
        files: Vec<PathBuf>,
        /// Options.
        opts: ReplayOptions,
        /// Show each file's progress on stderr (a bar on a terminal, `progress:` lines elsewhere).
        progress: bool,
    },
    /// Raw Binance payloads from Kafka topics (consumer group) until Ctrl-C (or `stop_after`).
    Kafka {
        /// Consumer settings.
        kafka: cryptoflow_sources::kafka::KafkaSourceConfig,
        /// Stop after this long (tests, demos).
        stop_after: Option<Duration>,
    },
    /// Live Binance WebSocket streams until Ctrl-C (or `stop_after`).
    Live {
        /// Connection settings.
        ws: WsConfig,
        /// REST refill of id gaps (`None`: gaps are only recorded).
        rest: Option<RestConfig>,
        /// Stop after this long (tests, demos).
        stop_after: Option<Duration>,
    },
}

/// Builds every configured sink and starts its task, in this order. The first one is the
/// primary sink: it releases the in-flight bound, and the stores among the first ones hand their
/// commits to `observer` (a sink that only observes takes it when no store is configured).
pub(crate) fn sinks(
    cfg: &Config,
    rt: &tokio::runtime::Runtime,
    observer: Option<CommitObserver>,
) -> Result<Vec<SinkSlot>> {
    let mut set = SinkSet {
        cfg,
        rt,
        observer,
        slots: Vec::new(),
    };
    set.add(&cfg.sinks.postgres)?;
    set.add(&cfg.sinks.mysql)?;
    set.add(&cfg.sinks.influx)?;
    set.add(&cfg.sinks.kafka)?;
    set.add(&cfg.sinks.redis)?;
    set.add(&ObserverOnly(set.observer.is_some()))?;
    set.add(&JsonlFile(&cfg.sinks.jsonl))?;
    set.add(&Console(cfg.sinks.console))?;
    if set.slots.is_empty() && cfg.sinks.count_only {
        set.add(&CountOnly)?;
    }
    if set.slots.is_empty() {
        bail!("no sink is configured: enable sinks.console, sinks.jsonl, sinks.postgres, sinks.mysql, sinks.influx, sinks.kafka or sinks.redis");
    }
    Ok(set.slots)
}

/// Sinks being built.
struct SinkSet<'a> {
    cfg: &'a Config,
    rt: &'a tokio::runtime::Runtime,
    observer: Option<CommitObserver>,
    slots: Vec<SinkSlot>,
}

impl SinkSet<'_> {
    /// Builds the sink of `spec`, when it is on, and starts its task.
    fn add<S: SinkSpec>(&mut self, spec: &S) -> Result<()> {
        if !spec.enabled() {
            return Ok(());
        }
        let env = |k: &str| std::env::var(k).ok();
        let sink = self.rt.block_on(spec.build(&env)).map_err(|e| anyhow!(e))?;
        let observer = if spec.observes_commits() {
            self.observer.take()
        } else {
            None
        };
        self.slots.push(spawn_sink(
            self.rt,
            sink,
            self.cfg.pipeline.workers,
            self.cfg,
            observer,
            spec.parallelism(),
        ));
        Ok(())
    }
}

/// `sinks.jsonl`: a path ("" = off).
struct JsonlFile<'a>(&'a str);

impl SinkSpec for JsonlFile<'_> {
    type Sink = JsonlSink;
    fn enabled(&self) -> bool {
        !self.0.is_empty()
    }
    fn observes_commits(&self) -> bool {
        false
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<JsonlSink, SinkError> {
        JsonlSink::create(Path::new(self.0))
    }
}

/// `sinks.console`: on or off.
struct Console(bool);

impl SinkSpec for Console {
    type Sink = ConsoleSink;
    fn enabled(&self) -> bool {
        self.0
    }
    fn observes_commits(&self) -> bool {
        false
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ConsoleSink, SinkError> {
        Ok(ConsoleSink::default())
    }
}

/// The sink of a run asked to keep nothing (`replay --quiet` without a store): it takes every
/// record and drops it, so the summary still counts them.
struct CountOnly;

/// The sink of [`CountOnly`].
struct CountSink;

impl Sink for CountSink {
    fn name(&self) -> &'static str {
        "counted"
    }
    async fn write(&mut self, _records: &[Output]) -> Result<(), SinkError> {
        Ok(())
    }
}

impl SinkSpec for CountOnly {
    type Sink = CountSink;
    fn enabled(&self) -> bool {
        true
    }
    fn observes_commits(&self) -> bool {
        false
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<CountSink, SinkError> {
        Ok(CountSink)
    }
}

/// A sink that only hands batches to an observer (benchmarks and tests without a store).
struct ObserverOnly(bool);

/// The sink of [`ObserverOnly`].
struct ObserverSink;

impl Sink for ObserverSink {
    fn name(&self) -> &'static str {
        "observer"
    }
    async fn write(&mut self, _records: &[Output]) -> Result<(), SinkError> {
        Ok(())
    }
}

impl SinkSpec for ObserverOnly {
    type Sink = ObserverSink;
    fn enabled(&self) -> bool {
        self.0
    }
    async fn build(
        &self,
        _env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ObserverSink, SinkError> {
        Ok(ObserverSink)
    }
}
