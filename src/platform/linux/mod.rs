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

use crate::platform::PlatformError;
use crate::platform::backend::BackendChoice;

/// Resolves the backend choice (`--backend`, already overridden by `WGMESH_BACKEND`) on this
/// kernel and creates or adopts the WireGuard interface `name` with it.
pub async fn open_device(
    name: &str,
    choice: BackendChoice,
    net: &RtnlNetwork,
) -> Result<LinuxWireGuard, PlatformError> {
    let backend = detect::resolve_backend(choice, net).await?;
    tracing::info!(iface = name, %backend, "WireGuard backend");
    LinuxWireGuard::create(name, backend).await
}
pub use nft::NftFirewall;
pub use rtnl::RtnlNetwork;
