//! A readable line per final candle, whale, gap and late trade, on standard output.

use std::io::Write;

use crate::task::{Sink, SinkError};
use cryptoflow_operators::model::Output;

/// Console sink.
#[derive(Debug, Default)]
pub struct ConsoleSink {
    /// Also print forming candle updates.
    pub show_forming: bool,
    /// Set once standard output is gone (a closed pipe): later records are not printed.
    pub closed: bool,
}

/// An exchange time (ms since the epoch) as ISO-8601 UTC with milliseconds
/// (`2023-11-14T22:13:20.000Z`); a time chrono cannot represent stays a number.
pub fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The console line for a record, if it gets one (times as ISO-8601 UTC).
pub fn console_line(r: &Output, show_forming: bool) -> Option<String> {
    match r {
        Output::Candle(c) if c.is_final || show_forming => Some(format!(
            "CANDLE {} {} {} {} o={} h={} l={} c={} v={} vwap={} n={}{}",
            c.venue,
            c.symbol,
            c.interval,
            iso_ms(c.open_time),
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            c.vwap,
            c.trade_count,
            if c.is_final { "" } else { " (forming)" }
        )),
        Output::Whale(w) => Some(format!(
            "WHALE {} {} id={} {} {} x {} = {} (threshold {}) at {}",
            w.trade.venue,
            w.trade.symbol,
            w.trade.trade_id,
            w.trade.side.as_str(),
            w.trade.price,
            w.trade.qty,
            w.notional.round_dp(2),
            w.threshold,
            iso_ms(w.trade.ts_exchange)
        )),
        Output::Gap(g) => Some(format!(
            "GAP {} {} {} since={} until={} last_id={:?} reason={:?}",
            g.venue,
            g.symbol,
            g.kind.as_str(),
            iso_ms(g.since),
            iso_ms(g.until),
            g.last_id,
            g.reason
        )),
        Output::Late(l) => Some(format!(
            "LATE {} {} id={} ts={} missed candle {} {}",
            l.trade.venue,
            l.trade.symbol,
            l.trade.trade_id,
            iso_ms(l.trade.ts_exchange),
            l.interval,
            iso_ms(l.candle_open_time)
        )),
        Output::Mismatch(m) => Some(format!(
            "KLINE MISMATCH {} {} {} {} differs in {}",
            m.venue,
            m.symbol,
            m.interval,
            iso_ms(m.open_time),
            m.fields.join(", ")
        )),
        _ => None,
    }
}

impl Sink for ConsoleSink {
    fn name(&self) -> &'static str {
        "console"
    }
    fn accepts(&self) -> cryptoflow_operators::model::OutputKinds {
        use cryptoflow_operators::model::OutputKind;
        cryptoflow_operators::model::OutputKinds::of(&[
            OutputKind::Candle,
            OutputKind::Whale,
            OutputKind::Gap,
            OutputKind::Late,
            OutputKind::Mismatch,
        ])
    }

    async fn write(&mut self, records: &[Output]) -> Result<(), SinkError> {
        if self.closed {
            return Ok(());
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut result = Ok(());
        for r in records {
            if let Some(line) = console_line(r, self.show_forming) {
                result = writeln!(out, "{line}");
                if result.is_err() {
                    break;
                }
            }
        }
        match result.and_then(|_| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                // The reader went away (`| head`): stop printing, keep the pipeline going.
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(SinkError::Permanent {
                sink: "console",
                message: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_iso_8601_utc() {
        // `date -u -d @1700000000` says Tue Nov 14 22:13:20 UTC 2023.
        assert_eq!(iso_ms(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(iso_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(i64::MAX), i64::MAX.to_string());
    }
}
