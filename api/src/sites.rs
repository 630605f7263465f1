//! Sites, their storage, deploys and deploy tokens.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::{DEPLOY_TOKEN_PREFIX, token_sha256};
use crate::app::{AppState, now_rfc3339};
use crate::authz::Caller;
use crate::cdn::SiteRef;
use crate::error::ApiError;
use crate::store::{Deploy, DeployToken, HOSTNAME_ACTIVE, NewSite, Site};
use crate::validate;

/// The site object of the api–git contract.
pub async fn site_json(state: &AppState, site: &Site) -> Result<Value, ApiError> {
    let hostnames: Vec<Value> = state
        .store
        .hostnames(site.id)
        .await?
        .into_iter()
        .filter(|(_, s)| s == HOSTNAME_ACTIVE)
        .map(|(h, _)| Value::String(h))
        .collect();
    Ok(json!({
        "id": site.id,
        "nickname": site.nickname,
        "branch": site.branch,
        "publish_dir": site.publish_dir,
        "hostnames": hostnames,
        "url": site.url,
        "created_at": site.created_at,
    }))
}

/// How the CDN knows a stored site.
pub fn site_ref(site: &Site) -> SiteRef {
    SiteRef {
        id: u64::try_from(site.id).unwrap_or_default(),
        storage_zone_id: site.storage_zone_id,
        storage_zone_name: site.storage_zone_name.clone(),
    }
}

/// Parses the `{site}` path segment.
pub fn parse_site_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::BadRequest("`site`: must be a positive integer site id".into()))
}

#[derive(Deserialize)]
pub struct CreateSite {
    nickname: String,
}

/// `POST /v1/sites`: provisions at the CDN, then stores.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateSite>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.ensure_not_deploy_token()?;
    caller.ensure_writer()?;
    let Json(body) = body?;
    let nickname = validate::label("nickname", &body.nickname).map_err(ApiError::BadRequest)?;

    let number = state.store.next_site_number().await?;
    let made = state
        .cdn
        .create_site(u64::try_from(number).unwrap_or_default(), &nickname)
        .await?;
    let id = i64::try_from(made.site.id)
        .map_err(|_| ApiError::Internal(format!("site id {} out of range", made.site.id)))?;
    let new = NewSite {
        id,
        owner_id: caller.account_id,
        nickname: &nickname,
        url: &made.url,
        storage_zone_id: made.site.storage_zone_id,
        storage_zone_name: made.site.storage_zone_name.as_deref(),
    };
    if let Err(error) = state.store.insert_site(&new, &now_rfc3339()).await {
        // Do not leave an orphan at the CDN that nobody can delete.
        if let Err(undo) = state.cdn.delete_site(&made.site).await {
            tracing::error!(error = %undo, site = id, "removing an unrecorded site failed");
        }
        return Err(error.into());
    }
    tracing::info!(
        site = id,
        account = caller.account_id,
        cdn = state.cdn.name(),
        "site created"
    );

    let site = state.store.site(id).await?.ok_or(ApiError::NotYourSite)?;
    Ok((StatusCode::CREATED, Json(site_json(&state, &site).await?)))
}

/// `GET /v1/sites`: the caller's sites.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let mut sites = Vec::new();
    for site in state.store.sites_of(caller.account_id).await? {
        if caller.deploy_site.is_none_or(|s| s == site.id) {
            sites.push(site_json(&state, &site).await?);
        }
    }
    Ok(Json(json!({"sites": sites})))
}

