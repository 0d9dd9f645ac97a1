//! Per-interface IPv4 forwarding over rtnetlink: `RTM_SETLINK` with
//! `IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { IPV4_DEVCONF_FORWARDING = 1 } } }` — the same
//! knob as `/proc/sys/net/ipv4/conf/<iface>/forwarding`, without touching other interfaces
//! or the global switch. IPv4 forwarding is decided by the *input* interface's flag, so
//! enabling it on the mesh interface alone lets a relay forward peer-to-peer traffic (and the
//! nftables chain drops mesh traffic headed anywhere else).
//!
//! IPv6: the kernel accepts no devconf writes over netlink for AF_INET6 (only the token and
//! address-generation mode), and IPv6 forwarding is global
//! (`/proc/sys/net/ipv6/conf/all/forwarding`; the per-interface value only switches
//! host/router behaviour). Relaying IPv6 mesh traffic therefore needs
//! `net.ipv6.conf.all.forwarding=1` set by the administrator; wgmesh does not change it.
#![forbid(unsafe_code)]

use netlink_packet_core::DefaultNla;
use netlink_packet_route::link::{AfSpecInet, AfSpecUnspec, LinkAttribute};
use rtnetlink::LinkUnspec;

use crate::platform::PlatformError;
use crate::platform::linux::rtnl::{RtnlError, RtnlNetwork};

/// IFLA_INET_CONF (include/uapi/linux/if_link.h) with NLA_F_NESTED.
const IFLA_INET_CONF_NESTED: u16 = 1 | 0x8000;
/// IPV4_DEVCONF_FORWARDING (include/uapi/linux/ip.h).
const IPV4_DEVCONF_FORWARDING: u16 = 1;

/// The nested `IFLA_INET_CONF` value setting only `forwarding`: one NLA
/// `{ len = 8, type = IPV4_DEVCONF_FORWARDING, u32 value }` in host byte order.
pub fn devconf_forwarding_nla(on: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(8);
    v.extend_from_slice(&8u16.to_ne_bytes());
    v.extend_from_slice(&IPV4_DEVCONF_FORWARDING.to_ne_bytes());
    v.extend_from_slice(&u32::from(on).to_ne_bytes());
    v
}

impl RtnlNetwork {
    /// Whether IPv4 forwarding is on for `iface`.
    pub async fn ipv4_forwarding(&self, iface: &str) -> Result<bool, PlatformError> {
        let link = self.link_message(iface).await?;
        for a in &link.attributes {
            if let LinkAttribute::AfSpecUnspec(specs) = a {
                for s in specs {
                    if let AfSpecUnspec::Inet(inet) = s {
                        for i in inet {
                            if let AfSpecInet::DevConf(c) = i {
                                return Ok(c.forwarding != 0);
                            }
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Turns IPv4 forwarding on or off for `iface` only.
    pub async fn set_ipv4_forwarding(&self, iface: &str, on: bool) -> Result<(), PlatformError> {
        let index = self.link_index(iface).await?;
        let nla = DefaultNla::new(IFLA_INET_CONF_NESTED, devconf_forwarding_nla(on));
        let msg = LinkUnspec::new_with_index(index)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::Other(nla),
            ])]))
            .build();
        self.handle()
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|source| RtnlError::Netlink {
                what: "set IPv4 forwarding",
                iface: iface.to_string(),
                source,
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nla_layout() {
        let v = devconf_forwarding_nla(true);
        assert_eq!(v.len(), 8);
        assert_eq!(u16::from_ne_bytes([v[0], v[1]]), 8);
        assert_eq!(u16::from_ne_bytes([v[2], v[3]]), 1);
        assert_eq!(u32::from_ne_bytes([v[4], v[5], v[6], v[7]]), 1);
    }
}
