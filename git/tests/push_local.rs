//! `git push` with the real client, against the running `ecstatic-git` and
//! `ecstatic-api` with the local CDN provider.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{PASSWORD, Stack, StackOptions, WorkTree, files_under, metric};

const EMAIL: &str = "owner@example.com";

fn count(deploy: &serde_json::Value, field: &str) -> u64 {
    deploy[field]
        .as_u64()
        .unwrap_or_else(|| panic!("`{field}` missing in {deploy}"))
}

/// `len` bytes that do not compress (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn files(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

#[tokio::test]
async fn first_push_publishes_and_the_next_syncs_only_the_changes() {
    let stack = Stack::start().await;
    let token = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&token, "public").await;

    let tree = WorkTree::new();
    tree.write("README.md", "not published");
    tree.write("public/index.html", "<h1>home</h1>");
    tree.write("public/about/index.html", "<h1>about</h1>");
    tree.write("public/old.txt", "old");
    tree.symlink("/etc/passwd", "public/passwd");
    let first = tree.commit("first");

    let run = tree
        .push(&stack.remote(EMAIL, PASSWORD, site), "main")
        .await;
    assert!(run.ok, "{}\n{}", run.stderr, stack.git_log());
    assert!(
        run.stderr.contains("remote: ecstatic: not published"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("remote: ecstatic: live at http://"),
        "{}",
        run.stderr
    );
    let expected = files(&[
        ("index.html", "<h1>home</h1>"),
        ("about/index.html", "<h1>about</h1>"),
        ("old.txt", "old"),
    ]);
    assert_eq!(files_under(&stack.site_dir(site)), expected);

    let deploys = stack.deploys(&token, site).await;
    assert_eq!(deploys.len(), 1);
    assert_eq!(deploys[0]["commit"], first);
    assert_eq!(deploys[0]["outcome"], "success");
    assert_eq!(count(&deploys[0], "files_uploaded"), 3);
    assert_eq!(count(&deploys[0], "files_deleted"), 0);
    let home_inode = std::fs::metadata(stack.site_dir(site).join("index.html"))
        .unwrap()
        .ino();

    // Change one, delete one, add one; push with a deploy token this time.
    tree.write("public/about/index.html", "<h1>about us</h1>");
    tree.remove("public/old.txt");
    tree.write("public/new/page.html", "new");
    let second = tree.commit("second");
    let deploy_token = stack.deploy_token(&token, site).await;
    let run = tree
        .push(&stack.remote("ci", &deploy_token, site), "main")
        .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stderr.contains("uploading 2 ("), "{}", run.stderr);
    assert!(
        run.stderr.contains("keeping 1, deleting 1"),
        "{}",
        run.stderr
    );

    let expected = files(&[
        ("index.html", "<h1>home</h1>"),
        ("about/index.html", "<h1>about us</h1>"),
        ("new/page.html", "new"),
    ]);
    assert_eq!(files_under(&stack.site_dir(site)), expected);
    let inode = std::fs::metadata(stack.site_dir(site).join("index.html"))
        .unwrap()
        .ino();
    assert_eq!(inode, home_inode, "an unchanged file was written again");

    let deploys = stack.deploys(&token, site).await;
    assert_eq!(deploys.len(), 2);
    assert_eq!(deploys[0]["commit"], second);
    assert_eq!(count(&deploys[0], "files_uploaded"), 2);
    assert_eq!(count(&deploys[0], "files_deleted"), 1);
    assert_eq!(count(&deploys[0], "files_kept"), 1);
    assert_eq!(
        count(&deploys[0], "bytes_uploaded"),
        ("<h1>about us</h1>".len() + 3) as u64
    );

    // Other branches are kept but not published.
    tree.write("public/index.html", "<h1>draft</h1>");
    tree.commit("draft");
    let run = tree
        .push(
            &stack.remote(EMAIL, PASSWORD, site),
            "HEAD:refs/heads/draft",
        )
        .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("nothing published: the site publishes `main`"),
        "{}",
        run.stderr
    );
    assert_eq!(stack.deploys(&token, site).await.len(), 2);

    // The repository serves fetches too.
    let clone = tree.path().join("clone");
    let run = tree
        .clone_into(&stack.remote(EMAIL, PASSWORD, site), &clone)
        .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        std::fs::read(clone.join("public/new/page.html")).unwrap(),
        b"new"
    );

    // git gzips large fetch requests; the body is decoded on the way in.
    let request = format!("0032want {second}\n00000009done\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, request.as_bytes()).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/{site}.git/git-upload-pack", stack.git_url))
        .basic_auth(EMAIL, Some(PASSWORD))
        .header("content-type", "application/x-git-upload-pack-request")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-git-upload-pack-result"
    );
    let body = response.bytes().await.unwrap();
    assert!(
        body.starts_with(b"0008NAK\n"),
        "{:?}",
        &body[..body.len().min(40)]
    );
    assert_eq!(&body[8..12], b"PACK");

    // One sign-in per credentials, however many requests: the test's own,
    // the email's (its clone and fetch reuse it) and the deploy token's.
    let sessions = r#"http_requests_total{method="POST",route="/v1/sessions",status="200"}"#;
    assert_eq!(metric(&stack.api_url, sessions).await, 3.0);
    let git = &stack.git_url;
    assert_eq!(
        metric(git, r#"git_deploys_total{outcome="success"}"#).await,
        2.0
    );
    assert_eq!(metric(git, "git_files_uploaded_total").await, 5.0);
    assert_eq!(metric(git, "git_files_deleted_total").await, 1.0);
}

