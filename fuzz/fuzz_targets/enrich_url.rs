//! The URL and referer helpers of `ecstatic-enrich` on arbitrary text: never
//! panic, and hand back parts that really are pieces of their input.
#![no_main]

use ecstatic_enrich::{file_type, normalize_country, referrer_host, split_url};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parts = split_url(text);
    for part in [parts.scheme, parts.host, parts.path, parts.query] {
        assert!(part.is_empty() || part == "/" || text.contains(part));
    }
    let _ = file_type(parts.path);
    if let Some(host) = referrer_host(text) {
        assert!(!host.is_empty());
        assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
    }
    if let Some(code) = normalize_country(text) {
        assert!(code.iter().all(u8::is_ascii_uppercase));
    }
});
