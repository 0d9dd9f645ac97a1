//! The files an instance `wgmesh@IFACE` needs and what to do with each (create, keep,
//! replace), decided from the request and what already lies under the root directory. Pure
//! except for reading the existing files.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use ipnet::{IpNet, Ipv4Net};
use zeroize::Zeroizing;

use super::{ServiceError, under};
use crate::proto::secret::{MAX_SECRET_INPUT_BYTES, MeshSecret};

/// The unit and target shipped in contrib/, written when no package provides them.
pub const UNIT_TEXT: &str = include_str!("../../contrib/systemd/wgmesh@.service");
pub const TARGET_TEXT: &str = include_str!("../../contrib/systemd/wgmesh.target");
pub const SYSUSERS_TEXT: &str = include_str!("../../contrib/sysusers.d/wgmesh.conf");
pub const MODULES_TEXT: &str = include_str!("../../contrib/modules-load.d/wgmesh.conf");

/// The binary path the shipped unit runs.
pub const PACKAGED_BINARY: &str = "/usr/bin/wgmesh";
/// Where install-service puts a copy of a binary that is elsewhere (e.g. under /root, which
/// the unit's ProtectHome= hides).
pub const LOCAL_BINARY: &str = "/usr/local/bin/wgmesh";
/// The configuration directory.
pub const ETC_DIR: &str = "/etc/wgmesh";
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Where the mesh secret of the instance comes from.
#[derive(Debug)]
pub enum SecretInput {
    /// The contents of --secret-file (validated).
    Given(Zeroizing<Vec<u8>>),
    /// Keep /etc/wgmesh/IFACE.secret if present, else generate a new secret.
    KeepOrGenerate,
}

/// `wgmesh up` options install-service writes into /etc/wgmesh/IFACE.toml.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigOptions {
    /// WireGuard UDP port.
    #[arg(long, value_name = "PORT")]
    pub listen_port: Option<u16>,
    /// WireGuard backend: auto, kernel or userspace.
    #[arg(long, value_name = "auto|kernel|userspace")]
    pub backend: Option<String>,
    /// IPv4 mesh subnet instead of the derived one (every node must use the same).
    #[arg(long, value_name = "CIDR")]
    pub mesh_subnet: Option<Ipv4Net>,
    /// Networks behind this node that it routes for the mesh (comma-separated).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub advertise_routes: Option<Vec<IpNet>>,
    /// Act as an introducer (needs a public address).
    #[arg(long)]
    pub introducer: bool,
    /// A static control endpoint to contact (repeatable).
    #[arg(long, value_name = "HOST:PORT")]
    pub peer: Vec<String>,
    /// Do not use LAN multicast discovery.
    #[arg(long)]
    pub no_lan_discovery: bool,
    /// Do not use the BitTorrent Mainline DHT.
    #[arg(long)]
    pub no_dht: bool,
    /// Serve Prometheus metrics on this (loopback) address.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

impl ConfigOptions {
    fn is_empty(&self) -> bool {
        self.listen_port.is_none()
            && self.backend.is_none()
            && self.mesh_subnet.is_none()
            && self.advertise_routes.is_none()
            && !self.introducer
            && self.peer.is_empty()
            && !self.no_lan_discovery
            && !self.no_dht
            && self.metrics.is_none()
    }

    /// The TOML text of these options (keys are `wgmesh up` option names).
    pub fn to_toml(&self, interface: &str) -> Result<String, ServiceError> {
        let mut t = format!(
            "# wgmesh@{interface}: written by `wgmesh install-service`. Every key is a `wgmesh up`\n\
             # option; /etc/wgmesh/example.toml (or contrib/example.toml) lists them all. The\n\
             # secret is /etc/wgmesh/{interface}.secret, read as a systemd credential.\n"
        );
        let quoted = |s: &str| -> Result<String, ServiceError> {
            if s.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                return Err(ServiceError::BadConfig(format!(
                    "{s:?}: quotes, backslashes and control characters are not allowed here"
                )));
            }
            Ok(format!("\"{s}\""))
        };
        let list = |items: Vec<String>| -> Result<String, ServiceError> {
            let q = items
                .iter()
                .map(|s| quoted(s))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("[{}]", q.join(", ")))
        };
        // Writing to a String cannot fail.
        if let Some(p) = self.listen_port {
            let _ = writeln!(t, "listen-port = {p}");
        }
        if let Some(b) = &self.backend {
            if !matches!(b.as_str(), "auto" | "kernel" | "userspace") {
                return Err(ServiceError::BadConfig(format!(
                    "--backend {b:?}: use auto, kernel or userspace"
                )));
            }
            let _ = writeln!(t, "backend = {}", quoted(b)?);
        }
        if let Some(s) = &self.mesh_subnet {
            let _ = writeln!(t, "mesh-subnet = {}", quoted(&s.to_string())?);
        }
        if let Some(r) = &self.advertise_routes {
            let r = list(r.iter().map(ToString::to_string).collect())?;
            let _ = writeln!(t, "advertise-routes = {r}");
        }
        if self.introducer {
            let _ = writeln!(t, "introducer = true");
        }
        if !self.peer.is_empty() {
            let _ = writeln!(t, "peer = {}", list(self.peer.clone())?);
        }
        if self.no_lan_discovery {
            let _ = writeln!(t, "no-lan-discovery = true");
        }
        if self.no_dht {
            let _ = writeln!(t, "no-dht = true");
        }
        if let Some(m) = self.metrics {
            let _ = writeln!(t, "metrics = {}", quoted(&m.to_string())?);
        }
        Ok(t)
    }
}

