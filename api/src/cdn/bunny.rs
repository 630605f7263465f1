//! bunny.net: a storage zone and a pull zone per site, through the admin API
//! at `https://api.bunny.net` (authenticated by the `AccessKey` header).
//!
//! Endpoints used, as documented at docs.bunny.net/api-reference/core:
//! `POST /storagezone`, `GET`/`DELETE /storagezone/{id}`, `POST /pullzone`,
//! `DELETE /pullzone/{id}`, `POST /pullzone/{id}/addHostname`,
//! `GET /pullzone/loadFreeCertificate?hostname=…`,
//! `POST /pullzone/{id}/setForceSSL`, `DELETE /pullzone/{id}/removeHostname`
//! and `POST /pullzone/{id}/purgeCache`.

use std::fmt;
use std::time::Duration;

use rand::RngCore;
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CdnError, CdnFuture, CdnProvider, Provisioned, SiteRef, StorageTarget};
use crate::config::LogFormat;

/// Pull-zone `OriginType` for "the origin is a storage zone".
const ORIGIN_TYPE_STORAGE_ZONE: u8 = 2;
/// `LogForwardingProtocol` for plain TCP (0 is UDP, 2 TCP with TLS).
const LOG_FORWARDING_TCP: u8 = 1;

/// The account API key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Self {
        Self(key)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Settings of the bunny.net provider.
#[derive(Debug, Clone)]
pub struct BunnySettings {
    pub api_url: String,
    pub storage_url: String,
    pub api_key: ApiKey,
    pub region: String,
    pub log_host: String,
    pub log_port: u16,
    pub log_format: LogFormat,
}

