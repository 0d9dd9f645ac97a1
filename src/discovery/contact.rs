//! Outgoing hellos: a hello session per destination (a hello every 100 ms until a reply
//! arrives or 4 s pass — it doubles as a hole punch), anti-entropy or introduction only, single
//! gossip hellos, and the static peers (`--peer HOST:PORT`), resolved and greeted at start and
//! every 30 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::canonical;
use super::control_socket::{ControlSocket, Inner, lock, unix_now};
use super::engine::Local;

/// How long name resolution of a static peer may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Removes a session from the running set when it ends, however it ends.
struct SessionGuard {
    inner: Arc<Inner>,
    dst: SocketAddr,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        lock(&self.inner.sessions).remove(&self.dst);
    }
}

/// Why a static peer gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("cannot resolve peer {peer}: {source}; check the --peer HOST:PORT value and DNS")]
    Lookup {
        peer: String,
        source: std::io::Error,
    },
    #[error("resolving peer {peer} took more than {RESOLVE_TIMEOUT:?}; check DNS")]
    Timeout { peer: String },
    #[error(
        "peer {peer} resolved to no address this node can reach (IPv6 only, and the control socket is IPv4-only)"
    )]
    NoUsableAddress { peer: String },
}

impl ControlSocket {
    /// Starts a hello session to `dst` (other discovery sources call this with addresses they
    /// found): a hello now and every retry interval until `dst` replies or the retry period
    /// ends. When a session to `dst` already runs, it goes round once more at its end (with
    /// the record current then), so a record change is never swallowed. Returns `false` when
    /// the session limit is reached or the socket cannot reach `dst`'s address family. Needs
    /// a tokio runtime.
    pub fn send_hello_to(&self, dst: SocketAddr) -> bool {
        self.start_session(dst, Purpose::AntiEntropy)
    }

    /// Like [`Self::send_hello_to`], but the hellos only introduce this node (its record, a
    /// filter over an empty range: no records either way) — for greeting a peer learned from
    /// someone else, or pushing this node's new record.
    pub fn introduce_to(&self, dst: SocketAddr) -> bool {
        self.start_session(dst, Purpose::Introduction)
    }

    fn start_session(&self, dst: SocketAddr, purpose: Purpose) -> bool {
        let dst = canonical(dst);
        if !self.inner.can_reach(&dst) || *self.inner.shutdown.borrow() {
            return false;
        }
        {
            let mut sessions = lock(&self.inner.sessions);
            if let Some(again) = sessions.get_mut(&dst) {
                // A session runs: it may end on a reply to a hello that carried an older
                // record, so it goes round once more with the current one.
                *again = true;
                return true;
            }
            if sessions.len() >= self.inner.config.max_hello_sessions {
                return false;
            }
            sessions.insert(dst, false);
        }
        let guard = SessionGuard {
            inner: self.inner.clone(),
            dst,
        };
        tokio::spawn(hello_session(
            guard,
            purpose,
            self.inner.shutdown.subscribe(),
        ));
        true
    }

    /// Hello sessions running now.
    pub fn hello_sessions(&self) -> usize {
        lock(&self.inner.sessions).len()
    }

    /// One hello to `dst`, no retry session (gossip over the tunnel: a lost one is repaired
    /// by the next round).
    pub async fn send_hello_once(&self, dst: SocketAddr) {
        send_hello_once(&self.inner, canonical(dst), Purpose::AntiEntropy).await;
    }

    /// What the gossip cadence reads: records the exchange took as new or newer so far, and
    /// received filters that showed this node behind.
    pub fn gossip_news(&self) -> (u64, u64) {
        let engine = lock(&self.inner.engine);
        (engine.learned(), engine.behind())
    }

    /// The peer store the socket feeds.
    pub fn store(&self) -> &std::sync::Arc<crate::mesh::PeerStore> {
        &self.inner.store
    }
}

/// What a hello is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A filter of the next key range: the exchange trades the records either side lacks.
    AntiEntropy,
    /// Only this node's record.
    Introduction,
}

