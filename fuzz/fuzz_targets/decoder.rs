//! The frame decoder on arbitrary bytes cut into arbitrary reads: never
//! panics, never yields an empty message or one above the maximum, and gives
//! the same frames whatever the cuts.
#![no_main]

use bytes::BytesMut;
use ecstatic_ingest::{Frame, SyslogDecoder};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fn decode(reads: &[&[u8]], max: usize) -> Vec<Frame> {
    let mut decoder = SyslogDecoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        while let Some(frame) = decoder.decode(&mut buf).expect("no error mid-stream") {
            frames.push(frame);
        }
    }
    while let Ok(Some(frame)) = decoder.decode_eof(&mut buf) {
        frames.push(frame);
    }
    frames
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else { return };
    let max = usize::from(control & 0x3f);
    let cut = if input.is_empty() { 0 } else { usize::from(control) * 7 % (input.len() + 1) };
    let whole = decode(&[input], max);
    let split = decode(&[&input[..cut], &input[cut..]], max);
    assert_eq!(whole, split, "cut at {cut}");
    for frame in &whole {
        if let Frame::Message(bytes) = frame {
            assert!(!bytes.is_empty() && bytes.len() <= max);
        }
    }
});
