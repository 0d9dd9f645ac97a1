//! `wgmesh up`: resolves the configuration, the secret and the identity, sets up logging (with
//! a filter SIGHUP can change), drops every capability but CAP_NET_ADMIN while the process is
//! still single-threaded, then starts a small tokio runtime and runs the node.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, reload};

use super::config::{ConfigFile, DaemonConfig, LogFormat, UpArgs, read_config_file};
use super::node::{NodeSetup, SetLogLevel, run_node};
use super::privileges::{describe, drop_capabilities, required_capabilities};
use super::secret_source::{SecretEnv, resolve_secret};
use crate::identity::{identity_path, load_or_create_identity};
use crate::proto::MeshKeys;

/// Why the daemon could not start (each message says what to do).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error(transparent)]
    Secret(#[from] super::secret_source::SecretSourceError),
    #[error(transparent)]
    Subnet(#[from] crate::proto::derive::SubnetError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Privileges(#[from] super::privileges::PrivilegeError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Node(#[from] super::node::NodeError),
}

fn init_logging(level: &str, format: LogFormat) -> SetLogLevel {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
    Box::new(move |lvl: &str| {
        let f = EnvFilter::try_new(lvl).map_err(|e| e.to_string())?;
        handle.reload(f).map_err(|e| e.to_string())
    })
}

/// Runs `wgmesh up` to completion.
pub fn run_up(args: UpArgs, log_level_flag: Option<String>) -> Result<(), StartError> {
    let file = match &args.config {
        Some(p) => read_config_file(p)?,
        None => ConfigFile::default(),
    };
    let env_backend = std::env::var(crate::platform::backend::BACKEND_ENV).ok();
    let config = DaemonConfig::resolve(
        &args,
        &file,
        env_backend.as_deref(),
        log_level_flag.as_deref(),
    )?;
    let set_log_level = init_logging(&config.log_level, config.log_format);
    let resolved = resolve_secret(&config.secret, &SecretEnv::from_process())?;
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(source = %resolved.origin, "mesh secret loaded");
    let keys = MeshKeys::derive_with_subnet(&resolved.secret, config.mesh_subnet)?;
    let (identity, created) =
        load_or_create_identity(&identity_path(&config.state_dir, &config.interface)?)?;
    if created {
        tracing::info!(state_dir = %config.state_dir.display(), "created a new node identity");
    }
    let keep = required_capabilities(&[config.listen_port, keys.control_port()]);
    let effective = drop_capabilities(&keep)?;
    tracing::info!(capabilities = %describe(&effective), network_id = %keys.network_id_short(), "privileges dropped");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(StartError::Runtime)?;
    runtime.block_on(run_node(NodeSetup {
        config,
        args,
        log_level_flag,
        keys,
        identity,
        set_log_level,
    }))?;
    Ok(())
}
