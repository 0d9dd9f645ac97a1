//! The peer-exchange engine, sans-IO: every decision of PROTOCOL.md §8–§9 about a received
//! control message — verify records and hand them to the peer store with their method, what to
//! answer (reply, records, probe reply), what to push, when to greet again, honour goodbyes —
//! and what a new hello says (its peer filter over a rotating key range). It owns the
//! [`Exchange`] state; it reads no socket and no clock: the control socket (a thin shell) and
//! the simulation (`sim`) feed it opened messages with `now` and carry out the [`Effect`]s.
//!
//! Methods: a message whose source is a mesh address came through the tunnel (WireGuard
//! authenticated the sender), so its sender is `gossip` and records relayed in its exchange
//! are `gossip-transitive`; otherwise `dht` and `dht-transitive`. A mesh address never becomes
//! a WireGuard endpoint (the store drops it), and who relayed a record never makes it trusted:
//! every record is verified.

use std::net::SocketAddr;

use tracing::{debug, info, trace};

use crate::mesh::{
    AddressCheck, DiscoveryMethod, Millis, PeerStore, PeerUpdate, RemoveReason, StoreError,
    UpdateOutcome, WgKey, short_key,
};
use crate::proto::exchange::{Digest, Hello, Probe, Records, Reply};
use crate::proto::filter::PeerFilter;
use crate::proto::messages::{Message, MessageError, SignedGoodbye};
use crate::proto::{MeshKeys, NodeRecord, RecordError, RecordVerifier, SignedRecord};

use super::antientropy::{count_in, filter_from, filter_room, lacking};
use super::canonical;
use super::digests::{lacks_any, random_subset, records_the_other_lacks};
use super::endpoint::vouched_endpoint;
use super::exchange::{Exchange, ReceivedHello};

/// Reason label of hellos left unanswered by the amplification budget.
pub const REASON_AMPLIFICATION: &str = "amplification";
/// Reason label of records messages outside a live exchange.
pub const REASON_UNSOLICITED: &str = "unsolicited";
/// Reason label of this node's own record coming back.
pub const REASON_OWN_RECORD: &str = "own_record";

/// Verifies a signed record for this mesh (the daemon: signature, binding, addresses; the
/// simulation may memoise the same function).
pub trait RecordCheck {
    /// The mesh's keys (goodbyes are verified with them).
    fn keys(&self) -> &MeshKeys;

    /// Full verification of a record (signature, key binding, mesh addresses).
    fn check(&self, signed: &SignedRecord) -> Result<NodeRecord, RecordError> {
        RecordVerifier::new(self.keys()).verify(signed, None)
    }
}

impl RecordCheck for MeshKeys {
    fn keys(&self) -> &MeshKeys {
        self
    }
}

/// What the engine reads of the node: its store, its current record, its key, its verifier.
pub struct Local<'a> {
    pub store: &'a PeerStore,
    pub record: &'a SignedRecord,
    pub own_key: Option<WgKey>,
    pub check: &'a dyn RecordCheck,
}

/// What the budget held back, to check again shortly (see [`Engine::still_lacking`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lack {
    /// The responder's digests (a hello without filter).
    Digests(Vec<Digest>),
    /// The responder holds `count` peers in `[lo, hi]`.
    Count { lo: u64, hi: u64, count: u64 },
}

/// What the shell must do after the engine handled something.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Seal and send.
    Send { to: SocketAddr, message: Message },
    /// After `FOLLOW_UP_AFTER`, greet `to` again if [`Engine::still_lacking`] says so.
    FollowUp {
        to: SocketAddr,
        responder: WgKey,
        lack: Lack,
    },
    /// A probe reply for the health prober.
    ProbeReply { from: SocketAddr, id: u64 },
    /// A reply reported the address this node's hello came from.
    Observed(SocketAddr),
    /// The store took a record (metrics count them by method).
    Learned {
        key: WgKey,
        method: DiscoveryMethod,
        outcome: UpdateOutcome,
    },
    /// Dropped, counted by reason.
    Rejected(&'static str),
    /// The other node showed it holds this node's own record at this sequence (a digest, its
    /// filter, or the record itself): the Dandelion++ embargo reads it.
    OwnSeen(u64),
}

