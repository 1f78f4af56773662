//! Test support: a virtual clock, the testkit's broker core and transcript replay.
//!
//! [`Sim`] couples a [`Session`] with a [`stompkit_testkit::Broker`] over an instant,
//! in-memory link, one broker connection per transport. Time moves only through
//! [`Sim::advance`], which steps to each deadline in turn (the session's and the broker's),
//! so every test is deterministic. A peer no broker would be (a `CONNECTED` naming a version
//! that was not offered, garbage) is scripted in the test with [`Sim::broker_says`].
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use stompkit_codec::{Command, Decoder, Frame, Item, Version};
use stompkit_session::{
    Attempt, CloseReason, Credentials, Directive, Event, Failure, Session, SessionConfig, State,
};
pub use stompkit_testkit::{Broker, BrokerConfig, BrokerEvent, ConnectionId};

pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A broker core recording its events (the frames it receives), as the simulations use it.
pub fn broker(config: BrokerConfig) -> Broker {
    let mut broker = Broker::new(config).expect("valid broker config");
    broker.record_events();
    broker
}

/// What the broker received, read from its recorded events.
#[derive(Debug, Default)]
pub struct Received {
    /// Every broker connection opened, in order (`frames_on(n)` counts them from 1); `None`
    /// for those of a replaced broker, whose ids the new one uses again.
    pub conns: Vec<Option<ConnectionId>>,
    /// Every frame received, with the number of its connection.
    pub log: Vec<(usize, Frame)>,
    /// `CONNECT`s accepted.
    pub connections: u32,
}

impl Received {
    /// Takes the broker's new events.
    pub fn drain(&mut self, broker: &mut Broker) {
        while let Some(event) = broker.poll_event() {
            match event {
                BrokerEvent::Frame { conn, frame } => {
                    let n = self
                        .conns
                        .iter()
                        .position(|c| *c == Some(conn))
                        .map_or(0, |i| i + 1);
                    self.log.push((n, frame));
                }
                BrokerEvent::Connected { .. } => self.connections += 1,
                _ => {}
            }
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

    /// Frames received on the `n`th connection (from 1), in order.
    pub fn frames_on(&self, n: usize) -> Vec<&Frame> {
        self.log
            .iter()
            .filter(|(c, _)| *c == n)
            .map(|(_, f)| f)
            .collect()
    }
}

/// Bodies of the messages the broker holds ready (not delivered) for `destination`.
pub fn queued(broker: &Broker, destination: &str) -> Vec<String> {
    broker
        .held(destination)
        .iter()
        .filter(|h| !h.unacked)
        .map(|h| String::from_utf8_lossy(&h.body).into_owned())
        .collect()
}

/// The session, the broker and the clock.
pub struct Sim {
    pub session: Session,
    pub broker: Broker,
    /// What the broker received.
    pub received: Received,
    pub start: Instant,
    pub now: Instant,
    /// Every event the session emitted, in order.
    pub events: Vec<Event>,
    /// Whether the broker can be reached (if not, opening the transport fails).
    pub reachable: bool,
    /// Whether opening a transport completes (if not, it hangs until the connect timeout).
    pub opens: bool,
    /// Whether transports reach a scripted peer instead of the broker: what the session
    /// writes goes to [`heard`](Self::heard), and only [`broker_says`](Self::broker_says)
    /// answers.
    pub scripted: bool,
    /// Bytes the scripted peer received.
    pub heard: Vec<u8>,
    /// Asked on every `OpenTransport`; the argument is the attempt number.
    pub credentials: Box<dyn FnMut(u32) -> Credentials>,
    /// How many times credentials were asked.
    pub credentials_asked: u32,
    /// Whether the session holds an open transport (as the driver sees it).
    pub transport_open: bool,
    /// The broker's connection for the open transport (none with a scripted peer).
    conn: Option<ConnectionId>,
    /// The broker is done with `conn`: close it once its output is taken.
    broker_closing: bool,
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
            broker: self::broker(broker),
            received: Received::default(),
            start,
            now: start,
            events: Vec::new(),
            reachable: true,
            opens: true,
            scripted: false,
            heard: Vec::new(),
            credentials: Box::new(|_| Credentials::login("guest", "guest")),
            credentials_asked: 0,
            transport_open: false,
            conn: None,
            broker_closing: false,
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

    /// Frames the broker received with this command, over all connections.
    pub fn frames(&self, command: Command) -> Vec<&Frame> {
        self.received.frames(command)
    }

    /// Frames the broker received on its `n`th connection (from 1), in order.
    pub fn frames_on(&self, n: usize) -> Vec<&Frame> {
        self.received.frames_on(n)
    }

    /// `CONNECT`s the broker accepted.
    pub fn connections(&self) -> u32 {
        self.received.connections
    }

    /// Bodies of the messages the broker holds ready (not delivered) for `destination`.
    pub fn queued(&self, destination: &str) -> Vec<String> {
        queued(&self.broker, destination)
    }

    /// Sends a message to `destination` as another client would (not pumped).
    pub fn publish(&mut self, destination: &str, body: &str) {
        self.publish_with(destination, body, &[]);
    }

    /// Sends a message with extra headers to `destination` as another client would.
    pub fn publish_with(&mut self, destination: &str, body: &str, headers: &[(&str, &str)]) {
        self.broker
            .publish(destination, headers, body.to_owned())
            .expect("the broker takes the message");
    }

    /// Replaces the broker by another (a restart into another configuration): the link drops,
    /// and what the old one held is gone.
    pub fn replace_broker(&mut self, config: BrokerConfig) {
        self.drop_link();
        self.received.drain(&mut self.broker);
        self.received.conns.iter_mut().for_each(|c| *c = None);
        self.broker = broker(config);
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
                    self.close_transport();
                    self.session.transport_closed(
                        self.now,
                        self.current(),
                        CloseReason::Error("reset".into()),
                    );
                    break;
                }
                match self.conn {
                    Some(conn) => self.broker.handle_input(self.now, conn, &bytes),
                    None => self.heard.extend_from_slice(&bytes),
                }
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
            if let Some(conn) = self.conn {
                if let Some(bytes) = self.broker.poll_transmit(conn) {
                    moved = true;
                    self.session.handle_input(self.now, self.current(), &bytes);
                } else if self.broker_closing {
                    moved = true;
                    self.close_transport();
                    self.session.transport_closed(
                        self.now,
                        self.current(),
                        CloseReason::PeerClosed,
                    );
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
        self.transport_open = false;
        self.broker_closing = false;
        if let Some(conn) = self.conn.take() {
            self.broker.closed(self.now, conn);
        }
        self.received.drain(&mut self.broker);
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
                    if !self.scripted {
                        let conn = self.broker.open(self.now).expect("room for a connection");
                        self.received.conns.push(Some(conn));
                        self.conn = Some(conn);
                    }
                    self.credentials_asked += 1;
                    let creds = (self.credentials)(attempt.number());
                    self.session.transport_connected(self.now, attempt, creds);
                }
            }
            Directive::Close(attempt) if self.transport_open => {
                assert_eq!(Some(attempt), self.attempt, "Close names another attempt");
                self.close_transport();
            }
            Directive::Close(_) => {}
        }
    }

