//! The key parser: any text is checked without a panic, and what passes is a key whose display
//! form and digest can be made.
#![no_main]

use keygate_domain::{ApiKeySecret, KeyDigest, api_key::check_format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let checked = check_format(text);
    let parsed = ApiKeySecret::parse(text);
    assert_eq!(checked.is_ok(), parsed.is_ok(), "check_format and parse agree on {text:?}");
    if let Ok(key) = parsed {
        assert!(key.expose().starts_with("kg_") && key.expose().len() == 41);
        let _ = (key.display_form(), KeyDigest::of(text));
    }
});
