//! What the control socket does with each datagram: rate limit per source, open, then per
//! message type verify records and hand them to the peer store (hello, reply and unicast
//! announce as `dht` with the packet's source IP and the record's WireGuard port, unless an
//! unproven source would move a held endpoint — see `endpoint`; records as `dht-transitive`
//! with the record's own candidate), answer (reply, records, probe reply), honour signed
//! goodbyes, and forward probe replies. Every drop is counted by reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, trace};

use crate::mesh::{
    DiscoveryMethod, Millis, PeerUpdate, RemoveReason, StoreError, UpdateOutcome, WgKey, short_key,
};
use crate::proto::exchange::{Digest, Hello, Probe, Records, Reply};
use crate::proto::messages::{Message, MessageError, SignedGoodbye};
use crate::proto::{NodeRecord, RecordError, RecordVerifier, SignedRecord};

use super::canonical;
use super::control_socket::ControlSocket;
use super::control_socket::{EVENTS_METRIC, Inner, ProbeReplyEvent, lock};
use super::digests::{lacks_any, records_the_other_lacks};
use super::endpoint::vouched_endpoint;
use super::exchange::ReceivedHello;
use super::rendezvous::RendezvousEvent;

/// How long after a budget-cut answer this node checks whether a follow-up hello is needed.
pub const FOLLOW_UP_AFTER: Duration = Duration::from_millis(200);

