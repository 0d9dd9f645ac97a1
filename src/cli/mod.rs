//! The command line (clap derive): one file per subcommand. This is the only place `anyhow`
//! is used; everything below returns typed errors.

pub mod identity_cmd;
pub mod secret_cmd;

use clap::{Parser, Subcommand};

/// wgmesh: a decentralised WireGuard mesh. Every machine given the same mesh secret finds the
/// others (LAN, BitTorrent DHT, peer exchange, gossip) and joins one private network, with no
/// coordination server.
#[derive(Debug, Parser)]
#[command(
    name = "wgmesh",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Start here: `(umask 077; wgmesh secret new > mesh.secret)` creates a mesh secret; copy it \
    (with mode 0600) to every machine of the mesh."
)]
pub struct Cli {
    /// Log level for messages on standard error (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or inspect a mesh secret.
    #[command(subcommand)]
    Secret(secret_cmd::SecretCommand),
    /// Print this node's WireGuard public key (creating the identity with --create).
    Identity(identity_cmd::IdentityArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Secret(cmd) => secret_cmd::run(cmd),
        Command::Identity(args) => identity_cmd::run(args),
    }
}
