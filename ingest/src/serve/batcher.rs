//! Per-site batching between the connection tasks and the sink.
//!
//! Connection tasks encode rows into per-site chunks and send them over
//! crossbeam channels to a few batcher threads; a site always goes to the
//! same thread (`site_id % threads`). A thread appends chunks to its sites'
//! batches and hands a batch to the sink when it reaches the row or byte
//! limit, or when its first row has waited the maximum age (with up to 10 %
//! jitter, so that sites do not all flush at once).
//!
//! Memory is bounded by a byte budget: a chunk carries a [`Reservation`] of
//! the budget, released only once its batch is stored or spooled. When the
//! budget is spent, connection tasks wait for it before reading more, which
//! stops reading the sockets: TCP senders feel the backpressure.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::sink::{Batch, Sink};

/// Batch buffers each batcher thread keeps for reuse. A reused buffer has
/// already grown to a batch's size, so filling it neither reallocates nor
/// faults in fresh pages; with fresh buffers, the kernel zeroing new pages
/// took a large share of the intake's CPU (`perf record` on
/// `scripts/bench-ingest.sh`). One per thread bounds what this keeps
/// resident to `--batch-bytes` (times two, for growth) per batcher.
const POOLED_BATCHES: usize = 1;

/// A site's chunk leaves for its batcher once it holds this many bytes.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Limits of one site's batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_rows: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
}

/// Rows of one site, encoded, on their way to a batcher.
pub struct Chunk {
    pub site_id: u64,
    pub rows: u64,
    pub data: Vec<u8>,
    pub reservation: Reservation,
}

/// A share of the memory budget; given back when dropped.
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    gauge: IntGauge,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes);
    }
}

/// The memory budget shared by every connection.
#[derive(Clone)]
pub struct Budget {
    semaphore: Arc<Semaphore>,
    /// Size of the budget in permits; one permit stands for one KiB.
    permits: u32,
    gauge: IntGauge,
}

impl Budget {
    pub fn new(max_bytes: usize, gauge: IntGauge) -> Self {
        let permits = u32::try_from((max_bytes / 1024).max(1)).unwrap_or(u32::MAX >> 3);
        Self {
            semaphore: Arc::new(Semaphore::new(permits as usize)),
            permits,
            gauge,
        }
    }

    /// Waits until `bytes` fit in the budget. A request larger than the whole
    /// budget takes all of it rather than waiting forever.
    pub async fn reserve(&self, bytes: usize) -> Reservation {
        let wanted = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.permits);
        let permit = Arc::clone(&self.semaphore)
            .acquire_many_owned(wanted)
            .await
            .expect("the budget semaphore is never closed");
        let bytes = bytes as i64;
        self.gauge.add(bytes);
        Reservation {
            _permit: permit,
            bytes,
            gauge: self.gauge.clone(),
        }
    }
}

/// Hands chunks to the batcher thread that owns their site.
#[derive(Clone)]
pub struct Router {
    senders: Arc<[Sender<Chunk>]>,
}

impl Router {
    pub fn send(&self, chunk: Chunk) {
        let index = (chunk.site_id % self.senders.len() as u64) as usize;
        // Unbounded channels: the budget, not the channel, bounds memory, so
        // a send never blocks a runtime thread. It fails only after shutdown
        // has joined the batchers, when no connection is left to send.
        if self.senders[index].send(chunk).is_err() {
            tracing::error!("a chunk arrived after the batchers stopped");
        }
    }
}

/// Starts `threads` batcher threads storing through `sink`; they stop once
/// every clone of the returned router is dropped, after storing what they
/// hold.
pub fn start(
    threads: usize,
    limits: BatchLimits,
    sink: Arc<Sink>,
    runtime: tokio::runtime::Handle,
) -> (Router, Vec<JoinHandle<()>>) {
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for index in 0..threads.max(1) {
        let (sender, receiver) = crossbeam_channel::unbounded();
        senders.push(sender);
        let sink = Arc::clone(&sink);
        let runtime = runtime.clone();
        let handle = std::thread::Builder::new()
            .name(format!("batcher-{index}"))
            .spawn(move || Batcher::new(limits, index as u64).run(&receiver, &sink, &runtime))
            .expect("spawning a batcher thread");
        handles.push(handle);
    }
    (
        Router {
            senders: senders.into(),
        },
        handles,
    )
}

