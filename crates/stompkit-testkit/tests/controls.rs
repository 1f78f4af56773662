//! What a client's test suite needs from the core besides the wire: the frames it received
//! (the `CONNECT` included), heart-beats counted, receipts withheld, heart-beats per version,
//! and RabbitMQ's unreceipted `not_found`.

mod support;

use stompkit_codec::{Command, Version};
use stompkit_testkit::{BrokerConfig, BrokerEvent, Dialect};
use support::{Harness, commands, header, ms};

#[test]
fn recorded_events_hold_every_frame_received_connect_included() {
    let mut h = Harness::rabbit();
    h.broker.record_events();
    let a = h.connect_with("1.2", &[("login", "guest"), ("passcode", "secret")]);
    h.send(a, "/queue/q", "x");
    let events: Vec<BrokerEvent> = std::iter::from_fn(|| h.broker.poll_event()).collect();
    let frames: Vec<Command> = events
        .iter()
        .filter_map(|e| match e {
            BrokerEvent::Frame { conn, frame } if *conn == a => Some(frame.command()),
            _ => None,
        })
        .collect();
    assert_eq!(frames, [Command::Connect, Command::Send]);
    assert!(
        matches!(events[1], BrokerEvent::Connected { conn, .. } if conn == a),
        "the CONNECT comes before its acceptance: {events:?}"
    );
    let shown = format!("{events:?}");
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn a_refused_connect_is_recorded_too() {
    let mut h = Harness::new(BrokerConfig::default().with_user("guest", "right"));
    h.broker.record_events();
    let a = h.open();
    h.frame(
        a,
        Command::Connect,
        &[
            ("accept-version", "1.2"),
            ("login", "guest"),
            ("passcode", "wrong"),
        ],
        "",
    );
    let events: Vec<BrokerEvent> = std::iter::from_fn(|| h.broker.poll_event()).collect();
    assert!(
        matches!(&events[0], BrokerEvent::Frame { frame, .. } if frame.command() == Command::Connect)
    );
    assert!(
        matches!(events[1], BrokerEvent::Closed { .. }),
        "{events:?}"
    );
    assert!(h.closed(a));
}

#[test]
fn heart_beats_received_are_counted() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    h.send_raw(a, b"\n\n");
    h.send(a, "/queue/q", "x");
    h.send_raw(a, b"\n");
    assert_eq!(h.broker.stats().heartbeats_received, 3);
}

#[test]
fn withheld_receipts_are_not_sent_until_resumed() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    h.broker.withhold_receipts(None, true).unwrap();
    h.frame(
        a,
        Command::Send,
        &[("destination", "/queue/q"), ("receipt", "r1")],
        "x",
    );
    assert!(h.take(a).is_empty(), "no RECEIPT");
    assert_eq!(h.broker.held("/queue/q").len(), 1, "the SEND took effect");
    // A later connection is covered too; an ERROR still names its receipt.
    let b = h.connect();
    h.frame(
        b,
        Command::Send,
        &[("destination", "/nowhere"), ("receipt", "r2")],
        "x",
    );
    let frames = h.take(b);
    assert_eq!(commands(&frames), [Command::Error]);
    assert_eq!(header(&frames[0], "receipt-id"), "r2");
    h.broker.withhold_receipts(None, false).unwrap();
    h.frame(
        a,
        Command::Send,
        &[("destination", "/queue/q"), ("receipt", "r3")],
        "y",
    );
    let frames = h.take(a);
    assert_eq!(commands(&frames), [Command::Receipt]);
    assert_eq!(header(&frames[0], "receipt-id"), "r3");
}

#[test]
fn receipts_withheld_on_one_connection_only() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    let b = h.connect();
    h.broker.withhold_receipts(Some(a), true).unwrap();
    for id in [a, b] {
        h.frame(
            id,
            Command::Subscribe,
            &[("id", "s"), ("destination", "/queue/q"), ("receipt", "r")],
            "",
        );
    }
    assert!(h.take(a).is_empty());
    assert_eq!(commands(&h.take(b)), [Command::Receipt]);
    // DISCONNECT's receipt is withheld too; the connection closes all the same.
    h.frame(a, Command::Disconnect, &[("receipt", "bye")], "");
    assert!(h.take(a).is_empty());
    assert!(h.closed(a));
}

#[test]
fn heart_beats_on_1_0_when_configured() {
    let config = BrokerConfig::default().with_heart_beat_versions(&[
        Version::V1_0,
        Version::V1_1,
        Version::V1_2,
    ]);
    let mut h = Harness::new(config);
    let a = h.open();
    h.send_raw(a, b"CONNECT\nheart-beat:1000,1000\n\n\0");
    let connected = h.take(a);
    assert_eq!(header(&connected[0], "version"), "1.0");
    assert_eq!(header(&connected[0], "heart-beat"), "1000,1000");
    // The harness counts the EOL after each frame as a heart-beat too.
    let before = h.clients[&a].heartbeats;
    h.advance(ms(1000));
    assert_eq!(h.clients[&a].heartbeats, before + 1);

    // The default: none on 1.0.
    let mut h = Harness::rabbit();
    let a = h.open();
    h.send_raw(a, b"CONNECT\nheart-beat:1000,1000\n\n\0");
    assert_eq!(header(&h.take(a)[0], "heart-beat"), "0,0");
}

#[test]
fn no_heart_beat_versions_means_no_heart_beats() {
    let config = BrokerConfig::new(Dialect::RabbitMq).with_heart_beat_versions(&[]);
    let mut h = Harness::new(config);
    let a = h.open();
    h.frame(
        a,
        Command::Connect,
        &[("accept-version", "1.2"), ("heart-beat", "1000,1000")],
        "",
    );
    assert_eq!(header(&h.take(a)[0], "heart-beat"), "0,0");
    let before = h.clients[&a].heartbeats;
    h.advance(ms(10_000));
    assert_eq!(h.clients[&a].heartbeats, before);
    assert!(!h.closed(a), "nor any loss detection");
}

#[test]
fn a_missing_exchange_is_refused_without_naming_the_receipt() {
    // RabbitMQ reports it when the channel closes: the ERROR answers no frame in particular.
    let mut h = Harness::rabbit();
    let a = h.connect();
    h.frame(
        a,
        Command::Subscribe,
        &[
            ("id", "s"),
            ("destination", "/exchange/missing/k"),
            ("receipt", "r"),
        ],
        "",
    );
    let frames = h.take(a);
    assert_eq!(commands(&frames), [Command::Error]);
    assert_eq!(header(&frames[0], "message"), "not_found");
    assert_eq!(frames[0].header("receipt-id"), None);
    assert!(h.closed(a));
}
