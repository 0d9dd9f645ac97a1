//! A deterministic simulation of a mesh's discovery: N nodes, each with its own peer store,
//! exchange [`Engine`], per-source rate limiter, hello sessions (retry every 100 ms for up to
//! 4 s, as `contact`), bootstrap peers greeted at start and every 30 s (what a DHT lookup or
//! `--peer` gives), the daemon's greeting of peers learned transitively (optional), and the
//! in-mesh [`GossipPolicy`]. Virtual time, a simulated network (uniform latency, random loss;
//! a tunnel message is delivered only when both ends hold each other, as WireGuard needs), one
//! seeded generator: the same configuration gives the same figures. Messages are sized as
//! sealed datagrams but not encrypted; record verification is real, memoised across nodes
//! (every node holds the same records; the result is a pure function of the bytes).
//!
//! It is how the project reasons about meshes larger than a test machine holds: `cargo bench
//! --bench mesh_sim` runs 1000 nodes and prints convergence time and control bytes/s per node.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand_core::RngCore;

use crate::identity::NodeIdentity;
use crate::mesh::{
    AddressCheck, DiscoveryMethod, Millis, PeerStore, StoreConfig, UpdateOutcome, WgKey,
};
use crate::proto::messages::Message;
use crate::proto::{
    EndpointCandidate, EndpointKind, MeshKeys, MeshSecret, NatType, NodeRecord, RecordError,
    SignedRecord,
};

use super::engine::{Effect, Engine, Lack, Local, RecordCheck};
use super::exchange::{Exchange, ExchangeConfig, sealed_len};
use super::ratelimit::{RateLimitConfig, RateLimiter};
use crate::mesh::gossip::{GossipConfig, GossipPolicy, pick_peer};

/// The simulation's parameters.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: usize,
    pub seed: u64,
    /// Nodes start at uniformly random times within this window.
    pub start_window: Duration,
    /// Bootstrap peers per node, among the nodes started before it.
    pub bootstrap: usize,
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Datagrams lost, in parts per million.
    pub loss_ppm: u32,
    /// Greet peers learned only transitively with a direct hello (the daemon does).
    pub greet: bool,
    /// Greet only while the node holds fewer peers than this (an experiment: the daemon
    /// greets always, `usize::MAX`).
    pub greet_below: usize,
    /// How long to measure the steady state after convergence (starting 10 s after it).
    pub steady: Duration,
    /// Stop here even if the mesh has not converged.
    pub max_time: Duration,
    pub gossip: GossipConfig,
    pub exchange: ExchangeConfig,
    pub rate_limit: RateLimitConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 1000,
            seed: 1,
            start_window: Duration::from_secs(5),
            bootstrap: 3,
            latency_min: Duration::from_millis(10),
            latency_max: Duration::from_millis(80),
            loss_ppm: 10_000,
            greet: true,
            greet_below: usize::MAX,
            steady: Duration::from_secs(60),
            max_time: Duration::from_secs(300),
            gossip: GossipConfig::default(),
            exchange: ExchangeConfig::default(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// Bytes/s per node over a window: mean and max over the nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub sent_mean: f64,
    pub sent_max: f64,
    pub received_mean: f64,
    pub received_max: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub nodes: usize,
    /// When the last node started (virtual seconds from the first start window's beginning).
    pub last_start_s: f64,
    /// When every node knew every other, from the last start; `None`: not within `max_time`.
    pub converged_after_s: Option<f64>,
    /// Bytes/s per node from its start until convergence.
    pub convergence: Rates,
    /// Bytes/s per node in the steady-state window.
    pub steady: Rates,
    pub steady_window_s: f64,
    pub datagrams: u64,
    pub lost: u64,
    /// Drops and refusals by reason (network: `not_started`, `no_tunnel`; node: as counted).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Records received in records messages: taken as new/newer, and the rest (duplicates).
    pub records_new: u64,
    pub records_duplicate: u64,
    /// Learned by method (store took the record, new or newer).
    pub learned_by: BTreeMap<&'static str, u64>,
    /// When 50 %, 90 %, 99 % of all (node, peer) pairs were known, from the last start.
    pub known_fraction_s: [Option<f64>; 3],
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kb = |x: f64| x / 1000.0;
        writeln!(
            f,
            "{} nodes, last start at {:.1} s (virtual)",
            self.nodes, self.last_start_s
        )?;
        match self.converged_after_s {
            Some(t) => writeln!(
                f,
                "every node knows every other {t:.1} s after the last start"
            )?,
            None => writeln!(f, "NOT converged")?,
        }
        writeln!(
            f,
            "control bytes/s per node, convergence: sent mean {:.1} KB/s max {:.1} KB/s; received mean {:.1} KB/s max {:.1} KB/s",
            kb(self.convergence.sent_mean),
            kb(self.convergence.sent_max),
            kb(self.convergence.received_mean),
            kb(self.convergence.received_max)
        )?;
        writeln!(
            f,
            "control bytes/s per node, steady state ({:.0} s): sent mean {:.2} KB/s max {:.2} KB/s; received mean {:.2} KB/s max {:.2} KB/s",
            self.steady_window_s,
            kb(self.steady.sent_mean),
            kb(self.steady.sent_max),
            kb(self.steady.received_mean),
            kb(self.steady.received_max)
        )?;
        writeln!(
            f,
            "datagrams {} (lost {}), records in records messages: {} new, {} duplicate",
            self.datagrams, self.lost, self.records_new, self.records_duplicate
        )?;
        let at = |x: Option<f64>| x.map_or("-".to_string(), |t| format!("{t:.1} s"));
        writeln!(
            f,
            "pairs known: 50 % at {}, 90 % at {}, 99 % at {} after the last start",
            at(self.known_fraction_s[0]),
            at(self.known_fraction_s[1]),
            at(self.known_fraction_s[2])
        )?;
        writeln!(f, "learned by method: {:?}", self.learned_by)?;
        write!(f, "dropped: {:?}", self.dropped)
    }
}

