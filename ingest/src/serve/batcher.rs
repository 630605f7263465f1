//! Per-site batching between the connection tasks and the sink.
//!
//! Connection tasks encode rows into per-site chunks and send them over
//! crossbeam channels to a few batcher threads; a site always goes to the
//! same thread (`site_id % threads`). A thread keeps count of each site's
//! batch and flushes when one of them reaches the row or byte limit (or
//! all of them together four times the byte limit), or
//! when the first row of one has waited the maximum age (with up to 10 %
//! jitter, so that threads do not flush in lock step), or, once the thread's
//! input has gone quiet, when one is at least a quarter of the maximum age
//! old: once the senders pause, waiting longer only delays their rows.
//!
//! A flush is one ClickHouse insert and takes every site's batch the thread
//! holds. ClickHouse writes each insert as a new part and merges parts in
//! the background, so a few large inserts cost it far less than one small
//! insert per site: with 20 sites, inserting per site took ClickHouse 1.3
//! times as long as inserting the same rows in 10 large inserts
//! (BENCHMARKS.md, "ingest end to end"). The insert does not wait for the
//! flush: it starts once the thread holds a segment of rows, and each full
//! segment is streamed to ClickHouse, which parses it while the batch goes
//! on filling; the flush only ends the insert. The rows stay in memory
//! until it is stored, for a retry or the spool.
//!
//! The rows are held in arrival order in fixed-size segments, not one
//! buffer grown to the batch's size: growing copies the bytes again at
//! each doubling and faults in fresh pages that the kernel must zero, which
//! took a third of the intake's CPU (`perf record` on
//! `scripts/bench-ingest.sh`). Segments of stored batches go back to a
//! small per-thread pool.
//!
//! Memory is bounded by a byte budget: a chunk carries a [`Reservation`] of
//! the budget, released only once its batch is stored or spooled. When the
//! budget is spent, connection tasks wait for it before reading more, which
//! stops reading the sockets: TCP senders feel the backpressure.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::sink::{Batch, Sink, Stream};

/// A site's chunk leaves for its batcher once it holds this many bytes.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// Capacity of the segments batches are made of. A chunk never spans two
/// segments, so each segment holds whole rows.
const SEGMENT_BYTES: usize = 1 << 20;

/// A thread also flushes once its batches together hold this many times
/// `--batch-bytes`: it bounds an insert, a spool file and what a retry
/// reads back, whatever the number of sites.
const MAX_FLUSH_BATCHES: usize = 4;

/// A batcher thread whose channel has been empty this long counts as quiet.
const QUIET: Duration = Duration::from_millis(200);

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

/// What a thread counts of one site's batch.
struct SiteBatch {
    rows: u64,
    bytes: usize,
    /// When the first row arrived.
    opened: Instant,
    /// When the batch flushes at the latest.
    deadline: Instant,
}

impl SiteBatch {
    /// When this batch makes its thread flush, given when the thread's
    /// input counts as quiet: at its deadline, or once it is old enough and
    /// the input is quiet.
    fn due(&self, quiet_since: Instant, early_age: Duration) -> Instant {
        self.deadline.min(quiet_since.max(self.opened + early_age))
    }
}

struct Batcher {
    limits: BatchLimits,
    sites: HashMap<u64, SiteBatch>,
    /// Rows of every site, in arrival order; a chunk never spans two
    /// segments.
    segments: Vec<Vec<u8>>,
    rows: u64,
    bytes: usize,
    reservations: Vec<Reservation>,
    /// The insert being streamed, once started, and how many segments it
    /// has been sent.
    stream: Option<Stream>,
    streamed: usize,
    /// Segments of stored batches, ready for reuse.
    spare: Vec<Vec<u8>>,
    /// Most segments kept in `spare`: one full batch's worth.
    max_spare: usize,
    /// When the last chunk arrived.
    last_input: Instant,
    /// State of a small xorshift generator for the age jitter.
    jitter_state: u64,
}

