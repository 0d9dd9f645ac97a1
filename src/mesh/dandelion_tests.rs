use super::*;

pub(super) use crate::mesh::splitmix::SplitMix64 as TestRng;

fn k(n: u8) -> WgKey {
    [n; 32]
}

fn peers(n: u8) -> Vec<WgKey> {
    (1..=n).map(k).collect()
}

fn stem(origin: u8, sequence: u64, from: u8, hop: u8) -> IncomingStem<&'static str> {
    IncomingStem {
        origin: k(origin),
        sequence,
        from: k(from),
        hop,
        record: "record",
    }
}

#[test]
fn epochs_are_ten_minutes() {
    assert_eq!(epoch_of(Millis(0)), 0);
    assert_eq!(epoch_of(Millis(599_999)), 0);
    assert_eq!(epoch_of(Millis(600_000)), 1);
    assert_eq!(epoch_of(Millis(1_700_000_000_000)), 2_833_333);
}

#[test]
fn only_peers_heard_over_the_tunnel_lately_are_relay_candidates() {
    let now = Millis::from_secs(10_000);
    let peers = [
        (k(1), Some(now)),
        (k(2), Some(Millis::from_secs(10_000 - 299))),
        (k(3), Some(Millis::from_secs(10_000 - 300))),
        (k(4), None),
    ];
    assert_eq!(relay_candidates(peers, now), vec![k(1), k(2)]);
}

#[test]
fn relays_are_deterministic_at_most_two_and_never_self() {
    let mut forward = peers(6);
    let a = StemRoutes::new([1; 32], k(3), forward.clone());
    forward.reverse();
    let b = StemRoutes::new([1; 32], k(3), forward);
    assert_eq!(a, b, "the order of the active peers does not matter");
    assert_eq!(a.relays().len(), 2);
    assert!(!a.relays().contains(&k(3)));
    assert_eq!(StemRoutes::new([1; 32], k(9), [k(1)]).relays(), &[k(1)]);
    assert!(StemRoutes::new([1; 32], k(9), []).relays().is_empty());
    assert_eq!(StemRoutes::new([1; 32], k(9), []).for_own(), None);
}

#[test]
fn relays_change_with_the_epoch_seed_and_differ_per_node() {
    let mut seen = std::collections::BTreeSet::new();
    for s in 0..50u8 {
        seen.insert(StemRoutes::new([s; 32], k(1), peers(8)).relays().to_vec());
    }
    assert!(
        seen.len() > 10,
        "only {} relay sets over 50 epochs",
        seen.len()
    );
    let per_node: std::collections::BTreeSet<_> = (1..=8)
        .map(|n| StemRoutes::new([7; 32], k(n), peers(8)).relays().to_vec())
        .collect();
    assert!(per_node.len() > 3);
}

#[test]
fn routing_is_fixed_per_predecessor_and_never_back_or_to_the_origin() {
    let r = StemRoutes::new([2; 32], k(1), peers(6));
    let own = r.for_own().unwrap();
    assert!(r.relays().contains(&own));
    assert_eq!(r.for_own(), Some(own));
    for from in 2..=6 {
        for origin in 2..=6 {
            let to = r.for_incoming(&k(from), &k(origin));
            assert_eq!(to, r.for_incoming(&k(from), &k(origin)));
            if let Some(to) = to {
                assert!(r.relays().contains(&to));
                assert_ne!(to, k(from));
                assert_ne!(to, k(origin));
            }
        }
    }
    // The only relay is the predecessor: nowhere to go.
    let single = StemRoutes::new([2; 32], k(1), [k(2)]);
    assert_eq!(single.for_incoming(&k(2), &k(5)), None);
}

#[test]
fn hop_four_always_fluffs_and_nine_in_ten_hops_forward() {
    let mut rng = TestRng::new(1);
    for _ in 0..100 {
        assert_eq!(decide(MAX_HOP, Some(k(1)), &mut rng), StemStep::Fluff);
        assert_eq!(decide(1, None, &mut rng), StemStep::Fluff);
    }
    let forwards = (0..10_000)
        .filter(|_| {
            matches!(
                decide(2, Some(k(1)), &mut rng),
                StemStep::Forward { hop: 3, .. }
            )
        })
        .count();
    assert!((8_800..=9_200).contains(&forwards), "{forwards} of 10000");
}

