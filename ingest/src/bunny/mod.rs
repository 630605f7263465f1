//! bunny.net access-log bodies: the pipe format and the JSON format.
//!
//! The format is chosen per message (pull zones differ): a body starting with
//! `{` is JSON, anything else is the pipe format, unless the caller forces
//! one with [`BodyFormat`]. A leading UTF-8 BOM is skipped.
//!
//! # Bytes that are not UTF-8
//!
//! bunny writes UTF-8, but a URL or an agent can carry any byte a client
//! sent. Such a record is kept, not rejected: the body's invalid sequences are
//! replaced with U+FFFD (`String::from_utf8_lossy`) and the record is parsed
//! from that copy, so its fields are owned. Valid input (the common case) is
//! checked once per body and then parsed without copying. A multi-byte
//! character split across TCP reads is not invalid: framing reassembles it
//! before this check.

pub mod json;
pub mod pipe;

use crate::record::RawAccess;
use crate::reject::Rejection;
use crate::syslog::strip_bom;

/// Which body format to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// Per message: `{` starts JSON, anything else is the pipe format.
    #[default]
    Auto,
    Pipe,
    Json,
}

/// Parses a message body (the syslog MSG, or a bare line) into a record.
#[inline]
pub fn parse_body(body: &[u8], format: BodyFormat) -> Result<RawAccess<'_>, Rejection> {
    let body = strip_bom(body);
    // simdutf8's `basic` check answers only valid or not, which is all we
    // ask, two to three times as fast as std's on lines like these.
    match simdutf8::basic::from_utf8(body) {
        Ok(text) => parse_text(text, format),
        Err(_) => parse_lossy(body, format),
    }
}

/// The rare path: parse a U+FFFD-repaired copy and detach the record from it.
#[cold]
fn parse_lossy(body: &[u8], format: BodyFormat) -> Result<RawAccess<'static>, Rejection> {
    let text = String::from_utf8_lossy(body);
    parse_text(&text, format).map(RawAccess::into_owned)
}

#[inline]
fn parse_text(text: &str, format: BodyFormat) -> Result<RawAccess<'_>, Rejection> {
    match format {
        BodyFormat::Auto if text.starts_with('{') => json::parse_json(text),
        BodyFormat::Auto | BodyFormat::Pipe => pipe::parse_pipe(text),
        BodyFormat::Json => json::parse_json(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_replaced_not_rejected() {
        let body = b"HIT|200|1764845700001|1|390|-|-|https://a.example/caf\xE9|WA|ua\xFF|id|DE";
        let record = parse_body(body, BodyFormat::Auto).unwrap();
        assert_eq!(record.path_and_query, "/caf\u{FFFD}");
        assert_eq!(record.user_agent, "ua\u{FFFD}");
        assert_eq!(record.country, "DE");
    }
}
