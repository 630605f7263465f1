//! Splits a syslog TCP stream into messages, without copying them.
//!
//! Senders frame messages in one of two ways (RFC 6587), and may switch
//! between them from one message to the next, so the framing is detected per
//! frame, at the frame's first byte:
//!
//! - **octet counting**: `MSG-LEN SP MSG`, where `MSG-LEN` is a decimal byte
//!   count (at most [`MAX_COUNT_DIGITS`] digits) and the frame's first byte is
//!   a digit;
//! - **non-transparent framing**: the message runs to the next LF. A CR
//!   before the LF is dropped.
//!
//! Between frames, stray CR, LF and NUL bytes are skipped, so empty lines and
//! the NUL terminators some senders add yield nothing. Trailing CR, LF and NUL
//! bytes of a message are dropped, also inside an octet-counted frame. The
//! last message of a stream may lack its LF: [`Decoder::decode_eof`] yields
//! it when the peer closes.
//!
//! # Security
//!
//! Every length on the wire is hostile. `max_frame_bytes` bounds the message
//! size (the bytes before the LF, or the declared `MSG-LEN`; the framing
//! itself is not counted). A longer frame is never buffered: the decoder
//! discards it as it arrives, up to its declared length or its LF, then yields
//! one [`Frame::Oversize`] and goes on with the next frame. Buffered memory
//! stays below `max_frame_bytes` plus one read. A hostile `MSG-LEN` can make
//! the decoder discard the rest of that connection, never more.
//!
//! Errors: none during a stream. At the end of a stream inside an
//! octet-counted frame, `decode_eof` returns an `UnexpectedEof` error (the
//! partial frame is dropped; no record is ever made from one); the stream is
//! over at that point anyway.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Default largest message, in bytes: bunny's lines are well under 4 KiB even
/// with long agents; 64 KiB leaves room without letting one peer pin memory.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Most digits an octet count may have. More digits than this make the frame
/// a line: no real sender needs a count above 10^10 bytes.
pub const MAX_COUNT_DIGITS: usize = 10;

/// One item out of the decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message: framing removed, trailing CR/LF/NUL dropped, never empty.
    Message(Bytes),
    /// A frame longer than the maximum was discarded; `bytes` is its length
    /// without framing (as far as received, when the stream ended inside it).
    Oversize { bytes: usize },
}

/// Where the decoder is within the current frame. The buffer's front is
/// always the next byte of that frame that has not been consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: the framing of the next frame is not known yet.
    Start,
    /// Inside an LF-terminated frame; the first `scanned` buffered bytes hold
    /// no LF (so the next search starts there).
    Line { scanned: usize },
    /// Inside an octet-counted frame whose count and space are consumed;
    /// `len` message bytes follow.
    Counted { len: usize },
    /// Dropping an oversize LF frame up to its LF; `discarded` bytes gone.
    SkipLine { discarded: usize },
    /// Dropping an oversize counted frame: `remaining` of `len` bytes left.
    SkipCounted { remaining: usize, len: usize },
}

/// What the first bytes of a frame say about its framing.
enum Detected {
    /// `MSG-LEN SP`: the count, and the header's length including the space.
    Counted {
        len: usize,
        header: usize,
    },
    Line,
    /// Only digits so far: the next byte decides.
    NeedMore,
}

/// A [`Decoder`] for syslog over TCP: octet counting or LF framing, per frame.
#[derive(Debug, Clone)]
pub struct SyslogDecoder {
    max_frame_bytes: usize,
    state: State,
}

impl SyslogDecoder {
    /// A decoder that discards messages longer than `max_frame_bytes`
    /// (see the module's security note; [`DEFAULT_MAX_FRAME_BYTES`] is the
    /// usual value).
    pub fn new(max_frame_bytes: usize) -> Self {
        SyslogDecoder {
            max_frame_bytes,
            state: State::Start,
        }
    }

