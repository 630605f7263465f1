//! Bot detection from the user agent.
//!
//! The main list is isbot's (npm `isbot` 5.2.4, Unlicense, vendored in
//! `rules/`): isbot joins its patterns with `|` and matches them
//! case-insensitively. We do the same with one `regex::bytes::Regex` with
//! Unicode off, which gives the patterns JavaScript's ASCII meaning of `\w`,
//! `\d`, `\s` and `\b`.
//!
//! The `regex` crate has no look-around (it guarantees linear time), so the six
//! isbot patterns that use it are rewritten by hand into a [`GuardedSpec`]: a
//! look-around-free core plus the text that must not come right before or
//! right after a match. Trying every match position of the core and rejecting
//! the guarded ones is exactly what the look-around does; none of the cores
//! can overlap itself, so no candidate is skipped.
//!
//! Our changes to isbot's list, each measured on the oracle corpora of
//! `testdata/ua` (see `tests/ua_oracles.rs`):
//! - [`REFINED`]: three isbot words that fire on real browsers: `chromeframe`
//!   (Internet Explorer with the Chrome Frame plug-in, 249 browser agents),
//!   `download` in Windows' `GWX:DOWNLOADED` token (105) and `optimize` in
//!   `msn OptimizedIE8` (43);
//! - [`EXTRA_PATTERNS`]: crawlers and tools that isbot misses.
//!
//! uap-core's device rules for the `Spider` family are not used: on the
//! browser corpora they flagged 830 real phones (models named `M bot 60`,
//! `IDbot553`, …) and caught 5 crawlers that isbot does not.

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

/// isbot's list, exported to JSON by `scripts/vendor-ua.py`.
const ISBOT_JSON: &str = include_str!("../rules/isbot-patterns-5.2.4.json");

/// A pattern as a look-around-free core and the contexts that void a match.
struct GuardedSpec {
    /// The pattern exactly as isbot has it.
    original: &'static str,
    /// What replaces it; matched case-insensitively.
    core: &'static str,
    /// A match is void when the text right before it ends with one of these
    /// (compared ignoring ASCII case).
    not_after: &'static [&'static str],
    /// A match is void when the text right after it starts with one of these.
    not_before: &'static [&'static str],
}

/// isbot's look-around patterns, rewritten. Every pattern of the list that
/// contains `(?<` or `(?!` must appear here: loading panics otherwise.
const GUARDED: &[GuardedSpec] = &[
    GuardedSpec {
        // `(?:^|[^g])` is a look-behind in effect: "not right after a `g`".
        original: r"(?:^|[^g])news(?!sapphire)",
        core: "news",
        not_after: &["g"],
        not_before: &["sapphire"],
    },
    GuardedSpec {
        original: r"(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))",
        core: "google",
        not_after: &[" channel/", "google/"],
        not_before: &["wv", "app", "/google", " pixel"],
    },
    GuardedSpec {
        original: r"(?<! cu)bots?(?:\b|_)",
        core: r"bots?(?:\b|_)",
        not_after: &[" cu"],
        not_before: &[],
    },
    GuardedSpec {
        original: r"(?<!cam)scan",
        core: "scan",
        not_after: &["cam"],
        not_before: &[],
    },
    GuardedSpec {
        original: r"(?<!lib)http",
        core: "http",
        not_after: &["lib"],
        not_before: &[],
    },
    GuardedSpec {
        original: r"java(?!;)",
        core: "java",
        not_after: &[],
        not_before: &[";"],
    },
];

/// isbot patterns we narrow (or drop: a spec with an empty core) because they
/// flag real browsers; see the module docs for the counts.
const REFINED: &[GuardedSpec] = &[
    GuardedSpec {
        original: "chromeframe",
        core: "",
        not_after: &[],
        not_before: &[],
    },
    GuardedSpec {
        original: "download",
        core: "download",
        not_after: &[],
        not_before: &["ed"],
    },
    GuardedSpec {
        original: "optimize",
        core: "optimize",
        not_after: &[],
        not_before: &["die"],
    },
];

