//! One running node: sets up the interface through the platform traits, restores the peer
//! cache, starts the control socket, metrics and discovery, then runs the main loop — the one
//! task that owns the reconciler — until SIGINT/SIGTERM (SIGHUP reloads the config). Shutdown
//! says goodbye, saves the cache, removes the relay table and the interface.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use super::cache::{cache_path, entries_from_store, entries_to_store, load_cache, save_cache};
use super::config::{DaemonConfig, read_config_file};
use super::local::{LocalFacts, now_millis, sign_local_record};
use super::reconcile::Reconciler;
use super::show::{ShowInputs, build_report};
use crate::control::metrics::{Metrics, bind_metrics, serve_metrics};
use crate::control::protocol::{Request, Response, socket_path};
use crate::control::report::InterfaceReport;
use crate::control::server::{ControlHandler, ControlServer};
use crate::identity::NodeIdentity;
use crate::mesh::{
    AddressCheck, HandshakeAction, HandshakeMonitor, HandshakeSample, HealthView, LocalPlanConfig,
    Millis, PeerStore, Plan, PresharedKey, RemoveReason, RouteAcceptance, StoreConfig, WgKey,
};
use crate::platform::linux::detect::resolve_backend;
use crate::platform::linux::{LinuxWireGuard, NftFirewall, RtnlNetwork};
use crate::platform::{DEFAULT_MTU, DeviceConfig, DeviceState, Network, WireGuardDevice};
use crate::proto::keys::base64_key;
use crate::proto::{MeshKeys, NatType, RecordVerifier, SignedRecord};

/// How long after a peer event the reconciler waits for more (debounce).
const RECONCILE_DEBOUNCE: Duration = Duration::from_millis(100);
/// Safety-net reconcile interval.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// WireGuard handshake/transfer sampling interval.
const HEALTH_EVERY: Duration = Duration::from_secs(20);
/// Store cleanup interval.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);
/// Periodic cache save.
const CACHE_EVERY: Duration = Duration::from_secs(300);
/// Cache write-behind coalescing.
const CACHE_COALESCE: Duration = Duration::from_millis(100);

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Platform(#[from] crate::platform::PlatformError),
    #[error(transparent)]
    Control(#[from] crate::control::server::ControlError),
    #[error("no free UDP port for WireGuard in {from}..={to}: free one or pass --listen-port")]
    NoFreePort { from: u16, to: u16 },
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot sign this node's record: {0}")]
    Record(#[from] crate::proto::RecordError),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
}

/// The first free UDP port in `port..=port+100`.
pub fn free_udp_port(port: u16) -> Result<u16, NodeError> {
    let last = port.saturating_add(100);
    (port..=last)
        .find(|p| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, *p)).is_ok())
        .ok_or(NodeError::NoFreePort {
            from: port,
            to: last,
        })
}

/// What `show` reads, refreshed by the main loop.
#[derive(Default)]
struct View {
    interface: InterfaceReport,
    device: Option<DeviceState>,
    plan: Plan,
    rtt_ms: BTreeMap<WgKey, f64>,
}

/// Shared between the main loop and the control socket.
struct Shared {
    store: Arc<PeerStore>,
    view: Mutex<View>,
    dead_after: Duration,
}

