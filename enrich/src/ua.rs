//! User-agent classification: browser, OS, device and the bot flag.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use quick_cache::DefaultHashBuilder;
use quick_cache::sync::Cache;
use serde::Deserialize;
use ua_parser::{os, user_agent};

use crate::bots::BotMatcher;

/// Classification looks at this many leading bytes of an agent at most, cut
/// back to a UTF-8 character boundary.
///
/// Real agents are short: of the 205,537 browser agents of the oracle
/// corpora (`testdata/ua`) the median is about 130 bytes, the 99.9th
/// percentile 277 and only one exceeds 512. The tokens that name the
/// browser, the OS and the device come first, and longer agents are mostly
/// junk or attacks (repeated toolbar tokens, pasted copies, random padding).
/// The cap bounds the work per agent whatever the rule set does, and it is
/// also the longest cache key. The rules see the cut prefix as the whole agent, so a
/// pattern anchored at the end (`$`) tests the end of the prefix.
pub const MAX_UA_BYTES: usize = 512;

/// The uap-core rules, converted to JSON by `scripts/vendor-ua.py`.
const UAP_JSON: &str = include_str!("../rules/uap-regexes-0.18.0.json");

/// The value of `browser` and `os` when the agent says nothing we know.
const UNKNOWN: &str = "Other";

/// The `device` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Other,
}

impl Device {
    /// The stored name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Bot => "bot",
            Device::Other => "other",
        }
    }
}

/// What a user agent says about its client.
///
/// `browser` and `os` are uap-core family names (`Chrome`, `Mobile Safari`,
/// `iOS`, `Mac OS X`, …), `Other` when unknown. `is_bot` implies
/// `device == Device::Bot`.
///
/// `Copy`, with the names interned (see [`intern`]): the cache stores the
/// class inline, and a hit copies it out with no allocation, no reference
/// count and no further pointer to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UaClass {
    pub browser: &'static str,
    pub os: &'static str,
    pub device: Device,
    pub is_bot: bool,
    /// 128-bit SipHash-1-3 of the agent (cut to [`MAX_UA_BYTES`]) under a
    /// fixed key, computed with the class: callers fold the agent into
    /// their own keyed hashes (the visitor id) from these 16 bytes instead
    /// of reading the agent again for every record.
    pub fingerprint: u128,
}

/// The [`UaClass::fingerprint`] of `agent` (already cut).
fn fingerprint(agent: &str) -> u128 {
    use std::hash::Hasher;
    let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(0x6563_7374_6174_6963, 0x7561);
    hasher.write(agent.as_bytes());
    siphasher::sip128::Hasher128::finish128(&hasher).as_u128()
}

/// The compiled rules: built once per process, shared by every classifier.
struct Rules {
    browser: user_agent::Extractor<'static>,
    os: os::Extractor<'static>,
    bots: BotMatcher,
}

#[derive(Deserialize)]
struct UapFile {
    user_agent_parsers: Vec<user_agent::Parser<'static>>,
    os_parsers: Vec<os::Parser<'static>>,
}

impl Rules {
    fn get() -> &'static Rules {
        static RULES: OnceLock<Rules> = OnceLock::new();
        RULES.get_or_init(Rules::load)
    }

    fn load() -> Rules {
        let file: UapFile = serde_json::from_str(UAP_JSON).expect("embedded uap-core rules");
        let browser = user_agent::Builder::new()
            .push_all(file.user_agent_parsers)
            .and_then(|b| b.build().map_err(ua_parser::Error::from))
            .expect("uap-core user agent rules compile");
        let os = os::Builder::new()
            .push_all(file.os_parsers)
            .expect("uap-core OS rules parse")
            .build()
            .expect("uap-core OS rules compile");
        Rules {
            browser,
            os,
            bots: BotMatcher::new(),
        }
    }
}