#[tokio::test]
async fn a_wrong_password_gets_401_and_writes_nothing() {
    let stack = Stack::start().await;
    let token = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&token, "").await;

    let url = format!(
        "{}/{site}/info/refs?service=git-receive-pack",
        stack.git_url
    );
    let response = reqwest::Client::new()
        .get(&url)
        .basic_auth(EMAIL, Some("wrong password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Basic realm=\"ecstatic\""
    );
    let anonymous = reqwest::get(&url).await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let tree = WorkTree::new();
    tree.write("index.html", "hi");
    tree.commit("one");
    let run = tree
        .push(&stack.remote(EMAIL, "wrong password", site), "main")
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("Authentication failed"),
        "{}",
        run.stderr
    );
    let run = tree
        .push(&stack.remote("ci", "ecs_dt_not-a-real-token", site), "main")
        .await;
    assert!(!run.ok);

    let refused = r#"git_requests_refused_total{reason="invalid"}"#;
    assert!(metric(&stack.git_url, refused).await >= 3.0);
    assert!(!stack.repo_dir(site).exists(), "a repository was created");
    assert!(files_under(&stack.site_dir(site)).is_empty());
    assert!(stack.deploys(&token, site).await.is_empty());
}

#[tokio::test]
async fn another_owners_site_and_read_only_accounts_get_403() {
    let stack = Stack::start().await;
    let owner = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&owner, "").await;
    stack.sign_up("intruder@example.com").await;

    let tree = WorkTree::new();
    tree.write("index.html", "defaced");
    tree.commit("one");
    let run = tree
        .push(
            &stack.remote("intruder@example.com", PASSWORD, site),
            "main",
        )
        .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("403"), "{}", run.stderr);

    stack.api_admin(&["accounts", "set-readonly", EMAIL]);
    let run = tree
        .push(&stack.remote(EMAIL, PASSWORD, site), "main")
        .await;
    assert!(!run.ok);
    assert!(run.stderr.contains("403"), "{}", run.stderr);

    assert!(files_under(&stack.site_dir(site)).is_empty());
    assert!(stack.deploys(&owner, site).await.is_empty());
}

#[tokio::test]
async fn pushes_over_the_limits_are_refused_with_a_message() {
    let options = StackOptions {
        git_args: [
            "--max-files",
            "3",
            "--max-file-bytes",
            "1000",
            "--max-push-bytes",
            "2500",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..StackOptions::default()
    };
    let stack = Stack::start_with(options).await;
    let token = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&token, "").await;
    let remote = stack.remote(EMAIL, PASSWORD, site);

    let tree = WorkTree::new();
    for n in 0..4 {
        tree.write(&format!("page{n}.html"), "x");
    }
    tree.commit("too many files");
    let run = tree.push(&remote, "main").await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("remote: error: push refused: 4 files"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`--max-files`"), "{}", run.stderr);

    for n in 0..4 {
        tree.remove(&format!("page{n}.html"));
    }
    tree.write("big.bin", vec![b'x'; 1001]);
    tree.commit("one file too big");
    let run = tree.push(&remote, "main").await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("`big.bin` is 1001 bytes"),
        "{}",
        run.stderr
    );

    tree.remove("big.bin");
    for n in 0..3 {
        tree.write(&format!("part{n}.bin"), vec![b'0' + n; 900]);
    }
    tree.commit("too much in all");
    let run = tree.push(&remote, "main").await;
    assert!(!run.ok);
    assert!(run.stderr.contains("`--max-push-bytes`"), "{}", run.stderr);

    // Nothing moved, nothing was published.
    let tip = std::process::Command::new("git")
        .args(["--git-dir"])
        .arg(stack.repo_dir(site))
        .args(["rev-parse", "--verify", "--quiet", "refs/heads/main"])
        .output()
        .unwrap();
    assert!(!tip.status.success(), "a refused push moved the branch");
    assert!(files_under(&stack.site_dir(site)).is_empty());
    assert!(stack.deploys(&token, site).await.is_empty());

    tree.remove("part2.bin");
    tree.commit("within limits");
    let run = tree.push(&remote, "main").await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(files_under(&stack.site_dir(site)).len(), 2);

    // A pack over `--max-push-bytes` is cut off by git itself while it is
    // received: 3000 bytes that do not compress, in three small files.
    let noisy = WorkTree::new();
    for n in 0..3u64 {
        noisy.write(&format!("part{n}.bin"), noise(1000, n));
    }
    noisy.commit("a pack too big");
    let run = noisy.push(&remote, "+main").await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("pack exceeds maximum allowed size"),
        "{}",
        run.stderr
    );
    assert_eq!(files_under(&stack.site_dir(site)).len(), 2);
}