#[derive(Debug)]
pub struct BunnyCdn {
    settings: BunnySettings,
    http: reqwest::Client,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StorageZone {
    id: i64,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PullZone {
    id: u64,
    #[serde(default)]
    hostnames: Vec<PullZoneHostname>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PullZoneHostname {
    value: String,
}

impl BunnyCdn {
    pub fn new(settings: BunnySettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTPS client builds");
        Self { settings, http }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}{path}", self.settings.api_url.trim_end_matches('/'));
        self.http
            .request(method, url)
            .header("AccessKey", &self.settings.api_key.0)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Sends a request and checks the status; the body is left to the caller.
    async fn send(
        &self,
        step: &'static str,
        request: RequestBuilder,
    ) -> Result<reqwest::Response, CdnError> {
        let response = request
            .send()
            .await
            .map_err(|source| CdnError::Unreachable { step, source })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Err(CdnError::Refused {
            step,
            status,
            message: error_message(&body),
        })
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        step: &'static str,
        request: RequestBuilder,
    ) -> Result<T, CdnError> {
        let response = self.send(step, request).await?;
        response
            .json()
            .await
            .map_err(|source| CdnError::Decode { step, source })
    }

    async fn create_storage_zone(&self, name: &str) -> Result<StorageZone, CdnError> {
        let body = json!({"Name": name, "Region": self.settings.region});
        let request = self.request(Method::POST, "/storagezone").json(&body);
        self.send_json("create storage zone", request).await
    }

    async fn create_pull_zone(&self, name: &str, zone_id: i64) -> Result<PullZone, CdnError> {
        let format = match self.settings.log_format {
            LogFormat::Pipe => 0,
            LogFormat::Json => 1,
        };
        let body = json!({
            "Name": name,
            "OriginType": ORIGIN_TYPE_STORAGE_ZONE,
            "StorageZoneId": zone_id,
            "EnableLogging": true,
            "LogForwardingEnabled": true,
            "LogForwardingHostname": self.settings.log_host,
            "LogForwardingPort": self.settings.log_port,
            "LogForwardingProtocol": LOG_FORWARDING_TCP,
            "LogForwardingFormat": format,
        });
        let request = self.request(Method::POST, "/pullzone").json(&body);
        self.send_json("create pull zone", request).await
    }

    async fn delete_storage_zone(&self, id: i64) -> Result<(), CdnError> {
        let request = self.request(Method::DELETE, &format!("/storagezone/{id}"));
        gone_is_fine(self.send("delete storage zone", request).await)
    }

    async fn provision(&self, number: u64) -> Result<Provisioned, CdnError> {
        let name = zone_name(number);
        let zone = self.create_storage_zone(&name).await?;

        let pull = match self.create_pull_zone(&name, zone.id).await {
            Ok(pull) => pull,
            Err(error) => return Err(self.undo_storage_zone(error, zone.id).await),
        };

        let host = pull
            .hostnames
            .first()
            .map_or_else(|| format!("{name}.b-cdn.net"), |h| h.value.clone());
        Ok(Provisioned {
            site: SiteRef {
                id: pull.id,
                storage_zone_id: Some(zone.id),
                storage_zone_name: Some(name),
            },
            url: format!("https://{host}/"),
        })
    }

    /// Deletes the storage zone of a half-made site; says so when that fails
    /// too.
    async fn undo_storage_zone(&self, error: CdnError, zone_id: i64) -> CdnError {
        match self.delete_storage_zone(zone_id).await {
            Ok(()) => error,
            Err(undo) => {
                tracing::error!(error = %undo, zone_id, "rolling back a storage zone failed");
                CdnError::Leftover {
                    error: Box::new(error),
                    leftover: format!("storage zone {zone_id}"),
                }
            }
        }
    }
}

/// A fresh zone name; storage and pull zone names are unique across all of
/// bunny.net, so the local number alone could collide with another account.
fn zone_name(number: u64) -> String {
    let mut bytes = [0u8; 4];
    rand::rng().fill_bytes(&mut bytes);
    format!("ecs-{number}-{}", hex::encode(bytes))
}

/// bunny.net's error body is `{"ErrorKey", "Field", "Message"}`; keep the
/// message, short and printable.
fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("Message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    let clean: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if clean.is_empty() {
        "no message".to_owned()
    } else {
        clean
    }
}

/// Deletes succeed when the thing is already gone, so that a delete that
/// failed half-way can simply be retried.
fn gone_is_fine(result: Result<reqwest::Response, CdnError>) -> Result<(), CdnError> {
    match result {
        Ok(_) | Err(CdnError::Refused { status: 404, .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

fn zone_id(site: &SiteRef) -> i64 {
    site.storage_zone_id.unwrap_or_default()
}

impl CdnProvider for BunnyCdn {
    fn name(&self) -> &'static str {
        "bunny"
    }

    fn create_site<'a>(&'a self, number: u64, _nickname: &'a str) -> CdnFuture<'a, Provisioned> {
        Box::pin(self.provision(number))
    }

    fn delete_site<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            let request = self.request(Method::DELETE, &format!("/pullzone/{}", site.id));
            gone_is_fine(self.send("delete pull zone", request).await)?;
            self.delete_storage_zone(zone_id(site)).await
        })
    }

    fn storage<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, StorageTarget> {
        Box::pin(async move {
            let path = format!("/storagezone/{}", zone_id(site));
            let request = self.request(Method::GET, &path);
            let zone: StorageZone = self.send_json("read storage zone", request).await?;
            Ok(StorageTarget::Bunny {
                endpoint: self.settings.storage_url.clone(),
                zone: site.storage_zone_name.clone().unwrap_or_default(),
                password: zone.password,
            })
        })
    }

    fn add_hostname<'a>(&'a self, site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            let path = format!("/pullzone/{}/addHostname", site.id);
            let request = self
                .request(Method::POST, &path)
                .json(&json!({"Hostname": hostname}));
            self.send("add hostname", request).await.map(drop)
        })
    }

    fn load_certificate<'a>(&'a self, _site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            let request = self
                .request(Method::GET, "/pullzone/loadFreeCertificate")
                .query(&[("hostname", hostname)]);
            self.send("load free certificate", request).await.map(drop)
        })
    }

    fn set_force_ssl<'a>(
        &'a self,
        site: &'a SiteRef,
        hostname: &'a str,
        on: bool,
    ) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            let path = format!("/pullzone/{}/setForceSSL", site.id);
            let body = json!({"Hostname": hostname, "ForceSSL": on});
            let request = self.request(Method::POST, &path).json(&body);
            self.send("set force SSL", request).await.map(drop)
        })
    }

    fn remove_hostname<'a>(&'a self, site: &'a SiteRef, hostname: &'a str) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            let path = format!("/pullzone/{}/removeHostname", site.id);
            let request = self
                .request(Method::DELETE, &path)
                .json(&json!({"Hostname": hostname}));
            self.send("remove hostname", request).await.map(drop)
        })
    }

    fn purge<'a>(&'a self, site: &'a SiteRef) -> CdnFuture<'a, ()> {
        Box::pin(async move {
            let request = self.request(Method::POST, &format!("/pullzone/{}/purgeCache", site.id));
            self.send("purge cache", request).await.map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_bunnys_message() {
        let body = r#"{"ErrorKey":"pullzone.hostname_taken","Field":"Hostname",
            "Message":"The hostname is already registered."}"#;
        assert_eq!(error_message(body), "The hostname is already registered.");
        assert_eq!(error_message("bad\ngateway"), "badgateway");
        assert_eq!(error_message(""), "no message");
    }

    #[test]
    fn api_key_debug_is_redacted() {
        let key = ApiKey::new("secret-key-123".to_owned());
        assert!(!format!("{key:?}").contains("secret"));
    }
}
