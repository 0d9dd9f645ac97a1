//! Whether to reach a peer through a relay. Hard rules first (never relay to or through
//! yourself, never relay an introducer, never relay a peer on a shared LAN or found by LAN
//! discovery), then: `--force-relay` relays whenever a relay exists; a stale handshake
//! (> 150 s, no transfer growth) or probes judging the peer unreachable relay when a relay
//! exists; a peer that says it relays this node is relayed back (one path both ways); a NAT
//! pair the matrix does not expect to connect directly starts relayed while
//! punching goes on; otherwise direct. Hysteresis: once relayed, a peer goes back to direct only
//! after 3 consecutive checks judge direct healthy.

use ipnet::IpNet;

use crate::mesh::WgKey;
use crate::mesh::health::is_stale;
use crate::mesh::nat::AttemptOrder;
use crate::mesh::time::Millis;
use crate::proto::{EndpointKind, NodeRecord};

/// Probe failures in a row after which a direct peer is moved to a relay (when one exists);
/// the probe monitor's 8 failures (temporarily offline) apply when none does.
pub const PROBE_FAILURES_TO_RELAY: u32 = 3;
/// Consecutive healthy-direct checks before a relayed peer goes direct again.
pub const DIRECT_CHECKS_TO_LEAVE_RELAY: u8 = 3;

/// What the relay decision looks at, for one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayInputs {
    pub local: WgKey,
    pub peer: WgKey,
    pub peer_is_introducer: bool,
    /// The peer has an endpoint inside one of this node's LAN networks.
    pub shared_lan: bool,
    /// LAN discovery found the peer.
    pub found_by_lan: bool,
    /// `--force-relay`.
    pub force_relay: bool,
    /// A relay is available for this pair (see [`crate::mesh::select_relay`]).
    pub relay_available: bool,
    pub last_handshake: Option<Millis>,
    /// rx or tx grew since the previous sample.
    pub transfer_grew: bool,
    /// The probe monitor judged the peer unreachable (for a relayed peer: its direct path).
    pub probe_unreachable: bool,
    /// The peer said (in a probe through the tunnel, recently) that it reaches this node
    /// through a relay: follow it, so both directions take the same path.
    pub peer_relays_us: bool,
    /// The NAT matrix's order for this pair.
    pub attempt_order: AttemptOrder,
}

/// Why a peer is never relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeverRelayReason {
    ItIsThisNode,
    Introducer,
    SharedLan,
}

/// Why a peer is relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayReason {
    Forced,
    StaleHandshake,
    ProbesFailed,
    /// The peer relays this node (both directions must take one path).
    PeerAsked,
    /// The NAT pair is not expected to connect directly: relay while punching.
    NatPair,
}

/// The judgement of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayVerdict {
    Never(NeverRelayReason),
    Relay(RelayReason),
    Direct,
}

/// Whether a peer is on one of this node's LANs: one of its LAN endpoint candidates lies in one
/// of `local_networks` (the networks of this node's interfaces).
pub fn on_shared_lan(record: &NodeRecord, local_networks: &[IpNet]) -> bool {
    record
        .endpoints
        .iter()
        .filter(|c| c.kind == EndpointKind::Lan)
        .any(|c| local_networks.iter().any(|n| n.contains(&c.addr.ip())))
}

/// One check's judgement for one peer (no memory; [`RelayHysteresis`] adds it).
pub fn should_relay(i: &RelayInputs, now: Millis) -> RelayVerdict {
    if i.peer == i.local {
        return RelayVerdict::Never(NeverRelayReason::ItIsThisNode);
    }
    if i.peer_is_introducer {
        return RelayVerdict::Never(NeverRelayReason::Introducer);
    }
    if i.shared_lan || i.found_by_lan {
        return RelayVerdict::Never(NeverRelayReason::SharedLan);
    }
    if !i.relay_available {
        return RelayVerdict::Direct;
    }
    if i.force_relay {
        return RelayVerdict::Relay(RelayReason::Forced);
    }
    if is_stale(i.last_handshake, i.transfer_grew, now) {
        return RelayVerdict::Relay(RelayReason::StaleHandshake);
    }
    if i.probe_unreachable {
        return RelayVerdict::Relay(RelayReason::ProbesFailed);
    }
    if i.peer_relays_us {
        return RelayVerdict::Relay(RelayReason::PeerAsked);
    }
    if i.last_handshake.is_none() && i.attempt_order == AttemptOrder::RelayFirst {
        return RelayVerdict::Relay(RelayReason::NatPair);
    }
    RelayVerdict::Direct
}

/// One peer's relay state across checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayHysteresis {
    relayed: bool,
    direct_streak: u8,
}

impl RelayHysteresis {
    /// Whether the peer is relayed now.
    pub fn is_relayed(&self) -> bool {
        self.relayed
    }

