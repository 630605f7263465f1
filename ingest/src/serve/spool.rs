//! The spool: batches that could not be inserted wait here, on disk, until
//! ClickHouse answers again, and are then replayed oldest first.
//!
//! One file per batch, named `<sequence>-<rows>.rowbin` and holding the
//! batch's RowBinary bytes exactly as they would have been sent. A file is
//! written under a temporary name, synced, then renamed, so a crash leaves
//! either a whole batch or a `.tmp` file that the next start deletes.
//!
//! The directory's size is capped. A batch that does not fit stays in memory
//! with its caller, which keeps retrying; memory is itself bounded, so
//! sockets stop being read and TCP senders feel the pressure. Nothing is
//! dropped, and every refusal is counted in `ingest_spool_full_total`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::metrics::Metrics;

/// A batch waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledBatch {
    pub path: PathBuf,
    pub sequence: u64,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the spool is full ({used_bytes} of {max_bytes} bytes): \
         raise `--spool-max-bytes` or bring ClickHouse back"
    )]
    Full { used_bytes: u64, max_bytes: u64 },
    #[error("cannot write the spool directory `{dir}`")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The spool directory and its accounting.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Next sequence number; sequence order is replay order.
    next_sequence: AtomicU64,
    /// Batches on disk, oldest first. Guards the size accounting too.
    state: Mutex<SpoolState>,
    metrics: Metrics,
}

#[derive(Default)]
struct SpoolState {
    batches: std::collections::VecDeque<SpooledBatch>,
    used_bytes: u64,
}

impl Spool {
    /// Opens (creating) `dir`, deletes half-written files left by a crash and
    /// takes stock of the batches waiting there.
    pub fn open(dir: &Path, max_bytes: u64, metrics: Metrics) -> Result<Self, SpoolError> {
        let io_error = |source| SpoolError::Io {
            dir: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_error)?;
        let mut batches = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                tracing::warn!(path = %path.display(), "deleting a half-written spool file");
                let _ = fs::remove_file(&path);
                continue;
            }
            match parse_name(&path) {
                Some((sequence, rows)) => {
                    let bytes = fs::metadata(&path).map_err(io_error)?.len();
                    batches.push(SpooledBatch {
                        path,
                        sequence,
                        rows,
                        bytes,
                    });
                }
                None => {
                    tracing::warn!(path = %path.display(), "ignoring a foreign file in the spool")
                }
            }
        }
        batches.sort_by_key(|b| b.sequence);
        let next = batches.last().map_or(0, |b| b.sequence + 1);
        let used_bytes = batches.iter().map(|b| b.bytes).sum();
        if !batches.is_empty() {
            tracing::info!(
                batches = batches.len(),
                bytes = used_bytes,
                "spool holds batches from an earlier run"
            );
        }
        let spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            next_sequence: AtomicU64::new(next),
            state: Mutex::new(SpoolState {
                batches: batches.into(),
                used_bytes,
            }),
            metrics,
        };
        spool.publish_gauges();
        Ok(spool)
    }

    /// Writes a batch; fails with [`SpoolError::Full`] when it does not fit.
    pub fn write<P: AsRef<[u8]>>(&self, rows: u64, parts: &[P]) -> Result<(), SpoolError> {
        let len = parts.iter().map(|p| p.as_ref().len() as u64).sum::<u64>();
        {
            let state = self.state.lock().expect("spool lock");
            if state.used_bytes + len > self.max_bytes {
                self.metrics.spool_full.inc();
                return Err(SpoolError::Full {
                    used_bytes: state.used_bytes,
                    max_bytes: self.max_bytes,
                });
            }
        }
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{sequence:020}-{rows}.rowbin"));
        write_durably(&path, parts).map_err(|source| SpoolError::Io {
            dir: self.dir.clone(),
            source,
        })?;

        let mut state = self.state.lock().expect("spool lock");
        let batch = SpooledBatch {
            path,
            sequence,
            rows,
            bytes: len,
        };
        // Two writers may finish out of order; keep the queue sorted.
        let at = state.batches.partition_point(|b| b.sequence < sequence);
        state.batches.insert(at, batch);
        state.used_bytes += len;
        drop(state);
        self.metrics.rows_spooled.inc_by(rows);
        self.publish_gauges();
        Ok(())
    }

    /// The oldest batch, if any, without removing it.
    pub fn oldest(&self) -> Option<SpooledBatch> {
        self.state
            .lock()
            .expect("spool lock")
            .batches
            .front()
            .cloned()
    }

    /// Whether any batch waits.
    pub fn is_empty(&self) -> bool {
        self.state.lock().expect("spool lock").batches.is_empty()
    }

    /// Reads a batch's bytes.
    pub fn read(&self, batch: &SpooledBatch) -> io::Result<Vec<u8>> {
        fs::read(&batch.path)
    }

    /// Deletes a batch once it is stored.
    pub fn remove(&self, batch: &SpooledBatch) -> io::Result<()> {
        fs::remove_file(&batch.path)?;
        let mut state = self.state.lock().expect("spool lock");
        if let Some(at) = state
            .batches
            .iter()
            .position(|b| b.sequence == batch.sequence)
        {
            state.batches.remove(at);
            state.used_bytes -= batch.bytes;
        }
        drop(state);
        self.publish_gauges();
        Ok(())
    }

    fn publish_gauges(&self) {
        let state = self.state.lock().expect("spool lock");
        self.metrics
            .spool_bytes
            .set(i64::try_from(state.used_bytes).unwrap_or(i64::MAX));
        self.metrics.spool_files.set(state.batches.len() as i64);
    }
}

