//! Publishing a pushed commit: check it out, hash the publish directory,
//! upload what changed, delete what is gone, and record the deploy with
//! `api` (which purges the CDN cache).
//!
//! New and changed files are uploaded before anything is deleted, and
//! nothing is deleted after a failure, so a failed publish leaves the
//! previous deploy serving (plus, at worst, some new files beside it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::sync::mpsc;

use crate::Limits;
use crate::api::{ApiClient, ApiError, DeployRecord, Site};
use crate::auth::Session;
use crate::storage::{AnyStorage, SiteStorage, StorageError};
use crate::tree::{self, PublishFile, TreeError};

/// Entries skipped by the walk that are named one by one to the pusher.
const SKIPPED_SHOWN: usize = 5;

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("asking `api` where the files go failed")]
    Target(#[source] ApiError),
    #[error("making a temporary checkout directory failed")]
    TempDir(#[source] std::io::Error),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Progress lines for the pusher, framed as side-band 2 packets; lines are
/// dropped when the pusher cannot read side-band.
#[derive(Debug, Clone)]
pub struct Progress {
    tx: Option<mpsc::Sender<Bytes>>,
}

impl Progress {
    pub fn new(tx: Option<mpsc::Sender<Bytes>>) -> Self {
        Self { tx }
    }

    pub async fn say(&self, line: &str) {
        tracing::debug!(line, "progress");
        if let Some(tx) = &self.tx {
            // A pusher that hung up no longer needs progress; the publish goes on.
            let _ = tx.send(crate::pkt::progress(line)).await;
        }
    }
}

/// What to do with each file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    pub upload: Vec<&'a PublishFile>,
    pub delete: Vec<String>,
    pub kept: u64,
}

impl<'a> Plan<'a> {
    /// Compares the files to publish with what the storage holds.
    pub fn new(files: &'a [PublishFile], stored: &HashMap<String, String>) -> Self {
        let mut plan = Plan::default();
        for file in files {
            match stored.get(&file.key) {
                Some(sha) if sha.eq_ignore_ascii_case(&file.sha256) => plan.kept += 1,
                _ => plan.upload.push(file),
            }
        }
        let wanted: std::collections::HashSet<&str> =
            files.iter().map(|f| f.key.as_str()).collect();
        plan.delete = stored
            .keys()
            .filter(|k| !wanted.contains(k.as_str()))
            .cloned()
            .collect();
        plan.delete.sort();
        plan
    }

    fn upload_bytes(&self) -> u64 {
        self.upload.iter().map(|f| f.size).sum()
    }
}

/// What one push asks to publish.
pub struct PublishJob<'a> {
    pub session: &'a Session,
    pub site: &'a Site,
    pub repo: &'a Path,
    pub commit: &'a str,
}

/// Counters about deploys.
#[derive(Clone)]
struct PublishMetrics {
    deploys: IntCounterVec,
    uploaded: IntCounter,
    deleted: IntCounter,
    bytes: IntCounter,
}

impl PublishMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let deploys = IntCounterVec::new(
            Opts::new("git_deploys_total", "Publishes finished, by outcome"),
            &["outcome"],
        )?;
        let uploaded = IntCounter::new("git_files_uploaded_total", "Files uploaded to storage")?;
        let deleted = IntCounter::new("git_files_deleted_total", "Files deleted from storage")?;
        let bytes = IntCounter::new("git_bytes_uploaded_total", "Bytes uploaded to storage")?;
        registry.register(Box::new(deploys.clone()))?;
        registry.register(Box::new(uploaded.clone()))?;
        registry.register(Box::new(deleted.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        Ok(Self {
            deploys,
            uploaded,
            deleted,
            bytes,
        })
    }
}

/// Settings of the publisher.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    pub limits: Limits,
    pub upload_concurrency: usize,
    /// Where checkouts are made.
    pub temp_dir: PathBuf,
    /// Shown URL template, `{site}` replaced by the site id.
    pub public_url: Option<String>,
}

