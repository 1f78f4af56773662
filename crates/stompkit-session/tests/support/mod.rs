//! Test support: a virtual clock, an in-memory fake broker and transcript replay.
//!
//! [`Sim`] couples a [`Session`] with a [`FakeBroker`] over an instant, in-memory link.
//! Time moves only through [`Sim::advance`], which steps to each deadline in turn (the
//! session's and the broker's heart-beat), so every test is deterministic.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use stompkit_codec::{Command, Decoder, Encoder, Frame, Item, Version};
use stompkit_session::{
    Attempt, CloseReason, Credentials, Directive, Event, Failure, Session, SessionConfig, State,
};

pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// How the fake broker behaves.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Versions it speaks.
    pub versions: Vec<Version>,
    /// Its heart-beat `(sx, sy)` in ms; it raises the client's wishes to these minimums,
    /// as RabbitMQ does.
    pub heart_beat: (u64, u64),
    /// Whether it actually sends heart-beats.
    pub sends_heartbeats: bool,
    /// Accepted passcode (`None`: any).
    pub passcode: Option<String>,
    /// Accepted `Authorization` header (`None`: not checked).
    pub authorization: Option<String>,
    /// Whether it answers `receipt` headers.
    pub receipts: bool,
    /// RabbitMQ style: an EOL after every frame.
    pub trailing_eol: bool,
    /// Forces the `version` header of CONNECTED (to test refusals).
    pub force_version: Option<&'static str>,
    /// Destinations whose SEND and SUBSCRIBE it refuses with an ERROR naming no receipt,
    /// then closes (RabbitMQ and a missing exchange, or a queue declared another way).
    pub refuse: Vec<String>,
    /// Negotiates heart-beats on STOMP 1.0 too (ActiveMQ does).
    pub heartbeats_on_1_0: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            versions: Version::ALL.to_vec(),
            heart_beat: (0, 0),
            sends_heartbeats: false,
            passcode: None,
            authorization: None,
            receipts: true,
            trailing_eol: true,
            force_version: None,
            refuse: Vec::new(),
            heartbeats_on_1_0: false,
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    message_id: String,
    destination: String,
    body: bytes::Bytes,
    headers: Vec<(String, String)>,
    redelivered: bool,
}

#[derive(Debug, Clone)]
struct BrokerSub {
    destination: String,
    ack: String,
}

/// An in-memory STOMP broker: durable queues, subscriptions, acks (cumulative in client
/// mode), transactions, receipts, redelivery of unacknowledged messages after a drop.
#[derive(Debug)]
pub struct FakeBroker {
    pub config: BrokerConfig,
    decoder: Decoder,
    encoder: Encoder,
    inbuf: BytesMut,
    /// Bytes for the session.
    out: Vec<u8>,
    /// Whether a transport is open.
    pub open: bool,
    /// The broker wants the transport closed after flushing `out`.
    pub closing: bool,
    /// The negotiated version while connected.
    pub version: Option<Version>,
    /// CONNECTs accepted so far.
    pub connections: u32,
    /// Every frame received, with the connection number it came on.
    pub log: Vec<(u32, Frame)>,
    /// Heart-beats received on the current connection.
    pub heartbeats_received: u32,
    /// When the broker sends its next heart-beat.
    pub next_heartbeat: Option<Instant>,
    hb_interval: Option<Duration>,
    subs: BTreeMap<String, BrokerSub>,
    queues: BTreeMap<String, VecDeque<Stored>>,
    /// (subscription, ack id, message) delivered and not acknowledged.
    unacked: Vec<(String, String, Stored)>,
    txs: BTreeMap<String, Vec<Frame>>,
    next_message: u64,
    next_ack: u64,
    /// Whether to deliver queued messages to subscribers (off: hold them).
    pub deliver: bool,
}

impl FakeBroker {
    pub fn new(config: BrokerConfig) -> Self {
        Self {
            config,
            decoder: Decoder::new(Version::V1_2),
            encoder: Encoder::new(Version::V1_2),
            inbuf: BytesMut::new(),
            out: Vec::new(),
            open: false,
            closing: false,
            version: None,
            connections: 0,
            log: Vec::new(),
            heartbeats_received: 0,
            next_heartbeat: None,
            hb_interval: None,
            subs: BTreeMap::new(),
            queues: BTreeMap::new(),
            unacked: Vec::new(),
            txs: BTreeMap::new(),
            next_message: 1,
            next_ack: 1,
            deliver: true,
        }
    }

