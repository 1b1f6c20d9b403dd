//! The deterministic grammar of text orders, in English and Spanish (no language model).
//!
//! [`parse`] reads one short message and answers with one of three outcomes ([`Parsed`]):
//!
//! - [`Parsed::Command`]: a structured [`Command`], to be shown back to the user with
//!   [`Command::describe`] and executed only once confirmed;
//! - [`Parsed::Ask`]: a [`Question`] to ask back, when the message is understood in part but
//!   something is missing or could be read two ways (nothing is ever guessed);
//! - [`Parsed::Refused`]: a [`Refusal`] with its reason, for hostile, invalid, out-of-range,
//!   unsupported or meaningless input.
//!
//! # Pipeline
//!
//! 1. **Preflight**: empty input, more than [`MAX_CHARS`] characters, injection patterns (SQL,
//!    shell metacharacters, markup) and any character outside the order alphabet (ASCII letters
//!    and digits, Spanish letters `áéíóúüñ`, spaces and `. , % $ € / - ( ) ? ! ' : @ ¿ ¡ < > =`)
//!    are refused: emoji, zero-width and text-direction characters never reach the parser.
//! 2. **Tokenizer**: words (lower-cased, accents folded: `dólares` = `dolares`, `bajá` = `baja`),
//!    numbers (with the separator rule below, a glued `k` for thousands, `%`, `$`, `€`), candle
//!    intervals (`1h`, `4h`, `1d`, …), `@`, `/`, comparisons `<`, `>`, `<=`, `>=`.
//! 3. **Phrases**: multi-word phrases become keywords, longest match first ("drops below",
//!    "por debajo de", "stop loss", "take profit", "la mitad", "por favor", …); politeness and
//!    articles are dropped; known assets (see [`ParseOptions`]), aliases (`bitcoin`, `ether`, …)
//!    and pairs (`ETH/BTC`, `ETH-BTC`, `ETHBTC`, `btcusdt`) become assets.
//! 4. **Parser**: a small hand-written parser fills the slots of an order (side, asset, amount,
//!    price, condition, quote) and refuses to fill one slot twice with different values. Every
//!    word must be understood: an unknown word is asked back, never skipped.
//!
//! # Grammar (informally)
//!
//! ```text
//! order   := [please] side amount asset [quote] [price] [condition]      (parts in any order,
//!                                                                  the number before its asset)
//! side    := buy | sell | close (= sell all) | compra | vende | cierra | …
//! amount  := N [of] ASSET            base quantity                "0.1 BTC", "0,5 BTC"
//!          | $N | N dollars | N USDT of ASSET                     quote amount (market notional)
//!          | N% of my ASSET | half | a quarter | all              fraction of the position (sell)
//! quote   := with|for|in QUOTE | ASSET/QUOTE | ASSETQUOTE          default: ParseOptions::default_quote
//! price   := at N | @ N | limit N | at market | a mercado          limit or market (default market)
//! condition := (when|if|once|si|cuando) [price|it|ASSET] direction N      price trigger (inclusive)
//!            | (when|if|si) [INTERVAL] RSI[(P)] [of|on INTERVAL] direction N   RSI trigger (strict)
//! protect := stop loss N% [below entry] on ASSET | stop loss at N on ASSET
//!          | take profit N% on ASSET | take profit at N on ASSET      sells the position
//! cancel  := cancel all | cancel all ASSET orders | cancela todo | cancela las órdenes de ASSET
//! ```
//!
//! # Numbers
//!
//! A number may carry `.` and `,` separators. A separator is a thousands separator only when it
//! is followed by groups of exactly three digits and the first group has one to three digits not
//! starting with `0`; otherwise it is the decimal separator. Each number is read both ways
//! (`.` decimal / `,` thousands, and `,` decimal / `.` thousands):
//!
//! - when only one reading is valid, or both give the same value, that value is used whatever the
//!   language: `0,5` = 0.5, `45,000.50` = 45000.5, `1.000.000` = 1000000, `0.500` = 0.5;
//! - when the readings differ (one separator followed by exactly three digits: `1.500`, `40.000`,
//!   `45,000`), the language of the message decides: English reads `.` as the decimal point
//!   (`1.500` = 1.5, `45,000` = 45000), Spanish reads `,` as the decimal comma (`40.000` = 40000,
//!   `1,500` = 1.5). The language is English when the message has English keywords and no
//!   Spanish ones, Spanish the other way round; when it has both or neither the number is asked
//!   back ([`Subject::Number`]).
//!
//! Zero and negative numbers are refused, as are exponent notation (`1e9`), numbers of more than
//! [`MAX_SIGNIFICANT_DIGITS`] significant digits and anything `Decimal` cannot hold exactly.
//! Thousands grouped with spaces ("45 000") are asked back. A glued `k`, "thousand" or "mil"
//! multiplies by 1000 ("45k", "40 mil").
//!
//! # What is asked back
//!
//! A missing side, asset or amount; two sides, assets, amounts, prices or quotes that disagree;
//! an unknown asset or word; a number that reads differently in English and Spanish; a number
//! after its asset ("buy BTC 45000": a quantity or a price?); a bare price with no `at` ("buy
//! 0.1 BTC below 45000": a limit order at 45000, or a trigger?); a
//! condition without a direction ("when it reaches 45000": from above or below?); an RSI
//! condition without its candle interval; a bare stop-loss number ("stop loss 5": percent or
//! price?); a fraction of a position on a buy; two commands in one message; a message phrased as
//! a question (the command is described back in the question).
//!
//! # What is refused
//!
//! Empty or over-long input, injection and foreign characters, negation ("don't buy"), zero or
//! negative numbers, absurd numbers, percentages over 100 for a fraction of a position, a stop
//! loss of 100 % or more, an RSI level outside (0, 100), unsupported features (other indicators,
//! trailing stops, shorts, leverage, percent moves in triggers, triggers on another asset's
//! price) and text that is not an order at all.
//!
//! # Decisions worth knowing
//!
//! - A limit price and a condition may be combined ("buy 0.1 BTC at 45000 when the 1h RSI is
//!   below 30"): the limit order is placed when the condition becomes true.
//! - Price conditions are inclusive (`PriceAtOrBelow`, `PriceAtOrAbove`); RSI comparisons are
//!   strict.
//! - `$`, "dollars", "USD" mean the default quote asset when it is a dollar stablecoin (USDT,
//!   USDC, FDUSD, …); otherwise which dollar is asked back. `€`, "euros" mean `EUR`.
//! - The quote asset is, in this order: the explicit one ("with USDC", `ETH/BTC`, `ETHBTC`), the
//!   currency of a quote amount ("100 USDC of ETH"), the currency of the limit or trigger price
//!   ("at 0.05 BTC", "below 40000 €"), else [`ParseOptions::default_quote`]; every currency the
//!   message mentions must agree with it, or the quote is asked back.
//! - "of" after an amount names the bought asset ("100 USDT of SOL": spend 100 USDT on SOL);
//!   "in"/"for"/"with" after the asset name the quote ("sell 1 ETH in BTC": `ETHBTC`).
//! - A stop loss or take profit in percent is relative to the reference price the executor
//!   resolves (the entry price, or the price at confirmation); it sells the whole position
//!   unless an amount is given, at market. "stop loss at 140" becomes a sell at market when the
//!   last price is at or below 140.
//! - "cancel all BTC orders" cancels the orders of `BTC` + the default quote (or the explicit
//!   pair); "cancel all" cancels every order.

use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::OrderKind;
use crate::model::{Interval, Side, Symbol};

/// Longest message accepted, in characters.
pub const MAX_CHARS: usize = 280;

/// Most significant digits a number may have.
pub const MAX_SIGNIFICANT_DIGITS: usize = 28;

/// RSI period when none is given.
pub const DEFAULT_RSI_PERIOD: u32 = 14;

/// Longest number token, in characters (digits and separators), before it is read at all.
const MAX_NUMBER_CHARS: usize = 64;

/// Dollar stablecoins: the quote assets `$` and "dollars" may stand for.
const USD_QUOTES: [&str; 8] = [
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "USDP", "USD",
];

/// What the parser knows about assets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseOptions {
    /// Quote asset used when the message names none (`USDT`).
    pub default_quote: String,
    /// Assets that may be traded (upper case). An asset outside this list (and outside
    /// `quote_assets`) is asked back as unknown.
    pub known_assets: Vec<String>,
    /// Assets that may be the quote of a pair (`ETH/BTC`, "with USDC", "100 EUR of BTC").
    pub quote_assets: Vec<String>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        let strings = |xs: &[&str]| xs.iter().map(|s| (*s).to_string()).collect();
        ParseOptions {
            default_quote: "USDT".to_string(),
            known_assets: strings(&[
                "BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC",
                "TRX", "TON", "SHIB", "MATIC", "POL", "UNI", "ATOM", "XLM", "BCH", "APT", "ARB",
                "OP", "SUI", "PEPE", "FIL", "ICP", "WBTC",
            ]),
            quote_assets: strings(&[
                "USDT", "USDC", "FDUSD", "TUSD", "BUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY",
                "BRL", "JPY", "GBP",
            ]),
        }
    }
}

impl ParseOptions {
    fn is_quote(&self, asset: &str) -> bool {
        self.quote_assets
            .iter()
            .any(|q| q.eq_ignore_ascii_case(asset))
    }

    fn is_asset(&self, asset: &str) -> bool {
        self.is_quote(asset)
            || self
                .known_assets
                .iter()
                .any(|a| a.eq_ignore_ascii_case(asset))
    }

    fn fallback_quote(&self) -> String {
        self.default_quote.trim().to_ascii_uppercase()
    }
}

/// The result of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Parsed {
    /// A command to show back ([`Command::describe`]) and execute once confirmed.
    Command(Command),
    /// Something to ask the user before anything can be done.
    Ask(Question),
    /// The message is refused.
    Refused(Refusal),
}

impl Parsed {
    /// The command, when the message parsed to one.
    pub fn command(&self) -> Option<&Command> {
        match self {
            Parsed::Command(c) => Some(c),
            Parsed::Ask(_) | Parsed::Refused(_) => None,
        }
    }
}

/// A question asked back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// What the question is about.
    pub about: Subject,
    /// The question, in English, to show to the user.
    pub text: String,
}

/// What a [`Question`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// Buy or sell.
    Side,
    /// Which asset (missing, unknown or conflicting).
    Asset,
    /// How much.
    Amount,
    /// A limit or stop price (missing, conflicting, or a bare number).
    Price,
    /// The condition of the order (direction, conflicting conditions, limit or trigger).
    Trigger,
    /// The candle interval of an indicator condition.
    Interval,
    /// A number that cannot be read, or reads differently in English and Spanish.
    Number,
    /// The quote asset (not a quote asset, conflicting quotes, which dollar).
    Quote,
    /// A word or sign that is not part of the grammar.
    Wording,
    /// More than one command, or a command that does not go with another.
    Command,
    /// The message was a question; the parsed command is described in the question.
    Confirmation,
}

/// A refusal and its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Why, as a code.
    pub reason: RefusalReason,
    /// Why, in English, to show to the user.
    pub text: String,
}

/// Why a message is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// Nothing but spaces.
    Empty,
    /// Longer than [`MAX_CHARS`] characters.
    TooLong,
    /// SQL, shell or markup injection patterns and metacharacters.
    Injection,
    /// Characters outside the order alphabet (emoji, invisible, text-direction, other scripts).
    Characters,
    /// A zero or negative number.
    NonPositive,
    /// A number too long or too precise to be meant, or in exponent notation.
    AbsurdNumber,
    /// A value outside its range (fraction over 100 %, stop loss of 100 % or more, RSI level).
    OutOfRange,
    /// A negated order ("don't buy", "no vendas").
    Negation,
    /// A feature text orders do not offer.
    Unsupported,
    /// Not an order at all.
    NotAnOrder,
}

/// A parsed text command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Place one order.
    Order(TextOrder),
    /// Cancel the open orders of one symbol, or every open order.
    Cancel {
        /// The symbol whose orders are cancelled; `None` cancels every order.
        symbol: Option<Symbol>,
    },
}

/// One order read from text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextOrder {
    /// Buy or sell.
    pub side: Side,
    /// The pair: `base` followed by `quote`.
    pub symbol: Symbol,
    /// The traded asset (`BTC`).
    pub base: String,
    /// The quote asset prices and quote amounts are in (`USDT`).
    pub quote: String,
    /// How much.
    pub amount: Amount,
    /// Market or limit.
    pub kind: OrderKind,
    /// When the order is to be placed; `None` places it at once.
    pub trigger: Option<Trigger>,
}

/// How much of the base asset an order trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Amount {
    /// A quantity of the base asset.
    Base {
        /// Quantity, base asset.
        qty: Decimal,
    },
    /// A value in the quote asset; the quantity follows from the price at execution.
    Quote {
        /// Value, quote asset.
        notional: Decimal,
    },
    /// A fraction of the current position in the base asset, resolved by the executor.
    FractionOfPosition {
        /// In (0, 1]: 0.5 for half, 1 for all.
        fraction: Decimal,
    },
}

/// The condition that places an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// The last price is at or below `price`.
    PriceAtOrBelow {
        /// Price, quote asset.
        price: Decimal,
    },
    /// The last price is at or above `price`.
    PriceAtOrAbove {
        /// Price, quote asset.
        price: Decimal,
    },
    /// An indicator on closed candles of `interval` compares to `value` (strictly).
    Indicator {
        /// Which indicator.
        indicator: IndicatorRef,
        /// Candle interval.
        interval: Interval,
        /// Above or below.
        op: Comparison,
        /// Level.
        value: Decimal,
    },
    /// Stop loss: the last price falls `pct` percent below the reference price (the entry, or
    /// the price at confirmation). In (0, 100).
    StopLossPct {
        /// Percent, 5 for 5 %.
        pct: Decimal,
    },
    /// Take profit: the last price rises `pct` percent above the reference price. Positive.
    TakeProfitPct {
        /// Percent, 10 for 10 %.
        pct: Decimal,
    },
}

/// An indicator a condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum IndicatorRef {
    /// Wilder's RSI.
    Rsi {
        /// Period, in candles (14 unless given).
        period: u32,
    },
}

/// A strict comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Strictly greater than the level.
    Above,
    /// Strictly less than the level.
    Below,
}

impl Command {
    /// A canonical English sentence describing the command, to show back for confirmation; it
    /// parses back to the same command with the default options (for the assets and quotes they
    /// know), e.g. "BUY 0.1 BTCUSDT at market when the last price is at or below 45000".
    pub fn describe(&self) -> String {
        match self {
            Command::Cancel { symbol: None } => "CANCEL all orders".to_string(),
            Command::Cancel { symbol: Some(s) } => format!("CANCEL all {s} orders"),
            Command::Order(o) => o.describe(),
        }
    }
}

impl TextOrder {
    /// A canonical English sentence describing the order (see [`Command::describe`]).
    pub fn describe(&self) -> String {
        let side = match self.side {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        let amount = match self.amount {
            Amount::Base { qty } => format!("{} {}", num(qty), self.symbol),
            Amount::Quote { notional } => {
                format!("{} {} of {}", num(notional), self.quote, self.symbol)
            }
            Amount::FractionOfPosition { fraction } if fraction == Decimal::ONE => {
                format!("all of the {} position", self.symbol)
            }
            Amount::FractionOfPosition { fraction } => {
                match fraction.checked_mul(Decimal::ONE_HUNDRED) {
                    Some(pct) => format!("{}% of the {} position", num(pct), self.symbol),
                    None => format!("{} times the {} position", num(fraction), self.symbol),
                }
            }
        };
        let kind = match self.kind {
            OrderKind::Market => "at market".to_string(),
            OrderKind::Limit { price } => format!("as a limit order at {}", num(price)),
        };
        let trigger = match self.trigger {
            None => String::new(),
            Some(Trigger::PriceAtOrBelow { price }) => {
                format!(" when the last price is at or below {}", num(price))
            }
            Some(Trigger::PriceAtOrAbove { price }) => {
                format!(" when the last price is at or above {}", num(price))
            }
            Some(Trigger::Indicator {
                indicator: IndicatorRef::Rsi { period },
                interval,
                op,
                value,
            }) => {
                let op = match op {
                    Comparison::Above => "above",
                    Comparison::Below => "below",
                };
                format!(
                    " when RSI({period}) on {} candles is {op} {}",
                    interval.label(),
                    num(value)
                )
            }
            Some(Trigger::StopLossPct { pct }) => {
                format!(" with a stop loss {}% below the reference price", num(pct))
            }
            Some(Trigger::TakeProfitPct { pct }) => {
                format!(
                    " with a take profit {}% above the reference price",
                    num(pct)
                )
            }
        };
        format!("{side} {amount} {kind}{trigger}")
    }
}

fn num(d: Decimal) -> String {
    d.normalize().to_string()
}

/// Parses one text message (see the module documentation for the grammar).
pub fn parse(text: &str, opts: &ParseOptions) -> Parsed {
    match parse_command(text, opts) {
        Ok((cmd, false)) => Parsed::Command(cmd),
        Ok((cmd, true)) => Parsed::Ask(Question {
            about: Subject::Confirmation,
            text: format!(
                "that reads as a question; did you mean \"{}\"? Send it as an order to go ahead",
                cmd.describe()
            ),
        }),
        Err(stop) => stop.into(),
    }
}

/// Why parsing stopped short of a command: the final outcome, a question or a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stop {
    Ask(Question),
    Refused(Refusal),
}

impl From<Stop> for Parsed {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Ask(q) => Parsed::Ask(q),
            Stop::Refused(r) => Parsed::Refused(r),
        }
    }
}

/// Internal result.
type R<T> = Result<T, Stop>;

fn ask<T>(about: Subject, text: impl Into<String>) -> R<T> {
    Err(Stop::Ask(Question {
        about,
        text: text.into(),
    }))
}

fn refuse<T>(reason: RefusalReason, text: impl Into<String>) -> R<T> {
    Err(Stop::Refused(Refusal {
        reason,
        text: text.into(),
    }))
}

fn parse_command(text: &str, opts: &ParseOptions) -> R<(Command, bool)> {
    preflight(text)?;
    let raws = tokenize(text)?;
    let (lexed, lang) = lex(&raws);
    let (toks, question) = resolve(&lexed, lang, opts)?;
    let cmd = if toks.iter().any(|t| matches!(t, Tok::Kw(Kw::Cancel))) {
        parse_cancel(&toks, opts)?
    } else {
        parse_order(&toks, opts)?
    };
    Ok((cmd, question))
}