/// Reason label of datagrams over the per-source rate.
pub const REASON_RATE_LIMIT: &str = "ratelimit";
/// Reason label of hellos left unanswered by the amplification budget.
pub const REASON_AMPLIFICATION: &str = "amplification";
/// Reason label of records messages outside a live exchange.
pub const REASON_UNSOLICITED: &str = "unsolicited";
/// Reason label of this node's own record coming back.
pub const REASON_OWN_RECORD: &str = "own_record";

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
    match message {
        Message::Hello(hello) => on_hello(inner, src, &hello, datagram.len(), now).await,
        Message::Reply(reply) => on_reply(inner, src, &reply, now).await,
        Message::Records(records) => on_records(inner, src, records, now),
        Message::Goodbye { goodbye } => on_goodbye(inner, &goodbye),
        Message::Probe(probe) => {
            inner.send_logged(src, &Message::ProbeReply(probe)).await;
        }
        Message::ProbeReply(probe) => on_probe_reply(inner, src, probe, now),
        Message::Announce { record } => on_announce(inner, src, record, now),
        Message::RelayNotice(notice) => {
            super::relay_notice::on_relay_notice(inner, src, notice, now).await;
        }
        Message::Stem(stem) => super::stem::on_stem(inner, src, stem, now).await,
        Message::RendezvousOffer(offer) => {
            super::rendezvous::on_rendezvous(inner, src, |from| RendezvousEvent::Offer {
                from,
                offer,
                received_at: now,
            });
        }
        Message::RendezvousStart(start) => {
            super::rendezvous::on_rendezvous(inner, src, |from| RendezvousEvent::Start {
                from,
                start,
                received_at: now,
            });
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

/// The endpoint a direct message from `src` vouches for (see [`vouched_endpoint`]).
fn direct_endpoint(
    inner: &Inner,
    src: SocketAddr,
    record: &NodeRecord,
    proven: bool,
) -> SocketAddr {
    let held = inner.store.get(&record.wireguard_public);
    vouched_endpoint(src, record, proven, held.as_ref())
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

fn is_own(inner: &Inner, key: &WgKey) -> bool {
    inner.own_key().as_ref() == Some(key)
}

async fn on_hello(inner: &Inner, src: SocketAddr, hello: &Hello, sealed_len: usize, now: Millis) {
    let Some(record) = verify(inner, &hello.record, src) else {
        return;
    };
    let sender = record.wireguard_public;
    if is_own(inner, &sender) {
        inner.reject(REASON_OWN_RECORD);
        return;
    }
    super::stem::note_digests(inner, &hello.digests);
    let proven = lock(&inner.exchange).proves_address(src, hello.cookie.as_ref(), now);
    let endpoint = direct_endpoint(inner, src, &record, proven);
    learn(
        inner,
        record,
        hello.record.clone(),
        DiscoveryMethod::Dht,
        Some(endpoint),
        now,
    );
    let snapshot = inner.store.snapshot();
    let wanted = records_the_other_lacks(&hello.digests, &snapshot, Some(&sender));
    let local = inner.local_record();
    let answer = {
        let mut exchange = lock(&inner.exchange);
        let digests = exchange.digests(&snapshot);
        exchange.answer_hello(
            ReceivedHello {
                src,
                hello,
                sealed_len,
                sender,
            },
            &local,
            wanted,
            digests,
            now,
        )
    };
    if answer.is_empty() {
        debug!(from = %src, peer = %short_key(&sender), "hello too small to answer within the amplification budget");
        inner.reject(REASON_AMPLIFICATION);
        return;
    }
    for message in &answer {
        inner.send_logged(src, message).await;
    }
}

async fn on_reply(inner: &Arc<Inner>, src: SocketAddr, reply: &Reply, now: Millis) {
    if let Err(e) = lock(&inner.exchange).on_reply(src, reply, now) {
        debug!(from = %src, reason = e.reason(), "reply refused");
        inner.reject(e.reason());
        return;
    }
    let Some(record) = verify(inner, &reply.record, src) else {
        return;
    };
    let responder = record.wireguard_public;
    if is_own(inner, &responder) {
        inner.reject(REASON_OWN_RECORD);
        return;
    }
    debug!(from = %src, peer = %short_key(&responder), observed = %reply.observed, "reply received");
    super::stem::note_digests(inner, &reply.digests);
    let observed = canonical(reply.observed);
    inner
        .observed
        .send_if_modified(|o| o.replace(observed) != Some(observed));
    // The reply echoes a challenge sent to `src`: the address is proven.
    let endpoint = direct_endpoint(inner, src, &record, true);
    learn(
        inner,
        record,
        reply.record.clone(),
        DiscoveryMethod::Dht,
        Some(endpoint),
        now,
    );
    let snapshot = inner.store.snapshot();
    let wanted = records_the_other_lacks(&reply.digests, &snapshot, Some(&responder));
    let (push, budgeted) = {
        let mut exchange = lock(&inner.exchange);
        exchange.note_responder(src, &reply.challenge, responder, now);
        (
            exchange.push_records(reply.challenge, wanted),
            exchange.sent_without_cookie(src, &reply.challenge, now),
        )
    };
    for records in push {
        inner.send_logged(src, &Message::Records(records)).await;
    }
    if budgeted
        && lacks_any(
            &reply.digests,
            &snapshot,
            inner.own_key().as_ref(),
            Some(&responder),
        )
    {
        tokio::spawn(follow_up(
            inner.clone(),
            src,
            reply.digests.clone(),
            responder,
        ));
    }
}

/// After a budget-cut answer: once its records had time to arrive, if the responder's digests
/// still show records this node lacks, greet it again — with the cookie now, so the answer is
/// not cut.
async fn follow_up(inner: Arc<Inner>, src: SocketAddr, digests: Vec<Digest>, responder: WgKey) {
    tokio::time::sleep(FOLLOW_UP_AFTER).await;
    let snapshot = inner.store.snapshot();
    if lacks_any(
        &digests,
        &snapshot,
        inner.own_key().as_ref(),
        Some(&responder),
    ) {
        debug!(to = %src, peer = %short_key(&responder), "follow-up hello for the records the budget held back");
        ControlSocket { inner }.send_hello_to(src);
    }
}

fn on_records(inner: &Inner, src: SocketAddr, records: Records, now: Millis) {
    let sender = {
        let exchange = lock(&inner.exchange);
        if !exchange.accept_records(src, &records.challenge, now) {
            drop(exchange);
            debug!(from = %src, "records outside a live exchange dropped");
            inner.reject(REASON_UNSOLICITED);
            return;
        }
        exchange.exchange_peer(src, &records.challenge, now)
    };
    let own = inner.own_key();
    for signed in records.records {
        let Some(record) = verify(inner, &signed, src) else {
            continue;
        };
        let key = Some(record.wireguard_public);
        if key == own {
            super::stem::note_own_record(inner, &record);
        }
        if key == sender || key == own {
            continue;
        }
        learn(
            inner,
            record,
            signed,
            DiscoveryMethod::DhtTransitive,
            None,
            now,
        );
    }
}

fn on_goodbye(inner: &Inner, goodbye: &SignedGoodbye) {
    let g = match goodbye.verify(&inner.keys, None) {
        Ok(g) => g,
        Err(e) => {
            inner.reject(e.reason());
            return;
        }
    };
    let key = g.wireguard_public;
    let Some(held) = inner.store.held_sequence(&key) else {
        trace!(peer = %short_key(&key), "goodbye from a peer not held");
        return;
    };
    if g.sequence <= held {
        let e = MessageError::StaleGoodbye {
            got: g.sequence,
            held,
        };
        debug!(peer = %short_key(&key), error = %e, "goodbye refused");
        inner.reject(e.reason());
        return;
    }
    if inner.store.remove(&key, RemoveReason::Goodbye) {
        info!(peer = %short_key(&key), "peer said goodbye");
    }
}

fn on_probe_reply(inner: &Inner, src: SocketAddr, probe: Probe, now: Millis) {
    let Some(tx) = &inner.probe_replies else {
        return;
    };
    let event = ProbeReplyEvent {
        from: src,
        id: probe.id,
        received_at: now,
    };
    if let Err(e) = tx.try_send(event) {
        debug!(from = %src, error = %e, "probe reply not forwarded");
    }
}

fn on_announce(inner: &Inner, src: SocketAddr, signed: SignedRecord, now: Millis) {
    let Some(record) = verify(inner, &signed, src) else {
        return;
    };
    // An announce is its sender's current record: an older one than held is a replay.
    if let Some(held) = inner
        .store
        .held_sequence(&record.wireguard_public)
        .filter(|held| record.sequence < *held)
    {
        let e = RecordError::Stale {
            got: record.sequence,
            held,
        };
        debug!(from = %src, error = %e, "announce refused");
        inner.reject(e.reason());
        return;
    }
    if is_own(inner, &record.wireguard_public) {
        inner.reject(REASON_OWN_RECORD);
        return;
    }
    let endpoint = direct_endpoint(inner, src, &record, false);
    learn(
        inner,
        record,
        signed,
        DiscoveryMethod::Dht,
        Some(endpoint),
        now,
    );
}
