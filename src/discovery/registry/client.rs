//! The HTTP client both registry backends share: reqwest over rustls (ring), the system's
//! roots plus `--registry-ca`, short timeouts, no redirects, and bodies read with a hard
//! size limit before they are held in memory.

use std::path::Path;
use std::time::Duration;

use super::RegistryClientError;

/// Connecting may take this long …
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// … and a whole request this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest `--registry-ca` file read.
const MAX_CA_BYTES: u64 = 256 * 1024;

/// The `User-Agent` of every request (GitHub requires one).
pub const USER_AGENT: &str = concat!("wgmesh/", env!("CARGO_PKG_VERSION"));

/// A client trusting the system's roots and, if given, the certificates in `ca_file` (PEM).
pub fn build(ca_file: Option<&Path>) -> Result<reqwest::Client, RegistryClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT);
    if let Some(path) = ca_file {
        let ca_err = |reason: String| RegistryClientError::Ca {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| ca_err(e.to_string()))?;
        if meta.len() > MAX_CA_BYTES {
            return Err(ca_err(
                "larger than 256 KiB: is it a PEM certificate?".into(),
            ));
        }
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ca_err(format!("not a PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(ca_err("holds no PEM certificate".into()));
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    builder
        .build()
        .map_err(|e| RegistryClientError::Client(e.to_string()))
}

/// A transport error in words (with its causes: reqwest's own message is terse).
pub fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Reads a response body of at most `max` bytes (refused as soon as it grows past).
pub async fn read_limited(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, RegistryClientError> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(RegistryClientError::TooLarge(max));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| RegistryClientError::Unreachable(describe(&e)))?
    {
        if out.len() + chunk.len() > max {
            return Err(RegistryClientError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The start of an error body, printable, for messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// `retry-after` in seconds, if present and sane (at most a day).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(86_400)))
}
