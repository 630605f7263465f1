//! Connection tasks: read a socket, cut frames, parse and enrich each one,
//! and encode the rows into per-site chunks for the batchers.
//!
//! Work is counted locally and published once per read burst; chunks leave
//! when a burst has been decoded or when one site's chunk is large, so a busy
//! connection sends a few large chunks rather than many small ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ipnet::IpNet;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::batcher::{Budget, CHUNK_BYTES, Chunk, Router};
use super::metrics::Metrics;
use super::ratelimit::LogLimiter;
use super::{proxy, sink};
use crate::enrich::Enricher;
use crate::framing::{Frame, SyslogDecoder};
use crate::{BodyFormat, Reason, Rejection, parse_message};

/// Read buffer growth step, and the size of one socket read.
const READ_BYTES: usize = 64 * 1024;
/// While draining at shutdown, a connection quiet for this long is done.
const DRAIN_IDLE: Duration = Duration::from_millis(200);

/// What every connection task shares.
pub struct Shared {
    pub enricher: Enricher,
    pub format: BodyFormat,
    pub max_frame_bytes: usize,
    pub router: Router,
    pub budget: Budget,
    pub metrics: Metrics,
    pub allow: Vec<IpNet>,
    pub proxy_protocol: bool,
    pub drain: Duration,
    /// A connection that sends nothing for this long is closed, so idle
    /// peers cannot hold every connection slot.
    pub idle_timeout: Duration,
    pub rejections_log: LogLimiter,
    pub connections_log: LogLimiter,
}

impl Shared {
    fn allowed(&self, peer: &SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }

    fn refuse(&self, reason: &'static str, peer: SocketAddr) {
        self.metrics
            .connections_refused
            .with_label_values(&[reason])
            .inc();
        if let Some(held_back) = self.connections_log.allow() {
            tracing::warn!(%peer, reason, held_back, "refused syslog from a peer");
        }
    }
}

/// One connection's (or the UDP socket's) records on their way out.
struct Intake<'a> {
    shared: &'a Shared,
    transport: &'static str,
    peer: SocketAddr,
    pending: HashMap<u64, (u64, Vec<u8>)>,
    frames: u64,
    accepted: u64,
    bytes: u64,
}

impl<'a> Intake<'a> {
    fn new(shared: &'a Shared, transport: &'static str, peer: SocketAddr) -> Self {
        Self {
            shared,
            transport,
            peer,
            pending: HashMap::new(),
            frames: 0,
            accepted: 0,
            bytes: 0,
        }
    }

    /// Parses one frame and appends its row to the site's pending chunk.
    /// Returns whether that chunk is now large enough to send.
    fn frame(&mut self, frame: Frame) -> bool {
        self.frames += 1;
        let message = match frame {
            Frame::Message(message) => message,
            Frame::Oversize { bytes } => {
                self.reject_oversize(bytes);
                return false;
            }
        };
        match parse_message(&message, self.shared.format) {
            Ok(raw) => {
                self.accepted += 1;
                let pending = &mut self.pending;
                self.shared.enricher.with_row(&raw, |row| {
                    let (rows, data) = pending.entry(row.site_id).or_default();
                    *rows += 1;
                    row.encode_row_binary(data);
                    data.len() >= CHUNK_BYTES
                })
            }
            Err(rejection) => {
                self.reject(&rejection);
                false
            }
        }
    }

    fn reject(&self, rejection: &Rejection) {
        let reason = rejection.reason.as_str();
        self.shared
            .metrics
            .records_rejected
            .with_label_values(&[reason])
            .inc();
        if let Some(held_back) = self.shared.rejections_log.allow() {
            tracing::warn!(peer = %self.peer, transport = self.transport, reason,
                error = %rejection, held_back, "rejected a frame");
        }
    }

    fn reject_oversize(&self, bytes: usize) {
        let max = self.shared.max_frame_bytes;
        let detail = format!("{bytes} bytes, more than `--max-frame-bytes` {max}");
        self.reject(&Rejection::new(Reason::FrameTooLarge).with_detail(detail));
    }

    /// A frame cut off by the end of the stream: counted, never stored.
    fn reject_truncated(&self, error: &std::io::Error) {
        self.reject(&Rejection::new(Reason::TruncatedFrame).with_detail(error.to_string()));
    }

    /// Sends every pending chunk to the batchers, waiting for memory budget
    /// first (this wait is the backpressure), and publishes the counts.
    async fn flush(&mut self) {
        let metrics = &self.shared.metrics;
        metrics
            .frames_received
            .with_label_values(&[self.transport])
            .inc_by(self.frames);
        metrics
            .bytes_received
            .with_label_values(&[self.transport])
            .inc_by(self.bytes);
        metrics.records_accepted.inc_by(self.accepted);
        (self.frames, self.accepted, self.bytes) = (0, 0, 0);
        for (site_id, (rows, data)) in self.pending.drain() {
            let reservation = self.shared.budget.reserve(data.len()).await;
            self.shared.router.send(Chunk {
                site_id,
                rows,
                data,
                reservation,
            });
        }
    }
}

