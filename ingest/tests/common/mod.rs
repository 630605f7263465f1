//! Helpers shared by the parsing-core tests: fixtures, a one-read decode,
//! and a slow reference frame splitter (the oracle for the decoder).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::PathBuf;
use std::sync::LazyLock;

use bytes::BytesMut;
use ecstatic_ingest::{
    BodyFormat, Enricher, EnricherConfig, Frame, RawAccess, Rejection, SyslogDecoder, parse_message,
};
use ecstatic_store::AccessRow;
use tokio_util::codec::Decoder;

/// One process-wide enricher: compiling the agent rules takes a while.
pub static ENRICHER: LazyLock<Enricher> = LazyLock::new(|| {
    Enricher::new(EnricherConfig {
        ua_cache_capacity: 1000,
        visitor_key: [7; 16],
    })
});

/// A file under the repository's `testdata/`.
pub fn testdata(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(path)
}

pub fn read_testdata(path: &str) -> Vec<u8> {
    let path = testdata(path);
    std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// Decodes `input` given as one read, then end of stream.
pub fn decode_all(input: &[u8], max_frame_bytes: usize) -> Vec<Frame> {
    decode_reads(&[input], max_frame_bytes).0
}

/// Decodes `reads` one after another, then end of stream; also returns the
/// decoder's end-of-stream error, if any.
pub fn decode_reads(reads: &[&[u8]], max_frame_bytes: usize) -> (Vec<Frame>, Option<String>) {
    let mut decoder = SyslogDecoder::new(max_frame_bytes);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for read in reads {
        buf.extend_from_slice(read);
        while let Some(frame) = decoder
            .decode(&mut buf)
            .expect("decode never fails mid-stream")
        {
            frames.push(frame);
        }
    }
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(err) => return (frames, Some(err.to_string())),
        }
    }
}

/// A parsed and enriched record, detached from its frame.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub raw: RawAccess<'static>,
    pub row: AccessRow,
}

/// Runs a whole stream through decoder, parser and enricher.
pub fn run_stream(input: &[u8]) -> Vec<Result<Parsed, Rejection>> {
    decode_all(input, ecstatic_ingest::DEFAULT_MAX_FRAME_BYTES)
        .into_iter()
        .map(|frame| match frame {
            Frame::Message(bytes) => parse_message(&bytes, BodyFormat::Auto).map(|raw| {
                let row = ENRICHER.with_row(&raw, |row| row.to_owned_row());
                Parsed {
                    raw: raw.into_owned(),
                    row,
                }
            }),
            Frame::Oversize { .. } => Err(Rejection::new(ecstatic_ingest::Reason::FrameTooLarge)),
        })
        .collect()
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn ms(rfc3339: &str) -> u64 {
    let ts: jiff::Timestamp = rfc3339.parse().expect("valid RFC 3339 time");
    u64::try_from(ts.as_millisecond()).expect("after 1970")
}

/// A frame as the reference splitter sees it: the item, and the input
/// offset at which it is complete without end of stream (`None` when only
/// end of stream completes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefFrame {
    pub frame: Frame,
    pub complete_at: Option<usize>,
}

/// The reference splitter: the framing rules of `ingest::framing`, applied
/// to the whole input at once, byte by byte, with no buffering concerns.
/// Returns the frames and whether the stream ended inside a counted frame.
pub fn reference_frames(input: &[u8], max: usize) -> (Vec<RefFrame>, bool) {
    let mut frames = Vec::new();
    let mut i = 0;
    loop {
        while i < input.len() && matches!(input[i], b'\n' | b'\r' | 0) {
            i += 1;
        }
        if i == input.len() {
            return (frames, false);
        }
        let mut digits = 0;
        while digits <= 10 && i + digits < input.len() && input[i + digits].is_ascii_digit() {
            digits += 1;
        }
        let counted = (1..=10).contains(&digits) && input.get(i + digits) == Some(&b' ');
        if counted {
            let len: usize = std::str::from_utf8(&input[i..i + digits])
                .unwrap()
                .parse()
                .unwrap();
            let start = i + digits + 1;
            let end = start + len;
            if len > max {
                let complete_at = (end <= input.len()).then_some(end);
                frames.push(RefFrame {
                    frame: Frame::Oversize { bytes: len },
                    complete_at,
                });
                if end > input.len() {
                    return (frames, false);
                }
            } else if end > input.len() {
                return (frames, true);
            } else {
                push_message(&mut frames, &input[start..end], Some(end));
            }
            i = end;
            continue;
        }
        let (content_end, next, complete_at) = match input[i..].iter().position(|&b| b == b'\n') {
            Some(at) => (i + at, i + at + 1, Some(i + at + 1)),
            None => (input.len(), input.len(), None),
        };
        let content = &input[i..content_end];
        if content.len() > max {
            frames.push(RefFrame {
                frame: Frame::Oversize {
                    bytes: content.len(),
                },
                complete_at,
            });
        } else {
            push_message(&mut frames, content, complete_at);
        }
        i = next;
    }
}

fn push_message(frames: &mut Vec<RefFrame>, content: &[u8], complete_at: Option<usize>) {
    let mut end = content.len();
    while end > 0 && matches!(content[end - 1], b'\n' | b'\r' | 0) {
        end -= 1;
    }
    if end > 0 {
        let frame = Frame::Message(bytes::Bytes::copy_from_slice(&content[..end]));
        frames.push(RefFrame { frame, complete_at });
    }
}
