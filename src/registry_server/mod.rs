//! `wgmesh registry serve`: a self-hosted registry (PROTOCOL.md §15) storing sealed entries in
//! SQLite. An edge of its own: it imports only `proto`, and nothing else imports it but the CLI.
//!
//! - [`handler`]: request handling without sockets (auth, pins, entries, every status code);
//! - [`store`]: the SQLite database (WAL, absolute expiry, sweep);
//! - [`limits`]: per-client token buckets, body size, connection caps;
//! - [`tls`]: rustls (ring) from PEM files;
//! - [`server`]: the hyper accept loop and the sweep task.

pub mod handler;
pub mod limits;
pub mod server;
pub mod store;
pub mod tls;

use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use handler::{MeshPolicy, Registry};
use limits::Limits;
use store::{Store, StoreError};
use tls::TlsError;

/// Everything `wgmesh registry serve` was told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Certificate chain and key (PEM); plain HTTP without.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Operator pins: registry id and membership verifier.
    pub meshes: Vec<([u8; 8], [u8; 32])>,
    pub pinned_only: bool,
    pub limits: Limits,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot create the data directory {path}: {error} (choose a --data directory this user may write)"
    )]
    DataDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(
        "cannot listen on {addr}: the address is in use (another registry server? choose another --listen port)"
    )]
    AddrInUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("--pinned-only needs at least one --mesh RID:VERIFIER (it would refuse every mesh)")]
    PinnedOnlyWithoutMesh,
}

/// Why a `--mesh` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--mesh {0:?} is not RID:VERIFIER (16 hex digits, a colon, 64 hex digits): print it with `wgmesh registry verifier` on a member"
)]
pub struct MeshParseError(pub String);

/// Parses `RID:VERIFIER` (hex).
pub fn parse_mesh(text: &str) -> Result<([u8; 8], [u8; 32]), MeshParseError> {
    let err = || MeshParseError(text.to_string());
    let (rid_hex, verifier_hex) = text.trim().split_once(':').ok_or_else(err)?;
    let mut rid = [0u8; 8];
    let mut verifier = [0u8; 32];
    hex::decode_to_slice(rid_hex, &mut rid).map_err(|_| err())?;
    hex::decode_to_slice(verifier_hex, &mut verifier).map_err(|_| err())?;
    Ok((rid, verifier))
}

/// Formats `RID:VERIFIER` the way `--mesh` takes it.
pub fn format_mesh(rid: &[u8; 8], verifier: &[u8; 32]) -> String {
    format!("{}:{}", hex::encode(rid), hex::encode(verifier))
}

/// A server ready to run: store open, TLS loaded, socket bound.
pub struct Prepared {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    registry: Arc<Registry>,
}

impl Prepared {
    /// The address it listens on (the port chosen when `--listen` said 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        server::serve(self.listener, self.tls, self.registry, shutdown).await;
    }
}

/// Checks the configuration, opens the data directory and binds (inside a tokio runtime).
pub async fn prepare(config: ServeConfig) -> Result<Prepared, ServeError> {
    if config.pinned_only && config.meshes.is_empty() {
        return Err(ServeError::PinnedOnlyWithoutMesh);
    }
    let tls = match &config.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            cert, key,
        )?)),
        None => None,
    };
    // Created 0700: the database holds nothing secret, but nobody else needs it either.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .map_err(|error| ServeError::DataDir {
            path: config.data_dir.clone(),
            error,
        })?;
    let store = Store::open(&config.data_dir)?;
    let reader = Store::open(&config.data_dir)?;
    let registry = Registry::new(
        store,
        config.limits.clone(),
        MeshPolicy {
            pinned_only: config.pinned_only,
        },
    )
    .with_reader(reader);
    let now_secs = server::unix_now_ms() / 1000;
    registry.pin_operator_meshes(&config.meshes, now_secs)?;
    registry.sweep(now_secs)?;
    let listener =
        tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::AddrInUse => ServeError::AddrInUse {
                    addr: config.listen,
                },
                _ => ServeError::Listen {
                    addr: config.listen,
                    error,
                },
            })?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        data = %config.data_dir.display(),
        pinned_meshes = config.meshes.len(),
        pinned_only = config.pinned_only,
        rate_per_sec = config.limits.rate_per_sec,
        burst = config.limits.burst,
        "registry server listening"
    );
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            "serving plain HTTP on {addr}: put it behind a TLS proxy or give --tls-cert/--tls-key (the entries are sealed, but request paths show registry ids)"
        );
    }
    Ok(Prepared {
        listener,
        tls,
        registry: Arc::new(registry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_flag_round_trips_and_refuses_garbage() {
        let rid = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let v = [9u8; 32];
        assert_eq!(parse_mesh(&format_mesh(&rid, &v)), Ok((rid, v)));
        for bad in [
            "",
            "0102030405060708",
            "01020304050607:aa",
            "0102030405060708:zz",
            &format!("0102030405060708:{}", "a".repeat(63)),
        ] {
            assert!(parse_mesh(bad).is_err(), "{bad}");
        }
    }
}