/// The exchange engine of one node.
pub struct Engine {
    exchange: Exchange,
    mesh: AddressCheck,
    /// Where the next hello's filter range starts.
    cursor: u64,
    /// Records the store took as new or newer (not merely another method for a held one), from
    /// any exchange: the gossip cadence reads it.
    learned: u64,
    /// Filters received that showed the other side holding more peers in their range than this
    /// node does (it is still behind): the gossip cadence reads it too.
    behind: u64,
    /// A sequence of this node's own record not shown yet (a Dandelion++ stem): filters are
    /// checked for it too.
    own_pending: Option<u64>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("exchange", &self.exchange)
            .field("cursor", &self.cursor)
            .field("learned", &self.learned)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(exchange: Exchange, mesh: AddressCheck) -> Self {
        Self {
            exchange,
            mesh,
            cursor: 0,
            learned: 0,
            behind: 0,
            own_pending: None,
        }
    }

    /// The protocol state (challenges, cookies, budget counters).
    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    pub fn exchange_mut(&mut self) -> &mut Exchange {
        &mut self.exchange
    }

    /// Records taken as new or newer so far (monotonic).
    pub fn learned(&self) -> u64 {
        self.learned
    }

    /// Also look for this sequence of this node's own record in received filters (a record
    /// sent down a Dandelion++ stem, not shown yet).
    pub fn watch_own_sequence(&mut self, sequence: u64) {
        self.own_pending = Some(self.own_pending.map_or(sequence, |s| s.max(sequence)));
    }

    /// Received filters that showed this node behind so far (monotonic).
    pub fn behind(&self) -> u64 {
        self.behind
    }

    /// Notes whether `theirs` (from `other`) shows more peers than this node holds in its range
    /// (they hold this node and not themselves; this node the reverse: one either way is even).
    fn compare(&mut self, local: &Local<'_>, theirs: &PeerFilter, other: &WgKey) {
        let mine = count_in(local.store, theirs.lo, theirs.hi, Some(other));
        if theirs.count > mine + 1 {
            self.behind += 1;
        }
    }

    /// Whether `addr` is a mesh address (a message from it came through the tunnel).
    pub fn via_tunnel(&self, addr: &SocketAddr) -> bool {
        self.mesh.is_mesh_address(addr.ip())
    }

    /// A hello to `dst`: this node's record and the filter of the peers it holds in the next
    /// key range (the cursor moves on).
    pub fn hello(&mut self, local: &Local<'_>, dst: SocketAddr, now: Millis) -> Message {
        let bare = Hello {
            challenge: [0; 16],
            record: local.record.clone(),
            digests: Vec::new(),
            cookie: Some([0; 16]),
            filter: None,
        };
        let room = filter_room(bare.encode().len());
        let seed = self.exchange.random_u64() as u32;
        let (filter, next) = filter_from(local.store, None, self.cursor, u64::MAX, room, seed);
        self.cursor = next;
        let hello =
            self.exchange
                .start_hello_with(dst, local.record, Vec::new(), Some(filter), now);
        Message::Hello(Box::new(hello))
    }

    /// A hello that only introduces this node: its record and a filter over an empty range
    /// (just its own position), so neither side sends records — for greeting a peer learned
    /// from someone else and for pushing this node's new record.
    pub fn introduction(&mut self, local: &Local<'_>, dst: SocketAddr, now: Millis) -> Message {
        let own = local
            .own_key
            .as_ref()
            .map(crate::proto::filter::key_position)
            .unwrap_or(0);
        let filter = crate::proto::filter::PeerFilter::new(own, own, 0, 1, 1);
        let hello =
            self.exchange
                .start_hello_with(dst, local.record, Vec::new(), Some(filter), now);
        Message::Hello(Box::new(hello))
    }

    /// Handles one opened message from `src` (`sealed_len`: its datagram size).
    pub fn handle(
        &mut self,
        local: &Local<'_>,
        src: SocketAddr,
        message: Message,
        sealed_len: usize,
        now: Millis,
    ) -> Vec<Effect> {
        let src = canonical(src);
        let mut out = Vec::new();
        match message {
            Message::Hello(hello) => self.on_hello(local, src, &hello, sealed_len, now, &mut out),
            Message::Reply(reply) => self.on_reply(local, src, &reply, now, &mut out),
            Message::Records(records) => self.on_records(local, src, records, now, &mut out),
            Message::Goodbye { goodbye } => on_goodbye(local, &goodbye, &mut out),
            Message::Probe(probe) => out.push(Effect::Send {
                to: src,
                message: Message::ProbeReply(probe),
            }),
            Message::ProbeReply(Probe { id }) => out.push(Effect::ProbeReply { from: src, id }),
            Message::Announce { record } => self.on_announce(local, src, record, now, &mut out),
            other => {
                trace!(from = %src, kind = ?other.message_type(), "not an exchange message");
            }
        }
        out
    }

