//! A stand-in for bunny.net's admin API (bunny.net is out of reach here).
//!
//! It checks what docs.bunny.net documents: the `AccessKey` header, methods,
//! paths and JSON bodies; keeps storage zones, pull zones and their hostnames
//! so that effects (and rollbacks) can be asserted; records every call; and
//! fails any step on demand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

pub const KEY: &str = "fake-bunny-account-key-7f3a9c";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// Step name, such as `add_hostname` or `force_ssl_off`.
    pub step: String,
    pub method: Method,
    pub path: String,
    pub body: Value,
    pub status: u16,
}

#[derive(Debug, Default)]
pub struct PullZone {
    pub storage_zone_id: i64,
    pub body: Value,
    /// Custom hostname → (has certificate, force SSL).
    pub hostnames: BTreeMap<String, (bool, bool)>,
    pub purges: u32,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub calls: Vec<Call>,
    pub storage_zones: BTreeMap<i64, (String, String)>,
    pub pull_zones: BTreeMap<u64, PullZone>,
    /// Steps told to fail, with the status to answer.
    pub fail: HashMap<String, u16>,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeBunny {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

type Shared = Arc<Mutex<FakeState>>;

/// A required body field and its check.
type Check = (&'static str, fn(&Value) -> bool);

impl FakeBunny {
    pub async fn start() -> Self {
        let state: Shared = Arc::new(Mutex::new(FakeState {
            next_id: 5000,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/storagezone", post(add_storage_zone))
            .route(
                "/storagezone/{id}",
                get(get_storage_zone).delete(delete_storage_zone),
            )
            .route("/pullzone", post(add_pull_zone))
            .route("/pullzone/loadFreeCertificate", get(load_certificate))
            .route("/pullzone/{id}", delete(delete_pull_zone))
            .route("/pullzone/{id}/addHostname", post(add_hostname))
            .route("/pullzone/{id}/removeHostname", delete(remove_hostname))
            .route("/pullzone/{id}/setForceSSL", post(set_force_ssl))
            .route("/pullzone/{id}/purgeCache", post(purge))
            .fallback(unknown)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                record_status,
            ))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    pub fn fail(&self, step: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .fail
            .insert(step.to_owned(), status);
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().fail.clear();
    }

    /// Step names of the calls so far, in order.
    pub fn steps(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .map(|c| c.step.clone())
            .collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// Custom hostnames of a pull zone with (certificate, force SSL).
    pub fn hostnames(&self, zone: u64) -> BTreeMap<String, (bool, bool)> {
        self.state.lock().unwrap().pull_zones[&zone]
            .hostnames
            .clone()
    }

    pub fn zone_ids(&self) -> (BTreeSet<i64>, BTreeSet<u64>) {
        let s = self.state.lock().unwrap();
        (
            s.storage_zones.keys().copied().collect(),
            s.pull_zones.keys().copied().collect(),
        )
    }
}

/// Checks the key, the injected failures and the body; records the call.
/// `Ok` carries the parsed body.
fn admit(
    state: &Shared,
    step: &str,
    method: Method,
    path: String,
    headers: &HeaderMap,
    body: &Bytes,
    required: &[Check],
) -> Result<Value, Box<Response>> {
    let parsed: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::String("<not json>".into()))
    };
    let mut s = state.lock().unwrap();
    let refusal = refuse(&s, step, headers, &parsed, required);
    let status = refusal.as_ref().map_or(200, |(status, _)| *status);
    s.calls.push(Call {
        step: step.into(),
        method,
        path,
        body: parsed.clone(),
        status,
    });
    match refusal {
        Some((status, message)) => Err(Box::new(error(status, "refused", &message))),
        None => Ok(parsed),
    }
}

/// Why the fake refuses a call, if it does: the reasons bunny.net would
/// have, then the failures the test injected.
fn refuse(
    s: &FakeState,
    step: &str,
    headers: &HeaderMap,
    parsed: &Value,
    required: &[Check],
) -> Option<(u16, String)> {
    if headers.get("AccessKey").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return Some((401, "The request authorization failed.".into()));
    }
    if !required.is_empty() {
        let json_type = headers.get("content-type").and_then(|v| v.to_str().ok());
        if json_type != Some("application/json") {
            return Some((415, "Expected application/json.".into()));
        }
    }
    for (field, ok) in required {
        if !parsed.get(*field).is_some_and(ok) {
            return Some((400, format!("Field {field} is missing or wrong.")));
        }
    }
    s.fail
        .get(step)
        .map(|status| (*status, format!("Injected failure of {step}.")))
}

/// Stores the status finally answered on the call just recorded (handlers
/// can still refuse after `admit`, say with 404 for a missing zone). The api
/// makes one call at a time, so the last call is this request's.
async fn record_status(
    State(st): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(call) = st.lock().unwrap().calls.last_mut() {
        call.status = response.status().as_u16();
    }
    response
}

fn error(status: u16, key: &str, message: &str) -> Response {
    let body = json!({"ErrorKey": key, "Field": "", "Message": message});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn is_str(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.is_empty())
}
fn is_int(v: &Value) -> bool {
    v.as_i64().is_some()
}
fn is_bool(v: &Value) -> bool {
    v.is_boolean()
}
fn is_true(v: &Value) -> bool {
    v == &Value::Bool(true)
}
fn is_storage_origin(v: &Value) -> bool {
    v.as_i64() == Some(2)
}
fn is_tcp(v: &Value) -> bool {
    v.as_i64() == Some(1)
}
fn is_format(v: &Value) -> bool {
    matches!(v.as_i64(), Some(0 | 1))
}

async fn add_storage_zone(State(st): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    let req = [("Name", is_str as fn(&Value) -> bool), ("Region", is_str)];
    let body = match admit(
        &st,
        "create_storage_zone",
        Method::POST,
        "/storagezone".into(),
        &h,
        &body,
        &req,
    ) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut s = st.lock().unwrap();
    s.next_id += 1;
    let id = s.next_id as i64;
    let name = body["Name"].as_str().unwrap().to_owned();
    let password = format!("storage-password-{id}");
    s.storage_zones.insert(id, (name.clone(), password.clone()));
    axum::Json(json!({"Id": id, "Name": name, "Password": password,
        "ReadOnlyPassword": "ro", "Region": body["Region"]}))
    .into_response()
}

async fn get_storage_zone(State(st): State<Shared>, Path(id): Path<i64>, h: HeaderMap) -> Response {
    if let Err(r) = admit(
        &st,
        "get_storage_zone",
        Method::GET,
        format!("/storagezone/{id}"),
        &h,
        &Bytes::new(),
        &[],
    ) {
        return *r;
    }
    let s = st.lock().unwrap();
    match s.storage_zones.get(&id) {
        Some((name, password)) => {
            axum::Json(json!({"Id": id, "Name": name, "Password": password})).into_response()
        }
        None => error(
            404,
            "storagezone.not_found",
            "The storage zone was not found.",
        ),
    }
}

async fn delete_storage_zone(
    State(st): State<Shared>,
    Path(id): Path<i64>,
    h: HeaderMap,
) -> Response {
    if let Err(r) = admit(
        &st,
        "delete_storage_zone",
        Method::DELETE,
        format!("/storagezone/{id}"),
        &h,
        &Bytes::new(),
        &[],
    ) {
        return *r;
    }
    match st.lock().unwrap().storage_zones.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(
            404,
            "storagezone.not_found",
            "The storage zone was not found.",
        ),
    }
}

async fn add_pull_zone(State(st): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    let req = [
        ("Name", is_str as fn(&Value) -> bool),
        ("OriginType", is_storage_origin),
        ("StorageZoneId", is_int),
        ("EnableLogging", is_true),
        ("LogForwardingEnabled", is_true),
        ("LogForwardingHostname", is_str),
        ("LogForwardingPort", is_int),
        ("LogForwardingProtocol", is_tcp),
        ("LogForwardingFormat", is_format),
    ];
    let body = match admit(
        &st,
        "create_pull_zone",
        Method::POST,
        "/pullzone".into(),
        &h,
        &body,
        &req,
    ) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let mut s = st.lock().unwrap();
    let zone = body["StorageZoneId"].as_i64().unwrap();
    if !s.storage_zones.contains_key(&zone) {
        return error(
            400,
            "pullzone.storage_zone_missing",
            "No such storage zone.",
        );
    }
    s.next_id += 1;
    let id = s.next_id;
    let name = body["Name"].as_str().unwrap().to_owned();
    s.pull_zones.insert(
        id,
        PullZone {
            storage_zone_id: zone,
            body,
            ..Default::default()
        },
    );
    axum::Json(json!({"Id": id, "Name": name,
        "Hostnames": [{"Id": 1, "Value": format!("{name}.b-cdn.net")}]}))
    .into_response()
}

async fn delete_pull_zone(State(st): State<Shared>, Path(id): Path<u64>, h: HeaderMap) -> Response {
    if let Err(r) = admit(
        &st,
        "delete_pull_zone",
        Method::DELETE,
        format!("/pullzone/{id}"),
        &h,
        &Bytes::new(),
        &[],
    ) {
        return *r;
    }
    match st.lock().unwrap().pull_zones.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(404, "pullzone.not_found", "The pull zone was not found."),
    }
}

fn with_zone(st: &Shared, id: u64, f: impl FnOnce(&mut PullZone) -> Response) -> Response {
    match st.lock().unwrap().pull_zones.get_mut(&id) {
        Some(zone) => f(zone),
        None => error(404, "pullzone.not_found", "The pull zone was not found."),
    }
}

async fn add_hostname(
    State(st): State<Shared>,
    Path(id): Path<u64>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let req = [("Hostname", is_str as fn(&Value) -> bool)];
    let path = format!("/pullzone/{id}/addHostname");
    let body = match admit(&st, "add_hostname", Method::POST, path, &h, &body, &req) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let host = body["Hostname"].as_str().unwrap().to_owned();
    with_zone(&st, id, |zone| {
        if zone.hostnames.contains_key(&host) {
            return error(
                400,
                "pullzone.hostname_taken",
                "The hostname is already registered.",
            );
        }
        zone.hostnames.insert(host, (false, false));
        StatusCode::NO_CONTENT.into_response()
    })
}

async fn remove_hostname(
    State(st): State<Shared>,
    Path(id): Path<u64>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let req = [("Hostname", is_str as fn(&Value) -> bool)];
    let path = format!("/pullzone/{id}/removeHostname");
    let body = match admit(
        &st,
        "remove_hostname",
        Method::DELETE,
        path,
        &h,
        &body,
        &req,
    ) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let host = body["Hostname"].as_str().unwrap().to_owned();
    with_zone(&st, id, |zone| match zone.hostnames.remove(&host) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(
            404,
            "pullzone.hostname_not_found",
            "The hostname was not found.",
        ),
    })
}

