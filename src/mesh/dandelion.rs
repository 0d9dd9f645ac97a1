//! Dandelion++ announce privacy (`--privacy`): the whole policy, pure and sans-IO.
//!
//! A node's fresh record first travels a *stem* of relays before it spreads (*fluffs*) by the
//! normal exchange and gossip, so the node that first spreads it is usually not its origin.
//! - Epochs of 10 minutes ([`epoch_of`]). Each epoch every member derives the same seed from
//!   the mesh secret (`MeshKeys::dandelion_epoch_seed`); from it each node picks up to
//!   [`MAX_RELAYS`] stem relays among its active peers that proved a working tunnel lately
//!   ([`relay_candidates`]: a relay that is down would swallow the stem until the embargo
//!   ends) ([`StemRoutes`]), and routes its own
//!   records always to one of them and each predecessor's stems always to one of them
//!   (per-epoch deterministic routing, as in the paper).
//! - Each hop forwards with probability 0.9 or fluffs with 0.1 ([`decide`]); the node receiving
//!   hop [`MAX_HOP`] always fluffs. Randomness is injected.
//! - Every stem node keeps the record under an embargo ([`StemRelay`]): if it has not come
//!   back in fluff (reached this node's peer store) when the timer expires, the node fluffs it
//!   itself. Timers are random in 3–6 s, so the first to expire does not mark a position.
//! - The origin ([`PrivatePublisher`]) keeps showing its previous record until its fresh one
//!   has been fluffed by someone else (another node holds it) or its own embargo (8 s, longer
//!   than any relay's) expires.
//!
//! The daemon supplies time, randomness, the active peers and what its store holds; the
//! decisions come back as values (forward to whom, fluff what, publish what).

use std::collections::BTreeMap;
use std::time::Duration;

use rand_core::RngCore;
use sha2::{Digest, Sha256};

use super::{Millis, WgKey};

/// Length of a stem epoch.
pub const EPOCH: Duration = Duration::from_secs(600);
/// Stem relays a node picks per epoch.
pub const MAX_RELAYS: usize = 2;
/// Percent of hops that forward the stem (the rest fluff).
pub const FORWARD_PERCENT: u64 = 90;
/// The node receiving this hop always fluffs (PROTOCOL.md §11).
pub const MAX_HOP: u8 = crate::proto::messages::MAX_STEM_HOP;
/// Shortest embargo of a stem relay …
pub const RELAY_EMBARGO_MIN: Duration = Duration::from_secs(3);
/// … plus a uniformly random part up to this.
pub const RELAY_EMBARGO_SPREAD: Duration = Duration::from_secs(3);
/// The origin's embargo: longer than any relay's, so a stem lost on the way is fluffed by a
/// relay before the origin gives up and publishes its record itself.
pub const ORIGIN_EMBARGO: Duration = Duration::from_secs(8);
/// Most records a relay holds under embargo (bounded state; over it, stems fluff at once).
pub const MAX_EMBARGOES: usize = 64;

/// A peer is a relay candidate only if a control datagram arrived from its mesh address (over
/// the tunnel) within this long.
pub const TUNNEL_FRESH: Duration = Duration::from_secs(300);

/// The peers that may be stem relays at `now`: of `(peer, when a datagram last came from it
/// over the tunnel)`, those heard within [`TUNNEL_FRESH`].
pub fn relay_candidates(
    peers: impl IntoIterator<Item = (WgKey, Option<Millis>)>,
    now: Millis,
) -> Vec<WgKey> {
    peers
        .into_iter()
        .filter(|(_, heard)| heard.is_some_and(|t| now.since(t) < TUNNEL_FRESH))
        .map(|(k, _)| k)
        .collect()
}

/// The stem epoch of `now` (unix milliseconds).
pub fn epoch_of(now: Millis) -> u64 {
    now.0 / EPOCH.as_millis() as u64
}

fn score(seed: &[u8; 32], tag: &[u8], keys: &[&WgKey]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"wgmesh/v2 dandelion ");
    h.update(tag);
    h.update(seed);
    for k in keys {
        h.update(k);
    }
    h.finalize().into()
}

/// One node's stem routing for one epoch: its relays and which one each stem goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StemRoutes {
    seed: [u8; 32],
    own: WgKey,
    relays: Vec<WgKey>,
}

impl StemRoutes {
    /// Picks this epoch's relays: the (at most) [`MAX_RELAYS`] active peers with the lowest
    /// `SHA-256(tag ‖ seed ‖ own ‖ peer)`. The same seed and peers give the same relays.
    pub fn new(seed: [u8; 32], own: WgKey, active: impl IntoIterator<Item = WgKey>) -> Self {
        let ranked: BTreeMap<[u8; 32], WgKey> = active
            .into_iter()
            .filter(|k| *k != own)
            .map(|k| (score(&seed, b"relay", &[&own, &k]), k))
            .collect();
        let relays = ranked.into_values().take(MAX_RELAYS).collect();
        Self { seed, own, relays }
    }

