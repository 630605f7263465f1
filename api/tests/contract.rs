//! The api–git contract and the site lifecycle, on SQLite and PostgreSQL,
//! with the local CDN provider.

mod common;

use common::{Api, Backend, PASSWORD, claims};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn deploy_body(commit: &str, outcome: &str) -> Value {
    json!({"commit": commit, "files_uploaded": 3, "files_deleted": 1, "files_kept": 7,
        "bytes_uploaded": 4096, "duration_ms": 250, "outcome": outcome, "message": "pushed"})
}

async fn accounts_and_sessions(backend: Backend, test: &str) {
    let api = Api::start(backend, test).await;
    api.sign_up("Ann@Example.com").await;

    // Signing up again answers exactly as the first time: no probing.
    let again = api
        .post(
            "/v1/accounts",
            None,
            json!({"email": "ann@example.com",
        "password": "another password"}),
        )
        .await;
    let fresh = api
        .post(
            "/v1/accounts",
            None,
            json!({"email": "new@example.com",
        "password": "another password"}),
        )
        .await;
    assert_eq!(again.0, fresh.0);
    assert_eq!(again.1["message"], fresh.1["message"]);

    let token = api.sign_in("ann@example.com").await;
    let c = claims(&token);
    assert!(c.sites.is_empty() && !c.readonly);
    let (status, me) = api.get("/v1/me", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "ann@example.com");
    assert_eq!(me["id"].to_string(), c.sub);

    // Wrong password and unknown email: the same answer.
    let wrong = api
        .post(
            "/v1/sessions",
            None,
            json!({"email": "ann@example.com",
        "password": "wrong password"}),
        )
        .await;
    let unknown = api
        .post(
            "/v1/sessions",
            None,
            json!({"email": "nobody@example.com",
        "password": PASSWORD}),
        )
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong.1, json!({"error": "invalid credentials"}));

    // Bad input names the field.
    let short = api
        .post(
            "/v1/accounts",
            None,
            json!({"email": "b@example.com",
        "password": "short"}),
        )
        .await;
    assert_eq!(short.0, StatusCode::BAD_REQUEST);
    assert!(
        short.1["error"].as_str().unwrap().contains("`password`"),
        "{}",
        short.1
    );
    let bad_email = api
        .post(
            "/v1/accounts",
            None,
            json!({"email": "nope",
        "password": PASSWORD}),
        )
        .await;
    assert!(bad_email.1["error"].as_str().unwrap().contains("`email`"));
    assert!(!api.log().contains(PASSWORD), "a password reached the log");
}
on_both_backends!(accounts_and_sessions_work, accounts_and_sessions);

