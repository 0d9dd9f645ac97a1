//! The Linux WireGuard device as one type: kernel or userspace, picked at creation from the
//! resolved backend. Everything above the platform sees only [`WireGuardDevice`].
#![forbid(unsafe_code)]

use crate::platform::PlatformError;
use crate::platform::backend::ResolvedBackend;
use crate::platform::linux::kernel_wg::KernelDevice;
use crate::platform::traits::WireGuardDevice;
use crate::platform::types::{ApplyReport, DeviceConfig, DeviceState, PeerDiff};
use crate::platform::userspace::UserspaceDevice;

/// A WireGuard interface on Linux.
pub enum LinuxWireGuard {
    Kernel(KernelDevice),
    Userspace(UserspaceDevice),
}

impl LinuxWireGuard {
    /// Creates (or adopts, for the kernel) the interface `name` with the given backend.
    pub async fn create(name: &str, backend: ResolvedBackend) -> Result<Self, PlatformError> {
        Ok(match backend {
            ResolvedBackend::Kernel => Self::Kernel(KernelDevice::create(name).await?),
            ResolvedBackend::Userspace => Self::Userspace(UserspaceDevice::create(name).await?),
        })
    }

    /// Which backend this device uses.
    pub fn backend(&self) -> ResolvedBackend {
        match self {
            Self::Kernel(_) => ResolvedBackend::Kernel,
            Self::Userspace(_) => ResolvedBackend::Userspace,
        }
    }

    /// Restart counter of wireguard-go for a userspace device (a change means the device
    /// lost its peers and addresses; the next reconcile restores them).
    pub fn userspace_restarts(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            Self::Kernel(_) => None,
            Self::Userspace(u) => Some(u.process().restarts()),
        }
    }

    /// PID of wireguard-go for a userspace device.
    pub fn userspace_pid(&self) -> Option<u32> {
        match self {
            Self::Kernel(_) => None,
            Self::Userspace(u) => u.process().pid(),
        }
    }
}

impl WireGuardDevice for LinuxWireGuard {
    fn name(&self) -> &str {
        match self {
            Self::Kernel(d) => d.name(),
            Self::Userspace(d) => d.name(),
        }
    }

    async fn configure(&self, config: &DeviceConfig) -> Result<(), PlatformError> {
        match self {
            Self::Kernel(d) => d.configure(config).await,
            Self::Userspace(d) => d.configure(config).await,
        }
    }

    async fn apply(&self, diff: &PeerDiff) -> Result<ApplyReport, PlatformError> {
        match self {
            Self::Kernel(d) => d.apply(diff).await,
            Self::Userspace(d) => d.apply(diff).await,
        }
    }

    async fn read(&self) -> Result<DeviceState, PlatformError> {
        match self {
            Self::Kernel(d) => d.read().await,
            Self::Userspace(d) => d.read().await,
        }
    }

    async fn delete(&self) -> Result<(), PlatformError> {
        match self {
            Self::Kernel(d) => d.delete().await,
            Self::Userspace(d) => d.delete().await,
        }
    }
}
