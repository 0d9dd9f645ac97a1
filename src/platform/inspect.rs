//! Reading a WireGuard interface that this process did not create (for `wgmesh show` when no
//! daemon runs): through wireguard-go's UAPI socket when one exists for the interface, else
//! through the kernel's generic netlink. Never creates or changes anything.
#![forbid(unsafe_code)]

use crate::platform::PlatformError;
use crate::platform::types::DeviceState;
use crate::platform::uapi::client::UapiClient;

/// Reads the interface `iface` as it is.
pub async fn read_existing(iface: &str) -> Result<DeviceState, PlatformError> {
    let uapi = UapiClient::for_interface(iface);
    if uapi.path().exists() {
        return Ok(uapi.get().await?);
    }
    read_kernel(iface).await
}

#[cfg(target_os = "linux")]
async fn read_kernel(iface: &str) -> Result<DeviceState, PlatformError> {
    use wireguard_control::{Backend, Device, InterfaceName};
    let name: InterfaceName = iface
        .parse()
        .map_err(|_| PlatformError::InvalidInterfaceName(iface.to_string()))?;
    let device = tokio::task::spawn_blocking(move || Device::get(&name, Backend::Kernel))
        .await
        .map_err(|e| {
            PlatformError::io(
                "read the WireGuard device",
                std::io::Error::other(e.to_string()),
            )
        })?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PlatformError::NoSuchInterface(iface.to_string()),
            _ => PlatformError::io(format!("read WireGuard interface {iface}"), e),
        })?;
    Ok(crate::platform::linux::kernel_wg::state_from(device))
}

#[cfg(not(target_os = "linux"))]
async fn read_kernel(iface: &str) -> Result<DeviceState, PlatformError> {
    Err(PlatformError::NoSuchInterface(iface.to_string()))
}
