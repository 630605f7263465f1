//! Where a site's files live: the local provider's directory or a bunny.net
//! storage zone, behind [`SiteStorage`].

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use crate::api::StorageTarget;
use crate::tree::PublishFile;

/// Tries per upload or delete: bunny's storage answers the odd 5xx under
/// load, and one failed file fails the whole publish.
const PUT_ATTEMPTS: u32 = 3;

/// Pause before the first retry; doubled before the second.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Prefix of the local provider's files being written; never listed.
const TEMP_PREFIX: &str = ".ecstatic-tmp-";

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage key `{0}` is not a clean relative path")]
    BadKey(String),
    #[error("local storage failed at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bunny storage {method} `{key}` failed")]
    Http {
        method: &'static str,
        key: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("bunny storage answered {status} to {method} `{key}`")]
    Status {
        method: &'static str,
        key: String,
        status: StatusCode,
    },
    #[error("bunny storage endpoint `{0}` is not a URL")]
    BadEndpoint(String),
}

impl StorageError {
    /// Whether trying again may help: the network, or the storage's own
    /// trouble (5xx, 429), but not a refusal of what was sent.
    fn is_transient(&self) -> bool {
        match self {
            Self::Http { .. } => true,
            Self::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            Self::BadKey(_) | Self::Io { .. } | Self::BadEndpoint(_) => false,
        }
    }
}

/// A site's published files: listed with their hashes, written and deleted
/// by key (the path under the site's root, `/`-separated).
pub trait SiteStorage: Send + Sync {
    /// Every stored file, key → SHA-256 in lower-case hex.
    fn list(&self) -> impl Future<Output = Result<HashMap<String, String>, StorageError>> + Send;
    /// Stores `file` under its key, replacing what was there.
    fn put(&self, file: &PublishFile) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Removes `key`; a key that is already gone is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// Splits `key` into path segments, refusing anything that could leave the
/// site's root.
fn key_segments(key: &str) -> Result<Vec<&str>, StorageError> {
    let segments: Vec<&str> = key.split('/').collect();
    let clean = segments
        .iter()
        .all(|s| !s.is_empty() && *s != "." && *s != ".." && *s != ".git" && !s.contains('\\'));
    if clean {
        Ok(segments)
    } else {
        Err(StorageError::BadKey(key.to_owned()))
    }
}

/// The local provider: files under `root`, which a web server serves.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        let mut path = self.root.clone();
        path.extend(key_segments(key)?);
        Ok(path)
    }
}

impl SiteStorage for LocalStorage {
    async fn list(&self) -> Result<HashMap<String, String>, StorageError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || list_local(&root))
            .await
            .map_err(|e| StorageError::Io {
                path: self.root.clone(),
                source: e.into(),
            })?
    }

    async fn put(&self, file: &PublishFile) -> Result<(), StorageError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let target = self.path_of(&file.key)?;
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { path, source }
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;

        // Written aside, then renamed over: a visitor sees the old file or the
        // new one, never half of it.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
        if let Err(error) = tokio::fs::copy(&file.path, &temp).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(io(&file.path)(error));
        }
        tokio::fs::rename(&temp, &target).await.map_err(io(&target))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StorageError::Io { path, source }),
        }
        // Directories left empty go too; `remove_dir` refuses non-empty ones.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root && d.starts_with(&self.root)) {
            if tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}

/// Hashes every regular file under `root`; symlinks and files being written
/// are left out. A missing root is an empty site.
fn list_local(root: &Path) -> Result<HashMap<String, String>, StorageError> {
    let mut files = HashMap::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    let io = |path: &Path, source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    };
    while let Some((dir, prefix)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && prefix.is_empty() => {
                return Ok(files);
            }
            other => other.map_err(|e| io(&dir, e))?,
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let path = entry.path();
            let file_type = entry.file_type().map_err(|e| io(&path, e))?;
            if file_type.is_dir() {
                pending.push((path, format!("{prefix}{name}/")));
            } else if file_type.is_file() && !name.starts_with(TEMP_PREFIX) {
                let mut file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
                let sha = crate::tree::hash_reader(&mut file).map_err(|e| io(&path, e))?;
                files.insert(format!("{prefix}{name}"), sha);
            }
        }
    }
    Ok(files)
}

/// bunny.net's Edge Storage API: `{endpoint}/{zone}/{path}` with the zone's
/// password in an `AccessKey` header.
/// <https://docs.bunny.net/reference/storage-api>
#[derive(Clone)]
pub struct BunnyStorage {
    http: reqwest::Client,
    base: Url,
    password: String,
}

impl std::fmt::Debug for BunnyStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BunnyStorage")
            .field("base", &self.base.as_str())
            .finish()
    }
}

/// One entry of a bunny storage directory listing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BunnyObject {
    object_name: String,
    is_directory: bool,
    #[serde(default)]
    checksum: Option<String>,
}

impl BunnyStorage {
    pub fn new(endpoint: &str, zone: &str, password: &str) -> Result<Self, StorageError> {
        let bad = || StorageError::BadEndpoint(endpoint.to_owned());
        let mut base = Url::parse(endpoint).map_err(|_| bad())?;
        base.path_segments_mut()
            .map_err(|_| bad())?
            .pop_if_empty()
            .push(zone);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|_| bad())?;
        Ok(Self {
            http,
            base,
            password: password.to_owned(),
        })
    }

    /// The URL of `segments` under the zone, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        url
    }

    /// Lists one directory (`dir` empty for the zone's root, else ending in
    /// `/`).
    async fn list_dir(&self, dir: &str) -> Result<Vec<BunnyObject>, StorageError> {
        let mut segments: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
        segments.push(""); // a trailing slash asks for a listing
        let request = self
            .http
            .get(self.url(&segments))
            .header("AccessKey", &self.password);
        let http = |source| StorageError::Http {
            method: "GET",
            key: dir.to_owned(),
            source,
        };
        let response = request.send().await.map_err(http)?;
        match response.status() {
            StatusCode::NOT_FOUND if dir.is_empty() => Ok(Vec::new()),
            status if status.is_success() => response.json().await.map_err(http),
            status => Err(StorageError::Status {
                method: "GET",
                key: dir.to_owned(),
                status,
            }),
        }
    }
}

