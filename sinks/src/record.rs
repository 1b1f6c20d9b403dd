//! What the dataflow hands to sinks: [`SinkRecord`], the pipeline's output rows
//! ([`cryptoflow_operators::model::Output`]), and [`latest_candles`].

pub use cryptoflow_operators::model::latest_candles;
pub use cryptoflow_operators::model::Output as SinkRecord;

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoflow_operators::polled::{FundNav, Polled};

    #[test]
    fn polled_json_line_shape() {
        let r = SinkRecord::Polled(Box::new(Polled::FundNav(FundNav {
            isin: "IE00B03HD191".into(),
            name: "V".into(),
            currency: "EUR".into(),
            nav: "45.6789".parse().expect("d"),
            nav_date: "2026-11-20".parse().expect("date"),
            source: "myinvestor".into(),
            fetched_at: 1,
        })));
        let line = serde_json::to_string(&r).expect("json");
        assert!(
            line.starts_with(r#"{"type":"polled","kind":"fund_nav","isin":"IE00B03HD191""#),
            "{line}"
        );
        assert!(
            line.contains(r#""nav":"45.6789","nav_date":"2026-11-20""#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<SinkRecord>(&line).expect("back"), r);
    }
}
