//! `wgmesh up` (alias `join`): runs a mesh node on one interface until stopped.

use crate::daemon::config::UpArgs;

pub fn run(args: UpArgs, log_level: Option<String>) -> anyhow::Result<()> {
    crate::daemon::start::run_up(args, log_level)?;
    Ok(())
}
