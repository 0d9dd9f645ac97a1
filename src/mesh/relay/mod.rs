//! Relay policy: whether a peer is reached through a relay ([`should_relay`], with hysteresis),
//! which relay ([`select_relay`], with fallbacks and a cooldown for failed relays), and the
//! [`RelayTracker`] that runs both per check and yields the peer → relay map the planner reads.

pub mod decide;
pub mod select;
pub mod tracker;

pub use decide::{
    DIRECT_CHECKS_TO_LEAVE_RELAY, NeverRelayReason, RelayHysteresis, RelayInputs, RelayReason,
    RelayVerdict, on_shared_lan, should_relay,
};
pub use select::{
    INTRODUCER_FRESH_FOR, RELAY_FAILURE_COOLDOWN, RelayCandidate, RelayChoice, RelayCooldowns,
    pair_hash, relay_candidates, select_relay,
};
pub use tracker::RelayTracker;