/// isbot patterns that JavaScript accepts but `regex` rejects, and their
/// equivalent: in `[\w\d-.]` JavaScript reads `-` as a literal because `\d`
/// cannot start a range; `regex` calls it an invalid range.
const REWRITTEN: &[(&str, &str)] = &[(
    r"^mozilla/\d\.\d\s\((?:compatible;)?(?:\s?[\w\d-.]+[\s/]\d+\.\d+)?\)$",
    r"^mozilla/\d\.\d\s\((?:compatible;)?(?:\s?[\w\d.\-]+[\s/]\d+\.\d+)?\)$",
)];

/// Our additions (case-insensitive, like isbot's): monitors, screenshot and
/// preview services, scrapers and HTTP tools from the crawler corpora that
/// isbot misses. Mail clients, office suites and in-app browsers, which the
/// corpora also list, are left out on purpose: people use them.
const EXTRA_PATTERNS: &[&str] = &[
    r"copperegg/",
    r"evc-batch/",
    r"webthumb/",
    r"websnapr/",
    r"wkhtmlto",
    r"grub-client",
    r"cerberian drtrs",
    r"miniature\.io/",
    r"gtmetrix",
    r"debugbear",
    r"kube-probe/",
    r"kubectl/",
    r"^ureq/",
    r"siege/",
    r"zombie\.js/",
    r"crwlr",
    r"owler/",
    r"seocompany/",
    r"screenshot",
    r"^mikrotik/",
    r"^dart/",
    r"^gradle/",
    r"^docker/",
    r"^twine/",
    r"cpython/",
    r"^reactornetty/",
    r"^gitlab/",
    r"claude-web",
    r"^sqworm/",
    r"^linkexaminer/",
    r"arachmo",
    r"b-l-i-t-z-b-o-t",
    r"email extractor",
    r"onetrust",
    r"observatory/",
    r"^wp rocket/",
    r"assetnote/",
    r"^siteguardian/",
    r"webmon \d",
    r"^page valet/",
    r"imgsizer",
    r"webscreenie",
    r"kimonolabs/",
    r"\(criteo;",
    r"snapsearch",
    r"nodemeter",
    r"mappercmd/",
    r"econtext/",
    r"dotmailer",
    r"^hatena::",
    r"yandex\.translate",
    r"^stackrambler/",
    r"^yaanb/",
];

#[derive(Deserialize)]
struct IsbotList {
    patterns: Vec<String>,
}

/// One compiled [`GuardedSpec`].
struct Guarded {
    core: Regex,
    not_after: &'static [&'static str],
    not_before: &'static [&'static str],
}

impl Guarded {
    fn is_match(&self, agent: &[u8]) -> bool {
        let mut start = 0;
        while let Some(m) = self.core.find_at(agent, start) {
            let before = &agent[..m.start()];
            let after = &agent[m.end()..];
            let void = self
                .not_after
                .iter()
                .any(|c| ends_with_ignore_case(before, c))
                || self
                    .not_before
                    .iter()
                    .any(|c| starts_with_ignore_case(after, c));
            if !void {
                return true;
            }
            // Every core matches at least one byte, so this always advances.
            start = m.start() + 1;
        }
        false
    }
}

