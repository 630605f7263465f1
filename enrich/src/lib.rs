//! Enrichment: turns the free-text parts of an access (user agent, URL,
//! referer, country) into the low-cardinality columns of `access_log`.
//!
//! Full documentation of the classification rules follows once the rules are
//! vendored; see the items below.

mod bots;
mod file_type;
mod ua;
mod url;

pub use file_type::{FileType, file_type};
pub use ua::{Device, MAX_UA_BYTES, UaClass, UaClassifier};
pub use url::{UrlParts, referrer_host, split_url};

/// The `status_class` column: `"1xx"` … `"5xx"`, `"other"` for anything else.
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
/// (empty, `-`, `XXX`, digits) is unknown.
pub fn normalize_country(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}
