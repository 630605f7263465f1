//! The decoder against awkward reads: every split point of every sample and
//! field case, three-way splits of a small mixed stream, oversize frames, and
//! a slow reference splitter as the oracle.

mod common;

use bytes::{Bytes, BytesMut};
use common::{RefFrame, decode_all, decode_reads, read_testdata, reference_frames};
use ecstatic_ingest::{DEFAULT_MAX_FRAME_BYTES, Frame, SyslogDecoder};
use tokio_util::codec::Decoder;

const INPUTS: &[&str] = &[
    "bunny/forward-pipe.syslog",
    "bunny/forward-json.syslog",
    "bunny/octet-counted.syslog",
    "bunny/logging-api-v1.log",
    "cases/01-bom-before-body/input",
    "cases/02-octet-frames-split-reads/input",
    "cases/05-structured-data-escapes/input",
    "cases/08-crlf-and-missing-final-newline/input",
    "cases/09-empty-and-dash-fields/input",
    "cases/10-ip-addresses/input",
    "cases/11-large-numbers/input",
    "cases/12-timestamps/input",
    "cases/13-json-escapes-unknown-fields/input",
    "cases/15-rfc3164-and-foreign-messages/input",
    "cases/17-enrichment-edge-cases/input",
    "cases/18-long-user-agents/input",
];

/// A small stream mixing every framing situation: counted and LF frames back
/// to back, CRLF, NULs and empty lines between frames, a line that starts
/// with digits, an empty counted frame (`0 `), a last line without LF.
const MIXED: &[u8] = b"5 hello\n\r\n<1>1 - - - - - x\r\n\0\x0012 twelve bytes3 abc\
                       200|line\n123\n0 tail-without-lf\0\0";

fn frames_only(reference: &[RefFrame]) -> Vec<Frame> {
    reference.iter().map(|r| r.frame.clone()).collect()
}

/// Feeds `input[..split]`, checks exactly the frames complete by then came
/// out (none early, none late, a pending read in between), then the rest.
fn check_split(input: &[u8], split: usize, max: usize, reference: &[RefFrame]) {
    let mut decoder = SyslogDecoder::new(max);
    let mut buf = BytesMut::from(&input[..split]);
    let mut got = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        got.push(frame);
    }
    let due: Vec<&RefFrame> = reference
        .iter()
        .filter(|r| r.complete_at.is_some_and(|at| at <= split))
        .collect();
    assert_eq!(
        got.len(),
        due.len(),
        "split at {split}: frames out before the rest arrived"
    );
    // What stays buffered is at most the bytes after the last complete frame.
    let last_end = due.last().and_then(|r| r.complete_at).unwrap_or(0);
    assert!(
        buf.len() <= split - last_end,
        "split at {split}: {} bytes buffered",
        buf.len()
    );
    // Still pending: another decode without new bytes yields nothing.
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);

    buf.extend_from_slice(&input[split..]);
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        got.push(frame);
    }
    while let Some(frame) = decoder.decode_eof(&mut buf).unwrap() {
        got.push(frame);
    }
    assert_eq!(got, frames_only(reference), "split at {split}");
    assert!(buf.is_empty());
}

#[test]
fn every_split_point_of_every_sample_gives_the_same_frames() {
    for name in INPUTS {
        let input = read_testdata(name);
        let (reference, truncated) = reference_frames(&input, DEFAULT_MAX_FRAME_BYTES);
        assert!(!truncated, "{name}");
        assert_eq!(
            decode_all(&input, DEFAULT_MAX_FRAME_BYTES),
            frames_only(&reference),
            "{name}"
        );
        assert!(
            reference
                .iter()
                .all(|r| matches!(r.frame, Frame::Message(_))),
            "{name}"
        );
        for split in 0..=input.len() {
            check_split(&input, split, DEFAULT_MAX_FRAME_BYTES, &reference);
        }
    }
}

