//! Sign-up, sign-in (password or deploy token) and `GET /v1/me`.

use std::net::{IpAddr, SocketAddr};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use ecstatic_auth::{Claims, now_secs};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::app::{AppState, now_rfc3339};
use crate::authz::{ApiClaims, Caller};
use crate::error::ApiError;
use crate::store::StoreError;
use crate::validate;

/// Prefix of deploy tokens, so that they are recognisable in a leak scan.
pub const DEPLOY_TOKEN_PREFIX: &str = "ecs_dt_";

#[derive(Deserialize)]
pub struct SignUp {
    email: String,
    password: String,
}

/// `POST /v1/accounts`. The answer is the same whether or not the email was
/// already registered, so that sign-up cannot be used to probe addresses.
pub async fn create_account(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<SignUp>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let email = validate::email(&body.email).map_err(ApiError::BadRequest)?;
    validate::password(&body.password).map_err(ApiError::BadRequest)?;
    let address = client_address(&state, peer.ip(), &headers).to_string();
    if let Some(secs) = state.signup_limiter.count_address(&address) {
        return Err(ApiError::TooManySignUps(secs));
    }

    let hash = hash_password(body.password).await?;
    match state
        .store
        .create_account(&email, &hash, &now_rfc3339())
        .await
    {
        Ok(id) => tracing::info!(account = id, "account created"),
        Err(StoreError::Duplicate) => tracing::debug!("sign-up for a registered email"),
        Err(error) => return Err(error.into()),
    }
    let message = "if the address was not registered yet, the account now exists: \
                   sign in with POST /v1/sessions";
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"email": email, "message": message})),
    ))
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum SignIn {
    Password { email: String, password: String },
    DeployToken { deploy_token: String },
}

/// `POST /v1/sessions`: an access token for a password or a deploy token.
pub async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|_| {
        ApiError::BadRequest(
            "request body: expected `{\"email\", \"password\"}` or `{\"deploy_token\"}`".into(),
        )
    })?;
    let address = client_address(&state, peer.ip(), &headers).to_string();
    let (credential, result) = match body.0 {
        SignIn::Password { email, password } => (
            "password",
            password_session(&state, &address, &email, password).await,
        ),
        SignIn::DeployToken { deploy_token } => (
            "deploy_token",
            token_session(&state, &address, &deploy_token).await,
        ),
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(ApiError::InvalidCredentials) => "invalid",
        Err(ApiError::TooManyAttempts(_)) => "limited",
        Err(_) => "error",
    };
    state.metrics.sign_in(credential, outcome);
    let claims = result?;
    let ttl = state.settings.token_ttl_secs;
    Ok(Json(
        json!({"access_token": state.signer.sign(&claims), "expires_in": ttl}),
    ))
}

/// The address failed sign-ins are counted against: the peer, or behind a
/// proxy the last entry of `--client-ip-header`, which is the address that
/// the proxy itself saw (earlier entries are whatever the client claimed).
fn client_address(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let Some(name) = &state.settings.client_ip_header else {
        return peer;
    };
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
}

async fn password_session(
    state: &AppState,
    address: &str,
    email: &str,
    password: String,
) -> Result<ApiClaims, ApiError> {
    let key = email.trim().to_lowercase();
    if let Some(secs) = state.limiter.blocked(&key, address) {
        return Err(ApiError::TooManyAttempts(secs));
    }

    let account = state.store.account_by_email(&key).await?;
    // Unknown emails are checked against a dummy hash, so that both cases
    // take the same time.
    let hash = account
        .as_ref()
        .map_or_else(|| state.dummy_hash.clone(), |a| a.password_hash.clone());
    let matches = verify_password(password, hash).await?;
    let Some(account) = account.filter(|_| matches) else {
        state.limiter.failed(&key, address);
        return Err(ApiError::InvalidCredentials);
    };

    state.limiter.succeeded(&key);
    let sites = state.store.site_ids_of(account.id).await?;
    Ok(ApiClaims {
        claims: Claims {
            sub: account.id.to_string(),
            exp: now_secs() + state.settings.token_ttl_secs,
            sites: sites
                .into_iter()
                .filter_map(|s| u64::try_from(s).ok())
                .collect(),
            readonly: account.readonly != 0,
        },
        dtk: None,
    })
}

async fn token_session(
    state: &AppState,
    address: &str,
    secret: &str,
) -> Result<ApiClaims, ApiError> {
    // One shared account key for token attempts: the address limit is what
    // stops guessing, and a token has 256 bits to guess anyway.
    if let Some(secs) = state.limiter.blocked("deploy-token", address) {
        return Err(ApiError::TooManyAttempts(secs));
    }
    let found = match secret.strip_prefix(DEPLOY_TOKEN_PREFIX) {
        Some(_) => {
            state
                .store
                .use_token(&token_sha256(secret), &now_rfc3339())
                .await?
        }
        None => None,
    };
    let Some(token) = found else {
        state.limiter.failed("deploy-token", address);
        return Err(ApiError::InvalidCredentials);
    };
    let site = state
        .store
        .site(token.site_id)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    Ok(ApiClaims {
        claims: Claims {
            sub: site.owner_id.to_string(),
            exp: now_secs() + state.settings.token_ttl_secs,
            sites: vec![u64::try_from(site.id).unwrap_or_default()],
            readonly: false,
        },
        dtk: Some(token.id),
    })
}

/// `GET /v1/me`.
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let account = state
        .store
        .account(caller.account_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the token's account no longer exists".into()))?;
    let sites = state.store.site_ids_of(account.id).await?;
    Ok(Json(json!({
        "id": account.id,
        "email": account.email,
        "readonly": caller.readonly,
        "sites": sites,
        "created_at": account.created_at,
    })))
}

/// SHA-256 of a deploy token, hex. Plain SHA-256 is enough: the tokens are
/// 256 random bits, so there is nothing to brute-force from the hash.
pub fn token_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Argon2 runs at a time. Each takes 19 MiB and a core for tens of
/// milliseconds; without a bound, a flood of sign-ins would queue hundreds on
/// the blocking pool and exhaust memory instead of waiting here.
static HASHING: Semaphore = Semaphore::const_new(4);

/// Argon2id with the crate's default cost (19 MiB, 2 passes), off the async
/// threads.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    let _permit = HASHING
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let mut salt_bytes = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt_bytes);
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| ApiError::Internal(format!("encoding a salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("hashing task: {e}")))?
}

async fn verify_password(password: String, hash: String) -> Result<bool, ApiError> {
    let _permit = HASHING
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| ApiError::Internal(format!("stored password hash: {e}")))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("verifying task: {e}")))?
}
