//! Random sequences of commands, broker traffic, drops and time steps, driven the way
//! docs/session.md asks a driver to (directives, then transmits, then events; input before
//! timers), checked against the session's delivery rules.
//!
//! The outcome rule, read from the session's code: every `SendId` that `send` accepted ends
//! in exactly one of
//! - `Event::Receipt { id: ReceiptId::Send(id), .. }` with any outcome, for a message that
//!   asked a receipt (`Confirmed`; `Error` when an `ERROR` names it; `TimedOut`;
//!   `ConnectionLost` when the session closes with it unconfirmed, or when the connection of
//!   its transaction ends);
//! - `Event::MessageDropped { id, .. }`, for any message (expired, queue overflow, session
//!   closed while queued, poisoned, unencodable);
//! - for a message without receipt: its `SEND` handed to the driver by `poll_transmit`,
//!   once. Being written is its outcome; whether the broker got it is at-most-once.
//!
//! Re-sends of a receipted message are not outcomes. Each run ends with `disconnect()` and
//! time for the session to reach `Closed`, after which nothing can be pending, and the rule
//! is checked per id then. Also checked: a confirmed message reached the broker; every
//! re-send carries the message's stable id, and no two messages share one; each piece of a
//! `Transmit` is one whole frame or one heart-beat; no frame after `DISCONNECT`; no deadline
//! in the past, and every deadline in the future after `handle_timeout`.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use stompkit_codec::{Command, Frame, Version};
use stompkit_policy::{Jitter, OpenDuration};
use stompkit_session::{
    AckMode, Attempt, BackoffConfig, BreakerConfig, CloseReason, Credentials, Directive,
    DropReason, Event, Message, Piece, ReceiptId, ReceiptOutcome, SendId, Session, SessionConfig,
    State, Subscribe, Transmit,
};
use support::{Broker, BrokerConfig, ConnectionId, Received, decode_all, ms, secs};

/// A destination the broker refuses with an ERROR naming no receipt, then a close
/// (RabbitMQ: an exchange that does not exist).
const REFUSED: &str = "/exchange/missing/refused";

#[derive(Debug, Clone)]
enum Op {
    Send {
        receipt: bool,
        priority: u8,
        expires_ms: Option<u16>,
    },
    SendRefused {
        receipt: bool,
    },
    SendInTx,
    Subscribe(u8),
    SubscribeRefused,
    Publish(u8),
    AckLatest,
    Drop,
    LoseNextWrite,
    Unreachable(bool),
    ReceiptsOff(bool),
    Advance(u16),
    ReconnectNow,
    Disconnect,
    Connect,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 0u8..3, proptest::option::of(0u16..5000))
            .prop_map(|(receipt, priority, expires_ms)| Op::Send { receipt, priority, expires_ms }),
        1 => any::<bool>().prop_map(|receipt| Op::SendRefused { receipt }),
        1 => Just(Op::SendInTx),
        1 => (0u8..3).prop_map(Op::Subscribe),
        1 => Just(Op::SubscribeRefused),
        2 => (0u8..3).prop_map(Op::Publish),
        1 => Just(Op::AckLatest),
        2 => Just(Op::Drop),
        2 => Just(Op::LoseNextWrite),
        1 => any::<bool>().prop_map(Op::Unreachable),
        1 => any::<bool>().prop_map(Op::ReceiptsOff),
        4 => (0u16..4000).prop_map(Op::Advance),
        1 => Just(Op::ReconnectNow),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Connect),
    ]
}

/// A driver over the testkit's broker core that records every frame it was handed.
struct Net {
    session: Session,
    broker: Broker,
    /// What the broker received.
    received: Received,
    /// The broker's connection for the open transport.
    conn: Option<ConnectionId>,
    /// The broker is done with `conn`: close it once its output is taken.
    broker_closing: bool,
    now: Instant,
    events: Vec<Event>,
    /// Every frame taken from `poll_transmit`, in order, whether or not it reached the broker.
    written: Vec<Frame>,
    /// The attempt whose transport is open.
    transport: Option<Attempt>,
    reachable: bool,
    /// The next transmit is lost in flight and the connection dies with it.
    lose_next_write: bool,
}