#[test]
fn every_three_way_split_of_a_mixed_stream() {
    let (reference, _) = reference_frames(MIXED, 64);
    let expected = frames_only(&reference);
    let texts: Vec<&[u8]> = expected
        .iter()
        .map(|f| match f {
            Frame::Message(b) => &b[..],
            Frame::Oversize { .. } => unreachable!("no oversize frame in MIXED"),
        })
        .collect();
    assert_eq!(
        texts,
        [
            &b"hello"[..],
            b"<1>1 - - - - - x",
            b"twelve bytes",
            b"abc",
            b"200|line",
            b"123",
            b"tail-without-lf"
        ]
    );
    for a in 0..=MIXED.len() {
        for b in a..=MIXED.len() {
            let (frames, err) = decode_reads(&[&MIXED[..a], &MIXED[a..b], &MIXED[b..]], 64);
            assert_eq!(
                (frames, err),
                (expected.clone(), None),
                "splits at {a} and {b}"
            );
        }
    }
}

#[test]
fn case_02_writes_as_sent_over_tcp() {
    // Case 02 (vector#4895): the count's digits, the BOM and a two-byte `é`
    // were each cut by a TCP read; a decoder that assumed whole frames per
    // read took a frame's tail for a new message.
    let input = read_testdata("cases/02-octet-frames-split-reads/input");
    let cuts = [0, 2, 4, 141, 383, 437, 843, input.len()];
    let reads: Vec<&[u8]> = cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect();
    let (frames, err) = decode_reads(&reads, DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(err, None);
    let lens: Vec<usize> = frames
        .iter()
        .map(|f| match f {
            Frame::Message(b) => b.len(),
            Frame::Oversize { bytes } => panic!("oversize {bytes}"),
        })
        .collect();
    // MSG-LEN 432, 404, 325; frame 2's trailing space stays in the message
    // (the body parser trims it).
    assert_eq!(lens, [432, 404, 325]);
}

#[test]
fn oversize_frames_are_discarded_and_decoding_resumes() {
    let input = b"ok1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nok2\n\
                  40 BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB3 ok3";
    let expected = vec![
        Frame::Message(Bytes::from_static(b"ok1")),
        Frame::Oversize { bytes: 40 },
        Frame::Message(Bytes::from_static(b"ok2")),
        Frame::Oversize { bytes: 40 },
        Frame::Message(Bytes::from_static(b"ok3")),
    ];
    let (reference, _) = reference_frames(input, 16);
    assert_eq!(frames_only(&reference), expected);
    for split in 0..=input.len() {
        check_split(input, split, 16, &reference);
    }
}

#[test]
fn oversize_line_is_never_buffered_whole() {
    let mut decoder = SyslogDecoder::new(1024);
    let mut buf = BytesMut::new();
    for _ in 0..100 {
        buf.extend_from_slice(&[b'x'; 4096]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(buf.len() <= 4096, "{} bytes held", buf.len());
    }
    buf.extend_from_slice(b"\nnext\n");
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(Frame::Oversize { bytes: 409_600 })
    );
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(Frame::Message(Bytes::from_static(b"next")))
    );
}

#[test]
fn crlf_nul_and_missing_final_newline() {
    // Case 08 (fluentd#1270, rsyslog#241): a kept CR showed up as `#015` in
    // stored text, and a last line without LF was never emitted.
    let frames = decode_all(b"a\r\nb\0\0\nc", 100);
    let texts: Vec<Frame> = ["a", "b", "c"]
        .iter()
        .map(|t| Frame::Message(Bytes::from_static(t.as_bytes())))
        .collect();
    assert_eq!(frames, texts);
    let mut decoder = SyslogDecoder::new(100);
    let mut buf = BytesMut::from(&b"c"[..]);
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        None,
        "no frame before end of stream"
    );
    assert!(!decoder.is_between_frames());
    assert_eq!(
        decoder.decode_eof(&mut buf).unwrap(),
        Some(texts[2].clone())
    );
    assert_eq!(decoder.decode_eof(&mut buf).unwrap(), None);
}

#[test]
fn stream_ending_inside_a_counted_frame_is_reported() {
    let (frames, err) = decode_reads(&[b"3 abc100 partial"], 1000);
    assert_eq!(frames, [Frame::Message(Bytes::from_static(b"abc"))]);
    let err = err.expect("an error for the partial frame");
    assert!(err.contains("7 of 100 bytes"), "{err}");
    let (_, truncated) = reference_frames(b"3 abc100 partial", 1000);
    assert!(truncated);
}
