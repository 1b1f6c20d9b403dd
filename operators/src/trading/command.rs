//! The commands an operator gives a running executor, whichever way they come: the control API,
//! `cryptoflow control`, or Telegram. One enum, one table of names: each channel only reads its
//! own syntax into a [`Command`] (`/status` on Telegram, `status` on the command line,
//! `GET /status` on the API).

use super::conditional::Origin;

/// A command of an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Paused or not, killed or not, positions, open orders, armed text orders.
    Status,
    /// The open positions.
    Positions,
    /// Realised and unrealised PnL, fees, today's PnL.
    Pnl,
    /// No new orders until resumed.
    Pause,
    /// Orders again (not after the kill switch).
    Resume,
    /// The kill switch: no new orders until a restart, every open order cancelled.
    Kill,
    /// The text orders still pending or armed.
    Orders,
    /// The list of commands.
    Help,
    /// A text order, to be shown back and confirmed.
    Text {
        /// The message.
        text: String,
        /// Who sent it.
        origin: Origin,
    },
    /// Confirms a proposal.
    Confirm {
        /// The proposal's id.
        id: String,
    },
    /// Rejects a proposal.
    Reject {
        /// The proposal's id.
        id: String,
    },
}

/// The commands without arguments, by name, with what each does.
pub const NAMED: [(&str, &str); 8] = [
    ("status", "executor status"),
    ("positions", "open positions"),
    ("pnl", "profit and loss"),
    ("pause", "stop placing new orders"),
    ("resume", "place orders again"),
    ("kill", "emergency stop"),
    ("orders", "pending and armed text orders"),
    ("help", "this help"),
];

impl Command {
    /// The command without arguments called `name` (ASCII case ignored).
    pub fn named(name: &str) -> Option<Command> {
        Some(match name.to_ascii_lowercase().as_str() {
            "status" => Command::Status,
            "positions" => Command::Positions,
            "pnl" => Command::Pnl,
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "kill" => Command::Kill,
            "orders" => Command::Orders,
            "help" => Command::Help,
            _ => return None,
        })
    }

    /// The command's name: one of [`NAMED`], or `order`, `confirm`, `reject`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Status => "status",
            Command::Positions => "positions",
            Command::Pnl => "pnl",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Kill => "kill",
            Command::Orders => "orders",
            Command::Help => "help",
            Command::Text { .. } => "order",
            Command::Confirm { .. } => "confirm",
            Command::Reject { .. } => "reject",
        }
    }

    /// Whether it only reads (changes nothing in the executor).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Status | Command::Positions | Command::Pnl | Command::Orders | Command::Help
        )
    }

    /// A command in words, as `cryptoflow control` takes it: a name of [`NAMED`] alone,
    /// `order <text…>`, `confirm <id>` or `reject <id>`; `origin` is who gives a text order.
    pub fn from_words<S: AsRef<str>>(words: &[S], origin: Origin) -> Result<Command, String> {
        let Some((first, rest)) = words.split_first() else {
            return Err(format!("no command; one of: {}", Self::names()));
        };
        let name = first.as_ref().to_ascii_lowercase();
        let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
        let one_id = |what: &str| match rest.as_slice() {
            [id] if !id.trim().is_empty() => Ok(id.trim().to_string()),
            _ => Err(format!("`{what}` takes one proposal id")),
        };
        match name.as_str() {
            "order" => {
                let text = rest.join(" ");
                if text.trim().is_empty() {
                    return Err("`order` needs the order in words".into());
                }
                Ok(Command::Text {
                    text: text.trim().to_string(),
                    origin,
                })
            }
            "confirm" => one_id("confirm").map(|id| Command::Confirm { id }),
            "reject" => one_id("reject").map(|id| Command::Reject { id }),
            _ => match Command::named(&name) {
                Some(c) if rest.is_empty() => Ok(c),
                Some(_) => Err(format!("`{name}` takes no arguments")),
                None => Err(format!(
                    "unknown command `{}`; one of: {}",
                    first.as_ref(),
                    Self::names()
                )),
            },
        }
    }

    fn names() -> String {
        let mut names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
        names.extend(["order <text>", "confirm <id>", "reject <id>"]);
        names.join(", ")
    }

    /// The list of the commands without arguments, one a line, each name after `prefix`
    /// (`/` on Telegram), then how a text order is given (`text_orders`).
    pub fn help(prefix: &str, text_orders: &str) -> String {
        let mut out = String::from("Commands:\n");
        for (name, about) in NAMED {
            out.push_str(prefix);
            out.push_str(name);
            out.push_str(": ");
            out.push_str(about);
            out.push('\n');
        }
        out.push_str(text_orders);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> Origin {
        Origin {
            channel: "cli".into(),
            user: "cli".into(),
        }
    }

    #[test]
    fn every_name_reads_back_to_its_command() {
        for (name, _) in NAMED {
            let c = Command::named(name).expect(name);
            assert_eq!(c.name(), name);
            assert_eq!(Command::named(&name.to_uppercase()), Some(c));
        }
        assert_eq!(Command::named("order"), None);
        assert_eq!(Command::named("start"), None);
    }

    #[test]
    fn words_make_commands() {
        let w = |s: &str| Command::from_words(&s.split_whitespace().collect::<Vec<_>>(), cli());
        assert_eq!(w("status"), Ok(Command::Status));
        assert_eq!(w("KILL"), Ok(Command::Kill));
        assert_eq!(
            w("order buy 0.1 BTC when it drops below 45000"),
            Ok(Command::Text {
                text: "buy 0.1 BTC when it drops below 45000".into(),
                origin: cli()
            })
        );
        assert_eq!(w("confirm t1"), Ok(Command::Confirm { id: "t1".into() }));
        assert_eq!(w("reject t1"), Ok(Command::Reject { id: "t1".into() }));
        for bad in ["", "order", "confirm", "confirm a b", "status now", "sell"] {
            assert!(w(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_lists_every_name() {
        let help = Command::help("/", "Any other text is read as an order.");
        assert!(help.starts_with("Commands:\n/status: executor status\n"));
        assert!(help.ends_with("/help: this help\nAny other text is read as an order."));
        assert_eq!(help.lines().count(), NAMED.len() + 2);
    }
}
