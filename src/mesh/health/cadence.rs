//! How often a peer that needs no urgent probing (a direct peer with a fresh handshake, not
//! suspect) is probed to keep its link quality measured: the worse the link, the more often —
//! every 10 s above 150 ms (or after a failed probe), 30 s from 50 to 150 ms, 60 s under
//! 50 ms. A relay candidate of a pair this node relays is probed at least every 10 s: its legs
//! decide which relay the pair takes. Urgent probing (relayed, suspect, stale; every second)
//! is [`super::probe::needs_probing`].

use std::time::Duration;

/// Probe interval of a poor link (RTT above [`POOR_ABOVE_MS`], or a probe just failed).
pub const POOR_EVERY: Duration = Duration::from_secs(10);
/// Probe interval of a fair link.
pub const FAIR_EVERY: Duration = Duration::from_secs(30);
/// Probe interval of a good link (RTT under [`GOOD_UNDER_MS`]).
pub const GOOD_EVERY: Duration = Duration::from_secs(60);
/// Above this smoothed RTT a link is poor.
pub const POOR_ABOVE_MS: f64 = 150.0;
/// Under this smoothed RTT a link is good.
pub const GOOD_UNDER_MS: f64 = 50.0;

/// The interval between quality probes of a peer whose smoothed RTT is `rtt_ms` (`None`: not
/// measured yet, probed as a poor link), `failing` when its latest probe timed out, and
/// `relay_leg` when it is a relay candidate for a pair this node relays.
pub fn quality_probe_every(rtt_ms: Option<f64>, failing: bool, relay_leg: bool) -> Duration {
    match rtt_ms {
        _ if failing || relay_leg => POOR_EVERY,
        None => POOR_EVERY,
        Some(r) if r > POOR_ABOVE_MS => POOR_EVERY,
        Some(r) if r >= GOOD_UNDER_MS => FAIR_EVERY,
        Some(_) => GOOD_EVERY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cadence_table() {
        let s = Duration::from_secs;
        let table = [
            (None, false, false, s(10), "not measured"),
            (Some(10.0), false, false, s(60), "good"),
            (Some(49.9), false, false, s(60), "just under 50 ms"),
            (Some(50.0), false, false, s(30), "50 ms"),
            (Some(150.0), false, false, s(30), "150 ms"),
            (Some(150.1), false, false, s(10), "above 150 ms"),
            (Some(10.0), true, false, s(10), "a probe failed"),
            (Some(10.0), false, true, s(10), "a relay leg"),
        ];
        for (rtt, failing, leg, every, why) in table {
            assert_eq!(quality_probe_every(rtt, failing, leg), every, "{why}");
        }
    }
}
