//! The userspace WireGuard device: a supervised `wireguard-go` configured through its UAPI
//! socket with the same diff code as every other backend.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};

use crate::platform::PlatformError;
use crate::platform::error::check_interface_name;
use crate::platform::traits::WireGuardDevice;
use crate::platform::types::{ApplyReport, DeviceConfig, DeviceState, PeerDiff};
use crate::platform::uapi::UapiClient;
use crate::platform::wireguard_go::WireguardGo;

/// A wireguard-go interface.
pub struct UserspaceDevice {
    name: String,
    uapi: UapiClient,
    process: WireguardGo,
    config: Arc<Mutex<Option<DeviceConfig>>>,
}

impl UserspaceDevice {
    /// Starts wireguard-go for `name` (the tun device appears in the caller's network
    /// namespace) and waits for its UAPI socket.
    pub async fn create(name: &str) -> Result<Self, PlatformError> {
        check_interface_name(name)?;
        let config = Arc::new(Mutex::new(None));
        let process = WireguardGo::start(name, Arc::clone(&config)).await?;
        Ok(Self {
            name: name.to_string(),
            uapi: UapiClient::for_interface(name),
            process,
            config,
        })
    }

    /// The supervised process (PID, restart counter).
    pub fn process(&self) -> &WireguardGo {
        &self.process
    }
}

impl WireGuardDevice for UserspaceDevice {
    fn name(&self) -> &str {
        &self.name
    }

    async fn configure(&self, config: &DeviceConfig) -> Result<(), PlatformError> {
        self.uapi.configure(config).await?;
        if let Ok(mut c) = self.config.lock() {
            *c = Some(config.clone());
        }
        Ok(())
    }

    async fn apply(&self, diff: &PeerDiff) -> Result<ApplyReport, PlatformError> {
        let writes = self.uapi.apply(diff).await?;
        Ok(ApplyReport {
            writes,
            peers_changed: diff.len(),
        })
    }

    async fn read(&self) -> Result<DeviceState, PlatformError> {
        Ok(self.uapi.get().await?)
    }

    async fn delete(&self) -> Result<(), PlatformError> {
        self.process.stop().await;
        Ok(())
    }
}
