//! The WireGuard cross-platform userspace API (UAPI, <https://www.wireguard.com/xplatform/>)
//! spoken over `wireguard-go`'s Unix socket `/var/run/wireguard/IFNAME.sock`: pure encoding of
//! a [`PeerDiff`](crate::platform::PeerDiff) into one `set=1` request, pure decoding of a
//! `get=1` reply into a [`DeviceState`](crate::platform::DeviceState), and the socket client.
//! Used by Linux's userspace backend and by macOS.
#![forbid(unsafe_code)]

pub mod client;
pub mod decode;
pub mod encode;

pub use client::UapiClient;

/// Errors of the UAPI layer.
#[derive(Debug, thiserror::Error)]
pub enum UapiError {
    #[error(
        "cannot reach the WireGuard UAPI socket {path}: {source} (is wireguard-go running for \
         this interface?)"
    )]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("UAPI socket {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the WireGuard device refused the configuration (errno={0}); check keys, endpoints and allowed IPs"
    )]
    Errno(i64),
    #[error("malformed UAPI reply line {line:?}: {reason}")]
    Malformed { line: String, reason: &'static str },
    #[error("UAPI reply ended without errno= line")]
    Truncated,
    #[error("UAPI reply larger than {0} bytes")]
    TooLarge(usize),
}
