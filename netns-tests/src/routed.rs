//! A star of routed sites: one router namespace `rt` with IPv4 forwarding and, per site `n`, a
//! /24 `172.B.n.0/24` (router `.1`, host `.10`). The block lies outside 10/8, where meshes derive
//! their subnets, so lab traffic is never routed into a tunnel. No NAT and no shared LAN: the
//! relay, relay-quality and registry tests build on it; [`RoutedSites::cut`] makes the router
//! drop everything between two sites.

use std::net::{IpAddr, Ipv4Addr};

use crate::lab::{Lab, sh};

/// The router and the address block of its sites.
pub struct RoutedSites {
    pub router: String,
    block: u8,
}

impl RoutedSites {
    /// The router namespace, forwarding IPv4; sites will be `172.block.n.0/24`.
    pub fn new(lab: &Lab, block: u8) -> Self {
        let router = lab.add_ns("rt");
        sh(
            "ip",
            &[
                "netns",
                "exec",
                &router,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
            ],
        );
        Self { router, block }
    }

    /// Site `n`'s host address (`172.B.n.10`).
    pub fn host_ip(&self, n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(172, self.block, n, 10))
    }

    /// Site `n`'s host address with its prefix, and the router's (`…/24`).
    pub fn site_addrs(&self, n: u8) -> (String, String) {
        let b = self.block;
        (format!("172.{b}.{n}.10/24"), format!("172.{b}.{n}.1/24"))
    }

    /// A namespace `name` linked to the router as site `n` (its `eth0` ↔ the router's `to<n>`),
    /// default route through the router.
    pub fn site(&self, lab: &Lab, name: &str, n: u8) -> String {
        let ns = lab.add_ns(name);
        let (host, gw) = self.site_addrs(n);
        lab.link(&ns, "eth0", &host, &self.router, &format!("to{n}"), &gw);
        self.route_via_router(&ns, n);
        ns
    }

    /// The default route of site `n`'s host namespace `ns` (for callers that wire the uplink
    /// themselves).
    pub fn route_via_router(&self, ns: &str, n: u8) {
        let gw = format!("172.{}.{n}.1", self.block);
        sh("ip", &["-n", ns, "route", "add", "default", "via", &gw]);
    }

    /// The router drops everything between sites `a` and `b`, both ways (table `inet cut`).
    pub fn cut(&self, a: u8, b: u8) {
        let r = self.router.as_str();
        sh(
            "ip",
            &["netns", "exec", r, "nft", "add", "table", "inet", "cut"],
        );
        sh(
            "ip",
            &[
                "netns",
                "exec",
                r,
                "nft",
                "add",
                "chain",
                "inet",
                "cut",
                "block",
                "{ type filter hook forward priority 0; }",
            ],
        );
        let (ha, hb) = (self.host_ip(a).to_string(), self.host_ip(b).to_string());
        for (from, to) in [(&ha, &hb), (&hb, &ha)] {
            sh(
                "ip",
                &[
                    "netns", "exec", r, "nft", "add", "rule", "inet", "cut", "block", "ip",
                    "saddr", from, "ip", "daddr", to, "drop",
                ],
            );
        }
    }

    /// Lifts [`RoutedSites::cut`].
    pub fn uncut(&self) {
        sh(
            "ip",
            &[
                "netns",
                "exec",
                &self.router,
                "nft",
                "delete",
                "table",
                "inet",
                "cut",
            ],
        );
    }
}
