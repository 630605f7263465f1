//! Turns a parsed access into the stored row (DESIGN.md, "The stored row").
//!
//! The classification rules live in `ecstatic-enrich`; this module only
//! picks the inputs out of a [`RawAccess`] and assembles the row:
//!
//! - `site_id` is the pull-zone id; `time` the access time in whole seconds;
//! - `host` is the URL's host without user info or port, lower-cased
//!   (in a stack buffer: no allocation unless the host is longer than a DNS
//!   name may be); `path` the URL path without query or fragment, its
//!   percent-encoding kept, `/` when empty;
//! - `file_type` comes from `path`, so a query string never decides it;
//! - `referrer_host` is empty when the referer is absent or not a URL;
//! - `country` is two upper-case letters, empty when unknown;
//! - `browser`, `os`, `device`, `is_bot` come from the user agent, through a
//!   bounded per-agent cache;
//! - `visitor` is SipHash-1-3 of (IP, user agent, site id) under a salt that
//!   changes every UTC day: `salt = SipHash128(visitor_key, day)`, where
//!   `day` is the access time in days since the epoch. The salt is derived,
//!   never stored, and `visitor_key` never leaves the process, so a stored
//!   `visitor` can be linked to an IP neither later nor across days. An
//!   IPv4-mapped IPv6 address hashes as its IPv4 address.

use std::borrow::Cow;
use std::hash::Hasher;
use std::net::IpAddr;

use ecstatic_enrich::{UaClassifier, file_type, normalize_country, referrer_host, status_class};
use ecstatic_store::AccessRowRef;
use siphasher::sip::SipHasher13;
use siphasher::sip128::{Hasher128, SipHasher13 as SipHasher13x128};

use crate::record::RawAccess;

/// Longest host lower-cased on the stack: a DNS name has at most 253 bytes.
const HOST_STACK_BYTES: usize = 256;

const MS_PER_DAY: u64 = 86_400_000;

/// Settings of an [`Enricher`].
#[derive(Clone)]
pub struct EnricherConfig {
    /// Distinct user agents whose classification is cached (at least 1).
    pub ua_cache_capacity: usize,
    /// Secret from which each day's visitor salt is derived. Keep it out of
    /// logs; changing it changes every visitor id from then on.
    pub visitor_key: [u8; 16],
}

impl std::fmt::Debug for EnricherConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnricherConfig")
            .field("ua_cache_capacity", &self.ua_cache_capacity)
            .field("visitor_key", &"<redacted>")
            .finish()
    }
}

/// Builds stored rows from parsed accesses. `Send + Sync`: share one.
pub struct Enricher {
    classifier: UaClassifier,
    visitor_key: [u8; 16],
}

impl Enricher {
    /// Creates the enricher; the first one in a process compiles the
    /// user-agent rules.
    pub fn new(config: EnricherConfig) -> Self {
        Enricher {
            classifier: UaClassifier::new(config.ua_cache_capacity),
            visitor_key: config.visitor_key,
        }
    }

    /// Builds the stored row for `raw` and hands it to `f`.
    ///
    /// Callback style so the row can borrow from `raw`, from the cached
    /// agent class and from stack buffers without allocating.
    pub fn with_row<R>(&self, raw: &RawAccess<'_>, f: impl FnOnce(&AccessRowRef<'_>) -> R) -> R {
        let class = self.classifier.classify(&raw.user_agent);
        let mut host_buf = [0u8; HOST_STACK_BYTES];
        let host = lower_host(bare_host(&raw.host), &mut host_buf);
        let path = url_path(&raw.path_and_query);
        let referrer = referrer_host(&raw.referer);
        let country_buf = normalize_country(&raw.country);
        let country = country_buf
            .as_ref()
            .map_or("", |c| std::str::from_utf8(c).unwrap_or(""));

        let row = AccessRowRef {
            site_id: raw.pull_zone_id,
            time: u32::try_from(raw.timestamp_ms / 1000).unwrap_or(u32::MAX),
            request_id: &raw.request_id,
            status: raw.status,
            status_class: status_class(raw.status),
            bytes_sent: raw.bytes_sent,
            cache_status: &raw.cache_status,
            edge_location: &raw.edge_location,
            host: &host,
            path,
            referrer_host: referrer.as_deref().unwrap_or(""),
            country,
            browser: &class.browser,
            os: &class.os,
            device: class.device.as_str(),
            file_type: file_type(path).as_str(),
            is_bot: u8::from(class.is_bot),
            visitor: self.visitor(raw),
        };
        f(&row)
    }

    /// The `visitor` column (see the module documentation).
    pub fn visitor(&self, raw: &RawAccess<'_>) -> u64 {
        let mut salt = SipHasher13x128::new_with_key(&self.visitor_key);
        salt.write_u64(raw.timestamp_ms / MS_PER_DAY);
        let salt = salt.finish128().as_bytes();

        let mut hasher = SipHasher13::new_with_key(&salt);
        match raw.remote_ip.map(|ip| ip.to_canonical()) {
            None => hasher.write_u8(0),
            Some(IpAddr::V4(ip)) => {
                hasher.write_u8(4);
                hasher.write(&ip.octets());
            }
            Some(IpAddr::V6(ip)) => {
                hasher.write_u8(6);
                hasher.write(&ip.octets());
            }
        }
        hasher.write(raw.user_agent.as_bytes());
        // 0xFF never occurs in UTF-8: ends the agent unambiguously.
        hasher.write_u8(0xFF);
        hasher.write_u64(raw.pull_zone_id);
        hasher.finish()
    }
}

/// The host without `user:password@` and without `:port`.
fn bare_host(authority: &str) -> &str {
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split_once(':').map_or(host, |(host, _)| host)
}

/// Lower-cases ASCII in `host`, on the stack when it fits; borrows when
/// already lower case.
fn lower_host<'a>(host: &'a str, buf: &'a mut [u8; HOST_STACK_BYTES]) -> Cow<'a, str> {
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(host);
    }
    let Some(out) = buf.get_mut(..host.len()) else {
        return Cow::Owned(host.to_ascii_lowercase());
    };
    for (o, b) in out.iter_mut().zip(host.bytes()) {
        *o = b.to_ascii_lowercase();
    }
    // ASCII lower-casing keeps UTF-8 valid, so this never falls back.
    Cow::Borrowed(std::str::from_utf8(out).unwrap_or_default())
}

/// The path of `path_and_query`: up to `?` or `#`, `/` when empty.
fn url_path(path_and_query: &str) -> &str {
    let end = path_and_query
        .find(['?', '#'])
        .unwrap_or(path_and_query.len());
    match &path_and_query[..end] {
        "" => "/",
        path => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_bare_and_lower_case() {
        let mut buf = [0u8; HOST_STACK_BYTES];
        assert!(matches!(
            lower_host("a.example", &mut buf),
            Cow::Borrowed("a.example")
        ));
        assert_eq!(lower_host("WWW.Example.COM", &mut buf), "www.example.com");
        assert_eq!(bare_host("u:p@WWW.Example.COM:8443"), "WWW.Example.COM");
        assert_eq!(bare_host("[2001:db8::1]:80"), "[2001:db8::1]");
        let long = "A".repeat(300);
        assert_eq!(lower_host(&long, &mut buf), "a".repeat(300));
    }

    #[test]
    fn path_drops_query_and_fragment() {
        assert_eq!(url_path("/a%20b?c=d"), "/a%20b");
        assert_eq!(url_path("?x"), "/");
        assert_eq!(url_path("/p#frag"), "/p");
    }
}
