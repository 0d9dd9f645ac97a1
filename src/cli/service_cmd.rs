//! `wgmesh install-service` and `wgmesh uninstall-service`: set up (or remove) a systemd
//! instance `wgmesh@IFACE` on a machine without the package. The work is in `crate::service`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::service::plan::{Action, read_config, read_secret_file, secret_path};
use crate::service::{ConfigOptions, InstallRequest, SecretInput, ServiceError, Systemd};

/// Options of `wgmesh install-service`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Mesh interface (the instance wgmesh@IFACE).
    #[arg(long, short = 'i', value_name = "IFACE", default_value = "wg0")]
    pub interface: String,
    /// The mesh secret to install as /etc/wgmesh/IFACE.secret (mode 0600, root). Without it an
    /// existing secret is kept, or a new one generated.
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// A complete config file to install as /etc/wgmesh/IFACE.toml instead of the options.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["listen_port", "backend", "mesh_subnet", "advertise_routes", "introducer", "peer", "no_lan_discovery", "no_dht", "metrics"])]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub options: ConfigOptions,
    /// Replace files that install-service did not write.
    #[arg(long)]
    pub force: bool,
    /// Work on this root directory instead of / and run no system tool (for image builds
    /// and tests).
    #[arg(long, value_name = "DIR", hide = true)]
    pub root: Option<PathBuf>,
}

/// Options of `wgmesh uninstall-service`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Mesh interface (the instance wgmesh@IFACE).
    #[arg(long, short = 'i', value_name = "IFACE", default_value = "wg0")]
    pub interface: String,
}

fn require_root(command: &'static str) -> Result<(), ServiceError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(ServiceError::NotRoot(command))
    }
}

/// Tools that only print what they would run (with --root).
struct DryTools;
impl crate::service::SystemTools for DryTools {
    fn run(
        &mut self,
        _: crate::service::system_tools::Tool,
        _: &[&str],
        _: bool,
    ) -> Result<bool, ServiceError> {
        Ok(true)
    }
}

pub fn install(args: InstallArgs) -> anyhow::Result<()> {
    if args.root.is_none() {
        require_root("install-service")?;
    }
    let secret = match &args.secret_file {
        Some(p) => SecretInput::Given(read_secret_file(p)?),
        None => SecretInput::KeepOrGenerate,
    };
    let config_file = args.config.as_deref().map(read_config).transpose()?;
    let req = InstallRequest {
        interface: args.interface.clone(),
        secret,
        config_file,
        options: args.options,
        binary: std::env::current_exe().ok(),
        force: args.force,
    };
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let dry = args.root.is_some();
    let report = match args.root {
        Some(_) => crate::service::install(&root, &req, &mut DryTools),
        None => crate::service::install(&root, &req, &mut Systemd),
    }
    .context("install-service")?;
    for (path, action) in &report.written {
        let what = match action {
            Action::Create => "created",
            Action::Keep => "unchanged",
            Action::Replace => "replaced",
        };
        println!("{what:9} {}", path.display());
    }
    if report.packaged_unit {
        println!("using the packaged unit wgmesh@.service");
    }
    for c in &report.commands {
        println!("{} {c}", if dry { "skipped  " } else { "ran      " });
    }
    if report.generated_secret {
        println!(
            "A new mesh secret was generated: copy {} (mode 0600) to every other machine of \
             the mesh.",
            secret_path(&args.interface).display()
        );
    }
    if !dry {
        println!(
            "wgmesh@{0} is enabled and running: `systemctl status wgmesh@{0}`, `wgmesh show -i {0}`.",
            args.interface
        );
    }
    Ok(())
}

pub fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    require_root("uninstall-service")?;
    let report =
        crate::service::uninstall(std::path::Path::new("/"), &args.interface, &mut Systemd)
            .context("uninstall-service")?;
    if report.nothing_installed {
        println!(
            "nothing to undo: install-service has not set up wgmesh@{} (no /etc/wgmesh/{}.install)",
            args.interface, args.interface
        );
        return Ok(());
    }
    for c in &report.commands {
        println!("ran       {c}");
    }
    for p in &report.removed {
        println!("removed   {}", p.display());
    }
    for p in &report.handed_over {
        println!("kept      {} (another instance uses it)", p.display());
    }
    println!(
        "The system user wgmesh and /var/lib/wgmesh are kept (remove them by hand if unused)."
    );
    Ok(())
}
