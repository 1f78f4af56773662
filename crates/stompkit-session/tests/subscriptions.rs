//! Subscriptions, ack modes, ACK/NACK per version, cumulative client acks.

mod support;

use stompkit_codec::{Command, Version};
use stompkit_session::{
    AckMode, AckOptions, Credentials, Error, Event, MessageHandle, ReceiptId, ReceiptOutcome,
    Session, Subscribe,
};
use support::*;

fn handles(sim: &Sim) -> Vec<MessageHandle> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::Message { handle, .. } => Some(handle.clone()),
            _ => None,
        })
        .collect()
}

/// The `message-id`s of the messages delivered, in order.
fn delivered_ids(sim: &Sim) -> Vec<String> {
    sim.events
        .iter()
        .filter_map(|e| match e {
            Event::Message { frame, .. } => frame.header_str("message-id").map(str::to_owned),
            _ => None,
        })
        .collect()
}

#[test]
fn subscription_ids_are_unique_and_carry_ack_mode_and_headers() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let a = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/a"))
        .unwrap();
    let b = sim
        .session
        .subscribe(
            sim.now,
            Subscribe::new("/queue/b")
                .ack(AckMode::ClientIndividual)
                .header("prefetch-count", "10"),
        )
        .unwrap();
    let c = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/a").ack(AckMode::Client))
        .unwrap();
    assert!(a != b && b != c && a != c);
    sim.pump();
    let subs = sim.frames(Command::Subscribe);
    assert_eq!(subs[0].header_str("id"), Some(a.to_string().as_str()));
    assert_eq!(subs[0].header("ack"), None, "auto is the default");
    assert_eq!(subs[1].header_str("ack"), Some("client-individual"));
    assert_eq!(subs[1].header_str("prefetch-count"), Some("10"));
    assert_eq!(subs[2].header_str("ack"), Some("client"));
}

