//! Receipts: confirmed, named by an ERROR, timed out, lost with the connection;
//! DISCONNECT waits for its receipt, never forever.

mod support;

use stompkit_codec::Command;
use stompkit_session::{
    Cause, Directive, Error, Event, FailureKind, Message, ReceiptId, ReceiptOutcome, State,
    Subscribe,
};
use support::*;

fn receipt_of(sim: &Sim, id: ReceiptId) -> Option<ReceiptOutcome> {
    sim.events.iter().find_map(|e| match e {
        Event::Receipt { id: i, outcome } if *i == id => Some(outcome.clone()),
        _ => None,
    })
}

#[test]
fn a_send_receipt_is_confirmed() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let id = sim
        .session
        .send(sim.now, Message::new("/queue/a", "x").receipt())
        .unwrap();
    assert_eq!(sim.session.unconfirmed(), 1);
    sim.pump();
    assert_eq!(
        receipt_of(&sim, ReceiptId::Send(id)),
        Some(ReceiptOutcome::Confirmed)
    );
    assert_eq!(sim.session.unconfirmed(), 0);
}

#[test]
fn a_receipt_for_the_rabbitmq_transcript_send_is_confirmed_when_joined_with_a_message() {
    // RabbitMQ sent MESSAGE and RECEIPT in one read; both must be processed.
    let steps = transcript("rabbitmq-client-individual-ack");
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session
        .subscribe(
            sim.now,
            Subscribe::new("/queue/transcript-1795304747")
                .ack(stompkit_session::AckMode::ClientIndividual),
        )
        .unwrap();
    sim.pump();
    // The broker neither answers nor delivers: the transcript's bytes do both.
    sim.broker.withhold_receipts(None, true).unwrap();
    sim.broker.drop_deliveries(None, 1).unwrap();
    let id = sim
        .session
        .send(
            sim.now,
            Message::new("/queue/transcript-1795304747", "x").receipt(),
        )
        .unwrap();
    sim.pump();
    let receipt = sim.frames(Command::Send)[0]
        .header_str("receipt")
        .unwrap()
        .to_owned();
    let joined = server_bytes(&steps, &[("r-send", &receipt)])
        .into_iter()
        .find(|b| b.starts_with(b"MESSAGE"))
        .unwrap();
    sim.broker_says(&joined);
    assert_eq!(
        receipt_of(&sim, ReceiptId::Send(id)),
        Some(ReceiptOutcome::Confirmed)
    );
    assert_eq!(
        sim.delivered_bodies(),
        [r#"{"type":"NEW_JOB_OFFER","jobId":123}"#]
    );
}

#[test]
fn a_receipt_not_answered_in_time_is_reported_timed_out() {
    let config = Sim::config().with_receipt_timeout(secs(3));
    let mut sim = Sim::connected(config, BrokerConfig::default());
    sim.broker.withhold_receipts(None, true).unwrap();
    let id = sim
        .session
        .send(sim.now, Message::new("/queue/a", "x").receipt())
        .unwrap();
    sim.pump();
    sim.advance(ms(2999));
    assert_eq!(receipt_of(&sim, ReceiptId::Send(id)), None);
    sim.advance(ms(1));
    assert_eq!(
        receipt_of(&sim, ReceiptId::Send(id)),
        Some(ReceiptOutcome::TimedOut)
    );
    assert_eq!(
        sim.session.unconfirmed(),
        0,
        "a timed-out send is not re-sent later"
    );
    assert_eq!(sim.session.state(), State::Connected);
}

#[test]
fn an_error_naming_a_receipt_fails_that_receipt_and_ends_the_connection() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let tx = sim.session.begin(sim.now, false).unwrap();
    sim.pump();
    sim.broker.withhold_receipts(None, true).unwrap();
    let other = sim
        .session
        .send(sim.now, Message::new("/queue/a", "ok").receipt())
        .unwrap();
    let pending_commit = sim.session.commit(sim.now, tx, true);
    assert!(pending_commit.is_ok());
    // A SEND to no valid destination is refused by the broker with an ERROR naming its
    // receipt.
    let bad = sim
        .session
        .send(sim.now, Message::new("", "no destination").receipt())
        .unwrap();
    sim.pump();
    match receipt_of(&sim, ReceiptId::Send(bad)) {
        Some(ReceiptOutcome::Error(frame)) => {
            assert_eq!(frame.header_str("message"), Some("Unknown destination"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, Event::ServerError { .. }))
    );
    assert_eq!(
        receipt_of(&sim, ReceiptId::Commit(tx)),
        Some(ReceiptOutcome::ConnectionLost)
    );
    // The unconfirmed good one is re-sent after the reconnect (at-least-once); the one the
    // ERROR named is not.
    assert_eq!(receipt_of(&sim, ReceiptId::Send(other)), None);
    sim.broker.withhold_receipts(None, false).unwrap();
    sim.advance(secs(2));
    assert_eq!(sim.session.state(), State::Connected);
    let resent: Vec<_> = sim
        .frames_on(2)
        .into_iter()
        .filter(|f| f.command() == Command::Send)
        .map(|f| f.body_bytes())
        .collect();
    assert_eq!(resent, [&b"ok"[..]]);
    assert_eq!(
        receipt_of(&sim, ReceiptId::Send(other)),
        Some(ReceiptOutcome::Confirmed)
    );
}

#[test]
fn disconnect_waits_for_its_receipt() {
    let steps = transcript("rabbitmq-connect-1.2");
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session.disconnect(sim.now);
    assert_eq!(sim.session.state(), State::Disconnecting);
    let wire = sim.session.poll_transmit().unwrap();
    assert_eq!(&wire[..], b"DISCONNECT\nreceipt:rcpt-1\n\n\0");
    // The broker's receipt (from the transcript, with our id).
    sim.session.handle_input(
        sim.now,
        sim.current(),
        &server_bytes(&steps, &[("bye", "rcpt-1")])[1],
    );
    assert_eq!(sim.session.state(), State::Closed);
    let events: Vec<Event> = std::iter::from_fn(|| sim.session.poll_event()).collect();
    assert!(sim.session.poll_directive() == Some(Directive::Close(sim.current())));
    assert!(events.contains(&Event::StateChanged {
        from: State::Disconnecting,
        to: State::Closed,
        cause: Cause::DisconnectConfirmed
    }));
    assert_eq!(sim.session.poll_timeout(), None);
}

#[test]
fn disconnect_receipt_timeout_closes_anyway() {
    let config = Sim::config().with_disconnect_timeout(secs(2));
    let mut sim = Sim::connected(config, BrokerConfig::default());
    // A broker that never answers DISCONNECT: take the bytes ourselves.
    sim.session.disconnect(sim.now);
    let _ = sim.session.poll_transmit();
    sim.advance(ms(1999));
    assert_eq!(sim.session.state(), State::Disconnecting);
    sim.advance(ms(1));
    assert_eq!(sim.session.state(), State::Closed);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::StateChanged {
            to: State::Closed,
            cause: Cause::DisconnectTimedOut,
            ..
        }
    )));
    assert!(
        sim.directives
            .iter()
            .any(|d| matches!(d, Directive::Close(_)))
    );
}

