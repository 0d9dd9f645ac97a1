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
use crate::control::metrics_http::{bind_metrics, serve_metrics};
use crate::control::protocol::{Request, Response, socket_path};
use crate::control::report::InterfaceReport;
use crate::control::server::{ControlHandler, ControlServer, ResponseFuture};
use crate::discovery::control_socket::{
    ControlSocket, ControlSocketConfig, ControlSocketDeps, ProbeReplyEvent,
};
use crate::discovery::relay_notice::RelayNoticeEvent;
use crate::discovery::rendezvous::RendezvousEvent;
use crate::identity::NodeIdentity;
use crate::mesh::{
    AddressCheck, HandshakeAction, HandshakeMonitor, HandshakeSample, HealthView, LocalPlanConfig,
    Millis, PeerEvent, PeerStore, Plan, PresharedKey, RemoveReason, RouteAcceptance, StoreConfig,
    WgKey,
};
use crate::metrics::Metrics;
use crate::platform::linux::{NftFirewall, RtnlNetwork, open_device};
use crate::platform::{DEFAULT_MTU, DeviceConfig, DeviceState, NetEvent, Network, WireGuardDevice};
use crate::proto::keys::base64_key;
use crate::proto::messages::Goodbye;
use crate::proto::messages::Message;
use crate::proto::{
    EndpointCandidate, EndpointKind, MeshKeys, NatType, RecordVerifier, SignedRecord,
};

/// How long after a peer event the reconciler waits for more (debounce).
const RECONCILE_DEBOUNCE: Duration = Duration::from_millis(100);
/// Safety-net reconcile interval.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// WireGuard device sampling interval (transfer growth, suspect paths, relay passes).
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Sampling interval while traffic flows (a cut path is noticed within a second).
const SAMPLE_EVERY_WITH_TRAFFIC: Duration = Duration::from_secs(1);
/// After new peers reach the device, the device is sampled at the traffic rate this long
/// (their first handshakes, the relay's, and the 10 s no-handshake rule are seen promptly).
const FAST_SAMPLES_AFTER_NEW_PEERS: Duration = Duration::from_secs(12);
/// How often the handshake monitor judges (the core's stale rules count judgements 20 s
/// apart).
const JUDGE_HANDSHAKES_EVERY: Duration = Duration::from_secs(20);
/// Store cleanup interval.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);
/// Periodic cache save.
const CACHE_EVERY: Duration = Duration::from_secs(300);
/// Cache write-behind coalescing.
const CACHE_COALESCE: Duration = Duration::from_millis(100);
/// Address changes are acted on once they settled for this long.
const ADDRESS_SETTLE: Duration = Duration::from_millis(300);
/// Delay before nudging newly added peers into a handshake.
const NUDGE_AFTER: Duration = Duration::from_millis(300);
/// Longest the shutdown sequence may take.
const SHUTDOWN_LIMIT: Duration = Duration::from_millis(4500);
/// Probe scheduling tick (the core decides which peers are due).
const PROBE_EVERY: Duration = Duration::from_secs(1);

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
    #[error(transparent)]
    ControlSocket(#[from] crate::discovery::control_socket::ControlSocketError),
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
    link: BTreeMap<WgKey, crate::mesh::LinkStats>,
}

/// Shared between the main loop and the control socket.
struct Shared {
    interface: String,
    store: Arc<PeerStore>,
    view: Mutex<View>,
    dead_after: Duration,
    dht: Mutex<Option<Arc<super::dht_task::DhtHandle>>>,
    registry: Mutex<Option<Arc<super::registry_task::RegistryHandle>>>,
}

impl ControlHandler for Shared {
    fn handle(&self, request: Request) -> ResponseFuture<'_> {
        Box::pin(async move {
            match request {
                Request::Ping => Response::Pong {
                    version: env!("CARGO_PKG_VERSION").to_string(),
                },
                Request::Show => {
                    // A fresh read of the device, so `show` agrees with `wg show` right now.
                    let fresh = crate::platform::inspect::read_existing(&self.interface)
                        .await
                        .ok();
                    let peers = self.store.snapshot();
                    let dht = self
                        .dht
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                        .map(|d| d.report());
                    let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
                    let mut report = build_report(ShowInputs {
                        interface: view.interface.clone(),
                        peers: &peers,
                        device: fresh.as_ref().or(view.device.as_ref()),
                        plan: &view.plan,
                        link: &view.link,
                        now: now_millis(),
                        dead_after: self.dead_after,
                    });
                    report.dht = dht;
                    report.registries = lock_report(&self.registry, |r| r.report());
                    Response::Show(Box::new(report))
                }
            }
        })
    }
}

