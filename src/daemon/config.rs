//! Configuration of `wgmesh up`: the command-line options, the TOML config file
//! (`/etc/wgmesh/<iface>.toml`, given with `--config`) with the same option names, the merge
//! (flags win over the file, the file over defaults) and validation into one
//! [`DaemonConfig`] with clear errors. Live-reloadable fields are listed for SIGHUP.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Args;
use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;

use super::secret_source::SecretArgs;
use crate::discovery::registry::{RegistryUrl, RegistryUrlError};
use crate::mesh::RoutePolicy;
use crate::platform::BackendChoice;

/// Default WireGuard listen port (the first free one in +1..+100 is used when busy).
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
/// Default interface name.
pub const DEFAULT_INTERFACE: &str = "wg0";
/// Default state directory (identity, peer cache).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/wgmesh";
/// Default runtime directory (control socket).
pub const DEFAULT_RUNTIME_DIR: &str = "/run/wgmesh";
/// STUN servers asked when neither `--stun` nor `--no-stun` is given.
pub const DEFAULT_STUN_SERVERS: [&str; 2] = ["stun.l.google.com:19302", "stun.cloudflare.com:3478"];

/// Default `--max-relayed-peers`: peers an introducer relays before its score drops.
pub const DEFAULT_MAX_RELAYED_PEERS: u32 = 64;
/// Largest `--max-relayed-peers` accepted.
pub const MAX_RELAYED_PEERS_LIMIT: u32 = 10_000;

/// Largest config file read.
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// Options of `wgmesh up`. Every option can also be set in the config file (same name, e.g.
/// `listen-port = 51820`, `advertise-routes = ["192.168.1.0/24"]`); flags win.
#[derive(Debug, Clone, Default, Args)]
pub struct UpArgs {
    /// TOML config file with the same option names (e.g. /etc/wgmesh/wg0.toml).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Mesh interface name [default: wg0].
    #[arg(long, short = 'i', value_name = "IFACE")]
    pub interface: Option<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// WireGuard UDP port; if busy, the first free port in +1..+100 [default: 51820].
    #[arg(long, value_name = "PORT")]
    pub listen_port: Option<u16>,
    /// Directory for the identity and peer cache [default: /var/lib/wgmesh].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory for the control socket [default: /run/wgmesh].
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// WireGuard backend: auto (kernel when available), kernel, or userspace (wireguard-go);
    /// the environment variable WGMESH_BACKEND overrides it [default: auto].
    #[arg(long, value_name = "auto|kernel|userspace")]
    pub backend: Option<String>,
    /// IPv4 mesh subnet instead of the derived 10.x.0.0/16 (every node must use the same).
    #[arg(long, value_name = "CIDR")]
    pub mesh_subnet: Option<Ipv4Net>,
    /// Networks behind this node that it routes for the mesh (comma-separated).
    #[arg(long, value_name = "CIDR,...", value_delimiter = ',')]
    pub advertise_routes: Option<Vec<IpNet>>,
    /// Which advertised networks to install: "all" (default: every network except default
    /// routes, the mesh's own subnets and networks overlapping local ones), "none", or a
    /// comma-separated list of allowed CIDRs (a default route only if listed).
    #[arg(long, value_name = "all|none|CIDR,...")]
    pub accept_routes: Option<String>,
    /// Act as an introducer: coordinate hole punching and relay for others (needs a public
    /// address).
    #[arg(long)]
    pub introducer: bool,
    /// Always relay through an introducer when one exists (testing, hostile networks).
    #[arg(long)]
    pub force_relay: bool,
    /// Do not try hole punching.
    #[arg(long)]
    pub no_punching: bool,
    /// Do not use LAN multicast discovery.
    #[arg(long)]
    pub no_lan_discovery: bool,
    /// Do not use the BitTorrent Mainline DHT.
    #[arg(long)]
    pub no_dht: bool,
    /// Announce privacy (Dandelion++): send this node's new records along a stem of relays
    /// first, so the mesh learns them from another node.
    #[arg(long)]
    pub privacy: bool,
    /// Do not configure mesh IPv6 addresses.
    #[arg(long)]
    pub no_ipv6: bool,
    /// A static control endpoint to contact (repeatable), for meshes without DHT or LAN.
    #[arg(long, value_name = "HOST:PORT")]
    pub peer: Vec<String>,
    /// DHT bootstrap nodes instead of the public routers (repeatable or comma-separated;
    /// the routing table saved by the last run is tried first).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub dht_bootstrap: Option<Vec<String>>,
    /// STUN servers (repeatable or comma-separated) the daemon asks for its public address and
    /// NAT type from the control port, at start, every 60 s and on address changes; use two
    /// (or one RFC 5780 server) to tell cone from symmetric [default: stun.l.google.com:19302,
    /// stun.cloudflare.com:3478].
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub stun: Option<Vec<String>>,
    /// Do not ask STUN servers (no public address, NAT type unknown).
    #[arg(long, conflicts_with = "stun")]
    pub no_stun: bool,
    /// Serve Prometheus metrics on this address (loopback only unless
    /// --metrics-allow-remote).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Allow --metrics on a non-loopback address.
    #[arg(long)]
    pub metrics_allow_remote: bool,
    /// Log format: text or json [default: text].
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<String>,
    /// Keep the interface when the daemon stops.
    #[arg(long)]
    pub keep_interface: bool,
    /// Most peers the store accepts (flood protection) [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_peers: Option<usize>,
    /// A registry to publish this node's sealed record to and read the others' from
    /// (repeatable): https://HOST[:PORT] (a `wgmesh registry serve` server; http:// too) or
    /// github:OWNER/REPO (an issue in that repository, token from --registry-token-file, the
    /// systemd credential github-token, or GITHUB_TOKEN).
    #[arg(long, value_name = "URL")]
    pub registry: Vec<String>,
    /// PEM certificate(s) to trust for https registries, in addition to the system's (a
    /// self-signed `wgmesh registry serve`).
    #[arg(long, value_name = "PEM")]
    pub registry_ca: Option<PathBuf>,
    /// File holding the GitHub token for github: registries.
    #[arg(long, value_name = "PATH")]
    pub registry_token_file: Option<PathBuf>,
    /// Introducers: how many peers this node relays at most before other nodes prefer other
    /// relays (advertised in its record; above 90 % its relay score drops) [default: 64].
    #[arg(long, value_name = "N")]
    pub max_relayed_peers: Option<u32>,
}

