//! [`Network`] for macOS over PF_ROUTE and interface ioctls. wgmesh's routes carry
//! `RTF_PROTO3`; the ones this process installed are remembered and verified with RTM_GET
//! (routes on a utun vanish with the interface when wireguard-go exits). Change events come
//! from a routing socket read on a blocking thread.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use ipnet::IpNet;
use socket2::Domain;
use tokio::sync::mpsc;

use super::addr_req::{
    SIOCAIFADDR, SIOCAIFADDR_IN6, SIOCDIFADDR, SIOCDIFADDR_IN6, ifaliasreq, ifreq_addr,
    in6_aliasreq, in6_ifreq_addr,
};
use super::route_msg::{
    NextHop, RTM_ADD, RTM_CHANGE, RTM_DELETE, RTM_GET, decode_event, encode_route,
};
use super::sys;
use crate::platform::PlatformError;
use crate::platform::traits::Network;
use crate::platform::types::{NetEvent, Route, RouteSyncReport};

/// The macOS implementation of [`Network`].
#[derive(Default)]
pub struct MacosNetwork {
    seq: AtomicI32,
    routes: Mutex<BTreeSet<Route>>,
    addresses: Mutex<BTreeSet<IpNet>>,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> PlatformError + '_ {
    move |e| PlatformError::io(what, e)
}

fn ifreq_with(iface: &str, value: &[u8]) -> [u8; 32] {
    let mut r = [0u8; 32];
    for (d, s) in r.iter_mut().zip(iface.bytes().take(15)) {
        *d = s;
    }
    r[16..16 + value.len()].copy_from_slice(value);
    r
}

impl MacosNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    fn next_seq(&self) -> i32 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn route_op(&self, kind: u8, iface: &str, route: &Route) -> Result<(), PlatformError> {
        let index = sys::if_index(iface).map_err(io("interface index"))?;
        let hop = match route.gateway {
            Some(g) => NextHop::Gateway(g),
            None => NextHop::Interface(u16::try_from(index).unwrap_or(0)),
        };
        let seq = self.next_seq();
        let msg = encode_route(kind, seq, route.destination, hop);
        let mut sock = sys::route_socket().map_err(io("routing socket"))?;
        sys::route_request(&mut sock, &msg, seq)
            .map(|_| ())
            .map_err(io("routing request"))
    }

    fn route_present(&self, iface: &str, route: &Route) -> bool {
        self.route_op(RTM_GET, iface, route).is_ok()
    }
}

impl Network for MacosNetwork {
    async fn set_link(&self, iface: &str, up: bool, mtu: Option<u32>) -> Result<(), PlatformError> {
        if let Some(m) = mtu {
            let mut r = ifreq_with(iface, &m.to_ne_bytes());
            sys::ioctl(Domain::IPV4, sys::SIOCSIFMTU, &mut r).map_err(io("set MTU"))?;
        }
        let mut r = ifreq_with(iface, &[]);
        sys::ioctl(Domain::IPV4, sys::SIOCGIFFLAGS, &mut r).map_err(io("get flags"))?;
        let flags = i16::from_ne_bytes([r[16], r[17]]);
        let want = if up { flags | 1 } else { flags & !1 };
        if want != flags {
            let mut r = ifreq_with(iface, &want.to_ne_bytes());
            sys::ioctl(Domain::IPV4, sys::SIOCSIFFLAGS, &mut r).map_err(io("set flags"))?;
        }
        Ok(())
    }

    async fn replace_addresses(
        &self,
        iface: &str,
        addresses: &[IpNet],
    ) -> Result<usize, PlatformError> {
        let want: BTreeSet<IpNet> = addresses.iter().copied().collect();
        let have = self.addresses.lock().map(|a| a.clone()).unwrap_or_default();
        let mut writes = 0;
        for a in have.difference(&want) {
            match a.addr() {
                IpAddr::V4(v4) => sys::ioctl(Domain::IPV4, SIOCDIFADDR, &mut ifreq_addr(iface, v4)),
                IpAddr::V6(v6) => sys::ioctl(
                    Domain::IPV6,
                    SIOCDIFADDR_IN6,
                    &mut in6_ifreq_addr(iface, v6),
                ),
            }
            .map_err(io("delete address"))?;
            writes += 1;
        }
        for a in want.difference(&have) {
            match a.addr() {
                IpAddr::V4(v4) => sys::ioctl(
                    Domain::IPV4,
                    SIOCAIFADDR,
                    &mut ifaliasreq(iface, v4, a.prefix_len()),
                ),
                IpAddr::V6(v6) => sys::ioctl(
                    Domain::IPV6,
                    SIOCAIFADDR_IN6,
                    &mut in6_aliasreq(iface, v6, a.prefix_len()),
                ),
            }
            .map_err(io("add address"))?;
            writes += 1;
        }
        if let Ok(mut a) = self.addresses.lock() {
            *a = want;
        }
        Ok(writes)
    }

    async fn addresses(&self, _iface: &str) -> Result<Vec<IpNet>, PlatformError> {
        Ok(self
            .addresses
            .lock()
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn replace_route(&self, iface: &str, route: &Route) -> Result<(), PlatformError> {
        if self.route_op(RTM_CHANGE, iface, route).is_err() {
            self.route_op(RTM_ADD, iface, route)?;
        }
        if let Ok(mut r) = self.routes.lock() {
            r.insert(route.clone());
        }
        Ok(())
    }

    async fn delete_route(&self, iface: &str, route: &Route) -> Result<(), PlatformError> {
        let _ = self.route_op(RTM_DELETE, iface, route);
        if let Ok(mut r) = self.routes.lock() {
            r.remove(route);
        }
        Ok(())
    }

    async fn routes(&self, iface: &str) -> Result<Vec<Route>, PlatformError> {
        let known = self.routes.lock().map(|r| r.clone()).unwrap_or_default();
        Ok(known
            .into_iter()
            .filter(|r| self.route_present(iface, r))
            .collect())
    }

    async fn sync_routes(
        &self,
        iface: &str,
        desired: &[Route],
    ) -> Result<RouteSyncReport, PlatformError> {
        let have: BTreeSet<Route> = self.routes(iface).await?.into_iter().collect();
        let want: BTreeSet<Route> = desired.iter().cloned().collect();
        let mut report = RouteSyncReport::default();
        for r in have.difference(&want) {
            self.delete_route(iface, r).await?;
            report.deleted += 1;
        }
        for r in want.difference(&have) {
            self.replace_route(iface, r).await?;
            report.replaced += 1;
        }
        Ok(report)
    }

    fn subscribe(&self) -> Result<mpsc::UnboundedReceiver<NetEvent>, PlatformError> {
        let mut sock = sys::route_socket().map_err(io("routing socket"))?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.read(&mut buf) {
                if let Ok(Some(ev)) = decode_event(&buf[..n]) {
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}
