//! MyInvestor's public fund catalogue, scraped once a day (02:00 Europe/Madrid by default): per
//! fund the ISIN, name, currency, NAV per share ("valor liquidativo") and its date.
//!
//! The page may be HTML (the first `<table>` whose header names an ISIN, a NAV and a date column;
//! columns are found by their header text, so reordering or extra columns do no harm) or JSON (an
//! array of fund objects, bare or under `funds`/`data`/`items`). Numbers and dates are Spanish
//! (`1.234,56`, `21/11/2026`). ISINs are checked (format and check digit). A page whose layout is
//! not recognised, or where most rows are unreadable, fails loudly and writes nothing.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use cryptoflow_operators::polled::FundNav;
use rust_decimal::Decimal;
use scraper::{Html, Selector};
use serde_json::value::RawValue;

use super::driver::{PollOutput, Poller};
use super::fetch::{ApiPolicy, FetchError, FetchStats, Fetcher};
use super::number::{parse_exact, raw_str};
use super::text::{parse_es_date, parse_es_number};
use super::BreakerState;

/// Settings of the MyInvestor poller.
#[derive(Debug, Clone)]
pub struct MyInvestorConfig {
    /// The catalogue page.
    pub url: String,
    /// Requests per minute.
    pub per_minute: f64,
    /// User-Agent.
    pub user_agent: String,
}

/// The MyInvestor poller.
pub struct MyInvestor {
    cfg: MyInvestorConfig,
    fetcher: Fetcher,
}

impl MyInvestor {
    /// A poller for `cfg`.
    pub fn new(cfg: MyInvestorConfig) -> Result<Self, FetchError> {
        let fetcher = Fetcher::new(
            ApiPolicy::new("myinvestor", cfg.per_minute),
            &cfg.user_agent,
        )?;
        Ok(MyInvestor { cfg, fetcher })
    }
}

/// Whether `isin` is a well-formed ISIN with a valid check digit.
pub fn valid_isin(isin: &str) -> bool {
    let b = isin.as_bytes();
    if b.len() != 12
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..11]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        || !b[11].is_ascii_digit()
    {
        return false;
    }
    // Letters become two digits (A = 10 … Z = 35), then Luhn over the digit string.
    let digits: Vec<u32> = b
        .iter()
        .flat_map(|c| {
            let v = if c.is_ascii_digit() {
                u32::from(c - b'0')
            } else {
                u32::from(c - b'A') + 10
            };
            if v >= 10 {
                vec![v / 10, v % 10]
            } else {
                vec![v]
            }
        })
        .collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Col {
    Isin,
    Name,
    Currency,
    Nav,
    Date,
}

fn normalize(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'á' => 'a',
            'é' => 'e',
            'í' => 'i',
            'ó' => 'o',
            'ú' => 'u',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn column(header: &str) -> Option<Col> {
    let h = normalize(header);
    let compact = h.replace(' ', "");
    if h == "isin" || h.starts_with("isin ") || h.starts_with("codigo isin") {
        Some(Col::Isin)
    } else if h.starts_with("fecha") || h == "date" || compact.starts_with("navdate") {
        Some(Col::Date)
    } else if h.starts_with("valor liquidativo")
        || compact == "valorliquidativo"
        || h == "vl"
        || h == "nav"
        || h.starts_with("precio")
    {
        Some(Col::Nav)
    } else if h.starts_with("divisa") || h.starts_with("moneda") || h == "currency" {
        Some(Col::Currency)
    } else if h.starts_with("nombre") || h == "fondo" || h == "name" || h == "fund" {
        Some(Col::Name)
    } else {
        None
    }
}

fn currency_of(cell: &str) -> Option<String> {
    if cell.contains('€') {
        return Some("EUR".into());
    }
    if cell.contains('$') {
        return Some("USD".into());
    }
    let code: String = cell
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| w.len() == 3 && w.chars().all(|c| c.is_ascii_uppercase()))?
        .to_string();
    Some(code)
}

fn row(get: &dyn Fn(Col) -> Option<String>, fetched_at: i64) -> Result<FundNav, String> {
    let isin = get(Col::Isin).unwrap_or_default().trim().to_uppercase();
    if !valid_isin(&isin) {
        return Err(format!("bad ISIN {isin:?}"));
    }
    let name = get(Col::Name)
        .map(|n| n.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|n| !n.is_empty())
        .ok_or(format!("{isin}: no name"))?;
    let nav_cell = get(Col::Nav).unwrap_or_default();
    let nav: Decimal = parse_es_number(&nav_cell)
        .filter(|n| *n > Decimal::ZERO)
        .ok_or(format!("{isin}: bad NAV {nav_cell:?}"))?;
    let date_cell = get(Col::Date).unwrap_or_default();
    let nav_date: NaiveDate =
        parse_es_date(&date_cell).ok_or(format!("{isin}: bad date {date_cell:?}"))?;
    let currency = get(Col::Currency)
        .map(|c| c.trim().to_uppercase())
        .filter(|c| c.len() == 3 && c.chars().all(|x| x.is_ascii_uppercase()))
        .or_else(|| currency_of(&nav_cell))
        .ok_or(format!("{isin}: no currency"))?;
    Ok(FundNav {
        isin,
        name,
        currency,
        nav,
        nav_date,
        source: "myinvestor".into(),
        fetched_at,
    })
}

