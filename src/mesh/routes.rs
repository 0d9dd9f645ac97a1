//! Route acceptance: which networks a peer advertises this node installs. By default every
//! advertised network except the default routes, the mesh subnets themselves and networks
//! overlapping this node's own interface networks; an option accepts only a given list, or
//! nothing. A network inside (or equal to) the mesh subnets or a local network is refused
//! whatever the option: it would take this node's own traffic away from it. A wider network
//! (up to a default route) is accepted only when the operator lists it.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// What the operator chose to accept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoutePolicy {
    /// Every advertised network except default routes (and the always-refused overlaps).
    #[default]
    AcceptAll,
    /// Only networks inside one of these (a default route only if listed as such).
    AcceptListed(Vec<IpNet>),
    /// No advertised network.
    AcceptNone,
}

/// The policy with what it needs to know about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAcceptance {
    pub policy: RoutePolicy,
    pub mesh_ipv4: Ipv4Net,
    pub mesh_ipv6: Ipv6Net,
    /// The networks of this node's own interfaces (LANs it is on), read by the daemon.
    pub local_networks: Vec<IpNet>,
}

/// Whether two networks share any address (one contains the other).
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(x), IpNet::V4(y)) => x.contains(&y.network()) || y.contains(&x.network()),
        (IpNet::V6(x), IpNet::V6(y)) => x.contains(&y.network()) || y.contains(&x.network()),
        _ => false,
    }
}

impl RouteAcceptance {
    /// Whether an advertised `net` is installed.
    pub fn accepts(&self, net: &IpNet) -> bool {
        let net = net.trunc();
        let mesh = [IpNet::V4(self.mesh_ipv4), IpNet::V6(self.mesh_ipv6)];
        let mut own = mesh.iter().chain(&self.local_networks);
        if own.clone().any(|o| o.contains(&net)) {
            return false;
        }
        match &self.policy {
            RoutePolicy::AcceptAll => net.prefix_len() != 0 && !own.any(|o| overlaps(o, &net)),
            RoutePolicy::AcceptNone => false,
            RoutePolicy::AcceptListed(list) => list.iter().any(|allowed| {
                // A default route is accepted only when listed itself, never by a wider entry.
                allowed.contains(&net) && (net.prefix_len() != 0 || allowed.prefix_len() == 0)
            }),
        }
    }

    /// The accepted subset of `advertised`, in order.
    pub fn filter<'a>(&'a self, advertised: &'a [IpNet]) -> impl Iterator<Item = IpNet> + 'a {
        advertised
            .iter()
            .filter(|n| self.accepts(n))
            .map(IpNet::trunc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn acceptance(policy: RoutePolicy) -> RouteAcceptance {
        RouteAcceptance {
            policy,
            mesh_ipv4: "10.42.0.0/16".parse().unwrap(),
            mesh_ipv6: "fd12:3456:789a:bcde::/64".parse().unwrap(),
            local_networks: vec![n("192.168.1.0/24"), n("2001:db8:1::/64")],
        }
    }

    #[test]
    fn default_policy_table() {
        let a = acceptance(RoutePolicy::AcceptAll);
        let table = [
            ("192.168.10.0/24", true, "a remote LAN"),
            ("172.16.0.0/12", true, "a big private range"),
            ("2001:db8:2::/64", true, "a remote IPv6 LAN"),
            ("0.0.0.0/0", false, "IPv4 default route"),
            ("::/0", false, "IPv6 default route"),
            ("10.42.0.0/16", false, "the mesh subnet"),
            ("10.42.7.0/24", false, "inside the mesh subnet"),
            ("10.0.0.0/8", false, "around the mesh subnet"),
            ("fd12:3456:789a:bcde::/64", false, "the mesh IPv6 prefix"),
            (
                "fd12:3456:789a:bcde:1::/80",
                false,
                "inside the mesh IPv6 prefix",
            ),
            ("192.168.1.0/24", false, "this node's own LAN"),
            ("192.168.1.128/25", false, "inside this node's own LAN"),
            ("192.168.0.0/16", false, "around this node's own LAN"),
            ("2001:db8:1::/48", false, "around this node's own IPv6 LAN"),
            ("192.168.2.0/24", true, "a neighbour of the own LAN"),
        ];
        for (net, expected, why) in table {
            assert_eq!(a.accepts(&n(net)), expected, "{net}: {why}");
        }
    }

    #[test]
    fn listed_policy_accepts_only_listed_networks() {
        let a = acceptance(RoutePolicy::AcceptListed(vec![
            n("192.168.10.0/24"),
            n("172.16.0.0/12"),
        ]));
        let table = [
            ("192.168.10.0/24", true),
            ("192.168.10.0/25", true),
            ("172.20.0.0/16", true),
            ("192.168.11.0/24", false),
            ("0.0.0.0/0", false),
        ];
        for (net, expected) in table {
            assert_eq!(a.accepts(&n(net)), expected, "{net}");
        }
        let with_default = acceptance(RoutePolicy::AcceptListed(vec![n("0.0.0.0/0")]));
        assert!(
            with_default.accepts(&n("0.0.0.0/0")),
            "a listed default route is accepted"
        );
        assert!(with_default.accepts(&n("198.51.100.0/24")));
        assert!(
            !with_default.accepts(&n("10.42.1.0/24")),
            "never inside the mesh"
        );
        assert!(
            !with_default.accepts(&n("10.42.0.0/16")),
            "never the mesh itself"
        );
        assert!(
            !with_default.accepts(&n("192.168.1.0/24")),
            "never the own LAN"
        );
        let wide = acceptance(RoutePolicy::AcceptListed(vec![n("10.0.0.0/8")]));
        assert!(
            wide.accepts(&n("10.0.0.0/8")),
            "a listed network around the mesh is accepted"
        );
    }

    #[test]
    fn none_policy_accepts_nothing() {
        let a = acceptance(RoutePolicy::AcceptNone);
        assert!(!a.accepts(&n("192.168.10.0/24")));
        let routes = [n("192.168.10.0/24"), n("0.0.0.0/0")];
        assert_eq!(a.filter(&routes).count(), 0);
        let all = acceptance(RoutePolicy::AcceptAll);
        assert_eq!(
            all.filter(&routes).collect::<Vec<_>>(),
            vec![n("192.168.10.0/24")]
        );
    }

    #[test]
    fn overlap_is_family_aware() {
        assert!(overlaps(&n("10.0.0.0/8"), &n("10.1.0.0/16")));
        assert!(overlaps(&n("10.1.0.0/16"), &n("10.0.0.0/8")));
        assert!(!overlaps(&n("10.0.0.0/16"), &n("10.1.0.0/16")));
        assert!(!overlaps(&n("0.0.0.0/0"), &n("::/0")));
    }
}
