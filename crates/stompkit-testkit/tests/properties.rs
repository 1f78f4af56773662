//! Any sequence of client operations: the broker never panics, answers valid frames with no
//! ERROR, and loses no message: every accepted send is, at the end, either consumed (delivered
//! on an `auto` subscription or acknowledged) or still held by the broker, never both.

mod support;

use std::collections::BTreeSet;

use proptest::prelude::*;
use stompkit_codec::Command;
use stompkit_testkit::{BrokerConfig, BrokerLimits, ConnectionId};
use support::{Harness, header, ms};

const QUEUE: &str = "/queue/p";

#[derive(Debug, Clone)]
enum Op {
    Subscribe(usize, u8),
    Unsubscribe(usize),
    Send(usize),
    Begin(usize),
    Commit(usize),
    Abort(usize),
    Ack(usize, usize),
    Nack(usize, usize),
    Disconnect(usize),
    Drop(usize),
    Garbage(usize, Vec<u8>),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..3usize;
    prop_oneof![
        1 => (slot.clone(), 0..3u8).prop_map(|(s, m)| Op::Subscribe(s, m)),
        1 => slot.clone().prop_map(Op::Unsubscribe),
        4 => slot.clone().prop_map(Op::Send),
        1 => slot.clone().prop_map(Op::Begin),
        1 => slot.clone().prop_map(Op::Commit),
        1 => slot.clone().prop_map(Op::Abort),
        2 => (slot.clone(), any::<usize>()).prop_map(|(s, i)| Op::Ack(s, i)),
        1 => (slot.clone(), any::<usize>()).prop_map(|(s, i)| Op::Nack(s, i)),
        1 => slot.clone().prop_map(Op::Disconnect),
        1 => slot.clone().prop_map(Op::Drop),
        1 => (slot, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(s, g)| Op::Garbage(s, g)),
        1 => (0..5_000u64).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Default)]
struct Slot {
    conn: Option<ConnectionId>,
    /// The subscription's ack mode: "auto", "client" or "client-individual".
    mode: Option<&'static str>,
    /// Delivered and not acknowledged: (ack id, message number), in delivery order.
    pending: Vec<(String, u64)>,
    /// Open transaction and the messages sent in it.
    tx: Option<Vec<u64>>,
}

struct Model {
    h: Harness,
    slots: Vec<Slot>,
    next: u64,
    sent: BTreeSet<u64>,
    consumed: BTreeSet<u64>,
}

impl Model {
    fn conn(&mut self, s: usize) -> ConnectionId {
        if let Some(c) = self.slots[s].conn {
            return c;
        }
        let c = self.h.connect();
        self.slots[s].conn = Some(c);
        c
    }

