//! The one place where things that go wrong become HTTP answers.

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
            // Server faults: logged once here with the cause, answered
            // generically (the cause may name tables or hosts).
            Self::ClickHouse(error) => tracing::error!(%error, "query failed"),
            Self::Timeout(_) => tracing::warn!("request timed out"),
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
