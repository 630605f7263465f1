//! `ecstatic-query`: the analytics API over the access log in ClickHouse.
//!
//! One site per request, after checking the caller's token names it. See
//! `query/README.md` for the endpoints and the metric definitions, and
//! [`openapi::document`] for the same in OpenAPI form.

pub mod api;
pub mod buckets;
pub mod error;
pub mod openapi;
pub mod params;
pub mod render;
pub mod sql;

pub use api::{AppState, Settings, router};
