//! Which relays could carry a pair's traffic, best first. Candidates are introducers seen in
//! the last 90 s, not offline, not either end of the pair, not cooling down after a failure.
//! Those with a measured local leg come first, by [`relay_score`] (both legs' quality and the
//! relay's advertised load); the rest follow in the order of a hash of the unordered pair of
//! keys and the relay's key, so both ends rank them alike without talking (ties too). The
//! best is used, the next two are kept as fallbacks; [`super::switch`] adds the hysteresis.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::mesh::WgKey;
use crate::mesh::health::OfflineList;
use crate::mesh::peer::PeerEntry;
use crate::mesh::time::Millis;
use crate::proto::RelayLoad;

use super::score::relay_score;

/// An introducer not seen for this long is not a relay candidate.
pub const INTRODUCER_FRESH_FOR: Duration = Duration::from_secs(90);
/// A relay that failed is skipped for this long.
pub const RELAY_FAILURE_COOLDOWN: Duration = Duration::from_secs(60);
/// Fallback relays kept besides the chosen one.
pub const RELAY_FALLBACKS: usize = 2;

/// A node that could relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayCandidate {
    pub key: WgKey,
    pub introducer: bool,
    pub last_seen: Millis,
    /// Temporarily offline (health).
    pub offline: bool,
    /// Link quality this node → relay (0..=100), when measured.
    pub local_leg_quality: Option<u8>,
    /// Link quality relay → peer, when the peer reported it.
    pub peer_leg_quality: Option<u8>,
    /// The load the relay advertises in its record.
    pub load: Option<RelayLoad>,
}

impl RelayCandidate {
    /// The quality score (hundredths), once the local leg is measured.
    pub fn score(&self) -> Option<u32> {
        Some(relay_score(
            self.local_leg_quality?,
            self.peer_leg_quality,
            self.load,
        ))
    }
}

/// The relay candidates among store peers: every introducer, with its last-seen time, whether
/// it is offline, its advertised load, the measured quality of the local leg (`local_quality`,
/// from the probe monitor) and of the peer leg (`peer_quality`, as the peer reported it).
pub fn relay_candidates(
    peers: &[PeerEntry],
    offline: &OfflineList,
    local_quality: impl Fn(&WgKey) -> Option<u8>,
    peer_quality: impl Fn(&WgKey) -> Option<u8>,
    now: Millis,
) -> Vec<RelayCandidate> {
    peers
        .iter()
        .filter(|e| e.record.introducer)
        .map(|e| {
            let key = *e.key();
            RelayCandidate {
                key,
                introducer: true,
                last_seen: e.last_seen,
                offline: offline.is_offline(&key, now),
                local_leg_quality: local_quality(&key),
                peer_leg_quality: peer_quality(&key),
                load: e.record.relay_load,
            }
        })
        .collect()
}

/// The relay chosen for a pair, and the fallbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayChoice {
    pub relay: WgKey,
    pub fallbacks: Vec<WgKey>,
}

impl RelayChoice {
    /// Whether `key` is the relay or a fallback.
    pub fn includes(&self, key: &WgKey) -> bool {
        self.relay == *key || self.fallbacks.contains(key)
    }
}

/// Relays that failed recently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayCooldowns {
    until: BTreeMap<WgKey, Millis>,
}

impl RelayCooldowns {
    /// `relay` failed at `now`: skip it for [`RELAY_FAILURE_COOLDOWN`].
    pub fn mark_failed(&mut self, relay: WgKey, now: Millis) {
        self.until.insert(relay, now + RELAY_FAILURE_COOLDOWN);
    }

    pub fn is_cooling(&self, relay: &WgKey, now: Millis) -> bool {
        self.until.get(relay).is_some_and(|u| now < *u)
    }

    /// Forgets cooldowns that ended.
    pub fn prune(&mut self, now: Millis) {
        self.until.retain(|_, u| now < *u);
    }
}

/// A number both ends of the pair compute alike for `relay`: SHA-256 over the two keys in
/// ascending order and the relay key, first 8 bytes.
pub fn pair_hash(a: &WgKey, b: &WgKey, relay: &WgKey) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::new()
        .chain_update(b"wgmesh relay choice")
        .chain_update(lo)
        .chain_update(hi)
        .chain_update(relay)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The usable relays between `local` and `peer` at `now`, best first, with their scores.
