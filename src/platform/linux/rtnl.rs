//! Links, addresses and routes over rtnetlink (`rtnetlink` + `netlink-packet-route`):
//! link up/down and MTU, addresses replaced idempotently, routes marked with
//! [`WGMESH_ROUTE_PROTOCOL`] so only wgmesh's own routes are ever replaced or deleted, and a
//! subscription to link/address/route change events. Every write is skipped when the kernel
//! already has the wanted state.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures_util::StreamExt;
use futures_util::stream::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkUnspec, LinkWireguard, MulticastGroup};
use tokio::sync::mpsc;

use crate::platform::PlatformError;
use crate::platform::traits::Network;
use crate::platform::types::{NetEvent, Route, RouteSyncReport, WGMESH_ROUTE_PROTOCOL};

const ENODEV: i32 = 19;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EADDRNOTAVAIL: i32 = 99;
const EEXIST: i32 = 17;

/// Errors of the rtnetlink layer.
#[derive(Debug, thiserror::Error)]
pub enum RtnlError {
    #[error("cannot open a route netlink socket: {0} (are you on Linux with CAP_NET_ADMIN?)")]
    Socket(#[source] std::io::Error),
    #[error("no network interface named {0}")]
    NoSuchInterface(String),
    #[error("rtnetlink: {what} on {iface}: {source} (are you root with CAP_NET_ADMIN?)")]
    Netlink {
        what: &'static str,
        iface: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("route {0}: the gateway's address family differs from the destination's")]
    MixedFamilies(String),
    #[error(
        "a route to {destination} with the same metric exists that wgmesh did not install \
         (see `ip route show {destination}`); wgmesh leaves it alone: remove it if the mesh \
         should carry this prefix on {iface}"
    )]
    ForeignRoute { destination: String, iface: String },
}

/// Negative errno of a netlink error, as a positive number.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn nl(what: &'static str, iface: &str) -> impl FnOnce(rtnetlink::Error) -> RtnlError {
    let iface = iface.to_string();
    move |source| {
        if errno(&source) == Some(ENODEV) {
            RtnlError::NoSuchInterface(iface)
        } else {
            RtnlError::Netlink {
                what,
                iface,
                source,
            }
        }
    }
}

/// The rtnetlink implementation of [`Network`]. Create it inside the tokio runtime (it spawns
/// its connection task) and in the network namespace it should manage.
#[derive(Clone)]
pub struct RtnlNetwork {
    handle: Handle,
}

