//! In-mesh gossip (`gossip`, `gossip-transitive`): the policy, in the core, sans-IO: when the next
//! anti-entropy round runs and with whom. A round is one peer exchange (hello / reply / records,
//! PROTOCOL.md §8) with one random active peer over the tunnel, to its mesh address's control
//! port. Every [`GossipConfig::every`] (10 s) normally; every [`GossipConfig::catch_up_every`]
//! (0.5 s) while rounds are fruitful (the store took new or newer records since the last
//! round), so a node that joins a large mesh catches up in seconds; once
//! [`GossipConfig::patience`] rounds in a row brought nothing the interval doubles per
//! fruitless round back to the normal one. Rounds are jittered so nodes
//! started together do not stay in step. The daemon (`daemon::gossip_task`) and the
//! simulation (`discovery::sim`) drive it with their clocks.

use std::net::SocketAddr;
use std::time::Duration;

use rand_core::RngCore;

use crate::mesh::{Millis, PeerStore};

/// The normal gossip interval.
pub const GOSSIP_EVERY: Duration = Duration::from_secs(10);
/// The interval while rounds are fruitful.
pub const CATCH_UP_EVERY: Duration = Duration::from_millis(500);

/// Gossip tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GossipConfig {
    pub every: Duration,
    pub catch_up_every: Duration,
    /// Fruitless rounds in a row after which the normal interval resumes.
    pub patience: u32,
    /// Rounds in a row that only a peer's filter showing more peers (nothing learned yet) may
    /// keep at the catch-up pace (bounds the pace when a difference never resolves, e.g. a
    /// full store).
    pub behind_rounds: u32,
}

impl Default for GossipConfig {
    fn default() -> Self {
        Self {
            every: GOSSIP_EVERY,
            catch_up_every: CATCH_UP_EVERY,
            patience: 3,
            behind_rounds: 12,
        }
    }
}

/// The gossip schedule of one node.
#[derive(Debug, Clone)]
pub struct GossipPolicy {
    config: GossipConfig,
    next_at: Millis,
    learned_at_last_round: u64,
    behind_at_last_round: u64,
    fruitless: u32,
    only_behind: u32,
}

/// `d` ± 10 %, from `rng`.
fn jitter(d: Duration, rng: &mut dyn RngCore) -> Duration {
    let ms = d.as_millis() as u64;
    let spread = ms / 5;
    if spread == 0 {
        return d;
    }
    Duration::from_millis(ms - spread / 2 + rng.next_u64() % spread)
}

impl GossipPolicy {
    /// The first round runs one catch-up interval after `now` (a new node has news to trade).
    pub fn new(config: GossipConfig, now: Millis, rng: &mut dyn RngCore) -> Self {
        Self {
            config,
            next_at: now + jitter(config.catch_up_every, rng),
            learned_at_last_round: 0,
            behind_at_last_round: 0,
            fruitless: 0,
            only_behind: 0,
        }
    }

    /// When the next round is due.
    pub fn next_at(&self) -> Millis {
        self.next_at
    }

    /// The interval after this round: the catch-up pace while fruitful, then doubling with
    /// every further fruitless round up to the normal interval (a node still missing a few
    /// records keeps trying for a while; an idle mesh settles at the normal pace in ~15 s).
    fn interval(&self) -> Duration {
        if self.catching_up() {
            return self.config.catch_up_every;
        }
        let doublings = (self.fruitless - self.config.patience + 1).min(16);
        self.config
            .catch_up_every
            .saturating_mul(1 << doublings)
            .min(self.config.every)
    }

    /// Whether rounds run at the catch-up pace now.
    pub fn catching_up(&self) -> bool {
        self.fruitless < self.config.patience
    }

    /// Runs a round at `now`: `learned` is the engine's monotonic count of records taken
    /// (`Engine::learned`), `behind` its count of filters that showed this node behind
    /// (`Engine::behind`); schedules the next round (catch-up pace while rounds are fruitful:
    /// something was learned, or a peer showed more for at most `behind_rounds` rounds).
    pub fn round(&mut self, now: Millis, learned: u64, behind: u64, rng: &mut dyn RngCore) {
        if learned > self.learned_at_last_round {
            self.fruitless = 0;
            self.only_behind = 0;
        } else if behind > self.behind_at_last_round && self.only_behind < self.config.behind_rounds
        {
            self.fruitless = 0;
            self.only_behind += 1;
        } else {
            self.fruitless = self.fruitless.saturating_add(1);
        }
        self.learned_at_last_round = learned;
        self.behind_at_last_round = behind;
        self.next_at = now + jitter(self.interval(), rng);
    }

    /// Something new arrived from elsewhere (e.g. the node's own record changed): back to the
    /// catch-up pace from the next round on.
    pub fn wake(&mut self, now: Millis, rng: &mut dyn RngCore) {
        self.fruitless = 0;
        let soon = now + jitter(self.config.catch_up_every, rng);
        self.next_at = self.next_at.min(soon);
    }
}

