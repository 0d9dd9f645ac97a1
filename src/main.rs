//! The `wgmesh` binary: parses the command line, runs the command, and turns errors into one
//! readable message and exit status 1.
#![forbid(unsafe_code)]

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = wgmesh::cli::Cli::parse();
    match wgmesh::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgmesh: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
