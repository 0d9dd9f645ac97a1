//! The DHT discovery schedule (pure, virtual time): when to bootstrap and from which source,
//! how bootstrap failures back off, when to announce the control port under the hourly topics,
//! when to look them up, which found addresses to contact (each at most once a minute, bounded
//! memory), when to store this node's BEP 44 item again, and which quiet peers' items to fetch.
//! The daemon's DHT task does the I/O and reports back; nothing here sleeps or reads a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::WgKey;
use super::health::probe::{ProbeNeed, needs_probing};
use super::time::Millis;

/// The schedule's tunables (PROTOCOL.md §14 and the discovery issue's figures by default).
#[derive(Debug, Clone, PartialEq)]
pub struct DhtScheduleConfig {
    /// Announce under the current and previous hour's topics this often (and when the hour
    /// turns).
    pub announce_every: Duration,
    /// Right after bootstrapping, look up again after this, doubling up to `lookup_every`
    /// (nodes that start together announce a moment apart: the first lookup sees only those
    /// that were quicker, and a NATed node cannot be greeted by the others until it greets
    /// them) …
    pub lookup_first: Duration,
    /// … then look the topics up this often while fewer than `busy_peers` peers are active …
    pub lookup_every: Duration,
    /// … and this often once at least `busy_peers` are.
    pub lookup_every_busy: Duration,
    pub busy_peers: usize,
    /// Contact one address found in the DHT at most this often.
    pub contact_every: Duration,
    /// Most addresses remembered for the contact limit.
    pub max_contacts: usize,
    /// First bootstrap back-off, doubled per failure up to `backoff_max`, ± `backoff_jitter`.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    pub backoff_jitter: f64,
    /// Store this node's item again this often (BEP 44 items expire) …
    pub item_refresh_every: Duration,
    /// … and retry this soon after a failed store.
    pub item_retry_after: Duration,
    /// A quiet peer's item is fetched after `fetch_first`, then after `fetch_every`, doubling
    /// up to `fetch_max` while it stays quiet.
    pub fetch_first: Duration,
    pub fetch_every: Duration,
    pub fetch_max: Duration,
    /// Most item fetches started at once.
    pub max_fetches: usize,
    /// Most peers remembered for item fetches (also after they left the store) …
    pub max_known: usize,
    /// … each for this long after it was last healthy.
    pub forget_after: Duration,
}

impl Default for DhtScheduleConfig {
    fn default() -> Self {
        Self {
            announce_every: Duration::from_secs(15 * 60),
            lookup_first: Duration::from_secs(3),
            lookup_every: Duration::from_secs(30),
            lookup_every_busy: Duration::from_secs(60),
            busy_peers: 3,
            contact_every: Duration::from_secs(60),
            max_contacts: 1024,
            backoff_first: Duration::from_secs(5),
            backoff_max: Duration::from_secs(60),
            backoff_jitter: 0.25,
            item_refresh_every: Duration::from_secs(30 * 60),
            item_retry_after: Duration::from_secs(30),
            fetch_first: Duration::from_secs(0),
            fetch_every: Duration::from_secs(30),
            fetch_max: Duration::from_secs(10 * 60),
            max_fetches: 8,
            max_known: 1024,
            forget_after: Duration::from_secs(3600),
        }
    }
}

/// Where a bootstrap attempt takes its first DHT nodes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapSource {
    /// The routing table persisted by the previous run.
    Persisted,
    /// `--dht-bootstrap` / `dht-bootstrap` in the config file.
    Configured,
    /// The well-known public routers (only when nothing is configured).
    PublicRouters,
}

impl BootstrapSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Persisted => "persisted",
            Self::Configured => "configured",
            Self::PublicRouters => "public-routers",
        }
    }
}

/// Where the DHT client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhtPhase {
    /// An attempt is due now.
    Starting,
    /// An attempt is running.
    Bootstrapping(BootstrapSource),
    /// Bootstrapped: announces and lookups run.
    Ready(BootstrapSource),
    /// The last attempt failed; the next one is due at the given time.
    BackingOff(Millis),
}