/// Sends one hello to `dst` with a fresh challenge.
async fn send_hello_once(inner: &Inner, dst: SocketAddr, purpose: Purpose) {
    let hello = {
        let record = inner.local_record();
        let local = Local {
            store: &inner.store,
            record: &record,
            own_key: inner.own_key(),
            check: &inner.keys,
        };
        let mut engine = lock(&inner.engine);
        match purpose {
            Purpose::AntiEntropy => engine.hello(&local, dst, unix_now()),
            Purpose::Introduction => engine.introduction(&local, dst, unix_now()),
        }
    };
    inner.send_logged(dst, &hello).await;
}

async fn hello_session(guard: SessionGuard, purpose: Purpose, mut shutdown: watch::Receiver<bool>) {
    let inner = guard.inner.clone();
    let dst = guard.dst;
    let mut started = unix_now();
    let mut deadline = Instant::now() + inner.config.hello_retry_for;
    loop {
        if *shutdown.borrow() {
            return;
        }
        send_hello_once(&inner, dst, purpose).await;
        tokio::select! {
            _ = tokio::time::sleep(inner.config.hello_retry_every) => {}
            _ = shutdown.changed() => return,
        }
        let answered = lock(&inner.engine)
            .exchange()
            .replied_since(dst, started, unix_now());
        if answered || Instant::now() >= deadline {
            let again = lock(&inner.sessions)
                .get_mut(&dst)
                .is_some_and(std::mem::take);
            if again {
                debug!(to = %dst, "asked again during the session: one more round");
                started = unix_now();
                deadline = Instant::now() + inner.config.hello_retry_for;
                continue;
            }
            if answered {
                debug!(to = %dst, "hello answered");
            } else {
                debug!(to = %dst, "no reply to hello within the retry period");
            }
            return;
        }
    }
}

/// The addresses of `peer` (`HOST:PORT`) the socket can use: the first IPv4 and, on a
/// dual-stack socket, the first IPv6.
pub(crate) async fn resolve(
    peer: &str,
    ipv6_socket: bool,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(peer))
        .await
        .map_err(|_| ResolveError::Timeout {
            peer: peer.to_string(),
        })?
        .map_err(|source| ResolveError::Lookup {
            peer: peer.to_string(),
            source,
        })?;
    let all: Vec<SocketAddr> = found.map(canonical).collect();
    let mut out: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| a.is_ipv4())
        .take(1)
        .collect();
    if ipv6_socket {
        out.extend(all.iter().copied().filter(|a| a.is_ipv6()).take(1));
    }
    if out.is_empty() {
        return Err(ResolveError::NoUsableAddress {
            peer: peer.to_string(),
        });
    }
    Ok(out)
}

/// Greets every static peer at start and then every refresh interval.
pub(crate) async fn static_peers_loop(socket: ControlSocket, mut shutdown: watch::Receiver<bool>) {
    let peers = socket.inner.config.static_peers.clone();
    if peers.is_empty() {
        return;
    }
    let ipv6 = socket.local_addr().is_ipv6();
    loop {
        for peer in &peers {
            match resolve(peer, ipv6).await {
                Ok(addrs) => {
                    for addr in addrs {
                        socket.send_hello_to(addr);
                    }
                }
                Err(e) => warn!(static_peer = %peer, error = %e, "static peer not greeted"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(socket.inner.config.refresh_every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_literal_addresses_by_family() {
        let v4 = resolve("127.0.0.1:51821", false).await.unwrap();
        assert_eq!(v4, vec!["127.0.0.1:51821".parse().unwrap()]);
        let v6 = resolve("[::1]:51821", true).await.unwrap();
        assert_eq!(v6, vec!["[::1]:51821".parse().unwrap()]);
        assert!(matches!(
            resolve("[::1]:51821", false).await,
            Err(ResolveError::NoUsableAddress { .. })
        ));
        assert!(resolve("no port here", true).await.is_err());
    }
}
