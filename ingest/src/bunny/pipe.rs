//! The pipe format: twelve `|`-separated fields,
//! `cache-status|status|timestamp-ms|bytes-sent|pull-zone-id|remote-ip|
//! referer|url|edge-location|user-agent|request-id|country`.
//!
//! The URL and the user agent are free text and may hold `|` themselves, so
//! the line is not split blindly. The fixed-shape fields are taken from both
//! ends: the first seven (up to and including the referer) from the left, the
//! country and request id from the right. What is left is
//! `url|edge-location|user-agent`, and the edge location is the first field
//! in it, after a `|`, that looks like an edge code: 1 to 8 upper-case ASCII
//! letters or digits, or `-`.
//!
//! The one ambiguity: a URL that itself contains `|CODE|` (an edge-shaped
//! text between two pipes) is cut at that point. A user agent may contain
//! anything, including such text, because the leftmost candidate wins. A
//! referer must not contain `|`.
//!
//! `-` is the empty value for every text field. Whitespace and NULs after
//! the country are not part of it. Parsing borrows every field from the body.

use std::borrow::Cow;

use memchr::{memchr_iter, memrchr};

use crate::record::{self, RawAccess};
use crate::reject::{Reason, Rejection};
use crate::scan::Separators;

/// Longest edge-location code accepted when splitting the middle fields.
pub const MAX_EDGE_CODE_BYTES: usize = 8;

/// Longest cache status accepted; the first field is checked for shape so
/// that foreign messages are told apart from broken access lines.
const MAX_CACHE_STATUS_BYTES: usize = 16;

/// Parses one pipe-format body.
pub fn parse_pipe(body: &str) -> Result<RawAccess<'_>, Rejection> {
    let body = body.trim_end_matches([' ', '\t', '\r', '\n', '\0']);
    let mut cut = Cursor {
        body,
        start: 0,
        end: body.len(),
        pipes: Separators::new(body.as_bytes(), b'|'),
    };

    let cache_status = cut.left()?;
    if !is_cache_status(cache_status) {
        return Err(not_access_log("the first field is not a cache status"));
    }
    let status = cut.left()?;
    let timestamp = cut.left()?;
    let bytes_sent = cut.left()?;
    let zone = cut.left()?;
    let ip = cut.left()?;
    let referer = cut.left()?;
    let country = cut.right()?;
    let request_id = cut.right()?;
    let (url, edge, user_agent) = split_middle(&body[cut.start..cut.end])?;

    let [scheme, host, path_and_query] = record::split_url_cow(text(url));
    let status = record::parse_status(status.as_bytes())?;
    let timestamp_ms = record::parse_u64(timestamp.as_bytes(), "timestamp_ms")?;
    let bytes_sent = record::parse_u64(bytes_sent.as_bytes(), "bytes_sent")?;
    let pull_zone_id = record::parse_u64(zone.as_bytes(), "pull_zone_id")?;
    let remote_ip = record::parse_ip(ip)?;
    record::check_ranges(timestamp_ms, pull_zone_id)?;
    // Built in the return value, after every check: a record built first
    // and then returned was copied (264 bytes) on every line.
    Ok(RawAccess {
        cache_status: text(cache_status),
        status,
        timestamp_ms,
        bytes_sent,
        pull_zone_id,
        remote_ip,
        referer: text(referer),
        scheme,
        host,
        path_and_query,
        edge_location: text(edge),
        user_agent: text(user_agent),
        request_id: text(request_id),
        country: text(country),
    })
}

/// Takes fields off both ends of the body. Invariant: `start <= end`, and
/// `body[start..end]` is what no field has claimed yet.
struct Cursor<'a> {
    body: &'a str,
    start: usize,
    end: usize,
    /// The `|`s from the left, for the fields taken from the left (all of
    /// which are taken before any from the right).
    pipes: Separators<'a>,
}

