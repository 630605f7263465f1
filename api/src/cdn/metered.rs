//! Counts every provider call by operation and outcome:
//! `api_cdn_operations_total{operation, outcome="ok"|"failed"}`.

use std::sync::Arc;

use prometheus::{IntCounterVec, Opts, Registry};

use super::{CdnError, CdnFuture, CdnProvider, Provisioned, SiteRef, StorageTarget};

pub struct MeteredCdn {
    inner: Arc<dyn CdnProvider>,
    operations: IntCounterVec,
}

impl MeteredCdn {
    pub fn new(inner: Arc<dyn CdnProvider>, registry: &Registry) -> prometheus::Result<Self> {
        let operations = IntCounterVec::new(
            Opts::new(
                "api_cdn_operations_total",
                "CDN provider calls by operation and outcome",
            ),
            &["operation", "outcome"],
        )?;
        registry.register(Box::new(operations.clone()))?;
        Ok(Self { inner, operations })
    }

    fn count<T>(&self, operation: &str, result: Result<T, CdnError>) -> Result<T, CdnError> {
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        self.operations
            .with_label_values(&[operation, outcome])
            .inc();
        result
    }
}

impl CdnProvider for MeteredCdn {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn create_site<'a>(&'a self, number: u64, nickname: &'a str) -> CdnFuture<'a, Provisioned> {
        Box::pin(async move {
            self.count(
                "create_site",
                self.inner.create_site(number, nickname).await,
            )
        })
    }

    fn delete_site<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, ()> {
        Box::pin(async move { self.count("delete_site", self.inner.delete_site(site).await) })
    }

    fn storage<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, StorageTarget> {
        Box::pin(async move { self.count("storage", self.inner.storage(site).await) })
    }

    fn add_hostname<'a>(&'a self, site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            self.count(
                "add_hostname",
                self.inner.add_hostname(site, hostname).await,
            )
        })
    }

    fn load_certificate<'a>(&'a self, site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            self.count(
                "load_certificate",
                self.inner.load_certificate(site, hostname).await,
            )
        })
    }

    fn set_force_ssl<'a>(
        &'a self,
        site: &'a SiteRef,
        hostname: &'a str,
        on: bool,
    ) -> CdnFuture<'a, ()> {
        let operation = if on { "force_ssl_on" } else { "force_ssl_off" };
        Box::pin(async move {
            self.count(
                operation,
                self.inner.set_force_ssl(site, hostname, on).await,
            )
        })
    }

    fn remove_hostname<'a>(&'a self, site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            self.count(
                "remove_hostname",
                self.inner.remove_hostname(site, hostname).await,
            )
        })
    }

    fn purge<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, ()> {
        Box::pin(async move { self.count("purge", self.inner.purge(site).await) })
    }
}
