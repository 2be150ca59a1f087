//! The client address behind trusted proxies: `X-Forwarded-For` values (split at newlines) and an
//! optional `X-Real-IP` (after a NUL).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (forwarded, real_ip) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let values: Vec<&[u8]> = forwarded.split(|b| *b == b'\n').collect();
    let trusted = ["10.0.0.0/8".to_owned(), "2001:db8::/32".to_owned()];
    keygate_web::fuzzing::forwarded_for(&values, real_ip, &trusted);
});