/// The simulation's only source of randomness.
pub type SimRng = crate::mesh::splitmix::SplitMix64;

/// A signed record's bytes (body, signature) and what verifying them gave.
type Verified = HashMap<(Vec<u8>, [u8; 64]), Result<NodeRecord, RecordError>>;

/// Record verification memoised by the signed bytes (shared by every node).
struct MemoCheck {
    keys: MeshKeys,
    memo: RefCell<Verified>,
}

impl RecordCheck for MemoCheck {
    fn keys(&self) -> &MeshKeys {
        &self.keys
    }
    fn check(&self, signed: &SignedRecord) -> Result<NodeRecord, RecordError> {
        let k = (signed.body.clone(), signed.signature);
        if let Some(r) = self.memo.borrow().get(&k) {
            return r.clone();
        }
        let r = crate::proto::RecordVerifier::new(&self.keys).verify(signed, None);
        self.memo.borrow_mut().insert(k, r.clone());
        r
    }
}

struct SimNode {
    key: WgKey,
    record: SignedRecord,
    underlay: SocketAddr,
    start_at: Millis,
    started: bool,
    bootstrap: Vec<usize>,
    store: PeerStore,
    engine: Engine,
    limiter: RateLimiter,
    gossip: GossipPolicy,
    rng: SimRng,
    /// Hello sessions: destination → when the session started, introduction only.
    sessions: BTreeMap<SocketAddr, (Millis, bool)>,
    /// Bytes per virtual second.
    sent: Vec<u64>,
    received: Vec<u64>,
}

enum Event {
    Start(usize),
    Deliver {
        to: usize,
        src: SocketAddr,
        message: Message,
        len: usize,
    },
    HelloRetry {
        node: usize,
        dst: SocketAddr,
    },
    FollowUp {
        node: usize,
        to: SocketAddr,
        responder: WgKey,
        lack: Lack,
    },
    Gossip(usize),
    Refresh(usize),
}

const EPOCH: Millis = Millis::from_secs(1_700_000_000);
const CONTROL_PORT: u16 = 51821;
const WG_PORT: u16 = 51820;
const HELLO_RETRY_EVERY: Duration = Duration::from_millis(100);
const HELLO_RETRY_FOR: Duration = Duration::from_secs(4);
const REFRESH_EVERY: Duration = Duration::from_secs(30);
const FOLLOW_UP_AFTER: Duration = Duration::from_millis(200);
const MAX_SESSIONS: usize = 256;

/// The simulation.
pub struct Sim {
    config: SimConfig,
    nodes: Vec<SimNode>,
    by_ip: HashMap<IpAddr, usize>,
    mesh_ip: Vec<SocketAddr>,
    check: MemoCheck,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    events: HashMap<u64, Event>,
    seq: u64,
    rng: SimRng,
    now: Millis,
    complete: BTreeSet<usize>,
    known_pairs: u64,
    last_start: Millis,
    report: SimReport,
}

