//! The relay agreement under virtual time: two nodes and one introducer, notices delivered by
//! hand (what the relay's control socket does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use super::agreement::*;
use crate::mesh::health::OfflineList;
use crate::mesh::rank::DiscoveryMethod;
use crate::mesh::testkit::{address_check, key, record};
use crate::mesh::time::Millis;
use crate::mesh::{PeerEntry, PeerStore, PeerUpdate, StoreConfig, WgKey};
use crate::proto::NatType;

const A: u32 = 1;
const B: u32 = 2;
const R: u32 = 3;

/// The store of node `me`: the other node and the introducer.
fn peers_of(me: u32, now: Millis) -> Vec<PeerEntry> {
    let store = PeerStore::new(StoreConfig::default(), address_check());
    for n in [A, B, R] {
        if n == me {
            continue;
        }
        let mut r = record(n);
        r.introducer = n == R;
        store
            .update(PeerUpdate::new(r, DiscoveryMethod::Dht), now)
            .unwrap();
    }
    store.snapshot()
}

static UNMEASURED: BTreeMap<WgKey, u8> = BTreeMap::new();

fn local(me: u32) -> LocalRelayFacts<'static> {
    LocalRelayFacts {
        key: key(me),
        nat: NatType::PortRestrictedCone,
        networks: &[],
        force_relay: false,
        leg_quality: &UNMEASURED,
    }
}

/// A plain notice from `peer`, passed on by `relay`.
fn plain(peer: u32, relay: u32, relayed: bool) -> ReceivedNotice {
    ReceivedNotice {
        peer: key(peer),
        relay: key(relay),
        relayed,
        chosen: false,
        legs: Vec::new(),
    }
}

/// What `relay` passes on to the receiver of a notice `n` sent by node `from`.
fn delivered(from: u32, n: &NoticeToSend) -> ReceivedNotice {
    ReceivedNotice {
        peer: key(from),
        relay: n.relay,
        relayed: n.relayed,
        chosen: n.chosen,
        legs: n.legs.clone(),
    }
}

fn healthy(now: Millis) -> PeerEvidence {
    PeerEvidence {
        last_handshake: Some(now),
        transfer_grew: true,
        probe_failures: 0,
        direct_answered_at: Some(now),
        answered_sent_at: Some(now),
    }
}

fn failing() -> PeerEvidence {
    PeerEvidence {
        last_handshake: None,
        transfer_grew: false,
        probe_failures: 3,
        direct_answered_at: None,
        answered_sent_at: None,
    }
}

fn evidence(peer: u32, e: PeerEvidence) -> BTreeMap<WgKey, PeerEvidence> {
    let mut m = BTreeMap::from([(key(peer), e)]);
    m.insert(key(R), PeerEvidence::default());
    m
}

fn at(s: u64) -> Millis {
    Millis::from_secs(1_000_000 + s)
}

#[test]
fn one_side_fails_over_and_the_other_follows_through_the_relays_notice() {
    let (mut a, mut b) = (RelayAgreement::default(), RelayAgreement::default());
    let off = OfflineList::default();
    let pa = a.pass(
        &local(A),
        &peers_of(A, at(0)),
        &off,
        &evidence(B, failing()),
        at(0),
    );
    assert_eq!(pa.relayed, BTreeMap::from([(key(B), key(R))]));
    assert_eq!(
        pa.notices,
        vec![NoticeToSend {
            relay: key(R),
            peer: key(B),
            relayed: true,
            chosen: key(A) < key(B),
            legs: Vec::new(),
        }]
    );
    // The relay passes it on; B's own evidence is fine, yet it follows at once.
    assert!(b.on_notice(&plain(A, R, true), at(0)));
    let pb = b.pass(
        &local(B),
        &peers_of(B, at(0)),
        &off,
        &evidence(A, healthy(at(0))),
        at(0),
    );
    assert_eq!(pb.relayed, BTreeMap::from([(key(A), key(R))]));
    assert!(
        pb.notices.iter().all(|n| !n.relayed),
        "a follower does not echo the request"
    );
    // A repeats its notice every 2 s while relaying on its own evidence.
    let again = a.pass(
        &local(A),
        &peers_of(A, at(1)),
        &off,
        &evidence(B, failing()),
        at(1),
    );
    assert!(again.notices.is_empty());
    let again = a.pass(
        &local(A),
        &peers_of(A, at(2)),
        &off,
        &evidence(B, failing()),
        at(2),
    );
    assert_eq!(again.notices.len(), 1);
}