#[test]
fn messages_are_routed_to_their_subscription() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let a = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/a"))
        .unwrap();
    let b = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/b"))
        .unwrap();
    sim.pump();
    sim.publish("/queue/b", "to-b");
    sim.publish("/queue/a", "to-a");
    sim.pump();
    let routed: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                subscription,
                frame,
                ..
            } => Some((
                *subscription,
                String::from_utf8_lossy(frame.body()).into_owned(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(routed, vec![(b, "to-b".to_owned()), (a, "to-a".to_owned())]);
}

#[test]
fn a_message_for_no_live_subscription_is_reported_stray() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.broker_says(b"MESSAGE\nsubscription:sub-99\ndestination:/queue/x\nmessage-id:1\n\nlate\0");
    assert!(matches!(
        sim.events.last(),
        Some(Event::StrayMessage { .. })
    ));
}

#[test]
fn ack_1_2_uses_the_ack_header_unescaped_from_activemq() {
    let steps = transcript("activemq-client-individual-ack");
    let now = std::time::Instant::now();
    let mut session = Session::new(
        Sim::config()
            .with_versions([Version::V1_2])
            .with_host("localhost"),
        now,
    )
    .unwrap();
    session.connect(now);
    session.transport_connected(
        now,
        session.attempt().unwrap(),
        Credentials::login("guest", "guest"),
    );
    session.poll_transmit();
    let server = server_bytes(&steps, &[("sub-1", "sub-1")]);
    session.handle_input(now, session.attempt().unwrap(), &server[0]); // CONNECTED
    let sub = session
        .subscribe(
            now,
            Subscribe::new("/queue/transcript-1795304762").ack(AckMode::ClientIndividual),
        )
        .unwrap();
    assert_eq!(sub.to_string(), "sub-1");
    session.poll_transmit();
    // The MESSAGE step (skip the two RECEIPTs for receipts we did not ask).
    let message = server.iter().find(|b| b.starts_with(b"MESSAGE")).unwrap();
    session.handle_input(now, session.attempt().unwrap(), message);
    let handle = std::iter::from_fn(|| session.poll_event())
        .find_map(|e| match e {
            Event::Message { handle, frame, .. } => {
                assert_eq!(frame.header_str("x-path"), Some(r"C:\jobs\new"));
                Some(handle)
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        handle.ack_id(),
        Some(&b"ID:broker-host-1795301228868-4:52"[..])
    );
    session.ack(now, &handle).unwrap();
    let written = session.poll_transmit().unwrap();
    // Re-escaped on the wire exactly as ActiveMQ expects (the transcript's ACK minus its receipt).
    assert_eq!(
        &written[..],
        b"ACK\nid:ID\\cbroker-host-1795301228868-4\\c52\n\n\0"
    );
}

#[test]
fn ack_1_1_names_message_id_and_subscription() {
    let mut sim = Sim::connected(
        Sim::config().with_versions([Version::V1_1]),
        BrokerConfig::default(),
    );
    let sub = sim
        .session
        .subscribe(
            sim.now,
            Subscribe::new("/queue/a").ack(AckMode::ClientIndividual),
        )
        .unwrap();
    sim.pump();
    sim.publish("/queue/a", "x");
    sim.pump();
    let h = handles(&sim).pop().unwrap();
    sim.session.ack(sim.now, &h).unwrap();
    sim.pump();
    let ack = sim.frames(Command::Ack)[0].clone();
    assert_eq!(
        ack.header_str("message-id"),
        Some(delivered_ids(&sim)[0].as_str())
    );
    assert_eq!(
        ack.header_str("subscription"),
        Some(sub.to_string().as_str())
    );
    assert_eq!(ack.header("id"), None);
}

#[test]
fn ack_1_0_names_message_id_and_nack_is_a_typed_error() {
    let mut sim = Sim::connected(
        Sim::config().with_versions([Version::V1_0]),
        BrokerConfig::default(),
    );
    sim.session
        .subscribe(sim.now, Subscribe::new("/queue/a").ack(AckMode::Client))
        .unwrap();
    sim.pump();
    sim.publish("/queue/a", "x");
    sim.pump();
    let h = handles(&sim).pop().unwrap();
    assert_eq!(sim.session.nack(sim.now, &h), Err(Error::NackUnsupported));
    sim.session.ack(sim.now, &h).unwrap();
    sim.pump();
    let ack = sim.frames(Command::Ack)[0].clone();
    assert_eq!(
        ack.header_str("message-id"),
        Some(delivered_ids(&sim)[0].as_str())
    );
    assert_eq!(ack.headers().len(), 1);
}

#[test]
fn client_mode_ack_is_cumulative() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session
        .subscribe(sim.now, Subscribe::new("/queue/a").ack(AckMode::Client))
        .unwrap();
    sim.pump();
    for i in 0..5 {
        sim.publish("/queue/a", &format!("m{i}"));
    }
    sim.pump();
    let hs = handles(&sim);
    sim.session.ack(sim.now, &hs[3]).unwrap();
    sim.pump();
    assert_eq!(
        sim.frames(Command::Ack).len(),
        1,
        "one ACK covers four messages"
    );
    for h in &hs[..=3] {
        assert_eq!(sim.session.ack(sim.now, h), Err(Error::AlreadyAcknowledged));
    }
    sim.session.ack(sim.now, &hs[4]).unwrap();
    sim.pump();
    // The broker agrees: nothing is redelivered after a drop.
    sim.drop_link();
    sim.advance(secs(2));
    assert_eq!(sim.delivered_bodies().len(), 5);
}

#[test]
fn client_individual_ack_acknowledges_only_that_message() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session
        .subscribe(
            sim.now,
            Subscribe::new("/queue/a").ack(AckMode::ClientIndividual),
        )
        .unwrap();
    sim.pump();
    for i in 0..3 {
        sim.publish("/queue/a", &format!("m{i}"));
    }
    sim.pump();
    let hs = handles(&sim);
    sim.session.ack(sim.now, &hs[2]).unwrap();
    sim.session.ack(sim.now, &hs[0]).unwrap();
    assert_eq!(
        sim.session.ack(sim.now, &hs[0]),
        Err(Error::AlreadyAcknowledged)
    );
    sim.pump();
    sim.drop_link();
    sim.advance(secs(2));
    // m1 was never acknowledged: redelivered, flagged.
    let redelivered: Vec<_> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                frame,
                possibly_duplicate: true,
                ..
            } => Some(String::from_utf8_lossy(frame.body()).into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(redelivered, ["m1"]);
}

#[test]
fn nack_redelivery_is_flagged_possibly_duplicate() {
    let steps = transcript("rabbitmq-nack-redelivery");
    let now = std::time::Instant::now();
    let mut session = Session::new(Sim::config().with_versions([Version::V1_2]), now).unwrap();
    session.connect(now);
    session.transport_connected(
        now,
        session.attempt().unwrap(),
        Credentials::login("guest", "guest"),
    );
    let server = server_bytes(&steps, &[("subscription:s\n", "subscription:sub-1\n")]);
    session.handle_input(now, session.attempt().unwrap(), &server[0]);
    session
        .subscribe(
            now,
            Subscribe::new("/queue/transcript-1795304747-n").ack(AckMode::ClientIndividual),
        )
        .unwrap();
    session.handle_input(now, session.attempt().unwrap(), &server[1]);
    let first = std::iter::from_fn(|| session.poll_event())
        .find_map(|e| match e {
            Event::Message {
                handle,
                possibly_duplicate,
                ..
            } => Some((handle, possibly_duplicate)),
            _ => None,
        })
        .unwrap();
    assert!(!first.1);
    session.nack(now, &first.0).unwrap();
    let written = session.poll_transmit().unwrap();
    assert!(written.ends_with(b"NACK\nid:T_s@@session-THGKKZlV7mvPIXpWCN0gzg@@1\n\n\0"));
    session.handle_input(now, session.attempt().unwrap(), &server[2]);
    let second = std::iter::from_fn(|| session.poll_event())
        .find_map(|e| match e {
            Event::Message {
                possibly_duplicate, ..
            } => Some(possibly_duplicate),
            _ => None,
        })
        .unwrap();
    assert!(second, "redelivered:true");
}

#[test]
fn the_duplicate_filter_flags_a_message_id_seen_before() {
    let mut sim = Sim::connected(
        Sim::config().with_duplicate_filter(2),
        BrokerConfig::default(),
    );
    sim.session
        .subscribe(sim.now, Subscribe::new("/queue/a"))
        .unwrap();
    sim.pump();
    let msg = |id: &str| {
        format!("MESSAGE\nsubscription:sub-1\ndestination:/queue/a\nmessage-id:{id}\n\nx\0")
    };
    for id in ["1", "2", "1", "3", "4", "1"] {
        sim.broker_says(msg(id).as_bytes());
    }
    let flags: Vec<bool> = sim
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                possibly_duplicate, ..
            } => Some(*possibly_duplicate),
            _ => None,
        })
        .collect();
    assert_eq!(
        flags,
        [false, false, true, false, false, false],
        "bounded: 1 forgotten after 3 and 4"
    );
}

