//! A log rate limiter: lets a few lines through per window and counts the
//! rest, so that a client sending garbage cannot flood the logs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LogLimiter {
    window: Duration,
    per_window: u32,
    state: Mutex<State>,
}

struct State {
    started: Instant,
    allowed: u32,
    held_back: u64,
}

impl LogLimiter {
    /// Allows `per_window` lines every `window`.
    pub fn new(window: Duration, per_window: u32) -> Self {
        let state = State {
            started: Instant::now(),
            allowed: 0,
            held_back: 0,
        };
        Self {
            window,
            per_window,
            state: Mutex::new(state),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held
    /// back since the last one that was; `None` when this one is held back.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().expect("limiter lock");
        if state.started.elapsed() >= self.window {
            state.started = Instant::now();
            state.allowed = 0;
        }
        if state.allowed < self.per_window {
            state.allowed += 1;
            Some(std::mem::take(&mut state.held_back))
        } else {
            state.held_back += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_and_reports_how_many() {
        let limiter = LogLimiter::new(Duration::from_secs(3600), 2);
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        limiter.state.lock().unwrap().started -= Duration::from_secs(3601);
        assert_eq!(limiter.allow(), Some(2));
    }
}