/// `GET /v1/sites/{site}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let site = caller
        .readable_site(&state, parse_site_id(&path?.0)?)
        .await?;
    Ok(Json(site_json(&state, &site).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSite {
    nickname: Option<String>,
    branch: Option<String>,
    publish_dir: Option<String>,
}

/// `PATCH /v1/sites/{site}`: nickname, branch, publish directory.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UpdateSite>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let site = caller.owner_site(&state, &path?.0).await?;
    let Json(body) = body?;
    let bad = ApiError::BadRequest;
    let nickname = match body.nickname {
        Some(n) => validate::label("nickname", &n).map_err(bad)?,
        None => site.nickname.clone(),
    };
    let branch = match body.branch {
        Some(b) => validate::branch(&b).map_err(bad)?,
        None => site.branch.clone(),
    };
    let publish_dir = match body.publish_dir {
        Some(d) => validate::publish_dir(&d).map_err(bad)?,
        None => site.publish_dir.clone(),
    };

    state
        .store
        .update_site(site.id, &nickname, &branch, &publish_dir)
        .await?;
    let site = state
        .store
        .site(site.id)
        .await?
        .ok_or(ApiError::NotYourSite)?;
    Ok(Json(site_json(&state, &site).await?))
}

/// `DELETE /v1/sites/{site}`: at the CDN first, then here.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let site = caller.owner_site(&state, &path?.0).await?;
    state.cdn.delete_site(&site_ref(&site)).await?;
    state.store.delete_site(site.id).await?;
    tracing::info!(site = site.id, "site deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/sites/{site}/storage`: where `git` puts the files.
pub async fn storage(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let site = caller
        .writable_site(&state, parse_site_id(&path?.0)?)
        .await?;
    let target = state.cdn.storage(&site_ref(&site)).await?;
    let value =
        serde_json::to_value(&target).map_err(|e| ApiError::Internal(format!("storage: {e}")))?;
    Ok(Json(value))
}

#[derive(Deserialize)]
pub struct NewDeploy {
    commit: String,
    files_uploaded: u64,
    files_deleted: u64,
    files_kept: u64,
    bytes_uploaded: u64,
    duration_ms: u64,
    outcome: String,
    #[serde(default)]
    message: String,
}

/// Longest deploy message kept, in characters.
const MAX_DEPLOY_MESSAGE_CHARS: usize = 4096;

/// `POST /v1/sites/{site}/deploys`: purges the CDN cache after a successful
/// deploy, then records it. A failed purge is recorded as
/// `cache_purged: false` rather than losing the record of files that did
/// change.
pub async fn record_deploy(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<NewDeploy>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let site = caller
        .writable_site(&state, parse_site_id(&path?.0)?)
        .await?;
    let Json(body) = body?;
    let mut deploy = check_deploy(site.id, body)?;

    if deploy.outcome == "success" {
        match state.cdn.purge(&site_ref(&site)).await {
            Ok(()) => deploy.cache_purged = 1,
            Err(error) => tracing::warn!(site = site.id, error = %error, "purge failed"),
        }
    }
    deploy.id = state.store.insert_deploy(&deploy).await?;
    let (site_id, outcome) = (site.id, &deploy.outcome);
    tracing::info!(site = site_id, deploy = deploy.id, outcome = %outcome, "deploy recorded");
    Ok((StatusCode::CREATED, Json(deploy_json(&deploy))))
}

fn check_deploy(site_id: i64, body: NewDeploy) -> Result<Deploy, ApiError> {
    let commit_sha = validate::commit(&body.commit).map_err(ApiError::BadRequest)?;
    if !matches!(body.outcome.as_str(), "success" | "failed") {
        return Err(ApiError::BadRequest(
            "`outcome`: must be `success` or `failed`".into(),
        ));
    }
    if body.message.chars().count() > MAX_DEPLOY_MESSAGE_CHARS {
        let m = format!("`message`: must be at most {MAX_DEPLOY_MESSAGE_CHARS} characters");
        return Err(ApiError::BadRequest(m));
    }
    let int = |field: &str, n: u64| {
        i64::try_from(n).map_err(|_| ApiError::BadRequest(format!("`{field}`: too large")))
    };
    Ok(Deploy {
        id: 0,
        site_id,
        commit_sha,
        files_uploaded: int("files_uploaded", body.files_uploaded)?,
        files_deleted: int("files_deleted", body.files_deleted)?,
        files_kept: int("files_kept", body.files_kept)?,
        bytes_uploaded: int("bytes_uploaded", body.bytes_uploaded)?,
        duration_ms: int("duration_ms", body.duration_ms)?,
        outcome: body.outcome,
        message: body.message,
        cache_purged: 0,
        created_at: now_rfc3339(),
    })
}

fn deploy_json(d: &Deploy) -> Value {
    json!({
        "id": d.id,
        "site_id": d.site_id,
        "commit": d.commit_sha,
        "files_uploaded": d.files_uploaded,
        "files_deleted": d.files_deleted,
        "files_kept": d.files_kept,
        "bytes_uploaded": d.bytes_uploaded,
        "duration_ms": d.duration_ms,
        "outcome": d.outcome,
        "message": d.message,
        "cache_purged": d.cache_purged != 0,
        "created_at": d.created_at,
    })
}

#[derive(Deserialize)]
pub struct ListDeploys {
    limit: Option<i64>,
}

/// `GET /v1/sites/{site}/deploys?limit=N`: newest first, 50 by default.
pub async fn list_deploys(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ListDeploys>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let site = caller
        .readable_site(&state, parse_site_id(&path?.0)?)
        .await?;
    let Query(query) =
        query.map_err(|_| ApiError::BadRequest("`limit`: must be an integer".into()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "`limit`: must be between 1 and 1000".into(),
        ));
    }
    let deploys = state.store.deploys(site.id, limit).await?;
    Ok(Json(
        json!({"deploys": deploys.iter().map(deploy_json).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize, Default)]
pub struct NewToken {
    name: Option<String>,
}

/// `POST /v1/sites/{site}/tokens`: the secret is in this answer only.
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let site = caller.owner_site(&state, &path?.0).await?;
    let name = match body {
        Ok(Json(body)) => body.name,
        // A bare POST with no body takes the default name.
        Err(JsonRejection::MissingJsonContentType(_)) => None,
        Err(rejection) => return Err(rejection.into()),
    };
    let name = name.unwrap_or_else(|| "deploy".to_owned());
    let name = validate::label("name", &name).map_err(ApiError::BadRequest)?;

    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{DEPLOY_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let now = now_rfc3339();
    let id = state
        .store
        .insert_token(site.id, &name, &token_sha256(&secret), &now)
        .await?;
    tracing::info!(site = site.id, token = id, "deploy token created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "name": name, "token": secret, "created_at": now})),
    ))
}

fn token_json(t: &DeployToken) -> Value {
    json!({"id": t.id, "name": t.name, "created_at": t.created_at, "last_used_at": t.last_used_at})
}

/// `GET /v1/sites/{site}/tokens`: without secrets.
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.ensure_not_deploy_token()?;
    let site = caller
        .readable_site(&state, parse_site_id(&path?.0)?)
        .await?;
    let tokens = state.store.tokens(site.id).await?;
    Ok(Json(
        json!({"tokens": tokens.iter().map(token_json).collect::<Vec<_>>()}),
    ))
}

/// `DELETE /v1/sites/{site}/tokens/{token}`: revokes at once, sessions made
/// from it included.
pub async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.ensure_not_deploy_token()?;
    let Path((site, token)) = path?;
    let site = caller.writable_site(&state, parse_site_id(&site)?).await?;
    let not_found = || ApiError::NotFound(format!("site {} has no token `{token}`", site.id));
    let id: i64 = token.parse().map_err(|_| not_found())?;
    if !state.store.delete_token(site.id, id).await? {
        return Err(not_found());
    }
    tracing::info!(site = site.id, token = id, "deploy token revoked");
    Ok(StatusCode::NO_CONTENT)
}
