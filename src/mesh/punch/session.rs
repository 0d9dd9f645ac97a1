//! One punch toward a peer: from the start time, each candidate in turn gets one step of
//! [`SHOTS`] WireGuard handshake initiations, one at the step's start and one half-way
//! (WireGuard sends at most one per 5 s per peer entry, so the daemon re-creates the entry for
//! each shot); at most [`MAX_STEPS`] candidates. The two ends shoot a quarter step apart (the
//! end with the larger key later): an initiation sent while the other end re-creates its
//! entry goes unanswered, and with both ends on the same boundaries that happened often (the
//! NAT grid's full-cone <-> symmetric pair stayed relayed in about 1 run in 9). The session
//! succeeds when a handshake newer than its start shows up.
//!
//! An end whose NAT lets anyone in (open, full-cone) facing a symmetric peer only listens
//! ([`PunchRole::Listen`]): its shots could not reach the peer (a symmetric NAT's mapping
//! toward us is unknown until the peer sends), while re-creating its entry could drop the
//! peer's initiation arriving at that moment. It points its entry once, as soon as the start
//! arrives (not at the start time: a busy node that creates the entry late misses the peer's
//! first shots, which go to the best candidate), and holds it until a full session after the
//! start; WireGuard answers the peer's initiation wherever it comes from.

use std::net::SocketAddr;
use std::time::Duration;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;
use crate::proto::NatType;

/// Time given to each candidate.
pub const STEP: Duration = Duration::from_secs(1);
/// Initiations per candidate (evenly spread over the step).
pub const SHOTS: u32 = 2;
/// Most candidates tried in one session.
pub const MAX_STEPS: usize = 6;
/// A start further ahead than this is refused (a wrong clock or a hostile introducer).
pub const MAX_START_AHEAD: Duration = Duration::from_secs(10);

/// How this end takes part in a punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchRole {
    /// Walk the candidates, re-creating the entry for each shot.
    Shoot,
    /// Point the entry once and hold it; the peer shoots.
    Listen,
}

/// The role of an end behind `local` punching toward a peer behind `peer`: listen when
/// anyone may reach this end (open, full-cone) and the peer's mapping is per destination
/// (symmetric); shoot otherwise (both ends shoot when both could be reached, so a wrong
/// classification on one side costs nothing).
pub fn punch_role(local: NatType, peer: NatType) -> PunchRole {
    if matches!(local, NatType::Open | NatType::FullCone) && peer == NatType::Symmetric {
        PunchRole::Listen
    } else {
        PunchRole::Shoot
    }
}

/// What the punch wants now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchStep {
    /// Before the start time.
    Wait,
    /// Point the peer's entry at this candidate (step `index`, shot `shot` of [`SHOTS`]) and
    /// send into the tunnel.
    Try {
        index: usize,
        shot: u32,
        addr: SocketAddr,
    },
    /// Every candidate had its step.
    Done,
}

/// One punch session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PunchSession {
    pub peer: WgKey,
    pub introducer: WgKey,
    candidates: Vec<SocketAddr>,
    start_at: Millis,
    /// This end's shots are this much after the introducer's start (0 or a quarter step).
    offset: Duration,
    /// A listening end holds its entry from the session's creation until this time.
    listen_until: Option<Millis>,
}

impl PunchSession {
    /// A session of `local` from an introducer's start; `None` when it has no candidate or
    /// starts implausibly far ahead. A start in the past begins now.
    pub fn new(
        local: &WgKey,
        peer: WgKey,
        introducer: WgKey,
        candidates: Vec<SocketAddr>,
        start_at: Millis,
        now: Millis,
    ) -> Option<Self> {
        Self::with_role(
            local,
            peer,
            introducer,
            candidates,
            start_at,
            now,
            PunchRole::Shoot,
        )
    }

