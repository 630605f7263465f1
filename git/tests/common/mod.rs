//! Runs the real `ecstatic-api` and `ecstatic-git` binaries on free loopback
//! ports with one shared data directory, and the real `git` client against
//! them.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod fake_bunny;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Signing key shared by both services in the tests.
pub const SECRET: &str = "git test secret: 0123456789abcdef0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery";

/// The `ecstatic-api` binary next to this test's own binary.
fn api_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/<test> → target/debug/ecstatic-api
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("ecstatic-api"));
    match bin {
        Some(bin) if bin.exists() => bin,
        _ => panic!("`ecstatic-api` is not built: run `cargo build -p ecstatic-api` first"),
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port");
    listener.local_addr().unwrap().port()
}

/// A child process, killed when dropped.
struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(name: &'static str, mut command: Command, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        command
            .stdout(Stdio::null())
            .stderr(file)
            .env("ECSTATIC_JWT_SECRET", SECRET);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} failed: {e}"));
        Self { name, child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200, failing with the service's log when
    /// it exits or takes more than 60 s.
    async fn wait_ready(&mut self, base: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        loop {
            let response = http.get(format!("{base}/readyz")).send().await;
            if response.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never got ready:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// How to start the pair.
#[derive(Debug, Default, Clone)]
pub struct StackOptions {
    /// Extra flags for `ecstatic-git`.
    pub git_args: Vec<String>,
    /// Extra flags for `ecstatic-api`.
    pub api_args: Vec<String>,
    /// Extra environment for `ecstatic-api`.
    pub api_env: Vec<(String, String)>,
}

/// `api` and `git` running on one data directory.
pub struct Stack {
    // Fields drop in order: the services stop before their directory goes.
    git: Service,
    api: Service,
    pub api_url: String,
    pub git_url: String,
    http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (api_port, git_port) = (free_port(), free_port());
        let api_url = format!("http://127.0.0.1:{api_port}");
        let git_url = format!("http://127.0.0.1:{git_port}");

        let mut command = Command::new(api_binary());
        command.arg("--listen").arg(format!("127.0.0.1:{api_port}"));
        command.arg("--data-dir").arg(&data).args(&options.api_args);
        command.envs(options.api_env.iter().map(|(k, v)| (k, v)));
        let mut api = Service::start("ecstatic-api", command, dir.path());
        api.wait_ready(&api_url).await;

        let mut command = Command::new(env!("CARGO_BIN_EXE_ecstatic-git"));
        command.arg("--listen").arg(format!("127.0.0.1:{git_port}"));
        command
            .arg("--data-dir")
            .arg(&data)
            .arg("--api-url")
            .arg(&api_url);
        command
            .args(&options.git_args)
            .env("ECSTATIC_LOG", "info,ecstatic_git=debug");
        let mut git = Service::start("ecstatic-git", command, dir.path());
        git.wait_ready(&git_url).await;

        Self {
            dir,
            api_url,
            git_url,
            http: reqwest::Client::new(),
            git,
            api,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Sends SIGTERM to `ecstatic-git` and waits (60 s at most) for it to
    /// exit; returns whether it exited successfully.
    pub async fn stop_git(&mut self) -> bool {
        let pid = self.git.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "`kill -TERM {pid}` failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.git.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "ecstatic-git ignored SIGTERM");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn git_log(&self) -> String {
        self.git.log()
    }

    /// Runs an `ecstatic-api` admin command on the shared data directory.
    pub fn api_admin(&self, args: &[&str]) {
        let status = Command::new(api_binary())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env("ECSTATIC_JWT_SECRET", SECRET)
            .status()
            .unwrap();
        assert!(status.success(), "`ecstatic-api {args:?}` failed");
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("api answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs up and returns an access token.
    pub async fn sign_up(&self, email: &str) -> String {
        let body = json!({"email": email, "password": PASSWORD});
        let (status, _) = self
            .call(
                reqwest::Method::POST,
                "/v1/accounts",
                None,
                Some(body.clone()),
            )
            .await;
        assert!(status < 300, "sign-up answered {status}");
        let (status, answer) = self
            .call(reqwest::Method::POST, "/v1/sessions", None, Some(body))
            .await;
        assert_eq!(status, 200, "sign-in: {answer}");
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates a site publishing `publish_dir`; returns its id.
    pub async fn create_site(&self, token: &str, publish_dir: &str) -> u64 {
        let body = json!({"nickname": "blog"});
        let (status, site) = self
            .call(reqwest::Method::POST, "/v1/sites", Some(token), Some(body))
            .await;
        assert!(status < 300, "creating a site answered {status}: {site}");
        let id = site["id"].as_u64().unwrap();
        let body = json!({"publish_dir": publish_dir});
        let path = format!("/v1/sites/{id}");
        let (status, site) = self
            .call(reqwest::Method::PATCH, &path, Some(token), Some(body))
            .await;
        assert_eq!(status, 200, "{site}");
        id
    }

    /// Makes a deploy token for `site`.
    pub async fn deploy_token(&self, token: &str, site: u64) -> String {
        let path = format!("/v1/sites/{site}/tokens");
        let body = json!({"name": "ci"});
        let (status, answer) = self
            .call(reqwest::Method::POST, &path, Some(token), Some(body))
            .await;
        assert!(status < 300, "{answer}");
        answer["token"].as_str().unwrap().to_owned()
    }

    /// The site's deploy records, newest first.
    pub async fn deploys(&self, token: &str, site: u64) -> Vec<Value> {
        let path = format!("/v1/sites/{site}/deploys");
        let (status, answer) = self
            .call(reqwest::Method::GET, &path, Some(token), None)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["deploys"].as_array().unwrap().clone()
    }

    /// The remote URL of `site` with credentials in it.
    pub fn remote(&self, user: &str, password: &str, site: u64) -> String {
        let host = self.git_url.trim_start_matches("http://");
        format!("http://{}:{}@{host}/{site}", encode(user), encode(password))
    }

    /// The local provider's directory for `site`.
    pub fn site_dir(&self, site: u64) -> PathBuf {
        self.data_dir().join("sites").join(site.to_string())
    }

    pub fn repo_dir(&self, site: u64) -> PathBuf {
        self.data_dir().join("repos").join(format!("{site}.git"))
    }
}

/// The value of one series in the Prometheus text at `{base}/metrics`, 0 when
/// it is absent.
pub async fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Percent-encodes a URL userinfo part.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every regular file under `dir`, path → contents.
pub fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((d, prefix)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push((entry.path(), format!("{prefix}{name}/")));
            } else {
                assert!(
                    !kind.is_symlink(),
                    "a symlink was published: {prefix}{name}"
                );
                out.insert(
                    format!("{prefix}{name}"),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
        }
    }
    out
}

/// A work tree of the real `git` client, with its own `HOME`.
pub struct WorkTree {
    pub dir: tempfile::TempDir,
}

/// What a `git` command printed and how it ended.
#[derive(Debug)]
pub struct GitRun {
    pub ok: bool,
    pub stderr: String,
}

impl WorkTree {
    pub fn new() -> Self {
        let tree = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(tree.path().join("home")).unwrap();
        std::fs::create_dir(tree.path().join("src")).unwrap();
        tree.git(&["init", "-q", "-b", "main"]);
        tree
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn src(&self) -> PathBuf {
        self.path().join("src")
    }

    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) {
        let path = self.src().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.src().join(path)).unwrap();
    }

    pub fn symlink(&self, target: &str, path: &str) {
        std::os::unix::fs::symlink(target, self.src().join(path)).unwrap();
    }

    /// Commits everything; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        let out = self.git(&["rev-parse", "HEAD"]);
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = Command::new("git");
        command
            .current_dir(self.src())
            .args([
                "-c",
                "user.email=pusher@example.com",
                "-c",
                "user.name=Pusher",
            ])
            .args(args)
            .env("HOME", self.path().join("home"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS");
        command
    }

    fn git(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a plumbing command with `input` on stdin; returns its stdout,
    /// trimmed.
    pub fn plumbing(&self, args: &[&str], input: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?} failed");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `git push <remote> <refspec>` with the real client.
    pub async fn push(&self, remote: &str, refspec: &str) -> GitRun {
        let mut command = tokio::process::Command::from(self.command(&["push", remote, refspec]));
        let out = command.output().await.unwrap();
        GitRun {
            ok: out.status.success(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `git clone <remote> <dir>`.
    pub async fn clone_into(&self, remote: &str, dir: &Path) -> GitRun {
        let mut command = tokio::process::Command::from(self.command(&["clone", "-q", remote]));
        command.arg(dir);
        let out = command.output().await.unwrap();
        GitRun {
            ok: out.status.success(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
