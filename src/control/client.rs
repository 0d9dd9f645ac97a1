//! The control socket client used by `wgmesh show` and other tools: blocking, with timeouts,
//! one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{MAX_RESPONSE_BYTES, Request, Response};

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no wgmesh daemon is running for this interface (nothing listens on {0})")]
    NotRunning(PathBuf),
    #[error("permission denied on {0}: run as root or as a member of the wgmesh group")]
    Permission(PathBuf),
    #[error("talking to the daemon on {path} failed: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon's answer is not valid: {0}")]
    BadResponse(String),
}

/// Sends one request and reads the response.
pub fn request(path: &Path, req: &Request) -> Result<Response, ClientError> {
    let io = |source: std::io::Error| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(path.to_path_buf())
        }
        std::io::ErrorKind::PermissionDenied => ClientError::Permission(path.to_path_buf()),
        _ => io(e),
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| ClientError::BadResponse(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut buf = Vec::new();
    BufReader::new(stream.take(MAX_RESPONSE_BYTES as u64))
        .read_until(b'\n', &mut buf)
        .map_err(io)?;
    serde_json::from_slice(&buf).map_err(|e| ClientError::BadResponse(e.to_string()))
}
