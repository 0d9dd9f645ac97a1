//! `wgmesh registry serve` (the self-hosted registry server) and `wgmesh registry verifier`
//! (prints `RID:VERIFIER` of a mesh secret for the server's `--mesh`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::daemon::secret_source::{SecretArgs, SecretEnv, resolve_secret};
use crate::proto::derive::MeshKeys;
use crate::proto::registry::member_verifier;
use crate::registry_server::limits::{Limits, parse_rate};
use crate::registry_server::{ServeConfig, format_mesh, parse_mesh, prepare};

/// `wgmesh registry ...`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Run a registry server: stores the sealed entries of meshes' nodes (it can neither read
    /// nor forge them) so nodes given `--registry https://HOST:PORT` find each other.
    Serve(ServeArgs),
    /// Print this mesh's `RID:VERIFIER` (registry id and membership verifier, both public) for
    /// a registry server's `--mesh`.
    Verifier(VerifierArgs),
}

/// Options of `wgmesh registry serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on, e.g. 0.0.0.0:8443 or [::]:8443.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Directory of the database (created if missing; must be writable).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// TLS certificate chain (PEM). Without --tls-cert/--tls-key the server speaks plain HTTP
    /// (for a TLS proxy in front of it).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Pin a mesh's membership verifier (from `wgmesh registry verifier`); repeatable. Other
    /// meshes are pinned by their first writer unless --pinned-only.
    #[arg(long, value_name = "RID:VERIFIER")]
    pub mesh: Vec<String>,
    /// Serve only the meshes given with --mesh (no trust on first use).
    #[arg(long)]
    pub pinned_only: bool,
    /// Requests per second each client address earns (IPv6: per /64).
    #[arg(long, value_name = "N/s", default_value = "10/s")]
    pub rate: String,
    /// Requests a client address may make in a burst.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub burst: u32,
    /// Open connections at most.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Open connections per client address at most.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub max_connections_per_ip: usize,
    /// Meshes (registry ids) the server holds at most.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_meshes: u64,
}

/// Options of `wgmesh registry verifier`.
#[derive(Debug, Args)]
pub struct VerifierArgs {
    #[command(flatten)]
    pub secret: SecretArgs,
}

pub fn run(cmd: RegistryCommand) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::Serve(args) => serve(args),
        RegistryCommand::Verifier(args) => verifier(args),
    }
}

fn verifier(args: VerifierArgs) -> anyhow::Result<()> {
    let resolved = resolve_secret(&args.secret, &SecretEnv::from_process())?;
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    let keys = MeshKeys::derive(&resolved.secret);
    println!(
        "{}",
        format_mesh(&keys.registry_id(), &member_verifier(&keys))
    );
    Ok(())
}

/// The server configuration the flags describe.
pub fn config(args: ServeArgs) -> anyhow::Result<ServeConfig> {
    let meshes = args
        .mesh
        .iter()
        .map(|m| parse_mesh(m))
        .collect::<Result<Vec<_>, _>>()?;
    let limits = Limits {
        rate_per_sec: parse_rate(&args.rate)?,
        burst: f64::from(args.burst.max(1)),
        max_connections: args.max_connections.max(1),
        max_connections_per_ip: args.max_connections_per_ip.max(1),
        max_meshes: args.max_meshes,
        ..Limits::default()
    };
    Ok(ServeConfig {
        listen: args.listen,
        data_dir: args.data,
        tls: args.tls_cert.zip(args.tls_key),
        meshes,
        pinned_only: args.pinned_only,
        limits,
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = config(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let prepared = prepare(config).await?;
        prepared.run(shutdown_signal()).await;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping on signal");
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let cli = Cli::try_parse_from(
            [
                "wgmesh",
                "registry",
                "serve",
                "--listen",
                "127.0.0.1:8443",
                "--data",
                "/d",
            ]
            .iter()
            .chain(args),
        )?;
        match cli.command {
            Command::Registry(RegistryCommand::Serve(a)) => Ok(a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn flags_make_the_server_configuration() {
        let rid_v = format!("{}:{}", "01".repeat(8), "ab".repeat(32));
        let args = serve_args(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--mesh",
            &rid_v,
            "--pinned-only",
            "--rate",
            "2.5/s",
            "--burst",
            "7",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let c = config(args).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.tls, Some(("c.pem".into(), "k.pem".into())));
        assert_eq!(c.meshes, vec![([1; 8], [0xab; 32])]);
        assert!(c.pinned_only);
        assert_eq!((c.limits.rate_per_sec, c.limits.burst), (2.5, 7.0));
        let d = config(serve_args(&[]).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((d.tls, d.limits), (None, Limits::default()));
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(
            serve_args(&["--tls-cert", "c.pem"]).is_err(),
            "cert without key"
        );
        assert!(
            serve_args(&["--tls-key", "k.pem"]).is_err(),
            "key without cert"
        );
        for bad in [&["--mesh", "nope"][..], &["--rate", "fast"][..]] {
            let args = serve_args(bad).unwrap_or_else(|e| panic!("{e}"));
            assert!(config(args).is_err(), "{bad:?}");
        }
    }
}
