//! Stores batches: inserts them into ClickHouse, retrying with backoff, and
//! spools them to disk when ClickHouse cannot take them.
//!
//! Exactly once: a first attempt inserts the batch as it is (streamed while
//! it fills, or whole). An attempt after a failure cannot know whether the
//! failed one was stored (a timeout after ClickHouse committed looks like
//! any other error), so it waits a moment, then reads back which of the
//! batch's request ids its sites already have in the batch's time range
//! and inserts only the rows that are missing. Spooled batches are
//! replayed the same way. Plain `MergeTree` on ClickHouse 18.16 has no insert
//! de-duplication of its own, and this check works on every version. Its
//! limits: a row without a request id cannot be recognised and is inserted
//! again, and an insert that ClickHouse finishes only after the read-back
//! (one slower than the pause) is stored twice.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clickhouse::Compression;
use clickhouse::insert_formatted::CompressedData;
use ecstatic_store::{AccessRowRef, Store, StoreError};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::ratelimit::LogLimiter;
use super::spool::{Spool, SpoolError};
pub use ecstatic_ops::error_chain;

/// Attempts at inserting a batch before it goes to the spool.
const INSERT_ATTEMPTS: u32 = 3;
/// First pause between attempts; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause while nothing can take a batch (spool full, disk failing).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the replayer looks at the spool.
const REPLAY_INTERVAL: Duration = Duration::from_millis(500);
/// An insert that has not finished in this time counts as failed.
const INSERT_TIMEOUT: Duration = Duration::from_secs(60);
/// Sites whose stored request ids one statement reads back (each adds up
/// to 22 bytes to it; ClickHouse refuses statements over 256 KiB).
const SITES_PER_LOOKUP: usize = 500;
/// Size of the pieces an insert is compressed in: small enough that the
/// compressed copies come from the allocator's reused pages.
const COMPRESS_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ClickHouse refused or did not finish the insert")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("the insert did not finish within {0:?}")]
    Timeout(Duration),
    #[error("a batch holds bytes that are not RowBinary rows")]
    Corrupt,
}

/// Rows of one or more sites, RowBinary-encoded, ready to store as one
/// insert.
pub struct Batch {
    pub rows: u64,
    /// How many sites' rows the batch holds.
    pub sites: usize,
    /// The rows, in buffers of whole rows (see [`super::batcher`] on why a
    /// batch is not one buffer).
    pub segments: Vec<Vec<u8>>,
    /// The memory this batch holds, given back when it is dropped.
    pub reservations: Vec<super::batcher::Reservation>,
}

/// A batch's first insert attempt, streamed while the batch fills (see
/// [`Sink::begin`]).
pub struct Stream {
    /// `None` when streaming did not start or failed.
    insert: Option<clickhouse::insert_formatted::InsertFormatted>,
    /// Whether rows may have reached ClickHouse: a retry must then insert
    /// only the ones it does not have.
    attempted: bool,
}

/// Where batches go.
pub struct Sink {
    url: String,
    database: String,
    store: OnceCell<Store>,
    schema_ready: AtomicBool,
    spool: Spool,
    metrics: Metrics,
    errors: LogLimiter,
}

impl Sink {
    pub fn new(url: String, database: String, spool: Spool, metrics: Metrics) -> Self {
        Self {
            url,
            database,
            store: OnceCell::new(),
            schema_ready: AtomicBool::new(false),
            spool,
            metrics,
            errors: LogLimiter::new(Duration::from_secs(10), 5),
        }
    }

    /// Connects and creates the schema when that has not happened yet.
    pub async fn ready_store(&self) -> Result<&Store, SinkError> {
        let store = self
            .store
            .get_or_try_init(|| Store::connect(&self.url, &self.database))
            .await?;
        if !self.schema_ready.load(Ordering::Acquire) {
            let version = store.migrate().await?;
            self.schema_ready.store(true, Ordering::Release);
            tracing::info!(database = %self.database, schema_version = version, "schema ready");
        }
        Ok(store)
    }

