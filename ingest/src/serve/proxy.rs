//! The PROXY protocol header (v1 text or v2 binary) that a load balancer
//! puts in front of each TCP connection, carrying the original sender's
//! address. Parsing is `ppp`'s; this module reads just enough bytes for it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use ppp::{HeaderResult, PartialResult, v1, v2};
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

/// `Ok(None)` while more bytes are needed; `Ok(Some((header length,
/// source)))` once the header is complete.
#[allow(clippy::type_complexity, reason = "a private helper with one caller")]
fn parse(buf: &[u8]) -> Result<Option<(usize, Option<SocketAddr>)>, ProxyError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let result = HeaderResult::parse(buf);
    if result.is_incomplete() {
        return Ok(None);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v1_headers_and_leaves_the_rest() {
        let input = b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 5140\r\n<134>1 x";
        for end in 1..input.len() - 8 {
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
    fn refuses_other_openings() {
        assert!(parse(b"<134>1 2024-12-04T13:14:15Z host app - - - body\n").is_err());
        assert!(parse(b"GET / HTTP/1.1\r\n\r\n").is_err());
    }
}
