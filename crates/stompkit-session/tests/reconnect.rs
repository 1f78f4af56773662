//! Reconnection: backoff, circuit breaker, give-up limit, resuming subscriptions and
//! re-sending unconfirmed receipted sends.

mod support;

use stompkit_codec::Command;
use stompkit_policy::{Jitter, OpenDuration};
use stompkit_session::{
    AckMode, BackoffConfig, BreakerConfig, Cause, Event, FailureKind, GiveUpReason, Message,
    ReceiptId, ReceiptOutcome, State, Subscribe,
};
use support::*;

#[test]
fn reconnect_after_a_broker_restart_resumes_every_subscription_with_the_same_ids_and_headers() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let a = sim
        .session
        .subscribe(
            sim.now,
            Subscribe::new("/queue/job-offers-7")
                .ack(AckMode::ClientIndividual)
                .header("selector", "type='NEW'"),
        )
        .unwrap();
    let b = sim
        .session
        .subscribe(sim.now, Subscribe::new("/topic/job-status/PJ1"))
        .unwrap();
    sim.pump();
    let before: Vec<_> = sim
        .frames_on(1)
        .into_iter()
        .filter(|f| f.command() == Command::Subscribe)
        .cloned()
        .collect();

    sim.drop_link(); // broker restart
    assert!(matches!(sim.session.state(), State::Reconnecting { .. }));
    sim.advance(secs(1));
    assert_eq!(sim.session.state(), State::Connected);
    let after: Vec<_> = sim
        .frames_on(2)
        .into_iter()
        .filter(|f| f.command() == Command::Subscribe)
        .cloned()
        .collect();
    // Every SUBSCRIBE carries the session's own receipt (a new one each time), so that an
    // ERROR can be traced to it; everything else is the same.
    let without_receipt = |frames: &[stompkit_codec::Frame]| -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        frames
            .iter()
            .map(|f| {
                assert!(f.header("receipt").is_some(), "{f:?}");
                f.headers()
                    .filter(|(n, _)| *n != b"receipt")
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        without_receipt(&before),
        without_receipt(&after),
        "same frames: ids, destinations, ack modes, headers"
    );
    assert_eq!(after[0].header_str("id"), Some(a.to_string().as_str()));
    assert_eq!(after[1].header_str("id"), Some(b.to_string().as_str()));
    assert_eq!(after[0].header_str("selector"), Some("type='NEW'"));
    // Messages published while we were away arrive on the resumed subscription.
    sim.publish("/queue/job-offers-7", "offer-1");
    sim.pump();
    assert_eq!(sim.delivered_bodies(), ["offer-1"]);
    let stats = sim.session.stats();
    assert_eq!((stats.connections, stats.reconnections), (2, 1));
}

#[test]
fn unacknowledged_messages_redelivered_after_a_drop_are_possibly_duplicate() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session
        .subscribe(sim.now, Subscribe::new("/queue/a").ack(AckMode::Client))
        .unwrap();
    sim.pump();
    sim.publish("/queue/a", "offer");
    sim.pump();
    sim.drop_link();
    sim.advance(secs(1));
    let flags: Vec<bool> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                possibly_duplicate, ..
            } => Some(*possibly_duplicate),
            _ => None,
        })
        .collect();
    assert_eq!(flags, [false, true]);
    assert_eq!(sim.session.stats().possible_duplicates, 1);
}

#[test]
fn unconfirmed_receipted_sends_are_re_sent_after_reconnect() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.broker.withhold_receipts(None, true).unwrap();
    let r1 = sim
        .session
        .send(sim.now, Message::new("/queue/a", "r1").receipt())
        .unwrap();
    let _plain = sim
        .session
        .send(sim.now, Message::new("/queue/a", "plain"))
        .unwrap();
    let r2 = sim
        .session
        .send(sim.now, Message::new("/queue/a", "r2").receipt())
        .unwrap();
    sim.pump();
    assert_eq!(sim.session.unconfirmed(), 2);
    sim.drop_link();
    sim.broker.withhold_receipts(None, false).unwrap();
    sim.advance(secs(1));
    let resent: Vec<_> = sim
        .frames_on(2)
        .into_iter()
        .filter(|f| f.command() == Command::Send)
        .map(|f| String::from_utf8_lossy(f.body()).into_owned())
        .collect();
    assert_eq!(resent, ["r1", "r2"], "only receipted ones, in order");
    for id in [r1, r2] {
        assert!(sim.events.contains(&Event::Receipt {
            id: ReceiptId::Send(id),
            outcome: ReceiptOutcome::Confirmed
        }));
    }
    assert_eq!(sim.session.unconfirmed(), 0);
}

