//! The bunny.net provider against a fake bunny.net: what it sends, and how it
//! rolls back when a later step fails.

mod common;

use common::fake_bunny::{FakeBunny, KEY};
use common::{Api, Backend};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn start(backend: Backend, test: &str, format: &str) -> (FakeBunny, Api) {
    let fake = FakeBunny::start().await;
    let key_file = std::env::temp_dir().join(format!("ecstatic-api-{test}.key"));
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let args = [
        "--cdn",
        "bunny",
        "--bunny-api-url",
        &fake.url,
        "--bunny-storage-url",
        "https://storage.example.net",
        "--bunny-api-key-file",
        key_file.to_str().unwrap(),
        "--bunny-region",
        "NY",
        "--log-forward-host",
        "logs.example.net",
        "--log-forward-port",
        "6514",
        "--log-forward-format",
        format,
    ];
    let api = Api::start_with(backend, test, &args, &[]).await;
    (fake, api)
}

async fn add_hostname(api: &Api, token: &str, site: i64, host: &str) -> (StatusCode, Value) {
    api.post(
        &format!("/v1/sites/{site}/hostnames"),
        Some(token),
        json!({"hostname": host}),
    )
    .await
}

async fn provisions_configures_and_deletes_a_site(backend: Backend, test: &str) {
    let (fake, api) = start(backend, test, "json").await;
    let token = api.new_user("ann@example.com").await;
    let site = api.create_site(&token, "Blog").await;

    let calls = fake.calls();
    assert_eq!(fake.steps(), ["create_storage_zone", "create_pull_zone"]);
    assert!(calls.iter().all(|c| c.status == 200), "{calls:?}");
    let zone = &calls[0].body;
    assert_eq!(zone["Region"], "NY");
    let name = zone["Name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("ecs-1000-"), "{name}");
    let pull = &calls[1].body;
    assert_eq!(
        (
            pull["LogForwardingHostname"].as_str(),
            pull["LogForwardingPort"].as_u64(),
            pull["LogForwardingFormat"].as_u64()
        ),
        (Some("logs.example.net"), Some(6514), Some(1))
    );
    let (zones, pulls) = fake.zone_ids();
    let pull_id = *pulls.iter().next().unwrap();
    assert_eq!(pull["StorageZoneId"].as_i64(), zones.iter().next().copied());
    assert_eq!(
        site["id"].as_u64(),
        Some(pull_id),
        "the site id is the pull-zone id"
    );
    assert_eq!(site["url"], format!("https://{name}.b-cdn.net/"));
    let id = pull_id as i64;

    let (status, storage) = api.get(&format!("/v1/sites/{id}/storage"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let zone_id = zones.iter().next().unwrap();
    assert_eq!(
        storage,
        json!({"provider": "bunny", "endpoint": "https://storage.example.net",
        "zone": name, "password": format!("storage-password-{zone_id}")})
    );

    fake.clear_calls();
    let (status, body) = add_hostname(&api, &token, id, "www.example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        fake.steps(),
        ["add_hostname", "load_certificate", "force_ssl_on"]
    );
    let calls = fake.calls();
    assert_eq!(calls[0].path, format!("/pullzone/{id}/addHostname"));
    assert_eq!(calls[0].body, json!({"Hostname": "www.example.com"}));
    assert_eq!(
        calls[1].path,
        "/pullzone/loadFreeCertificate?hostname=www.example.com"
    );
    assert_eq!(
        calls[2].body,
        json!({"Hostname": "www.example.com", "ForceSSL": true})
    );
    assert_eq!(fake.hostnames(pull_id)["www.example.com"], (true, true));
    assert_eq!(body["hostnames"], json!(["www.example.com"]));

    fake.clear_calls();
    let deploy = json!({"commit": "d".repeat(40), "files_uploaded": 1, "files_deleted": 0,
        "files_kept": 0, "bytes_uploaded": 10, "duration_ms": 5, "outcome": "success"});
    let (status, d) = api
        .post(
            &format!("/v1/sites/{id}/deploys"),
            Some(&token),
            deploy.clone(),
        )
        .await;
    assert_eq!(
        (status, d["cache_purged"].as_bool()),
        (StatusCode::CREATED, Some(true))
    );
    assert_eq!(fake.calls()[0].path, format!("/pullzone/{id}/purgeCache"));
    // A failed purge still records the deploy, and says so.
    fake.fail("purge", 500);
    let (status, d) = api
        .post(&format!("/v1/sites/{id}/deploys"), Some(&token), deploy)
        .await;
    assert_eq!(
        (status, d["cache_purged"].as_bool()),
        (StatusCode::CREATED, Some(false))
    );
    fake.heal();

    fake.clear_calls();
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/sites/{id}/hostnames/www.example.com"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(fake.steps(), ["remove_hostname"]);
    assert!(fake.hostnames(pull_id).is_empty());

    // A delete that fails half-way keeps the site and can be retried.
    fake.clear_calls();
    fake.fail("delete_storage_zone", 500);
    let site_path = format!("/v1/sites/{id}");
    let (status, _) = api
        .call(Method::DELETE, &site_path, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(api.get(&site_path, &token).await.0, StatusCode::OK);
    fake.heal();
    let (status, _) = api
        .call(Method::DELETE, &site_path, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        fake.steps(),
        [
            "delete_pull_zone",
            "delete_storage_zone",
            "delete_pull_zone",
            "delete_storage_zone"
        ]
    );
    assert_eq!(
        fake.calls()[2].status,
        404,
        "the pull zone was already gone"
    );
    let (zones, pulls) = fake.zone_ids();
    assert!(zones.is_empty() && pulls.is_empty());

    assert!(!api.log().contains(KEY), "the API key reached the log");
    assert!(
        !api.log().contains("storage-password-"),
        "a storage password reached the log"
    );
}

/// Each failing step, the calls that must follow it, and what is undone.
async fn hostname_failures_roll_back_the_earlier_steps(backend: Backend, test: &str) {
    let (fake, api) = start(backend, test, "pipe").await;
    let token = api.new_user("ann@example.com").await;
    let id = api.create_site(&token, "Blog").await["id"]
        .as_i64()
        .unwrap();
    let pull_id = id as u64;
    assert_eq!(
        fake.calls()[1].body["LogForwardingFormat"],
        0,
        "pipe format"
    );

    let table: [(&str, &[&str], &[&str]); 3] = [
        ("add_hostname", &["add_hostname"], &[]),
        (
            "load_certificate",
            &["add_hostname", "load_certificate", "remove_hostname"],
            &["add_hostname"],
        ),
        (
            "force_ssl_on",
            &[
                "add_hostname",
                "load_certificate",
                "force_ssl_on",
                "remove_hostname",
            ],
            &["load_certificate", "add_hostname"],
        ),
    ];
    for (failing, steps, rolled_back) in table {
        fake.clear_calls();
        fake.fail(failing, 500);
        let (status, body) = add_hostname(&api, &token, id, "www.example.com").await;
        fake.heal();

        assert_eq!(status, StatusCode::BAD_GATEWAY, "{failing}: {body}");
        assert_eq!(fake.steps(), steps, "{failing}");
        assert_eq!(body["failed_step"], failing.replace("_on", ""), "{body}");
        assert_eq!(body["rolled_back"], json!(rolled_back), "{body}");
        assert_eq!(
            (body["state"].as_str(), body["remaining"].clone()),
            (Some("absent"), json!([])),
            "{body}"
        );
        assert!(
            body["error"].as_str().unwrap().contains("Injected failure"),
            "{body}"
        );
        assert!(
            fake.hostnames(pull_id).is_empty(),
            "{failing}: nothing left at the CDN"
        );
        let (_, list) = api.get(&format!("/v1/sites/{id}/hostnames"), &token).await;
        assert_eq!(
            list,
            json!({"hostnames": []}),
            "{failing}: nothing recorded"
        );
    }

    // After the failures, the same hostname goes through cleanly.
    let (status, _) = add_hostname(&api, &token, id, "www.example.com").await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, metrics) = api.raw_get("/metrics").await;
    for (operation, outcome, n) in [
        ("add_hostname", "failed", 1),
        ("add_hostname", "ok", 3),
        ("load_certificate", "failed", 1),
        ("force_ssl_on", "failed", 1),
        ("remove_hostname", "ok", 2),
        ("create_site", "ok", 1),
    ] {
        let line = format!(
            "api_cdn_operations_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
}

async fn a_failed_rollback_says_what_remains(backend: Backend, test: &str) {
    let (fake, api) = start(backend, test, "pipe").await;
    let token = api.new_user("ann@example.com").await;
    let id = api.create_site(&token, "Blog").await["id"]
        .as_i64()
        .unwrap();

    fake.clear_calls();
    fake.fail("force_ssl_on", 500);
    fake.fail("remove_hostname", 503);
    let (status, body) = add_hostname(&api, &token, id, "shop.example.com").await;
    fake.heal();

    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        fake.steps(),
        [
            "add_hostname",
            "load_certificate",
            "force_ssl_on",
            "remove_hostname"
        ]
    );
    assert_eq!(body["state"], "partial", "{body}");
    assert_eq!(body["rolled_back"], json!(["load_certificate"]));
    assert_eq!(body["remaining"], json!(["add_hostname"]));
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(&format!("DELETE /v1/sites/{id}/hostnames/shop.example.com")),
        "{message}"
    );
    assert_eq!(fake.hostnames(id as u64)["shop.example.com"], (true, false));

    // The leftover is visible, not served as active, and can be removed.
    let (_, list) = api.get(&format!("/v1/sites/{id}/hostnames"), &token).await;
    assert_eq!(
        list,
        json!({"hostnames": [{"hostname": "shop.example.com", "state": "partial"}]})
    );
    let (_, site) = api.get(&format!("/v1/sites/{id}"), &token).await;
    assert_eq!(site["hostnames"], json!([]));
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/sites/{id}/hostnames/shop.example.com"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(fake.hostnames(id as u64).is_empty());
}

async fn a_failed_pull_zone_removes_the_storage_zone(backend: Backend, test: &str) {
    let (fake, api) = start(backend, test, "pipe").await;
    let token = api.new_user("ann@example.com").await;

    fake.fail("create_pull_zone", 400);
    let (status, body) = api
        .post("/v1/sites", Some(&token), json!({"nickname": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        body["error"].as_str().unwrap().contains("create pull zone"),
        "{body}"
    );
    assert_eq!(
        fake.steps(),
        [
            "create_storage_zone",
            "create_pull_zone",
            "delete_storage_zone"
        ]
    );
    let (zones, pulls) = fake.zone_ids();
    assert!(zones.is_empty() && pulls.is_empty());
    let (_, list) = api.get("/v1/sites", &token).await;
    assert_eq!(list, json!({"sites": []}));

    // When the undo fails too, the answer names what was left behind.
    fake.clear_calls();
    fake.fail("delete_storage_zone", 500);
    let (status, body) = api
        .post("/v1/sites", Some(&token), json!({"nickname": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (zones, _) = fake.zone_ids();
    let left = zones.iter().next().unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(&format!("left behind storage zone {left}")),
        "{message}"
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_reported_without_leaking() {
    let fake = FakeBunny::start().await;
    let wrong = "wrong-key-0f9e8d7c";
    let args = [
        "--cdn",
        "bunny",
        "--bunny-api-url",
        &fake.url,
        "--log-forward-host",
        "logs",
    ];
    let env = [("ECSTATIC_BUNNY_API_KEY", wrong)];
    let api = Api::start_with(Backend::Sqlite, "bunny_wrong_key", &args, &env).await;
    let token = api.new_user("ann@example.com").await;

    let (status, body) = api
        .post("/v1/sites", Some(&token), json!({"nickname": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("create storage zone") && message.contains("401"),
        "{message}"
    );
    assert!(!message.contains(wrong) && !api.log().contains(wrong));
    assert_eq!(fake.calls()[0].status, 401, "the fake saw the wrong key");
}

#[tokio::test]
async fn bunny_needs_a_key_and_a_log_host() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ecstatic-api"))
            .args(["--data-dir", dir.path().to_str().unwrap(), "--cdn", "bunny"])
            .args(args)
            .env_clear()
            .env("ECSTATIC_JWT_SECRET", common::SECRET)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["--log-forward-host", "h"], &[]).contains("needs the API key"));
    let stderr = run(&[], &[("ECSTATIC_BUNNY_API_KEY", "k")]);
    assert!(stderr.contains("`--log-forward-host`"), "{stderr}");
}

on_both_backends!(
    provisions_configures_and_deletes,
    provisions_configures_and_deletes_a_site
);
on_both_backends!(
    hostname_rollbacks,
    hostname_failures_roll_back_the_earlier_steps
);
on_both_backends!(failed_rollbacks, a_failed_rollback_says_what_remains);
on_both_backends!(
    create_rollbacks,
    a_failed_pull_zone_removes_the_storage_zone
);
