//! Configuration (`posterior::config::Config`).
//!
//! Properties checked:
//! 1. `from_toml`, `validate`, `listen_addr`, `metrics_addr` and `apply_env`
//!    never panic, on any text and any environment values.
//! 2. `validate() == Ok` implies `listen_addr()` and `metrics_addr()` are Ok
//!    (the server calls them after validation and relies on it).
//! 3. `apply_env` with no variables set changes nothing.
//!
//! Input layout: the TOML text is everything before the first NUL byte (TOML
//! forbids raw NUL, so no text is lost); after it, NUL-separated segments are
//! the environment: segment `i` is the value of `ENV_OVERRIDES[i]`, unset if
//! its first byte is even, else the rest of the segment (lossy UTF-8).
//! Variables `apply_env` reads that are not in `ENV_OVERRIDES` get a segment
//! chosen by the name's length. A plain TOML file is a valid input with no
//! variables set.

#![no_main]

use libfuzzer_sys::fuzz_target;
use posterior::config::{Config, ENV_OVERRIDES};

fn check(cfg: &Config) {
    let valid = cfg.validate();
    let listen = cfg.listen_addr();
    let metrics = cfg.metrics_addr();
    if valid.is_ok() {
        assert!(listen.is_ok(), "validated, but listen_addr: {listen:?}");
        assert!(metrics.is_ok(), "validated, but metrics_addr: {metrics:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, env) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let segments: Vec<Option<String>> = if env.is_empty() {
        Vec::new()
    } else {
        env.split(|&b| b == 0)
            .map(|s| match s.split_first() {
                Some((flag, v)) if flag & 1 == 1 => Some(String::from_utf8_lossy(v).into_owned()),
                _ => None,
            })
            .collect()
    };
    let get = |name: &str| -> Option<String> {
        if segments.is_empty() {
            return None;
        }
        let i = ENV_OVERRIDES
            .iter()
            .position(|(var, _)| *var == name)
            .unwrap_or(name.len() % segments.len());
        segments.get(i).cloned().flatten()
    };

    // From the file when it parses, else the defaults: apply_env is
    // exercised either way.
    let mut cfg = match Config::from_toml(&text) {
        Ok(cfg) => {
            check(&cfg);
            let mut unchanged = cfg.clone();
            unchanged
                .apply_env(|_| None)
                .expect("no variables set cannot fail");
            assert_eq!(
                unchanged, cfg,
                "apply_env with no variables changed the config"
            );
            cfg
        }
        Err(e) => {
            assert!(!e.is_empty());
            Config::default()
        }
    };
    if cfg.apply_env(get).is_ok() {
        check(&cfg);
    }
});