    /// Whether ClickHouse answers now (for `/readyz`).
    pub async fn check_ready(&self) -> Result<(), String> {
        let store = self.ready_store().await.map_err(|e| error_chain(&e))?;
        if store.ping().await {
            Ok(())
        } else {
            Err("ClickHouse does not answer".to_owned())
        }
    }

    /// Stores `batch` durably: in ClickHouse, or else in the spool. Returns
    /// only once one of them holds it; while neither can (ClickHouse down and
    /// the spool full), it keeps trying, and the caller's memory stays held,
    /// which is what stops the sockets from being read.
    pub async fn store(&self, batch: &Batch) {
        self.store_durably(batch, false).await;
    }

    /// [`Sink::store`], knowing whether an attempt at inserting the batch
    /// has already been made (and may have landed in part or whole).
    async fn store_durably(&self, batch: &Batch, mut attempted: bool) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            // While older batches wait in the spool, newer ones queue behind
            // them, so that replay keeps arrival order.
            if self.spool.is_empty() {
                let stored = self.insert_with_retries(batch, attempted).await;
                attempted = true;
                if stored.is_ok() {
                    return;
                }
            }
            match self.spool.write(batch.rows, &batch.segments) {
                Ok(()) => return,
                Err(error @ SpoolError::Full { .. }) => {
                    tracing::error!(error = %error, rows = batch.rows,
                        "cannot store or spool a batch; holding it in memory");
                }
                Err(error) => {
                    tracing::error!(error = error_chain(&error), "spooling a batch failed");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Inserts the batch, trying again with backoff. Any attempt after the
    /// first (or every one, when an earlier attempt was made) inserts only
    /// the rows ClickHouse does not have yet.
    async fn insert_with_retries(&self, batch: &Batch, attempted: bool) -> Result<(), SinkError> {
        let mut backoff = FIRST_BACKOFF;
        let mut result = if attempted {
            // Give an insert that failed on our side (a timeout) a moment
            // to finish on ClickHouse's before reading back what landed.
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            self.insert_missing(&batch.segments).await
        } else {
            self.insert(batch.rows, batch.sites, &batch.segments).await
        };
        for _ in 1..INSERT_ATTEMPTS {
            let Err(error) = &result else { break };
            self.report("insert", batch.rows, error);
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            result = self.insert_missing(&batch.segments).await;
        }
        if let Err(error) = &result {
            self.report("insert", batch.rows, error);
        }
        result
    }

    /// Starts the first attempt at inserting a batch that is still filling:
    /// its rows are then streamed to ClickHouse as they come, and ClickHouse
    /// parses them meanwhile instead of all at once after the flush. Not
    /// while older batches wait in the spool: the batch then goes to the
    /// spool behind them at [`Sink::finish`]. (A stream that has started
    /// goes on even if the spool fills meanwhile; a site's rows still keep
    /// their order, as a site always goes to one batcher thread.)
    pub async fn begin(&self) -> Stream {
        if !self.spool.is_empty() {
            return Stream {
                insert: None,
                attempted: false,
            };
        }
        match self.ready_store().await {
            Ok(store) => {
                let sql = format!("INSERT INTO {} FORMAT RowBinary", store.access_table());
                let insert = store
                    .client()
                    .insert_formatted_with(sql)
                    .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT));
                Stream {
                    insert: Some(insert),
                    attempted: true,
                }
            }
            Err(error) => {
                self.report("insert", 0, &error);
                Stream {
                    insert: None,
                    attempted: false,
                }
            }
        }
    }