/// The config file: the same names as the flags (kebab-case). Unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ConfigFile {
    pub interface: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub listen_port: Option<u16>,
    pub state_dir: Option<PathBuf>,
    pub runtime_dir: Option<PathBuf>,
    pub backend: Option<String>,
    pub mesh_subnet: Option<Ipv4Net>,
    pub advertise_routes: Option<Vec<IpNet>>,
    pub accept_routes: Option<AcceptRoutesValue>,
    pub introducer: Option<bool>,
    pub force_relay: Option<bool>,
    pub no_punching: Option<bool>,
    pub no_lan_discovery: Option<bool>,
    pub no_dht: Option<bool>,
    pub privacy: Option<bool>,
    pub no_ipv6: Option<bool>,
    pub peer: Option<Vec<String>>,
    pub dht_bootstrap: Option<Vec<String>>,
    pub stun: Option<Vec<String>>,
    pub no_stun: Option<bool>,
    pub metrics: Option<SocketAddr>,
    pub metrics_allow_remote: Option<bool>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub keep_interface: Option<bool>,
    pub max_peers: Option<usize>,
    pub registry: Option<Vec<String>>,
    pub registry_ca: Option<PathBuf>,
    pub registry_token_file: Option<PathBuf>,
    pub max_relayed_peers: Option<u32>,
}

