//! Errors: malformed frames, refused logins and hosts, limits. Each is an ERROR, then the
//! connection closes, and the broker carries on for everyone else.

mod support;

use stompkit_codec::{Command, Limits};
use stompkit_testkit::{BrokerConfig, BrokerLimits, Error};
use support::{Harness, header};

#[test]
fn garbage_gets_an_error_and_a_close() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.send_raw(c, b"HELLO WORLD\nthis:is\nnot stomp\n\n\0");
    let frames = h.take(c);
    assert_eq!(frames[0].command(), Command::Error);
    assert_eq!(header(&frames[0], "message"), "Malformed frame");
    assert!(h.closed(c));
    // Bytes after the close are ignored.
    h.send_raw(c, b"SEND\ndestination:/queue/x\n\n\0");
    assert!(h.broker.held("/queue/x").is_empty());
}

#[test]
fn a_send_without_destination_gets_rabbitmqs_error() {
    // As in transcripts/rabbitmq-malformed-send.json.
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.send_raw(c, b"SEND\n\nno destination\0");
    let raw = String::from_utf8_lossy(&h.clients[&c].raw).into_owned();
    assert!(
        raw.ends_with("ERROR\nmessage:Missing destination\ncontent-type:text/plain\nversion:1.0,1.1,1.2\ncontent-length:43\n\n\"SEND\" must include a 'destination' header\n\0\n"),
        "{raw}"
    );
}

#[test]
fn a_wrong_passcode_is_refused_when_users_are_configured() {
    // As in transcripts/rabbitmq-bad-passcode.json.
    let mut h = Harness::new(BrokerConfig::default().with_user("guest", "guest"));
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[
            ("accept-version", "1.2"),
            ("login", "guest"),
            ("passcode", "wrong"),
        ],
        "",
    );
    let frames = h.take(c);
    assert_eq!(header(&frames[0], "message"), "Bad CONNECT");
    assert_eq!(frames[0].body(), b"Access refused for user 'guest'\n");
    assert!(h.closed(c));
    h.connect_with("1.2", &[("login", "guest"), ("passcode", "guest")]);
}

#[test]
fn any_login_is_accepted_without_users() {
    let mut h = Harness::rabbit();
    let c = h.connect_with("1.2", &[("login", "anyone"), ("passcode", "anything")]);
    assert!(!h.closed(c));
}

#[test]
fn an_unknown_virtual_host_is_refused() {
    // As in transcripts/rabbitmq-unknown-vhost.json.
    let mut h = Harness::rabbit();
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.2"), ("host", "127.0.0.1")],
        "",
    );
    let frames = h.take(c);
    assert_eq!(frames[0].body(), b"Virtual host '127.0.0.1' access denied");
    assert!(h.closed(c));
}

#[test]
fn frames_before_connect_are_refused() {
    let mut h = Harness::rabbit();
    let c = h.open();
    h.send_raw(c, b"SEND\ndestination:/queue/x\n\nx\0");
    assert_eq!(header(&h.take(c)[0], "message"), "Illegal command");
    assert!(h.closed(c));
}

#[test]
fn an_unknown_destination_type_is_refused() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.send(c, "/somewhere/else", "x");
    assert_eq!(header(&h.take(c)[0], "message"), "Unknown destination");
}

#[test]
fn the_error_names_the_receipt_of_the_refused_frame() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.frame(
        c,
        Command::Send,
        &[("destination", "/bad"), ("receipt", "r-7")],
        "x",
    );
    assert_eq!(header(&h.take(c)[0], "receipt-id"), "r-7");
}

#[test]
fn a_frame_over_the_size_limit_is_refused() {
    let config = BrokerConfig::default().with_limits(
        BrokerLimits::default().with_frame(Limits::default().with_max_frame_bytes(100)),
    );
    let mut h = Harness::new(config);
    let c = h.connect();
    h.send(c, "/queue/q", &"x".repeat(200));
    assert_eq!(header(&h.take(c)[0], "message"), "Frame too large");
    assert!(h.closed(c));
}

#[test]
fn a_full_queue_refuses_the_send() {
    let config =
        BrokerConfig::default().with_limits(BrokerLimits::default().with_max_queue_messages(2));
    let mut h = Harness::new(config);
    let c = h.connect();
    for _ in 0..3 {
        h.send(c, "/queue/q", "x");
    }
    assert_eq!(header(&h.take(c)[0], "message"), "Queue full");
    assert_eq!(h.broker.held("/queue/q").len(), 2);
    assert!(matches!(
        h.broker.publish("/queue/q", &[], "y"),
        Err(Error::Full(_))
    ));
}

#[test]
fn too_many_subscriptions_are_refused() {
    let config =
        BrokerConfig::default().with_limits(BrokerLimits::default().with_max_subscriptions(1));
    let mut h = Harness::new(config);
    let c = h.connect();
    h.subscribe(c, "a", "/queue/a", "auto");
    h.subscribe(c, "b", "/queue/b", "auto");
    assert_eq!(header(&h.take(c)[0], "message"), "Too many subscriptions");
}

#[test]
fn too_many_connections_are_refused_at_open() {
    let config =
        BrokerConfig::default().with_limits(BrokerLimits::default().with_max_connections(1));
    let mut h = Harness::new(config);
    h.open();
    assert!(matches!(
        h.broker.open(h.now),
        Err(Error::TooManyConnections { max: 1 })
    ));
}

#[test]
fn a_duplicate_subscription_id_is_refused() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "a", "/queue/a", "auto");
    h.subscribe(c, "a", "/queue/b", "auto");
    assert_eq!(
        header(&h.take(c)[0], "message"),
        "Duplicated subscription identifier"
    );
}

#[test]
fn one_clients_error_leaves_the_others_served() {
    let mut h = Harness::rabbit();
    let good = h.connect();
    let bad = h.connect();
    h.subscribe(good, "s", "/queue/q", "auto");
    h.send_raw(bad, b"garbage\n\n\0");
    assert!(h.closed(bad));
    h.send(good, "/queue/q", "still here");
    assert_eq!(h.bodies(good), ["still here"]);
}

#[test]
fn invalid_configurations_are_refused() {
    assert!(stompkit_testkit::Broker::new(BrokerConfig::default().with_versions(&[])).is_err());
    assert!(
        stompkit_testkit::Broker::new(
            BrokerConfig::default().with_limits(BrokerLimits::default().with_max_unacked(0))
        )
        .is_err()
    );
}
