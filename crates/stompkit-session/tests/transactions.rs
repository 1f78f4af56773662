//! Transactions: begin/commit/abort; aborted on drop, never half replayed.

mod support;

use stompkit_codec::Command;
use stompkit_session::{
    AbortReason, Error, Event, Message, ReceiptId, ReceiptOutcome, State, Subscribe,
};
use support::*;

#[test]
fn commit_delivers_abort_discards_as_in_the_transcripts() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session
        .subscribe(sim.now, Subscribe::new("/queue/t"))
        .unwrap();
    let tx1 = sim.session.begin(sim.now, false).unwrap();
    sim.session
        .send(
            sim.now,
            Message::new("/queue/t", "aborted").transaction(tx1),
        )
        .unwrap();
    sim.session.abort(sim.now, tx1, false).unwrap();
    let tx2 = sim.session.begin(sim.now, false).unwrap();
    sim.session
        .send(
            sim.now,
            Message::new("/queue/t", "committed").transaction(tx2),
        )
        .unwrap();
    sim.session.commit(sim.now, tx2, true).unwrap();
    sim.pump();
    assert!(sim.events.contains(&Event::Receipt {
        id: ReceiptId::Commit(tx2),
        outcome: ReceiptOutcome::Confirmed
    }));
    assert_eq!(sim.delivered_bodies(), ["committed"]);
    let wire: Vec<_> = sim
        .frames_on(1)
        .into_iter()
        .map(|f| (f.command(), f.header_str("transaction").map(str::to_owned)))
        .collect();
    assert_eq!(wire[2], (Command::Begin, Some(tx1.to_string())));
    assert_eq!(
        sim.session.commit(sim.now, tx2, false),
        Err(Error::UnknownTransaction(tx2))
    );
}

#[test]
fn an_open_transaction_is_reported_aborted_on_drop_and_never_half_replayed() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.broker.withhold_receipts(None, true).unwrap();
    let tx = sim.session.begin(sim.now, false).unwrap();
    let in_tx = sim
        .session
        .send(
            sim.now,
            Message::new("/queue/t", "in-tx").transaction(tx).receipt(),
        )
        .unwrap();
    sim.pump();
    sim.drop_link();
    assert!(sim.events.contains(&Event::TransactionAborted {
        id: tx,
        reason: AbortReason::ConnectionLost
    }));
    assert!(sim.events.contains(&Event::Receipt {
        id: ReceiptId::Send(in_tx),
        outcome: ReceiptOutcome::ConnectionLost
    }));
    sim.advance(secs(1));
    assert_eq!(sim.session.state(), State::Connected);
    assert!(sim.frames_on(2).iter().all(|f| !matches!(
        f.command(),
        Command::Send | Command::Commit | Command::Begin
    )));
    assert!(
        sim.queued("/queue/t").is_empty(),
        "the broker discarded it too"
    );
    // The transaction is gone: using it is an error, not a silent send outside it.
    assert!(matches!(
        sim.session
            .send(sim.now, Message::new("/queue/t", "x").transaction(tx)),
        Err(e) if matches!(e.error(), Error::TransactionNotOpen(_))
    ));
}

#[test]
fn transactions_need_a_connection() {
    let mut sim = Sim::new(Sim::config(), BrokerConfig::default());
    assert_eq!(sim.session.begin(sim.now, false), Err(Error::NotConnected));
    sim.connect();
    let tx = sim.session.begin(sim.now, false).unwrap();
    sim.session.disconnect(sim.now);
    sim.pump();
    assert!(sim.events.iter().any(|e| *e
        == Event::TransactionAborted {
            id: tx,
            reason: AbortReason::Disconnected
        }));
}

#[test]
fn acks_inside_a_transaction_carry_it() {
    let mut sim = Sim::connected(Sim::config(), BrokerConfig::default());
    sim.session
        .subscribe(
            sim.now,
            Subscribe::new("/queue/a").ack(stompkit_session::AckMode::ClientIndividual),
        )
        .unwrap();
    sim.pump();
    sim.publish("/queue/a", "x");
    sim.pump();
    let handle = sim
        .events
        .iter()
        .find_map(|e| match e {
            Event::Message { handle, .. } => Some(handle.clone()),
            _ => None,
        })
        .unwrap();
    let tx = sim.session.begin(sim.now, false).unwrap();
    sim.session
        .ack_with(
            sim.now,
            &handle,
            stompkit_session::AckOptions {
                transaction: Some(tx),
                receipt: true,
            },
        )
        .unwrap();
    sim.session.commit(sim.now, tx, false).unwrap();
    sim.pump();
    let ack = sim.frames(Command::Ack)[0].clone();
    assert_eq!(ack.header_str("transaction"), Some(tx.to_string().as_str()));
    assert!(sim.events.contains(&Event::Receipt {
        id: ReceiptId::Ack(handle.delivery()),
        outcome: ReceiptOutcome::Confirmed
    }));
}
