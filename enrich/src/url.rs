//! Splitting request URLs and referers into the stored columns.
//!
//! Written by hand rather than with the `url` crate: that crate parses into an
//! owned, normalised `Url` (one allocation per call, percent-encoding and
//! case rewritten), while the hot path needs borrowed slices of the text as
//! sent, and referers that are not URLs at all must simply yield nothing.

use std::borrow::Cow;

/// The parts of a request URL, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// The scheme without `://` (`https`), empty when the URL has none.
    pub scheme: &'a str,
    /// The host as sent (not lower-cased), without user info, port or the
    /// brackets of an IPv6 literal; empty when the URL has no scheme.
    pub host: &'a str,
    /// The path, percent-encoding kept; `/` when the URL has none.
    pub path: &'a str,
    /// The query string without `?`; empty when there is none.
    pub query: &'a str,
}

/// Splits a URL into scheme, host, path and query; drops the fragment.
///
/// `https://user@Example.com:443/a%20b?q=1#top` gives `https`, `Example.com`,
/// `/a%20b` and `q=1`. Text without a valid `scheme://` prefix (a bare
/// `/path?query`, as in a request line) is all path and query, with an empty
/// scheme and host. Never fails: every input splits somehow.
pub fn split_url(url: &str) -> UrlParts<'_> {
    let url = match memchr::memchr(b'#', url.as_bytes()) {
        Some(i) => &url[..i],
        None => url,
    };
    let (scheme, authority, rest) = match scheme_end(url) {
        Some(end) => {
            let after = &url[end + 3..];
            let stop = after.find(['/', '?']).unwrap_or(after.len());
            (&url[..end], &after[..stop], &after[stop..])
        }
        None => ("", "", url),
    };
    let (path, query) = match memchr::memchr(b'?', rest.as_bytes()) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    UrlParts {
        scheme,
        host: host_of(authority),
        path,
        query,
    }
}

/// Where a `scheme://` prefix ends (the index of `://`), if `url` has one:
/// a letter, then letters, digits, `+`, `-` or `.` (RFC 3986, section 3.1).
fn scheme_end(url: &str) -> Option<usize> {
    let bytes = url.as_bytes();
    let end = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b"+-.".contains(&b)))?;
    let starts_with_letter = bytes.first().is_some_and(u8::is_ascii_alphabetic);
    (starts_with_letter && bytes[end..].starts_with(b"://")).then_some(end)
}

/// The host of an authority: user info, port and IPv6 brackets removed.
fn host_of(authority: &str) -> &str {
    let host_port = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return match bracketed.find(']') {
            Some(end) => &bracketed[..end],
            // An unclosed bracket: no sensible host.
            None => "",
        };
    }
    match memchr::memchr(b':', host_port.as_bytes()) {
        Some(i) => &host_port[..i],
        None => host_port,
    }
}

/// The `referrer_host` column: the referer's host, lower case.
///
/// `None` for an empty referer, `-`, and anything that is not
/// `scheme://host…` ("not a url", a bare path, `file:///x`) or whose host
/// holds characters no host name has (spaces, quotes, `<`, …). Any scheme
/// works: `android-app://com.google.android.gm/` gives
/// `com.google.android.gm`. User info and port are dropped and an IPv6
/// literal comes without brackets. Borrows when the host is already lower
/// case.
pub fn referrer_host(referer: &str) -> Option<Cow<'_, str>> {
    // Only the authority matters: no need to split the (often long) rest
    // of the referer as `split_url` would.
    let end = scheme_end(referer)?;
    let after = &referer[end + 3..];
    let stop = memchr::memchr3(b'/', b'?', b'#', after.as_bytes()).unwrap_or(after.len());
    let host = host_of(&after[..stop]);
    if host.is_empty() {
        return None;
    }
    if host.is_ascii() {
        // One branch-free pass for both questions: hosts are short and
        // this runs for every record with a referer.
        let (mut valid, mut upper) = (true, false);
        for &b in host.as_bytes() {
            valid &= HOST_BYTES[usize::from(b)];
            upper |= b.is_ascii_uppercase();
        }
        return match (valid, upper) {
            (false, _) => None,
            (true, false) => Some(Cow::Borrowed(host)),
            (true, true) => Some(Cow::Owned(host.to_ascii_lowercase())),
        };
    }
    if !host.chars().all(is_host_char) {
        return None;
    }
    // Rare: an internationalised host. Unicode case mapping has title-case
    // and multi-character cases, so compare the result instead of guessing.
    let lower = host.to_lowercase();
    if lower == host {
        Some(Cow::Borrowed(host))
    } else {
        Some(Cow::Owned(lower))
    }
}

/// [`is_host_char`] for each ASCII byte, as a table.
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = is_host_ascii(b as u8);
        b += 1;
    }
    table
};

/// Characters of a registered name, an IP literal or an internationalised
/// host name: RFC 3986's unreserved and sub-delims, `%`, `:` (IPv6) and any
/// non-ASCII letter.
fn is_host_char(c: char) -> bool {
    if c.is_ascii() {
        is_host_ascii(c as u8)
    } else {
        !c.is_control() && !c.is_whitespace()
    }
}

/// [`is_host_char`] for ASCII.
const fn is_host_ascii(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
        )
}