    /// After a budget-cut answer: whether the responder still holds records this node lacks.
    pub fn still_lacking(&self, local: &Local<'_>, lack: &Lack, responder: &WgKey) -> bool {
        match lack {
            Lack::Digests(d) => {
                let snapshot = local.store.snapshot();
                lacks_any(d, &snapshot, local.own_key.as_ref(), Some(responder))
            }
            Lack::Count { lo, hi, count } => {
                // Their count excludes themselves and includes this node.
                count_in(local.store, *lo, *hi, Some(responder)) + 1 < *count
            }
        }
    }

    fn direct_method(&self, src: &SocketAddr) -> DiscoveryMethod {
        if self.via_tunnel(src) {
            DiscoveryMethod::Gossip
        } else {
            DiscoveryMethod::Dht
        }
    }

    fn on_hello(
        &mut self,
        local: &Local<'_>,
        src: SocketAddr,
        hello: &Hello,
        sealed_len: usize,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(record) = verify(local, &hello.record, src, out) else {
            return;
        };
        let sender = record.wireguard_public;
        if local.own_key == Some(sender) {
            out.push(Effect::Rejected(REASON_OWN_RECORD));
            return;
        }
        let tunnel = self.via_tunnel(&src);
        let proven = self
            .exchange
            .proves_address(src, hello.cookie.as_ref(), now);
        let endpoint = direct_endpoint(local, src, &record, proven);
        let method = self.direct_method(&src);
        self.learn(
            local,
            record,
            hello.record.clone(),
            method,
            Some(endpoint),
            now,
            out,
        );
        own_seen(
            local,
            self.own_pending,
            &hello.digests,
            hello.filter.as_ref(),
            out,
        );
        let (wanted, digests, filter) = match &hello.filter {
            Some(theirs) => {
                self.compare(local, theirs, &sender);
                let keys = self.pick(lacking(local.store, theirs, Some(&sender)));
                let wanted = signed_of(local.store, &keys);
                let bare = Reply {
                    challenge: hello.challenge,
                    record: local.record.clone(),
                    observed: src,
                    digests: Vec::new(),
                    cookie: [0; 16],
                    filter: None,
                };
                let room = filter_room(bare.encode().len());
                let seed = self.exchange.random_u64() as u32;
                let (mine, _) = filter_from(local.store, None, theirs.lo, theirs.hi, room, seed);
                (wanted, Vec::new(), Some(mine))
            }
            None => {
                let snapshot = local.store.snapshot();
                let wanted = records_the_other_lacks(&hello.digests, &snapshot, Some(&sender));
                (wanted, self.exchange.digests(&snapshot), None)
            }
        };
        let answer = self.exchange.answer_hello_with(
            ReceivedHello {
                src,
                hello,
                sealed_len,
                sender,
                tunnel,
            },
            local.record,
            wanted,
            digests,
            filter,
            now,
        );
        if answer.is_empty() {
            debug!(from = %src, peer = %short_key(&sender), "hello too small to answer within the amplification budget");
            out.push(Effect::Rejected(REASON_AMPLIFICATION));
            return;
        }
        out.extend(
            answer
                .into_iter()
                .map(|message| Effect::Send { to: src, message }),
        );
    }

