//! The command line (clap derive): one file per subcommand. This is the only place `anyhow`
//! is used; everything below returns typed errors.

pub mod identity_cmd;
pub mod netcheck_cmd;
pub mod registry_cmd;
pub mod secret_cmd;
pub mod service_cmd;
pub mod show_cmd;
pub mod up_cmd;

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
    /// Log level for messages on standard error: error, warn, info, debug, trace, or a
    /// tracing filter such as "wgmesh=debug" [default: info].
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a mesh node on an interface until stopped (SIGHUP re-reads --config).
    #[command(visible_alias = "join")]
    Up(Box<crate::daemon::config::UpArgs>),
    /// Show the mesh interface and its peers (like `wg show`, plus the mesh's facts).
    Show(show_cmd::ShowArgs),
    /// Create or inspect a mesh secret.
    #[command(subcommand)]
    Secret(secret_cmd::SecretCommand),
    /// Print this node's WireGuard public key (creating the identity with --create).
    Identity(identity_cmd::IdentityArgs),
    /// Check this host's NAT and connectivity with STUN (no daemon needed): public addresses,
    /// mapping and filtering behaviour, per-server latency.
    Netcheck(netcheck_cmd::NetcheckArgs),
    /// Run a self-hosted registry server, or print a mesh's verifier for one.
    #[command(subcommand)]
    Registry(registry_cmd::RegistryCommand),
    /// Install and start the systemd instance wgmesh@IFACE (unit, secret as a credential,
    /// config) on a machine without the package; root only.
    InstallService(service_cmd::InstallArgs),
    /// Stop wgmesh@IFACE and remove exactly what install-service wrote; root only.
    UninstallService(service_cmd::UninstallArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Up(args) = cli.command {
        return up_cmd::run(*args, cli.log_level);
    }
    init_logging(cli.log_level.as_deref().unwrap_or("info"));
    match cli.command {
        Command::Up(_) => Ok(()),
        Command::Show(args) => show_cmd::run(args),
        Command::Secret(cmd) => secret_cmd::run(cmd),
        Command::Identity(args) => identity_cmd::run(args),
        Command::Netcheck(args) => netcheck_cmd::run(args),
        Command::Registry(cmd) => registry_cmd::run(cmd),
        Command::InstallService(args) => service_cmd::install(args),
        Command::UninstallService(args) => service_cmd::uninstall(args),
    }
}

/// Logging for the short-lived commands: plain text on standard error.
fn init_logging(level: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
