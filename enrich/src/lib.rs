//! Enrichment: turns the free-text parts of an access (user agent, URL,
//! referer, country, status) into the low-cardinality columns of
//! `access_log` (see DESIGN.md, "The stored row").
//!
//! Everything here is a pure function of its input except [`UaClassifier`],
//! which holds compiled rules and a bounded cache. Nothing panics on any
//! input (property-tested). [`split_url`], [`file_type`], [`status_class`]
//! and [`normalize_country`] never allocate, [`referrer_host`] only for a
//! host with upper-case letters, [`UaClassifier::classify`] only on a cache
//! miss.
//!
//! # User agents
//!
//! - **Browser and OS** are the family names of uap-core's rules (0.18.0,
//!   vendored in `rules/` and run by the `ua-parser` crate): `Chrome`,
//!   `Mobile Safari`, `Facebook`, `iOS`, `Mac OS X`, … and `Other` when no
//!   rule matches. An empty or `-` agent is `Other`/`Other`, device `other`,
//!   not a bot.
//! - **Length bound**: only the first [`MAX_UA_BYTES`] (512) bytes of an
//!   agent are looked at, cut back to a UTF-8 character boundary, so a
//!   pathological agent of any length costs the same bounded time (the
//!   `regex` crate is linear-time in what it scans). The cut prefix is also
//!   the cache key.
//! - **Bots**: isbot's pattern list (npm `isbot` 5.2.4), with its six
//!   look-around patterns rewritten by hand (the `regex` crate has no
//!   look-around), three patterns narrowed because they flag real browsers,
//!   and a short list of crawlers it misses; see the `bots` module for each
//!   change and its measured reason. A bot's device is `bot`.
//! - **Device**: derived from tokens (`iPad`, `Mobi`, `iPhone`, …) and the
//!   OS family, not from uap's 600-rule device parser, which would cost more
//!   than the browser and OS together.
//! - **Cache**: [`UaClassifier::classify`] keeps one `UaClass` (`Copy`, its
//!   names interned) per distinct (cut) agent in a bounded `quick_cache`,
//!   keyed by a randomly keyed 64-bit hash of the agent; a hit is a hash,
//!   an 8-byte comparison and a copy, with no allocation (tested with a
//!   counting allocator).
//!
//! Measured on the corpora vendored in `testdata/ua` (`cargo test -p
//! ecstatic-enrich --test ua_oracles -- --nocapture` prints the rates):
//!
//! | oracle | result |
//! | --- | --- |
//! | uap-core `test_ua.yaml`, browser family (1,425 cases) | 100 % agree |
//! | uap-core `test_os.yaml`, OS family (456 cases) | 100 % agree |
//! | uap-core `test_resources` suites, browser family (13,090 cases) | 100 % agree |
//! | crawler corpora flagged as bots (9,506 agents) | 99.01 % |
//! | browser corpora wrongly flagged (205,537 agents) | 0.32 % |
//! | Intoli `deviceCategory` (10,000 agents) | 100 % agree |
//!
//! # URLs and referers
//!
//! [`split_url`] hands out slices of the URL as sent: host without user info,
//! port or IPv6 brackets; path with its percent-encoding, `/` when empty; the
//! query; the fragment dropped. [`referrer_host`] lower-cases the referer's
//! host for any scheme (`android-app://com.google.android.gm/` gives
//! `com.google.android.gm`) and yields `None` for `-`, the empty string and
//! anything that is not `scheme://host` (an unparseable referer is not an
//! error).
//!
//! # File types
//!
//! [`file_type`] looks only at the extension of the path's last segment,
//! ignoring ASCII case; the query string is not part of the path. A **page**
//! is a path with no extension (`/about`), a trailing `/`, an empty or
//! all-digit extension (`/v1.2`), or a server page extension (`.html`,
//! `.htm`, `.php`, `.asp`, `.aspx`, `.jsp`, …). **Multi-part extensions** go
//! by their last part: `site.tar.gz` is an archive because `gz` is, and
//! `app.min.js` a script. Feeds are `.rss`, `.atom`, and `feed.xml`,
//! `rss.xml`, `atom.xml` or `index.xml`; other `.xml` is data. Unknown
//! extensions are `other`.

mod bots;
mod file_type;
mod ua;
mod url;

pub use file_type::{FileType, file_type};
pub use ua::{Device, MAX_UA_BYTES, UaClass, UaClassifier};
pub use url::{UrlParts, referrer_host, split_url};

/// The `status_class` column: `"1xx"` … `"5xx"`, `"other"` for anything else
/// (`0`, `99`, `600`, …).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// The `country` column: two ASCII letters, upper-cased; anything else
/// (empty, `-`, `XXX`, digits) is unknown, stored as the empty string.
pub fn normalize_country(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}
