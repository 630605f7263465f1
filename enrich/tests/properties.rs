//! Property tests: no function panics on any string, `split_url` hands out
//! slices of its input in order, and the cache never changes an answer.

use std::sync::OnceLock;

use ecstatic_enrich::{
    UaClassifier, file_type, normalize_country, referrer_host, split_url, status_class,
};
use proptest::prelude::*;

fn classifier() -> &'static UaClassifier {
    static CLASSIFIER: OnceLock<UaClassifier> = OnceLock::new();
    // A tiny cache, so that evictions happen during the test too.
    CLASSIFIER.get_or_init(|| UaClassifier::new(8))
}

/// Strings shaped like URLs and agents, plus arbitrary ones.
fn texts() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z][a-zA-Z0-9+.-]{0,6}://[^/?#]{0,20}(/[^?#]{0,20})?(\\?[^#]{0,10})?(#.{0,5})?",
        "(/[a-zA-Z0-9.%]{0,12}){0,4}(\\?.{0,10})?",
        "Mozilla/5\\.0 \\([A-Za-z0-9 ;._]{0,40}\\)[ A-Za-z0-9/.()]{0,80}",
    ]
}

/// The byte offset of `part` inside `whole`, if it is a slice of it.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = part.as_ptr() as usize;
    let base = whole.as_ptr() as usize;
    (start >= base && start + part.len() <= base + whole.len()).then(|| start - base)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn nothing_panics(text in texts(), status in any::<u16>()) {
        let _ = split_url(&text);
        let _ = referrer_host(&text);
        let _ = file_type(&text);
        let _ = normalize_country(&text);
        let _ = status_class(status);
        let _ = classifier().classify(&text);
    }

    #[test]
    fn split_url_parts_are_slices_in_order(url in texts()) {
        let parts = split_url(&url);
        let mut end = 0;
        for part in [parts.scheme, parts.host, parts.path, parts.query] {
            if part.is_empty() {
                continue;
            }
            let Some(start) = offset_in(&url, part) else {
                // The only text not taken from the input: the `/` of a URL
                // without a path.
                prop_assert_eq!(part, "/");
                prop_assert!(!url[end..].starts_with('/'));
                continue;
            };
            prop_assert!(start >= end, "{:?} out of order in {:?}", part, url);
            end = start + part.len();
        }
        prop_assert!(!parts.path.contains('?') && !parts.path.contains('#'));
        prop_assert!(!parts.query.contains('#'));
    }

    #[test]
    fn referrer_hosts_are_lower_case_hosts(referer in texts()) {
        if let Some(host) = referrer_host(&referer) {
            prop_assert!(!host.is_empty());
            prop_assert_eq!(host.to_lowercase(), host.as_ref());
            prop_assert!(!host.contains(['/', '?', '#', '@', ' ']));
        }
    }

    #[test]
    fn classify_agrees_with_classify_uncached(agent in texts()) {
        let first = classifier().classify(&agent);
        let again = classifier().classify(&agent);
        let uncached = classifier().classify_uncached(&agent);
        prop_assert_eq!(first, uncached);
        prop_assert_eq!(again, uncached);
        prop_assert_eq!(uncached.is_bot, uncached.device == ecstatic_enrich::Device::Bot);
    }

    #[test]
    fn countries_are_two_upper_case_letters(code in any::<String>()) {
        if let Some(c) = normalize_country(&code) {
            prop_assert!(c.iter().all(u8::is_ascii_uppercase));
            prop_assert!(code.eq_ignore_ascii_case(std::str::from_utf8(&c).unwrap()));
        }
    }
}