impl Net {
    fn new(seed: u64, start: Instant) -> Self {
        let config = SessionConfig::default()
            .with_heart_beat(ms(500), ms(500))
            .with_receipt_timeout(secs(3))
            .with_queue(16, 1 << 16)
            .with_send_window(2)
            .with_healthy_after(secs(1))
            .with_poison_after(2)
            .with_seed(seed)
            .with_backoff(BackoffConfig::exponential(ms(200), 2.0, secs(3)).jitter(Jitter::Full))
            .with_breaker(
                BreakerConfig::default()
                    .consecutive_failures(4)
                    .open_for(OpenDuration::Fixed(secs(5))),
            );
        let broker = BrokerConfig::default().with_heart_beat_floor(ms(500));
        Self {
            session: Session::new(config, start).expect("valid config"),
            broker: support::broker(broker),
            received: Received::default(),
            conn: None,
            broker_closing: false,
            now: start,
            events: Vec::new(),
            written: Vec::new(),
            transport: None,
            reachable: true,
            lose_next_write: false,
        }
    }

    /// Moves directives, bytes and events until nothing moves.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(directive) = self.session.poll_directive() {
                moved = true;
                self.on_directive(directive);
            }
            while let Some(transmit) = self.session.poll_transmit() {
                moved = true;
                self.on_transmit(&transmit);
            }
            while let Some(event) = self.session.poll_event() {
                moved = true;
                self.events.push(event);
            }
            self.received.drain(&mut self.broker);
            while let Some(conn) = self.broker.poll_close() {
                // Closed by the session already, or the one to close after its last bytes.
                if Some(conn) == self.conn {
                    self.broker_closing = true;
                } else {
                    self.broker.closed(self.now, conn);
                }
            }
            if let (Some(attempt), Some(conn)) = (self.transport, self.conn) {
                if let Some(bytes) = self.broker.poll_transmit(conn) {
                    moved = true;
                    self.session.handle_input(self.now, attempt, &bytes);
                } else if self.broker_closing {
                    moved = true;
                    self.close_transport();
                    self.session
                        .transport_closed(self.now, attempt, CloseReason::PeerClosed);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// Ends the transport on the driver's and the broker's side.
    fn close_transport(&mut self) {
        self.transport = None;
        self.broker_closing = false;
        if let Some(conn) = self.conn.take() {
            self.broker.closed(self.now, conn);
        }
        self.received.drain(&mut self.broker);
    }

    fn on_directive(&mut self, directive: Directive) {
        match directive {
            Directive::Open(attempt) => {
                assert_eq!(self.transport, None, "Open with a transport open");
                if self.reachable {
                    self.transport = Some(attempt);
                    let conn = self.broker.open(self.now).expect("room for a connection");
                    self.received.conns.push(Some(conn));
                    self.conn = Some(conn);
                    let credentials = Credentials::login("guest", "guest");
                    self.session
                        .transport_connected(self.now, attempt, credentials);
                } else {
                    let refused = CloseReason::Error("connection refused".into());
                    self.session.transport_closed(self.now, attempt, refused);
                }
            }
            Directive::Close(attempt) => {
                if let Some(open) = self.transport {
                    assert_eq!(open, attempt, "Close names another attempt");
                    self.close_transport();
                }
            }
        }
    }

    fn on_transmit(&mut self, transmit: &Transmit) {
        let attempt = self.transport.expect("bytes to write with no transport");
        for piece in transmit.pieces() {
            if let Piece::Frame(bytes) = piece {
                let mut frames = decode_all(Version::V1_2, &bytes);
                assert_eq!(frames.len(), 1, "a piece holds one whole frame");
                self.written.push(frames.remove(0));
            }
        }
        if std::mem::take(&mut self.lose_next_write) {
            self.close_transport();
            let reset = CloseReason::Error("reset".into());
            self.session.transport_closed(self.now, attempt, reset);
        } else {
            let conn = self.conn.expect("a broker connection with the transport");
            self.broker.handle_input(self.now, conn, transmit);
        }
    }

    /// Moves the clock by `d`, stopping at every deadline (the session's and the broker's);
    /// at each, input is handled before the timers.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..100_000 {
            let next = [self.session.poll_timeout(), self.broker.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(t) = next.filter(|t| *t <= target) else {
                self.now = target;
                self.pump();
                return;
            };
            if let Some(deadline) = self.session.poll_timeout() {
                assert!(deadline >= self.now, "deadline in the past");
            }
            self.now = self.now.max(t);
            self.broker.handle_timeout(self.now);
            self.pump();
            self.session.handle_timeout(self.now);
            if let Some(deadline) = self.session.poll_timeout() {
                assert!(
                    deadline > self.now,
                    "deadline not in the future after handle_timeout"
                );
            }
            self.pump();
        }
        panic!("time did not reach its target");
    }
}

