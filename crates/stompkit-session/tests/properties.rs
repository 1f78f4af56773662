//! Random sequences of commands, broker inputs, drops and time steps against a reference
//! model of the delivery rules.
//!
//! The model: every `send` the session accepted ends in exactly one of
//! - received by the broker (receipted sends: confirmed, possibly after re-sends),
//! - a `MessageDropped` event, or a `Receipt` event saying why it was not confirmed;
//!
//! never silently lost. Also: no frame after `DISCONNECT` on any connection, and (checked
//! by the simulator at every step) no deadline in the past and every deadline in the
//! future after `handle_timeout`.

mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use stompkit_codec::Command;
use stompkit_session::{
    AckMode, BackoffConfig, BreakerConfig, Event, Message, ReceiptId, ReceiptOutcome, SendId,
    State, Subscribe,
};
use support::*;

#[derive(Debug, Clone)]
enum Op {
    Send {
        receipt: bool,
        priority: u8,
        expires_ms: Option<u16>,
    },
    SendInTx,
    Subscribe(u8),
    Publish(u8),
    AckLatest,
    Drop,
    LoseNextWrite,
    Unreachable(bool),
    ReceiptsOff(bool),
    Advance(u16),
    Disconnect,
    Connect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0u8..3, proptest::option::of(0u16..5000))
            .prop_map(|(receipt, priority, expires_ms)| Op::Send { receipt, priority, expires_ms }),
        1 => Just(Op::SendInTx),
        1 => (0u8..3).prop_map(Op::Subscribe),
        2 => (0u8..3).prop_map(Op::Publish),
        1 => Just(Op::AckLatest),
        2 => Just(Op::Drop),
        2 => Just(Op::LoseNextWrite),
        1 => any::<bool>().prop_map(Op::Unreachable),
        1 => any::<bool>().prop_map(Op::ReceiptsOff),
        3 => (0u16..4000).prop_map(Op::Advance),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Connect),
    ]
}