impl Batcher {
    fn new(limits: BatchLimits, seed: u64) -> Self {
        Self {
            limits,
            sites: HashMap::new(),
            segments: Vec::new(),
            rows: 0,
            bytes: 0,
            reservations: Vec::new(),
            stream: None,
            streamed: 0,
            spare: Vec::new(),
            max_spare: limits.max_bytes.div_ceil(SEGMENT_BYTES),
            last_input: Instant::now(),
            jitter_state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    /// Streams every full segment not sent yet, starting the insert if
    /// needed. The last segment is still filling; it goes at the flush.
    fn stream_full_segments(&mut self, sink: &Sink, runtime: &tokio::runtime::Handle) {
        while self.streamed + 1 < self.segments.len() {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                empty => empty.insert(runtime.block_on(sink.begin())),
            };
            runtime.block_on(sink.send(stream, &self.segments[self.streamed]));
            self.streamed += 1;
        }
    }

    /// Stores every site's batch as one insert (ending the streamed one, or
    /// all at once when it is small), then keeps the segments for reuse.
    fn flush(&mut self, sink: &Sink, runtime: &tokio::runtime::Handle) {
        let Some(batch) = self.close_all() else {
            return;
        };
        match self.stream.take() {
            Some(mut stream) => runtime.block_on(async {
                for segment in &batch.segments[self.streamed..] {
                    sink.send(&mut stream, segment).await;
                }
                sink.finish(stream, &batch).await;
            }),
            None => runtime.block_on(sink.store(&batch)),
        }
        self.streamed = 0;
        let Batch {
            segments,
            reservations,
            ..
        } = batch;
        drop(reservations);
        for mut segment in segments {
            if self.spare.len() >= self.max_spare {
                break;
            }
            if segment.capacity() == SEGMENT_BYTES {
                segment.clear();
                self.spare.push(segment);
            }
        }
    }

    /// A segment with room for `bytes`: a reused one when there is one.
    fn segment(&mut self, bytes: usize) -> Vec<u8> {
        if bytes > SEGMENT_BYTES {
            return Vec::with_capacity(bytes);
        }
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(SEGMENT_BYTES))
    }

    fn early_age(&self) -> Duration {
        self.limits.max_age / 4
    }

