//! A thin async wrapper around the `mainline` crate's DHT node (BEP 5 + BEP 44). The crate runs
//! its own thread (socket, routing table, queries); this wrapper starts it off the runtime's
//! threads, bounds every call with a timeout so the caller stays responsive, and speaks our
//! types: topics and keys as byte arrays, sealed items as [`MutableItem`]s.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures_util::StreamExt;
use mainline::async_dht::AsyncDht;
use mainline::{Dht, Id, MutableItem};

/// Longest a bootstrap (the first `find_node` of this node's own id) may take.
pub const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest one announce, lookup, store or fetch may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most peers one lookup collects (bounded memory).
pub const MAX_LOOKUP_PEERS: usize = 512;

/// Why a DHT operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DhtError {
    #[error(
        "cannot start the DHT node: {0}; check that UDP sockets can be opened (or pass --no-dht)"
    )]
    Start(String),
    #[error("DHT {what} took longer than {QUERY_TIMEOUT:?}")]
    Timeout { what: &'static str },
    #[error("DHT {what} failed: {message}")]
    Query { what: &'static str, message: String },
}

/// One running DHT node (dropping the last clone stops its thread).
#[derive(Clone, Debug)]
pub struct DhtClient {
    dht: AsyncDht,
}

async fn bounded<T>(
    what: &'static str,
    limit: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, DhtError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| DhtError::Timeout { what })
}

impl DhtClient {
    /// Starts a node (client mode) that bootstraps from `bootstrap` (never the public routers
    /// unless they are in the list).
    pub async fn start(bootstrap: Vec<SocketAddrV4>) -> Result<Self, DhtError> {
        let dht = tokio::task::spawn_blocking(move || Dht::builder().bootstrap(&bootstrap).build())
            .await
            .map_err(|e| DhtError::Start(e.to_string()))?
            .map_err(|e| DhtError::Start(e.to_string()))?;
        Ok(Self {
            dht: dht.as_async(),
        })
    }

    /// Waits for the bootstrap: `true` as soon as the routing table holds a node (the first
    /// answers arrive long before the whole bootstrap query ends), `false` when the query
    /// ended without any.
    pub async fn bootstrapped(&self) -> bool {
        let table_filled = async {
            loop {
                if !self.dht.to_bootstrap().await.is_empty() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let query_done =
            async { self.dht.bootstrapped().await || !self.dht.to_bootstrap().await.is_empty() };
        let either = async {
            tokio::select! {
                ok = table_filled => ok,
                ok = query_done => ok,
            }
        };
        bounded("bootstrap", BOOTSTRAP_TIMEOUT, either)
            .await
            .unwrap_or(false)
    }

    /// The routing table's fresh nodes (what is persisted for the next start).
    pub async fn routing_nodes(&self) -> Vec<SocketAddrV4> {
        bounded("routing table", QUERY_TIMEOUT, self.dht.to_bootstrap())
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// The address the DHT nodes see this node's DHT socket at, once they agree.
    pub async fn public_address(&self) -> Option<SocketAddrV4> {
        bounded("info", QUERY_TIMEOUT, self.dht.info())
            .await
            .ok()?
            .public_address()
    }

    /// Announces `port` under `topic` (BEP 5 `announce_peer`).
    pub async fn announce(&self, topic: [u8; 20], port: u16) -> Result<(), DhtError> {
        let what = "announce";
        bounded(
            what,
            QUERY_TIMEOUT,
            self.dht.announce_peer(Id::from(topic), Some(port)),
        )
        .await?
        .map(|_| ())
        .map_err(|e| DhtError::Query {
            what,
            message: e.to_string(),
        })
    }

    /// The peers announced under `topic` (BEP 5 `get_peers`), deduplicated, bounded.
    pub async fn lookup(&self, topic: [u8; 20]) -> Result<Vec<SocketAddr>, DhtError> {
        let mut stream = self.dht.get_peers(Id::from(topic));
        let mut out: Vec<SocketAddr> = Vec::new();
        let collect = async {
            while let Some(batch) = stream.next().await {
                for p in batch {
                    let p = SocketAddr::V4(p);
                    if out.len() < MAX_LOOKUP_PEERS && !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        };
        bounded("lookup", QUERY_TIMEOUT, collect).await?;
        Ok(out)
    }

    /// Stores a signed mutable item (BEP 44 `put`).
    pub async fn put_item(&self, item: MutableItem) -> Result<usize, DhtError> {
        let what = "item store";
        bounded(what, QUERY_TIMEOUT, self.dht.put_mutable(item, None))
            .await?
            .map(|o| o.stored_at as usize)
            .map_err(|e| DhtError::Query {
                what,
                message: e.to_string(),
            })
    }

    /// The newest item under `key` and `salt` (BEP 44 `get`; signatures checked by the crate).
    pub async fn get_item(
        &self,
        key: &[u8; 32],
        salt: &[u8],
    ) -> Result<Option<MutableItem>, DhtError> {
        bounded(
            "item fetch",
            QUERY_TIMEOUT,
            self.dht.get_mutable_most_recent(key, Some(salt)),
        )
        .await
    }
}