/// What install-service was asked for.
#[derive(Debug)]
pub struct InstallRequest {
    pub interface: String,
    pub secret: SecretInput,
    /// Contents of --config (replaces the generated config).
    pub config_file: Option<Vec<u8>>,
    pub options: ConfigOptions,
    /// The running binary (copied to /usr/local/bin when no package provides /usr/bin/wgmesh).
    pub binary: Option<PathBuf>,
    /// Replace files install-service did not write.
    pub force: bool,
}

/// What to do with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Keep,
    Replace,
}

/// The role of a file: instance files belong to one interface, shared files to every
/// instance install-service made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Secret,
    Config,
    Unit,
    Binary,
    Sysusers,
    ModulesLoad,
}

impl Role {
    /// Shared between instances (removed with the last one).
    pub fn shared(self) -> bool {
        !matches!(self, Role::Secret | Role::Config)
    }
}

/// One file of the plan. `path` is the live system's absolute path.
#[derive(Debug)]
pub struct PlannedFile {
    pub path: PathBuf,
    pub contents: Zeroizing<Vec<u8>>,
    pub mode: u32,
    pub action: Action,
    pub role: Role,
}

/// Everything install-service will write, and the notes for the user.
#[derive(Debug)]
pub struct InstallPlan {
    pub interface: String,
    pub files: Vec<PlannedFile>,
    /// A unit from a package is used (nothing written to /etc/systemd/system).
    pub packaged_unit: bool,
    /// A new secret was generated (the user must copy it to the other machines).
    pub generated_secret: bool,
}

/// Path of the instance's secret, config, and install manifest.
pub fn secret_path(iface: &str) -> PathBuf {
    PathBuf::from(format!("{ETC_DIR}/{iface}.secret"))
}
pub fn config_path(iface: &str) -> PathBuf {
    PathBuf::from(format!("{ETC_DIR}/{iface}.toml"))
}
pub fn manifest_path(iface: &str) -> PathBuf {
    PathBuf::from(format!("{ETC_DIR}/{iface}.install"))
}

fn packaged(root: &Path, rel: &str) -> bool {
    ["/usr/lib", "/lib"]
        .iter()
        .any(|d| under(root, Path::new(&format!("{d}/{rel}"))).exists())
}

fn read_limited(path: &Path, limit: u64) -> Result<Option<Zeroizing<Vec<u8>>>, ServiceError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ServiceError::Read {
                path: path.into(),
                source,
            });
        }
        Ok(m) if m.len() > limit => return Ok(Some(Zeroizing::new(Vec::new()))),
        Ok(_) => {}
    }
    std::fs::read(path)
        .map(|b| Some(Zeroizing::new(b)))
        .map_err(|source| ServiceError::Read {
            path: path.into(),
            source,
        })
}

