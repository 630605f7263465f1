//! The HTTP service: routes, shared state, the error type that renders
//! itself, and the three smart-HTTP handlers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, BodyDataStream};
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use ecstatic_auth::JwtKey;
use futures_util::StreamExt;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Deserialize;
use tokio::sync::{OwnedMutexGuard, mpsc};

use crate::api::{ApiClient, ApiError, Site};
use crate::auth::{AuthError, Authenticator, Session};
use crate::pkt::{self, PktError, PushHead};
use crate::publish::{Progress, PublishConfig, PublishJob, Publisher, chain};
use crate::rpc::{self, ReceiveSettings, RpcError, Service};
use crate::{Config, Limits};

/// Why the service stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("`ECSTATIC_JWT_SECRET` is not set: use the same key as `api`")]
    MissingSecret,
    #[error("`ECSTATIC_JWT_SECRET` is unusable")]
    BadSecret(#[source] ecstatic_auth::AuthError),
    #[error("preparing {path} failed")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("binding {addr} failed: is another service on that port?")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("building the HTTP client failed")]
    Client(#[source] reqwest::Error),
    #[error("registering metrics failed")]
    Metrics(#[source] prometheus::Error),
    #[error("serving HTTP failed")]
    Serve(#[source] std::io::Error),
}

/// What a request can go wrong with; renders itself as the answer.
#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("no repository at this path: the remote URL is http://HOST/<site_id>")]
    NotFound,
    #[error("unknown `service` {0:?}: expected `git-upload-pack` or `git-receive-pack`")]
    BadService(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("bad push request")]
    BadPush(#[source] PktError),
    #[error("the push ended before its commands did")]
    TruncatedPush,
    #[error("reading the site's settings failed")]
    Site(#[source] ApiError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadService(_) | Self::BadPush(_) | Self::TruncatedPush => StatusCode::BAD_REQUEST,
            Self::Auth(AuthError::MissingCredentials | AuthError::InvalidCredentials)
            | Self::Site(ApiError::InvalidCredentials) => StatusCode::UNAUTHORIZED,
            Self::Auth(AuthError::Forbidden(_) | AuthError::ReadOnly)
            | Self::Site(ApiError::Forbidden(_)) => StatusCode::FORBIDDEN,
            Self::Auth(AuthError::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
            Self::Auth(AuthError::Api(_)) | Self::Site(_) => StatusCode::BAD_GATEWAY,
            Self::Rpc(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = chain(&self);
        if status.is_server_error() {
            if let Some(held_back) = REQUEST_ERRORS.admit() {
                tracing::error!(%status, error = message, held_back, "request failed");
            }
        } else {
            tracing::debug!(%status, error = message, "request refused");
        }
        let mut response = (status, format!("{message}\n")).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ecstatic\""),
            );
        }
        response
    }
}

/// Error logs of failed requests: a broken `api` fails every request, and
/// each would log.
static REQUEST_ERRORS: LogLimiter = LogLimiter::new();

/// Admits one log line per second; the next admitted line carries how many
/// were held back meanwhile.
struct LogLimiter {
    /// Second (since the Unix epoch) of the last admitted line.
    last_sec: AtomicU64,
    held_back: AtomicU64,
}

impl LogLimiter {
    const fn new() -> Self {
        Self {
            last_sec: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when this line may go out.
    fn admit(&self) -> Option<u64> {
        let now = ecstatic_auth::now_secs();
        let last = self.last_sec.load(Ordering::Relaxed);
        if now > last
            && self
                .last_sec
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// State shared by every request.
struct AppState {
    auth: Authenticator,
    api: ApiClient,
    publisher: Publisher,
    repos_dir: PathBuf,
    hooks_dir: PathBuf,
    limits: Limits,
    /// One lock per site, held for a whole push and its publish.
    site_locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    refusals: IntCounterVec,
    /// Read-held by every push task, so that shutdown can wait for them.
    pushes: Arc<tokio::sync::RwLock<()>>,
}

impl AppState {
    fn repo_path(&self, site: u64) -> PathBuf {
        self.repos_dir.join(format!("{site}.git"))
    }

    fn site_lock(&self, site: u64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.site_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(site).or_default().clone()
    }

    /// Signs the caller in and checks their right to `site`.
    async fn session(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        site: u64,
        write: bool,
    ) -> Result<Session, AppError> {
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let result = match self.auth.authenticate(header, peer.ip()).await {
            Ok(session) => session.authorize(site, write).map(|()| session),
            Err(error) => Err(error),
        };
        result.map_err(|error| {
            let reason = match &error {
                AuthError::MissingCredentials => "missing",
                AuthError::InvalidCredentials => "invalid",
                AuthError::Forbidden(_) | AuthError::ReadOnly => "forbidden",
                AuthError::RateLimited => "rate_limited",
                AuthError::Api(_) => "api",
            };
            self.refusals.with_label_values(&[reason]).inc();
            AppError::Auth(error)
        })
    }

    async fn site(&self, session: &Session, site: u64) -> Result<Site, AppError> {
        self.api
            .site(&session.token, site)
            .await
            .map_err(AppError::Site)
    }
}

type Shared = Arc<AppState>;

/// Starts the service and serves until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), StartError> {
    let secret =
        std::env::var(ecstatic_auth::JWT_SECRET_ENV).map_err(|_| StartError::MissingSecret)?;
    let key = JwtKey::new(secret.as_bytes()).map_err(StartError::BadSecret)?;
    let registry = Registry::new();
    let state = Arc::new(build_state(&config, key, &registry)?);
    let ready_dir = state.repos_dir.clone();
    let ready: ecstatic_ops::ReadyCheck = Arc::new(move || {
        let dir = ready_dir.clone();
        Box::pin(async move {
            match tokio::fs::metadata(&dir).await {
                Ok(meta) if meta.is_dir() => Ok(()),
                _ => Err(format!("{} is missing", dir.display())),
            }
        })
    });
    let http = ecstatic_ops::HttpMetrics::new(&registry).map_err(StartError::Metrics)?;
    let pushes = state.pushes.clone();
    let app = router(state)
        .merge(ecstatic_ops::probe_routes(registry, ready))
        .layer(axum::middleware::from_fn_with_state(
            http,
            ecstatic_ops::HttpMetrics::track,
        ));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    let data_dir = config.data_dir.display();
    tracing::info!(%addr, %data_dir, api = config.api_url, "serving git");
    // The peer's address goes to `api` with each sign-in, so that its
    // per-address limit counts pushers apart rather than all as `git`.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(ecstatic_ops::shutdown_signal())
    .await
    .map_err(StartError::Serve)?;

    // A publish goes on after its pusher hung up; let it finish.
    if pushes.try_write().is_err() {
        tracing::info!("waiting for publishes in progress");
    }
    let _all_done = pushes.write().await;
    Ok(())
}

fn build_state(config: &Config, key: JwtKey, registry: &Registry) -> Result<AppState, StartError> {
    let data_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StartError::DataDir { path, source }
    };
    let repos_dir = config.data_dir.join("repos");
    std::fs::create_dir_all(&repos_dir).map_err(data_error(&repos_dir))?;
    let repos_dir = repos_dir.canonicalize().map_err(data_error(&repos_dir))?;
    let data_dir = repos_dir.parent().unwrap_or(&repos_dir).to_path_buf();
    let hooks_dir = data_dir.join("hooks");
    install_hook(&hooks_dir).map_err(data_error(&hooks_dir))?;

    let api = ApiClient::new(&config.api_url).map_err(StartError::Client)?;
    let publish_config = PublishConfig {
        limits: config.limits,
        upload_concurrency: usize::from(config.upload_concurrency),
        temp_dir: data_dir.join("tmp").join("git"),
        public_url: config.public_url.clone(),
    };
    let publisher =
        Publisher::new(api.clone(), publish_config, registry).map_err(StartError::Metrics)?;
    let refusals = IntCounterVec::new(
        Opts::new(
            "git_requests_refused_total",
            "Requests refused at sign-in, by reason",
        ),
        &["reason"],
    )
    .map_err(StartError::Metrics)?;
    registry
        .register(Box::new(refusals.clone()))
        .map_err(StartError::Metrics)?;

    Ok(AppState {
        auth: Authenticator::new(api.clone(), key),
        api,
        publisher,
        repos_dir,
        hooks_dir,
        limits: config.limits,
        site_locks: Mutex::new(HashMap::new()),
        refusals,
        pushes: Arc::default(),
    })
}

/// Writes the `pre-receive` hook that runs this binary's hook subcommand
/// (see [`crate::hook`]); rewritten at every start so that it names the
/// binary that runs now.
fn install_hook(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let exe = std::env::current_exe()?;
    let quoted = exe.display().to_string().replace('\'', r"'\''");
    let script = format!("#!/bin/sh\nexec '{quoted}' pre-receive-hook\n");
    let temp = dir.join(format!(".pre-receive-{}", std::process::id()));
    std::fs::write(&temp, script)?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&temp, dir.join("pre-receive"))
}

fn router(state: Shared) -> Router {
    let git = Router::new()
        .route("/{repo}/info/refs", get(info_refs))
        .route("/{repo}/git-upload-pack", post(upload_pack))
        .route("/{repo}/git-receive-pack", post(receive_pack))
        .layer(tower_http::decompression::RequestDecompressionLayer::new());
    git.with_state(state)
}

/// Reads `1000` or `1000.git` from the URL.
fn site_id(repo: &str) -> Result<u64, AppError> {
    let id = repo.strip_suffix(".git").unwrap_or(repo);
    id.parse()
        .ok()
        .filter(|&id| id > 0)
        .ok_or(AppError::NotFound)
}

#[derive(Debug, Deserialize)]
struct InfoRefsQuery {
    service: Option<String>,
}

async fn info_refs(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath(repo): UrlPath<String>,
    Query(query): Query<InfoRefsQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let site = site_id(&repo)?;
    let name = query.service.unwrap_or_default();
    let service = Service::from_query(&name).ok_or(AppError::BadService(name))?;
    let write = service == Service::ReceivePack;
    let session = state.session(&headers, peer, site, write).await?;
    let branch = if write {
        state.site(&session, site).await?.branch
    } else {
        "main".into()
    };

    let repo_path = state.repo_path(site);
    rpc::ensure_repo(&repo_path, &branch).await?;
    let body = rpc::advertise(&repo_path, service).await?;
    Ok(git_response(service.advertisement_type(), Body::from(body)))
}

async fn upload_pack(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath(repo): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let site = site_id(&repo)?;
    state.session(&headers, peer, site, false).await?;
    let repo_path = state.repo_path(site);
    rpc::ensure_repo(&repo_path, "main").await?;
    let body = rpc::upload_pack(&repo_path, body)?;
    Ok(git_response(Service::UploadPack.result_type(), body))
}

async fn receive_pack(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath(repo): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let site_id = site_id(&repo)?;
    let session = state.session(&headers, peer, site_id, true).await?;
    let site = state.site(&session, site_id).await?;
    let repo_path = state.repo_path(site_id);
    rpc::ensure_repo(&repo_path, &site.branch).await?;

    let mut rest = body.into_data_stream();
    let (head, read) = read_push_head(&mut rest).await?;

    // Two pushes to one site never interleave: the second waits here.
    let lock = state.site_lock(site_id);
    let waited = Instant::now();
    let (guard, queued) = match lock.clone().try_lock_owned() {
        Ok(guard) => (guard, false),
        Err(_) => (lock.lock_owned().await, true),
    };
    let waited = queued.then(|| waited.elapsed());

    let settings = ReceiveSettings {
        hooks_dir: &state.hooks_dir,
        limits: &state.limits,
        branch: &site.branch,
        publish_dir: &site.publish_dir,
    };
    let child = rpc::receive_pack(&repo_path, &settings, read, rest)?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(32);
    let push = Push {
        state: state.clone(),
        session,
        site,
        repo: repo_path,
        head,
        guard,
    };
    let in_flight = state.pushes.clone().read_owned().await;
    tokio::spawn(async move {
        push.run(child, tx, waited).await;
        drop(in_flight);
    });

    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(Ok::<_, std::convert::Infallible>);
    Ok(git_response(
        Service::ReceivePack.result_type(),
        Body::from_stream(stream),
    ))
}

/// Reads the body up to the end of the push's command section. Returns the
/// parsed head and every byte read so far (head included), which the child
/// still has to see.
async fn read_push_head(rest: &mut BodyDataStream) -> Result<(PushHead, BytesMut), AppError> {
    let mut read = BytesMut::new();
    loop {
        if let Some((head, _)) = pkt::parse_push_head(&read).map_err(AppError::BadPush)? {
            return Ok((head, read));
        }
        match rest.next().await {
            Some(Ok(chunk)) => read.extend_from_slice(&chunk),
            Some(Err(_)) | None => return Err(AppError::TruncatedPush),
        }
    }
}

/// One push after its child started: relays the child's answer, then
/// publishes when the site's branch moved.
struct Push {
    state: Shared,
    session: Session,
    site: Site,
    repo: PathBuf,
    head: PushHead,
    /// Held until the publish is over.
    guard: OwnedMutexGuard<()>,
}

impl Push {
    async fn run(
        self,
        child: rpc::ReceivePack,
        tx: mpsc::Sender<Bytes>,
        waited: Option<std::time::Duration>,
    ) {
        let progress = Progress::new(self.head.side_band().then(|| tx.clone()));
        if let Some(waited) = waited {
            let secs = waited.as_secs_f64();
            progress
                .say(&format!(
                    "ecstatic: waited {secs:.1} s for another push to this site"
                ))
                .await;
        }
        let (succeeded, held_flush) = child.relay(&self.head, &tx).await;
        if let Some(commit) = self.published_commit(succeeded).await {
            let job = PublishJob {
                session: &self.session,
                site: &self.site,
                repo: &self.repo,
                commit: &commit,
            };
            self.state.publisher.publish(job, &progress).await;
        } else if succeeded && !self.touches_site_branch() {
            let branch = &self.site.branch;
            let line = format!("ecstatic: nothing published: the site publishes `{branch}`");
            progress.say(&line).await;
        }
        if held_flush {
            let _ = tx.send(Bytes::from_static(pkt::FLUSH)).await;
        }
        drop(self.guard);
    }

    fn touches_site_branch(&self) -> bool {
        let target = format!("refs/heads/{}", self.site.branch);
        self.head.updates.iter().any(|u| u.name == target)
    }

    /// The commit to publish: the new tip of the site's branch, when this
    /// push moved it there.
    async fn published_commit(&self, succeeded: bool) -> Option<String> {
        let target = format!("refs/heads/{}", self.site.branch);
        let update = self
            .head
            .updates
            .iter()
            .find(|u| u.name == target && !u.is_delete())?;
        if !succeeded {
            tracing::debug!(
                site = self.site.id,
                "receive-pack failed: nothing to publish"
            );
        }
        let tip = rev_parse(&self.repo, &target).await?;
        (tip == update.new).then_some(tip)
    }
}

async fn rev_parse(repo: &Path, name: &str) -> Option<String> {
    let output = tokio::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", name])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .await
        .ok()?;
    let tip = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && pkt::is_oid(&tip)).then_some(tip)
}

fn git_response(content_type: &'static str, body: Body) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (
            header::CACHE_CONTROL,
            "no-cache, max-age=0, must-revalidate",
        ),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_limiter_admits_one_line_a_second_and_counts_the_rest() {
        let limiter = LogLimiter::new();
        assert_eq!(limiter.admit(), Some(0));
        assert_eq!(limiter.admit(), None);
        assert_eq!(limiter.admit(), None);
        // As if a second went by.
        limiter.last_sec.fetch_sub(1, Ordering::Relaxed);
        assert_eq!(limiter.admit(), Some(2));
    }

    #[test]
    fn reads_site_ids_from_paths() {
        assert_eq!(site_id("1000").unwrap(), 1000);
        assert_eq!(site_id("1000.git").unwrap(), 1000);
        for bad in ["0", "abc", "-1", "1000.git.git", ""] {
            assert!(matches!(site_id(bad), Err(AppError::NotFound)), "{bad}");
        }
    }

    #[test]
    fn unauthorized_answers_ask_for_basic_credentials() {
        let response = AppError::Auth(AuthError::InvalidCredentials).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"ecstatic\""
        );
        let response = AppError::Auth(AuthError::Forbidden(7)).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