#[tokio::test]
async fn two_concurrent_pushes_end_in_one_consistent_deploy() {
    let stack = Stack::start().await;
    let token = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&token, "").await;
    let remote = stack.remote(EMAIL, PASSWORD, site);

    // Two unrelated histories with many files each, force-pushed at once.
    let (a, b) = (WorkTree::new(), WorkTree::new());
    for n in 0..200 {
        a.write(&format!("a/{n}.html"), format!("a{n}"));
        b.write(&format!("b/{n}.html"), format!("b{n}"));
    }
    a.write("index.html", "from a");
    b.write("index.html", "from b");
    let (commit_a, commit_b) = (a.commit("a"), b.commit("b"));

    // Both may read the empty repository before either lands; git's own
    // compare-and-swap then refuses the second with a message. Either way
    // the pushes run one after the other and the site matches the tip.
    let (run_a, run_b) = tokio::join!(a.push(&remote, "+main"), b.push(&remote, "+main"));
    let runs = [&run_a, &run_b];
    let landed = runs.iter().filter(|r| r.ok).count();
    assert!(landed >= 1, "{}\n{}", run_a.stderr, run_b.stderr);
    for run in runs.iter().filter(|r| !r.ok) {
        assert!(run.stderr.contains("[remote rejected]"), "{}", run.stderr);
    }
    let waited = runs
        .iter()
        .filter(|r| r.stderr.contains("remote: ecstatic: waited"))
        .count();
    assert!(waited <= 1, "both pushes waited for each other");

    let deploys = stack.deploys(&token, site).await;
    assert_eq!(deploys.len(), landed, "{deploys:?}");
    assert!(
        deploys.iter().all(|d| d["outcome"] == "success"),
        "{deploys:?}"
    );
    let last = deploys[0]["commit"].as_str().unwrap().to_owned();
    let tip = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(stack.repo_dir(site))
        .args(["rev-parse", "refs/heads/main"])
        .output()
        .unwrap();
    let tip = String::from_utf8_lossy(&tip.stdout).trim().to_owned();
    assert_eq!(tip, last, "the last deploy is not the tip");

    assert!(last == commit_a || last == commit_b);
    let (winner, prefix) = if last == commit_a {
        ("from a", "a/")
    } else {
        ("from b", "b/")
    };
    let published = files_under(&stack.site_dir(site));
    assert_eq!(published.len(), 201, "files of both pushes are mixed");
    assert_eq!(published["index.html"], winner.as_bytes());
    assert!(
        published
            .keys()
            .filter(|k| *k != "index.html")
            .all(|k| k.starts_with(prefix))
    );
    if landed == 2 {
        assert_eq!(deploys[0]["files_deleted"], 200);
    }
}

#[tokio::test]
async fn sigterm_stops_the_service_cleanly() {
    let mut stack = Stack::start().await;
    let token = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&token, "").await;
    let tree = WorkTree::new();
    tree.write("index.html", "hi");
    tree.commit("one");
    assert!(
        tree.push(&stack.remote(EMAIL, PASSWORD, site), "main")
            .await
            .ok
    );

    assert!(stack.stop_git().await, "{}", stack.git_log());
    assert!(
        stack.git_log().contains("shutting down"),
        "{}",
        stack.git_log()
    );
}

#[tokio::test]
async fn trees_with_dot_git_or_dot_dot_entries_are_refused() {
    let stack = Stack::start().await;
    let token = stack.sign_up(EMAIL).await;
    let site = stack.create_site(&token, "").await;
    let remote = stack.remote(EMAIL, PASSWORD, site);

    // Porcelain refuses to make such trees; plumbing does not.
    let tree = WorkTree::new();
    let blob = tree.plumbing(&["hash-object", "-w", "--stdin"], "[core]\n");
    for (name, finding) in [(".git", "hasDotgit"), ("..", "hasDotdot")] {
        let bad_tree = tree.plumbing(&["mktree"], &format!("100644 blob {blob}\t{name}\n"));
        let commit = tree.plumbing(&["commit-tree", "-m", "evil", &bad_tree], "");
        tree.plumbing(&["update-ref", "refs/heads/main", &commit], "");

        let run = tree.push(&remote, "+main").await;
        assert!(!run.ok, "a tree with a `{name}` entry was accepted");
        assert!(run.stderr.contains(finding), "{}", run.stderr);
    }
    assert!(files_under(&stack.site_dir(site)).is_empty());
    assert!(stack.deploys(&token, site).await.is_empty());
}
