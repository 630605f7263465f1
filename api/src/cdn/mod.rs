//! CDN providers behind one trait: `local` (a directory per site) and
//! `bunny` (bunny.net's admin API).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use serde::Serialize;

pub mod bunny;
pub mod local;
pub mod metered;

/// A provider call in flight. Boxed so that the trait stays object-safe and
/// the server holds one `Arc<dyn CdnProvider>` whatever the flag says.
pub type CdnFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CdnError>> + Send + 'a>>;

/// Why a provider call failed. Messages name the step and never contain the
/// API key or a storage password.
#[derive(Debug, thiserror::Error)]
pub enum CdnError {
    #[error("{step}: the CDN did not answer")]
    Unreachable {
        step: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{step}: the CDN answered {status}: {message}")]
    Refused {
        step: &'static str,
        status: u16,
        message: String,
    },
    #[error("{step}: the CDN's answer could not be read")]
    Decode {
        step: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{error}; rolling back also failed and left behind {leftover}")]
    Leftover {
        error: Box<CdnError>,
        leftover: String,
    },
    #[error("{step}: {path}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A site as the provider knows it.
#[derive(Debug, Clone)]
pub struct SiteRef {
    /// Site id, which is the pull-zone id.
    pub id: u64,
    /// bunny.net storage zone id; `None` with the local provider.
    pub storage_zone_id: Option<i64>,
    /// bunny.net storage zone name; `None` with the local provider.
    pub storage_zone_name: Option<String>,
}

/// What `create_site` made.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub site: SiteRef,
    /// Where visitors reach the site.
    pub url: String,
}

/// Where `git` must put a site's files (the api–git contract's
/// `GET /v1/sites/{site}/storage` answer).
#[derive(Serialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum StorageTarget {
    Local {
        root: PathBuf,
    },
    Bunny {
        endpoint: String,
        zone: String,
        password: String,
    },
}

impl std::fmt::Debug for StorageTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            Self::Bunny { endpoint, zone, .. } => f
                .debug_struct("Bunny")
                .field("endpoint", endpoint)
                .field("zone", zone)
                .finish_non_exhaustive(),
        }
    }
}

/// The operations api needs from a CDN.
pub trait CdnProvider: Send + Sync {
    /// Short name for logs and the storage answer: `local` or `bunny`.
    fn name(&self) -> &'static str;

    /// Provisions a site. `number` is a fresh locally allocated id: the
    /// local provider uses it as the site id; bunny.net assigns its own.
    fn create_site<'a>(&'a self, number: u64, nickname: &'a str) -> CdnFuture<'a, Provisioned>;

    /// Removes the site and its files at the provider.
    fn delete_site<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, ()>;

    /// Where the site's files go.
    fn storage<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, StorageTarget>;

    fn add_hostname<'a>(&'a self, site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()>;

    fn load_certificate<'a>(&'a self, site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()>;

    fn set_force_ssl<'a>(
        &'a self,
        site: &'a SiteRef,
        hostname: &'a str,
        on: bool,
    ) -> CdnFuture<'a, ()>;

    fn remove_hostname<'a>(&'a self, site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()>;

    /// Empties the site's CDN cache.
    fn purge<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, ()>;
}