    /// A transport opened.
    pub fn open(&mut self) {
        self.open = true;
        self.closing = false;
        self.decoder = Decoder::new(Version::V1_2);
        self.encoder = Encoder::new(Version::V1_2);
        self.inbuf.clear();
        self.out.clear();
        self.heartbeats_received = 0;
    }

    /// The transport closed: per-connection state goes; unacknowledged messages go back to
    /// the front of their queues, flagged redelivered; open transactions are discarded.
    pub fn close(&mut self) {
        self.open = false;
        self.closing = false;
        self.version = None;
        self.out.clear();
        self.inbuf.clear();
        self.next_heartbeat = None;
        self.hb_interval = None;
        self.subs.clear();
        self.txs.clear();
        for (_, _, mut stored) in std::mem::take(&mut self.unacked).into_iter().rev() {
            stored.redelivered = true;
            self.queues
                .entry(stored.destination.clone())
                .or_default()
                .push_front(stored);
        }
    }

    /// Frames received with this command, over all connections.
    pub fn frames(&self, command: Command) -> Vec<&Frame> {
        self.log
            .iter()
            .filter(|(_, f)| f.command() == command)
            .map(|(_, f)| f)
            .collect()
    }

    /// Frames received on connection `n` (1-based), in order.
    pub fn frames_on(&self, connection: u32) -> Vec<&Frame> {
        self.log
            .iter()
            .filter(|(c, _)| *c == connection)
            .map(|(_, f)| f)
            .collect()
    }

