//! Stores batches: inserts them into ClickHouse, retrying with backoff, and
//! spools them to disk when ClickHouse cannot take them.
//!
//! Exactly once: a first attempt inserts the batch as it is. An attempt
//! after a failure cannot know whether the failed one was stored (a timeout
//! after ClickHouse committed looks like any other error), so it first reads
//! back which of the batch's request ids the site already has in the batch's
//! time range and inserts only the rows that are missing. Spooled batches are
//! replayed the same way. Plain `MergeTree` on ClickHouse 18.16 has no insert
//! de-duplication of its own, and this check works on every version.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ecstatic_store::{AccessRow, Store, StoreError};
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

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ClickHouse refused or did not finish the insert")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("the insert did not finish within {0:?}")]
    Timeout(Duration),
    #[error("a batch of site {site_id} holds bytes that are not RowBinary rows")]
    Corrupt { site_id: u64 },
}

/// One site's rows, RowBinary-encoded, ready to store.
pub struct Batch {
    pub site_id: u64,
    pub rows: u64,
    pub data: Bytes,
    /// The memory this batch holds, given back when it is dropped.
    pub _reservations: Vec<super::batcher::Reservation>,
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
        let mut backoff = FIRST_BACKOFF;
        loop {
            // While older batches wait in the spool, newer ones queue behind
            // them, so that replay keeps arrival order.
            if self.spool.is_empty() && self.insert_with_retries(batch).await.is_ok() {
                return;
            }
            match self.spool.write(batch.site_id, batch.rows, &batch.data) {
                Ok(()) => return,
                Err(error @ SpoolError::Full { .. }) => {
                    tracing::error!(error = %error, site_id = batch.site_id, rows = batch.rows,
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

    async fn insert_with_retries(&self, batch: &Batch) -> Result<(), SinkError> {
        let mut backoff = FIRST_BACKOFF;
        let mut result = self
            .insert(batch.site_id, batch.rows, batch.data.clone())
            .await;
        for _ in 1..INSERT_ATTEMPTS {
            let Err(error) = &result else { break };
            self.report("insert", batch.site_id, error);
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            result = self.insert_missing(batch.site_id, &batch.data).await;
        }
        if let Err(error) = &result {
            self.report("insert", batch.site_id, error);
        }
        result
    }

    /// Inserts `data` (whole RowBinary rows of one site) as one insert.
    async fn insert(&self, site_id: u64, rows: u64, data: Bytes) -> Result<(), SinkError> {
        let store = self.ready_store().await?;
        let started = Instant::now();
        let sql = format!("INSERT INTO {} FORMAT RowBinary", store.access_table());
        let mut insert = store
            .client()
            .insert_formatted_with(sql)
            .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT));
        let outcome = async {
            insert.send(data).await?;
            insert.end().await
        };
        tokio::time::timeout(INSERT_TIMEOUT, outcome)
            .await
            .map_err(|_| SinkError::Timeout(INSERT_TIMEOUT))??;
        self.metrics
            .insert_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.rows_inserted.inc_by(rows);
        self.metrics.batches_inserted.inc();
        tracing::debug!(site_id, rows, "inserted a batch");
        Ok(())
    }

    /// Inserts the rows of `data` whose request ids the site does not have
    /// yet in the batch's time range.
    async fn insert_missing(&self, site_id: u64, data: &[u8]) -> Result<(), SinkError> {
        let rows = decode_rows(site_id, data)?;
        let (Some(first), Some(last)) = (
            rows.iter().map(|r| r.time).min(),
            rows.iter().map(|r| r.time).max(),
        ) else {
            return Ok(());
        };
        let store = self.ready_store().await?;
        let sql = format!(
            "SELECT request_id FROM {} WHERE site_id = ? AND time >= toDateTime(?) \
             AND time <= toDateTime(?)",
            store.access_table()
        );
        let stored: HashSet<String> = store
            .client()
            .query(&sql)
            .bind(site_id)
            .bind(first)
            .bind(last)
            .fetch_all::<String>()
            .await?
            .into_iter()
            .collect();
        let mut missing = Vec::with_capacity(data.len());
        let mut kept = 0u64;
        for row in &rows {
            if row.request_id.is_empty() || !stored.contains(&row.request_id) {
                row.as_ref().encode_row_binary(&mut missing);
                kept += 1;
            }
        }
        let skipped = rows.len() as u64 - kept;
        if skipped > 0 {
            self.metrics.rows_deduplicated.inc_by(skipped);
            tracing::info!(
                site_id,
                skipped,
                "a retried batch had been stored in part or whole"
            );
        }
        if kept == 0 {
            return Ok(());
        }
        self.insert(site_id, kept, Bytes::from(missing)).await
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
                match self.insert_missing(batch.site_id, &data).await {
                    Ok(()) => {
                        if let Err(error) = self.spool.remove(&batch) {
                            tracing::error!(path = %batch.path.display(), %error,
                                "cannot delete a replayed batch");
                            break;
                        }
                        tracing::info!(
                            site_id = batch.site_id,
                            rows = batch.rows,
                            "replayed a spooled batch"
                        );
                    }
                    Err(SinkError::Corrupt { site_id }) => {
                        tracing::error!(path = %batch.path.display(), site_id,
                            "a spooled batch is corrupt; leaving it for an operator");
                        break;
                    }
                    Err(error) => {
                        self.report("replay", batch.site_id, &error);
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

    fn report(&self, stage: &'static str, site_id: u64, error: &SinkError) {
        self.metrics.insert_errors.with_label_values(&[stage]).inc();
        if let Some(held_back) = self.errors.allow() {
            tracing::warn!(
                stage,
                site_id,
                error = error_chain(error),
                held_back,
                "ClickHouse did not take a batch; retrying, then spooling"
            );
        }
    }
}

fn decode_rows(site_id: u64, data: &[u8]) -> Result<Vec<AccessRow>, SinkError> {
    let mut input = data;
    let mut rows = Vec::new();
    while !input.is_empty() {
        rows.push(AccessRow::decode_row_binary(&mut input).ok_or(SinkError::Corrupt { site_id })?);
    }
    Ok(rows)
}