    fn on_reply(
        &mut self,
        local: &Local<'_>,
        src: SocketAddr,
        reply: &Reply,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        if let Err(e) = self.exchange.on_reply(src, reply, now) {
            debug!(from = %src, reason = e.reason(), "reply refused");
            out.push(Effect::Rejected(e.reason()));
            return;
        }
        let Some(record) = verify(local, &reply.record, src, out) else {
            return;
        };
        let responder = record.wireguard_public;
        if local.own_key == Some(responder) {
            out.push(Effect::Rejected(REASON_OWN_RECORD));
            return;
        }
        let tunnel = self.via_tunnel(&src);
        debug!(from = %src, peer = %short_key(&responder), observed = %reply.observed, "reply received");
        if !tunnel {
            out.push(Effect::Observed(canonical(reply.observed)));
        }
        // The reply echoes a challenge sent to `src`: the address is proven.
        let endpoint = direct_endpoint(local, src, &record, true);
        let method = self.direct_method(&src);
        self.learn(
            local,
            record,
            reply.record.clone(),
            method,
            Some(endpoint),
            now,
            out,
        );
        self.exchange
            .note_responder(src, &reply.challenge, responder, now);
        own_seen(
            local,
            self.own_pending,
            &reply.digests,
            reply.filter.as_ref(),
            out,
        );
        let (wanted, lack) = match &reply.filter {
            Some(theirs) => {
                self.compare(local, theirs, &responder);
                let keys = self.pick(lacking(local.store, theirs, Some(&responder)));
                let lack = Lack::Count {
                    lo: theirs.lo,
                    hi: theirs.hi,
                    count: theirs.count,
                };
                (signed_of(local.store, &keys), lack)
            }
            None => {
                let snapshot = local.store.snapshot();
                let wanted = records_the_other_lacks(&reply.digests, &snapshot, Some(&responder));
                (wanted, Lack::Digests(reply.digests.clone()))
            }
        };
        for records in self.exchange.push_records(reply.challenge, wanted) {
            out.push(Effect::Send {
                to: src,
                message: Message::Records(records),
            });
        }
        let budgeted = !tunnel
            && self
                .exchange
                .sent_without_cookie(src, &reply.challenge, now);
        if budgeted && self.still_lacking(local, &lack, &responder) {
            out.push(Effect::FollowUp {
                to: src,
                responder,
                lack,
            });
        }
    }

    fn on_records(
        &mut self,
        local: &Local<'_>,
        src: SocketAddr,
        records: Records,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        if !self.exchange.accept_records(src, &records.challenge, now) {
            debug!(from = %src, "records outside a live exchange dropped");
            out.push(Effect::Rejected(REASON_UNSOLICITED));
            return;
        }
        let sender = self.exchange.exchange_peer(src, &records.challenge, now);
        let method = if self.via_tunnel(&src) {
            DiscoveryMethod::GossipTransitive
        } else {
            DiscoveryMethod::DhtTransitive
        };
        for signed in records.records {
            let Some(record) = verify(local, &signed, src, out) else {
                continue;
            };
            let key = Some(record.wireguard_public);
            if key == local.own_key {
                out.push(Effect::OwnSeen(record.sequence));
                continue;
            }
            if key == sender {
                continue;
            }
            self.learn(local, record, signed, method, None, now, out);
        }
    }

    fn on_announce(
        &mut self,
        local: &Local<'_>,
        src: SocketAddr,
        signed: SignedRecord,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(record) = verify(local, &signed, src, out) else {
            return;
        };
        // An announce is its sender's current record: an older one than held is a replay.
        if let Some(held) = local
            .store
            .held_sequence(&record.wireguard_public)
            .filter(|held| record.sequence < *held)
        {
            let e = RecordError::Stale {
                got: record.sequence,
                held,
            };
            debug!(from = %src, error = %e, "announce refused");
            out.push(Effect::Rejected(e.reason()));
            return;
        }
        if local.own_key == Some(record.wireguard_public) {
            out.push(Effect::Rejected(REASON_OWN_RECORD));
            return;
        }
        let endpoint = direct_endpoint(local, src, &record, false);
        let method = self.direct_method(&src);
        self.learn(local, record, signed, method, Some(endpoint), now, out);
    }

    /// At most the per-answer number of keys, a random subset (so two nodes answering the same
    /// newcomer at once send different records).
    fn pick(&mut self, mut keys: Vec<WgKey>) -> Vec<WgKey> {
        let max = self.exchange.config().max_records_per_answer;
        if keys.len() > max {
            let mut rng = EngineRng(&mut self.exchange);
            random_subset(&mut keys, max, &mut rng);
        }
        keys
    }

