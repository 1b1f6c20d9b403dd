//! Exact numbers from the text of a payload.
//!
//! Pollers never route a number through `f64`: the digits of a JSON number (taken from the
//! response bytes with `serde_json::value::RawValue`) or of a numeric string are turned into a
//! [`Decimal`] here. Exponents (`1.2e-7`, `4.2069e14`) are applied exactly; trailing zeros are
//! dropped only when needed to fit. A value `Decimal` cannot hold exactly (more than 28 decimal
//! places of significant digits, or a magnitude of 2^96 or more) is an error, never a rounded value.

use rust_decimal::Decimal;
use serde_json::value::RawValue;

/// Largest number of decimal digits a `Decimal` mantissa can have (2^96 − 1 has 29).
const MAX_DIGITS: usize = 29;
/// Largest `Decimal` scale.
const MAX_SCALE: i64 = 28;

/// Why a number could not be read exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Not a decimal number (`abc`, `1.2.3`, `NaN`).
    #[error("not a number: {0:?}")]
    Syntax(String),
    /// A valid number that a 96-bit decimal with at most 28 decimal places cannot hold exactly.
    #[error("number {0} cannot be stored exactly (beyond 28 decimal places or 2^96)")]
    OutOfRange(String),
    /// A JSON value that is not a number, a numeric string or null.
    #[error("not a number: {0}")]
    NotNumeric(String),
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        let head: String = s.chars().take(60).collect();
        format!("{head}…")
    } else {
        s.to_string()
    }
}

/// Parses a decimal number written as `[+-]digits[.digits][(e|E)[+-]digits]` (the JSON number
/// grammar, plus a leading `+` and a missing integer or fraction part) into the exact [`Decimal`].
pub fn parse_exact(text: &str) -> Result<Decimal, NumberError> {
    let syntax = || NumberError::Syntax(shorten(text));
    let range = || NumberError::OutOfRange(shorten(text));
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(syntax());
    }
    let mut digits: String = format!("{int_part}{frac_part}")
        .trim_start_matches('0')
        .to_string();
    // The value is digits × 10^(−scale).
    let mut scale = frac_part.len() as i64;
    if let Some(e) = exponent {
        let (e_neg, e_digits) = match e.as_bytes().first() {
            Some(b'-') => (true, &e[1..]),
            Some(b'+') => (false, &e[1..]),
            _ => (false, e),
        };
        if e_digits.is_empty() || !all_digits(e_digits) {
            return Err(syntax());
        }
        let e_digits = e_digits.trim_start_matches('0');
        if e_digits.len() > 9 {
            // |exponent| ≥ 10^9: only zero survives that.
            return if digits.is_empty() {
                Ok(Decimal::ZERO)
            } else {
                Err(range())
            };
        }
        let e_val: i64 = if e_digits.is_empty() {
            0
        } else {
            e_digits.parse().map_err(|_| syntax())?
        };
        scale += if e_neg { e_val } else { -e_val };
    }
    if digits.is_empty() {
        // Zero keeps its written scale where it can.
        let s = scale.clamp(0, MAX_SCALE) as u32;
        return Ok(Decimal::new(0, s));
    }
    if scale < 0 {
        let zeros = usize::try_from(-scale).map_err(|_| range())?;
        if digits.len() + zeros > MAX_DIGITS {
            return Err(range());
        }
        digits.extend(std::iter::repeat_n('0', zeros));
        scale = 0;
    }
    // Trailing zeros of the fraction carry no value: drop them if the number does not fit.
    while (scale > MAX_SCALE || digits.len() > MAX_DIGITS) && scale > 0 && digits.ends_with('0') {
        digits.pop();
        scale -= 1;
    }
    if scale > MAX_SCALE || digits.len() > MAX_DIGITS {
        return Err(range());
    }
    let m: i128 = digits.parse().map_err(|_| range())?;
    let m = if negative { -m } else { m };
    Decimal::try_from_i128_with_scale(m, scale as u32).map_err(|_| range())
}

/// A JSON value (its exact text, from the payload) as a decimal: `None` for null, an absent
/// value or an empty string; numbers and numeric strings parsed exactly.
pub fn raw_decimal(v: Option<&RawValue>) -> Result<Option<Decimal>, NumberError> {
    let Some(raw) = v else { return Ok(None) };
    let t = raw.get().trim();
    match t.as_bytes().first() {
        None => Ok(None),
        Some(b'n') if t == "null" => Ok(None),
        Some(b'"') => {
            let s: String =
                serde_json::from_str(t).map_err(|_| NumberError::NotNumeric(shorten(t)))?;
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                parse_exact(s).map(Some)
            }
        }
        Some(b'-' | b'0'..=b'9') => parse_exact(t).map(Some),
        _ => Err(NumberError::NotNumeric(shorten(t))),
    }
}

