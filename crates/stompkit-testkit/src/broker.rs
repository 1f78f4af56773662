//! The sans-IO broker: bytes and `Instant`s in; bytes, closes, events and deadlines out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use stompkit_codec::{Command, Decoder, Encoder, Frame, Item, Version, value};

use crate::{BrokerConfig, Dialect, Error};

/// One client connection of a [`Broker`], from [`Broker::open`] until [`Broker::closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The number behind the id (unique for the broker's lifetime).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Why the broker ended a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent `DISCONNECT`.
    Disconnect,
    /// The broker sent an `ERROR` with this `message` header.
    Error(String),
    /// Nothing came from the client for the negotiated heart-beat interval times
    /// [`BrokerConfig::with_heart_beat_misses`].
    HeartbeatLost,
    /// No `CONNECT` within the connect timeout.
    ConnectTimeout,
    /// The transport closed ([`Broker::closed`] before the broker chose to close).
    PeerClosed,
    /// [`Broker::kill_connections`].
    Killed,
}

/// What happened, for tests and logs (only recorded after [`Broker::record_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// A `CONNECT` was accepted.
    Connected {
        /// The connection.
        conn: ConnectionId,
        /// The negotiated version.
        version: Version,
        /// The `login` header, if any (never the passcode).
        login: Option<String>,
    },
    /// A frame arrived, as decoded: every client frame the broker handled, `CONNECT`
    /// included (before its `Connected`, or the `Closed` of its refusal).
    Frame {
        /// The connection.
        conn: ConnectionId,
        /// The frame.
        frame: Frame,
    },
    /// The connection ended.
    Closed {
        /// The connection.
        conn: ConnectionId,
        /// Why.
        reason: CloseReason,
    },
}

/// Counters since the broker was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Connections open now (including those closing).
    pub connections: usize,
    /// Messages accepted from `SEND` (on commit for transactions) and [`Broker::publish`].
    pub published: u64,
    /// `MESSAGE` frames written, redeliveries included.
    pub delivered: u64,
    /// Of those, redeliveries.
    pub redelivered: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Topic messages a subscriber missed because its queue was full.
    pub dropped: u64,
    /// Client frames and deliveries thrown away by the fault controls
    /// ([`Broker::drop_frames`], [`Broker::drop_deliveries`]).
    pub discarded: u64,
    /// Heart-beats (EOLs between frames) received from clients.
    pub heartbeats_received: u64,
}

/// A message the broker holds, as [`Broker::held`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Held {
    /// The destination it was sent to.
    pub destination: String,
    /// Its body.
    pub body: Bytes,
    /// Whether it was delivered before (and given back).
    pub redelivered: bool,
    /// Whether it is delivered now and waits for an `ACK`.
    pub unacked: bool,
}

#[derive(Debug)]
struct Msg {
    destination: String,
    headers: Vec<(Bytes, Bytes)>,
    body: Bytes,
}

#[derive(Debug, Clone)]
struct Stored {
    msg: Arc<Msg>,
    redelivered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum QueueKey {
    /// A named queue (`/queue/NAME`, `/amq/queue/NAME`).
    Named(String),
    /// The queue of one topic subscription.
    Private(ConnectionId, String),
}

#[derive(Debug, Default)]
struct Queue {
    ready: VecDeque<Stored>,
    consumers: Vec<(ConnectionId, String)>,
    next: usize,
}

/// Where a destination leads.
enum Route {
    Queue(String),
    Topic(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    Auto,
    Client,
    ClientIndividual,
}

#[derive(Debug)]
struct Sub {
    ack: AckMode,
    queue: QueueKey,
    topic: Option<String>,
    prefetch: usize,
    unacked: usize,
}

#[derive(Debug)]
struct Unacked {
    sub: String,
    ack_id: String,
    stored: Stored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    Open,
    Closing,
}

/// Faults asked for by a test, per connection or for the whole broker.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    /// Client frames (after `CONNECT`) still to throw away.
    drop_frames: u64,
    /// `MESSAGE`s still to throw away instead of writing them.
    drop_deliveries: u64,
    /// No heart-beats go out.
    mute_heartbeats: bool,
    /// No `RECEIPT`s go out.
    withhold_receipts: bool,
}

#[derive(Debug)]
struct Conn {
    id: ConnectionId,
    faults: Faults,
    /// Listed in `Broker::ready` (its output is not empty).
    ready: bool,
    state: State,
    version: Version,
    decoder: Decoder,
    encoder: Encoder,
    inbuf: BytesMut,
    out: BytesMut,
    session: String,
    subs: HashMap<String, Sub>,
    unacked: BTreeMap<u64, Unacked>,
    ack_ids: HashMap<String, u64>,
    deliveries: u64,
    txs: HashMap<String, Vec<Frame>>,
    opened: Instant,
    last_in: Instant,
    last_out: Instant,
    send_every: Option<Duration>,
    expect_every: Option<Duration>,
    timer: Option<Instant>,
}

/// A client error: answered with `ERROR` (`message` header and body), then a close.
struct Refusal {
    message: &'static str,
    body: String,
    /// Whether the `ERROR` names the refused frame's `receipt`.
    names_receipt: bool,
}

fn refuse<T>(message: &'static str, body: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        message,
        body: body.into(),
        names_receipt: true,
    })
}

/// How long a connection may stay open without `CONNECT`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A STOMP broker as a state machine: the caller owns the sockets and the clock.
///
/// Per connection: [`open`](Self::open) it, feed what the client sent to
/// [`handle_input`](Self::handle_input), write what [`poll_transmit`](Self::poll_transmit)
/// returns, close the transport when [`poll_close`](Self::poll_close) names it (after
/// writing its last bytes) and report the end with [`closed`](Self::closed). Call
/// [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout) is due.
/// Time only moves through the `now` arguments, so tests can run in virtual time.
///
/// ```
/// use std::time::Instant;
/// use stompkit_testkit::{Broker, BrokerConfig};
///
/// let now = Instant::now();
/// let mut broker = Broker::new(BrokerConfig::default())?;
/// let conn = broker.open(now)?;
/// broker.handle_input(now, conn, b"CONNECT\naccept-version:1.2\nhost:/\n\n\0");
/// let out = broker.poll_transmit(conn).expect("CONNECTED");
/// assert!(out.starts_with(b"CONNECTED\n"));
/// # Ok::<(), stompkit_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    now: Option<Instant>,
    conns: HashMap<ConnectionId, Conn>,
    next_conn: u64,
    queues: HashMap<QueueKey, Queue>,
    topics: HashMap<String, Vec<(ConnectionId, String)>>,
    timers: BTreeSet<(Instant, ConnectionId)>,
    closing: VecDeque<ConnectionId>,
    ready: VecDeque<ConnectionId>,
    events: Option<VecDeque<BrokerEvent>>,
    stats: BrokerStats,
    /// Faults for any connection (counters taken by whichever connection comes first).
    faults: Faults,
}

