//! Heart-beats: negotiated with a floor, sent when the line is idle, and a silent client is
//! closed.

mod support;

use std::time::Duration;

use stompkit_codec::Command;
use stompkit_testkit::BrokerConfig;
use support::{Harness, header, ms};

#[test]
fn requests_below_the_floor_are_raised_like_rabbitmq() {
    // As in transcripts/rabbitmq-heart-beats.json: 500,500 is answered with 1000,1000.
    let mut h = Harness::rabbit();
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.2"), ("heart-beat", "500,500")],
        "",
    );
    assert_eq!(header(&h.take(c)[0], "heart-beat"), "1000,1000");
}

#[test]
fn zero_means_no_heart_beats_that_way() {
    let mut h = Harness::rabbit();
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.2"), ("heart-beat", "0,2000")],
        "",
    );
    assert_eq!(header(&h.take(c)[0], "heart-beat"), "2000,0");
    assert!(
        h.broker.poll_timeout().is_some(),
        "the broker's own beats are due"
    );
    // RabbitMQ's EOL after CONNECTED counts as one.
    let before = h.clients[&c].heartbeats;
    h.advance(Duration::from_secs(60));
    assert!(!h.closed(c), "the client owes no heart-beats");
    assert_eq!(h.clients[&c].heartbeats - before, 30);
}

#[test]
fn the_broker_beats_when_it_has_nothing_else_to_send() {
    let mut h = Harness::new(BrokerConfig::default().with_heart_beat_floor(Duration::ZERO));
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.2"), ("heart-beat", "0,100")],
        "",
    );
    h.take(c);
    // RabbitMQ's EOL after CONNECTED counts as one.
    let before = h.clients[&c].heartbeats;
    h.advance(ms(1000));
    assert_eq!(h.clients[&c].heartbeats - before, 10);
}

#[test]
fn a_client_that_stops_beating_is_closed_after_the_configured_misses() {
    let mut h = Harness::new(BrokerConfig::default().with_heart_beat_floor(Duration::ZERO));
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.2"), ("heart-beat", "100,0")],
        "",
    );
    for _ in 0..10 {
        h.advance(ms(150));
        h.send_raw(c, b"\n");
    }
    assert!(!h.closed(c), "beats every 150 ms are within two intervals");
    h.advance(ms(199));
    assert!(!h.closed(c));
    h.advance(ms(1));
    assert!(h.closed(c), "200 ms of silence is two missed beats");
}

#[test]
fn a_broker_told_not_to_beat_stays_silent() {
    let mut h = Harness::new(
        BrokerConfig::default()
            .with_heart_beat_floor(Duration::ZERO)
            .with_sending_heartbeats(false),
    );
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.2"), ("heart-beat", "0,100")],
        "",
    );
    let before = h.clients[&c].heartbeats;
    h.advance(ms(1000));
    assert_eq!(h.clients[&c].heartbeats, before);
}

#[test]
fn stomp_1_0_negotiates_no_heart_beats() {
    let mut h = Harness::rabbit();
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.0"), ("heart-beat", "100,100")],
        "",
    );
    assert_eq!(header(&h.take(c)[0], "heart-beat"), "0,0");
    assert_eq!(h.broker.poll_timeout(), None);
}

#[test]
fn a_connection_without_connect_is_closed_after_ten_seconds() {
    let mut h = Harness::rabbit();
    let c = h.open();
    h.advance(Duration::from_secs(9));
    assert!(!h.closed(c));
    h.advance(Duration::from_secs(1));
    assert!(h.closed(c));
}
