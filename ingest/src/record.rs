//! One access as parsed from a frame, before enrichment.
//!
//! Text fields borrow from the frame. They are `Cow` because two rare paths
//! must produce text that is not in the frame: a JSON string with escapes,
//! and a body that is not valid UTF-8 (see [`crate::bunny`]). `-` and absent
//! values are the empty string.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::reject::{Reason, Rejection};

/// Earliest accepted access time: 2000-01-01T00:00:00Z, in ms. Anything
/// earlier is a sender with a broken clock or a field shifted into place.
pub const MIN_TIMESTAMP_MS: u64 = 946_684_800_000;

/// Latest accepted access time, in ms: the last second ClickHouse's
/// `DateTime` (seconds as `u32`) can hold, 2106-02-07T06:28:15Z.
pub const MAX_TIMESTAMP_MS: u64 = u32::MAX as u64 * 1000 + 999;

/// A parsed access line (pipe or JSON format).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawAccess<'a> {
    /// As sent: `HIT`, `MISS`, … (JSON: from `Cached`).
    pub cache_status: Cow<'a, str>,
    /// HTTP status, `100..=999`.
    pub status: u16,
    /// Access time, ms since the Unix epoch, UTC, within
    /// [`MIN_TIMESTAMP_MS`]`..=`[`MAX_TIMESTAMP_MS`].
    pub timestamp_ms: u64,
    pub bytes_sent: u64,
    /// Never 0.
    pub pull_zone_id: u64,
    /// `None` when the log gives `-` or nothing. `::ffff:a.b.c.d` stays an
    /// IPv4-mapped IPv6 address, as sent.
    pub remote_ip: Option<IpAddr>,
    pub referer: Cow<'a, str>,
    /// `https`, `http`, or empty when the URL had no `scheme://`.
    pub scheme: Cow<'a, str>,
    /// The URL's authority as sent (not lower-cased).
    pub host: Cow<'a, str>,
    /// Everything after the host: path, query and fragment, as sent.
    pub path_and_query: Cow<'a, str>,
    pub edge_location: Cow<'a, str>,
    pub user_agent: Cow<'a, str>,
    pub request_id: Cow<'a, str>,
    /// As sent (trimmed); normalised during enrichment.
    pub country: Cow<'a, str>,
}

impl RawAccess<'_> {
    /// The full URL, for display (allocates).
    pub fn url(&self) -> String {
        if self.scheme.is_empty() {
            return format!("{}{}", self.host, self.path_and_query);
        }
        format!("{}://{}{}", self.scheme, self.host, self.path_and_query)
    }

    /// Copies every borrowed field, detaching the record from its frame.
    pub fn into_owned(self) -> RawAccess<'static> {
        fn own(text: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(text.into_owned())
        }
        RawAccess {
            cache_status: own(self.cache_status),
            status: self.status,
            timestamp_ms: self.timestamp_ms,
            bytes_sent: self.bytes_sent,
            pull_zone_id: self.pull_zone_id,
            remote_ip: self.remote_ip,
            referer: own(self.referer),
            scheme: own(self.scheme),
            host: own(self.host),
            path_and_query: own(self.path_and_query),
            edge_location: own(self.edge_location),
            user_agent: own(self.user_agent),
            request_id: own(self.request_id),
            country: own(self.country),
        }
    }
}

/// Splits a full URL into `(scheme, host, path_and_query)` without copying.
///
/// A URL that does not start with `scheme://` is all path: `("", "", url)`.
pub fn split_url(url: &str) -> (&str, &str, &str) {
    // `memmem::find` would build a searcher per call; the scheme's `:` is
    // the first one in a URL, so one memchr and a two-byte check do.
    let bytes = url.as_bytes();
    let colon = match memchr::memchr(b':', bytes) {
        Some(colon) if bytes[colon + 1..].starts_with(b"//") && is_scheme(&bytes[..colon]) => colon,
        _ => return ("", "", url),
    };
    let rest = &url[colon + 3..];
    let host_end = memchr::memchr3(b'/', b'?', b'#', rest.as_bytes()).unwrap_or(rest.len());
    (&url[..colon], &rest[..host_end], &rest[host_end..])
}

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(text: &[u8]) -> bool {
    text.first().is_some_and(u8::is_ascii_alphabetic)
        && text
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Splits a `Cow` URL, keeping borrowed parts borrowed.
pub(crate) fn split_url_cow(url: Cow<'_, str>) -> [Cow<'_, str>; 3] {
    match url {
        Cow::Borrowed(url) => {
            let (scheme, host, rest) = split_url(url);
            [
                Cow::Borrowed(scheme),
                Cow::Borrowed(host),
                Cow::Borrowed(rest),
            ]
        }
        Cow::Owned(url) => {
            let (scheme, host, rest) = split_url(&url);
            [scheme, host, rest].map(|part| Cow::Owned(part.to_owned()))
        }
    }
}

/// Parses an unsigned decimal integer: ASCII digits only (no sign, no
/// spaces), in `u64` range.
pub(crate) fn parse_u64(text: &[u8], field: &'static str) -> Result<u64, Rejection> {
    if text.is_empty() || text == b"-" {
        return Err(Rejection::field(Reason::MissingField, field));
    }
    let mut value: u64 = 0;
    for &b in text {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return Err(bad_number(
                field,
                text,
                "is not an unsigned decimal integer",
            ));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or_else(|| bad_number(field, text, "does not fit in 64 bits"))?;
    }
    Ok(value)
}

/// Parses the HTTP status: a decimal integer in `100..=999`.
pub(crate) fn parse_status(text: &[u8]) -> Result<u16, Rejection> {
    let status = parse_u64(text, "status")?;
    check_status(status)
}

pub(crate) fn check_status(status: u64) -> Result<u16, Rejection> {
    match u16::try_from(status) {
        Ok(status @ 100..=999) => Ok(status),
        _ => Err(Rejection::field(Reason::BadNumber, "status")
            .with_detail(format!("{status} is not an HTTP status (100 to 999)"))),
    }
}

fn bad_number(field: &'static str, text: &[u8], what: &str) -> Rejection {
    let shown = String::from_utf8_lossy(&text[..text.len().min(24)]);
    Rejection::field(Reason::BadNumber, field).with_detail(format!("`{shown}` {what}"))
}

/// Checks the range rules shared by both body formats (the status is
/// checked as it is parsed).
pub(crate) fn check_ranges(timestamp_ms: u64, pull_zone_id: u64) -> Result<(), Rejection> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&timestamp_ms) {
        return Err(
            Rejection::field(Reason::BadTimestamp, "timestamp_ms").with_detail(format!(
                "{timestamp_ms} ms is outside 2000-01-01 to 2106-02-07"
            )),
        );
    }
    if pull_zone_id == 0 {
        return Err(Rejection::field(Reason::ZeroSite, "pull_zone_id"));
    }
    Ok(())
}

