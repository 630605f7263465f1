//! `/openapi.json`: the API described by hand, kept next to the router.

use axum::Json;
use serde_json::{Value, json};

fn op(summary: &str, auth: bool, body: Option<&str>, ok: (&str, &str), errs: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.0.into(), json!({"description": ok.1}));
    for code in errs {
        responses.insert(
            (*code).into(),
            json!({"$ref": format!("#/components/responses/E{code}")}),
        );
    }
    let mut op = json!({"summary": summary, "responses": responses});
    if auth {
        op["security"] = json!([{"bearer": []}]);
    }
    if let Some(schema) = body {
        let schema = json!({"$ref": format!("#/components/schemas/{schema}")});
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    op
}

fn site_param() -> Value {
    json!({"name": "site", "in": "path", "required": true, "schema": {"type": "integer"}})
}

fn paths() -> Value {
    let auth = ["400", "401", "403"];
    let cdn = ["400", "401", "403", "502"];
    json!({
        "/v1/accounts": {"post": op("Sign up (same answer whether or not the email exists)",
            false, Some("SignUp"), ("202", "accepted"), &["400"])},
        "/v1/sessions": {"post": op("Sign in with email and password, or a deploy token",
            false, Some("SignIn"), ("200", "`{access_token, expires_in}`"),
            &["400", "401", "429"])},
        "/v1/me": {"get": op("The signed-in account", true, None, ("200", "account"), &["401"])},
        "/v1/sites": {
            "get": op("The caller's sites", true, None, ("200", "`{sites: [Site]}`"), &["401"]),
            "post": op("Create a site at the CDN", true, Some("CreateSite"), ("201", "Site"), &cdn),
        },
        "/v1/sites/{site}": {
            "parameters": [site_param()],
            "get": op("One site", true, None, ("200", "Site"), &auth),
            "patch": op("Change nickname, branch or publish_dir", true, Some("UpdateSite"),
                ("200", "Site"), &auth),
            "delete": op("Delete the site here and at the CDN", true, None,
                ("204", "deleted"), &cdn),
        },
        "/v1/sites/{site}/storage": {
            "parameters": [site_param()],
            "get": op("Where git puts the site's files (owner, not read-only)", true, None,
                ("200", "Storage"), &cdn),
        },
        "/v1/sites/{site}/deploys": {
            "parameters": [site_param(),
                {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}}],
            "get": op("Deploys, newest first", true, None, ("200", "`{deploys: [Deploy]}`"), &auth),
            "post": op("Record a deploy; purges the CDN cache on success", true,
                Some("NewDeploy"), ("201", "Deploy"), &auth),
        },
        "/v1/sites/{site}/tokens": {
            "parameters": [site_param()],
            "get": op("Deploy tokens, without secrets", true, None,
                ("200", "`{tokens: [{id, name, created_at, last_used_at}]}`"), &auth),
            "post": op("Make a deploy token; the secret is shown once", true, Some("NewToken"),
                ("201", "`{id, name, token, created_at}`"), &auth),
        },
        "/v1/sites/{site}/tokens/{token}": {
            "parameters": [site_param(),
                {"name": "token", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "delete": op("Revoke a deploy token", true, None, ("204", "revoked"),
                &["400", "401", "403", "404"]),
        },
        "/v1/sites/{site}/hostnames": {
            "parameters": [site_param()],
            "get": op("Hostnames with their state", true, None,
                ("200", "`{hostnames: [{hostname, state}]}`"), &auth),
            "post": op("Add a hostname: add, free certificate, force SSL; rolled back on \
                failure, the 502 body says what remains", true, Some("NewHostname"),
                ("201", "Site"), &["400", "401", "403", "409", "502"]),
        },
        "/v1/sites/{site}/hostnames/{hostname}": {
            "parameters": [site_param(),
                {"name": "hostname", "in": "path", "required": true, "schema": {"type": "string"}}],
            "delete": op("Remove a hostname", true, None, ("204", "removed"),
                &["400", "401", "403", "404", "502"]),
        },
        "/openapi.json": {"get": op("This document", false, None, ("200", "OpenAPI 3.1"), &[])},
        "/metrics": {"get": op("Prometheus metrics", false, None, ("200", "text"), &[])},
        "/healthz": {"get": op("The process runs", false, None, ("200", "ok"), &[])},
        "/readyz": {"get": op("The database answers", false, None, ("200", "ready"), &["503"])},
    })
}

fn schemas() -> Value {
    let s = |t: &str| json!({"type": t});
    json!({
        "SignUp": {"type": "object", "required": ["email", "password"],
            "properties": {"email": s("string"), "password": {"type": "string", "minLength": 10}}},
        "SignIn": {"oneOf": [
            {"type": "object", "required": ["email", "password"],
                "properties": {"email": s("string"), "password": s("string")}},
            {"type": "object", "required": ["deploy_token"],
                "properties": {"deploy_token": s("string")}}]},
        "CreateSite": {"type": "object", "required": ["nickname"],
            "properties": {"nickname": s("string")}},
        "UpdateSite": {"type": "object", "properties": {"nickname": s("string"),
            "branch": s("string"), "publish_dir": s("string")}},
        "NewHostname": {"type": "object", "required": ["hostname"],
            "properties": {"hostname": s("string")}},
        "NewToken": {"type": "object", "properties": {"name": s("string")}},
        "NewDeploy": {"type": "object",
            "required": ["commit", "files_uploaded", "files_deleted", "files_kept",
                "bytes_uploaded", "duration_ms", "outcome"],
            "properties": {"commit": s("string"), "files_uploaded": s("integer"),
                "files_deleted": s("integer"), "files_kept": s("integer"),
                "bytes_uploaded": s("integer"), "duration_ms": s("integer"),
                "outcome": {"enum": ["success", "failed"]}, "message": s("string")}},
        "Site": {"type": "object", "properties": {"id": s("integer"), "nickname": s("string"),
            "branch": s("string"), "publish_dir": s("string"),
            "hostnames": {"type": "array", "items": s("string")}, "url": s("string"),
            "created_at": {"type": "string", "format": "date-time"}}},
        "Storage": {"type": "object", "properties": {"provider": {"enum": ["local", "bunny"]},
            "root": s("string"), "endpoint": s("string"), "zone": s("string"),
            "password": s("string")}},
        "Error": {"type": "object", "properties": {"error": s("string")}},
    })
}

fn responses() -> Value {
    let e = |d: &str| {
        json!({"description": d, "content": {"application/json":
        {"schema": {"$ref": "#/components/schemas/Error"}}}})
    };
    json!({
        "E400": e("bad input; the message names the field"),
        "E401": e("no valid token, or invalid credentials"),
        "E403": e("not the caller's site, read-only account, or deploy-token scope"),
        "E404": e("no such token or hostname on this site"),
        "E409": e("hostname already in use"),
        "E429": e("too many failed sign-ins; see Retry-After"),
        "E502": e("the CDN failed; hostname answers add failed_step, rolled_back, \
            remaining and state"),
        "E503": e("not ready"),
    })
}

/// `GET /openapi.json`.
pub async fn document() -> Json<Value> {
    Json(json!({
        "openapi": "3.1.0",
        "info": {"title": "Ecstatic api", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "responses": responses(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "bearerFormat": "JWT"}},
        },
    }))
}
