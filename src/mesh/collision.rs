//! Mesh address ownership: the check that a record's addresses are the ones its key and nonce
//! derive ([`AddressCheck`]), who keeps a mesh IPv4 two nodes both claim (the smaller WireGuard
//! key, bytewise), and whether this node lost and must move to its next nonce.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::proto::derive::MAX_ADDRESS_NONCE;
use crate::proto::{MeshKeys, NodeRecord};

use super::{WgKey, short_key};

/// Why a record's mesh address was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum AddressError {
    #[error(
        "peer {peer} claims mesh IPv4 {claimed}, but its key and nonce {nonce} give {expected}: the record is forged or from a mesh with another subnet (check --subnet on both nodes)"
    )]
    Ipv4Mismatch {
        peer: String,
        nonce: u8,
        claimed: Ipv4Addr,
        expected: Ipv4Addr,
    },
    #[error(
        "peer {peer} claims mesh IPv6 {claimed}, but its key gives {expected}: the record is forged or from another mesh"
    )]
    Ipv6Mismatch {
        peer: String,
        claimed: Ipv6Addr,
        expected: Ipv6Addr,
    },
    #[error("peer {peer} uses address nonce {nonce}, above the maximum of {MAX_ADDRESS_NONCE}")]
    NonceOutOfRange { peer: String, nonce: u8 },
}

/// Why this node cannot find a free mesh IPv4.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum CollisionError {
    #[error(
        "every address nonce 0..={MAX_ADDRESS_NONCE} of this node collides with a peer's mesh IPv4: the subnet is too crowded, use a larger one with --subnet on every node"
    )]
    NoncesExhausted,
}

/// Checks records' mesh addresses against their key and nonce, for one mesh. The store runs it
/// on every new record, so nothing with a wrong address is ever planned.
#[derive(Debug, Clone)]
pub struct AddressCheck {
    keys: MeshKeys,
}

impl AddressCheck {
    pub fn new(keys: MeshKeys) -> Self {
        Self { keys }
    }

    /// Whether `ip` is inside the mesh's own subnets. Such an address is never a WireGuard
    /// endpoint: a datagram from it came through the tunnel, and pointing WireGuard at it
    /// would route the tunnel into itself.
    pub fn is_mesh_address(&self, ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(a) => self.keys.ipv4_subnet().contains(&a),
            std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.keys.ipv4_subnet().contains(&v4),
                None => self.keys.ipv6_prefix().contains(&a),
            },
        }
    }

    /// `Ok` when the record's mesh IPv4 and IPv6 are the ones its key and nonce derive.
    pub fn check(&self, record: &NodeRecord) -> Result<(), AddressError> {
        let peer = || short_key(&record.wireguard_public);
        if record.address_nonce > MAX_ADDRESS_NONCE {
            return Err(AddressError::NonceOutOfRange {
                peer: peer(),
                nonce: record.address_nonce,
            });
        }
        let expected4 = self
            .keys
            .mesh_ipv4(&record.wireguard_public, record.address_nonce);
        if record.mesh_ipv4 != expected4 {
            return Err(AddressError::Ipv4Mismatch {
                peer: peer(),
                nonce: record.address_nonce,
                claimed: record.mesh_ipv4,
                expected: expected4,
            });
        }
        let expected6 = self.keys.mesh_ipv6(&record.wireguard_public);
        if record.mesh_ipv6 != expected6 {
            return Err(AddressError::Ipv6Mismatch {
                peer: peer(),
                claimed: record.mesh_ipv6,
                expected: expected6,
            });
        }
        Ok(())
    }
}

/// Of two nodes claiming one mesh IPv4, the one that keeps it: the smaller key, bytewise.
pub fn ipv4_winner<'a>(a: &'a WgKey, b: &'a WgKey) -> &'a WgKey {
    if a <= b { a } else { b }
}

/// For each claimed mesh IPv4, the key that keeps it (smallest key among the claimants).
pub fn ipv4_owners<'a>(
    claims: impl IntoIterator<Item = (&'a WgKey, Ipv4Addr)>,
) -> BTreeMap<Ipv4Addr, WgKey> {
    let mut owners: BTreeMap<Ipv4Addr, WgKey> = BTreeMap::new();
    for (key, addr) in claims {
        owners
            .entry(addr)
            .and_modify(|held| *held = *ipv4_winner(held, key))
            .or_insert(*key);
    }
    owners
}