/// Parses the remote address: empty or `-` is `None`.
pub(crate) fn parse_ip(text: &str) -> Result<Option<IpAddr>, Rejection> {
    if text.is_empty() || text == "-" {
        return Ok(None);
    }
    if let Some(ip) = parse_ipv4_fast(text.as_bytes()) {
        return Ok(Some(IpAddr::V4(ip)));
    }
    if let Some(ip) = parse_ipv6_fast(text.as_bytes()) {
        return Ok(Some(IpAddr::V6(ip)));
    }
    text.parse().map(Some).map_err(|_| {
        let shown: String = text.chars().take(48).collect();
        Rejection::field(Reason::BadAddress, "remote_ip").with_detail(format!("`{shown}`"))
    })
}

/// A dotted-quad IPv4 address, by hand: std's parser is generic over both
/// families and was about 6 % of pipe parsing. Same rules as std (no leading
/// zeros, four parts of at most 255); `None` sends the text on to std.
fn parse_ipv4_fast(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let (mut part, mut value, mut digits) = (0, 0u16, 0);
    for &b in text {
        if b == b'.' {
            if digits == 0 || part == 3 {
                return None;
            }
            octets[part] = value as u8;
            (part, value, digits) = (part + 1, 0, 0);
            continue;
        }
        let digit = b.wrapping_sub(b'0');
        // A digit, and no leading zero (`0` alone is fine).
        if digit > 9 || (digits == 1 && value == 0) {
            return None;
        }
        value = value * 10 + u16::from(digit);
        digits += 1;
        if value > 255 {
            return None;
        }
    }
    if part != 3 || digits == 0 {
        return None;
    }
    octets[3] = value as u8;
    Some(Ipv4Addr::from(octets))
}

