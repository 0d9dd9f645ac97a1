//! The peer exchange's protocol state, sans-IO (PROTOCOL.md §8). Owns the challenges this node
//! sent (initiator) and answered (responder), the cookies responders gave it, its own cookie
//! key, and the anti-amplification budget of every answer. The control socket feeds it
//! decoded messages with `now` and sends what it returns; nothing here touches a socket, a
//! clock or the peer store.
//!
//! - Initiator: [`Exchange::start_hello`] → (reply arrives) [`Exchange::on_reply`] → push
//!   records the responder lacks.
//! - Responder: [`Exchange::answer_hello`] returns the reply plus records, at most 3× the
//!   hello's size unless the hello echoed a valid cookie.
//! - Either side: [`Exchange::accept_records`] for records of a live exchange with that address.

use std::net::SocketAddr;
use std::time::Duration;

use rand_core::{OsRng, RngCore};

use crate::mesh::{Millis, PeerEntry, WgKey};
use crate::proto::SignedRecord;
use crate::proto::envelope::{HEADER_BYTES, MAX_DATAGRAM_BYTES, MAX_PAYLOAD_BYTES, TAG_BYTES};
use crate::proto::exchange::{
    CHALLENGE_BYTES, Digest, Hello, MAX_DIGESTS, MAX_RECORDS_PER_MESSAGE, Records, Reply,
};
use crate::proto::filter::PeerFilter;
use crate::proto::messages::Message;

use super::canonical;
use super::cookie::{COOKIE_PERIOD, CookieMinter};
use super::digests::{digests_of, random_subset};
use super::expiring::ExpiringMap;

/// How long a challenge is good for: replies and records after that are refused.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(10);
/// Everything sent in answer to a hello without a valid cookie is at most this many times the
/// hello's size.
pub const AMPLIFICATION_FACTOR: usize = 3;
/// Most records sent in answer to one hello (or pushed after one reply), cookie or not.
pub const DEFAULT_MAX_RECORDS_PER_ANSWER: usize = 64;
/// Most records messages (datagrams) in one answer or push: with the reply they stay well
/// within the receiver's per-source burst (20), so none is dropped by its rate limit.
pub const DEFAULT_MAX_RECORDS_MESSAGES: usize = 8;

/// A challenge: 16 random bytes, fresh per hello.
pub type Challenge = [u8; CHALLENGE_BYTES];

/// The exchange's tunables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeConfig {
    /// How long a challenge (sent or answered) is remembered.
    pub challenge_ttl: Duration,
    /// Most hellos this node sent and remembers at once.
    pub max_sent: usize,
    /// Most hellos this node answered and remembers at once (records pushed for them).
    pub max_answered: usize,
    /// Most responders whose cookie this node remembers.
    pub max_responders: usize,
    /// Most records in one answer or one push.
    pub max_records_per_answer: usize,
    /// Most records messages (datagrams) in one answer or one push.
    pub max_records_messages: usize,
    /// Most digests in a hello or reply (the protocol allows 32).
    pub max_digests: usize,
}

impl Default for ExchangeConfig {
    fn default() -> Self {
        Self {
            challenge_ttl: CHALLENGE_TTL,
            max_sent: 1024,
            max_answered: 4096,
            max_responders: 1024,
            max_records_per_answer: DEFAULT_MAX_RECORDS_PER_ANSWER,
            max_records_messages: DEFAULT_MAX_RECORDS_MESSAGES,
            max_digests: MAX_DIGESTS,
        }
    }
}

/// Why a reply was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum ExchangeError {
    #[error(
        "reply from {from} answers no hello this node sent to that address in the last 10 s (late, unsolicited or spoofed); dropped. If replies keep arriving late, check the path's latency"
    )]
    Unsolicited { from: SocketAddr },
    #[error("reply from {from} was already received for that challenge (replayed); dropped")]
    Replayed { from: SocketAddr },
}

impl ExchangeError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsolicited { .. } => "unsolicited",
            Self::Replayed { .. } => "replayed",
        }
    }
}

/// A hello as the responder received it, its record already verified.
#[derive(Debug, Clone, Copy)]
pub struct ReceivedHello<'a> {
    /// Where it came from.
    pub src: SocketAddr,
    pub hello: &'a Hello,
    /// Its size on the wire (the sealed datagram), the base of the amplification budget.
    pub sealed_len: usize,
    /// The initiator's WireGuard key (from its verified record).
    pub sender: WgKey,
    /// It came through the tunnel (its source is a mesh address): the answer can only go back
    /// into the tunnel, to the member owning that address, so it is not cut by the budget.
    pub tunnel: bool,
}