/// `accept-routes` in the file: a word ("all"/"none") or a list of CIDRs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum AcceptRoutesValue {
    Word(String),
    List(Vec<String>),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub config_path: Option<PathBuf>,
    pub interface: String,
    pub secret: SecretArgs,
    pub listen_port: u16,
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub backend: BackendChoice,
    pub mesh_subnet: Option<Ipv4Net>,
    pub advertise_routes: Vec<IpNet>,
    pub accept_routes: RoutePolicy,
    pub introducer: bool,
    pub force_relay: bool,
    pub no_punching: bool,
    pub no_lan_discovery: bool,
    pub no_dht: bool,
    pub privacy: bool,
    pub no_ipv6: bool,
    pub static_peers: Vec<String>,
    pub dht_bootstrap: Vec<String>,
    /// STUN servers to ask; empty with `--no-stun`.
    pub stun: Vec<String>,
    pub metrics: Option<SocketAddr>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub keep_interface: bool,
    pub max_peers: usize,
    /// `--registry` (empty: no registry).
    pub registries: Vec<RegistryUrl>,
    pub registry_ca: Option<PathBuf>,
    pub registry_token_file: Option<PathBuf>,
    pub max_relayed_peers: u32,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is larger than 256 KiB: is it the right file?")]
    TooLarge { path: PathBuf },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    Backend(#[from] crate::platform::backend::BackendParseError),
    #[error("--log-format {0:?} is not one of text, json")]
    LogFormat(String),
    #[error("--accept-routes {0:?} is not \"all\", \"none\" or a comma-separated list of CIDRs")]
    AcceptRoutes(String),
    #[error("interface name {0:?} is not usable (1-15 characters of A-Z a-z 0-9 _ . -)")]
    Interface(String),
    #[error("--listen-port 0 is not a port; leave it out for 51820")]
    ListenPort,
    #[error(
        "--metrics {0} is not a loopback address: metrics reveal the mesh's peers; add --metrics-allow-remote if you mean it"
    )]
    MetricsRemote(SocketAddr),
    #[error("advertised route {0} has host bits set: did you mean {1}?")]
    RouteHostBits(IpNet, IpNet),
    #[error("--max-peers must be at least 1")]
    MaxPeers,
    #[error(transparent)]
    Registry(#[from] RegistryUrlError),
    #[error(
        "--max-relayed-peers {0} is out of range: give 1 to {MAX_RELAYED_PEERS_LIMIT} (default {DEFAULT_MAX_RELAYED_PEERS})"
    )]
    MaxRelayedPeers(u32),
}

fn parse_log_format(s: &str) -> Result<LogFormat, ConfigError> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(ConfigError::LogFormat(s.to_string())),
    }
}

/// Parses `all`, `none` or a CIDR list.
pub fn parse_accept_routes(items: &[String]) -> Result<RoutePolicy, ConfigError> {
    let joined = items.join(",");
    match items {
        [w] if w.trim() == "all" => Ok(RoutePolicy::AcceptAll),
        [w] if w.trim() == "none" => Ok(RoutePolicy::AcceptNone),
        _ => items
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| {
                s.trim()
                    .parse::<IpNet>()
                    .map_err(|_| ConfigError::AcceptRoutes(joined.clone()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(RoutePolicy::AcceptListed),
    }
}

/// Reads and parses a config file (bounded).
pub fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}

fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback(),
    }
}