impl RtnlNetwork {
    /// Opens a route netlink connection in the caller's network namespace.
    pub fn new() -> Result<Self, PlatformError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(RtnlError::Socket)?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    async fn link(&self, iface: &str) -> Result<LinkMessage, RtnlError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(iface.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err(RtnlError::NoSuchInterface(iface.to_string())),
            Err(e) => Err(nl("get link", iface)(e)),
        }
    }

    /// The rtnetlink handle (for sibling modules).
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The link message of `iface`.
    pub(crate) async fn link_message(&self, iface: &str) -> Result<LinkMessage, RtnlError> {
        self.link(iface).await
    }

    /// Interface index of `iface`.
    pub async fn link_index(&self, iface: &str) -> Result<u32, PlatformError> {
        Ok(self.link(iface).await?.header.index)
    }

    /// Creates a kernel wireguard link (used to probe for kernel support).
    pub async fn create_wireguard_link(&self, iface: &str) -> Result<(), PlatformError> {
        let msg = LinkWireguard::new(iface).build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(nl("create wireguard link", iface))?;
        Ok(())
    }

    /// Deletes a link by name.
    pub async fn delete_link(&self, iface: &str) -> Result<(), PlatformError> {
        let index = self.link_index(iface).await?;
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(nl("delete link", iface))?;
        Ok(())
    }

    async fn address_messages(&self, iface: &str) -> Result<Vec<AddressMessage>, RtnlError> {
        let index = self.link(iface).await?.header.index;
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect::<Vec<_>>()
            .await
            .map_err(nl("list addresses", iface))
            .map(|v| v.into_iter().filter(|m| m.header.index == index).collect())
    }

    /// Whether the route occupying `route`'s slot (main table, same destination and metric,
    /// any interface) is one of wgmesh's.
    async fn occupant_is_ours(&self, route: &Route) -> Result<bool, RtnlError> {
        let dst = route.destination.trunc();
        let mut q = RouteMessage::default();
        q.header.address_family = match dst {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(q)
            .execute()
            .try_collect()
            .await
            .map_err(nl("list routes", "*"))?;
        let default_metric = if dst.addr().is_ipv6() { 1024 } else { 0 };
        let want_metric = route.metric.unwrap_or(default_metric);
        Ok(msgs.iter().any(|m| {
            let metric = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Priority(p) => Some(*p),
                    _ => None,
                })
                .unwrap_or(0);
            m.header.table == RouteHeader::RT_TABLE_MAIN
                && route_dst(m) == Some(dst)
                && metric == want_metric
                && u8::from(m.header.protocol) == WGMESH_ROUTE_PROTOCOL
        }))
    }

    async fn route_messages(&self, iface: &str) -> Result<Vec<(RouteMessage, Route)>, RtnlError> {
        let index = self.link(iface).await?.header.index;
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut q = RouteMessage::default();
            q.header.address_family = family;
            let msgs: Vec<RouteMessage> = self
                .handle
                .route()
                .get(q)
                .execute()
                .try_collect()
                .await
                .map_err(nl("list routes", iface))?;
            for m in msgs {
                if let Some(r) = wgmesh_route(&m, index) {
                    out.push((m, r));
                }
            }
        }
        Ok(out)
    }
}

/// The interface address (prefix) an address message describes, skipping IPv6 link-local.
pub fn address_of(m: &AddressMessage) -> Option<IpNet> {
    let addr = m
        .attributes
        .iter()
        .find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        })
        .or_else(|| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })?;
    if let IpAddr::V6(v6) = addr {
        if v6.segments()[0] & 0xffc0 == 0xfe80 {
            return None;
        }
    }
    IpNet::new(addr, m.header.prefix_len).ok()
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The wgmesh route a message describes: main table, our protocol number, out `index`.
pub fn wgmesh_route(m: &RouteMessage, index: u32) -> Option<Route> {
    if u8::from(m.header.protocol) != WGMESH_ROUTE_PROTOCOL
        || m.header.table != RouteHeader::RT_TABLE_MAIN
    {
        return None;
    }
    let mut oif = None;
    let mut dst = None;
    let mut gateway = None;
    let mut metric = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => gateway = ip_of(g),
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    if oif != Some(index) {
        return None;
    }
    let dst = match (dst, m.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (None, _) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    };
    let destination = IpNet::new(dst, m.header.destination_prefix_length).ok()?;
    // The kernel reports IPv6 routes with the default metric 1024; treat it as "none" so a
    // route added without a metric compares equal.
    let metric = match (metric, destination) {
        (Some(1024), IpNet::V6(_)) => None,
        (m, _) => m,
    };
    Some(Route {
        destination,
        gateway,
        metric,
    })
}

/// The RTM_NEWROUTE/DELROUTE message for a wgmesh route out of interface `index`.
pub fn route_message(route: &Route, index: u32) -> Result<RouteMessage, RtnlError> {
    let dst = route.destination.trunc();
    let mut m = RouteMessage::default();
    m.header.address_family = match dst {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    };
    m.header.destination_prefix_length = dst.prefix_len();
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::from(WGMESH_ROUTE_PROTOCOL);
    m.header.kind = RouteType::Unicast;
    m.header.scope = if route.gateway.is_some() {
        RouteScope::Universe
    } else {
        RouteScope::Link
    };
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
    if let Some(gw) = route.gateway {
        if gw.is_ipv4() != dst.addr().is_ipv4() {
            return Err(RtnlError::MixedFamilies(format!("{dst}")));
        }
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        // The mesh interface is point-to-multipoint: the gateway is reachable on it whether
        // or not an address route covers it yet.
        m.header.flags = RouteFlags::Onlink;
    }
    m.attributes.push(RouteAttribute::Oif(index));
    if let Some(p) = route.metric {
        m.attributes.push(RouteAttribute::Priority(p));
    }
    Ok(m)
}

