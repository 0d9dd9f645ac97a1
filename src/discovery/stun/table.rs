//! The pending STUN transactions of one socket: a bounded table of transaction id → which
//! server addresses may answer and who waits for the answer. A received datagram is taken as a
//! STUN response only when its transaction id is pending and it comes from an expected
//! address; everything else is dropped with a reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::wire::{BindingResponse, StunWireError, TxId, decode_binding_response, transaction_id};
use crate::discovery::canonical;

/// Most transactions pending at once on one socket.
pub const MAX_PENDING: usize = 64;
/// A transaction nobody answered is forgotten after this long.
pub const PENDING_FOR: Duration = Duration::from_secs(10);

/// A matched response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub response: BindingResponse,
    pub from: SocketAddr,
    pub received_at: Instant,
}

/// Why a STUN-looking datagram was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunDrop {
    #[error("no pending STUN transaction has this id")]
    UnknownTransaction,
    #[error("STUN response from {0}, which was not asked")]
    WrongSource(SocketAddr),
    #[error(transparent)]
    Wire(#[from] StunWireError),
}

impl StunDrop {
    /// Reason label for `wgmesh_rejected_messages_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownTransaction => "stun_unsolicited",
            Self::WrongSource(_) => "stun_source",
            Self::Wire(e) => e.reason(),
        }
    }
}

/// The table is full: too many transactions at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many STUN transactions pending ({MAX_PENDING}); try again later")]
pub struct TableFull;

struct Pending {
    expected: Vec<SocketAddr>,
    since: Instant,
    reply: oneshot::Sender<Answer>,
}

/// Pending transactions (see the module doc).
#[derive(Default)]
pub struct PendingTable {
    entries: HashMap<TxId, Pending>,
}

impl PendingTable {
    /// Registers a transaction that `expected` may answer; the answer arrives on the receiver.
    pub fn register(
        &mut self,
        id: TxId,
        expected: Vec<SocketAddr>,
        now: Instant,
    ) -> Result<oneshot::Receiver<Answer>, TableFull> {
        self.entries
            .retain(|_, p| now.duration_since(p.since) < PENDING_FOR && !p.reply.is_closed());
        if self.entries.len() >= MAX_PENDING {
            return Err(TableFull);
        }
        let (reply, rx) = oneshot::channel();
        let expected = expected.into_iter().map(canonical).collect();
        self.entries.insert(
            id,
            Pending {
                expected,
                since: now,
                reply,
            },
        );
        Ok(rx)
    }

    /// Forgets a transaction (its waiter gave up).
    pub fn cancel(&mut self, id: &TxId) {
        self.entries.remove(id);
    }

    /// Transactions pending now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Offers a datagram that [`super::wire::looks_like_stun`]; on a match the waiter gets it.
    pub fn offer(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<(), StunDrop> {
        let from = canonical(from);
        let id = transaction_id(datagram).ok_or(StunWireError::NotStun)?;
        let pending = self.entries.get(&id).ok_or(StunDrop::UnknownTransaction)?;
        if !pending.expected.contains(&from) {
            return Err(StunDrop::WrongSource(from));
        }
        let response = decode_binding_response(datagram)?;
        if let Some(p) = self.entries.remove(&id) {
            let _ = p.reply.send(Answer {
                response,
                from,
                received_at: now,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::stun::wire::{encode_binding_request, encode_binding_response};

    const SERVER: &str = "192.0.2.1:3478";

    fn resp(id: TxId) -> Vec<u8> {
        encode_binding_response(id, "198.51.100.2:51900".parse().unwrap(), None).unwrap()
    }

    #[test]
    fn matching_response_reaches_the_waiter() {
        let now = Instant::now();
        let mut t = PendingTable::default();
        let mut rx = t
            .register([1; 12], vec![SERVER.parse().unwrap()], now)
            .unwrap();
        // IPv4-mapped source (a dual-stack socket) is the same server.
        t.offer(
            &resp([1; 12]),
            "[::ffff:192.0.2.1]:3478".parse().unwrap(),
            now,
        )
        .unwrap();
        let a = rx.try_recv().unwrap();
        assert_eq!(a.response.mapped, "198.51.100.2:51900".parse().unwrap());
        assert!(t.is_empty());
        // A second copy (retransmission answered twice) is unsolicited now.
        assert_eq!(
            t.offer(&resp([1; 12]), SERVER.parse().unwrap(), now),
            Err(StunDrop::UnknownTransaction)
        );
    }

    #[test]
    fn wrong_id_wrong_source_and_garbage_are_dropped() {
        let now = Instant::now();
        let mut t = PendingTable::default();
        let mut rx = t
            .register([1; 12], vec![SERVER.parse().unwrap()], now)
            .unwrap();
        assert_eq!(
            t.offer(&resp([2; 12]), SERVER.parse().unwrap(), now),
            Err(StunDrop::UnknownTransaction)
        );
        let other: SocketAddr = "192.0.2.9:3478".parse().unwrap();
        assert_eq!(
            t.offer(&resp([1; 12]), other, now),
            Err(StunDrop::WrongSource(other))
        );
        // A request with the pending id from the server is not a response.
        let req = encode_binding_request([1; 12], false, false).unwrap();
        assert_eq!(
            t.offer(&req, SERVER.parse().unwrap(), now)
                .unwrap_err()
                .reason(),
            "stun_type"
        );
        let mut truncated = resp([1; 12]);
        truncated.truncate(25);
        assert!(t.offer(&truncated, SERVER.parse().unwrap(), now).is_err());
        // Still pending after all that; the real answer goes through.
        assert!(rx.try_recv().is_err());
        t.offer(&resp([1; 12]), SERVER.parse().unwrap(), now)
            .unwrap();
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn table_is_bounded_and_expires() {
        let now = Instant::now();
        let mut t = PendingTable::default();
        let mut keep = Vec::new();
        for i in 0..MAX_PENDING {
            let mut id = [0u8; 12];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            keep.push(t.register(id, vec![], now).unwrap());
        }
        assert_eq!(t.register([0xff; 12], vec![], now).unwrap_err(), TableFull);
        // Dropped waiters free their slots; so does age.
        keep.truncate(10);
        assert!(t.register([0xfe; 12], vec![], now).is_ok());
        assert!(t.register([0xfd; 12], vec![], now + PENDING_FOR).is_ok());
        assert_eq!(t.len(), 1);
    }
}
