//! Relay forwarding on Linux: the nftables table `inet wgmesh-<iface>` written over nfnetlink
//! in one atomic batch (see [`batch`]), plus IPv4 forwarding enabled on the mesh interface
//! only (per-interface devconf over rtnetlink, see
//! [`forwarding`](crate::platform::linux::forwarding)). A reconcile first reads the chain's
//! rules; it writes only when the table or its rules are missing (e.g. after
//! `nft flush ruleset`).
#![forbid(unsafe_code)]

pub mod batch;
pub mod socket;

use crate::platform::PlatformError;
use crate::platform::error::check_interface_name;
use crate::platform::linux::rtnl::RtnlNetwork;
use crate::platform::traits::Firewall;

/// Errors of the nftables layer.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(
        "cannot open a netfilter netlink socket: {0} (is the nf_tables module available and are you root?)"
    )]
    Socket(#[source] std::io::Error),
    #[error("nftables {what} for {table}: kernel said errno {errno} ({hint})")]
    Kernel {
        what: &'static str,
        table: String,
        errno: i32,
        hint: &'static str,
    },
    #[error("nftables {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("nftables: could not decode the kernel's reply: {0}")]
    Decode(String),
    #[error("nftables worker thread failed: {0}")]
    Join(String),
}

/// nftables + per-interface forwarding implementation of [`Firewall`].
#[derive(Clone)]
pub struct NftFirewall {
    net: RtnlNetwork,
}

impl NftFirewall {
    /// Uses `net` for the forwarding switch; nftables sockets are opened per operation in the
    /// caller's network namespace.
    pub fn new(net: RtnlNetwork) -> Self {
        Self { net }
    }

    /// Number of rules in wgmesh's chain for `iface` (`None`: the table is missing).
    pub async fn rule_count(&self, iface: &str) -> Result<Option<usize>, PlatformError> {
        let iface = iface.to_string();
        let n = tokio::task::spawn_blocking(move || socket::count_rules(&iface))
            .await
            .map_err(|e| NftError::Join(e.to_string()))??;
        Ok(n)
    }
}

impl Firewall for NftFirewall {
    async fn ensure_relay(&self, iface: &str) -> Result<bool, PlatformError> {
        check_interface_name(iface)?;
        let mut wrote = false;
        if self.rule_count(iface).await? != Some(2) {
            let name = iface.to_string();
            tokio::task::spawn_blocking(move || {
                socket::send_batch("create relay table", &name, batch::relay_batch)
            })
            .await
            .map_err(|e| NftError::Join(e.to_string()))??;
            wrote = true;
        }
        if !self.net.ipv4_forwarding(iface).await? {
            self.net.set_ipv4_forwarding(iface, true).await?;
            wrote = true;
        }
        Ok(wrote)
    }

    async fn remove_relay(&self, iface: &str) -> Result<(), PlatformError> {
        check_interface_name(iface)?;
        let name = iface.to_string();
        tokio::task::spawn_blocking(move || {
            socket::send_batch("remove relay table", &name, batch::remove_batch)
        })
        .await
        .map_err(|e| NftError::Join(e.to_string()))??;
        match self.net.set_ipv4_forwarding(iface, false).await {
            Ok(())
            | Err(PlatformError::Rtnl(crate::platform::linux::rtnl::RtnlError::NoSuchInterface(
                _,
            ))) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