    /// This node's key.
    pub fn own(&self) -> &WgKey {
        &self.own
    }

    /// This epoch's relays (0, 1 or 2).
    pub fn relays(&self) -> &[WgKey] {
        &self.relays
    }

    /// The relay of the first of `relays` (in a per-epoch order chosen by `tag`) that is not
    /// in `avoid`.
    fn pick(&self, tag: &[u8], who: &WgKey, avoid: &[&WgKey]) -> Option<WgKey> {
        let n = self.relays.len();
        if n == 0 {
            return None;
        }
        let first = usize::from(score(&self.seed, tag, &[&self.own, who])[0]) % n;
        (0..n)
            .map(|i| self.relays[(first + i) % n])
            .find(|r| !avoid.contains(&r))
    }

    /// Where this node's own fresh records go this epoch (always the same relay).
    pub fn for_own(&self) -> Option<WgKey> {
        self.pick(b"own", &self.own, &[])
    }

    /// Where a stem received from `from` goes (the same relay for every stem of one
    /// predecessor this epoch), never back to `from` nor to the record's `origin`.
    pub fn for_incoming(&self, from: &WgKey, origin: &WgKey) -> Option<WgKey> {
        self.pick(b"incoming", from, &[from, origin])
    }
}

/// What a stem hop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StemStep {
    /// Send the stem on to `to`, which receives it as hop `hop`.
    Forward { to: WgKey, hop: u8 },
    /// Spread the record normally (into the peer store, then exchange/gossip).
    Fluff,
}

/// The forward-or-fluff decision of the node receiving stem hop `hop`, whose route for it is
/// `next`: fluff at [`MAX_HOP`], without a route, or with probability 1 − 0.9.
pub fn decide(hop: u8, next: Option<WgKey>, rng: &mut impl RngCore) -> StemStep {
    if hop >= MAX_HOP {
        return StemStep::Fluff;
    }
    let Some(to) = next else {
        return StemStep::Fluff;
    };
    if rng.next_u64() % 100 < FORWARD_PERCENT {
        StemStep::Forward { to, hop: hop + 1 }
    } else {
        StemStep::Fluff
    }
}

/// A stem as a relay receives it (`R` is the signed record the daemon carries along).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingStem<R> {
    /// The record's node.
    pub origin: WgKey,
    /// The record's sequence.
    pub sequence: u64,
    /// The mesh peer the stem came from.
    pub from: WgKey,
    /// The hop this node is (1..=[`MAX_HOP`]).
    pub hop: u8,
    pub record: R,
}

/// Why a relay ignored a stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StemDrop {
    /// This node's own record came back along a stem.
    OwnRecord,
    /// The store already holds this record or a newer one: it has been fluffed.
    Known,
}

impl StemDrop {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::OwnRecord => "own_record",
            Self::Known => "stem_known",
        }
    }
}

/// What a relay does with a stem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAction<R> {
    /// Send `record` to `to` as stem hop `hop` (the record is now under embargo here).
    Forward { to: WgKey, hop: u8, record: R },
    /// Put `record` in the peer store and spread it.
    Fluff(R),
    /// Nothing to do.
    Drop(StemDrop),
}

#[derive(Debug, Clone)]
struct Embargo<R> {
    until: Millis,
    record: R,
}

/// A stem relay's state: the records it forwarded and holds under embargo.
#[derive(Debug, Clone)]
pub struct StemRelay<R> {
    embargoes: BTreeMap<(WgKey, u64), Embargo<R>>,
}

impl<R> Default for StemRelay<R> {
    fn default() -> Self {
        Self {
            embargoes: BTreeMap::new(),
        }
    }
}

/// A random relay embargo in [`RELAY_EMBARGO_MIN`] + [0, [`RELAY_EMBARGO_SPREAD`]).
fn relay_embargo(rng: &mut impl RngCore) -> Duration {
    let spread = RELAY_EMBARGO_SPREAD.as_millis() as u64;
    RELAY_EMBARGO_MIN + Duration::from_millis(rng.next_u64() % spread.max(1))
}

