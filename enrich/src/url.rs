//! URL and referer splitting, by hand: the `url` crate would allocate and
//! normalise (we must keep percent-encoding as sent).

use std::borrow::Cow;

/// The parts of a request URL, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
}

/// Splits a URL into scheme, host, path and query.
pub fn split_url(url: &str) -> UrlParts<'_> {
    let url = url.split('#').next().unwrap_or("");
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i], &url[i + 3..]),
        None => ("", url),
    };
    let (authority, path_query) = if scheme.is_empty() {
        ("", rest)
    } else {
        match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        }
    };
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    let (path, query) = match path_query.find('?') {
        Some(i) => (&path_query[..i], &path_query[i + 1..]),
        None => (path_query, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    UrlParts {
        scheme,
        host,
        path,
        query,
    }
}

/// The `referrer_host` column: the referer's host, lower case.
pub fn referrer_host(referer: &str) -> Option<Cow<'_, str>> {
    let parts = split_url(referer);
    if parts.scheme.is_empty() || parts.host.is_empty() {
        return None;
    }
    Some(Cow::Borrowed(parts.host))
}
