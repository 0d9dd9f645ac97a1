//! Is kernel WireGuard available? Asks the generic netlink controller for the `wireguard`
//! family (with `neli`); if it is missing (module not loaded yet), tries to create and delete
//! a throw-away wireguard link, which makes the kernel auto-load the module if it has one.
#![forbid(unsafe_code)]

use neli::consts::socket::NlFamily;
use neli::router::synchronous::NlRouter;
use neli::utils::Groups;

use crate::platform::PlatformError;
use crate::platform::backend::{BackendChoice, ResolvedBackend};
use crate::platform::linux::rtnl::RtnlNetwork;

/// Whether the `wireguard` generic netlink family is registered (blocking; call from a
/// blocking context).
pub fn genl_family_present() -> bool {
    match NlRouter::connect(NlFamily::Generic, None, Groups::empty()) {
        Ok((router, _)) => router.resolve_genl_family("wireguard").is_ok(),
        Err(_) => false,
    }
}

/// Whether kernel WireGuard can be used: the genl family exists, or a wireguard link can be
/// created (which loads the module).
pub async fn kernel_wireguard_available(net: &RtnlNetwork) -> bool {
    let present = tokio::task::spawn_blocking(genl_family_present)
        .await
        .unwrap_or(false);
    if present {
        return true;
    }
    let probe = format!("wgmprobe{}", std::process::id() % 100_000);
    match net.create_wireguard_link(&probe).await {
        Ok(()) => {
            let _ = net.delete_link(&probe).await;
            tokio::task::spawn_blocking(genl_family_present)
                .await
                .unwrap_or(false)
        }
        Err(_) => false,
    }
}

/// Resolves `--backend` (with `WGMESH_BACKEND` already applied) for this machine. An explicit
/// `kernel` without kernel support is an error that says what to do.
pub async fn resolve_backend(
    choice: BackendChoice,
    net: &RtnlNetwork,
) -> Result<ResolvedBackend, PlatformError> {
    match choice {
        BackendChoice::Userspace => Ok(ResolvedBackend::Userspace),
        BackendChoice::Kernel => {
            if kernel_wireguard_available(net).await {
                Ok(ResolvedBackend::Kernel)
            } else {
                Err(PlatformError::KernelWireGuardUnavailable)
            }
        }
        BackendChoice::Auto => Ok(choice.resolve(kernel_wireguard_available(net).await)),
    }
}
