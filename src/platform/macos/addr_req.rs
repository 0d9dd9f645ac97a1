//! Pure encoding of the ioctl arguments macOS uses to add and remove interface addresses
//! (PF_ROUTE only *reports* addresses; setting them is `SIOCAIFADDR`/`SIOCDIFADDR` on an
//! AF_INET socket and `SIOCAIFADDR_IN6`/`SIOCDIFADDR_IN6` on an AF_INET6 socket).
//!
//! Layouts (xnu `bsd/net/if.h`, `bsd/netinet6/in6_var.h`):
//! ```text
//! struct ifaliasreq { char ifra_name[16]; struct sockaddr ifra_addr, ifra_broadaddr,
//!                     ifra_mask; };                                     // 64 bytes
//! struct in6_aliasreq { char ifra_name[16]; struct sockaddr_in6 ifra_addr, ifra_dstaddr,
//!                       ifra_prefixmask; int ifra_flags;                // @100
//!                       struct in6_addrlifetime { time_t expire @104, preferred @112;
//!                       u_int32_t vltime @120, pltime @124; } };       // 128 bytes
//! struct ifreq (for SIOCDIFADDR) { char ifr_name[16]; struct sockaddr ifr_addr; } // 32
//! struct in6_ifreq (SIOCDIFADDR_IN6) { char ifr_name[16]; struct sockaddr_in6 addr; ... }
//!                                                                       // 288 bytes
//! ```
//! utun is point-to-point: IPv4 addresses are set with the destination equal to the local
//! address (as `wg-quick` does with `ifconfig utunN inet A/P A alias`) and the subnet is then
//! routed to the interface by a wgmesh route.
#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::platform::macos::route_msg::{AF_INET, AF_INET6};

pub const IFALIASREQ_LEN: usize = 64;
pub const IN6_ALIASREQ_LEN: usize = 128;
pub const IFREQ_LEN: usize = 32;
pub const IN6_IFREQ_LEN: usize = 288;
/// ND6_INFINITE_LIFETIME.
const INFINITE: u32 = 0xffff_ffff;

// _IOW('i', n, T) = IOC_IN (0x80000000) | (sizeof(T) & 0x1fff) << 16 | 'i' << 8 | n
const fn iow(n: u32, size: usize) -> u64 {
    0x8000_0000 | (((size as u64) & 0x1fff) << 16) | (('i' as u64) << 8) | n as u64
}
pub const SIOCAIFADDR: u64 = iow(26, IFALIASREQ_LEN);
pub const SIOCDIFADDR: u64 = iow(25, IFREQ_LEN);
pub const SIOCAIFADDR_IN6: u64 = iow(26, IN6_ALIASREQ_LEN);
pub const SIOCDIFADDR_IN6: u64 = iow(25, IN6_IFREQ_LEN);

fn name16(iface: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, s) in n.iter_mut().zip(iface.bytes().take(15)) {
        *d = s;
    }
    n
}

fn sin(a: Ipv4Addr) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[0] = 16;
    s[1] = AF_INET;
    s[4..8].copy_from_slice(&a.octets());
    s
}

fn sin6(a: Ipv6Addr) -> [u8; 28] {
    let mut s = [0u8; 28];
    s[0] = 28;
    s[1] = AF_INET6;
    s[8..24].copy_from_slice(&a.octets());
    s
}

fn mask4(prefix: u8) -> Ipv4Addr {
    let p = u32::from(prefix.min(32));
    Ipv4Addr::from(if p == 0 { 0 } else { u32::MAX << (32 - p) })
}

fn mask6(prefix: u8) -> Ipv6Addr {
    let p = u32::from(prefix.min(128));
    Ipv6Addr::from(if p == 0 { 0 } else { u128::MAX << (128 - p) })
}

/// `struct ifaliasreq` for SIOCAIFADDR (point-to-point: destination = local address).
pub fn ifaliasreq(iface: &str, addr: Ipv4Addr, prefix: u8) -> [u8; IFALIASREQ_LEN] {
    let mut r = [0u8; IFALIASREQ_LEN];
    r[..16].copy_from_slice(&name16(iface));
    r[16..32].copy_from_slice(&sin(addr));
    r[32..48].copy_from_slice(&sin(addr));
    r[48..64].copy_from_slice(&sin(mask4(prefix)));
    r
}

/// `struct ifreq` for SIOCDIFADDR.
pub fn ifreq_addr(iface: &str, addr: Ipv4Addr) -> [u8; IFREQ_LEN] {
    let mut r = [0u8; IFREQ_LEN];
    r[..16].copy_from_slice(&name16(iface));
    r[16..32].copy_from_slice(&sin(addr));
    r
}

/// `struct in6_aliasreq` for SIOCAIFADDR_IN6 (infinite lifetimes).
pub fn in6_aliasreq(iface: &str, addr: Ipv6Addr, prefix: u8) -> [u8; IN6_ALIASREQ_LEN] {
    let mut r = [0u8; IN6_ALIASREQ_LEN];
    r[..16].copy_from_slice(&name16(iface));
    r[16..44].copy_from_slice(&sin6(addr));
    // ifra_dstaddr @44 stays zero (sin6_len 0)
    r[72..100].copy_from_slice(&sin6(mask6(prefix)));
    r[120..124].copy_from_slice(&INFINITE.to_ne_bytes());
    r[124..128].copy_from_slice(&INFINITE.to_ne_bytes());
    r
}

/// `struct in6_ifreq` for SIOCDIFADDR_IN6.
pub fn in6_ifreq_addr(iface: &str, addr: Ipv6Addr) -> [u8; IN6_IFREQ_LEN] {
    let mut r = [0u8; IN6_IFREQ_LEN];
    r[..16].copy_from_slice(&name16(iface));
    r[16..44].copy_from_slice(&sin6(addr));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_sdk() {
        // values from <sys/sockio.h> on macOS
        assert_eq!(SIOCAIFADDR, 0x8040_691a);
        assert_eq!(SIOCDIFADDR, 0x8020_6919);
        assert_eq!(SIOCAIFADDR_IN6, 0x8080_691a);
        assert_eq!(SIOCDIFADDR_IN6, 0x8120_6919);
    }

    #[test]
    fn ifaliasreq_layout() {
        let r = ifaliasreq("utun7", "100.64.0.1".parse().unwrap(), 10);
        assert_eq!(&r[..6], b"utun7\0");
        assert_eq!(&r[16..24], &[16, 2, 0, 0, 100, 64, 0, 1]);
        assert_eq!(&r[32..40], &[16, 2, 0, 0, 100, 64, 0, 1]);
        assert_eq!(&r[48..56], &[16, 2, 0, 0, 255, 192, 0, 0]);
    }

    #[test]
    fn in6_aliasreq_layout() {
        let r = in6_aliasreq("utun7", "fd00::1".parse().unwrap(), 64);
        assert_eq!(&r[16..18], &[28, 30]);
        assert_eq!(r[24], 0xfd);
        assert_eq!(&r[72..74], &[28, 30]);
        assert_eq!(&r[80..88], &[0xff; 8]);
        assert_eq!(&r[88..96], &[0; 8]);
        assert_eq!(&r[120..128], &[0xff; 8]);
    }
}