/// What the model knows of a message `send` accepted.
#[derive(Debug)]
struct Accepted {
    body: String,
    receipt: bool,
}

/// Applies `ops`, then settles with a healthy broker and ends the session.
fn run(ops: &[Op], seed: u64, start: Instant) -> (Net, BTreeMap<SendId, Accepted>) {
    let mut net = Net::new(seed, start);
    net.session.connect(net.now);
    net.pump();
    let mut accepted = BTreeMap::new();
    let mut n = 0u32;
    let mut accept = |net: &mut Net, message: Message| {
        let receipt = message.wants_receipt();
        let body = String::from_utf8_lossy(message.body()).into_owned();
        if let Ok(id) = net.session.send(net.now, message) {
            accepted.insert(id, Accepted { body, receipt });
        }
    };
    for op in ops {
        let now = net.now;
        n += 1;
        let body = format!("m{n}");
        match *op {
            Op::Send {
                receipt,
                priority,
                expires_ms,
            } => {
                let mut m = Message::new("/queue/out", body).priority(priority);
                if receipt {
                    m = m.receipt();
                }
                if let Some(e) = expires_ms {
                    m = m.expires_at(now + ms(u64::from(e)));
                }
                accept(&mut net, m);
            }
            Op::SendRefused { receipt } => {
                // First out of the queue, so that it shares a window with other messages.
                let mut m = Message::new(REFUSED, body).priority(2);
                if receipt {
                    m = m.receipt();
                }
                accept(&mut net, m);
            }
            Op::SendInTx => {
                if let Ok(tx) = net.session.begin(now, false) {
                    accept(
                        &mut net,
                        Message::new("/queue/tx", body).transaction(tx).receipt(),
                    );
                    let _ = net.session.commit(now, tx, true);
                }
            }
            Op::Subscribe(i) => {
                let ack =
                    [AckMode::Auto, AckMode::Client, AckMode::ClientIndividual][usize::from(i)];
                let request = Subscribe::new(format!("/queue/in{i}")).ack(ack);
                let _ = net.session.subscribe(now, request);
            }
            Op::SubscribeRefused => {
                let _ = net.session.subscribe(now, Subscribe::new(REFUSED));
            }
            Op::Publish(i) => net
                .broker
                .publish(&format!("/queue/in{i}"), &[], "p")
                .expect("the broker takes the message"),
            Op::AckLatest => {
                let handle = net.events.iter().rev().find_map(|e| match e {
                    Event::Message { handle, .. } => Some(handle.clone()),
                    _ => None,
                });
                if let Some(h) = handle {
                    let _ = net.session.ack(now, &h);
                }
            }
            Op::Drop => {
                if let Some(attempt) = net.transport {
                    net.close_transport();
                    net.session
                        .transport_closed(now, attempt, CloseReason::PeerClosed);
                }
            }
            Op::LoseNextWrite => net.lose_next_write = true,
            Op::Unreachable(b) => net.reachable = !b,
            Op::ReceiptsOff(b) => net
                .broker
                .withhold_receipts(None, b)
                .expect("withheld from every connection"),
            Op::Advance(d) => net.advance(ms(u64::from(d))),
            Op::ReconnectNow => net.session.reconnect_now(now),
            Op::Disconnect => net.session.disconnect(now),
            Op::Connect => net.session.connect(now),
        }
        net.pump();
    }

    // Settle: a healthy broker, and time for every timer, retry and breaker probe.
    net.reachable = true;
    net.lose_next_write = false;
    net.broker
        .withhold_receipts(None, false)
        .expect("answered on every connection");
    net.advance(secs(10));
    if matches!(net.session.state(), State::Closed | State::Idle) {
        net.session.connect(net.now);
        net.pump();
    }
    net.advance(secs(30));
    if net.session.state() == State::Connected {
        assert_eq!(
            net.session.unconfirmed(),
            0,
            "receipted sends left unconfirmed"
        );
        assert_eq!(net.session.queued(), 0, "queue not flushed");
    }

    // End the session: whatever is still pending is reported now.
    net.session.disconnect(net.now);
    net.pump();
    net.advance(secs(10));
    assert_eq!(net.session.state(), State::Closed);
    assert_eq!(net.session.unconfirmed(), 0);
    assert_eq!(net.session.queued(), 0);
    assert_eq!(net.session.subscriptions().count(), 0);
    (net, accepted)
}

