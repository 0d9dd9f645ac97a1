//! Pure encoding/decoding of macOS PF_ROUTE messages (routing socket, route(4)).
//!
//! Layouts from the macOS SDK headers (xnu `bsd/net/route.h`, `bsd/net/if.h`,
//! `bsd/netinet/in.h`, `bsd/netinet6/in6.h`, `bsd/net/if_dl.h`), all host byte order
//! (little-endian on every supported Mac):
//!
//! ```text
//! struct rt_msghdr {            // 92 bytes, RTM_VERSION 5
//!   u_short rtm_msglen;   @0    u_char rtm_version; @2   u_char rtm_type; @3
//!   u_short rtm_index;    @4    (2 bytes padding)   @6
//!   int rtm_flags; @8  int rtm_addrs; @12  pid_t rtm_pid; @16  int rtm_seq; @20
//!   int rtm_errno; @24 int rtm_use; @28  u_int32_t rtm_inits; @32
//!   struct rt_metrics rtm_rmx; @36   // 14 x u_int32_t = 56 bytes
//! };
//! struct ifa_msghdr { u_short msglen @0; u_char version @2; u_char type @3; int addrs @4;
//!                     int flags @8; u_short index @12; (pad) ; int metric @16 };   // 20 bytes
//! struct if_msghdr  { u_short msglen @0; u_char version @2; u_char type @3; int addrs @4;
//!                     int flags @8; u_short index @12; ...struct if_data };
//! ```
//! The header is followed by one `sockaddr` per bit set in `rtm_addrs`, in bit order
//! (RTA_DST 0x1, RTA_GATEWAY 0x2, RTA_NETMASK 0x4, RTA_GENMASK 0x8, RTA_IFP 0x10, RTA_IFA 0x20,
//! RTA_AUTHOR 0x40, RTA_BRD 0x80), each padded with `ROUNDUP(sa_len)` to 4 bytes
//! (`sizeof(uint32_t)`; a zero `sa_len` takes 4 bytes).
//! `sockaddr_in` = {len 16, AF_INET 2, port, addr[4], zero[8]}; `sockaddr_in6` = {len 28,
//! AF_INET6 30, port, flowinfo, addr[16], scope_id}; `sockaddr_dl` = {len 20, AF_LINK 18,
//! u_short index, type, nlen, alen, slen, data[12]}. Kernel netmasks may be shortened
//! (`sa_len` < full size, family 0): missing bytes are zero.
//!
//! wgmesh marks its routes with `RTF_PROTO3` (0x40000), the BSD counterpart of the Linux
//! routing protocol number: only routes carrying it are ever changed or deleted.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::platform::types::{NetEvent, Route};

pub const RTM_VERSION: u8 = 5;
pub const RTM_ADD: u8 = 0x1;
pub const RTM_DELETE: u8 = 0x2;
pub const RTM_CHANGE: u8 = 0x3;
pub const RTM_GET: u8 = 0x4;
pub const RTM_NEWADDR: u8 = 0xc;
pub const RTM_DELADDR: u8 = 0xd;
pub const RTM_IFINFO: u8 = 0xe;

pub const RTF_UP: i32 = 0x1;
pub const RTF_GATEWAY: i32 = 0x2;
pub const RTF_HOST: i32 = 0x4;
pub const RTF_STATIC: i32 = 0x800;
/// wgmesh's route marker.
pub const RTF_WGMESH: i32 = 0x40000; // RTF_PROTO3

pub const RTA_DST: i32 = 0x1;
pub const RTA_GATEWAY: i32 = 0x2;
pub const RTA_NETMASK: i32 = 0x4;
pub const RTA_IFA: i32 = 0x20;
const RTAX_MAX: usize = 8;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 30;
pub const AF_LINK: u8 = 18;
const IFF_UP: i32 = 0x1;

/// sizeof(struct rt_msghdr) on macOS.
pub const RT_MSGHDR_LEN: usize = 92;
/// sizeof(struct ifa_msghdr) on macOS.
pub const IFA_MSGHDR_LEN: usize = 20;
/// Offset of ifm_index in if_msghdr; the header is longer, but only this is read.
const IFM_MIN_LEN: usize = 14;

