//! The one place where things that go wrong become HTTP answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ecstatic_auth::AuthError;
use serde_json::json;

/// Why a request was not answered with data.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query or path parameter is missing, unknown or out of range.
    #[error("parameter `{name}`: {message}")]
    BadParameter { name: String, message: String },
    #[error("no bearer token: send `Authorization: Bearer <token>`")]
    MissingToken,
    #[error(transparent)]
    BadToken(#[from] AuthError),
    /// Also the answer for a site that does not exist, so that a caller
    /// cannot probe which ids are taken; the text is the same for every site.
    #[error("this token may not read this site: ask its owner for access")]
    Forbidden,
    #[error("the request took longer than {0} s: narrow the range or try again later")]
    Timeout(u64),
    #[error("ClickHouse query failed")]
    ClickHouse(#[from] clickhouse::error::Error),
}

impl ApiError {
    /// A 400 naming `name`.
    pub fn bad(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadParameter {
            name: name.into(),
            message: message.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::MissingToken | Self::BadToken(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::ClickHouse(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({ "error": self.to_string() });
        match &self {
            Self::BadParameter { name, .. } => body["parameter"] = json!(name),
            // Server faults: logged here with the cause, at most once a
            // second, and answered generically (the cause may name tables or
            // hosts).
            Self::ClickHouse(error) => {
                if let Some(held_back) = FAULT_LOGS.admit() {
                    tracing::error!(%error, held_back, "query failed");
                }
            }
            Self::Timeout(secs) => {
                if let Some(held_back) = FAULT_LOGS.admit() {
                    tracing::warn!(timeout_secs = secs, held_back, "request timed out");
                }
            }
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Server faults repeat per request while ClickHouse is down or slow: one
/// line a second is enough to see it, and callers must not be able to flood
/// the logs.
static FAULT_LOGS: LogLimiter = LogLimiter::new();

/// Lets one log line per wall-clock second through and counts the rest.
struct LogLimiter {
    /// The second (since the Unix epoch) whose line has been let through.
    second: AtomicU64,
    /// Lines held back since the last one let through.
    held_back: AtomicU64,
}

impl LogLimiter {
    const fn new() -> Self {
        Self {
            second: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back before this one)` when this line may be logged.
    fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.second.load(Ordering::Relaxed);
        let won = last != now
            && self
                .second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if won {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_line_a_second_through_and_counts_the_rest() {
        let limiter = LogLimiter::new();
        assert_eq!(limiter.admit(), Some(0));
        // Within the same second (retry if the clock ticked in between).
        let held: Vec<Option<u64>> = (0..3).map(|_| limiter.admit()).collect();
        let admitted = held.iter().filter(|h| h.is_some()).count();
        assert!(admitted <= 1, "{held:?}");
        limiter.second.store(0, Ordering::Relaxed);
        let next = limiter.admit().expect("a new second admits a line");
        assert_eq!(next + admitted as u64, 3);
    }
}
