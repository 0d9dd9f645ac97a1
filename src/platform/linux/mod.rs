//! Linux backends: kernel WireGuard over generic netlink, userspace `wireguard-go` over UAPI
//! (shared with macOS: [`crate::platform::userspace`]),
//! links/addresses/routes over rtnetlink, relay forwarding as an nftables table over
//! nfnetlink.
#![forbid(unsafe_code)]

pub mod detect;
pub mod device;
pub mod forwarding;
pub mod kernel_wg;
pub mod nft;
pub mod rtnl;

pub use device::LinuxWireGuard;
pub use nft::NftFirewall;
pub use rtnl::RtnlNetwork;
