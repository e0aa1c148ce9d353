//! Study files (`posterior::space_file::parse`, the search-space TOML of
//! `posterior study create --space`).
//!
//! Properties checked:
//! 1. `parse` never panics, on any text and study name.
//! 2. On success the request names the study as asked and every parameter
//!    has exactly one kind set.
//!
//! Input layout: the TOML text is everything before the first NUL byte (TOML
//! forbids raw NUL); the study name is the rest (lossy UTF-8). A plain TOML
//! file is a valid input (study name "").

#![no_main]

use libfuzzer_sys::fuzz_target;
use posterior::space_file;

fuzz_target!(|data: &[u8]| {
    let (text, name) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let name = String::from_utf8_lossy(name);
    match space_file::parse(&name, &text) {
        Ok(req) => {
            assert_eq!(req.name, name);
            assert!(req.objective.is_some());
            for p in &req.parameters {
                assert!(p.kind.is_some(), "parameter {:?} without a kind", p.name);
            }
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