#[test]
fn acking_auto_stale_or_unknown_handles_is_refused() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let auto = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/auto"))
        .unwrap();
    sim.session
        .subscribe(sim.now, Subscribe::new("/queue/c").ack(AckMode::Client))
        .unwrap();
    sim.pump();
    sim.publish("/queue/auto", "a");
    sim.publish("/queue/c", "c");
    sim.pump();
    let hs = handles(&sim);
    assert_eq!(hs[0].subscription(), auto);
    assert_eq!(sim.session.ack(sim.now, &hs[0]), Err(Error::AutoAck));
    sim.drop_link();
    sim.advance(secs(2));
    assert_eq!(sim.session.ack(sim.now, &hs[1]), Err(Error::StaleHandle));
    let tx = stompkit_session::TransactionId::clone(&sim.session.begin(sim.now, false).unwrap());
    sim.session.commit(sim.now, tx, false).unwrap();
    let latest = handles(&sim).pop().unwrap();
    assert_eq!(
        sim.session.ack_with(
            sim.now,
            &latest,
            AckOptions {
                transaction: Some(tx),
                receipt: false
            }
        ),
        Err(Error::UnknownTransaction(tx))
    );
}

#[test]
fn unsubscribe_stops_resubscribing_and_confirms_its_receipt() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let a = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/a"))
        .unwrap();
    let b = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/b"))
        .unwrap();
    sim.pump();
    sim.session.unsubscribe(sim.now, a, true).unwrap();
    sim.pump();
    assert!(sim.events.contains(&Event::Receipt {
        id: ReceiptId::Unsubscribe(a),
        outcome: ReceiptOutcome::Confirmed
    }));
    assert_eq!(
        sim.session.unsubscribe(sim.now, a, false),
        Err(Error::UnknownSubscription(a))
    );
    sim.drop_link();
    sim.advance(secs(2));
    let resubscribed: Vec<_> = sim
        .frames_on(2)
        .into_iter()
        .filter(|f| f.command() == Command::Subscribe)
        .map(|f| f.header_str("id").unwrap().to_owned())
        .collect();
    assert_eq!(resubscribed, [b.to_string()]);
}

#[test]
fn subscribe_receipt_is_confirmed() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    let a = sim
        .session
        .subscribe(sim.now, Subscribe::new("/queue/a").receipt())
        .unwrap();
    sim.pump();
    assert!(sim.events.contains(&Event::Receipt {
        id: ReceiptId::Subscribe(a),
        outcome: ReceiptOutcome::Confirmed
    }));
}