/// The peer to gossip with: the control address (mesh IPv4, control port) of a random peer
/// alive at `now` among those heard directly (they hold this node too, so the tunnel is up),
/// else among all alive peers.
pub fn pick_peer(store: &PeerStore, now: Millis, rng: &mut dyn RngCore) -> Option<SocketAddr> {
    let dead_after = store.config().dead_after;
    let alive: Vec<(SocketAddr, bool)> = store.scan(|e| {
        e.is_alive(now, dead_after).then(|| {
            (
                SocketAddr::new(e.record.mesh_ipv4.into(), e.record.control_port),
                e.discovered_via.iter().any(|m| m.is_direct()),
            )
        })
    });
    let direct: Vec<SocketAddr> = alive.iter().filter(|a| a.1).map(|a| a.0).collect();
    let pool: Vec<SocketAddr> = if direct.is_empty() {
        alive.iter().map(|a| a.0).collect()
    } else {
        direct
    };
    if pool.is_empty() {
        return None;
    }
    Some(pool[(rng.next_u64() % pool.len() as u64) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::splitmix::SplitMix64 as TestRng;
    use crate::mesh::testkit::{address_check, record};
    use crate::mesh::{DiscoveryMethod, PeerStore, PeerUpdate, StoreConfig};

    fn peers(methods: &[DiscoveryMethod]) -> PeerStore {
        let store = PeerStore::new(StoreConfig::default(), address_check());
        for (n, m) in methods.iter().enumerate() {
            store
                .update(PeerUpdate::new(record(n as u32), *m), Millis::ZERO)
                .unwrap();
        }
        store
    }

    #[test]
    fn catches_up_while_fruitful_then_slows_down() {
        let mut rng = TestRng::new(1);
        let t0 = Millis::from_secs(1000);
        let mut p = GossipPolicy::new(GossipConfig::default(), t0, &mut rng);
        let first = p.next_at().since(t0);
        assert!(first >= Duration::from_millis(450) && first <= Duration::from_millis(550));
        let mut now = p.next_at();
        // Fruitful rounds: ~0.5 s apart.
        for learned in 1..5 {
            p.round(now, learned, 0, &mut rng);
            assert!(p.next_at().since(now) <= Duration::from_millis(550));
            now = p.next_at();
        }
        // Fruitless rounds: still catching up twice more, then the interval doubles up to ~10 s.
        for _ in 0..2 {
            p.round(now, 4, 0, &mut rng);
            assert!(p.catching_up());
            now = p.next_at();
        }
        let mut gaps = Vec::new();
        for _ in 0..6 {
            p.round(now, 4, 0, &mut rng);
            gaps.push(p.next_at().since(now).as_millis() / 100);
            now = p.next_at();
        }
        assert!(!p.catching_up());
        // ~1, 2, 4, 8, 10, 10 s (± 10 %), in tenths.
        for (gap, want) in gaps.iter().zip([10u128, 20, 40, 80, 100, 100]) {
            assert!(
                gap * 10 >= want * 9 - 10 && gap * 10 <= want * 11,
                "{gaps:?}"
            );
        }
        // A peer showing more keeps the pace, but not forever.
        let mut behind = 0;
        for _ in 0..12 {
            behind += 1;
            p.round(now, 4, behind, &mut rng);
            assert!(p.catching_up());
        }
        for _ in 0..3 {
            behind += 1;
            p.round(now, 4, behind, &mut rng);
        }
        assert!(!p.catching_up());
        p.wake(now, &mut rng);
        assert!(p.next_at().since(now) <= Duration::from_millis(550));
    }

    #[test]
    fn prefers_peers_heard_directly_and_spreads_choices() {
        let mut rng = TestRng::new(2);
        let now = Millis::from_secs(10);
        assert_eq!(pick_peer(&peers(&[]), now, &mut rng), None);
        let ps = peers(&[
            DiscoveryMethod::GossipTransitive,
            DiscoveryMethod::Dht,
            DiscoveryMethod::Lan,
            DiscoveryMethod::DhtTransitive,
        ]);
        let direct: Vec<SocketAddr> = ps
            .snapshot()
            .iter()
            .filter(|e| e.discovered_via[0].is_direct())
            .map(|e| SocketAddr::new(e.record.mesh_ipv4.into(), e.record.control_port))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let to = pick_peer(&ps, now, &mut rng).unwrap();
            assert!(direct.contains(&to), "{to} was only heard transitively");
            seen.insert(to);
        }
        assert_eq!(seen.len(), 2, "both direct peers get picked");
        // Only transitive peers: they are used.
        let only = peers(&[DiscoveryMethod::GossipTransitive]);
        assert!(pick_peer(&only, now, &mut rng).is_some());
        // Nobody alive: nobody.
        assert_eq!(pick_peer(&only, Millis::from_secs(3600), &mut rng), None);
    }
}