/// A JSON value as a string, when it is one.
pub fn raw_str(v: Option<&RawValue>) -> Option<String> {
    let t = v?.get();
    if t.starts_with('"') {
        serde_json::from_str(t).ok()
    } else {
        None
    }
}

/// A JSON value as an integer, when it is an integer number that fits `i64`.
pub fn raw_i64(v: Option<&RawValue>) -> Option<i64> {
    v?.get().trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        parse_exact(s).expect(s).to_string()
    }

    #[test]
    fn exact_forms() {
        // Expected strings: Python `format(decimal.Decimal(s), 'f')`.
        assert_eq!(ok("1820486547.6280346"), "1820486547.6280346");
        assert_eq!(ok("0.00000001234567890123"), "0.00000001234567890123");
        assert_eq!(ok("4.2069e14"), "420690000000000");
        assert_eq!(ok("589264883286605.2"), "589264883286605.2");
        assert_eq!(ok("1234567890123456789012345"), "1234567890123456789012345");
        assert_eq!(ok("1.2e-7"), "0.00000012");
        assert_eq!(ok("1.234e-05"), "0.00001234");
        assert_eq!(ok("-512.3"), "-512.3");
        assert_eq!(ok("19790000.0"), "19790000.0");
        assert_eq!(ok("1E+3"), "1000");
        assert_eq!(ok("1e-20"), "0.00000000000000000001");
        assert_eq!(ok("0"), "0");
        assert_eq!(ok("0.000"), "0.000");
        assert_eq!(ok("0e999999999999"), "0");
        assert_eq!(ok("+4.5"), "4.5");
        assert_eq!(ok(".5"), "0.5");
        // 2^96 − 1, the largest mantissa.
        assert_eq!(
            ok("79228162514264337593543950335"),
            "79228162514264337593543950335"
        );
        // Trailing zeros beyond 28 places are dropped (the value is unchanged).
        assert_eq!(
            ok("1.500000000000000000000000000000000"),
            "1.5000000000000000000000000000"
        );
    }

    #[test]
    fn out_of_range_and_syntax() {
        for s in [
            "79228162514264337593543950336",
            "1e29",
            "1e-29",
            "0.12345678901234567890123456789",
            "123456789012345678901234567890",
            "1e999999999999",
        ] {
            assert!(
                matches!(parse_exact(s), Err(NumberError::OutOfRange(_))),
                "{s}: {:?}",
                parse_exact(s)
            );
        }
        for s in [
            "", "-", "abc", "1.2.3", "1e", "1e+", "NaN", "1,5", " 1", "0x10",
        ] {
            assert!(
                matches!(parse_exact(s), Err(NumberError::Syntax(_))),
                "{s:?}: {:?}",
                parse_exact(s)
            );
        }
    }

    #[test]
    fn raw_values() {
        let r = |s: &str| -> Box<RawValue> { RawValue::from_string(s.to_string()).expect("raw") };
        assert_eq!(raw_decimal(None), Ok(None));
        assert_eq!(raw_decimal(Some(&r("null"))), Ok(None));
        assert_eq!(raw_decimal(Some(&r("\" \""))), Ok(None));
        assert_eq!(
            raw_decimal(Some(&r("\"4.33\""))),
            Ok(Some("4.33".parse().expect("d")))
        );
        assert_eq!(
            raw_decimal(Some(&r("1.234e-05"))),
            Ok(Some("0.00001234".parse().expect("d")))
        );
        assert!(matches!(
            raw_decimal(Some(&r("true"))),
            Err(NumberError::NotNumeric(_))
        ));
        assert!(matches!(
            raw_decimal(Some(&r("{\"a\":1}"))),
            Err(NumberError::NotNumeric(_))
        ));
        assert_eq!(raw_str(Some(&r("\"a\\u00e9\""))), Some("aé".into()));
        assert_eq!(raw_str(Some(&r("5"))), None);
        assert_eq!(raw_i64(Some(&r("12"))), Some(12));
        assert_eq!(raw_i64(Some(&r("1.5"))), None);
        assert_eq!(raw_i64(Some(&r("null"))), None);
    }
}