pub fn rank_relays(
    candidates: &[RelayCandidate],
    local: &WgKey,
    peer: &WgKey,
    cooldowns: &RelayCooldowns,
    now: Millis,
) -> Vec<(WgKey, Option<u32>)> {
    let mut usable: Vec<(bool, Reverse<u32>, u64, WgKey)> = candidates
        .iter()
        .filter(|c| {
            c.introducer
                && c.key != *local
                && c.key != *peer
                && !c.offline
                && now.since(c.last_seen) < INTRODUCER_FRESH_FOR
                && !cooldowns.is_cooling(&c.key, now)
        })
        .map(|c| {
            let score = c.score();
            (
                score.is_none(),
                Reverse(score.unwrap_or(0)),
                pair_hash(local, peer, &c.key),
                c.key,
            )
        })
        .collect();
    usable.sort_unstable();
    usable.dedup_by_key(|u| u.3);
    usable
        .into_iter()
        .map(|(unscored, Reverse(score), _, key)| (key, (!unscored).then_some(score)))
        .collect()
}

/// Chooses the relay between `local` and `peer` among `candidates` at `now`.
pub fn select_relay(
    candidates: &[RelayCandidate],
    local: &WgKey,
    peer: &WgKey,
    cooldowns: &RelayCooldowns,
    now: Millis,
) -> Option<RelayChoice> {
    let mut keys = rank_relays(candidates, local, peer, cooldowns, now)
        .into_iter()
        .map(|(k, _)| k);
    let relay = keys.next()?;
    Some(RelayChoice {
        relay,
        fallbacks: keys.take(RELAY_FALLBACKS).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = Millis(1_000_000);

    fn cand(n: u8) -> RelayCandidate {
        RelayCandidate {
            key: [n; 32],
            introducer: true,
            last_seen: Millis(NOW.0 - 1_000),
            offline: false,
            local_leg_quality: None,
            peer_leg_quality: None,
            load: None,
        }
    }

    fn q(n: u8, local: u8, peer: u8, load: u32) -> RelayCandidate {
        RelayCandidate {
            local_leg_quality: Some(local),
            peer_leg_quality: Some(peer),
            load: Some(RelayLoad {
                relayed: load,
                max: 64,
            }),
            ..cand(n)
        }
    }

    const A: WgKey = [1; 32];
    const B: WgKey = [2; 32];

    #[test]
    fn candidates_come_from_introducers_in_the_store() {
        use crate::mesh::rank::DiscoveryMethod;
        let entry = |n: u32, introducer: bool| {
            let mut record = crate::mesh::testkit::record(n);
            record.introducer = introducer;
            PeerEntry {
                record,
                signed: None,
                endpoint: None,
                discovered_via: vec![DiscoveryMethod::Dht],
                first_seen: NOW,
                last_seen: NOW,
                restored_at: None,
            }
        };
        let mut peers = [entry(1, true), entry(2, false), entry(3, true)];
        let load = RelayLoad {
            relayed: 3,
            max: 64,
        };
        peers[0].record.relay_load = Some(load);
        let mut offline = OfflineList::default();
        offline.mark(*peers[2].key(), NOW);
        let c = relay_candidates(&peers, &offline, |_| Some(80), |_| Some(70), NOW);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].key, *peers[0].key());
        assert_eq!(
            (c[0].local_leg_quality, c[0].peer_leg_quality, c[0].load),
            (Some(80), Some(70), Some(load))
        );
        assert!(!c[0].offline && c[1].offline);
        let choice = select_relay(&c, &A, &B, &RelayCooldowns::default(), NOW).unwrap();
        assert_eq!(choice.relay, *peers[0].key(), "the offline one is skipped");
    }

    #[test]
    fn candidates_are_filtered() {
        let none = RelayCooldowns::default();
        let mut cooling = RelayCooldowns::default();
        cooling.mark_failed([10; 32], NOW);
        let table: Vec<(&str, RelayCandidate, &RelayCooldowns, bool)> = vec![
            ("fresh introducer", cand(10), &none, true),
            (
                "not an introducer",
                RelayCandidate {
                    introducer: false,
                    ..cand(10)
                },
                &none,
                false,
            ),
            (
                "seen 89 s ago",
                RelayCandidate {
                    last_seen: Millis(NOW.0 - 89_000),
                    ..cand(10)
                },
                &none,
                true,
            ),
            (
                "seen 90 s ago",
                RelayCandidate {
                    last_seen: Millis(NOW.0 - 90_000),
                    ..cand(10)
                },
                &none,
                false,
            ),
            (
                "offline",
                RelayCandidate {
                    offline: true,
                    ..cand(10)
                },
                &none,
                false,
            ),
            (
                "this node",
                RelayCandidate { key: A, ..cand(10) },
                &none,
                false,
            ),
            (
                "the peer",
                RelayCandidate { key: B, ..cand(10) },
                &none,
                false,
            ),
            ("cooling down", cand(10), &cooling, false),
        ];
        for (why, c, cd, usable) in table {
            assert_eq!(
                select_relay(&[c], &A, &B, cd, NOW).is_some(),
                usable,
                "{why}"
            );
        }
        assert!(!cooling.is_cooling(&[10; 32], NOW + RELAY_FAILURE_COOLDOWN));
        cooling.prune(NOW + RELAY_FAILURE_COOLDOWN);
        assert_eq!(cooling, RelayCooldowns::default());
    }

    #[test]
    fn both_sides_pick_the_same_relay_without_quality() {
        let cands: Vec<_> = (10..20).map(cand).collect();
        let cd = RelayCooldowns::default();
        let ab = select_relay(&cands, &A, &B, &cd, NOW).unwrap();
        let ba = select_relay(&cands, &B, &A, &cd, NOW).unwrap();
        assert_eq!(ab, ba);
        assert_eq!(ab.fallbacks.len(), 2);
        let mut reversed = cands.clone();
        reversed.reverse();
        assert_eq!(
            select_relay(&reversed, &A, &B, &cd, NOW).unwrap(),
            ab,
            "order of candidates does not matter"
        );
        // Another pair spreads to (likely) another relay order.
        let other = select_relay(&cands, &A, &[3; 32], &cd, NOW).unwrap();
        assert!(cands.iter().any(|c| c.key == other.relay));
    }

    #[test]
    fn measured_quality_wins_and_load_penalises() {
        let cd = RelayCooldowns::default();
        let cands = [
            cand(10),
            q(11, 90, 90, 0),
            q(12, 100, 100, 58),
            q(13, 50, 100, 0),
        ];
        // Scores: 11 -> 8100, 12 -> 10000 × 0.16 = 1600 (58 of 64 is over 90 %: 42 × 0.4),
        // 13 -> 5000; 10 unmeasured goes last.
        let ranked = rank_relays(&cands, &A, &B, &cd, NOW);
        assert_eq!(
            ranked,
            vec![
                ([11; 32], Some(8100)),
                ([13; 32], Some(5000)),
                ([12; 32], Some(1600)),
                ([10; 32], None)
            ]
        );
        let choice = select_relay(&cands, &A, &B, &cd, NOW).unwrap();
        assert_eq!(choice.relay, [11; 32]);
        assert_eq!(choice.fallbacks, vec![[13; 32], [12; 32]]);
        assert_eq!(q(1, 30, 30, 1000).score(), Some(0), "load floors at 0");
        assert_eq!(cand(1).score(), None);
        let one_leg = RelayCandidate {
            local_leg_quality: Some(80),
            ..cand(1)
        };
        assert_eq!(
            one_leg.score(),
            Some(4000),
            "unreported peer leg counts as 50"
        );
    }

    #[test]
    fn a_failed_relay_is_skipped_and_the_fallback_takes_over() {
        let cands: Vec<_> = (10..14).map(cand).collect();
        let mut cd = RelayCooldowns::default();
        let first = select_relay(&cands, &A, &B, &cd, NOW).unwrap();
        cd.mark_failed(first.relay, NOW);
        let second = select_relay(&cands, &A, &B, &cd, NOW).unwrap();
        assert_eq!(second.relay, first.fallbacks[0]);
        assert!(!second.includes(&first.relay));
        let later = select_relay(&cands, &A, &B, &cd, NOW + RELAY_FAILURE_COOLDOWN).unwrap();
        assert_eq!(later, first, "back after the cooldown");
    }
}