    /// [`PunchSession::new`] with a role from [`punch_role`].
    pub fn with_role(
        local: &WgKey,
        peer: WgKey,
        introducer: WgKey,
        candidates: Vec<SocketAddr>,
        start_at: Millis,
        now: Millis,
        role: PunchRole,
    ) -> Option<Self> {
        if candidates.is_empty() || start_at.since(now) > MAX_START_AHEAD {
            return None;
        }
        let mut candidates = candidates;
        candidates.truncate(MAX_STEPS);
        let offset = if *local > peer {
            STEP / SHOTS / 2
        } else {
            Duration::ZERO
        };
        let start_at = start_at.max(now);
        Some(match role {
            PunchRole::Shoot => Self {
                peer,
                introducer,
                candidates,
                start_at,
                offset,
                listen_until: None,
            },
            PunchRole::Listen => Self {
                peer,
                introducer,
                candidates,
                start_at: now,
                offset: Duration::ZERO,
                listen_until: Some(start_at + offset + STEP * MAX_STEPS as u32),
            },
        })
    }

    /// When the session begins.
    pub fn start_at(&self) -> Millis {
        self.start_at
    }

    /// The step at `now`.
    pub fn step(&self, now: Millis) -> PunchStep {
        let first_shot = self.start_at + self.offset;
        if now < first_shot {
            return PunchStep::Wait;
        }
        if let Some(until) = self.listen_until {
            return if now < until {
                PunchStep::Try {
                    index: 0,
                    shot: 0,
                    addr: self.candidates[0],
                }
            } else {
                PunchStep::Done
            };
        }
        let elapsed = now.since(first_shot).as_millis();
        let index = (elapsed / STEP.as_millis()) as usize;
        let shot = ((elapsed % STEP.as_millis()) / (STEP / SHOTS).as_millis()) as u32;
        match self.candidates.get(index) {
            Some(addr) => PunchStep::Try {
                index,
                shot: shot.min(SHOTS - 1),
                addr: *addr,
            },
            None => PunchStep::Done,
        }
    }

    /// When the shot after the one at `now` begins (the daemon's next wake-up).
    pub fn next_change(&self, now: Millis) -> Option<Millis> {
        match self.step(now) {
            PunchStep::Wait => Some(self.start_at + self.offset),
            PunchStep::Try { .. } if self.listen_until.is_some() => self.listen_until,
            PunchStep::Try { index, shot, .. } => Some(
                self.start_at + self.offset + STEP * index as u32 + (STEP / SHOTS) * (shot + 1),
            ),
            PunchStep::Done => None,
        }
    }