    /// The configured maximum message size, in bytes.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// True when no partial frame is pending (the decoder sits between
    /// frames).
    pub fn is_between_frames(&self) -> bool {
        self.state == State::Start
    }
}

impl Default for SyslogDecoder {
    fn default() -> Self {
        SyslogDecoder::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl Decoder for SyslogDecoder {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.step(buf)? {
                return Ok(Some(frame));
            }
            // `step` returns `None` with the state unchanged only when it
            // needs more input; any other `None` made progress: go on.
            if self.needs_input(buf) {
                return Ok(None);
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        match self.state {
            // Leftover digits with no space: they were a (short) line.
            State::Start | State::Line { .. } if !buf.is_empty() => {
                let len = buf.len();
                Ok(self.finish_line(buf, len, 0))
            }
            State::Start | State::Line { .. } => Ok(None),
            State::Counted { len } => {
                let got = buf.len();
                buf.clear();
                self.state = State::Start;
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("stream ended inside an octet-counted frame ({got} of {len} bytes)"),
                ))
            }
            State::SkipLine { discarded } => {
                let bytes = discarded + buf.len();
                buf.clear();
                self.state = State::Start;
                Ok(Some(Frame::Oversize { bytes }))
            }
            State::SkipCounted { len, .. } => {
                buf.clear();
                self.state = State::Start;
                Ok(Some(Frame::Oversize { bytes: len }))
            }
        }
    }
}

impl SyslogDecoder {
    /// Advances by one state transition; yields a frame when one completes.
    fn step(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        match self.state {
            // Between frames: skip separators, then read the framing.
            State::Start => {
                skip_separators(buf);
                match detect(buf) {
                    _ if buf.is_empty() => {}
                    Detected::NeedMore => {}
                    Detected::Line => self.state = State::Line { scanned: 0 },
                    Detected::Counted { len, header } => {
                        buf.advance(header);
                        self.state = if len > self.max_frame_bytes {
                            State::SkipCounted {
                                remaining: len,
                                len,
                            }
                        } else {
                            State::Counted { len }
                        };
                    }
                }
                Ok(None)
            }
            // A line: search for the LF only in bytes not searched before.
            State::Line { scanned } => match memchr::memchr(b'\n', &buf[scanned..]) {
                Some(at) => Ok(self.finish_line(buf, scanned + at, 1)),
                None if buf.len() > self.max_frame_bytes => {
                    // Too long already: drop what we have, skip to the LF.
                    self.state = State::SkipLine {
                        discarded: buf.len(),
                    };
                    buf.clear();
                    Ok(None)
                }
                None => {
                    self.state = State::Line { scanned: buf.len() };
                    Ok(None)
                }
            },
            // A counted frame: hand it out once all of it is here.
            State::Counted { len } => {
                if buf.len() < len {
                    buf.reserve(len - buf.len());
                    return Ok(None);
                }
                let frame = buf.split_to(len);
                self.state = State::Start;
                Ok(message(frame))
            }
            // An oversize line: drop bytes until its LF, then report it once.
            State::SkipLine { discarded } => match memchr::memchr(b'\n', buf) {
                Some(at) => {
                    buf.advance(at + 1);
                    self.state = State::Start;
                    Ok(Some(Frame::Oversize {
                        bytes: discarded + at,
                    }))
                }
                None => {
                    self.state = State::SkipLine {
                        discarded: discarded + buf.len(),
                    };
                    buf.clear();
                    Ok(None)
                }
            },
            // An oversize counted frame: drop its declared length, report once.
            State::SkipCounted { remaining, len } => {
                let take = remaining.min(buf.len());
                buf.advance(take);
                if take == remaining {
                    self.state = State::Start;
                    return Ok(Some(Frame::Oversize { bytes: len }));
                }
                self.state = State::SkipCounted {
                    remaining: remaining - take,
                    len,
                };
                Ok(None)
            }
        }
    }

