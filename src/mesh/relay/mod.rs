//! Relay policy: whether a peer is reached through a relay ([`should_relay`], with hysteresis),
//! which relay ([`select_relay`], with fallbacks and a cooldown for failed relays), and the
//! [`RelayTracker`] that runs both per check and yields the peer → relay map the planner reads,
//! and the [`RelayAgreement`] that runs a pass over all peers and keeps both sides of a pair
//! on one path.

pub mod agreement;
#[cfg(test)]
mod agreement_tests;
pub mod decide;
pub mod select;
pub mod tracker;

pub use agreement::{
    DIRECT_ANSWER_FRESH_FOR, LocalRelayFacts, NOTICE_EVERY, NOTICE_FRESH_FOR, NoticeToSend,
    PeerEvidence, RelayAgreement, RelayPass,
};
pub use decide::{
    DIRECT_CHECKS_TO_LEAVE_RELAY, NeverRelayReason, PROBE_FAILURES_TO_RELAY, RelayHysteresis,
    RelayInputs, RelayReason, RelayVerdict, on_shared_lan, should_relay,
};
pub use select::{
    INTRODUCER_FRESH_FOR, RELAY_FAILURE_COOLDOWN, RelayCandidate, RelayChoice, RelayCooldowns,
    pair_hash, relay_candidates, select_relay,
};
pub use tracker::RelayTracker;
