//! Public API path routing and segment decoding. The first byte picks the method.
#![no_main]

use libfuzzer_sys::fuzz_target;

const METHODS: [&[u8]; 6] = [b"GET", b"HEAD", b"POST", b"PATCH", b"DELETE", b"OPTIONS"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(path) = std::str::from_utf8(rest) else { return };
    keygate_web::fuzzing::public_api_path(METHODS[usize::from(pick) % METHODS.len()], path);
});