impl DhtPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Bootstrapping(_) => "bootstrapping",
            Self::Ready(_) => "ready",
            Self::BackingOff(_) => "backing-off",
        }
    }
}

/// Whether a peer went quiet: the same rule the health prober uses (handshake older than
/// 150 s, or none within 45 s of being known).
pub fn is_quiet(last_handshake: Option<Millis>, first_seen: Millis, now: Millis) -> bool {
    needs_probing(
        &ProbeNeed {
            last_handshake,
            relayed: false,
            suspect: false,
            first_seen,
            relay_leg: false,
        },
        now,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fetch {
    next: Millis,
    interval: Duration,
}

/// A peer remembered for item fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownPeer {
    pub ed25519: [u8; 32],
    /// Newest record sequence seen for it.
    pub sequence: u64,
    /// When it was last healthy (not quiet and in the store).
    pub healthy_at: Millis,
}

/// The whole schedule.
#[derive(Debug, Clone)]
pub struct DhtSchedule {
    config: DhtScheduleConfig,
    sources: Vec<BootstrapSource>,
    phase: DhtPhase,
    failures: u32,
    next_announce: Millis,
    next_lookup: Millis,
    /// Lookups since the last bootstrap (the early ones come sooner).
    lookups: u32,
    item_seq: Option<u64>,
    next_item: Millis,
    contacted: BTreeMap<SocketAddr, Millis>,
    known: BTreeMap<WgKey, KnownPeer>,
    fetches: BTreeMap<WgKey, Fetch>,
}

impl DhtSchedule {
    /// A schedule that bootstraps at once. `persisted`: a routing table was saved;
    /// `configured`: bootstrap nodes were given (the public routers are used only without).
    pub fn new(config: DhtScheduleConfig, persisted: bool, configured: bool) -> Self {
        let mut sources = Vec::new();
        if persisted {
            sources.push(BootstrapSource::Persisted);
        }
        sources.push(if configured {
            BootstrapSource::Configured
        } else {
            BootstrapSource::PublicRouters
        });
        Self {
            config,
            sources,
            phase: DhtPhase::Starting,
            failures: 0,
            next_announce: Millis::ZERO,
            next_lookup: Millis::ZERO,
            lookups: 0,
            item_seq: None,
            next_item: Millis::ZERO,
            contacted: BTreeMap::new(),
            known: BTreeMap::new(),
            fetches: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &DhtScheduleConfig {
        &self.config
    }

    pub fn phase(&self) -> DhtPhase {
        self.phase
    }

    /// Failed bootstrap attempts in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The source of the bootstrap attempt due now, if one is (the phase becomes
    /// `Bootstrapping`). The sources are tried in order, one per attempt, round and round.
    pub fn bootstrap_due(&mut self, now: Millis) -> Option<BootstrapSource> {
        let due = match self.phase {
            DhtPhase::Starting => true,
            DhtPhase::BackingOff(at) => now >= at,
            DhtPhase::Bootstrapping(_) | DhtPhase::Ready(_) => false,
        };
        if !due {
            return None;
        }
        let source = self.sources[self.failures as usize % self.sources.len()];
        self.phase = DhtPhase::Bootstrapping(source);
        Some(source)
    }

    /// The attempt found DHT nodes: announce, look up and store the item now.
    pub fn bootstrap_succeeded(&mut self, now: Millis) {
        let source = match self.phase {
            DhtPhase::Bootstrapping(s) | DhtPhase::Ready(s) => s,
            _ => self.sources[0],
        };
        self.phase = DhtPhase::Ready(source);
        self.failures = 0;
        self.next_announce = now;
        self.next_lookup = now;
        self.lookups = 0;
        self.next_item = now;
    }

    /// The attempt found no node (or the routing table emptied): back off 5 s doubling to
    /// 60 s, ± 25 %. `unit` is a random number in [0, 1). Returns the wait.
    pub fn bootstrap_failed(&mut self, now: Millis, unit: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(16);
        let base = self
            .config
            .backoff_first
            .saturating_mul(1u32 << exp)
            .min(self.config.backoff_max);
        let factor = 1.0 + self.config.backoff_jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let wait = base.mul_f64(factor.max(0.0));
        self.phase = DhtPhase::BackingOff(now.plus(wait));
        wait
    }

    fn ready(&self) -> bool {
        matches!(self.phase, DhtPhase::Ready(_))
    }

    /// Whether to announce now (ready and due).
    pub fn announce_due(&self, now: Millis) -> bool {
        self.ready() && now >= self.next_announce
    }

    /// Announced at `now` (unix milliseconds): next time in 15 minutes, or just after the
    /// hour turns if that is sooner (the new hour's topic is then announced at once).
    pub fn announced(&mut self, now: Millis) {
        let next_hour = Millis((now.0 / 3_600_000 + 1) * 3_600_000 + 1_000);
        self.next_announce = now.plus(self.config.announce_every).min(next_hour);
    }

    /// Whether to look the topics up now.
    pub fn lookup_due(&self, now: Millis) -> bool {
        self.ready() && now >= self.next_lookup
    }

    /// Looked up at `now` with `active_peers` active: next in 3, 6, 12, 24 s after a
    /// bootstrap, then every 30 s, or 60 s once the mesh has at least 3 active peers.
    pub fn looked_up(&mut self, now: Millis, active_peers: usize) {
        let every = if active_peers >= self.config.busy_peers {
            self.config.lookup_every_busy
        } else {
            self.config.lookup_every
        };
        let early = self
            .config
            .lookup_first
            .saturating_mul(1u32 << self.lookups.min(16));
        self.lookups = self.lookups.saturating_add(1);
        self.next_lookup = now.plus(early.min(every));
    }

    /// Of the addresses a lookup found, those to contact now: not in `skip` (this node's own
    /// addresses, peers already connected) and not contacted in the last minute. Remembers
    /// them; the memory is bounded (entries older than the limit go first, then the oldest).
    pub fn contacts(
        &mut self,
        now: Millis,
        found: impl IntoIterator<Item = SocketAddr>,
        skip: &BTreeSet<SocketAddr>,
    ) -> Vec<SocketAddr> {
        let every = self.config.contact_every;
        let mut out = Vec::new();
        for addr in found {
            if skip.contains(&addr) || out.contains(&addr) {
                continue;
            }
            if self
                .contacted
                .get(&addr)
                .is_some_and(|t| now.since(*t) < every)
            {
                continue;
            }
            if self.contacted.len() >= self.config.max_contacts
                && !self.contacted.contains_key(&addr)
            {
                self.contacted.retain(|_, t| now.since(*t) < every);
                if self.contacted.len() >= self.config.max_contacts {
                    // Every remembered address is recent: the new one waits for a later round.
                    continue;
                }
            }
            self.contacted.insert(addr, now);
            out.push(addr);
        }
        out
    }

    /// Addresses remembered for the contact limit.
    pub fn contacts_remembered(&self) -> usize {
        self.contacted.len()
    }

    /// Whether to store this node's item now: the record changed (sequence `seq`) or the
    /// refresh is due.
    pub fn item_due(&self, now: Millis, seq: u64) -> bool {
        self.ready() && (self.item_seq != Some(seq) || now >= self.next_item)
    }

    /// The item with sequence `seq` was stored (or refused for good, e.g. too large): the
    /// next store is for a new record or the periodic refresh.
    pub fn item_stored(&mut self, now: Millis, seq: u64) {
        self.item_seq = Some(seq);
        self.next_item = now.plus(self.config.item_refresh_every);
    }

    /// Storing the item failed: try again soon (the record stays the pending one).
    pub fn item_failed(&mut self, now: Millis, seq: u64) {
        self.item_seq = Some(seq);
        self.next_item = now.plus(self.config.item_retry_after);
    }

    /// Notes a peer the store holds, with whether it is quiet now. Healthy peers refresh
    /// their memory and reset their fetch back-off. The memory is bounded: beyond the limit
    /// the peer healthy longest ago is forgotten.
    pub fn observe_peer(
        &mut self,
        now: Millis,
        key: WgKey,
        ed25519: [u8; 32],
        seq: u64,
        quiet: bool,
    ) {
        let entry = self.known.entry(key).or_insert(KnownPeer {
            ed25519,
            sequence: seq,
            healthy_at: now,
        });
        entry.ed25519 = ed25519;
        entry.sequence = entry.sequence.max(seq);
        if !quiet {
            entry.healthy_at = now;
            self.fetches.remove(&key);
        }
        while self.known.len() > self.config.max_known {
            let Some(oldest) = self
                .known
                .iter()
                .min_by_key(|(_, p)| p.healthy_at)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.known.remove(&oldest);
            self.fetches.remove(&oldest);
        }
    }

    /// Peers remembered for item fetches.
    pub fn known(&self) -> &BTreeMap<WgKey, KnownPeer> {
        &self.known
    }

    /// The items to fetch now: remembered peers that are quiet (`healthy` lists the peers the
    /// store holds and that are not quiet; every other remembered peer is quiet, including
    /// those that left the store), each first after `fetch_first`, then at doubling intervals
    /// up to `fetch_max`, at most `max_fetches` at once. Peers not healthy for an hour are
    /// forgotten.
    pub fn fetches_due(
        &mut self,
        now: Millis,
        healthy: &BTreeSet<WgKey>,
    ) -> Vec<(WgKey, [u8; 32], u64)> {
        let forget = self.config.forget_after;
        self.known
            .retain(|k, p| healthy.contains(k) || now.since(p.healthy_at) < forget);
        let known = &self.known;
        self.fetches
            .retain(|k, _| known.contains_key(k) && !healthy.contains(k));
        let mut out = Vec::new();
        for (key, peer) in &self.known {
            if healthy.contains(key) || out.len() >= self.config.max_fetches {
                continue;
            }
            let first = self.config.fetch_first;
            let f = self.fetches.entry(*key).or_insert(Fetch {
                next: now.plus(first),
                interval: self.config.fetch_every.max(Duration::from_secs(1)),
            });
            if now >= f.next {
                out.push((*key, peer.ed25519, peer.sequence));
                f.next = now.plus(f.interval);
                f.interval = f.interval.saturating_mul(2).min(self.config.fetch_max);
            }
        }
        out
    }

    /// A fetched item held a newer record: remember its sequence, fetch again soon if the
    /// peer stays quiet.
    pub fn fetched_newer(&mut self, now: Millis, key: &WgKey, seq: u64) {
        if let Some(p) = self.known.get_mut(key) {
            p.sequence = p.sequence.max(seq);
        }
        if let Some(f) = self.fetches.get_mut(key) {
            f.interval = self.config.fetch_every.max(Duration::from_secs(1));
            f.next = now.plus(f.interval);
        }
    }

    /// The earliest time something is due (the task sleeps until then, or until an event).
    pub fn next_wake(&self, now: Millis) -> Millis {
        let far = now.plus(Duration::from_secs(3600));
        let mut at = match self.phase {
            DhtPhase::Starting => now,
            DhtPhase::BackingOff(t) => t,
            DhtPhase::Bootstrapping(_) => far,
            DhtPhase::Ready(_) => self.next_announce.min(self.next_lookup).min(self.next_item),
        };
        if self.ready() {
            for f in self.fetches.values() {
                at = at.min(f.next);
            }
        }
        at.max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const T0: Millis = Millis(1_700_000_000_000);

    fn at(secs: u64) -> Millis {
        T0.plus(Duration::from_secs(secs))
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)), 51833)
    }

    fn ready(persisted: bool) -> DhtSchedule {
        let mut s = DhtSchedule::new(DhtScheduleConfig::default(), persisted, true);
        s.bootstrap_due(T0);
        s.bootstrap_succeeded(T0);
        s
    }

    #[test]
    fn bootstrap_sources_in_order_and_backoff_doubles_to_a_minute_with_jitter() {
        let mut s = DhtSchedule::new(DhtScheduleConfig::default(), true, true);
        assert_eq!(s.bootstrap_due(T0), Some(BootstrapSource::Persisted));
        assert_eq!(s.bootstrap_due(T0), None, "one attempt at a time");
        // Middle of the jitter range: exactly 5, 10, 20, 40, 60, 60 s.
        let mut now = T0;
        let mut waits = Vec::new();
        let mut sources = Vec::new();
        for _ in 0..6 {
            let w = s.bootstrap_failed(now, 0.5);
            waits.push(w.as_secs());
            assert_eq!(s.bootstrap_due(Millis(now.plus(w).0 - 1)), None);
            now = now.plus(w);
            sources.push(s.bootstrap_due(now).unwrap());
        }
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        assert_eq!(sources[0], BootstrapSource::Configured);
        assert_eq!(sources[1], BootstrapSource::Persisted);
        // ± 25 % at the extremes.
        let mut s = DhtSchedule::new(DhtScheduleConfig::default(), false, false);
        assert_eq!(s.bootstrap_due(T0), Some(BootstrapSource::PublicRouters));
        assert_eq!(s.bootstrap_failed(T0, 0.0), Duration::from_millis(3750));
        s.bootstrap_due(at(10));
        assert_eq!(s.bootstrap_failed(T0, 0.999_999).as_millis(), 12_499);
        // Success resets the back-off.
        s.bootstrap_due(at(100));
        s.bootstrap_succeeded(at(100));
        assert_eq!(s.failures(), 0);
        assert!(matches!(
            s.phase(),
            DhtPhase::Ready(BootstrapSource::PublicRouters)
        ));
        assert_eq!(s.bootstrap_failed(at(200), 0.5), Duration::from_secs(5));
    }

    #[test]
    fn nothing_is_announced_or_looked_up_before_bootstrap() {
        let mut s = DhtSchedule::new(DhtScheduleConfig::default(), false, true);
        assert!(!s.announce_due(T0) && !s.lookup_due(T0) && !s.item_due(T0, 1));
        s.bootstrap_due(T0);
        s.bootstrap_failed(T0, 0.5);
        assert!(!s.announce_due(at(100)) && !s.lookup_due(at(100)));
        assert_eq!(s.next_wake(T0), at(5));
    }

    #[test]
    fn announce_at_start_every_15_minutes_and_when_the_hour_turns() {
        // T0 is 22:13:20 UTC: the hour turns in 46 min 40 s.
        let mut s = ready(false);
        assert!(s.announce_due(T0));
        s.announced(T0);
        assert!(!s.announce_due(at(899)));
        assert!(s.announce_due(at(900)));
        s.announced(at(2700));
        // 22:58:20 + 15 min would be 23:13:20; the hour turns at 23:00:00 (+1 s).
        let turn = Millis((T0.0 / 3_600_000 + 1) * 3_600_000 + 1000);
        assert!(!s.announce_due(Millis(turn.0 - 1)));
        assert!(s.announce_due(turn));
    }

    #[test]
    fn lookups_every_30_s_then_60_s_with_three_active_peers() {
        let mut s = ready(false);
        assert!(s.lookup_due(T0));
        // Early lookups after the bootstrap: 3, 6, 12, 24 s apart.
        let mut t = 0;
        for gap in [3, 6, 12, 24] {
            s.looked_up(at(t), 2);
            assert!(!s.lookup_due(at(t + gap - 1)) && s.lookup_due(at(t + gap)));
            t += gap;
        }
        s.looked_up(at(t), 2);
        assert!(!s.lookup_due(at(t + 29)) && s.lookup_due(at(t + 30)));
        t += 30;
        s.looked_up(at(t), 3);
        assert!(!s.lookup_due(at(t + 59)) && s.lookup_due(at(t + 60)));
    }

    #[test]
    fn each_address_contacted_at_most_once_a_minute_and_memory_is_bounded() {
        let mut s = ready(false);
        let skip = BTreeSet::from([addr(9)]);
        let got = s.contacts(T0, [addr(1), addr(2), addr(1), addr(9)], &skip);
        assert_eq!(got, [addr(1), addr(2)]);
        assert!(s.contacts(at(59), [addr(1)], &skip).is_empty());
        assert_eq!(s.contacts(at(60), [addr(1)], &skip), [addr(1)]);

        let config = DhtScheduleConfig {
            max_contacts: 3,
            ..DhtScheduleConfig::default()
        };
        let mut s = DhtSchedule::new(config, false, true);
        assert_eq!(s.contacts(T0, (1..=5).map(addr), &BTreeSet::new()).len(), 3);
        assert_eq!(s.contacts_remembered(), 3);
        // A minute later the old entries make room.
        assert_eq!(
            s.contacts(at(61), [addr(4), addr(5)], &BTreeSet::new())
                .len(),
            2
        );
        assert!(s.contacts_remembered() <= 3);
    }

    #[test]
    fn item_stored_on_record_change_and_every_30_minutes_retried_after_failure() {
        let mut s = ready(false);
        assert!(s.item_due(T0, 7));
        s.item_stored(T0, 7);
        assert!(!s.item_due(at(60), 7));
        assert!(s.item_due(at(60), 8), "record changed");
        s.item_failed(at(60), 8);
        assert!(!s.item_due(at(89), 8) && s.item_due(at(90), 8));
        s.item_stored(at(90), 8);
        assert!(!s.item_due(at(90 + 1799), 8) && s.item_due(at(90 + 1800), 8));
    }

    #[test]
    fn quiet_peers_items_are_fetched_with_backoff_and_healthy_ones_never() {
        let mut s = ready(false);
        let (a, b) = ([1u8; 32], [2u8; 32]);
        s.observe_peer(T0, a, [11; 32], 5, false);
        s.observe_peer(T0, b, [12; 32], 6, false);
        let all = BTreeSet::from([a, b]);
        assert!(s.fetches_due(T0, &all).is_empty());
        // b goes quiet (or leaves the store): fetched at once, then after 30, 60, 120 s …
        let healthy = BTreeSet::from([a]);
        s.observe_peer(at(10), b, [12; 32], 6, true);
        assert_eq!(s.fetches_due(at(10), &healthy), [(b, [12; 32], 6)]);
        assert!(s.fetches_due(at(39), &healthy).is_empty());
        assert_eq!(s.fetches_due(at(40), &healthy).len(), 1);
        assert!(s.fetches_due(at(99), &healthy).is_empty());
        assert_eq!(s.fetches_due(at(100), &healthy).len(), 1);
        // A newer record was found: the sequence is remembered, the back-off restarts.
        s.fetched_newer(at(100), &b, 9);
        assert_eq!(s.known()[&b].sequence, 9);
        assert_eq!(s.fetches_due(at(130), &healthy), [(b, [12; 32], 9)]);
        // Healthy again: no more fetches; quiet for an hour: forgotten.
        s.observe_peer(at(140), b, [12; 32], 9, false);
        assert!(s.fetches_due(at(141), &all).is_empty());
        assert!(s.fetches_due(at(140 + 3600), &healthy).is_empty());
        assert!(!s.known().contains_key(&b));
    }

    #[test]
    fn fetches_per_round_and_known_peers_are_bounded() {
        let config = DhtScheduleConfig {
            max_known: 10,
            ..DhtScheduleConfig::default()
        };
        let mut s = DhtSchedule::new(config, false, true);
        s.bootstrap_due(T0);
        s.bootstrap_succeeded(T0);
        for i in 0..20u8 {
            s.observe_peer(at(u64::from(i)), [i; 32], [i; 32], 1, true);
        }
        assert_eq!(s.known().len(), 10);
        assert_eq!(s.fetches_due(at(30), &BTreeSet::new()).len(), 8);
    }

    #[test]
    fn quiet_rule_matches_the_prober() {
        assert!(!is_quiet(Some(at(0)), at(0), at(150)));
        assert!(is_quiet(Some(at(0)), at(0), at(151)));
        assert!(!is_quiet(None, at(0), at(45)));
        assert!(is_quiet(None, at(0), at(46)));
    }

    #[test]
    fn next_wake_is_the_earliest_deadline() {
        let mut s = ready(false);
        assert_eq!(s.next_wake(T0), T0);
        s.announced(T0);
        s.looked_up(T0, 0);
        s.item_stored(T0, 1);
        // The first lookup after a bootstrap is followed by an early one.
        assert_eq!(s.next_wake(T0), at(3));
    }
}
