//! `ecstatic-ingest serve`: the intake service.
//!
//! ```text
//!  TCP/UDP ─▶ connection tasks ─chunks─▶ batcher threads ─▶ sink ─▶ ClickHouse
//!   (tokio)   decode, parse, enrich,    (crossbeam, per    insert,     ▲
//!             encode RowBinary          site batches)      retry ─▶ spool
//!                                                                 (replayer)
//! ```
//!
//! Shutdown (SIGTERM or SIGINT): stop accepting; let each connection deliver
//! what its peer already sent (up to `--drain-ms`); store or spool every
//! batch; exit 0. What a `kill -9` can lose is bounded in the README.

mod batcher;
mod config;
mod conn;
mod metrics;
mod proxy;
mod ratelimit;
mod sink;
mod spool;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{FormatArg, Listen, ServeArgs, VisitorKey};
pub use metrics::Metrics;

use crate::enrich::{Enricher, EnricherConfig};
use batcher::{BatchLimits, Budget};
use conn::Shared;
use ratelimit::LogLimiter;
use sink::Sink;
use spool::Spool;

/// Runs the service until SIGTERM or SIGINT, then shuts it down cleanly.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let signal = cancel.clone();
    tokio::spawn(async move {
        ecstatic_ops::shutdown_signal().await;
        signal.cancel();
    });
    run_until(args, cancel).await
}

/// Runs the service until `cancel` fires.
pub async fn run_until(args: ServeArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let spool_dir = args.spool_dir();
    let spool = Spool::open(&spool_dir, args.spool_max_bytes, metrics.clone())
        .with_context(|| format!("opening the spool at `{}`", spool_dir.display()))?;
    let sink = Arc::new(Sink::new(
        args.clickhouse_url.clone(),
        args.database.clone(),
        spool,
        metrics.clone(),
    ));
    if let Err(error) = sink.ready_store().await {
        // Not fatal: batches wait in the spool until ClickHouse answers.
        tracing::error!(error = sink::error_chain(&error), url = %args.clickhouse_url,
            "ClickHouse is not reachable yet; spooling until it is");
    }

    let limits = BatchLimits {
        max_rows: args.batch_rows.max(1),
        max_bytes: args.batch_bytes.max(1),
        max_age: args.batch_age(),
    };
    let (router, batchers) = batcher::start(
        args.batchers,
        limits,
        Arc::clone(&sink),
        tokio::runtime::Handle::current(),
    );
    let visitor_key = match &args.visitor_key {
        Some(key) => key.0,
        None => rand::random(),
    };
    let shared = Arc::new(Shared {
        enricher: Enricher::new(EnricherConfig {
            ua_cache_capacity: args.ua_cache,
            visitor_key,
        }),
        format: args.format.into(),
        max_frame_bytes: args.max_frame_bytes,
        router,
        budget: Budget::new(
            args.max_buffer_bytes,
            metrics.queue_bytes.with_label_values(&["queued"]),
        ),
        metrics: metrics.clone(),
        allow: args.allow.clone(),
        proxy_protocol: args.proxy_protocol,
        drain: Duration::from_millis(args.drain_ms),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(1)),
        rejections_log: LogLimiter::new(Duration::from_secs(10), 10),
        connections_log: LogLimiter::new(Duration::from_secs(10), 10),
    });

    let tasks = TaskTracker::new();
    // Telemetry and the spool's replay go on while the intake drains: a
    // batch held in memory behind a full spool can only be stored once the
    // replay has made room, and operators want to watch the drain.
    let stopped = CancellationToken::new();
    let http = start_http(&args, &metrics, &sink, &stopped).await?;
    if let Some(addr) = args.tcp.0 {
        let listener = listen_tcp(addr)
            .with_context(|| format!("listening for syslog on TCP {addr} (`--tcp`)"))?;
        tracing::info!(%addr, "listening for syslog over TCP");
        tasks.spawn(accept_tcp(
            listener,
            Arc::clone(&shared),
            args.max_connections,
            cancel.clone(),
            tasks.clone(),
        ));
    }
    if let Some(addr) = args.udp.0 {
        let socket = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("listening for syslog on UDP {addr} (`--udp`)"))?;
        tracing::info!(%addr, "listening for syslog over UDP");
        tasks.spawn(conn::serve_udp(socket, Arc::clone(&shared), cancel.clone()));
    }
    let replayer = tokio::spawn(Arc::clone(&sink).run_replayer(stopped.clone()));

    cancel.cancelled().await;
    tracing::info!("stopped accepting; draining connections");
    tasks.close();
    tasks.wait().await;
    // Every connection is done: dropping the last router lets the batchers
    // store what they hold and stop.
    drop(shared);
    tokio::task::spawn_blocking(move || {
        for handle in batchers {
            let _ = handle.join();
        }
    })
    .await
    .context("joining the batcher threads")?;
    stopped.cancel();
    let _ = replayer.await;
    http.abort();
    tracing::info!(
        records_accepted = metrics.records_accepted.get(),
        rows_inserted = metrics.rows_inserted.get(),
        rows_spooled = metrics.rows_spooled.get(),
        "stopped"
    );
    Ok(())
}

/// Pending connections the kernel may queue before `accept` takes them. A
/// CDN reconnecting all its edges at once opens hundreds at the same moment;
/// an overflowing queue silently drops their handshakes (Linux caps this at
/// `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

fn listen_tcp(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn accept_tcp(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors, most likely: pause instead of spinning.
                tracing::warn!(%error, "accepting a TCP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            shared
                .metrics
                .connections_refused
                .with_label_values(&["too_many"])
                .inc();
            continue;
        };
        let (shared, cancel) = (Arc::clone(&shared), cancel.clone());
        tasks.spawn(async move {
            conn::serve_tcp(stream, peer, shared, cancel).await;
            drop(slot);
        });
    }
}

async fn start_http(
    args: &ServeArgs,
    metrics: &Metrics,
    sink: &Arc<Sink>,
    cancel: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let ready_sink = Arc::clone(sink);
    let ready: ecstatic_ops::ReadyCheck = Arc::new(move || {
        let sink = Arc::clone(&ready_sink);
        Box::pin(async move { sink.check_ready().await })
    });
    let app: axum::Router = ecstatic_ops::probe_routes(metrics.registry.clone(), ready);
    let listener = TcpListener::bind(args.http)
        .await
        .with_context(|| format!("listening for HTTP on {} (`--http`)", args.http))?;
    tracing::info!(addr = %args.http, "serving /metrics, /healthz and /readyz");
    let cancel = cancel.clone();
    Ok(tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            cancel.cancelled().await;
        });
        if let Err(error) = serve.await {
            tracing::error!(%error, "the HTTP server failed");
        }
    }))
}