/// Parses the catalogue (HTML or JSON): NAVs and one message per unreadable row; an error when the
/// layout is not recognised or most rows are unreadable.
pub fn parse_catalogue(
    url: &str,
    body: &[u8],
    fetched_at: i64,
) -> Result<(Vec<FundNav>, Vec<String>), String> {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let (good, bad) = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        parse_json(url, trimmed, fetched_at)?
    } else {
        parse_html(url, &text, fetched_at)?
    };
    if good.is_empty() || bad.len() > good.len() {
        return Err(format!(
            "MyInvestor {url}: {} of {} rows unreadable (first: {}); refusing to store anything — has the page changed?",
            bad.len(),
            bad.len() + good.len(),
            bad.first().map(String::as_str).unwrap_or("no rows at all")
        ));
    }
    Ok((good, bad))
}

fn parse_html(
    url: &str,
    text: &str,
    fetched_at: i64,
) -> Result<(Vec<FundNav>, Vec<String>), String> {
    let doc = Html::parse_document(text);
    let sel = |s: &str| Selector::parse(s).map_err(|e| format!("selector {s}: {e}"));
    let (table_sel, tr_sel, cell_sel) = (sel("table")?, sel("tr")?, sel("th, td")?);
    let mut headers_seen: Vec<Vec<String>> = Vec::new();
    for table in doc.select(&table_sel) {
        let mut rows = table.select(&tr_sel);
        let Some(head) = rows.next() else { continue };
        let names: Vec<String> = head
            .select(&cell_sel)
            .map(|c| c.text().collect::<String>().trim().to_string())
            .collect();
        let cols: Vec<Option<Col>> = names.iter().map(|n| column(n)).collect();
        let has = |c: Col| cols.contains(&Some(c));
        if !(has(Col::Isin) && has(Col::Nav) && has(Col::Date)) {
            headers_seen.push(names);
            continue;
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (i, tr) in rows.enumerate() {
            let cells: Vec<String> = tr
                .select(&cell_sel)
                .map(|c| c.text().collect::<String>().trim().to_string())
                .collect();
            if cells.iter().all(|c| c.is_empty()) {
                continue;
            }
            let get = |want: Col| {
                cols.iter()
                    .position(|c| *c == Some(want))
                    .and_then(|p| cells.get(p).cloned())
            };
            match row(&get, fetched_at) {
                Ok(r) => good.push(r),
                Err(e) => bad.push(format!("row {}: {e}", i + 1)),
            }
        }
        return Ok((good, bad));
    }
    Err(format!(
        "MyInvestor {url}: no table with ISIN, NAV (valor liquidativo) and date columns; the page layout changed? (tables seen: {headers_seen:?})"
    ))
}

fn parse_json(
    url: &str,
    text: &str,
    fetched_at: i64,
) -> Result<(Vec<FundNav>, Vec<String>), String> {
    let bad_json = |e: serde_json::Error| format!("MyInvestor {url}: bad JSON ({e})");
    let whole: &RawValue = serde_json::from_str(text).map_err(bad_json)?;
    let list: Vec<&RawValue> = if whole.get().starts_with('[') {
        serde_json::from_str(whole.get()).map_err(bad_json)?
    } else if whole.get().starts_with('{') {
        let o: BTreeMap<String, &RawValue> = serde_json::from_str(whole.get()).map_err(bad_json)?;
        let found = ["funds", "data", "items", "fondos"]
            .iter()
            .find_map(|k| o.get(*k).filter(|v| v.get().starts_with('[')))
            .ok_or(format!(
                "MyInvestor {url}: JSON without a fund list (keys: {:?})",
                o.keys().collect::<Vec<_>>()
            ))?;
        serde_json::from_str(found.get()).map_err(bad_json)?
    } else {
        return Err(format!("MyInvestor {url}: JSON is not a fund list"));
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let o: BTreeMap<String, &RawValue> = match serde_json::from_str(f.get()) {
            Ok(o) if f.get().starts_with('{') => o,
            _ => {
                bad.push(format!("item {i}: not an object"));
                continue;
            }
        };
        let fields: BTreeMap<Col, String> = o
            .iter()
            .filter_map(|(k, v)| {
                // camelCase keys become words: valorLiquidativo → valor liquidativo.
                let mut words = String::new();
                for ch in k.chars() {
                    if ch.is_uppercase() {
                        words.push(' ');
                    }
                    words.push(ch);
                }
                let col = column(&words.replace('_', " "))?;
                let t = v.get();
                let s = if t.starts_with('"') {
                    raw_str(Some(v))?
                } else if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                    // A JSON number, read exactly from its text, in the Spanish form the cell
                    // parser expects (a number no `Decimal` holds stays unreadable).
                    match parse_exact(t) {
                        Ok(d) => d.to_string().replace('.', ","),
                        Err(_) => t.replace('.', ","),
                    }
                } else {
                    return None;
                };
                Some((col, s))
            })
            .collect();
        match row(&|c| fields.get(&c).cloned(), fetched_at) {
            Ok(r) => good.push(r),
            Err(e) => bad.push(format!("item {i}: {e}")),
        }
    }
    Ok((good, bad))
}

