//! `ecstatic-ingest`: the log-stream intake (and its `parse` tool).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ecstatic_ingest::inspect::{self, ParseArgs};

#[derive(Debug, Parser)]
#[command(name = "ecstatic-ingest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse a log stream (file or stdin) and print the records as JSON lines.
    Parse(ParseArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Parse(args) => inspect::run(args),
    }
}
