//! Command line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Accounts, tokens, sites, hostnames and the CDN admin API of Ecstatic.
#[derive(Debug, Parser)]
#[command(name = "ecstatic-api", version)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Administer accounts directly in the database (no server needed).
    #[command(subcommand)]
    Accounts(AccountsCommand),
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Make an account read-only: it can still sign in and read its sites,
    /// but changes nothing. `--off` makes it writable again.
    SetReadonly {
        /// The account's email address.
        email: String,
        /// Make the account writable again.
        #[arg(long)]
        off: bool,
    },
}

/// Where the data lives; shared by the server and the admin commands.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Directory for the SQLite database and the local CDN provider's files
    /// (`<data-dir>/sites/<site_id>/`).
    #[arg(
        long,
        env = "ECSTATIC_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// `sqlite://PATH` or `postgres://…`; default `<data-dir>/ecstatic.db`.
    /// Read from the environment rather than the command line when it holds
    /// a password.
    #[arg(
        long,
        env = "ECSTATIC_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
}

impl DbArgs {
    /// The database URL, defaulting to the SQLite file in the data directory.
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => {
                let path = self.data_dir.join("ecstatic.db");
                format!("sqlite://{}?mode=rwc", path.display())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CdnKind {
    /// A directory per site under `<data-dir>/sites/`, served by a local web
    /// server.
    Local,
    /// bunny.net: storage zone plus pull zone per site.
    Bunny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// bunny.net's pipe-separated access-log line.
    Pipe,
    /// One JSON object per access.
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on for the API, `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "ECSTATIC_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// CDN provider that hosts the sites.
    #[arg(long, env = "ECSTATIC_CDN", value_enum, default_value = "local")]
    pub cdn: CdnKind,

    /// Where the local provider's sites are served; `{site}` becomes the
    /// site id. Only used with `--cdn local`.
    #[arg(
        long,
        env = "ECSTATIC_PUBLIC_URL_TEMPLATE",
        default_value = "http://127.0.0.1:8088/{site}/"
    )]
    pub public_url_template: String,

    /// Base URL of bunny.net's admin API.
    #[arg(
        long,
        env = "ECSTATIC_BUNNY_API_URL",
        default_value = "https://api.bunny.net"
    )]
    pub bunny_api_url: String,

    /// Base URL of bunny.net's storage API, handed to `git` for uploads.
    #[arg(
        long,
        env = "ECSTATIC_BUNNY_STORAGE_URL",
        default_value = "https://storage.bunnycdn.com"
    )]
    pub bunny_storage_url: String,

    /// File holding the bunny.net account API key. Alternatively set
    /// `ECSTATIC_BUNNY_API_KEY`; the key is never accepted as a plain flag.
    #[arg(long, env = "ECSTATIC_BUNNY_API_KEY_FILE")]
    pub bunny_api_key_file: Option<PathBuf>,

    /// Main region of new storage zones (bunny.net region code, e.g. `DE`).
    #[arg(long, env = "ECSTATIC_BUNNY_REGION", default_value = "DE")]
    pub bunny_region: String,

    /// Host that pull zones forward their access logs to (`ingest`'s syslog
    /// intake, reachable from bunny.net). Required with `--cdn bunny`.
    #[arg(long, env = "ECSTATIC_LOG_FORWARD_HOST")]
    pub log_forward_host: Option<String>,

    /// TCP port of the log intake.
    #[arg(long, env = "ECSTATIC_LOG_FORWARD_PORT", default_value_t = 5140)]
    pub log_forward_port: u16,

    /// Access-log format the pull zones forward.
    #[arg(
        long,
        env = "ECSTATIC_LOG_FORWARD_FORMAT",
        value_enum,
        default_value = "pipe"
    )]
    pub log_forward_format: LogFormat,

    /// Failed sign-ins per account within `--login-window-secs` before
    /// further attempts are refused with 429.
    #[arg(
        long,
        env = "ECSTATIC_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        default_value_t = 5
    )]
    pub login_max_failures_per_account: u32,

    /// Failed sign-ins per client address within the window before 429.
    #[arg(
        long,
        env = "ECSTATIC_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 20
    )]
    pub login_max_failures_per_address: u32,

    /// Sign-ups accepted per client address within `--login-window-secs`;
    /// each costs an Argon2 hash and a row, so a flood is refused with 429.
    #[arg(long, env = "ECSTATIC_SIGNUPS_PER_ADDRESS", default_value_t = 30)]
    pub signups_per_address: u32,

    /// Header that carries the client address when a reverse proxy (Caddy,
    /// an ingress) stands in front, e.g. `X-Forwarded-For`; its last entry is
    /// used. Leave unset when clients connect directly: a client could
    /// otherwise pick its own address and dodge the per-address limit.
    #[arg(long, env = "ECSTATIC_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<axum::http::HeaderName>,

    /// Length of the sign-in failure window, in seconds.
    #[arg(long, env = "ECSTATIC_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "ECSTATIC_TOKEN_TTL_SECS", default_value_t = 900)]
    pub token_ttl_secs: u64,
}