impl Broker {
    /// A broker with no connections and empty queues.
    pub fn new(config: BrokerConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            now: None,
            conns: HashMap::new(),
            next_conn: 1,
            queues: HashMap::new(),
            topics: HashMap::new(),
            timers: BTreeSet::new(),
            closing: VecDeque::new(),
            ready: VecDeque::new(),
            events: None,
            stats: BrokerStats::default(),
            faults: Faults::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Starts recording [`BrokerEvent`]s for [`poll_event`](Self::poll_event). Off by
    /// default, since an event queue nobody reads would grow without end.
    pub fn record_events(&mut self) {
        self.events.get_or_insert_with(VecDeque::new);
    }

    /// The next recorded event.
    pub fn poll_event(&mut self) -> Option<BrokerEvent> {
        self.events.as_mut()?.pop_front()
    }

    /// Counters.
    pub fn stats(&self) -> BrokerStats {
        BrokerStats {
            connections: self.conns.len(),
            ..self.stats.clone()
        }
    }

    /// A new connection, waiting for `CONNECT` (closed after ten seconds without one).
    pub fn open(&mut self, now: Instant) -> Result<ConnectionId, Error> {
        let max = self.config.limits.max_connections;
        if self.conns.len() >= max {
            return Err(Error::TooManyConnections { max });
        }
        self.now = Some(now);
        let id = ConnectionId(self.next_conn);
        self.next_conn += 1;
        let limits = self.config.limits.frame;
        let conn = Conn {
            id,
            faults: Faults::default(),
            ready: false,
            state: State::AwaitingConnect,
            version: Version::V1_2,
            // 1.2 until negotiated: it is the only version that allows CRLF, and CONNECT
            // headers are never escaped in any version.
            decoder: Decoder::with_limits(Version::V1_2, limits),
            encoder: Encoder::new(Version::V1_2),
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            session: format!("session-{:08x}", id.0),
            subs: HashMap::new(),
            unacked: BTreeMap::new(),
            ack_ids: HashMap::new(),
            deliveries: 0,
            txs: HashMap::new(),
            opened: now,
            last_in: now,
            last_out: now,
            send_every: None,
            expect_every: None,
            timer: None,
        };
        self.conns.insert(id, conn);
        self.schedule(id);
        tracing::debug!(%id, "connection opened");
        Ok(id)
    }

    /// Bytes from the client. Bytes for a closing or unknown connection are ignored.
    pub fn handle_input(&mut self, now: Instant, id: ConnectionId, bytes: &[u8]) {
        self.now = Some(now);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.state == State::Closing {
            return;
        }
        conn.last_in = now;
        conn.inbuf.extend_from_slice(bytes);
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.state == State::Closing {
                conn.inbuf.clear();
                return;
            }
            match conn.decoder.decode(&mut conn.inbuf) {
                Ok(None) => return,
                Ok(Some(Item::Heartbeat)) => self.stats.heartbeats_received += 1,
                Ok(Some(Item::Frame(frame))) => {
                    if !self.take_dropped_frame(id) {
                        self.handle_frame(now, id, frame);
                    }
                }
                Err(e) => {
                    let message = match e {
                        stompkit_codec::Error::LimitExceeded { .. } => "Frame too large",
                        _ => "Malformed frame",
                    };
                    tracing::debug!(%id, error = %e, "malformed input");
                    self.refuse(id, message, &format!("{e}\n"), None);
                    return;
                }
            }
        }
    }

    /// The next bytes for the client, all that are waiting in one piece.
    pub fn poll_transmit(&mut self, id: ConnectionId) -> Option<Bytes> {
        let conn = self.conns.get_mut(&id)?;
        if conn.out.is_empty() {
            return None;
        }
        let bytes = conn.out.split().freeze();
        conn.ready = false;
        // Room in the output: messages held back for this connection can flow again.
        if conn.state == State::Open {
            let queues: Vec<QueueKey> = conn.subs.values().map(|s| s.queue.clone()).collect();
            for key in queues {
                self.pump(&key);
            }
        }
        Some(bytes)
    }

    /// A connection that has bytes for [`poll_transmit`](Self::poll_transmit), so drivers
    /// need not ask every connection. Each is named once until its output is taken.
    pub fn poll_output(&mut self) -> Option<ConnectionId> {
        while let Some(id) = self.ready.pop_front() {
            if self.conns.get(&id).is_some_and(|c| c.ready) {
                return Some(id);
            }
        }
        None
    }