/// Publishes pushed commits.
#[derive(Clone)]
pub struct Publisher {
    api: ApiClient,
    config: PublishConfig,
    metrics: PublishMetrics,
}

impl Publisher {
    pub fn new(
        api: ApiClient,
        config: PublishConfig,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        Ok(Self {
            api,
            config,
            metrics: PublishMetrics::new(registry)?,
        })
    }

    /// Publishes `job`, telling the pusher how it goes, and records the
    /// deploy (failed ones too). Returns the record.
    pub async fn publish(&self, job: PublishJob<'_>, progress: &Progress) -> DeployRecord {
        let started = Instant::now();
        let short = &job.commit[..job.commit.len().min(12)];
        progress
            .say(&format!(
                "ecstatic: publishing {short} to site {}",
                job.site.id
            ))
            .await;

        let result = self.sync(&job, progress).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let record = match result {
            Ok(mut record) => {
                record.duration_ms = duration_ms;
                record
            }
            Err(error) => failed_record(job.commit, duration_ms, &error),
        };
        self.metrics
            .deploys
            .with_label_values(&[record.outcome])
            .inc();
        self.finish(&job, &record, progress).await;
        record
    }

    async fn finish(&self, job: &PublishJob<'_>, record: &DeployRecord, progress: &Progress) {
        let site = job.site.id;
        let recorded = self
            .api
            .record_deploy(&job.session.token, site, record)
            .await;
        if record.outcome != "success" {
            tracing::warn!(
                site,
                commit = job.commit,
                message = record.message,
                "publish failed"
            );
            progress
                .say(&format!("ecstatic: error: {}", record.message))
                .await;
            progress
                .say("ecstatic: the previous deploy keeps serving")
                .await;
        }
        if let Err(error) = recorded {
            tracing::warn!(site, error = %chain(&error), "recording the deploy failed");
            progress
                .say(&format!(
                    "ecstatic: error: recording the deploy failed: {}",
                    chain(&error)
                ))
                .await;
            return;
        }
        if record.outcome == "success" {
            tracing::info!(
                site,
                commit = job.commit,
                uploaded = record.files_uploaded,
                deleted = record.files_deleted,
                kept = record.files_kept,
                "published"
            );
            progress.say(&format!("ecstatic: {}", record.message)).await;
            progress
                .say(&format!("ecstatic: live at {}", self.site_url(job.site)))
                .await;
        }
    }

    fn site_url(&self, site: &Site) -> String {
        match &self.config.public_url {
            Some(template) => template.replace("{site}", &site.id.to_string()),
            None => site.url.clone(),
        }
    }

    /// The steps that can fail, in order; nothing is deleted unless every
    /// upload succeeded.
    async fn sync(
        &self,
        job: &PublishJob<'_>,
        progress: &Progress,
    ) -> Result<DeployRecord, PublishError> {
        let target = self.api.storage(&job.session.token, job.site.id).await;
        let storage = AnyStorage::from_target(target.map_err(PublishError::Target)?)?;

        let temp = self.temp_dir(job.site.id)?;
        let checkout = temp.path().join("tree");
        tree::checkout(job.repo, job.commit, &checkout).await?;
        let (publish_dir, limits) = (job.site.publish_dir.clone(), self.config.limits);
        let walk =
            tokio::task::spawn_blocking(move || tree::walk(&checkout, &publish_dir, &limits))
                .await
                .map_err(|e| PublishError::TempDir(e.into()))??;
        report_skipped(&walk.skipped, progress).await;

        let mut record = match storage {
            AnyStorage::Local(s) => self.sync_files(&s, &walk.files, progress).await?,
            AnyStorage::Bunny(s) => self.sync_files(&s, &walk.files, progress).await?,
        };
        record.commit = job.commit.to_owned();
        Ok(record)
    }

