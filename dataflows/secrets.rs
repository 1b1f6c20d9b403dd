//! Credentials in every form cryptoflow's configuration can carry them, found and redacted.
//!
//! Forms recognised (values of any length; names compared case-insensitively):
//!
//! | form | example |
//! | --- | --- |
//! | URL user info | `postgres://user:pw@host/db`, `http://user:pw@influx:8086`, `redis://:pw@host:6379/0` |
//! | query parameters | `…/db?password=pw`, `…?sslpassword=pw&token=t` |
//! | key=value connection strings | `host=db user=u password=pw`, `password='p w'` |
//! | settings whose name says secret | `sasl.password`, `ssl.key.password`, `api_key`, `client_secret`, `token` |
//!
//! A setting's name is secret when it contains `password`, `passwd`, `pwd`, `secret`, `token`,
//! `credential`, `jaas` or `key` as a word, except names that point to where a secret lives
//! rather than holding it (`…_env`, `….location`, `…_file`, `…_path`, `…url`, `…endpoint`):
//! `api_key_env` names an environment variable, `ssl.key.location` a file and `token_url` an
//! address (whose own credentials, if any, the URL form catches).
//!
//! Besides the patterns, every secret value seen at start-up (in the resolved configuration and
//! in environment variables with a secret name) is remembered, and [`scrub`] replaces it wherever
//! it appears: the CLI passes log lines, error messages and panic messages through it, so a
//! credential that reaches a message some other way (a driver echoing its connection string) is
//! still never printed.

use std::sync::RwLock;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Secret values shorter than this are not scrubbed by value (they would mask ordinary words);
/// the patterns still redact them.
const MIN_REMEMBERED: usize = 4;

static REMEMBERED: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Whether a setting or parameter name holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if [
        "_env",
        ".location",
        "_location",
        "_file",
        ".file",
        "_path",
        ".path",
        "url",
        "uri",
        "endpoint",
    ]
    .iter()
    .any(|s| n.ends_with(s))
    {
        return false;
    }
    if [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "credential",
        "jaas",
        "apikey",
    ]
    .iter()
    .any(|w| n.contains(w))
    {
        return true;
    }
    // `key` as a word: `api_key`, `x-api-key`, `ssl.key` — not `keyspace` or `monkey`.
    n.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == "key")
}

/// Remembers a secret value so that [`scrub`] masks it wherever it appears.
pub fn remember(value: &str) {
    let value = value.trim();
    if value.len() < MIN_REMEMBERED || value == MASK {
        return;
    }
    if let Ok(mut r) = REMEMBERED.write() {
        if !r.iter().any(|v| v == value) {
            r.push(value.to_string());
            // Longest first, so a secret that contains another is masked whole.
            r.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }
}

/// Remembers the values of environment variables whose name says secret (`PGPASSWORD`,
/// `FRED_API_KEY`, `CRYPTOFLOW_INFLUX_TOKEN`, …) and the secrets inside every other
/// `CRYPTOFLOW…` variable (URLs with passwords).
pub fn remember_env(vars: impl IntoIterator<Item = (String, String)>) {
    for (name, value) in vars {
        if is_secret_name(&name) {
            remember(&value);
        } else if name.starts_with("CRYPTOFLOW") {
            for s in secrets_in(&value) {
                remember(&s);
            }
        }
    }
}

/// The secret values inside one string (URL passwords, secret query or key=value parameters).
pub fn secrets_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    redact_with(text, &mut |s| found.push(s.to_string()));
    found
}

/// `text` with every credential it carries, by form or by remembered value, replaced by `***`.
pub fn redact(text: &str) -> String {
    scrub(&redact_with(text, &mut |_| {}))
}

/// `text` with every remembered secret value replaced by `***`.
pub fn scrub(text: &str) -> String {
    let Ok(r) = REMEMBERED.read() else {
        return text.to_string();
    };
    let mut out = text.to_string();
    for v in r.iter() {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), MASK);
        }
    }
    out
}

/// Redacts the credential forms in `text`, reporting each secret found to `found`.
fn redact_with(text: &str, found: &mut dyn FnMut(&str)) -> String {
    let url = redact_url_userinfo(text, found);
    redact_pairs(&url, found)
}

