//! Operational plumbing shared by every Ecstatic service: structured logs,
//! Prometheus metrics, the `/metrics`, `/healthz` and `/readyz` endpoints,
//! per-route HTTP metrics, and waiting for the signal to shut down.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Sets up `tracing` for a service: one line per event, level from
/// `ECSTATIC_LOG` (or `RUST_LOG`), `info` by default; JSON lines when
/// `ECSTATIC_LOG_FORMAT=json`.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("ECSTATIC_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true);
    let json = std::env::var("ECSTATIC_LOG_FORMAT").is_ok_and(|v| v == "json");
    // `try_init`: tests start several services in one process.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// An error and its causes on one line, `outer: inner: root`, for log
/// fields and messages that must carry the whole story once.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
    }
}

/// A readiness check: resolves to `Ok(())` when the service can do its job,
/// or to a short reason when it cannot.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

#[derive(Clone)]
struct ProbeState {
    registry: Registry,
    ready: ReadyCheck,
}

/// `/metrics` (Prometheus text), `/healthz` (the process runs) and `/readyz`
/// (`ready` passes), to merge into a service's router.
pub fn probe_routes<S: Clone + Send + Sync + 'static>(
    registry: Registry,
    ready: ReadyCheck,
) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(ProbeState { registry, ready })
}

async fn metrics(State(state): State<ProbeState>) -> Response {
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn readyz(State(state): State<ProbeState>) -> Response {
    match (state.ready)().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// Request counts and latencies by matched route, method and status.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl HttpMetrics {
    /// Registers `http_requests_total` and `http_request_duration_seconds`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Time to answer a request")
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ]),
            &["route", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        Ok(Self { requests, latency })
    }

    /// Middleware for `axum::middleware::from_fn_with_state`. Unmatched paths
    /// share the route label `unmatched`, so a scan cannot grow the series.
    pub async fn track(State(metrics): State<Self>, request: Request, next: Next) -> Response {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", |p| p.as_str())
            .to_owned();
        let method = request.method().as_str().to_owned();
        let started = Instant::now();
        let response = next.run(request).await;
        let status = response.status().as_u16().to_string();
        metrics
            .requests
            .with_label_values(&[&route, &method, &status])
            .inc();
        metrics
            .latency
            .with_label_values(&[&route, &method])
            .observe(started.elapsed().as_secs_f64());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn probes_answer() {
        let registry = Registry::new();
        let http = HttpMetrics::new(&registry).unwrap();
        let ready: ReadyCheck = Arc::new(|| Box::pin(async { Err("database down".to_owned()) }));
        let app: Router = Router::new().merge(probe_routes(registry, ready)).layer(
            axum::middleware::from_fn_with_state(http, HttpMetrics::track),
        );

        let get = |uri: &str| Request::builder().uri(uri).body(Body::empty()).unwrap();
        let health = app.clone().oneshot(get("/healthz")).await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let ready = app.clone().oneshot(get("/readyz")).await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

        let metrics = app.oneshot(get("/metrics")).await.unwrap();
        let body = axum::body::to_bytes(metrics.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/readyz",status="503"} 1"#)
        );
    }
}