// ---------------------------------------------------------------------------------------------
// Preflight
// ---------------------------------------------------------------------------------------------

/// Substrings (of the lower-cased text) that mark an injection attempt.
const INJECTION_PATTERNS: [&str; 19] = [
    "drop table",
    "drop database",
    "delete from",
    "insert into",
    "union select",
    "truncate table",
    "xp_cmdshell",
    "--",
    "/*",
    "*/",
    "$(",
    "${",
    "rm -rf",
    "<script",
    "javascript:",
    "../",
    "%00",
    "%27",
    "%3c",
];

/// Shell, SQL and markup metacharacters.
const META_CHARS: [char; 14] = [
    ';', '|', '&', '`', '\\', '{', '}', '*', '[', ']', '"', '^', '~', '#',
];

const SPANISH_LETTERS: &str = "áéíóúüñÁÉÍÓÚÜÑ";

fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || SPANISH_LETTERS.contains(c)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{a0}')
}

fn is_sep(c: char) -> bool {
    c == '.' || c == ','
}

fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || is_letter(c)
        || is_space(c)
        || ".,%$€/-()?!':@¿¡<>=\u{2019}".contains(c)
}

fn describe_char(c: char) -> String {
    let cp = u32::from(c);
    let kind = match cp {
        0x200B..=0x200D | 0x2060 | 0xFEFF | 0x00AD | 0x180E => {
            "an invisible (zero-width) character"
        }
        0x200E | 0x200F | 0x061C | 0x202A..=0x202E | 0x2066..=0x2069 => {
            "a text-direction control character"
        }
        _ if c.is_control() => "a control character",
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0xFE00..=0xFE0F => "an emoji",
        _ => "a character outside the order alphabet",
    };
    format!("{kind} (U+{cp:04X})")
}