impl SiteStorage for BunnyStorage {
    async fn list(&self) -> Result<HashMap<String, String>, StorageError> {
        let mut files = HashMap::new();
        let mut pending = vec![String::new()];
        while let Some(dir) = pending.pop() {
            for object in self.list_dir(&dir).await? {
                let key = format!("{dir}{}", object.object_name);
                if object.is_directory {
                    pending.push(format!("{key}/"));
                } else {
                    // A file without a checksum is uploaded again.
                    let sha = object.checksum.unwrap_or_default().to_ascii_lowercase();
                    files.insert(key, sha);
                }
            }
        }
        Ok(files)
    }

    async fn put(&self, file: &PublishFile) -> Result<(), StorageError> {
        let url = self.url(&key_segments(&file.key)?);
        let mut attempt = 1;
        loop {
            match self.put_once(file, url.clone()).await {
                Err(error) if attempt < PUT_ATTEMPTS && error.is_transient() => {
                    tracing::debug!(key = file.key, attempt, %error, "retrying an upload");
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let mut attempt = 1;
        loop {
            match self.delete_once(key).await {
                Err(error) if attempt < PUT_ATTEMPTS && error.is_transient() => {
                    tracing::debug!(key, attempt, %error, "retrying a delete");
                    tokio::time::sleep(RETRY_PAUSE * attempt).await;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }
}

/// One call at a time; the trait's methods retry them.
impl BunnyStorage {
    async fn put_once(&self, file: &PublishFile, url: Url) -> Result<(), StorageError> {
        let key = file.key.clone();
        let source =
            tokio::fs::File::open(&file.path)
                .await
                .map_err(|source| StorageError::Io {
                    path: file.path.clone(),
                    source,
                })?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(source));
        let response = self
            .http
            .put(url)
            .header("AccessKey", &self.password)
            .header("Checksum", file.sha256.to_ascii_uppercase())
            .header(reqwest::header::CONTENT_LENGTH, file.size)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|source| StorageError::Http {
                method: "PUT",
                key: key.clone(),
                source,
            })?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(StorageError::Status {
                method: "PUT",
                key,
                status,
            }),
        }
    }

    async fn delete_once(&self, key: &str) -> Result<(), StorageError> {
        let url = self.url(&key_segments(key)?);
        let response = self
            .http
            .delete(url)
            .header("AccessKey", &self.password)
            .send()
            .await;
        let http = |source| StorageError::Http {
            method: "DELETE",
            key: key.to_owned(),
            source,
        };
        match response.map_err(http)?.status() {
            status if status.is_success() || status == StatusCode::NOT_FOUND => Ok(()),
            status => Err(StorageError::Status {
                method: "DELETE",
                key: key.to_owned(),
                status,
            }),
        }
    }
}

/// Either provider, as `api` names it.
#[derive(Debug, Clone)]
pub enum AnyStorage {
    Local(LocalStorage),
    Bunny(BunnyStorage),
}

impl AnyStorage {
    pub fn from_target(target: StorageTarget) -> Result<Self, StorageError> {
        Ok(match target {
            StorageTarget::Local { root } => Self::Local(LocalStorage::new(root)),
            StorageTarget::Bunny {
                endpoint,
                zone,
                password,
            } => Self::Bunny(BunnyStorage::new(&endpoint, &zone, &password)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, key: &str, body: &str) -> PublishFile {
        let path = dir.join(key.replace('/', "_"));
        std::fs::write(&path, body).unwrap();
        let sha256 = crate::tree::hash_reader(&mut body.as_bytes()).unwrap();
        PublishFile {
            key: key.to_owned(),
            path,
            size: body.len() as u64,
            sha256,
        }
    }

    #[tokio::test]
    async fn local_storage_puts_lists_and_deletes() {
        let src = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(root.path().join("site"));
        assert!(storage.list().await.unwrap().is_empty());

        let page = file(src.path(), "docs/a/index.html", "<p>a</p>");
        storage.put(&page).await.unwrap();
        storage
            .put(&file(src.path(), "top.txt", "top"))
            .await
            .unwrap();
        let listed = storage.list().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed["docs/a/index.html"], page.sha256);

        storage.delete("docs/a/index.html").await.unwrap();
        storage.delete("docs/a/index.html").await.unwrap();
        assert!(!root.path().join("site/docs").exists());
        assert_eq!(storage.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn keys_cannot_leave_the_root() {
        let root = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(root.path().to_path_buf());
        for key in ["../x", "a//b", "/abs", "a/./b", ".git/config", ""] {
            assert!(
                matches!(storage.delete(key).await, Err(StorageError::BadKey(_))),
                "{key}"
            );
        }
    }

    #[test]
    fn bunny_urls_encode_each_segment() {
        let bunny = BunnyStorage::new("https://storage.bunnycdn.com", "zone", "pw").unwrap();
        assert_eq!(
            bunny.url(&["a b", "c?d#e.html"]).as_str(),
            "https://storage.bunnycdn.com/zone/a%20b/c%3Fd%23e.html"
        );
        assert_eq!(
            bunny.url(&["dir", ""]).as_str(),
            "https://storage.bunnycdn.com/zone/dir/"
        );
        assert!(!format!("{bunny:?}").contains("pw"));
    }
}