impl Sim {
    /// Builds the nodes (identities, records, bootstrap lists); nothing runs yet.
    pub fn new(config: SimConfig) -> Self {
        let keys = MeshKeys::derive(&MeshSecret::from_bytes([0x5a; 32]));
        let mut rng = SimRng::new(config.seed);
        let n = config.nodes;
        let window = config.start_window.as_millis().max(1) as u64;
        let mut starts: Vec<(Millis, usize)> = (0..n)
            .map(|i| (EPOCH + Duration::from_millis(rng.next_u64() % window), i))
            .collect();
        starts.sort();
        let mut order = vec![0usize; n];
        for (rank, (_, i)) in starts.iter().enumerate() {
            order[*i] = rank;
        }
        let mut used4 = BTreeSet::new();
        let mut nodes = Vec::with_capacity(n);
        let mut by_ip = HashMap::new();
        let mut mesh_ip = Vec::with_capacity(n);
        for i in 0..n {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let id = NodeIdentity::from_seed(&seed);
            let wg = id.wireguard_public();
            let mut nonce = 0u8;
            while used4.contains(&keys.mesh_ipv4(&wg, nonce)) && nonce < 15 {
                nonce += 1;
            }
            let mesh4 = keys.mesh_ipv4(&wg, nonce);
            used4.insert(mesh4);
            let ip = Ipv4Addr::from(0x0a00_0000u32 + 0x0100 + i as u32);
            let underlay = SocketAddr::new(ip.into(), CONTROL_PORT);
            let record = NodeRecord {
                ed25519_public: id.ed25519_public(),
                wireguard_public: wg,
                sequence: EPOCH.as_millis(),
                hostname: format!("sim-node-{i:04}"),
                address_nonce: nonce,
                mesh_ipv4: mesh4,
                mesh_ipv6: keys.mesh_ipv6(&wg),
                endpoints: vec![
                    EndpointCandidate {
                        kind: EndpointKind::Stun,
                        addr: SocketAddr::new(ip.into(), WG_PORT),
                    },
                    EndpointCandidate {
                        kind: EndpointKind::Lan,
                        addr: SocketAddr::new(
                            Ipv4Addr::new(192, 168, (i / 250) as u8, (i % 250) as u8 + 2).into(),
                            WG_PORT,
                        ),
                    },
                ],
                nat_type: NatType::PortRestrictedCone,
                introducer: false,
                routes: vec![],
                control_port: CONTROL_PORT,
                wireguard_port: WG_PORT,
                relay_load: None,
            };
            let signed = match record.sign(keys.network_id(), |m| id.sign(m)) {
                Ok(s) => s,
                // The record above is within every limit.
                Err(e) => unreachable!("simulated record refused: {e}"),
            };
            by_ip.insert(ip.into(), i);
            by_ip.insert(IpAddr::V4(mesh4), i);
            mesh_ip.push(SocketAddr::new(mesh4.into(), CONTROL_PORT));
            let earlier: Vec<usize> = (0..n).filter(|j| order[*j] < order[i]).collect();
            let mut bootstrap = Vec::new();
            for _ in 0..config.bootstrap.min(earlier.len()) {
                let pick = earlier[(rng.next_u64() % earlier.len() as u64) as usize];
                if !bootstrap.contains(&pick) {
                    bootstrap.push(pick);
                }
            }
            let mut cookie = [0u8; 32];
            rng.fill_bytes(&mut cookie);
            let exchange = Exchange::new(
                config.exchange.clone(),
                cookie,
                Box::new(SimRng::new(rng.next_u64())),
            );
            let mut node_rng = SimRng::new(rng.next_u64());
            let gossip = GossipPolicy::new(config.gossip, EPOCH, &mut node_rng);
            let secs =
                config.max_time.as_secs() as usize + config.start_window.as_secs() as usize + 2;
            nodes.push(SimNode {
                key: wg,
                record: signed,
                underlay,
                start_at: starts[order[i]].0,
                started: false,
                bootstrap,
                store: PeerStore::new(
                    StoreConfig {
                        max_peers: n.max(1),
                        local_key: Some(wg),
                        ..StoreConfig::default()
                    },
                    AddressCheck::new(keys.clone()),
                ),
                engine: Engine::new(exchange, AddressCheck::new(keys.clone())),
                limiter: RateLimiter::new(config.rate_limit),
                gossip,
                rng: node_rng,
                sessions: BTreeMap::new(),
                sent: vec![0; secs],
                received: vec![0; secs],
            });
        }
        let report = SimReport {
            nodes: n,
            ..SimReport::default()
        };
        let mut sim = Self {
            config,
            nodes,
            by_ip,
            mesh_ip,
            check: MemoCheck {
                keys,
                memo: RefCell::new(HashMap::new()),
            },
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            rng,
            now: EPOCH,
            complete: BTreeSet::new(),
            known_pairs: 0,
            last_start: EPOCH,
            report,
        };
        for i in 0..n {
            let at = sim.nodes[i].start_at;
            sim.schedule(at, Event::Start(i));
        }
        sim
    }

