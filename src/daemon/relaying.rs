//! Relay fallback in the daemon: feeds the core's [`RelayAgreement`] with what the daemon
//! measured (device samples → handshakes, transfer growth and suspect paths; the prober's
//! failures, link qualities, answered probes and direct-path answers; successful punches;
//! relay notices from peers' relays), runs a pass, and sends the notices the pass asks for to
//! the relays' mesh addresses. On an introducer it also counts the peers relayed through this
//! node ([`RelayLoadCounter`]) for the record. The decisions are the core's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use ipnet::IpNet;

use super::probes::Prober;
use super::punching::Punching;
use crate::discovery::ControlSocket;
use crate::discovery::relay_notice::RelayNoticeEvent;
use crate::mesh::relay::{
    LocalRelayFacts, PeerEvidence, ReceivedNotice, RelayAgreement, RelayLoadCounter, SwitchOutcome,
};
use crate::mesh::{HealthView, Millis, PeerStore, SuspectTracker, WgKey, short_key};
use crate::metrics::Metrics;
use crate::platform::DeviceState;
use crate::proto::relay::{RelayNotice, RelayRole};
use crate::proto::{NatType, RelayLoad};

/// This node's side of relay decisions.
pub struct RelayLocal<'a> {
    pub key: WgKey,
    pub nat: NatType,
    pub networks: &'a [IpNet],
    pub force_relay: bool,
}

/// Where a pass's per-peer evidence comes from.
pub struct EvidenceSources<'a> {
    pub prober: &'a Prober,
    pub punching: &'a Punching,
    pub metrics: &'a Metrics,
}

/// Relay state across the daemon's loop.
#[derive(Default)]
pub struct Relaying {
    agreement: RelayAgreement,
    suspects: SuspectTracker,
    previous: BTreeMap<WgKey, (u64, u64)>,
    grew: BTreeSet<WgKey>,
    handshakes: BTreeMap<WgKey, Option<Millis>>,
    new_suspects: bool,
    load: RelayLoadCounter,
}

impl Relaying {
    /// Takes one device sample.
    pub fn observe_device(&mut self, state: &DeviceState) {
        let sample: Vec<(WgKey, u64, u64)> = state
            .peers
            .iter()
            .map(|p| (p.config.public_key, p.rx_bytes, p.tx_bytes))
            .collect();
        self.grew = sample
            .iter()
            .filter(|(k, rx, tx)| {
                self.previous
                    .get(k)
                    .is_some_and(|(prx, ptx)| rx > prx || tx > ptx)
            })
            .map(|(k, _, _)| *k)
            .collect();
        self.previous = sample.iter().map(|(k, rx, tx)| (*k, (*rx, *tx))).collect();
        self.handshakes = state
            .peers
            .iter()
            .map(|p| (p.config.public_key, super::local::handshake_at(p)))
            .collect();
        tracing::trace!(?sample, grew = self.grew.len(), "device sample");
        let newly = self.suspects.observe(sample);
        for k in &newly {
            tracing::debug!(peer = %short_key(k), "sent to the peer without hearing back: probing it");
        }
        self.new_suspects |= !newly.is_empty();
    }

    /// Whether a peer became suspect since the last call (probe at once, not at the next tick).
    pub fn take_new_suspects(&mut self) -> bool {
        std::mem::take(&mut self.new_suspects)
    }

    /// Whether any peer's transfer grew between the last two samples (sample faster then).
    pub fn traffic_flowing(&self) -> bool {
        !self.grew.is_empty()
    }

    /// The peers the last device sample found sending without hearing back.
    pub fn suspects(&self, peers: &PeerStore) -> BTreeSet<WgKey> {
        peers
            .snapshot()
            .iter()
            .map(|e| *e.key())
            .filter(|k| self.suspects.is_suspect(k))
            .collect()
    }

    /// A relay notice; returns whether a pass should run now.
    pub fn on_notice(&mut self, ev: &RelayNoticeEvent) -> bool {
        if let Some(to) = ev.through_this_node {
            let using = ev.relayed || ev.chosen || !ev.legs.is_empty();
            self.load.on_notice(ev.peer, to, using, ev.received_at);
            return false;
        }
        tracing::debug!(peer = %short_key(&ev.peer), relay = %short_key(&ev.relay), relayed = ev.relayed, chosen = ev.chosen, legs = ev.legs.len(), "relay notice");
        let notice = ReceivedNotice {
            peer: ev.peer,
            relay: ev.relay,
            relayed: ev.relayed,
            chosen: ev.chosen,
            legs: ev.legs.clone(),
        };
        self.agreement.on_notice(&notice, ev.received_at)
    }