impl DaemonConfig {
    /// Merges flags over the file over defaults, and validates. `env_backend` is
    /// `$WGMESH_BACKEND`, which overrides the flag and the file (the platform's rule);
    /// `log_level` is the global `--log-level` flag if given.
    pub fn resolve(
        args: &UpArgs,
        file: &ConfigFile,
        env_backend: Option<&str>,
        log_level: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let interface = args
            .interface
            .clone()
            .or_else(|| file.interface.clone())
            .unwrap_or_else(|| DEFAULT_INTERFACE.into());
        if crate::identity::state::validate_interface_name(&interface).is_err() {
            return Err(ConfigError::Interface(interface));
        }
        let listen_port = args
            .listen_port
            .or(file.listen_port)
            .unwrap_or(DEFAULT_LISTEN_PORT);
        if listen_port == 0 {
            return Err(ConfigError::ListenPort);
        }
        let backend = BackendChoice::from_flag_and_env(
            args.backend.as_deref().or(file.backend.as_deref()),
            env_backend,
        )?;
        let accept_routes = match (&args.accept_routes, &file.accept_routes) {
            (Some(flag), _) => parse_accept_routes(std::slice::from_ref(flag))?,
            (None, Some(AcceptRoutesValue::Word(w))) => {
                parse_accept_routes(std::slice::from_ref(w))?
            }
            (None, Some(AcceptRoutesValue::List(l))) => parse_accept_routes(l)?,
            (None, None) => RoutePolicy::AcceptAll,
        };
        let advertise_routes = args
            .advertise_routes
            .clone()
            .or_else(|| file.advertise_routes.clone())
            .unwrap_or_default();
        for r in &advertise_routes {
            if r.trunc() != *r {
                return Err(ConfigError::RouteHostBits(*r, r.trunc()));
            }
        }
        let metrics = args.metrics.or(file.metrics);
        let allow_remote = args.metrics_allow_remote || file.metrics_allow_remote.unwrap_or(false);
        if let Some(m) = metrics
            && !is_loopback(&m)
            && !allow_remote
        {
            return Err(ConfigError::MetricsRemote(m));
        }
        let log_format = match args.log_format.as_deref().or(file.log_format.as_deref()) {
            Some(f) => parse_log_format(f)?,
            None => LogFormat::Text,
        };
        let max_peers = args.max_peers.or(file.max_peers).unwrap_or(1000);
        if max_peers == 0 {
            return Err(ConfigError::MaxPeers);
        }
        let max_relayed_peers = args
            .max_relayed_peers
            .or(file.max_relayed_peers)
            .unwrap_or(DEFAULT_MAX_RELAYED_PEERS);
        if !(1..=MAX_RELAYED_PEERS_LIMIT).contains(&max_relayed_peers) {
            return Err(ConfigError::MaxRelayedPeers(max_relayed_peers));
        }
        let mut secret = args.secret.clone();
        if secret.secret_file.is_none() {
            secret.secret_file = file.secret_file.clone();
        }
        let registries = if args.registry.is_empty() {
            file.registry.clone().unwrap_or_default()
        } else {
            args.registry.clone()
        }
        .iter()
        .map(|r| RegistryUrl::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
        let flag = |a: bool, f: Option<bool>| a || f.unwrap_or(false);
        Ok(Self {
            config_path: args.config.clone(),
            interface,
            secret,
            listen_port,
            state_dir: args
                .state_dir
                .clone()
                .or_else(|| file.state_dir.clone())
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            runtime_dir: args
                .runtime_dir
                .clone()
                .or_else(|| file.runtime_dir.clone())
                .unwrap_or_else(|| DEFAULT_RUNTIME_DIR.into()),
            backend,
            mesh_subnet: args.mesh_subnet.or(file.mesh_subnet),
            advertise_routes,
            accept_routes,
            introducer: flag(args.introducer, file.introducer),
            force_relay: flag(args.force_relay, file.force_relay),
            no_punching: flag(args.no_punching, file.no_punching),
            no_lan_discovery: flag(args.no_lan_discovery, file.no_lan_discovery),
            no_dht: flag(args.no_dht, file.no_dht),
            privacy: flag(args.privacy, file.privacy),
            no_ipv6: flag(args.no_ipv6, file.no_ipv6),
            static_peers: if args.peer.is_empty() {
                file.peer.clone().unwrap_or_default()
            } else {
                args.peer.clone()
            },
            dht_bootstrap: args
                .dht_bootstrap
                .clone()
                .or_else(|| file.dht_bootstrap.clone())
                .unwrap_or_default(),
            stun: if flag(args.no_stun, file.no_stun) {
                Vec::new()
            } else {
                args.stun
                    .clone()
                    .or_else(|| file.stun.clone())
                    .unwrap_or_else(|| DEFAULT_STUN_SERVERS.iter().map(|s| s.to_string()).collect())
            },
            metrics,
            log_level: log_level
                .map(str::to_string)
                .or_else(|| file.log_level.clone())
                .unwrap_or_else(|| "info".into()),
            log_format,
            keep_interface: flag(args.keep_interface, file.keep_interface),
            max_peers,
            registries,
            registry_ca: args
                .registry_ca
                .clone()
                .or_else(|| file.registry_ca.clone()),
            registry_token_file: args
                .registry_token_file
                .clone()
                .or_else(|| file.registry_token_file.clone()),
            max_relayed_peers,
        })
    }

    /// What changed between two configurations, split into what SIGHUP applies live and
    /// what needs a restart (named in a warning).
    pub fn reload_changes(&self, new: &Self) -> ReloadChanges {
        let mut live = Vec::new();
        let mut restart = Vec::new();
        let mut note = |changed: bool, name: &'static str, is_live: bool| {
            if changed {
                if is_live {
                    live.push(name)
                } else {
                    restart.push(name)
                }
            }
        };
        note(
            self.advertise_routes != new.advertise_routes,
            "advertise-routes",
            true,
        );
        note(
            self.accept_routes != new.accept_routes,
            "accept-routes",
            true,
        );
        note(self.log_level != new.log_level, "log-level", true);
        note(self.introducer != new.introducer, "introducer", true);
        note(self.interface != new.interface, "interface", false);
        note(
            self.secret.secret_file != new.secret.secret_file,
            "secret-file",
            false,
        );
        note(self.listen_port != new.listen_port, "listen-port", false);
        note(self.state_dir != new.state_dir, "state-dir", false);
        note(self.runtime_dir != new.runtime_dir, "runtime-dir", false);
        note(self.backend != new.backend, "backend", false);
        note(self.mesh_subnet != new.mesh_subnet, "mesh-subnet", false);
        note(self.force_relay != new.force_relay, "force-relay", false);
        note(self.no_punching != new.no_punching, "no-punching", false);
        note(
            self.no_lan_discovery != new.no_lan_discovery,
            "no-lan-discovery",
            false,
        );
        note(self.no_dht != new.no_dht, "no-dht", false);
        note(self.privacy != new.privacy, "privacy", false);
        note(self.no_ipv6 != new.no_ipv6, "no-ipv6", false);
        note(self.static_peers != new.static_peers, "peer", false);
        note(
            self.dht_bootstrap != new.dht_bootstrap,
            "dht-bootstrap",
            false,
        );
        note(self.stun != new.stun, "stun", false);
        note(self.metrics != new.metrics, "metrics", false);
        note(self.log_format != new.log_format, "log-format", false);
        note(self.max_peers != new.max_peers, "max-peers", false);
        note(self.registries != new.registries, "registry", false);
        note(self.registry_ca != new.registry_ca, "registry-ca", false);
        note(
            self.registry_token_file != new.registry_token_file,
            "registry-token-file",
            false,
        );
        note(
            self.max_relayed_peers != new.max_relayed_peers,
            "max-relayed-peers",
            false,
        );
        ReloadChanges { live, restart }
    }
}