/// Classifies user agents, with a bounded cache per distinct agent.
///
/// Cheap to create once the first one has compiled the rules (they are shared
/// by the process); `Send + Sync`, meant to be shared by all intake threads.
pub struct UaClassifier {
    rules: &'static Rules,
    /// The answer for an empty or `-` agent, handed out without a lookup.
    unknown: UaClass,
    /// Keyed by a 64-bit hash of the agent (cut to [`MAX_UA_BYTES`]) under
    /// this process's random key, not by the agent itself: a lookup then
    /// compares 8 bytes instead of following a pointer to compare 150, and
    /// an entry does not hold a copy of its agent. Two agents share an
    /// entry only if their hashes collide: about one chance in 10^9 with
    /// 100,000 agents cached, and the random key keeps senders from
    /// crafting a collision.
    keys: DefaultHashBuilder,
    cache: Cache<u64, UaClass>,
}

impl UaClassifier {
    /// A classifier whose cache holds up to `cache_capacity` distinct agents
    /// (at least one).
    ///
    /// The first call in a process compiles the embedded rules (tens of
    /// milliseconds in a release build); it panics only if the embedded rules
    /// are broken, which the crate's tests catch.
    pub fn new(cache_capacity: usize) -> Self {
        UaClassifier {
            rules: Rules::get(),
            unknown: unknown(),
            keys: DefaultHashBuilder::default(),
            cache: Cache::new(cache_capacity.max(1)),
        }
    }

    /// Classifies an agent, answering from the cache when it can.
    pub fn classify(&self, user_agent: &str) -> UaClass {
        let agent = cut(user_agent);
        if is_absent(agent) {
            return self.unknown;
        }
        let key = self.keys.hash_one(agent);
        if let Some(hit) = self.cache.get(&key) {
            return hit;
        }
        let class = self.classify_cut(agent);
        self.cache.insert(key, class);
        class
    }

    /// Classifies an agent without the cache.
    pub fn classify_uncached(&self, user_agent: &str) -> UaClass {
        self.classify_cut(cut(user_agent))
    }

    fn classify_cut(&self, agent: &str) -> UaClass {
        if is_absent(agent) {
            return unknown();
        }

        let browser = self.rules.browser.extract(agent).map(|v| v.family);
        let os = self.rules.os.extract(agent).map(|v| v.os);
        let os = os.as_deref().map_or(UNKNOWN, family_name);
        let is_bot = self.rules.bots.is_bot(agent);
        let device = if is_bot {
            Device::Bot
        } else {
            device(agent, os)
        };

        UaClass {
            browser: intern(browser.as_deref().map_or(UNKNOWN, family_name)),
            os: intern(os),
            device,
            is_bot,
            fingerprint: fingerprint(agent),
        }
    }
}

/// Whether the log had no agent: bunny writes `-` in the pipe format and
/// `""` in JSON, and both mean the same.
fn is_absent(agent: &str) -> bool {
    agent.is_empty() || agent == "-"
}

/// The class of a missing agent: unknown browser and OS, `other` device.
fn unknown() -> UaClass {
    UaClass {
        browser: UNKNOWN,
        os: UNKNOWN,
        device: Device::Other,
        is_bot: false,
        fingerprint: fingerprint(""),
    }
}

/// Most distinct family names interned, and most bytes they may take.
const MAX_NAMES: usize = 16_384;
const MAX_NAME_BYTES: usize = 1 << 20;