    /// Whether a pass is due now (a relay switch's trial ends).
    pub fn pass_due(&self, now: Millis) -> bool {
        self.agreement.next_deadline().is_some_and(|d| now >= d)
    }

    /// The load this node's record should say now, when it changed (introducers only; a node
    /// that stopped being one drops the field).
    pub fn load_advert(
        &mut self,
        introducer: bool,
        max: u32,
        current: Option<RelayLoad>,
        metrics: &Metrics,
        now: Millis,
    ) -> Option<Option<RelayLoad>> {
        if !introducer {
            return current.is_some().then_some(None);
        }
        metrics.set("wgmesh_relay_load", &[], f64::from(self.load.count(now)));
        let relayed = self.load.advert_due(now)?;
        let new = Some(RelayLoad { relayed, max });
        (new != current).then_some(new)
    }

    /// Runs one pass; updates `health.relayed` and returns whether it changed (reconcile now).
    pub async fn pass(
        &mut self,
        local: &RelayLocal<'_>,
        store: &PeerStore,
        health: &mut HealthView,
        sources: &EvidenceSources<'_>,
        exchange: &ControlSocket,
        now: Millis,
    ) -> bool {
        let peers = store.snapshot();
        let evidence: BTreeMap<WgKey, PeerEvidence> = peers
            .iter()
            .map(|e| {
                let key = *e.key();
                let ev = PeerEvidence {
                    last_handshake: self.handshakes.get(&key).copied().flatten(),
                    transfer_grew: self.grew.contains(&key),
                    probe_failures: sources.prober.failures_in_a_row(&key),
                    // A direct-path probe answered, or a punch that produced a handshake.
                    direct_answered_at: sources
                        .prober
                        .direct_answered_at(&key)
                        .max(sources.punching.punched_at(&key)),
                    answered_sent_at: sources.prober.answered_sent_at(&key),
                };
                (key, ev)
            })
            .collect();
        let leg_quality = sources.prober.qualities();
        let facts = LocalRelayFacts {
            key: local.key,
            nat: local.nat,
            networks: local.networks,
            force_relay: local.force_relay,
            leg_quality: &leg_quality,
        };
        let pass = self
            .agreement
            .pass(&facts, &peers, &health.offline, &evidence, now);
        for c in &pass.changes {
            let outcome = match c.outcome {
                SwitchOutcome::Switched { from } => {
                    tracing::info!(peer = %short_key(&c.peer), from = %short_key(&from), to = %short_key(&c.relay), "relay switched: the new one scores clearly better");
                    "switched"
                }
                SwitchOutcome::Reverted { failed } => {
                    tracing::warn!(peer = %short_key(&c.peer), failed = %short_key(&failed), back_to = %short_key(&c.relay), "relay switch reverted: no answer through the new relay");
                    "reverted"
                }
                SwitchOutcome::Followed => {
                    tracing::info!(peer = %short_key(&c.peer), relay = %short_key(&c.relay), "relay chosen by the peer");
                    "followed"
                }
                SwitchOutcome::Took => "took",
                SwitchOutcome::Kept => continue,
            };
            sources
                .metrics
                .inc("wgmesh_relay_changes_total", &[("outcome", outcome)]);
        }
        for n in pass.notices {
            let Some(relay) = store.get(&n.relay) else {
                continue;
            };
            let to = SocketAddr::new(relay.record.mesh_ipv4.into(), relay.record.control_port);
            let notice = RelayNotice {
                peer: n.peer,
                relayed: n.relayed,
                role: RelayRole::ToRelay,
                chosen: n.chosen,
                legs: n.legs,
            };
            if let Err(e) = exchange.send_relay_notice(to, notice).await {
                tracing::debug!(error = %e, "relay notice not sent");
            }
        }
        if pass.relayed == health.relayed {
            return false;
        }
        for (peer, relay) in &pass.relayed {
            if health.relayed.get(peer) != Some(relay) {
                tracing::info!(peer = %short_key(peer), relay = %short_key(relay), "peer now reached through a relay");
            }
        }
        for peer in health.relayed.keys() {
            if !pass.relayed.contains_key(peer) {
                tracing::info!(peer = %short_key(peer), "peer reached directly again");
            }
        }
        health.relayed = pass.relayed;
        true
    }
}
