//! Relay policy: whether a peer is reached through a relay ([`should_relay`], with hysteresis),
//! which relays are usable and how they rank ([`rank_relays`] by [`relay_score`]: both legs'
//! link quality and the relay's load), how a pair stays on, switches and reverts relays
//! ([`RelaySwitch`]), the [`RelayTracker`] that runs these per check and yields the peer →
//! relay map the planner reads, the [`RelayAgreement`] that runs a pass over all peers and
//! keeps both sides of a pair on one path and one relay, and a relay's own load
//! ([`RelayLoadCounter`]).

pub mod agreement;
#[cfg(test)]
mod agreement_tests;
pub mod decide;
pub mod load;
pub mod score;
pub mod select;
pub mod switch;
pub mod tracker;

pub use agreement::{
    DIRECT_ANSWER_FRESH_FOR, LocalRelayFacts, NOTICE_EVERY, NOTICE_FRESH_FOR, NoticeToSend,
    PeerEvidence, ReceivedNotice, RelayAgreement, RelayChange, RelayPass,
};
pub use decide::{
    DIRECT_CHECKS_TO_LEAVE_RELAY, NeverRelayReason, PROBE_FAILURES_TO_RELAY, RelayHysteresis,
    RelayInputs, RelayReason, RelayVerdict, on_shared_lan, should_relay,
};
pub use load::RelayLoadCounter;
pub use score::{clearly_better, load_factor_percent, relay_score};
pub use select::{
    INTRODUCER_FRESH_FOR, RELAY_FAILURE_COOLDOWN, RelayCandidate, RelayChoice, RelayCooldowns,
    pair_hash, rank_relays, relay_candidates, select_relay,
};
pub use switch::{REEVALUATE_EVERY, REVERT_AFTER, RelaySwitch, SwitchOutcome};
pub use tracker::RelayTracker;
