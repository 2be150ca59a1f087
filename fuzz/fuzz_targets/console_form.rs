//! Console form bodies, decoded as the console's `Fields` extractor does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| keygate_web::fuzzing::console_form(body));