/// Serves one TCP connection until the peer closes it or shutdown has
/// drained it.
pub async fn serve_tcp(
    mut stream: TcpStream,
    mut peer: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    if shared.proxy_protocol {
        match proxy::read_header(&mut stream, &mut buf).await {
            Ok(Some(source)) => peer = source,
            Ok(None) => {}
            Err(error) => {
                shared.refuse("proxy_header", peer);
                tracing::debug!(%peer, error = sink::error_chain(&error), "bad PROXY header");
                return;
            }
        }
    }
    if !shared.allowed(&peer) {
        shared.refuse("not_allowed", peer);
        return;
    }
    let _ = stream.set_nodelay(true);
    shared.metrics.connections_accepted.inc();
    shared.metrics.connections_active.inc();
    tracing::debug!(%peer, "syslog connection opened");

    let mut intake = Intake::new(&shared, "tcp", peer);
    let mut decoder = SyslogDecoder::new(shared.max_frame_bytes);
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if let Err(error) = decode_all(&mut decoder, &mut buf, &mut intake, false).await {
            tracing::debug!(%peer, %error, "closing a connection after a framing error");
            break;
        }
        buf.reserve(READ_BYTES);
        let read = match drain_deadline {
            None => tokio::select! {
                read = stream.read_buf(&mut buf) => read,
                () = cancel.cancelled() => {
                    drain_deadline = Some(Instant::now() + shared.drain);
                    continue;
                }
                () = tokio::time::sleep(shared.idle_timeout) => {
                    shared.refuse("idle", peer);
                    break;
                }
            },
            // Shutting down: take what the peer already sent, until it goes
            // quiet or the drain time is over.
            Some(deadline) => {
                let idle = DRAIN_IDLE.min(deadline.saturating_duration_since(Instant::now()));
                match tokio::time::timeout(idle, stream.read_buf(&mut buf)).await {
                    Ok(read) => read,
                    Err(_) => break,
                }
            }
        };
        match read {
            Ok(0) => break,
            Ok(n) => intake.bytes += n as u64,
            Err(error) => {
                tracing::debug!(%peer, %error, "syslog connection failed");
                break;
            }
        }
    }
    // The peer closed (or we stop): a last frame without a line end counts;
    // one cut short of its announced length is counted as rejected.
    if let Err(error) = decode_all(&mut decoder, &mut buf, &mut intake, true).await {
        intake.reject_truncated(&error);
    }
    intake.flush().await;
    shared.metrics.connections_active.dec();
    tracing::debug!(%peer, "syslog connection closed");
}

async fn decode_all(
    decoder: &mut SyslogDecoder,
    buf: &mut BytesMut,
    intake: &mut Intake<'_>,
    at_eof: bool,
) -> std::io::Result<()> {
    loop {
        let frame = if at_eof {
            decoder.decode_eof(buf)?
        } else {
            decoder.decode(buf)?
        };
        let Some(frame) = frame else { break };
        if intake.frame(frame) {
            intake.flush().await;
        }
    }
    intake.flush().await;
    Ok(())
}

/// Serves the UDP socket until shutdown. Each datagram holds one message
/// (or several, line-framed); nothing spans datagrams.
pub async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut datagram = vec![0u8; 65_536];
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let mut intake = Intake::new(&shared, "udp", local);
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut datagram) => received,
            () = cancel.cancelled() => break,
        };
        let mut batch = 0;
        let mut next = received;
        // Take every datagram already queued before sending chunks on.
        loop {
            match next {
                Ok((len, peer)) => handle_datagram(&shared, &mut intake, &datagram[..len], peer),
                Err(error) => tracing::debug!(%error, "UDP receive failed"),
            }
            batch += 1;
            if batch == 1024 {
                break;
            }
            next = match socket.try_recv_from(&mut datagram) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                other => other,
            };
        }
        intake.flush().await;
    }
    intake.flush().await;
}

fn handle_datagram(shared: &Shared, intake: &mut Intake<'_>, bytes: &[u8], peer: SocketAddr) {
    if !shared.allowed(&peer) {
        shared.refuse("not_allowed", peer);
        return;
    }
    intake.peer = peer;
    intake.bytes += bytes.len() as u64;
    let mut decoder = SyslogDecoder::new(shared.max_frame_bytes);
    let mut buf = BytesMut::from(bytes);
    // A datagram ends its last frame: decode as at end of stream. Chunks are
    // flushed by the caller once the socket's queue is empty.
    while let Ok(Some(frame)) = decoder.decode_eof(&mut buf) {
        intake.frame(frame);
    }
}