/// Writes `parts`, one after the other, as the file `path`.
fn write_durably<P: AsRef<[u8]>>(path: &Path, parts: &[P]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    for part in parts {
        file.write_all(part.as_ref())?;
    }
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    // The rename is durable only once the directory entry is.
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Sequence number and row count from a spool file's name:
/// `<sequence>-<rows>.rowbin`, or `<sequence>-<site>-<rows>.rowbin` as
/// written by versions that inserted one site at a time.
fn parse_name(path: &Path) -> Option<(u64, u64)> {
    if path.extension()? != "rowbin" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let numbers: Vec<u64> = stem
        .split('-')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    match numbers[..] {
        [sequence, rows] | [sequence, _, rows] => Some((sequence, rows)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_old_and_new() {
        let name = |n: &str| parse_name(Path::new(n));
        assert_eq!(name("00000000000000000003-25.rowbin"), Some((3, 25)));
        // Written by versions that inserted one site at a time.
        assert_eq!(name("00000000000000000004-1000-7.rowbin"), Some((4, 7)));
        assert_eq!(name("00000000000000000004-7.tmp"), None);
        assert_eq!(name("4-x.rowbin"), None);
        assert_eq!(name("4.rowbin"), None);
        assert_eq!(name("1-2-3-4.rowbin"), None);
    }

    #[test]
    fn batches_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 1 << 20, Metrics::new()).unwrap();
        spool.write(2, &[&b"fir"[..], &b"st"[..]]).unwrap();
        spool.write(1, &[b"second"]).unwrap();
        fs::write(dir.path().join("00000000000000000009-1-1.tmp"), b"torn").unwrap();
        drop(spool);

        let metrics = Metrics::new();
        let spool = Spool::open(dir.path(), 1 << 20, metrics.clone()).unwrap();
        assert_eq!(metrics.spool_files.get(), 2);
        assert_eq!(metrics.spool_bytes.get(), 11);
        let first = spool.oldest().unwrap();
        assert_eq!(first.rows, 2);
        assert_eq!(spool.read(&first).unwrap(), b"first");
        spool.remove(&first).unwrap();
        let second = spool.oldest().unwrap();
        assert_eq!(spool.read(&second).unwrap(), b"second");
        spool.write(1, &[b"third"]).unwrap();
        assert!(spool.oldest().unwrap().sequence < spool.state.lock().unwrap().batches[1].sequence);
        assert!(!dir.path().join("00000000000000000009-1-1.tmp").exists());
    }

    #[test]
    fn a_full_spool_refuses_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let spool = Spool::open(dir.path(), 8, metrics.clone()).unwrap();
        spool.write(1, &[b"12345"]).unwrap();
        let err = spool.write(1, &[b"6789"]).unwrap_err();
        assert!(matches!(
            err,
            SpoolError::Full {
                used_bytes: 5,
                max_bytes: 8
            }
        ));
        assert_eq!(metrics.spool_full.get(), 1);
        assert_eq!(metrics.spool_files.get(), 1);
    }
}
