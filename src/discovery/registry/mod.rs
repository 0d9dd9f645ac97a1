//! Registry discovery's I/O (ring 3, PROTOCOL.md §15): one [`Registry`] trait — publish this
//! node's entry, list everyone's, delete this node's — with two backends, a self-hosted
//! `wgmesh registry serve` server over HTTP(S) ([`http`]) and a GitHub issue ([`github`]),
//! sharing the HTTP client setup of [`client`]. [`RegistryUrl`] parses `--registry`;
//! [`open_entry`] turns a listed entry into a verified record. When to do what is the core's
//! `mesh::registry_schedule`; the daemon's `registry_task` drives both.

pub mod client;
pub mod github;
pub mod http;

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::proto::registry::{Entry, RegistryError, open_record};
use crate::proto::{MeshKeys, NodeRecord, RecordError, RecordVerifier, SignedRecord, WgPublicKey};

/// Where `--registry` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryUrl {
    /// A `wgmesh registry serve` server: `https://host:port` (or `http://`), optionally with
    /// a path prefix.
    Http(String),
    /// `github:OWNER/REPO`.
    GitHub { owner: String, repo: String },
}

/// Why `--registry` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryUrlError {
    #[error(
        "--registry {0:?} is neither https://HOST[:PORT], http://HOST[:PORT] nor github:OWNER/REPO"
    )]
    Scheme(String),
    #[error("--registry {0:?}: expected github:OWNER/REPO (letters, digits, '-', '_', '.')")]
    GitHubName(String),
    #[error("--registry {0:?} has no host: expected e.g. https://registry.example:8443")]
    NoHost(String),
    #[error(
        "--registry {0:?} carries a query, fragment or credentials: give only scheme, host, port and path"
    )]
    Extra(String),
}

fn github_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl RegistryUrl {
    /// Parses one `--registry` value.
    pub fn parse(s: &str) -> Result<Self, RegistryUrlError> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("github:") {
            let (owner, repo) = rest
                .split_once('/')
                .ok_or_else(|| RegistryUrlError::GitHubName(s.into()))?;
            if !github_name_ok(owner) || !github_name_ok(repo) {
                return Err(RegistryUrlError::GitHubName(s.into()));
            }
            return Ok(Self::GitHub {
                owner: owner.into(),
                repo: repo.into(),
            });
        }
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| RegistryUrlError::Scheme(s.into()))?;
        if rest.contains(['?', '#', '@']) {
            return Err(RegistryUrlError::Extra(s.into()));
        }
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            return Err(RegistryUrlError::NoHost(s.into()));
        }
        let url = reqwest::Url::parse(s).map_err(|_| RegistryUrlError::NoHost(s.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(RegistryUrlError::NoHost(s.into()));
        }
        Ok(Self::Http(s.trim_end_matches('/').to_string()))
    }

    /// How `show` and logs name it.
    pub fn label(&self) -> String {
        match self {
            Self::Http(u) => u.clone(),
            Self::GitHub { owner, repo } => format!("github:{owner}/{repo}"),
        }
    }
}

/// Where the GitHub token and a private CA come from (`--registry-token-file`,
/// `--registry-ca`, the systemd credential, the environment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAccess {
    /// `--registry-token-file`.
    pub token_file: Option<PathBuf>,
    /// `--registry-ca`: PEM certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY` (systemd credentials; `github-token` is read from it).
    pub credentials_dir: Option<PathBuf>,
    /// `$GITHUB_TOKEN`.
    pub env_token: Option<String>,
    /// `$WGMESH_GITHUB_API` (default `https://api.github.com`).
    pub github_api: Option<String>,
}

impl RegistryAccess {
    /// The environment's part (the flags are the caller's).
    pub fn from_env(token_file: Option<PathBuf>, ca_file: Option<PathBuf>) -> Self {
        Self {
            token_file,
            ca_file,
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            env_token: std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty()),
            github_api: std::env::var("WGMESH_GITHUB_API")
                .ok()
                .filter(|t| !t.is_empty()),
        }
    }
}

