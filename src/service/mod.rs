//! `wgmesh install-service` / `uninstall-service` for installs without a package: which files
//! an instance `wgmesh@IFACE` needs (`plan`), writing them and recording what was written in a
//! root-only manifest so uninstall undoes exactly that (`apply`), and the one place outside the
//! platform where wgmesh runs system tools, `systemctl` and `systemd-sysusers` (`system_tools`).
//! Every path is taken relative to a root directory so the planning is tested without root.

pub mod apply;
pub mod plan;
pub mod system_tools;

use std::path::{Path, PathBuf};

pub use apply::{InstallReport, UninstallReport, install, uninstall};
pub use plan::{ConfigOptions, InstallRequest, SecretInput, plan_install};
pub use system_tools::{SystemTools, Systemd};

/// Errors of install-service and uninstall-service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} must run as root (it writes /etc and runs systemctl); try: sudo wgmesh {0} ...")]
    NotRoot(&'static str),
    #[error("invalid interface name {0:?}: {1}")]
    Interface(String, String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid mesh secret ({message}); create one with `wgmesh secret new`")]
    BadSecret { path: PathBuf, message: String },
    #[error("{0}")]
    BadConfig(String),
    #[error(
        "{0} exists with other contents and was not written by install-service; \
         move it away or pass --force to replace it"
    )]
    Foreign(PathBuf),
    #[error("the install manifest {path} is unreadable ({message}); remove the files by hand")]
    Manifest { path: PathBuf, message: String },
    #[error("`{command}` failed: {message}")]
    Tool { command: String, message: String },
}

/// Where a path of the live system lies under `root` (`/` in real use).
pub fn under(root: &Path, abs: &Path) -> PathBuf {
    root.join(abs.strip_prefix("/").unwrap_or(abs))
}

#[cfg(test)]
mod tests;