    /// True when the last `step` could not progress without more bytes.
    fn needs_input(&self, buf: &BytesMut) -> bool {
        match self.state {
            State::Start => buf.is_empty() || matches!(detect(buf), Detected::NeedMore),
            State::Line { scanned } => scanned == buf.len(),
            State::Counted { len } => buf.len() < len,
            State::SkipLine { .. } | State::SkipCounted { .. } => buf.is_empty(),
        }
    }

    /// Ends the current line at `end`, consuming `end + terminator` bytes.
    fn finish_line(&mut self, buf: &mut BytesMut, end: usize, terminator: usize) -> Option<Frame> {
        self.state = State::Start;
        if end > self.max_frame_bytes {
            buf.advance(end + terminator);
            return Some(Frame::Oversize { bytes: end });
        }
        message(buf.split_to(end + terminator))
    }
}

/// Drops the separators that may sit between frames.
fn skip_separators(buf: &mut BytesMut) {
    let skip = buf
        .iter()
        .position(|&b| !matches!(b, b'\n' | b'\r' | 0))
        .unwrap_or(buf.len());
    buf.advance(skip);
}

/// Reads the framing from a frame's first bytes (the buffer starts at a
/// non-separator byte).
fn detect(buf: &[u8]) -> Detected {
    let digits = buf
        .iter()
        .take(MAX_COUNT_DIGITS + 1)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > MAX_COUNT_DIGITS {
        return Detected::Line;
    }
    match buf.get(digits) {
        None => Detected::NeedMore,
        Some(b' ') => {
            // At most MAX_COUNT_DIGITS digits: fits in u64, and saturating
            // to usize only matters on 32-bit targets, where it is oversize.
            let len = buf[..digits]
                .iter()
                .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            Detected::Counted {
                len,
                header: digits + 1,
            }
        }
        Some(_) => Detected::Line,
    }
}

/// Trims trailing CR/LF/NUL and freezes; `None` for an empty message.
fn message(mut frame: BytesMut) -> Option<Frame> {
    let keep = frame
        .iter()
        .rposition(|&b| !matches!(b, b'\n' | b'\r' | 0))
        .map_or(0, |i| i + 1);
    frame.truncate(keep);
    if keep == 0 {
        return None;
    }
    Some(Frame::Message(frame.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut SyslogDecoder, input: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            out.push(frame);
        }
        while let Some(frame) = decoder.decode_eof(&mut buf).unwrap() {
            out.push(frame);
        }
        out
    }

    fn msg(text: &str) -> Frame {
        Frame::Message(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn mixed_framings_in_one_stream() {
        let mut decoder = SyslogDecoder::new(100);
        let frames = decode_all(&mut decoder, b"3 abc<1>x\r\n\n\0\x005 hello\0\nlast");
        assert_eq!(frames, [msg("abc"), msg("<1>x"), msg("hello"), msg("last")]);
    }

    #[test]
    fn line_starting_with_digits_is_a_line() {
        let mut decoder = SyslogDecoder::new(100);
        let frames = decode_all(&mut decoder, b"200|x\n12345678901 y\n");
        assert_eq!(frames, [msg("200|x"), msg("12345678901 y")]);
    }

    #[test]
    fn oversize_frames_are_skipped_once() {
        let mut decoder = SyslogDecoder::new(4);
        let frames = decode_all(&mut decoder, b"abcdef\nok\n9 123456789ab\n");
        assert_eq!(
            frames,
            [
                Frame::Oversize { bytes: 6 },
                msg("ok"),
                Frame::Oversize { bytes: 9 },
                msg("ab")
            ]
        );
    }

    #[test]
    fn eof_inside_counted_frame_is_an_error() {
        let mut decoder = SyslogDecoder::new(100);
        let mut buf = BytesMut::from(&b"10 abc"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        let err = decoder.decode_eof(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(buf.is_empty());
    }
}
