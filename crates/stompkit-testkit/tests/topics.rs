//! Topics and exchanges: each message goes to every subscriber present when it is sent.

mod support;

use stompkit_codec::Command;
use stompkit_testkit::{BrokerConfig, Dialect};
use support::{Harness, header};

#[test]
fn a_topic_gives_every_message_to_every_subscriber() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    let b = h.connect();
    h.subscribe(a, "s", "/topic/news", "auto");
    h.subscribe(b, "s", "/topic/news", "auto");
    h.send(a, "/topic/news", "one");
    h.send(b, "/topic/news", "two");
    assert_eq!(h.bodies(a), ["one", "two"]);
    assert_eq!(h.bodies(b), ["one", "two"]);
}

#[test]
fn a_topic_keeps_nothing_for_later_subscribers() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    h.send(a, "/topic/news", "early");
    h.subscribe(a, "s", "/topic/news", "auto");
    h.send(a, "/topic/news", "late");
    assert_eq!(h.bodies(a), ["late"]);
}

#[test]
fn the_amq_topic_exchange_and_the_topic_prefix_share_routing_keys() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    h.subscribe(a, "s", "/exchange/amq.topic/k", "auto");
    h.send(a, "/topic/k", "via topic");
    assert_eq!(h.bodies(a), ["via topic"]);
}

#[test]
fn an_unknown_exchange_is_an_error() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    h.send(a, "/exchange/nope/k", "x");
    let frames = h.take(a);
    assert_eq!(frames[0].command(), Command::Error);
    assert_eq!(header(&frames[0], "message"), "not_found");
    assert!(h.closed(a));
}

#[test]
fn spring_simple_fans_out_any_destination_without_ack_headers_or_eol() {
    let mut h = Harness::new(BrokerConfig::new(Dialect::SpringSimple));
    let a = h.connect();
    let b = h.connect();
    h.subscribe(a, "s", "/app/greetings", "client-individual");
    h.subscribe(b, "s", "/app/greetings", "auto");
    h.frame(
        a,
        Command::Send,
        &[("destination", "/app/greetings"), ("receipt", "r")],
        "hi",
    );
    let frames = h.take(a);
    assert_eq!(
        support::commands(&frames),
        [Command::Message],
        "no receipt in Spring"
    );
    assert_eq!(frames[0].header("ack"), None);
    assert_eq!(h.bodies(b), ["hi"]);
    assert!(h.clients[&a].raw.ends_with(b"hi\0"), "no EOL after frames");
    // ACK is accepted and does nothing.
    let id = header(&frames[0], "message-id").to_owned();
    h.frame(a, Command::Ack, &[("id", &id)], "");
    assert!(!h.closed(a));
}

#[test]
fn spring_simple_answers_a_receipt_only_on_disconnect() {
    let mut h = Harness::new(BrokerConfig::new(Dialect::SpringSimple));
    let a = h.connect();
    h.frame(
        a,
        Command::Subscribe,
        &[("id", "s"), ("destination", "/t"), ("receipt", "r1")],
        "",
    );
    assert!(h.take(a).is_empty());
    h.frame(a, Command::Disconnect, &[("receipt", "bye")], "");
    let frames = h.take(a);
    assert_eq!(header(&frames[0], "receipt-id"), "bye");
    assert!(h.closed(a));
}

#[test]
fn spring_simple_refuses_frames_over_64_kib() {
    let mut h = Harness::new(BrokerConfig::new(Dialect::SpringSimple));
    let a = h.connect();
    h.send(a, "/t", &"x".repeat(64 * 1024));
    let frames = h.take(a);
    assert_eq!(frames[0].command(), Command::Error);
    assert_eq!(header(&frames[0], "message"), "Frame too large");
    assert!(h.closed(a));
}
