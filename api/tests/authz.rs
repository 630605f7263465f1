//! Who may do what: every endpoint against the owner, another user, a
//! read-only account, no token, an expired token, a token signed with another
//! key and an unsigned (`alg: none`) token. Also the sign-in rate limits.

mod common;

use common::{Api, Backend, PASSWORD, claims, expired_token, foreign_token, unsigned_token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// One account's site and the things on it that endpoints refer to.
struct Ctx {
    token: String,
    site: i64,
    token_id: i64,
    hostname: String,
}

/// An endpoint, with the statuses expected from its owner and from a
/// read-only owner.
struct Case {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    owner: u16,
    readonly: u16,
    /// Whether the endpoint is under `/v1/sites/{site}` (others answer 403).
    site_scoped: bool,
}

fn case(method: Method, path: &'static str, body: Option<Value>, owner: u16, ro: u16) -> Case {
    let site_scoped = path.contains("{site}");
    Case {
        method,
        path,
        body,
        owner,
        readonly: ro,
        site_scoped,
    }
}

fn cases() -> Vec<Case> {
    let deploy = json!({"commit": "c".repeat(40), "files_uploaded": 1, "files_deleted": 0,
        "files_kept": 0, "bytes_uploaded": 1, "duration_ms": 1, "outcome": "success"});
    vec![
        case(Method::GET, "/v1/me", None, 200, 200),
        case(Method::GET, "/v1/sites", None, 200, 200),
        case(
            Method::POST,
            "/v1/sites",
            Some(json!({"nickname": "n"})),
            201,
            403,
        ),
        case(Method::GET, "/v1/sites/{site}", None, 200, 200),
        case(
            Method::PATCH,
            "/v1/sites/{site}",
            Some(json!({"nickname": "renamed"})),
            200,
            403,
        ),
        case(Method::GET, "/v1/sites/{site}/storage", None, 200, 403),
        case(Method::GET, "/v1/sites/{site}/deploys", None, 200, 200),
        case(
            Method::POST,
            "/v1/sites/{site}/deploys",
            Some(deploy),
            201,
            403,
        ),
        case(Method::GET, "/v1/sites/{site}/tokens", None, 200, 200),
        case(
            Method::POST,
            "/v1/sites/{site}/tokens",
            Some(json!({"name": "x"})),
            201,
            403,
        ),
        case(
            Method::DELETE,
            "/v1/sites/{site}/tokens/{token}",
            None,
            204,
            403,
        ),
        case(Method::GET, "/v1/sites/{site}/hostnames", None, 200, 200),
        case(
            Method::POST,
            "/v1/sites/{site}/hostnames",
            Some(json!({"hostname": "new.example.org"})),
            201,
            403,
        ),
        case(
            Method::DELETE,
            "/v1/sites/{site}/hostnames/{hostname}",
            None,
            204,
            403,
        ),
        case(Method::DELETE, "/v1/sites/{site}", None, 204, 403),
    ]
}

fn path(case: &Case, ctx: &Ctx) -> String {
    case.path
        .replace("{site}", &ctx.site.to_string())
        .replace("{token}", &ctx.token_id.to_string())
        .replace("{hostname}", &ctx.hostname)
}

/// Signs up, makes a site with a deploy token and a hostname.
async fn prepare(api: &Api, email: &str, hostname: &str) -> Ctx {
    let token = api.new_user(email).await;
    let site = api.create_site(&token, "site").await["id"]
        .as_i64()
        .unwrap();
    let (_, made) = api
        .post(&format!("/v1/sites/{site}/tokens"), Some(&token), json!({}))
        .await;
    let (status, _) = api
        .post(
            &format!("/v1/sites/{site}/hostnames"),
            Some(&token),
            json!({"hostname": hostname}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    Ctx {
        token,
        site,
        token_id: made["id"].as_i64().unwrap(),
        hostname: hostname.into(),
    }
}

/// What the refused calls must not have changed on the owner's site.
async fn snapshot(api: &Api, owner: &Ctx) -> (Value, Value, Value) {
    let site = format!("/v1/sites/{}", owner.site);
    (
        api.get(&site, &owner.token).await.1,
        api.get(&format!("{site}/tokens"), &owner.token).await.1,
        api.get(&format!("{site}/deploys"), &owner.token).await.1,
    )
}

async fn matrix(backend: Backend, test: &str) {
    let api = Api::start(backend, test).await;
    let owner = prepare(&api, "owner@example.com", "owner.example.com").await;
    let other = prepare(&api, "other@example.com", "other.example.com").await;
    let mut ro = prepare(&api, "ro@example.com", "ro.example.com").await;
    let out = api.admin(&["accounts", "set-readonly", "RO@example.com"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The change applies at once, even to tokens issued before it.
    let stale = ro.token.clone();
    ro.token = api.sign_in("ro@example.com").await;
    assert!(claims(&ro.token).readonly);

    let sub = claims(&owner.token).sub;
    let site = u64::try_from(owner.site).unwrap();
    let bad_tokens = [
        ("no token", None),
        ("expired", Some(expired_token(&sub, vec![site]))),
        ("other key", Some(foreign_token(&sub, vec![site]))),
        ("alg none", Some(unsigned_token(&sub, vec![site]))),
        ("garbage", Some("not.a.token".to_owned())),
    ];
    let before = snapshot(&api, &owner).await;

    for case in cases() {
        let what = format!("{} {}", case.method, case.path);
        for (name, token) in &bad_tokens {
            let (status, body) = api
                .call(
                    case.method.clone(),
                    &path(&case, &owner),
                    token.as_deref(),
                    case.body.clone(),
                )
                .await;
            assert_eq!(status, 401, "{what} with {name}: {body}");
            assert!(body["error"].is_string());
        }

        if case.site_scoped {
            let (status, body) = api
                .call(
                    case.method.clone(),
                    &path(&case, &owner),
                    Some(&other.token),
                    case.body.clone(),
                )
                .await;
            assert_eq!(status, 403, "{what} by another user: {body}");
            // Missing sites answer exactly like foreign ones.
            let missing = path(
                &case,
                &Ctx {
                    site: 999_999,
                    ..clone_ctx(&owner)
                },
            );
            let (status2, body2) = api
                .call(
                    case.method.clone(),
                    &missing,
                    Some(&other.token),
                    case.body.clone(),
                )
                .await;
            assert_eq!((status2, body2), (status, body), "{what} on a missing site");
        }

        for token in [&ro.token, &stale] {
            let (status, body) = api
                .call(
                    case.method.clone(),
                    &path(&case, &ro),
                    Some(token),
                    case.body.clone(),
                )
                .await;
            assert_eq!(
                status, case.readonly,
                "{what} by a read-only account: {body}"
            );
        }
    }
    assert_eq!(
        snapshot(&api, &owner).await,
        before,
        "refused calls changed nothing"
    );

    for case in cases() {
        let what = format!("{} {}", case.method, case.path);
        let (status, body) = api
            .call(
                case.method.clone(),
                &path(&case, &owner),
                Some(&owner.token),
                case.body.clone(),
            )
            .await;
        assert_eq!(status, case.owner, "{what} by its owner: {body}");
    }
}

fn clone_ctx(ctx: &Ctx) -> Ctx {
    Ctx {
        token: ctx.token.clone(),
        site: ctx.site,
        token_id: ctx.token_id,
        hostname: ctx.hostname.clone(),
    }
}

on_both_backends!(authorization_matrix_holds, matrix);

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account() {
    let args = [
        "--login-max-failures-per-account",
        "3",
        "--login-max-failures-per-address",
        "100",
    ];
    let api = Api::start_with(Backend::Sqlite, "limit_account", &args, &[]).await;
    api.sign_up("ann@example.com").await;
    let wrong = json!({"email": "ann@example.com", "password": "wrong password"});
    let unknown = json!({"email": "nobody@example.com", "password": "wrong password"});
    for _ in 0..3 {
        assert_eq!(api.post("/v1/sessions", None, wrong.clone()).await.0, 401);
        assert_eq!(api.post("/v1/sessions", None, unknown.clone()).await.0, 401);
    }
    // Locked now, even with the right password; unknown emails look the same.
    let right = json!({"email": "ann@example.com", "password": PASSWORD});
    let (status, body) = api.post("/v1/sessions", None, right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        api.post("/v1/sessions", None, unknown).await,
        (status, body)
    );
    // Other accounts are unaffected.
    api.sign_up("bob@example.com").await;
    api.sign_in("bob@example.com").await;

    let (_, metrics) = api.raw_get("/metrics").await;
    for line in [
        r#"api_sign_ins_total{credential="password",outcome="invalid"} 6"#,
        r#"api_sign_ins_total{credential="password",outcome="limited"} 2"#,
        r#"api_sign_ins_total{credential="password",outcome="ok"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_address() {
    let args = [
        "--login-max-failures-per-account",
        "100",
        "--login-max-failures-per-address",
        "4",
    ];
    let api = Api::start_with(Backend::Sqlite, "limit_address", &args, &[]).await;
    api.sign_up("ann@example.com").await;
    for i in 0..4 {
        let body = json!({"email": format!("user{i}@example.com"), "password": "wrong pass"});
        assert_eq!(api.post("/v1/sessions", None, body).await.0, 401);
    }
    let right = json!({"email": "ann@example.com", "password": PASSWORD});
    assert_eq!(api.post("/v1/sessions", None, right).await.0, 429);
    let token = json!({"deploy_token": "ecs_dt_guess"});
    assert_eq!(api.post("/v1/sessions", None, token).await.0, 429);
}

#[tokio::test]
async fn behind_a_proxy_the_forwarded_address_is_limited() {
    let args = [
        "--login-max-failures-per-address",
        "2",
        "--client-ip-header",
        "X-Forwarded-For",
    ];
    let api = Api::start_with(Backend::Sqlite, "limit_forwarded", &args, &[]).await;
    api.sign_up("ann@example.com").await;
    let wrong = |i: u32| json!({"email": format!("u{i}@example.com"), "password": "wrong pass"});
    let right = json!({"email": "ann@example.com", "password": PASSWORD});

    // The proxy appends the address it saw; what the client claimed comes first.
    for i in 0..2 {
        assert_eq!(
            api.sign_in_from(wrong(i), &format!("10.0.0.{i}, 192.0.2.7"))
                .await,
            401
        );
    }
    assert_eq!(
        api.sign_in_from(right.clone(), "10.9.9.9, 192.0.2.7").await,
        429
    );
    assert_eq!(
        api.sign_in_from(right, "192.0.2.8").await,
        200,
        "other clients go on"
    );
}

#[tokio::test]
async fn without_a_proxy_forwarded_headers_are_ignored() {
    let args = ["--login-max-failures-per-address", "2"];
    let api = Api::start_with(Backend::Sqlite, "limit_unforwarded", &args, &[]).await;
    let wrong = |i: u32| json!({"email": format!("u{i}@example.com"), "password": "wrong pass"});
    for i in 0..2 {
        assert_eq!(
            api.sign_in_from(wrong(i), &format!("198.51.100.{i}")).await,
            401
        );
    }
    assert_eq!(api.sign_in_from(wrong(9), "198.51.100.99").await, 429);
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let args = ["--signups-per-address", "2"];
    let api = Api::start_with(Backend::Sqlite, "limit_signups", &args, &[]).await;
    api.sign_up("a@example.com").await;
    api.sign_up("b@example.com").await;
    let body = json!({"email": "c@example.com", "password": PASSWORD});
    let (status, answer) = api.post("/v1/accounts", None, body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("sign-ups"));
}
