//! The platform's error type: what went wrong, and what the user can do about it.
#![forbid(unsafe_code)]

use std::io;

/// Errors of the platform layer.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("invalid interface name {0:?}: use 1-15 characters from [A-Za-z0-9_=+.-]")]
    InvalidInterfaceName(String),
    #[error("interface {0} does not exist (create the WireGuard device first)")]
    NoSuchInterface(String),
    #[error(
        "the kernel has no WireGuard support (no `wireguard` generic netlink family and no \
         wireguard link could be created): load it with `modprobe wireguard`, or use \
         `--backend userspace` (needs the wireguard-go package)"
    )]
    KernelWireGuardUnavailable,
    #[error("backend {0} is not available on this operating system; use --backend auto")]
    BackendUnsupported(&'static str),
    #[error(transparent)]
    Backend(#[from] crate::platform::backend::BackendParseError),
    #[error(transparent)]
    Uapi(#[from] crate::platform::uapi::UapiError),
    #[cfg(unix)]
    #[error(transparent)]
    Userspace(#[from] crate::platform::wireguard_go::WireguardGoError),
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Kernel(#[from] crate::platform::linux::kernel_wg::KernelWgError),
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Rtnl(#[from] crate::platform::linux::rtnl::RtnlError),
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Nft(#[from] crate::platform::linux::nft::NftError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl PlatformError {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Checks a Linux/macOS interface name (IFNAMSIZ 16 including the NUL byte).
pub fn check_interface_name(name: &str) -> Result<(), PlatformError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_=+.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PlatformError::InvalidInterfaceName(name.to_string()))
    }
}
