//! Every value derived from the mesh secret (PROTOCOL.md §2): network id, control key,
//! WireGuard PSK, subnets, LAN group, control port, address/DHT keys, registry id, and the
//! per-node mesh addresses, per-hour DHT topics and per-epoch Dandelion++ seeds computed from
//! them.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use ipnet::{Ipv4Net, Ipv6Net};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::secret::MeshSecret;

/// HKDF salt shared by every derivation.
pub const HKDF_SALT: &[u8] = b"wgmesh/v2";
/// UDP port of the LAN multicast group.
pub const LAN_PORT: u16 = 51830;
/// Base of the derived control port.
pub const CONTROL_PORT_BASE: u16 = 51821;
/// HKDF label of the registry membership key's seed (PROTOCOL.md §2, §15).
pub const REGISTRY_MEMBER_KEY_LABEL: &str = "registry-member-key";
/// HKDF label of the key behind the Dandelion++ epoch seeds (PROTOCOL.md §2).
pub const DANDELION_KEY_LABEL: &str = "dandelion-key";
/// Highest address nonce a node may use after losing collisions.
pub const MAX_ADDRESS_NONCE: u8 = 15;
/// Length of the BEP 44 salt under which nodes store their record in the DHT.
pub const DHT_ITEM_SALT_BYTES: usize = 16;

/// Why a subnet cannot hold mesh addresses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubnetError {
    #[error(
        "mesh subnet {0} is too small: it needs at least 2 host bits (a /30 or larger), a /16 is the default"
    )]
    TooSmall(Ipv4Net),
    #[error("mesh subnet {given} has host bits set: did you mean {network}?")]
    HostBitsSet { given: Ipv4Net, network: Ipv4Net },
}

/// Checks a user-given IPv4 mesh subnet.
pub fn validate_subnet(subnet: Ipv4Net) -> Result<Ipv4Net, SubnetError> {
    if subnet.prefix_len() > 30 {
        return Err(SubnetError::TooSmall(subnet));
    }
    if subnet.trunc() != subnet {
        return Err(SubnetError::HostBitsSet {
            given: subnet,
            network: subnet.trunc(),
        });
    }
    Ok(subnet)
}

fn hkdf_expand<const L: usize>(secret: &MeshSecret, label: &str) -> [u8; L] {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret.as_bytes());
    let mut out = [0u8; L];
    // HKDF-SHA256 can produce up to 255 * 32 bytes; every L here is at most 32.
    #[allow(clippy::expect_used)]
    hk.expand(label.as_bytes(), &mut out)
        .expect("HKDF output length is at most 32 bytes");
    out
}

fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Everything one mesh secret derives. Secret parts are zeroed on drop and hidden from `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MeshKeys {
    network_id: [u8; 32],
    control_key: [u8; 32],
    wireguard_psk: [u8; 32],
    address_key: [u8; 32],
    dht_key: [u8; 32],
    dandelion_key: [u8; 32],
    dht_item_salt: [u8; DHT_ITEM_SALT_BYTES],
    registry_member_seed: [u8; 32],
    #[zeroize(skip)]
    ipv4_subnet: Ipv4Net,
    ipv6_prefix: [u8; 8],
    lan_group: [u8; 2],
    control_port_raw: [u8; 2],
    registry_id: [u8; 8],
}

impl std::fmt::Debug for MeshKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshKeys")
            .field("network_id", &self.network_id_short())
            .field("ipv4_subnet", &self.ipv4_subnet)
            .finish_non_exhaustive()
    }
}

impl MeshKeys {
    /// Derives everything with the default IPv4 subnet.
    pub fn derive(secret: &MeshSecret) -> Self {
        let subnet_bytes: [u8; 2] = hkdf_expand(secret, "ipv4-subnet");
        let default_subnet = Ipv4Net::new(Ipv4Addr::new(10, subnet_bytes[0], 0, 0), 16)
            .unwrap_or_else(|_| unreachable_subnet());
        let mut ipv6_prefix = [0u8; 8];
        ipv6_prefix[0] = 0xfd;
        ipv6_prefix[1..].copy_from_slice(&hkdf_expand::<7>(secret, "ipv6-prefix"));
        Self {
            network_id: hkdf_expand(secret, "network-id"),
            control_key: hkdf_expand(secret, "control-key"),
            wireguard_psk: hkdf_expand(secret, "wireguard-psk"),
            address_key: hkdf_expand(secret, "address-key"),
            dht_key: hkdf_expand(secret, "dht-key"),
            dandelion_key: hkdf_expand(secret, DANDELION_KEY_LABEL),
            dht_item_salt: hkdf_expand(secret, "dht-item-salt"),
            registry_member_seed: hkdf_expand(secret, REGISTRY_MEMBER_KEY_LABEL),
            ipv4_subnet: default_subnet,
            ipv6_prefix,
            lan_group: hkdf_expand(secret, "lan-group"),
            control_port_raw: hkdf_expand(secret, "control-port"),
            registry_id: hkdf_expand(secret, "registry-id"),
        }
    }

    /// Derives everything, replacing the IPv4 subnet when one is given.
    pub fn derive_with_subnet(
        secret: &MeshSecret,
        subnet: Option<Ipv4Net>,
    ) -> Result<Self, SubnetError> {
        let mut keys = Self::derive(secret);
        if let Some(s) = subnet {
            keys.ipv4_subnet = validate_subnet(s)?;
        }
        Ok(keys)
    }

    /// Ed25519 seed of the mesh's registry membership key (label `registry-member-key`,
    /// PROTOCOL.md §15): every member signs registry requests with it; a registry server holds
    /// only its public half (the verifier).
    pub fn registry_member_seed(&self) -> &[u8; 32] {
        &self.registry_member_seed
    }

    /// A further key derived with the same HKDF scheme and a new label (later protocol parts).
    pub fn derive_extra(secret: &MeshSecret, label: &str) -> [u8; 32] {
        hkdf_expand(secret, label)
    }

    /// The 32-byte network id (bound into every record signature).
    pub fn network_id(&self) -> &[u8; 32] {
        &self.network_id
    }
    /// The network id as shown to people: hex of its first 8 bytes.
    pub fn network_id_short(&self) -> String {
        hex::encode(&self.network_id[..8])
    }
    /// XChaCha20-Poly1305 key sealing every control message.
    pub fn control_key(&self) -> &[u8; 32] {
        &self.control_key
    }
    /// WireGuard preshared key for every peer.
    pub fn wireguard_psk(&self) -> &[u8; 32] {
        &self.wireguard_psk
    }
    /// The mesh IPv4 subnet (derived `10.b0.0.0/16` or the configured one).
    pub fn ipv4_subnet(&self) -> Ipv4Net {
        self.ipv4_subnet
    }
    /// The mesh IPv6 /64 prefix.
    pub fn ipv6_prefix(&self) -> Ipv6Net {
        let mut full = [0u8; 16];
        full[..8].copy_from_slice(&self.ipv6_prefix);
        Ipv6Net::new(Ipv6Addr::from(full), 64).unwrap_or_else(|_| unreachable_subnet6())
    }
    /// The LAN multicast group and port.
    pub fn lan_group(&self) -> SocketAddrV4 {
        SocketAddrV4::new(
            Ipv4Addr::new(239, 192, self.lan_group[0], self.lan_group[1]),
            LAN_PORT,
        )
    }
    /// The IPv6 link-local LAN discovery group (this project's choice, PROTOCOL.md §2):
    /// `ff12::7767:6d32:<a><b>` (transient, link-local scope; `77 67 6d 32` = "wgm2", `a b` =
    /// the two `lan-group` bytes), same port as the IPv4 group.
    pub fn lan_group_v6(&self) -> SocketAddrV6 {
        let [a, b] = self.lan_group;
        SocketAddrV6::new(
            Ipv6Addr::new(
                0xff12,
                0,
                0,
                0,
                0,
                0x7767,
                0x6d32,
                u16::from_be_bytes([a, b]),
            ),
            LAN_PORT,
            0,
            0,
        )
    }
    /// The control UDP port: 51821 + (big-endian u16 mod 1000).
    pub fn control_port(&self) -> u16 {
        CONTROL_PORT_BASE + u16::from_be_bytes(self.control_port_raw) % 1000
    }
    /// The public registry tag (8 bytes).
    pub fn registry_id(&self) -> [u8; 8] {
        self.registry_id
    }
    /// The registry tag in hex.
    pub fn registry_id_hex(&self) -> String {
        hex::encode(self.registry_id)
    }

    /// Mesh IPv4 of the node with WireGuard public key `wg_public` and address nonce `nonce`.
    pub fn mesh_ipv4(&self, wg_public: &[u8; 32], nonce: u8) -> Ipv4Addr {
        mesh_ipv4_in(&self.address_key, self.ipv4_subnet, wg_public, nonce)
    }

    /// Mesh IPv6 of the node with WireGuard public key `wg_public`.
    pub fn mesh_ipv6(&self, wg_public: &[u8; 32]) -> Ipv6Addr {
        let h = hmac_sha256(&self.address_key, &[b"ipv6", wg_public]);
        let mut full = [0u8; 16];
        full[..8].copy_from_slice(&self.ipv6_prefix);
        full[8..].copy_from_slice(&h[..8]);
        Ipv6Addr::from(full)
    }

    /// The 20-byte DHT infohash for hour `t = floor(unix_seconds / 3600)`.
    pub fn dht_topic(&self, hour: u64) -> [u8; 20] {
        let h = hmac_sha256(&self.dht_key, &[&hour.to_be_bytes()]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&h[..20]);
        out
    }

    /// The Dandelion++ seed of stem epoch `epoch` (`floor(unix_ms / 600 000)`): every member
    /// derives the same seed, from which each node picks its stem relays (`mesh::dandelion`).
    pub fn dandelion_epoch_seed(&self, epoch: u64) -> [u8; 32] {
        hmac_sha256(&self.dandelion_key, &[&epoch.to_be_bytes()])
    }

    /// The BEP 44 salt of every node's mutable DHT item in this mesh (label `dht-item-salt`):
    /// the item's target is `SHA-1(node's Ed25519 key ‖ salt)` (PROTOCOL.md §14).
    pub fn dht_item_salt(&self) -> &[u8; DHT_ITEM_SALT_BYTES] {
        &self.dht_item_salt
    }

    /// The topics a node announces and looks up at `unix_seconds`: hours `t` and `t - 1`.
    pub fn dht_topics_at(&self, unix_seconds: u64) -> [(u64, [u8; 20]); 2] {
        let t = unix_seconds / 3600;
        let prev = t.saturating_sub(1);
        [(t, self.dht_topic(t)), (prev, self.dht_topic(prev))]
    }
}

