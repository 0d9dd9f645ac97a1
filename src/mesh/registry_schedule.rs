//! The registry discovery schedule (pure, virtual time), one per configured registry: when to
//! publish this node's entry and when to fetch everyone else's.
//!
//! - At start: publish and fetch.
//! - Lonely: when the node has had no active peer for `lonely_after` (30 s; the DHT and LAN
//!   found nobody) and the registry has not been asked since it became lonely, fetch; while
//!   it stays lonely, ask again after doubling waits (30 s, 60 s, … up to `every`), so a
//!   node that is alone in its mesh does not poll every 30 s forever.
//! - Every `every` (15 minutes): publish again (entries live `ttl`, 1 hour, so a node
//!   republishes three times before its entry could expire) and fetch.
//! - When this node's record changes (new endpoints): publish again, at most once per
//!   `publish_spacing`.
//! - Errors back off: `backoff_first` doubling up to `backoff_max` with ± jitter, never less
//!   than a server's `retry-after`; a success resets it.
//!
//! The registry task does the I/O and reports back; nothing here sleeps or reads a clock.

use std::time::Duration;

use super::time::Millis;

/// The schedule's tunables (issue 9's figures by default).
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryScheduleConfig {
    /// Publish and fetch this often.
    pub every: Duration,
    /// Lifetime asked for each entry (seconds on the wire, at most 3600).
    pub ttl: Duration,
    /// A node with no active peer for this long asks the registry.
    pub lonely_after: Duration,
    /// A changed record is published at most this often.
    pub publish_spacing: Duration,
    /// First error back-off, doubled per failure up to `backoff_max`, ± `backoff_jitter`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    pub backoff_jitter: f64,
}

impl Default for RegistryScheduleConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(15 * 60),
            ttl: Duration::from_secs(3600),
            lonely_after: Duration::from_secs(30),
            publish_spacing: Duration::from_secs(10),
            backoff_first: Duration::from_secs(10),
            backoff_max: Duration::from_secs(15 * 60),
            backoff_jitter: 0.2,
        }
    }
}

/// What is due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegistryRound {
    /// Publish this node's current record.
    pub publish: bool,
    /// List everyone's entries.
    pub fetch: bool,
}

impl RegistryRound {
    pub fn any(self) -> bool {
        self.publish || self.fetch
    }
}

/// One registry's schedule.
#[derive(Debug, Clone)]
pub struct RegistrySchedule {
    config: RegistryScheduleConfig,
    /// The record sequence last published (None: never).
    published_seq: Option<u64>,
    last_publish: Option<Millis>,
    last_fetch: Option<Millis>,
    /// Since when the node has had no active peer (None: it has peers).
    lonely_since: Option<Millis>,
    /// The wait before the next lonely fetch (doubles while lonely).
    lonely_wait: Duration,
    /// Consecutive failures and the time before which nothing is tried.
    failures: u32,
    backoff_until: Option<Millis>,
}

impl RegistrySchedule {
    /// A schedule for a node started at `now` (publish and fetch are due at once).
    pub fn new(config: RegistryScheduleConfig, now: Millis) -> Self {
        let lonely_wait = config.lonely_after;
        Self {
            config,
            published_seq: None,
            last_publish: None,
            last_fetch: None,
            lonely_since: Some(now),
            lonely_wait,
            failures: 0,
            backoff_until: None,
        }
    }

    pub fn config(&self) -> &RegistryScheduleConfig {
        &self.config
    }

    /// The entry lifetime in whole seconds, 1..=3600 (PROTOCOL.md §15).
    pub fn ttl_secs(&self) -> u16 {
        self.config.ttl.as_secs().clamp(1, 3600) as u16
    }

    /// How many peers are active now (any discovery method).
    pub fn observe_peers(&mut self, now: Millis, active: usize) {
        if active > 0 {
            self.lonely_since = None;
            self.lonely_wait = self.config.lonely_after;
        } else if self.lonely_since.is_none() {
            self.lonely_since = Some(now);
        }
    }

    /// When the lonely rule next asks (None: not lonely).
    fn lonely_due_at(&self) -> Option<Millis> {
        let since = self.lonely_since?;
        let base = match self.last_fetch {
            // Asked since becoming lonely: wait the (doubling) lonely wait from that ask.
            Some(f) if f >= since => f,
            _ => since,
        };
        Some(base.plus(self.lonely_wait))
    }

    fn publish_due_at(&self, record_seq: u64) -> Millis {
        match (self.published_seq, self.last_publish) {
            (None, _) | (_, None) => Millis::ZERO,
            (Some(seq), Some(at)) if seq != record_seq => at.plus(self.config.publish_spacing),
            (Some(_), Some(at)) => at.plus(self.config.every),
        }
    }

    fn fetch_due_at(&self) -> Millis {
        let periodic = match self.last_fetch {
            None => Millis::ZERO,
            Some(at) => at.plus(self.config.every),
        };
        match self.lonely_due_at() {
            Some(l) => periodic.min(l),
            None => periodic,
        }
    }

    /// What is due at `now` for a node whose current record has sequence `record_seq`.
    pub fn due(&self, now: Millis, record_seq: u64) -> RegistryRound {
        if self.backoff_until.is_some_and(|b| now < b) {
            return RegistryRound::default();
        }
        RegistryRound {
            publish: now >= self.publish_due_at(record_seq),
            fetch: now >= self.fetch_due_at(),
        }
    }

    /// When anything is next due (the task sleeps until then, or until the record changes).
    pub fn next_wake(&self, record_seq: u64) -> Millis {
        let next = self.publish_due_at(record_seq).min(self.fetch_due_at());
        match self.backoff_until {
            Some(b) => next.max(b),
            None => next,
        }
    }

    /// `seq` was published at `now`.
    pub fn published(&mut self, now: Millis, seq: u64) {
        self.published_seq = Some(seq);
        self.last_publish = Some(now);
        self.succeeded();
    }

    /// The entries were fetched at `now`.
    pub fn fetched(&mut self, now: Millis) {
        if self
            .lonely_since
            .is_some_and(|since| self.last_fetch.is_some_and(|f| f >= since))
        {
            // A repeated lonely ask: wait longer before the next one.
            self.lonely_wait = (self.lonely_wait * 2).min(self.config.every);
        }
        self.last_fetch = Some(now);
        self.succeeded();
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.backoff_until = None;
    }

    /// A request failed at `now`; `retry_after` is what the server asked for, `jitter` in
    /// 0..1. Returns the wait before the next try.
    pub fn failed(&mut self, now: Millis, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let doubled = self
            .config
            .backoff_first
            .saturating_mul(1u32 << self.failures.min(16));
        let base = doubled.min(self.config.backoff_max);
        let j = 1.0 + self.config.backoff_jitter * (2.0 * jitter.clamp(0.0, 1.0) - 1.0);
        let mut wait = base.mul_f64(j.max(0.0));
        if let Some(r) = retry_after {
            wait = wait.max(r);
        }
        self.failures = self.failures.saturating_add(1);
        self.backoff_until = Some(now.plus(wait));
        wait
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether an entry published with sequence (unix ms) `seq` and lifetime `ttl_secs` has
    /// expired at unix time `now_ms` (readers ignore those, PROTOCOL.md §15).
    pub fn expired(seq: u64, ttl_secs: u16, now_ms: u64) -> bool {
        seq.saturating_add(u64::from(ttl_secs) * 1000) < now_ms
    }
}

#[cfg(test)]
#[path = "registry_schedule_tests.rs"]
mod tests;