    /// Streams more rows of the batch (whole or cut anywhere). After a
    /// failure the stream is dropped, which aborts the request, and the
    /// rest of the batch only waits for [`Sink::finish`].
    pub async fn send(&self, stream: &mut Stream, data: &[u8]) {
        let Some(insert) = stream.insert.as_mut() else {
            return;
        };
        let sent = async {
            for piece in data.chunks(COMPRESS_BYTES) {
                let compressed = CompressedData::new(piece, Compression::Lz4)?;
                insert.send_compressed(compressed).await?;
            }
            Ok::<_, SinkError>(())
        };
        let result = tokio::time::timeout(INSERT_TIMEOUT, sent)
            .await
            .unwrap_or(Err(SinkError::Timeout(INSERT_TIMEOUT)));
        if let Err(error) = result {
            self.report("insert", 0, &error);
            stream.insert = None;
        }
    }

    /// Ends a streamed batch (all of whose rows were sent) and makes sure it
    /// is durable: stored if the stream went through, else retried (only
    /// the rows that did not land) or spooled, as [`Sink::store`] does.
    pub async fn finish(&self, mut stream: Stream, batch: &Batch) {
        if let Some(insert) = stream.insert.take() {
            let started = Instant::now();
            let ended = tokio::time::timeout(INSERT_TIMEOUT, insert.end())
                .await
                .map_err(|_| SinkError::Timeout(INSERT_TIMEOUT))
                .and_then(|ended| ended.map_err(SinkError::from));
            match ended {
                Ok(()) => {
                    self.inserted(batch.rows, batch.sites, started);
                    return;
                }
                Err(error) => self.report("insert", batch.rows, &error),
            }
        }
        self.store_durably(batch, stream.attempted).await;
    }

    fn inserted(&self, rows: u64, sites: usize, started: Instant) {
        self.metrics
            .insert_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.rows_inserted.inc_by(rows);
        self.metrics.batches_inserted.inc();
        tracing::debug!(rows, sites, "inserted a batch");
    }

