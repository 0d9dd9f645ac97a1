//! Hostile datagrams for the daemon's UDP sockets: well-formed attacks built with the real
//! codecs (a forged signature, another mesh's key, a replayed older record, a valid hello to
//! replay from spoofed sources) and malformed ones (truncated, oversized); and a raw-socket
//! flooder that sends IPv4/UDP with spoofed source addresses at a fixed rate.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use wgmesh::identity::NodeIdentity;
use wgmesh::proto::exchange::Hello;
use wgmesh::proto::record::{EndpointCandidate, EndpointKind, NatType};
use wgmesh::proto::{MeshKeys, MeshSecret, Message, NodeRecord, SignedRecord};

/// Builds attack datagrams for one mesh, as a member (it holds the secret) and as an outsider.
pub struct Crafter {
    keys: MeshKeys,
    other_mesh: MeshKeys,
    identity: NodeIdentity,
}

impl Crafter {
    /// A crafter for the mesh whose secret is in `secret_file`, with a fresh identity.
    pub fn new(secret_file: &Path) -> Self {
        let text = std::fs::read_to_string(secret_file)
            .unwrap_or_else(|e| panic!("read {}: {e}", secret_file.display()));
        let secret = MeshSecret::parse(text.trim()).unwrap_or_else(|e| panic!("secret: {e}"));
        Self {
            keys: MeshKeys::derive(&secret),
            other_mesh: MeshKeys::derive(&MeshSecret::generate()),
            identity: NodeIdentity::generate(),
        }
    }

    fn record(&self, keys: &MeshKeys, identity: &NodeIdentity, sequence: u64) -> SignedRecord {
        let wg = identity.wireguard_public();
        let record = NodeRecord {
            ed25519_public: identity.ed25519_public(),
            wireguard_public: wg,
            sequence,
            hostname: "intruder".into(),
            address_nonce: 0,
            mesh_ipv4: keys.mesh_ipv4(&wg, 0),
            mesh_ipv6: keys.mesh_ipv6(&wg),
            endpoints: vec![EndpointCandidate {
                kind: EndpointKind::Lan,
                addr: SocketAddr::from(([10, 77, 0, 99], 51820)),
            }],
            nat_type: NatType::Unknown,
            introducer: false,
            routes: vec![],
            control_port: keys.control_port(),
            wireguard_port: 51820,
            relay_load: None,
        };
        record
            .sign(keys.network_id(), |m| identity.sign(m))
            .unwrap_or_else(|e| panic!("sign: {e}"))
    }

    fn seal(keys: &MeshKeys, message: &Message) -> Vec<u8> {
        message.seal(keys).unwrap_or_else(|e| panic!("seal: {e}"))
    }

    /// A valid announce of this crafter's member identity with `sequence`.
    pub fn announce(&self, sequence: u64) -> Vec<u8> {
        let record = self.record(&self.keys, &self.identity, sequence);
        Self::seal(&self.keys, &Message::Announce { record })
    }

    /// An announce under the right mesh key whose record signature has one bit flipped.
    pub fn forged_announce(&self) -> Vec<u8> {
        let mut record = self.record(&self.keys, &NodeIdentity::generate(), 1);
        record.signature[7] ^= 0x01;
        Self::seal(&self.keys, &Message::Announce { record })
    }

    /// A valid announce of another mesh (sealed under its key).
    pub fn wrong_mesh_announce(&self) -> Vec<u8> {
        let identity = NodeIdentity::generate();
        let record = self.record(&self.other_mesh, &identity, 1);
        Self::seal(&self.other_mesh, &Message::Announce { record })
    }

    /// A valid hello of this crafter's member identity (what an on-path attacker would
    /// capture and replay from spoofed sources).
    pub fn hello(&self, sequence: u64) -> Vec<u8> {
        let record = self.record(&self.keys, &self.identity, sequence);
        let hello = Hello {
            challenge: [0x42; 16],
            record,
            digests: vec![],
            cookie: None,
            filter: None,
        };
        Self::seal(&self.keys, &Message::Hello(Box::new(hello)))
    }
}

/// Shorter than the smallest envelope (45 bytes), with the right magic.
pub fn truncated() -> Vec<u8> {
    let mut d = b"WGM2".to_vec();
    d.extend_from_slice(&[0x01; 16]);
    d
}

/// Over the 1200-byte datagram limit, with the right magic and type.
pub fn oversized() -> Vec<u8> {
    let mut d = b"WGM2\x01".to_vec();
    d.resize(1400, 0xab);
    d
}

/// One datagram of a flood: who it pretends to come from, where it goes, what it says.
pub struct FloodDatagram {
    pub src: Ipv4Addr,
    pub dst: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// What a flood did.
#[derive(Debug, Clone, Copy)]
pub struct FloodReport {
    pub sent: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

/// Sends IPv4/UDP datagrams with spoofed sources through a raw socket (IP_HDRINCL), cycling
/// over `datagrams`, at `rate` per second for `duration`. Must run inside the attacker's
/// namespace (needs CAP_NET_RAW).
pub fn flood(datagrams: &[FloodDatagram], rate: u64, duration: Duration) -> FloodReport {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
        .unwrap_or_else(|e| panic!("raw socket (needs CAP_NET_RAW): {e}"));
    let packets: Vec<(Vec<u8>, SockAddr)> = datagrams
        .iter()
        .map(|d| (ipv4_udp(d), SockAddr::from(d.dst)))
        .collect();
    let t0 = Instant::now();
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut i = 0usize;
    while t0.elapsed() < duration {
        // Catch up to where the rate says we should be, then yield a millisecond.
        let due = (t0.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent + failed < due {
            let (packet, to) = &packets[i % packets.len()];
            i += 1;
            match socket.send_to(packet, to) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    FloodReport {
        sent,
        failed,
        elapsed: t0.elapsed(),
    }
}

/// An IPv4 header (the kernel fills in the checksum, and the id when zero) + UDP header
/// (checksum 0 = none, allowed over IPv4) + payload.
fn ipv4_udp(d: &FloodDatagram) -> Vec<u8> {
    let udp_len = 8 + d.payload.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&d.src.octets());
    p.extend_from_slice(&d.dst.ip().octets());
    let sport = 40000 + (u16::from(d.src.octets()[3]) % 20000);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&d.dst.port().to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&d.payload);
    p
}
