//! `wgmesh show [IFACE] [--json]`: asks the running daemon over its control socket; when no
//! daemon runs, says so and how to start one, and shows what the WireGuard device itself
//! reports.

use std::path::PathBuf;

use clap::Args;

use crate::control::client::{ClientError, request};
use crate::control::protocol::{Request, Response, socket_path};
use crate::control::show_text::print_report;

/// Options of `wgmesh show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The mesh interface [default: wg0].
    #[arg(value_name = "IFACE", default_value = "wg0")]
    pub interface: String,
    /// Directory of the daemon's control socket.
    #[arg(long, default_value = "/run/wgmesh", value_name = "DIR")]
    pub runtime_dir: PathBuf,
    /// Print JSON (stable keys, documented in docs/CONTROL.md).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ShowArgs) -> anyhow::Result<()> {
    let path = socket_path(&args.runtime_dir, &args.interface);
    match request(&path, &Request::Show) {
        Ok(Response::Show(report)) => Ok(print_report(&report, args.json)?),
        Ok(Response::Error { message }) => anyhow::bail!("the daemon refused: {message}"),
        Ok(other) => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
        Err(ClientError::NotRunning(p)) => {
            eprintln!(
                "wgmesh: no daemon is running for {} (nothing listens on {}).\n  start one with: wgmesh up --interface {} --secret-file /etc/wgmesh/{}.secret\n  or: systemctl start wgmesh@{}",
                args.interface,
                p.display(),
                args.interface,
                args.interface,
                args.interface
            );
            crate::daemon::device_fallback::print_device(&args.interface, args.json)
        }
        Err(e) => Err(e.into()),
    }
}
