//! The relay quality score: link quality of both legs (this node → relay, relay → peer, each
//! 0..=100 from probe RTTs), times a load factor from the relay's advertised load: ×(1 − load/100),
//! and ×0.4 more above 90 % of its `--max-relayed-peers`. Scores are in hundredths (0..=10000)
//! so they sort and compare exactly. A leg not measured yet counts as quality 50.

use crate::proto::RelayLoad;

/// Quality assumed for a leg the relay → peer side has not reported yet.
pub const UNKNOWN_LEG_QUALITY: u8 = 50;
/// Above this share (percent) of its capacity a relay is penalised further.
pub const NEARLY_FULL_PERCENT: u32 = 90;
/// The extra factor (percent) of a nearly full relay.
pub const NEARLY_FULL_FACTOR_PERCENT: u32 = 40;
/// A new relay must score at least this much (percent) more than the current one to switch.
pub const SWITCH_GAIN_PERCENT: u32 = 10;

/// The load factor in percent: 100 − load (floored at 0), times 0.4 above 90 % of the
/// relay's capacity; 100 when the relay advertises no load.
pub fn load_factor_percent(load: Option<RelayLoad>) -> u32 {
    let Some(l) = load else { return 100 };
    let mut f = 100u32.saturating_sub(l.relayed);
    if u64::from(l.relayed) * 100 > u64::from(l.max) * u64::from(NEARLY_FULL_PERCENT) {
        f = f * NEARLY_FULL_FACTOR_PERCENT / 100;
    }
    f
}

/// The score (hundredths, 0..=10000) of a relay whose legs have qualities `local_leg` and
/// `peer_leg` (unknown: 50) and which advertises `load`.
pub fn relay_score(local_leg: u8, peer_leg: Option<u8>, load: Option<RelayLoad>) -> u32 {
    let a = u32::from(local_leg.min(100));
    let b = u32::from(peer_leg.unwrap_or(UNKNOWN_LEG_QUALITY).min(100));
    a * b * load_factor_percent(load) / 100
}

/// Whether `new` is clearly better than `current`: at least 10 % more (and more at all).
/// A scored relay beats one that cannot be scored; an unscored one never wins.
pub fn clearly_better(new: Option<u32>, current: Option<u32>) -> bool {
    match (new, current) {
        (Some(n), Some(c)) => {
            n > c && u64::from(n) * 100 >= u64::from(c) * u64::from(100 + SWITCH_GAIN_PERCENT)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(relayed: u32, max: u32) -> Option<RelayLoad> {
        Some(RelayLoad { relayed, max })
    }

    #[test]
    fn load_factor_table() {
        let table = [
            (None, 100, "no load advertised"),
            (load(0, 64), 100, "idle"),
            (load(10, 64), 90, "10 relayed"),
            (load(57, 64), 43, "57 of 64 (89 %)"),
            (load(58, 64), 16, "58 of 64 (over 90 %): 42 × 0.4"),
            (load(100, 1000), 0, "100 relayed floors at 0"),
            (load(10, 10), 36, "full"),
        ];
        for (l, f, why) in table {
            assert_eq!(load_factor_percent(l), f, "{why}");
        }
    }

    #[test]
    fn score_multiplies_both_legs_and_the_load_factor() {
        assert_eq!(relay_score(100, Some(100), None), 10_000);
        assert_eq!(relay_score(50, Some(50), None), 2_500);
        assert_eq!(relay_score(90, None, None), 4_500, "unknown peer leg = 50");
        assert_eq!(relay_score(100, Some(100), load(10, 64)), 9_000);
        assert_eq!(relay_score(100, Some(100), load(60, 64)), 1_600);
        // 150 ms of added delay on both legs (quality 50 each) loses to a clean relay even
        // when the clean one carries 50 peers.
        assert!(relay_score(50, Some(50), None) < relay_score(100, Some(100), load(50, 64)));
    }

    #[test]
    fn switching_needs_ten_percent() {
        assert!(clearly_better(Some(1100), Some(1000)));
        assert!(!clearly_better(Some(1099), Some(1000)));
        assert!(!clearly_better(Some(1000), Some(1000)));
        assert!(clearly_better(Some(1), Some(0)));
        assert!(!clearly_better(Some(0), Some(0)));
        assert!(clearly_better(Some(0), None));
        assert!(!clearly_better(None, Some(0)));
        assert!(!clearly_better(None, None));
    }
}