    /// Bodies of messages still held by the broker for `destination`.
    pub fn queued(&self, destination: &str) -> Vec<String> {
        self.queues
            .get(destination)
            .map(|q| {
                q.iter()
                    .map(|s| String::from_utf8_lossy(&s.body).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Puts a message with extra headers on a queue, as if another client had sent it.
    pub fn publish_with(&mut self, destination: &str, body: &str, headers: &[(&str, &str)]) {
        let headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let stored = self.store(destination, body.to_owned().into(), headers);
        self.queues
            .entry(destination.to_owned())
            .or_default()
            .push_back(stored);
        if self.open {
            self.deliver_all();
        }
    }

    /// Puts a message on a queue, as if another client had sent it.
    pub fn publish(&mut self, destination: &str, body: &str) {
        let stored = self.store(destination, body.as_bytes().to_vec().into(), Vec::new());
        self.queues
            .entry(destination.to_owned())
            .or_default()
            .push_back(stored);
        self.deliver_all();
    }

    /// Sends raw bytes to the session.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub fn take_out(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn tick(&mut self, now: Instant) {
        if let (Some(at), Some(every)) = (self.next_heartbeat, self.hb_interval) {
            if at <= now && self.open {
                self.out.push(b'\n');
                self.next_heartbeat = Some(now + every);
            }
        }
    }

    /// Bytes from the session.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        self.inbuf.extend_from_slice(bytes);
        loop {
            match self.decoder.decode(&mut self.inbuf) {
                Ok(Some(Item::Heartbeat)) => self.heartbeats_received += 1,
                Ok(Some(Item::Frame(frame))) => {
                    self.on_frame(now, &frame);
                    // After handling, so an accepted CONNECT counts under the connection it opens.
                    self.log.push((self.connections, frame));
                    if self.closing {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    self.error(&format!("malformed frame: {e}"), None);
                    return;
                }
            }
        }
    }

    fn write(&mut self, frame: &Frame) {
        let mut buf = BytesMut::new();
        self.encoder
            .encode(frame, &mut buf)
            .expect("broker frame encodes");
        self.out.extend_from_slice(&buf);
        if self.config.trailing_eol {
            self.out.push(b'\n');
        }
    }

    fn error(&mut self, message: &str, receipt: Option<&[u8]>) {
        let mut b = Frame::builder(Command::Error)
            .header("message", message)
            .header("content-type", "text/plain");
        if let Some(r) = receipt {
            b = b.header("receipt-id", r);
        }
        self.write(&b.body(message.to_owned()).build());
        self.closing = true;
    }

    fn on_frame(&mut self, now: Instant, frame: &Frame) {
        let receipt = frame.header("receipt").map(<[u8]>::to_vec);
        let refused = frame
            .header_str("destination")
            .is_some_and(|d| self.config.refuse.iter().any(|r| r == d));
        if refused && matches!(frame.command(), Command::Send | Command::Subscribe) {
            return self.error("not_found", None);
        }
        match frame.command() {
            Command::Connect | Command::Stomp => return self.on_connect(now, frame),
            _ if self.version.is_none() => return self.error("not connected", None),
            Command::Send => {
                let destination = frame
                    .header_str("destination")
                    .unwrap_or_default()
                    .to_owned();
                if destination.is_empty() {
                    return self.error("SEND without destination", receipt.as_deref());
                }
                if let Some(tx) = frame.header_str("transaction") {
                    match self.txs.get_mut(tx) {
                        Some(frames) => frames.push(frame.clone()),
                        None => return self.error("unknown transaction", receipt.as_deref()),
                    }
                } else {
                    self.enqueue(frame);
                }
            }
            Command::Subscribe => {
                let id = frame.header_str("id").unwrap_or_default().to_owned();
                let sub = BrokerSub {
                    destination: frame
                        .header_str("destination")
                        .unwrap_or_default()
                        .to_owned(),
                    ack: frame.header_str("ack").unwrap_or("auto").to_owned(),
                };
                self.subs.insert(id, sub);
            }
            Command::Unsubscribe => {
                let id = frame.header_str("id").unwrap_or_default().to_owned();
                self.subs.remove(&id);
            }
            Command::Ack | Command::Nack => {
                // Like ActiveMQ: an acknowledgement in a transaction counts on COMMIT.
                if let Some(tx) = frame.header_str("transaction") {
                    match self.txs.get_mut(tx) {
                        Some(frames) => frames.push(frame.clone()),
                        None => return self.error("unknown transaction", receipt.as_deref()),
                    }
                } else if !self.on_ack(frame) {
                    return self.error("ACK for an unknown message", receipt.as_deref());
                }
            }
            Command::Begin => {
                let tx = frame
                    .header_str("transaction")
                    .unwrap_or_default()
                    .to_owned();
                self.txs.insert(tx, Vec::new());
            }
            Command::Commit => {
                let tx = frame.header_str("transaction").unwrap_or_default();
                match self.txs.remove(tx) {
                    Some(frames) => {
                        for f in &frames {
                            if f.command() == Command::Send {
                                self.enqueue(f);
                            } else if !self.on_ack(f) {
                                return self
                                    .error("ACK for an unknown message", receipt.as_deref());
                            }
                        }
                    }
                    None => return self.error("unknown transaction", receipt.as_deref()),
                }
            }
            Command::Abort => {
                let tx = frame.header_str("transaction").unwrap_or_default();
                if self.txs.remove(tx).is_none() {
                    return self.error("unknown transaction", receipt.as_deref());
                }
            }
            Command::Disconnect => {
                if let Some(r) = &receipt {
                    let f = Frame::builder(Command::Receipt)
                        .header("receipt-id", r)
                        .build();
                    self.write(&f);
                }
                self.closing = true;
                return;
            }
            other => return self.error(&format!("{other} is not a client frame"), None),
        }
        if let (Some(r), true) = (&receipt, self.config.receipts) {
            let f = Frame::builder(Command::Receipt)
                .header("receipt-id", r)
                .build();
            self.write(&f);
        }
        self.deliver_all();
    }

    fn on_connect(&mut self, now: Instant, frame: &Frame) {
        if self.version.is_some() {
            return self.error("already connected", None);
        }
        if let Some(expected) = &self.config.passcode {
            if frame.header_str("passcode") != Some(expected.as_str()) {
                return self.error("Bad CONNECT", None);
            }
        }
        if let Some(expected) = &self.config.authorization {
            if frame.header_str("Authorization") != Some(expected.as_str()) {
                return self.error("Bad CONNECT", None);
            }
        }
        let offered: Vec<Version> = match frame.header_str("accept-version") {
            None => vec![Version::V1_0],
            Some(list) => list.split(',').filter_map(|v| v.parse().ok()).collect(),
        };
        let Some(version) = offered
            .iter()
            .copied()
            .filter(|v| self.config.versions.contains(v))
            .max()
        else {
            let f = Frame::builder(Command::Error)
                .header("message", "Supported protocol versions are 2.0")
                .header("version", "2.0")
                .build();
            self.write(&f);
            self.closing = true;
            return;
        };
        self.connections += 1;
        self.version = Some(version);
        let (cx, cy) = frame
            .header_str("heart-beat")
            .and_then(|v| v.split_once(','))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .unwrap_or((0, 0));
        let (sx, sy) = self.config.heart_beat;
        // Like RabbitMQ: answer with our minimum when the client asks for less.
        let answer = (
            if cy == 0 || sx == 0 { 0 } else { cy.max(sx) },
            if cx == 0 || sy == 0 { 0 } else { cx.max(sy) },
        );
        let mut b = Frame::builder(Command::Connected)
            .header("server", "FakeMQ/1.0")
            .header("session", format!("session-{}", self.connections));
        let heart_beats = version != Version::V1_0 || self.config.heartbeats_on_1_0;
        if heart_beats {
            b = b.header("heart-beat", format!("{},{}", answer.0, answer.1));
        }
        let version_header = self.config.force_version.unwrap_or(version.as_str());
        let b = b.header("version", version_header);
        self.write(&b.build());
        self.decoder.set_version(version);
        self.encoder.set_version(version);
        if self.config.sends_heartbeats && answer.0 != 0 && heart_beats {
            let every = ms(answer.0);
            self.hb_interval = Some(every);
            self.next_heartbeat = Some(now + every);
        }
    }

    fn store(
        &mut self,
        destination: &str,
        body: bytes::Bytes,
        headers: Vec<(String, String)>,
    ) -> Stored {
        let n = self.next_message;
        self.next_message += 1;
        Stored {
            message_id: format!("m:{n}"),
            destination: destination.to_owned(),
            body,
            headers,
            redelivered: false,
        }
    }

    fn enqueue(&mut self, frame: &Frame) {
        let destination = frame
            .header_str("destination")
            .unwrap_or_default()
            .to_owned();
        let headers = frame
            .headers()
            .filter(|(n, _)| {
                !matches!(
                    *n,
                    b"destination" | b"receipt" | b"transaction" | b"content-length"
                )
            })
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let stored = self.store(&destination, frame.body_bytes(), headers);
        self.queues
            .entry(destination)
            .or_default()
            .push_back(stored);
    }

    fn deliver_all(&mut self) {
        if !self.deliver || self.closing || self.version.is_none() {
            return;
        }
        let subs: Vec<(String, BrokerSub)> = self
            .subs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, sub) in subs {
            while let Some(stored) = self
                .queues
                .get_mut(&sub.destination)
                .and_then(VecDeque::pop_front)
            {
                let ack_id = format!("ack:{}", self.next_ack);
                self.next_ack += 1;
                let mut b = Frame::builder(Command::Message)
                    .header("subscription", &id)
                    .header("destination", &stored.destination)
                    .header("message-id", &stored.message_id)
                    .header(
                        "redelivered",
                        if stored.redelivered { "true" } else { "false" },
                    );
                if sub.ack != "auto" {
                    b = b.header("ack", &ack_id);
                }
                for (n, v) in &stored.headers {
                    b = b.header(n, v);
                }
                self.write(&b.body(stored.body.clone()).build());
                if sub.ack != "auto" {
                    self.unacked.push((id.clone(), ack_id, stored));
                }
            }
        }
    }

    /// Applies an ACK/NACK; false if it names nothing.
    fn on_ack(&mut self, frame: &Frame) -> bool {
        let version = self.version.unwrap_or(Version::V1_2);
        let position = match version {
            Version::V1_2 => {
                let id = frame.header_str("id").unwrap_or_default();
                self.unacked.iter().position(|(_, a, _)| a == id)
            }
            _ => {
                let mid = frame.header_str("message-id").unwrap_or_default();
                self.unacked
                    .iter()
                    .position(|(_, _, s)| s.message_id == mid)
            }
        };
        let Some(position) = position else {
            return false;
        };
        let sub_id = self.unacked[position].0.clone();
        let cumulative = self.subs.get(&sub_id).is_some_and(|s| s.ack == "client");
        let nack = frame.command() == Command::Nack;
        let taken: Vec<(String, String, Stored)> = if cumulative {
            let mut taken = Vec::new();
            let mut i = 0;
            let mut seen = 0;
            while i < self.unacked.len() && seen <= position {
                if self.unacked[i].0 == sub_id {
                    taken.push(self.unacked.remove(i));
                } else {
                    i += 1;
                }
                seen += 1;
            }
            taken
        } else {
            vec![self.unacked.remove(position)]
        };
        if nack {
            for (_, _, mut stored) in taken {
                stored.redelivered = true;
                self.queues
                    .entry(stored.destination.clone())
                    .or_default()
                    .push_back(stored);
            }
        }
        true
    }
}

/// The session, the broker and the clock.
pub struct Sim {
    pub session: Session,
    pub broker: FakeBroker,
    pub start: Instant,
    pub now: Instant,
    /// Every event the session emitted, in order.
    pub events: Vec<Event>,
    /// Whether the broker can be reached (if not, opening the transport fails).
    pub reachable: bool,
    /// Whether opening a transport completes (if not, it hangs until the connect timeout).
    pub opens: bool,
    /// Asked on every `OpenTransport`; the argument is the attempt number.
    pub credentials: Box<dyn FnMut(u32) -> Credentials>,
    /// How many times credentials were asked.
    pub credentials_asked: u32,
    /// Whether the session holds an open transport (as the driver sees it).
    pub transport_open: bool,
    /// Checks after every step.
    pub check_timers: bool,
    /// Lossy link: the next bytes the session writes are lost and the connection dies.
    pub lose_next_write: bool,
    /// Bytes lost that way.
    pub lost: Vec<u8>,
    /// The attempt whose transport is open (or was asked for last).
    pub attempt: Option<Attempt>,
    /// Every directive the session gave, in order.
    pub directives: Vec<Directive>,
}

impl Sim {
    pub fn new(config: SessionConfig, broker: BrokerConfig) -> Self {
        let start = Instant::now();
        Self {
            session: Session::new(config, start).expect("valid config"),
            broker: FakeBroker::new(broker),
            start,
            now: start,
            events: Vec::new(),
            reachable: true,
            opens: true,
            credentials: Box::new(|_| Credentials::login("guest", "guest")),
            credentials_asked: 0,
            transport_open: false,
            check_timers: true,
            lose_next_write: false,
            lost: Vec::new(),
            attempt: None,
            directives: Vec::new(),
        }
    }

    /// Default session config without heart-beats and with a fast, jitter-free backoff.
    pub fn config() -> SessionConfig {
        SessionConfig::default()
            .with_heart_beat(Duration::ZERO, Duration::ZERO)
            .with_backoff(stompkit_session::BackoffConfig::constant(secs(1)))
    }

    /// The current attempt (panics before the first).
    pub fn current(&self) -> Attempt {
        self.attempt.expect("an attempt was started")
    }

    /// Connects and runs until the session is connected (or anything else settles).
    pub fn connected(config: SessionConfig, broker: BrokerConfig) -> Self {
        let mut sim = Self::new(config, broker);
        sim.connect();
        assert_eq!(
            sim.session.state(),
            State::Connected,
            "events: {:#?}",
            sim.events
        );
        sim
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn connect(&mut self) {
        self.session.connect(self.now);
        self.pump();
    }

    /// Moves messages, bytes and transport events until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(directive) = self.session.poll_directive() {
                moved = true;
                self.on_directive(directive);
                self.directives.push(directive);
            }
            while let Some(event) = self.session.poll_event() {
                moved = true;
                self.events.push(event);
            }
            while let Some(bytes) = self.session.poll_transmit() {
                moved = true;
                assert!(
                    self.transport_open,
                    "bytes written with no transport: {bytes:?}"
                );
                if self.lose_next_write {
                    // The connection dies with these bytes in flight.
                    self.lose_next_write = false;
                    self.lost.extend_from_slice(&bytes);
                    self.transport_open = false;
                    self.broker.close();
                    self.session.transport_closed(
                        self.now,
                        self.current(),
                        CloseReason::Error("reset".into()),
                    );
                    break;
                }
                self.broker.receive(self.now, &bytes);
            }
            if self.broker.has_output() && self.transport_open {
                moved = true;
                let bytes = self.broker.take_out();
                self.session.handle_input(self.now, self.current(), &bytes);
            }
            if self.broker.closing && !self.broker.has_output() && self.transport_open {
                moved = true;
                self.broker.close();
                self.transport_open = false;
                self.session
                    .transport_closed(self.now, self.current(), CloseReason::PeerClosed);
            }
            if !moved {
                return;
            }
        }
        panic!("pump did not settle");
    }

