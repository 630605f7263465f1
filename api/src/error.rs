//! The application error: every handler returns it, and `into_response` is
//! the one place that maps it to a status and a `{"error": …}` body.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cdn::CdnError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field the client sent is wrong; the message names it.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The site is not the caller's, or does not exist: one answer for both.
    #[error("this site does not belong to the signed-in account")]
    NotYourSite,
    #[error("the account is read-only: it may not change anything")]
    ReadOnly,
    #[error("a deploy token may only read its site, its storage and record deploys")]
    DeployTokenScope,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many failed sign-ins: try again in {0} seconds")]
    TooManyAttempts(u64),
    #[error("too many sign-ups from this address: try again in {0} seconds")]
    TooManySignUps(u64),
    #[error("CDN: {0}")]
    Cdn(#[from] CdnError),
    /// A multi-step CDN change failed; the body says what state remains.
    #[error("{message}")]
    CdnPartial { message: String, detail: Value },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::NotYourSite | Self::ReadOnly | Self::DeployTokenScope => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyAttempts(_) | Self::TooManySignUps(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Cdn(_) | Self::CdnPartial { .. } => StatusCode::BAD_GATEWAY,
            Self::Store(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::Store(error) => {
                tracing::error!(error = %error, cause = ?std::error::Error::source(error),
                    "database failure");
                json!({"error": "internal error: the database failed, see the api's log"})
            }
            Self::Internal(what) => {
                tracing::error!(error = %what, "internal failure");
                json!({"error": "internal error, see the api's log"})
            }
            Self::Cdn(error) => {
                tracing::warn!(error = %error, "CDN call failed");
                json!({"error": self.to_string()})
            }
            Self::CdnPartial { message, detail } => {
                tracing::warn!(error = %message, "multi-step CDN change failed");
                let mut body = detail.clone();
                body["error"] = Value::String(message.clone());
                body
            }
            _ => {
                tracing::debug!(status = status.as_u16(), error = %self, "request refused");
                json!({"error": self.to_string()})
            }
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::TooManyAttempts(secs) | Self::TooManySignUps(secs) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::BadRequest(format!("request body: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest(format!("path: {}", rejection.body_text()))
    }
}
