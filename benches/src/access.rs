//! One access as bunny.net logs it, borrowing its text from whoever made it.

use std::fmt;
use std::net::IpAddr;

/// One CDN access: the fields of bunny.net's pipe and JSON formats.
///
/// Text fields borrow from the generator or rewriter that produced the
/// access, so that producing and rendering one needs no allocation. An empty
/// string means "absent" (rendered `-` in the pipe format, `""` in JSON).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Access<'a> {
    /// `HIT`, `MISS`, `BYPASS`, `EXPIRED`, `STALE`, `UPDATING` or `REVALIDATED`.
    pub cache_status: &'a str,
    /// HTTP status sent to the client.
    pub status: u16,
    /// When the request was served, milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
    /// Bytes sent to the client, headers included.
    pub bytes_sent: u64,
    /// Bytes of the body alone (JSON format only).
    pub body_bytes_sent: u64,
    /// The pull zone (site) id; never zero.
    pub pull_zone_id: u64,
    /// Client address, already anonymised (`a.b.c.0`, IPv6 cut to a /64).
    pub remote_ip: IpAddr,
    /// `Referer` header, empty when none.
    pub referer: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Host the client asked for.
    pub host: &'a str,
    /// Path and query string, starting with `/`.
    pub path_and_query: &'a str,
    /// HTTP protocol version, such as `HTTP/2` (JSON format only).
    pub protocol: &'a str,
    /// Edge location code (`DE`, `NY`, …); also the JSON `ServerZone`.
    pub edge_location: &'a str,
    /// Edge server id (JSON format only).
    pub server_id: u32,
    /// `User-Agent` header, empty when none.
    pub user_agent: &'a str,
    /// Unique id of the request.
    pub request_id: RequestId,
    /// Two-letter country code of the client, empty when unknown.
    pub country: &'a str,
    /// `Range` header, empty when none (JSON format only).
    pub header_range: &'a str,
}

impl Access<'_> {
    /// Whether the edge answered from its cache (JSON `Cached`).
    pub fn cached(&self) -> bool {
        matches!(
            self.cache_status,
            "HIT" | "STALE" | "UPDATING" | "REVALIDATED"
        )
    }
}

/// A 128-bit request id, written as 32 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u128);

impl RequestId {
    /// The 32 hex digits, without allocating.
    pub fn to_hex(self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let nibble = (self.0 >> (124 - 4 * i)) & 0xf;
            *byte = DIGITS[nibble as usize];
        }
        out
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_hex_matches_display() {
        for value in [0, 1, u128::MAX, 0x0f6b5c3e2a914d7e8b1c2d3e4f5a6b7c] {
            let id = RequestId(value);
            assert_eq!(std::str::from_utf8(&id.to_hex()).unwrap(), id.to_string());
        }
    }
}