fn run(ops: Vec<Op>) {
    let config = Sim::config()
        .with_heart_beat(ms(500), ms(500))
        .with_receipt_timeout(secs(3))
        .with_queue(16, 1 << 16)
        .with_backoff(BackoffConfig::constant(ms(700)))
        .with_breaker(
            BreakerConfig::default()
                .consecutive_failures(4)
                .open_for(stompkit_policy::OpenDuration::Fixed(secs(5))),
        );
    let broker = BrokerConfig {
        heart_beat: (500, 500),
        sends_heartbeats: true,
        ..BrokerConfig::default()
    };
    let mut sim = Sim::new(config, broker);
    sim.connect();
    let mut accepted: BTreeMap<SendId, String> = BTreeMap::new();
    let mut receipted: Vec<SendId> = Vec::new();
    let mut n = 0u32;
    for op in ops {
        let now = sim.now;
        match op {
            Op::Send {
                receipt,
                priority,
                expires_ms,
            } => {
                n += 1;
                let body = format!("m{n}");
                let mut m = Message::new("/queue/out", body.clone()).priority(priority);
                if receipt {
                    m = m.receipt();
                }
                if let Some(e) = expires_ms {
                    m = m.expires_at(now + ms(u64::from(e)));
                }
                if let Ok(id) = sim.session.send(now, m) {
                    accepted.insert(id, body);
                    if receipt {
                        receipted.push(id);
                    }
                }
            }
            Op::SendInTx => {
                if let Ok(tx) = sim.session.begin(now, false) {
                    let _ = sim.session.send(
                        now,
                        Message::new("/queue/tx", "in-tx").transaction(tx).receipt(),
                    );
                    let _ = sim.session.commit(now, tx, true);
                }
            }
            Op::Subscribe(i) => {
                let ack =
                    [AckMode::Auto, AckMode::Client, AckMode::ClientIndividual][usize::from(i)];
                let _ = sim
                    .session
                    .subscribe(now, Subscribe::new(format!("/queue/in{i}")).ack(ack));
            }
            Op::Publish(i) => sim.broker.publish(&format!("/queue/in{i}"), "p"),
            Op::AckLatest => {
                let handle = sim.events.iter().rev().find_map(|e| match e {
                    Event::Message { handle, .. } => Some(handle.clone()),
                    _ => None,
                });
                if let Some(h) = handle {
                    let _ = sim.session.ack(now, &h);
                }
            }
            Op::Drop => sim.drop_link(),
            Op::LoseNextWrite => sim.lose_next_write = true,
            Op::Unreachable(b) => sim.reachable = !b,
            Op::ReceiptsOff(b) => sim.broker.config.receipts = !b,
            Op::Advance(d) => sim.advance(ms(u64::from(d))),
            Op::Disconnect => sim.session.disconnect(now),
            Op::Connect => sim.session.connect(now),
        }
        sim.pump();
    }
    // Settle: a healthy broker, enough time for every timer and retry.
    sim.reachable = true;
    sim.lose_next_write = false;
    sim.broker.config.receipts = true;
    sim.advance(secs(10));
    if matches!(sim.session.state(), State::Closed | State::Idle) {
        sim.connect();
    }
    sim.advance(secs(60));

    // No frame after DISCONNECT on any connection.
    for c in 0..=sim.broker.connections {
        let frames = sim.broker.frames_on(c);
        if let Some(i) = frames
            .iter()
            .position(|f| f.command() == Command::Disconnect)
        {
            assert_eq!(
                i,
                frames.len() - 1,
                "frames after DISCONNECT on connection {c}"
            );
        }
    }

    // Settled and connected: nothing is left waiting.
    if sim.session.state() == State::Connected {
        assert_eq!(
            sim.session.unconfirmed(),
            0,
            "receipted sends left unconfirmed"
        );
        assert_eq!(sim.session.queued(), 0, "queue not flushed");
    }

    // Every accepted message is accounted for.
    let received: Vec<String> = sim
        .broker
        .frames(Command::Send)
        .into_iter()
        .map(|f| String::from_utf8_lossy(f.body()).into_owned())
        .collect();
    let lost = String::from_utf8_lossy(&sim.lost).into_owned();
    for (id, body) in &accepted {
        let reported = sim.events.iter().any(|e| match e {
            Event::MessageDropped { id: i, .. } => i == id,
            Event::Receipt {
                id: ReceiptId::Send(i),
                outcome,
            } => i == id && *outcome != ReceiptOutcome::Confirmed,
            _ => false,
        });
        let confirmed = sim.events.iter().any(|e| matches!(e,
            Event::Receipt { id: ReceiptId::Send(i), outcome: ReceiptOutcome::Confirmed } if i == id));
        let arrived = received.contains(body);
        // Without a receipt a SEND is at-most-once: lost in flight is allowed, nothing else.
        let in_flight_loss = !receipted.contains(id) && lost.contains(&format!("\n\n{body}\0"));
        assert!(
            arrived || reported || in_flight_loss,
            "{id:?} ({body}) lost silently"
        );
        if confirmed {
            assert!(arrived, "{id:?} confirmed but never received");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_delivery_rules(ops in proptest::collection::vec(op(), 0..60)) {
        run(ops);
    }
}

#[test]
fn a_known_tricky_sequence() {
    run(vec![
        Op::Send {
            receipt: true,
            priority: 0,
            expires_ms: None,
        },
        Op::ReceiptsOff(true),
        Op::Send {
            receipt: true,
            priority: 1,
            expires_ms: Some(100),
        },
        Op::LoseNextWrite,
        Op::Send {
            receipt: true,
            priority: 0,
            expires_ms: None,
        },
        Op::Unreachable(true),
        Op::Advance(3000),
        Op::Send {
            receipt: false,
            priority: 2,
            expires_ms: None,
        },
        Op::Unreachable(false),
        Op::Advance(3000),
        Op::Disconnect,
        Op::Send {
            receipt: true,
            priority: 0,
            expires_ms: None,
        },
    ]);
}