/// Why a registry request failed, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RegistryClientError {
    #[error(
        "cannot reach the registry: {0}; check the address, the network and (https) the server's certificate or --registry-ca"
    )]
    Unreachable(String),
    #[error("the registry refused this node's credentials (401): {0}")]
    Unauthorized(String),
    #[error("the registry forbids this (403): {0}")]
    Forbidden(String),
    #[error("the registry is rate-limiting this node; retrying after {}", retry_after.map(|d| format!("{} s", d.as_secs())).unwrap_or_else(|| "a back-off".into()))]
    RateLimited { retry_after: Option<Duration> },
    #[error(
        "the registry holds a newer entry for this node's slot (409): is this clock behind, or does another process run with this identity?"
    )]
    Conflict,
    #[error("the registry answered {status} to {what}: {body}")]
    Status {
        status: u16,
        what: &'static str,
        body: String,
    },
    #[error("the registry's answer is malformed: {0}; is the URL really a wgmesh registry?")]
    Malformed(String),
    #[error("the registry's answer is larger than {0} bytes: refused")]
    TooLarge(usize),
    #[error(transparent)]
    Entry(#[from] RegistryError),
    #[error(
        "no GitHub token: give --registry-token-file PATH, the systemd credential github-token, or GITHUB_TOKEN"
    )]
    NoToken,
    #[error("cannot read the GitHub token from {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
    #[error("cannot use --registry-ca {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl RegistryClientError {
    /// How long the registry asked this node to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// This node's slot: its key's public half and a delete proof for its latest entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteRequest {
    pub slot: [u8; 32],
    /// `seq ‖ signature` (PROTOCOL.md §15).
    pub proof: [u8; 72],
}

/// A registry backend.
pub trait Registry: Send + Sync {
    /// Files (or replaces) this node's entry in its slot.
    fn publish<'a>(&'a self, entry: &'a Entry) -> BoxFuture<'a, Result<(), RegistryClientError>>;
    /// Lists every entry held (not yet verified; expired ones may be among them).
    fn list(&self) -> BoxFuture<'_, Result<Vec<Entry>, RegistryClientError>>;
    /// Removes this node's entry (Ok when there was none).
    fn delete<'a>(
        &'a self,
        request: &'a DeleteRequest,
    ) -> BoxFuture<'a, Result<(), RegistryClientError>>;
}

/// Builds the backend for `url`.
pub fn connect(
    url: &RegistryUrl,
    keys: &MeshKeys,
    access: &RegistryAccess,
) -> Result<Box<dyn Registry>, RegistryClientError> {
    let http = client::build(access.ca_file.as_deref())?;
    Ok(match url {
        RegistryUrl::Http(base) => Box::new(http::HttpRegistry::new(http, base, keys)),
        RegistryUrl::GitHub { owner, repo } => Box::new(github::GitHubRegistry::new(
            http,
            access.github_api.as_deref().unwrap_or(github::DEFAULT_API),
            owner,
            repo,
            github::token(access)?,
            keys.registry_id(),
        )),
    })
}

/// Why a listed entry was not used.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error(transparent)]
    Entry(#[from] RegistryError),
    #[error("the record in the registry entry does not verify: {0}")]
    Record(#[from] RecordError),
    #[error("the registry entry has expired")]
    Expired,
}

/// A listed entry checked and opened: slot signature under this mesh's registry id, not
/// expired at `now_ms`, sealed under the control key, and a record that verifies in this
/// mesh (network, signature by its own node key, newer than `held_sequence`).
pub fn open_entry(
    keys: &MeshKeys,
    entry: &Entry,
    now_ms: u64,
    held_sequence: impl FnOnce(&WgPublicKey) -> Option<u64>,
) -> Result<(NodeRecord, SignedRecord), EntryError> {
    entry.verify(&keys.registry_id())?;
    if crate::mesh::registry_schedule::RegistrySchedule::expired(entry.seq, entry.ttl_secs, now_ms)
    {
        return Err(EntryError::Expired);
    }
    let signed = open_record(keys, &entry.sealed)?;
    let claimed = NodeRecord::decode_body(&signed.body)?;
    let held = held_sequence(&claimed.wireguard_public);
    let record = RecordVerifier::new(keys).verify(&signed, held)?;
    Ok((record, signed))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
