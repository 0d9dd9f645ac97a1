//! The registry's HTTP(S) edge: accepts connections under the connection caps, runs TLS (when
//! configured) and HTTP/1.1 (hyper) with timeouts, applies the pre-body checks, reads at most
//! [`MAX_BODY_BYTES`] of body, and hands the request to [`Registry::serve`] on a blocking
//! thread (SQLite). A sweep task drops expired entries every [`SWEEP_EVERY`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::handler::{Registry, Request, Response};
use super::limits::{ConnectionCounter, MAX_BODY_BYTES};

/// How often expired entries are dropped.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Time a client has to finish the TLS handshake, to send its headers, and to send its body.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection stays open (keep-alive included); clients reconnect.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Requests handled on blocking threads at once (SQLite is one connection behind a lock:
/// more would only park threads); the others wait for a permit.
pub const MAX_IN_FLIGHT: usize = 16;

/// Unix time in milliseconds.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Serves on `listener` until the future `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    registry: Arc<Registry>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let counter = Arc::new(Mutex::new(ConnectionCounter::default()));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let sweeper = tokio::spawn(sweep_task(registry.clone()));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip();
        let admitted = counter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_open(ip, registry.limits());
        if !admitted {
            tracing::debug!(%peer, "connection refused: connection cap reached");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (registry, tls, counter) = (registry.clone(), tls.clone(), counter.clone());
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let conn = connection(stream, peer, tls, registry, in_flight);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            counter.lock().unwrap_or_else(|e| e.into_inner()).close(ip);
        });
    }
    sweeper.abort();
    tracing::info!("registry server stopped");
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    registry: Arc<Registry>,
    in_flight: Arc<Semaphore>,
) {
    match tls {
        None => http(stream, peer, registry, in_flight).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => http(tls_stream, peer, registry, in_flight).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn http<S>(stream: S, peer: SocketAddr, registry: Arc<Registry>, in_flight: Arc<Semaphore>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let (registry, in_flight) = (registry.clone(), in_flight.clone());
        async move { Ok::<_, Infallible>(request(registry, in_flight, peer.ip(), req).await) }
    });
    let result = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

async fn request(
    registry: Arc<Registry>,
    in_flight: Arc<Semaphore>,
    peer: IpAddr,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    if let Err(r) = registry.admit(&parts.headers, peer, unix_now_ms()) {
        return to_hyper(r);
    }
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return to_hyper(Response {
                status: 413,
                retry_after: None,
                allow: None,
                body: b"request body too large\n".to_vec(),
            });
        }
        Ok(Err(_)) | Err(_) => {
            return to_hyper(Response {
                status: 408,
                retry_after: None,
                allow: None,
                body: b"request body not received\n".to_vec(),
            });
        }
    };
    let method = parts.method.as_str().to_string();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let Ok(permit) = in_flight.acquire_owned().await else {
        return to_hyper(Response {
            status: 500,
            retry_after: None,
            allow: None,
            body: b"server stopping\n".to_vec(),
        });
    };
    let answer = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        registry.serve(
            &Request {
                method: &method,
                path_and_query: &path,
                headers: &parts.headers,
                body: &body,
            },
            unix_now_ms(),
        )
    })
    .await;
    match answer {
        Ok(r) => to_hyper(r),
        Err(e) => {
            tracing::error!("request handler failed: {e}");
            to_hyper(Response {
                status: 500,
                retry_after: None,
                allow: None,
                body: b"internal error\n".to_vec(),
            })
        }
    }
}

fn to_hyper(r: Response) -> hyper::Response<Full<Bytes>> {
    let content_type = if r.is_list() {
        "application/octet-stream"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut builder = hyper::Response::builder()
        .status(r.status)
        .header(http::header::CONTENT_TYPE, content_type);
    if let Some(secs) = r.retry_after {
        builder = builder.header(http::header::RETRY_AFTER, secs);
    }
    if let Some(allow) = r.allow {
        builder = builder.header(http::header::ALLOW, allow);
    }
    builder
        .body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

async fn sweep_task(registry: Arc<Registry>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let registry = registry.clone();
        let now_ms = unix_now_ms();
        let swept = tokio::task::spawn_blocking(move || {
            let clients = registry.forget_idle_clients(now_ms);
            (registry.sweep(now_ms / 1000), clients)
        })
        .await;
        match swept {
            Ok((Ok((entries, pins)), clients)) => {
                if entries > 0 || pins > 0 {
                    tracing::info!(
                        entries,
                        pins,
                        "sweep: dropped expired entries and idle pins"
                    );
                }
                tracing::debug!(clients, "sweep: rate-limited client addresses tracked");
            }
            Ok((Err(e), _)) => tracing::error!("sweep failed: {e}"),
            Err(e) => tracing::error!("sweep task failed: {e}"),
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
