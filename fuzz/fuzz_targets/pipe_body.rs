//! The pipe-format body parser on arbitrary bytes.
#![no_main]

use ecstatic_ingest::bunny::{BodyFormat, parse_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = parse_body(data, BodyFormat::Pipe) {
        assert!((100..=999).contains(&record.status));
        assert_ne!(record.pull_zone_id, 0);
    }
});
