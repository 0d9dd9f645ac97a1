//! Publishing this node's new records, directly or with announce privacy (`--privacy`,
//! Dandelion++; policy in `mesh::dandelion`).
//!
//! Directly: the record is shown at once (LAN announces, hellos, replies read the watch
//! channel) and pushed to every active peer with a hello over the tunnel.
//! With privacy: the record goes as a stem to this epoch's relay over the tunnel, and the
//! node keeps showing its previous record until another node shows it holds the new one (it
//! was fluffed somewhere else) or the origin's embargo ends; then it is shown and pushed as
//! above. Without an active peer there is nobody to hide behind: it is published at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::discovery::control_socket::{ControlSocket, unix_now};
use crate::mesh::dandelion::{OriginAction, PrivatePublisher};
use crate::mesh::{PeerStore, short_key};
use crate::proto::SignedRecord;

/// Shows and spreads this node's records (see the module doc).
pub struct RecordPublisher {
    direct: Direct,
    private: Option<(NewRecords, JoinHandle<()>)>,
}

/// New records (sequence, signed) on their way to the origin task.
type NewRecords = mpsc::UnboundedSender<(u64, SignedRecord)>;

/// Shows a record now and pushes it to the active peers.
#[derive(Clone)]
struct Direct {
    record_tx: Arc<watch::Sender<SignedRecord>>,
    store: Arc<PeerStore>,
    exchange: ControlSocket,
}

impl Direct {
    fn publish(&self, signed: SignedRecord) {
        let _ = self.record_tx.send(signed);
        for p in self.store.active(unix_now()) {
            self.exchange.introduce_to(std::net::SocketAddr::new(
                p.record.mesh_ipv4.into(),
                p.record.control_port,
            ));
        }
    }
}

impl RecordPublisher {
    /// Takes over `record_tx` (what the node shows); with `privacy`, starts the origin task.
    pub fn start(
        record_tx: watch::Sender<SignedRecord>,
        privacy: bool,
        store: Arc<PeerStore>,
        exchange: ControlSocket,
    ) -> Self {
        let direct = Direct {
            record_tx: Arc::new(record_tx),
            store,
            exchange,
        };
        let private = privacy.then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tracing::info!("announce privacy on: new records travel a Dandelion++ stem first");
            (tx, tokio::spawn(origin_task(direct.clone(), rx)))
        });
        Self { direct, private }
    }

    /// Publishes this node's new record `signed` (sequence `sequence`).
    pub fn publish(&self, sequence: u64, signed: SignedRecord) {
        match &self.private {
            Some((tx, _)) if tx.send((sequence, signed.clone())).is_ok() => {}
            _ => self.direct.publish(signed),
        }
    }
}

impl Drop for RecordPublisher {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.private {
            task.abort();
        }
    }
}

/// The origin side of Dandelion++: stems each new record, publishes it once seen or at its
/// embargo's end.
async fn origin_task(direct: Direct, mut records: mpsc::UnboundedReceiver<(u64, SignedRecord)>) {
    let mut state = PrivatePublisher::<SignedRecord>::default();
    let mut seen = direct.exchange.own_record_seen();
    loop {
        let wait = state.deadline().map_or(Duration::from_secs(3600), |d| {
            Duration::from_millis(d.0.saturating_sub(unix_now().0))
        });
        tokio::select! {
            next = records.recv() => {
                let Some((sequence, signed)) = next else { return };
                let Some(routes) = direct.exchange.stem_routes() else {
                    direct.publish(signed);
                    continue;
                };
                match state.on_new_record(sequence, signed, &routes, unix_now()) {
                    OriginAction::Stem { to, record } => {
                        tracing::debug!(relay = %short_key(&to), sequence, "new record sent down the stem");
                        if let Err(e) = direct.exchange.send_own_stem(&to, record).await {
                            tracing::debug!(error = %e, "stem not sent; the record is published at its embargo's end");
                        }
                    }
                    OriginAction::Publish(record) => direct.publish(record),
                }
            }
            Ok(()) = seen.changed() => {
                let sequence = *seen.borrow_and_update();
                if let Some(record) = state.on_seen(sequence) {
                    tracing::info!(sequence, "new record fluffed by another node: showing it");
                    direct.publish(record);
                }
            }
            _ = tokio::time::sleep(wait), if state.deadline().is_some() => {
                if let Some(record) = state.expired(unix_now()) {
                    tracing::info!("stem embargo ended: showing the new record");
                    direct.publish(record);
                }
            }
        }
    }
}