/// The outcomes of send `id` (see the module documentation).
fn outcomes(net: &Net, id: SendId, sent: &Accepted) -> Vec<String> {
    let mut found: Vec<String> = net
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Receipt {
                id: ReceiptId::Send(i),
                outcome,
            } if *i == id => Some(format!("receipt {outcome:?}")),
            Event::MessageDropped { id: i, reason, .. } if *i == id => {
                Some(format!("dropped {reason:?}"))
            }
            _ => None,
        })
        .collect();
    if !sent.receipt {
        let writes = net
            .written
            .iter()
            .filter(|f| f.command() == Command::Send && f.body() == sent.body.as_bytes())
            .count();
        found.extend((0..writes).map(|_| "written".to_owned()));
    }
    found
}

fn check(net: &Net, accepted: &BTreeMap<SendId, Accepted>) {
    for c in 1..=net.received.conns.len() {
        let frames = net.received.frames_on(c);
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

    let received: Vec<&[u8]> = net
        .received
        .frames(Command::Send)
        .into_iter()
        .map(Frame::body)
        .collect();
    for (id, sent) in accepted {
        let found = outcomes(net, *id, sent);
        assert_eq!(
            found.len(),
            1,
            "{id:?} ({}, receipt: {}) must end in exactly one outcome, found {found:?}",
            sent.body,
            sent.receipt
        );
        if found[0] == format!("receipt {:?}", ReceiptOutcome::Confirmed) {
            assert!(
                received.contains(&sent.body.as_bytes()),
                "{id:?} ({}) confirmed but never received",
                sent.body
            );
        }
    }

    // A receipted SEND outside a transaction carries one stable id, the same on every
    // re-send, and no other message carries it.
    let mut stable: BTreeMap<&[u8], &str> = BTreeMap::new();
    let mut owners: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for frame in &net.written {
        if frame.command() != Command::Send || frame.header("transaction").is_some() {
            continue;
        }
        let Some(value) = frame.header_str("stompkit-id") else {
            assert!(
                frame.header("receipt").is_none(),
                "a receipted SEND without stable id"
            );
            continue;
        };
        let first = *stable.entry(frame.body()).or_insert(value);
        assert_eq!(first, value, "a re-send changed the stable id");
        let owner = *owners.entry(value).or_insert(frame.body());
        assert_eq!(
            owner,
            frame.body(),
            "two messages share the stable id {value}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_send_ends_in_exactly_one_outcome(
        ops in proptest::collection::vec(op(), 0..60),
        seed in any::<u64>(),
    ) {
        let (net, accepted) = run(&ops, seed, Instant::now());
        check(&net, &accepted);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Two sessions built apart, from the same seed and start, fed the same run: the same
    /// events and the same bytes. (Equality of one instance with itself would prove nothing.)
    #[test]
    fn the_same_seed_gives_the_same_run(
        ops in proptest::collection::vec(op(), 0..40),
        seed in any::<u64>(),
    ) {
        let start = Instant::now();
        let (a, _) = run(&ops, seed, start);
        let (b, _) = run(&ops, seed, start);
        prop_assert_eq!(&a.events, &b.events);
        prop_assert_eq!(&a.written, &b.written);
    }
}

#[test]
fn another_seed_gives_other_retry_times() {
    // Unreachable for a while: the jittered backoff alone decides when attempts start.
    let ops = [
        Op::Unreachable(true),
        Op::Drop,
        Op::Advance(3000),
        Op::Advance(3000),
    ];
    let start = Instant::now();
    let starts = |seed| {
        let (net, _) = run(&ops, seed, start);
        net.session
            .attempts()
            .map(|r| r.started_at)
            .collect::<Vec<_>>()
    };
    assert_eq!(starts(7), starts(7));
    assert_ne!(starts(7), starts(8));
}

#[test]
fn a_known_tricky_sequence() {
    let ops = [
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
    ];
    let (net, accepted) = run(&ops, 0, Instant::now());
    check(&net, &accepted);
}

#[test]
fn a_refused_send_between_good_ones_is_poisoned_once() {
    let good = |receipt| Op::Send {
        receipt,
        priority: 0,
        expires_ms: None,
    };
    let ops = [
        good(true),
        Op::SendRefused { receipt: true },
        good(false),
        good(true),
        Op::Advance(3000),
        Op::Advance(3000),
    ];
    let (net, accepted) = run(&ops, 0, Instant::now());
    check(&net, &accepted);
    let poisoned = net
        .events
        .iter()
        .filter(|e| {
            matches!(e, Event::MessageDropped { message, .. } if message.destination() == REFUSED)
        })
        .count();
    assert_eq!(poisoned, 1);
}

#[test]
fn a_send_without_receipt_the_connection_ends_on_before_it_is_written_is_reported() {
    // On connecting, a window of 2 lets m3 and the refused m4 out; m5 (receipted) and m6
    // (no receipt) wait. The broker answers m3's RECEIPT and m4's ERROR in one read: the
    // RECEIPT flushes m5 and m6 into the session's output, the ERROR ends the connection
    // before the driver takes those bytes. m5 is re-sent later; m6 is reported.
    let send = |receipt, priority| Op::Send {
        receipt,
        priority,
        expires_ms: None,
    };
    let ops = [
        Op::Unreachable(true),
        Op::Drop,
        send(true, 2),
        Op::SendRefused { receipt: true },
        send(true, 1),
        send(false, 0),
        Op::Unreachable(false),
    ];
    let (net, accepted) = run(&ops, 0, Instant::now());
    check(&net, &accepted);
    let lost: Vec<String> = net
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MessageDropped {
                reason: DropReason::ConnectionLost,
                message,
                ..
            } => Some(String::from_utf8_lossy(message.body()).into_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(lost, ["m6"]);
}

#[test]
fn connect_after_giving_up_gets_the_whole_retry_budget_again() {
    let budget = BackoffConfig::constant(ms(100)).max_attempts(Some(2));
    let config = SessionConfig::default()
        .with_backoff(budget)
        .with_breaker(BreakerConfig::default().no_consecutive_failures());
    let mut net = Net::new(0, Instant::now());
    net.session = Session::new(config, net.now).expect("valid config");
    net.reachable = false;
    for round in 1..=2 {
        net.session.connect(net.now);
        net.pump();
        net.advance(secs(5));
        assert_eq!(net.session.state(), State::Closed);
        let tries = net.session.stats().attempts;
        assert_eq!(tries, 3 * round, "first try and 2 retries in round {round}");
    }
}