/// The option names a reload changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadChanges {
    /// Applied without dropping tunnels.
    pub live: Vec<&'static str>,
    /// Changed in the file but only applied at the next start.
    pub restart: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ConfigFile {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c =
            DaemonConfig::resolve(&UpArgs::default(), &ConfigFile::default(), None, None).unwrap();
        assert_eq!(c.interface, "wg0");
        assert_eq!(c.listen_port, 51820);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/wgmesh"));
        assert_eq!(c.runtime_dir, PathBuf::from("/run/wgmesh"));
        assert_eq!(c.backend, BackendChoice::Auto);
        assert_eq!(c.accept_routes, RoutePolicy::AcceptAll);
        assert_eq!(c.max_peers, 1000);
        assert_eq!(c.max_relayed_peers, DEFAULT_MAX_RELAYED_PEERS);
        assert_eq!(c.log_level, "info");
    }

    #[test]
    fn max_relayed_peers_is_checked() {
        let with = |n: u32| {
            let args = UpArgs {
                max_relayed_peers: Some(n),
                ..UpArgs::default()
            };
            DaemonConfig::resolve(&args, &ConfigFile::default(), None, None)
        };
        assert_eq!(with(1).unwrap().max_relayed_peers, 1);
        assert_eq!(with(10_000).unwrap().max_relayed_peers, 10_000);
        for bad in [0, 10_001, u32::MAX] {
            let e = with(bad).unwrap_err();
            assert!(matches!(e, ConfigError::MaxRelayedPeers(n) if n == bad));
            assert!(e.to_string().contains("give 1 to 10000"), "{e}");
        }
        let f = file("max-relayed-peers = 8");
        let c = DaemonConfig::resolve(&UpArgs::default(), &f, None, None).unwrap();
        assert_eq!(c.max_relayed_peers, 8);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let f = file(
            r#"
            interface = "mesh0"
            listen-port = 40000
            backend = "userspace"
            advertise-routes = ["192.168.7.0/24"]
            accept-routes = ["10.20.0.0/16", "0.0.0.0/0"]
            introducer = true
            privacy = true
            peer = ["198.51.100.7:51900"]
            log-level = "debug"
            secret-file = "/etc/wgmesh/mesh0.secret"
            "#,
        );
        let c = DaemonConfig::resolve(&UpArgs::default(), &f, None, None).unwrap();
        assert_eq!(c.interface, "mesh0");
        assert_eq!(c.listen_port, 40000);
        assert_eq!(c.backend, BackendChoice::Userspace);
        let env = DaemonConfig::resolve(&UpArgs::default(), &f, Some("kernel"), None).unwrap();
        assert_eq!(
            env.backend,
            BackendChoice::Kernel,
            "WGMESH_BACKEND overrides flag and file"
        );
        assert!(c.introducer);
        assert!(c.privacy);
        assert_eq!(c.static_peers, vec!["198.51.100.7:51900".to_string()]);
        assert_eq!(c.log_level, "debug");
        assert_eq!(
            c.secret.secret_file,
            Some(PathBuf::from("/etc/wgmesh/mesh0.secret"))
        );
        assert_eq!(
            c.accept_routes,
            RoutePolicy::AcceptListed(vec![
                "10.20.0.0/16".parse().unwrap(),
                "0.0.0.0/0".parse().unwrap()
            ])
        );
        let args = UpArgs {
            interface: Some("wg9".into()),
            listen_port: Some(41000),
            backend: Some("kernel".into()),
            accept_routes: Some("none".into()),
            ..Default::default()
        };
        let c = DaemonConfig::resolve(&args, &f, None, Some("warn")).unwrap();
        assert_eq!((c.interface.as_str(), c.listen_port), ("wg9", 41000));
        assert_eq!(c.backend, BackendChoice::Kernel);
        assert_eq!(c.accept_routes, RoutePolicy::AcceptNone);
        assert_eq!(c.log_level, "warn");
        assert_eq!(
            c.advertise_routes,
            vec!["192.168.7.0/24".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn stun_servers_default_file_flag_and_off() {
        let none = ConfigFile::default();
        let c = DaemonConfig::resolve(&UpArgs::default(), &none, None, None).unwrap();
        assert_eq!(c.stun, DEFAULT_STUN_SERVERS.map(String::from).to_vec());
        let f = file(r#"stun = ["192.0.2.1:3478", "192.0.2.2:3478"]"#);
        let c = DaemonConfig::resolve(&UpArgs::default(), &f, None, None).unwrap();
        assert_eq!(c.stun, vec!["192.0.2.1:3478", "192.0.2.2:3478"]);
        let args = UpArgs {
            stun: Some(vec!["192.0.2.9:3478".into()]),
            ..Default::default()
        };
        let c = DaemonConfig::resolve(&args, &f, None, None).unwrap();
        assert_eq!(c.stun, vec!["192.0.2.9:3478"]);
        let off = file("no-stun = true");
        let c = DaemonConfig::resolve(&UpArgs::default(), &off, None, None).unwrap();
        assert!(c.stun.is_empty());
    }

    #[test]
    fn dht_bootstrap_is_repeatable_comma_separated_and_read_from_the_file() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            up: UpArgs,
        }
        let cli = Cli::try_parse_from([
            "up",
            "--dht-bootstrap",
            "192.0.2.21:6881,192.0.2.22:6881",
            "--dht-bootstrap=dht.example:6881",
            "--no-dht",
        ])
        .unwrap();
        let c = DaemonConfig::resolve(&cli.up, &ConfigFile::default(), None, None).unwrap();
        assert_eq!(
            c.dht_bootstrap,
            ["192.0.2.21:6881", "192.0.2.22:6881", "dht.example:6881"]
        );
        assert!(c.no_dht);
        let f = file("dht-bootstrap = [\"192.0.2.30:6881\"]\nno-dht = false\n");
        let c = DaemonConfig::resolve(&UpArgs::default(), &f, None, None).unwrap();
        assert_eq!(c.dht_bootstrap, ["192.0.2.30:6881"]);
        assert!(!c.no_dht);
    }

    #[test]
    fn registries_are_repeatable_parsed_and_read_from_the_file() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            up: UpArgs,
        }
        let cli = Cli::try_parse_from([
            "up",
            "--registry",
            "https://reg.example:8443",
            "--registry=github:acme/mesh",
            "--registry-ca",
            "/etc/wgmesh/ca.pem",
        ])
        .unwrap();
        let c = DaemonConfig::resolve(&cli.up, &ConfigFile::default(), None, None).unwrap();
        assert_eq!(
            c.registries,
            [
                RegistryUrl::Http("https://reg.example:8443".into()),
                RegistryUrl::GitHub {
                    owner: "acme".into(),
                    repo: "mesh".into()
                }
            ]
        );
        assert_eq!(c.registry_ca, Some(PathBuf::from("/etc/wgmesh/ca.pem")));
        let f =
            file("registry = [\"github:acme/other\"]\nregistry-token-file = \"/etc/wgmesh/gh\"\n");
        let c = DaemonConfig::resolve(&UpArgs::default(), &f, None, None).unwrap();
        assert_eq!(c.registries.len(), 1);
        assert_eq!(c.registry_token_file, Some(PathBuf::from("/etc/wgmesh/gh")));
        let bad = UpArgs {
            registry: vec!["reg.example:8443".into()],
            ..Default::default()
        };
        let err = DaemonConfig::resolve(&bad, &ConfigFile::default(), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("github:OWNER/REPO"), "{err}");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let bad = |args: UpArgs| {
            DaemonConfig::resolve(&args, &ConfigFile::default(), None, None)
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(UpArgs {
                backend: Some("boringtun".into()),
                ..Default::default()
            })
            .contains("auto, kernel or userspace")
        );
        assert!(
            bad(UpArgs {
                interface: Some("a/b".into()),
                ..Default::default()
            })
            .contains("interface name")
        );
        assert!(
            bad(UpArgs {
                listen_port: Some(0),
                ..Default::default()
            })
            .contains("51820")
        );
        assert!(
            bad(UpArgs {
                metrics: Some("0.0.0.0:9100".parse().unwrap()),
                ..Default::default()
            })
            .contains("--metrics-allow-remote")
        );
        assert!(
            bad(UpArgs {
                accept_routes: Some("some".into()),
                ..Default::default()
            })
            .contains("accept-routes")
        );
        assert!(
            bad(UpArgs {
                advertise_routes: Some(vec!["10.1.2.3/16".parse().unwrap()]),
                ..Default::default()
            })
            .contains("10.1.0.0/16")
        );
        let ok = UpArgs {
            metrics: Some("0.0.0.0:9100".parse().unwrap()),
            metrics_allow_remote: true,
            ..Default::default()
        };
        assert!(DaemonConfig::resolve(&ok, &ConfigFile::default(), None, None).is_ok());
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wg0.toml");
        std::fs::write(&p, "listen_prot = 5\n").unwrap();
        let err = read_config_file(&p).unwrap_err().to_string();
        assert!(
            err.contains("wg0.toml") && err.contains("listen_prot"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_example_config_parses_and_uncommented_it_still_does() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/example.toml");
        assert_eq!(
            read_config_file(Path::new(path)).unwrap(),
            ConfigFile::default()
        );
        let uncommented: String = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("# ").filter(|l| l.contains(" = ")))
            .map(|l| format!("{}\n", l.split("   #").next().unwrap_or(l)))
            .collect();
        let f: ConfigFile = toml::from_str(&uncommented).unwrap();
        let c = DaemonConfig::resolve(&UpArgs::default(), &f, None, None).unwrap();
        assert_eq!(c.listen_port, 51820);
        assert_eq!(
            c.advertise_routes,
            vec!["192.168.1.0/24".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn reload_separates_live_changes_from_restart_ones() {
        let a =
            DaemonConfig::resolve(&UpArgs::default(), &ConfigFile::default(), None, None).unwrap();
        let f = file(
            "advertise-routes = [\"10.9.0.0/24\"]\nlog-level = \"debug\"\nlisten-port = 40000\n",
        );
        let b = DaemonConfig::resolve(&UpArgs::default(), &f, None, None).unwrap();
        let ch = a.reload_changes(&b);
        assert_eq!(ch.live, vec!["advertise-routes", "log-level"]);
        assert_eq!(ch.restart, vec!["listen-port"]);
    }
}
