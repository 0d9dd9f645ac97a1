//! Virtual-time tests of the registry schedule.

use super::*;

const T0: Millis = Millis(1_700_000_000_000);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn schedule() -> RegistrySchedule {
    RegistrySchedule::new(RegistryScheduleConfig::default(), T0)
}

/// Runs whatever is due at `now` as a success.
fn run(s: &mut RegistrySchedule, now: Millis, seq: u64) -> RegistryRound {
    let round = s.due(now, seq);
    if round.publish {
        s.published(now, seq);
    }
    if round.fetch {
        s.fetched(now);
    }
    round
}

#[test]
fn start_publishes_and_fetches_then_waits_fifteen_minutes_when_peers_are_found() {
    let mut s = schedule();
    assert_eq!(
        run(&mut s, T0, 1),
        RegistryRound {
            publish: true,
            fetch: true
        }
    );
    s.observe_peers(T0.plus(secs(5)), 2);
    assert!(!s.due(T0.plus(secs(30)), 1).any());
    assert!(!s.due(T0.plus(secs(899)), 1).any());
    assert_eq!(s.next_wake(1), T0.plus(secs(900)));
    assert_eq!(
        run(&mut s, T0.plus(secs(900)), 1),
        RegistryRound {
            publish: true,
            fetch: true
        }
    );
    // Three publishes per entry lifetime: nothing expires while the node runs.
    assert!(u64::from(s.ttl_secs()) >= 3 * s.config().every.as_secs());
    assert_eq!(s.ttl_secs(), 3600);
}

#[test]
fn a_lonely_node_asks_after_30_s_once_then_ever_more_rarely() {
    let mut s = schedule();
    run(&mut s, T0, 1);
    s.observe_peers(T0.plus(secs(10)), 0);
    assert!(!s.due(T0.plus(secs(29)), 1).any());
    assert_eq!(s.next_wake(1), T0.plus(secs(30)));
    let r = run(&mut s, T0.plus(secs(30)), 1);
    assert!(r.fetch && !r.publish, "{r:?}");
    // Asked since: not again at 60 s, but after a doubled wait.
    assert!(!s.due(T0.plus(secs(60)), 1).any());
    assert!(s.due(T0.plus(secs(90)), 1).fetch);
    run(&mut s, T0.plus(secs(90)), 1);
    assert!(!s.due(T0.plus(secs(200)), 1).fetch);
    assert!(s.due(T0.plus(secs(210)), 1).fetch);
    // The wait never exceeds the periodic cadence.
    let mut now = T0.plus(secs(210));
    for _ in 0..20 {
        run(&mut s, now, 1);
        now = s.next_wake(1);
    }
    let before = now;
    run(&mut s, now, 1);
    assert!(s.next_wake(1).since(before) <= secs(900));
}

#[test]
fn finding_a_peer_stops_the_lonely_asks_and_losing_all_starts_them_again() {
    let mut s = schedule();
    run(&mut s, T0, 1);
    s.observe_peers(T0.plus(secs(20)), 1);
    assert!(!s.due(T0.plus(secs(30)), 1).any());
    s.observe_peers(T0.plus(secs(400)), 0);
    assert!(!s.due(T0.plus(secs(429)), 1).fetch);
    assert!(s.due(T0.plus(secs(430)), 1).fetch);
    run(&mut s, T0.plus(secs(430)), 1);
    // A peer again, then none: the lonely wait starts from 30 s again.
    s.observe_peers(T0.plus(secs(500)), 3);
    s.observe_peers(T0.plus(secs(600)), 0);
    assert!(s.due(T0.plus(secs(630)), 1).fetch);
}

#[test]
fn a_changed_record_is_published_soon_but_not_more_than_every_10_s() {
    let mut s = schedule();
    run(&mut s, T0, 1);
    s.observe_peers(T0, 1);
    let r = s.due(T0.plus(secs(3)), 2);
    assert!(!r.publish);
    assert_eq!(s.next_wake(2), T0.plus(secs(10)));
    let r = run(&mut s, T0.plus(secs(10)), 2);
    assert!(r.publish && !r.fetch, "{r:?}");
    assert!(!s.due(T0.plus(secs(15)), 2).any());
}

#[test]
fn errors_back_off_doubling_respect_retry_after_and_reset_on_success() {
    let cfg = RegistryScheduleConfig {
        backoff_jitter: 0.0,
        ..Default::default()
    };
    let mut s = RegistrySchedule::new(cfg, T0);
    assert!(s.due(T0, 1).any());
    assert_eq!(s.failed(T0, None, 0.5), secs(10));
    assert!(!s.due(T0.plus(secs(9)), 1).any());
    assert_eq!(s.next_wake(1), T0.plus(secs(10)));
    assert!(s.due(T0.plus(secs(10)), 1).publish);
    assert_eq!(s.failed(T0.plus(secs(10)), None, 0.5), secs(20));
    assert_eq!(s.failed(T0.plus(secs(30)), None, 0.5), secs(40));
    // A server's retry-after wins when longer.
    assert_eq!(s.failed(T0.plus(secs(70)), Some(secs(600)), 0.5), secs(600));
    assert_eq!(s.failures(), 4);
    for i in 0..30 {
        assert!(s.failed(T0.plus(secs(1000 + i)), None, 0.5) <= secs(900));
    }
    s.published(T0.plus(secs(5000)), 1);
    assert_eq!(s.failures(), 0);
    assert!(s.due(T0.plus(secs(5000)), 1).fetch);
}

#[test]
fn jitter_stays_within_its_bounds() {
    let mut s = schedule();
    let lo = s.failed(T0, None, 0.0);
    let mut s2 = schedule();
    let hi = s2.failed(T0, None, 1.0);
    assert_eq!(lo, secs(8));
    assert_eq!(hi, secs(12));
}

#[test]
fn expiry_follows_seq_plus_ttl() {
    let seq = 1_700_000_000_000;
    assert!(!RegistrySchedule::expired(seq, 3600, seq + 3_600_000));
    assert!(RegistrySchedule::expired(seq, 3600, seq + 3_600_001));
    assert!(!RegistrySchedule::expired(u64::MAX, 3600, 0));
}
