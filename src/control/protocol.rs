//! The local control protocol (docs/CONTROL.md): one JSON request per connection on the Unix
//! socket `<runtime-dir>/<iface>.sock`, answered by one JSON response, each a single line.
//! Requests are at most 64 KiB.

use serde::{Deserialize, Serialize};

use super::report::ShowReport;

/// Largest request line accepted.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest response line a client reads.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// The interface and peer report (`wgmesh show`).
    Show,
    /// Liveness check.
    Ping,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    Show(Box<ShowReport>),
    Pong { version: String },
    Error { message: String },
}

/// The socket path of an interface.
pub fn socket_path(runtime_dir: &std::path::Path, interface: &str) -> std::path::PathBuf {
    runtime_dir.join(format!("{interface}.sock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_tagged_json() {
        assert_eq!(
            serde_json::to_string(&Request::Show).unwrap(),
            r#"{"request":"show"}"#
        );
        let r: Request = serde_json::from_str(r#"{"request":"ping"}"#).unwrap();
        assert_eq!(r, Request::Ping);
        let e = serde_json::to_string(&Response::Error {
            message: "x".into(),
        })
        .unwrap();
        assert_eq!(e, r#"{"response":"error","message":"x"}"#);
        assert!(serde_json::from_str::<Request>(r#"{"request":"rm -rf"}"#).is_err());
    }
}
