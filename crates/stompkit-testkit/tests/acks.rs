//! Acknowledgement modes, NACK and redelivery of what a consumer left unacknowledged.

mod support;

use stompkit_codec::Command;
use stompkit_testkit::{BrokerConfig, BrokerLimits};
use support::{Harness, header};

fn ids(frames: &[stompkit_codec::Frame]) -> Vec<String> {
    frames.iter().map(|f| header(f, "ack").to_owned()).collect()
}

#[test]
fn auto_ack_messages_are_gone_once_delivered() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "s", "/queue/q", "auto");
    h.send(c, "/queue/q", "x");
    assert_eq!(h.bodies(c), ["x"]);
    h.drop_client(c);
    assert!(h.broker.held("/queue/q").is_empty());
}

#[test]
fn unacknowledged_messages_are_redelivered_to_the_next_consumer_when_one_goes_away() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    h.subscribe(a, "s", "/queue/q", "client-individual");
    h.send(a, "/queue/q", "one");
    h.send(a, "/queue/q", "two");
    let first = h.take(a);
    assert_eq!(header(&first[0], "redelivered"), "false");
    h.drop_client(a);
    let held = h.broker.held("/queue/q");
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|m| m.redelivered && !m.unacked));
    let b = h.connect();
    h.subscribe(b, "s", "/queue/q", "client-individual");
    let again = h.take(b);
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].body(), b"one", "order is kept");
    assert!(again.iter().all(|f| header(f, "redelivered") == "true"));
}

#[test]
fn client_ack_is_cumulative() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "s", "/queue/q", "client");
    for b in ["1", "2", "3"] {
        h.send(c, "/queue/q", b);
    }
    let ids = ids(&h.take(c));
    h.frame(c, Command::Ack, &[("id", &ids[1])], "");
    let held = h.broker.held("/queue/q");
    assert_eq!(held.len(), 1, "1 and 2 acknowledged together");
    assert_eq!(held[0].body, "3");
    assert_eq!(h.broker.stats().acked, 2);
}

#[test]
fn client_individual_ack_takes_only_the_message_named() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "s", "/queue/q", "client-individual");
    for b in ["1", "2", "3"] {
        h.send(c, "/queue/q", b);
    }
    let ids = ids(&h.take(c));
    h.frame(c, Command::Ack, &[("id", &ids[1])], "");
    let held: Vec<_> = h
        .broker
        .held("/queue/q")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(held, ["1", "3"]);
}

#[test]
fn nack_gives_the_message_back_marked_redelivered_with_a_new_id() {
    // As in transcripts/rabbitmq-nack-redelivery.json.
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "s", "/queue/n", "client-individual");
    h.send(c, "/queue/n", "nack me");
    let first = h.take(c);
    let id = header(&first[0], "ack").to_owned();
    assert!(id.ends_with("@@1"));
    h.frame(c, Command::Nack, &[("id", &id)], "");
    let again = h.take(c);
    assert_eq!(again[0].body(), b"nack me");
    assert_eq!(header(&again[0], "redelivered"), "true");
    assert!(header(&again[0], "ack").ends_with("@@2"));
}

#[test]
fn an_ack_for_an_unknown_id_is_an_error_like_rabbitmq() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.frame(c, Command::Ack, &[("id", "nope"), ("receipt", "r")], "");
    let frames = h.take(c);
    assert_eq!(frames[0].command(), Command::Error);
    assert_eq!(header(&frames[0], "message"), "Invalid header");
    assert_eq!(
        frames[0].body(),
        b"\"ACK\" must include a valid \"id\" header\n"
    );
    assert_eq!(header(&frames[0], "receipt-id"), "r");
    assert!(h.closed(c));
}

#[test]
fn unsubscribing_gives_unacknowledged_messages_back() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    let b = h.connect();
    h.subscribe(a, "s", "/queue/q", "client");
    h.send(a, "/queue/q", "x");
    assert_eq!(h.bodies(a), ["x"]);
    h.frame(a, Command::Unsubscribe, &[("id", "s")], "");
    h.subscribe(b, "s", "/queue/q", "auto");
    assert_eq!(h.bodies(b), ["x"]);
}

#[test]
fn prefetch_bounds_unacknowledged_messages_per_subscription() {
    let config = BrokerConfig::default().with_limits(BrokerLimits::default().with_max_unacked(2));
    let mut h = Harness::new(config);
    let c = h.connect();
    h.subscribe(c, "s", "/queue/q", "client-individual");
    for b in ["1", "2", "3"] {
        h.send(c, "/queue/q", b);
    }
    let frames = h.take(c);
    assert_eq!(frames.len(), 2);
    h.frame(c, Command::Ack, &[("id", header(&frames[0], "ack"))], "");
    assert_eq!(h.bodies(c), ["3"], "an ACK makes room for the next");
}

#[test]
fn ack_uses_message_id_in_stomp_1_1() {
    let mut h = Harness::rabbit();
    let c = h.connect_with("1.1", &[]);
    h.subscribe(c, "s", "/queue/q", "client-individual");
    h.send(c, "/queue/q", "x");
    let frames = h.take(c);
    assert_eq!(frames[0].header("ack"), None, "no ack header before 1.2");
    let id = header(&frames[0], "message-id").to_owned();
    h.frame(
        c,
        Command::Ack,
        &[("message-id", &id), ("subscription", "s")],
        "",
    );
    assert!(!h.closed(c));
    assert!(h.broker.held("/queue/q").is_empty());
}