/// Counters of what the exchange refused to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeStats {
    /// Hellos left unanswered: even the reply exceeded the amplification budget.
    pub answers_refused: u64,
    /// Records left out of answers by the amplification budget.
    pub records_withheld: u64,
}

#[derive(Debug, Clone, Copy)]
struct SentHello {
    replied: bool,
    /// Whether the hello echoed a cookie (so its answer was not cut by the budget).
    with_cookie: bool,
    /// The responder's key, once its reply was verified.
    responder: Option<WgKey>,
}

#[derive(Debug, Clone, Copy)]
struct Responder {
    cookie: [u8; CHALLENGE_BYTES],
    replied_at: Millis,
}

/// The peer exchange state of one node.
pub struct Exchange {
    config: ExchangeConfig,
    cookies: CookieMinter,
    rng: Box<dyn RngCore + Send>,
    sent: ExpiringMap<(SocketAddr, Challenge), SentHello>,
    answered: ExpiringMap<(SocketAddr, Challenge), WgKey>,
    responders: ExpiringMap<SocketAddr, Responder>,
    stats: ExchangeStats,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("sent", &self.sent.len())
            .field("answered", &self.answered.len())
            .field("responders", &self.responders.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The size of `message` once sealed into a datagram.
pub fn sealed_len(message: &Message) -> usize {
    HEADER_BYTES + message.encode_payload().len() + TAG_BYTES
}

impl Exchange {
    /// An exchange with a given cookie key and random generator (tests inject both).
    pub fn new(config: ExchangeConfig, cookie_key: [u8; 32], rng: Box<dyn RngCore + Send>) -> Self {
        Self {
            sent: ExpiringMap::new(config.max_sent),
            answered: ExpiringMap::new(config.max_answered),
            responders: ExpiringMap::new(config.max_responders),
            cookies: CookieMinter::new(cookie_key),
            rng,
            config,
            stats: ExchangeStats::default(),
        }
    }

    /// An exchange with a fresh random cookie key and the operating system's generator.
    pub fn with_os_rng(config: ExchangeConfig) -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let exchange = Self::new(config, key, Box::new(OsRng));
        zeroize::Zeroize::zeroize(&mut key);
        exchange
    }

    /// A random number from the exchange's generator (filter seeds, gossip choices).
    pub fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// The exchange's configuration.
    pub fn config(&self) -> &ExchangeConfig {
        &self.config
    }

    /// What was refused so far.
    pub fn stats(&self) -> ExchangeStats {
        self.stats
    }

    /// The cookie this node gives `addr` in a reply at `now`.
    pub fn cookie_for(&self, addr: SocketAddr, now: Millis) -> [u8; CHALLENGE_BYTES] {
        self.cookies.cookie_for(canonical(addr), now)
    }

    /// Whether `cookie` (from a hello) is this node's valid cookie for `src`: the hello's
    /// source address is proven.
    pub fn proves_address(
        &self,
        src: SocketAddr,
        cookie: Option<&[u8; CHALLENGE_BYTES]>,
        now: Millis,
    ) -> bool {
        cookie.is_some_and(|c| self.cookies.is_valid(canonical(src), c, now))
    }

    /// This node's digests for a hello or reply: every peer of `snapshot`, or a random subset
    /// of `max_digests` of them.
    pub fn digests(&mut self, snapshot: &[PeerEntry]) -> Vec<Digest> {
        digests_of(snapshot, self.config.max_digests, self.rng.as_mut())
    }

    /// A hello to `dst` with a fresh challenge (remembered for the challenge TTL) and the
    /// cookie `dst` gave this node, if any. Digests are trimmed so the hello fits a datagram.
    pub fn start_hello(
        &mut self,
        dst: SocketAddr,
        local_record: &SignedRecord,
        my_digests: Vec<Digest>,
        now: Millis,
    ) -> Hello {
        self.start_hello_with(dst, local_record, my_digests, None, now)
    }

    /// [`Self::start_hello`] with a peer filter (anti-entropy) instead of, or besides, digests.
    /// The caller sizes the filter to fit the datagram (see `engine`).
    pub fn start_hello_with(
        &mut self,
        dst: SocketAddr,
        local_record: &SignedRecord,
        my_digests: Vec<Digest>,
        filter: Option<PeerFilter>,
        now: Millis,
    ) -> Hello {
        let dst = canonical(dst);
        let mut challenge = [0u8; CHALLENGE_BYTES];
        self.rng.fill_bytes(&mut challenge);
        let mut hello = Hello {
            challenge,
            record: local_record.clone(),
            digests: my_digests,
            cookie: self.responders.get(&dst, now).map(|r| r.cookie),
            filter,
        };
        hello
            .digests
            .truncate(self.config.max_digests.min(MAX_DIGESTS));
        while hello.encode().len() > MAX_PAYLOAD_BYTES && hello.digests.pop().is_some() {}
        self.sent.insert(
            (dst, challenge),
            SentHello {
                replied: false,
                with_cookie: hello.cookie.is_some(),
                responder: None,
            },
            now,
            self.config.challenge_ttl,
        );
        hello
    }

    /// Accepts a reply only when it echoes a challenge sent to `src` within the TTL and not
    /// answered before; remembers the reply's cookie for later hellos to `src`.
    pub fn on_reply(
        &mut self,
        src: SocketAddr,
        reply: &Reply,
        now: Millis,
    ) -> Result<(), ExchangeError> {
        let src = canonical(src);
        match self.sent.get_mut(&(src, reply.challenge), now) {
            None => return Err(ExchangeError::Unsolicited { from: src }),
            Some(sent) if sent.replied => return Err(ExchangeError::Replayed { from: src }),
            Some(sent) => sent.replied = true,
        }
        self.responders.insert(
            src,
            Responder {
                cookie: reply.cookie,
                replied_at: now,
            },
            now,
            COOKIE_PERIOD,
        );
        Ok(())
    }

    /// Records who answered the hello `challenge` to `src` (its verified key), so records it
    /// pushes are never taken for its own record.
    pub fn note_responder(
        &mut self,
        src: SocketAddr,
        challenge: &Challenge,
        key: WgKey,
        now: Millis,
    ) {
        if let Some(sent) = self.sent.get_mut(&(canonical(src), *challenge), now) {
            sent.responder = Some(key);
        }
    }

    /// Whether the hello `challenge` to `dst` went without a cookie, so that its answer may
    /// have been cut by the responder's amplification budget (a follow-up hello, now with the
    /// cookie, gets the rest).
    pub fn sent_without_cookie(&self, dst: SocketAddr, challenge: &Challenge, now: Millis) -> bool {
        self.sent
            .get(&(canonical(dst), *challenge), now)
            .is_some_and(|s| !s.with_cookie)
    }

    /// Whether `dst` replied to one of this node's hellos at or after `since`.
    pub fn replied_since(&self, dst: SocketAddr, since: Millis, now: Millis) -> bool {
        self.responders
            .get(&canonical(dst), now)
            .is_some_and(|r| r.replied_at >= since)
    }

    /// The answer to a hello: the reply (challenge echoed, the observed source address, this
    /// node's digests, a cookie for the source) and, in records messages, `wanted` (what the
    /// initiator lacks). Without a valid cookie in the hello everything sent totals at most
    /// [`AMPLIFICATION_FACTOR`] × the hello's sealed size: digests and records are left out to
    /// fit, and if even a bare reply does not fit nothing is sent (counted in [`Self::stats`]).
    pub fn answer_hello(
        &mut self,
        received: ReceivedHello<'_>,
        local_record: &SignedRecord,
        wanted: Vec<SignedRecord>,
        my_digests: Vec<Digest>,
        now: Millis,
    ) -> Vec<Message> {
        self.answer_hello_with(received, local_record, wanted, my_digests, None, now)
    }

    /// [`Self::answer_hello`] with this node's peer filter in the reply. A filter that does not
    /// fit the budget is left out first, then digests.
    pub fn answer_hello_with(
        &mut self,
        received: ReceivedHello<'_>,
        local_record: &SignedRecord,
        mut wanted: Vec<SignedRecord>,
        my_digests: Vec<Digest>,
        my_filter: Option<PeerFilter>,
        now: Millis,
    ) -> Vec<Message> {
        let src = canonical(received.src);
        let challenge = received.hello.challenge;
        let proven =
            received.tunnel || self.proves_address(src, received.hello.cookie.as_ref(), now);
        let budget = if proven {
            usize::MAX
        } else {
            received.sealed_len.saturating_mul(AMPLIFICATION_FACTOR)
        };
        let mut digests = my_digests;
        digests.truncate(self.config.max_digests.min(MAX_DIGESTS));
        let mut reply = Message::Reply(Box::new(Reply {
            challenge,
            record: local_record.clone(),
            observed: src,
            digests,
            cookie: self.cookies.cookie_for(src, now),
            filter: my_filter,
        }));
        let mut spent = sealed_len(&reply);
        while spent > budget.min(MAX_DATAGRAM_BYTES) {
            let Message::Reply(r) = &mut reply else {
                break;
            };
            if r.filter.take().is_some() {
                spent = sealed_len(&reply);
                continue;
            }
            if r.digests.pop().is_none() {
                self.stats.answers_refused += 1;
                return Vec::new();
            }
            spent = sealed_len(&reply);
        }
        self.answered.insert(
            (src, challenge),
            received.sender,
            now,
            self.config.challenge_ttl,
        );

        random_subset(
            &mut wanted,
            self.config.max_records_per_answer,
            self.rng.as_mut(),
        );
        let mut out = vec![reply];
        let (records, withheld) = pack_within(
            challenge,
            wanted,
            budget.saturating_sub(spent),
            self.config.max_records_messages,
        );
        self.stats.records_withheld += withheld;
        out.extend(records.into_iter().map(Message::Records));
        out
    }

    /// Whether records for `challenge` from `src` belong to a live exchange: a hello this node
    /// sent to `src`, or one it answered from `src`, within the challenge TTL.
    pub fn accept_records(&self, src: SocketAddr, challenge: &Challenge, now: Millis) -> bool {
        let key = (canonical(src), *challenge);
        self.sent.get(&key, now).is_some() || self.answered.get(&key, now).is_some()
    }

    /// The key of the other node of the exchange `challenge` with `src`, when known (its own
    /// record is never taken from a records message it sends).
    pub fn exchange_peer(
        &self,
        src: SocketAddr,
        challenge: &Challenge,
        now: Millis,
    ) -> Option<WgKey> {
        let key = (canonical(src), *challenge);
        if let Some(k) = self.answered.get(&key, now) {
            return Some(*k);
        }
        self.sent.get(&key, now).and_then(|s| s.responder)
    }

    /// Records this node pushes after a reply: `wanted` (what the responder lacks), capped at
    /// the per-answer maximums, packed into datagram-sized messages.
    pub fn push_records(
        &mut self,
        challenge: Challenge,
        mut wanted: Vec<SignedRecord>,
    ) -> Vec<Records> {
        random_subset(
            &mut wanted,
            self.config.max_records_per_answer,
            self.rng.as_mut(),
        );
        let mut packed = Records::pack(challenge, wanted);
        packed.truncate(self.config.max_records_messages);
        packed
    }
}

fn sealed_records_len(r: &Records) -> usize {
    HEADER_BYTES + r.encode().len() + TAG_BYTES
}

/// Packs `records` into at most `max_messages` datagram-sized messages totalling at most
/// `budget` sealed bytes; returns the messages and how many records did not fit.
fn pack_within(
    challenge: Challenge,
    records: Vec<SignedRecord>,
    budget: usize,
    max_messages: usize,
) -> (Vec<Records>, u64) {
    if max_messages == 0 {
        return (Vec::new(), records.len() as u64);
    }
    let empty = || Records {
        challenge,
        records: Vec::new(),
    };
    let mut out: Vec<Records> = Vec::new();
    let mut closed = 0usize;
    let mut current = empty();
    let mut withheld = 0u64;
    for record in records {
        current.records.push(record);
        let over_datagram = current.records.len() > MAX_RECORDS_PER_MESSAGE
            || sealed_records_len(&current) > MAX_DATAGRAM_BYTES;
        if over_datagram {
            let Some(record) = current.records.pop() else {
                continue;
            };
            if out.len() + 1 >= max_messages {
                // The current message is the last one allowed, and it is full.
                withheld += 1;
                continue;
            }
            if !current.records.is_empty() {
                closed += sealed_records_len(&current);
                out.push(std::mem::replace(&mut current, empty()));
            }
            current.records.push(record);
            if sealed_records_len(&current) > MAX_DATAGRAM_BYTES {
                // Cannot happen with records within the protocol's size limit.
                current.records.pop();
                withheld += 1;
                continue;
            }
        }
        if closed.saturating_add(sealed_records_len(&current)) > budget {
            current.records.pop();
            withheld += 1;
        }
    }
    if !current.records.is_empty() {
        out.push(current);
    }
    (out, withheld)
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
