//! Queues: each message goes to one consumer, in turn, and waits when nobody consumes.

mod support;

use stompkit_codec::Command;
use support::{Harness, header};

#[test]
fn a_queue_gives_each_message_to_one_consumer_in_turn() {
    let mut h = Harness::rabbit();
    let a = h.connect();
    let b = h.connect();
    h.subscribe(a, "s", "/queue/jobs", "auto");
    h.subscribe(b, "s", "/queue/jobs", "auto");
    let p = h.connect();
    for i in 0..4 {
        h.send(p, "/queue/jobs", &format!("m{i}"));
    }
    assert_eq!(h.bodies(a), ["m0", "m2"]);
    assert_eq!(h.bodies(b), ["m1", "m3"]);
}

#[test]
fn messages_sent_before_anyone_subscribes_wait_in_order() {
    let mut h = Harness::rabbit();
    let p = h.connect();
    h.send(p, "/queue/later", "one");
    h.send(p, "/queue/later", "two");
    assert_eq!(h.broker.held("/queue/later").len(), 2);
    let c = h.connect();
    h.subscribe(c, "s", "/queue/later", "auto");
    assert_eq!(h.bodies(c), ["one", "two"]);
    assert!(h.broker.held("/queue/later").is_empty());
}

#[test]
fn amq_queue_names_the_same_queue_as_queue() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "s", "/amq/queue/same", "auto");
    h.send(c, "/queue/same", "x");
    assert_eq!(h.bodies(c), ["x"]);
}

#[test]
fn message_headers_follow_rabbitmq_order_and_ids() {
    // As in transcripts/rabbitmq-client-individual-ack.json.
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "sub-1", "/queue/t", "client-individual");
    h.frame(
        c,
        Command::Send,
        &[
            ("destination", "/queue/t"),
            ("content-type", "application/json"),
            ("x-path", "C:\\jobs\\new"),
            ("receipt", "r-send"),
        ],
        "{\"jobId\":123}",
    );
    let frames = h.take(c);
    let message = &frames[0];
    let names: Vec<String> = message
        .headers()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "subscription",
            "destination",
            "message-id",
            "redelivered",
            "ack",
            "receipt",
            "x-path",
            "content-type",
            "content-length"
        ]
    );
    let id = header(message, "message-id");
    assert!(
        id.starts_with("T_sub-1@@session-") && id.ends_with("@@1"),
        "{id}"
    );
    assert_eq!(header(message, "ack"), id);
    assert_eq!(header(message, "redelivered"), "false");
    assert_eq!(header(message, "x-path"), "C:\\jobs\\new");
    assert_eq!(header(message, "content-length"), "13");
    assert_eq!(frames[1].command(), Command::Receipt);
    assert_eq!(header(&frames[1], "receipt-id"), "r-send");
    // RabbitMQ ends every frame with an EOL, escapes `:` and `\` in 1.2.
    let raw = String::from_utf8_lossy(&h.clients[&c].raw).into_owned();
    assert!(raw.contains("x-path:C\\c\\\\jobs\\\\new\n"), "{raw}");
    assert!(raw.ends_with("RECEIPT\nreceipt-id:r-send\n\n\0\n"), "{raw}");
}

#[test]
fn a_slow_consumer_is_skipped_while_its_output_is_full() {
    let config = stompkit_testkit::BrokerConfig::default()
        .with_limits(stompkit_testkit::BrokerLimits::default().with_max_output_bytes(1));
    let mut h = Harness::new(config);
    let slow = h.connect();
    h.subscribe(slow, "s", "/queue/q", "auto");
    // Send without reading the consumer's output: the first message fills it.
    let p = h.connect();
    let mut out = bytes::BytesMut::new();
    for i in 0..3 {
        stompkit_codec::Encoder::new(stompkit_codec::Version::V1_2)
            .encode_parts(
                Command::Send,
                [(&b"destination"[..], &b"/queue/q"[..])],
                format!("m{i}").as_bytes(),
                &mut out,
            )
            .unwrap();
    }
    h.broker.handle_input(h.now, p, &out);
    assert_eq!(
        h.broker.held("/queue/q").len(),
        2,
        "only one message is in the output"
    );
    // Reading the output lets the rest through, one at a time.
    h.pump();
    assert_eq!(h.bodies(slow), ["m0", "m1", "m2"]);
}
