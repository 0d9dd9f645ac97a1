//! `wgmesh identity`: prints the node's WireGuard public key (base64, alone on stdout);
//! `--create` creates the identity when it does not exist yet.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::identity::{identity_path, load_identity, load_or_create_identity};
use crate::proto::keys::base64_key;

/// Options of `wgmesh identity`.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Directory holding the node's state (identity, peer cache).
    #[arg(long, default_value = "/var/lib/wgmesh", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// The mesh interface whose identity to show (each interface has its own).
    #[arg(long, short = 'i', default_value = "wg0", value_name = "IFACE")]
    pub interface: String,
    /// Create the identity if it does not exist (mode 0600 in a 0700 directory).
    #[arg(long)]
    pub create: bool,
}

pub fn run(args: IdentityArgs) -> anyhow::Result<()> {
    let path = identity_path(&args.state_dir, &args.interface)?;
    let identity = if args.create {
        let (id, created) = load_or_create_identity(&path)?;
        if created {
            tracing::info!(path = %path.display(), "created a new node identity");
        }
        id
    } else {
        load_identity(&path)
            .with_context(|| format!("reading the identity of {}", args.interface))?
    };
    println!("{}", base64_key(&identity.wireguard_public()));
    Ok(())
}