async fn site_lifecycle(backend: Backend, test: &str) {
    let api = Api::start(backend, test).await;
    let token = api.new_user("ann@example.com").await;

    let site = api.create_site(&token, "Blog").await;
    let keys: Vec<&str> = site
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "branch",
            "created_at",
            "hostnames",
            "id",
            "nickname",
            "publish_dir",
            "url"
        ]
    );
    assert_eq!(site["id"], 1000, "local site ids start at 1000");
    assert_eq!(
        (site["branch"].as_str(), site["publish_dir"].as_str()),
        (Some("main"), Some(""))
    );
    assert_eq!(site["url"], "http://127.0.0.1:8088/1000/");
    let created: jiff::Timestamp = site["created_at"].as_str().unwrap().parse().unwrap();
    assert!(
        jiff::Timestamp::now().duration_since(created).as_secs() < 60,
        "RFC 3339, now"
    );
    let dir = api.data_dir().join("sites/1000");
    assert!(dir.is_dir(), "the local provider made the site's directory");

    // A fresh session lists the site in its claims.
    let token = api.sign_in("ann@example.com").await;
    assert_eq!(claims(&token).sites, [1000]);

    let (status, storage) = api.get("/v1/sites/1000/storage", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        storage,
        json!({"provider": "local",
        "root": std::path::absolute(&dir).unwrap().to_str().unwrap()})
    );

    let patch = json!({"nickname": "My blog", "branch": "gh-pages", "publish_dir": "public/"});
    let (status, site) = api
        .call(Method::PATCH, "/v1/sites/1000", Some(&token), Some(patch))
        .await;
    assert_eq!(status, StatusCode::OK, "{site}");
    assert_eq!(
        (
            site["nickname"].as_str(),
            site["branch"].as_str(),
            site["publish_dir"].as_str()
        ),
        (Some("My blog"), Some("gh-pages"), Some("public"))
    );
    for (field, value) in [
        ("branch", "a..b"),
        ("publish_dir", "../etc"),
        ("nickname", ""),
    ] {
        let (status, answer) = api
            .call(
                Method::PATCH,
                "/v1/sites/1000",
                Some(&token),
                Some(json!({field: value})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{answer}"
        );
    }
    let (_, site) = api.get("/v1/sites/1000", &token).await;
    assert_eq!(
        site["branch"], "gh-pages",
        "refused changes changed nothing"
    );

    let (status, _) = api
        .post(
            "/v1/sites/1000/hostnames",
            Some(&token),
            json!({"hostname": "WWW.Example.COM."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, site) = api.get("/v1/sites/1000", &token).await;
    assert_eq!(site["hostnames"], json!(["www.example.com"]));
    let (status, answer) = api
        .post(
            "/v1/sites/1000/hostnames",
            Some(&token),
            json!({"hostname": "www.example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = api
        .post(
            "/v1/sites/1000/hostnames",
            Some(&token),
            json!({"hostname": "not a host"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"].as_str().unwrap().contains("`hostname`"));
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/sites/1000/hostnames/www.example.com",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, site) = api.get("/v1/sites/1000", &token).await;
    assert_eq!(site["hostnames"], json!([]));

    // Ids are never reused, even after a delete.
    let second = api.create_site(&token, "Docs").await;
    assert_eq!(second["id"], 1001);
    let (status, _) = api
        .call(Method::DELETE, "/v1/sites/1001", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        !api.data_dir().join("sites/1001").exists(),
        "deleted at the provider too"
    );
    let third = api.create_site(&token, "Shop").await;
    assert_eq!(third["id"], 1002);
    let (_, list) = api.get("/v1/sites", &token).await;
    let ids: Vec<i64> = list["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1000, 1002]);
}
on_both_backends!(site_lifecycle_works, site_lifecycle);

async fn deploys_and_tokens(backend: Backend, test: &str) {
    let api = Api::start(backend, test).await;
    let token = api.new_user("ann@example.com").await;
    api.create_site(&token, "Blog").await;
    api.create_site(&token, "Other").await;

    let first = "a".repeat(40);
    let second = "B".repeat(40);
    let (status, d1) = api
        .post(
            "/v1/sites/1000/deploys",
            Some(&token),
            deploy_body(&first, "success"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d1}");
    assert_eq!(
        (
            d1["commit"].as_str(),
            d1["files_kept"].as_i64(),
            d1["cache_purged"].as_bool()
        ),
        (Some(first.as_str()), Some(7), Some(true))
    );
    let (_, d2) = api
        .post(
            "/v1/sites/1000/deploys",
            Some(&token),
            deploy_body(&second, "failed"),
        )
        .await;
    assert_eq!(d2["cache_purged"], false, "failed deploys do not purge");
    let (status, list) = api.get("/v1/sites/1000/deploys", &token).await;
    assert_eq!(status, StatusCode::OK);
    let commits: Vec<&str> = list["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["commit"].as_str().unwrap())
        .collect();
    assert_eq!(
        commits,
        [second.to_lowercase(), first.clone()],
        "newest first"
    );
    for (field, body) in [
        ("commit", deploy_body("abc", "success")),
        ("outcome", deploy_body(&first, "maybe")),
    ] {
        let (status, answer) = api.post("/v1/sites/1000/deploys", Some(&token), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains(&format!("`{field}`")),
            "{answer}"
        );
    }

    // A deploy token: shown once, listed without its secret, usable by git.
    let (status, made) = api
        .post("/v1/sites/1000/tokens", Some(&token), json!({"name": "ci"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = made["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ecs_dt_") && secret.len() > 40);
    let (_, listed) = api.get("/v1/sites/1000/tokens", &token).await;
    assert_eq!(listed["tokens"][0]["name"], "ci");
    assert!(
        !listed.to_string().contains(&secret[7..]),
        "listing shows no secret"
    );

    let (status, session) = api
        .post("/v1/sessions", None, json!({"deploy_token": secret}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let git = session["access_token"].as_str().unwrap().to_owned();
    let c = claims(&git);
    assert_eq!((c.sites.as_slice(), c.readonly), (&[1000u64][..], false));
    assert_eq!(c.sub, claims(&token).sub, "sub is the owner");
    assert_eq!(api.get("/v1/sites/1000", &git).await.0, StatusCode::OK);
    assert_eq!(
        api.get("/v1/sites/1000/storage", &git).await.0,
        StatusCode::OK
    );
    let (status, _) = api
        .post(
            "/v1/sites/1000/deploys",
            Some(&git),
            deploy_body(&first, "success"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Only that site, and only publishing.
    assert_eq!(
        api.get("/v1/sites/1001", &git).await.0,
        StatusCode::FORBIDDEN
    );
    let patch = api
        .call(
            Method::PATCH,
            "/v1/sites/1000",
            Some(&git),
            Some(json!({"nickname": "x"})),
        )
        .await;
    assert_eq!(patch.0, StatusCode::FORBIDDEN);
    assert_eq!(
        api.post("/v1/sites/1000/tokens", Some(&git), json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (_, listed) = api.get("/v1/sites/1000/tokens", &token).await;
    assert!(listed["tokens"][0]["last_used_at"].is_string());

    // Revoking takes effect at once, for the token and its sessions.
    let id = made["id"].as_i64().unwrap();
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/sites/1000/tokens/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get("/v1/sites/1000", &git).await.0,
        StatusCode::UNAUTHORIZED
    );
    let again = api
        .post("/v1/sessions", None, json!({"deploy_token": secret}))
        .await;
    assert_eq!(
        again,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid credentials"})
        )
    );
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/sites/1000/tokens/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        !api.log().contains(&secret[7..]),
        "a deploy token reached the log"
    );
}
on_both_backends!(deploys_and_tokens_work, deploys_and_tokens);

async fn probes_and_openapi(backend: Backend, test: &str) {
    let api = Api::start(backend, test).await;
    assert_eq!(api.raw_get("/healthz").await.0, StatusCode::OK);
    assert_eq!(
        api.raw_get("/readyz").await,
        (StatusCode::OK, "ready\n".to_owned())
    );
    let (_, metrics) = api.raw_get("/metrics").await;
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/readyz",status="200"}"#),
        "{metrics}"
    );

    let (status, doc) = api.raw_get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/v1/accounts", "post"),
        ("/v1/sessions", "post"),
        ("/v1/me", "get"),
        ("/v1/sites", "get"),
        ("/v1/sites", "post"),
        ("/v1/sites/{site}", "get"),
        ("/v1/sites/{site}", "patch"),
        ("/v1/sites/{site}", "delete"),
        ("/v1/sites/{site}/storage", "get"),
        ("/v1/sites/{site}/deploys", "get"),
        ("/v1/sites/{site}/deploys", "post"),
        ("/v1/sites/{site}/tokens", "get"),
        ("/v1/sites/{site}/tokens", "post"),
        ("/v1/sites/{site}/tokens/{token}", "delete"),
        ("/v1/sites/{site}/hostnames", "get"),
        ("/v1/sites/{site}/hostnames", "post"),
        ("/v1/sites/{site}/hostnames/{hostname}", "delete"),
        ("/openapi.json", "get"),
        ("/metrics", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path}"
        );
    }
    let described: usize = paths
        .values()
        .map(|p| {
            p.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .count()
        })
        .sum();
    assert_eq!(
        described,
        expected.len(),
        "no undocumented or stale entries"
    );

    let (status, answer) = api.call(Method::GET, "/v1/nothing", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(answer["error"].is_string());
}
on_both_backends!(probes_and_openapi_answer, probes_and_openapi);

#[tokio::test]
async fn refuses_to_start_without_a_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecstatic-api"))
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`ECSTATIC_JWT_SECRET` is not set"),
        "{stderr}"
    );
}

#[tokio::test]
async fn stops_cleanly_on_sigterm() {
    let mut api = Api::start(Backend::Sqlite, "sigterm").await;
    api.new_user("ann@example.com").await;
    let status = api.terminate();
    assert!(status.success(), "{status:?}; log:\n{}", api.log());
    assert!(api.log().contains("SIGTERM"));
}

#[tokio::test]
async fn set_readonly_names_an_unknown_account() {
    let api = Api::start(Backend::Sqlite, "admin_unknown").await;
    let out = api.admin(&["accounts", "set-readonly", "nobody@example.com"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no account has the email `nobody@example.com`"),
        "{stderr}"
    );

    api.sign_up("ann@example.com").await;
    let out = api.admin(&["accounts", "set-readonly", "ann@example.com"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ann@example.com is now read-only\n"
    );
    let token = api.sign_in("ann@example.com").await;
    assert_eq!(
        api.post("/v1/sites", Some(&token), json!({"nickname": "x"}))
            .await
            .0,
        403
    );
    let out = api.admin(&["accounts", "set-readonly", "--off", "ann@example.com"]);
    assert!(out.status.success());
    // Tokens issued while read-only stay read-only; a new session may write.
    assert_eq!(
        api.post("/v1/sites", Some(&token), json!({"nickname": "x"}))
            .await
            .0,
        403
    );
    let token = api.sign_in("ann@example.com").await;
    assert_eq!(
        api.post("/v1/sites", Some(&token), json!({"nickname": "x"}))
            .await
            .0,
        201
    );
}