fn preflight(text: &str) -> R<()> {
    if text.trim().is_empty() {
        return refuse(RefusalReason::Empty, "the message is empty");
    }
    let n = text.chars().count();
    if n > MAX_CHARS {
        return refuse(
            RefusalReason::TooLong,
            format!("the message has {n} characters; an order fits in {MAX_CHARS}"),
        );
    }
    let lower = text.to_lowercase();
    if let Some(p) = INJECTION_PATTERNS.iter().find(|p| lower.contains(*p)) {
        return refuse(
            RefusalReason::Injection,
            format!("the message contains \"{p}\", which is not part of any order"),
        );
    }
    if let Some(c) = text.chars().find(|c| META_CHARS.contains(c)) {
        return refuse(
            RefusalReason::Injection,
            format!("the character '{c}' is not part of any order"),
        );
    }
    let chars: Vec<char> = text.chars().collect();
    let markup = chars
        .windows(2)
        .any(|w| matches!(w, ['<', n] if n.is_alphabetic() || *n == '/' || *n == '!'));
    if markup {
        return refuse(RefusalReason::Injection, "markup is not part of any order");
    }
    if let Some(c) = chars.iter().copied().find(|c| !allowed_char(*c)) {
        return refuse(
            RefusalReason::Characters,
            format!(
                "the message contains {}; write the order with letters, digits and . , % $ €",
                describe_char(c)
            ),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Below,
    Above,
}

#[derive(Debug, Clone, PartialEq)]
enum Raw {
    /// A word: `folded` is lower case without accents.
    Word {
        folded: String,
        orig: String,
    },
    /// Digits and separators as written; `k` when a `k` (thousands) was glued to it.
    Number {
        raw: String,
        k: bool,
    },
    Interval(Interval),
    Percent,
    Dollar,
    Euro,
    At,
    Slash,
    Hyphen,
    Question,
    Cmp(Dir),
}

fn fold(word: &str) -> String {
    word.chars()
        .map(|c| match c {
            'á' | 'Á' => 'a',
            'é' | 'É' => 'e',
            'í' | 'Í' => 'i',
            'ó' | 'Ó' => 'o',
            'ú' | 'Ú' | 'ü' | 'Ü' => 'u',
            'ñ' | 'Ñ' => 'n',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(24).collect();
    if s.chars().count() > 24 {
        out.push('…');
    }
    out
}

fn tokenize(text: &str) -> R<Vec<Raw>> {
    let cs: Vec<char> = text
        .chars()
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect();
    let at = |k: usize| cs.get(k).copied();
    let digit_at = |k: usize| at(k).is_some_and(|c| c.is_ascii_digit());
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let prev = i.checked_sub(1).and_then(at);
        let next = at(i + 1);
        if is_space(c) {
            i += 1;
            continue;
        }
        let starts_number = c.is_ascii_digit()
            || (is_sep(c) && digit_at(i + 1) && !prev.is_some_and(|p| p.is_ascii_digit()));
        if starts_number {
            let mut raw = String::new();
            while let Some(ch) = at(i) {
                if ch.is_ascii_digit() || (is_sep(ch) && digit_at(i + 1)) {
                    raw.push(ch);
                    i += 1;
                } else {
                    break;
                }
            }
            if raw.len() > MAX_NUMBER_CHARS {
                return refuse(
                    RefusalReason::AbsurdNumber,
                    format!("a number of {} characters is not an amount", raw.len()),
                );
            }
            let letters_start = i;
            let mut letters = String::new();
            while let Some(ch) = at(i).filter(char::is_ascii_alphabetic) {
                letters.push(ch);
                i += 1;
            }
            if letters.is_empty() {
                out.push(Raw::Number { raw, k: false });
                continue;
            }
            let lower = letters.to_ascii_lowercase();
            let plain = raw.chars().all(|c| c.is_ascii_digit());
            if lower == "e" && at(i).is_some_and(|n| n.is_ascii_digit() || n == '+' || n == '-') {
                return refuse(
                    RefusalReason::AbsurdNumber,
                    "exponent notation (like 1e9) is not accepted; write the number in full",
                );
            }
            if lower == "k" {
                out.push(Raw::Number { raw, k: true });
                continue;
            }
            if plain && letters == "M" {
                return ask(
                    Subject::Number,
                    format!("what is {raw}M: {raw} million, {raw} minutes or {raw} months?"),
                );
            }
            if plain {
                if let Ok(iv) = format!("{raw}{lower}").parse::<Interval>() {
                    out.push(Raw::Interval(iv));
                    continue;
                }
            }
            out.push(Raw::Number { raw, k: false });
            // The letters are read again, as a word ("0.1btc").
            i = letters_start;
            continue;
        }
        if is_letter(c) {
            let mut orig = String::new();
            while let Some(ch) = at(i) {
                let inner_quote = ch == '\''
                    && orig.chars().last().is_some_and(is_letter)
                    && at(i + 1).is_some_and(is_letter);
                if is_letter(ch) || ch.is_ascii_digit() || inner_quote {
                    orig.push(ch);
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Raw::Word {
                folded: fold(&orig),
                orig,
            });
            continue;
        }
        i += 1;
        match c {
            '%' => out.push(Raw::Percent),
            // A cashtag ($BTC) is the asset itself.
            '$' if next.is_some_and(is_letter) => {}
            '$' => out.push(Raw::Dollar),
            '€' => out.push(Raw::Euro),
            '@' => out.push(Raw::At),
            '/' => out.push(Raw::Slash),
            '-' => {
                let number_next = digit_at(i) || (next.is_some_and(is_sep) && digit_at(i + 1));
                if number_next && !prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
                    return refuse(
                        RefusalReason::NonPositive,
                        "negative numbers are not accepted: amounts and prices are positive",
                    );
                }
                out.push(Raw::Hyphen);
            }
            '?' | '¿' => out.push(Raw::Question),
            '<' | '>' | '=' => {
                let mut op = String::from(c);
                if let Some(n2) = next.filter(|n| matches!(n, '<' | '>' | '=')) {
                    op.push(n2);
                    i += 1;
                }
                let dir = match op.as_str() {
                    "<" | "<=" | "=<" => Dir::Below,
                    ">" | ">=" | "=>" => Dir::Above,
                    _ => {
                        return refuse(
                            RefusalReason::Injection,
                            format!("\"{op}\" is not part of any order"),
                        )
                    }
                };
                out.push(Raw::Cmp(dir));
            }
            '.' | ',' | '!' | '¡' | ':' | '(' | ')' => {}
            '\'' => {
                return refuse(
                    RefusalReason::Injection,
                    "quotes are not part of any order (apostrophes inside words are fine)",
                )
            }
            _ => {
                return refuse(
                    RefusalReason::Characters,
                    format!("the message contains {}", describe_char(c)),
                )
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Phrases
// ---------------------------------------------------------------------------------------------

/// Keywords (one per phrase of the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    Buy,
    Sell,
    /// Sell, the whole position unless an amount is given.
    Close,
    Cancel,
    All,
    Half,
    Quarter,
    My,
    /// of, de, worth of.
    Of,
    /// in, on, en.
    In,
    /// for, por, para.
    For,
    /// with, con, using, against.
    With,
    At,
    Limit,
    Market,
    When,
    Below,
    Above,
    /// A verb of falling (drops, baja).
    Down,
    /// A verb of rising (rises, sube).
    Up,
    /// A verb without direction (is, goes, crosses).
    Move,
    /// reaches, hits, llega a: no direction.
    Reaches,
    To,
    Price,
    Rsi,
    StopLoss,
    TakeProfit,
    RefBelow,
    RefAbove,
    RefAny,
    Orders,
    Negation,
    Conj,
    Unsupported(&'static str),
    Filler,
    PercentWord,
    DollarWord,
    EuroWord,
    Unit(char),
    IntervalWord(&'static str),
    Thousand,
}

/// Language of a phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L {
    E,
    S,
    N,
}

/// Language of a message, from its phrases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    En,
    Es,
    Unknown,
}

/// The phrase table: words are folded (lower case, no accents); the longest match wins.
const PHRASES: &[(&str, Kw, L)] = &[
    // Sides.
    ("buy", Kw::Buy, L::E),
    ("purchase", Kw::Buy, L::E),
    ("compra", Kw::Buy, L::S),
    ("compre", Kw::Buy, L::S),
    ("comprar", Kw::Buy, L::S),
    ("compro", Kw::Buy, L::S),
    ("comprame", Kw::Buy, L::S),
    ("comprad", Kw::Buy, L::S),
    ("sell", Kw::Sell, L::E),
    ("vende", Kw::Sell, L::S),
    ("vender", Kw::Sell, L::S),
    ("vendo", Kw::Sell, L::S),
    ("venda", Kw::Sell, L::S),
    ("vended", Kw::Sell, L::S),
    ("close", Kw::Close, L::E),
    ("liquidate", Kw::Close, L::E),
    ("cierra", Kw::Close, L::S),
    ("cerrar", Kw::Close, L::S),
    ("liquida", Kw::Close, L::S),
    ("liquidar", Kw::Close, L::S),
    ("cancel", Kw::Cancel, L::E),
    ("cancela", Kw::Cancel, L::S),
    ("cancelar", Kw::Cancel, L::S),
    ("anula", Kw::Cancel, L::S),
    ("anular", Kw::Cancel, L::S),
    // Amounts.
    ("all", Kw::All, L::E),
    ("everything", Kw::All, L::E),
    ("entire", Kw::All, L::E),
    ("whole", Kw::All, L::E),
    ("todo", Kw::All, L::S),
    ("toda", Kw::All, L::S),
    ("todos", Kw::All, L::S),
    ("todas", Kw::All, L::S),
    ("half", Kw::Half, L::E),
    ("mitad", Kw::Half, L::S),
    ("quarter", Kw::Quarter, L::E),
    ("cuarto", Kw::Quarter, L::S),
    ("my", Kw::My, L::E),
    ("mi", Kw::My, L::S),
    ("mis", Kw::My, L::S),
    // Connectors.
    ("of", Kw::Of, L::E),
    ("worth of", Kw::Of, L::E),
    ("worth", Kw::Of, L::E),
    ("de", Kw::Of, L::S),
    ("del", Kw::Of, L::S),
    ("in", Kw::In, L::E),
    ("on", Kw::In, L::E),
    ("en", Kw::In, L::S),
    ("for", Kw::For, L::E),
    ("por", Kw::For, L::S),
    ("para", Kw::For, L::S),
    ("with", Kw::With, L::E),
    ("using", Kw::With, L::E),
    ("against", Kw::With, L::E),
    ("con", Kw::With, L::S),
    ("usando", Kw::With, L::S),
    ("contra", Kw::With, L::S),
    ("at", Kw::At, L::E),
    ("al", Kw::At, L::S),
    ("to", Kw::To, L::E),
    // Kinds.
    ("limit", Kw::Limit, L::E),
    ("limite", Kw::Limit, L::S),
    ("market", Kw::Market, L::E),
    ("mercado", Kw::Market, L::S),
    // Conditions.
    ("when", Kw::When, L::E),
    ("if", Kw::When, L::E),
    ("once", Kw::When, L::E),
    ("as soon as", Kw::When, L::E),
    ("si", Kw::When, L::S),
    ("cuando", Kw::When, L::S),
    ("en cuanto", Kw::When, L::S),
    ("apenas", Kw::When, L::S),
    ("below", Kw::Below, L::E),
    ("under", Kw::Below, L::E),
    ("beneath", Kw::Below, L::E),
    ("less than", Kw::Below, L::E),
    ("lower than", Kw::Below, L::E),
    ("at or below", Kw::Below, L::E),
    ("debajo de", Kw::Below, L::S),
    ("por debajo de", Kw::Below, L::S),
    ("menor que", Kw::Below, L::S),
    ("menor a", Kw::Below, L::S),
    ("menos de", Kw::Below, L::S),
    ("inferior a", Kw::Below, L::S),
    ("bajo", Kw::Below, L::S),
    ("above", Kw::Above, L::E),
    ("over", Kw::Above, L::E),
    ("more than", Kw::Above, L::E),
    ("greater than", Kw::Above, L::E),
    ("higher than", Kw::Above, L::E),
    ("at or above", Kw::Above, L::E),
    ("exceeds", Kw::Above, L::E),
    ("exceed", Kw::Above, L::E),
    ("surpasses", Kw::Above, L::E),
    ("encima de", Kw::Above, L::S),
    ("por encima de", Kw::Above, L::S),
    ("mayor que", Kw::Above, L::S),
    ("mayor a", Kw::Above, L::S),
    ("mas de", Kw::Above, L::S),
    ("superior a", Kw::Above, L::S),
    ("sobre", Kw::Above, L::S),
    ("supera", Kw::Above, L::S),
    ("supere", Kw::Above, L::S),
    ("pasa de", Kw::Above, L::S),
    ("drops", Kw::Down, L::E),
    ("drop", Kw::Down, L::E),
    ("falls", Kw::Down, L::E),
    ("fall", Kw::Down, L::E),
    ("dips", Kw::Down, L::E),
    ("dip", Kw::Down, L::E),
    ("sinks", Kw::Down, L::E),
    ("declines", Kw::Down, L::E),
    ("goes down", Kw::Down, L::E),
    ("comes down", Kw::Down, L::E),
    ("baja", Kw::Down, L::S),
    ("baje", Kw::Down, L::S),
    ("bajar", Kw::Down, L::S),
    ("cae", Kw::Down, L::S),
    ("caiga", Kw::Down, L::S),
    ("caer", Kw::Down, L::S),
    ("desciende", Kw::Down, L::S),
    ("descienda", Kw::Down, L::S),
    ("rises", Kw::Up, L::E),
    ("rise", Kw::Up, L::E),
    ("climbs", Kw::Up, L::E),
    ("climb", Kw::Up, L::E),
    ("jumps", Kw::Up, L::E),
    ("goes up", Kw::Up, L::E),
    ("pumps", Kw::Up, L::E),
    ("sube", Kw::Up, L::S),
    ("suba", Kw::Up, L::S),
    ("subir", Kw::Up, L::S),
    ("is", Kw::Move, L::E),
    ("goes", Kw::Move, L::E),
    ("go", Kw::Move, L::E),
    ("gets", Kw::Move, L::E),
    ("trades", Kw::Move, L::E),
    ("trading", Kw::Move, L::E),
    ("moves", Kw::Move, L::E),
    ("crosses", Kw::Move, L::E),
    ("cross", Kw::Move, L::E),
    ("breaks", Kw::Move, L::E),
    ("closes", Kw::Move, L::E),
    ("es", Kw::Move, L::S),
    ("esta", Kw::Move, L::S),
    ("cruza", Kw::Move, L::S),
    ("rompe", Kw::Move, L::S),
    ("pasa", Kw::Move, L::S),
    ("cotiza", Kw::Move, L::S),
    ("sea", Kw::Move, L::S),
    ("este", Kw::Move, L::S),
    ("reaches", Kw::Reaches, L::E),
    ("reach", Kw::Reaches, L::E),
    ("hits", Kw::Reaches, L::E),
    ("hit", Kw::Reaches, L::E),
    ("touches", Kw::Reaches, L::E),
    ("touch", Kw::Reaches, L::E),
    ("goes to", Kw::Reaches, L::E),
    ("gets to", Kw::Reaches, L::E),
    ("comes to", Kw::Reaches, L::E),
    ("llega a", Kw::Reaches, L::S),
    ("llegue a", Kw::Reaches, L::S),
    ("toca", Kw::Reaches, L::S),
    ("alcanza", Kw::Reaches, L::S),
    ("alcance", Kw::Reaches, L::S),
    ("price", Kw::Price, L::E),
    ("last price", Kw::Price, L::E),
    ("it", Kw::Price, L::E),
    ("it's", Kw::Price, L::E),
    ("its", Kw::Price, L::E),
    ("precio", Kw::Price, L::S),
    ("ultimo precio", Kw::Price, L::S),
    ("cotizacion", Kw::Price, L::S),
    ("rsi", Kw::Rsi, L::N),
    // Protective orders.
    ("stop loss", Kw::StopLoss, L::N),
    ("stoploss", Kw::StopLoss, L::N),
    ("sl", Kw::StopLoss, L::N),
    ("take profit", Kw::TakeProfit, L::N),
    ("takeprofit", Kw::TakeProfit, L::N),
    ("tp", Kw::TakeProfit, L::N),
    ("toma de ganancias", Kw::TakeProfit, L::S),
    ("tomar ganancias", Kw::TakeProfit, L::S),
    ("toma ganancias", Kw::TakeProfit, L::S),
    ("below the reference price", Kw::RefBelow, L::E),
    ("below the reference", Kw::RefBelow, L::E),
    ("below reference", Kw::RefBelow, L::E),
    ("below entry", Kw::RefBelow, L::E),
    ("below the entry", Kw::RefBelow, L::E),
    ("below the entry price", Kw::RefBelow, L::E),
    ("below my entry", Kw::RefBelow, L::E),
    ("under entry", Kw::RefBelow, L::E),
    ("under the entry", Kw::RefBelow, L::E),
    ("por debajo del precio de entrada", Kw::RefBelow, L::S),
    ("por debajo de la entrada", Kw::RefBelow, L::S),
    ("debajo de la entrada", Kw::RefBelow, L::S),
    ("bajo la entrada", Kw::RefBelow, L::S),
    ("above the reference price", Kw::RefAbove, L::E),
    ("above the reference", Kw::RefAbove, L::E),
    ("above reference", Kw::RefAbove, L::E),
    ("above entry", Kw::RefAbove, L::E),
    ("above the entry", Kw::RefAbove, L::E),
    ("above the entry price", Kw::RefAbove, L::E),
    ("above my entry", Kw::RefAbove, L::E),
    ("over entry", Kw::RefAbove, L::E),
    ("por encima del precio de entrada", Kw::RefAbove, L::S),
    ("por encima de la entrada", Kw::RefAbove, L::S),
    ("encima de la entrada", Kw::RefAbove, L::S),
    ("sobre la entrada", Kw::RefAbove, L::S),
    ("from entry", Kw::RefAny, L::E),
    ("from the entry", Kw::RefAny, L::E),
    ("from my entry", Kw::RefAny, L::E),
    ("from the entry price", Kw::RefAny, L::E),
    ("desde la entrada", Kw::RefAny, L::S),
    ("desde el precio de entrada", Kw::RefAny, L::S),
    // Cancel.
    ("orders", Kw::Orders, L::E),
    ("order", Kw::Orders, L::E),
    ("ordenes", Kw::Orders, L::S),
    ("orden", Kw::Orders, L::S),
    // Refused and asked back.
    ("don't", Kw::Negation, L::E),
    ("dont", Kw::Negation, L::E),
    ("do not", Kw::Negation, L::E),
    ("not", Kw::Negation, L::E),
    ("never", Kw::Negation, L::E),
    ("no", Kw::Negation, L::N),
    ("nunca", Kw::Negation, L::S),
    ("and", Kw::Conj, L::E),
    ("then", Kw::Conj, L::E),
    ("also", Kw::Conj, L::E),
    ("plus", Kw::Conj, L::E),
    ("y", Kw::Conj, L::S),
    ("luego", Kw::Conj, L::S),
    ("despues", Kw::Conj, L::S),
    ("tambien", Kw::Conj, L::S),
    ("macd", Kw::Unsupported("MACD conditions"), L::N),
    ("ema", Kw::Unsupported("moving-average conditions"), L::N),
    ("sma", Kw::Unsupported("moving-average conditions"), L::N),
    (
        "moving average",
        Kw::Unsupported("moving-average conditions"),
        L::E,
    ),
    (
        "media movil",
        Kw::Unsupported("moving-average conditions"),
        L::S,
    ),
    (
        "bollinger",
        Kw::Unsupported("Bollinger band conditions"),
        L::N,
    ),
    ("stoch", Kw::Unsupported("stochastic conditions"), L::N),
    ("stochastic", Kw::Unsupported("stochastic conditions"), L::E),
    ("atr", Kw::Unsupported("ATR conditions"), L::N),
    ("vwap", Kw::Unsupported("VWAP conditions"), L::N),
    ("volume", Kw::Unsupported("volume conditions"), L::E),
    ("volumen", Kw::Unsupported("volume conditions"), L::S),
    ("trailing", Kw::Unsupported("trailing stops"), L::N),
    ("short", Kw::Unsupported("short sales"), L::E),
    ("shortea", Kw::Unsupported("short sales"), L::S),
    ("leverage", Kw::Unsupported("leveraged orders"), L::E),
    ("apalancamiento", Kw::Unsupported("leveraged orders"), L::S),
    ("margin", Kw::Unsupported("margin orders"), L::E),
    ("margen", Kw::Unsupported("margin orders"), L::S),
    ("futures", Kw::Unsupported("futures orders"), L::E),
    ("futuros", Kw::Unsupported("futures orders"), L::S),
    ("perp", Kw::Unsupported("futures orders"), L::N),
    ("oco", Kw::Unsupported("OCO orders"), L::N),
    ("every", Kw::Unsupported("recurring orders"), L::E),
    ("cada", Kw::Unsupported("recurring orders"), L::S),
    ("dca", Kw::Unsupported("recurring orders"), L::N),
    // Fillers: politeness, articles, helper verbs.
    ("the", Kw::Filler, L::E),
    ("an", Kw::Filler, L::E),
    ("please", Kw::Filler, L::E),
    ("pls", Kw::Filler, L::E),
    ("plz", Kw::Filler, L::E),
    ("kindly", Kw::Filler, L::E),
    ("thanks", Kw::Filler, L::E),
    ("thank you", Kw::Filler, L::E),
    ("thx", Kw::Filler, L::E),
    ("i", Kw::Filler, L::E),
    ("i'd", Kw::Filler, L::E),
    ("want", Kw::Filler, L::E),
    ("wanna", Kw::Filler, L::E),
    ("would", Kw::Filler, L::E),
    ("like", Kw::Filler, L::E),
    ("can", Kw::Filler, L::E),
    ("could", Kw::Filler, L::E),
    ("you", Kw::Filler, L::E),
    ("set", Kw::Filler, L::E),
    ("place", Kw::Filler, L::E),
    ("put", Kw::Filler, L::E),
    ("create", Kw::Filler, L::E),
    ("make", Kw::Filler, L::E),
    ("now", Kw::Filler, L::E),
    ("right now", Kw::Filler, L::E),
    ("immediately", Kw::Filler, L::E),
    ("position", Kw::Filler, L::E),
    ("holdings", Kw::Filler, L::E),
    ("candles", Kw::Filler, L::E),
    ("candle", Kw::Filler, L::E),
    ("chart", Kw::Filler, L::E),
    ("timeframe", Kw::Filler, L::E),
    ("some", Kw::Filler, L::E),
    ("let's", Kw::Filler, L::E),
    ("lets", Kw::Filler, L::E),
    ("just", Kw::Filler, L::E),
    ("as", Kw::Filler, L::E),
    ("open", Kw::Filler, L::E),
    ("hey", Kw::Filler, L::E),
    ("hi", Kw::Filler, L::E),
    ("hello", Kw::Filler, L::E),
    ("ok", Kw::Filler, L::N),
    ("okay", Kw::Filler, L::E),
    ("me", Kw::Filler, L::N),
    ("el", Kw::Filler, L::S),
    ("la", Kw::Filler, L::S),
    ("los", Kw::Filler, L::S),
    ("las", Kw::Filler, L::S),
    ("lo", Kw::Filler, L::S),
    ("un", Kw::Filler, L::S),
    ("una", Kw::Filler, L::S),
    ("unos", Kw::Filler, L::S),
    ("unas", Kw::Filler, L::S),
    ("por favor", Kw::Filler, L::S),
    ("porfa", Kw::Filler, L::S),
    ("gracias", Kw::Filler, L::S),
    ("quiero", Kw::Filler, L::S),
    ("queria", Kw::Filler, L::S),
    ("quisiera", Kw::Filler, L::S),
    ("gustaria", Kw::Filler, L::S),
    ("puedes", Kw::Filler, L::S),
    ("podrias", Kw::Filler, L::S),
    ("pon", Kw::Filler, L::S),
    ("poner", Kw::Filler, L::S),
    ("coloca", Kw::Filler, L::S),
    ("colocar", Kw::Filler, L::S),
    ("crea", Kw::Filler, L::S),
    ("crear", Kw::Filler, L::S),
    ("haz", Kw::Filler, L::S),
    ("ahora", Kw::Filler, L::S),
    ("ya", Kw::Filler, L::S),
    ("inmediatamente", Kw::Filler, L::S),
    ("posicion", Kw::Filler, L::S),
    ("velas", Kw::Filler, L::S),
    ("vela", Kw::Filler, L::S),
    ("grafico", Kw::Filler, L::S),
    ("temporalidad", Kw::Filler, L::S),
    ("abiertas", Kw::Filler, L::S),
    ("pendientes", Kw::Filler, L::S),
    ("hola", Kw::Filler, L::S),
    // Units.
    ("percent", Kw::PercentWord, L::E),
    ("per cent", Kw::PercentWord, L::E),
    ("pct", Kw::PercentWord, L::E),
    ("por ciento", Kw::PercentWord, L::S),
    ("porciento", Kw::PercentWord, L::S),
    ("dollars", Kw::DollarWord, L::E),
    ("dollar", Kw::DollarWord, L::E),
    ("bucks", Kw::DollarWord, L::E),
    ("usd", Kw::DollarWord, L::N),
    ("dolares", Kw::DollarWord, L::S),
    ("dolar", Kw::DollarWord, L::S),
    ("euros", Kw::EuroWord, L::N),
    ("euro", Kw::EuroWord, L::N),
    ("thousand", Kw::Thousand, L::E),
    ("k", Kw::Thousand, L::N),
    ("mil", Kw::Thousand, L::S),
    ("hour", Kw::Unit('h'), L::E),
    ("hours", Kw::Unit('h'), L::E),
    ("hr", Kw::Unit('h'), L::E),
    ("hrs", Kw::Unit('h'), L::E),
    ("hora", Kw::Unit('h'), L::S),
    ("horas", Kw::Unit('h'), L::S),
    ("minute", Kw::Unit('m'), L::E),
    ("minutes", Kw::Unit('m'), L::E),
    ("min", Kw::Unit('m'), L::N),
    ("mins", Kw::Unit('m'), L::N),
    ("minuto", Kw::Unit('m'), L::S),
    ("minutos", Kw::Unit('m'), L::S),
    ("day", Kw::Unit('d'), L::E),
    ("days", Kw::Unit('d'), L::E),
    ("dia", Kw::Unit('d'), L::S),
    ("dias", Kw::Unit('d'), L::S),
    ("week", Kw::Unit('w'), L::E),
    ("weeks", Kw::Unit('w'), L::E),
    ("semana", Kw::Unit('w'), L::S),
    ("semanas", Kw::Unit('w'), L::S),
    ("hourly", Kw::IntervalWord("1h"), L::E),
    ("daily", Kw::IntervalWord("1d"), L::E),
    ("weekly", Kw::IntervalWord("1w"), L::E),
    ("diario", Kw::IntervalWord("1d"), L::S),
    ("diaria", Kw::IntervalWord("1d"), L::S),
    ("semanal", Kw::IntervalWord("1w"), L::S),
];

/// Asset names that stand for a ticker (used only when the ticker is known).
const ALIASES: [(&str, &str); 14] = [
    ("bitcoin", "BTC"),
    ("bitcoins", "BTC"),
    ("ethereum", "ETH"),
    ("ether", "ETH"),
    ("solana", "SOL"),
    ("dogecoin", "DOGE"),
    ("cardano", "ADA"),
    ("ripple", "XRP"),
    ("litecoin", "LTC"),
    ("polkadot", "DOT"),
    ("chainlink", "LINK"),
    ("avalanche", "AVAX"),
    ("tether", "USDT"),
    ("tron", "TRX"),
];

/// A lexed token: a keyword, or what the tokenizer made.
#[derive(Debug, Clone, PartialEq)]
enum Lx {
    Kw(Kw),
    Word { folded: String, orig: String },
    Num { raw: String, k: bool },
    Interval(Interval),
    Percent,
    Dollar,
    Euro,
    Slash,
    Hyphen,
    Question,
}

/// The longest phrase starting at word `i`: its keyword, language and the next raw index.
/// Hyphens between the words of a phrase are skipped ("stop-loss").
fn match_phrase(raws: &[Raw], i: usize) -> Option<(Kw, L, usize)> {
    let mut best: Option<(Kw, L, usize, usize)> = None;
    for &(phrase, kw, lang) in PHRASES {
        let mut j = i;
        let mut words = 0;
        let mut matched = true;
        for w in phrase.split(' ') {
            if words > 0 {
                while matches!(raws.get(j), Some(Raw::Hyphen)) {
                    j += 1;
                }
            }
            match raws.get(j) {
                Some(Raw::Word { folded, .. }) if folded == w => {
                    j += 1;
                    words += 1;
                }
                _ => {
                    matched = false;
                    break;
                }
            }
        }
        if matched && best.is_none_or(|b| words > b.3) {
            best = Some((kw, lang, j, words));
        }
    }
    best.map(|(kw, lang, j, _)| (kw, lang, j))
}

fn lex(raws: &[Raw]) -> (Vec<Lx>, Lang) {
    let mut out = Vec::new();
    let (mut en, mut es) = (0usize, 0usize);
    let mut i = 0;
    while let Some(r) = raws.get(i) {
        match r {
            Raw::Word { folded, orig } => {
                // Spanish "a" before a price or "mercado" is "at"; otherwise an English article.
                if folded == "a" {
                    let at = match raws.get(i + 1) {
                        Some(Raw::Number { .. } | Raw::Dollar | Raw::Euro) => true,
                        Some(Raw::Word { folded, .. }) => folded == "mercado",
                        _ => false,
                    };
                    out.push(Lx::Kw(if at { Kw::At } else { Kw::Filler }));
                    i += 1;
                    continue;
                }
                // "rsi14"
                if let Some(p) = folded.strip_prefix("rsi") {
                    if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) {
                        out.push(Lx::Kw(Kw::Rsi));
                        out.push(Lx::Num {
                            raw: p.to_string(),
                            k: false,
                        });
                        i += 1;
                        continue;
                    }
                }
                if let Some((kw, lang, next)) = match_phrase(raws, i) {
                    match lang {
                        L::E => en += 1,
                        L::S => es += 1,
                        L::N => {}
                    }
                    out.push(Lx::Kw(kw));
                    i = next;
                    continue;
                }
                out.push(Lx::Word {
                    folded: folded.clone(),
                    orig: orig.clone(),
                });
            }
            Raw::Number { raw, k } => out.push(Lx::Num {
                raw: raw.clone(),
                k: *k,
            }),
            Raw::Interval(iv) => out.push(Lx::Interval(*iv)),
            Raw::Percent => out.push(Lx::Percent),
            Raw::Dollar => out.push(Lx::Dollar),
            Raw::Euro => out.push(Lx::Euro),
            Raw::At => out.push(Lx::Kw(Kw::At)),
            Raw::Slash => out.push(Lx::Slash),
            Raw::Hyphen => out.push(Lx::Hyphen),
            Raw::Question => out.push(Lx::Question),
            Raw::Cmp(Dir::Below) => out.push(Lx::Kw(Kw::Below)),
            Raw::Cmp(Dir::Above) => out.push(Lx::Kw(Kw::Above)),
        }
        i += 1;
    }
    let lang = match (en > 0, es > 0) {
        (true, false) => Lang::En,
        (false, true) => Lang::Es,
        _ => Lang::Unknown,
    };
    (out, lang)
}

// ---------------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------------

/// One reading of `raw` with `dec` as the decimal separator and `thou` as the thousands
/// separator, as a plain decimal string; `None` when `raw` is not valid under that reading.
fn reading(raw: &str, dec: char, thou: char) -> Option<String> {
    let mut groups: Vec<String> = vec![String::new()];
    let mut frac: Option<String> = None;
    for c in raw.chars() {
        if c.is_ascii_digit() {
            match frac.as_mut() {
                Some(f) => f.push(c),
                None => groups.last_mut()?.push(c),
            }
        } else if c == thou {
            if frac.is_some() {
                return None;
            }
            groups.push(String::new());
        } else if c == dec {
            if frac.is_some() {
                return None;
            }
            frac = Some(String::new());
        } else {
            return None;
        }
    }
    if let Some((first, rest)) = groups.split_first() {
        if !rest.is_empty()
            && (first.is_empty()
                || first.len() > 3
                || first.starts_with('0')
                || rest.iter().any(|g| g.len() != 3))
        {
            return None;
        }
    }
    let int = groups.concat();
    let int = if int.is_empty() { "0".to_string() } else { int };
    Some(match frac {
        Some(f) => format!("{int}.{f}"),
        None => int,
    })
}

fn to_decimal(s: &str, raw: &str) -> R<Decimal> {
    match Decimal::from_str_exact(s) {
        Ok(d) => Ok(d),
        Err(_) => refuse(
            RefusalReason::AbsurdNumber,
            format!("{} is too large or too precise to be an amount", clip(raw)),
        ),
    }
}

/// Reads a number token under the separator rule of the module documentation.
fn read_number(raw: &str, k: bool, lang: Lang) -> R<Decimal> {
    let significant = raw
        .chars()
        .filter(char::is_ascii_digit)
        .skip_while(|c| *c == '0')
        .count();
    if significant > MAX_SIGNIFICANT_DIGITS {
        return refuse(
            RefusalReason::AbsurdNumber,
            format!(
                "{} has {significant} significant digits; at most {MAX_SIGNIFICANT_DIGITS} are accepted",
                clip(raw)
            ),
        );
    }
    let dot = reading(raw, '.', ',')
        .map(|s| to_decimal(&s, raw))
        .transpose()?;
    let comma = reading(raw, ',', '.')
        .map(|s| to_decimal(&s, raw))
        .transpose()?;
    let value = match (dot, comma) {
        (Some(a), Some(b)) if a == b => a,
        (Some(a), Some(b)) => match lang {
            Lang::En => a,
            Lang::Es => b,
            Lang::Unknown => {
                return ask(
                    Subject::Number,
                    format!(
                        "does {raw} mean {} or {}? Write it without a thousands separator",
                        num(a),
                        num(b)
                    ),
                )
            }
        },
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => {
            return ask(
                Subject::Number,
                format!(
                    "I cannot read the number {}; write it like 45000 or 0.5",
                    clip(raw)
                ),
            )
        }
    };
    if k {
        thousand(value, raw)
    } else {
        Ok(value)
    }
}

fn thousand(v: Decimal, raw: &str) -> R<Decimal> {
    match v.checked_mul(Decimal::ONE_THOUSAND) {
        Some(x) => Ok(x),
        None => refuse(
            RefusalReason::AbsurdNumber,
            format!("{} thousand is too large to be an amount", clip(raw)),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Parser tokens
// ---------------------------------------------------------------------------------------------

/// A currency an amount or price is given in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cur {
    Asset(String),
    Dollar,
    Euro,
}

impl Cur {
    fn name(&self) -> String {
        match self {
            Cur::Asset(a) => a.clone(),
            Cur::Dollar => "dollars".to_string(),
            Cur::Euro => "euros".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Kw(Kw),
    Num(Decimal),
    Pct(Decimal),
    Money(Decimal, Cur),
    Asset(String),
    Pair(String, String),
    Interval(Interval),
    /// A word that is neither a keyword nor an asset (as written).
    Unknown(String),
    /// A sign or unit word out of place.
    Stray(String),
}

enum AssetHit {
    One(String),
    Pair(String, String),
}

fn lookup_asset(folded: &str, opts: &ParseOptions) -> Option<AssetHit> {
    if folded.is_empty() || !folded.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    if let Some((_, t)) = ALIASES.iter().find(|(a, _)| *a == folded) {
        if opts.is_asset(t) {
            return Some(AssetHit::One((*t).to_string()));
        }
    }
    let up = folded.to_ascii_uppercase();
    if opts.is_asset(&up) {
        return Some(AssetHit::One(up));
    }
    let mut quotes: Vec<String> = opts
        .quote_assets
        .iter()
        .map(|q| q.to_ascii_uppercase())
        .collect();
    quotes.sort_by_key(|q| std::cmp::Reverse(q.len()));
    quotes.into_iter().find_map(|q| {
        up.strip_suffix(q.as_str())
            .filter(|b| !b.is_empty() && opts.is_asset(b))
            .map(|b| AssetHit::Pair(b.to_string(), q.clone()))
    })
}

fn interval_of(v: Decimal, unit: char) -> R<Interval> {
    let label = format!("{}{unit}", num(v));
    match Interval::from_str(&label) {
        Ok(iv) => Ok(iv),
        Err(_) => ask(
            Subject::Interval,
            format!(
                "{label} is not a candle interval; use one of {}",
                Interval::labels().collect::<Vec<_>>().join(" ")
            ),
        ),
    }
}

/// A number at `lx[i]` with an optional "thousand"/"mil" after it: its value and next index.
fn number_at(lx: &[Lx], i: usize, lang: Lang) -> R<Option<(Decimal, usize)>> {
    let Some(Lx::Num { raw, k }) = lx.get(i) else {
        return Ok(None);
    };
    let mut v = read_number(raw, *k, lang)?;
    let mut next = i + 1;
    if matches!(lx.get(next), Some(Lx::Kw(Kw::Thousand))) {
        v = thousand(v, raw)?;
        next += 1;
    }
    if v.is_zero() {
        return refuse(
            RefusalReason::NonPositive,
            "zero is not an amount, a price or a level",
        );
    }
    Ok(Some((v.normalize(), next)))
}

/// Turns lexed tokens into parser tokens: numbers with their units, assets and pairs; fillers
/// dropped. Also says whether the message was phrased as a question.
fn resolve(lx: &[Lx], lang: Lang, opts: &ParseOptions) -> R<(Vec<Tok>, bool)> {
    let mut out = Vec::new();
    let mut question = false;
    let mut i = 0;
    while let Some(x) = lx.get(i) {
        if let (Some(Lx::Num { raw, .. }), Some(Lx::Num { raw: group, .. })) =
            (lx.get(i), lx.get(i + 1))
        {
            // "45 000": thousands grouped with a space.
            if group.len() == 3 && group.chars().all(|c| c.is_ascii_digit()) {
                return ask(
                    Subject::Number,
                    format!(
                        "is \"{} {group}\" one number? Write it without spaces ({}{group})",
                        clip(raw),
                        clip(raw)
                    ),
                );
            }
        }
        if let Some((v, next)) = number_at(lx, i, lang)? {
            i = next;
            match lx.get(i) {
                Some(Lx::Percent | Lx::Kw(Kw::PercentWord)) => {
                    out.push(Tok::Pct(v));
                    i += 1;
                }
                Some(Lx::Dollar | Lx::Kw(Kw::DollarWord)) => {
                    out.push(Tok::Money(v, Cur::Dollar));
                    i += 1;
                }
                Some(Lx::Euro | Lx::Kw(Kw::EuroWord)) => {
                    out.push(Tok::Money(v, Cur::Euro));
                    i += 1;
                }
                Some(Lx::Kw(Kw::Unit(u))) => {
                    out.push(Tok::Interval(interval_of(v, *u)?));
                    i += 1;
                }
                Some(Lx::Hyphen) => match lx.get(i + 1) {
                    Some(Lx::Kw(Kw::Unit(u))) => {
                        out.push(Tok::Interval(interval_of(v, *u)?));
                        i += 2;
                    }
                    _ => out.push(Tok::Num(v)),
                },
                _ => out.push(Tok::Num(v)),
            }
            continue;
        }
        i += 1;
        match x {
            Lx::Dollar | Lx::Euro => {
                let cur = if *x == Lx::Dollar {
                    Cur::Dollar
                } else {
                    Cur::Euro
                };
                match number_at(lx, i, lang)? {
                    Some((v, next)) => {
                        out.push(Tok::Money(v, cur));
                        i = next;
                    }
                    None => out.push(Tok::Stray(
                        if cur == Cur::Dollar { "$" } else { "€" }.to_string(),
                    )),
                }
            }
            Lx::Word { folded, orig } => match lookup_asset(folded, opts) {
                Some(AssetHit::One(a)) => {
                    let joined = matches!(lx.get(i), Some(Lx::Slash | Lx::Hyphen));
                    let second = match lx.get(i + 1) {
                        Some(Lx::Word { folded, .. }) if joined => lookup_asset(folded, opts),
                        _ => None,
                    };
                    match second {
                        Some(AssetHit::One(q)) if opts.is_quote(&q) && q != a => {
                            out.push(Tok::Pair(a, q));
                            i += 2;
                        }
                        Some(AssetHit::One(q)) if matches!(lx.get(i), Some(Lx::Slash)) => {
                            return ask(
                                Subject::Quote,
                                format!(
                                    "{a}/{q}: {q} is not a quote asset; quote assets are {}",
                                    opts.quote_assets.join(", ")
                                ),
                            );
                        }
                        _ => out.push(Tok::Asset(a)),
                    }
                }
                Some(AssetHit::Pair(b, q)) => out.push(Tok::Pair(b, q)),
                None => out.push(Tok::Unknown(clip(orig))),
            },
            Lx::Kw(Kw::Filler) | Lx::Hyphen => {}
            Lx::Kw(Kw::IntervalWord(label)) => match Interval::from_str(label) {
                Ok(iv) => out.push(Tok::Interval(iv)),
                Err(_) => out.push(Tok::Stray((*label).to_string())),
            },
            Lx::Kw(Kw::PercentWord) => out.push(Tok::Stray("percent".to_string())),
            Lx::Kw(Kw::Thousand) => out.push(Tok::Stray("thousand".to_string())),
            Lx::Kw(Kw::Unit(u)) => out.push(Tok::Stray(format!("a unit of time ({u})"))),
            Lx::Kw(kw) => out.push(Tok::Kw(*kw)),
            Lx::Num { raw, .. } => out.push(Tok::Stray(clip(raw))),
            Lx::Interval(iv) => out.push(Tok::Interval(*iv)),
            Lx::Percent => out.push(Tok::Stray("%".to_string())),
            Lx::Slash => out.push(Tok::Stray("/".to_string())),
            Lx::Question => question = true,
        }
    }
    Ok((out, question))
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// A price and the currency it was written in, if any.
#[derive(Debug, Clone, PartialEq)]
struct Px {
    value: Decimal,
    cur: Option<Cur>,
}

#[derive(Debug, Clone, PartialEq)]
enum AmtSpec {
    Base(Decimal),
    Quote(Decimal, Cur),
    Fraction(Decimal),
}

#[derive(Debug, Clone, PartialEq)]
enum KindSpec {
    Market,
    Limit(Option<Px>),
}

#[derive(Debug, Clone, PartialEq)]
enum Cond {
    Price {
        dir: Dir,
        px: Px,
    },
    Rsi {
        period: u32,
        interval: Interval,
        dir: Dir,
        value: Decimal,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProtectKind {
    StopLoss,
    TakeProfit,
}

impl ProtectKind {
    fn name(self) -> &'static str {
        match self {
            ProtectKind::StopLoss => "stop loss",
            ProtectKind::TakeProfit => "take profit",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum ProtectVal {
    Pct(Decimal),
    Price(Px),
}

#[derive(Debug, Clone, PartialEq)]
struct Protect {
    kind: ProtectKind,
    value: Option<ProtectVal>,
    reference: Option<Option<Dir>>,
}

/// The slots of an order being read.
#[derive(Debug, Default)]
struct Draft {
    side: Option<Side>,
    close: bool,
    base: Option<String>,
    quote: Option<Cur>,
    amount: Option<AmtSpec>,
    kind: Option<KindSpec>,
    cond: Option<Cond>,
    cond_asset: Option<(String, Option<String>)>,
    protect: Option<Protect>,
    unknown: Vec<String>,
    meaningful: bool,
}

fn side_word(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

impl Draft {
    fn set_side(&mut self, s: Side) -> R<()> {
        match self.side {
            Some(prev) if prev != s => {
                ask(Subject::Side, "buy or sell? The message says both; say one")
            }
            _ => {
                self.side = Some(s);
                Ok(())
            }
        }
    }

    fn set_base(&mut self, a: &str) -> R<()> {
        match &self.base {
            Some(b) if b != a => ask(Subject::Asset, format!("{b} or {a}? One asset per order")),
            _ => {
                self.base = Some(a.to_string());
                Ok(())
            }
        }
    }

    fn set_quote(&mut self, c: Cur, opts: &ParseOptions) -> R<()> {
        if let Cur::Asset(q) = &c {
            if !opts.is_quote(q) {
                return ask(
                    Subject::Quote,
                    format!(
                        "{q} is not a quote asset; quote assets are {}",
                        opts.quote_assets.join(", ")
                    ),
                );
            }
        }
        match &self.quote {
            Some(p) if *p != c => ask(
                Subject::Quote,
                format!(
                    "in {} or in {}? The message names two quotes",
                    p.name(),
                    c.name()
                ),
            ),
            _ => {
                self.quote = Some(c);
                Ok(())
            }
        }
    }

    fn set_amount(&mut self, a: AmtSpec) -> R<()> {
        if self.amount.is_some() {
            return ask(
                Subject::Amount,
                "the message gives two amounts; how much exactly?",
            );
        }
        self.amount = Some(a);
        Ok(())
    }

    fn set_kind(&mut self, k: KindSpec) -> R<()> {
        match (&self.kind, &k) {
            (None, _) | (Some(KindSpec::Limit(None)), KindSpec::Limit(_)) => {
                self.kind = Some(k);
                Ok(())
            }
            (Some(KindSpec::Market), KindSpec::Market) => Ok(()),
            (Some(KindSpec::Limit(Some(_))), KindSpec::Limit(None)) => Ok(()),
            (Some(KindSpec::Market), KindSpec::Limit(_))
            | (Some(KindSpec::Limit(_)), KindSpec::Market) => ask(
                Subject::Price,
                "at market or as a limit order? The message says both",
            ),
            (Some(KindSpec::Limit(Some(_))), KindSpec::Limit(Some(_))) => ask(
                Subject::Price,
                "the message gives two limit prices; which one?",
            ),
        }
    }

    fn set_protect(&mut self, kind: ProtectKind) -> R<()> {
        if let Some(p) = &self.protect {
            if p.kind != kind {
                return ask(
                    Subject::Command,
                    "a stop loss or a take profit? Send one per message",
                );
            }
            return Ok(());
        }
        self.protect = Some(Protect {
            kind,
            value: None,
            reference: None,
        });
        Ok(())
    }

    fn protect_waiting(&self) -> bool {
        self.protect.as_ref().is_some_and(|p| p.value.is_none())
    }

    fn set_protect_value(&mut self, v: ProtectVal) -> R<()> {
        match self.protect.as_mut() {
            Some(p) if p.value.is_none() => {
                p.value = Some(v);
                Ok(())
            }
            _ => ask(
                Subject::Price,
                "the message gives two levels for the stop; which one?",
            ),
        }
    }

    fn set_fraction(&mut self, f: Decimal) -> R<()> {
        self.set_amount(AmtSpec::Fraction(f))
    }
}

/// The asset or pair at `toks[j]`, skipping "my".
fn asset_at(toks: &[Tok], mut j: usize) -> Option<(String, Option<String>, usize)> {
    while matches!(toks.get(j), Some(Tok::Kw(Kw::My))) {
        j += 1;
    }
    match toks.get(j) {
        Some(Tok::Asset(a)) => Some((a.clone(), None, j + 1)),
        Some(Tok::Pair(b, q)) => Some((b.clone(), Some(q.clone()), j + 1)),
        _ => None,
    }
}

/// A price at `toks[j]`: a number, optionally followed by a quote asset, or money.
fn read_px(toks: &[Tok], j: usize, base: Option<&str>, opts: &ParseOptions) -> Option<(Px, usize)> {
    match toks.get(j) {
        Some(Tok::Money(v, c)) => Some((
            Px {
                value: *v,
                cur: Some(c.clone()),
            },
            j + 1,
        )),
        Some(Tok::Num(v)) => match toks.get(j + 1) {
            Some(Tok::Asset(a)) if opts.is_quote(a) && base != Some(a.as_str()) => Some((
                Px {
                    value: *v,
                    cur: Some(Cur::Asset(a.clone())),
                },
                j + 2,
            )),
            _ => Some((
                Px {
                    value: *v,
                    cur: None,
                },
                j + 1,
            )),
        },
        _ => None,
    }
}

fn is_connector(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Kw(Kw::Of | Kw::In | Kw::For | Kw::With | Kw::My | Kw::To | Kw::Orders)
    )
}

fn word_of(t: &Tok) -> String {
    match t {
        Tok::Unknown(w) | Tok::Stray(w) | Tok::Asset(w) => w.clone(),
        Tok::Pair(b, q) => format!("{b}{q}"),
        Tok::Num(v) | Tok::Pct(v) | Tok::Money(v, _) => num(*v),
        Tok::Interval(iv) => iv.label().to_string(),
        Tok::Kw(Kw::DollarWord) => "dollars".to_string(),
        Tok::Kw(Kw::EuroWord) => "euros".to_string(),
        Tok::Kw(k) => format!("{k:?}").to_lowercase(),
    }
}

fn parse_order(toks: &[Tok], opts: &ParseOptions) -> R<Command> {
    let mut d = Draft::default();
    let mut i = 0;
    while let Some(t) = toks.get(i) {
        if !matches!(t, Tok::Unknown(_) | Tok::Stray(_)) && !is_connector(t) {
            d.meaningful = true;
        }
        i = step(&mut d, toks, i, opts)?;
    }
    finish_order(d, opts)
}

/// Reads the token at `i` (and what belongs to it) into the draft; returns the next index.
fn step(d: &mut Draft, toks: &[Tok], i: usize, opts: &ParseOptions) -> R<usize> {
    let Some(t) = toks.get(i) else {
        return Ok(i + 1);
    };
    match t {
        Tok::Kw(Kw::Buy) => d.set_side(Side::Buy)?,
        Tok::Kw(Kw::Sell) => d.set_side(Side::Sell)?,
        Tok::Kw(Kw::Close) => {
            d.set_side(Side::Sell)?;
            d.close = true;
        }
        Tok::Num(n) => return on_number(d, toks, i, *n, opts),
        Tok::Money(v, c) => d.set_amount(AmtSpec::Quote(*v, c.clone()))?,
        Tok::Pct(p) => {
            match toks.get(i + 1) {
                Some(Tok::Kw(Kw::StopLoss)) => {
                    d.set_protect(ProtectKind::StopLoss)?;
                    d.set_protect_value(ProtectVal::Pct(*p))?;
                    return Ok(i + 2);
                }
                Some(Tok::Kw(Kw::TakeProfit)) => {
                    d.set_protect(ProtectKind::TakeProfit)?;
                    d.set_protect_value(ProtectVal::Pct(*p))?;
                    return Ok(i + 2);
                }
                _ => {}
            }
            if d.protect_waiting() {
                d.set_protect_value(ProtectVal::Pct(*p))?;
            } else if *p > Decimal::ONE_HUNDRED {
                return refuse(
                    RefusalReason::OutOfRange,
                    format!(
                        "{}% of a position is more than all of it; at most 100%",
                        num(*p)
                    ),
                );
            } else {
                d.set_fraction(*p / Decimal::ONE_HUNDRED)?;
            }
        }
        Tok::Kw(Kw::Half) => d.set_fraction(Decimal::new(5, 1))?,
        Tok::Kw(Kw::Quarter) => d.set_fraction(Decimal::new(25, 2))?,
        Tok::Kw(Kw::All) => d.set_fraction(Decimal::ONE)?,
        Tok::Asset(a) => d.set_base(a)?,
        Tok::Pair(b, q) => {
            d.set_base(b)?;
            d.set_quote(Cur::Asset(q.clone()), opts)?;
        }
        Tok::Kw(Kw::With) => return on_with(d, toks, i, opts),
        Tok::Kw(Kw::For | Kw::In) => return on_for(d, toks, i, opts),
        Tok::Kw(Kw::At) => return on_at(d, toks, i, opts),
        Tok::Kw(Kw::Limit) => {
            d.set_kind(KindSpec::Limit(None))?;
            let mut j = i + 1;
            while matches!(toks.get(j), Some(Tok::Kw(Kw::Price | Kw::Of | Kw::Orders))) {
                j += 1;
            }
            if let Some((px, next)) = read_px(toks, j, d.base.as_deref(), opts) {
                d.set_kind(KindSpec::Limit(Some(px)))?;
                return Ok(next);
            }
            return Ok(j);
        }
        Tok::Kw(Kw::Market) => {
            d.set_kind(KindSpec::Market)?;
            let mut j = i + 1;
            while matches!(toks.get(j), Some(Tok::Kw(Kw::Price | Kw::Orders))) {
                j += 1;
            }
            return Ok(j);
        }
        Tok::Kw(Kw::When) => return parse_condition(d, toks, i + 1, opts),
        Tok::Kw(Kw::Rsi) => return parse_condition(d, toks, i, opts),
        Tok::Interval(iv) => {
            if matches!(toks.get(i + 1), Some(Tok::Kw(Kw::Rsi))) {
                return parse_condition(d, toks, i, opts);
            }
            return ask(
                Subject::Wording,
                format!(
                    "what is {}? A candle interval only goes with an RSI condition (\"if the {} RSI is below 30\")",
                    iv.label(),
                    iv.label()
                ),
            );
        }
        Tok::Kw(Kw::Below | Kw::Above | Kw::Down | Kw::Up | Kw::Move | Kw::Reaches) => {
            return ask(
                Subject::Trigger,
                "a limit order or a trigger? Say \"at 45000\" for a limit order, or \"when it drops below 45000\" for a trigger",
            );
        }
        Tok::Kw(Kw::StopLoss) => d.set_protect(ProtectKind::StopLoss)?,
        Tok::Kw(Kw::TakeProfit) => d.set_protect(ProtectKind::TakeProfit)?,
        Tok::Kw(k @ (Kw::RefBelow | Kw::RefAbove | Kw::RefAny)) => {
            let dir = match k {
                Kw::RefBelow => Some(Dir::Below),
                Kw::RefAbove => Some(Dir::Above),
                _ => None,
            };
            match d.protect.as_mut() {
                Some(p) if matches!(p.value, Some(ProtectVal::Pct(_))) && p.reference.is_none() => {
                    p.reference = Some(dir);
                }
                _ => {
                    return ask(
                        Subject::Wording,
                        "\"below/above the entry\" only goes with a stop loss or take profit in percent (\"stop loss 5% below entry on SOL\")",
                    )
                }
            }
        }
        Tok::Kw(Kw::Price) => {
            // "buy BTC price 45000": a limit price said without "at".
            if let Some(Tok::Num(v) | Tok::Money(v, _)) = toks.get(i + 1) {
                return ask(
                    Subject::Price,
                    format!(
                        "a limit order at {}? Say \"at {}\", or \"when it drops below {}\" for a trigger",
                        num(*v),
                        num(*v),
                        num(*v)
                    ),
                );
            }
        }
        Tok::Kw(Kw::Of | Kw::My | Kw::To | Kw::Orders) => {}
        Tok::Kw(Kw::DollarWord | Kw::EuroWord) => {
            d.unknown.push(word_of(t));
        }
        Tok::Kw(Kw::Negation) => {
            return refuse(
                RefusalReason::Negation,
                "the message reads as a negation; say what to do, not what not to do",
            )
        }
        Tok::Kw(Kw::Conj) => {
            return ask(
                Subject::Command,
                "one command per message, please: which one first?",
            )
        }
        Tok::Kw(Kw::Unsupported(what)) => {
            return refuse(
                RefusalReason::Unsupported,
                format!("{what} are not supported by text orders"),
            )
        }
        Tok::Kw(Kw::Cancel) => {
            return ask(
                Subject::Command,
                "cancel orders or place one? One command per message",
            )
        }
        Tok::Kw(
            Kw::Filler | Kw::PercentWord | Kw::Thousand | Kw::Unit(_) | Kw::IntervalWord(_),
        ) => {}
        Tok::Unknown(w) | Tok::Stray(w) => d.unknown.push(w.clone()),
    }
    Ok(i + 1)
}

fn on_number(d: &mut Draft, toks: &[Tok], i: usize, n: Decimal, opts: &ParseOptions) -> R<usize> {
    match toks.get(i + 1) {
        Some(Tok::Asset(a)) => {
            // "100 USDT of SOL": an amount in the quote asset.
            if matches!(toks.get(i + 2), Some(Tok::Kw(Kw::Of))) {
                if let Some((b, q, next)) = asset_at(toks, i + 3) {
                    d.set_amount(AmtSpec::Quote(n, Cur::Asset(a.clone())))?;
                    d.set_base(&b)?;
                    if let Some(q) = q {
                        d.set_quote(Cur::Asset(q), opts)?;
                    }
                    return Ok(next);
                }
            }
            d.set_amount(AmtSpec::Base(n))?;
            d.set_base(a)?;
            Ok(i + 2)
        }
        Some(Tok::Pair(b, q)) => {
            d.set_amount(AmtSpec::Base(n))?;
            d.set_base(b)?;
            d.set_quote(Cur::Asset(q.clone()), opts)?;
            Ok(i + 2)
        }
        Some(Tok::Kw(Kw::StopLoss | Kw::TakeProfit)) => ask(
            Subject::Price,
            format!(
                "{}: {}% or at the price {}? Say \"{}%\" or \"at {}\"",
                num(n),
                num(n),
                num(n),
                num(n),
                num(n)
            ),
        ),
        _ => {
            if matches!(toks.get(i + 1), Some(Tok::Kw(Kw::Of))) {
                if let Some((b, q, next)) = asset_at(toks, i + 2) {
                    d.set_amount(AmtSpec::Base(n))?;
                    d.set_base(&b)?;
                    if let Some(q) = q {
                        d.set_quote(Cur::Asset(q), opts)?;
                    }
                    return Ok(next);
                }
            }
            if let Some(p) = d.protect.as_ref().filter(|p| p.value.is_none()) {
                return ask(
                    Subject::Price,
                    format!(
                        "{} {}: {}% or at the price {}? Say \"{} {}%\" or \"{} at {}\"",
                        p.kind.name(),
                        num(n),
                        num(n),
                        num(n),
                        p.kind.name(),
                        num(n),
                        p.kind.name(),
                        num(n)
                    ),
                );
            }
            if let Some(base) = d.base.as_deref().filter(|_| d.amount.is_none()) {
                // "buy BTC 45000": a quantity or a price?
                return ask(
                    Subject::Amount,
                    format!(
                        "{} {base}, or a price of {}? Say \"0.1 {base}\" for a quantity (number first) or \"at {}\" for a price",
                        num(n),
                        num(n),
                        num(n)
                    ),
                );
            }
            if d.amount.is_none() {
                d.set_amount(AmtSpec::Base(n))?;
                return Ok(i + 1);
            }
            ask(
                Subject::Number,
                format!(
                    "what is {}? For a limit price say \"at {}\", for a trigger \"when it drops below {}\"",
                    num(n),
                    num(n),
                    num(n)
                ),
            )
        }
    }
}

fn on_with(d: &mut Draft, toks: &[Tok], i: usize, opts: &ParseOptions) -> R<usize> {
    match toks.get(i + 1) {
        Some(Tok::Money(v, c)) => {
            d.set_amount(AmtSpec::Quote(*v, c.clone()))?;
            Ok(i + 2)
        }
        Some(Tok::Num(n)) => match toks.get(i + 2) {
            Some(Tok::Asset(a)) => {
                d.set_amount(AmtSpec::Quote(*n, Cur::Asset(a.clone())))?;
                Ok(i + 3)
            }
            _ => ask(
                Subject::Amount,
                format!("with {} what? Say \"with {} USDT\"", num(*n), num(*n)),
            ),
        },
        Some(Tok::Asset(a)) => {
            d.set_quote(Cur::Asset(a.clone()), opts)?;
            Ok(i + 2)
        }
        Some(Tok::Kw(Kw::DollarWord)) => {
            d.set_quote(Cur::Dollar, opts)?;
            Ok(i + 2)
        }
        Some(Tok::Kw(Kw::EuroWord)) => {
            d.set_quote(Cur::Euro, opts)?;
            Ok(i + 2)
        }
        _ => Ok(i + 1),
    }
}

fn on_for(d: &mut Draft, toks: &[Tok], i: usize, opts: &ParseOptions) -> R<usize> {
    match toks.get(i + 1) {
        Some(Tok::Money(v, c)) => {
            d.set_amount(AmtSpec::Quote(*v, c.clone()))?;
            Ok(i + 2)
        }
        Some(Tok::Asset(a)) => {
            match d.base.as_deref() {
                Some(b) if b != a => d.set_quote(Cur::Asset(a.clone()), opts)?,
                _ => d.set_base(a)?,
            }
            Ok(i + 2)
        }
        Some(Tok::Num(n)) => match toks.get(i + 2) {
            Some(Tok::Asset(a)) if d.base.as_deref().is_some_and(|b| b != a) => {
                d.set_amount(AmtSpec::Quote(*n, Cur::Asset(a.clone())))?;
                Ok(i + 3)
            }
            Some(Tok::Asset(_) | Tok::Pair(..) | Tok::Kw(Kw::Of)) => Ok(i + 1),
            _ => ask(
                Subject::Price,
                format!(
                    "for {}: is it the price per unit (\"at {}\") or the total (\"${} of …\")?",
                    num(*n),
                    num(*n),
                    num(*n)
                ),
            ),
        },
        Some(Tok::Kw(Kw::DollarWord)) => {
            d.set_quote(Cur::Dollar, opts)?;
            Ok(i + 2)
        }
        Some(Tok::Kw(Kw::EuroWord)) => {
            d.set_quote(Cur::Euro, opts)?;
            Ok(i + 2)
        }
        _ => Ok(i + 1),
    }
}

fn on_at(d: &mut Draft, toks: &[Tok], i: usize, opts: &ParseOptions) -> R<usize> {
    let mut j = i + 1;
    while matches!(toks.get(j), Some(Tok::Kw(Kw::Price | Kw::Of))) {
        j += 1;
    }
    if matches!(toks.get(j), Some(Tok::Kw(Kw::Market))) {
        d.set_kind(KindSpec::Market)?;
        j += 1;
        while matches!(toks.get(j), Some(Tok::Kw(Kw::Price | Kw::Orders))) {
            j += 1;
        }
        return Ok(j);
    }
    let Some((px, next)) = read_px(toks, j, d.base.as_deref(), opts) else {
        return ask(Subject::Price, "at what price?");
    };
    if d.protect_waiting() {
        d.set_protect_value(ProtectVal::Price(px))?;
    } else {
        d.set_kind(KindSpec::Limit(Some(px)))?;
    }
    Ok(next)
}

fn rsi_period(v: Decimal) -> R<u32> {
    match v.to_u32() {
        Some(p) if v.fract().is_zero() && (2..=500).contains(&p) => Ok(p),
        _ => refuse(
            RefusalReason::OutOfRange,
            format!(
                "an RSI period of {} is not valid; use a whole number from 2 to 500",
                num(v)
            ),
        ),
    }
}

/// Reads a condition starting at `start` (after "when"/"if", or at "RSI"): returns the index
/// after it.
fn parse_condition(d: &mut Draft, toks: &[Tok], start: usize, opts: &ParseOptions) -> R<usize> {
    if d.cond.is_some() {
        return ask(
            Subject::Trigger,
            "the message has two conditions; one condition per order",
        );
    }
    let mut j = start;
    let mut interval: Option<Interval> = None;
    let mut rsi: Option<u32> = None;
    let mut subject: Option<(String, Option<String>)> = None;
    // Subject: the price, an asset, or an RSI with its interval.
    loop {
        match toks.get(j) {
            Some(Tok::Interval(iv)) => {
                if interval.is_some_and(|x| x != *iv) {
                    return ask(
                        Subject::Interval,
                        "which candle interval? The message gives two",
                    );
                }
                interval = Some(*iv);
                j += 1;
            }
            Some(Tok::Kw(Kw::Rsi)) => {
                rsi = Some(DEFAULT_RSI_PERIOD);
                j += 1;
                if let Some(Tok::Num(p)) = toks.get(j) {
                    let period_follows = matches!(
                        toks.get(j + 1),
                        Some(
                            Tok::Interval(_)
                                | Tok::Kw(
                                    Kw::Of
                                        | Kw::In
                                        | Kw::Below
                                        | Kw::Above
                                        | Kw::Down
                                        | Kw::Up
                                        | Kw::Move
                                        | Kw::Reaches
                                )
                        )
                    );
                    if period_follows {
                        rsi = Some(rsi_period(*p)?);
                        j += 1;
                    }
                }
            }
            Some(Tok::Kw(Kw::Price | Kw::Of | Kw::In | Kw::For | Kw::My)) => j += 1,
            Some(Tok::Asset(a)) => {
                subject = Some((a.clone(), None));
                j += 1;
            }
            Some(Tok::Pair(b, q)) => {
                subject = Some((b.clone(), Some(q.clone())));
                j += 1;
            }
            Some(Tok::Kw(Kw::Unsupported(what))) => {
                return refuse(
                    RefusalReason::Unsupported,
                    format!("{what} are not supported by text orders"),
                )
            }
            _ => break,
        }
    }
    // Direction.
    let mut dir: Option<Dir> = None;
    let mut verb: Option<Dir> = None;
    loop {
        let set = |slot: &mut Option<Dir>, x: Dir| -> R<()> {
            if slot.is_some_and(|p| p != x) {
                return ask(Subject::Trigger, "above or below? The condition says both");
            }
            *slot = Some(x);
            Ok(())
        };
        match toks.get(j) {
            Some(Tok::Kw(Kw::Below)) => set(&mut dir, Dir::Below)?,
            Some(Tok::Kw(Kw::Above)) => set(&mut dir, Dir::Above)?,
            Some(Tok::Kw(Kw::Down)) => set(&mut verb, Dir::Below)?,
            Some(Tok::Kw(Kw::Up)) => set(&mut verb, Dir::Above)?,
            Some(Tok::Kw(Kw::Move | Kw::Of | Kw::At | Kw::To)) => {}
            Some(Tok::Kw(Kw::Reaches)) => {
                return ask(
                    Subject::Trigger,
                    "reaching a level from above or from below? Say \"drops below …\" or \"rises above …\"",
                )
            }
            _ => break,
        }
        j += 1;
    }
    // Value.
    let value = match toks.get(j) {
        Some(Tok::Pct(v)) if rsi.is_some() => Some((
            Px {
                value: *v,
                cur: None,
            },
            j + 1,
        )),
        Some(Tok::Pct(_)) => {
            return refuse(
                RefusalReason::Unsupported,
                "conditions on a percent move are not supported; give the price (\"when it drops below 45000\")",
            )
        }
        _ => read_px(toks, j, d.base.as_deref().or(subject.as_ref().map(|s| s.0.as_str())), opts),
    };
    let Some((px, mut next)) = value else {
        return ask(
            Subject::Trigger,
            "I could not read the condition; say e.g. \"when it drops below 45000\" or \"if the 1h RSI is below 30\"",
        );
    };
    let dir = match (dir, verb) {
        (Some(a), Some(b)) if a != b => {
            return ask(Subject::Trigger, "above or below? The condition says both")
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return ask(
                Subject::Trigger,
                format!(
                    "above or below {}? Say \"drops below {}\" or \"rises above {}\"",
                    num(px.value),
                    num(px.value),
                    num(px.value)
                ),
            )
        }
    };
    let cond = match rsi {
        Some(period) => {
            // "if RSI is below 30 on the 1h"
            let mut k = next;
            while matches!(toks.get(k), Some(Tok::Kw(Kw::Of | Kw::In))) {
                k += 1;
            }
            if let Some(Tok::Interval(iv)) = toks.get(k) {
                if interval.is_some_and(|x| x != *iv) {
                    return ask(
                        Subject::Interval,
                        "which candle interval? The message gives two",
                    );
                }
                interval = Some(*iv);
                next = k + 1;
            }
            let Some(interval) = interval else {
                return ask(
                    Subject::Interval,
                    "the RSI of which candles? Say e.g. \"if the 1h RSI is below 30\" (1m 5m 15m 1h 4h 1d …)",
                );
            };
            if px.cur.is_some() {
                return ask(
                    Subject::Trigger,
                    "an RSI level is a number from 0 to 100, not an amount of money; which level?",
                );
            }
            if px.value >= Decimal::ONE_HUNDRED {
                return refuse(
                    RefusalReason::OutOfRange,
                    format!(
                        "an RSI of {} never happens: RSI is between 0 and 100",
                        num(px.value)
                    ),
                );
            }
            Cond::Rsi {
                period,
                interval,
                dir,
                value: px.value,
            }
        }
        None => {
            if interval.is_some() {
                return ask(
                    Subject::Trigger,
                    "a candle interval only goes with an RSI condition; did you mean the RSI?",
                );
            }
            Cond::Price { dir, px }
        }
    };
    d.cond = Some(cond);
    if let Some(s) = subject {
        if d.cond_asset.is_some() {
            return ask(Subject::Trigger, "one condition per order");
        }
        d.cond_asset = Some(s);
    }
    Ok(next)
}

fn looks_like_ticker(w: &str) -> bool {
    let n = w.chars().count();
    (2..=10).contains(&n)
        && w.chars().all(|c| c.is_ascii_alphanumeric())
        && w.chars().any(|c| c.is_ascii_alphabetic())
}

fn unknown_question(unknown: &[String], have_asset: bool, opts: &ParseOptions) -> R<()> {
    let Some(w) = unknown.first() else {
        return Ok(());
    };
    if !have_asset && looks_like_ticker(w) {
        let known: Vec<&str> = opts
            .known_assets
            .iter()
            .map(String::as_str)
            .take(12)
            .collect();
        return ask(
            Subject::Asset,
            format!(
                "unknown asset {}; known assets include {}",
                w.to_ascii_uppercase(),
                known.join(", ")
            ),
        );
    }
    ask(
        Subject::Wording,
        format!("I did not understand \"{w}\"; please rephrase"),
    )
}

fn is_usd(q: &str) -> bool {
    USD_QUOTES.contains(&q)
}

/// The quote asset of the order: the explicit one, else the currency of a quote amount, else the
/// default; every currency the message mentions must agree with it.
fn resolve_quote(d: &Draft, base: &str, opts: &ParseOptions) -> R<String> {
    let default = opts.fallback_quote();
    let nominate = |c: &Cur| -> R<String> {
        match c {
            Cur::Asset(a) => Ok(a.clone()),
            Cur::Dollar if is_usd(&default) => Ok(default.clone()),
            Cur::Dollar => ask(
                Subject::Quote,
                format!(
                    "which dollar? The default quote is {default}; say e.g. \"with USDT\" or \"100 USDC of {base}\""
                ),
            ),
            Cur::Euro if opts.is_quote("EUR") => Ok("EUR".to_string()),
            Cur::Euro => ask(
                Subject::Quote,
                "euros are not a quote asset here; which quote asset?",
            ),
        }
    };
    let amount_cur = match &d.amount {
        Some(AmtSpec::Quote(_, c)) => Some(c),
        _ => None,
    };
    // Every currency the message mentions, the strongest first: the first one names the quote.
    let mut mentions: Vec<&Cur> = Vec::new();
    mentions.extend(d.quote.iter());
    mentions.extend(amount_cur);
    if let Some(KindSpec::Limit(Some(px))) = &d.kind {
        mentions.extend(px.cur.iter());
    }
    if let Some(Cond::Price { px, .. }) = &d.cond {
        mentions.extend(px.cur.iter());
    }
    if let Some(Protect {
        value: Some(ProtectVal::Price(px)),
        ..
    }) = &d.protect
    {
        mentions.extend(px.cur.iter());
    }
    let q = match mentions.first() {
        Some(c) => nominate(c)?,
        None => default,
    };
    for c in mentions {
        let fits = match c {
            Cur::Asset(a) => *a == q,
            Cur::Dollar => is_usd(&q),
            Cur::Euro => q == "EUR",
        };
        if !fits {
            return ask(
                Subject::Quote,
                format!(
                    "in {} or in {q}? The message mixes quote currencies",
                    c.name()
                ),
            );
        }
    }
    if q == base {
        return ask(
            Subject::Asset,
            format!("{base} against {base}? Which asset do you want to trade?"),
        );
    }
    Ok(q)
}

fn symbol_of(base: &str, quote: &str) -> R<Symbol> {
    match Symbol::new(&format!("{base}{quote}")) {
        Ok(s) => Ok(s),
        Err(e) => refuse(RefusalReason::Unsupported, e.to_string()),
    }
}

fn finish_order(mut d: Draft, opts: &ParseOptions) -> R<Command> {
    if !d.meaningful {
        return refuse(
            RefusalReason::NotAnOrder,
            "this is not an order I understand; try \"buy 0.1 BTC\" or \"vende la mitad de mi ETH\"",
        );
    }
    // The asset named in the condition ("when BTC drops below …").
    if let Some((b, q)) = d.cond_asset.take() {
        match d.base.as_deref() {
            Some(base) if base != b => {
                return refuse(
                    RefusalReason::Unsupported,
                    format!("a condition on {b} for an order on {base}: conditions on another asset's price are not supported"),
                )
            }
            Some(_) => {}
            None => d.base = Some(b),
        }
        if let Some(q) = q {
            d.set_quote(Cur::Asset(q), opts)?;
        }
    }
    unknown_question(&d.unknown, d.base.is_some(), opts)?;
    if let Some(p) = d.protect.clone() {
        return finish_protect(d, p, opts);
    }
    let Some(side) = d.side else {
        let what = match &d.base {
            Some(b) => format!("buy or sell {b}?"),
            None => "buy or sell?".to_string(),
        };
        return ask(Subject::Side, what);
    };
    let Some(base) = d.base.clone() else {
        return ask(
            Subject::Asset,
            format!(
                "{} which asset? Say e.g. \"{} 0.1 BTC\"",
                side_word(side),
                side_word(side)
            ),
        );
    };
    let amount = match d.amount.clone() {
        Some(a) => a,
        None if d.close => AmtSpec::Fraction(Decimal::ONE),
        None => {
            let hint = match side {
                Side::Buy => format!("\"buy 0.1 {base}\" or \"buy $100 of {base}\""),
                Side::Sell => format!(
                    "\"sell 0.1 {base}\", \"sell half my {base}\" or \"sell all my {base}\""
                ),
            };
            return ask(Subject::Amount, format!("how much {base}? Say e.g. {hint}"));
        }
    };
    if side == Side::Buy && matches!(amount, AmtSpec::Fraction(_)) {
        return ask(
            Subject::Amount,
            format!("a fraction of what? To buy, give a quantity (\"buy 0.1 {base}\") or a value (\"buy $100 of {base}\")"),
        );
    }
    let kind = match &d.kind {
        None | Some(KindSpec::Market) => OrderKind::Market,
        Some(KindSpec::Limit(Some(px))) => OrderKind::Limit { price: px.value },
        Some(KindSpec::Limit(None)) => {
            return ask(
                Subject::Price,
                "a limit order at what price? Say \"at 45000\"",
            )
        }
    };
    let quote = resolve_quote(&d, &base, opts)?;
    let symbol = symbol_of(&base, &quote)?;
    let trigger = d.cond.as_ref().map(|c| match c {
        Cond::Price {
            dir: Dir::Below,
            px,
        } => Trigger::PriceAtOrBelow { price: px.value },
        Cond::Price {
            dir: Dir::Above,
            px,
        } => Trigger::PriceAtOrAbove { price: px.value },
        Cond::Rsi {
            period,
            interval,
            dir,
            value,
        } => Trigger::Indicator {
            indicator: IndicatorRef::Rsi { period: *period },
            interval: *interval,
            op: match dir {
                Dir::Above => Comparison::Above,
                Dir::Below => Comparison::Below,
            },
            value: *value,
        },
    });
    Ok(Command::Order(TextOrder {
        side,
        symbol,
        base,
        quote,
        amount: to_amount(&amount),
        kind,
        trigger,
    }))
}

fn to_amount(a: &AmtSpec) -> Amount {
    match a {
        AmtSpec::Base(q) => Amount::Base { qty: *q },
        AmtSpec::Quote(n, _) => Amount::Quote { notional: *n },
        AmtSpec::Fraction(f) => Amount::FractionOfPosition { fraction: *f },
    }
}

fn finish_protect(d: Draft, p: Protect, opts: &ParseOptions) -> R<Command> {
    let name = p.kind.name();
    if d.cond.is_some() {
        return ask(
            Subject::Trigger,
            format!("a {name} is already a condition; send the other condition as its own order"),
        );
    }
    if d.side == Some(Side::Buy) {
        return ask(
            Subject::Command,
            format!("a {name} sells; to buy and protect, send the buy first, then the {name}"),
        );
    }
    if matches!(d.kind, Some(KindSpec::Limit(_))) {
        return refuse(
            RefusalReason::Unsupported,
            format!("a {name} with a limit price is not supported; it sells at market"),
        );
    }
    let Some(value) = p.value else {
        return ask(
            Subject::Price,
            format!("a {name} at what level? Say \"{name} 5%\" or \"{name} at 140\""),
        );
    };
    let Some(base) = d.base.clone() else {
        return ask(
            Subject::Asset,
            format!("a {name} on which asset? Say \"{name} 5% on SOL\""),
        );
    };
    let amount = match &d.amount {
        None => Amount::FractionOfPosition {
            fraction: Decimal::ONE,
        },
        Some(AmtSpec::Quote(..)) => {
            return ask(
                Subject::Amount,
                format!("a {name} sells a quantity or a part of the position; how much {base}?"),
            )
        }
        Some(a) => to_amount(a),
    };
    let expected = match p.kind {
        ProtectKind::StopLoss => Dir::Below,
        ProtectKind::TakeProfit => Dir::Above,
    };
    let trigger = match value {
        ProtectVal::Pct(pct) => {
            if let Some(Some(dir)) = p.reference {
                if dir != expected {
                    return ask(
                        Subject::Trigger,
                        format!(
                            "a {name} is {} the entry; did you mean a {}?",
                            if expected == Dir::Below {
                                "below"
                            } else {
                                "above"
                            },
                            if expected == Dir::Below {
                                "take profit"
                            } else {
                                "stop loss"
                            }
                        ),
                    );
                }
            }
            match p.kind {
                ProtectKind::StopLoss if pct >= Decimal::ONE_HUNDRED => {
                    return refuse(
                        RefusalReason::OutOfRange,
                        format!("a stop loss of {}% can never trigger before the price reaches zero; use less than 100%", num(pct)),
                    )
                }
                ProtectKind::StopLoss => Trigger::StopLossPct { pct },
                ProtectKind::TakeProfit => Trigger::TakeProfitPct { pct },
            }
        }
        ProtectVal::Price(px) => match p.kind {
            ProtectKind::StopLoss => Trigger::PriceAtOrBelow { price: px.value },
            ProtectKind::TakeProfit => Trigger::PriceAtOrAbove { price: px.value },
        },
    };
    let quote = resolve_quote(&d, &base, opts)?;
    let symbol = symbol_of(&base, &quote)?;
    Ok(Command::Order(TextOrder {
        side: Side::Sell,
        symbol,
        base,
        quote,
        amount,
        kind: OrderKind::Market,
        trigger: Some(trigger),
    }))
}

fn parse_cancel(toks: &[Tok], opts: &ParseOptions) -> R<Command> {
    let mut all = false;
    let mut d = Draft::default();
    for t in toks {
        match t {
            Tok::Kw(Kw::Cancel | Kw::Orders | Kw::Of | Kw::In | Kw::For | Kw::My) => {}
            Tok::Kw(Kw::All) => all = true,
            Tok::Asset(a) => d.set_base(a)?,
            Tok::Pair(b, q) => {
                d.set_base(b)?;
                d.set_quote(Cur::Asset(q.clone()), opts)?;
            }
            Tok::Unknown(w) | Tok::Stray(w) => d.unknown.push(w.clone()),
            Tok::Kw(Kw::Negation) => {
                return refuse(
                    RefusalReason::Negation,
                    "the message reads as a negation; say what to do, not what not to do",
                )
            }
            _ => {
                return ask(
                    Subject::Command,
                    "cancel which orders? Say \"cancel all\" or \"cancel all BTC orders\" (one command per message)",
                )
            }
        }
    }
    unknown_question(&d.unknown, d.base.is_some(), opts)?;
    let symbol = match d.base.clone() {
        Some(b) => {
            let q = match &d.quote {
                Some(Cur::Asset(q)) => q.clone(),
                _ => opts.fallback_quote(),
            };
            if q == b {
                return ask(
                    Subject::Asset,
                    format!("the orders of {b} against which asset?"),
                );
            }
            Some(symbol_of(&b, &q)?)
        }
        None if all => None,
        None => {
            return ask(
                Subject::Command,
                "cancel which orders? Say \"cancel all\" or \"cancel all BTC orders\"",
            )
        }
    };
    Ok(Command::Cancel { symbol })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn order(side: Side, base: &str, quote: &str, amount: Amount) -> TextOrder {
        TextOrder {
            side,
            symbol: Symbol::new(&format!("{base}{quote}")).unwrap(),
            base: base.to_string(),
            quote: quote.to_string(),
            amount,
            kind: OrderKind::Market,
            trigger: None,
        }
    }

    fn qty(s: &str) -> Amount {
        Amount::Base { qty: d(s) }
    }
    fn notional(s: &str) -> Amount {
        Amount::Quote { notional: d(s) }
    }
    fn frac(s: &str) -> Amount {
        Amount::FractionOfPosition { fraction: d(s) }
    }
    fn buy(q: &str, base: &str) -> TextOrder {
        order(Side::Buy, base, "USDT", qty(q))
    }
    fn sell(q: &str, base: &str) -> TextOrder {
        order(Side::Sell, base, "USDT", qty(q))
    }
    fn below(p: &str) -> Trigger {
        Trigger::PriceAtOrBelow { price: d(p) }
    }
    fn above(p: &str) -> Trigger {
        Trigger::PriceAtOrAbove { price: d(p) }
    }
    fn rsi(period: u32, iv: &str, op: Comparison, v: &str) -> Trigger {
        Trigger::Indicator {
            indicator: IndicatorRef::Rsi { period },
            interval: iv.parse().unwrap(),
            op,
            value: d(v),
        }
    }
    fn sl(p: &str) -> Trigger {
        Trigger::StopLossPct { pct: d(p) }
    }
    fn tp(p: &str) -> Trigger {
        Trigger::TakeProfitPct { pct: d(p) }
    }

    impl TextOrder {
        fn limit(mut self, p: &str) -> Self {
            self.kind = OrderKind::Limit { price: d(p) };
            self
        }
        fn when(mut self, t: Trigger) -> Self {
            self.trigger = Some(t);
            self
        }
    }

    use Comparison::{Above as Gt, Below as Lt};
    use Side::{Buy, Sell};

    #[derive(Debug)]
    enum E {
        C(Command),
        A(Subject),
        R(RefusalReason),
    }

    fn c(o: TextOrder) -> E {
        E::C(Command::Order(o))
    }
    fn cancel(sym: Option<&str>) -> E {
        E::C(Command::Cancel {
            symbol: sym.map(|s| Symbol::new(s).unwrap()),
        })
    }
    use RefusalReason as RR;
    use Subject as S;
    use E::{A, R};

    fn cases() -> Vec<(String, E)> {
        let v: Vec<(&str, E)> = vec![
            // ---- English, valid -------------------------------------------------------------
            ("buy 0.1 BTC when it drops below 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("Buy 0.1 BTC when it drops below $45,000", c(buy("0.1", "BTC").when(below("45000")))),
            ("sell 2 ETH at 3500", c(sell("2", "ETH").limit("3500"))),
            ("buy $100 of SOL", c(order(Buy, "SOL", "USDT", notional("100")))),
            ("buy 100 USDT of SOL", c(order(Buy, "SOL", "USDT", notional("100")))),
            ("stop loss 5% on SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("take profit 10% on BTC", c(order(Sell, "BTC", "USDT", frac("1")).when(tp("10")))),
            ("sell all my BTC", c(order(Sell, "BTC", "USDT", frac("1")))),
            ("buy 0.1 BTC if RSI 4h below 30", c(buy("0.1", "BTC").when(rsi(14, "4h", Lt, "30")))),
            ("sell 1 ETH when price goes above 4000", c(sell("1", "ETH").when(above("4000")))),
            ("buy 1 ETH with USDC", c(order(Buy, "ETH", "USDC", qty("1")))),
            ("buy 1 ETHBTC", c(order(Buy, "ETH", "BTC", qty("1")))),
            ("buy 1 ETH/BTC", c(order(Buy, "ETH", "BTC", qty("1")))),
            ("buy 1 eth/btc", c(order(Buy, "ETH", "BTC", qty("1")))),
            ("sell 0.5 ETH-BTC", c(order(Sell, "ETH", "BTC", qty("0.5")))),
            ("buy 2 btcusdt", c(buy("2", "BTC"))),
            ("please buy 0.1 btc", c(buy("0.1", "BTC"))),
            ("buy 0.1 BTC", c(buy("0.1", "BTC"))),
            ("BUY 0.1 BTC", c(buy("0.1", "BTC"))),
            ("Buy 0.10 BTC.", c(buy("0.1", "BTC"))),
            ("buy 0.1 BTC!", c(buy("0.1", "BTC"))),
            ("sell 0.5 btc at market", c(sell("0.5", "BTC"))),
            ("sell 0.5 BTC at market price", c(sell("0.5", "BTC"))),
            ("sell 0.5 BTC market order", c(sell("0.5", "BTC"))),
            ("sell 50% of my ETH", c(order(Sell, "ETH", "USDT", frac("0.5")))),
            ("sell half my BTC", c(order(Sell, "BTC", "USDT", frac("0.5")))),
            ("sell half of my BTC", c(order(Sell, "BTC", "USDT", frac("0.5")))),
            ("sell a quarter of my SOL", c(order(Sell, "SOL", "USDT", frac("0.25")))),
            ("sell 25% of my SOL", c(order(Sell, "SOL", "USDT", frac("0.25")))),
            ("sell 100% of my SOL", c(order(Sell, "SOL", "USDT", frac("1")))),
            ("sell 12.5 percent of my ADA", c(order(Sell, "ADA", "USDT", frac("0.125")))),
            ("sell all of my DOGE", c(order(Sell, "DOGE", "USDT", frac("1")))),
            ("close my BTC position", c(order(Sell, "BTC", "USDT", frac("1")))),
            ("close half my BTC", c(order(Sell, "BTC", "USDT", frac("0.5")))),
            ("buy 0.1 BTC at 45000", c(buy("0.1", "BTC").limit("45000"))),
            ("buy 0.1 BTC @ 45000", c(buy("0.1", "BTC").limit("45000"))),
            ("buy 0.1 BTC at $45,000", c(buy("0.1", "BTC").limit("45000"))),
            ("limit buy 0.1 BTC at 44000", c(buy("0.1", "BTC").limit("44000"))),
            ("buy 0.1 BTC limit 44000", c(buy("0.1", "BTC").limit("44000"))),
            ("place a limit order to buy 0.1 BTC at 44000", c(buy("0.1", "BTC").limit("44000"))),
            ("buy 0.1 BTC at 45k", c(buy("0.1", "BTC").limit("45000"))),
            ("buy 0.1 BTC when it drops below 45k", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1 BTC when it drops below 45 thousand", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1btc", c(buy("0.1", "BTC"))),
            ("buy 0.1 bitcoin", c(buy("0.1", "BTC"))),
            ("buy 2 ether", c(buy("2", "ETH"))),
            ("buy 0.1 $BTC", c(buy("0.1", "BTC"))),
            ("purchase 3 SOL", c(buy("3", "SOL"))),
            ("buy 0.1 BTC when BTC drops below 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1 BTC if the price of BTC falls below 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1 BTC when the price is under 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1 BTC once it dips to 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1 BTC when it's below 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1 BTC as soon as it falls below 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("if BTC drops below 45000, buy 0.1 BTC", c(buy("0.1", "BTC").when(below("45000")))),
            ("when BTC drops below 45000 buy 0.1", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1 BTC if BTCUSDT drops below 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("sell 1 ETH when it rises above 4000", c(sell("1", "ETH").when(above("4000")))),
            ("sell 1 ETH when it climbs to 4000", c(sell("1", "ETH").when(above("4000")))),
            ("sell 1 ETH when it goes up to 4000", c(sell("1", "ETH").when(above("4000")))),
            ("sell 1 ETH if price > 4000", c(sell("1", "ETH").when(above("4000")))),
            ("sell 1 ETH if price>=4000", c(sell("1", "ETH").when(above("4000")))),
            ("buy 1 ETH if price <= 3000", c(buy("1", "ETH").when(below("3000")))),
            ("sell 1 ETH when it exceeds 4000", c(sell("1", "ETH").when(above("4000")))),
            ("sell 1 ETH when the price is more than 4000", c(sell("1", "ETH").when(above("4000")))),
            ("sell 3 SOL if it drops below 120 USDT", c(sell("3", "SOL").when(below("120")))),
            ("buy 10 ADA when it drops below 0.30", c(buy("10", "ADA").when(below("0.3")))),
            ("buy 1000 XRP if it falls to 0.5", c(buy("1000", "XRP").when(below("0.5")))),
            ("sell 0.1 BTC when the last price is at or above 50000", c(sell("0.1", "BTC").when(above("50000")))),
            ("BUY 0.1 BTCUSDT at market when the last price is at or below 45000", c(buy("0.1", "BTC").when(below("45000")))),
            ("buy 0.1 BTC at 45000 when RSI 1h below 30", c(buy("0.1", "BTC").limit("45000").when(rsi(14, "1h", Lt, "30")))),
            ("buy 0.1 BTC at 44000 when it drops below 45000", c(buy("0.1", "BTC").limit("44000").when(below("45000")))),
            ("buy 0.1 BTC if the 4h RSI is below 30", c(buy("0.1", "BTC").when(rsi(14, "4h", Lt, "30")))),
            ("buy 0.1 BTC if RSI(14) on 1h candles is below 30", c(buy("0.1", "BTC").when(rsi(14, "1h", Lt, "30")))),
            ("buy 0.1 BTC if RSI 7 4h below 25", c(buy("0.1", "BTC").when(rsi(7, "4h", Lt, "25")))),
            ("buy 0.1 BTC if rsi14 1h < 30", c(buy("0.1", "BTC").when(rsi(14, "1h", Lt, "30")))),
            ("buy 0.1 BTC if 1h RSI below 30%", c(buy("0.1", "BTC").when(rsi(14, "1h", Lt, "30")))),
            ("sell 1 ETH if the daily RSI is above 70", c(sell("1", "ETH").when(rsi(14, "1d", Gt, "70")))),
            ("sell 1 ETH if RSI is above 70 on the 4h", c(sell("1", "ETH").when(rsi(14, "4h", Gt, "70")))),
            ("sell 1 ETH if the 4 hour RSI crosses above 70", c(sell("1", "ETH").when(rsi(14, "4h", Gt, "70")))),
            ("sell 1 ETH if the 4-hour RSI goes over 70", c(sell("1", "ETH").when(rsi(14, "4h", Gt, "70")))),
            ("sell 1 ETH if the 15m RSI is over 80.5", c(sell("1", "ETH").when(rsi(14, "15m", Gt, "80.5")))),
            ("buy 100 USDC of ETH", c(order(Buy, "ETH", "USDC", notional("100")))),
            ("buy $100 of SOL with USDC", c(order(Buy, "SOL", "USDC", notional("100")))),
            ("buy 100 dollars of BTC", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("buy 100 bucks of DOGE", c(order(Buy, "DOGE", "USDT", notional("100")))),
            ("buy 100 USD of BTC", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("buy 100 EUR of BTC", c(order(Buy, "BTC", "EUR", notional("100")))),
            ("buy 100€ of BTC", c(order(Buy, "BTC", "EUR", notional("100")))),
            ("buy BTC for $100", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("buy BTC with 100 USDT", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("buy 100 USDT worth of SOL", c(order(Buy, "SOL", "USDT", notional("100")))),
            ("sell $50 of SOL", c(order(Sell, "SOL", "USDT", notional("50")))),
            ("buy 0.25 BTC with dollars", c(buy("0.25", "BTC"))),
            ("sell 1 ETH for USDC", c(order(Sell, "ETH", "USDC", qty("1")))),
            ("sell 1 ETH in BTC", c(order(Sell, "ETH", "BTC", qty("1")))),
            ("sell 2 ETH at 0.05 BTC", c(order(Sell, "ETH", "BTC", qty("2")).limit("0.05"))),
            ("sell 2 ETH at 3500 USDT", c(sell("2", "ETH").limit("3500"))),
            ("stop-loss 5% on SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("set a stop loss of 5% on SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("5% stop loss on SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("stop loss 5% below entry on SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("stop loss 2.5% from entry on ETH", c(order(Sell, "ETH", "USDT", frac("1")).when(sl("2.5")))),
            ("stop loss at 140 on SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(below("140")))),
            ("take profit at 200 on SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(above("200")))),
            ("take profit 150% on PEPE", c(order(Sell, "PEPE", "USDT", frac("1")).when(tp("150")))),
            ("stop loss 5% on half my SOL", c(order(Sell, "SOL", "USDT", frac("0.5")).when(sl("5")))),
            ("stop loss 5% on 10 SOL", c(order(Sell, "SOL", "USDT", qty("10")).when(sl("5")))),
            ("sl 3% on BTC", c(order(Sell, "BTC", "USDT", frac("1")).when(sl("3")))),
            ("tp 8% on ETH", c(order(Sell, "ETH", "USDT", frac("1")).when(tp("8")))),
            ("take-profit 10% above entry on BTC", c(order(Sell, "BTC", "USDT", frac("1")).when(tp("10")))),
            ("SELL all of the SOLUSDT position at market with a stop loss 5% below the reference price", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("cancel all", cancel(None)),
            ("cancel all orders", cancel(None)),
            ("cancel everything", cancel(None)),
            ("cancel all open orders", cancel(None)),
            ("cancel all BTC orders", cancel(Some("BTCUSDT"))),
            ("cancel all orders for BTC", cancel(Some("BTCUSDT"))),
            ("cancel my ETH orders", cancel(Some("ETHUSDT"))),
            ("cancel all ETHBTC orders", cancel(Some("ETHBTC"))),
            ("i want to buy 0.1 BTC", c(buy("0.1", "BTC"))),
            ("could you please sell 1 ETH at market", c(sell("1", "ETH"))),
            ("buy 0.1 BTC now", c(buy("0.1", "BTC"))),
            ("buy 0.1 BTC right now please", c(buy("0.1", "BTC"))),
            ("hey, buy 0.1 BTC, thanks", c(buy("0.1", "BTC"))),
            ("buy 1,000 DOGE", c(buy("1000", "DOGE"))),
            ("buy 1.500 DOGE", c(buy("1.5", "DOGE"))),
            ("buy 1,500 DOGE", c(buy("1500", "DOGE"))),
            ("buy 1,5 ETH", c(buy("1.5", "ETH"))),
            ("buy 1,500.5 DOGE", c(buy("1500.5", "DOGE"))),
            ("buy 1,000,000 SHIB", c(buy("1000000", "SHIB"))),
            ("buy .5 ETH", c(buy("0.5", "ETH"))),
            ("buy 0.500 ETH", c(buy("0.5", "ETH"))),
            ("buy   0.1\tBTC\nplease", c(buy("0.1", "BTC"))),
            ("sell 1 btc, at 50000, when 1h rsi > 70, please", c(sell("1", "BTC").limit("50000").when(rsi(14, "1h", Gt, "70")))),
            ("buy 1 BTC (RSI 1h < 30)", c(buy("1", "BTC").when(rsi(14, "1h", Lt, "30")))),
            ("sell 1 ETH at 3500 if it rises above 3400", c(sell("1", "ETH").limit("3500").when(above("3400")))),
            ("buy € 100 of BTC", c(order(Buy, "BTC", "EUR", notional("100")))),
            ("buy 1 ETH at 0.05 BTC when it drops below 0.049", c(order(Buy, "ETH", "BTC", qty("1")).limit("0.05").when(below("0.049")))),
            ("buy 1 BTC at 45,000.50", c(buy("1", "BTC").limit("45000.5"))),
            // ---- Spanish, valid -------------------------------------------------------------
            ("vende la mitad de mi ETH si el RSI de 1h pasa de 70", c(order(Sell, "ETH", "USDT", frac("0.5")).when(rsi(14, "1h", Gt, "70")))),
            ("compra 0,5 BTC si baja de 40.000", c(buy("0.5", "BTC").when(below("40000")))),
            ("stop-loss de 5% en SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("cancela todo", cancel(None)),
            ("vende todo mi BTC", c(order(Sell, "BTC", "USDT", frac("1")))),
            ("compra 100 dólares de BTC", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("compra 100 dolares de BTC", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("Compra 100 DÓLARES de BTC", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("por favor compra 0,1 BTC", c(buy("0.1", "BTC"))),
            ("compra 0,1 BTC por favor", c(buy("0.1", "BTC"))),
            ("compra 0,1 BTC cuando el precio baje de 40.000", c(buy("0.1", "BTC").when(below("40000")))),
            ("compra 0,1 BTC si cae por debajo de 40.000", c(buy("0.1", "BTC").when(below("40000")))),
            ("compra 0,1 BTC si baja a 40.000", c(buy("0.1", "BTC").when(below("40000")))),
            ("compra 0,1 BTC si bajá de 40.000", c(buy("0.1", "BTC").when(below("40000")))),
            ("compra 0,1 BTC si baja de 40 mil", c(buy("0.1", "BTC").when(below("40000")))),
            ("compra 0,1 BTC si el precio es menor que 40.000", c(buy("0.1", "BTC").when(below("40000")))),
            ("vende 0,5 ETH si el precio es mayor a 4.000", c(sell("0.5", "ETH").when(above("4000")))),
            ("vende 2 ETH a 3.500", c(sell("2", "ETH").limit("3500"))),
            ("vende 2 ETH a 3500", c(sell("2", "ETH").limit("3500"))),
            ("vende 2 ETH al precio de 3500", c(sell("2", "ETH").limit("3500"))),
            ("vende 1 ETH si sube de 4.000", c(sell("1", "ETH").when(above("4000")))),
            ("vende 1 ETH cuando supere los 4000", c(sell("1", "ETH").when(above("4000")))),
            ("cancela todas las órdenes de BTC", cancel(Some("BTCUSDT"))),
            ("cancela todas las ordenes de BTC", cancel(Some("BTCUSDT"))),
            ("cancelar todo", cancel(None)),
            ("anula todas mis órdenes abiertas", cancel(None)),
            ("vende el 50% de mi ETH", c(order(Sell, "ETH", "USDT", frac("0.5")))),
            ("vende el 50 por ciento de mi ETH", c(order(Sell, "ETH", "USDT", frac("0.5")))),
            ("compra 1.500 DOGE", c(buy("1500", "DOGE"))),
            ("compra 1,500 DOGE", c(buy("1.5", "DOGE"))),
            ("compra 1,5 ETH", c(buy("1.5", "ETH"))),
            ("compra 1.000.000 SHIB", c(buy("1000000", "SHIB"))),
            ("compra 12.345,67 DOGE", c(buy("12345.67", "DOGE"))),
            ("take profit de 10% en BTC", c(order(Sell, "BTC", "USDT", frac("1")).when(tp("10")))),
            ("pon un stop loss del 5% en SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("stop loss del 5% por debajo de la entrada en SOL", c(order(Sell, "SOL", "USDT", frac("1")).when(sl("5")))),
            ("toma de ganancias 10% en BTC", c(order(Sell, "BTC", "USDT", frac("1")).when(tp("10")))),
            ("compra 0,1 BTC si el RSI de 4h está por debajo de 30", c(buy("0.1", "BTC").when(rsi(14, "4h", Lt, "30")))),
            ("vende 1 ETH si el RSI diario supera 70", c(sell("1", "ETH").when(rsi(14, "1d", Gt, "70")))),
            ("vende 1 ETH cuando el RSI 1h sea mayor que 70", c(sell("1", "ETH").when(rsi(14, "1h", Gt, "70")))),
            ("vende todos mis SOL", c(order(Sell, "SOL", "USDT", frac("1")))),
            ("compra 50 euros de BTC", c(order(Buy, "BTC", "EUR", notional("50")))),
            ("compra 0,5 BTC a mercado", c(buy("0.5", "BTC"))),
            ("compra 0,5 BTC a precio de mercado", c(buy("0.5", "BTC"))),
            ("compra BTC con 100 USDT", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("compra BTC por 100 dólares", c(order(Buy, "BTC", "USDT", notional("100")))),
            ("compra 40 mil dólares de BTC", c(order(Buy, "BTC", "USDT", notional("40000")))),
            ("vende 1 ETH en BTC", c(order(Sell, "ETH", "BTC", qty("1")))),
            ("vende 1 ETH con USDC", c(order(Sell, "ETH", "USDC", qty("1")))),
            ("vende la mitad de mi posición de BTC", c(order(Sell, "BTC", "USDT", frac("0.5")))),
            ("vende un cuarto de mi BTC", c(order(Sell, "BTC", "USDT", frac("0.25")))),
            ("cierra mi posición de ETH", c(order(Sell, "ETH", "USDT", frac("1")))),
            ("compra 0,1 bitcoin", c(buy("0.1", "BTC"))),
            ("comprá 0,1 BTC", c(buy("0.1", "BTC"))),
            ("vendé la mitad de mi ETH", c(order(Sell, "ETH", "USDT", frac("0.5")))),
            ("quiero comprar 0,2 ETH", c(buy("0.2", "ETH"))),
            ("cómprame 0,2 ETH ya", c(buy("0.2", "ETH"))),
            ("vende 1 ETH si baja de 3.000 euros", c(order(Sell, "ETH", "EUR", qty("1")).when(below("3000")))),
            ("vende el 33,33% de mi ETH", c(order(Sell, "ETH", "USDT", frac("0.3333")))),
            ("compra 1 BTC a 45.000,50", c(buy("1", "BTC").limit("45000.5"))),
            ("compra 0,1 BTC a 40.000 si el RSI de 1h baja de 30", c(buy("0.1", "BTC").limit("40000").when(rsi(14, "1h", Lt, "30")))),
            ("compra 0,01 BTC si el RSI(7) de 15m es menor que 20", c(buy("0.01", "BTC").when(rsi(7, "15m", Lt, "20")))),
            // ---- asked back -----------------------------------------------------------------
            ("buy BTC", A(S::Amount)),
            ("compra BTC", A(S::Amount)),
            ("sell my BTC", A(S::Amount)),
            ("buy half my BTC", A(S::Amount)),
            ("buy all my BTC", A(S::Amount)),
            ("buy 0.1 BTC 0.2 ETH", A(S::Amount)),
            ("buy 0.1 BTC, 0.2 BTC", A(S::Amount)),
            ("buy 0.1 BTC or 0.2 ETH", A(S::Amount)),
            ("buy BTC 0.1", A(S::Amount)),
            ("buy BTC 45000", A(S::Amount)),
            ("ETH 1 sell", A(S::Amount)),
            ("buy 0.1 BTC with 100", A(S::Amount)),
            ("buy 0.1", A(S::Asset)),
            ("compra 0,1", A(S::Asset)),
            ("sell half", A(S::Asset)),
            ("sell everything", A(S::Asset)),
            ("vende", A(S::Asset)),
            ("buy 45000", A(S::Asset)),
            ("buy 5 dollars", A(S::Asset)),
            ("buy 1 FOO", A(S::Asset)),
            ("compra 0,1 XYZ", A(S::Asset)),
            ("cancel all FOO orders", A(S::Asset)),
            ("buy 0.1 USDT", A(S::Asset)),
            ("buy 100 USDT", A(S::Asset)),
            ("buy 1 BTC of ETH of SOL", A(S::Asset)),
            ("buy 0.1 BTC sell 0.1 ETH", A(S::Side)),
            ("stop loss 5%", A(S::Asset)),
            ("0.1 BTC", A(S::Side)),
            ("BTC 0.1 at 45000", A(S::Amount)),
            ("BTC at 45000", A(S::Side)),
            ("buy sell 1 BTC", A(S::Side)),
            ("compra vende 1 BTC", A(S::Side)),
            ("buy 0.1 BTC tomorrow", A(S::Wording)),
            ("buy 0.1 BTC in 5m", A(S::Wording)),
            ("buy 0.1 BTC in 2 hours", A(S::Wording)),
            ("buy 0.1 BTC 1.5h", A(S::Number)),
            ("buy 0.1 BTC below 45000", A(S::Trigger)),
            ("buy 0.1 BTC when it reaches 45000", A(S::Trigger)),
            ("sell 1 ETH when it hits 4000", A(S::Trigger)),
            ("buy 0.1 BTC if it goes to 45000", A(S::Trigger)),
            ("compra 0,1 BTC cuando llegue a 40.000", A(S::Trigger)),
            ("buy 0.1 BTC when", A(S::Trigger)),
            ("buy 0.1 BTC if cheap", A(S::Trigger)),
            ("buy 0.1 BTC when BTC is at 45000", A(S::Trigger)),
            ("buy 0.1 BTC if the 1h price drops below 45000", A(S::Trigger)),
            ("sell 1 ETH when it drops above 4000", A(S::Trigger)),
            ("buy 0.1 BTC when it drops below 45000 when RSI 1h below 30", A(S::Trigger)),
            ("take profit 10% below entry on BTC", A(S::Trigger)),
            ("buy 0.1 BTC when RSI 1h below $30", A(S::Trigger)),
            ("what is the price of BTC", A(S::Trigger)),
            ("sell 1 ETH if RSI above 70", A(S::Interval)),
            ("buy BTC at 45000 when RSI below 30", A(S::Interval)),
            ("vende 1 ETH si el RSI pasa de 70", A(S::Interval)),
            ("buy 0.1 BTC if RSI 2 days below 30", A(S::Interval)),
            ("sell 1 ETH when RSI 1h above 70 on 4h", A(S::Interval)),
            ("buy 0.1 BTC at", A(S::Price)),
            ("sell 2 ETH @", A(S::Price)),
            ("buy 0.1 BTC limit", A(S::Price)),
            ("buy 0.1 BTC with a limit", A(S::Price)),
            ("buy 0.1 BTC at 45000 at market", A(S::Price)),
            ("buy 0.1 BTC at 45000 at 46000", A(S::Price)),
            ("stop loss 5 on SOL", A(S::Price)),
            ("stop loss on SOL", A(S::Price)),
            ("sell 1 ETH for 3500", A(S::Price)),
            ("buy 0.1 BTC price 45000", A(S::Price)),
            ("sell 1 ETH 4000", A(S::Number)),
            ("1.500 DOGE", A(S::Number)),
            ("comprar 1.500 DOGE when it drops below 0.1", A(S::Number)),
            ("buy 1.2.3 BTC", A(S::Number)),
            ("buy 1M DOGE", A(S::Number)),
            ("buy 1 BTC when it drops below 45 000", A(S::Number)),
            ("buy 1 BTC/SOL", A(S::Quote)),
            ("buy 1 ETH with SOL", A(S::Quote)),
            ("buy 100 USDT of SOL with USDC", A(S::Quote)),
            ("buy 0.1 BTC with USDC at 45000 EUR", A(S::Quote)),
            ("buy 0.1 BTC at 45000 EUR", c(order(Buy, "BTC", "EUR", qty("0.1")).limit("45000"))),
            ("buy 0.1 BTC with USDT with USDC", A(S::Quote)),
            ("buy 1 SOL with a stop loss of 5%", A(S::Command)),
            ("buy 0.1 BTC and 1 ETH", A(S::Command)),
            ("sell 1 ETH when RSI 1h above 70 and price above 4000", A(S::Command)),
            ("compra 0,1 BTC y vende 1 ETH", A(S::Command)),
            ("cancel", A(S::Command)),
            ("cancel orders", A(S::Command)),
            ("cancel all and buy 1 BTC", A(S::Command)),
            ("cancel my buy orders", A(S::Command)),
            ("stop loss 5% and take profit 10% on SOL", A(S::Command)),
            ("buy 1 BTC?", A(S::Confirmation)),
            ("¿compro 0,1 BTC?", A(S::Confirmation)),
            ("should I buy 0.1 BTC", A(S::Wording)),
            // ---- refused --------------------------------------------------------------------
            ("", R(RR::Empty)),
            ("   \t ", R(RR::Empty)),
            ("buy 1 BTC'; DROP TABLE orders;--", R(RR::Injection)),
            ("buy 1 BTC; rm -rf /", R(RR::Injection)),
            ("<script>alert(1)</script>", R(RR::Injection)),
            ("buy 1 BTC <img src=x>", R(RR::Injection)),
            ("buy 1 BTC && sell 1 ETH", R(RR::Injection)),
            ("buy 1 BTC | cat /etc/passwd", R(RR::Injection)),
            ("buy 1 BTC $(whoami)", R(RR::Injection)),
            ("SELECT * FROM orders", R(RR::Injection)),
            ("buy 1 BTC /* comment */", R(RR::Injection)),
            ("buy 1 BTC' OR '1'='1", R(RR::Injection)),
            ("buy 1 BTC 1=1", R(RR::Injection)),
            ("buy 1 BTC ../../etc", R(RR::Injection)),
            ("buy 1 BTC \"now\"", R(RR::Injection)),
            ("buy 1 BTC #moon", R(RR::Injection)),
            ("buy 1 BTC 🚀", R(RR::Characters)),
            ("🚀🚀🚀", R(RR::Characters)),
            ("buy 1 BTC 👍", R(RR::Characters)),
            ("buy\u{200B} 1 BTC", R(RR::Characters)),
            ("buy 1 BTC\u{FEFF}", R(RR::Characters)),
            ("buy 1 \u{202E}CTB", R(RR::Characters)),
            ("buy 1 BTC\u{200F}", R(RR::Characters)),
            ("buy 0.1 BTC\u{0007}", R(RR::Characters)),
            ("buy 1 \u{0412}\u{0422}\u{0421}", R(RR::Characters)),
            ("kaufe 1 BTC, danke schön", R(RR::Characters)),
            ("buy -1 BTC", R(RR::NonPositive)),
            ("vende -5 ETH", R(RR::NonPositive)),
            ("buy 0 BTC", R(RR::NonPositive)),
            ("compra 0 BTC", R(RR::NonPositive)),
            ("buy 0.1 BTC at -45000", R(RR::NonPositive)),
            ("stop loss 0% on SOL", R(RR::NonPositive)),
            ("buy $0 of SOL", R(RR::NonPositive)),
            ("buy 1e9 BTC", R(RR::AbsurdNumber)),
            ("buy 1E9 BTC", R(RR::AbsurdNumber)),
            ("buy 0.1 BTC when it drops below 1e5", R(RR::AbsurdNumber)),
            ("buy 12345678901234567890123456789 BTC", R(RR::AbsurdNumber)),
            ("buy 0.000000000000000000000000000001 BTC", R(RR::AbsurdNumber)),
            ("buy 9999999999999999999999999999k BTC", R(RR::AbsurdNumber)),
            ("sell 150% of my ETH", R(RR::OutOfRange)),
            ("vende 150% de mi ETH", R(RR::OutOfRange)),
            ("stop loss 100% on SOL", R(RR::OutOfRange)),
            ("stop loss 150% on SOL", R(RR::OutOfRange)),
            ("buy 0.1 BTC if RSI 1h above 150", R(RR::OutOfRange)),
            ("buy 0.1 BTC if RSI 1 1h above 50", R(RR::OutOfRange)),
            ("don't buy BTC", R(RR::Negation)),
            ("do not sell my ETH", R(RR::Negation)),
            ("no compres BTC", R(RR::Negation)),
            ("nunca vendas BTC", R(RR::Negation)),
            ("buy 0.1 BTC if MACD crosses above 10", R(RR::Unsupported)),
            ("set a trailing stop of 5% on SOL", R(RR::Unsupported)),
            ("short 1 BTC", R(RR::Unsupported)),
            ("buy 1 BTC with leverage", R(RR::Unsupported)),
            ("buy 1 BTC on margin", R(RR::Unsupported)),
            ("buy 0.1 BTC every day", R(RR::Unsupported)),
            ("sell 1 ETH if volume above 1000", R(RR::Unsupported)),
            ("buy 0.1 BTC when it drops 5%", R(RR::Unsupported)),
            ("buy 0.1 ETH when BTC drops below 45000", R(RR::Unsupported)),
            ("stop loss 5% on SOL at 140 limit", R(RR::Unsupported)),
            ("hello", R(RR::NotAnOrder)),
            ("what's up", R(RR::NotAnOrder)),
            ("asdf qwerty", R(RR::NotAnOrder)),
            ("please", R(RR::NotAnOrder)),
            ("?", R(RR::NotAnOrder)),
            ("hola, ¿qué tal?", R(RR::NotAnOrder)),
        ];
        let mut out: Vec<(String, E)> = v.into_iter().map(|(s, e)| (s.to_string(), e)).collect();
        out.push((
            format!("buy 0.1 BTC {}", "please ".repeat(40)),
            R(RR::TooLong),
        ));
        out.push(("x".repeat(MAX_CHARS + 1), R(RR::TooLong)));
        out
    }

    #[test]
    fn table() {
        let opts = ParseOptions::default();
        let cases = cases();
        let mut failures = Vec::new();
        let (mut commands, mut asks, mut refusals) = (0, 0, 0);
        for (text, want) in &cases {
            let got = parse(text, &opts);
            let ok = match (want, &got) {
                (E::C(w), Parsed::Command(g)) => w == g,
                (E::A(w), Parsed::Ask(q)) => *w == q.about,
                (E::R(w), Parsed::Refused(r)) => *w == r.reason,
                _ => false,
            };
            match want {
                E::C(_) => commands += 1,
                E::A(_) => asks += 1,
                E::R(_) => refusals += 1,
            }
            if !ok {
                failures.push(format!("{text:?}\n    want {want:?}\n    got  {got:?}"));
            }
            // Every outcome carries a readable explanation.
            match &got {
                Parsed::Ask(q) => assert!(!q.text.is_empty()),
                Parsed::Refused(r) => assert!(!r.text.is_empty()),
                Parsed::Command(_) => {}
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        assert!(cases.len() >= 170, "only {} cases", cases.len());
        eprintln!("table: {commands} commands, {asks} questions, {refusals} refusals");
    }

    #[test]
    fn every_valid_case_round_trips_through_describe() {
        let opts = ParseOptions::default();
        for (text, want) in cases() {
            if let E::C(cmd) = want {
                let sentence = cmd.describe();
                assert_eq!(
                    parse(&sentence, &opts),
                    Parsed::Command(cmd.clone()),
                    "{text:?} described as {sentence:?}"
                );
            }
        }
    }

    #[test]
    fn describes() {
        let opts = ParseOptions::default();
        let said = |t: &str| parse(t, &opts).command().map(Command::describe);
        assert_eq!(
            said("Buy 0.1 BTC when it drops below $45,000").as_deref(),
            Some("BUY 0.1 BTCUSDT at market when the last price is at or below 45000")
        );
        assert_eq!(
            said("vende la mitad de mi ETH si el RSI de 1h pasa de 70").as_deref(),
            Some(
                "SELL 50% of the ETHUSDT position at market when RSI(14) on 1h candles is above 70"
            )
        );
        assert_eq!(
            said("stop-loss de 5% en SOL").as_deref(),
            Some("SELL all of the SOLUSDT position at market with a stop loss 5% below the reference price")
        );
        assert_eq!(
            said("sell 2 ETH at 3500").as_deref(),
            Some("SELL 2 ETHUSDT as a limit order at 3500")
        );
        assert_eq!(
            said("buy $100 of SOL").as_deref(),
            Some("BUY 100 USDT of SOLUSDT at market")
        );
        assert_eq!(said("cancela todo").as_deref(), Some("CANCEL all orders"));
        assert_eq!(
            said("cancel all BTC orders").as_deref(),
            Some("CANCEL all BTCUSDT orders")
        );
    }

    #[test]
    fn questions_name_their_subject() {
        let opts = ParseOptions::default();
        let question = |t: &str| match parse(t, &opts) {
            Parsed::Ask(q) => q.text,
            other => panic!("{t:?}: {other:?}"),
        };
        assert!(question("buy BTC").contains("how much BTC"));
        assert!(question("buy 1 FOO").contains("unknown asset FOO"));
        assert!(question("1.500 DOGE").contains("1.5 or 1500"));
        assert!(question("buy 1 BTC?").contains("BUY 1 BTCUSDT at market"));
        assert!(question("buy 0.1 BTC tomorrow").contains("tomorrow"));
    }

    #[test]
    fn refusals_name_the_character() {
        let opts = ParseOptions::default();
        let reason = |t: &str| match parse(t, &opts) {
            Parsed::Refused(r) => r.text,
            other => panic!("{t:?}: {other:?}"),
        };
        assert!(reason("buy\u{200B} 1 BTC").contains("U+200B"));
        assert!(reason("buy 1 \u{202E}CTB").contains("text-direction"));
        assert!(reason("buy 1 BTC 🚀").contains("emoji"));
    }

    #[test]
    fn options_change_the_quote_and_the_assets() {
        let eur = ParseOptions {
            default_quote: "EUR".to_string(),
            ..ParseOptions::default()
        };
        assert_eq!(
            parse("buy 0.1 BTC", &eur),
            Parsed::Command(Command::Order(order(Buy, "BTC", "EUR", qty("0.1"))))
        );
        assert!(matches!(
            parse("buy $100 of BTC", &eur),
            Parsed::Ask(Question {
                about: Subject::Quote,
                ..
            })
        ));
        let few = ParseOptions {
            known_assets: vec!["BTC".to_string()],
            ..ParseOptions::default()
        };
        assert!(matches!(
            parse("buy 1 SOL", &few),
            Parsed::Ask(Question {
                about: Subject::Asset,
                ..
            })
        ));
        // An alias only stands for a known ticker.
        assert!(matches!(
            parse("buy 1 solana", &few),
            Parsed::Ask(Question {
                about: Subject::Asset,
                ..
            })
        ));
    }

    #[test]
    fn outcomes_serialize_as_tagged_json() {
        let opts = ParseOptions::default();
        for text in [
            "vende la mitad de mi ETH si el RSI de 1h pasa de 70",
            "buy 0.1 BTC at 45000 when RSI 1h below 30",
            "stop loss 5% on SOL",
            "buy $100 of SOL",
            "cancel all BTC orders",
            "cancel all",
            "buy BTC",
            "buy -1 BTC",
        ] {
            let p = parse(text, &opts);
            let json = serde_json::to_string(&p).unwrap();
            let back: Parsed = serde_json::from_str(&json).unwrap();
            assert_eq!(back, p, "{json}");
        }
        let json =
            serde_json::to_value(parse("sell half my ETH when RSI 1h above 70", &opts)).unwrap();
        assert_eq!(json["outcome"], "command");
        assert_eq!(json["type"], "order");
        assert_eq!(json["side"], "sell");
        assert_eq!(json["symbol"], "ETHUSDT");
        assert_eq!(json["amount"]["type"], "fraction_of_position");
        assert_eq!(json["kind"]["type"], "market");
        assert_eq!(json["trigger"]["type"], "indicator");
        assert_eq!(json["trigger"]["indicator"]["name"], "rsi");
        assert_eq!(json["trigger"]["interval"], "1h");
        assert_eq!(json["trigger"]["op"], "above");
        assert_eq!(json["trigger"]["value"], "70");
        let json = serde_json::to_value(parse("buy 0.10 BTC at 45000.00", &opts)).unwrap();
        assert_eq!(json["amount"]["qty"], "0.1");
        assert_eq!(json["kind"]["price"], "45000");
        let json = serde_json::to_value(parse("buy BTC", &opts)).unwrap();
        assert_eq!(json["outcome"], "ask");
        assert_eq!(json["about"], "amount");
        let json = serde_json::to_value(parse("buy 0 BTC", &opts)).unwrap();
        assert_eq!(json["outcome"], "refused");
        assert_eq!(json["reason"], "non_positive");
    }

    #[test]
    fn number_rule() {
        let read = |raw: &str, lang| read_number(raw, false, lang);
        assert_eq!(read("0,5", Lang::En), Ok(d("0.5")));
        assert_eq!(read("0,5", Lang::Unknown), Ok(d("0.5")));
        assert_eq!(read("45,000", Lang::En), Ok(d("45000")));
        assert_eq!(read("45,000", Lang::Es), Ok(d("45")));
        assert_eq!(read("40.000", Lang::Es), Ok(d("40000")));
        assert_eq!(read("40.000", Lang::En), Ok(d("40")));
        assert!(matches!(read("40.000", Lang::Unknown), Err(Stop::Ask(_))));
        assert_eq!(read("1.000.000", Lang::En), Ok(d("1000000")));
        assert_eq!(read("1,000,000.25", Lang::Es), Ok(d("1000000.25")));
        assert_eq!(read("1.000.000,25", Lang::En), Ok(d("1000000.25")));
        assert_eq!(read("0.500", Lang::Unknown), Ok(d("0.5")));
        assert_eq!(read("1234.567", Lang::Unknown), Ok(d("1234.567")));
        assert_eq!(read(".5", Lang::Unknown), Ok(d("0.5")));
        assert!(matches!(read("1,00,000", Lang::En), Err(Stop::Ask(_))));
        assert_eq!(read_number("1.5", true, Lang::En), Ok(d("1500")));
    }

    fn asset() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "BNB", "PEPE",
        ])
    }
    fn quote() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["USDT", "USDC", "BTC", "ETH", "EUR", "FDUSD"])
    }
    fn positive() -> impl Strategy<Value = Decimal> {
        (1i64..1_000_000_000, 0u32..9).prop_map(|(m, s)| Decimal::new(m, s))
    }
    fn level() -> impl Strategy<Value = Decimal> {
        (1i64..10_000).prop_map(|m| Decimal::new(m, 2))
    }

    fn command() -> impl Strategy<Value = Command> {
        let interval = prop::sample::select(Interval::labels().collect::<Vec<_>>())
            .prop_map(|l| l.parse::<Interval>().unwrap());
        let trigger = prop_oneof![
            Just(None),
            positive().prop_map(|p| Some(Trigger::PriceAtOrBelow { price: p })),
            positive().prop_map(|p| Some(Trigger::PriceAtOrAbove { price: p })),
            (2u32..200, interval, any::<bool>(), level()).prop_map(
                |(period, interval, up, value)| {
                    Some(Trigger::Indicator {
                        indicator: IndicatorRef::Rsi { period },
                        interval,
                        op: if up {
                            Comparison::Above
                        } else {
                            Comparison::Below
                        },
                        value,
                    })
                }
            ),
        ];
        let amount = prop_oneof![
            positive().prop_map(|qty| Amount::Base { qty }),
            positive().prop_map(|notional| Amount::Quote { notional }),
            level().prop_map(|p| Amount::FractionOfPosition {
                fraction: p / Decimal::ONE_HUNDRED
            }),
        ];
        let kind = prop_oneof![
            Just(OrderKind::Market),
            positive().prop_map(|price| OrderKind::Limit { price }),
        ];
        let protect = prop_oneof![
            level().prop_map(|pct| Trigger::StopLossPct { pct }),
            (1i64..100_000).prop_map(|m| Trigger::TakeProfitPct {
                pct: Decimal::new(m, 2)
            }),
        ];
        let protect_amount = prop_oneof![
            positive().prop_map(|qty| Amount::Base { qty }),
            level().prop_map(|p| Amount::FractionOfPosition {
                fraction: p / Decimal::ONE_HUNDRED
            }),
        ];
        let pair = || (asset(), quote()).prop_filter("base differs from quote", |(b, q)| b != q);
        prop_oneof![
            (pair(), any::<bool>(), amount, kind, trigger).prop_filter_map(
                "fractions are sold",
                |((b, q), buy, amount, kind, trigger)| {
                    let side = if buy { Side::Buy } else { Side::Sell };
                    if buy && matches!(amount, Amount::FractionOfPosition { .. }) {
                        return None;
                    }
                    let mut o = order(side, b, q, amount);
                    o.kind = kind;
                    o.trigger = trigger;
                    Some(Command::Order(o))
                }
            ),
            (pair(), protect_amount, protect).prop_map(|((b, q), amount, t)| {
                Command::Order(order(Side::Sell, b, q, amount).when(t))
            }),
            pair().prop_map(|(b, q)| Command::Cancel {
                symbol: Some(Symbol::new(&format!("{b}{q}")).unwrap())
            }),
            Just(Command::Cancel { symbol: None }),
        ]
    }

    fn vocabulary() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "buy",
            "sell",
            "compra",
            "vende",
            "0.1",
            "0,5",
            "1.500",
            "40.000",
            "45,000",
            "$100",
            "100€",
            "5%",
            "BTC",
            "eth",
            "ETH/BTC",
            "btcusdt",
            "FOO",
            "at",
            "a",
            "@",
            "when",
            "si",
            "drops",
            "below",
            "baja",
            "de",
            "above",
            "RSI",
            "rsi(14)",
            "1h",
            "4h",
            "de",
            "mi",
            "half",
            "la",
            "mitad",
            "all",
            "todo",
            "stop",
            "loss",
            "stop-loss",
            "take",
            "profit",
            "cancel",
            "cancela",
            "orders",
            "of",
            "with",
            "USDC",
            "for",
            "in",
            "en",
            "limit",
            "market",
            "-",
            "/",
            "?",
            "¿",
            ">",
            "<=",
            "=",
            "k",
            "mil",
            "dollars",
            "dólares",
            "please",
            "por",
            "favor",
            "and",
            "no",
            "it",
            "price",
            "precio",
            "1e9",
            "-5",
            "0",
            "150%",
            "ñ",
            "é",
            "'",
            "’",
            ".",
            ",",
            "(",
            ")",
            "\u{200B}",
            "🚀",
        ]);
        prop::collection::vec(words, 0..14).prop_map(|w| w.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_panics_on_any_string(s in any::<String>()) {
            let _ = parse(&s, &ParseOptions::default());
        }

        #[test]
        fn never_panics_on_near_miss_orders(s in vocabulary()) {
            let opts = ParseOptions::default();
            let p = parse(&s, &opts);
            // A command always describes into a sentence that parses back to itself.
            if let Parsed::Command(cmd) = &p {
                prop_assert_eq!(parse(&cmd.describe(), &opts), Parsed::Command(cmd.clone()));
            }
        }

        #[test]
        fn describe_round_trips(cmd in command()) {
            let sentence = cmd.describe();
            prop_assert_eq!(
                parse(&sentence, &ParseOptions::default()),
                Parsed::Command(cmd.clone()),
                "{}", sentence
            );
        }
    }
}