/// Errors of PF_ROUTE decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteMsgError {
    #[error("routing message truncated ({0} bytes)")]
    Truncated(usize),
    #[error("routing message version {0}, expected 5: this macOS is not supported")]
    Version(u8),
    #[error("bad sockaddr in routing message")]
    BadSockaddr,
}

/// A decoded socket address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    Ip(IpAddr),
    /// `sockaddr_dl`: an interface by index.
    Link(u16),
    /// Family 0 or unknown (e.g. a shortened netmask): the raw address bytes after len/family.
    Raw(Vec<u8>),
}

fn roundup(len: usize) -> usize {
    if len == 0 { 4 } else { (len + 3) & !3 }
}

fn put_sockaddr(out: &mut Vec<u8>, sa: &SockAddr) {
    let start = out.len();
    match sa {
        SockAddr::Ip(IpAddr::V4(a)) => {
            out.extend_from_slice(&[16, AF_INET, 0, 0]);
            out.extend_from_slice(&a.octets());
            out.extend_from_slice(&[0; 8]);
        }
        SockAddr::Ip(IpAddr::V6(a)) => {
            out.extend_from_slice(&[28, AF_INET6, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&a.octets());
            out.extend_from_slice(&[0; 4]);
        }
        SockAddr::Link(index) => {
            out.extend_from_slice(&[20, AF_LINK]);
            out.extend_from_slice(&index.to_ne_bytes());
            out.extend_from_slice(&[0; 16]);
        }
        SockAddr::Raw(bytes) => {
            let len = (2 + bytes.len()).min(255);
            out.push(len as u8);
            out.push(0);
            out.extend_from_slice(&bytes[..len - 2]);
        }
    }
    let padded = roundup(out.len() - start);
    out.resize(start + padded, 0);
}

fn mask_of(net: &IpNet) -> IpAddr {
    net.netmask()
}

/// Next hop of a route on the mesh interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    Gateway(IpAddr),
    /// Directly out of the interface with this index.
    Interface(u16),
}

/// Encodes an RTM_ADD / RTM_DELETE / RTM_CHANGE / RTM_GET for a wgmesh route.
pub fn encode_route(kind: u8, seq: i32, destination: IpNet, hop: NextHop) -> Vec<u8> {
    let dst = destination.trunc();
    let host = dst.prefix_len() == dst.max_prefix_len();
    let mut flags = RTF_UP | RTF_STATIC | RTF_WGMESH;
    let mut addrs = RTA_DST | RTA_GATEWAY;
    if host {
        flags |= RTF_HOST;
    } else {
        addrs |= RTA_NETMASK;
    }
    let gw = match hop {
        NextHop::Gateway(ip) => {
            flags |= RTF_GATEWAY;
            SockAddr::Ip(ip)
        }
        NextHop::Interface(i) => SockAddr::Link(i),
    };
    let mut out = vec![0u8; RT_MSGHDR_LEN];
    out[2] = RTM_VERSION;
    out[3] = kind;
    if let NextHop::Interface(i) = hop {
        out[4..6].copy_from_slice(&i.to_ne_bytes());
    }
    out[8..12].copy_from_slice(&flags.to_ne_bytes());
    out[12..16].copy_from_slice(&addrs.to_ne_bytes());
    out[20..24].copy_from_slice(&seq.to_ne_bytes());
    put_sockaddr(&mut out, &SockAddr::Ip(dst.addr()));
    put_sockaddr(&mut out, &gw);
    if !host {
        put_sockaddr(&mut out, &SockAddr::Ip(mask_of(&dst)));
    }
    let len = out.len() as u16;
    out[0..2].copy_from_slice(&len.to_ne_bytes());
    out
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_sockaddr(b: &[u8]) -> Result<(SockAddr, usize), RouteMsgError> {
    let len = *b.first().ok_or(RouteMsgError::BadSockaddr)? as usize;
    let step = roundup(len);
    if len > b.len() || step > b.len() {
        return Err(RouteMsgError::BadSockaddr);
    }
    let family = if len >= 2 { b[1] } else { 0 };
    let sa = match family {
        AF_INET if len >= 8 => SockAddr::Ip(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7]))),
        AF_INET6 if len >= 24 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            SockAddr::Ip(IpAddr::V6(Ipv6Addr::from(a)))
        }
        AF_LINK if len >= 4 => SockAddr::Link(u16_at(b, 2)),
        _ => SockAddr::Raw(b[2.min(len)..len].to_vec()),
    };
    Ok((sa, step))
}

