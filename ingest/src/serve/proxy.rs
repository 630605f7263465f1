//! The PROXY protocol header (v1 text or v2 binary) that a load balancer
//! puts in front of each TCP connection, carrying the original sender's
//! address. Parsing is `ppp`'s; this module reads just enough bytes for it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use ppp::{HeaderResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The longest header: v2's 16 fixed bytes plus at most 65,535 of addresses
/// and TLVs. A v1 header is at most 107 bytes.
const MAX_HEADER_BYTES: usize = 16 + 65_535;
/// A load balancer sends its header at once; a peer that does not is refused.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header arrived within {HEADER_TIMEOUT:?}")]
    Timeout,
    #[error("the connection closed before its PROXY protocol header ended")]
    Closed,
    #[error("the connection does not start with a valid PROXY protocol header")]
    Invalid,
    #[error("reading the PROXY protocol header failed")]
    Io(#[from] std::io::Error),
}

/// Reads the header from `stream` into `buf` and removes it from there,
/// leaving any syslog bytes that followed it. Returns the original sender
/// (`None` for a health check from the balancer itself, `LOCAL`/`UNKNOWN`).
pub async fn read_header(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Option<SocketAddr>, ProxyError> {
    tokio::time::timeout(HEADER_TIMEOUT, async {
        loop {
            if let Some((len, source)) = parse(buf)? {
                let _ = buf.split_to(len);
                return Ok(source);
            }
            if buf.len() >= MAX_HEADER_BYTES {
                return Err(ProxyError::Invalid);
            }
            buf.reserve(512);
            if stream.read_buf(buf).await? == 0 {
                return Err(ProxyError::Closed);
            }
        }
    })
    .await
    .map_err(|_| ProxyError::Timeout)?
}

/// The v1 header's longest form, `PROXY TCP6 <ip> <ip> <port> <port>\r\n`.
const MAX_V1_BYTES: usize = 107;

/// `Ok(None)` while more bytes are needed; `Ok(Some((header length,
/// source)))` once the header is complete.
///
/// The header's end is found here, from its framing, before `ppp` sees it:
/// `ppp` reports some cut-short v1 headers (an address half read) as invalid
/// rather than incomplete, and a header split across TCP reads is normal.
#[allow(clippy::type_complexity, reason = "a private helper with one caller")]
fn parse(buf: &[u8]) -> Result<Option<(usize, Option<SocketAddr>)>, ProxyError> {
    let Some(len) = header_len(buf)? else {
        return Ok(None);
    };
    let result = HeaderResult::parse(&buf[..len]);
    match result {
        HeaderResult::V1(Ok(header)) => {
            let source = match header.addresses {
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                v1::Addresses::Unknown => None,
            };
            Ok(Some((header.header.len(), source)))
        }
        HeaderResult::V2(Ok(header)) => {
            let source = match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                (_, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                (_, _) => None,
            };
            Ok(Some((header.header.len(), source)))
        }
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => Err(ProxyError::Invalid),
    }
}

/// The length of the header at the front of `buf`, `None` while it is cut
/// short, or an error when `buf` does not open with either version.
fn header_len(buf: &[u8]) -> Result<Option<usize>, ProxyError> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    let opens_with = |prefix: &[u8]| {
        let n = buf.len().min(prefix.len());
        buf[..n] == prefix[..n]
    };
    if opens_with(v2::PROTOCOL_PREFIX) {
        // 12-byte signature, version and command, family, 2-byte length.
        if buf.len() < 16 {
            return Ok(None);
        }
        let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        return Ok((buf.len() >= len).then_some(len));
    }
    if opens_with(V1_PREFIX) {
        let window = &buf[..buf.len().min(MAX_V1_BYTES)];
        return match memchr::memmem::find(window, b"\r\n") {
            Some(at) => Ok(Some(at + 2)),
            None if buf.len() < MAX_V1_BYTES => Ok(None),
            None => Err(ProxyError::Invalid),
        };
    }
    Err(ProxyError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v1_headers_and_leaves_the_rest() {
        let input = b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 5140\r\n<134>1 x";
        for end in 0..input.len() - 8 {
            assert!(parse(&input[..end]).unwrap().is_none(), "complete at {end}");
        }
        let (len, source) = parse(input).unwrap().unwrap();
        assert_eq!(&input[len..], b"<134>1 x");
        assert_eq!(source, Some("198.51.100.7:40000".parse().unwrap()));
        let unknown = parse(b"PROXY UNKNOWN\r\nrest").unwrap().unwrap();
        assert_eq!(unknown, (15, None));
    }

    #[test]
    fn reads_v2_headers() {
        let mut input = v2::PROTOCOL_PREFIX.to_vec();
        // Version 2, PROXY; TCP over IPv6; 36 bytes of addresses.
        input.extend_from_slice(&[0x21, 0x21, 0, 36]);
        let source: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
        input.extend_from_slice(&source.octets());
        input.extend_from_slice(&[0; 16]);
        input.extend_from_slice(&40000u16.to_be_bytes());
        input.extend_from_slice(&5140u16.to_be_bytes());
        let header_len = input.len();
        input.extend_from_slice(b"12 <134>1 x");
        assert!(parse(&input[..header_len - 1]).unwrap().is_none());
        let (len, addr) = parse(&input).unwrap().unwrap();
        assert_eq!(len, header_len);
        assert_eq!(addr, Some(SocketAddr::new(IpAddr::V6(source), 40000)));
    }

    #[test]
    fn every_cut_of_a_v2_header_waits_for_more() {
        let mut input = v2::PROTOCOL_PREFIX.to_vec();
        input.extend_from_slice(&[0x21, 0x11, 0, 12, 198, 51, 100, 7, 10, 0, 0, 1, 0x9c, 0x40]);
        input.extend_from_slice(&[0x14, 0x14]);
        for end in 0..input.len() {
            assert!(parse(&input[..end]).unwrap().is_none(), "complete at {end}");
        }
        let (len, source) = parse(&input).unwrap().unwrap();
        assert_eq!(len, input.len());
        assert_eq!(source, Some("198.51.100.7:40000".parse().unwrap()));
    }

    #[test]
    fn refuses_other_openings() {
        assert!(parse(b"<134>1 2024-12-04T13:14:15Z host app - - - body\n").is_err());
        assert!(parse(b"GET / HTTP/1.1\r\n\r\n").is_err());
    }
}
