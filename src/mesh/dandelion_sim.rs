//! The Dandelion++ simulation (issue 6, "Must show"): 6 fully meshed nodes run the real
//! sans-IO state machines ([`StemRoutes`], [`StemRelay`], [`PrivatePublisher`]) under virtual
//! time with random latency and stem loss; the fluff phase is a simple gossip model (the node
//! that fluffs pushes to every peer, as the daemon's hellos do; every other node that learns
//! the record passes it to one random peer later, as anti-entropy does). Many seeded runs; the
//! test asserts that with privacy the first node to send the fresh record in gossip is its
//! origin in well under half of the runs, and without privacy always.
//! `cargo test --lib dandelion_sim -- --nocapture` prints the figures.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand_core::RngCore;

use super::tests::TestRng;
use super::*;

const NODES: usize = 6;
const RUNS: u64 = 3000;
/// One-way latency of a control message: 2..40 ms.
const LATENCY_MIN_MS: u64 = 2;
const LATENCY_SPREAD_MS: u64 = 38;
/// Stem messages lost on the way (UDP), in percent.
const STEM_LOSS_PERCENT: u64 = 5;
/// A node that learnt the record by gossip passes it on within this long.
const REGOSSIP_WITHIN_MS: u64 = 10_000;
/// The simulation gives up after this long.
const LIMIT: Millis = Millis(120_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Stem { hop: u8 },
    Gossip,
    Timer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    at: Millis,
    order: u64,
    to: usize,
    from: usize,
    kind: Kind,
}

struct Node {
    routes: StemRoutes,
    relay: StemRelay<u64>,
    publisher: PrivatePublisher<u64>,
    /// Holds the origin's fresh record in its peer store (or, at the origin, shows it).
    holds: bool,
}

struct Sim<'a> {
    keys: &'a [WgKey],
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<Event>>,
    order: u64,
    rng: TestRng,
    origin: usize,
    first_sender: Option<usize>,
}

/// What one run shows.
struct Outcome {
    first_sender: usize,
    origin_relay: Option<usize>,
    everyone_at: Option<Millis>,
}

const SEQUENCE: u64 = 1;

impl Sim<'_> {
    fn index(&self, key: &WgKey) -> usize {
        self.keys.iter().position(|k| k == key).unwrap()
    }

    fn push(&mut self, at: Millis, to: usize, from: usize, kind: Kind) {
        self.order += 1;
        self.queue.push(Reverse(Event {
            at,
            order: self.order,
            to,
            from,
            kind,
        }));
    }

    fn latency(&mut self) -> Duration {
        Duration::from_millis(LATENCY_MIN_MS + self.rng.next_u64() % LATENCY_SPREAD_MS)
    }

    fn send_stem(&mut self, now: Millis, from: usize, to: &WgKey, hop: u8) {
        let to = self.index(to);
        if self.rng.next_u64() % 100 < STEM_LOSS_PERCENT {
            return;
        }
        let at = now + self.latency();
        self.push(at, to, from, Kind::Stem { hop });
    }

    fn send_gossip(&mut self, at: Millis, from: usize, to: usize) {
        self.first_sender.get_or_insert(from);
        let at = at + self.latency();
        self.push(at, to, from, Kind::Gossip);
    }

    /// `node` starts spreading the record: a push to every peer.
    fn fluff(&mut self, now: Millis, node: usize) {
        self.nodes[node].holds = true;
        for to in (0..NODES).filter(|&t| t != node) {
            self.send_gossip(now, node, to);
        }
    }

    fn timer(&mut self, node: usize) {
        let deadline = self.nodes[node]
            .relay
            .next_deadline()
            .into_iter()
            .chain(self.nodes[node].publisher.deadline())
            .min();
        if let Some(at) = deadline {
            self.push(at, node, node, Kind::Timer);
        }
    }

    fn start(&mut self, privacy: bool) {
        let o = self.origin;
        if !privacy {
            self.fluff(Millis::ZERO, o);
            return;
        }
        let routes = self.nodes[o].routes.clone();
        match self.nodes[o]
            .publisher
            .on_new_record(SEQUENCE, SEQUENCE, &routes, Millis::ZERO)
        {
            OriginAction::Stem { to, .. } => {
                self.send_stem(Millis::ZERO, o, &to, 1);
                self.timer(o);
            }
            OriginAction::Publish(_) => self.fluff(Millis::ZERO, o),
        }
    }

    fn handle(&mut self, ev: Event) {
        let now = ev.at;
        let n = ev.to;
        match ev.kind {
            Kind::Stem { hop } => {
                let stem = IncomingStem {
                    origin: self.keys[self.origin],
                    sequence: SEQUENCE,
                    from: self.keys[ev.from],
                    hop,
                    record: SEQUENCE,
                };
                let held = self.nodes[n].holds.then_some(SEQUENCE);
                let routes = self.nodes[n].routes.clone();
                let action = self.nodes[n]
                    .relay
                    .on_stem(stem, held, &routes, &mut self.rng, now);
                match action {
                    RelayAction::Forward { to, hop, .. } => {
                        self.send_stem(now, n, &to, hop);
                        self.timer(n);
                    }
                    RelayAction::Fluff(_) => self.fluff(now, n),
                    RelayAction::Drop(_) => {}
                }
            }
            Kind::Gossip if n == self.origin => {
                if self.nodes[n].publisher.on_seen(SEQUENCE).is_some() {
                    self.fluff(now, n);
                }
            }
            Kind::Gossip => {
                if !self.nodes[n].holds {
                    self.nodes[n].holds = true;
                    let to = (n + 1 + (self.rng.next_u64() as usize) % (NODES - 1)) % NODES;
                    let later =
                        now + Duration::from_millis(self.rng.next_u64() % REGOSSIP_WITHIN_MS);
                    self.send_gossip(later, n, to);
                }
            }
            Kind::Timer if n == self.origin => {
                if self.nodes[n].publisher.expired(now).is_some() {
                    self.fluff(now, n);
                }
            }
            Kind::Timer => {
                let holds = self.nodes[n].holds;
                let due = self.nodes[n]
                    .relay
                    .expired(now, |_| holds.then_some(SEQUENCE));
                if !due.is_empty() && !holds {
                    self.fluff(now, n);
                }
                self.timer(n);
            }
        }
    }
}

