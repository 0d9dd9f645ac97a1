//! Which relay one relayed pair stays on, across passes: the best-scored relay is taken when
//! there is none (or the current one became unusable); the choice is re-evaluated every 60 s,
//! and at once when the current relay's score fell under half its best score since the last
//! evaluation or when more relays are measured than at the last evaluation (a choice made
//! before the legs were measured is revisited as soon as they are); a switch needs a relay clearly better ([`clearly_better`]: ≥ 10 %); and a switch
//! is a trial: unless a probe sent to the peer after it is answered within 3 s (the new relay
//! carries the pair), the pair goes back to the previous relay and the new one is reported
//! failed (the caller cools it down).

use std::time::Duration;

use crate::mesh::WgKey;
use crate::mesh::time::Millis;

use super::score::clearly_better;

/// How often a relayed pair's relay is re-evaluated.
pub const REEVALUATE_EVERY: Duration = Duration::from_secs(60);
/// A switch not confirmed by an answered probe within this time is reverted.
pub const REVERT_AFTER: Duration = Duration::from_secs(3);
/// A current relay whose score fell under this share (percent) of its best score since the
/// last evaluation is re-evaluated at once.
pub const DEGRADED_PERCENT: u64 = 50;

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchOutcome {
    /// Nothing changed.
    Kept,
    /// No usable relay was held: took the best.
    Took,
    /// Moved to a clearly better relay (a trial for [`REVERT_AFTER`]).
    Switched { from: WgKey },
    /// A trial got no answer in time: back to the previous relay; `failed` cools down.
    Reverted { failed: WgKey },
    /// Follows the relay the pair's decider chose.
    Followed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trial {
    previous: WgKey,
    since: Millis,
}

/// One pair's relay choice over time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelaySwitch {
    current: Option<WgKey>,
    score_at_evaluation: Option<u32>,
    evaluated_at: Millis,
    /// How many of the ranked relays had a score at the last evaluation.
    measured_at_evaluation: usize,
    trial: Option<Trial>,
}

fn measured(ranked: &[(WgKey, Option<u32>)]) -> usize {
    ranked.iter().filter(|(_, s)| s.is_some()).count()
}

fn score_of(ranked: &[(WgKey, Option<u32>)], key: &WgKey) -> Option<Option<u32>> {
    ranked.iter().find(|(k, _)| k == key).map(|(_, s)| *s)
}

impl RelaySwitch {
    /// The relay the pair goes through.
    pub fn relay(&self) -> Option<WgKey> {
        self.current
    }

    /// When a pending trial must be judged.
    pub fn trial_deadline(&self) -> Option<Millis> {
        self.trial.map(|t| t.since + REVERT_AFTER)
    }

    /// Follows the relay the pair's decider named (no trial: the decider runs it).
    pub fn follow(&mut self, relay: WgKey, now: Millis) -> SwitchOutcome {
        self.trial = None;
        if self.current == Some(relay) {
            return SwitchOutcome::Kept;
        }
        self.current = Some(relay);
        self.score_at_evaluation = None;
        self.evaluated_at = now;
        SwitchOutcome::Followed
    }

