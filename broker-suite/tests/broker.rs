//! The client against a real RabbitMQ node over TCP, TLS and WebSocket (see
//! `docs/testing.md`). No test here stops the broker, so they run in parallel; those that do
//! are in `outage.rs`. Every wait is bounded: a hang fails the test, nothing is timed.

use std::time::Duration;

use stompkit_broker_suite::{
    TestQueue, WAIT, broker, builder, connect, next, subscribe, text, unique, wait_event, within,
};
use stompkit_tokio::session::{DropReason, FailureKind, GiveUpReason, SubscriptionEnd};
use stompkit_tokio::{
    AckMode, Client, ClientEvent, Credentials, Endpoint, Error, Message, State, Subscribe,
    Subscription, TlsConfig, TransportConfig, Version,
};

/// Sends a receipted marker and reads `subscription` up to it: everything delivered before
/// the marker, as text. The queue is empty past the marker's point once this returns.
async fn drain_to_marker(
    client: &Client,
    queue: &TestQueue,
    subscription: &mut Subscription,
) -> Vec<String> {
    let marker = unique("marker");
    within(
        "the marker's receipt",
        client.send_confirmed(Message::new(queue.send_destination(), marker.clone())),
    )
    .await
    .expect("marker confirmed");
    let mut before = Vec::new();
    loop {
        let delivery = next(subscription).await;
        let body = text(&delivery);
        if delivery.frame().header_str("ack").is_some() {
            within("the marker's ACK", delivery.ack())
                .await
                .expect("ack");
        }
        if body == marker {
            return before;
        }
        before.push(body);
    }
}

async fn send_all(client: &Client, queue: &TestQueue, bodies: &[&str]) {
    for body in bodies {
        within(
            "a receipt",
            client.send_confirmed(Message::new(queue.send_destination(), body.to_string())),
        )
        .await
        .unwrap_or_else(|e| panic!("{body} not confirmed: {e}"));
    }
}

async fn disconnect(client: Client) {
    within("DISCONNECT", client.disconnect())
        .await
        .expect("disconnected");
}

// ------------------------------------------------------------------ versions and transports

