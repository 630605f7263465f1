//! A stand-in for bunny.net (out of reach here): the few admin API calls
//! `api` makes for a site, and the Edge Storage API that `git` uploads to.
//!
//! It checks what docs.bunny.net documents: the account key on admin calls,
//! the zone password in `AccessKey` on storage calls, `{zone}/{path}` URLs,
//! directory listings asked for with a trailing slash, and an upper-case
//! hex SHA-256 `Checksum` on uploads that matches the body. Whatever it
//! refuses is kept in `problems`, which a test asserts empty.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The bunny.net account key given to `api`.
pub const KEY: &str = "fake-bunny-account-key-for-git-tests";

#[derive(Default)]
struct Fake {
    next_id: i64,
    /// Storage zone id → (name, password).
    zones: HashMap<i64, (String, String)>,
    /// `zone/path` → contents.
    files: BTreeMap<String, Vec<u8>>,
    /// Storage calls as `METHOD /zone/path`, in order.
    calls: Vec<String>,
    problems: Vec<String>,
    purges: u64,
    /// Paths under the zone whose next uploads answer 500, and how many.
    failing: HashMap<String, u32>,
}

type Shared = Arc<Mutex<Fake>>;

/// A running fake; it stops with the test's runtime.
pub struct FakeBunny {
    pub url: String,
    state: Shared,
}

impl FakeBunny {
    pub async fn start() -> Self {
        let state = Shared::default();
        let app = Router::new()
            .route("/storagezone", post(add_storage_zone))
            .route("/storagezone/{id}", get(get_storage_zone))
            .route("/pullzone", post(add_pull_zone))
            .route("/pullzone/{id}/purgeCache", post(purge))
            .fallback(storage)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Stored files of every zone, path under the zone → contents.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let fake = self.state.lock().unwrap();
        fake.files
            .iter()
            .map(|(k, v)| (k.split_once('/').unwrap().1.to_owned(), v.clone()))
            .collect()
    }

    /// Storage calls since the last `take_calls`, as `METHOD path`.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.lock().unwrap().problems.clone()
    }

    /// Makes every upload of `key` fail with 500, as a broken storage would.
    pub fn fail_put(&self, key: &str) {
        self.fail_put_times(key, u32::MAX);
    }

    /// Makes the next `times` uploads of `key` fail with 500.
    pub fn fail_put_times(&self, key: &str, times: u32) {
        self.state
            .lock()
            .unwrap()
            .failing
            .insert(key.to_owned(), times);
    }

    pub fn heal(&self) {
        self.state.lock().unwrap().failing.clear();
    }

    pub fn purges(&self) -> u64 {
        self.state.lock().unwrap().purges
    }
}

fn refuse(state: &Shared, status: StatusCode, problem: String) -> Response {
    state.lock().unwrap().problems.push(problem.clone());
    (
        status,
        Json(json!({"ErrorKey": "fake", "Field": "", "Message": problem})),
    )
        .into_response()
}

/// The refusal of an admin call without the account key, if it lacks it.
fn admin_refusal(state: &Shared, headers: &HeaderMap, what: &str) -> Option<Response> {
    if headers.get("AccessKey").and_then(|v| v.to_str().ok()) == Some(KEY) {
        return None;
    }
    let problem = format!("{what}: bad account AccessKey");
    Some(refuse(state, StatusCode::UNAUTHORIZED, problem))
}

