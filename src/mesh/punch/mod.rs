//! Hole punching through introducers, pure: which addresses to try for a peer
//! ([`candidates`]), when a node asks introducers for a rendezvous and which ones
//! ([`schedule`]), what an introducer answers ([`introduce`]) and the timed steps of one
//! punch ([`session`]). The daemon moves packets and WireGuard entries; every decision is here.

pub mod candidates;
pub mod introduce;
pub mod schedule;
pub mod session;

pub use candidates::punch_candidates;
pub use introduce::{Introductions, START_AHEAD};
pub use schedule::{MAX_INTRODUCERS, PunchScheduler, introducers_for};
pub use session::{PunchRole, PunchSession, PunchStep, punch_role};
