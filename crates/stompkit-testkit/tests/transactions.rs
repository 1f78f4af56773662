//! Transactions: sends and acks take effect on COMMIT, never on ABORT or disconnect.

mod support;

use stompkit_codec::Command;
use support::{Harness, header};

fn tx_send(h: &mut Harness, c: stompkit_testkit::ConnectionId, tx: &str, body: &str) {
    h.frame(
        c,
        Command::Send,
        &[("destination", "/queue/t"), ("transaction", tx)],
        body,
    );
}

#[test]
fn only_committed_sends_arrive() {
    // As in transcripts/rabbitmq-transaction.json.
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "t", "/queue/t", "auto");
    h.frame(c, Command::Begin, &[("transaction", "tx1")], "");
    tx_send(&mut h, c, "tx1", "aborted");
    h.frame(c, Command::Abort, &[("transaction", "tx1")], "");
    h.frame(c, Command::Begin, &[("transaction", "tx2")], "");
    tx_send(&mut h, c, "tx2", "committed");
    assert!(h.take(c).is_empty(), "nothing before COMMIT");
    h.frame(
        c,
        Command::Commit,
        &[("transaction", "tx2"), ("receipt", "r-commit")],
        "",
    );
    let frames = h.take(c);
    assert_eq!(
        support::commands(&frames),
        [Command::Message, Command::Receipt]
    );
    assert_eq!(frames[0].body(), b"committed");
    assert_eq!(header(&frames[0], "transaction"), "tx2");
}

#[test]
fn acks_in_a_transaction_apply_on_commit() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.subscribe(c, "s", "/queue/t", "client-individual");
    h.send(c, "/queue/t", "x");
    let id = header(&h.take(c)[0], "ack").to_owned();
    h.frame(c, Command::Begin, &[("transaction", "a")], "");
    h.frame(c, Command::Ack, &[("id", &id), ("transaction", "a")], "");
    assert_eq!(h.broker.held("/queue/t").len(), 1, "still unacknowledged");
    h.frame(c, Command::Commit, &[("transaction", "a")], "");
    assert!(h.broker.held("/queue/t").is_empty());
}

#[test]
fn a_transaction_is_dropped_with_its_connection() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.frame(c, Command::Begin, &[("transaction", "a")], "");
    tx_send(&mut h, c, "a", "lost");
    h.drop_client(c);
    assert!(h.broker.held("/queue/t").is_empty());
}

#[test]
fn an_unknown_transaction_is_an_error() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    tx_send(&mut h, c, "never-begun", "x");
    let frames = h.take(c);
    assert_eq!(header(&frames[0], "message"), "Bad transaction");
    assert!(h.closed(c));
}

#[test]
fn beginning_a_transaction_twice_is_an_error() {
    let mut h = Harness::rabbit();
    let c = h.connect();
    h.frame(c, Command::Begin, &[("transaction", "a")], "");
    h.frame(c, Command::Begin, &[("transaction", "a")], "");
    assert_eq!(h.take(c)[0].command(), Command::Error);
}

#[test]
fn a_transaction_holds_at_most_the_configured_frames() {
    let config = stompkit_testkit::BrokerConfig::default()
        .with_limits(stompkit_testkit::BrokerLimits::default().with_max_transaction_frames(2));
    let mut h = Harness::new(config);
    let c = h.connect();
    h.frame(c, Command::Begin, &[("transaction", "a")], "");
    for _ in 0..3 {
        tx_send(&mut h, c, "a", "x");
    }
    let frames = h.take(c);
    assert_eq!(header(&frames[0], "message"), "Transaction too large");
    assert!(h.closed(c));
}
