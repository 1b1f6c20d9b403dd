//! The TOML config file (`cryptoflow::config::Config::load_text`), over the embedded defaults.
#![no_main]
cryptoflow_fuzz::bounded_allocator!();

use std::path::Path;

use cryptoflow::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(text) = cryptoflow_fuzz::text(data) else {
        return;
    };
    if let Ok(cfg) = Config::load_text(Some((Path::new("fuzz.toml"), text)), Vec::new()) {
        // What `check-config` and the run derive from a loaded config must not fail either.
        let _ = cfg.to_redacted_toml();
        let _ = cfg.binance_venue();
        let _ = cfg.stream_names();
    }
});
