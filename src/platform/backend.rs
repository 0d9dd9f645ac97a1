//! Backend selection: `--backend auto|kernel|userspace`, overridden by the environment
//! variable `WGMESH_BACKEND`. `auto` picks kernel WireGuard when the kernel has it (the
//! `wireguard` generic netlink family exists, or a wireguard link can be created), else
//! userspace `wireguard-go`.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

/// Name of the environment variable that overrides `--backend`.
pub const BACKEND_ENV: &str = "WGMESH_BACKEND";

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    #[default]
    Auto,
    Kernel,
    Userspace,
}

/// What is actually used after `auto` was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolvedBackend {
    Kernel,
    Userspace,
}

/// A backend name that is not `auto`, `kernel` or `userspace`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown WireGuard backend {0:?}: use auto, kernel or userspace (flag --backend or env WGMESH_BACKEND)"
)]
pub struct BackendParseError(pub String);

impl FromStr for BackendChoice {
    type Err = BackendParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "kernel" => Ok(Self::Kernel),
            "userspace" | "wireguard-go" => Ok(Self::Userspace),
            _ => Err(BackendParseError(s.to_string())),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Kernel => "kernel",
            Self::Userspace => "userspace",
        })
    }
}

impl fmt::Display for ResolvedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kernel => "kernel",
            Self::Userspace => "userspace",
        })
    }
}

impl BackendChoice {
    /// The effective choice: the environment value (if set and non-empty) wins over the flag.
    pub fn from_flag_and_env(
        flag: Option<&str>,
        env: Option<&str>,
    ) -> Result<Self, BackendParseError> {
        match (env.filter(|e| !e.trim().is_empty()), flag) {
            (Some(e), _) => e.parse(),
            (None, Some(f)) => f.parse(),
            (None, None) => Ok(Self::Auto),
        }
    }

    /// [`Self::from_flag_and_env`] with the process environment.
    pub fn from_flag_and_process_env(flag: Option<&str>) -> Result<Self, BackendParseError> {
        let env = std::env::var(BACKEND_ENV).ok();
        Self::from_flag_and_env(flag, env.as_deref())
    }

    /// Resolves `auto` given whether kernel WireGuard is available.
    pub fn resolve(self, kernel_available: bool) -> ResolvedBackend {
        match self {
            Self::Kernel => ResolvedBackend::Kernel,
            Self::Userspace => ResolvedBackend::Userspace,
            Self::Auto if kernel_available => ResolvedBackend::Kernel,
            Self::Auto => ResolvedBackend::Userspace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("auto".parse(), Ok(BackendChoice::Auto));
        assert_eq!("Kernel".parse(), Ok(BackendChoice::Kernel));
        assert_eq!(" userspace ".parse(), Ok(BackendChoice::Userspace));
        assert!("boringtun".parse::<BackendChoice>().is_err());
    }

    #[test]
    fn env_overrides_flag() {
        let c = BackendChoice::from_flag_and_env(Some("kernel"), Some("userspace"));
        assert_eq!(c, Ok(BackendChoice::Userspace));
        let c = BackendChoice::from_flag_and_env(Some("kernel"), Some(""));
        assert_eq!(c, Ok(BackendChoice::Kernel));
        assert_eq!(
            BackendChoice::from_flag_and_env(None, None),
            Ok(BackendChoice::Auto)
        );
        assert!(BackendChoice::from_flag_and_env(None, Some("x")).is_err());
    }

    #[test]
    fn auto_prefers_kernel() {
        assert_eq!(BackendChoice::Auto.resolve(true), ResolvedBackend::Kernel);
        assert_eq!(
            BackendChoice::Auto.resolve(false),
            ResolvedBackend::Userspace
        );
        assert_eq!(
            BackendChoice::Kernel.resolve(false),
            ResolvedBackend::Kernel
        );
    }
}
