//! CONNECT, version negotiation, credentials, and handshake failures.

mod support;

use stompkit_codec::{Command, Version};
use stompkit_session::{
    BackoffConfig, Cause, Credentials, Directive, Event, FailureKind, GiveUpReason,
    HandshakeFailure, Session, SessionConfig, State,
};
use support::*;

#[test]
fn connect_frame_matches_the_rabbitmq_transcript_byte_for_byte() {
    let steps = transcript("rabbitmq-connect-1.2");
    let config = Sim::config().with_versions([Version::V1_2]);
    let mut session = Session::new(config, std::time::Instant::now()).unwrap();
    let now = std::time::Instant::now();
    session.connect(now);
    assert!(matches!(
        session.poll_event(),
        Some(Event::StateChanged {
            to: State::Connecting,
            ..
        })
    ));
    let attempt = match session.poll_directive() {
        Some(Directive::Open(attempt)) => attempt,
        other => panic!("expected Open, got {other:?}"),
    };
    assert_eq!(attempt.number(), 1);
    assert_eq!(session.poll_event(), None, "the directive is not an event");
    session.transport_connected(
        now,
        session.attempt().unwrap(),
        Credentials::login("guest", "guest"),
    );
    let written = session.poll_transmit().expect("CONNECT");
    assert_eq!(&written[..], &steps[0].data[..]);

    for bytes in server_bytes(&steps, &[]).iter().take(1) {
        session.handle_input(now, session.attempt().unwrap(), bytes);
    }
    assert_eq!(session.state(), State::Connected);
    assert_eq!(session.version(), Some(Version::V1_2));
    let connected = std::iter::from_fn(|| session.poll_event())
        .find(|e| matches!(e, Event::Connected { .. }))
        .expect("Connected event");
    let Event::Connected {
        server,
        session: id,
        ..
    } = connected
    else {
        unreachable!()
    };
    assert_eq!(server.as_deref(), Some("RabbitMQ/3.10.8"));
    assert_eq!(id.as_deref(), Some("session-Q45J3gvf5uy37sPieZsAtw"));
}

#[test]
fn each_offered_version_is_negotiated_with_both_brokers() {
    for (name, version) in [
        ("rabbitmq-connect-1.0", Version::V1_0),
        ("rabbitmq-connect-1.1", Version::V1_1),
        ("rabbitmq-connect-1.2", Version::V1_2),
        ("activemq-connect-1.0", Version::V1_0),
        ("activemq-connect-1.1", Version::V1_1),
        ("activemq-connect-1.2", Version::V1_2),
    ] {
        let steps = transcript(name);
        let now = std::time::Instant::now();
        let host = if name.starts_with("activemq") {
            "localhost"
        } else {
            "/"
        };
        let mut session =
            Session::new(Sim::config().with_versions([version]).with_host(host), now).unwrap();
        session.connect(now);
        session.transport_connected(
            now,
            session.attempt().unwrap(),
            Credentials::login("guest", "guest"),
        );
        assert_eq!(
            &session.poll_transmit().unwrap()[..],
            &steps[0].data[..],
            "{name}"
        );
        session.handle_input(
            now,
            session.attempt().unwrap(),
            &server_bytes(&steps, &[])[0],
        );
        assert_eq!(session.version(), Some(version), "{name}");
    }
}

#[test]
fn connected_without_version_header_means_1_0_and_is_refused_unless_offered() {
    let mut sim = Sim::new(
        Sim::config().with_versions([Version::V1_1, Version::V1_2]),
        BrokerConfig::default(),
    );
    // An empty version header is not a version we offered either. No broker answers so:
    // a scripted peer does.
    sim.scripted = true;
    sim.connect();
    assert!(sim.heard.starts_with(b"CONNECT\n"));
    sim.broker_says(b"CONNECTED\nserver:scripted\nheart-beat:0,0\nversion:\n\n\0\n");
    assert!(sim.events.iter().any(|e| matches!(e,
        Event::AttemptFailed { failure, .. } if failure.kind == FailureKind::Handshake(HandshakeFailure::Version))));

    // A missing header: answer by hand.
    let now = std::time::Instant::now();
    let mut session = Session::new(Sim::config().with_versions([Version::V1_2]), now).unwrap();
    session.connect(now);
    session.transport_connected(now, session.attempt().unwrap(), Credentials::anonymous());
    session.handle_input(
        now,
        session.attempt().unwrap(),
        b"CONNECTED\nserver:old\n\n\0",
    );
    assert_eq!(session.state(), State::Closed);
    let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
    assert!(events.contains(&Event::GaveUp {
        reason: GiveUpReason::NonRetryable(FailureKind::Handshake(HandshakeFailure::Version)),
        attempts: 1
    }));
    let attempt = session.attempt().unwrap();
    assert_eq!(session.poll_directive(), Some(Directive::Open(attempt)));
    assert_eq!(session.poll_directive(), Some(Directive::Close(attempt)));
}