impl<'a> Cursor<'a> {
    /// The next field from the left, up to its `|`.
    fn left(&mut self) -> Result<&'a str, Rejection> {
        debug_assert_eq!(self.end, self.body.len(), "left fields come first");
        let at = self.pipes.next().ok_or_else(too_few_fields)?;
        let field = &self.body[self.start..at];
        self.start = at + 1;
        Ok(field)
    }

    /// The next field from the right, back to its `|`.
    fn right(&mut self) -> Result<&'a str, Rejection> {
        let rest = &self.body.as_bytes()[self.start..self.end];
        let at = memrchr(b'|', rest).ok_or_else(too_few_fields)?;
        let field = &self.body[self.start + at + 1..self.end];
        self.end = self.start + at;
        debug_assert!(self.start <= self.end);
        Ok(field)
    }
}

/// Splits `url|edge|user-agent` at the first edge-shaped field.
fn split_middle(middle: &str) -> Result<(&str, &str, &str), Rejection> {
    let bytes = middle.as_bytes();
    let mut pipes = memchr_iter(b'|', bytes);
    let Some(mut before) = pipes.next() else {
        return Err(too_few_fields());
    };
    for after in pipes {
        if is_edge_code(&bytes[before + 1..after]) {
            return Ok((
                &middle[..before],
                &middle[before + 1..after],
                &middle[after + 1..],
            ));
        }
        before = after;
    }
    Err(Rejection::field(Reason::NotAccessLog, "edge_location")
        .with_detail("no edge-location code between the url and the user agent"))
}

/// An edge-location code: `-`, or 1 to 8 upper-case letters and digits.
pub fn is_edge_code(field: &[u8]) -> bool {
    field == b"-"
        || (!field.is_empty()
            && field.len() <= MAX_EDGE_CODE_BYTES
            && field
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
}

fn is_cache_status(field: &str) -> bool {
    field == "-"
        || (!field.is_empty()
            && field.len() <= MAX_CACHE_STATUS_BYTES
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// `-` is the empty value.
fn text(field: &str) -> Cow<'_, str> {
    Cow::Borrowed(if field == "-" { "" } else { field })
}

fn too_few_fields() -> Rejection {
    not_access_log("fewer than 12 `|`-separated fields")
}

fn not_access_log(detail: &'static str) -> Rejection {
    Rejection::new(Reason::NotAccessLog).with_detail(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "HIT|200|1733318055123|412|390|203.0.113.0|-|https://blog.example.com/|FR|\
                        Mozilla/5.0 (X11)|0f6b|DE";

    #[test]
    fn parses_every_field() {
        let r = parse_pipe(LINE).unwrap();
        assert_eq!(r.cache_status, "HIT");
        assert_eq!(
            (r.status, r.timestamp_ms, r.bytes_sent),
            (200, 1733318055123, 412)
        );
        assert_eq!(r.pull_zone_id, 390);
        assert_eq!(r.remote_ip, Some("203.0.113.0".parse().unwrap()));
        assert_eq!(r.referer, "");
        assert_eq!(r.url(), "https://blog.example.com/");
        assert_eq!(
            (&*r.edge_location, &*r.user_agent),
            ("FR", "Mozilla/5.0 (X11)")
        );
        assert_eq!((&*r.request_id, &*r.country), ("0f6b", "DE"));
    }

    #[test]
    fn pipes_inside_url_and_agent() {
        let line = "HIT|200|1733318055123|1|390|-|-|https://a.b/x?q=a|b|WA|UA |X| y|z|id|DE";
        let r = parse_pipe(line).unwrap();
        assert_eq!(r.url(), "https://a.b/x?q=a|b");
        assert_eq!((&*r.edge_location, &*r.user_agent), ("WA", "UA |X| y|z"));
    }

    #[test]
    fn trailing_whitespace_is_not_the_country() {
        let line = format!("{LINE} \r");
        let r = parse_pipe(&line).unwrap();
        assert_eq!(r.country, "DE");
    }

    #[test]
    fn foreign_text_is_not_an_access_log() {
        for body in [
            "PDU_Event outlet group cycled",
            "",
            "a|b|c",
            "[WAN]IN=eth0 a|b|c|d|e|f|g|h|i|j|k",
        ] {
            assert_eq!(
                parse_pipe(body).unwrap_err().reason,
                Reason::NotAccessLog,
                "{body}"
            );
        }
    }
}