    /// A connection the broker is done with: write what
    /// [`poll_transmit`](Self::poll_transmit) still returns for it, close its transport, then
    /// call [`closed`](Self::closed).
    pub fn poll_close(&mut self) -> Option<ConnectionId> {
        while let Some(id) = self.closing.pop_front() {
            if self.conns.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    /// The transport of `id` is closed: its subscriptions end (unacknowledged messages go back
    /// to their queues, marked redelivered), its transactions are dropped and its id is
    /// forgotten.
    pub fn closed(&mut self, now: Instant, id: ConnectionId) {
        self.now = Some(now);
        if self
            .conns
            .get(&id)
            .is_some_and(|c| c.state != State::Closing)
        {
            self.close(id, CloseReason::PeerClosed);
        }
        if let Some(conn) = self.conns.remove(&id) {
            if let Some(at) = conn.timer {
                self.timers.remove(&(at, id));
            }
            tracing::debug!(%id, "connection closed");
        }
    }

    /// Ends every connection at once, as a broker restart would: their unacknowledged
    /// messages go back to their queues; the queues and their messages stay.
    pub fn kill_connections(&mut self, now: Instant) {
        self.now = Some(now);
        let ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        for id in ids {
            if self
                .conns
                .get(&id)
                .is_some_and(|c| c.state != State::Closing)
            {
                self.close(id, CloseReason::Killed);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do next (a heart-beat
    /// to send or to miss).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Sends the heart-beats that are due and closes connections whose client went silent.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            let misses = self.config.heart_beat_misses;
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            conn.timer = None;
            if conn.state == State::AwaitingConnect && now >= conn.opened + CONNECT_TIMEOUT {
                self.close(id, CloseReason::ConnectTimeout);
                continue;
            }
            if let Some(due) = conn
                .expect_every
                .and_then(|e| deadline(conn.last_in, e, misses))
            {
                if now >= due {
                    tracing::debug!(%id, "client heart-beats lost");
                    self.close(id, CloseReason::HeartbeatLost);
                    continue;
                }
            }
            let muted = self.faults.mute_heartbeats || conn.faults.mute_heartbeats;
            if let Some(due) = conn
                .send_every
                .filter(|_| !muted)
                .and_then(|e| deadline(conn.last_out, e, 1))
            {
                if now >= due {
                    conn.out.extend_from_slice(b"\n");
                    conn.last_out = now;
                    mark_ready(conn, &mut self.ready);
                }
            }
            self.schedule(id);
        }
    }

    /// The connections open now, in the order they were opened (closing ones included).
    pub fn connections(&self) -> Vec<ConnectionId> {
        let mut ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        ids.sort();
        ids
    }

    /// Fault control: throws away the next `n` frames clients send after their `CONNECT`,
    /// from `conn` only or (`None`) from any connection, as if lost on the way. Nothing
    /// answers them (no `RECEIPT`, no `ERROR`). Replaces an earlier count.
    pub fn drop_frames(&mut self, conn: Option<ConnectionId>, n: u64) -> Result<(), Error> {
        self.faults_of(conn)?.drop_frames = n;
        Ok(())
    }

    /// Fault control: the next `n` `MESSAGE`s for `conn` (or, with `None`, for any
    /// connection) are not written, though the broker counts them as delivered: an `auto`
    /// message is lost; a `client` one waits for an `ACK` that cannot come and is delivered
    /// again when its subscription ends. Replaces an earlier count.
    pub fn drop_deliveries(&mut self, conn: Option<ConnectionId>, n: u64) -> Result<(), Error> {
        self.faults_of(conn)?.drop_deliveries = n;
        Ok(())
    }

    /// Fault control: stops (`true`) or resumes (`false`) sending heart-beats to `conn`, or
    /// with `None` to every connection, those opened later included. Resuming `None` also
    /// resumes every connection muted on its own. Loss detection of the client's heart-beats
    /// goes on.
    pub fn mute_heartbeats(
        &mut self,
        conn: Option<ConnectionId>,
        muted: bool,
    ) -> Result<(), Error> {
        self.faults_of(conn)?.mute_heartbeats = muted;
        let ids = match conn {
            Some(id) => vec![id],
            None => self.connections(),
        };
        for id in ids {
            if conn.is_none() && !muted {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.faults.mute_heartbeats = false;
                }
            }
            self.schedule(id);
        }
        Ok(())
    }

    /// Fault control: stops (`true`) or resumes (`false`) answering `receipt` headers on
    /// `conn`, or with `None` on every connection, those opened later included, as a broker
    /// that loses its receipts (`DISCONNECT`'s too; the connection still closes). An `ERROR`
    /// still names the receipt of the frame it refuses. Resuming `None` also resumes every
    /// connection withheld on its own.
    pub fn withhold_receipts(
        &mut self,
        conn: Option<ConnectionId>,
        withheld: bool,
    ) -> Result<(), Error> {
        self.faults_of(conn)?.withhold_receipts = withheld;
        if conn.is_none() && !withheld {
            for c in self.conns.values_mut() {
                c.faults.withhold_receipts = false;
            }
        }
        Ok(())
    }

    /// Fault control: sends `conn` an `ERROR` with this `message` header and body, then
    /// closes it, as the broker does for a client's mistake.
    pub fn push_error(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        message: &str,
        body: &str,
    ) -> Result<(), Error> {
        if !self
            .conns
            .get(&conn)
            .is_some_and(|c| c.state != State::Closing)
        {
            return Err(Error::UnknownConnection(conn));
        }
        self.now = Some(now);
        self.refuse(conn, message, body, None);
        Ok(())
    }

    fn faults_of(&mut self, conn: Option<ConnectionId>) -> Result<&mut Faults, Error> {
        match conn {
            None => Ok(&mut self.faults),
            Some(id) => self
                .conns
                .get_mut(&id)
                .map(|c| &mut c.faults)
                .ok_or(Error::UnknownConnection(id)),
        }
    }

    /// Whether a frame just decoded on `id` is to be thrown away ([`Self::drop_frames`]).
    fn take_dropped_frame(&mut self, id: ConnectionId) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        if conn.state != State::Open {
            return false;
        }
        let counter = if conn.faults.drop_frames > 0 {
            &mut conn.faults.drop_frames
        } else if self.faults.drop_frames > 0 {
            &mut self.faults.drop_frames
        } else {
            return false;
        };
        *counter -= 1;
        self.stats.discarded += 1;
        tracing::debug!(%id, "client frame dropped (fault control)");
        true
    }

    /// Sends a message to `destination` as a client's `SEND` would, without a connection.
    pub fn publish(
        &mut self,
        destination: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let route = self
            .resolve(destination)
            .map_err(|r| Error::InvalidDestination {
                destination: destination.to_owned(),
                reason: r.body,
            })?;
        let msg = Msg {
            destination: destination.to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        Bytes::copy_from_slice(n.as_bytes()),
                        Bytes::copy_from_slice(v.as_bytes()),
                    )
                })
                .collect(),
            body: body.into(),
        };
        self.route(route, msg).map_err(|r| Error::Full(r.body))
    }

    /// Every message the broker holds for `destination`'s queue: ready ones in order, then
    /// those delivered and not acknowledged. Empty for topics and unknown queues.
    pub fn held(&self, destination: &str) -> Vec<Held> {
        let Ok(Route::Queue(name)) = self.resolve(destination) else {
            return Vec::new();
        };
        let key = QueueKey::Named(name);
        let held = |stored: &Stored, unacked| Held {
            destination: stored.msg.destination.clone(),
            body: stored.msg.body.clone(),
            redelivered: stored.redelivered,
            unacked,
        };
        let mut out: Vec<Held> = self
            .queues
            .get(&key)
            .map(|q| q.ready.iter().map(|s| held(s, false)).collect())
            .unwrap_or_default();
        let mut ids: Vec<&ConnectionId> = self.conns.keys().collect();
        ids.sort();
        for id in ids {
            let conn = &self.conns[id];
            for u in conn.unacked.values() {
                if conn.subs.get(&u.sub).is_some_and(|s| s.queue == key) {
                    out.push(held(&u.stored, true));
                }
            }
        }
        out
    }

    /// Records an event when recording is on.
    fn event(&mut self, event: BrokerEvent) {
        if let Some(events) = &mut self.events {
            events.push_back(event);
        }
    }

    /// Puts the connection's timer at its earliest deadline. Deadlines only move later as
    /// bytes come and go, so an entry may fire early (and is then moved) but never late.
    fn schedule(&mut self, id: ConnectionId) {
        let misses = self.config.heart_beat_misses;
        let all_muted = self.faults.mute_heartbeats;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // A muted connection must not keep a send deadline, or it would fire forever.
        let muted = all_muted || conn.faults.mute_heartbeats;
        let next = match conn.state {
            State::AwaitingConnect => conn.opened.checked_add(CONNECT_TIMEOUT),
            State::Open => {
                let expect = conn
                    .expect_every
                    .and_then(|e| deadline(conn.last_in, e, misses));
                let send = conn
                    .send_every
                    .filter(|_| !muted)
                    .and_then(|e| deadline(conn.last_out, e, 1));
                match (expect, send) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Closing => None,
        };
        if conn.timer == next {
            return;
        }
        if let Some(old) = conn.timer.take() {
            self.timers.remove(&(old, id));
        }
        if let Some(at) = next {
            conn.timer = Some(at);
            self.timers.insert((at, id));
        }
    }

    fn handle_frame(&mut self, now: Instant, id: ConnectionId, frame: Frame) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let state = conn.state;
        let command = frame.command();
        let receipt = frame.header("receipt").map(Bytes::copy_from_slice);
        let result = match (state, command) {
            (State::AwaitingConnect, Command::Connect | Command::Stomp) => {
                if self.events.is_some() {
                    self.event(BrokerEvent::Frame {
                        conn: id,
                        frame: frame.clone(),
                    });
                }
                return self.on_connect(now, id, &frame);
            }
            (State::AwaitingConnect, _) => {
                refuse("Illegal command", "You must log in using CONNECT first\n")
            }
            (_, Command::Connect | Command::Stomp) => {
                refuse("Illegal command", "Already connected\n")
            }
            (_, Command::Send) => self.on_send(id, frame.clone(), false),
            (_, Command::Subscribe) => self.on_subscribe(id, &frame),
            (_, Command::Unsubscribe) => self.on_unsubscribe(id, &frame),
            (_, Command::Ack) => self.on_ack(id, frame.clone(), false, true),
            (_, Command::Nack) => self.on_ack(id, frame.clone(), false, false),
            (_, Command::Begin) => self.on_begin(id, &frame),
            (_, Command::Commit) => self.on_commit(id, &frame),
            (_, Command::Abort) => self.on_abort(id, &frame),
            (_, Command::Disconnect) => Ok(()),
            (_, other) => refuse(
                "Illegal command",
                format!("{other} is sent by servers, not clients\n"),
            ),
        };
        if self.events.is_some() {
            self.event(BrokerEvent::Frame { conn: id, frame });
        }
        if let Err(r) = result {
            let receipt = receipt.filter(|_| r.names_receipt);
            self.refuse(id, r.message, &r.body, receipt.as_deref());
            return;
        }
        let withheld = self.faults.withhold_receipts
            || self
                .conns
                .get(&id)
                .is_some_and(|c| c.faults.withhold_receipts);
        let receipts = !withheld
            && match self.config.dialect {
                Dialect::RabbitMq => true,
                Dialect::SpringSimple => command == Command::Disconnect,
            };
        if let (true, Some(receipt)) = (receipts, receipt) {
            let dialect = self.config.dialect;
            if let Some(conn) = self.conns.get_mut(&id) {
                emit(
                    conn,
                    &mut self.ready,
                    dialect,
                    now,
                    Command::Receipt,
                    &[(b"receipt-id", &receipt)],
                    b"",
                );
            }
        }
        if command == Command::Disconnect {
            self.close(id, CloseReason::Disconnect);
        }
    }

    fn on_connect(&mut self, now: Instant, id: ConnectionId, frame: &Frame) {
        match self.negotiate(frame) {
            Err(r) => self.refuse(id, r.message, &r.body, None),
            Ok((version, send, expect)) => {
                let login = frame.header_str("login").map(str::to_owned);
                let dialect = self.config.dialect;
                let send_heartbeats = self.config.send_heartbeats;
                let server = self.config.server.clone();
                let Some(conn) = self.conns.get_mut(&id) else {
                    return;
                };
                conn.state = State::Open;
                conn.version = version;
                conn.decoder.set_version(version);
                conn.encoder.set_version(version);
                let ms = |d: Duration| d.as_millis().to_string();
                let heart_beat = format!("{},{}", ms(send), ms(expect));
                let session = conn.session.clone();
                let mut headers: Vec<(&[u8], &[u8])> = Vec::with_capacity(4);
                if dialect == Dialect::RabbitMq {
                    headers.push((b"server", server.as_bytes()));
                    headers.push((b"session", session.as_bytes()));
                }
                headers.push((b"heart-beat", heart_beat.as_bytes()));
                headers.push((b"version", version.as_str().as_bytes()));
                emit(
                    conn,
                    &mut self.ready,
                    dialect,
                    now,
                    Command::Connected,
                    &headers,
                    b"",
                );
                conn.send_every = (send_heartbeats && !send.is_zero()).then_some(send);
                conn.expect_every = (!expect.is_zero()).then_some(expect);
                tracing::debug!(%id, %version, heart_beat, "connected");
                self.schedule(id);
                self.event(BrokerEvent::Connected {
                    conn: id,
                    version,
                    login,
                });
            }
        }
    }

    /// The version and the heart-beat intervals (broker to client, client to broker).
    fn negotiate(&self, frame: &Frame) -> Result<(Version, Duration, Duration), Refusal> {
        let offered = match frame.header("accept-version") {
            None => vec![Version::V1_0],
            Some(v) => match value::accept_version(v) {
                Ok(v) => v,
                Err(e) => return refuse("Invalid header", format!("{e}\n")),
            },
        };
        let Some(version) = offered
            .iter()
            .copied()
            .filter(|v| self.config.versions.contains(v))
            .max()
        else {
            return refuse(
                "Version mismatch",
                format!("Supported protocol versions are {}\n", self.versions()),
            );
        };
        if !self.config.users.is_empty() {
            let login = frame.header_str("login").unwrap_or("");
            let ok = frame
                .header("passcode")
                .zip(self.config.users.get(login))
                .is_some_and(|(given, want)| given == want.as_bytes());
            if !ok {
                return refuse(
                    "Bad CONNECT",
                    format!("Access refused for user '{login}'\n"),
                );
            }
        }
        if self.config.dialect == Dialect::RabbitMq {
            let host = frame.header_str("host").unwrap_or("/");
            if !self.config.vhosts.iter().any(|v| v == host) {
                return refuse(
                    "Bad CONNECT",
                    format!("Virtual host '{host}' access denied"),
                );
            }
        }
        let (mut send, mut expect) = (Duration::ZERO, Duration::ZERO);
        if self.config.heart_beat_versions.contains(&version) {
            if let Some(hb) = frame.header("heart-beat") {
                let (cx, cy) = match value::heart_beat(hb) {
                    Ok(v) => v,
                    Err(e) => return refuse("Invalid header", format!("{e}\n")),
                };
                let floor = self.config.heart_beat_floor;
                let raise = |ms: u64| {
                    if ms == 0 {
                        Duration::ZERO
                    } else {
                        Duration::from_millis(ms).max(floor)
                    }
                };
                // The client sends every cx and wants ours every cy.
                send = raise(cy);
                expect = raise(cx);
            }
        }
        Ok((version, send, expect))
    }

    /// The supported versions, as the `version` header of `ERROR` lists them.
    fn versions(&self) -> String {
        let mut versions = self.config.versions.clone();
        versions.sort();
        versions
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn resolve(&self, destination: &str) -> Result<Route, Refusal> {
        if self.config.dialect == Dialect::SpringSimple {
            return Ok(Route::Topic(destination.to_owned()));
        }
        let named = |rest: &str| (!rest.is_empty()).then(|| rest.to_owned());
        if let Some(name) = destination
            .strip_prefix("/queue/")
            .or_else(|| destination.strip_prefix("/amq/queue/"))
            .and_then(named)
        {
            return Ok(Route::Queue(name));
        }
        if let Some(key) = destination.strip_prefix("/topic/").and_then(named) {
            return Ok(Route::Topic(format!("amq.topic/{key}")));
        }
        if let Some(rest) = destination.strip_prefix("/exchange/").and_then(named) {
            let (exchange, key) = rest.split_once('/').unwrap_or((&rest, ""));
            if !self.config.exchanges.iter().any(|e| e == exchange) {
                // RabbitMQ reports it when the channel closes, not as the frame's answer: the
                // ERROR names no receipt.
                return Err(Refusal {
                    message: "not_found",
                    body: format!("NOT_FOUND - no exchange '{exchange}' in vhost '/'"),
                    names_receipt: false,
                });
            }
            return Ok(Route::Topic(format!("{exchange}/{key}")));
        }
        refuse(
            "Unknown destination",
            format!(
                "'{destination}' is not a valid destination.\nValid destination types are: /exchange, /topic or /queue.\n"
            ),
        )
    }

    fn on_send(&mut self, id: ConnectionId, frame: Frame, in_tx: bool) -> Result<(), Refusal> {
        let Some(destination) = frame.header_str("destination").map(str::to_owned) else {
            return refuse(
                "Missing destination",
                "\"SEND\" must include a 'destination' header\n",
            );
        };
        let route = self.resolve(&destination)?;
        if !in_tx {
            if let Some(tx) = frame.header_str("transaction") {
                return self.add_to_tx(id, tx.to_owned(), frame);
            }
        }
        let headers = frame
            .headers()
            .filter(|(name, _)| {
                !matches!(
                    *name,
                    b"destination"
                        | b"content-length"
                        | b"message-id"
                        | b"subscription"
                        | b"ack"
                        | b"redelivered"
                )
            })
            .map(|(n, v)| (Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)))
            .collect();
        let msg = Msg {
            destination,
            headers,
            body: frame.into_body(),
        };
        self.route(route, msg)
    }

    fn route(&mut self, route: Route, msg: Msg) -> Result<(), Refusal> {
        let max = self.config.limits.max_queue_messages;
        let stored = Stored {
            msg: Arc::new(msg),
            redelivered: false,
        };
        match route {
            Route::Queue(name) => {
                let key = QueueKey::Named(name);
                self.ensure_queue(&key)?;
                let queue = self.queues.get_mut(&key).expect("ensured");
                if queue.ready.len() >= max {
                    return refuse(
                        "Queue full",
                        format!(
                            "{} messages are waiting; raise BrokerLimits::max_queue_messages\n",
                            queue.ready.len()
                        ),
                    );
                }
                queue.ready.push_back(stored);
                self.stats.published += 1;
                self.pump(&key);
            }
            Route::Topic(topic) => {
                self.stats.published += 1;
                let subscribers = self.topics.get(&topic).cloned().unwrap_or_default();
                for (conn, sub) in subscribers {
                    let key = QueueKey::Private(conn, sub);
                    let Some(queue) = self.queues.get_mut(&key) else {
                        continue;
                    };
                    if queue.ready.len() >= max {
                        self.stats.dropped += 1;
                        continue;
                    }
                    queue.ready.push_back(stored.clone());
                    self.pump(&key);
                }
            }
        }
        Ok(())
    }

    fn ensure_queue(&mut self, key: &QueueKey) -> Result<(), Refusal> {
        if self.queues.contains_key(key) {
            return Ok(());
        }
        if self.queues.len() >= self.config.limits.max_queues {
            return refuse(
                "Too many queues",
                format!(
                    "{} queues exist; raise BrokerLimits::max_queues\n",
                    self.queues.len()
                ),
            );
        }
        self.queues.insert(key.clone(), Queue::default());
        Ok(())
    }

    /// Delivers ready messages of a queue to its consumers in turn, while one can take them.
    fn pump(&mut self, key: &QueueKey) {
        let dialect = self.config.dialect;
        let max_out = self.config.limits.max_output_bytes;
        let Some(now) = self.now else {
            return;
        };
        loop {
            let Some(queue) = self.queues.get_mut(key) else {
                return;
            };
            if queue.ready.is_empty() || queue.consumers.is_empty() {
                return;
            }
            let n = queue.consumers.len();
            let chosen = (0..n).map(|i| (queue.next + i) % n).find(|&i| {
                let (c, s) = &queue.consumers[i];
                self.conns.get(c).is_some_and(|conn| {
                    conn.state == State::Open
                        && conn.out.len() < max_out
                        && conn
                            .subs
                            .get(s)
                            .is_some_and(|s| s.ack == AckMode::Auto || s.unacked < s.prefetch)
                })
            });
            let Some(i) = chosen else {
                return;
            };
            queue.next = (i + 1) % n;
            let (c, s) = queue.consumers[i].clone();
            let Some(stored) = queue.ready.pop_front() else {
                return;
            };
            let conn = self.conns.get_mut(&c).expect("chosen above");
            deliver(
                conn,
                &mut self.ready,
                dialect,
                now,
                &s,
                stored,
                &mut self.stats,
                &mut self.faults.drop_deliveries,
            );
        }
    }

    fn on_subscribe(&mut self, id: ConnectionId, frame: &Frame) -> Result<(), Refusal> {
        let Some(destination) = frame.header_str("destination").map(str::to_owned) else {
            return refuse(
                "Missing destination",
                "\"SUBSCRIBE\" must include a 'destination' header\n",
            );
        };
        let conn = &self.conns[&id];
        let sub_id = match frame.header_str("id") {
            Some(s) => s.to_owned(),
            None if conn.version == Version::V1_0 => destination.clone(),
            None => {
                return refuse(
                    "Missing header",
                    "\"SUBSCRIBE\" must include an 'id' header\n",
                );
            }
        };
        if conn.subs.contains_key(&sub_id) {
            return refuse(
                "Duplicated subscription identifier",
                format!("A subscription identified by '{sub_id}' already exists.\n"),
            );
        }
        if conn.subs.len() >= self.config.limits.max_subscriptions {
            return refuse(
                "Too many subscriptions",
                format!(
                    "{} subscriptions on this connection; raise BrokerLimits::max_subscriptions\n",
                    conn.subs.len()
                ),
            );
        }
        let ack = match frame.header("ack") {
            _ if self.config.dialect == Dialect::SpringSimple => AckMode::Auto,
            None | Some(b"auto") => AckMode::Auto,
            Some(b"client") => AckMode::Client,
            Some(b"client-individual") if conn.version != Version::V1_0 => {
                AckMode::ClientIndividual
            }
            Some(other) => {
                return refuse(
                    "Invalid header",
                    format!("invalid ack mode {:?}\n", String::from_utf8_lossy(other)),
                );
            }
        };
        let max_unacked = self.config.limits.max_unacked;
        let prefetch = match frame.header_str("prefetch-count").map(str::parse::<usize>) {
            None | Some(Ok(0)) => max_unacked,
            Some(Ok(n)) => n.min(max_unacked),
            Some(Err(_)) => return refuse("Invalid header", "invalid prefetch-count\n"),
        };
        let (key, topic) = match self.resolve(&destination)? {
            Route::Queue(name) => (QueueKey::Named(name), None),
            Route::Topic(topic) => (QueueKey::Private(id, sub_id.clone()), Some(topic)),
        };
        self.ensure_queue(&key)?;
        self.queues
            .get_mut(&key)
            .expect("ensured")
            .consumers
            .push((id, sub_id.clone()));
        if let Some(topic) = &topic {
            self.topics
                .entry(topic.clone())
                .or_default()
                .push((id, sub_id.clone()));
        }
        let conn = self.conns.get_mut(&id).expect("checked above");
        conn.subs.insert(
            sub_id,
            Sub {
                ack,
                queue: key.clone(),
                topic,
                prefetch,
                unacked: 0,
            },
        );
        self.pump(&key);
        Ok(())
    }

    fn on_unsubscribe(&mut self, id: ConnectionId, frame: &Frame) -> Result<(), Refusal> {
        let conn = &self.conns[&id];
        let sub_id = match frame.header_str("id") {
            Some(s) => s,
            None if conn.version == Version::V1_0 => {
                frame.header_str("destination").unwrap_or_default()
            }
            None => {
                return refuse(
                    "Missing header",
                    "\"UNSUBSCRIBE\" must include an 'id' header\n",
                );
            }
        };
        if !conn.subs.contains_key(sub_id) {
            return refuse(
                "Invalid subscription",
                format!("no subscription '{sub_id}' on this connection\n"),
            );
        }
        let sub_id = sub_id.to_owned();
        self.detach(id, &sub_id);
        Ok(())
    }

    /// Ends a subscription: its unacknowledged messages go back to the front of a named queue
    /// (marked redelivered); a topic subscription's queue goes away with it.
    fn detach(&mut self, id: ConnectionId, sub_id: &str) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(sub) = conn.subs.remove(sub_id) else {
            return;
        };
        let seqs: Vec<u64> = conn
            .unacked
            .iter()
            .filter(|(_, u)| u.sub == sub_id)
            .map(|(seq, _)| *seq)
            .collect();
        let mut back = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(u) = conn.unacked.remove(&seq) {
                conn.ack_ids.remove(&u.ack_id);
                back.push(u.stored);
            }
        }
        if let Some(topic) = &sub.topic {
            if let Some(subs) = self.topics.get_mut(topic) {
                subs.retain(|(c, s)| !(*c == id && s == sub_id));
                if subs.is_empty() {
                    self.topics.remove(topic);
                }
            }
            self.queues.remove(&sub.queue);
            return;
        }
        if let Some(queue) = self.queues.get_mut(&sub.queue) {
            queue.consumers.retain(|(c, s)| !(*c == id && s == sub_id));
            queue.next = queue.next.checked_rem(queue.consumers.len()).unwrap_or(0);
            for mut stored in back.into_iter().rev() {
                stored.redelivered = true;
                queue.ready.push_front(stored);
            }
        }
        self.pump(&sub.queue);
    }

    fn add_to_tx(&mut self, id: ConnectionId, tx: String, frame: Frame) -> Result<(), Refusal> {
        let max = self.config.limits.max_transaction_frames;
        let conn = self.conns.get_mut(&id).expect("open connection");
        let Some(frames) = conn.txs.get_mut(&tx) else {
            return refuse(
                "Bad transaction",
                format!("Invalid transaction identifier: {tx}\n"),
            );
        };
        if frames.len() >= max {
            return refuse(
                "Transaction too large",
                format!(
                    "{max} frames in transaction {tx}; raise BrokerLimits::max_transaction_frames\n"
                ),
            );
        }
        frames.push(frame);
        Ok(())
    }

    fn on_ack(
        &mut self,
        id: ConnectionId,
        frame: Frame,
        in_tx: bool,
        ack: bool,
    ) -> Result<(), Refusal> {
        let command = if ack { "ACK" } else { "NACK" };
        let conn = &self.conns[&id];
        if !ack && conn.version == Version::V1_0 {
            return refuse("Illegal command", "NACK is not part of STOMP 1.0\n");
        }
        let name = if conn.version == Version::V1_2 {
            "id"
        } else {
            "message-id"
        };
        let Some(ack_id) = frame.header_str(name).map(str::to_owned) else {
            return refuse(
                "Invalid header",
                format!("\"{command}\" must include a valid \"{name}\" header\n"),
            );
        };
        if !in_tx {
            if let Some(tx) = frame.header_str("transaction") {
                return self.add_to_tx(id, tx.to_owned(), frame);
            }
        }
        if self.config.dialect == Dialect::SpringSimple {
            return Ok(());
        }
        let conn = self.conns.get_mut(&id).expect("open connection");
        let Some(&seq) = conn.ack_ids.get(&ack_id) else {
            return refuse(
                "Invalid header",
                format!("\"{command}\" must include a valid \"{name}\" header\n"),
            );
        };
        let sub_id = conn.unacked[&seq].sub.clone();
        let Some(sub) = conn.subs.get(&sub_id) else {
            return refuse("Invalid subscription", "the subscription has ended\n");
        };
        let (mode, key) = (sub.ack, sub.queue.clone());
        let seqs: Vec<u64> = if mode == AckMode::Client {
            conn.unacked
                .range(..=seq)
                .filter(|(_, u)| u.sub == sub_id)
                .map(|(s, _)| *s)
                .collect()
        } else {
            vec![seq]
        };
        let mut back = Vec::new();
        for s in &seqs {
            if let Some(u) = conn.unacked.remove(s) {
                conn.ack_ids.remove(&u.ack_id);
                back.push(u.stored);
            }
        }
        if let Some(sub) = conn.subs.get_mut(&sub_id) {
            sub.unacked -= back.len();
        }
        if ack {
            self.stats.acked += back.len() as u64;
        } else if let Some(queue) = self.queues.get_mut(&key) {
            for mut stored in back.into_iter().rev() {
                stored.redelivered = true;
                queue.ready.push_front(stored);
            }
        }
        self.pump(&key);
        Ok(())
    }

    fn tx_name(frame: &Frame) -> Result<String, Refusal> {
        match frame.header_str("transaction") {
            Some(tx) => Ok(tx.to_owned()),
            None => refuse(
                "Missing transaction",
                format!(
                    "\"{}\" must include a 'transaction' header\n",
                    frame.command()
                ),
            ),
        }
    }

    fn on_begin(&mut self, id: ConnectionId, frame: &Frame) -> Result<(), Refusal> {
        let tx = Self::tx_name(frame)?;
        let max = self.config.limits.max_transactions;
        let conn = self.conns.get_mut(&id).expect("open connection");
        if conn.txs.contains_key(&tx) {
            return refuse(
                "Bad transaction",
                format!("Transaction {tx} already active\n"),
            );
        }
        if conn.txs.len() >= max {
            return refuse(
                "Too many transactions",
                format!("{max} open transactions; raise BrokerLimits::max_transactions\n"),
            );
        }
        conn.txs.insert(tx, Vec::new());
        Ok(())
    }

    fn on_commit(&mut self, id: ConnectionId, frame: &Frame) -> Result<(), Refusal> {
        let tx = Self::tx_name(frame)?;
        let conn = self.conns.get_mut(&id).expect("open connection");
        let Some(frames) = conn.txs.remove(&tx) else {
            return refuse(
                "Bad transaction",
                format!("Invalid transaction identifier: {tx}\n"),
            );
        };
        for frame in frames {
            match frame.command() {
                Command::Send => self.on_send(id, frame, true)?,
                Command::Ack => self.on_ack(id, frame, true, true)?,
                _ => self.on_ack(id, frame, true, false)?,
            }
        }
        Ok(())
    }

    fn on_abort(&mut self, id: ConnectionId, frame: &Frame) -> Result<(), Refusal> {
        let tx = Self::tx_name(frame)?;
        let conn = self.conns.get_mut(&id).expect("open connection");
        if conn.txs.remove(&tx).is_none() {
            return refuse(
                "Bad transaction",
                format!("Invalid transaction identifier: {tx}\n"),
            );
        }
        Ok(())
    }

    /// Sends `ERROR` and closes.
    fn refuse(&mut self, id: ConnectionId, message: &str, body: &str, receipt: Option<&[u8]>) {
        let versions = self.versions();
        let dialect = self.config.dialect;
        let Some(now) = self.now else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        tracing::debug!(%id, message, "refused");
        let length = body.len().to_string();
        let mut headers: Vec<(&[u8], &[u8])> = vec![
            (b"message", message.as_bytes()),
            (b"content-type", b"text/plain"),
            (b"version", versions.as_bytes()),
        ];
        if let Some(receipt) = receipt {
            headers.push((b"receipt-id", receipt));
        }
        headers.push((b"content-length", length.as_bytes()));
        if !emit(
            conn,
            &mut self.ready,
            dialect,
            now,
            Command::Error,
            &headers,
            body.as_bytes(),
        ) {
            headers.retain(|(n, _)| *n != b"receipt-id");
            emit(
                conn,
                &mut self.ready,
                dialect,
                now,
                Command::Error,
                &headers,
                body.as_bytes(),
            );
        }
        self.close(id, CloseReason::Error(message.to_owned()));
    }

    /// Stops serving `id` and queues it for [`poll_close`](Self::poll_close); its output
    /// stays until [`closed`](Self::closed).
    fn close(&mut self, id: ConnectionId, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.state == State::Closing {
            return;
        }
        conn.state = State::Closing;
        conn.txs.clear();
        conn.inbuf.clear();
        let subs: Vec<String> = conn.subs.keys().cloned().collect();
        for sub in subs {
            self.detach(id, &sub);
        }
        self.schedule(id);
        self.closing.push_back(id);
        tracing::debug!(%id, ?reason, "closing");
        self.event(BrokerEvent::Closed { conn: id, reason });
    }
}

