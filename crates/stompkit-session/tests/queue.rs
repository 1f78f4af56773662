//! The outbound queue while disconnected: order, priority, expiry, bounds, overflow.

mod support;

use stompkit_codec::Command;
use stompkit_session::{DropReason, Error, Event, Message, OverflowPolicy, SendId, State};
use support::*;

fn sent_bodies(sim: &Sim) -> Vec<String> {
    sim.frames(Command::Send)
        .into_iter()
        .map(|f| String::from_utf8_lossy(f.body()).into_owned())
        .collect()
}

fn dropped(sim: &Sim) -> Vec<(SendId, DropReason, String)> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::MessageDropped {
                id,
                reason,
                message,
            } => Some((
                *id,
                reason.clone(),
                String::from_utf8_lossy(message.body()).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn queued_sends_are_flushed_in_order_after_reconnect() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.drop_link();
    for i in 0..5 {
        sim.session
            .send(sim.now, Message::new("/queue/a", format!("m{i}")))
            .unwrap();
    }
    assert_eq!(sim.session.queued(), 5);
    sim.advance(secs(1));
    assert_eq!(sim.session.state(), State::Connected);
    assert_eq!(sent_bodies(&sim), ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(sim.session.queued(), 0);
}

#[test]
fn messages_sent_before_the_first_connect_are_flushed_on_connect() {
    let mut sim = Sim::new(Sim::config(), BrokerConfig::default());
    sim.session
        .send(sim.now, Message::new("/queue/a", "early"))
        .unwrap();
    sim.connect();
    assert_eq!(sent_bodies(&sim), ["early"]);
}

#[test]
fn higher_priority_goes_first_fifo_within_a_priority() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.drop_link();
    for (body, p) in [
        ("low-1", 0),
        ("high-1", 9),
        ("low-2", 0),
        ("high-2", 9),
        ("mid", 5),
    ] {
        sim.session
            .send(sim.now, Message::new("/queue/a", body).priority(p))
            .unwrap();
    }
    sim.advance(secs(1));
    assert_eq!(
        sent_bodies(&sim),
        ["high-1", "high-2", "mid", "low-1", "low-2"]
    );
}

#[test]
fn an_expired_queued_message_is_never_sent_and_is_reported() {
    let mut sim = Sim::connected(
        Sim::config().with_backoff(stompkit_session::BackoffConfig::constant(secs(120))),
        BrokerConfig::default(),
    );
    sim.drop_link();
    let offer = sim
        .session
        .send(
            sim.now,
            Message::new("/queue/a", "job-offer").expires_at(sim.now + secs(90)),
        )
        .unwrap();
    sim.session
        .send(sim.now, Message::new("/queue/a", "durable"))
        .unwrap();
    // Reported when it expires, not only at flush time.
    sim.advance(secs(90));
    assert_eq!(
        dropped(&sim),
        [(offer, DropReason::Expired, "job-offer".to_owned())]
    );
    assert_eq!(sim.session.queued(), 1);
    sim.advance(secs(30));
    assert_eq!(sim.session.state(), State::Connected);
    assert_eq!(sent_bodies(&sim), ["durable"]);
    assert_eq!(sim.session.stats().messages_dropped, 1);
}

#[test]
fn a_message_already_expired_when_sent_is_dropped_at_once() {
    let mut sim = Sim::new(Sim::config(), BrokerConfig::default());
    let id = sim
        .session
        .send(
            sim.now,
            Message::new("/queue/a", "late").expires_at(sim.now),
        )
        .unwrap();
    sim.pump();
    assert_eq!(
        dropped(&sim),
        [(id, DropReason::Expired, "late".to_owned())]
    );
}

#[test]
fn an_unconfirmed_send_expired_before_reconnect_is_not_re_sent() {
    let mut sim = Sim::connected(
        Sim::config().with_backoff(stompkit_session::BackoffConfig::constant(secs(10))),
        BrokerConfig::default(),
    );
    sim.broker.withhold_receipts(None, true).unwrap();
    let id = sim
        .session
        .send(
            sim.now,
            Message::new("/queue/a", "offer")
                .receipt()
                .expires_at(sim.now + secs(5)),
        )
        .unwrap();
    sim.pump();
    sim.drop_link();
    sim.advance(secs(10));
    assert_eq!(sim.session.state(), State::Connected);
    assert_eq!(
        dropped(&sim),
        [(id, DropReason::Expired, "offer".to_owned())]
    );
    assert!(
        sim.frames_on(2)
            .iter()
            .all(|f| f.command() != Command::Send)
    );
}

#[test]
fn overflow_reject_new_hands_the_message_back() {
    let config = Sim::config()
        .with_queue(2, 1 << 20)
        .with_overflow(OverflowPolicy::RejectNew);
    let mut sim = Sim::new(config, BrokerConfig::default());
    sim.session
        .send(sim.now, Message::new("/queue/a", "1"))
        .unwrap();
    sim.session
        .send(sim.now, Message::new("/queue/a", "2"))
        .unwrap();
    match sim.session.send(sim.now, Message::new("/queue/a", "3")) {
        Err(e) if e.error() == &Error::QueueFull => assert_eq!(&e.message().body()[..], b"3"),
        other => panic!("{other:?}"),
    }
    sim.connect();
    assert_eq!(sent_bodies(&sim), ["1", "2"]);
    assert!(dropped(&sim).is_empty());
}

#[test]
fn overflow_drop_oldest_reports_what_it_dropped() {
    let config = Sim::config()
        .with_queue(2, 1 << 20)
        .with_overflow(OverflowPolicy::DropOldest);
    let mut sim = Sim::new(config, BrokerConfig::default());
    let first = sim
        .session
        .send(sim.now, Message::new("/queue/a", "1"))
        .unwrap();
    sim.session
        .send(sim.now, Message::new("/queue/a", "2"))
        .unwrap();
    sim.session
        .send(sim.now, Message::new("/queue/a", "3"))
        .unwrap();
    sim.pump();
    assert_eq!(
        dropped(&sim),
        [(first, DropReason::Overflow, "1".to_owned())]
    );
    sim.connect();
    assert_eq!(sent_bodies(&sim), ["2", "3"]);
}

#[test]
fn the_queue_is_bounded_by_bytes_too() {
    let config = Sim::config()
        .with_queue(100, 200)
        .with_overflow(OverflowPolicy::RejectNew);
    let mut sim = Sim::new(config, BrokerConfig::default());
    sim.session
        .send(sim.now, Message::new("/queue/a", vec![b'x'; 100]))
        .unwrap();
    assert!(matches!(
        sim.session
            .send(sim.now, Message::new("/queue/a", vec![b'y'; 100])),
        Err(e) if e.error() == &Error::QueueFull
    ));
    assert!(matches!(
        sim.session
            .send(sim.now, Message::new("/queue/a", vec![b'z'; 300])),
        Err(e) if e.error() == &Error::LargerThanQueue
    ));
    assert!(sim.session.queued_bytes() <= 200);
}

#[test]
fn a_message_unwritable_in_an_offered_version_is_refused_up_front() {
    let mut sim = Sim::new(Sim::config(), BrokerConfig::default());
    // 1.0 cannot carry a line feed in a header value.
    let err = sim
        .session
        .send(
            sim.now,
            Message::new("/queue/a", "x").header("note", "a\nb"),
        )
        .unwrap_err();
    assert!(matches!(err.error(), Error::Encode(_)), "{err}");
    assert_eq!(err.into_message().destination(), "/queue/a");
    let err = sim
        .session
        .send(
            sim.now,
            Message::new("/queue/a", "x").header("receipt", "mine"),
        )
        .unwrap_err();
    assert_eq!(err.error(), &Error::ReservedHeader("receipt"));
}

#[test]
fn every_send_with_a_body_carries_its_content_length_unless_turned_off() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session
        .send(sim.now, Message::new("/queue/a", "hello"))
        .expect("taken");
    sim.pump();
    let sends = sim.frames(Command::Send);
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].header_str("content-length"), Some("5"));

    let mut sim = Sim::connected(
        Sim::config().with_content_length(false),
        BrokerConfig::default(),
    );
    sim.session
        .send(sim.now, Message::new("/queue/a", "hello"))
        .expect("taken");
    sim.pump();
    let sends = sim.frames(Command::Send);
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].header_str("content-length"), None);
}
