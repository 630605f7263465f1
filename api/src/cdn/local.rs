//! The local provider: one directory per site under `<data-dir>/sites/`,
//! served by a local web server. Hostnames, certificates and purges are
//! bookkeeping only: there is no cache to empty.

use std::path::PathBuf;

use super::{CdnError, CdnFuture, CdnProvider, Provisioned, SiteRef, StorageTarget};

#[derive(Debug, Clone)]
pub struct LocalCdn {
    /// `<data-dir>/sites`, absolute.
    root: PathBuf,
    /// Site URL with `{site}` standing for the id.
    url_template: String,
}

impl LocalCdn {
    pub fn new(root: PathBuf, url_template: String) -> Self {
        Self { root, url_template }
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }
}

impl CdnProvider for LocalCdn {
    fn name(&self) -> &'static str {
        "local"
    }

    fn create_site<'a>(&'a self, number: u64, _nickname: &'a str) -> CdnFuture<'a, Provisioned> {
        Box::pin(async move {
            let path = self.dir(number);
            tokio::fs::create_dir_all(&path)
                .await
                .map_err(|source| CdnError::Io {
                    step: "create site directory",
                    path,
                    source,
                })?;
            Ok(Provisioned {
                site: SiteRef {
                    id: number,
                    storage_zone_id: None,
                    storage_zone_name: None,
                },
                url: self.url_template.replace("{site}", &number.to_string()),
            })
        })
    }

    fn delete_site<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            let path = self.dir(site.id);
            match tokio::fs::remove_dir_all(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CdnError::Io {
                    step: "delete site directory",
                    path,
                    source: e,
                }),
                _ => Ok(()),
            }
        })
    }

    fn storage<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, StorageTarget> {
        Box::pin(async move {
            Ok(StorageTarget::Local {
                root: self.dir(site.id),
            })
        })
    }

    fn add_hostname<'a>(&'a self, _site: &'a SiteRef, _hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn load_certificate<'a>(&'a self, _site: &'a SiteRef, _hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn set_force_ssl<'a>(
        &'a self,
        _site: &'a SiteRef,
        _hostname: &'a str,
        _on: bool,
    ) -> CdnFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn remove_hostname<'a>(&'a self, _site: &'a SiteRef, _hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn purge<'a>(&'a self, _site: &'a SiteRef) -> CdnFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}