#[test]
fn both_go_direct_together_when_the_direct_path_answers_again() {
    let (mut a, mut b) = (RelayAgreement::default(), RelayAgreement::default());
    let off = OfflineList::default();
    a.pass(
        &local(A),
        &peers_of(A, at(0)),
        &off,
        &evidence(B, failing()),
        at(0),
    );
    b.on_notice(&plain(A, R, true), at(0));
    b.pass(
        &local(B),
        &peers_of(B, at(0)),
        &off,
        &evidence(A, healthy(at(0))),
        at(0),
    );
    // The direct path answers again: A needs 3 healthy passes, B holds on A's notices.
    let mut last = RelayPass::default();
    for s in 1..=3 {
        last = a.pass(
            &local(A),
            &peers_of(A, at(5 * s)),
            &off,
            &evidence(B, healthy(at(5 * s))),
            at(5 * s),
        );
        if s < 3 {
            assert_eq!(
                last.relayed.len(),
                1,
                "hysteresis: still relayed after {s} healthy passes"
            );
            b.on_notice(&plain(A, R, true), at(5 * s));
        }
    }
    assert!(last.relayed.is_empty());
    assert_eq!(
        last.notices,
        vec![NoticeToSend {
            relay: key(R),
            peer: key(B),
            relayed: false,
            chosen: false,
            legs: Vec::new(),
        }]
    );
    assert!(b.on_notice(&plain(A, R, false), at(15)));
    let pb = b.pass(
        &local(B),
        &peers_of(B, at(15)),
        &off,
        &evidence(A, healthy(at(15))),
        at(15),
    );
    assert!(pb.relayed.is_empty(), "B goes direct in the same moment");
}

#[test]
fn two_nodes_relaying_on_their_own_evidence_do_not_hold_each_other() {
    let (mut a, mut b) = (RelayAgreement::default(), RelayAgreement::default());
    let off = OfflineList::default();
    a.pass(
        &local(A),
        &peers_of(A, at(0)),
        &off,
        &evidence(B, failing()),
        at(0),
    );
    b.pass(
        &local(B),
        &peers_of(B, at(0)),
        &off,
        &evidence(A, failing()),
        at(0),
    );
    a.on_notice(&plain(B, R, true), at(0));
    b.on_notice(&plain(A, R, true), at(0));
    // Both heal. A flips after 3 passes and says so; B drops its state and goes direct.
    let mut s = 1;
    let flipped = loop {
        let now = at(5 * s);
        let pa = a.pass(
            &local(A),
            &peers_of(A, now),
            &off,
            &evidence(B, healthy(now)),
            now,
        );
        if pa.relayed.is_empty() {
            break pa;
        }
        assert!(s < 6, "A never went direct");
        b.on_notice(&plain(A, R, true), now);
        s += 1;
    };
    assert!(flipped.notices.iter().any(|n| !n.relayed));
    b.on_notice(&plain(A, R, false), at(5 * s));
    let pb = b.pass(
        &local(B),
        &peers_of(B, at(5 * s)),
        &off,
        &evidence(A, healthy(at(5 * s))),
        at(5 * s),
    );
    assert!(pb.relayed.is_empty());
}

#[test]
fn a_stale_request_expires_and_nothing_relays_without_an_introducer() {
    let mut b = RelayAgreement::default();
    let off = OfflineList::default();
    b.on_notice(&plain(A, R, true), at(0));
    let pb = b.pass(
        &local(B),
        &peers_of(B, at(0)),
        &off,
        &evidence(A, healthy(at(0))),
        at(0),
    );
    assert_eq!(pb.relayed.len(), 1);
    // No more notices: after 6 s the request is gone; the direct path answers, so B returns
    // after its hysteresis.
    let mut relayed = true;
    for s in 2..=6 {
        let now = at(5 * s);
        relayed = !b
            .pass(
                &local(B),
                &peers_of(B, now),
                &off,
                &evidence(A, healthy(now)),
                now,
            )
            .relayed
            .is_empty();
    }
    assert!(!relayed);

    // Without an introducer in the store nobody is relayed, however bad the path.
    let mut lone = RelayAgreement::default();
    let store = PeerStore::new(StoreConfig::default(), address_check());
    store
        .update(PeerUpdate::new(record(B), DiscoveryMethod::Dht), at(0))
        .unwrap();
    let p = lone.pass(
        &local(A),
        &store.snapshot(),
        &off,
        &evidence(B, failing()),
        at(0),
    );
    assert!(p.relayed.is_empty() && p.notices.is_empty());
}

