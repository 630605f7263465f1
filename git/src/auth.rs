//! HTTP Basic credentials → a verified session, through `api`.
//!
//! The password is either the account's password (the username is then the
//! email) or a deploy token (`ecs_dt_…`, any username). `api` exchanges
//! either for a JWT, which is verified here with the shared key. Successful
//! checks are cached briefly, keyed by a SHA-256 of the credentials, so that
//! the three requests of one push sign in once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use ecstatic_auth::{Claims, JwtKey};
use sha2::{Digest, Sha256};

use crate::api::{ApiClient, ApiError, SignIn};

/// Prefix of deploy tokens, as `api` makes them.
const DEPLOY_TOKEN_PREFIX: &str = "ecs_dt_";

/// How long a successful credential check is reused.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// Cached entries above this count make an insert sweep out expired ones.
const CACHE_SWEEP_AT: usize = 1024;

/// Why a request was not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("sign in with your email and password, or any name and a deploy token")]
    MissingCredentials,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("site {0} is not yours")]
    Forbidden(u64),
    #[error("this account is read-only and cannot push")]
    ReadOnly,
    #[error("too many failed sign-ins: try again in a few minutes")]
    RateLimited,
    #[error("checking credentials failed")]
    Api(#[source] ApiError),
}

impl From<ApiError> for AuthError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidCredentials => Self::InvalidCredentials,
            ApiError::RateLimited => Self::RateLimited,
            ApiError::Forbidden(site) => Self::Forbidden(site),
            other => Self::Api(other),
        }
    }
}

/// A signed-in caller: the token to call `api` with and what it says.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub claims: Claims,
}

impl Session {
    /// Checks that the caller owns `site` and, when `write`, may change it.
    pub fn authorize(&self, site: u64, write: bool) -> Result<(), AuthError> {
        if !self.claims.may_read(site) {
            return Err(AuthError::Forbidden(site));
        }
        if write && self.claims.readonly {
            return Err(AuthError::ReadOnly);
        }
        Ok(())
    }
}

struct Cached {
    session: Session,
    until: Instant,
}

/// Turns `Authorization` headers into sessions.
pub struct Authenticator {
    api: ApiClient,
    key: JwtKey,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl Authenticator {
    pub fn new(api: ApiClient, key: JwtKey) -> Self {
        Self {
            api,
            key,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Signs the caller in from an `Authorization: Basic …` header value.
    /// `client` is the pusher's address, which `api` counts failures against.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        client: IpAddr,
    ) -> Result<Session, AuthError> {
        let (user, password) = header
            .and_then(parse_basic)
            .ok_or(AuthError::MissingCredentials)?;
        let cache_key = credential_hash(&user, &password);
        if let Some(session) = self.cached(&cache_key) {
            return Ok(session);
        }

        let sign_in = if password.starts_with(DEPLOY_TOKEN_PREFIX) {
            SignIn::DeployToken {
                deploy_token: &password,
            }
        } else {
            SignIn::Password {
                email: &user,
                password: &password,
            }
        };
        let token = self.api.sign_in(&sign_in, client).await?;
        let claims = self.key.verify(&token).map_err(|error| {
            tracing::warn!(%error, "`api` issued a token that does not verify: \
                check that both services share `ECSTATIC_JWT_SECRET`");
            AuthError::InvalidCredentials
        })?;

        let session = Session { token, claims };
        self.remember(cache_key, &session);
        Ok(session)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Session> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let hit = cache.get(key).filter(|c| c.until > Instant::now())?;
        // The token itself may run out before the cache entry does.
        (hit.session.claims.exp > ecstatic_auth::now_secs() + 5).then(|| hit.session.clone())
    }

    fn remember(&self, key: [u8; 32], session: &Session) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_SWEEP_AT {
            cache.retain(|_, c| c.until > now);
        }
        cache.insert(
            key,
            Cached {
                session: session.clone(),
                until: now + CACHE_TTL,
            },
        );
    }
}

/// The cache key: a hash, so that no clear password stays in memory longer
/// than the request that carried it.
fn credential_hash(user: &str, password: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"ecstatic-git credentials\0");
    hasher.update(user.as_bytes());
    hasher.update([0]);
    hasher.update(password.as_bytes());
    hasher.finalize().into()
}

/// Reads `Basic base64(user:password)`.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (!password.is_empty()).then(|| (user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(raw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    #[test]
    fn parses_basic_credentials() {
        assert_eq!(
            parse_basic(&basic("a@example.com:pa:ss")),
            Some(("a@example.com".to_owned(), "pa:ss".to_owned()))
        );
        assert_eq!(parse_basic(&basic("x:ecs_dt_1")).unwrap().1, "ecs_dt_1");
        assert_eq!(parse_basic(&basic("nopassword:")), None);
        assert_eq!(parse_basic(&basic("no-colon")), None);
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn sessions_reach_only_owned_sites() {
        let claims = Claims {
            sub: "1".into(),
            exp: u64::MAX,
            sites: vec![1000],
            readonly: true,
        };
        let session = Session {
            token: String::new(),
            claims,
        };
        assert!(session.authorize(1000, false).is_ok());
        assert!(matches!(
            session.authorize(1001, false),
            Err(AuthError::Forbidden(1001))
        ));
        assert!(matches!(
            session.authorize(1000, true),
            Err(AuthError::ReadOnly)
        ));
    }

    #[test]
    fn credential_hashes_separate_user_and_password() {
        assert_ne!(credential_hash("ab", "c"), credential_hash("a", "bc"));
    }
}
