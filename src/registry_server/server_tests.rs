//! The HTTP layer on loopback (plain HTTP, raw requests): what is refused before the handler
//! runs (a chunked body over the limit, a declared length over it, a connection over the cap)
//! and that a request reaches the handler.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::{ServeConfig, limits::Limits, prepare};

async fn start(
    limits: Limits,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        data_dir: dir.path().join("data"),
        tls: None,
        meshes: vec![],
        pinned_only: false,
        limits,
    };
    let prepared = prepare(config).await.unwrap_or_else(|e| panic!("{e}"));
    let addr = prepared
        .local_addr()
        .unwrap_or_else(|| panic!("no address"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(prepared.run(async move {
        let _ = rx.await;
    }));
    (addr, tx, dir)
}

/// Sends raw bytes, returns the status line's code (0 when the server closed first).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = s.write_all(request).await;
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn limits_apply_before_the_handler() {
    let (addr, stop, dir) = start(Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    })
    .await;
    let path = "/v1/meshes/0102030405060708/entries";
    // unsigned: the handler answers 401
    let get = format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(raw(addr, get.as_bytes()).await, 401);
    // declared too large: 413 before the body is read
    let put = format!(
        "PUT {path}/{} HTTP/1.1\r\nhost: x\r\ncontent-length: 1254\r\n\r\n",
        "ab".repeat(32)
    );
    assert_eq!(raw(addr, put.as_bytes()).await, 413);
    // chunked, no length: cut at 1253 bytes, 413
    let mut chunked = format!(
        "PUT {path}/{} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
        "ab".repeat(32)
    )
    .into_bytes();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'x'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw(addr, &chunked).await, 413);
    // two idle connections from this address: a third is closed at once
    let _a = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _b = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        raw(addr, get.as_bytes()).await,
        0,
        "over --max-connections-per-ip"
    );
    drop((_a, _b));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        raw(addr, get.as_bytes()).await,
        401,
        "served again once they close"
    );
    let _ = stop.send(());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("data")).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o700), "the data directory is created 0700");
}