    fn on_directive(&mut self, directive: Directive) {
        match directive {
            Directive::Open(attempt) => {
                assert!(!self.transport_open, "Open with a transport open");
                self.attempt = Some(attempt);
                if !self.reachable {
                    self.session.transport_closed(
                        self.now,
                        attempt,
                        CloseReason::Error("connection refused".into()),
                    );
                } else if self.opens {
                    self.transport_open = true;
                    self.broker.open();
                    self.credentials_asked += 1;
                    let creds = (self.credentials)(attempt.number());
                    self.session.transport_connected(self.now, attempt, creds);
                }
            }
            Directive::Close(attempt) if self.transport_open => {
                assert_eq!(Some(attempt), self.attempt, "Close names another attempt");
                self.transport_open = false;
                self.broker.close();
            }
            Directive::Close(_) => {}
        }
    }

    /// Advances virtual time by `d`, stopping at every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let next = [self.session.poll_timeout(), self.broker.next_heartbeat]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= target => {
                    if let Some(t0) = self.session.poll_timeout() {
                        assert!(
                            t0 >= self.now,
                            "timer in the past: {:?} < now",
                            t0 - self.now
                        );
                    }
                    self.now = self.now.max(t);
                    self.broker.tick(self.now);
                    self.session.handle_timeout(self.now);
                    if self.check_timers {
                        if let Some(t) = self.session.poll_timeout() {
                            assert!(t > self.now, "timer not in the future after handle_timeout");
                        }
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = target;
        self.pump();
    }

