//! Routes, access checks and the three analytics handlers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clickhouse::Client;
use ecstatic_auth::JwtKey;
use ecstatic_ops::{HttpMetrics, ReadyCheck, probe_routes};
use ecstatic_store::Store;
use jiff::Timestamp;
use prometheus::{HistogramOpts, HistogramVec, Registry};
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::buckets;
use crate::error::ApiError;
use crate::params::{self, COMMON, Common, MAX_LIMIT, MAX_OFFSET, Params};
use crate::render::{self, Breakdown, Point, Summary, Timeseries, Totals};
use crate::sql::{self, Sql};

/// How the service runs, from flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None` only with `--insecure-no-auth`.
    pub jwt: Option<JwtKey>,
    pub cors_origin: Option<HeaderValue>,
    pub request_timeout: Duration,
    pub max_range_days: u32,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    table: String,
    jwt: Option<JwtKey>,
    max_range_days: u32,
    clickhouse_latency: HistogramVec,
}

impl AppState {
    /// Registers the service's own metrics in `registry`.
    pub fn new(
        store: &Store,
        settings: &Settings,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let clickhouse_latency = HistogramVec::new(
            HistogramOpts::new(
                "query_clickhouse_duration_seconds",
                "Time ClickHouse took to answer one analytics query",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["query"],
        )?;
        registry.register(Box::new(clickhouse_latency.clone()))?;
        // The server stops a query that outlives the request, so a timed-out
        // request leaves no work behind.
        let secs = settings.request_timeout.as_secs().max(1).to_string();
        let client = store
            .client()
            .clone()
            .with_setting("max_execution_time", secs);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                table: store.access_table(),
                jwt: settings.jwt.clone(),
                max_range_days: settings.max_range_days,
                clickhouse_latency,
            }),
        })
    }

    async fn fetch_all<T>(&self, name: &'static str, sql: &Sql) -> Result<Vec<T>, ApiError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let started = Instant::now();
        tracing::trace!(query = name, sql = %sql.text, "running");
        let rows = sql.to_query(&self.inner.client).fetch_all::<T>().await?;
        let elapsed = started.elapsed().as_secs_f64();
        self.inner
            .clickhouse_latency
            .with_label_values(&[name])
            .observe(elapsed);
        Ok(rows)
    }

    /// Checks the bearer token (401), the site id (400) and that the token
    /// names the site (403), in that order.
    fn authorize(&self, headers: &HeaderMap, site: &str) -> Result<u64, ApiError> {
        let claims = match &self.inner.jwt {
            Some(key) => {
                let token = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(ecstatic_auth::bearer_token)
                    .ok_or(ApiError::MissingToken)?;
                Some(key.verify(token)?)
            }
            None => None,
        };
        let site = params::parse_site(site)?;
        match claims {
            Some(claims) if !claims.may_read(site) => Err(ApiError::Forbidden),
            _ => Ok(site),
        }
    }
}

/// The service's routes, probes and middleware.
pub fn router(state: AppState, settings: &Settings, store: Store, registry: Registry) -> Router {
    let http_metrics = HttpMetrics::new(&registry).expect("HTTP metrics register once");
    let ready: ReadyCheck = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            if store.ping().await {
                Ok(())
            } else {
                Err("ClickHouse does not answer".into())
            }
        })
    });
    let timeout = settings.request_timeout;
    let mut app = Router::new()
        .route("/v1/sites/{site}/summary", get(summary))
        .route("/v1/sites/{site}/timeseries", get(timeseries))
        .route("/v1/sites/{site}/breakdown", get(breakdown))
        .route_layer(middleware::from_fn_with_state(timeout, limit_time))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .with_state(state)
        .merge(probe_routes(registry, ready));
    if let Some(origin) = &settings.cors_origin {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list([origin.clone()]))
                .allow_methods([Method::GET])
                .allow_headers([header::AUTHORIZATION, header::ACCEPT])
                .expose_headers([header::HeaderName::from_static("x-total-count")])
                .max_age(Duration::from_secs(600)),
        );
    }
    app.layer(middleware::from_fn_with_state(
        http_metrics,
        HttpMetrics::track,
    ))
    .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Answers 503 when a request outlives `timeout`; dropping the handler's
/// future also drops its ClickHouse request.
async fn limit_time(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(timeout.as_secs()).into_response(),
    }
}

