//! The UAPI socket client: one connection per request, a bounded reply, an errno check.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::platform::types::{DeviceConfig, DeviceState, PeerDiff};
use crate::platform::uapi::{UapiError, decode, encode};

/// Where wireguard-go puts its sockets (Linux and macOS).
pub const UAPI_DIR: &str = "/var/run/wireguard";

/// Largest `get` reply accepted: ~64 MiB, about 200 000 peers.
const MAX_REPLY: usize = 64 << 20;

/// Talks to one interface's UAPI socket.
#[derive(Clone, Debug)]
pub struct UapiClient {
    path: PathBuf,
}

impl UapiClient {
    /// Client for `/var/run/wireguard/<iface>.sock`.
    pub fn for_interface(iface: &str) -> Self {
        Self::at(Path::new(UAPI_DIR).join(format!("{iface}.sock")))
    }

    /// Client for a socket path.
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, source: std::io::Error) -> UapiError {
        UapiError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Sends one request and reads the reply up to the blank line after `errno=`.
    async fn request(&self, request: &str) -> Result<String, UapiError> {
        let mut stream =
            UnixStream::connect(&self.path)
                .await
                .map_err(|source| UapiError::Connect {
                    path: self.path.display().to_string(),
                    source,
                })?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| self.io_err(e))?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut chunk).await.map_err(|e| self.io_err(e))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_REPLY {
                return Err(UapiError::TooLarge(MAX_REPLY));
            }
            if reply_complete(&buf) {
                break;
            }
        }
        String::from_utf8(buf).map_err(|_| UapiError::Malformed {
            line: String::new(),
            reason: "reply is not UTF-8",
        })
    }

    /// Sends a `set=1` request; checks `errno=0`.
    pub async fn set(&self, request: &str) -> Result<(), UapiError> {
        let reply = self.request(request).await?;
        match decode::parse_errno(&reply)? {
            0 => Ok(()),
            e => Err(UapiError::Errno(e)),
        }
    }

    /// Applies a diff in one request; returns the number of writes (0 or 1).
    pub async fn apply(&self, diff: &PeerDiff) -> Result<usize, UapiError> {
        match encode::encode_diff(diff) {
            None => Ok(0),
            Some(req) => self.set(&req).await.map(|()| 1),
        }
    }

    /// Sets private key, listen port, fwmark.
    pub async fn configure(&self, config: &DeviceConfig) -> Result<(), UapiError> {
        self.set(&encode::encode_device(config)).await
    }

    /// Reads the whole device.
    pub async fn get(&self) -> Result<DeviceState, UapiError> {
        let reply = self.request("get=1\n\n").await?;
        decode::decode_get(&reply)
    }

    /// True when something answers on the socket.
    pub async fn is_alive(&self) -> bool {
        UnixStream::connect(&self.path).await.is_ok()
    }
}

/// A reply ends with "errno=N\n\n".
fn reply_complete(buf: &[u8]) -> bool {
    if !buf.ends_with(b"\n\n") {
        return false;
    }
    let body = &buf[..buf.len() - 2];
    let last_line_start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    body[last_line_start..].starts_with(b"errno=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_reply_end() {
        assert!(reply_complete(b"errno=0\n\n"));
        assert!(reply_complete(b"listen_port=1\nerrno=0\n\n"));
        assert!(!reply_complete(b"listen_port=1\n\n"));
        assert!(!reply_complete(b"errno=0\n"));
    }
}