fn parse_addrs(b: &[u8], addrs: i32) -> Result<[Option<SockAddr>; RTAX_MAX], RouteMsgError> {
    let mut out: [Option<SockAddr>; RTAX_MAX] = Default::default();
    let mut off = 0;
    for (bit, slot) in out.iter_mut().enumerate() {
        if addrs & (1 << bit) == 0 {
            continue;
        }
        let (sa, step) = parse_sockaddr(&b[off..])?;
        *slot = Some(sa);
        off += step;
    }
    Ok(out)
}

/// A decoded rt_msghdr message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMsg {
    pub kind: u8,
    pub index: u16,
    pub flags: i32,
    pub pid: i32,
    pub seq: i32,
    pub errno: i32,
    pub destination: Option<SockAddr>,
    pub gateway: Option<SockAddr>,
    pub netmask: Option<SockAddr>,
}

/// Prefix length of a netmask sockaddr for the destination's family.
fn prefix_of(mask: &Option<SockAddr>, v6: bool) -> u8 {
    let bytes: Vec<u8> = match mask {
        None => return if v6 { 128 } else { 32 },
        Some(SockAddr::Ip(IpAddr::V4(m))) => m.octets().to_vec(),
        Some(SockAddr::Ip(IpAddr::V6(m))) => m.octets().to_vec(),
        // shortened kernel mask: family 0; v4 address bytes start 2 bytes in (after port),
        // v6 after port + flowinfo (6 bytes)
        Some(SockAddr::Raw(r)) => r.iter().skip(if v6 { 6 } else { 2 }).copied().collect(),
        Some(SockAddr::Link(_)) => return 0,
    };
    let width = if v6 { 16 } else { 4 };
    bytes.iter().take(width).map(|b| b.count_ones() as u8).sum()
}

impl RouteMsg {
    /// The wgmesh route this message describes (`None` for foreign routes).
    pub fn wgmesh_route(&self) -> Option<Route> {
        if self.flags & RTF_WGMESH == 0 {
            return None;
        }
        let Some(SockAddr::Ip(dst)) = self.destination else {
            return None;
        };
        let prefix = if self.flags & RTF_HOST != 0 {
            if dst.is_ipv4() { 32 } else { 128 }
        } else {
            prefix_of(&self.netmask, dst.is_ipv6())
        };
        let gateway = match (&self.gateway, self.flags & RTF_GATEWAY != 0) {
            (Some(SockAddr::Ip(g)), true) => Some(*g),
            _ => None,
        };
        Some(Route {
            destination: IpNet::new(dst, prefix).ok()?,
            gateway,
            metric: None,
        })
    }
}

fn check_header(b: &[u8], min: usize) -> Result<usize, RouteMsgError> {
    if b.len() < min.max(4) {
        return Err(RouteMsgError::Truncated(b.len()));
    }
    let len = u16_at(b, 0) as usize;
    if len < min || len > b.len() {
        return Err(RouteMsgError::Truncated(b.len()));
    }
    if b[2] != RTM_VERSION {
        return Err(RouteMsgError::Version(b[2]));
    }
    Ok(len)
}

/// Decodes an rt_msghdr message (RTM_ADD/DELETE/CHANGE/GET and replies).
pub fn decode_route(b: &[u8]) -> Result<RouteMsg, RouteMsgError> {
    let len = check_header(b, RT_MSGHDR_LEN)?;
    let addrs = i32_at(b, 12);
    let mut sa = parse_addrs(&b[RT_MSGHDR_LEN..len], addrs)?;
    Ok(RouteMsg {
        kind: b[3],
        index: u16_at(b, 4),
        flags: i32_at(b, 8),
        pid: i32_at(b, 16),
        seq: i32_at(b, 20),
        errno: i32_at(b, 24),
        destination: sa[0].take(),
        gateway: sa[1].take(),
        netmask: sa[2].take(),
    })
}