    /// Takes one check's verdict; returns whether the peer is relayed after it.
    pub fn step(&mut self, verdict: RelayVerdict) -> bool {
        match verdict {
            RelayVerdict::Never(_) => *self = Self::default(),
            RelayVerdict::Relay(_) => {
                self.relayed = true;
                self.direct_streak = 0;
            }
            RelayVerdict::Direct if self.relayed => {
                self.direct_streak += 1;
                if self.direct_streak >= DIRECT_CHECKS_TO_LEAVE_RELAY {
                    *self = Self::default();
                }
            }
            RelayVerdict::Direct => {}
        }
        self.relayed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = Millis(1_000_000);

    fn base() -> RelayInputs {
        RelayInputs {
            local: [1; 32],
            peer: [2; 32],
            peer_is_introducer: false,
            shared_lan: false,
            found_by_lan: false,
            force_relay: false,
            relay_available: true,
            last_handshake: Some(Millis(NOW.0 - 10_000)),
            transfer_grew: false,
            probe_unreachable: false,
            attempt_order: AttemptOrder::DirectFirst,
            peer_relays_us: false,
        }
    }

    #[test]
    fn should_relay_table() {
        use NeverRelayReason as N;
        use RelayReason as R;
        use RelayVerdict::*;
        let stale = Some(Millis(NOW.0 - 151_000));
        let table: Vec<(&str, RelayInputs, RelayVerdict)> = vec![
            ("healthy", base(), Direct),
            (
                "to yourself",
                RelayInputs {
                    peer: [1; 32],
                    force_relay: true,
                    ..base()
                },
                Never(N::ItIsThisNode),
            ),
            (
                "introducer",
                RelayInputs {
                    peer_is_introducer: true,
                    last_handshake: stale,
                    ..base()
                },
                Never(N::Introducer),
            ),
            (
                "introducer even forced",
                RelayInputs {
                    peer_is_introducer: true,
                    force_relay: true,
                    ..base()
                },
                Never(N::Introducer),
            ),
            (
                "shared LAN",
                RelayInputs {
                    shared_lan: true,
                    probe_unreachable: true,
                    ..base()
                },
                Never(N::SharedLan),
            ),
            (
                "found by LAN",
                RelayInputs {
                    found_by_lan: true,
                    force_relay: true,
                    ..base()
                },
                Never(N::SharedLan),
            ),
            (
                "forced",
                RelayInputs {
                    force_relay: true,
                    ..base()
                },
                Relay(R::Forced),
            ),
            (
                "forced without a relay",
                RelayInputs {
                    force_relay: true,
                    relay_available: false,
                    ..base()
                },
                Direct,
            ),
            (
                "stale handshake",
                RelayInputs {
                    last_handshake: stale,
                    ..base()
                },
                Relay(R::StaleHandshake),
            ),
            (
                "old handshake but traffic grew",
                RelayInputs {
                    last_handshake: stale,
                    transfer_grew: true,
                    ..base()
                },
                Direct,
            ),
            (
                "exactly 150 s",
                RelayInputs {
                    last_handshake: Some(Millis(NOW.0 - 150_000)),
                    ..base()
                },
                Direct,
            ),
            (
                "stale without a relay",
                RelayInputs {
                    last_handshake: stale,
                    relay_available: false,
                    ..base()
                },
                Direct,
            ),
            (
                "probes failed",
                RelayInputs {
                    probe_unreachable: true,
                    ..base()
                },
                Relay(R::ProbesFailed),
            ),
            (
                "probes failed without a relay",
                RelayInputs {
                    probe_unreachable: true,
                    relay_available: false,
                    ..base()
                },
                Direct,
            ),
            (
                "NAT pair needs relay, no handshake yet",
                RelayInputs {
                    attempt_order: AttemptOrder::RelayFirst,
                    last_handshake: None,
                    ..base()
                },
                Relay(R::NatPair),
            ),
            (
                "NAT pair needs relay but punching worked",
                RelayInputs {
                    attempt_order: AttemptOrder::RelayFirst,
                    ..base()
                },
                Direct,
            ),
            (
                "never handshook, NAT pair fine",
                RelayInputs {
                    last_handshake: None,
                    ..base()
                },
                Direct,
            ),
        ];
        for (why, inputs, expected) in table {
            assert_eq!(should_relay(&inputs, NOW), expected, "{why}");
        }
    }

    #[test]
    fn shared_lan_is_a_lan_candidate_inside_a_local_network() {
        use crate::proto::EndpointCandidate;
        let mut r = crate::mesh::testkit::record(1);
        let lans: Vec<IpNet> = vec!["192.168.1.0/24".parse().unwrap()];
        let cand = |kind, a: &str| EndpointCandidate {
            kind,
            addr: a.parse().unwrap(),
        };
        r.endpoints = vec![cand(EndpointKind::Stun, "192.168.1.9:51820")];
        assert!(!on_shared_lan(&r, &lans), "only LAN candidates count");
        r.endpoints
            .push(cand(EndpointKind::Lan, "192.168.2.9:51820"));
        assert!(!on_shared_lan(&r, &lans), "another LAN");
        r.endpoints
            .push(cand(EndpointKind::Lan, "192.168.1.7:51820"));
        assert!(on_shared_lan(&r, &lans));
        assert!(!on_shared_lan(&r, &[]));
    }

    #[test]
    fn back_to_direct_only_after_three_healthy_checks() {
        let mut h = RelayHysteresis::default();
        assert!(!h.step(RelayVerdict::Direct));
        assert!(h.step(RelayVerdict::Relay(RelayReason::StaleHandshake)));
        assert!(h.step(RelayVerdict::Direct), "1 healthy check");
        assert!(h.step(RelayVerdict::Direct), "2 healthy checks");
        assert!(
            h.step(RelayVerdict::Relay(RelayReason::ProbesFailed)),
            "streak broken"
        );
        assert!(h.step(RelayVerdict::Direct));
        assert!(h.step(RelayVerdict::Direct));
        assert!(!h.step(RelayVerdict::Direct), "3 in a row: direct");
        assert!(!h.is_relayed());
        assert!(h.step(RelayVerdict::Relay(RelayReason::Forced)));
        assert!(
            !h.step(RelayVerdict::Never(NeverRelayReason::SharedLan)),
            "hard rules act at once"
        );
    }
}
