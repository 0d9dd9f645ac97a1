//! The control socket server: binds `<runtime-dir>/<iface>.sock` (mode 0660), refuses to start
//! when another daemon answers on it, replaces a stale socket file, and answers one JSON
//! request per connection through a [`ControlHandler`]. Slow or oversized clients are cut off.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::protocol::{MAX_REQUEST_BYTES, Request, Response};

/// A boxed response future.
pub type ResponseFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + 'a>>;

/// Answers control requests (the daemon implements it over its state).
pub trait ControlHandler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> ResponseFuture<'_>;
}

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "another wgmesh daemon already answers on {0}: stop it first (systemctl stop wgmesh@IFACE)"
    )]
    InUse(PathBuf),
    #[error("cannot create the control socket {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A bound control socket; the file is removed when this is dropped.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds the socket, creating the runtime directory (0755) when missing.
    pub async fn bind(path: &Path) -> Result<Self, ControlError> {
        let bind_err = |source| ControlError::Bind {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(bind_err)?;
        }
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(ControlError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(bind_err)?;
        }
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves forever (until the task is dropped).
    pub async fn serve(self, handler: Arc<dyn ControlHandler>) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let h = handler.clone();
                    tokio::spawn(async move {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), answer(stream, h)).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn answer(stream: UnixStream, handler: Arc<dyn ControlHandler>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = BufReader::new(read).take(MAX_REQUEST_BYTES as u64 + 1);
    reader.read_until(b'\n', &mut line).await?;
    let response = if line.len() > MAX_REQUEST_BYTES {
        Response::Error {
            message: format!("request larger than {MAX_REQUEST_BYTES} bytes"),
        }
    } else {
        match serde_json::from_slice::<Request>(&line) {
            Ok(req) => handler.handle(req).await,
            Err(e) => Response::Error {
                message: format!("bad request: {e}"),
            },
        }
    };
    let mut out = serde_json::to_vec(&response).unwrap_or_default();
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client::{ClientError, request};

    struct Echo;
    impl ControlHandler for Echo {
        fn handle(&self, request: Request) -> ResponseFuture<'_> {
            Box::pin(async move {
                match request {
                    Request::Ping => Response::Pong {
                        version: "test".into(),
                    },
                    Request::Show => Response::Error {
                        message: "no show here".into(),
                    },
                }
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_requests_refuses_a_second_daemon_and_replaces_stale_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("wgt0.sock");
        // A stale socket file (nobody listening) is replaced.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let server = ControlServer::bind(&path).await.unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        let task = tokio::spawn(server.serve(Arc::new(Echo)));
        let p = path.clone();
        let pong = tokio::task::spawn_blocking(move || request(&p, &Request::Ping))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            pong,
            Response::Pong {
                version: "test".into()
            }
        );
        assert!(matches!(
            ControlServer::bind(&path).await,
            Err(ControlError::InUse(_))
        ));
        // A garbage request gets an error response, not a hang.
        let p = path.clone();
        let raw = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            s.write_all(b"{not json}\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        assert!(raw.contains("bad request"), "{raw}");
        task.abort();
        let _ = task.await;
        assert!(
            !path.exists(),
            "the socket file is removed when the server stops"
        );
        let p = path.clone();
        let gone = tokio::task::spawn_blocking(move || request(&p, &Request::Ping))
            .await
            .unwrap();
        assert!(matches!(gone, Err(ClientError::NotRunning(_))));
    }
}