#[test]
fn connected_naming_a_version_not_offered_is_refused_and_not_retried() {
    let mut sim = Sim::new(
        Sim::config().with_versions([Version::V1_2]),
        BrokerConfig::default(),
    );
    // A scripted peer: no broker names a version the client did not offer.
    sim.scripted = true;
    sim.connect();
    sim.broker_says(b"CONNECTED\nserver:scripted\nheart-beat:0,0\nversion:1.1\n\n\0\n");
    assert_eq!(sim.session.state(), State::Closed);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::StateChanged {
            to: State::Closed,
            cause: Cause::Failure(FailureKind::Handshake(HandshakeFailure::Version)),
            ..
        }
    )));
    sim.advance(secs(60));
    assert_eq!(sim.session.stats().attempts, 1, "no retry");
}

#[test]
fn broker_sharing_no_version_is_a_version_failure() {
    let mut sim = Sim::new(
        Sim::config().with_versions([Version::V1_2]),
        BrokerConfig::default().with_versions(&[Version::V1_0, Version::V1_1]),
    );
    sim.connect();
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::GaveUp {
            reason: GiveUpReason::NonRetryable(FailureKind::Handshake(HandshakeFailure::Version)),
            ..
        }
    )));
}

#[test]
fn bad_credentials_error_during_handshake_stops_retrying() {
    let steps = transcript("rabbitmq-bad-passcode");
    let now = std::time::Instant::now();
    let mut session = Session::new(Sim::config().with_versions([Version::V1_2]), now).unwrap();
    session.connect(now);
    session.transport_connected(
        now,
        session.attempt().unwrap(),
        Credentials::login("guest", "wrong"),
    );
    assert_eq!(&session.poll_transmit().unwrap()[..], &steps[0].data[..]);
    session.handle_input(
        now,
        session.attempt().unwrap(),
        &server_bytes(&steps, &[])[0],
    );
    let events: Vec<Event> = std::iter::from_fn(|| session.poll_event()).collect();
    let error = events.iter().find_map(|e| match e {
        Event::ServerError { message, frame } => Some((message.clone(), frame.body_bytes())),
        _ => None,
    });
    let (message, body) = error.expect("ServerError");
    assert_eq!(message.as_deref(), Some("Bad CONNECT"));
    assert_eq!(&body[..], b"Access refused for user 'guest'\n");
    assert!(events.contains(&Event::GaveUp {
        reason: GiveUpReason::NonRetryable(FailureKind::Handshake(HandshakeFailure::Auth)),
        attempts: 1
    }));
    assert_eq!(session.state(), State::Closed);
    assert_eq!(session.poll_timeout(), None, "nothing scheduled: no retry");
    let record = session.attempts().last().unwrap();
    assert_eq!(
        record.failure.as_ref().unwrap().kind,
        FailureKind::Handshake(HandshakeFailure::Auth)
    );
    assert!(
        record
            .failure
            .as_ref()
            .unwrap()
            .detail
            .contains("Access refused")
    );
}

#[test]
fn unknown_vhost_is_an_auth_failure() {
    let steps = transcript("rabbitmq-unknown-vhost");
    let now = std::time::Instant::now();
    let mut session = Session::new(
        Sim::config()
            .with_versions([Version::V1_2])
            .with_host("127.0.0.1"),
        now,
    )
    .unwrap();
    session.connect(now);
    session.transport_connected(
        now,
        session.attempt().unwrap(),
        Credentials::login("guest", "guest"),
    );
    assert_eq!(&session.poll_transmit().unwrap()[..], &steps[0].data[..]);
    session.handle_input(
        now,
        session.attempt().unwrap(),
        &server_bytes(&steps, &[])[0],
    );
    assert_eq!(session.state(), State::Closed);
    assert!(last_failure(&session).detail.contains("Virtual host"));
}

#[test]
fn auth_failures_are_retried_a_bounded_number_of_times_when_configured() {
    let config = Sim::config().with_auth_retries(2);
    let mut sim = Sim::new(config, BrokerConfig::default().with_user("guest", "right"));
    sim.connect();
    sim.advance(secs(600));
    assert_eq!(sim.session.stats().attempts, 3, "first try + 2 retries");
    assert_eq!(sim.session.state(), State::Closed);
    assert!(matches!(
        sim.events
            .iter()
            .rev()
            .find(|e| matches!(e, Event::GaveUp { .. })),
        Some(Event::GaveUp {
            reason: GiveUpReason::NonRetryable(FailureKind::Handshake(HandshakeFailure::Auth)),
            attempts: 3
        })
    ));
}

