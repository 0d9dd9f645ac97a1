use super::*;
use crate::mesh::splitmix::SplitMix64 as TestRng;
use crate::mesh::testkit::{key, record, sign};
use crate::proto::exchange::Digest;

const A: &str = "198.51.100.1:51821";
const B: &str = "203.0.113.2:51821";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn exchange(seed: u64) -> Exchange {
    Exchange::new(
        ExchangeConfig::default(),
        [seed as u8; 32],
        Box::new(TestRng::new(seed)),
    )
}

fn signed(n: u32) -> SignedRecord {
    sign(n, &record(n))
}

fn t(secs: u64) -> Millis {
    Millis::from_secs(1_700_000_000 + secs)
}

/// The reply `responder` sends to `hello` from `src`.
fn reply_to(responder: &mut Exchange, src: SocketAddr, hello: &Hello, now: Millis) -> Reply {
    let msg = Message::Hello(Box::new(hello.clone()));
    let out = responder.answer_hello(
        ReceivedHello {
            src,
            hello,
            sealed_len: sealed_len(&msg),
            sender: key(1),
            tunnel: false,
        },
        &signed(2),
        vec![],
        vec![],
        now,
    );
    match out.into_iter().next() {
        Some(Message::Reply(r)) => *r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn total_sealed(messages: &[Message]) -> usize {
    messages.iter().map(sealed_len).sum()
}

#[test]
fn reply_accepted_only_for_a_challenge_sent_to_that_address() {
    let mut a = exchange(1);
    let mut b = exchange(2);
    let hello = a.start_hello(addr(B), &signed(1), vec![], t(0));
    let reply = reply_to(&mut b, addr(A), &hello, t(0));
    assert_eq!(reply.challenge, hello.challenge);
    assert_eq!(reply.observed, addr(A));
    // From another address: refused, and it does not use up the challenge.
    assert_eq!(
        a.on_reply(addr("203.0.113.3:51821"), &reply, t(1)),
        Err(ExchangeError::Unsolicited {
            from: addr("203.0.113.3:51821")
        })
    );
    assert_eq!(a.on_reply(addr(B), &reply, t(1)), Ok(()));
    assert!(a.replied_since(addr(B), t(0), t(1)));
    assert!(!a.replied_since(addr(B), t(2), t(2)));
}

#[test]
fn unsolicited_replayed_and_late_replies_are_refused() {
    let mut a = exchange(1);
    let mut b = exchange(2);
    // A reply to a hello A never sent.
    let forged_hello = Hello {
        challenge: [9; 16],
        record: signed(1),
        digests: vec![],
        cookie: None,
        filter: None,
    };
    let unsolicited = reply_to(&mut b, addr(A), &forged_hello, t(0));
    let err = a.on_reply(addr(B), &unsolicited, t(0)).unwrap_err();
    assert_eq!(err.reason(), "unsolicited");

    let hello = a.start_hello(addr(B), &signed(1), vec![], t(0));
    let reply = reply_to(&mut b, addr(A), &hello, t(0));
    assert!(a.on_reply(addr(B), &reply, t(0)).is_ok());
    let replay = a.on_reply(addr(B), &reply, t(1)).unwrap_err();
    assert_eq!(replay, ExchangeError::Replayed { from: addr(B) });
    assert_eq!(replay.reason(), "replayed");

    let late_hello = a.start_hello(addr(B), &signed(1), vec![], t(100));
    let late = reply_to(&mut b, addr(A), &late_hello, t(100));
    assert_eq!(
        a.on_reply(addr(B), &late, t(110)).unwrap_err().reason(),
        "unsolicited",
        "10 s after the hello the challenge is gone"
    );
}

#[test]
fn challenges_are_fresh_and_ipv4_mapped_sources_match() {
    let mut a = exchange(1);
    let h1 = a.start_hello(addr(B), &signed(1), vec![], t(0));
    let h2 = a.start_hello(addr(B), &signed(1), vec![], t(0));
    assert_ne!(h1.challenge, h2.challenge);
    let mut b = exchange(2);
    let reply = reply_to(&mut b, addr(A), &h2, t(0));
    let mapped = addr("[::ffff:203.0.113.2]:51821");
    assert!(a.on_reply(mapped, &reply, t(0)).is_ok());
}

#[test]
fn cookie_from_a_reply_goes_into_later_hellos_to_that_address_only() {
    let mut a = exchange(1);
    let mut b = exchange(2);
    let first = a.start_hello(addr(B), &signed(1), vec![], t(0));
    assert_eq!(first.cookie, None);
    let reply = reply_to(&mut b, addr(A), &first, t(0));
    assert_eq!(reply.cookie, b.cookie_for(addr(A), t(0)));
    a.on_reply(addr(B), &reply, t(0)).unwrap();
    assert!(a.sent_without_cookie(addr(B), &first.challenge, t(0)));
    let second = a.start_hello(addr(B), &signed(1), vec![], t(30));
    assert_eq!(second.cookie, Some(reply.cookie));
    assert!(!a.sent_without_cookie(addr(B), &second.challenge, t(30)));
    let other = a.start_hello(addr("192.0.2.9:51821"), &signed(1), vec![], t(30));
    assert_eq!(other.cookie, None);
    // Forgotten after a cookie period (it would no longer be valid).
    let much_later = a.start_hello(addr(B), &signed(1), vec![], t(601));
    assert_eq!(much_later.cookie, None);
}

fn answer(
    b: &mut Exchange,
    hello: &Hello,
    wanted: Vec<SignedRecord>,
    now: Millis,
) -> (usize, Vec<Message>) {
    let hello_len = sealed_len(&Message::Hello(Box::new(hello.clone())));
    let out = b.answer_hello(
        ReceivedHello {
            src: addr(A),
            hello,
            sealed_len: hello_len,
            sender: key(1),
            tunnel: false,
        },
        &signed(2),
        wanted,
        vec![Digest::of(&key(2), 1)],
        now,
    );
    (hello_len, out)
}

fn records_in(messages: &[Message]) -> Vec<SignedRecord> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Records(r) => Some(r.records.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_hello_without_cookie_gets_at_most_three_times_its_size() {
    let mut a = exchange(1);
    let mut b = exchange(2);
    let wanted: Vec<SignedRecord> = (10..40).map(signed).collect();
    let hello = a.start_hello(addr(B), &signed(1), vec![], t(0));
    let (hello_len, out) = answer(&mut b, &hello, wanted.clone(), t(0));
    assert!(
        matches!(out.first(), Some(Message::Reply(_))),
        "reply first"
    );
    assert!(
        total_sealed(&out) <= 3 * hello_len,
        "{} > 3 × {hello_len}",
        total_sealed(&out)
    );
    let sent = records_in(&out);
    assert!(!sent.is_empty(), "some records fit");
    assert!(sent.len() < wanted.len());
    assert_eq!(
        b.stats().records_withheld,
        (wanted.len() - sent.len()) as u64
    );
    for m in &out {
        assert!(sealed_len(m) <= MAX_DATAGRAM_BYTES);
    }
}

#[test]
fn a_hello_with_a_valid_cookie_gets_every_record() {
    let mut a = exchange(1);
    let mut b = exchange(2);
    let wanted: Vec<SignedRecord> = (10..40).map(signed).collect();
    let first = a.start_hello(addr(B), &signed(1), vec![], t(0));
    let (_, out) = answer(&mut b, &first, vec![], t(0));
    let Some(Message::Reply(reply)) = out.first() else {
        panic!("no reply");
    };
    a.on_reply(addr(B), reply, t(0)).unwrap();
    let second = a.start_hello(addr(B), &signed(1), vec![], t(1));
    assert!(second.cookie.is_some());
    let (hello_len, out) = answer(&mut b, &second, wanted.clone(), t(1));
    assert!(total_sealed(&out) > 3 * hello_len);
    let mut sent = records_in(&out);
    sent.sort_by(|x, y| x.body.cmp(&y.body));
    let mut want = wanted;
    want.sort_by(|x, y| x.body.cmp(&y.body));
    assert_eq!(sent, want);
    for m in &out {
        assert!(sealed_len(m) <= MAX_DATAGRAM_BYTES);
    }
    assert_eq!(b.stats().records_withheld, 0);
}

#[test]
fn a_wrong_or_expired_cookie_keeps_the_budget() {
    let mut b = exchange(2);
    let wanted: Vec<SignedRecord> = (10..40).map(signed).collect();
    let mut hello = exchange(1).start_hello(addr(B), &signed(1), vec![], t(0));
    hello.cookie = Some([0x55; 16]);
    let (len, out) = answer(&mut b, &hello, wanted.clone(), t(0));
    assert!(total_sealed(&out) <= 3 * len);
    // A genuine cookie two periods later.
    hello.cookie = Some(b.cookie_for(addr(A), t(0)));
    let (len, out) = answer(&mut b, &hello, wanted.clone(), t(1200));
    assert!(total_sealed(&out) <= 3 * len);
    // … and within its lifetime it lifts the budget.
    let (len, out) = answer(&mut b, &hello, wanted, t(700));
    assert!(total_sealed(&out) > 3 * len);
}

#[test]
fn nothing_is_sent_when_even_the_reply_exceeds_the_budget() {
    let mut b = exchange(2);
    let hello = exchange(1).start_hello(addr(B), &signed(1), vec![], t(0));
    let out = b.answer_hello(
        ReceivedHello {
            src: addr(A),
            hello: &hello,
            sealed_len: 60,
            sender: key(1),
            tunnel: false,
        },
        &signed(2),
        vec![signed(3)],
        vec![Digest::of(&key(3), 1)],
        t(0),
    );
    assert!(out.is_empty());
    assert_eq!(b.stats().answers_refused, 1);
    assert!(
        !b.accept_records(addr(A), &hello.challenge, t(0)),
        "unanswered hellos open no exchange"
    );
}

#[test]
fn reply_digests_are_trimmed_before_the_reply_is_refused() {
    let mut b = exchange(2);
    let hello = exchange(1).start_hello(addr(B), &signed(1), vec![], t(0));
    let hello_len = sealed_len(&Message::Hello(Box::new(hello.clone())));
    let many: Vec<Digest> = (0..32).map(|n| Digest::of(&[n; 32], 7)).collect();
    let out = b.answer_hello(
        ReceivedHello {
            src: addr(A),
            hello: &hello,
            sealed_len: hello_len / 2,
            sender: key(1),
            tunnel: false,
        },
        &signed(2),
        vec![],
        many,
        t(0),
    );
    let Some(Message::Reply(r)) = out.first() else {
        panic!("reply expected");
    };
    assert!(r.digests.len() < 32);
    assert!(total_sealed(&out) <= 3 * hello_len / 2);
}

#[test]
fn records_accepted_only_within_a_live_exchange() {
    let mut a = exchange(1);
    let mut b = exchange(2);
    let hello = a.start_hello(addr(B), &signed(1), vec![], t(0));
    // Initiator: records from B for its hello, even before the reply.
    assert!(a.accept_records(addr(B), &hello.challenge, t(0)));
    assert!(!a.accept_records(addr(A), &hello.challenge, t(0)));
    assert!(!a.accept_records(addr(B), &[0; 16], t(0)));
    assert!(!a.accept_records(addr(B), &hello.challenge, t(10)));
    // Responder: records pushed by A for the hello B answered.
    assert!(!b.accept_records(addr(A), &hello.challenge, t(0)));
    let reply = reply_to(&mut b, addr(A), &hello, t(0));
    assert!(b.accept_records(addr(A), &hello.challenge, t(9)));
    assert!(!b.accept_records(addr(A), &hello.challenge, t(10)));
    assert_eq!(
        b.exchange_peer(addr(A), &hello.challenge, t(1)),
        Some(key(1))
    );
    // The initiator learns the responder's key once the reply is verified.
    a.on_reply(addr(B), &reply, t(0)).unwrap();
    assert_eq!(a.exchange_peer(addr(B), &hello.challenge, t(0)), None);
    a.note_responder(addr(B), &hello.challenge, key(2), t(0));
    assert_eq!(
        a.exchange_peer(addr(B), &hello.challenge, t(0)),
        Some(key(2))
    );
}

#[test]
fn remembered_challenges_are_bounded() {
    let mut a = Exchange::new(
        ExchangeConfig {
            max_sent: 8,
            ..ExchangeConfig::default()
        },
        [1; 32],
        Box::new(TestRng::new(1)),
    );
    let hellos: Vec<Hello> = (0..20)
        .map(|_| a.start_hello(addr(B), &signed(1), vec![], t(0)))
        .collect();
    assert_eq!(a.sent.len(), 8);
    // The oldest were forgotten, the newest are still good.
    assert!(!a.accept_records(addr(B), &hellos[0].challenge, t(0)));
    assert!(a.accept_records(addr(B), &hellos[19].challenge, t(0)));
}

#[test]
fn hello_digests_are_trimmed_to_the_limit() {
    let mut a = exchange(1);
    let many: Vec<Digest> = (0..40).map(|n| Digest::of(&[n; 32], 7)).collect();
    let hello = a.start_hello(addr(B), &signed(1), many, t(0));
    assert_eq!(hello.digests.len(), MAX_DIGESTS);
    assert!(hello.encode().len() <= MAX_PAYLOAD_BYTES);
}

#[test]
fn pushed_records_are_capped_and_packed() {
    let mut a = Exchange::new(
        ExchangeConfig {
            max_records_per_answer: 5,
            ..ExchangeConfig::default()
        },
        [1; 32],
        Box::new(TestRng::new(1)),
    );
    let packed = a.push_records([3; 16], (10..30).map(signed).collect());
    let n: usize = packed.iter().map(|r| r.records.len()).sum();
    assert_eq!(n, 5);
    assert!(packed.iter().all(|r| r.challenge == [3; 16]));
}

#[test]
fn an_answer_never_exceeds_the_message_cap() {
    let mut b = Exchange::new(
        ExchangeConfig {
            max_records_messages: 2,
            ..ExchangeConfig::default()
        },
        [2; 32],
        Box::new(TestRng::new(2)),
    );
    let mut a = exchange(1);
    let first = a.start_hello(addr(B), &signed(1), vec![], t(0));
    let (_, out) = answer(&mut b, &first, vec![], t(0));
    let Some(Message::Reply(reply)) = out.first() else {
        panic!("no reply");
    };
    a.on_reply(addr(B), reply, t(0)).unwrap();
    let proven = a.start_hello(addr(B), &signed(1), vec![], t(1));
    let wanted: Vec<SignedRecord> = (10..40).map(signed).collect();
    let (_, out) = answer(&mut b, &proven, wanted.clone(), t(1));
    assert_eq!(out.len(), 3, "the reply and two records messages");
    let sent = records_in(&out).len();
    assert!(sent >= 4, "two full datagrams of records: {sent}");
    assert_eq!(b.stats().records_withheld, (wanted.len() - sent) as u64);
    assert!(b.push_records([1; 16], wanted).len() <= 2);
}