    /// The broker drops the connection (e.g. it restarts).
    pub fn drop_link(&mut self) {
        if self.transport_open {
            self.transport_open = false;
            self.broker.close();
            self.session
                .transport_closed(self.now, self.current(), CloseReason::PeerClosed);
            self.pump();
        }
    }

    /// The broker sends raw bytes.
    pub fn broker_says(&mut self, bytes: &[u8]) {
        self.broker.send_raw(bytes);
        self.pump();
    }

    /// Events since index `from`.
    pub fn events_since(&self, from: usize) -> &[Event] {
        &self.events[from..]
    }

    /// Takes the events recorded so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Bodies of the messages delivered, in order.
    pub fn delivered_bodies(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message { frame, .. } => {
                    Some(String::from_utf8_lossy(frame.body()).into_owned())
                }
                _ => None,
            })
            .collect()
    }

    /// The states entered, in order.
    pub fn states(&self) -> Vec<State> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged { to, .. } => Some(*to),
                _ => None,
            })
            .collect()
    }
}

/// One step of a broker transcript (see tests/transcripts/README.md).
#[derive(Debug, Clone)]
pub struct Step {
    pub client: bool,
    pub at_ms: u64,
    pub data: Vec<u8>,
    pub closed: bool,
}

/// The failure that ended the session's last connection attempt.
///
/// # Panics
/// If there was no attempt, or the last one did not fail.
#[track_caller]
pub fn last_failure(session: &Session) -> &Failure {
    session
        .attempts()
        .last()
        .expect("a connection attempt")
        .failure
        .as_ref()
        .expect("the last attempt failed")
}

