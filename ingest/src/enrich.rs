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
//!   IPv4-mapped IPv6 address hashes as its IPv4 address. The agent enters
//!   the hash as its 128-bit fingerprint, computed once per distinct agent
//!   with its class, and each thread keeps the salt of the day it last saw:
//!   per record, the hash reads about 40 bytes instead of the whole agent
//!   (agents longer than `MAX_UA_BYTES`, 512, count by their first 512).

use std::borrow::Cow;
use std::cell::Cell;
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
        let visitor = self.visitor_of(raw, class.fingerprint);
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
            browser: class.browser,
            os: class.os,
            device: class.device.as_str(),
            file_type: file_type(path).as_str(),
            is_bot: u8::from(class.is_bot),
            visitor,
        };
        f(&row)
    }

    /// The `visitor` column (see the module documentation).
    pub fn visitor(&self, raw: &RawAccess<'_>) -> u64 {
        let class = self.classifier.classify(&raw.user_agent);
        self.visitor_of(raw, class.fingerprint)
    }

    fn visitor_of(&self, raw: &RawAccess<'_>, agent_fingerprint: u128) -> u64 {
        let salt = self.salt(raw.timestamp_ms / MS_PER_DAY);
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
        hasher.write_u128(agent_fingerprint);
        hasher.write_u64(raw.pull_zone_id);
        hasher.finish()
    }

    /// The salt of `day`: derived once per thread and day, not per record.
    fn salt(&self, day: u64) -> [u8; 16] {
        /// The last salt derived on a thread, and what it was derived from.
        #[derive(Clone, Copy)]
        struct DaySalt {
            key: [u8; 16],
            day: u64,
            salt: [u8; 16],
        }
        thread_local! {
            static LAST: Cell<Option<DaySalt>> = const { Cell::new(None) };
        }
        LAST.with(|last| {
            if let Some(cached) = last.get()
                && cached.day == day
                && cached.key == self.visitor_key
            {
                return cached.salt;
            }
            let mut hasher = SipHasher13x128::new_with_key(&self.visitor_key);
            hasher.write_u64(day);
            let salt = hasher.finish128().as_bytes();
            last.set(Some(DaySalt {
                key: self.visitor_key,
                day,
                salt,
            }));
            salt
        })
    }
}

/// The host without `user:password@` and without `:port`.
fn bare_host(authority: &str) -> &str {
    let host = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    if host.starts_with('[') {
        return memchr::memchr(b']', host.as_bytes()).map_or(host, |end| &host[..=end]);
    }
    memchr::memchr(b':', host.as_bytes()).map_or(host, |end| &host[..end])
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
    let end =
        memchr::memchr2(b'?', b'#', path_and_query.as_bytes()).unwrap_or(path_and_query.len());
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
    fn visitor_salt_follows_the_key_and_the_day() {
        let line = "HIT|200|1764845700001|1|390|198.51.100.7|-|https://a.example/|WA|UA/1|id|DE";
        let raw = crate::parse_message(line.as_bytes(), crate::BodyFormat::Pipe).unwrap();
        let next_day = RawAccess {
            timestamp_ms: raw.timestamp_ms + MS_PER_DAY,
            ..raw.clone()
        };
        let enricher = |key| {
            Enricher::new(EnricherConfig {
                ua_cache_capacity: 4,
                visitor_key: [key; 16],
            })
        };
        let (a, b) = (enricher(1), enricher(2));
        // Alternating keys and days on one thread: the cached salt never
        // leaks from one to the other.
        let first = a.visitor(&raw);
        assert_ne!(b.visitor(&raw), first);
        assert_ne!(a.visitor(&next_day), first);
        assert_eq!(a.visitor(&raw), first);
        assert_eq!(a.with_row(&raw, |row| row.visitor), first);
        assert_eq!(enricher(1).visitor(&raw), first);
    }

    #[test]
    fn path_drops_query_and_fragment() {
        assert_eq!(url_path("/a%20b?c=d"), "/a%20b");
        assert_eq!(url_path("?x"), "/");
        assert_eq!(url_path("/p#frag"), "/p");
    }
}