impl<R: Clone> StemRelay<R> {
    /// Handles one stem received at `now`; `held` is the sequence of the origin's record in
    /// this node's store, if any.
    pub fn on_stem(
        &mut self,
        stem: IncomingStem<R>,
        held: Option<u64>,
        routes: &StemRoutes,
        rng: &mut impl RngCore,
        now: Millis,
    ) -> RelayAction<R> {
        if stem.origin == *routes.own() {
            return RelayAction::Drop(StemDrop::OwnRecord);
        }
        if held.is_some_and(|h| h >= stem.sequence) {
            return RelayAction::Drop(StemDrop::Known);
        }
        // Older stems of the same origin are superseded.
        self.embargoes
            .retain(|(o, s), _| *o != stem.origin || *s >= stem.sequence);
        let id = (stem.origin, stem.sequence);
        // Seen before: the stem looped back here; end it.
        if let Some(e) = self.embargoes.remove(&id) {
            return RelayAction::Fluff(e.record);
        }
        let next = routes.for_incoming(&stem.from, &stem.origin);
        match decide(stem.hop, next, rng) {
            StemStep::Forward { to, hop } if self.embargoes.len() < MAX_EMBARGOES => {
                let until = now + relay_embargo(rng);
                self.embargoes.insert(
                    id,
                    Embargo {
                        until,
                        record: stem.record.clone(),
                    },
                );
                RelayAction::Forward {
                    to,
                    hop,
                    record: stem.record,
                }
            }
            _ => RelayAction::Fluff(stem.record),
        }
    }

    /// Ends the embargoes due at `now`: returns the records to fluff (those the store, asked
    /// through `held`, does not hold at their sequence or newer); the others came back.
    pub fn expired(&mut self, now: Millis, held: impl Fn(&WgKey) -> Option<u64>) -> Vec<R> {
        let due: Vec<(WgKey, u64)> = self
            .embargoes
            .iter()
            .filter(|(_, e)| e.until <= now)
            .map(|(id, _)| *id)
            .collect();
        due.into_iter()
            .filter_map(|id| {
                let e = self.embargoes.remove(&id)?;
                held(&id.0).is_none_or(|h| h < id.1).then_some(e.record)
            })
            .collect()
    }

    /// When the next embargo ends.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.embargoes.values().map(|e| e.until).min()
    }

    /// Records under embargo.
    pub fn len(&self) -> usize {
        self.embargoes.len()
    }

    /// Whether no record is under embargo.
    pub fn is_empty(&self) -> bool {
        self.embargoes.is_empty()
    }
}

/// What the origin does with its fresh record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginAction<R> {
    /// Send it as stem hop 1 to `to`; keep showing the previous record.
    Stem { to: WgKey, record: R },
    /// No relay (no active peer): show and spread it now.
    Publish(R),
}

#[derive(Debug, Clone)]
struct Pending<R> {
    sequence: u64,
    until: Millis,
    record: R,
}

/// The origin side: this node's fresh record waiting to be fluffed by someone else.
#[derive(Debug, Clone)]
pub struct PrivatePublisher<R> {
    pending: Option<Pending<R>>,
}

impl<R> Default for PrivatePublisher<R> {
    fn default() -> Self {
        Self { pending: None }
    }
}

impl<R: Clone> PrivatePublisher<R> {
    /// This node signed a new record (`sequence`) at `now`. A record still pending is
    /// replaced (the newer one supersedes it).
    pub fn on_new_record(
        &mut self,
        sequence: u64,
        record: R,
        routes: &StemRoutes,
        now: Millis,
    ) -> OriginAction<R> {
        match routes.for_own() {
            Some(to) => {
                self.pending = Some(Pending {
                    sequence,
                    until: now + ORIGIN_EMBARGO,
                    record: record.clone(),
                });
                OriginAction::Stem { to, record }
            }
            None => {
                self.pending = None;
                OriginAction::Publish(record)
            }
        }
    }

    /// Another node showed it holds this node's record at `sequence` (it was fluffed): the
    /// pending record to publish now, if this covers it.
    pub fn on_seen(&mut self, sequence: u64) -> Option<R> {
        if self.pending.as_ref()?.sequence <= sequence {
            return self.pending.take().map(|p| p.record);
        }
        None
    }

    /// The pending record whose embargo ended at `now`, to publish now.
    pub fn expired(&mut self, now: Millis) -> Option<R> {
        if self.pending.as_ref()?.until <= now {
            return self.pending.take().map(|p| p.record);
        }
        None
    }

    /// When the pending record's embargo ends.
    pub fn deadline(&self) -> Option<Millis> {
        self.pending.as_ref().map(|p| p.until)
    }

    /// The sequence of the record waiting to be fluffed.
    pub fn pending_sequence(&self) -> Option<u64> {
        self.pending.as_ref().map(|p| p.sequence)
    }
}

#[cfg(test)]
#[path = "dandelion_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "dandelion_sim.rs"]
mod sim;
