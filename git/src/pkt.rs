//! Just enough of git's pkt-line framing (gitprotocol-common(5)) to read the
//! commands at the head of a push, to pass `receive-pack`'s side-band
//! output through one packet at a time, and to add progress lines of our
//! own on side-band 2 before the final flush.

use bytes::{Buf, Bytes, BytesMut};

/// The flush packet that ends a section.
pub const FLUSH: &[u8] = b"0000";

/// Largest pkt-line, length prefix included.
const MAX_PKT_BYTES: usize = 65520;

/// Most bytes the command section of a push may take. Each command is about
/// a hundred bytes, so this allows thousands of refs in one push.
pub const MAX_HEAD_BYTES: usize = 1 << 20;

/// Why a pkt-line stream could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PktError {
    #[error("bad pkt-line length prefix {0:?}")]
    BadLength(String),
    #[error("the push's command section is longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLong,
    #[error("bad push command {0:?}: expected `<old> <new> <ref>`")]
    BadCommand(String),
}

/// One packet off the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum Packet {
    /// A data packet, length prefix included, ready to pass on as is.
    Data(Bytes),
    /// `0000`.
    Flush,
    /// `0001` (delimiter) or `0002` (response end), protocol v2 only.
    Special(Bytes),
}

/// Takes one whole packet off the front of `buf`, or `None` while the packet
/// is still incomplete (the caller reads more and calls again; nothing is
/// consumed meanwhile).
pub fn split_packet(buf: &mut BytesMut) -> Result<Option<Packet>, PktError> {
    let Some(len) = peek_len(buf)? else {
        return Ok(None);
    };
    match len {
        0 => {
            buf.advance(4);
            Ok(Some(Packet::Flush))
        }
        1..=3 => Ok(Some(Packet::Special(buf.split_to(4).freeze()))),
        _ if buf.len() < len => Ok(None),
        _ => Ok(Some(Packet::Data(buf.split_to(len).freeze()))),
    }
}

/// Reads the length prefix of the packet at the front of `buf`.
fn peek_len(buf: &[u8]) -> Result<Option<usize>, PktError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let bad = || PktError::BadLength(String::from_utf8_lossy(prefix).into_owned());
    let text = std::str::from_utf8(prefix).map_err(|_| bad())?;
    let len = usize::from_str_radix(text, 16).map_err(|_| bad())?;
    if len > MAX_PKT_BYTES || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(Some(len))
}

/// Frames `payload` as one pkt-line.
pub fn encode(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 4);
    out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
    out.extend_from_slice(payload);
    out.freeze()
}

/// One progress line on side-band 2, which git shows as `remote: <line>`.
/// Long lines are cut to fit the 1000-byte packets of plain `side-band`.
pub fn progress(line: &str) -> Bytes {
    let mut payload = Vec::with_capacity(line.len() + 2);
    payload.push(2);
    payload.extend_from_slice(line.as_bytes());
    payload.truncate(990);
    payload.push(b'\n');
    encode(&payload)
}

/// A ref update requested by a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

impl RefUpdate {
    /// Whether the update deletes the ref.
    pub fn is_delete(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }
}

/// The command section that opens a push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushHead {
    pub updates: Vec<RefUpdate>,
    pub capabilities: Vec<String>,
}

impl PushHead {
    /// Whether the client reads side-band output, so that progress lines
    /// of our own can reach it.
    pub fn side_band(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| c == "side-band-64k" || c == "side-band")
    }
}

/// Parses the command section at the front of `buf`, up to and including its
/// flush. Returns the head and how many bytes it took, or `None` while the
/// flush has not arrived yet.
pub fn parse_push_head(buf: &[u8]) -> Result<Option<(PushHead, usize)>, PktError> {
    let mut head = PushHead::default();
    let mut at = 0;
    loop {
        let Some(len) = peek_len(&buf[at..])? else {
            return incomplete(at);
        };
        if len == 0 {
            return Ok(Some((head, at + 4)));
        }
        if len < 4 || buf.len() < at + len {
            return if len < 4 {
                Err(PktError::BadLength(format!("{len:04x}")))
            } else {
                incomplete(at)
            };
        }
        read_command(&buf[at + 4..at + len], &mut head)?;
        at += len;
    }
}

fn incomplete(parsed: usize) -> Result<Option<(PushHead, usize)>, PktError> {
    if parsed >= MAX_HEAD_BYTES {
        Err(PktError::HeadTooLong)
    } else {
        Ok(None)
    }
}

