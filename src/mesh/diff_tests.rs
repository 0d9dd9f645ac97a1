//! Diff rules, and the property: applying the diff to `applied` yields `desired`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use ipnet::IpNet;
use proptest::prelude::*;

use super::*;
use crate::mesh::plan::PresharedKey;

fn key(n: u8) -> WgKey {
    [n; 32]
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn peer(n: u8, nets: &[&str]) -> DesiredPeer {
    DesiredPeer {
        public_key: key(n),
        preshared_key: PresharedKey::new([9; 32]),
        endpoint: Some(SocketAddr::from(([198, 51, 100, n], 51820))),
        allowed_ips: nets.iter().map(|s| net(s)).collect(),
        persistent_keepalive_secs: Some(25),
    }
}

fn state(peers: Vec<DesiredPeer>, routes: &[(&str, u8)], forwarding: bool) -> DesiredState {
    DesiredState {
        peers: peers.into_iter().map(|p| (p.public_key, p)).collect(),
        routes: routes.iter().map(|(d, k)| (net(d), key(*k))).collect(),
        relay_forwarding: forwarding,
    }
}

#[test]
fn nothing_changed_means_no_operation() {
    let s = state(
        vec![peer(1, &["10.0.0.1/32"]), peer(2, &["10.0.0.2/32"])],
        &[("192.168.5.0/24", 1)],
        true,
    );
    let d = diff(&s, &s.clone());
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(d, Diff::default());
}

#[test]
fn operations_are_minimal_and_ordered() {
    let applied = state(
        vec![
            peer(1, &["10.0.0.1/32"]),
            peer(2, &["10.0.0.2/32", "192.168.5.0/24"]),
            peer(3, &["10.0.0.3/32"]),
        ],
        &[("192.168.5.0/24", 2), ("192.168.6.0/24", 3)],
        false,
    );
    let mut moved = peer(1, &["10.0.0.1/32", "192.168.5.0/24"]);
    moved.persistent_keepalive_secs = Some(8);
    let desired = state(
        vec![
            moved.clone(),
            peer(2, &["10.0.0.2/32"]),
            peer(4, &["10.0.0.4/32"]),
        ],
        &[("192.168.5.0/24", 1), ("192.168.7.0/24", 4)],
        true,
    );
    let d = diff(&desired, &applied);
    assert_eq!(
        d.peers,
        vec![
            PeerOp::Remove(key(3)),
            PeerOp::Update {
                peer: moved,
                changes: PeerChanges {
                    allowed_ips: true,
                    keepalive: true,
                    ..PeerChanges::default()
                },
            },
            PeerOp::Update {
                peer: peer(2, &["10.0.0.2/32"]),
                changes: PeerChanges {
                    allowed_ips: true,
                    ..PeerChanges::default()
                },
            },
            PeerOp::Add(peer(4, &["10.0.0.4/32"])),
        ]
    );
    let r = |d: &str, k: u8| DesiredRoute {
        destination: net(d),
        via_peer: key(k),
    };
    assert_eq!(
        d.routes,
        vec![
            RouteOp::Remove(r("192.168.6.0/24", 3)),
            RouteOp::Repoint(r("192.168.5.0/24", 1)),
            RouteOp::Add(r("192.168.7.0/24", 4)),
        ]
    );
    assert_eq!(d.relay_forwarding, Some(true));
    let mut applied = applied;
    apply_diff(&mut applied, &d);
    assert_eq!(applied, desired);
}

#[test]
fn change_flags_name_each_field() {
    let old = peer(1, &["10.0.0.1/32"]);
    let mut new = old.clone();
    new.endpoint = None;
    new.preshared_key = PresharedKey::new([1; 32]);
    let d = diff(
        &state(vec![new.clone()], &[], false),
        &state(vec![old], &[], false),
    );
    assert_eq!(
        d.peers,
        vec![PeerOp::Update {
            peer: new,
            changes: PeerChanges {
                endpoint: true,
                preshared_key: true,
                ..PeerChanges::default()
            },
        }]
    );
    assert!(
        PeerChanges {
            keepalive: true,
            ..PeerChanges::default()
        }
        .any()
    );
    assert!(!PeerChanges::default().any());
}

fn arb_state() -> impl Strategy<Value = DesiredState> {
    let nets = [
        "10.0.0.1/32",
        "10.0.0.2/32",
        "fd00::1/128",
        "192.168.1.0/24",
        "172.16.0.0/12",
    ];
    let arb_peer = (
        0u8..6,
        prop::option::of(0u8..3),
        prop::collection::btree_set(0usize..nets.len(), 0..4),
        prop::option::of(prop::sample::select(vec![8u16, 15, 25])),
        0u8..2,
    )
        .prop_map(move |(k, ep, ips, ka, psk)| DesiredPeer {
            public_key: key(k),
            preshared_key: PresharedKey::new([psk; 32]),
            endpoint: ep.map(|e| SocketAddr::from(([203, 0, 113, e], 51820))),
            allowed_ips: ips
                .into_iter()
                .map(|i| net(nets[i]))
                .collect::<BTreeSet<_>>(),
            persistent_keepalive_secs: ka,
        });
    (
        prop::collection::vec(arb_peer, 0..6),
        prop::collection::btree_map(0usize..nets.len(), 0u8..6, 0..4),
        any::<bool>(),
    )
        .prop_map(move |(peers, routes, relay_forwarding)| DesiredState {
            peers: peers.into_iter().map(|p| (p.public_key, p)).collect(),
            routes: routes
                .into_iter()
                .map(|(i, k)| (net(nets[i]), key(k)))
                .collect::<BTreeMap<_, _>>(),
            relay_forwarding,
        })
}

proptest! {
    #[test]
    fn applying_the_diff_yields_desired(desired in arb_state(), applied in arb_state()) {
        let d = diff(&desired, &applied);
        let mut state = applied.clone();
        apply_diff(&mut state, &d);
        prop_assert_eq!(&state, &desired);
        prop_assert!(diff(&desired, &state).is_empty(), "a second diff is empty");
        prop_assert_eq!(d.is_empty(), desired == applied);
        // Minimal: one operation per peer/route at most, and none for unchanged ones.
        let touched: BTreeSet<WgKey> = d.peers.iter().map(|op| match op {
            PeerOp::Remove(k) => *k,
            PeerOp::Update { peer, .. } | PeerOp::Add(peer) => peer.public_key,
        }).collect();
        prop_assert_eq!(touched.len(), d.peers.len());
        for k in &touched {
            prop_assert_ne!(desired.peers.get(k), applied.peers.get(k));
        }
    }
}
