use std::net::SocketAddr;

use super::*;
use crate::discovery::exchange::ExchangeConfig;
use crate::mesh::splitmix::SplitMix64 as TestRng;
use crate::mesh::testkit::{address_check, key, keys, record, sign};
use crate::mesh::{PeerStore, StoreConfig};

struct Node {
    n: u32,
    store: PeerStore,
    record: SignedRecord,
    engine: Engine,
}

impl Node {
    fn new(n: u32, knows: impl IntoIterator<Item = u32>) -> Self {
        let store = PeerStore::new(
            StoreConfig {
                local_key: Some(key(n)),
                ..StoreConfig::default()
            },
            address_check(),
        );
        for k in knows {
            let r = record(k);
            let s = sign(k, &r);
            store
                .update(
                    PeerUpdate::new(r, DiscoveryMethod::Lan).with_signed(s),
                    Millis::ZERO,
                )
                .unwrap();
        }
        let exchange = Exchange::new(
            ExchangeConfig::default(),
            [n as u8; 32],
            Box::new(TestRng::new(u64::from(n))),
        );
        Self {
            n,
            store,
            record: sign(n, &record(n)),
            engine: Engine::new(exchange, address_check()),
        }
    }

    fn mesh(&self) -> SocketAddr {
        SocketAddr::new(record(self.n).mesh_ipv4.into(), 51821)
    }

    fn underlay(&self) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, self.n as u8], 51821))
    }

    fn handle(&mut self, src: SocketAddr, message: Message) -> Vec<Effect> {
        let local = Local {
            store: &self.store,
            record: &self.record,
            own_key: Some(key(self.n)),
            check: keys(),
        };
        let len = super::super::exchange::sealed_len(&message);
        self.engine.handle(&local, src, message, len, Millis::ZERO)
    }

    fn hello(&mut self, dst: SocketAddr, intro: bool) -> Message {
        let local = Local {
            store: &self.store,
            record: &self.record,
            own_key: Some(key(self.n)),
            check: keys(),
        };
        if intro {
            self.engine.introduction(&local, dst, Millis::ZERO)
        } else {
            self.engine.hello(&local, dst, Millis::ZERO)
        }
    }

    fn methods(&self, n: u32) -> Vec<DiscoveryMethod> {
        self.store
            .get(&key(n))
            .map(|e| e.discovered_via)
            .unwrap_or_default()
    }
}

fn sends(effects: Vec<Effect>) -> Vec<(SocketAddr, Message)> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Send { to, message } => Some((to, message)),
            _ => None,
        })
        .collect()
}

/// Runs one exchange `a` → `b` as seen from `a_src` / to `b_dst`; returns the datagrams.
fn exchange(a: &mut Node, b: &mut Node, a_src: SocketAddr, b_dst: SocketAddr) -> usize {
    let hello = a.hello(b_dst, false);
    let answer = sends(b.handle(a_src, hello));
    let mut datagrams = 1 + answer.len();
    for (to, message) in answer {
        assert_eq!(to, a_src);
        let pushed = sends(a.handle(b_dst, message));
        datagrams += pushed.len();
        for (to, message) in pushed {
            assert_eq!(to, b_dst);
            assert!(sends(b.handle(a_src, message)).is_empty());
        }
    }
    datagrams
}

#[test]
fn over_the_tunnel_senders_are_gossip_and_relayed_records_gossip_transitive() {
    let mut a = Node::new(1, [2, 3]);
    let mut b = Node::new(2, [1, 4, 5]);
    let (a_src, b_dst) = (a.mesh(), b.mesh());
    exchange(&mut a, &mut b, a_src, b_dst);
    assert!(b.methods(1).contains(&DiscoveryMethod::Gossip));
    assert!(a.methods(2).contains(&DiscoveryMethod::Gossip));
    assert_eq!(a.methods(4), vec![DiscoveryMethod::GossipTransitive]);
    assert_eq!(a.methods(5), vec![DiscoveryMethod::GossipTransitive]);
    assert_eq!(b.methods(3), vec![DiscoveryMethod::GossipTransitive]);
    // A mesh address is never an endpoint.
    let ep = b.store.get(&key(1)).unwrap().endpoint_addr().unwrap();
    assert!(!address_check().is_mesh_address(ep.ip()));
}

#[test]
fn over_the_underlay_they_are_dht_and_dht_transitive() {
    let mut a = Node::new(1, [2]);
    let mut b = Node::new(2, [6]);
    let (a_src, b_dst) = (a.underlay(), b.underlay());
    exchange(&mut a, &mut b, a_src, b_dst);
    assert!(b.methods(1).contains(&DiscoveryMethod::Dht));
    assert_eq!(a.methods(6), vec![DiscoveryMethod::DhtTransitive]);
}

#[test]
fn filters_send_only_what_is_missing() {
    // Both hold 0..40 except: A lacks 30..40, B lacks 10..15.
    let mut a = Node::new(100, (0..30).filter(|n| *n != 2));
    let mut b = Node::new(
        2,
        (0..40)
            .filter(|n| !(10..15).contains(n) && *n != 2)
            .chain([100]),
    );
    let (a_src, b_dst) = (a.mesh(), b.mesh());
    exchange(&mut a, &mut b, a_src, b_dst);
    // Bloom false positives may hold one back; nothing held is sent again (no duplicates).
    let a_gt = a
        .store
        .scan(|e| {
            e.discovered_via
                .contains(&DiscoveryMethod::GossipTransitive)
                .then_some(())
        })
        .len();
    let b_gt = b
        .store
        .scan(|e| {
            e.discovered_via
                .contains(&DiscoveryMethod::GossipTransitive)
                .then_some(())
        })
        .len();
    assert!((9..=10).contains(&a_gt), "A learned {a_gt} of 10");
    assert!((4..=5).contains(&b_gt), "B learned {b_gt} of 5");
    assert!(a.engine.learned() >= 9);
}

#[test]
fn an_introduction_trades_no_records() {
    let mut a = Node::new(1, 10..20);
    let mut b = Node::new(2, 20..30);
    let hello = a.hello(b.underlay(), true);
    let answer = sends(b.handle(a.underlay(), hello));
    assert_eq!(answer.len(), 1, "only the reply");
    let pushed = sends(a.handle(b.underlay(), answer.into_iter().next().unwrap().1));
    assert!(pushed.is_empty());
    assert!(b.methods(1).contains(&DiscoveryMethod::Dht));
    assert!(a.methods(2).contains(&DiscoveryMethod::Dht));
    assert_eq!(a.store.len(), 11);
}

#[test]
fn answers_over_the_tunnel_are_not_cut_by_the_budget() {
    // A knows nobody but B: its hello is small; B holds 40 records A lacks.
    let mut a = Node::new(1, [2]);
    let mut b_tunnel = Node::new(2, 10..50);
    let (a_src, b_dst) = (a.mesh(), b_tunnel.mesh());
    let n_tunnel = exchange(&mut a, &mut b_tunnel, a_src, b_dst);
    let mut c = Node::new(1, [2]);
    let mut b_underlay = Node::new(2, 10..50);
    let (c_src, b_dst) = (c.underlay(), b_underlay.underlay());
    let n_underlay = exchange(&mut c, &mut b_underlay, c_src, b_dst);
    assert!(
        a.store.len() > c.store.len(),
        "{} vs {}",
        a.store.len(),
        c.store.len()
    );
    assert!(n_tunnel > n_underlay);
}