/// Reads `old SP new SP ref [NUL capabilities] [LF]`; a `shallow` line (sent
/// by shallow clones) carries no update.
fn read_command(line: &[u8], head: &mut PushHead) -> Result<(), PktError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (command, caps) = match memchr_nul(line) {
        Some(at) => (&line[..at], Some(&line[at + 1..])),
        None => (line, None),
    };
    if let Some(caps) = caps {
        let caps = String::from_utf8_lossy(caps);
        head.capabilities
            .extend(caps.split(' ').filter(|c| !c.is_empty()).map(str::to_owned));
    }
    let text = String::from_utf8_lossy(command);
    if text.starts_with("shallow ") || text.starts_with("push-cert") {
        return Ok(());
    }
    let mut parts = text.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(old), Some(new), Some(name)) if is_oid(old) && is_oid(new) && !name.is_empty() => {
            let (old, new, name) = (old.to_owned(), new.to_owned(), name.to_owned());
            head.updates.push(RefUpdate { old, new, name });
            Ok(())
        }
        _ => Err(PktError::BadCommand(text.chars().take(200).collect())),
    }
}

fn memchr_nul(line: &[u8]) -> Option<usize> {
    line.iter().position(|&b| b == 0)
}

/// Whether `s` is a SHA-1 or SHA-256 object id in hex.
pub fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OLD: &str = "0000000000000000000000000000000000000000";
    const NEW: &str = "1111111111111111111111111111111111111111";

    fn head_bytes() -> Vec<u8> {
        let mut out = Vec::new();
        let first = format!("{OLD} {NEW} refs/heads/main\0report-status side-band-64k agent=git\n");
        out.extend_from_slice(&encode(first.as_bytes()));
        out.extend_from_slice(&encode(format!("{NEW} {OLD} refs/heads/old\n").as_bytes()));
        out.extend_from_slice(FLUSH);
        out.extend_from_slice(b"PACK\0\0\0\x02");
        out
    }

    #[test]
    fn reads_a_push_head_and_stops_at_its_flush() {
        let bytes = head_bytes();
        let (head, used) = parse_push_head(&bytes).unwrap().unwrap();
        assert_eq!(&bytes[used..], b"PACK\0\0\0\x02");
        assert!(head.side_band());
        assert_eq!(head.updates.len(), 2);
        assert_eq!(head.updates[0].name, "refs/heads/main");
        assert!(!head.updates[0].is_delete() && head.updates[1].is_delete());
    }

    #[test]
    fn a_push_head_split_anywhere_waits_for_the_rest() {
        let bytes = head_bytes();
        let (_, used) = parse_push_head(&bytes).unwrap().unwrap();
        for cut in 0..used {
            assert_eq!(parse_push_head(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_malformed_heads() {
        assert!(matches!(
            parse_push_head(b"zz12"),
            Err(PktError::BadLength(_))
        ));
        assert!(matches!(
            parse_push_head(b"0002"),
            Err(PktError::BadLength(_))
        ));
        let bad = encode(b"not a command\n");
        assert!(matches!(
            parse_push_head(&bad),
            Err(PktError::BadCommand(_))
        ));
    }

    #[test]
    fn refuses_endless_heads() {
        let line = encode(format!("{OLD} {NEW} refs/heads/{}\n", "x".repeat(900)).as_bytes());
        let bytes: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(MAX_HEAD_BYTES + 2000)
            .collect();
        assert_eq!(parse_push_head(&bytes), Err(PktError::HeadTooLong));
    }

    #[test]
    fn splits_packets_and_flushes() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&progress("hello"));
        buf.extend_from_slice(b"00");
        assert_eq!(
            split_packet(&mut buf),
            Ok(Some(Packet::Data(progress("hello"))))
        );
        assert_eq!(split_packet(&mut buf), Ok(None));
        buf.extend_from_slice(b"00");
        assert_eq!(split_packet(&mut buf), Ok(Some(Packet::Flush)));
        assert!(buf.is_empty());
    }

    #[test]
    fn progress_lines_are_band_two() {
        assert_eq!(&progress("hi")[..], b"0008\x02hi\n");
        assert!(progress(&"x".repeat(5000)).len() <= 1000);
    }

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_push_head(&bytes);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = split_packet(&mut buf) {}
        }

        #[test]
        fn encoded_packets_split_back(payloads in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 1..200), 0..8)) {
            let mut buf = BytesMut::new();
            for p in &payloads {
                buf.extend_from_slice(&encode(p));
            }
            buf.extend_from_slice(FLUSH);
            for p in &payloads {
                let Ok(Some(Packet::Data(data))) = split_packet(&mut buf) else {
                    panic!("expected a data packet");
                };
                prop_assert_eq!(&data[4..], &p[..]);
            }
            prop_assert_eq!(split_packet(&mut buf), Ok(Some(Packet::Flush)));
        }
    }
}
