//! The push-head parser and the packet splitter on arbitrary bytes: never
//! panic, never claim more bytes than they were given, and agree with each
//! other about where the command section ends.
//!
//! `cd fuzz && cargo +nightly fuzz run git_pkt_line -- -max_total_time=30`
#![no_main]

#[allow(
    dead_code,
    reason = "the target uses only the parsing half of the module"
)]
#[path = "../../git/src/pkt.rs"]
mod pkt;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let head = pkt::parse_push_head(data);
    if let Ok(Some((_, used))) = &head {
        assert!(*used <= data.len());
        // The same head, with nothing after it, parses the same way, and
        // any shorter prefix is still waiting for more.
        assert_eq!(pkt::parse_push_head(&data[..*used]), head);
        assert_eq!(pkt::parse_push_head(&data[..*used - 1]), Ok(None));
    }

    // Splitting packets consumes exactly what it hands out.
    let mut buf = BytesMut::from(data);
    let mut consumed = 0;
    while let Ok(Some(packet)) = pkt::split_packet(&mut buf) {
        consumed += match packet {
            pkt::Packet::Data(bytes) | pkt::Packet::Special(bytes) => bytes.len(),
            pkt::Packet::Flush => 4,
        };
        assert_eq!(consumed + buf.len(), data.len());
    }
});
