//! `ecstatic-git`: a smart-HTTP git server that publishes every push to a
//! site's branch to the site's CDN storage.
//!
//! `git push` reaches [`app`], which checks the pusher's credentials with
//! `api` ([`auth`]), runs the system `git` in stateless-RPC mode ([`rpc`]),
//! and after a push to the site's branch hands the commit to [`publish`],
//! which syncs the files to the storage named by `api` ([`storage`]).

mod api;
mod app;
mod auth;
mod hook;
mod pkt;
mod publish;
mod rpc;
mod storage;
mod tree;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Smart-HTTP git server: `git push` publishes a site.
#[derive(Debug, Parser)]
#[command(name = "ecstatic-git", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs as git's `pre-receive` hook: refuses a push whose publish
    /// directory is over the limits. Started by `git receive-pack`, not by
    /// people.
    PreReceiveHook,
}

/// Service configuration; every flag also reads `ECSTATIC_<FLAG>`.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to serve git's smart HTTP, `/metrics` and the probes on.
    #[arg(long, env = "ECSTATIC_LISTEN", default_value = "127.0.0.1:8082")]
    pub listen: SocketAddr,

    /// Directory for persistent data; bare repositories live in
    /// `<data-dir>/repos/<site_id>.git`. Use the same one as `api`.
    #[arg(long, env = "ECSTATIC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Base URL of the `api` service.
    #[arg(
        long,
        env = "ECSTATIC_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api_url: String,

    /// URL shown to the pusher for the published site; `{site}` is replaced
    /// by the site id. Without it the site's `url` from `api` is shown.
    #[arg(long, env = "ECSTATIC_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// How many files one push uploads at the same time.
    #[arg(long, env = "ECSTATIC_UPLOAD_CONCURRENCY", default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..=256))]
    pub upload_concurrency: u16,

    #[command(flatten)]
    pub limits: Limits,
}

/// What one push may carry. A push over any of them is refused before any
/// ref moves, with a message naming the limit.
#[derive(Debug, Clone, Copy, Args)]
pub struct Limits {
    /// Most bytes one push may carry: both the incoming pack and the total
    /// size of the files to publish.
    #[arg(long, env = "ECSTATIC_MAX_PUSH_BYTES", default_value_t = 512 << 20)]
    pub max_push_bytes: u64,

    /// Most files one site may publish.
    #[arg(long, env = "ECSTATIC_MAX_FILES", default_value_t = 20_000)]
    pub max_files: u64,

    /// Largest single file a site may publish, in bytes.
    #[arg(long, env = "ECSTATIC_MAX_FILE_BYTES", default_value_t = 100 << 20)]
    pub max_file_bytes: u64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PreReceiveHook) => hook::run(&cli.config.limits),
        None => serve(cli.config),
    }
}

fn serve(config: Config) -> std::process::ExitCode {
    ecstatic_ops::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "starting the async runtime failed");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "ecstatic-git stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