fn run(keys: &[WgKey], seed: u64, privacy: bool) -> Outcome {
    let mut rng = TestRng::new(seed);
    let mut epoch_seed = [0u8; 32];
    rng.fill_bytes(&mut epoch_seed);
    let nodes = keys
        .iter()
        .map(|k| Node {
            routes: StemRoutes::new(epoch_seed, *k, keys.iter().copied()),
            relay: StemRelay::default(),
            publisher: PrivatePublisher::default(),
            holds: false,
        })
        .collect();
    let origin = (seed as usize) % NODES;
    let mut sim = Sim {
        keys,
        nodes,
        queue: BinaryHeap::new(),
        order: 0,
        rng,
        origin,
        first_sender: None,
    };
    let origin_relay = sim.nodes[origin].routes.for_own().map(|k| sim.index(&k));
    sim.start(privacy);
    let mut everyone_at = None;
    while let Some(Reverse(ev)) = sim.queue.pop() {
        if ev.at > LIMIT {
            break;
        }
        sim.handle(ev);
        if sim.nodes.iter().all(|n| n.holds) {
            everyone_at = Some(ev.at);
            break;
        }
    }
    Outcome {
        first_sender: sim.first_sender.expect("someone spreads the record"),
        origin_relay,
        everyone_at,
    }
}

struct Figures {
    origin_first: f64,
    origin_relay_first: f64,
    median_spread_ms: u64,
    max_spread_ms: u64,
}

fn simulate(privacy: bool) -> Figures {
    let keys: Vec<WgKey> = (0..NODES as u32).map(crate::mesh::testkit::key).collect();
    let mut origin_first = 0u64;
    let mut relay_first = 0u64;
    let mut spread = Vec::new();
    for seed in 0..RUNS {
        let o = run(&keys, seed, privacy);
        let origin = (seed as usize) % NODES;
        origin_first += u64::from(o.first_sender == origin);
        relay_first += u64::from(Some(o.first_sender) == o.origin_relay);
        let at = o
            .everyone_at
            .unwrap_or_else(|| panic!("run {seed}: the record never reached every node"));
        spread.push(at.0);
    }
    spread.sort_unstable();
    Figures {
        origin_first: origin_first as f64 / RUNS as f64,
        origin_relay_first: relay_first as f64 / RUNS as f64,
        median_spread_ms: spread[spread.len() / 2],
        max_spread_ms: spread[spread.len() - 1],
    }
}

#[test]
fn dandelion_sim_with_privacy_the_origin_is_rarely_the_first_sender() {
    let f = simulate(true);
    println!(
        "dandelion sim, {NODES} nodes, {RUNS} runs, {STEM_LOSS_PERCENT}% stem loss, --privacy: \
         origin first sender in {:.1}% of runs (its own stem relay first in {:.1}%); \
         every node holds the record after median {} ms, max {} ms",
        f.origin_first * 100.0,
        f.origin_relay_first * 100.0,
        f.median_spread_ms,
        f.max_spread_ms
    );
    assert!(
        f.origin_first < 0.15,
        "origin first in {:.1}% of runs",
        f.origin_first * 100.0
    );
    // The embargo bounds the delay even when stems are lost.
    assert!(f.max_spread_ms <= ORIGIN_EMBARGO.as_millis() as u64 + 1_000);
}

#[test]
fn dandelion_sim_without_privacy_the_origin_is_always_the_first_sender() {
    let f = simulate(false);
    println!(
        "dandelion sim, {NODES} nodes, {RUNS} runs, no privacy: origin first sender in {:.1}% of runs",
        f.origin_first * 100.0
    );
    assert_eq!(f.origin_first, 1.0);
}