    /// Inserts `parts` (RowBinary rows of `sites` sites, one part after the
    /// other) as one insert.
    async fn insert<P: AsRef<[u8]>>(
        &self,
        rows: u64,
        sites: usize,
        parts: &[P],
    ) -> Result<(), SinkError> {
        let store = self.ready_store().await?;
        let started = Instant::now();
        let sql = format!("INSERT INTO {} FORMAT RowBinary", store.access_table());
        let mut insert = store
            .client()
            .insert_formatted_with(sql)
            .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT));
        let outcome = async {
            // Compressed piece by piece from our buffers, which stay ours to
            // reuse; the pieces are LZ4 blocks of ClickHouse's framing, and a
            // row may run across two of them.
            for piece in parts.iter().flat_map(|p| p.as_ref().chunks(COMPRESS_BYTES)) {
                let compressed = CompressedData::new(piece, Compression::Lz4)?;
                insert.send_compressed(compressed).await?;
            }
            insert.end().await
        };
        tokio::time::timeout(INSERT_TIMEOUT, outcome)
            .await
            .map_err(|_| SinkError::Timeout(INSERT_TIMEOUT))??;
        self.inserted(rows, sites, started);
        Ok(())
    }

    /// Inserts the rows of `parts` whose request ids their sites do not
    /// have yet in the batch's time range.
    ///
    /// Light on memory whatever the batch's size: rows are read in place
    /// twice (once for each site's time range, once to copy the missing
    /// ones), and ClickHouse is asked about [`SITES_PER_LOOKUP`] sites at a
    /// time, so the statement stays far below `max_query_size`.
    async fn insert_missing<P: AsRef<[u8]>>(&self, parts: &[P]) -> Result<(), SinkError> {
        let (mut sites, mut rows) = (BTreeSet::new(), 0u64);
        let (mut first, mut last) = (u32::MAX, u32::MIN);
        for_each_row(parts, |row| {
            sites.insert(row.site_id);
            (first, last, rows) = (first.min(row.time), last.max(row.time), rows + 1);
        })?;
        if rows == 0 {
            return Ok(());
        }
        let store = self.ready_store().await?;
        let mut stored: HashMap<u64, HashSet<String>> = HashMap::new();
        let sites: Vec<u64> = sites.into_iter().collect();
        for group in sites.chunks(SITES_PER_LOOKUP) {
            // `site_id IN (...)` with one time range lets ClickHouse use the
            // table's key (site_id, time); an OR of per-site ranges made
            // 18.16 scan the table. Numbers only: safe to splice in.
            let ids: Vec<String> = group.iter().map(u64::to_string).collect();
            let sql = format!(
                "SELECT site_id, request_id FROM {} WHERE site_id IN ({}) \
                 AND time BETWEEN toDateTime({first}) AND toDateTime({last})",
                store.access_table(),
                ids.join(", "),
            );
            let lookup = store.client().query(&sql).fetch_all::<(u64, String)>();
            let found = tokio::time::timeout(INSERT_TIMEOUT, lookup)
                .await
                .map_err(|_| SinkError::Timeout(INSERT_TIMEOUT))??;
            for (site_id, request_id) in found {
                stored.entry(site_id).or_default().insert(request_id);
            }
        }
        let is_stored = |row: &AccessRowRef<'_>| {
            !row.request_id.is_empty()
                && stored
                    .get(&row.site_id)
                    .is_some_and(|ids| ids.contains(row.request_id))
        };
        let mut skipped = 0u64;
        for_each_row(parts, |row| skipped += u64::from(is_stored(&row)))?;
        if skipped == 0 {
            // Nothing landed (the usual case after an outage): insert the
            // batch as it is rather than a copy of it.
            return self.insert(rows, sites.len(), parts).await;
        }
        self.metrics.rows_deduplicated.inc_by(skipped);
        tracing::info!(skipped, "a retried batch had been stored in part or whole");
        let (mut missing, mut kept) = (Vec::new(), 0u64);
        for_each_row(parts, |row| {
            if !is_stored(&row) {
                row.encode_row_binary(&mut missing);
                kept += 1;
            }
        })?;
        if kept == 0 {
            return Ok(());
        }
        self.insert(kept, sites.len(), &[missing]).await
    }

    /// Replays spooled batches, oldest first, whenever ClickHouse takes them.
    pub async fn run_replayer(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            while let Some(batch) = self.spool.oldest() {
                if cancel.is_cancelled() {
                    return;
                }
                let data = match self.spool.read(&batch) {
                    Ok(data) => data,
                    Err(error) => {
                        tracing::error!(path = %batch.path.display(), %error,
                            "cannot read a spooled batch; leaving it for an operator");
                        break;
                    }
                };
                match self.insert_missing(&[data]).await {
                    Ok(()) => {
                        if let Err(error) = self.spool.remove(&batch) {
                            tracing::error!(path = %batch.path.display(), %error,
                                "cannot delete a replayed batch");
                            break;
                        }
                        tracing::info!(rows = batch.rows, "replayed a spooled batch");
                    }
                    Err(SinkError::Corrupt) => {
                        tracing::error!(path = %batch.path.display(),
                            "a spooled batch is corrupt; leaving it for an operator");
                        break;
                    }
                    Err(error) => {
                        self.report("replay", batch.rows, &error);
                        break;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(REPLAY_INTERVAL) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    fn report(&self, stage: &'static str, rows: u64, error: &SinkError) {
        self.metrics.insert_errors.with_label_values(&[stage]).inc();
        if let Some(held_back) = self.errors.allow() {
            tracing::warn!(
                stage,
                rows,
                error = error_chain(error),
                held_back,
                "ClickHouse did not take a batch; retrying, then spooling"
            );
        }
    }
}

/// Calls `f` with each row of `parts` (each made of whole rows), read in
/// place.
fn for_each_row<P: AsRef<[u8]>>(
    parts: &[P],
    mut f: impl FnMut(AccessRowRef<'_>),
) -> Result<(), SinkError> {
    for part in parts {
        let mut input = part.as_ref();
        while !input.is_empty() {
            f(AccessRowRef::decode_row_binary(&mut input).ok_or(SinkError::Corrupt)?);
        }
    }
    Ok(())
}