impl Network for RtnlNetwork {
    async fn set_link(&self, iface: &str, up: bool, mtu: Option<u32>) -> Result<(), PlatformError> {
        let link = self.link(iface).await?;
        let is_up = link.header.flags.contains(LinkFlags::Up);
        let cur_mtu = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        });
        let mtu_change = mtu.filter(|m| Some(*m) != cur_mtu);
        if is_up == up && mtu_change.is_none() {
            return Ok(());
        }
        let mut b = LinkUnspec::new_with_index(link.header.index);
        b = if up { b.up() } else { b.down() };
        if let Some(m) = mtu_change {
            b = b.mtu(m);
        }
        self.handle
            .link()
            .set(b.build())
            .execute()
            .await
            .map_err(nl("set link", iface))?;
        Ok(())
    }

    async fn replace_addresses(
        &self,
        iface: &str,
        addresses: &[IpNet],
    ) -> Result<usize, PlatformError> {
        let index = self.link(iface).await?.header.index;
        let current = self.address_messages(iface).await?;
        let want: BTreeSet<IpNet> = addresses.iter().copied().collect();
        let mut have = BTreeSet::new();
        let mut writes = 0;
        for m in current {
            let Some(a) = address_of(&m) else { continue };
            if want.contains(&a) {
                have.insert(a);
                continue;
            }
            match self.handle.address().del(m).execute().await {
                Ok(()) => writes += 1,
                Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => {}
                Err(e) => return Err(nl("delete address", iface)(e).into()),
            }
        }
        for a in want.difference(&have) {
            self.handle
                .address()
                .add(index, a.addr(), a.prefix_len())
                .replace()
                .execute()
                .await
                .map_err(nl("add address", iface))?;
            writes += 1;
        }
        Ok(writes)
    }

    async fn addresses(&self, iface: &str) -> Result<Vec<IpNet>, PlatformError> {
        let msgs = self.address_messages(iface).await?;
        Ok(msgs.iter().filter_map(address_of).collect())
    }

    async fn replace_route(&self, iface: &str, route: &Route) -> Result<(), PlatformError> {
        let index = self.link(iface).await?.header.index;
        let m = route_message(route, index)?;
        // Add exclusively first: NLM_F_REPLACE would overwrite a route with the same
        // destination and metric whoever installed it.
        match self.handle.route().add(m.clone()).execute().await {
            Ok(()) => return Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(nl("add route", iface)(e).into()),
        }
        if !self.occupant_is_ours(route).await? {
            return Err(RtnlError::ForeignRoute {
                destination: route.destination.trunc().to_string(),
                iface: iface.to_string(),
            }
            .into());
        }
        self.handle
            .route()
            .add(m)
            .replace()
            .execute()
            .await
            .map_err(nl("replace route", iface))?;
        Ok(())
    }

    async fn delete_route(&self, iface: &str, route: &Route) -> Result<(), PlatformError> {
        let index = self.link(iface).await?.header.index;
        let m = route_message(route, index)?;
        match self.handle.route().del(m).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(ESRCH | ENOENT)) => Ok(()),
            Err(e) => Err(nl("delete route", iface)(e).into()),
        }
    }

    async fn routes(&self, iface: &str) -> Result<Vec<Route>, PlatformError> {
        Ok(self
            .route_messages(iface)
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    async fn sync_routes(
        &self,
        iface: &str,
        desired: &[Route],
    ) -> Result<RouteSyncReport, PlatformError> {
        let current = self.route_messages(iface).await?;
        let want: BTreeSet<&Route> = desired.iter().collect();
        let have: BTreeSet<&Route> = current.iter().map(|(_, r)| r).collect();
        let mut report = RouteSyncReport::default();
        for (m, r) in &current {
            if !want.contains(r) {
                match self.handle.route().del(m.clone()).execute().await {
                    Ok(()) => report.deleted += 1,
                    Err(e) if matches!(errno(&e), Some(ESRCH | ENOENT)) => {}
                    Err(e) => return Err(nl("delete route", iface)(e).into()),
                }
            }
        }
        for r in want {
            if !have.contains(r) {
                match self.replace_route(iface, r).await {
                    Ok(()) => report.replaced += 1,
                    Err(PlatformError::Rtnl(e @ RtnlError::ForeignRoute { .. })) => {
                        tracing::warn!(error = %e, "route not installed");
                        report.skipped_foreign += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(report)
    }

    fn subscribe(&self) -> Result<mpsc::UnboundedReceiver<NetEvent>, PlatformError> {
        let groups = [
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
        ];
        let (conn, _handle, mut messages) =
            rtnetlink::new_multicast_connection(&groups).map_err(RtnlError::Socket)?;
        tokio::spawn(conn);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((msg, _)) = messages.next().await {
                let NetlinkPayload::InnerMessage(inner) = msg.payload else {
                    continue;
                };
                if let Some(ev) = event_of(inner) {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}

/// Destination of a route message (a missing RTA_DST is the default route of its family).
fn route_dst(m: &RouteMessage) -> Option<IpNet> {
    let len = m.header.destination_prefix_length;
    let explicit = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => ip_of(d),
        _ => None,
    });
    let addr = match (explicit, m.header.address_family) {
        (Some(a), _) => a,
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    IpNet::new(addr, len).ok()
}

/// Maps a multicast rtnetlink message to an event.
pub fn event_of(msg: RouteNetlinkMessage) -> Option<NetEvent> {
    Some(match msg {
        RouteNetlinkMessage::NewLink(l) => NetEvent::LinkChanged {
            index: l.header.index,
            name: l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            }),
            up: l.header.flags.contains(LinkFlags::Up),
        },
        RouteNetlinkMessage::DelLink(l) => NetEvent::LinkRemoved {
            index: l.header.index,
        },
        RouteNetlinkMessage::NewAddress(a) => NetEvent::AddressAdded {
            index: a.header.index,
            address: address_of(&a)?.addr(),
        },
        RouteNetlinkMessage::DelAddress(a) => NetEvent::AddressRemoved {
            index: a.header.index,
            address: address_of(&a)?.addr(),
        },
        RouteNetlinkMessage::NewRoute(r) => NetEvent::RouteChanged {
            destination: route_dst(&r),
        },
        RouteNetlinkMessage::DelRoute(r) => NetEvent::RouteRemoved {
            destination: route_dst(&r),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_message_roundtrip() {
        let r = Route {
            destination: "10.9.0.7/24".parse().unwrap(),
            gateway: Some("100.64.0.2".parse().unwrap()),
            metric: Some(50),
        };
        let m = route_message(&r, 7).unwrap();
        assert_eq!(u8::from(m.header.protocol), 0x77);
        assert_eq!(m.header.destination_prefix_length, 24);
        let back = wgmesh_route(&m, 7).unwrap();
        assert_eq!(back.destination, "10.9.0.0/24".parse::<IpNet>().unwrap());
        assert_eq!(back.gateway, r.gateway);
        assert_eq!(back.metric, Some(50));
        assert!(wgmesh_route(&m, 8).is_none(), "other interface");
    }

    #[test]
    fn foreign_routes_are_ignored() {
        let r = Route {
            destination: "10.9.0.0/24".parse().unwrap(),
            gateway: None,
            metric: None,
        };
        let mut m = route_message(&r, 7).unwrap();
        m.header.protocol = RouteProtocol::Boot;
        assert!(wgmesh_route(&m, 7).is_none());
    }

    #[test]
    fn mixed_families_rejected() {
        let r = Route {
            destination: "10.9.0.0/24".parse().unwrap(),
            gateway: Some("fd00::1".parse().unwrap()),
            metric: None,
        };
        assert!(route_message(&r, 1).is_err());
    }
}
