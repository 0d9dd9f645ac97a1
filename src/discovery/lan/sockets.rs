//! The LAN discovery sockets: one IPv4 socket on the `239.192.a.b` group (joined per LAN
//! address) and one IPv6 socket on the link-local `ff12::7767:6d32:ab` group (joined per
//! interface index), both bound to port 51830 with TTL / hop limit 1 and loopback off; and the
//! scan of which interfaces the IPv6 group is joined on (up, multicast-capable, not loopback,
//! not the mesh interface), read from `/sys/class/net`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;

const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_MULTICAST: u32 = 0x1000;

/// Opens the IPv4 socket and joins the group on each of `interfaces` (LAN addresses).
pub fn open_v4(group: SocketAddrV4, interfaces: &[Ipv4Addr]) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(false)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port())).into())?;
    join_v4(&SockRef::from(&s), group, interfaces);
    UdpSocket::from_std(s.into())
}

/// Joins the IPv4 group on each address; a failure is logged (the interface may be going away).
pub fn join_v4(socket: &SockRef<'_>, group: SocketAddrV4, interfaces: &[Ipv4Addr]) {
    for a in interfaces {
        if let Err(e) = socket.join_multicast_v4(group.ip(), a) {
            tracing::debug!(interface = %a, error = %e, "cannot join the IPv4 LAN group on this address");
        }
    }
}

/// Opens the IPv6 socket (IPv6 only, so IPv4 announces are not seen twice); joins nothing yet.
pub fn open_v6(group: SocketAddrV6) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_multicast_hops_v6(1)?;
    s.set_multicast_loop_v6(false)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, group.port(), 0, 0)).into())?;
    UdpSocket::from_std(s.into())
}

/// Joins the IPv6 group on each interface of `wanted` not in `joined`, and returns the
/// interfaces joined now (left interfaces are dropped by the kernel with the interface).
pub fn join_v6(socket: &SockRef<'_>, group: &Ipv6Addr, wanted: &[u32], joined: &[u32]) -> Vec<u32> {
    let mut now = Vec::with_capacity(wanted.len());
    for &index in wanted {
        if joined.contains(&index) {
            now.push(index);
            continue;
        }
        match socket.join_multicast_v6(group, index) {
            Ok(()) => now.push(index),
            // Already joined there (e.g. after a restart of the scan).
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => now.push(index),
            Err(e) => {
                tracing::debug!(interface = index, error = %e, "cannot join the IPv6 LAN group on this interface");
            }
        }
    }
    now
}

/// The indices of the interfaces under `sys_class_net` (normally `/sys/class/net`) that are
/// up, multicast-capable and not loopback, except `mesh_interface`. Unreadable entries are
/// skipped (an interface can vanish while it is read).
pub fn multicast_interfaces(sys_class_net: &Path, mesh_interface: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = entries
        .flatten()
        .filter(|e| e.file_name() != mesh_interface)
        .filter_map(|e| {
            let dir = e.path();
            let flags = read_number(&dir.join("flags"))?;
            let wanted = flags & IFF_UP != 0 && flags & IFF_MULTICAST != 0;
            if !wanted || flags & IFF_LOOPBACK != 0 {
                return None;
            }
            read_number(&dir.join("ifindex"))
        })
        .collect();
    out.sort_unstable();
    out
}

/// A sysfs number: decimal, or hex with `0x`.
fn read_number(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_interface(root: &Path, name: &str, flags: &str, index: &str) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("flags"), format!("{flags}\n")).unwrap();
        std::fs::write(dir.join("ifindex"), format!("{index}\n")).unwrap();
    }

    #[test]
    fn scan_keeps_up_multicast_non_loopback_interfaces_but_the_mesh_one() {
        let root = std::env::temp_dir().join(format!("wgmesh-lan-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        fake_interface(&root, "lo", "0x9", "1");
        fake_interface(&root, "eth0", "0x1003", "2");
        fake_interface(&root, "eth1", "0x1002", "3"); // down
        fake_interface(&root, "tun0", "0x1091", "4"); // up, multicast, point-to-point
        fake_interface(&root, "ptp0", "0x91", "5"); // up, not multicast
        fake_interface(&root, "wgmesh0", "0x1091", "6"); // the mesh interface
        std::fs::create_dir_all(root.join("broken")).unwrap(); // unreadable entry
        let found = multicast_interfaces(&root, "wgmesh0");
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found, vec![2, 4]);
    }

    #[test]
    fn sysfs_numbers_parse_in_hex_and_decimal() {
        let root = std::env::temp_dir().join(format!("wgmesh-lan-num-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a"), "0x1003\n").unwrap();
        std::fs::write(root.join("b"), "17\n").unwrap();
        std::fs::write(root.join("c"), "zz\n").unwrap();
        assert_eq!(read_number(&root.join("a")), Some(0x1003));
        assert_eq!(read_number(&root.join("b")), Some(17));
        assert_eq!(read_number(&root.join("c")), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