async fn add_storage_zone(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = admin_refusal(&st, &headers, "add storage zone") {
        return refused;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(name) = body["Name"].as_str() else {
        return refuse(
            &st,
            StatusCode::BAD_REQUEST,
            "add storage zone: no `Name`".into(),
        );
    };
    let mut fake = st.lock().unwrap();
    fake.next_id += 1;
    let id = fake.next_id;
    let password = format!("zone-password-{id}-{name}");
    fake.zones.insert(id, (name.to_owned(), password.clone()));
    let answer = json!({"Id": id, "Name": name, "Password": password});
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn get_storage_zone(
    State(st): State<Shared>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = admin_refusal(&st, &headers, "get storage zone") {
        return refused;
    }
    let zone = st.lock().unwrap().zones.get(&id).cloned();
    match zone {
        Some((name, password)) => {
            Json(json!({"Id": id, "Name": name, "Password": password})).into_response()
        }
        None => refuse(&st, StatusCode::NOT_FOUND, format!("no storage zone {id}")),
    }
}

async fn add_pull_zone(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = admin_refusal(&st, &headers, "add pull zone") {
        return refused;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let name = body["Name"].as_str().unwrap_or("unnamed").to_owned();
    let id = 7000 + st.lock().unwrap().next_id;
    let hostnames = json!([{"Value": format!("{name}.b-cdn.net")}]);
    Json(json!({"Id": id, "Name": name, "Hostnames": hostnames})).into_response()
}

async fn purge(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refused) = admin_refusal(&st, &headers, "purge") {
        return refused;
    }
    st.lock().unwrap().purges += 1;
    StatusCode::NO_CONTENT.into_response()
}

/// Decodes `%XX` escapes of a URL path.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The Edge Storage API: `/{zone}/{path}`.
async fn storage(
    State(st): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = percent_decode(uri.path());
    st.lock().unwrap().calls.push(format!("{method} {path}"));
    let Some((zone, key)) = path.trim_start_matches('/').split_once('/') else {
        let problem = format!("{method} {path}: no zone in path");
        return refuse(&st, StatusCode::NOT_FOUND, problem);
    };
    let password = st
        .lock()
        .unwrap()
        .zones
        .values()
        .find(|z| z.0 == zone)
        .map(|z| z.1.clone());
    let Some(password) = password else {
        return refuse(
            &st,
            StatusCode::NOT_FOUND,
            format!("{method} {path}: unknown zone"),
        );
    };
    if headers.get("AccessKey").and_then(|v| v.to_str().ok()) != Some(password.as_str()) {
        return refuse(
            &st,
            StatusCode::UNAUTHORIZED,
            format!("{method} {path}: bad AccessKey"),
        );
    }
    if key.split('/').any(|s| s == ".." || s == "." || s == ".git") {
        return refuse(
            &st,
            StatusCode::BAD_REQUEST,
            format!("{method} {path}: unsafe path"),
        );
    }
    let full = format!("{zone}/{key}");
    match method {
        Method::GET if key.is_empty() || key.ends_with('/') => list(&st, zone, &full),
        Method::PUT if !key.is_empty() && !key.ends_with('/') => put(&st, full, &headers, body),
        Method::DELETE => match st.lock().unwrap().files.remove(&full) {
            Some(_) => StatusCode::OK.into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        _ => refuse(
            &st,
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} {path}: unexpected"),
        ),
    }
}

fn put(st: &Shared, full: String, headers: &HeaderMap, body: Bytes) -> Response {
    let checksum = headers
        .get("Checksum")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let actual = hex::encode_upper(Sha256::digest(&body));
    if checksum != actual {
        let problem = format!("PUT {full}: Checksum {checksum:?}, body hashes to {actual}");
        return refuse(st, StatusCode::BAD_REQUEST, problem);
    }
    let mut fake = st.lock().unwrap();
    let key = full.split_once('/').map_or("", |(_, key)| key).to_owned();
    if let Some(left) = fake.failing.get_mut(&key).filter(|left| **left > 0) {
        *left -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response();
    }
    fake.files.insert(full, body.to_vec());
    (
        StatusCode::CREATED,
        Json(json!({"HttpCode": 201, "Message": "File uploaded."})),
    )
        .into_response()
}

/// Lists the direct children of directory `dir` (`zone/` or `zone/a/b/`).
fn list(st: &Shared, zone: &str, dir: &str) -> Response {
    let fake = st.lock().unwrap();
    let mut entries: BTreeMap<String, Value> = BTreeMap::new();
    for (path, contents) in fake.files.range(dir.to_owned()..) {
        let Some(rest) = path.strip_prefix(dir) else {
            break;
        };
        let (name, is_dir) = match rest.split_once('/') {
            Some((name, _)) => (name, true),
            None => (rest, false),
        };
        let checksum = (!is_dir).then(|| hex::encode_upper(Sha256::digest(contents)));
        let length = if is_dir { 0 } else { contents.len() };
        entries.entry(name.to_owned()).or_insert_with(|| {
            json!({
                "Guid": "00000000-0000-0000-0000-000000000000",
                "StorageZoneName": zone,
                "Path": format!("/{dir}"),
                "ObjectName": name,
                "Length": length,
                "LastChanged": "2026-01-01T00:00:00.000",
                "IsDirectory": is_dir,
                "ServerId": 1,
                "UserId": "fake",
                "DateCreated": "2026-01-01T00:00:00.000",
                "StorageZoneId": 1,
                "Checksum": checksum,
                "ReplicatedZones": null,
            })
        });
    }
    Json(Value::Array(entries.into_values().collect())).into_response()
}