#[test]
fn order_after_reconnect_is_resubscribe_then_resend_then_queue() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.broker.withhold_receipts(None, true).unwrap();
    sim.session
        .subscribe(sim.now, Subscribe::new("/queue/in"))
        .unwrap();
    sim.session
        .send(sim.now, Message::new("/queue/out", "unconfirmed").receipt())
        .unwrap();
    sim.pump();
    sim.drop_link();
    sim.session
        .send(sim.now, Message::new("/queue/out", "queued"))
        .unwrap();
    sim.advance(secs(1));
    let order: Vec<String> = sim
        .frames_on(2)
        .into_iter()
        .map(|f| format!("{} {}", f.command(), String::from_utf8_lossy(f.body())))
        .collect();
    assert_eq!(
        order,
        ["CONNECT ", "SUBSCRIBE ", "SEND unconfirmed", "SEND queued"]
    );
}

#[test]
fn backoff_delays_come_from_the_policy() {
    let backoff = BackoffConfig::schedule(vec![secs(1), secs(2), secs(4)]);
    let config = Sim::config()
        .with_backoff(backoff)
        .with_breaker(BreakerConfig::default().no_consecutive_failures());
    let mut sim = Sim::new(config, BrokerConfig::default());
    sim.reachable = false;
    sim.connect();
    sim.advance(secs(20));
    let waits: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged {
                to: State::Reconnecting { at },
                ..
            } => Some(*at),
            _ => None,
        })
        .collect();
    let starts: Vec<_> = sim
        .session
        .attempts()
        .map(|r| r.started_at - sim.start)
        .collect();
    assert_eq!(starts[..5], [secs(0), secs(1), secs(3), secs(7), secs(11)]);
    assert!(waits.len() >= 5);
    assert!(
        sim.session
            .attempts()
            .all(|r| r.failure.as_ref().unwrap().kind == FailureKind::Network)
    );
}

#[test]
fn jittered_browser_schedule_with_floor_and_give_up_limit() {
    // The browser client design: [1, 2, 4, 8, 12] s, +-20 %, floor 100 ms, 8 attempts.
    let schedule = [1000, 2000, 4000, 8000, 12000].map(ms).to_vec();
    let backoff = BackoffConfig::schedule(schedule)
        .jitter(Jitter::Proportional(0.2))
        .floor(ms(100))
        .max_attempts(Some(8));
    let config = Sim::config()
        .with_backoff(backoff)
        .with_seed(42)
        .with_breaker(BreakerConfig::default().no_consecutive_failures());
    let mut sim = Sim::new(config, BrokerConfig::default());
    sim.reachable = false;
    sim.connect();
    sim.advance(secs(600));
    assert_eq!(sim.session.state(), State::Closed);
    assert_eq!(sim.session.stats().attempts, 9, "first try + 8 retries");
    assert!(sim.events.contains(&Event::GaveUp {
        reason: GiveUpReason::RetriesExhausted,
        attempts: 9
    }));
    let starts: Vec<_> = sim.session.attempts().map(|r| r.started_at).collect();
    let nominal = [1000u64, 2000, 4000, 8000, 12000, 12000, 12000, 12000];
    for (i, pair) in starts.windows(2).enumerate() {
        let gap = (pair[1] - pair[0]).as_millis() as f64;
        let n = nominal[i] as f64;
        assert!(gap >= n * 0.8 && gap <= n * 1.2, "gap {i}: {gap} ms vs {n}");
    }
    assert_eq!(sim.session.poll_timeout(), None);
}

#[test]
fn the_breaker_opens_after_repeated_failures_and_probes_later() {
    let config = Sim::config()
        .with_backoff(BackoffConfig::constant(secs(1)))
        .with_breaker(
            BreakerConfig::default()
                .consecutive_failures(3)
                .open_for(OpenDuration::Fixed(secs(30))),
        );
    let mut sim = Sim::new(config, BrokerConfig::default());
    sim.reachable = false;
    sim.connect();
    sim.advance(secs(2));
    let next_probe = match sim.session.state() {
        State::Failed { next_probe } => next_probe,
        other => panic!("expected Failed, got {other:?}"),
    };
    assert_eq!(
        next_probe - sim.start,
        secs(32),
        "opened by the third failure at 2 s"
    );
    assert_eq!(sim.session.poll_timeout(), Some(next_probe));
    sim.reachable = true;
    sim.advance(secs(29));
    assert!(
        matches!(sim.session.state(), State::Failed { .. }),
        "no attempt while open"
    );
    assert_eq!(sim.session.stats().attempts, 3);
    sim.advance(secs(1));
    assert_eq!(sim.session.state(), State::Connected);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::StateChanged {
            from: State::Failed { .. },
            to: State::Connecting,
            cause: Cause::ProbeDue
        }
    )));
}