    /// Reads what every client received; forgets the state of closed ones.
    fn settle(&mut self) {
        for s in 0..self.slots.len() {
            let Some(c) = self.slots[s].conn else {
                continue;
            };
            for frame in self.h.take(c) {
                match frame.command() {
                    Command::Message => {
                        let n: u64 = String::from_utf8_lossy(frame.body())
                            .parse()
                            .expect("only numbered messages are sent");
                        match self.slots[s].mode {
                            Some("auto") => {
                                assert!(self.consumed.insert(n), "{n} consumed twice");
                            }
                            Some(_) => {
                                let id = header(&frame, "ack").to_owned();
                                self.slots[s].pending.push((id, n));
                            }
                            None => panic!("a message without a subscription: {frame:?}"),
                        }
                    }
                    Command::Error => panic!("ERROR for a valid frame: {frame:?}"),
                    _ => {}
                }
            }
            if self.h.closed(c) {
                self.slots[s] = Slot::default();
            }
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Subscribe(s, m) => {
                if self.slots[s].mode.is_none() {
                    let c = self.conn(s);
                    let mode = ["auto", "client", "client-individual"][usize::from(m)];
                    self.slots[s].mode = Some(mode);
                    self.h.subscribe(c, "s", QUEUE, mode);
                }
            }
            Op::Unsubscribe(s) => {
                if let (Some(c), Some(_)) = (self.slots[s].conn, self.slots[s].mode) {
                    self.h.frame(c, Command::Unsubscribe, &[("id", "s")], "");
                    self.slots[s].mode = None;
                    self.slots[s].pending.clear();
                }
            }
            Op::Send(s) => {
                let c = self.conn(s);
                let n = self.next;
                self.next += 1;
                let body = n.to_string();
                if let Some(tx) = &mut self.slots[s].tx {
                    tx.push(n);
                    self.h.frame(
                        c,
                        Command::Send,
                        &[("destination", QUEUE), ("transaction", "t")],
                        &body,
                    );
                } else {
                    self.sent.insert(n);
                    self.h.send(c, QUEUE, &body);
                }
            }
            Op::Begin(s) => {
                if self.slots[s].tx.is_none() {
                    let c = self.conn(s);
                    self.slots[s].tx = Some(Vec::new());
                    self.h.frame(c, Command::Begin, &[("transaction", "t")], "");
                }
            }
            Op::Commit(s) | Op::Abort(s) => {
                let commit = matches!(op, Op::Commit(_));
                if let (Some(c), Some(tx)) = (self.slots[s].conn, self.slots[s].tx.take()) {
                    let command = if commit {
                        Command::Commit
                    } else {
                        Command::Abort
                    };
                    if commit {
                        self.sent.extend(tx);
                    }
                    self.h.frame(c, command, &[("transaction", "t")], "");
                }
            }
            Op::Ack(s, i) | Op::Nack(s, i) => {
                let ack = matches!(op, Op::Ack(..));
                let slot = &mut self.slots[s];
                let (Some(c), Some(mode)) = (slot.conn, slot.mode) else {
                    return;
                };
                if slot.pending.is_empty() {
                    return;
                }
                let i = i % slot.pending.len();
                let id = slot.pending[i].0.clone();
                let done: Vec<(String, u64)> = if mode == "client" {
                    slot.pending.drain(..=i).collect()
                } else {
                    vec![slot.pending.remove(i)]
                };
                if ack {
                    for (_, n) in done {
                        assert!(self.consumed.insert(n), "{n} consumed twice");
                    }
                }
                let command = if ack { Command::Ack } else { Command::Nack };
                self.h.frame(c, command, &[("id", &id)], "");
            }
            Op::Disconnect(s) => {
                if let Some(c) = self.slots[s].conn {
                    self.h
                        .frame(c, Command::Disconnect, &[("receipt", "bye")], "");
                    assert!(self.h.closed(c));
                }
            }
            Op::Drop(s) => {
                if let Some(c) = self.slots[s].conn {
                    self.h.drop_client(c);
                }
            }
            Op::Garbage(s, bytes) => {
                // A connection that sent garbage is dropped: what it sent next could be read
                // as part of the garbage.
                if let Some(c) = self.slots[s].conn.take() {
                    self.h.take(c);
                    self.h.send_raw(c, &bytes);
                    self.h.drop_client(c);
                    self.h.take(c);
                    self.slots[s] = Slot::default();
                }
            }
            Op::Advance(n) => self.h.advance(ms(n)),
        }
        self.settle();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_message_is_lost_or_consumed_twice(ops in proptest::collection::vec(op(), 0..60)) {
        let limits = BrokerLimits::default().with_max_unacked(3).with_max_output_bytes(256);
        let mut m = Model {
            h: Harness::new(BrokerConfig::default().with_limits(limits)),
            slots: (0..3).map(|_| Slot::default()).collect(),
            next: 0,
            sent: BTreeSet::new(),
            consumed: BTreeSet::new(),
        };
        for op in ops {
            m.apply(op);
        }
        let held: Vec<u64> = m
            .h
            .broker
            .held(QUEUE)
            .iter()
            .map(|h| String::from_utf8_lossy(&h.body).parse().expect("numbered"))
            .collect();
        let held_set: BTreeSet<u64> = held.iter().copied().collect();
        prop_assert_eq!(held.len(), held_set.len(), "a message held twice: {:?}", held);
        prop_assert!(held_set.is_disjoint(&m.consumed), "consumed and still held");
        let all: BTreeSet<u64> = held_set.union(&m.consumed).copied().collect();
        prop_assert_eq!(all, m.sent.clone());
        // Everything the clients still hold unacknowledged is held by the broker as such.
        let pending: usize = m.slots.iter().map(|s| s.pending.len()).sum();
        let unacked = m.h.broker.held(QUEUE).iter().filter(|h| h.unacked).count();
        prop_assert_eq!(pending, unacked);
    }
}