    fn run(mut self, receiver: &Receiver<Chunk>, sink: &Sink, runtime: &tokio::runtime::Handle) {
        loop {
            let wait = self
                .next_due()
                .map(|d| d.saturating_duration_since(Instant::now()));
            let received = match wait {
                Some(wait) => receiver.recv_timeout(wait),
                None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(chunk) => {
                    self.last_input = Instant::now();
                    if self.add(chunk) {
                        self.flush(sink, runtime);
                    } else {
                        self.stream_full_segments(sink, runtime);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.next_due().is_some_and(|due| due <= Instant::now()) {
                self.flush(sink, runtime);
            }
        }
        // Shutdown: every sender is gone; store what is left.
        self.flush(sink, runtime);
    }

    /// Appends a chunk; returns whether its site's batch, or all of them
    /// together, are now full.
    fn add(&mut self, chunk: Chunk) -> bool {
        if !self.sites.contains_key(&chunk.site_id) {
            let opened = Instant::now();
            let site = SiteBatch {
                rows: 0,
                bytes: 0,
                opened,
                deadline: opened + self.jittered_age(),
            };
            self.sites.insert(chunk.site_id, site);
        }
        let site = self.sites.get_mut(&chunk.site_id).expect("inserted above");
        site.rows += chunk.rows;
        site.bytes += chunk.data.len();
        let full =
            site.rows as usize >= self.limits.max_rows || site.bytes >= self.limits.max_bytes;
        let fits = self
            .segments
            .last()
            .is_some_and(|s| s.capacity() - s.len() >= chunk.data.len());
        if !fits {
            let segment = self.segment(chunk.data.len());
            self.segments.push(segment);
        }
        let segment = self.segments.last_mut().expect("a segment with room");
        segment.extend_from_slice(&chunk.data);
        self.rows += chunk.rows;
        self.bytes += chunk.data.len();
        self.reservations.push(chunk.reservation);
        full || self.bytes >= MAX_FLUSH_BATCHES * self.limits.max_bytes
    }

    /// Closes every site's batch into one.
    fn close_all(&mut self) -> Option<Batch> {
        if self.sites.is_empty() {
            return None;
        }
        let batch = Batch {
            rows: self.rows,
            sites: self.sites.len(),
            segments: std::mem::take(&mut self.segments),
            reservations: std::mem::take(&mut self.reservations),
        };
        self.sites.clear();
        (self.rows, self.bytes) = (0, 0);
        Some(batch)
    }

    /// When the thread must flush next, if it holds any batch. Arriving
    /// chunks push the quiet time back; the loop then looks again.
    fn next_due(&self) -> Option<Instant> {
        let (quiet_since, early_age) = (self.last_input + QUIET, self.early_age());
        self.sites
            .values()
            .map(|b| b.due(quiet_since, early_age))
            .min()
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_rows: 100,
        max_bytes: 3 * SEGMENT_BYTES,
        max_age: Duration::from_secs(2),
    };

    fn budget() -> Budget {
        Budget::new(64 << 20, IntGauge::new("budget", "test").unwrap())
    }

    fn chunk(budget: &Budget, site_id: u64, rows: u64, fill: u8, bytes: usize) -> Chunk {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Chunk {
            site_id,
            rows,
            data: vec![fill; bytes],
            reservation: runtime.block_on(budget.reserve(bytes)),
        }
    }

    #[test]
    fn a_flush_takes_every_site_in_arrival_order() {
        let budget = budget();
        let mut batcher = Batcher::new(LIMITS, 1);
        assert!(!batcher.add(chunk(&budget, 9, 2, b'a', 10)));
        assert!(!batcher.add(chunk(&budget, 3, 1, b'b', 5)));
        assert!(!batcher.add(chunk(&budget, 9, 3, b'c', 7)));
        let batch = batcher.close_all().unwrap();
        assert_eq!((batch.rows, batch.sites), (6, 2));
        let bytes: Vec<u8> = batch.segments.concat();
        assert_eq!(bytes, [&[b'a'; 10][..], &[b'b'; 5], &[b'c'; 7]].concat());
        assert!(batcher.sites.is_empty() && batcher.close_all().is_none());
        // The budget comes back once the batch is gone.
        assert_eq!(budget.gauge.get(), 22);
        drop(batch);
        assert_eq!(budget.gauge.get(), 0);
    }

    #[test]
    fn a_site_at_its_row_or_byte_limit_is_full() {
        let budget = budget();
        let mut batcher = Batcher::new(LIMITS, 1);
        assert!(!batcher.add(chunk(&budget, 1, 99, 0, 10)));
        assert!(batcher.add(chunk(&budget, 1, 1, 0, 10)));
        let mut batcher = Batcher::new(LIMITS, 1);
        assert!(!batcher.add(chunk(&budget, 2, 1, 0, SEGMENT_BYTES)));
        assert!(!batcher.add(chunk(&budget, 2, 1, 0, SEGMENT_BYTES)));
        assert!(batcher.add(chunk(&budget, 2, 1, 0, SEGMENT_BYTES)));
    }

    #[test]
    fn full_when_all_sites_together_reach_four_batches_of_bytes() {
        let budget = budget();
        let mut batcher = Batcher::new(LIMITS, 1);
        let bytes = LIMITS.max_bytes / 2;
        for site in 0..7 {
            assert!(
                !batcher.add(chunk(&budget, site, 1, 0, bytes)),
                "site {site}"
            );
        }
        assert!(batcher.add(chunk(&budget, 7, 1, 0, bytes)));
    }

    #[test]
    fn chunks_never_span_segments() {
        let budget = budget();
        let mut batcher = Batcher::new(LIMITS, 1);
        let third = SEGMENT_BYTES / 3 + 1;
        for fill in 0..5 {
            batcher.add(chunk(&budget, 4 + u64::from(fill % 2), 1, fill, third));
        }
        // Two chunks fit a segment; a chunk larger than a segment gets its own.
        batcher.add(chunk(&budget, 4, 1, 9, SEGMENT_BYTES + 1));
        let batch = batcher.close_all().unwrap();
        let lengths: Vec<usize> = batch.segments.iter().map(Vec::len).collect();
        assert_eq!(lengths, [2 * third, 2 * third, third, SEGMENT_BYTES + 1]);
    }

    #[test]
    fn due_at_the_age_or_early_once_the_input_is_quiet() {
        let budget = budget();
        let mut batcher = Batcher::new(LIMITS, 7);
        assert_eq!(batcher.next_due(), None);
        batcher.add(chunk(&budget, 5, 1, 0, 1));
        batcher.last_input = Instant::now();
        let opened = batcher.sites[&5].opened;
        let deadline = batcher.sites[&5].deadline;
        // The age, less at most 10 % jitter.
        assert!(deadline <= opened + LIMITS.max_age);
        assert!(deadline >= opened + LIMITS.max_age - LIMITS.max_age / 10);
        // Input keeps arriving: due at the deadline.
        batcher.last_input = opened + Duration::from_secs(5);
        assert_eq!(batcher.next_due(), Some(deadline));
        // Quiet since soon after it opened: due at a quarter of the age.
        batcher.last_input = opened;
        assert_eq!(batcher.next_due(), Some(opened + LIMITS.max_age / 4));
        // Quiet only from later on: due when the quiet begins.
        batcher.last_input = opened + Duration::from_millis(800);
        assert_eq!(
            batcher.next_due(),
            Some(opened + Duration::from_millis(1000))
        );
    }
}