fn mesh_ipv4_in(
    address_key: &[u8; 32],
    subnet: Ipv4Net,
    wg_public: &[u8; 32],
    nonce: u8,
) -> Ipv4Addr {
    let h = hmac_sha256(address_key, &[b"ipv4", wg_public, &[nonce]]);
    let host_bits = 32 - u32::from(subnet.prefix_len());
    // validate_subnet guarantees host_bits >= 2, so the modulus is at least 2.
    let modulus = (1u64 << host_bits) - 2;
    let raw = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
    let host = raw % modulus + 1;
    let network = u64::from(u32::from(subnet.network()));
    // network + host stays below the broadcast address, so it fits in u32.
    Ipv4Addr::from((network + host) as u32)
}

#[cold]
fn unreachable_subnet() -> Ipv4Net {
    // A /16 prefix is always valid.
    Ipv4Net::default()
}

#[cold]
fn unreachable_subnet6() -> Ipv6Net {
    // A /64 prefix is always valid.
    Ipv6Net::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> MeshKeys {
        MeshKeys::derive(&MeshSecret::from_bytes([7u8; 32]))
    }

    #[test]
    fn values_have_the_documented_shapes() {
        let k = keys();
        assert_eq!(k.ipv4_subnet().prefix_len(), 16);
        assert_eq!(k.ipv4_subnet().network().octets()[0], 10);
        assert_eq!(k.ipv6_prefix().network().octets()[0], 0xfd);
        assert_eq!(k.lan_group().ip().octets()[..2], [239, 192]);
        assert_eq!(k.lan_group().port(), 51830);
        let v6 = k.lan_group_v6();
        assert!(v6.ip().is_multicast());
        assert_eq!(v6.ip().segments()[0], 0xff12, "link-local scope, transient");
        assert_eq!(v6.ip().octets()[14..], k.lan_group().ip().octets()[2..]);
        assert_eq!(v6.port(), 51830);
        assert!((51821..52821).contains(&k.control_port()));
    }

    #[test]
    fn mesh_addresses_stay_inside_the_subnet_and_avoid_network_and_broadcast() {
        for prefix in [8u8, 16, 24, 29, 30] {
            let subnet = Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), prefix).unwrap();
            let k = MeshKeys::derive_with_subnet(&MeshSecret::from_bytes([1; 32]), Some(subnet))
                .unwrap();
            for i in 0..=255u8 {
                for n in 0..=MAX_ADDRESS_NONCE {
                    let a = k.mesh_ipv4(&[i; 32], n);
                    assert!(subnet.contains(&a));
                    assert_ne!(a, subnet.network());
                    assert_ne!(a, subnet.broadcast());
                }
            }
        }
    }

    #[test]
    fn bad_subnets_are_refused_with_a_hint() {
        let s = MeshSecret::from_bytes([1; 32]);
        let small: Ipv4Net = "10.0.0.0/31".parse().unwrap();
        assert_eq!(
            MeshKeys::derive_with_subnet(&s, Some(small)).unwrap_err(),
            SubnetError::TooSmall(small)
        );
        let host: Ipv4Net = "10.1.2.3/16".parse().unwrap();
        let err = MeshKeys::derive_with_subnet(&s, Some(host)).unwrap_err();
        assert!(err.to_string().contains("10.1.0.0/16"));
    }

    #[test]
    fn nonce_changes_the_ipv4_but_not_the_ipv6() {
        let k = keys();
        let p = [9u8; 32];
        assert_ne!(k.mesh_ipv4(&p, 0), k.mesh_ipv4(&p, 1));
        assert_eq!(k.mesh_ipv6(&p), k.mesh_ipv6(&p));
        assert!(k.ipv6_prefix().contains(&k.mesh_ipv6(&p)));
    }

    #[test]
    fn dandelion_seeds_differ_per_epoch_and_per_mesh() {
        let k = keys();
        assert_eq!(k.dandelion_epoch_seed(5), k.dandelion_epoch_seed(5));
        assert_ne!(k.dandelion_epoch_seed(5), k.dandelion_epoch_seed(6));
        let other = MeshKeys::derive(&MeshSecret::from_bytes([8u8; 32]));
        assert_ne!(k.dandelion_epoch_seed(5), other.dandelion_epoch_seed(5));
    }

    #[test]
    fn topics_cover_this_and_the_previous_hour() {
        let k = keys();
        let [(t, a), (p, b)] = k.dht_topics_at(7200 + 5);
        assert_eq!((t, p), (2, 1));
        assert_eq!(a, k.dht_topic(2));
        assert_eq!(b, k.dht_topic(1));
        assert_ne!(a, b);
    }
}