/// Decides every file of `req` against what exists under `root`. `owned` are the paths an
/// earlier install-service recorded (these may be replaced without --force).
pub fn plan_install(
    root: &Path,
    req: &InstallRequest,
    owned: &[PathBuf],
) -> Result<InstallPlan, ServiceError> {
    crate::identity::state::validate_interface_name(&req.interface)
        .map_err(|e| ServiceError::Interface(req.interface.clone(), e.to_string()))?;
    let iface = req.interface.as_str();
    let mut files = Vec::new();
    let mut generated_secret = false;

    // The secret: given, kept, or generated.
    let secret = secret_path(iface);
    match &req.secret {
        SecretInput::Given(bytes) => files.push((secret, bytes.clone(), 0o600, Role::Secret)),
        SecretInput::KeepOrGenerate => {
            if !under(root, &secret).exists() {
                generated_secret = true;
                let uri = format!("{}\n", MeshSecret::generate().to_uri());
                files.push((
                    secret,
                    Zeroizing::new(uri.into_bytes()),
                    0o600,
                    Role::Secret,
                ));
            }
        }
    }

    // The config: --config, the options, or (nothing asked and one exists) kept.
    let config = config_path(iface);
    let config_text = match &req.config_file {
        Some(bytes) => Some(bytes.clone()),
        None if req.options.is_empty() && under(root, &config).exists() => None,
        None => Some(req.options.to_toml(iface)?.into_bytes()),
    };
    if let Some(text) = config_text {
        files.push((config, Zeroizing::new(text), 0o644, Role::Config));
    }

    // The unit, target and binary, unless a package ships them.
    let packaged_unit = packaged(root, "systemd/system/wgmesh@.service");
    if !packaged_unit {
        let mut unit = UNIT_TEXT.to_string();
        let packaged_bin = under(root, Path::new(PACKAGED_BINARY)).exists();
        if !packaged_bin {
            unit = unit.replace(
                &format!("ExecStart={PACKAGED_BINARY} "),
                &format!("ExecStart={LOCAL_BINARY} "),
            );
            if let Some(bin) = &req.binary {
                let bytes = std::fs::read(bin).map_err(|source| ServiceError::Read {
                    path: bin.clone(),
                    source,
                })?;
                files.push((
                    LOCAL_BINARY.into(),
                    Zeroizing::new(bytes),
                    0o755,
                    Role::Binary,
                ));
            }
        }
        for (path, text) in [
            ("/etc/systemd/system/wgmesh@.service", unit.as_str()),
            ("/etc/systemd/system/wgmesh.target", TARGET_TEXT),
        ] {
            let bytes = Zeroizing::new(text.as_bytes().to_vec());
            files.push((path.into(), bytes, 0o644, Role::Unit));
        }
    }
    if !packaged(root, "sysusers.d/wgmesh.conf") {
        let bytes = Zeroizing::new(SYSUSERS_TEXT.as_bytes().to_vec());
        files.push((
            "/etc/sysusers.d/wgmesh.conf".into(),
            bytes,
            0o644,
            Role::Sysusers,
        ));
    }
    if !packaged(root, "modules-load.d/wgmesh.conf") {
        let bytes = Zeroizing::new(MODULES_TEXT.as_bytes().to_vec());
        files.push((
            "/etc/modules-load.d/wgmesh.conf".into(),
            bytes,
            0o644,
            Role::ModulesLoad,
        ));
    }

    let mut planned = Vec::new();
    for (path, contents, mode, role) in files {
        let limit = if role == Role::Binary {
            u64::MAX
        } else {
            MAX_CONFIG_BYTES.max(MAX_SECRET_INPUT_BYTES as u64)
        };
        let action = match read_limited(&under(root, &path), limit)? {
            None => Action::Create,
            Some(old) if *old == *contents => Action::Keep,
            Some(_) if req.force || owned.contains(&path) => Action::Replace,
            Some(_) => return Err(ServiceError::Foreign(path)),
        };
        planned.push(PlannedFile {
            path,
            contents,
            mode,
            action,
            role,
        });
    }
    Ok(InstallPlan {
        interface: iface.to_string(),
        files: planned,
        packaged_unit,
        generated_secret,
    })
}

/// Reads and validates --secret-file (bounded; must parse as a mesh secret).
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
    let bytes =
        read_limited(path, MAX_SECRET_INPUT_BYTES as u64)?.ok_or_else(|| ServiceError::Read {
            path: path.into(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
    MeshSecret::parse_bytes(&bytes).map_err(|e| ServiceError::BadSecret {
        path: path.into(),
        message: e.to_string(),
    })?;
    Ok(bytes)
}

/// Reads and validates --config (bounded; must parse as a wgmesh config file).
pub fn read_config(path: &Path) -> Result<Vec<u8>, ServiceError> {
    crate::daemon::config::read_config_file(path)
        .map_err(|e| ServiceError::BadConfig(e.to_string()))?;
    std::fs::read(path).map_err(|source| ServiceError::Read {
        path: path.into(),
        source,
    })
}
