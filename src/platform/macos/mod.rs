//! macOS backend (untested on a real Mac; this project's CI builds Linux only): WireGuard is
//! `wireguard-go` on a `utunN` interface, configured through the shared UAPI code
//! ([`crate::platform::userspace::UserspaceDevice`]); addresses are set with the
//! `SIOCAIFADDR`/`SIOCAIFADDR_IN6` ioctls ([`addr_req`]) and routes are PF_ROUTE messages
//! ([`route_msg`]), both encoded by pure, Linux-unit-tested code. Only [`sys`] touches the
//! operating system. Unsafe code is denied here and forbidden in every file but [`sys`].
#![deny(unsafe_code)]

pub mod addr_req;
/// Compiled on every Unix so Linux CI type-checks it; used on macOS only.
#[cfg(unix)]
pub mod network;
pub mod route_msg;
#[cfg(unix)]
pub mod sys;