struct OpenBatch {
    rows: u64,
    data: Vec<u8>,
    reservations: Vec<Reservation>,
    deadline: Instant,
}

struct Batcher {
    limits: BatchLimits,
    open: HashMap<u64, OpenBatch>,
    /// Batch buffers whose rows are stored, ready for the next batch.
    spare: Vec<Vec<u8>>,
    /// State of a small xorshift generator for the age jitter.
    jitter_state: u64,
}

impl Batcher {
    fn new(limits: BatchLimits, seed: u64) -> Self {
        Self {
            limits,
            open: HashMap::new(),
            spare: Vec::new(),
            jitter_state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    /// Stores a closed batch, then keeps its buffer for the next one.
    fn store(&mut self, batch: Batch, sink: &Sink, runtime: &tokio::runtime::Handle) {
        runtime.block_on(sink.store(&batch));
        // The insert has dropped its handle on the bytes by now, so they are
        // ours alone again; if not, they are simply freed.
        let Batch {
            data,
            _reservations,
            ..
        } = batch;
        drop(_reservations);
        if let Ok(buffer) = data.try_into_mut()
            && self.spare.len() < POOLED_BATCHES
        {
            let mut buffer = Vec::from(buffer);
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    /// A batch buffer: a reused one (already grown to a batch's size) when
    /// there is one.
    fn batch_buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    fn run(mut self, receiver: &Receiver<Chunk>, sink: &Sink, runtime: &tokio::runtime::Handle) {
        loop {
            let wait = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            let received = match wait {
                Some(wait) => receiver.recv_timeout(wait),
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(chunk) => {
                    if let Some(full) = self.add(chunk) {
                        self.store(full, sink, runtime);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for batch in self.take_expired(Instant::now()) {
                self.store(batch, sink, runtime);
            }
        }
        // Shutdown: every sender is gone; store what is left.
        let sites: Vec<u64> = self.open.keys().copied().collect();
        for site_id in sites {
            if let Some(batch) = self.close(site_id) {
                self.store(batch, sink, runtime);
            }
        }
    }

    /// Appends a chunk; returns the site's batch when it is full.
    fn add(&mut self, chunk: Chunk) -> Option<Batch> {
        let site_id = chunk.site_id;
        if !self.open.contains_key(&site_id) {
            let deadline = Instant::now() + self.jittered_age();
            let data = self.batch_buffer();
            let open = OpenBatch {
                rows: 0,
                data,
                reservations: Vec::new(),
                deadline,
            };
            self.open.insert(site_id, open);
        }
        let batch = self.open.get_mut(&site_id).expect("opened above");
        batch.data.extend_from_slice(&chunk.data);
        batch.rows += chunk.rows;
        batch.reservations.push(chunk.reservation);
        let full = batch.rows as usize >= self.limits.max_rows
            || batch.data.len() >= self.limits.max_bytes;
        if full { self.close(site_id) } else { None }
    }

    fn take_expired(&mut self, now: Instant) -> Vec<Batch> {
        let expired: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, b)| b.deadline <= now)
            .map(|(site, _)| *site)
            .collect();
        expired
            .into_iter()
            .filter_map(|site| self.close(site))
            .collect()
    }

    fn close(&mut self, site_id: u64) -> Option<Batch> {
        let open = self.open.remove(&site_id)?;
        // The reservations go with the batch's bytes and are released when
        // `store` returns and the batch is dropped.
        let OpenBatch {
            rows,
            data,
            reservations,
            ..
        } = open;
        Some(Batch {
            site_id,
            rows,
            data: Bytes::from(data),
            _reservations: reservations,
        })
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|b| b.deadline).min()
    }

    fn jittered_age(&mut self) -> Duration {
        let mut x = self.jitter_state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter_state = x;
        // Up to 10 % shorter, never longer: the age is a promise to users.
        let max_jitter = self.limits.max_age / 10;
        let nanos = max_jitter.as_nanos().max(1) as u64;
        self.limits.max_age - Duration::from_nanos(x % nanos)
    }
}