    /// One step. `ranked`: the usable relays, best first, with their scores (`None`: not
    /// measured); `answered`: when the latest answered probe to the peer was sent.
    pub fn step(
        &mut self,
        ranked: &[(WgKey, Option<u32>)],
        answered: Option<Millis>,
        now: Millis,
    ) -> SwitchOutcome {
        if let Some(t) = self.trial {
            if answered.is_some_and(|a| a >= t.since) {
                self.trial = None;
            } else if now.since(t.since) >= REVERT_AFTER {
                self.trial = None;
                let failed = self.current.unwrap_or(t.previous);
                self.current = score_of(ranked, &t.previous).map(|s| {
                    self.score_at_evaluation = s;
                    t.previous
                });
                self.evaluated_at = now;
                self.measured_at_evaluation = measured(ranked);
                return SwitchOutcome::Reverted { failed };
            } else {
                return SwitchOutcome::Kept;
            }
        }
        let Some(&(best, best_score)) = ranked.first() else {
            self.current = None;
            return SwitchOutcome::Kept;
        };
        let Some((current, current_score)) =
            self.current.and_then(|c| Some((c, score_of(ranked, &c)?)))
        else {
            self.current = Some(best);
            self.score_at_evaluation = best_score;
            self.evaluated_at = now;
            self.measured_at_evaluation = measured(ranked);
            return SwitchOutcome::Took;
        };
        let degraded = match (self.score_at_evaluation, current_score) {
            (Some(then), Some(s)) => u64::from(s) * 100 < u64::from(then) * DEGRADED_PERCENT,
            (None, Some(_)) => true,
            _ => false,
        };
        let newly_measured = measured(ranked) > self.measured_at_evaluation;
        if now.since(self.evaluated_at) < REEVALUATE_EVERY && !degraded && !newly_measured {
            // The reference is the best score seen since the evaluation (a leg measured or
            // reported later raises it).
            self.score_at_evaluation = self.score_at_evaluation.max(current_score);
            return SwitchOutcome::Kept;
        }
        self.evaluated_at = now;
        self.measured_at_evaluation = measured(ranked);
        if best != current && clearly_better(best_score, current_score) {
            self.current = Some(best);
            self.score_at_evaluation = best_score;
            self.trial = Some(Trial {
                previous: current,
                since: now,
            });
            return SwitchOutcome::Switched { from: current };
        }
        self.score_at_evaluation = current_score;
        SwitchOutcome::Kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: WgKey = [10; 32];
    const R2: WgKey = [11; 32];
    const T0: Millis = Millis(1_000_000);

    fn at(secs: u64) -> Millis {
        T0 + Duration::from_secs(secs)
    }

    #[test]
    fn takes_the_best_then_holds_it_until_the_next_evaluation() {
        let mut s = RelaySwitch::default();
        assert_eq!(s.step(&[], None, T0), SwitchOutcome::Kept);
        assert_eq!(s.relay(), None);
        let ranked = [(R1, Some(9000)), (R2, Some(8000))];
        assert_eq!(s.step(&ranked, None, T0), SwitchOutcome::Took);
        assert_eq!(s.relay(), Some(R1));
        // R2 becomes much better, but the evaluation is 60 s away (R1 did not degrade).
        let flipped = [(R2, Some(9500)), (R1, Some(8000))];
        assert_eq!(s.step(&flipped, None, at(59)), SwitchOutcome::Kept);
        assert_eq!(
            s.step(&flipped, None, at(60)),
            SwitchOutcome::Switched { from: R1 }
        );
        assert_eq!(s.relay(), Some(R2));
    }

    #[test]
    fn a_relay_measured_after_the_choice_is_considered_at_once() {
        let mut s = RelaySwitch::default();
        // R1 measured (poorly), R2 not yet: R1 is taken.
        assert_eq!(
            s.step(&[(R1, Some(25)), (R2, None)], None, T0),
            SwitchOutcome::Took
        );
        assert_eq!(s.relay(), Some(R1));
        // R2's legs are measured 10 s later and it is clearly better: no 60 s wait.
        assert_eq!(
            s.step(&[(R2, Some(80)), (R1, Some(25))], None, at(10)),
            SwitchOutcome::Switched { from: R1 }
        );
        // Nothing newly measured: held until the next evaluation.
        assert_eq!(
            s.step(&[(R2, Some(80)), (R1, Some(25))], Some(at(10)), at(11)),
            SwitchOutcome::Kept
        );
    }

    #[test]
    fn a_switch_needs_ten_percent() {
        let mut s = RelaySwitch::default();
        s.step(&[(R1, Some(5000))], None, T0);
        let slightly = [(R2, Some(5499)), (R1, Some(5000))];
        assert_eq!(s.step(&slightly, None, at(60)), SwitchOutcome::Kept);
        assert_eq!(s.relay(), Some(R1));
        let clearly = [(R2, Some(5500)), (R1, Some(5000))];
        assert_eq!(
            s.step(&clearly, None, at(120)),
            SwitchOutcome::Switched { from: R1 }
        );
    }

    #[test]
    fn a_degraded_relay_is_re_evaluated_at_once() {
        let mut s = RelaySwitch::default();
        s.step(&[(R1, Some(9000)), (R2, Some(8500))], None, T0);
        // 10 s later R1 lost half its score (150 ms of delay on its legs).
        let ranked = [(R2, Some(8500)), (R1, Some(4400))];
        assert_eq!(
            s.step(&ranked, None, at(10)),
            SwitchOutcome::Switched { from: R1 }
        );
        // Degraded but nothing better: kept, and the new score is the reference.
        let mut k = RelaySwitch::default();
        k.step(&[(R1, Some(9000))], None, T0);
        assert_eq!(
            k.step(&[(R1, Some(4000))], None, at(5)),
            SwitchOutcome::Kept
        );
        assert_eq!(
            k.step(&[(R1, Some(3000))], None, at(10)),
            SwitchOutcome::Kept
        );
        assert_eq!(k.evaluated_at, at(5), "3000 is not under half of 4000");
        // Taken before the peer leg was reported (50): the reference rises with the score, so
        // a later fall to under half of the real score counts.
        let mut r = RelaySwitch::default();
        r.step(&[(R1, Some(4950)), (R2, Some(2400))], None, T0);
        r.step(&[(R1, Some(9800)), (R2, Some(4800))], None, at(5));
        let ranked = [(R2, Some(9000)), (R1, Some(4800))];
        assert_eq!(
            r.step(&ranked, None, at(40)),
            SwitchOutcome::Switched { from: R1 }
        );
    }

    #[test]
    fn an_unanswered_switch_reverts_within_three_seconds() {
        let mut s = RelaySwitch::default();
        s.step(&[(R1, Some(5000)), (R2, Some(4000))], None, T0);
        let ranked = [(R2, Some(9000)), (R1, Some(5000))];
        assert_eq!(
            s.step(&ranked, Some(at(59)), at(60)),
            SwitchOutcome::Switched { from: R1 }
        );
        assert_eq!(s.trial_deadline(), Some(at(63)));
        // A probe answered, but it was sent before the switch: does not count.
        assert_eq!(s.step(&ranked, Some(at(59)), at(62)), SwitchOutcome::Kept);
        assert_eq!(s.relay(), Some(R2));
        assert_eq!(
            s.step(&ranked, Some(at(59)), at(63)),
            SwitchOutcome::Reverted { failed: R2 }
        );
        assert_eq!(s.relay(), Some(R1));
        assert_eq!(s.trial_deadline(), None);
    }

    #[test]
    fn an_answered_switch_stays() {
        let mut s = RelaySwitch::default();
        s.step(&[(R1, Some(5000))], None, T0);
        let ranked = [(R2, Some(9000)), (R1, Some(5000))];
        s.step(&ranked, None, at(60));
        assert_eq!(s.step(&ranked, Some(at(61)), at(61)), SwitchOutcome::Kept);
        assert_eq!(s.trial_deadline(), None);
        assert_eq!(s.step(&ranked, Some(at(61)), at(70)), SwitchOutcome::Kept);
        assert_eq!(s.relay(), Some(R2));
    }

    #[test]
    fn an_unusable_relay_is_replaced_and_a_follower_follows() {
        let mut s = RelaySwitch::default();
        s.step(&[(R1, Some(9000)), (R2, Some(100))], None, T0);
        assert_eq!(s.step(&[(R2, Some(100))], None, at(1)), SwitchOutcome::Took);
        assert_eq!(s.relay(), Some(R2));
        assert_eq!(s.follow(R1, at(2)), SwitchOutcome::Followed);
        assert_eq!(s.follow(R1, at(3)), SwitchOutcome::Kept);
        assert_eq!(s.relay(), Some(R1));
    }
}
