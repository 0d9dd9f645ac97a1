//! The system tools install-service runs: `systemctl` and `systemd-sysusers`. This is the one
//! file outside `platform::wireguard_go` that starts a process (netns-tests/run-all.sh checks),
//! and the trait lets tests record the calls instead.

use std::process::Command;

use super::ServiceError;

/// The programs install-service may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Systemctl,
    Sysusers,
}

impl Tool {
    fn program(self) -> &'static str {
        match self {
            Tool::Systemctl => "systemctl",
            Tool::Sysusers => "systemd-sysusers",
        }
    }
}

/// Runs a system tool; `Ok(true)` when it exited 0, `Ok(false)` for a non-zero exit the caller
/// may accept (`check = false`).
pub trait SystemTools {
    fn run(&mut self, tool: Tool, args: &[&str], check: bool) -> Result<bool, ServiceError>;
}

/// The real tools, found on PATH.
#[derive(Debug, Default)]
pub struct Systemd;

impl SystemTools for Systemd {
    fn run(&mut self, tool: Tool, args: &[&str], check: bool) -> Result<bool, ServiceError> {
        let shown = format!("{} {}", tool.program(), args.join(" "));
        let out = Command::new(tool.program())
            .args(args)
            .output()
            .map_err(|e| ServiceError::Tool {
                command: shown.clone(),
                message: format!("{e} (is systemd installed and running?)"),
            })?;
        if out.status.success() || !check {
            return Ok(out.status.success());
        }
        Err(ServiceError::Tool {
            command: shown,
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}