fn ends_with_ignore_case(text: &[u8], suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn starts_with_ignore_case(text: &[u8], prefix: &str) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// All bot patterns, compiled.
pub(crate) struct BotMatcher {
    /// isbot's look-around-free patterns and ours, as one alternation.
    plain: Regex,
    guarded: Vec<Guarded>,
}

impl BotMatcher {
    /// Compiles the embedded lists; panics only if they are broken.
    pub(crate) fn new() -> Self {
        let list: IsbotList = serde_json::from_str(ISBOT_JSON).expect("embedded isbot list");
        let mut alternatives = Vec::new();
        let mut guarded = Vec::new();
        for pattern in &list.patterns {
            let spec = GUARDED
                .iter()
                .chain(REFINED)
                .find(|g| g.original == pattern);
            if let Some(spec) = spec {
                if !spec.core.is_empty() {
                    guarded.push(Guarded {
                        core: compile(spec.core),
                        not_after: spec.not_after,
                        not_before: spec.not_before,
                    });
                }
                continue;
            }
            assert!(
                !pattern.contains("(?<") && !pattern.contains("(?!"),
                "isbot pattern `{pattern}` uses look-around: add it to `GUARDED`"
            );
            let rewritten = REWRITTEN.iter().find(|(from, _)| from == pattern);
            alternatives.push(rewritten.map_or(pattern.as_str(), |r| r.1));
        }
        alternatives.extend(EXTRA_PATTERNS);
        BotMatcher {
            plain: compile(&alternatives.join("|")),
            guarded,
        }
    }

    /// Whether `agent` (already cut to its classified prefix) is a bot's.
    pub(crate) fn is_bot(&self, agent: &str) -> bool {
        let agent = agent.as_bytes();
        self.plain.is_match(agent) || self.guarded.iter().any(|g| g.is_match(agent))
    }
}

/// Compiles a pattern the way isbot does: case-insensitive, ASCII classes.
fn compile(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .unicode(false)
        .case_insensitive(true)
        .build()
        .unwrap_or_else(|e| panic!("bot pattern does not compile: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> BotMatcher {
        BotMatcher::new()
    }

    #[test]
    fn every_rewrite_names_a_pattern_of_the_list() {
        let list: IsbotList = serde_json::from_str(ISBOT_JSON).expect("embedded isbot list");
        for spec in GUARDED.iter().chain(REFINED) {
            assert!(
                list.patterns.iter().any(|p| p == spec.original),
                "{}",
                spec.original
            );
        }
        for (from, _) in REWRITTEN {
            assert!(list.patterns.iter().any(|p| p == from), "{from}");
        }
    }

    /// Each guarded rewrite behaves like its look-around: the core alone
    /// matches, the forbidden context voids it, and a later clean match
    /// still counts.
    #[test]
    fn guarded_patterns_honour_their_contexts() {
        let m = matcher();
        assert!(m.is_bot("Googlebot/2.1"));
        assert!(m.is_bot("Mozilla/5.0 (compatible; Google-Read-Aloud)"));
        assert!(!m.is_bot("Mozilla/5.0 (Linux; Android 14; Pixel 8) GoogleApp/15.0"));
        assert!(!m.is_bot("Mozilla/5.0 (Linux; Android 14; wv) GoogleWv"));
        assert!(!m.is_bot("Mozilla/5.0 (Macintosh) Chrome/120.0 Safari/537.36 Cubot"));
        assert!(!m.is_bot("Mozilla/5.0 (Linux; Android 9; CUBOT X19) Chrome/100.0 Mobile"));
        assert!(m.is_bot("Mozilla/5.0 (compatible; SemrushBot/7~bl)"));
        assert!(!m.is_bot("Mozilla/5.0 (iPhone) CamScanner/6.0"));
        assert!(m.is_bot("Mozilla/5.0 (compatible; Nimbostratus-Scanner)"));
        assert!(!m.is_bot("Mozilla/5.0 (Windows NT 10.0) libhttp/1.0"));
        assert!(m.is_bot("curl/8.0 http-client"));
        assert!(!m.is_bot("Mozilla/5.0 (Linux; Java; Android 4) Mobile"));
        assert!(m.is_bot("Java/17.0.2"));
        assert!(!m.is_bot("Mozilla/5.0 (Linux; Android 10) NewsSapphire/1.0 Mobile"));
        assert!(m.is_bot("Mozilla/5.0 NewsBlur Feed Fetcher"));
        // `google` rejected once after `google/`, accepted at a later position.
        assert!(m.is_bot("google/google Google-InspectionTool"));
    }

    #[test]
    fn refined_patterns_spare_the_browsers_they_used_to_flag() {
        let m = matcher();
        let gwx = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/7.0; GWX:DOWNLOADED)";
        assert!(!m.is_bot(gwx));
        assert!(
            !m.is_bot("Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; msn OptimizedIE8;ENGB)")
        );
        assert!(!m.is_bot("Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; chromeframe/15.0)"));
        assert!(m.is_bot("Mozilla/5.0 (compatible; Site Downloader 2.0)"));
        assert!(m.is_bot("Mozilla/5.0 (compatible; Image Optimizer)"));
    }
}