/// `scheme://user:password@host` → `scheme://user:***@host`, everywhere in `text`.
fn redact_url_userinfo(text: &str, found: &mut dyn FnMut(&str)) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, pw)) if !pw.is_empty() && pw != MASK => {
                        found(pw);
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                        out.push_str(&authority[at..]);
                    }
                    _ => out.push_str(authority),
                }
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `name=value` pairs with a secret name (query parameters, key=value connection strings,
/// quoted values), everywhere in `text`.
fn redact_pairs(text: &str, found: &mut dyn FnMut(&str)) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            i += 1;
            continue;
        }
        // The name: the word before '=' (letters, digits, '_', '-', '.').
        let mut start = i;
        while start > 0 {
            let c = bytes[start - 1];
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' {
                start -= 1;
            } else {
                break;
            }
        }
        let name = &text[start..i];
        let value_start = i + 1;
        // InfluxDB 1.x takes its password as the query parameter `p` (`?u=me&p=pw`).
        let influx_p = name == "p" && start > 0 && matches!(bytes[start - 1], b'?' | b'&');
        if name.is_empty() || !(is_secret_name(name) || influx_p) {
            i += 1;
            continue;
        }
        // The value: quoted, or up to '&', ';', whitespace, or a closing quote/bracket.
        let (vs, ve, next) = match bytes.get(value_start) {
            Some(q @ (b'\'' | b'"')) => {
                let close = text[value_start + 1..]
                    .find(*q as char)
                    .map(|p| value_start + 1 + p)
                    .unwrap_or(text.len());
                (value_start + 1, close, (close + 1).min(text.len()))
            }
            _ => {
                let end = text[value_start..]
                    .find(|c: char| {
                        c == '&'
                            || c == ';'
                            || c == ','
                            || c.is_whitespace()
                            || "\"')]}".contains(c)
                    })
                    .map(|p| value_start + p)
                    .unwrap_or(text.len());
                (value_start, end, end)
            }
        };
        let value = &text[vs..ve];
        if !value.is_empty() && value != MASK {
            found(value);
            out.push_str(&text[copied..vs]);
            out.push_str(MASK);
            copied = ve;
        }
        i = next.max(i + 1);
    }
    out.push_str(&text[copied..]);
    out
}

/// A `tracing` writer that scrubs each formatted event before it reaches standard error.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScrubbedStderr;

/// One event's bytes, written scrubbed when dropped.
#[derive(Debug, Default)]
pub struct ScrubbedLine(Vec<u8>);

impl std::io::Write for ScrubbedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::Write::write_all(&mut std::io::stderr(), redact(&text).as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedLine;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedLine::default()
    }
}

/// Installs a panic hook that prints panic messages with secrets redacted (instead of the
/// default hook, which would print them as they are).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("thread '{name}' panicked{at}:\n{}", redact(&payload));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "password",
            "sasl.password",
            "ssl.key.password",
            "SASL_PASSWORD",
            "api_key",
            "x-api-key",
            "apikey",
            "client_secret",
            "token",
            "sasl.oauthbearer.client.secret",
            "sasl.jaas.config",
            "PGPASSWORD",
            "FRED_API_KEY",
            "ssl.key.pem",
            "sslpassword",
            "pwd",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "api_key_env",
            "ssl.key.location",
            "token_url",
            "sasl.oauthbearer.token.endpoint.url",
            "url",
            "brokers",
            "keyspace",
            "monkey",
            "group_id",
            "overlay_file",
            "user",
            "host",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn every_form_is_redacted() {
        let cases = [
            (
                "postgres://cf:s3cr3t@db:5432/x",
                "postgres://cf:***@db:5432/x",
            ),
            (
                "mysql://root:pw@127.0.0.1/test",
                "mysql://root:***@127.0.0.1/test",
            ),
            (
                "http://admin:hunter2@influx:8086",
                "http://admin:***@influx:8086",
            ),
            (
                "redis://:s3cr3t@127.0.0.1:6379/0",
                "redis://:***@127.0.0.1:6379/0",
            ),
            (
                "postgres://cf@db/x?password=s3cr3t&sslmode=require",
                "postgres://cf@db/x?password=***&sslmode=require",
            ),
            (
                "http://influx:8086/write?db=x&u=me&p=hunter2",
                "http://influx:8086/write?db=x&u=me&p=***",
            ),
            ("top=1 p=2", "top=1 p=2"),
            (
                "host=db user=cf password=s3cr3t dbname=x",
                "host=db user=cf password=*** dbname=x",
            ),
            (
                "host=db password='two words' dbname=x",
                "host=db password='***' dbname=x",
            ),
            ("sasl.password=abc123", "sasl.password=***"),
            (
                "error connecting to postgres://u:topsecret@h/db: refused",
                "error connecting to postgres://u:***@h/db: refused",
            ),
            (
                "no secrets here: a=b, url=http://h/x",
                "no secrets here: a=b, url=http://h/x",
            ),
            ("postgres://user@host/db", "postgres://user@host/db"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_with(input, &mut |_| {}), want, "{input}");
        }
        assert_eq!(
            secrets_in("postgres://u:pw1@h/db?token=tok2 password=pw3"),
            vec!["pw1", "tok2", "pw3"]
        );
    }

    #[test]
    fn remembered_values_are_scrubbed() {
        remember("remembered-secret-value");
        assert_eq!(
            scrub("driver said: auth failed for remembered-secret-value!"),
            "driver said: auth failed for ***!"
        );
        remember("abc"); // too short to scrub by value
        assert_eq!(scrub("abc"), "abc");
        remember_env([("FRED_API_KEY".to_string(), "fred-key-12345".to_string())]);
        assert_eq!(
            scrub("GET /fred?api_key=fred-key-12345"),
            "GET /fred?api_key=***"
        );
    }
}