/// An IPv6 address of hex groups with at most one `::`, by hand, for the
/// same reason: std's parser took ~190 ns per address, and a seventh of
/// bunny's clients come over IPv6. Forms this does not take (an embedded
/// IPv4 part, a zone, anything odd) go on to std; whatever this accepts,
/// std accepts as the same address (the tests compare on arbitrary text).
fn parse_ipv6_fast(text: &[u8]) -> Option<Ipv6Addr> {
    if !(2..=39).contains(&text.len()) {
        return None;
    }
    // Groups before and after the `::`, if any.
    let (mut head, mut tail) = ([0u16; 8], [0u16; 8]);
    let (mut heads, mut tails, mut gap) = (0, 0, false);
    let mut i = 0;
    if text.starts_with(b"::") {
        gap = true;
        i = 2;
        if i == text.len() {
            return Some(Ipv6Addr::UNSPECIFIED);
        }
    }
    loop {
        let start = i;
        let mut group = 0u16;
        while let Some(digit) = text.get(i).and_then(|&b| (b as char).to_digit(16)) {
            if i - start == 4 {
                return None;
            }
            group = group << 4 | digit as u16;
            i += 1;
        }
        if i == start {
            return None;
        }
        let slot = if gap {
            &mut tail[tails]
        } else {
            &mut head[heads]
        };
        *slot = group;
        if gap {
            tails += 1
        } else {
            heads += 1
        }
        if heads + tails == 8 && i < text.len() {
            return None;
        }
        match text.get(i..i + 2) {
            None if i == text.len() => break,
            Some(b"::") if !gap => {
                gap = true;
                i += 2;
                if i == text.len() {
                    break;
                }
            }
            Some([b':', next]) if *next != b':' => i += 1,
            // A `:` at the very end, a second `::`, `.`, `%`, ...
            _ => return None,
        }
    }
    let groups = heads + tails;
    if (gap && groups > 7) || (!gap && groups != 8) {
        return None;
    }
    let mut all = [0u16; 8];
    all[..heads].copy_from_slice(&head[..heads]);
    all[8 - tails..].copy_from_slice(&tail[..tails]);
    Some(Ipv6Addr::from(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_fast_path_agrees_with_std() {
        for text in [
            "203.0.113.7",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.a",
            "",
            "::ffff:1.2.3.4",
            "1234.1.1.1",
        ] {
            let fast = parse_ipv4_fast(text.as_bytes());
            let std = text.parse::<Ipv4Addr>().ok();
            assert!(fast.is_none() || fast == std, "{text}: {fast:?} vs {std:?}");
            assert_eq!(fast.is_some(), std.is_some(), "{text}");
        }
    }

    #[test]
    fn ipv6_fast_path_agrees_with_std() {
        for text in [
            "2001:db8::1",
            "::",
            "::1",
            "1::",
            "fe80::1:2",
            "2001:DB8:0:0:0:0:0:1",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "0001:0002::0003",
        ] {
            let fast = parse_ipv6_fast(text.as_bytes());
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, text.parse::<Ipv6Addr>().ok(), "{text}");
        }
        for text in [
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "1::2::3",
            "1:::2",
            ":1::",
            "1:",
            ":1",
            "12345::",
            "1:2:3:4::5:6:7:8",
            "::ffff:1.2.3.4",
            "fe80::1%eth0",
            "g::",
            "1:2:3:4:5:6:7:8::",
        ] {
            assert_eq!(parse_ipv6_fast(text.as_bytes()), None, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_addresses_agree_with_std(text in "[0-9a-fA-F:.]{0,41}") {
            if let Some(v4) = parse_ipv4_fast(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(v4), text.parse().ok());
            }
            if let Some(v6) = parse_ipv6_fast(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(v6), text.parse().ok());
            }
        }

        #[test]
        fn every_printed_address_parses_fast_or_through_std(
            v4 in proptest::prelude::any::<u32>(),
            v6 in proptest::prelude::any::<u128>(),
            zeros in 0..8usize,
        ) {
            let v4 = Ipv4Addr::from(v4);
            proptest::prop_assert_eq!(parse_ipv4_fast(v4.to_string().as_bytes()), Some(v4));
            // Runs of zero groups, so that `::` shows up in every position.
            let mut groups = Ipv6Addr::from(v6).segments();
            for group in groups.iter_mut().skip(zeros).take(3) {
                *group = 0;
            }
            let v6 = Ipv6Addr::from(groups);
            let text = v6.to_string();
            let parsed = parse_ip(&text).unwrap();
            proptest::prop_assert_eq!(parsed, Some(IpAddr::V6(v6)));
            if !text.contains('.') {
                proptest::prop_assert_eq!(parse_ipv6_fast(text.as_bytes()), Some(v6));
            }
        }
    }

    #[test]
    fn numbers_reject_sign_overflow_and_junk() {
        assert_eq!(parse_u64(b"18446744073709551615", "f"), Ok(u64::MAX));
        for bad in [&b"18446744073709551616"[..], b"-1", b"+1", b" 1", b"1.0"] {
            let err = parse_u64(bad, "bytes_sent").unwrap_err();
            assert_eq!(
                (err.reason, err.field),
                (Reason::BadNumber, Some("bytes_sent"))
            );
        }
        assert_eq!(
            parse_u64(b"-", "f").unwrap_err().reason,
            Reason::MissingField
        );
    }

    #[test]
    fn url_splits_into_three_borrowed_parts() {
        assert_eq!(split_url("https://a.b/c?d"), ("https", "a.b", "/c?d"));
        assert_eq!(split_url("https://a.b"), ("https", "a.b", ""));
        assert_eq!(split_url("https://a.b?x=/"), ("https", "a.b", "?x=/"));
        assert_eq!(split_url("/just/a/path"), ("", "", "/just/a/path"));
        assert_eq!(split_url("/p?u=https://x"), ("", "", "/p?u=https://x"));
        assert_eq!(split_url("a:b"), ("", "", "a:b"));
    }

    #[test]
    fn timestamp_bounds_are_inclusive() {
        assert!(check_ranges(MIN_TIMESTAMP_MS, 1).is_ok());
        assert!(check_ranges(MAX_TIMESTAMP_MS, 1).is_ok());
        let late = check_ranges(MAX_TIMESTAMP_MS + 1, 1).unwrap_err();
        assert_eq!(late.reason, Reason::BadTimestamp);
        let early = check_ranges(MIN_TIMESTAMP_MS - 1, 1).unwrap_err();
        assert_eq!(early.reason, Reason::BadTimestamp);
        assert_eq!(
            check_ranges(MIN_TIMESTAMP_MS, 0).unwrap_err().reason,
            Reason::ZeroSite
        );
    }
}
