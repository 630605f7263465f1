//! Custom hostnames: add, then free certificate, then force SSL; on failure
//! the steps already done are undone in reverse, and the answer says what
//! state remains.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{AppState, now_rfc3339};
use crate::authz::Caller;
use crate::cdn::{CdnError, SiteRef};
use crate::error::ApiError;
use crate::sites::{parse_site_id, site_json, site_ref};
use crate::store::{HOSTNAME_ACTIVE, HOSTNAME_PARTIAL, StoreError};
use crate::validate;

/// The steps of adding a hostname, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    AddHostname,
    LoadCertificate,
    ForceSsl,
}

impl Step {
    const ALL: [Step; 3] = [Step::AddHostname, Step::LoadCertificate, Step::ForceSsl];

    fn name(self) -> &'static str {
        match self {
            Step::AddHostname => "add_hostname",
            Step::LoadCertificate => "load_certificate",
            Step::ForceSsl => "force_ssl",
        }
    }
}

#[derive(Deserialize)]
pub struct NewHostname {
    hostname: String,
}

/// `POST /v1/sites/{site}/hostnames`.
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<NewHostname>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let site = caller.owner_site(&state, &path?.0).await?;
    let Json(body) = body?;
    let hostname = validate::hostname(&body.hostname).map_err(ApiError::BadRequest)?;
    if let Some(owner) = state.store.hostname_owner(&hostname).await? {
        let whose = if owner == site.id {
            "this site"
        } else {
            "another site"
        };
        return Err(ApiError::Conflict(format!(
            "`{hostname}` is already used by {whose}"
        )));
    }

    let cdn_site = site_ref(&site);
    let mut done = Vec::new();
    for step in Step::ALL {
        if let Err(error) = run(&state, &cdn_site, &hostname, step).await {
            return Err(roll_back(&state, &cdn_site, &hostname, step, error, done).await);
        }
        done.push(step);
    }

    let now = now_rfc3339();
    match state
        .store
        .insert_hostname(site.id, &hostname, HOSTNAME_ACTIVE, &now)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Duplicate) => {
            // A concurrent request took the name between the check and now;
            // its CDN entry is the same hostname, so ours must not be undone.
            return Err(ApiError::Conflict(format!(
                "`{hostname}` was added concurrently"
            )));
        }
        Err(error) => return Err(error.into()),
    }
    tracing::info!(site = site.id, hostname = %hostname, "hostname added");
    Ok((StatusCode::CREATED, Json(site_json(&state, &site).await?)))
}

async fn run(state: &AppState, site: &SiteRef, host: &str, step: Step) -> Result<(), CdnError> {
    match step {
        Step::AddHostname => state.cdn.add_hostname(site, host).await,
        Step::LoadCertificate => state.cdn.load_certificate(site, host).await,
        Step::ForceSsl => state.cdn.set_force_ssl(site, host, true).await,
    }
}

/// Undoes `done` in reverse. Removing the hostname also drops its
/// certificate, so only force-SSL and the hostname itself need undoing.
async fn roll_back(
    state: &AppState,
    site: &SiteRef,
    hostname: &str,
    failed: Step,
    error: CdnError,
    done: Vec<Step>,
) -> ApiError {
    let mut rolled_back = Vec::new();
    let mut undo_error = None;
    for step in done.iter().rev() {
        let undo = match step {
            Step::ForceSsl => state.cdn.set_force_ssl(site, hostname, false).await,
            Step::LoadCertificate => Ok(()),
            Step::AddHostname => state.cdn.remove_hostname(site, hostname).await,
        };
        match undo {
            Ok(()) => rolled_back.push(step.name()),
            Err(e) => {
                undo_error = Some(e);
                break;
            }
        }
    }

    let remaining: Vec<&str> = done
        .iter()
        .map(|s| s.name())
        .filter(|s| !rolled_back.contains(s))
        .collect();
    let (state_name, message) = match &undo_error {
        None => (
            "absent",
            format!("adding `{hostname}` failed and was rolled back: {error}"),
        ),
        Some(undo) => (
            "partial",
            format!(
                "adding `{hostname}` failed ({error}) and rolling back failed too ({undo}): \
                 the hostname stays at the CDN; remove it with DELETE \
                 /v1/sites/{}/hostnames/{hostname}",
                site.id
            ),
        ),
    };
    if undo_error.is_some() {
        record_partial(state, site, hostname).await;
    }
    ApiError::CdnPartial {
        message,
        detail: json!({
            "hostname": hostname,
            "failed_step": failed.name(),
            "rolled_back": rolled_back,
            "remaining": remaining,
            "state": state_name,
        }),
    }
}

/// Keeps a hostname that could not be rolled back, so the owner can see and
/// delete it.
async fn record_partial(state: &AppState, site: &SiteRef, hostname: &str) {
    let id = i64::try_from(site.id).unwrap_or_default();
    let now = now_rfc3339();
    if let Err(error) = state
        .store
        .insert_hostname(id, hostname, HOSTNAME_PARTIAL, &now)
        .await
    {
        tracing::error!(site = id, hostname, error = %error, "recording a partial hostname failed");
    }
}

/// `GET /v1/sites/{site}/hostnames`: names with their state.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let site = caller
        .readable_site(&state, parse_site_id(&path?.0)?)
        .await?;
    let rows = state.store.hostnames(site.id).await?;
    let hostnames: Vec<Value> = rows
        .into_iter()
        .map(|(h, s)| json!({"hostname": h, "state": s}))
        .collect();
    Ok(Json(json!({"hostnames": hostnames})))
}

/// `DELETE /v1/sites/{site}/hostnames/{hostname}`: at the CDN, then here.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.ensure_not_deploy_token()?;
    let Path((site, hostname)) = path?;
    let site = caller.writable_site(&state, parse_site_id(&site)?).await?;
    let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
    if state.store.hostname_owner(&hostname).await? != Some(site.id) {
        return Err(ApiError::NotFound(format!(
            "site {} has no hostname `{hostname}`",
            site.id
        )));
    }
    state
        .cdn
        .remove_hostname(&site_ref(&site), &hostname)
        .await?;
    state.store.delete_hostname(site.id, &hostname).await?;
    tracing::info!(site = site.id, hostname = %hostname, "hostname removed");
    Ok(StatusCode::NO_CONTENT)
}