    /// Whether a handshake at `handshake` proves this session worked.
    pub fn succeeded_by(&self, handshake: Option<Millis>) -> bool {
        handshake.is_some_and(|h| h >= self.start_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([198, 51, 100, i as u8 + 1], 51820)))
            .collect()
    }

    const NOW: Millis = Millis(1_000_000);

    #[test]
    fn walks_the_candidates_one_step_each_from_the_start() {
        let s = PunchSession::new(&[1; 32], [2; 32], [9; 32], addrs(3), NOW + STEP, NOW).unwrap();
        assert_eq!(s.step(NOW), PunchStep::Wait);
        assert_eq!(s.next_change(NOW), Some(NOW + STEP));
        let a = addrs(3);
        assert_eq!(
            s.step(NOW + STEP),
            PunchStep::Try {
                index: 0,
                shot: 0,
                addr: a[0]
            }
        );
        assert_eq!(s.next_change(NOW + STEP), Some(NOW + STEP + STEP / 2));
        assert_eq!(
            s.step(NOW + STEP + STEP / 2),
            PunchStep::Try {
                index: 0,
                shot: 1,
                addr: a[0]
            }
        );
        assert_eq!(
            s.step(NOW + STEP * 2 + Duration::from_millis(999)),
            PunchStep::Try {
                index: 1,
                shot: 1,
                addr: a[1]
            }
        );
        assert_eq!(
            s.next_change(NOW + STEP * 3),
            Some(NOW + STEP * 3 + STEP / 2)
        );
        assert_eq!(
            s.next_change(NOW + STEP * 3 + STEP / 2),
            Some(NOW + STEP * 4)
        );
        assert_eq!(s.step(NOW + STEP * 4), PunchStep::Done);
        assert_eq!(s.next_change(NOW + STEP * 4), None);
        assert!(!s.succeeded_by(Some(NOW)));
        assert!(s.succeeded_by(Some(NOW + STEP * 2)));
    }

    #[test]
    fn an_end_anyone_can_reach_only_listens_to_a_symmetric_peer() {
        use NatType::*;
        assert_eq!(punch_role(FullCone, Symmetric), PunchRole::Listen);
        assert_eq!(punch_role(Open, Symmetric), PunchRole::Listen);
        for (l, p) in [
            (Symmetric, FullCone),
            (FullCone, PortRestrictedCone),
            (FullCone, FullCone),
            (PortRestrictedCone, Symmetric),
            (Unknown, Symmetric),
        ] {
            assert_eq!(punch_role(l, p), PunchRole::Shoot, "{l:?} -> {p:?}");
        }
        let a = addrs(3);
        // The start is 2 s ahead; the listener holds its entry from now on (one unchanging
        // step: the entry is created once) until a full session after the start.
        let s = PunchSession::with_role(
            &[1; 32],
            [2; 32],
            [9; 32],
            a.clone(),
            NOW + STEP * 2,
            NOW,
            PunchRole::Listen,
        )
        .unwrap();
        let held = PunchStep::Try {
            index: 0,
            shot: 0,
            addr: a[0],
        };
        let end = NOW + STEP * (2 + MAX_STEPS as u32);
        assert!(s.succeeded_by(Some(NOW)));
        for t in [NOW, NOW + STEP / 2, NOW + STEP * 3, Millis(end.0 - 1)] {
            assert_eq!(s.step(t), held);
            assert_eq!(s.next_change(t), Some(end));
        }
        assert_eq!(s.step(end), PunchStep::Done);
    }

    #[test]
    fn the_end_with_the_larger_key_shoots_a_quarter_step_later() {
        let early = PunchSession::new(&[1; 32], [2; 32], [9; 32], addrs(2), NOW, NOW).unwrap();
        let late = PunchSession::new(&[2; 32], [1; 32], [9; 32], addrs(2), NOW, NOW).unwrap();
        let quarter = STEP / SHOTS / 2;
        assert!(matches!(
            early.step(NOW),
            PunchStep::Try {
                index: 0,
                shot: 0,
                ..
            }
        ));
        assert_eq!(late.step(NOW), PunchStep::Wait);
        assert_eq!(late.next_change(NOW), Some(NOW + quarter));
        assert!(matches!(
            late.step(NOW + quarter),
            PunchStep::Try {
                index: 0,
                shot: 0,
                ..
            }
        ));
        // Every shot of one end falls a quarter step away from the other end's re-creations.
        assert_eq!(early.next_change(NOW), Some(NOW + STEP / SHOTS));
        assert_eq!(
            late.next_change(NOW + quarter),
            Some(NOW + quarter + STEP / SHOTS)
        );
        // Both count a handshake from the introducer's start on (the early end's
        // initiation may complete on the late end before its own first shot).
        assert!(late.succeeded_by(Some(NOW)));
    }

    #[test]
    fn refuses_empty_or_far_future_starts_and_caps_the_steps() {
        assert!(PunchSession::new(&[1; 32], [2; 32], [9; 32], vec![], NOW, NOW).is_none());
        let far = NOW + MAX_START_AHEAD + Duration::from_millis(1);
        assert!(PunchSession::new(&[1; 32], [2; 32], [9; 32], addrs(1), far, NOW).is_none());
        let past =
            PunchSession::new(&[1; 32], [2; 32], [9; 32], addrs(10), Millis(1), NOW).unwrap();
        assert_eq!(past.start_at(), NOW, "a start in the past begins now");
        assert_eq!(
            past.step(NOW + STEP * MAX_STEPS as u32),
            PunchStep::Done,
            "at most {MAX_STEPS} candidates"
        );
    }
}