#[test]
fn a_peer_never_handshaken_for_10_s_is_relayed_without_probe_failures() {
    let mut a = RelayAgreement::default();
    let off = OfflineList::default();
    let never = PeerEvidence::default();
    // Known since t = 0 (peers_of sets first_seen), probes never failing three times in a row.
    let peers = peers_of(A, at(0));
    let p = a.pass(&local(A), &peers, &off, &evidence(B, never), at(9));
    assert!(p.relayed.is_empty(), "not before 10 s");
    let p = a.pass(&local(A), &peers, &off, &evidence(B, never), at(10));
    assert_eq!(p.relayed, BTreeMap::from([(key(B), key(R))]));
}

const R2: u32 = 4;

/// The store of node `me` with two introducers, R and R2.
fn peers_two_relays(me: u32, now: Millis) -> Vec<PeerEntry> {
    let store = PeerStore::new(StoreConfig::default(), address_check());
    for n in [A, B, R, R2] {
        if n == me {
            continue;
        }
        let mut r = record(n);
        r.introducer = n == R || n == R2;
        store
            .update(PeerUpdate::new(r, DiscoveryMethod::Dht), now)
            .unwrap();
    }
    store.snapshot()
}

fn facts(me: u32, legs: &BTreeMap<WgKey, u8>) -> LocalRelayFacts<'_> {
    LocalRelayFacts {
        leg_quality: legs,
        ..local(me)
    }
}

fn legs(r: u8, r2: u8) -> BTreeMap<WgKey, u8> {
    BTreeMap::from([(key(R), r), (key(R2), r2)])
}

/// Both ends cut off from each other, each measuring its legs; returns (decider, follower).
fn cut_pair() -> (u32, u32) {
    if key(A) < key(B) { (A, B) } else { (B, A) }
}

#[test]
fn the_smaller_key_chooses_by_both_legs_and_the_other_end_follows() {
    let (d, f) = cut_pair();
    let (mut dec, mut fol) = (RelayAgreement::default(), RelayAgreement::default());
    let off = OfflineList::default();
    // R has 150 ms of delay (quality 50 on both legs), R2 is clean.
    let l = legs(50, 100);
    // The follower relays first on its own evidence and reports its legs.
    let pf = fol.pass(
        &facts(f, &l),
        &peers_two_relays(f, at(0)),
        &off,
        &evidence(d, failing()),
        at(0),
    );
    assert_eq!(pf.notices.len(), 1);
    let n = &pf.notices[0];
    assert!(n.relayed && !n.chosen);
    assert_eq!(n.legs, vec![(key(R2), 100), (key(R), 50)], "best first");
    dec.on_notice(&delivered(f, n), at(0));
    // The decider scores R2 = 100 × 100, R = 50 × 50, and names R2.
    let pd = dec.pass(
        &facts(d, &l),
        &peers_two_relays(d, at(0)),
        &off,
        &evidence(f, failing()),
        at(0),
    );
    assert_eq!(pd.relayed, BTreeMap::from([(key(f), key(R2))]));
    let n = &pd.notices[0];
    assert!(n.chosen && n.relayed && n.relay == key(R2) && n.legs.is_empty());
    assert!(
        fol.on_notice(&delivered(d, n), at(0)),
        "a new choice runs a pass"
    );
    let pf = fol.pass(
        &facts(f, &l),
        &peers_two_relays(f, at(1)),
        &off,
        &evidence(d, failing()),
        at(1),
    );
    assert_eq!(pf.relayed, BTreeMap::from([(key(d), key(R2))]));
    // Even when the follower's own measurements disagree, it keeps the decider's choice.
    let flipped = legs(100, 10);
    let pf = fol.pass(
        &facts(f, &flipped),
        &peers_two_relays(f, at(2)),
        &off,
        &evidence(d, failing()),
        at(2),
    );
    assert_eq!(pf.relayed, BTreeMap::from([(key(d), key(R2))]));
}