    /// Advances virtual time by `d`, stopping at every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        // Each step handles a deadline that then moves on, or ends the loop.
        for _ in 0..1_000_000 {
            let next = [self.session.poll_timeout(), self.broker.poll_timeout()]
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
                    self.broker.handle_timeout(self.now);
                    self.session.handle_timeout(self.now);
                    if self.check_timers {
                        if let Some(t) = self.session.poll_timeout() {
                            assert!(t > self.now, "timer not in the future after handle_timeout");
                        }
                    }
                    self.pump();
                }
                _ => {
                    self.now = target;
                    self.pump();
                    return;
                }
            }
        }
        panic!("time did not reach its target");
    }

    /// The broker drops the connection (e.g. it restarts).
    pub fn drop_link(&mut self) {
        if self.transport_open {
            self.close_transport();
            self.session
                .transport_closed(self.now, self.current(), CloseReason::PeerClosed);
            self.pump();
        }
    }

    /// The peer sends raw bytes on the open transport (a scripted answer, or bytes no broker
    /// would send).
    pub fn broker_says(&mut self, bytes: &[u8]) {
        assert!(self.transport_open, "no transport to speak on");
        self.session.handle_input(self.now, self.current(), bytes);
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

    /// The handles of the messages delivered, in order.
    pub fn delivered_handles(&self) -> Vec<stompkit_session::MessageHandle> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message { handle, .. } => Some(handle.clone()),
                _ => None,
            })
            .collect()
    }

    /// The `possibly_duplicate` flags of the messages delivered, in order.
    pub fn duplicate_flags(&self) -> Vec<bool> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message {
                    possibly_duplicate, ..
                } => Some(*possibly_duplicate),
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