impl ControlHandler for Shared {
    fn handle(&self, request: Request) -> Response {
        match request {
            Request::Ping => Response::Pong {
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            Request::Show => {
                let peers = self.store.snapshot();
                let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
                Response::Show(Box::new(build_report(ShowInputs {
                    interface: view.interface.clone(),
                    peers: &peers,
                    device: view.device.as_ref(),
                    plan: &view.plan,
                    rtt_ms: &view.rtt_ms,
                    now: now_millis(),
                    dead_after: self.dead_after,
                })))
            }
        }
    }
}

/// Changes the log filter at run time (SIGHUP).
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// Everything resolved before the runtime started.
pub struct NodeSetup {
    pub config: DaemonConfig,
    pub keys: MeshKeys,
    pub identity: NodeIdentity,
    /// Reloads the log filter (SIGHUP).
    pub set_log_level: SetLogLevel,
}

fn local_networks(addrs: &[IpNet], mesh4: Ipv4Net, mesh6: Ipv6Net) -> Vec<IpNet> {
    addrs
        .iter()
        .map(IpNet::trunc)
        .filter(|n| *n != IpNet::V4(mesh4) && *n != IpNet::V6(mesh6))
        .collect()
}

/// Runs the node until a stop signal. Must be called inside a tokio runtime.
pub async fn run_node(setup: NodeSetup) -> Result<(), NodeError> {
    let NodeSetup {
        mut config,
        keys,
        identity,
        set_log_level,
    } = setup;
    let iface = config.interface.clone();
    let wg_public = identity.wireguard_public();
    let metrics = Arc::new(Metrics::new());

    // 1. The interface.
    let network = RtnlNetwork::new()?;
    let backend = resolve_backend(config.backend, &network).await?;
    let listen_port = free_udp_port(config.listen_port)?;
    if listen_port != config.listen_port {
        tracing::warn!(
            wanted = config.listen_port,
            using = listen_port,
            "WireGuard port busy, using the next free one"
        );
    }
    let device = LinuxWireGuard::create(&iface, backend).await?;
    device
        .configure(&DeviceConfig {
            private_key: *identity.wireguard_private(),
            listen_port: Some(listen_port),
            fwmark: None,
        })
        .await?;
    let mesh_ipv4 = keys.mesh_ipv4(&wg_public, 0);
    let subnet = keys.ipv4_subnet();
    let v4 = Ipv4Net::new(mesh_ipv4, subnet.prefix_len()).unwrap_or(subnet);
    let mesh_ipv6 = keys.mesh_ipv6(&wg_public);
    let v6 = Ipv6Net::new(mesh_ipv6, 64).unwrap_or(keys.ipv6_prefix());
    let mut addresses = vec![IpNet::V4(v4)];
    if !config.no_ipv6 {
        addresses.push(IpNet::V6(v6));
    }
    network.replace_addresses(&iface, &addresses).await?;
    network.set_link(&iface, true, Some(DEFAULT_MTU)).await?;
    tracing::info!(interface = %iface, backend = %backend, port = listen_port, ipv4 = %v4, ipv6 = %v6, "interface up");

    // 2. Store, cache, local record.
    let store = Arc::new(PeerStore::new(
        StoreConfig {
            max_peers: config.max_peers,
            local_key: Some(wg_public),
            ..StoreConfig::default()
        },
        AddressCheck::new(keys.clone()),
    ));
    let events = store.subscribe();
    let cache_file = cache_path(&config.state_dir, &iface);
    match load_cache(&cache_file) {
        Ok(entries) => {
            let (peers, refused) = entries_to_store(entries, &RecordVerifier::new(&keys));
            let report = store.restore(peers, now_millis());
            tracing::info!(restored = ?report, refused, path = %cache_file.display(), "peer cache loaded");
        }
        Err(e) => tracing::error!("{e}"),
    }
    let mut facts = LocalFacts {
        hostname: super::local::hostname(),
        address_nonce: 0,
        endpoints: Vec::new(),
        nat_type: NatType::Unknown,
        introducer: config.introducer,
        routes: config.advertise_routes.clone(),
        control_port: keys.control_port(),
        wireguard_port: listen_port,
    };
    let (record, signed) = sign_local_record(&identity, &keys, &facts, None, now_millis())?;
    let mut local_sequence = record.sequence;
    let (record_tx, _record_rx) = watch::channel::<SignedRecord>(signed);

    // 3. Control socket and metrics.
    let shared = Arc::new(Shared {
        store: store.clone(),
        view: Mutex::new(View::default()),
        dead_after: StoreConfig::default().dead_after,
    });
    let control = ControlServer::bind(&socket_path(&config.runtime_dir, &iface)).await?;
    let control_task = tokio::spawn(control.serve(shared.clone()));
    let metrics_task = match config.metrics {
        Some(addr) => {
            let l = bind_metrics(addr)
                .await
                .map_err(|source| NodeError::Metrics { addr, source })?;
            Some(tokio::spawn(serve_metrics(l, metrics.clone())))
        }
        None => None,
    };

    // 4. Plan configuration.
    let local_nets = local_networks(&network_addresses(&network).await, v4.trunc(), v6.trunc());
    let mut local_plan = LocalPlanConfig::new(
        wg_public,
        mesh_ipv4,
        PresharedKey::new(*keys.wireguard_psk()),
        RouteAcceptance {
            policy: config.accept_routes.clone(),
            mesh_ipv4: subnet,
            mesh_ipv6: keys.ipv6_prefix(),
            local_networks: local_nets,
        },
    );
    local_plan.introducer = config.introducer;
    let firewall = NftFirewall::new(network.clone());
    let mut reconciler = Reconciler::new(device, network, firewall, iface.clone());
    {
        let mut view = shared.view.lock().unwrap_or_else(|p| p.into_inner());
        view.interface = InterfaceReport {
            name: iface.clone(),
            public_key: base64_key(&wg_public),
            listen_port,
            mesh_ipv4: v4.to_string(),
            mesh_ipv6: (!config.no_ipv6).then(|| v6.to_string()),
            network_id: keys.network_id_short(),
            nat_type: NatType::Unknown.as_str().into(),
            public_endpoint: None,
            backend: backend.to_string(),
            introducer: config.introducer,
            ..Default::default()
        };
    }

    // 5. Peer events arrive on a std channel: one blocked thread forwards them (no polling).
    let (event_tx, mut event_rx) = mpsc::channel::<()>(16);
    std::thread::Builder::new()
        .name("wgmesh-events".into())
        .spawn(move || {
            while events.recv().is_ok() {
                if event_tx.blocking_send(()).is_err() {
                    break;
                }
            }
        })
        .map_err(NodeError::Signals)?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(NodeError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(NodeError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(NodeError::Signals)?;
    let mut reconcile_tick = tokio::time::interval(RECONCILE_EVERY);
    let mut health_tick = tokio::time::interval(HEALTH_EVERY);
    let mut cleanup_tick = tokio::time::interval(CLEANUP_EVERY);
    let mut cache_tick = tokio::time::interval(CACHE_EVERY);
    for t in [
        &mut reconcile_tick,
        &mut health_tick,
        &mut cleanup_tick,
        &mut cache_tick,
    ] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let watchdog = super::notify::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut health = HealthView::default();
    let mut handshakes = HandshakeMonitor::default();
    let mut cache_dirty = false;
    let mut reconcile_due: Option<tokio::time::Instant> = None;
    let mut cache_due: Option<tokio::time::Instant> = None;

    reconciler
        .run(&store, &local_plan, &health, now_millis(), &metrics)
        .await;
    super::notify::ready(&format!("{iface} up, {} peers", store.len()));
    tracing::info!(interface = %iface, control_port = keys.control_port(), "wgmesh is running");

    loop {
        let reconcile_at = reconcile_due
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let cache_at =
            cache_due.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => {
                super::notify::reloading();
                reload(&mut config, &set_log_level, &mut facts, &mut local_plan);
                match sign_local_record(&identity, &keys, &facts, Some(local_sequence), now_millis()) {
                    Ok((record, signed)) => {
                        local_sequence = record.sequence;
                        let _ = record_tx.send(signed);
                    }
                    Err(e) => tracing::error!("SIGHUP: the new record cannot be signed: {e}"),
                }
                reconcile_due = Some(tokio::time::Instant::now());
                super::notify::ready("reloaded");
            }
            Some(()) = event_rx.recv() => {
                reconcile_due.get_or_insert_with(|| tokio::time::Instant::now() + RECONCILE_DEBOUNCE);
                if !cache_dirty {
                    cache_dirty = true;
                    cache_due = Some(tokio::time::Instant::now() + CACHE_COALESCE);
                }
            }
            _ = tokio::time::sleep_until(reconcile_at), if reconcile_due.is_some() => {
                reconcile_due = None;
                health.offline.prune(now_millis());
                reconciler.run(&store, &local_plan, &health, now_millis(), &metrics).await;
                publish_plan(&shared, &reconciler);
            }
            _ = reconcile_tick.tick() => {
                reconciler.run(&store, &local_plan, &health, now_millis(), &metrics).await;
                publish_plan(&shared, &reconciler);
            }
            _ = health_tick.tick() => {
                check_handshakes(&mut reconciler, &store, &mut handshakes, &mut health, &shared, &metrics).await;
            }
            _ = cleanup_tick.tick() => {
                let removed = store.cleanup(now_millis());
                if !removed.is_empty() {
                    tracing::info!(removed = removed.len(), "removed peers not seen for 10 minutes");
                }
            }
            _ = tokio::time::sleep_until(cache_at), if cache_due.is_some() => {
                cache_due = None;
                cache_dirty = false;
                save_cache_now(&cache_file, &store);
            }
            _ = cache_tick.tick() => save_cache_now(&cache_file, &store),
            _ = watchdog_tick.tick(), if watchdog.is_some() => super::notify::watchdog(),
        }
    }

    // Shutdown: a second signal exits at once.
    super::notify::stopping();
    tokio::spawn(async move {
        let mut again = signal(SignalKind::terminate()).ok();
        let mut again_int = signal(SignalKind::interrupt()).ok();
        tokio::select! {
            Some(_) = async { again.as_mut()?.recv().await } => {}
            Some(_) = async { again_int.as_mut()?.recv().await } => {}
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    save_cache_now(&cache_file, &store);
    reconciler.teardown().await;
    control_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    if config.keep_interface {
        tracing::info!(interface = %iface, "keeping the interface (--keep-interface)");
    } else if let Err(e) = reconciler.device.delete().await {
        tracing::warn!(error = %e, "could not delete the interface");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Every address on this host's interfaces (for the route-acceptance overlap rule).
async fn network_addresses(net: &RtnlNetwork) -> Vec<IpNet> {
    let mut out = Vec::new();
    if let Ok(names) = std::fs::read_dir("/sys/class/net") {
        for n in names.flatten() {
            let name = n.file_name().to_string_lossy().into_owned();
            if name == "lo" {
                continue;
            }
            if let Ok(a) = net.addresses(&name).await {
                out.extend(a);
            }
        }
    }
    out
}

fn publish_plan<D, N, F>(shared: &Shared, r: &Reconciler<D, N, F>)
where
    D: WireGuardDevice,
    N: Network,
    F: crate::platform::Firewall,
{
    let mut view = shared.view.lock().unwrap_or_else(|p| p.into_inner());
    view.plan = r.last_plan().clone();
}

fn save_cache_now(path: &std::path::Path, store: &PeerStore) {
    match save_cache(path, &entries_from_store(&store.cache_entries())) {
        Ok(true) => tracing::debug!(path = %path.display(), "peer cache saved"),
        Ok(false) => {}
        Err(e) => tracing::warn!("{e}"),
    }
}

async fn check_handshakes<D, N, F>(
    reconciler: &mut Reconciler<D, N, F>,
    store: &PeerStore,
    monitor: &mut HandshakeMonitor,
    health: &mut HealthView,
    shared: &Shared,
    metrics: &Metrics,
) where
    D: WireGuardDevice,
    N: Network,
    F: crate::platform::Firewall,
{
    let state = match reconciler.device.read().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the WireGuard device");
            return;
        }
    };
    let now = now_millis();
    let mut handshake_ages = Vec::new();
    let mut rx = Vec::new();
    let mut tx = Vec::new();
    let keys: Vec<String> = state
        .peers
        .iter()
        .map(|p| base64_key(&p.config.public_key))
        .collect();
    for (p, key_text) in state.peers.iter().zip(&keys) {
        let last = p
            .last_handshake
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Millis(d.as_millis() as u64));
        let sample = HandshakeSample {
            last_handshake: last,
            rx_bytes: p.rx_bytes,
            tx_bytes: p.tx_bytes,
        };
        match monitor.observe(p.config.public_key, sample, now) {
            HandshakeAction::Healthy => {}
            HandshakeAction::Reapply => {
                tracing::info!(peer = %key_text, "handshake stale: applying the peer again");
                reconciler.forget_peer(&p.config.public_key);
            }
            HandshakeAction::Evict => {
                tracing::warn!(peer = %key_text, "handshake stale twice: peer offline for 30 s");
                health.offline.mark(p.config.public_key, now);
                store.remove(&p.config.public_key, RemoveReason::Evicted);
            }
        }
        if let Some(l) = last {
            handshake_ages.push((key_text.as_str(), now.since(l).as_secs_f64()));
        }
        rx.push((key_text.as_str(), p.rx_bytes as f64));
        tx.push((key_text.as_str(), p.tx_bytes as f64));
    }
    metrics.replace(
        "wgmesh_peer_handshake_age_seconds",
        per_peer(handshake_ages),
    );
    metrics.replace("wgmesh_peer_rx_bytes", per_peer(rx));
    metrics.replace("wgmesh_peer_tx_bytes", per_peer(tx));
    metrics.set(
        "wgmesh_events_dropped_total",
        &[],
        store.dropped_events() as f64,
    );
    let mut view = shared.view.lock().unwrap_or_else(|p| p.into_inner());
    view.device = Some(state);
}

fn per_peer(v: Vec<(&str, f64)>) -> Vec<(Vec<(&str, &str)>, f64)> {
    v.into_iter().map(|(k, x)| (vec![("peer", k)], x)).collect()
}

fn reload(
    config: &mut DaemonConfig,
    set_log_level: &SetLogLevel,
    facts: &mut LocalFacts,
    local_plan: &mut LocalPlanConfig,
) {
    let Some(path) = config.config_path.clone() else {
        tracing::warn!("SIGHUP: no --config file to re-read; nothing changed");
        return;
    };
    let file = match read_config_file(&path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("SIGHUP: {e}; keeping the running configuration");
            return;
        }
    };
    let args = super::config::UpArgs {
        config: Some(path),
        interface: Some(config.interface.clone()),
        ..Default::default()
    };
    let new = match DaemonConfig::resolve(
        &args,
        &file,
        std::env::var("WGMESH_BACKEND").ok().as_deref(),
        None,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("SIGHUP: {e}; keeping the running configuration");
            return;
        }
    };
    let changes = config.reload_changes(&new);
    if changes.live.contains(&"log-level") {
        if let Err(e) = set_log_level(&new.log_level) {
            tracing::error!("SIGHUP: log level {:?} not applied: {e}", new.log_level);
        }
    }
    facts.routes = new.advertise_routes.clone();
    facts.introducer = new.introducer;
    local_plan.introducer = new.introducer;
    local_plan.routes.policy = new.accept_routes.clone();
    if changes.live.is_empty() {
        tracing::info!("SIGHUP: configuration re-read, nothing changed");
    } else {
        tracing::info!(changed = ?changes.live, "SIGHUP: applied");
    }
    if !changes.restart.is_empty() {
        tracing::warn!(options = ?changes.restart, "SIGHUP: these options only change on restart");
    }
    config.advertise_routes = new.advertise_routes;
    config.accept_routes = new.accept_routes;
    config.introducer = new.introducer;
    config.log_level = new.log_level;
}