async fn load_certificate(
    State(st): State<Shared>,
    RawQuery(q): RawQuery,
    h: HeaderMap,
) -> Response {
    let query = q.unwrap_or_default();
    let path = format!("/pullzone/loadFreeCertificate?{query}");
    if let Err(r) = admit(
        &st,
        "load_certificate",
        Method::GET,
        path,
        &h,
        &Bytes::new(),
        &[],
    ) {
        return *r;
    }
    let Some(host) = query.strip_prefix("hostname=").map(str::to_owned) else {
        return error(400, "validation", "The hostname parameter is missing.");
    };
    let mut s = st.lock().unwrap();
    let zone = s
        .pull_zones
        .values_mut()
        .find(|z| z.hostnames.contains_key(&host));
    match zone {
        Some(zone) => {
            zone.hostnames.get_mut(&host).unwrap().0 = true;
            StatusCode::OK.into_response()
        }
        None => error(
            400,
            "pullzone.hostname_not_found",
            "No pull zone has this hostname.",
        ),
    }
}

async fn set_force_ssl(
    State(st): State<Shared>,
    Path(id): Path<u64>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let on = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["ForceSSL"].as_bool())
        .unwrap_or(false);
    let step = if on { "force_ssl_on" } else { "force_ssl_off" };
    let req = [
        ("Hostname", is_str as fn(&Value) -> bool),
        ("ForceSSL", is_bool),
    ];
    let path = format!("/pullzone/{id}/setForceSSL");
    let body = match admit(&st, step, Method::POST, path, &h, &body, &req) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let host = body["Hostname"].as_str().unwrap().to_owned();
    with_zone(&st, id, |zone| match zone.hostnames.get_mut(&host) {
        Some(entry) => {
            entry.1 = on;
            StatusCode::NO_CONTENT.into_response()
        }
        None => error(
            400,
            "pullzone.hostname_not_found",
            "The hostname was not found.",
        ),
    })
}

async fn purge(State(st): State<Shared>, Path(id): Path<u64>, h: HeaderMap) -> Response {
    let path = format!("/pullzone/{id}/purgeCache");
    if let Err(r) = admit(&st, "purge", Method::POST, path, &h, &Bytes::new(), &[]) {
        return *r;
    }
    with_zone(&st, id, |zone| {
        zone.purges += 1;
        StatusCode::NO_CONTENT.into_response()
    })
}

async fn unknown(State(st): State<Shared>, method: Method, uri: axum::http::Uri) -> Response {
    st.lock().unwrap().calls.push(Call {
        step: "unknown".into(),
        method,
        path: uri.to_string(),
        body: Value::Null,
        status: 404,
    });
    error(404, "not_found", "No such endpoint.")
}
