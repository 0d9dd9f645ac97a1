//! Link quality from probe round-trip times: the median of the last 3 samples, exponentially
//! smoothed with weight 0.3, mapped to 0..=100 as `100 - rtt_ms / 3` (clamped); and the jitter,
//! the mean difference between consecutive RTTs, smoothed with the same weight.

use std::collections::VecDeque;
use std::time::Duration;

/// Weight of a new (median) sample in the smoothed RTT.
pub const SMOOTHING: f64 = 0.3;
/// Samples the median is taken over.
pub const MEDIAN_OF: usize = 3;

/// The quality score of a round-trip time: 100 − rtt_ms/3, clamped to 0..=100.
pub fn quality_from_rtt_ms(rtt_ms: f64) -> u8 {
    (100.0 - rtt_ms / 3.0).clamp(0.0, 100.0).round() as u8
}

/// One link's RTT history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkQuality {
    recent_ms: VecDeque<f64>,
    smoothed_ms: Option<f64>,
    jitter_ms: Option<f64>,
}

impl LinkQuality {
    /// Adds one probe RTT.
    pub fn add_rtt(&mut self, rtt: Duration) {
        let ms = rtt.as_secs_f64() * 1000.0;
        if let Some(&last) = self.recent_ms.back() {
            let step = (ms - last).abs();
            self.jitter_ms = Some(match self.jitter_ms {
                None => step,
                Some(prev) => SMOOTHING * step + (1.0 - SMOOTHING) * prev,
            });
        }
        if self.recent_ms.len() == MEDIAN_OF {
            self.recent_ms.pop_front();
        }
        self.recent_ms.push_back(ms);
        let mut sorted: Vec<f64> = self.recent_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        self.smoothed_ms = Some(match self.smoothed_ms {
            None => median,
            Some(prev) => SMOOTHING * median + (1.0 - SMOOTHING) * prev,
        });
    }

    /// The smoothed RTT in milliseconds, once a sample exists.
    pub fn smoothed_rtt_ms(&self) -> Option<f64> {
        self.smoothed_ms
    }

    /// The smoothed jitter (difference between consecutive RTTs) in milliseconds, once two
    /// samples exist.
    pub fn jitter_ms(&self) -> Option<f64> {
        self.jitter_ms
    }

    /// The quality score, once a sample exists.
    pub fn quality(&self) -> Option<u8> {
        self.smoothed_ms.map(quality_from_rtt_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_table() {
        let table = [
            (0.0, 100),
            (30.0, 90),
            (150.0, 50),
            (299.0, 0),
            (300.0, 0),
            (900.0, 0),
            (3.0, 99),
        ];
        for (rtt, q) in table {
            assert_eq!(quality_from_rtt_ms(rtt), q, "{rtt} ms");
        }
    }

    #[test]
    fn median_of_three_then_smoothing() {
        let mut l = LinkQuality::default();
        assert_eq!(l.quality(), None);
        let ms = Duration::from_millis;
        l.add_rtt(ms(30));
        assert_eq!(l.smoothed_rtt_ms(), Some(30.0));
        assert_eq!(l.quality(), Some(90));
        l.add_rtt(ms(90)); // median of [30, 90] = 60 -> 0.3*60 + 0.7*30 = 39
        assert!((l.smoothed_rtt_ms().unwrap() - 39.0).abs() < 1e-9);
        l.add_rtt(ms(3000)); // an outlier: median of [30, 90, 3000] = 90 -> 0.3*90 + 0.7*39 = 54.3
        assert!((l.smoothed_rtt_ms().unwrap() - 54.3).abs() < 1e-9);
        l.add_rtt(ms(60)); // window [90, 3000, 60] -> median 90 -> 0.3*90 + 0.7*54.3 = 65.01
        assert!((l.smoothed_rtt_ms().unwrap() - 65.01).abs() < 1e-9);
        assert_eq!(l.quality(), Some(78));
    }

    #[test]
    fn jitter_is_the_smoothed_step_between_samples() {
        let mut l = LinkQuality::default();
        let ms = Duration::from_millis;
        l.add_rtt(ms(10));
        assert_eq!(l.jitter_ms(), None, "one sample has no step");
        l.add_rtt(ms(20));
        assert_eq!(l.jitter_ms(), Some(10.0));
        l.add_rtt(ms(20)); // step 0 -> 0.7 * 10
        assert!((l.jitter_ms().unwrap() - 7.0).abs() < 1e-9);
        l.add_rtt(ms(0)); // step 20 -> 0.3*20 + 0.7*7 = 10.9
        assert!((l.jitter_ms().unwrap() - 10.9).abs() < 1e-9);
    }
}
