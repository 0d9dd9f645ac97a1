//! The `wgmesh` binary: parses the command line, sets up logging on standard error, runs the
//! command, and turns errors into one readable message and exit status 1.
#![forbid(unsafe_code)]

use std::io::IsTerminal as _;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = wgmesh::cli::Cli::parse();
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    match wgmesh::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgmesh: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