    fn schedule(&mut self, at: Millis, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, event);
    }

    fn second(&self) -> usize {
        (self.now.as_millis().saturating_sub(EPOCH.as_millis()) / 1000) as usize
    }

    /// Runs until convergence plus the steady-state window (or `max_time`); returns the report.
    pub fn run(mut self) -> SimReport {
        let last_start = self.nodes.iter().map(|n| n.start_at).max().unwrap_or(EPOCH);
        self.report.last_start_s = last_start.since(EPOCH).as_secs_f64();
        self.last_start = last_start;
        let hard_stop = EPOCH + self.config.max_time;
        let mut stop_at = hard_stop;
        let mut converged_at: Option<Millis> = None;
        while let Some(Reverse((at, seq))) = self.queue.pop() {
            if at > stop_at {
                break;
            }
            self.now = at;
            let Some(event) = self.events.remove(&seq) else {
                continue;
            };
            self.step(event);
            if converged_at.is_none() && self.complete.len() == self.nodes.len() {
                converged_at = Some(self.now);
                let steady_end = self.now + Duration::from_secs(10) + self.config.steady;
                stop_at = steady_end.min(hard_stop);
            }
        }
        self.finish(last_start, converged_at, stop_at)
    }

    fn finish(
        mut self,
        last_start: Millis,
        converged_at: Option<Millis>,
        stop_at: Millis,
    ) -> SimReport {
        let sec = |t: Millis| (t.as_millis().saturating_sub(EPOCH.as_millis()) / 1000) as usize;
        let end = converged_at.unwrap_or(stop_at);
        self.report.converged_after_s = converged_at.map(|t| t.since(last_start).as_secs_f64());
        let rates = |nodes: &[SimNode], from: &dyn Fn(&SimNode) -> usize, to: usize| {
            let mut r = Rates::default();
            for n in nodes {
                let a = from(n).min(to);
                let secs = (to + 1 - a) as f64;
                let s: u64 = n.sent[a..=to.min(n.sent.len() - 1)].iter().sum();
                let v: u64 = n.received[a..=to.min(n.received.len() - 1)].iter().sum();
                let (s, v) = (s as f64 / secs, v as f64 / secs);
                r.sent_mean += s;
                r.received_mean += v;
                r.sent_max = r.sent_max.max(s);
                r.received_max = r.received_max.max(v);
            }
            let count = nodes.len().max(1) as f64;
            r.sent_mean /= count;
            r.received_mean /= count;
            r
        };
        self.report.convergence = rates(&self.nodes, &|n: &SimNode| sec(n.start_at), sec(end));
        if let Some(c) = converged_at {
            let from = sec(c + Duration::from_secs(10));
            let to = sec(stop_at).saturating_sub(1);
            if to > from {
                self.report.steady = rates(&self.nodes, &|_: &SimNode| from, to);
                self.report.steady_window_s = (to + 1 - from) as f64;
            }
        }
        self.report
    }

    fn drop_reason(&mut self, reason: &'static str) {
        *self.report.dropped.entry(reason).or_default() += 1;
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Start(i) => self.start(i),
            Event::Deliver {
                to,
                src,
                message,
                len,
            } => self.deliver(to, src, message, len),
            Event::HelloRetry { node, dst } => self.hello_retry(node, dst),
            Event::FollowUp {
                node,
                to,
                responder,
                lack,
            } => {
                let again = {
                    let n = &self.nodes[node];
                    let local = Local {
                        store: &n.store,
                        record: &n.record,
                        own_key: Some(n.key),
                        check: &self.check,
                    };
                    n.engine.still_lacking(&local, &lack, &responder)
                };
                if again {
                    self.send_hello_to(node, to);
                }
            }
            Event::Gossip(i) => self.gossip(i),
            Event::Refresh(i) => {
                for b in self.nodes[i].bootstrap.clone() {
                    let dst = self.nodes[b].underlay;
                    self.send_hello_to(i, dst);
                }
                let at = self.now + REFRESH_EVERY;
                self.schedule(at, Event::Refresh(i));
            }
        }
    }

    fn start(&mut self, i: usize) {
        self.nodes[i].started = true;
        let now = self.now;
        let node = &mut self.nodes[i];
        node.gossip = GossipPolicy::new(self.config.gossip, now, &mut node.rng);
        let first = node.gossip.next_at();
        self.schedule(first, Event::Gossip(i));
        self.step(Event::Refresh(i));
        if self.nodes.len() == 1 {
            self.complete.insert(i);
        }
    }

    fn gossip(&mut self, i: usize) {
        let now = self.now;
        let to = {
            let node = &mut self.nodes[i];
            let (learned, behind) = (node.engine.learned(), node.engine.behind());
            node.gossip.round(now, learned, behind, &mut node.rng);
            pick_peer(&node.store, now, &mut node.rng)
        };
        let next = self.nodes[i].gossip.next_at();
        self.schedule(next, Event::Gossip(i));
        if let Some(to) = to {
            let hello = self.make_hello(i, to, false);
            self.send(i, to, hello);
        }
    }

    fn make_hello(&mut self, i: usize, to: SocketAddr, intro: bool) -> Message {
        let now = self.now;
        let n = &mut self.nodes[i];
        let local = Local {
            store: &n.store,
            record: &n.record,
            own_key: Some(n.key),
            check: &self.check,
        };
        if intro {
            n.engine.introduction(&local, to, now)
        } else {
            n.engine.hello(&local, to, now)
        }
    }

    /// A hello session (as `ControlSocket::send_hello_to`, or `introduce_to` when `intro`).
    fn send_hello_to(&mut self, i: usize, dst: SocketAddr) {
        self.start_session(i, dst, false);
    }

    fn start_session(&mut self, i: usize, dst: SocketAddr, intro: bool) {
        let node = &mut self.nodes[i];
        if node.sessions.len() >= MAX_SESSIONS || node.sessions.contains_key(&dst) {
            return;
        }
        node.sessions.insert(dst, (self.now, intro));
        let hello = self.make_hello(i, dst, intro);
        self.send(i, dst, hello);
        let at = self.now + HELLO_RETRY_EVERY;
        self.schedule(at, Event::HelloRetry { node: i, dst });
    }

    fn hello_retry(&mut self, i: usize, dst: SocketAddr) {
        let now = self.now;
        let Some((started, intro)) = self.nodes[i].sessions.get(&dst).copied() else {
            return;
        };
        let replied = self.nodes[i]
            .engine
            .exchange()
            .replied_since(dst, started, now);
        if replied || now.since(started) >= HELLO_RETRY_FOR {
            self.nodes[i].sessions.remove(&dst);
            return;
        }
        let hello = self.make_hello(i, dst, intro);
        self.send(i, dst, hello);
        let at = now + HELLO_RETRY_EVERY;
        self.schedule(at, Event::HelloRetry { node: i, dst });
    }

    /// Puts a datagram on the simulated network.
    fn send(&mut self, from: usize, to: SocketAddr, message: Message) {
        let len = sealed_len(&message);
        let sec = self.second();
        if let Some(s) = self.nodes[from].sent.get_mut(sec) {
            *s += len as u64;
        }
        self.report.datagrams += 1;
        let Some(&j) = self.by_ip.get(&to.ip()) else {
            self.drop_reason("no_route");
            return;
        };
        let tunnel = self.mesh_ip[j] == to;
        let src = if tunnel {
            // WireGuard carries it only when both ends hold each other.
            if self.nodes[j]
                .store
                .held_sequence(&self.nodes[from].key)
                .is_none()
                || self.nodes[from]
                    .store
                    .held_sequence(&self.nodes[j].key)
                    .is_none()
            {
                self.drop_reason("no_tunnel");
                return;
            }
            self.mesh_ip[from]
        } else {
            self.nodes[from].underlay
        };
        if (self.rng.next_u64() % 1_000_000) < u64::from(self.config.loss_ppm) {
            self.report.lost += 1;
            return;
        }
        let spread = (self
            .config
            .latency_max
            .saturating_sub(self.config.latency_min))
        .as_millis()
        .max(1) as u64;
        let delay = self.config.latency_min + Duration::from_millis(self.rng.next_u64() % spread);
        let at = self.now + delay;
        self.schedule(
            at,
            Event::Deliver {
                to: j,
                src,
                message,
                len,
            },
        );
    }

    fn deliver(&mut self, j: usize, src: SocketAddr, message: Message, len: usize) {
        let now = self.now;
        let sec = self.second();
        if !self.nodes[j].started {
            self.drop_reason("not_started");
            return;
        }
        if let Some(r) = self.nodes[j].received.get_mut(sec) {
            *r += len as u64;
        }
        if !self.nodes[j].limiter.allow(src.ip(), now) {
            self.drop_reason("ratelimit");
            return;
        }
        let is_records = matches!(message, Message::Records(_));
        let effects = {
            let n = &mut self.nodes[j];
            let local = Local {
                store: &n.store,
                record: &n.record,
                own_key: Some(n.key),
                check: &self.check,
            };
            n.engine.handle(&local, src, message, len, now)
        };
        for effect in effects {
            match effect {
                Effect::Send { to, message } => self.send(j, to, message),
                Effect::FollowUp {
                    to,
                    responder,
                    lack,
                } => {
                    let at = now + FOLLOW_UP_AFTER;
                    self.schedule(
                        at,
                        Event::FollowUp {
                            node: j,
                            to,
                            responder,
                            lack,
                        },
                    );
                }
                Effect::Learned {
                    key,
                    method,
                    outcome,
                } => {
                    if is_records {
                        if outcome == UpdateOutcome::Unchanged {
                            self.report.records_duplicate += 1;
                        } else {
                            self.report.records_new += 1;
                        }
                    }
                    if outcome != UpdateOutcome::Unchanged {
                        *self.report.learned_by.entry(method.as_str()).or_default() += 1;
                    }
                    if outcome == UpdateOutcome::Added {
                        self.on_added(j, key, method);
                    }
                }
                Effect::Rejected(reason) => self.drop_reason(reason),
                Effect::ProbeReply { .. } | Effect::Observed(_) | Effect::OwnSeen(_) => {}
            }
        }
    }

    fn on_added(&mut self, j: usize, key: WgKey, method: DiscoveryMethod) {
        self.known_pairs += 1;
        let n = self.nodes.len() as u64;
        let all = n * n.saturating_sub(1);
        for (slot, pct) in [50u64, 90, 99].into_iter().enumerate() {
            if self.report.known_fraction_s[slot].is_none() && self.known_pairs * 100 >= all * pct {
                let t = self.now.as_millis() as f64 - self.last_start.as_millis() as f64;
                self.report.known_fraction_s[slot] = Some(t / 1000.0);
            }
        }
        if self.nodes[j].store.len() + 1 >= self.nodes.len() {
            self.complete.insert(j);
        }
        if !self.config.greet
            || method.is_direct()
            || self.nodes[j].store.len() >= self.config.greet_below
        {
            return;
        }
        // The daemon's `greet_new_peer`: a peer learned from someone else gets an introduction.
        let Some(entry) = self.nodes[j].store.get(&key) else {
            return;
        };
        if let Some(ep) = entry.endpoint_addr() {
            let dst = SocketAddr::new(ep.ip(), entry.record.control_port);
            self.start_session(j, dst, true);
        }
    }
}

/// Runs one simulation.
pub fn run(config: SimConfig) -> SimReport {
    Sim::new(config).run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(n: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes: n,
            seed,
            steady: Duration::from_secs(20),
            max_time: Duration::from_secs(120),
            ..SimConfig::default()
        }
    }

    #[test]
    fn fifty_nodes_converge_and_stay_quiet() {
        let r = run(small(50, 7));
        let t = r.converged_after_s.unwrap_or_else(|| panic!("{r}"));
        assert!(t < 30.0, "{r}");
        assert!(r.steady.sent_max < 5000.0, "{r}");
        assert!(r.learned_by.contains_key("gossip-transitive"), "{r}");
        assert!(r.learned_by.contains_key("dht-transitive"), "{r}");
    }

    #[test]
    fn the_same_seed_gives_the_same_figures() {
        let a = run(small(20, 3));
        let b = run(small(20, 3));
        assert_eq!(format!("{a}"), format!("{b}"));
    }
}
