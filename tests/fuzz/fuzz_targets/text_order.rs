//! Text orders (`operators::trading::text::parse`), as typed in a chat: never a panic, and a
//! parsed command's description parses back to the same command (as `Command::describe`
//! promises).
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use std::sync::OnceLock;

use cryptoflow_operators::trading::text::{parse, ParseOptions, Parsed};
use libfuzzer_sys::fuzz_target;

static OPTS: OnceLock<ParseOptions> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some(text) = cryptoflow_fuzz::text(data) else {
        return;
    };
    let opts = OPTS.get_or_init(ParseOptions::default);
    if let Parsed::Command(cmd) = parse(text, opts) {
        let shown = cmd.describe();
        assert_eq!(
            parse(&shown, opts),
            Parsed::Command(cmd),
            "{text:?} is shown as {shown:?}, which reads otherwise"
        );
    }
});
