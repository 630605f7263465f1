//! `git push` against the running services with `api` on the bunny.net
//! provider, both of bunny's APIs played by a fake that checks every call.
//!
//! `api` is pointed at the fake with its own `--bunny-api-url` and
//! `--bunny-storage-url`, so the storage endpoint reaches `git` the way it
//! would in production (from `GET /v1/sites/{site}/storage`), and
//! `ecstatic-git` needs no test-only switch.

mod common;

use common::fake_bunny::{self, FakeBunny};
use common::{PASSWORD, Stack, StackOptions, WorkTree};

const EMAIL: &str = "bunny-owner@example.com";

async fn start() -> (FakeBunny, Stack) {
    let fake = FakeBunny::start().await;
    let options = StackOptions {
        api_args: vec![
            "--cdn".into(),
            "bunny".into(),
            "--bunny-api-url".into(),
            fake.url.clone(),
            "--bunny-storage-url".into(),
            fake.url.clone(),
            "--log-forward-host".into(),
            "127.0.0.1".into(),
        ],
        api_env: vec![("ECSTATIC_BUNNY_API_KEY".into(), fake_bunny::KEY.into())],
        git_args: vec!["--upload-concurrency".into(), "3".into()],
    };
    let stack = Stack::start_with(options).await;
    (fake, stack)
}

fn sorted(mut calls: Vec<String>) -> Vec<String> {
    calls.sort();
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_sync_exactly_the_changes_to_bunny_storage() {
    let (fake, stack) = start().await;
    let token = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&token, "public").await;
    fake.take_calls();

    let tree = WorkTree::new();
    tree.write("public/index.html", "<h1>home</h1>");
    tree.write("public/docs/my page.html", "spaced");
    tree.write("public/old.txt", "old");
    tree.write("src/unpublished.rs", "fn main() {}");
    tree.symlink("/etc/passwd", "public/passwd");
    tree.commit("first");
    let run = tree
        .push(&stack.remote(EMAIL, PASSWORD, site), "main")
        .await;
    assert!(run.ok, "{}\n{}", run.stderr, stack.git_log());
    assert!(
        run.stderr.contains("remote: ecstatic: live at https://"),
        "{}",
        run.stderr
    );

    let expected: Vec<(String, Vec<u8>)> = [
        ("docs/my page.html", "spaced"),
        ("index.html", "<h1>home</h1>"),
        ("old.txt", "old"),
    ]
    .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
    .to_vec();
    assert_eq!(fake.files().into_iter().collect::<Vec<_>>(), expected);
    let calls = fake.take_calls();
    let zone = calls[0].split('/').nth(1).unwrap().to_owned();
    let puts: Vec<_> = calls
        .iter()
        .filter(|c| c.starts_with("PUT"))
        .cloned()
        .collect();
    assert_eq!(
        sorted(puts),
        [
            format!("PUT /{zone}/docs/my page.html"),
            format!("PUT /{zone}/index.html"),
            format!("PUT /{zone}/old.txt"),
        ]
    );
    assert_eq!(calls.iter().filter(|c| c.starts_with("DELETE")).count(), 0);
    assert_eq!(fake.purges(), 1);

    tree.write("public/index.html", "<h1>home, again</h1>");
    tree.remove("public/old.txt");
    tree.write("public/new.txt", "new");
    tree.commit("second");
    let run = tree
        .push(&stack.remote(EMAIL, PASSWORD, site), "main")
        .await;
    assert!(run.ok, "{}", run.stderr);

    let calls = fake.take_calls();
    let changes: Vec<_> = calls
        .iter()
        .filter(|c| !c.starts_with("GET"))
        .cloned()
        .collect();
    assert_eq!(
        sorted(changes),
        [
            format!("DELETE /{zone}/old.txt"),
            format!("PUT /{zone}/index.html"),
            format!("PUT /{zone}/new.txt"),
        ]
    );
    // Listing walks the zone's root and its one directory, each with a slash.
    let lists: Vec<_> = calls
        .iter()
        .filter(|c| c.starts_with("GET"))
        .cloned()
        .collect();
    assert_eq!(
        sorted(lists),
        [format!("GET /{zone}/"), format!("GET /{zone}/docs/")]
    );
    assert_eq!(fake.files()["index.html"], b"<h1>home, again</h1>");
    assert_eq!(fake.files().len(), 3);
    assert_eq!(fake.purges(), 2);

    let deploys = stack.deploys(&token, site).await;
    assert_eq!(deploys[0]["files_uploaded"], 2);
    assert_eq!(deploys[0]["files_deleted"], 1);
    assert_eq!(deploys[0]["files_kept"], 1);
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_deletes_nothing_and_says_so() {
    let (fake, stack) = start().await;
    let token = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&token, "").await;
    let remote = stack.remote(EMAIL, PASSWORD, site);

    let tree = WorkTree::new();
    tree.write("index.html", "v1");
    tree.write("keep.txt", "keep");
    tree.commit("first");
    assert!(tree.push(&remote, "main").await.ok);
    assert_eq!(fake.purges(), 1);

    fake.fail_put("new.txt");
    tree.write("index.html", "v2");
    tree.remove("keep.txt");
    tree.write("new.txt", "new");
    tree.commit("second");
    fake.take_calls();
    let run = tree.push(&remote, "main").await;
    assert!(
        run.stderr
            .contains("remote: ecstatic: error: bunny storage answered 500"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("the previous deploy keeps serving"),
        "{}",
        run.stderr
    );
    let calls = fake.take_calls();
    assert!(calls.iter().all(|c| !c.starts_with("DELETE")), "{calls:?}");
    let tries = calls
        .iter()
        .filter(|c| c.starts_with("PUT") && c.ends_with("/new.txt"));
    assert_eq!(tries.count(), 3, "a failing upload is tried three times");
    assert_eq!(fake.files()["keep.txt"], b"keep");
    assert_eq!(fake.purges(), 1, "a failed publish purged the cache");
    let deploys = stack.deploys(&token, site).await;
    assert_eq!(deploys[0]["outcome"], "failed");
    assert!(
        deploys[0]["message"].as_str().unwrap().contains("new.txt"),
        "{}",
        deploys[0]
    );

    // Once storage works again, the next push publishes the whole commit.
    // A storage that fails once is tried again.
    fake.heal();
    fake.fail_put_times("later.txt", 1);
    tree.write("later.txt", "later");
    tree.commit("third");
    let run = tree.push(&remote, "main").await;
    assert!(run.ok, "{}", run.stderr);
    let puts = fake
        .take_calls()
        .into_iter()
        .filter(|c| c.ends_with("/later.txt"))
        .count();
    assert_eq!(puts, 2);
    let keys: Vec<String> = fake.files().into_keys().collect();
    assert_eq!(keys, ["index.html", "later.txt", "new.txt"]);
    assert_eq!(stack.deploys(&token, site).await[0]["outcome"], "success");
    assert!(fake.problems().is_empty(), "{:?}", fake.problems());
}
