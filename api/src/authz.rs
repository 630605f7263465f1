//! Who is calling: the bearer token, checked against the key and against the
//! database (the account must still exist; a deploy token must not have been
//! revoked; read-only is read fresh, so a change applies at once).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecstatic_auth::{Claims, bearer_token};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::Site;

/// Claims as api signs them: the shared ones, plus `dtk`, the deploy token a
/// session came from. `query` and `git` ignore the extra claim.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiClaims {
    #[serde(flatten)]
    pub claims: Claims,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtk: Option<i64>,
}

/// Signs access tokens with the shared HS256 key.
#[derive(Clone)]
pub struct Signer {
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    pub fn new(secret: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            key: EncodingKey::from_secret(secret)?,
        })
    }

    pub fn sign(&self, claims: &ApiClaims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
            .expect("HS256 signing of plain claims cannot fail")
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: i64,
    pub readonly: bool,
    /// Set when the session came from a deploy token: the one site it covers.
    pub deploy_site: Option<i64>,
}

impl Caller {
    /// The site, when the caller may read it. Missing and foreign sites get
    /// the same answer, so ids cannot be probed.
    pub async fn readable_site(&self, state: &AppState, site_id: i64) -> Result<Site, ApiError> {
        if self.deploy_site.is_some_and(|s| s != site_id) {
            return Err(ApiError::NotYourSite);
        }
        match state.store.site(site_id).await? {
            Some(site) if site.owner_id == self.account_id => Ok(site),
            _ => Err(ApiError::NotYourSite),
        }
    }

    /// The site, when the caller may change it.
    pub async fn writable_site(&self, state: &AppState, site_id: i64) -> Result<Site, ApiError> {
        let site = self.readable_site(state, site_id).await?;
        self.ensure_writer()?;
        Ok(site)
    }

    /// Refuses read-only accounts.
    pub fn ensure_writer(&self) -> Result<(), ApiError> {
        if self.readonly {
            Err(ApiError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Refuses deploy-token sessions (for account and token management).
    /// The site named by a raw path segment, for a change only its owner may
    /// make with an account session (never with a deploy token).
    pub async fn owner_site(&self, state: &AppState, raw_id: &str) -> Result<Site, ApiError> {
        self.ensure_not_deploy_token()?;
        self.writable_site(state, crate::sites::parse_site_id(raw_id)?)
            .await
    }

    pub fn ensure_not_deploy_token(&self) -> Result<(), ApiError> {
        if self.deploy_site.is_some() {
            Err(ApiError::DeployTokenScope)
        } else {
            Ok(())
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::Unauthorized(m.to_owned());
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                unauthorized("sign in first: `Authorization: Bearer <token>` is missing")
            })?;
        let token = bearer_token(header)
            .ok_or_else(|| unauthorized("the `Authorization` header must be `Bearer <token>`"))?;
        let claims = state
            .jwt
            .verify(token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        let account_id: i64 = claims
            .sub
            .parse()
            .map_err(|_| unauthorized("the token is not valid"))?;

        let account = state
            .store
            .account(account_id)
            .await?
            .ok_or_else(|| unauthorized("the token's account no longer exists"))?;
        let deploy_site = match deploy_token_claim(token) {
            Some(token_id) => Some(deploy_token_site(state, token_id, &claims).await?),
            None => None,
        };
        Ok(Self {
            account_id,
            readonly: claims.readonly || account.readonly != 0,
            deploy_site,
        })
    }
}

/// The `dtk` claim of a token whose signature was already checked.
fn deploy_token_claim(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("dtk")?
        .as_i64()
}

/// The site of a deploy-token session, after checking the token still
/// exists and still belongs to it.
async fn deploy_token_site(
    state: &AppState,
    token_id: i64,
    claims: &Claims,
) -> Result<i64, ApiError> {
    let revoked = || ApiError::Unauthorized("the deploy token was revoked".to_owned());
    let token = state.store.token(token_id).await?.ok_or_else(revoked)?;
    let site = i64::try_from(claims.sites.first().copied().unwrap_or(0)).unwrap_or(-1);
    if token.site_id != site {
        return Err(revoked());
    }
    Ok(site)
}