/// What this node must do about its own mesh IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalAddressVerdict {
    /// Nobody with a smaller key claims it.
    Keep,
    /// A peer with a smaller key claims it: re-derive with this nonce and re-announce.
    MoveTo(u8),
}

/// Whether this node (key `local`, address `local_ipv4` from nonce `local_nonce`) lost its
/// mesh IPv4 to one of `peers`, and the nonce to move to if so.
pub fn local_address_verdict<'a>(
    local: &WgKey,
    local_ipv4: Ipv4Addr,
    local_nonce: u8,
    peers: impl IntoIterator<Item = (&'a WgKey, Ipv4Addr)>,
) -> Result<LocalAddressVerdict, CollisionError> {
    let lost = peers
        .into_iter()
        .any(|(key, addr)| addr == local_ipv4 && key != local && ipv4_winner(key, local) == key);
    if !lost {
        return Ok(LocalAddressVerdict::Keep);
    }
    match local_nonce.checked_add(1) {
        Some(next) if next <= MAX_ADDRESS_NONCE => Ok(LocalAddressVerdict::MoveTo(next)),
        _ => Err(CollisionError::NoncesExhausted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::testkit;

    #[test]
    fn address_check_accepts_derived_addresses_and_refuses_others() {
        let check = testkit::address_check();
        let good = testkit::record(1);
        assert_eq!(check.check(&good), Ok(()));

        let mut wrong4 = good.clone();
        wrong4.mesh_ipv4 = Ipv4Addr::new(10, 0, 0, 1);
        assert!(matches!(
            check.check(&wrong4),
            Err(AddressError::Ipv4Mismatch { .. })
        ));

        let mut wrong_nonce = good.clone();
        wrong_nonce.address_nonce = 1;
        assert!(matches!(
            check.check(&wrong_nonce),
            Err(AddressError::Ipv4Mismatch { .. })
        ));
        wrong_nonce.mesh_ipv4 = testkit::keys().mesh_ipv4(&good.wireguard_public, 1);
        assert_eq!(check.check(&wrong_nonce), Ok(()), "a moved node is fine");

        let mut wrong6 = good.clone();
        wrong6.mesh_ipv6 = Ipv6Addr::LOCALHOST;
        assert!(matches!(
            check.check(&wrong6),
            Err(AddressError::Ipv6Mismatch { .. })
        ));

        let mut too_far = good;
        too_far.address_nonce = 16;
        assert!(matches!(
            check.check(&too_far),
            Err(AddressError::NonceOutOfRange { .. })
        ));
    }

    #[test]
    fn smaller_key_keeps_the_address() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(ipv4_winner(&a, &b), &a);
        assert_eq!(ipv4_winner(&b, &a), &a);
        let mut c = [2u8; 32];
        c[31] = 1; // bytewise: [2,..,2,1] < [2,..,2,2]
        assert_eq!(ipv4_winner(&b, &c), &c);

        let ip = Ipv4Addr::new(10, 1, 2, 3);
        let other = Ipv4Addr::new(10, 1, 2, 4);
        let owners = ipv4_owners([(&b, ip), (&a, ip), (&c, other)]);
        assert_eq!(owners[&ip], a);
        assert_eq!(owners[&other], c);
    }

    #[test]
    fn the_loser_moves_to_the_next_nonce_up_to_15() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        let (small, big) = ([1u8; 32], [9u8; 32]);
        // (local, its nonce, peer claims, expected)
        let table = [
            (
                big,
                0,
                vec![(small, ip)],
                Ok(LocalAddressVerdict::MoveTo(1)),
            ),
            (
                big,
                14,
                vec![(small, ip)],
                Ok(LocalAddressVerdict::MoveTo(15)),
            ),
            (
                big,
                15,
                vec![(small, ip)],
                Err(CollisionError::NoncesExhausted),
            ),
            (small, 0, vec![(big, ip)], Ok(LocalAddressVerdict::Keep)),
            (
                big,
                0,
                vec![(small, Ipv4Addr::new(10, 1, 2, 4))],
                Ok(LocalAddressVerdict::Keep),
            ),
            (big, 3, vec![(big, ip)], Ok(LocalAddressVerdict::Keep)),
            (big, 0, vec![], Ok(LocalAddressVerdict::Keep)),
        ];
        for (local, nonce, claims, expected) in table {
            let got = local_address_verdict(&local, ip, nonce, claims.iter().map(|(k, a)| (k, *a)));
            assert_eq!(got, expected, "local {:?} nonce {nonce}", local[0]);
        }
    }
}