type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Authorizes, then reads the query string into [`Params`] and the common
/// parameters.
fn begin(
    state: &AppState,
    headers: &HeaderMap,
    site: &str,
    query: RawQuery,
) -> Result<(u64, Params, Common), ApiError> {
    let site = state.authorize(headers, site)?;
    let Query(pairs) = query
        .map_err(|e| ApiError::bad("query", format!("cannot be decoded: {}", e.body_text())))?;
    let mut params = Params::new(pairs)?;
    let common = params.common(Timestamp::now(), state.inner.max_range_days)?;
    Ok((site, params, common))
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct SummaryRow {
    current: u8,
    requests: u64,
    pageviews: u64,
    visitors: u64,
    bandwidth: u64,
    cache_hits: u64,
    status_4xx: u64,
    status_5xx: u64,
    bots: u64,
    all_requests: u64,
}

impl SummaryRow {
    fn totals(&self) -> Totals {
        let share = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 / whole as f64
            }
        };
        Totals {
            requests: self.requests,
            pageviews: self.pageviews,
            visitors: self.visitors,
            bandwidth: self.bandwidth,
            cache_hit_ratio: share(self.cache_hits, self.requests),
            share_4xx: share(self.status_4xx, self.requests),
            share_5xx: share(self.status_5xx, self.requests),
            bot_share: share(self.bots, self.all_requests),
        }
    }
}

async fn summary(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let (site, params, common) = begin(&state, &headers, &site, query)?;
    params.finish(COMMON)?;

    let sql = sql::summary(&state.inner.table, site, &common);
    let rows: Vec<SummaryRow> = state.fetch_all("summary", &sql).await?;

    let pick = |current: u8| {
        rows.iter()
            .find(|r| r.current == current)
            .map(SummaryRow::totals)
    };
    let answer = Summary {
        current: pick(1).unwrap_or_default(),
        previous: pick(0).unwrap_or_default(),
    };
    Ok(answer.respond(render::wants_csv(&headers)))
}

async fn timeseries(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let (site, mut params, common) = begin(&state, &headers, &site, query)?;
    let metric = params.metric()?;
    let interval = params.interval()?;
    params.finish(&[COMMON, &["metric", "interval"]].concat())?;
    let planned = buckets::plan(&common.range, interval)?;

    let range = &common.range;
    let offsets = buckets::offsets(&range.tz, range.from, range.to);
    let sql = sql::timeseries(
        &state.inner.table,
        site,
        &common,
        metric,
        interval,
        &offsets,
    );
    let rows: Vec<(i64, u64)> = state.fetch_all("timeseries", &sql).await?;

    let values: HashMap<i64, u64> = rows.into_iter().collect();
    let points = planned
        .iter()
        .map(|b| Point {
            time: b
                .start
                .timestamp()
                .display_with_offset(b.start.offset())
                .to_string(),
            value: values.get(&b.key).copied().unwrap_or(0),
        })
        .collect();
    Ok(Timeseries { points }.respond(render::wants_csv(&headers)))
}

async fn breakdown(
    State(state): State<AppState>,
    Path(site): Path<String>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response, ApiError> {
    let (site, mut params, common) = begin(&state, &headers, &site, query)?;
    let dimension = params.dimension()?;
    let metric = params.metric()?;
    let limit = params.count("limit", 10, 1, MAX_LIMIT)?;
    let offset = params.count("offset", 0, 0, MAX_OFFSET)?;
    params.finish(&[COMMON, &["dimension", "metric", "limit", "offset"]].concat())?;

    let table = &state.inner.table;
    let rows_sql = sql::breakdown_rows(table, site, &common, dimension, metric, (limit, offset));
    let total_sql = sql::breakdown_total(table, site, &common, dimension, metric);
    let (rows, total) = tokio::try_join!(
        state.fetch_all::<(String, u64)>("breakdown", &rows_sql),
        state.fetch_all::<u64>("breakdown_total", &total_sql),
    )?;

    let rows = rows
        .into_iter()
        .map(|(key, value)| render::Row { key, value })
        .collect();
    let answer = Breakdown {
        total: total.first().copied().unwrap_or(0),
        rows,
    };
    Ok(answer.respond(render::wants_csv(&headers)))
}