/// The process's copy of a family name, kept for the life of the process.
///
/// A few hundred names occur in practice, but uap-core's templates can echo
/// text from the agent (`$1`), so hostile agents could mint names without
/// end: past [`MAX_NAMES`] names or [`MAX_NAME_BYTES`] bytes, a new name
/// reads `Other`. Only a cache miss comes here.
fn intern(name: &str) -> &'static str {
    struct Names {
        set: HashSet<&'static str>,
        bytes: usize,
    }
    static NAMES: OnceLock<Mutex<Names>> = OnceLock::new();
    if name == UNKNOWN {
        return UNKNOWN;
    }
    let names = NAMES.get_or_init(|| {
        Mutex::new(Names {
            set: HashSet::new(),
            bytes: 0,
        })
    });
    // A panic cannot leave the set half-updated: take it even if poisoned.
    let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = names.set.get(name) {
        return known;
    }
    if names.set.len() >= MAX_NAMES || names.bytes + name.len() > MAX_NAME_BYTES {
        return UNKNOWN;
    }
    let kept: &'static str = Box::leak(name.into());
    names.set.insert(kept);
    names.bytes += name.len();
    kept
}

/// uap-core says `Other` itself when it knows nothing; an empty family (a
/// template that resolved to nothing) means the same.
fn family_name(family: &str) -> &str {
    if family.trim().is_empty() {
        UNKNOWN
    } else {
        family
    }
}

/// The prefix of `agent` that classification looks at.
fn cut(agent: &str) -> &str {
    &agent[..agent.floor_char_boundary(MAX_UA_BYTES)]
}

/// The device class of a non-bot agent, from a few tokens and its OS family.
///
/// Tokens first: TVs and consoles are `other`; `iPad`, `Tablet` (but not
/// Windows' `Tablet PC`), `Kindle`, `PlayBook` a tablet; `Mobi` (Mozilla's
/// advice for phones), `iPhone`, `iPod`, `Opera Mini` a phone. Then the OS:
/// an Android browser without `Mobile` is a tablet (Google's convention for
/// tablet agents) while other Android clients (apps, `Dalvik`) are most
/// likely phones; phone systems are mobile; desktop systems are desktop;
/// anything else is `other`. Measured against Intoli's `deviceCategory` in
/// `tests/ua_oracles.rs`.
fn device(agent: &str, os: &str) -> Device {
    let has = |token: &str| memchr::memmem::find(agent.as_bytes(), token.as_bytes()).is_some();
    let is_screen = [
        "SmartTV", "SMART-TV", "Smart-TV", "CrKey", "AppleTV", "HbbTV", "BRAVIA",
    ];
    let is_console = ["Xbox", "PlayStation", "Nintendo"];
    if is_screen.iter().chain(&is_console).any(|t| has(t)) {
        return Device::Other;
    }
    let tablet_pc = has("Tablet PC");
    if has("iPad") || (has("Tablet") && !tablet_pc) || has("Kindle") || has("PlayBook") {
        return Device::Tablet;
    }
    if has("Mobi") || has("iPhone") || has("iPod") || has("Opera Mini") {
        return Device::Mobile;
    }
    match os {
        "Android" if has("Safari") || has("Chrome") || has("Firefox") => Device::Tablet,
        "Android"
        | "iOS"
        | "Windows Phone"
        | "Windows Mobile"
        | "BlackBerry OS"
        | "KaiOS"
        | "Firefox OS"
        | "Symbian OS"
        | "Symbian^3"
        | "Symbian^3 Anna"
        | "Symbian^3 Belle"
        | "Nokia Series 40"
        | "Nokia Series 30 Plus"
        | "Brew MP"
        | "webOS" => Device::Mobile,
        "BlackBerry Tablet OS" => Device::Tablet,
        "Windows" | "Mac OS X" | "Mac OS" | "Linux" | "Ubuntu" | "Chrome OS" | "Fedora"
        | "Debian" | "Red Hat" | "Gentoo" | "FreeBSD" | "OpenBSD" | "NetBSD" | "Solaris" => {
            Device::Desktop
        }
        _ => Device::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_are_shared() {
        let first = intern(&String::from("Some Browser"));
        let again = intern(&String::from("Some Browser"));
        assert!(std::ptr::eq(first, again));
        assert_eq!(first, "Some Browser");
        assert_eq!(intern("Other"), UNKNOWN);
    }
}