impl Poller for MyInvestor {
    fn name(&self) -> &'static str {
        "myinvestor"
    }

    async fn poll(&mut self, _cursors: &BTreeMap<String, String>) -> PollOutput {
        let mut out = PollOutput::default();
        let fetched = self.fetcher.get(&self.cfg.url, &[]).await;
        let url = self.cfg.url.clone();
        out.absorb(fetched, |body| {
            parse_catalogue(&url, body, crate::now_ms()).map(|(navs, bad)| {
                let bad = bad.into_iter().map(|e| format!("MyInvestor {e}")).collect();
                (navs, bad)
            })
        });
        out
    }

    fn apis(&self) -> Vec<(String, FetchStats, BreakerState)> {
        vec![(
            "myinvestor".into(),
            self.fetcher.stats,
            self.fetcher.breaker_state(),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isin_check_digits() {
        // Published ISINs.
        assert!(valid_isin("US0378331005"));
        assert!(valid_isin("IE00B4L5Y983"));
        assert!(valid_isin("ES0113900J37"));
        assert!(valid_isin("LU0996182563"));
        assert!(!valid_isin("US0378331006"));
        assert!(!valid_isin("US037833100"));
        assert!(!valid_isin("us0378331005"));
    }

    #[test]
    fn html_table_by_header_names() {
        let html = "<html><body><table><tr><th>Menu</th></tr></table>
          <table class=\"funds\"><thead><tr><th>Fondo</th><th>Código ISIN</th><th>Divisa</th>
          <th>Valor liquidativo</th><th>Fecha VL</th></tr></thead><tbody>
          <tr><td>Vanguard Global Stock Index &amp; Co</td><td>IE00B03HD191</td><td>EUR</td><td>1.234,5678</td><td>20/11/2026</td></tr>
          <tr><td>iShares Dev World</td><td>IE00BD0NCM55</td><td></td><td>18,12 €</td><td>20/11/2026</td></tr>
          <tr><td>Broken</td><td>XX123</td><td>EUR</td><td>1,0</td><td>20/11/2026</td></tr>
          </tbody></table></body></html>";
        let (good, bad) = parse_catalogue("u", html.as_bytes(), 0).expect("table");
        assert_eq!(good.len(), 2);
        assert_eq!(good[0].name, "Vanguard Global Stock Index & Co");
        assert_eq!(good[0].nav, "1234.5678".parse().expect("d"));
        assert_eq!(
            good[0].nav_date,
            NaiveDate::from_ymd_opt(2026, 11, 20).expect("d")
        );
        assert_eq!(good[1].currency, "EUR");
        assert_eq!(bad.len(), 1);
        let changed =
            "<table><tr><th>Producto</th><th>Precio</th></tr><tr><td>a</td><td>1</td></tr></table>";
        let e = parse_catalogue("u", changed.as_bytes(), 0).expect_err("layout");
        assert!(e.contains("layout changed"), "{e}");
    }

    #[test]
    fn json_list_and_mostly_garbage_refused() {
        let json = r#"{"funds":[{"isin":"IE00B03HD191","nombre":"Vanguard","divisa":"EUR","valorLiquidativo":"45,6789","fechaValorLiquidativo":"20/11/2026"}]}"#;
        let (good, _) = parse_catalogue("u", json.as_bytes(), 0).expect("json");
        assert_eq!(good[0].nav, "45.6789".parse().expect("d"));
        // JSON numbers are read from their text, beyond f64's 17 digits; exponents applied.
        let json = r#"[{"isin":"IE00B03HD191","nombre":"V","divisa":"EUR","valorLiquidativo":123.456789012345678901,"fecha":"20/11/2026"},
            {"isin":"IE00BD0NCM55","nombre":"I","divisa":"USD","valorLiquidativo":1.5e2,"fecha":"20/11/2026"},
            {"isin":"IE00BYX5NX33","nombre":"F","divisa":"EUR","valorLiquidativo":0.12345678901234567890123456789,"fecha":"20/11/2026"}]"#;
        let (good, bad) = parse_catalogue("u", json.as_bytes(), 0).expect("json");
        // Python: format(decimal.Decimal(text), 'f').
        assert_eq!(good[0].nav.to_string(), "123.456789012345678901");
        assert_eq!(good[1].nav.to_string(), "150");
        assert_eq!(
            bad.len(),
            1,
            "29 decimal places: unreadable, not rounded: {bad:?}"
        );
        let garbage = r#"[{"isin":"IE00B03HD191","nombre":"a","divisa":"EUR","valorLiquidativo":"n/a","fecha":"20/11/2026"}]"#;
        assert!(parse_catalogue("u", garbage.as_bytes(), 0).is_err());
    }
}
