//! Probe loss: the outcome (answered or timed out) of each of the last 100 probes to a peer,
//! and the fraction lost among them.

use std::collections::VecDeque;

/// Probes the loss is counted over.
pub const LOSS_WINDOW: usize = 100;

/// The outcomes of a peer's latest probes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LossWindow {
    /// `true` for an answered probe, oldest first.
    outcomes: VecDeque<bool>,
    lost: usize,
}

impl LossWindow {
    /// Records one probe's outcome.
    pub fn record(&mut self, answered: bool) {
        if self.outcomes.len() == LOSS_WINDOW && self.outcomes.pop_front() == Some(false) {
            self.lost -= 1;
        }
        self.outcomes.push_back(answered);
        if !answered {
            self.lost += 1;
        }
    }

    /// Probes in the window.
    pub fn probes(&self) -> usize {
        self.outcomes.len()
    }

    /// The fraction of the window's probes that timed out (0.0..=1.0), once one was sent.
    pub fn loss(&self) -> Option<f64> {
        (!self.outcomes.is_empty()).then(|| self.lost as f64 / self.outcomes.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_counts_the_last_hundred_probes() {
        let mut w = LossWindow::default();
        assert_eq!(w.loss(), None);
        w.record(true);
        w.record(false);
        assert_eq!(w.loss(), Some(0.5));
        for _ in 0..98 {
            w.record(true);
        }
        assert_eq!((w.probes(), w.loss()), (100, Some(0.01)));
        // The loss slides out of the window.
        w.record(true);
        w.record(true);
        assert_eq!((w.probes(), w.loss()), (100, Some(0.0)));
        for _ in 0..100 {
            w.record(false);
        }
        assert_eq!(w.loss(), Some(1.0));
    }
}