/// Lists the connection in `ready` once, when its output stops being empty.
fn mark_ready(conn: &mut Conn, ready: &mut VecDeque<ConnectionId>) {
    if !conn.ready {
        conn.ready = true;
        ready.push_back(conn.id);
    }
}

/// `from + every * times`, or `None` past the end of time.
fn deadline(from: Instant, every: Duration, times: u32) -> Option<Instant> {
    from.checked_add(every.checked_mul(times)?)
}

/// Appends a frame (and RabbitMQ's EOL) to the connection's output. False when the encoder
/// refuses a header (one that the negotiated version cannot carry); nothing is written then.
fn emit(
    conn: &mut Conn,
    ready: &mut VecDeque<ConnectionId>,
    dialect: Dialect,
    now: Instant,
    command: Command,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) -> bool {
    match conn
        .encoder
        .encode_parts(command, headers.iter().copied(), body, &mut conn.out)
    {
        Ok(()) => {
            if dialect == Dialect::RabbitMq {
                conn.out.extend_from_slice(b"\n");
            }
            conn.last_out = now;
            mark_ready(conn, ready);
            true
        }
        Err(e) => {
            tracing::debug!(error = %e, "frame not encodable");
            false
        }
    }
}

/// Writes a `MESSAGE` and remembers it until acknowledged unless the subscription is `auto`.
// The broker's fields are passed one by one so that the connection can be borrowed mutably.
#[allow(clippy::too_many_arguments)]
fn deliver(
    conn: &mut Conn,
    ready: &mut VecDeque<ConnectionId>,
    dialect: Dialect,
    now: Instant,
    sub_id: &str,
    stored: Stored,
    stats: &mut BrokerStats,
    drop_any: &mut u64,
) {
    conn.deliveries += 1;
    let seq = conn.deliveries;
    let message_id = match dialect {
        Dialect::RabbitMq => format!("T_{sub_id}@@{}@@{seq}", conn.session),
        Dialect::SpringSimple => format!("{}-{seq}", conn.session),
    };
    let Some(sub) = conn.subs.get(sub_id) else {
        return;
    };
    let ack = sub.ack;
    let msg = &stored.msg;
    let length = msg.body.len().to_string();
    let redelivered: &[u8] = if stored.redelivered {
        b"true"
    } else {
        b"false"
    };
    let mut headers: Vec<(&[u8], &[u8])> = Vec::with_capacity(msg.headers.len() + 6);
    headers.push((b"subscription", sub_id.as_bytes()));
    headers.push((b"destination", msg.destination.as_bytes()));
    headers.push((b"message-id", message_id.as_bytes()));
    let fixed = if dialect == Dialect::RabbitMq {
        headers.push((b"redelivered", redelivered));
        if ack != AckMode::Auto && conn.version == Version::V1_2 {
            headers.push((b"ack", message_id.as_bytes()));
        }
        let fixed = headers.len();
        // RabbitMQ hands the sender's headers back in reverse order.
        headers.extend(msg.headers.iter().rev().map(|(n, v)| (&n[..], &v[..])));
        fixed
    } else {
        let fixed = headers.len();
        headers.extend(msg.headers.iter().map(|(n, v)| (&n[..], &v[..])));
        fixed
    };
    headers.push((b"content-length", length.as_bytes()));
    // A fault control: the broker believes it delivered, but nothing reaches the client.
    let discard = if conn.faults.drop_deliveries > 0 {
        conn.faults.drop_deliveries -= 1;
        true
    } else if *drop_any > 0 {
        *drop_any -= 1;
        true
    } else {
        false
    };
    if discard {
        tracing::debug!(id = %conn.id, sub_id, "delivery dropped (fault control)");
        stats.discarded += 1;
    } else if !emit(
        conn,
        ready,
        dialect,
        now,
        Command::Message,
        &headers,
        &msg.body,
    ) {
        // A header the subscriber's version cannot carry: deliver without the sender's.
        headers.drain(fixed..headers.len() - 1);
        emit(
            conn,
            ready,
            dialect,
            now,
            Command::Message,
            &headers,
            &msg.body,
        );
    }
    stats.delivered += 1;
    if stored.redelivered {
        stats.redelivered += 1;
    }
    if ack != AckMode::Auto {
        if let Some(sub) = conn.subs.get_mut(sub_id) {
            sub.unacked += 1;
        }
        conn.ack_ids.insert(message_id.clone(), seq);
        conn.unacked.insert(
            seq,
            Unacked {
                sub: sub_id.to_owned(),
                ack_id: message_id,
                stored,
            },
        );
    }
}
