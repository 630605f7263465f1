//! Counts failed sign-ins per account and per client address, and refuses
//! further attempts once either passes its limit within the window.
//!
//! In memory, per process: with several replicas each keeps its own count,
//! so the effective limit is the configured one times the replica count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries above which expired windows are swept, bounding memory under a
/// spray of distinct addresses or emails.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct LoginLimiter {
    per_account: u32,
    per_address: u32,
    window: Duration,
    /// Key (`a:<email>` or `i:<ip>`) → (start of its window, failures in it).
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginLimiter {
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        Self {
            per_account,
            per_address,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds to wait when either key is over its limit, `None` when the
    /// attempt may go ahead.
    pub fn blocked(&self, account: &str, address: &str) -> Option<u64> {
        let now = Instant::now();
        let map = self.failures.lock().expect("limiter lock poisoned");
        let over = |key: String, limit: u32| {
            map.get(&key).and_then(|(start, n)| {
                let left = self.window.checked_sub(now.duration_since(*start))?;
                (*n >= limit).then(|| left.as_secs().max(1))
            })
        };
        over(format!("a:{account}"), self.per_account)
            .or_else(|| over(format!("i:{address}"), self.per_address))
    }

    /// Counts one failure against both keys.
    pub fn failed(&self, account: &str, address: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().expect("limiter lock poisoned");
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        for key in [format!("a:{account}"), format!("i:{address}")] {
            let entry = map.entry(key).or_insert((now, 0));
            if now.duration_since(entry.0) >= self.window {
                *entry = (now, 0);
            }
            entry.1 += 1;
        }
    }

    /// For limits on addresses alone (sign-ups): counts one event against
    /// `address` and says how long to wait when it is over the limit.
    pub fn count_address(&self, address: &str) -> Option<u64> {
        let blocked = self.blocked("", address);
        if blocked.is_none() {
            self.failed("", address);
        }
        blocked
    }

    /// Forgets the account's failures after a successful sign-in.
    pub fn succeeded(&self, account: &str) {
        self.failures
            .lock()
            .expect("limiter lock poisoned")
            .remove(&format!("a:{account}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_per_account_and_per_address() {
        let limiter = LoginLimiter::new(2, 3, Duration::from_secs(60));
        limiter.failed("ann", "1.1.1.1");
        assert_eq!(limiter.blocked("ann", "1.1.1.1"), None);
        limiter.failed("ann", "2.2.2.2");
        assert!(
            limiter.blocked("ann", "9.9.9.9").is_some(),
            "account limit reached"
        );
        assert_eq!(limiter.blocked("bob", "1.1.1.1"), None);

        limiter.failed("bob", "1.1.1.1");
        limiter.failed("cat", "1.1.1.1");
        assert!(
            limiter.blocked("dan", "1.1.1.1").is_some(),
            "address limit reached"
        );

        limiter.succeeded("ann");
        assert_eq!(limiter.blocked("ann", "9.9.9.9"), None);
    }

    #[test]
    fn windows_expire() {
        let limiter = LoginLimiter::new(1, 1, Duration::from_millis(1));
        limiter.failed("ann", "1.1.1.1");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(limiter.blocked("ann", "1.1.1.1"), None);
    }
}
