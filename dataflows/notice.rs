//! The `cryptoflow: …` lines a command writes on standard error (start-up, summaries, the final
//! error), in the log format of the run: plain text, or with `--log-format json` one JSON object
//! per line shaped like the log lines (`timestamp`, `level`, `fields.message`, `target`), so a
//! log collector reads every line of stderr the same way.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses the format of later notices (`true`: JSON lines).
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Whether notices are JSON lines.
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// The line of a notice (without its line end): `cryptoflow: {message}`, or the JSON object.
pub fn line(level: &str, message: &str, json: bool) -> String {
    let message = crate::secrets::redact(message);
    if !json {
        return match level {
            "ERROR" => format!("cryptoflow: error: {message}"),
            _ => format!("cryptoflow: {message}"),
        };
    }
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    serde_json::json!({
        "timestamp": timestamp,
        "level": level,
        "fields": { "message": message },
        "target": "cryptoflow",
    })
    .to_string()
}

fn write(level: &str, message: &str) {
    let text = line(level, message, is_json());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// An error with its causes, `outer: cause: …`, each said once: a cause whose text is already in
/// the message (an error that prints its source in its own text) is not repeated.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Writes an informational notice.
pub fn info(message: impl AsRef<str>) {
    write("INFO", message.as_ref());
}

/// Writes the error a command ends with.
pub fn error(message: impl AsRef<str>) {
    write("ERROR", message.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read x.jsonl: {source}")]
        struct Read {
            source: std::io::Error,
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(Read { source: io }).context("replay");
        // anyhow's own `{:#}` repeats the I/O error.
        assert_eq!(
            format!("{e:#}"),
            "replay: cannot read x.jsonl: No such file or directory: No such file or directory"
        );
        assert_eq!(
            error_chain(&e),
            "replay: cannot read x.jsonl: No such file or directory"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }

    #[test]
    fn plain_and_json_lines() {
        assert_eq!(
            line("INFO", "6000 events", false),
            "cryptoflow: 6000 events"
        );
        assert_eq!(
            line("ERROR", "no such file", false),
            "cryptoflow: error: no such file"
        );
        let v: serde_json::Value =
            serde_json::from_str(&line("INFO", "a \"quoted\" word", true)).expect("JSON");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "cryptoflow");
        assert_eq!(v["fields"]["message"], "a \"quoted\" word");
        assert!(v["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')));
    }
}