#[test]
fn a_forwarded_stem_is_fluffed_at_embargo_end_unless_it_came_back() {
    let routes = StemRoutes::new([3; 32], k(1), peers(6));
    let mut rng = TestRng::new(5);
    let mut relay = StemRelay::default();
    // Find a seed that forwards (nine in ten do).
    let action = loop {
        let a = relay.on_stem(stem(2, 10, 2, 1), None, &routes, &mut rng, Millis(0));
        if matches!(a, RelayAction::Forward { .. }) {
            break a;
        }
    };
    let RelayAction::Forward { to, hop, .. } = action else {
        unreachable!()
    };
    assert_eq!(hop, 2);
    assert_ne!(to, k(2));
    assert_eq!(relay.len(), 1);
    let deadline = relay.next_deadline().unwrap();
    assert!(deadline >= Millis(3_000) && deadline < Millis(6_000));
    assert!(relay.expired(Millis(2_999), |_| None).is_empty());
    assert_eq!(relay.expired(deadline, |_| None), vec!["record"]);
    assert!(relay.is_empty());

    // Came back in fluff (the store holds it): nothing to do at the deadline.
    let mut relay = StemRelay::default();
    while !matches!(
        relay.on_stem(stem(2, 10, 2, 1), None, &routes, &mut rng, Millis(0)),
        RelayAction::Forward { .. }
    ) {}
    assert!(relay.expired(Millis(10_000), |_| Some(10)).is_empty());
}

#[test]
fn own_known_looping_and_superseded_stems() {
    let routes = StemRoutes::new([3; 32], k(1), peers(6));
    let mut rng = TestRng::new(9);
    let mut relay = StemRelay::default();
    assert_eq!(
        relay.on_stem(stem(1, 10, 2, 1), None, &routes, &mut rng, Millis(0)),
        RelayAction::Drop(StemDrop::OwnRecord)
    );
    assert_eq!(
        relay.on_stem(stem(2, 10, 3, 1), Some(10), &routes, &mut rng, Millis(0)),
        RelayAction::Drop(StemDrop::Known)
    );
    while !matches!(
        relay.on_stem(stem(2, 10, 3, 1), None, &routes, &mut rng, Millis(0)),
        RelayAction::Forward { .. }
    ) {}
    // The same record comes back along the stem: it fluffs here.
    assert_eq!(
        relay.on_stem(stem(2, 10, 4, 3), None, &routes, &mut rng, Millis(1)),
        RelayAction::Fluff("record")
    );
    assert!(relay.is_empty());
    // A newer record of the same origin drops the older embargo.
    while !matches!(
        relay.on_stem(stem(2, 10, 3, 1), None, &routes, &mut rng, Millis(0)),
        RelayAction::Forward { .. }
    ) {}
    let _ = relay.on_stem(stem(2, 11, 3, 4), None, &routes, &mut rng, Millis(0));
    assert!(relay.is_empty(), "hop 4 fluffs and supersedes sequence 10");
}

#[test]
fn embargo_state_is_bounded() {
    let routes = StemRoutes::new([3; 32], k(200), peers(100));
    let mut rng = TestRng::new(2);
    let mut relay = StemRelay::default();
    for origin in 1..=100u8 {
        let _ = relay.on_stem(
            stem(origin, 1, origin, 1),
            None,
            &routes,
            &mut rng,
            Millis(0),
        );
    }
    assert_eq!(relay.len(), MAX_EMBARGOES);
}

#[test]
fn the_origin_publishes_when_seen_or_at_its_embargo() {
    let routes = StemRoutes::new([4; 32], k(1), peers(6));
    let mut p = PrivatePublisher::default();
    let OriginAction::Stem { to, record } = p.on_new_record(10, "r10", &routes, Millis(0)) else {
        panic!("a node with peers stems");
    };
    assert_eq!(Some(to), routes.for_own());
    assert_eq!(record, "r10");
    assert_eq!(
        p.on_seen(9),
        None,
        "an older record held elsewhere says nothing"
    );
    assert_eq!(p.on_seen(10), Some("r10"));
    assert_eq!(p.pending_sequence(), None);

    let _ = p.on_new_record(11, "r11", &routes, Millis(1_000));
    let _ = p.on_new_record(12, "r12", &routes, Millis(2_000));
    assert_eq!(
        p.pending_sequence(),
        Some(12),
        "the newer record supersedes"
    );
    assert_eq!(p.expired(Millis(9_999)), None);
    assert_eq!(p.deadline(), Some(Millis(10_000)));
    assert_eq!(p.expired(Millis(10_000)), Some("r12"));

    let alone = StemRoutes::new([4; 32], k(1), []);
    assert_eq!(
        p.on_new_record(13, "r13", &alone, Millis(0)),
        OriginAction::Publish("r13")
    );
    assert_eq!(p.deadline(), None);
}

#[test]
fn origin_embargo_outlasts_every_relay_embargo() {
    assert!(ORIGIN_EMBARGO > RELAY_EMBARGO_MIN + RELAY_EMBARGO_SPREAD);
}