/// Loads a transcript from `tests/transcripts/<name>.json`.
pub fn transcript(name: &str) -> Vec<Step> {
    let path = format!(
        "{}/tests/transcripts/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("transcript JSON");
    json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| Step {
            client: s["dir"] == "c2s",
            at_ms: s["at_ms"].as_u64().unwrap_or(0),
            // latin-1: one char per byte
            data: s["data"]
                .as_str()
                .unwrap_or("")
                .chars()
                .map(|c| c as u32 as u8)
                .collect(),
            closed: s["closed"].as_bool().unwrap_or(false),
        })
        .collect()
}

/// The server's bytes of a transcript, in order, with `replace` applied (e.g. to rename the
/// transcript's receipt ids to the session's).
pub fn server_bytes(steps: &[Step], replace: &[(&str, &str)]) -> Vec<Vec<u8>> {
    steps
        .iter()
        .filter(|s| !s.client && !s.data.is_empty())
        .map(|s| {
            let mut text: String = s.data.iter().map(|b| char::from(*b)).collect();
            for (from, to) in replace {
                text = text.replace(from, to);
            }
            text.chars().map(|c| c as u32 as u8).collect()
        })
        .collect()
}

/// Decodes bytes the session wrote into frames (for byte-level assertions).
pub fn decode_all(version: Version, bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = Decoder::new(version);
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(item) = decoder.decode(&mut buf).expect("session output decodes") {
        if let Item::Frame(f) = item {
            frames.push(f);
        }
    }
    frames
}
