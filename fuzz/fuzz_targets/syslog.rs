//! Syslog header parsing (and the body behind it) on arbitrary frames.
#![no_main]

use ecstatic_ingest::syslog::split_frame;
use ecstatic_ingest::{BodyFormat, parse_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, body)) = split_frame(data) {
        // The body is always a suffix of the frame.
        assert!(data.ends_with(body));
    }
    let _ = parse_message(data, BodyFormat::Auto);
});