#[test]
fn every_transition_emits_state_changed_with_its_cause() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.drop_link();
    sim.advance(secs(1));
    sim.session.disconnect(sim.now);
    sim.pump();
    let transitions: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StateChanged { from, to, cause } => Some((
                std::mem::discriminant(from),
                std::mem::discriminant(to),
                *cause,
            )),
            _ => None,
        })
        .collect();
    let d = std::mem::discriminant::<State>;
    let at = sim.start;
    assert_eq!(
        transitions,
        [
            (
                d(&State::Idle),
                d(&State::Connecting),
                Cause::ConnectRequested
            ),
            (
                d(&State::Connecting),
                d(&State::Connected),
                Cause::Handshake
            ),
            (
                d(&State::Connected),
                d(&State::Reconnecting { at }),
                Cause::Failure(FailureKind::Network)
            ),
            (
                d(&State::Reconnecting { at }),
                d(&State::Connecting),
                Cause::BackoffElapsed
            ),
            (
                d(&State::Connecting),
                d(&State::Connected),
                Cause::Handshake
            ),
            (
                d(&State::Connected),
                d(&State::Disconnecting),
                Cause::DisconnectRequested
            ),
            (
                d(&State::Disconnecting),
                d(&State::Closed),
                Cause::DisconnectConfirmed
            ),
        ]
    );
    // Each state change is observable.
    assert_eq!(sim.session.state(), State::Closed);
}

#[test]
fn disconnect_while_reconnecting_stops_at_once() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.drop_link();
    sim.session
        .send(sim.now, Message::new("/queue/a", "queued"))
        .unwrap();
    sim.session.disconnect(sim.now);
    sim.pump();
    assert_eq!(sim.session.state(), State::Closed);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::MessageDropped {
            reason: stompkit_session::DropReason::SessionClosed,
            ..
        }
    )));
    assert_eq!(sim.session.poll_timeout(), None);
    // connect() starts again.
    sim.connect();
    assert_eq!(sim.session.state(), State::Connected);
}

#[test]
fn the_attempt_history_is_bounded_and_classifies_every_attempt() {
    let config = Sim::config()
        .with_history(3)
        .with_breaker(BreakerConfig::default().no_consecutive_failures());
    let mut sim = Sim::new(config, BrokerConfig::default());
    sim.reachable = false;
    sim.connect();
    sim.advance(secs(10));
    assert_eq!(sim.session.attempts().len(), 3);
    let numbers: Vec<u32> = sim.session.attempts().map(|r| r.attempt).collect();
    let last = sim.session.stats().attempts as u32;
    assert_eq!(numbers, [last - 2, last - 1, last]);
}

#[test]
fn a_broker_that_vanishes_mid_frame_delivers_nothing_partial_and_the_message_comes_after_reconnect()
{
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let sub = sim
        .session
        .subscribe(
            sim.now,
            Subscribe::new("/queue/job-offers-7").ack(AckMode::ClientIndividual),
        )
        .unwrap();
    sim.pump();
    let before = sim.events.len();
    // Half a MESSAGE: the head and part of a content-length body, then the link dies.
    let half = format!(
        "MESSAGE\nsubscription:{sub}\ndestination:/queue/job-offers-7\nmessage-id:m-1\nack:m-1\ncontent-length:22\n\n{{\"jobId\":12"
    );
    sim.broker_says(half.as_bytes());
    assert!(
        !sim.events_since(before)
            .iter()
            .any(|e| matches!(e, Event::Message { .. })),
        "no event for a frame that never completed"
    );
    sim.drop_link();
    assert!(matches!(sim.session.state(), State::Reconnecting { .. }));
    let failure = last_failure(&sim.session).clone();
    assert_eq!(failure.kind, FailureKind::Network);

    // The broker still holds the unacknowledged message and delivers it on the new connection.
    sim.advance(secs(1));
    assert_eq!(sim.session.state(), State::Connected);
    sim.publish("/queue/job-offers-7", r#"{"jobId":123456789012}"#);
    sim.pump();
    assert_eq!(sim.delivered_bodies(), [r#"{"jobId":123456789012}"#]);
}
