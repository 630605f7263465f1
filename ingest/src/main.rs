//! `ecstatic-ingest`: the log-stream intake (and its `parse` tool).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecstatic_ingest::inspect::{self, ParseArgs};
use ecstatic_ingest::serve::{self, ServeArgs};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Receives bunny.net's access-log stream over syslog and stores it in
/// ClickHouse. Without a subcommand, runs `serve`.
#[derive(Debug, Parser)]
#[command(
    name = "ecstatic-ingest",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive the log stream and store it (the default).
    Serve(Box<ServeArgs>),
    /// Parse a log stream (file or stdin) and print the records as JSON lines.
    Parse(ParseArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Parse(args)) => return inspect::run(args),
        Some(Command::Serve(args)) => *args,
        None => cli.serve,
    };
    ecstatic_ops::init_tracing();
    // Thousands of syslog connections need as many descriptors.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "ecstatic-ingest stopped");
            ExitCode::FAILURE
        }
    }
}