/// Connects offering only `version`, checks the broker agreed to it, then a receipted
/// send and its delivery with a custom header.
async fn round_trip(url: &str, version: Version) {
    let client = builder(url)
        .session_with(|s| s.with_versions([version]))
        .start()
        .expect("client starts");
    let mut events = client.events();
    within("CONNECTED", client.wait_connected())
        .await
        .unwrap_or_else(|e| panic!("{url} with {version:?}: {e}"));
    let negotiated = wait_event(&mut events, WAIT, |e| match e {
        ClientEvent::Connected { version, .. } => Some(*version),
        _ => None,
    })
    .await;
    assert_eq!(negotiated, version, "{url}");

    let queue = TestQueue::new("version");
    let mut subscription = subscribe(&client, queue.subscribe()).await;
    let body = format!("hello over {url} in {version:?}");
    within(
        "the SEND receipt",
        client.send_confirmed(
            Message::new(queue.send_destination(), body.clone()).header("x-probe", "value-1"),
        ),
    )
    .await
    .expect("confirmed");
    let delivery = next(&mut subscription).await;
    assert_eq!(text(&delivery), body);
    assert_eq!(delivery.header("x-probe"), Some("value-1"));
    assert!(!delivery.possibly_duplicate());
    drop(subscription);
    disconnect(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_negotiates_each_version() {
    for version in Version::ALL {
        round_trip(&broker().tcp, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_negotiates_each_version() {
    for version in Version::ALL {
        round_trip(&broker().tls, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_negotiates_each_version() {
    for version in Version::ALL {
        round_trip(&broker().ws, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_the_ca_is_a_certificate_error() {
    let endpoint: Endpoint = broker().tls.parse().expect("TLS URL");
    let result = within(
        "the TLS handshake",
        stompkit_tokio::connect(
            &endpoint,
            &TransportConfig::default().with_tls(TlsConfig::system_roots()),
        ),
    )
    .await;
    let Err(error) = result else {
        panic!("the handshake succeeded, but the test CA is not among the system roots");
    };
    assert!(error.is_certificate_error(), "{error:?}");
}

/// A client without the CA reports the failed attempt naming the certificate and gives up
/// at once: retrying cannot make a certificate verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_without_the_ca_reports_it_and_gives_up() {
    let client = builder(&broker().tls)
        .transport(TransportConfig::default().with_tls(TlsConfig::system_roots()))
        .start()
        .expect("client starts");
    let mut events = client.events();
    let error = within("giving up", client.wait_connected())
        .await
        .expect_err("no connection without the CA");
    let Error::GaveUp {
        reason,
        last: Some(last),
        ..
    } = &error
    else {
        panic!("expected GaveUp with the last failure, got {error:?}");
    };
    assert!(last.detail.contains("does not verify"), "{last:?}");
    assert!(error.is_certificate_error(), "typed: {error:?}");
    assert_eq!(
        *reason,
        GiveUpReason::NonRetryable(FailureKind::TransportRefused)
    );
    let failure = wait_event(&mut events, WAIT, |e| match e {
        ClientEvent::AttemptFailed { failure, .. } => Some(failure.clone()),
        _ => None,
    })
    .await;
    assert!(failure.detail.contains("does not verify"), "{failure:?}");
    let stats = within("stats", client.stats()).await.expect("stats");
    assert_eq!(stats.connections, 0);
    assert_eq!(stats.attempts, 1, "no retry of a certificate failure");
}

// ------------------------------------------------------------------ acknowledgements

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_ack_consumes_for_good() {
    let queue = TestQueue::new("auto");
    let client = connect(&broker().tcp).await;
    let mut subscription = subscribe(&client, queue.subscribe()).await;
    send_all(&client, &queue, &["a1", "a2", "a3"]).await;
    for expected in ["a1", "a2", "a3"] {
        let delivery = next(&mut subscription).await;
        assert_eq!(text(&delivery), expected);
        assert!(
            matches!(delivery.ack().await, Err(Error::Session(_))),
            "no ACK on ack:auto"
        );
    }
    drop(subscription);
    disconnect(client).await;

    // Nothing comes back to the next consumer.
    let client = connect(&broker().tcp).await;
    let mut subscription = subscribe(&client, queue.subscribe()).await;
    assert_eq!(
        drain_to_marker(&client, &queue, &mut subscription).await,
        Vec::<String>::new()
    );
    disconnect(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ack_is_cumulative() {
    let queue = TestQueue::new("client");
    let client = connect(&broker().tcp).await;
    let mut subscription = subscribe(&client, queue.subscribe().ack(AckMode::Client)).await;
    send_all(&client, &queue, &["c1", "c2", "c3", "c4", "c5"]).await;
    let mut deliveries = Vec::new();
    for expected in ["c1", "c2", "c3", "c4", "c5"] {
        let delivery = next(&mut subscription).await;
        assert_eq!(text(&delivery), expected);
        deliveries.push(delivery);
    }
    // Acknowledges c1..c3 at once.
    within("the ACK receipt", deliveries[2].ack_confirmed())
        .await
        .expect("ack confirmed");
    drop(subscription);
    disconnect(client).await;

    let client = connect(&broker().tcp).await;
    let mut subscription =
        subscribe(&client, queue.subscribe().ack(AckMode::ClientIndividual)).await;
    for expected in ["c4", "c5"] {
        let delivery = next(&mut subscription).await;
        assert_eq!(text(&delivery), expected);
        assert_eq!(delivery.header("redelivered"), Some("true"));
        assert!(delivery.possibly_duplicate());
        within("ACK", delivery.ack()).await.expect("ack");
    }
    assert_eq!(
        drain_to_marker(&client, &queue, &mut subscription).await,
        Vec::<String>::new()
    );
    disconnect(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_individual_acks_each_and_the_rest_is_redelivered() {
    let queue = TestQueue::new("individual");
    let client = connect(&broker().tcp).await;
    let mut subscription =
        subscribe(&client, queue.subscribe().ack(AckMode::ClientIndividual)).await;
    send_all(&client, &queue, &["i1", "i2", "i3", "i4", "i5"]).await;
    for expected in ["i1", "i2", "i3", "i4", "i5"] {
        let delivery = next(&mut subscription).await;
        assert_eq!(text(&delivery), expected);
        assert!(!delivery.possibly_duplicate());
        if ["i1", "i3", "i5"].contains(&expected) {
            within("the ACK receipt", delivery.ack_confirmed())
                .await
                .expect("ack confirmed");
        }
    }
    drop(subscription);
    disconnect(client).await;

    let client = connect(&broker().tcp).await;
    let mut subscription =
        subscribe(&client, queue.subscribe().ack(AckMode::ClientIndividual)).await;
    for expected in ["i2", "i4"] {
        let delivery = next(&mut subscription).await;
        assert_eq!(text(&delivery), expected);
        assert_eq!(delivery.header("redelivered"), Some("true"));
        assert!(delivery.possibly_duplicate());
        within("ACK", delivery.ack()).await.expect("ack");
    }
    assert_eq!(
        drain_to_marker(&client, &queue, &mut subscription).await,
        Vec::<String>::new()
    );
    disconnect(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_is_redelivered_flagged_as_possible_duplicate() {
    let queue = TestQueue::new("nack");
    let client = connect(&broker().tcp).await;
    let mut subscription =
        subscribe(&client, queue.subscribe().ack(AckMode::ClientIndividual)).await;
    send_all(&client, &queue, &["n1"]).await;
    let first = next(&mut subscription).await;
    assert_eq!(text(&first), "n1");
    assert_eq!(first.header("redelivered"), Some("false"));
    assert!(!first.possibly_duplicate());
    within("NACK", first.nack()).await.expect("nack");
    let again = next(&mut subscription).await;
    assert_eq!(text(&again), "n1");
    assert_eq!(again.header("redelivered"), Some("true"));
    assert!(again.possibly_duplicate());
    within("the ACK receipt", again.ack_confirmed())
        .await
        .expect("ack confirmed");
    assert_eq!(
        drain_to_marker(&client, &queue, &mut subscription).await,
        Vec::<String>::new()
    );
    disconnect(client).await;
}

// ------------------------------------------------------------------ transactions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_delivers_and_abort_does_not() {
    let queue = TestQueue::new("tx");
    let client = connect(&broker().tcp).await;
    let mut subscription = subscribe(&client, queue.subscribe()).await;

    let tx = within("BEGIN", client.begin()).await.expect("begin");
    for body in ["t1", "t2"] {
        within(
            "a transactional SEND",
            tx.send(Message::new(queue.send_destination(), body)),
        )
        .await
        .expect("taken");
    }
    // Not delivered before COMMIT: the marker, sent later, comes first.
    assert_eq!(
        drain_to_marker(&client, &queue, &mut subscription).await,
        Vec::<String>::new()
    );
    within("COMMIT", tx.commit()).await.expect("committed");
    assert_eq!(text(&next(&mut subscription).await), "t1");
    assert_eq!(text(&next(&mut subscription).await), "t2");

    let tx = within("BEGIN", client.begin()).await.expect("begin");
    within(
        "a transactional SEND",
        tx.send(Message::new(queue.send_destination(), "t3")),
    )
    .await
    .expect("taken");
    within("ABORT", tx.abort()).await.expect("aborted");
    assert_eq!(
        drain_to_marker(&client, &queue, &mut subscription).await,
        Vec::<String>::new()
    );
    disconnect(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_in_an_aborted_transaction_can_be_redone() {
    let queue = TestQueue::new("tx-ack");
    let client = connect(&broker().tcp).await;
    let mut subscription =
        subscribe(&client, queue.subscribe().ack(AckMode::ClientIndividual)).await;
    send_all(&client, &queue, &["x"]).await;
    let delivery = next(&mut subscription).await;
    let tx = within("BEGIN", client.begin()).await.expect("begin");
    within("ACK in the transaction", delivery.ack_in(&tx))
        .await
        .expect("ack");
    within("ABORT", tx.abort()).await.expect("aborted");
    drop(subscription);
    disconnect(client).await;

    // The aborted ACK did not count: the next consumer gets the message again.
    let client = connect(&broker().tcp).await;
    let mut subscription =
        subscribe(&client, queue.subscribe().ack(AckMode::ClientIndividual)).await;
    let delivery = next(&mut subscription).await;
    assert_eq!(text(&delivery), "x");
    assert!(delivery.possibly_duplicate());
    let tx = within("BEGIN", client.begin()).await.expect("begin");
    within("ACK in the transaction", delivery.ack_in(&tx))
        .await
        .expect("ack");
    within("ABORT", tx.abort()).await.expect("aborted");
    // Redone in a second transaction, committed this time.
    let tx = within("BEGIN", client.begin()).await.expect("begin");
    within("ACK again", delivery.ack_in(&tx))
        .await
        .expect("an ACK aborted with its transaction can be sent again");
    within("COMMIT", tx.commit()).await.expect("committed");
    drop(subscription);
    disconnect(client).await;

    let client = connect(&broker().tcp).await;
    let mut subscription =
        subscribe(&client, queue.subscribe().ack(AckMode::ClientIndividual)).await;
    assert_eq!(
        drain_to_marker(&client, &queue, &mut subscription).await,
        Vec::<String>::new()
    );
    disconnect(client).await;
}

// ------------------------------------------------------------------ heart-beats

/// 1 s heart-beats both ways, 5 s without traffic: still the first connection, and
/// heart-beats went both ways.
async fn heart_beats_hold(url: &str) {
    let client = builder(url)
        .heart_beat(Duration::from_secs(1), Duration::from_secs(1))
        .start()
        .expect("client starts");
    within("CONNECTED", client.wait_connected())
        .await
        .expect("connected");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stats = within("stats", client.stats()).await.expect("stats");
    assert_eq!(stats.connections, 1, "{url}: {stats:?}");
    assert_eq!(stats.failures, 0, "{url}: {stats:?}");
    assert!(stats.heartbeats_in > 0, "{url}: {stats:?}");
    assert!(stats.heartbeats_out > 0, "{url}: {stats:?}");
    assert_eq!(*client.state().borrow(), State::Connected);
    disconnect(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heart_beats_hold_over_tcp() {
    heart_beats_hold(&broker().tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heart_beats_hold_over_tls() {
    heart_beats_hold(&broker().tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heart_beats_hold_over_websocket() {
    heart_beats_hold(&broker().ws).await;
}

// ------------------------------------------------------------------ content

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_headers_round_trip_in_1_2() {
    let queue = TestQueue::new("escapes");
    let client = builder(&broker().tcp)
        .session_with(|s| s.with_versions([Version::V1_2]))
        .connect()
        .await
        .expect("connected");
    let mut subscription = subscribe(&client, queue.subscribe()).await;
    let headers = [
        ("x-colon", "a:b:c"),
        ("x-backslash", r"c:\temp\"),
        ("x-newline", "line one\nline two"),
        ("x-carriage-return", "before\rafter"),
        ("x-all", "k:v\\w\nx\r:"),
    ];
    let mut message = Message::new(queue.send_destination(), "escapes");
    for (name, value) in headers {
        message = message.header(name, value);
    }
    within("the SEND receipt", client.send_confirmed(message))
        .await
        .expect("confirmed");
    let delivery = next(&mut subscription).await;
    for (name, value) in headers {
        assert_eq!(delivery.header(name), Some(value), "{name}");
    }
    disconnect(client).await;
}

/// Sends `body` and checks it comes back unchanged.
async fn large_body(url: &str, body: Vec<u8>) {
    let queue = TestQueue::new("large");
    let client = connect(url).await;
    let mut subscription = subscribe(&client, queue.subscribe()).await;
    within(
        "the SEND receipt",
        client.send_confirmed(Message::new(queue.send_destination(), body.clone())),
    )
    .await
    .expect("confirmed");
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.body().len(), body.len());
    assert!(
        delivery.body() == body.as_slice(),
        "the body came back changed"
    );
    disconnect(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_mib_binary_body_over_tcp() {
    large_body(&broker().tcp, binary_body(4 * 1024 * 1024)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_mib_text_body_over_websocket() {
    let body = (0..4 * 1024 * 1024)
        .map(|i: u32| b'a' + (i % 26) as u8)
        .collect();
    large_body(&broker().ws, body).await;
}

// Binary bodies over Web-STOMP need `web_stomp.ws_frame = binary` on RabbitMQ (xtask sets
// it): a text WebSocket message must be UTF-8, so a broker sending text frames cannot carry
// such a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_body_over_websocket() {
    large_body(&broker().ws, binary_body(64 * 1024)).await;
}

/// Every byte value, NUL included; not UTF-8.
fn binary_body(len: u32) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_in_order() {
    const N: usize = 10_000;
    let queue = TestQueue::new("ordered");
    let consumer = connect(&broker().tcp).await;
    let mut subscription = subscribe(&consumer, queue.subscribe()).await;
    let producer = connect(&broker().tcp).await;
    let producing = {
        let producer = producer.clone();
        let destination = queue.send_destination();
        tokio::spawn(async move {
            for n in 0..N {
                producer
                    .send(Message::new(destination.clone(), n.to_string()))
                    .await
                    .expect("taken");
            }
        })
    };
    for n in 0..N {
        let delivery = next(&mut subscription).await;
        assert_eq!(text(&delivery), n.to_string(), "out of order");
    }
    within("the producer", producing)
        .await
        .expect("producer task");
    let stats = within("stats", producer.stats()).await.expect("stats");
    assert_eq!(stats.connections, 1);
    disconnect(producer).await;
    disconnect(consumer).await;
}

// ------------------------------------------------------------------ refusals

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_passcode_gives_up_at_once_with_the_brokers_message() {
    let client = builder(&broker().tcp)
        .credentials(Credentials::login("guest", "not-the-passcode"))
        .start()
        .expect("client starts");
    let mut events = client.events();
    let error = within("giving up", client.wait_connected())
        .await
        .expect_err("refused credentials");
    let Error::GaveUp {
        reason,
        last: Some(last),
        ..
    } = &error
    else {
        panic!("expected GaveUp with the last failure, got {error:?}");
    };
    assert!(
        matches!(
            reason,
            GiveUpReason::NonRetryable(FailureKind::Handshake(_))
        ),
        "{reason:?}"
    );
    // RabbitMQ: ERROR `message:Bad CONNECT`, body `Access refused for user 'guest'`.
    let shown = error.to_string();
    assert!(shown.contains("Access refused"), "{shown}");
    assert!(
        !shown.contains("not-the-passcode") && !format!("{error:?}").contains("not-the-passcode")
    );
    assert!(matches!(last.kind, FailureKind::Handshake(_)), "{last:?}");

    let stats = within("stats", client.stats()).await.expect("stats");
    assert_eq!(stats.attempts, 1, "one attempt, no retry: {stats:?}");
    assert_eq!(stats.connections, 0);
    let mut failed = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, ClientEvent::AttemptFailed { .. }) {
            failed += 1;
        }
    }
    assert_eq!(failed, 1);
    assert_eq!(*client.state().borrow(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_send_ends_with_an_error_and_no_duplicates() {
    let queue = TestQueue::new("beside-poison");
    let consumer = connect(&broker().tcp).await;
    let mut subscription = subscribe(&consumer, queue.subscribe()).await;
    let producer = connect(&broker().tcp).await;
    let poison = Message::new(format!("/exchange/{}", unique("missing")), "poison");
    let good = Message::new(queue.send_destination(), "good");
    let (poisoned, good) = within("both outcomes", async {
        tokio::join!(
            producer.send_confirmed(poison),
            producer.send_confirmed(good)
        )
    })
    .await;
    match poisoned {
        Err(Error::Dropped {
            reason: DropReason::Poisoned(frame),
            ..
        }) => {
            assert!(frame.header_str("message").is_some(), "{frame:?}");
            eprintln!("poisoned SEND dropped: {:?}", frame.header_str("message"));
        }
        Err(Error::Broker(frame)) => {
            eprintln!("poisoned SEND refused: {:?}", frame.header_str("message"));
        }
        other => panic!("the SEND to a missing exchange must fail, got {other:?}"),
    }
    good.expect("the good message is confirmed");

    let before = drain_to_marker(&producer, &queue, &mut subscription).await;
    assert_eq!(
        before,
        vec!["good".to_owned()],
        "exactly one copy of the good message"
    );
    let stats = within("stats", producer.stats()).await.expect("stats");
    eprintln!("{} attempts", stats.attempts);
    assert!(stats.attempts <= 5, "no reconnect storm: {stats:?}");
    disconnect(producer).await;
    disconnect(consumer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_subscription_ends_without_a_reconnect_storm() {
    let queue = TestQueue::new("refused");
    // Declared as a classic queue first...
    let declarer = connect(&broker().tcp).await;
    drop(subscribe(&declarer, queue.subscribe()).await);
    disconnect(declarer).await;

    // ...then asked for as a quorum queue: RabbitMQ refuses (inequivalent arguments).
    let client = connect(&broker().tcp).await;
    let mut events = client.events();
    let request = Subscribe::new(queue.subscribe_destination())
        .header("x-expires", "300000")
        .header("x-queue-type", "quorum")
        .header("durable", "true");
    let mut subscription = within("SUBSCRIBE", client.subscribe(request))
        .await
        .expect("subscription taken");
    let reason = wait_event(&mut events, WAIT, |e| match e {
        ClientEvent::SubscriptionEnded { id, reason } if *id == subscription.id() => {
            Some(reason.clone())
        }
        _ => None,
    })
    .await;
    assert!(matches!(reason, SubscriptionEnd::Refused(_)), "{reason:?}");
    assert!(
        within("the stream's end", subscription.next_delivery())
            .await
            .is_none()
    );
    assert!(matches!(
        subscription.end_reason(),
        Some(SubscriptionEnd::Refused(_))
    ));

    // RabbitMQ closes the connection after each ERROR, the last refusal's too: one more
    // connection, and then no more attempts.
    wait_event(&mut events, WAIT, |e| {
        matches!(e, ClientEvent::Connected { .. }).then_some(())
    })
    .await;
    let stats = within("stats", client.stats()).await.expect("stats");
    eprintln!("{} attempts", stats.attempts);
    assert!(stats.attempts <= 5, "no reconnect storm: {stats:?}");
    // Still usable, and no more attempts: a round trip on the same connection.
    let other = TestQueue::new("after-refusal");
    let mut fine = subscribe(&client, other.subscribe()).await;
    assert_eq!(
        drain_to_marker(&client, &other, &mut fine).await,
        Vec::<String>::new()
    );
    let after = within("stats", client.stats()).await.expect("stats");
    assert_eq!(after.attempts, stats.attempts);
    disconnect(client).await;
}
