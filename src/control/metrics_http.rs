//! The metrics HTTP endpoint: answers `GET /metrics` with the shared registry
//! ([`crate::metrics::Metrics`]) rendered as text (off by default; loopback unless the operator
//! allows remote).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Serves `GET /metrics` on `listener` until the task is dropped. Each connection gets 2 s and
/// 8 KiB to send its request head.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut head = vec![0u8; 8192];
            let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(2), stream.read(&mut head)).await
            else {
                return;
            };
            let (status, body) = if head[..n].starts_with(b"GET /metrics ") {
                ("200 OK", m.render())
            } else {
                (
                    "404 Not Found",
                    "only /metrics is served here\n".to_string(),
                )
            };
            let response = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics listener.
pub async fn bind_metrics(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn http_endpoint_answers_get_metrics_only() {
        let m = Arc::new(Metrics::new());
        m.inc("wgmesh_reconcile_total", &[]);
        let listener = bind_metrics("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve_metrics(listener, m));
        let fetch = |req: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = fetch("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            ok.starts_with("HTTP/1.0 200 OK") && ok.contains("wgmesh_reconcile_total 1"),
            "{ok}"
        );
        let nf = fetch("GET /secret HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.0 404"));
        task.abort();
    }
}
