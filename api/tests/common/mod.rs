//! Starts the real `ecstatic-api` binary on a free port, with its own data
//! directory and database, and talks HTTP to it.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod fake_bunny;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecstatic_auth::{Claims, JwtKey, now_secs};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

/// Signing key the tests give the api.
pub const SECRET: &str = "test secret: 0123456789abcdef0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running api, stopped when dropped.
pub struct Api {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub db_url: String,
    http: reqwest::Client,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Repository root (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The PostgreSQL server to test against: `ECSTATIC_TEST_POSTGRES_URL`, or
/// else the private cluster of `scripts/postgres.sh`, started on demand.
fn postgres_admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("ECSTATIC_TEST_POSTGRES_URL") {
            return url;
        }
        let script = repo_root().join("scripts/postgres.sh");
        let status = Command::new(&script).arg("start").status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "ECSTATIC_TEST_POSTGRES_URL is unset and `{} start` failed ({status:?}): \
             start PostgreSQL with it, or set the variable to a server's URL",
            script.display()
        );
        let out = Command::new(&script).arg("url").output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
    .clone()
}

/// A fresh database named after the test on the test PostgreSQL server.
async fn fresh_postgres_db(test: &str) -> String {
    let admin = postgres_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} does not answer ({e}): run `scripts/postgres.sh start`")
        });
    let name = format!("ecstatic_api_{test}");
    // Two calls: neither statement may run inside a transaction block.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let (base, _) = admin
        .rsplit_once('/')
        .expect("the URL ends in a database name");
    format!("{base}/{name}")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Api {
    /// Starts the api with the local CDN provider.
    pub async fn start(backend: Backend, test: &str) -> Self {
        Self::start_with(backend, test, &[], &[]).await
    }

    pub async fn start_with(
        backend: Backend,
        test: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("api.db").display()),
            Backend::Postgres => fresh_postgres_db(test).await,
        };
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("api.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ecstatic-api"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
            .args(["--database-url", &db_url])
            .args(args)
            .env_clear()
            .env("ECSTATIC_JWT_SECRET", SECRET)
            .env("ECSTATIC_LOG", "debug,sqlx=warn,hyper=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let api = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            db_url,
            http: reqwest::Client::new(),
        };
        api.wait_ready().await;
        api
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = self.http.get(format!("{}/readyz", self.base)).send().await;
            if probe.is_ok_and(|r| r.status() == StatusCode::OK) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "api did not get ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the api logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("api.log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Sends a request; answers the status and the JSON body (`Null` when
    /// empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, value)
    }

    /// Signs in claiming to come from `forwarded_for` (via `X-Forwarded-For`).
    pub async fn sign_in_from(&self, body: Value, forwarded_for: &str) -> StatusCode {
        let url = format!("{}/v1/sessions", self.base);
        let request = self
            .http
            .post(url)
            .header("x-forwarded-for", forwarded_for)
            .json(&body);
        request.send().await.unwrap().status()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.child.wait().unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn raw_get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    pub async fn sign_up(&self, email: &str) {
        let body = json!({"email": email, "password": PASSWORD});
        let (status, answer) = self.post("/v1/accounts", None, body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }

    pub async fn sign_in(&self, email: &str) -> String {
        let body = json!({"email": email, "password": PASSWORD});
        let (status, answer) = self.post("/v1/sessions", None, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["expires_in"], 900);
        answer["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn new_user(&self, email: &str) -> String {
        self.sign_up(email).await;
        self.sign_in(email).await
    }

    pub async fn create_site(&self, token: &str, nickname: &str) -> Value {
        let (status, site) = self
            .post("/v1/sites", Some(token), json!({"nickname": nickname}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{site}");
        site
    }

    /// Runs `ecstatic-api ARGS…` against the same database (admin commands).
    pub fn admin(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_ecstatic-api"))
            .args(["--data-dir", self.data_dir().to_str().unwrap()])
            .args(["--database-url", &self.db_url])
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    }
}

/// Claims of a token, verified with the test key.
pub fn claims(token: &str) -> Claims {
    JwtKey::new(SECRET.as_bytes())
        .unwrap()
        .verify(token)
        .unwrap()
}

/// A token for `sub` that expired a minute ago.
pub fn expired_token(sub: &str, sites: Vec<u64>) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp: now_secs() - 60,
        sites,
        readonly: false,
    };
    JwtKey::new(SECRET.as_bytes()).unwrap().sign(&claims)
}

/// A valid-looking token signed with another key.
pub fn foreign_token(sub: &str, sites: Vec<u64>) -> String {
    let claims = Claims {
        sub: sub.into(),
        exp: now_secs() + 600,
        sites,
        readonly: false,
    };
    JwtKey::new(b"another key of at least thirty-two bytes")
        .unwrap()
        .sign(&claims)
}

/// An unsigned token (`alg: none`) with otherwise valid claims.
pub fn unsigned_token(sub: &str, sites: Vec<u64>) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = json!({"sub": sub, "exp": now_secs() + 600, "sites": sites, "readonly": false});
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// Declares a test that runs once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                $body(Backend::Sqlite, concat!(stringify!($name), "_sqlite")).await;
            }

            #[tokio::test]
            async fn postgres() {
                $body(Backend::Postgres, stringify!($name)).await;
            }
        }
    };
}
