//! ERROR frames and protocol violations after the handshake, and the statistics.

mod support;

use stompkit_codec::Command;
use stompkit_session::{
    Directive, Event, FailureKind, Message, ReceiptId, ReceiptOutcome, State, Subscribe,
};
use support::*;

#[test]
fn an_error_frame_ends_the_connection_fails_pending_receipts_and_reports_the_message() {
    let steps = transcript("activemq-malformed-send");
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.broker.withhold_receipts(None, true).unwrap();
    let sub = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/a").receipt())
        .unwrap();
    sim.pump();
    let error = server_bytes(&steps, &[]).pop().unwrap();
    sim.broker_says(&error);
    let (message, body) = sim
        .events
        .iter()
        .find_map(|e| match e {
            Event::ServerError { message, frame } => Some((message.clone(), frame.body_bytes())),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        message.as_deref(),
        Some("SEND received without a Destination specified!")
    );
    assert!(body.starts_with(b"org.apache.activemq.transport.stomp.ProtocolException"));
    assert!(sim.events.contains(&Event::Receipt {
        id: ReceiptId::Subscribe(sub),
        outcome: ReceiptOutcome::ConnectionLost
    }));
    assert!(
        sim.directives
            .iter()
            .any(|d| matches!(d, Directive::Close(_)))
    );
    assert!(matches!(sim.session.state(), State::Reconnecting { .. }));
    assert_eq!(last_failure(&sim.session).kind, FailureKind::ServerError);
    assert_eq!(sim.session.stats().errors, 1);
    // It is retryable.
    sim.advance(secs(1));
    assert_eq!(sim.session.state(), State::Connected);
}

#[test]
fn undecodable_bytes_from_the_broker_are_a_protocol_failure() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.broker_says(b"HELLO WORLD\nthis:is\nnot stomp\n\n\0");
    assert_eq!(last_failure(&sim.session).kind, FailureKind::Protocol);
    assert!(
        sim.directives
            .iter()
            .any(|d| matches!(d, Directive::Close(_)))
    );
}

#[test]
fn a_client_frame_from_the_broker_is_a_protocol_failure() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.broker_says(b"SEND\ndestination:/queue/a\n\nx\0");
    let failure = last_failure(&sim.session).clone();
    assert_eq!(failure.kind, FailureKind::Protocol);
    assert!(failure.detail.contains("SEND"));
}

#[test]
fn frames_split_at_every_byte_are_handled_the_same() {
    let steps = transcript("rabbitmq-transaction");
    let mut whole = Sim::connected(Sim::config(), BrokerConfig::default());
    let mut split = Sim::connected(Sim::config(), BrokerConfig::default());
    for sim in [&mut whole, &mut split] {
        sim.session
            .subscribe(sim.now, Subscribe::new("/queue/transcript-1795304747-t"))
            .unwrap();
        sim.pump();
    }
    let bytes = server_bytes(&steps, &[("subscription:t\n", "subscription:sub-1\n")])
        .pop()
        .unwrap();
    whole.broker_says(&bytes);
    for b in &bytes {
        split
            .session
            .handle_input(split.now, split.current(), std::slice::from_ref(b));
    }
    split.pump();
    assert_eq!(whole.delivered_bodies(), ["committed"]);
    assert_eq!(split.delivered_bodies(), ["committed"]);
}

#[test]
fn statistics_count_frames_bytes_heartbeats_destinations_and_uptime() {
    let config = Sim::config().with_heart_beat(ms(1000), ms(0));
    let mut sim = Sim::connected(config, BrokerConfig::default());
    let connected_at = sim.now;
    sim.session
        .subscribe(sim.now, Subscribe::new("/queue/in"))
        .unwrap();
    sim.session
        .send(sim.now, Message::new("/queue/out", "a"))
        .unwrap();
    sim.session
        .send(sim.now, Message::new("/queue/out", "b"))
        .unwrap();
    sim.pump();
    sim.publish("/queue/in", "x");
    sim.pump();
    sim.advance(ms(2500));
    let stats = sim.session.stats();
    assert_eq!(stats.frames_out_by_command.get(Command::Connect), 1);
    assert_eq!(stats.frames_out_by_command.get(Command::Send), 2);
    assert_eq!(stats.frames_out_by_command.get(Command::Subscribe), 1);
    assert_eq!(stats.frames_in_by_command.get(Command::Connected), 1);
    assert_eq!(stats.frames_in_by_command.get(Command::Message), 1);
    assert_eq!(stats.frames_out, 4);
    assert_eq!(stats.heartbeats_out, 2);
    assert_eq!(stats.destination("/queue/out").unwrap().sent, 2);
    assert_eq!(stats.destination("/queue/in").unwrap().received, 1);
    assert_eq!(stats.uptime(sim.now), Some(sim.now - connected_at));
    assert!(stats.bytes_out > 0 && stats.bytes_in > 0);
    assert_eq!(stats.last_activity, Some(connected_at + ms(2000)));
    assert_eq!(
        (stats.attempts, stats.connections, stats.reconnections),
        (1, 1, 0)
    );
    sim.drop_link();
    assert_eq!(sim.session.stats().uptime(sim.now), None);
    assert_eq!(sim.session.stats().failures, 1);
}

#[test]
fn debug_output_never_shows_credentials() {
    let mut sim = Sim::new(Sim::config(), BrokerConfig::default());
    sim.credentials = Box::new(|_| {
        stompkit_session::Credentials::login("u", "hunter2")
            .header("Authorization", "Bearer tok-123")
    });
    sim.session.connect(sim.now);
    // Leave the CONNECT frame unread inside the session.
    let attempt = sim.session.attempt().unwrap();
    sim.session
        .transport_connected(sim.now, attempt, (sim.credentials)(1));
    let session = format!("{:?}", sim.session);
    let transmit = sim.session.poll_transmit().unwrap();
    assert!(
        transmit.windows(7).any(|w| w == b"hunter2"),
        "the CONNECT is in it"
    );
    let shown = format!("{session} {:?} {transmit:?}", (sim.credentials)(1));
    assert!(
        !shown.contains("hunter2") && !shown.contains("tok-123"),
        "{shown}"
    );
}