#[test]
fn credentials_are_asked_again_for_every_attempt() {
    let mut sim = Sim::new(Sim::config(), BrokerConfig::default());
    sim.credentials = Box::new(|attempt| Credentials::bearer(format!("jwt-{attempt}")));
    sim.connect();
    assert_eq!(sim.credentials_asked, 1);
    sim.drop_link();
    sim.advance(secs(2));
    assert_eq!(sim.session.state(), State::Connected);
    assert_eq!(sim.credentials_asked, 2);
    let connects = sim.frames(Command::Connect);
    assert_eq!(connects.len(), 2);
    assert_eq!(
        connects[0].header_str("Authorization"),
        Some("Bearer jwt-1")
    );
    assert_eq!(
        connects[1].header_str("Authorization"),
        Some("Bearer jwt-2")
    );
}

#[test]
fn connect_carries_host_heart_beat_and_extra_headers() {
    let config = SessionConfig::default()
        .with_host("vhost-a")
        .with_heart_beat(ms(5000), ms(7000))
        .with_versions([Version::V1_1, Version::V1_2]);
    let mut sim = Sim::new(config, BrokerConfig::default().with_vhosts(&["vhost-a"]));
    sim.credentials =
        Box::new(|_| Credentials::login("station", "pw").header("client-id", "station-7"));
    sim.connect();
    let connect = sim.frames(Command::Connect)[0].clone();
    assert_eq!(connect.header_str("accept-version"), Some("1.1,1.2"));
    assert_eq!(connect.header_str("host"), Some("vhost-a"));
    assert_eq!(connect.header_str("login"), Some("station"));
    assert_eq!(connect.header_str("passcode"), Some("pw"));
    assert_eq!(connect.header_str("heart-beat"), Some("5000,7000"));
    assert_eq!(connect.header_str("client-id"), Some("station-7"));
}

#[test]
fn credentials_that_cannot_be_written_fail_the_handshake_without_retry() {
    let mut sim = Sim::new(Sim::config(), BrokerConfig::default());
    sim.credentials = Box::new(|_| Credentials::login("a\nb", "x"));
    sim.connect();
    assert_eq!(sim.session.state(), State::Closed);
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::GaveUp {
            reason: GiveUpReason::NonRetryable(FailureKind::Handshake(
                HandshakeFailure::Credentials
            )),
            ..
        }
    )));
    assert!(sim.received.log.is_empty(), "nothing was written");
}

#[test]
fn no_connected_within_the_connect_timeout_is_a_timeout_failure() {
    let config = Sim::config()
        .with_connect_timeout(secs(5))
        .with_backoff(BackoffConfig::constant(secs(1)));
    let mut sim = Sim::new(config, BrokerConfig::default());
    sim.opens = false; // the transport never opens
    sim.connect();
    sim.advance(secs(5));
    assert!(matches!(sim.session.state(), State::Reconnecting { .. }));
    let failure = last_failure(&sim.session).clone();
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert!(
        sim.directives
            .iter()
            .any(|d| matches!(d, Directive::Close(_)))
    );
}

#[test]
fn a_frame_other_than_connected_during_the_handshake_is_a_protocol_failure() {
    let now = std::time::Instant::now();
    let mut session = Session::new(Sim::config(), now).unwrap();
    session.connect(now);
    session.transport_connected(now, session.attempt().unwrap(), Credentials::anonymous());
    session.handle_input(
        now,
        session.attempt().unwrap(),
        b"RECEIPT\nreceipt-id:x\n\n\0",
    );
    assert!(matches!(session.state(), State::Reconnecting { .. }));
    assert_eq!(last_failure(&session).kind, FailureKind::Protocol);
}

#[test]
fn stray_transport_events_are_ignored() {
    let now = std::time::Instant::now();
    // An attempt of another session: this one never asked for a transport.
    let mut other = Session::new(Sim::config(), now).unwrap();
    other.connect(now);
    let attempt = other.attempt().unwrap();
    let mut session = Session::new(Sim::config(), now).unwrap();
    assert_eq!(session.attempt(), None);
    session.transport_connected(now, attempt, Credentials::anonymous());
    session.transport_closed(now, attempt, stompkit_session::CloseReason::PeerClosed);
    session.handle_input(now, attempt, b"CONNECTED\nversion:1.2\n\n\0");
    session.handle_timeout(now);
    assert_eq!(session.state(), State::Idle);
    assert_eq!(session.poll_transmit(), None);
    assert_eq!(session.poll_event(), None);
}
