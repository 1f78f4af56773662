//! Version negotiation and the per-version rules (escaping, ack header names).

mod support;

use stompkit_codec::{Command, Version};
use stompkit_testkit::BrokerConfig;
use support::{Harness, header};

#[test]
fn the_highest_common_version_wins() {
    let mut h = Harness::rabbit();
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.0,1.1,1.2")],
        "",
    );
    assert_eq!(header(&h.take(c)[0], "version"), "1.2");
    let mut h =
        Harness::new(BrokerConfig::default().with_versions(&[Version::V1_0, Version::V1_1]));
    let c = h.open();
    h.frame(
        c,
        Command::Connect,
        &[("accept-version", "1.0,1.1,1.2")],
        "",
    );
    assert_eq!(header(&h.take(c)[0], "version"), "1.1");
}

#[test]
fn connect_without_accept_version_is_stomp_1_0() {
    // As in transcripts/rabbitmq-no-accept-version.json.
    let mut h = Harness::rabbit();
    let c = h.open();
    h.send_raw(c, b"CONNECT\nlogin:guest\npasscode:guest\nhost:/\n\n\0");
    let frames = h.take(c);
    assert_eq!(header(&frames[0], "version"), "1.0");
    let names: Vec<&[u8]> = frames[0].headers().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [&b"server"[..], b"session", b"heart-beat", b"version"]
    );
}

#[test]
fn no_common_version_is_an_error_listing_ours() {
    let mut h = Harness::new(BrokerConfig::default().with_versions(&[Version::V1_2]));
    let c = h.open();
    h.frame(c, Command::Connect, &[("accept-version", "1.0")], "");
    let frames = h.take(c);
    assert_eq!(header(&frames[0], "version"), "1.2");
    assert_eq!(header(&frames[0], "message"), "Version mismatch");
    assert!(h.closed(c));
}

#[test]
fn the_stomp_command_connects_too() {
    let mut h = Harness::rabbit();
    let c = h.open();
    h.frame(c, Command::Stomp, &[("accept-version", "1.2")], "");
    assert_eq!(h.take(c)[0].command(), Command::Connected);
}

#[test]
fn headers_are_escaped_per_version() {
    let mut h = Harness::rabbit();
    let one_one = h.connect_with("1.1", &[]);
    let one_zero = h.connect_with("1.0", &[]);
    h.subscribe(one_one, "s", "/topic/e", "auto");
    h.subscribe(one_zero, "s", "/topic/e", "auto");
    let p = h.connect();
    h.frame(
        p,
        Command::Send,
        &[("destination", "/topic/e"), ("k", "a:b")],
        "x",
    );
    let raw11 = String::from_utf8_lossy(&h.clients[&one_one].raw).into_owned();
    assert!(raw11.contains("\nk:a\\cb\n"), "{raw11}");
    let raw10 = String::from_utf8_lossy(&h.clients[&one_zero].raw).into_owned();
    assert!(raw10.contains("\nk:a:b\n"), "1.0 has no escapes: {raw10}");
}

#[test]
fn a_header_an_older_version_cannot_carry_is_left_out_of_its_message() {
    let mut h = Harness::rabbit();
    let old = h.connect_with("1.0", &[]);
    h.subscribe(old, "s", "/topic/e", "auto");
    let p = h.connect();
    h.frame(
        p,
        Command::Send,
        &[("destination", "/topic/e"), ("k", "line\nbreak")],
        "x",
    );
    let frames = h.take(old);
    assert_eq!(frames[0].body(), b"x");
    assert_eq!(frames[0].header("k"), None);
}

#[test]
fn nack_is_not_stomp_1_0() {
    let mut h = Harness::rabbit();
    let c = h.connect_with("1.0", &[]);
    h.frame(c, Command::Nack, &[("message-id", "m")], "");
    assert_eq!(header(&h.take(c)[0], "message"), "Illegal command");
}

#[test]
fn disconnect_with_receipt_gets_the_receipt_then_a_close() {
    // As in transcripts/rabbitmq-connect-1.2.json.
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.frame(c, Command::Disconnect, &[("receipt", "bye")], "");
    assert!(
        h.clients[&c]
            .raw
            .ends_with(b"RECEIPT\nreceipt-id:bye\n\n\0\n")
    );
    assert!(h.closed(c));
}

#[test]
fn a_1_0_subscription_without_id_is_named_by_its_destination() {
    let mut h = Harness::rabbit();
    let c = h.connect_with("1.0", &[]);
    h.frame(c, Command::Subscribe, &[("destination", "/queue/q")], "");
    h.send(c, "/queue/q", "x");
    assert_eq!(header(&h.take(c)[0], "subscription"), "/queue/q");
    h.frame(c, Command::Unsubscribe, &[("destination", "/queue/q")], "");
    assert!(!h.closed(c));
}
