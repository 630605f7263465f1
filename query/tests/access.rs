//! Who may ask what: the 401/403 matrix, hostile parameters, start-up
//! refusals, CORS, timeouts, the probes and the OpenAPI document.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use ecstatic_auth::{Claims, JwtKey, now_secs};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn summary_url(server: &Server, site: &str) -> String {
    server.url(&format!("/v1/sites/{site}/summary"))
}

/// URL-safe base64 without padding, for hand-made tokens.
fn b64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn tokens_are_checked_and_sites_are_not_revealed() {
    let db = "query_access_tokens_and_sites";
    seed(db, &dataset()).await;
    let server = Server::start(db, &[]).await;
    let key = JwtKey::new(SECRET.as_bytes()).unwrap();
    let claims = |exp: u64, sites: &[u64]| Claims {
        sub: "9".into(),
        exp,
        sites: sites.to_vec(),
        readonly: false,
    };
    let other_key = JwtKey::new(b"another key that is also long enough").unwrap();
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64(serde_json::to_string(&claims(now_secs() + 60, &[SITE]))
        .unwrap()
        .as_bytes());
    let unsigned = format!("{header}.{body}.");

    let unauthorized: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".to_owned())),
        ("garbage", Some("Bearer not.a.token".to_owned())),
        (
            "other key",
            Some(format!(
                "Bearer {}",
                other_key.sign(&claims(now_secs() + 60, &[SITE]))
            )),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                key.sign(&claims(now_secs() - 5, &[SITE]))
            )),
        ),
        ("alg none", Some(format!("Bearer {unsigned}"))),
    ];
    for (case, authorization) in unauthorized {
        let mut request = server.http.get(summary_url(&server, &SITE.to_string()));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("token"),
            "{case}: {body}"
        );
    }

    // A site the token does not name, whether it has data or not at all.
    let token = key.sign(&claims(now_secs() + 60, &[EMPTY_SITE]));
    let mut answers = Vec::new();
    for site in [SITE, 987_654_321] {
        let response = server
            .http
            .get(summary_url(&server, &site.to_string()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        answers.push((response.status(), response.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 403);
    assert_eq!(
        answers[0], answers[1],
        "403 differs between a real and a missing site"
    );

    let allowed = server
        .http
        .get(summary_url(&server, &EMPTY_SITE.to_string()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
}

#[tokio::test]
async fn hostile_values_in_every_parameter_are_refused() {
    let db = "query_access_hostile_values";
    let rows = dataset();
    seed(db, &rows).await;
    let server = Server::start(db, &[]).await;

    let site_cases = [
        "101 OR 1=1",
        "101;DROP TABLE access_log",
        "-1",
        "1e3",
        "0x65",
    ];
    for site in site_cases {
        let response = server.get(&format!("/v1/sites/{site}/summary"), &[]).await;
        assert_eq!(response.status(), 400, "site {site}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["parameter"], "site", "site {site}");
    }

    let base = [("metric", "requests"), ("dimension", "path")];
    let hostile: &[(&str, &str)] = &[
        ("from", "2024-01-01' OR '1'='1"),
        ("to", "now()"),
        ("tz", "UTC') --"),
        ("tz", "../../../../etc/passwd"),
        ("bots", "exclude OR 1=1"),
        ("path", "/x' OR 1=1 --"),
        ("path", "/x\\' OR 1=1"),
        ("path", "/a*/b"),
        ("country", "DE' OR '1'='1"),
        ("status_class", "4xx' UNION SELECT 1 --"),
        ("file_type", "page') OR ('1'='1"),
        ("metric", "count()) FROM system.tables --"),
        ("interval", "hour, 1"),
        ("dimension", "path, (SELECT name FROM system.tables)"),
        ("dimension", "visitor"),
        ("limit", "10; DROP TABLE access_log"),
        ("limit", "0"),
        ("offset", "0 UNION ALL SELECT 1"),
        ("1=1--", "x"),
    ];
    for (name, value) in hostile {
        for endpoint in ["summary", "timeseries", "breakdown"] {
            let known = match endpoint {
                "summary" => &[][..],
                "timeseries" => &["metric", "interval"][..],
                _ => &["metric", "dimension", "limit", "offset"][..],
            };
            let mut query: Vec<(&str, &str)> = base
                .iter()
                .copied()
                .filter(|(n, _)| known.contains(n) && n != name)
                .collect();
            query.push((name, value));
            let response = server
                .get(&format!("/v1/sites/{SITE}/{endpoint}"), &query)
                .await;
            assert_eq!(response.status(), 400, "{endpoint} {name}={value}");
            let body: Value = response.json().await.unwrap();
            let message = body["error"].as_str().unwrap();
            assert!(message.contains(&format!("`{}`", body["parameter"].as_str().unwrap())));
            if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                assert_eq!(
                    body["parameter"], *name,
                    "{endpoint} {name}={value}: {body}"
                );
            }
        }
    }

    // Nothing was dropped or changed on the way.
    let all = [
        ("bots", "include"),
        ("from", "2024-01-01T00:00:00Z"),
        ("to", "2025-01-01T00:00:00Z"),
    ];
    let answer = server
        .json(&format!("/v1/sites/{SITE}/summary"), &all)
        .await;
    let seeded = rows.iter().filter(|r| r.site_id == SITE).count() as u64;
    assert_eq!(answer["current"]["requests"].as_u64(), Some(seeded));

    // A quote in a path is a value like any other.
    let quoted = [
        ("path", "/blog/it's"),
        ("from", "2024-01-01T00:00:00Z"),
        ("to", "2025-01-01T00:00:00Z"),
    ];
    let answer = server
        .json(&format!("/v1/sites/{SITE}/summary"), &quoted)
        .await;
    let want = rows
        .iter()
        .filter(|r| r.site_id == SITE && r.is_bot == 0 && r.path == "/blog/it's");
    assert_eq!(
        answer["current"]["requests"].as_u64(),
        Some(want.count() as u64)
    );
}

#[tokio::test]
async fn refuses_to_start_without_a_key_unless_told_to_be_insecure() {
    let db = "query_access_start_without_key";
    seed(db, &[]).await;
    let binary = env!("CARGO_BIN_EXE_ecstatic-query");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--clickhouse-url",
        &clickhouse_url(),
        "--database",
        db,
    ];
    let output = std::process::Command::new(binary)
        .args(args)
        .env_remove("ECSTATIC_JWT_SECRET")
        .env("ECSTATIC_LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ECSTATIC_JWT_SECRET"), "{stderr}");

    let short = std::process::Command::new(binary)
        .args(args)
        .env("ECSTATIC_JWT_SECRET", "hunter2")
        .output()
        .unwrap();
    assert!(!short.status.success());
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(
        stderr.contains("at least 32 bytes") && !stderr.contains("hunter2"),
        "{stderr}"
    );

    let server = Server::start(db, &["--insecure-no-auth"]).await;
    let response = server
        .http
        .get(summary_url(&server, "5"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "no-auth mode still asks for a token"
    );
}

#[tokio::test]
async fn cors_allows_only_the_configured_origin() {
    let db = "query_access_cors";
    seed(db, &[]).await;
    let server = Server::start(db, &["--cors-origin", "https://dash.example.com"]).await;
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, summary_url(&server, "1"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let good = preflight("https://dash.example.com").await.unwrap();
    assert_eq!(
        good.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    let bad = preflight("https://evil.example.com").await.unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());
}

/// A TCP proxy to ClickHouse that stops forwarding requests on demand, so
/// that a query hangs the way it does on an overloaded server.
async fn stalling_proxy(stalled: Arc<AtomicBool>) -> String {
    let upstream = clickhouse_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let stalled = stalled.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                    while stalled.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_slow_database_is_answered_with_503() {
    let db = "query_access_slow_database";
    seed(db, &[]).await;
    let stalled = Arc::new(AtomicBool::new(false));
    let proxy = stalling_proxy(stalled.clone()).await;
    let server = Server::start_on(&proxy, db, &["--request-timeout-secs", "1"]).await;

    assert_eq!(
        server
            .get(&format!("/v1/sites/{SITE}/summary"), &[])
            .await
            .status(),
        200
    );
    stalled.store(true, Ordering::SeqCst);
    let response = server.get(&format!("/v1/sites/{SITE}/summary"), &[]).await;
    stalled.store(false, Ordering::SeqCst);
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("longer than 1 s"),
        "{body}"
    );
}

#[tokio::test]
async fn openapi_describes_every_route_and_probes_answer() {
    let db = "query_access_openapi_and_probes";
    seed(db, &dataset()).await;
    let server = Server::start(db, &[]).await;

    let doc: Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routes = [
        ("/v1/sites/{site}/summary", "/v1/sites/101/summary"),
        (
            "/v1/sites/{site}/timeseries",
            "/v1/sites/101/timeseries?metric=requests",
        ),
        (
            "/v1/sites/{site}/breakdown",
            "/v1/sites/101/breakdown?metric=requests&dimension=os",
        ),
        ("/openapi.json", "/openapi.json"),
        ("/metrics", "/metrics"),
        ("/healthz", "/healthz"),
        ("/readyz", "/readyz"),
    ];
    for (template, concrete) in routes {
        assert!(
            doc["paths"][template]["get"].is_object(),
            "{template} missing from the document"
        );
        let response = server.get(concrete, &[]).await;
        assert_eq!(response.status(), 200, "{concrete}");
    }
    assert_eq!(
        doc["paths"].as_object().unwrap().len(),
        routes.len(),
        "undocumented extras"
    );

    let parameters = doc["components"]["parameters"].as_object().unwrap();
    let names = [
        "site",
        "from",
        "to",
        "tz",
        "bots",
        "path",
        "country",
        "status_class",
        "file_type",
        "metric",
        "interval",
        "dimension",
        "limit",
        "offset",
    ];
    for name in names {
        assert!(
            parameters.contains_key(name),
            "parameter {name} undocumented"
        );
    }
    let breakdown_refs =
        doc["paths"]["/v1/sites/{site}/breakdown"]["get"]["parameters"].to_string();
    for name in ["dimension", "limit", "offset", "metric", "tz"] {
        assert!(
            breakdown_refs.contains(&format!("/{name}\"")),
            "breakdown lacks {name}"
        );
    }
    let text = doc.to_string();
    assert!(
        text.contains("304") && text.contains("HIT"),
        "metric definitions missing"
    );

    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line =
        r#"http_requests_total{method="GET",route="/v1/sites/{site}/summary",status="200"} 1"#;
    assert!(metrics.contains(line), "{metrics}");
    assert!(metrics.contains(r#"query_clickhouse_duration_seconds_count{query="breakdown"} 1"#));
}

#[tokio::test]
async fn stops_cleanly_on_sigterm() {
    let db = "query_access_stops_on_sigterm";
    seed(db, &[]).await;
    let mut server = Server::start(db, &[]).await;
    assert_eq!(
        server
            .get(&format!("/v1/sites/{SITE}/summary"), &[])
            .await
            .status(),
        200
    );

    let status = server.terminate().await;
    assert!(status.success(), "exit after SIGTERM: {status}");
    let after = server.http.get(server.url("/healthz")).send().await;
    assert!(after.is_err(), "still answering after it exited");
}
