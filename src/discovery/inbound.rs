//! The control socket's receive path, a thin shell around the sans-IO `Engine`: rate limit per
//! source before anything is decrypted, open the datagram, hand stems, relay notices and
//! rendezvous messages to their modules, let the engine decide the exchange (verify, learn,
//! answer, push — see `engine`), then carry out its effects: send, schedule the follow-up
//! hello, forward probe replies, publish the observed address, tell the stem embargo that this
//! node's record was seen, count events and drops by reason. [`verify`] and [`learn`] serve
//! the modules that take records outside the exchange (stems).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, trace};

use crate::mesh::{
    DiscoveryMethod, Millis, PeerUpdate, StoreError, UpdateOutcome, WgKey, short_key,
};
use crate::proto::messages::Message;
use crate::proto::{NodeRecord, RecordVerifier, SignedRecord};

use super::canonical;
use super::control_socket::ControlSocket;
use super::control_socket::{EVENTS_METRIC, Inner, ProbeReplyEvent, lock};
use super::engine::{Effect, Lack, Local, REASON_OWN_RECORD};
use super::rendezvous::RendezvousEvent;

/// How long after a budget-cut answer this node checks whether a follow-up hello is needed.
pub const FOLLOW_UP_AFTER: Duration = Duration::from_millis(200);

/// Reason label of datagrams over the per-source rate.
pub const REASON_RATE_LIMIT: &str = "ratelimit";

/// Handles one received datagram from `src` at `now`.
pub(crate) async fn handle_datagram(
    inner: &Arc<Inner>,
    datagram: &[u8],
    src: SocketAddr,
    now: Millis,
) {
    let src = canonical(src);
    if !lock(&inner.limiter).allow(src.ip(), now) {
        inner.reject(REASON_RATE_LIMIT);
        return;
    }
    let message = match Message::open(&inner.keys, datagram) {
        Ok(m) => m,
        Err(e) => {
            trace!(from = %src, reason = e.reason(), "control datagram dropped");
            inner.reject(e.reason());
            return;
        }
    };
    super::stem::note_tunnel(inner, src, now);
    let message = match message {
        Message::RelayNotice(notice) => {
            super::relay_notice::on_relay_notice(inner, src, notice, now).await;
            return;
        }
        Message::Stem(stem) => {
            super::stem::on_stem(inner, src, stem, now).await;
            return;
        }
        Message::RendezvousOffer(offer) => {
            super::rendezvous::on_rendezvous(inner, src, |from| RendezvousEvent::Offer {
                from,
                offer,
                received_at: now,
            });
            return;
        }
        Message::RendezvousStart(start) => {
            super::rendezvous::on_rendezvous(inner, src, |from| RendezvousEvent::Start {
                from,
                start,
                received_at: now,
            });
            return;
        }
        exchange => exchange,
    };
    let effects = {
        let record = inner.local_record();
        let local = Local {
            store: &inner.store,
            record: &record,
            own_key: inner.own_key(),
            check: &inner.keys,
        };
        lock(&inner.engine).handle(&local, src, message, datagram.len(), now)
    };
    apply(inner, effects, now).await;
}

/// Carries out what the engine decided.
pub(crate) async fn apply(inner: &Arc<Inner>, effects: Vec<Effect>, now: Millis) {
    for effect in effects {
        match effect {
            Effect::Send { to, message } => inner.send_logged(to, &message).await,
            Effect::FollowUp {
                to,
                responder,
                lack,
            } => {
                tokio::spawn(follow_up(inner.clone(), to, lack, responder));
            }
            Effect::ProbeReply { from, id } => forward_probe_reply(inner, from, id, now),
            Effect::Observed(observed) => {
                inner
                    .observed
                    .send_if_modified(|o| o.replace(observed) != Some(observed));
            }
            Effect::Learned { method, .. } => {
                inner
                    .metrics
                    .inc(EVENTS_METRIC, &[("method", method.as_str())]);
            }
            Effect::Rejected(reason) => inner.reject(reason),
            Effect::OwnSeen(sequence) => super::stem::note_own_sequence(inner, sequence),
        }
    }
}

/// Verifies a record; counts and logs a refusal. (A record older than the one held still
/// verifies: the store ignores it and it moves no endpoint. A hello may legitimately carry
/// one — a node under `--privacy` shows its previous record until the new one is fluffed.)
pub(super) fn verify(inner: &Inner, signed: &SignedRecord, from: SocketAddr) -> Option<NodeRecord> {
    match RecordVerifier::new(&inner.keys).verify(signed, None) {
        Ok(r) => Some(r),
        Err(e) => {
            debug!(from = %from, reason = e.reason(), error = %e, "record refused");
            inner.reject(e.reason());
            None
        }
    }
}

/// Hands a verified record to the store; `true` when the store took it.
pub(super) fn learn(
    inner: &Inner,
    record: NodeRecord,
    signed: SignedRecord,
    method: DiscoveryMethod,
    endpoint: Option<SocketAddr>,
    now: Millis,
) -> bool {
    let peer = short_key(&record.wireguard_public);
    let mut update = PeerUpdate::new(record, method).with_signed(signed);
    if let Some(e) = endpoint {
        update = update.with_endpoint(e);
    }
    match inner.store.update(update, now) {
        Ok(outcome) => {
            inner
                .metrics
                .inc(EVENTS_METRIC, &[("method", method.as_str())]);
            if outcome != UpdateOutcome::Unchanged {
                debug!(peer = %peer, method = %method, outcome = ?outcome, "peer learned");
            }
            true
        }
        Err(e) => {
            let reason = match e {
                StoreError::Full { .. } => "store_full",
                StoreError::OwnRecord { .. } => REASON_OWN_RECORD,
                StoreError::Address(_) => "address",
            };
            debug!(peer = %peer, method = %method, error = %e, "peer store refused the record");
            inner.reject(reason);
            false
        }
    }
}

/// After a budget-cut answer: once its records had time to arrive, if the responder still
/// holds records this node lacks, greet it again — with the cookie now, so the answer is not
/// cut.
async fn follow_up(inner: Arc<Inner>, src: SocketAddr, lack: Lack, responder: WgKey) {
    tokio::time::sleep(FOLLOW_UP_AFTER).await;
    let again = {
        let record = inner.local_record();
        let local = Local {
            store: &inner.store,
            record: &record,
            own_key: inner.own_key(),
            check: &inner.keys,
        };
        lock(&inner.engine).still_lacking(&local, &lack, &responder)
    };
    if again {
        debug!(to = %src, peer = %short_key(&responder), "follow-up hello for the records the budget held back");
        ControlSocket { inner }.send_hello_to(src);
    }
}

fn forward_probe_reply(inner: &Inner, from: SocketAddr, id: u64, now: Millis) {
    let Some(tx) = &inner.probe_replies else {
        return;
    };
    let event = ProbeReplyEvent {
        from,
        id,
        received_at: now,
    };
    if let Err(e) = tx.try_send(event) {
        debug!(from = %from, error = %e, "probe reply not forwarded");
    }
}