    fn temp_dir(&self, site: u64) -> Result<tempfile::TempDir, PublishError> {
        std::fs::create_dir_all(&self.config.temp_dir).map_err(PublishError::TempDir)?;
        tempfile::Builder::new()
            .prefix(&format!("site-{site}-"))
            .tempdir_in(&self.config.temp_dir)
            .map_err(PublishError::TempDir)
    }

    async fn sync_files<S: SiteStorage>(
        &self,
        storage: &S,
        files: &[PublishFile],
        progress: &Progress,
    ) -> Result<DeployRecord, PublishError> {
        let stored = storage.list().await?;
        let plan = Plan::new(files, &stored);
        let bytes = plan.upload_bytes();
        progress
            .say(&format!(
                "ecstatic: {} files: uploading {} ({bytes} bytes), keeping {}, deleting {}",
                files.len(),
                plan.upload.len(),
                plan.kept,
                plan.delete.len()
            ))
            .await;

        let concurrency = self.config.upload_concurrency;
        // Collected first: a lazy `map` here trips rustc's higher-ranked
        // `Send` inference for the spawned push task (rust-lang/rust#102211).
        let puts: Vec<_> = plan.upload.iter().map(|file| storage.put(file)).collect();
        stream::iter(puts)
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
        self.metrics.uploaded.inc_by(plan.upload.len() as u64);
        self.metrics.bytes.inc_by(bytes);

        let deletes: Vec<_> = plan.delete.iter().map(|key| storage.delete(key)).collect();
        stream::iter(deletes)
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
        self.metrics.deleted.inc_by(plan.delete.len() as u64);

        Ok(DeployRecord {
            commit: String::new(),
            files_uploaded: plan.upload.len() as u64,
            files_deleted: plan.delete.len() as u64,
            files_kept: plan.kept,
            bytes_uploaded: bytes,
            duration_ms: 0,
            outcome: "success",
            message: format!(
                "published {} files ({} uploaded, {} deleted, {} unchanged)",
                files.len(),
                plan.upload.len(),
                plan.delete.len(),
                plan.kept
            ),
        })
    }
}

async fn report_skipped(skipped: &[String], progress: &Progress) {
    if skipped.is_empty() {
        return;
    }
    let mut names = skipped
        .iter()
        .take(SKIPPED_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if skipped.len() > SKIPPED_SHOWN {
        names.push_str(&format!(" and {} more", skipped.len() - SKIPPED_SHOWN));
    }
    progress
        .say(&format!(
            "ecstatic: not published (symlinks, `.git`, special files): {names}"
        ))
        .await;
}

fn failed_record(commit: &str, duration_ms: u64, error: &PublishError) -> DeployRecord {
    DeployRecord {
        commit: commit.to_owned(),
        files_uploaded: 0,
        files_deleted: 0,
        files_kept: 0,
        bytes_uploaded: 0,
        duration_ms,
        outcome: "failed",
        message: chain(error),
    }
}

/// An error and its causes on one line, for the pusher and the deploy
/// record (the messages never hold secrets).
pub use ecstatic_ops::error_chain as chain;

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, sha: &str) -> PublishFile {
        PublishFile {
            key: key.into(),
            path: PathBuf::new(),
            size: 3,
            sha256: sha.into(),
        }
    }

    #[test]
    fn plans_exactly_the_changes() {
        let files = [file("same", "aa"), file("changed", "bb"), file("new", "cc")];
        let stored: HashMap<String, String> = [("same", "AA"), ("changed", "00"), ("gone", "dd")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let plan = Plan::new(&files, &stored);
        let uploads: Vec<_> = plan.upload.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(uploads, ["changed", "new"]);
        assert_eq!(plan.delete, ["gone"]);
        assert_eq!(plan.kept, 1);
        assert_eq!(plan.upload_bytes(), 6);
    }

    #[test]
    fn chains_causes() {
        let io = std::io::Error::other("disk full");
        let error = PublishError::TempDir(io);
        assert_eq!(
            chain(&error),
            "making a temporary checkout directory failed: disk full"
        );
    }
}