#[test]
fn the_decider_moves_the_pair_when_its_relay_degrades_and_reverts_without_an_answer() {
    let (d, f) = cut_pair();
    let mut dec = RelayAgreement::default();
    let off = OfflineList::default();
    let good_r2 = legs(50, 100);
    let peer_legs = |r: u8, r2: u8| ReceivedNotice {
        peer: key(f),
        relay: key(R2),
        relayed: true,
        chosen: false,
        legs: vec![(key(R), r), (key(R2), r2)],
    };
    dec.on_notice(&peer_legs(50, 100), at(0));
    let ev = |answered: Option<u64>| {
        evidence(
            f,
            PeerEvidence {
                answered_sent_at: answered.map(at),
                ..failing()
            },
        )
    };
    let p = dec.pass(
        &facts(d, &good_r2),
        &peers_two_relays(d, at(0)),
        &off,
        &ev(None),
        at(0),
    );
    assert_eq!(p.relayed[&key(f)], key(R2));
    // The delay moves from R to R2: R2's score falls under half, so the pair moves at once
    // (no 60 s wait), telling the follower through the new relay.
    let moved = legs(100, 50);
    dec.on_notice(&peer_legs(100, 50), at(10));
    let p = dec.pass(
        &facts(d, &moved),
        &peers_two_relays(d, at(10)),
        &off,
        &ev(None),
        at(10),
    );
    assert_eq!(p.relayed[&key(f)], key(R));
    assert!(p.notices.iter().any(|n| n.relay == key(R) && n.chosen));
    assert!(matches!(
        p.changes[0].outcome,
        super::switch::SwitchOutcome::Switched { .. }
    ));
    assert_eq!(dec.next_deadline(), Some(at(13)));
    // No probe sent after the switch is answered within 3 s: back to R2, told through R2.
    let p = dec.pass(
        &facts(d, &moved),
        &peers_two_relays(d, at(13)),
        &off,
        &ev(Some(9)),
        at(13),
    );
    assert_eq!(p.relayed[&key(f)], key(R2));
    assert!(p.notices.iter().any(|n| n.relay == key(R2) && n.chosen));
    // R cools down; after it, the next evaluation tries again, and an answer confirms.
    let later = 13 + 60;
    dec.on_notice(&peer_legs(100, 50), at(later));
    let p = dec.pass(
        &facts(d, &moved),
        &peers_two_relays(d, at(later)),
        &off,
        &ev(Some(9)),
        at(later),
    );
    assert_eq!(p.relayed[&key(f)], key(R));
    let p = dec.pass(
        &facts(d, &moved),
        &peers_two_relays(d, at(later + 1)),
        &off,
        &ev(Some(later)),
        at(later + 1),
    );
    assert_eq!(p.relayed[&key(f)], key(R));
    assert_eq!(dec.next_deadline(), None, "confirmed");
}

#[test]
fn two_ends_held_only_by_each_others_notices_leave_the_relay_together() {
    // Both ends relayed on their own evidence; then the direct path works for both. Passes
    // every 2 s in lockstep, every notice delivered at once (the relay-tests timing that kept
    // both on the relay for 40 s: each end's hysteresis hold renewed the other's).
    let (mut a, mut b) = (RelayAgreement::default(), RelayAgreement::default());
    let off = OfflineList::default();
    let step = |a: &mut RelayAgreement, b: &mut RelayAgreement, t: u64, ok: bool| {
        let (ea, eb) = if ok {
            (healthy(at(t)), healthy(at(t)))
        } else {
            (failing(), failing())
        };
        let pa = a.pass(
            &local(A),
            &peers_of(A, at(t)),
            &off,
            &evidence(B, ea),
            at(t),
        );
        let pb = b.pass(
            &local(B),
            &peers_of(B, at(t)),
            &off,
            &evidence(A, eb),
            at(t),
        );
        for n in &pa.notices {
            b.on_notice(&delivered(A, n), at(t));
        }
        for n in &pb.notices {
            a.on_notice(&delivered(B, n), at(t));
        }
        (pa.relayed.is_empty(), pb.relayed.is_empty())
    };
    for t in [0, 2, 4] {
        assert_eq!(step(&mut a, &mut b, t, false), (false, false));
    }
    let mut direct_at = None;
    for t in (6..=60).step_by(2) {
        if step(&mut a, &mut b, t, true) == (true, true) {
            direct_at = Some(t);
            break;
        }
    }
    let direct_at = direct_at.expect("both ends still relayed 54 s after the path came back");
    assert!(
        direct_at <= 16,
        "both direct only {} s after the path came back",
        direct_at - 6
    );
}
