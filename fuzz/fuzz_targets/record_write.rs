//! Record-field validation: arbitrary JSON bodies for each writable resource (the first byte
//! picks it), validated and written as the data API does.
#![no_main]

use keygate_service::fuzzing::{RESOURCES, record_write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    record_write(RESOURCES[usize::from(pick) % RESOURCES.len()], body);
});