/// Decodes any routing-socket message into a change event (`None` for other types).
pub fn decode_event(b: &[u8]) -> Result<Option<NetEvent>, RouteMsgError> {
    let len = check_header(b, 4)?;
    let kind = b[3];
    Ok(match kind {
        RTM_ADD | RTM_CHANGE | RTM_DELETE => {
            let m = decode_route(b)?;
            let v6 = matches!(m.destination, Some(SockAddr::Ip(IpAddr::V6(_))));
            let destination = match &m.destination {
                Some(SockAddr::Ip(ip)) => {
                    let p = if m.flags & RTF_HOST != 0 {
                        if v6 { 128 } else { 32 }
                    } else {
                        prefix_of(&m.netmask, v6)
                    };
                    IpNet::new(*ip, p).ok()
                }
                _ => None,
            };
            Some(if kind == RTM_DELETE {
                NetEvent::RouteRemoved { destination }
            } else {
                NetEvent::RouteChanged { destination }
            })
        }
        RTM_NEWADDR | RTM_DELADDR => {
            if len < IFA_MSGHDR_LEN {
                return Err(RouteMsgError::Truncated(len));
            }
            let addrs = i32_at(b, 4);
            let index = u32::from(u16_at(b, 12));
            let sa = parse_addrs(&b[IFA_MSGHDR_LEN..len], addrs)?;
            let Some(SockAddr::Ip(address)) = sa[5].clone() else {
                return Ok(None);
            };
            Some(if kind == RTM_NEWADDR {
                NetEvent::AddressAdded { index, address }
            } else {
                NetEvent::AddressRemoved { index, address }
            })
        }
        RTM_IFINFO => {
            if len < IFM_MIN_LEN {
                return Err(RouteMsgError::Truncated(len));
            }
            Some(NetEvent::LinkChanged {
                index: u32::from(u16_at(b, 12)),
                name: None,
                up: i32_at(b, 8) & IFF_UP != 0,
            })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_route_via_gateway_layout() {
        let m = encode_route(
            RTM_ADD,
            7,
            "10.9.8.7/24".parse().unwrap(),
            NextHop::Gateway("100.64.0.2".parse().unwrap()),
        );
        // header + 3 x sockaddr_in (16 bytes each)
        assert_eq!(m.len(), RT_MSGHDR_LEN + 48);
        assert_eq!(u16_at(&m, 0) as usize, m.len());
        assert_eq!((m[2], m[3]), (RTM_VERSION, RTM_ADD));
        assert_eq!(
            i32_at(&m, 8),
            RTF_UP | RTF_STATIC | RTF_WGMESH | RTF_GATEWAY
        );
        assert_eq!(i32_at(&m, 12), RTA_DST | RTA_GATEWAY | RTA_NETMASK);
        assert_eq!(i32_at(&m, 20), 7);
        assert_eq!(&m[92..100], &[16, AF_INET, 0, 0, 10, 9, 8, 0]);
        assert_eq!(&m[108..116], &[16, AF_INET, 0, 0, 100, 64, 0, 2]);
        assert_eq!(&m[124..132], &[16, AF_INET, 0, 0, 255, 255, 255, 0]);
        let back = decode_route(&m).unwrap();
        let r = back.wgmesh_route().unwrap();
        assert_eq!(r.destination, "10.9.8.0/24".parse::<IpNet>().unwrap());
        assert_eq!(r.gateway, Some("100.64.0.2".parse().unwrap()));
    }

    #[test]
    fn v6_host_route_out_of_interface() {
        let m = encode_route(
            RTM_DELETE,
            1,
            "fd00::5/128".parse().unwrap(),
            NextHop::Interface(9),
        );
        // header + sockaddr_in6 (28) + sockaddr_dl (20), no netmask for a host route
        assert_eq!(m.len(), RT_MSGHDR_LEN + 28 + 20);
        assert_eq!(u16_at(&m, 4), 9);
        assert_eq!(&m[92..94], &[28, AF_INET6]);
        assert_eq!(&m[120..124], &[20, AF_LINK, 9, 0]);
        let back = decode_route(&m).unwrap();
        assert_eq!(back.gateway, Some(SockAddr::Link(9)));
        let r = back.wgmesh_route().unwrap();
        assert_eq!(r.destination, "fd00::5/128".parse::<IpNet>().unwrap());
        assert_eq!(r.gateway, None);
    }

    #[test]
    fn foreign_routes_and_short_masks() {
        let mut m = encode_route(
            RTM_GET,
            1,
            "10.0.0.0/8".parse().unwrap(),
            NextHop::Interface(3),
        );
        // a kernel-style shortened netmask: sa_len 5, family 0, one byte 0xff
        m.truncate(RT_MSGHDR_LEN + 16 + 20);
        m.extend_from_slice(&[5, 0, 0, 0, 0xff, 0, 0, 0]);
        let len = m.len() as u16;
        m[0..2].copy_from_slice(&len.to_ne_bytes());
        let back = decode_route(&m).unwrap();
        assert_eq!(
            back.wgmesh_route().unwrap().destination,
            "10.0.0.0/8".parse::<IpNet>().unwrap()
        );
        let mut foreign = m.clone();
        foreign[8..12].copy_from_slice(&(RTF_UP | RTF_STATIC).to_ne_bytes());
        assert_eq!(decode_route(&foreign).unwrap().wgmesh_route(), None);
    }

    #[test]
    fn rejects_garbage() {
        assert!(decode_route(&[0; 10]).is_err());
        let mut m = encode_route(
            RTM_ADD,
            1,
            "10.0.0.0/8".parse().unwrap(),
            NextHop::Interface(3),
        );
        m[2] = 4;
        assert_eq!(decode_route(&m), Err(RouteMsgError::Version(4)));
        let mut m = encode_route(
            RTM_ADD,
            1,
            "10.0.0.0/8".parse().unwrap(),
            NextHop::Interface(3),
        );
        m[RT_MSGHDR_LEN] = 200; // sockaddr longer than the message
        assert!(decode_route(&m).is_err());
        assert!(decode_event(&[]).is_err());
    }

    #[test]
    fn address_and_link_events() {
        // ifa_msghdr: RTM_NEWADDR on index 4 with RTA_NETMASK|RTA_IFA
        let mut m = vec![0u8; IFA_MSGHDR_LEN];
        m[2] = RTM_VERSION;
        m[3] = RTM_NEWADDR;
        m[4..8].copy_from_slice(&(RTA_NETMASK | RTA_IFA).to_ne_bytes());
        m[12..14].copy_from_slice(&4u16.to_ne_bytes());
        put_sockaddr(&mut m, &SockAddr::Ip("255.255.255.0".parse().unwrap()));
        put_sockaddr(&mut m, &SockAddr::Ip("100.64.0.1".parse().unwrap()));
        let len = m.len() as u16;
        m[0..2].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(
            decode_event(&m).unwrap(),
            Some(NetEvent::AddressAdded {
                index: 4,
                address: "100.64.0.1".parse().unwrap()
            })
        );
        let mut l = vec![0u8; 16];
        l[0..2].copy_from_slice(&16u16.to_ne_bytes());
        l[2] = RTM_VERSION;
        l[3] = RTM_IFINFO;
        l[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
        l[12..14].copy_from_slice(&4u16.to_ne_bytes());
        assert_eq!(
            decode_event(&l).unwrap(),
            Some(NetEvent::LinkChanged {
                index: 4,
                name: None,
                up: true
            })
        );
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes from a routing socket never panic the decoders.
        #[test]
        fn decoders_never_panic(mut b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_route(&b);
            let _ = decode_event(&b);
            if b.len() > 4 {
                // plausible headers reach the sockaddr walk
                let len = b.len() as u16;
                b[0..2].copy_from_slice(&len.to_ne_bytes());
                b[2] = RTM_VERSION;
                let _ = decode_route(&b);
                let _ = decode_event(&b);
            }
        }

        /// Every encoded wgmesh route decodes back to itself.
        #[test]
        fn route_roundtrip(a in any::<[u8; 4]>(), len in 0u8..=32, gw in proptest::option::of(any::<[u8; 4]>()), idx in 1u16..) {
            let dst = IpNet::new(std::net::Ipv4Addr::from(a).into(), len).unwrap().trunc();
            let hop = match gw {
                Some(g) => NextHop::Gateway(std::net::Ipv4Addr::from(g).into()),
                None => NextHop::Interface(idx),
            };
            let m = decode_route(&encode_route(RTM_ADD, 3, dst, hop)).unwrap();
            let r = m.wgmesh_route().unwrap();
            prop_assert_eq!(r.destination, dst);
            prop_assert_eq!(r.gateway, gw.map(|g| std::net::Ipv4Addr::from(g).into()));
        }
    }
}
