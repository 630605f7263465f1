//! Client for the `api` service, per the api–git contract
//! (`/work/briefs/api-git-contract.md`): sessions, site settings, where the
//! site's files go, and deploy records.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

/// Why a call to `api` failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many failed sign-ins: try again in a few minutes")]
    RateLimited,
    #[error("site {0} is not yours")]
    Forbidden(u64),
    #[error("`api` answered {status} to {what}: {message}")]
    Status {
        what: &'static str,
        status: StatusCode,
        message: String,
    },
    #[error("`api` could not be reached for {what}: check `--api-url`")]
    Unreachable {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
}

/// What a session exchange sends: account credentials or a deploy token.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SignIn<'a> {
    Password { email: &'a str, password: &'a str },
    DeployToken { deploy_token: &'a str },
}

#[derive(Debug, Deserialize)]
struct SessionAnswer {
    access_token: String,
}

/// The parts of a site object that publishing needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Site {
    pub id: u64,
    #[serde(default = "default_branch")]
    pub branch: String,
    #[serde(default)]
    pub publish_dir: String,
    #[serde(default)]
    pub url: String,
}

fn default_branch() -> String {
    "main".to_owned()
}

/// Where a site's files go (`GET /v1/sites/{site}/storage`).
#[derive(Clone, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum StorageTarget {
    Local {
        root: std::path::PathBuf,
    },
    Bunny {
        endpoint: String,
        zone: String,
        password: String,
    },
}

impl std::fmt::Debug for StorageTarget {
    /// Leaves the storage password out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            Self::Bunny { endpoint, zone, .. } => f
                .debug_struct("Bunny")
                .field("endpoint", endpoint)
                .field("zone", zone)
                .finish(),
        }
    }
}

/// A deploy record, as `POST /v1/sites/{site}/deploys` takes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeployRecord {
    pub commit: String,
    pub files_uploaded: u64,
    pub files_deleted: u64,
    pub files_kept: u64,
    pub bytes_uploaded: u64,
    pub duration_ms: u64,
    pub outcome: &'static str,
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    error: String,
}

/// Talks to `api` at its base URL.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
}

impl ApiClient {
    pub fn new(base: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Exchanges credentials for an access token. `client` is the address
    /// the credentials came from, passed on in `X-Forwarded-For` for `api`'s
    /// per-address limit (used when `api` runs with `--client-ip-header`).
    pub async fn sign_in(&self, sign_in: &SignIn<'_>, client: IpAddr) -> Result<String, ApiError> {
        const WHAT: &str = "a sign-in";
        let url = format!("{}/v1/sessions", self.base);
        let request = self
            .http
            .post(url)
            .header("x-forwarded-for", client.to_string());
        let response = request.json(sign_in).send().await;
        let response = response.map_err(|source| ApiError::Unreachable { what: WHAT, source })?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => Err(ApiError::InvalidCredentials),
            StatusCode::TOO_MANY_REQUESTS => Err(ApiError::RateLimited),
            _ => Ok(parse::<SessionAnswer>(WHAT, 0, response)
                .await?
                .access_token),
        }
    }

    /// The site's settings.
    pub async fn site(&self, token: &str, site: u64) -> Result<Site, ApiError> {
        let url = format!("{}/v1/sites/{site}", self.base);
        let response = self.http.get(url).bearer_auth(token).send().await;
        let what = "the site's settings";
        let response = response.map_err(|source| ApiError::Unreachable { what, source })?;
        parse(what, site, response).await
    }

    /// Where the site's files go.
    pub async fn storage(&self, token: &str, site: u64) -> Result<StorageTarget, ApiError> {
        let url = format!("{}/v1/sites/{site}/storage", self.base);
        let response = self.http.get(url).bearer_auth(token).send().await;
        let what = "the site's storage";
        let response = response.map_err(|source| ApiError::Unreachable { what, source })?;
        parse(what, site, response).await
    }

    /// Records a deploy; on success `api` purges the site's CDN cache first.
    pub async fn record_deploy(
        &self,
        token: &str,
        site: u64,
        record: &DeployRecord,
    ) -> Result<(), ApiError> {
        let url = format!("{}/v1/sites/{site}/deploys", self.base);
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(record)
            .send()
            .await;
        let what = "the deploy record";
        let response = response.map_err(|source| ApiError::Unreachable { what, source })?;
        parse::<serde_json::Value>(what, site, response)
            .await
            .map(drop)
    }
}

/// Reads a success answer as `T`, or turns an error answer into an
/// [`ApiError`] carrying `api`'s own message.
async fn parse<T: serde::de::DeserializeOwned>(
    what: &'static str,
    site: u64,
    response: reqwest::Response,
) -> Result<T, ApiError> {
    let status = response.status();
    if status == StatusCode::FORBIDDEN {
        return Err(ApiError::Forbidden(site));
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(ApiError::InvalidCredentials);
    }
    if !status.is_success() {
        let message = match response.json::<ErrorAnswer>().await {
            Ok(answer) => answer.error,
            Err(_) => "(no error message)".to_owned(),
        };
        return Err(ApiError::Status {
            what,
            status,
            message,
        });
    }
    response
        .json::<T>()
        .await
        .map_err(|source| ApiError::Status {
            what,
            status,
            message: format!("unreadable answer: {source}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_bodies_match_the_contract() {
        let password = SignIn::Password {
            email: "a@example.com",
            password: "pw",
        };
        assert_eq!(
            serde_json::to_value(&password).unwrap(),
            serde_json::json!({"email": "a@example.com", "password": "pw"})
        );
        let token = SignIn::DeployToken {
            deploy_token: "ecs_dt_x",
        };
        assert_eq!(
            serde_json::to_value(&token).unwrap(),
            serde_json::json!({"deploy_token": "ecs_dt_x"})
        );
    }

    #[test]
    fn storage_answers_parse_and_hide_the_password() {
        let local: StorageTarget =
            serde_json::from_str(r#"{"provider": "local", "root": "/srv/sites/1000"}"#).unwrap();
        assert!(matches!(local, StorageTarget::Local { ref root } if root.ends_with("1000")));

        let bunny: StorageTarget = serde_json::from_str(
            r#"{"provider": "bunny", "endpoint": "https://storage.bunnycdn.com",
                "zone": "z", "password": "secret-pw"}"#,
        )
        .unwrap();
        assert!(!format!("{bunny:?}").contains("secret-pw"));
    }
}
