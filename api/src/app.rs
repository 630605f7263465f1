//! Shared state, the router and the server loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use ecstatic_auth::JwtKey;
use ecstatic_ops::{HttpMetrics, ReadyCheck, probe_routes};
use prometheus::{IntCounterVec, Opts, Registry};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::authz::Signer;
use crate::cdn::CdnProvider;
use crate::error::ApiError;
use crate::ratelimit::LoginLimiter;
use crate::store::Store;
use crate::{accounts, hostnames, openapi, sites};

/// Longest a request may take; CDN calls time out after 30 s each, and
/// adding a hostname makes up to five of them.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Counters of what the api decides, next to the HTTP ones.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    sign_ins: IntCounterVec,
}

impl ApiMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let sign_ins = IntCounterVec::new(
            Opts::new(
                "api_sign_ins_total",
                "Sign-in attempts by credential and outcome",
            ),
            &["credential", "outcome"],
        )?;
        registry.register(Box::new(sign_ins.clone()))?;
        Ok(Self { sign_ins })
    }

    /// `credential`: `password` or `deploy_token`; `outcome`: `ok`,
    /// `invalid`, `limited` or `error` (a fault on our side).
    pub fn sign_in(&self, credential: &str, outcome: &str) {
        self.sign_ins
            .with_label_values(&[credential, outcome])
            .inc();
    }
}

/// Settings handlers read.
#[derive(Debug)]
pub struct Settings {
    pub token_ttl_secs: u64,
    /// Header naming the client address, set by a trusted reverse proxy.
    pub client_ip_header: Option<axum::http::HeaderName>,
}

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cdn: Arc<dyn CdnProvider>,
    pub jwt: JwtKey,
    pub signer: Signer,
    pub limiter: Arc<LoginLimiter>,
    /// Sign-ups per address (its per-account limit is unused).
    pub signup_limiter: Arc<LoginLimiter>,
    /// An Argon2 hash of a random password, checked when an email is
    /// unknown so that both cases cost the same.
    pub dummy_hash: String,
    pub settings: Arc<Settings>,
    pub metrics: ApiMetrics,
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

pub fn router(
    state: AppState,
    registry: prometheus::Registry,
) -> Result<Router, prometheus::Error> {
    let metrics = HttpMetrics::new(&registry)?;
    let store = state.store.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
    });

    let api = Router::new()
        .route("/v1/accounts", post(accounts::create_account))
        .route("/v1/sessions", post(accounts::create_session))
        .route("/v1/me", get(accounts::me))
        .route("/v1/sites", get(sites::list).post(sites::create))
        .route(
            "/v1/sites/{site}",
            get(sites::get).patch(sites::update).delete(sites::delete),
        )
        .route("/v1/sites/{site}/storage", get(sites::storage))
        .route(
            "/v1/sites/{site}/deploys",
            get(sites::list_deploys).post(sites::record_deploy),
        )
        .route(
            "/v1/sites/{site}/tokens",
            get(sites::list_tokens).post(sites::create_token),
        )
        .route(
            "/v1/sites/{site}/tokens/{token}",
            delete(sites::delete_token),
        )
        .route(
            "/v1/sites/{site}/hostnames",
            get(hostnames::list).post(hostnames::add),
        )
        .route(
            "/v1/sites/{site}/hostnames/{hostname}",
            delete(hostnames::remove),
        )
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::NotFound("no such endpoint: see /openapi.json".into()) })
        .with_state(state);

    Ok(api
        .merge(probe_routes(registry, ready))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            HttpMetrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        )))
}

/// Serves until SIGTERM or SIGINT, then finishes the requests in flight.
pub async fn serve(listen: SocketAddr, app: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(ecstatic_ops::shutdown_signal())
    .await
}