/// Changes the log filter at run time (SIGHUP).
pub type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// Everything resolved before the runtime started.
pub struct NodeSetup {
    pub config: DaemonConfig,
    /// The command line as given, re-applied over the file on SIGHUP (flags win).
    pub args: super::config::UpArgs,
    pub log_level_flag: Option<String>,
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
        args,
        log_level_flag,
        keys,
        identity,
        set_log_level,
    } = setup;
    let iface = config.interface.clone();
    let wg_public = identity.wireguard_public();
    let metrics = Arc::new(Metrics::new());

    // 1. The interface.
    let network = RtnlNetwork::new()?;
    let listen_port = free_udp_port(config.listen_port)?;
    if listen_port != config.listen_port {
        tracing::warn!(
            wanted = config.listen_port,
            using = listen_port,
            "WireGuard port busy, using the next free one"
        );
    }
    let device = open_device(&iface, config.backend, &network).await?;
    let backend = device.backend();
    let mut userspace_restarts = device.userspace_restarts();
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
    let host_addresses = network_addresses(&network, &iface).await;
    let mut facts = LocalFacts {
        hostname: super::local::hostname(),
        address_nonce: 0,
        endpoints: super::candidates::merge(lan_candidates(&host_addresses, listen_port), &[]),
        nat_type: NatType::Unknown,
        introducer: config.introducer,
        routes: config.advertise_routes.clone(),
        control_port: keys.control_port(),
        wireguard_port: listen_port,
        relay_load: config.introducer.then_some(crate::proto::RelayLoad {
            relayed: 0,
            max: config.max_relayed_peers,
        }),
    };
    let (record, signed) = sign_local_record(&identity, &keys, &facts, None, now_millis())?;
    let mut local_sequence = record.sequence;
    let (record_tx, record_rx) = watch::channel::<SignedRecord>(signed);

    // 3. Control socket and metrics.
    let shared = Arc::new(Shared {
        interface: iface.clone(),
        store: store.clone(),
        view: Mutex::new(View::default()),
        dead_after: StoreConfig::default().dead_after,
        dht: Mutex::new(None),
        registry: Mutex::new(None),
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

    // 4. Peer exchange on the control port (static peers greeted at start and every 30 s).
    let (probe_tx, mut probe_rx) = mpsc::channel::<ProbeReplyEvent>(256);
    let (notice_tx, mut notice_rx) = mpsc::channel::<RelayNoticeEvent>(64);
    let (rendezvous_tx, mut rendezvous_rx) = mpsc::channel::<RendezvousEvent>(64);
    let exchange = ControlSocket::bind(
        ControlSocketConfig {
            static_peers: config.static_peers.clone(),
            ..ControlSocketConfig::default()
        },
        ControlSocketDeps {
            keys: keys.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            local_record: record_rx,
            probe_replies: Some(probe_tx),
            relay_notices: Some(notice_tx),
            rendezvous: Some(rendezvous_tx),
        },
    )
    .await?;
    let exchange_tasks = exchange.start();
    let gossip_task = super::gossip_task::spawn(exchange.clone());
    // NAT check (STUN from the control port): at start, every 60 s, on address changes.
    let mut stun =
        super::stun_task::StunTask::spawn(&exchange, &config.stun, &iface, metrics.clone());
    let mut stun_state = super::stun_task::StunState::default();
    let (lan_addresses_tx, lan_addresses) = watch::channel(lan_ipv4(&host_addresses));
    let lan_task = if config.no_lan_discovery {
        None
    } else {
        let deps = crate::discovery::lan::LanDeps {
            keys: keys.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            local_record: record_tx.subscribe(),
            lan_addresses,
            mesh_interface: config.interface.clone(),
        };
        Some(tokio::spawn(async move {
            if let Err(e) = crate::discovery::lan::run_lan_discovery(deps).await {
                tracing::error!("{e}");
            }
        }))
    };

    // DHT discovery (its own task; never blocks the rest).
    let dht = (!config.no_dht).then(|| {
        Arc::new(super::dht_task::start_for(
            &config,
            &keys,
            &identity,
            &store,
            &exchange,
            &metrics,
            record_tx.subscribe(),
        ))
    });
    *shared.dht.lock().unwrap_or_else(|p| p.into_inner()) = dht.clone();
    // Registry discovery (`--registry`; one loop per registry).
    let registry = super::registry_task::start_for(
        &config,
        &keys,
        &identity,
        &store,
        &exchange,
        &metrics,
        record_tx.subscribe(),
    )
    .map(Arc::new);
    *shared.registry.lock().unwrap_or_else(|p| p.into_inner()) = registry.clone();
    let publisher = super::privacy::RecordPublisher::start(
        record_tx,
        config.privacy,
        store.clone(),
        exchange.clone(),
    );

    // 5. Plan configuration.
    let local_nets = local_networks(&host_addresses, v4.trunc(), v6.trunc());
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

    // 6. Peer events arrive on a std channel: one blocked thread forwards them (no polling).
    let (event_tx, mut event_rx) = mpsc::channel::<PeerEvent>(16);
    std::thread::Builder::new()
        .name("wgmesh-events".into())
        .spawn(move || {
            while let Ok(ev) = events.recv() {
                if event_tx.blocking_send(ev).is_err() {
                    break;
                }
            }
        })
        .map_err(NodeError::Signals)?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(NodeError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(NodeError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(NodeError::Signals)?;
    // Signals have their own task, so a stop is seen even while the main loop waits on the
    // platform; a second signal exits at once.
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let first = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        tracing::info!("{first}: shutting down");
        let _ = stop_tx.send(true);
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    let mut reconcile_tick = tokio::time::interval(RECONCILE_EVERY);
    let mut health_tick = tokio::time::interval(SAMPLE_EVERY);
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
    let mut probe_tick = tokio::time::interval(PROBE_EVERY);
    probe_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prober = super::probes::Prober::default();
    let mut relaying = super::relaying::Relaying::default();
    let mut punching = super::punching::Punching::default();
    let mut introducer_pull = crate::mesh::pull::IntroducerPull::default();
    let mut punch_due: Option<tokio::time::Instant> = None;
    let mut last_judged: Option<tokio::time::Instant> = None;
    let own_key = identity.wireguard_public();
    // The probe tick only runs while some peer needs probing (re-armed by health and
    // reconcile), so an idle mesh does not wake up every second.
    let mut probing = true;
    // Address changes on the host (roaming, wake-up, DHCP) re-announce within a second.
    let mut net_events = match reconciler.network.subscribe() {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(error = %e, "no address change events: roaming is noticed only by peers");
            None
        }
    };
    let address_check = AddressCheck::new(keys.clone());
    let mut address_change_due: Option<tokio::time::Instant> = None;
    let mut last_handshake: BTreeMap<WgKey, Option<Millis>> = BTreeMap::new();
    let mut health = HealthView::default();
    let mut handshakes = HandshakeMonitor::default();
    let mut cache_dirty = false;
    // The first reconcile runs as the loop's first step, so a stop is seen even during it.
    let mut reconcile_due: Option<tokio::time::Instant> = Some(tokio::time::Instant::now());
    let mut cache_due: Option<tokio::time::Instant> = None;
    let mut fast_samples_until: Option<tokio::time::Instant> = None;

    // Ready: the interface is up and the control socket listens.
    super::notify::ready(&format!("{iface} up, {} peers", store.len()));
    tracing::info!(interface = %iface, control_port = keys.control_port(), "wgmesh is running");

    // One relay pass: the core decides, `relaying` sends its notices; a change reconciles.
    macro_rules! relay_pass {
        () => {{
            let local = super::relaying::RelayLocal {
                key: own_key,
                nat: facts.nat_type,
                networks: &local_plan.routes.local_networks,
                force_relay: config.force_relay,
            };
            let sources = super::relaying::EvidenceSources {
                prober: &prober,
                punching: &punching,
                metrics: &metrics,
            };
            if relaying
                .pass(
                    &local,
                    &store,
                    &mut health,
                    &sources,
                    &exchange,
                    now_millis(),
                )
                .await
            {
                reconcile_due = Some(tokio::time::Instant::now());
            }
            if let Some(load) = relaying.load_advert(
                local_plan.introducer,
                config.max_relayed_peers,
                facts.relay_load,
                &metrics,
                now_millis(),
            ) {
                facts.relay_load = load;
                republish(&identity, &keys, &facts, &mut local_sequence, &publisher);
            }
        }};
    }

    loop {
        let reconcile_at = reconcile_due.unwrap_or_else(far_future);
        let cache_at = cache_due.unwrap_or_else(far_future);
        tokio::select! {
            _ = stop_rx.changed() => break,
            _ = sighup.recv() => {
                super::notify::reloading();
                reload(&mut config, &args, log_level_flag.as_deref(), &set_log_level, &mut facts, &mut local_plan);
                republish(&identity, &keys, &facts, &mut local_sequence, &publisher);
                reconcile_due = Some(tokio::time::Instant::now());
                super::notify::ready("reloaded");
            }
            Some(ev) = async { net_events.as_mut()?.recv().await } => {
                let changed = match ev {
                    NetEvent::AddressAdded { address, .. } | NetEvent::AddressRemoved { address, .. } => !address_check.is_mesh_address(address),
                    NetEvent::RouteChanged { destination } | NetEvent::RouteRemoved { destination } => destination.is_none_or(|d| d.prefix_len() == 0),
                    _ => false,
                };
                if changed {
                    address_change_due.get_or_insert_with(|| tokio::time::Instant::now() + ADDRESS_SETTLE);
                }
            }
            _ = tokio::time::sleep_until(address_change_due.unwrap_or_else(far_future)), if address_change_due.is_some() => {
                address_change_due = None;
                let addresses = network_addresses(&reconciler.network, &iface).await;
                if let Some(s) = &stun { s.recheck(); }
                let candidates = super::candidates::merge(lan_candidates(&addresses, listen_port), &stun_state.candidates);
                if candidates != facts.endpoints {
                    tracing::info!(endpoints = ?candidates, "local addresses changed: re-announcing");
                    facts.endpoints = candidates;
                    local_plan.routes.local_networks = local_networks(&addresses, v4.trunc(), v6.trunc());
                    let _ = lan_addresses_tx.send(lan_ipv4(&addresses));
                    republish(&identity, &keys, &facts, &mut local_sequence, &publisher);
                    reconcile_due = Some(tokio::time::Instant::now());
                }
            }
            Some(report) = async { stun.as_mut()?.next().await } => {
                if stun_state.update(&report, &mut facts) {
                    tracing::info!(nat = facts.nat_type.as_str(), endpoints = ?facts.endpoints, "NAT check changed the record: re-announcing");
                    republish(&identity, &keys, &facts, &mut local_sequence, &publisher);
                    // The keepalive toward each peer follows this node's NAT type.
                    if local_plan.nat_type != facts.nat_type {
                        local_plan.nat_type = facts.nat_type;
                        reconcile_due = Some(tokio::time::Instant::now());
                    }
                }
                stun_state.fill(&mut shared.view.lock().unwrap_or_else(|p| p.into_inner()).interface, &facts.endpoints);
            }
            Some(ev) = event_rx.recv() => {
                if let PeerEvent::Added(key) = ev {
                    greet_new_peer(&store, &exchange, &key);
                }
                reconcile_due.get_or_insert_with(|| tokio::time::Instant::now() + RECONCILE_DEBOUNCE);
                if !cache_dirty {
                    cache_dirty = true;
                    cache_due = Some(tokio::time::Instant::now() + CACHE_COALESCE);
                }
            }
            _ = tokio::time::sleep_until(reconcile_at), if reconcile_due.is_some() => {
                reconcile_due = None;
                health.offline.prune(now_millis());
                let Some(report) = unless_stopped(&mut stop_rx, reconciler.run(&store, &local_plan, &health, now_millis(), &metrics)).await else { break };
                if let Some(due) = report.deferred_until {
                    let wait = Duration::from_millis(due.0.saturating_sub(now_millis().0));
                    let at = tokio::time::Instant::now() + wait;
                    reconcile_due = Some(reconcile_due.map_or(at, |d| d.min(at)));
                }
                if !report.added.is_empty() {
                    // New peers: judge their paths now and every second for a while (a pair
                    // the NAT table sends to a relay is relayed as soon as the relay answers,
                    // not at the next idle sample up to 5 s later).
                    health_tick.reset_immediately();
                    fast_samples_until = Some(tokio::time::Instant::now() + FAST_SAMPLES_AFTER_NEW_PEERS);
                }
                nudge_later(&store, &exchange, report.added);
                publish_plan(&shared, &reconciler, &metrics);
                probing = true;
            }
            // The safety-net tick only marks a reconcile due; the branch above does the work.
            _ = reconcile_tick.tick() => {
                reconcile_due.get_or_insert_with(tokio::time::Instant::now);
            }
            _ = health_tick.tick() => {
                let judge = last_judged.is_none_or(|t| t.elapsed() >= JUDGE_HANDSHAKES_EVERY);
                if judge {
                    last_judged = Some(tokio::time::Instant::now());
                }
                match unless_stopped(&mut stop_rx, check_handshakes(&mut reconciler, &store, judge.then_some(&mut handshakes), &mut health, &shared, &metrics)).await {
                    Some((h, state)) => {
                        last_handshake = h;
                        if let Some(state) = state {
                            relaying.observe_device(&state);
                            if punching.observe_device(&state, &store, now_millis()) {
                                punch_due = Some(tokio::time::Instant::now());
                            }
                        }
                    }
                    None => break,
                }
                relay_pass!();
                if let Some(d) = &dht { d.handshakes(&last_handshake); }
                for (to, offer) in punching.offers(&own_key, &store, &health.relayed, now_millis()) {
                    let _ = exchange.send_message(to, &Message::RendezvousOffer(offer)).await;
                }
                if punching.take_hold_changed() {
                    punch_due = Some(tokio::time::Instant::now());
                }
                if introducer_pull.due(now_millis()) {
                    for to in super::punching::Punching::introducer_addrs(&store, now_millis()) {
                        exchange.send_hello_to(to);
                    }
                }
                probing = true;
                let settling = fast_samples_until.is_some_and(|t| tokio::time::Instant::now() < t);
                if relaying.traffic_flowing() || settling {
                    health_tick.reset_after(SAMPLE_EVERY_WITH_TRAFFIC);
                }
                if relaying.take_new_suspects() {
                    probe_tick.reset_immediately();
                }
            }
            Some(ev) = rendezvous_rx.recv() => {
                for (to, message) in punching.on_event(ev, local_plan.introducer, facts.nat_type, &store, now_millis()) {
                    let _ = exchange.send_message(to, &message).await;
                }
                punch_due = Some(tokio::time::Instant::now());
            }
            _ = tokio::time::sleep_until(punch_due.unwrap_or_else(far_future)), if punch_due.is_some() => {
                let now = now_millis();
                // A handshake the current candidate produced must be seen before the next step
                // re-creates the entry (which would throw the fresh session away).
                if punching.active() && let Ok(state) = reconciler.device.read().await {
                    punching.observe_device(&state, &store, now);
                }
                let tick = punching.tick(now, &mut health.punching);
                for key in &tick.recreate {
                    reconciler.recreate_peer(key).await;
                }
                if tick.changed || !tick.recreate.is_empty() {
                    reconcile_due = Some(tokio::time::Instant::now());
                }
                punch_due = punching.next_wake(now).map(|at| {
                    tokio::time::Instant::now() + Duration::from_millis(at.0.saturating_sub(now.0))
                });
            }
            Some(ev) = notice_rx.recv() => {
                if relaying.on_notice(&ev) {
                    relay_pass!();
                    probing = true;
                }
            }
            _ = probe_tick.tick(), if probing && !store.is_empty() => {
                let now = now_millis();
                let (unreachable, relay_threshold) = prober.expire(now);
                if prober.expired_any() {
                    let link = prober.publish(&store.snapshot(), &metrics);
                    shared.view.lock().unwrap_or_else(|p| p.into_inner()).link = link;
                }
                for key in unreachable {
                    tracing::warn!(peer = %crate::mesh::short_key(&key), "8 probes in a row failed: peer offline for 30 s");
                    health.offline.mark(key, now);
                    reconcile_due.get_or_insert_with(tokio::time::Instant::now);
                }
                if relay_threshold || relaying.pass_due(now) {
                    relay_pass!();
                }
                let peers = store.snapshot();
                let suspects = relaying.suspects(&store);
                let due = prober.due(&peers, &last_handshake, &suspects, &health, now);
                probing = due.still_needed;
                for p in due.probes {
                    let _ = exchange.send_probe(p.to, p.id).await;
                }
            }
            Some(ev) = probe_rx.recv() => {
                if let Some((key, rtt)) = prober.on_reply(&ev) {
                    tracing::trace!(peer = %crate::mesh::short_key(&key), rtt_ms = rtt.as_millis() as u64, "probe answered");
                    let link = prober.publish(&store.snapshot(), &metrics);
                    shared.view.lock().unwrap_or_else(|p| p.into_inner()).link = link;
                }
            }
            Some(_) = async { userspace_restarts.as_mut()?.changed().await.ok() } => {
                tracing::warn!(interface = %iface, "wireguard-go restarted: restoring addresses and peers");
                if let Err(e) = reconciler.network.replace_addresses(&iface, &addresses).await {
                    tracing::warn!(error = %e, "restoring addresses failed");
                }
                if let Err(e) = reconciler.network.set_link(&iface, true, Some(DEFAULT_MTU)).await {
                    tracing::warn!(error = %e, "setting the link up failed");
                }
                reconciler.forget_all();
                reconcile_due = Some(tokio::time::Instant::now());
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

    // Shutdown, bounded so the process always exits within 5 s.
    super::notify::stopping();
    let shutdown = async {
        let goodbye = Goodbye {
            ed25519_public: identity.ed25519_public(),
            wireguard_public: wg_public,
            sequence: local_sequence.max(now_millis().0) + 1,
        }
        .sign(keys.network_id(), |m| identity.sign(m));
        let told = exchange
            .send_goodbye(&goodbye, &exchange.goodbye_targets())
            .await;
        tracing::info!(peers = told, "said goodbye");
        shared
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let registry_stop = registry
            .and_then(Arc::into_inner)
            .map(|r| tokio::spawn(r.stop()));
        gossip_task.abort();
        exchange_tasks.stop().await;
        if let Some(t) = lan_task {
            t.abort();
        }
        shared.dht.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(d) = dht.and_then(Arc::into_inner) {
            d.stop().await;
        }
        if let Some(t) = registry_stop {
            let _ = t.await;
        }
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
    };
    if tokio::time::timeout(SHUTDOWN_LIMIT, shutdown)
        .await
        .is_err()
    {
        tracing::warn!("shutdown took longer than {SHUTDOWN_LIMIT:?}: exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

/// What `show` reads from an optional task handle.
fn lock_report<H, R: Default>(h: &Mutex<Option<Arc<H>>>, f: impl FnOnce(&H) -> R) -> R {
    h.lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map_or_else(R::default, |h| f(h))
}

/// Runs `fut` unless a stop is (or becomes) requested; `None` when stopped.
async fn unless_stopped<T>(
    stop: &mut watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        v = fut => Some(v),
        _ = stop.changed() => None,
    }
}

/// Shortly after WireGuard peers are added, sends one probe into the tunnel to each: the
/// packet makes this side start a handshake. Waiting [`NUDGE_AFTER`] lets the other side
/// configure us first (both learn each other within ~100-200 ms), since WireGuard sends at
/// most one initiation per 5 s and one that arrives too early is dropped.
fn nudge_later(store: &Arc<PeerStore>, exchange: &ControlSocket, added: Vec<WgKey>) {
    if added.is_empty() {
        return;
    }
    let store = store.clone();
    let exchange = exchange.clone();
    tokio::spawn(async move {
        tokio::time::sleep(NUDGE_AFTER).await;
        for key in added {
            if let Some(p) = store.get(&key) {
                let to = SocketAddr::new(p.record.mesh_ipv4.into(), p.record.control_port);
                let _ = exchange.send_probe(to, 0).await;
            }
        }
    });
}

/// A peer learned from someone else gets a direct hello at once, so it learns this node too
/// (without waiting for its next exchange round).
fn greet_new_peer(store: &PeerStore, exchange: &ControlSocket, key: &WgKey) {
    let Some(entry) = store.get(key) else { return };
    if entry.discovered_via.iter().any(|m| m.is_direct()) {
        return;
    }
    if let Some(ep) = entry.endpoint_addr() {
        exchange.introduce_to(SocketAddr::new(ep.ip(), entry.record.control_port));
    }
}

/// Every address on this host's interfaces but loopback and the mesh interface.
async fn network_addresses(net: &RtnlNetwork, mesh_iface: &str) -> Vec<IpNet> {
    let mut out = Vec::new();
    if let Ok(names) = std::fs::read_dir("/sys/class/net") {
        for n in names.flatten() {
            let name = n.file_name().to_string_lossy().into_owned();
            if name == "lo" || name == mesh_iface {
                continue;
            }
            if let Ok(a) = net.addresses(&name).await {
                out.extend(a);
            }
        }
    }
    out
}

/// The host's LAN IPv4 addresses LAN discovery announces on.
fn lan_ipv4(addrs: &[IpNet]) -> Vec<Ipv4Addr> {
    addrs
        .iter()
        .filter_map(|n| match n.addr() {
            std::net::IpAddr::V4(a) if !a.is_loopback() && !a.is_link_local() => Some(a),
            _ => None,
        })
        .collect()
}

/// Re-signs this node's record after a change and publishes it (shown to LAN discovery and
/// the exchange, pushed to every active peer; with `--privacy` after a Dandelion++ stem).
fn republish(
    identity: &NodeIdentity,
    keys: &MeshKeys,
    facts: &LocalFacts,
    local_sequence: &mut u64,
    publisher: &super::privacy::RecordPublisher,
) {
    match sign_local_record(identity, keys, facts, Some(*local_sequence), now_millis()) {
        Ok((record, signed)) => {
            *local_sequence = record.sequence;
            publisher.publish(record.sequence, signed);
        }
        Err(e) => tracing::error!("this node's new record cannot be signed: {e}"),
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

/// LAN endpoint candidates: this host's addresses with the WireGuard port (no loopback,
/// link-local or multicast), at most 4 so STUN and observed candidates still fit.
fn lan_candidates(addrs: &[IpNet], port: u16) -> Vec<EndpointCandidate> {
    addrs
        .iter()
        .map(IpNet::addr)
        .filter(|ip| match ip {
            std::net::IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local() && !a.is_multicast(),
            std::net::IpAddr::V6(a) => {
                !a.is_loopback() && !a.is_unicast_link_local() && !a.is_multicast()
            }
        })
        .take(4)
        .map(|ip| EndpointCandidate {
            kind: EndpointKind::Lan,
            addr: SocketAddr::new(ip, port),
        })
        .collect()
}

fn publish_plan<D, N, F>(shared: &Shared, r: &Reconciler<D, N, F>, metrics: &Metrics)
where
    D: WireGuardDevice,
    N: Network,
    F: crate::platform::Firewall,
{
    let plan = r.last_plan();
    let counts = super::show::count_paths(&shared.store.snapshot(), plan);
    metrics.replace(
        "wgmesh_peers",
        ["direct", "direct_lan", "relay", "offline", "inactive"]
            .into_iter()
            .map(|k| {
                (
                    vec![("path", k)],
                    counts.get(k).copied().unwrap_or(0) as f64,
                )
            })
            .collect(),
    );
    let mut view = shared.view.lock().unwrap_or_else(|p| p.into_inner());
    view.plan = plan.clone();
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
    // `None`: sample only, no handshake judgement this time.
    mut monitor: Option<&mut HandshakeMonitor>,
    health: &mut HealthView,
    shared: &Shared,
    metrics: &Metrics,
) -> (
    BTreeMap<WgKey, Option<Millis>>,
    Option<crate::platform::DeviceState>,
)
where
    D: WireGuardDevice,
    N: Network,
    F: crate::platform::Firewall,
{
    let state = match reconciler.device.read().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the WireGuard device");
            return (BTreeMap::new(), None);
        }
    };
    let mut handshakes = BTreeMap::new();
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
        let last = super::local::handshake_at(p);
        handshakes.insert(p.config.public_key, last);
        let sample = HandshakeSample {
            last_handshake: last,
            rx_bytes: p.rx_bytes,
            tx_bytes: p.tx_bytes,
        };
        let action = match monitor.as_deref_mut() {
            Some(m) => m.observe(p.config.public_key, sample, now),
            None => HandshakeAction::Healthy,
        };
        match action {
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
    view.device = Some(state.clone());
    (handshakes, Some(state))
}

fn per_peer(v: Vec<(&str, f64)>) -> Vec<(Vec<(&str, &str)>, f64)> {
    v.into_iter().map(|(k, x)| (vec![("peer", k)], x)).collect()
}

fn reload(
    config: &mut DaemonConfig,
    args: &super::config::UpArgs,
    log_level_flag: Option<&str>,
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
    let new = match DaemonConfig::resolve(
        args,
        &file,
        std::env::var("WGMESH_BACKEND").ok().as_deref(),
        log_level_flag,
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