    /// Hands a verified record to the store.
    #[allow(clippy::too_many_arguments)]
    fn learn(
        &mut self,
        local: &Local<'_>,
        record: NodeRecord,
        signed: SignedRecord,
        method: DiscoveryMethod,
        endpoint: Option<SocketAddr>,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let key = record.wireguard_public;
        let news = local
            .store
            .held_sequence(&key)
            .is_none_or(|held| held < record.sequence);
        let mut update = PeerUpdate::new(record, method).with_signed(signed);
        if let Some(e) = endpoint {
            update = update.with_endpoint(e);
        }
        match local.store.update(update, now) {
            Ok(outcome) => {
                if news {
                    self.learned += 1;
                }
                if outcome != UpdateOutcome::Unchanged {
                    debug!(peer = %short_key(&key), method = %method, outcome = ?outcome, "peer learned");
                }
                out.push(Effect::Learned {
                    key,
                    method,
                    outcome,
                });
            }
            Err(e) => {
                let reason = match e {
                    StoreError::Full { .. } => "store_full",
                    StoreError::OwnRecord { .. } => REASON_OWN_RECORD,
                    StoreError::Address(_) => "address",
                };
                debug!(peer = %short_key(&key), method = %method, error = %e, "peer store refused the record");
                out.push(Effect::Rejected(reason));
            }
        }
    }
}

/// The exchange's generator as an `RngCore` for the subset helpers.
struct EngineRng<'a>(&'a mut Exchange);

impl rand_core::RngCore for EngineRng<'_> {
    fn next_u32(&mut self) -> u32 {
        self.0.random_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0.random_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Whether the other node's digests or filter show it holds this node's own record.
fn own_seen(
    local: &Local<'_>,
    pending: Option<u64>,
    digests: &[Digest],
    filter: Option<&PeerFilter>,
    out: &mut Vec<Effect>,
) {
    let Some(own) = local.own_key else { return };
    if let Some(d) = digests
        .iter()
        .find(|d| d.key_prefix[..] == own[..d.key_prefix.len()])
    {
        out.push(Effect::OwnSeen(d.sequence));
    }
    let position = crate::proto::filter::key_position(&own);
    let Some(f) = filter.filter(|f| f.covers(position)) else {
        return;
    };
    let shown = NodeRecord::decode_body(&local.record.body)
        .ok()
        .map(|r| r.sequence);
    for sequence in [pending, shown].into_iter().flatten() {
        if f.contains(position, sequence) {
            out.push(Effect::OwnSeen(sequence));
        }
    }
}

fn signed_of(store: &PeerStore, keys: &[WgKey]) -> Vec<SignedRecord> {
    keys.iter()
        .filter_map(|k| store.get(k).and_then(|e| e.signed))
        .collect()
}

/// Verifies a record; a refusal becomes a counted rejection. (A record older than the one held
/// still verifies: the store ignores it and it moves no endpoint. A hello may legitimately
/// carry one — a node under `--privacy` shows its previous record until the new one is
/// fluffed; only announces are refused as stale.)
fn verify(
    local: &Local<'_>,
    signed: &SignedRecord,
    from: SocketAddr,
    out: &mut Vec<Effect>,
) -> Option<NodeRecord> {
    match local.check.check(signed) {
        Ok(r) => Some(r),
        Err(e) => {
            debug!(from = %from, reason = e.reason(), error = %e, "record refused");
            out.push(Effect::Rejected(e.reason()));
            None
        }
    }
}

/// The endpoint a direct message from `src` vouches for (see [`vouched_endpoint`]).
fn direct_endpoint(
    local: &Local<'_>,
    src: SocketAddr,
    record: &NodeRecord,
    proven: bool,
) -> SocketAddr {
    let held = local.store.get(&record.wireguard_public);
    vouched_endpoint(src, record, proven, held.as_ref())
}

fn on_goodbye(local: &Local<'_>, goodbye: &SignedGoodbye, out: &mut Vec<Effect>) {
    let g = match goodbye.verify(local.check.keys(), None) {
        Ok(g) => g,
        Err(e) => {
            out.push(Effect::Rejected(e.reason()));
            return;
        }
    };
    let key = g.wireguard_public;
    let Some(held) = local.store.held_sequence(&key) else {
        trace!(peer = %short_key(&key), "goodbye from a peer not held");
        return;
    };
    if g.sequence <= held {
        let e = MessageError::StaleGoodbye {
            got: g.sequence,
            held,
        };
        debug!(peer = %short_key(&key), error = %e, "goodbye refused");
        out.push(Effect::Rejected(e.reason()));
        return;
    }
    if local.store.remove(&key, RemoveReason::Goodbye) {
        info!(peer = %short_key(&key), "peer said goodbye");
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