#[test]
fn nothing_is_written_after_disconnect_is_queued() {
    let config = Sim::config().with_heart_beat(ms(100), ms(0));
    let mut sim = Sim::connected(
        config,
        BrokerConfig::default().with_heart_beat_floor(ms(100)),
    );
    sim.session.disconnect(sim.now);
    let wire = sim.session.poll_transmit().unwrap();
    assert!(wire.starts_with(b"DISCONNECT"));
    let now = sim.now;
    assert!(matches!(
        sim.session.send(now, Message::new("/queue/a", "x")),
        Err(e) if e.error() == &Error::Closing
    ));
    assert_eq!(
        sim.session.subscribe(now, Subscribe::new("/queue/a")),
        Err(Error::Closing)
    );
    assert_eq!(sim.session.begin(now, false), Err(Error::Closing));
    for step in 1..50 {
        sim.session.handle_timeout(now + ms(step * 10));
        assert_eq!(
            sim.session.poll_transmit(),
            None,
            "no heart-beat after DISCONNECT"
        );
    }
}

#[test]
fn disconnect_with_a_transport_closed_by_the_broker_completes() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session.disconnect(sim.now);
    let _ = sim.session.poll_transmit();
    sim.session.transport_closed(
        sim.now,
        sim.current(),
        stompkit_session::CloseReason::PeerClosed,
    );
    assert_eq!(sim.session.state(), State::Closed);
    let events: Vec<Event> = std::iter::from_fn(|| sim.session.poll_event()).collect();
    assert_eq!(sim.session.poll_directive(), None, "already closed");
    assert!(!events.iter().any(|e| matches!(e, Event::AttemptFailed { failure, .. } if failure.kind != FailureKind::ClosedByUser)));
}
