//! The filter language: parse, check against a view, compile for both engines. The first byte
//! picks the view; the rest is the filter text.
#![no_main]

use keygate_domain::{filter, views::VIEWS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if let Ok(expr) = filter::parse(text) {
        // The canonical text parses back to the same tree (when it is still within the limit).
        let canonical = expr.to_string();
        if canonical.chars().count() <= filter::MAX_LEN {
            assert_eq!(filter::parse(&canonical).as_ref(), Ok(&expr), "{canonical}");
        }
    }
    keygate_store::fuzzing::compile_filter(VIEWS[usize::from(pick) % VIEWS.len()].name, text);
});
