//! The state machine.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use stompkit_codec::{Command, Decoder, Encoder, Frame, FrameBuilder, Item, Version};

use crate::dedup::DuplicateFilter;
use crate::digits::Numbered;
use crate::error::broker_text;
use crate::heartbeat;
use crate::queue::{OutboundQueue, PushError, Queued};
use crate::retry::{Decision, Retry};
use crate::transmit::Transmit;
use crate::{
    AbortReason, AckMode, AckOptions, Attempt, AttemptRecord, Cause, CloseReason, Credentials,
    DeliveryId, Directive, DropReason, Error, Event, Failure, FailureKind, GiveUpReason,
    HandshakeFailure, Message, MessageHandle, ReceiptId, ReceiptOutcome, SendError, SendId,
    SessionConfig, State, Stats, Subscribe, SubscriptionEnd, SubscriptionId, TransactionId,
};

/// Prefix of the `receipt` header values the session writes.
const RECEIPT_PREFIX: &str = "rcpt-";

/// Where the current transport stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No transport.
    Down,
    /// `Directive::Open` given; waiting for `transport_connected`.
    Opening,
    /// `CONNECT` written; waiting for `CONNECTED`.
    Handshaking,
    /// `CONNECTED` received.
    Open,
}

/// What was negotiated for the open connection, and its activity times.
#[derive(Debug)]
struct Link {
    version: Version,
    send_every: Option<Duration>,
    dead_after: Option<Duration>,
    last_rx: Instant,
    last_tx: Instant,
}

#[derive(Debug)]
struct Subscription {
    request: Subscribe,
    /// Deliveries not yet acknowledged, oldest first (client modes only). Bounded by what
    /// the broker sends; cleared when the connection drops.
    pending: VecDeque<DeliveryId>,
    /// The caller asked a receipt and has not had its outcome yet.
    wants_receipt: bool,
    /// Connections in a row that ended with an `ERROR` blamed on this `SUBSCRIBE`.
    strikes: u32,
}

/// A receipted `SEND` outside a transaction, kept until confirmed so it can be re-sent.
#[derive(Debug)]
struct InFlight {
    message: Message,
    /// Its receipt number on the current connection (a re-send takes a new one).
    receipt: u64,
    /// Connections in a row that ended with an `ERROR` blamed on this message.
    strikes: u32,
}

#[derive(Debug)]
struct PendingReceipt {
    id: ReceiptId,
    /// The connection the frame was written on; 0 while it waits to be re-sent.
    connection: u64,
    /// Asked by the session itself (a `SUBSCRIBE` the caller asked no receipt for): its
    /// outcome is not reported.
    internal: bool,
}

#[derive(Debug)]
struct Disconnect {
    receipt: u64,
    deadline: Option<Instant>,
}

/// Acknowledgements written inside a transaction: they take effect on `COMMIT`.
#[derive(Debug, Default)]
struct TransactionAcks(Vec<(SubscriptionId, DeliveryId, bool)>);

/// A sans-IO STOMP client session.
///
/// Bytes and `Instant`s go in; bytes to write, events and the next deadline come out. The
/// session never reads a clock, never blocks and does no I/O. A driver:
///
/// 1. calls commands ([`connect`](Self::connect), [`subscribe`](Self::subscribe),
///    [`send`](Self::send), ...) and feeds transport events
///    ([`transport_connected`](Self::transport_connected),
///    [`handle_input`](Self::handle_input), [`transport_closed`](Self::transport_closed)) and
///    [`handle_timeout`](Self::handle_timeout) when the deadline passes;
/// 2. then drains [`poll_directive`](Self::poll_directive) (open or close a transport),
///    [`poll_transmit`](Self::poll_transmit) (write the bytes, in order, to the current
///    attempt's transport) and [`poll_event`](Self::poll_event) (hand them to the
///    application), in that order;
/// 3. sleeps until input arrives or [`poll_timeout`](Self::poll_timeout) passes, and
///    handles available input before the timers.
///
/// See the crate documentation for a complete driver loop and `docs/session.md` for the
/// state machine and the delivery guarantees.
pub struct Session {
    config: SessionConfig,
    state: State,
    phase: Phase,
    decoder: Decoder,
    encoder: Encoder,
    inbuf: BytesMut,
    out: BytesMut,
    /// Where each frame or heart-beat in `out` ends.
    out_ends: Vec<usize>,
    /// `SEND`s without receipt in `out`, kept until the driver takes the bytes: if the
    /// connection ends first (a later frame of the same input), each is reported dropped.
    unpolled_sends: Vec<(SendId, Message)>,
    /// Whether the last item decoded was a frame (an EOL right after it is no heart-beat).
    after_frame: bool,
    events: VecDeque<Event>,
    directives: VecDeque<Directive>,
    retry: Retry,
    /// Attempts over the session's life; the number of the current one.
    attempt: u32,
    attempts_since_success: u32,
    auth_failures: u32,
    ever_connected: bool,
    connect_deadline: Option<Instant>,
    /// While connected and not yet healthy: when the connection will count as healthy
    /// (`None` with `healthy_after` past what an `Instant` holds: never).
    healthy_at: Option<Instant>,
    /// The open connection stayed up for `healthy_after`.
    healthy: bool,
    /// Connections in a row that ended on a frame over the decoder's limits before
    /// becoming healthy.
    oversized_in_a_row: u32,
    /// Counts transports; tells handles of an earlier connection apart.
    connection: u64,
    link: Option<Link>,
    disconnect: Option<Disconnect>,
    subscriptions: BTreeMap<SubscriptionId, Subscription>,
    transactions: BTreeMap<TransactionId, TransactionAcks>,
    queue: OutboundQueue,
    unconfirmed: BTreeMap<SendId, InFlight>,
    receipts: BTreeMap<u64, PendingReceipt>,
    /// Receipt deadlines in the order they were set, which is their time order (the
    /// timeout is one constant and `now` only grows). Entries of receipts no longer
    /// pending are skipped when reached.
    receipt_deadlines: VecDeque<(Instant, u64)>,
    /// `{client_id}-`, the start of every stable message id.
    message_id_prefix: String,
    duplicates: DuplicateFilter,
    stats: Stats,
    history: VecDeque<AttemptRecord>,
    next_subscription: u64,
    next_transaction: u64,
    next_send: u64,
    next_delivery: u64,
    next_receipt: u64,
}

impl fmt::Debug for Session {
    /// Shows the state and counts; never buffered bytes (they may hold credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.state)
            .field("phase", &self.phase)
            .field("version", &self.version())
            .field("attempt", &self.attempt)
            .field("subscriptions", &self.subscriptions.len())
            .field("transactions", &self.transactions.len())
            .field("queued", &self.queue.len())
            .field("unconfirmed", &self.unconfirmed.len())
            .field("receipts", &self.receipts.len())
            .field("events", &self.events.len())
            .field("transmit_bytes", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session in [`State::Idle`]. Nothing happens until [`connect`](Self::connect).
    ///
    /// `now` is the creation time, recorded in [`Stats::created_at`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when [`SessionConfig::validate`] finds a setting out of range.
    pub fn new(mut config: SessionConfig, now: Instant) -> Result<Self, Error> {
        config.validate()?;
        config.accept_versions.sort();
        config.accept_versions.dedup();
        let top = *config.accept_versions.last().expect("validated: not empty");
        let mut stats = Stats::new(config.max_tracked_destinations);
        stats.created_at = Some(now);
        let message_id_prefix = match &config.client_id {
            Some(id) => format!("{id}-"),
            None => format!("{:016x}-", mix(config.seed)),
        };
        Ok(Self {
            retry: Retry::new(config.backoff.clone(), config.breaker.clone(), config.seed)?,
            message_id_prefix,
            decoder: Decoder::with_limits(top, config.limits),
            encoder: Encoder::new(top).with_content_length(config.content_length),
            duplicates: DuplicateFilter::new(config.duplicate_filter),
            history: VecDeque::with_capacity(config.history.min(64)),
            stats,
            config,
            state: State::Idle,
            phase: Phase::Down,
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            out_ends: Vec::new(),
            unpolled_sends: Vec::new(),
            after_frame: false,
            events: VecDeque::new(),
            directives: VecDeque::new(),
            attempt: 0,
            attempts_since_success: 0,
            auth_failures: 0,
            ever_connected: false,
            connect_deadline: None,
            healthy_at: None,
            healthy: false,
            oversized_in_a_row: 0,
            connection: 0,
            link: None,
            disconnect: None,
            subscriptions: BTreeMap::new(),
            transactions: BTreeMap::new(),
            queue: OutboundQueue::default(),
            unconfirmed: BTreeMap::new(),
            receipts: BTreeMap::new(),
            receipt_deadlines: VecDeque::new(),
            next_subscription: 1,
            next_transaction: 1,
            next_send: 1,
            next_delivery: 1,
            next_receipt: 1,
        })
    }

    // ---------------------------------------------------------------- observation

    /// The configuration (versions sorted and deduplicated).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The negotiated version while connected.
    pub fn version(&self) -> Option<Version> {
        self.link.as_ref().map(|l| l.version)
    }

    /// Statistics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The last [`history`](SessionConfig::history) attempts, oldest first.
    pub fn attempts(&self) -> impl ExactSizeIterator<Item = &AttemptRecord> {
        self.history.iter()
    }

    /// Messages waiting in the outbound queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Bytes (approximate wire size) waiting in the outbound queue.
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// Receipted messages sent and not yet confirmed (re-sent after a reconnect).
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed.len()
    }

    /// A live subscription's request.
    pub fn subscription(&self, id: SubscriptionId) -> Option<&Subscribe> {
        self.subscriptions.get(&id).map(|s| &s.request)
    }

    /// Live subscriptions, in id order.
    pub fn subscriptions(&self) -> impl Iterator<Item = (SubscriptionId, &Subscribe)> {
        self.subscriptions.iter().map(|(id, s)| (*id, &s.request))
    }

    /// Transactions open on the current connection.
    pub fn open_transactions(&self) -> impl Iterator<Item = TransactionId> + '_ {
        self.transactions.keys().copied()
    }

    /// The current attempt, if one was ever started.
    pub fn attempt(&self) -> Option<Attempt> {
        (self.attempt > 0).then_some(Attempt(self.attempt))
    }

    /// Whether the open connection has proved healthy (stayed up for
    /// [`healthy_after`](SessionConfig::healthy_after)).
    pub fn is_healthy(&self) -> bool {
        self.state == State::Connected && self.healthy
    }

    // ---------------------------------------------------------------- outputs

    /// Bytes to write to the current transport, in order, with frame boundaries.
    /// Everything written since the last call comes out as one [`Transmit`].
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.out.is_empty() {
            return None;
        }
        let chunk = self.out.split().freeze();
        // Handed to the driver: written as far as the session can tell.
        self.unpolled_sends.clear();
        // Start the next buffer at the size this one reached, so a burst of frames does not
        // grow it by doubling again every time (bounded, so one huge frame is not repeated).
        self.out.reserve(chunk.len().min(64 * 1024));
        let capacity = self.out_ends.len();
        let ends = std::mem::replace(&mut self.out_ends, Vec::with_capacity(capacity));
        Some(Transmit::new(chunk, ends))
    }

    /// The next thing the driver must do with its transport.
    pub fn poll_directive(&mut self) -> Option<Directive> {
        self.directives.pop_front()
    }

    /// The next application event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next; `None` when
    /// nothing is scheduled. After `handle_timeout(now)` it is always later than `now`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        match self.state {
            State::Connecting => consider(self.connect_deadline),
            State::Reconnecting { at } => consider(Some(at)),
            State::Failed { next_probe } => consider(Some(next_probe)),
            State::Connected => {
                if let Some(link) = &self.link {
                    consider(link.dead_after.and_then(|d| link.last_rx.checked_add(d)));
                    consider(link.send_every.and_then(|d| link.last_tx.checked_add(d)));
                }
                consider(self.healthy_at);
                consider(self.next_receipt_deadline());
            }
            State::Disconnecting => {
                consider(self.disconnect.as_ref().and_then(|d| d.deadline));
                consider(self.next_receipt_deadline());
            }
            State::Idle | State::Closed => {}
        }
        if !self.queue.is_empty() {
            consider(self.queue.next_expiry());
        }
        next
    }

    /// The front of the deadline queue; it may belong to a receipt no longer pending
    /// (then the wake-up is early and harmless, and the entry is dropped).
    fn next_receipt_deadline(&self) -> Option<Instant> {
        self.receipt_deadlines.front().map(|(t, _)| *t)
    }

    // ---------------------------------------------------------------- inputs

    /// Starts connecting (from [`State::Idle`] or [`State::Closed`]), with the backoff's
    /// delays and give-up limit started over; does nothing in other states. Gives
    /// [`Directive::Open`] unless the circuit breaker is open.
    pub fn connect(&mut self, now: Instant) {
        if matches!(self.state, State::Idle | State::Closed) {
            self.attempts_since_success = 0;
            self.auth_failures = 0;
            self.oversized_in_a_row = 0;
            // Else a session that gave up (RetriesExhausted) would give up again after one try.
            self.retry.restart();
            self.start_attempt(now, Cause::ConnectRequested);
        }
    }

    /// Skips the rest of the backoff delay and starts the next attempt now: for an
    /// application that knows the network is back. Only in [`State::Reconnecting`]: while
    /// the circuit breaker is open ([`State::Failed`]) it waits for the breaker.
    pub fn reconnect_now(&mut self, now: Instant) {
        if matches!(self.state, State::Reconnecting { .. }) {
            self.start_attempt(now, Cause::ReconnectRequested);
        }
    }

    /// Whether a transport callback names the current attempt in the expected phase.
    fn is_current(&self, attempt: Attempt, what: &str) -> bool {
        let current = attempt.0 == self.attempt && self.phase != Phase::Down;
        if !current {
            tracing::debug!(%attempt, current = self.attempt, "{what} ignored: not the current attempt's transport");
        }
        current
    }

    /// The transport asked for by [`Directive::Open`] is open. Writes `CONNECT` with
    /// `credentials`, asked from the caller for every attempt so expired tokens are not
    /// replayed. Ignored unless `attempt` is the current attempt and its transport was
    /// being opened.
    pub fn transport_connected(
        &mut self,
        now: Instant,
        attempt: Attempt,
        credentials: Credentials,
    ) {
        if !self.is_current(attempt, "transport_connected") {
            return;
        }
        if self.state != State::Connecting || self.phase != Phase::Opening {
            tracing::debug!(state = ?self.state, "transport_connected ignored: no transport was being opened");
            return;
        }
        self.connection += 1;
        self.phase = Phase::Handshaking;
        let top = self.top_version();
        self.decoder = Decoder::with_limits(top, self.config.limits);
        self.encoder = Encoder::new(top).with_content_length(self.config.content_length);
        self.inbuf.clear();
        self.out.clear();
        self.out_ends.clear();
        self.after_frame = false;

        let frame = self.connect_frame(credentials);
        if let Err(error) = self.write(now, &frame) {
            let failure = Failure {
                kind: FailureKind::Handshake(HandshakeFailure::Credentials),
                detail: format!("CONNECT cannot carry the credentials: {error}"),
                error: Some(Error::Encode(error)),
            };
            self.connection_failed(now, failure, true);
        }
    }

    /// The transport of `attempt` closed, or could not be opened. Ignored unless `attempt`
    /// is the current attempt and has a transport.
    pub fn transport_closed(&mut self, now: Instant, attempt: Attempt, reason: CloseReason) {
        if !self.is_current(attempt, "transport_closed") {
            return;
        }
        if self.state == State::Disconnecting {
            self.finish_disconnect(now, Cause::TransportClosed, false);
            return;
        }
        let (kind, detail) = match reason {
            CloseReason::PeerClosed => (
                FailureKind::Network,
                "the broker closed the connection".to_owned(),
            ),
            CloseReason::Error(e) => (FailureKind::Network, e),
            CloseReason::Fatal(e) => (FailureKind::TransportRefused, e),
        };
        let failure = Failure {
            kind,
            error: Some(Error::Transport(detail.clone())),
            detail,
        };
        self.connection_failed(now, failure, false);
    }

    /// Bytes received on the transport of `attempt`. Ignored unless it is the current
    /// attempt's and the transport is open.
    pub fn handle_input(&mut self, now: Instant, attempt: Attempt, data: &[u8]) {
        if data.is_empty() || attempt.0 != self.attempt {
            return;
        }
        if !matches!(self.phase, Phase::Handshaking | Phase::Open) {
            return;
        }
        self.stats.bytes_in += data.len() as u64;
        self.stats.last_activity = Some(now);
        if let Some(link) = &mut self.link {
            link.last_rx = now;
        }
        self.inbuf.extend_from_slice(data);
        let connection = self.connection;
        loop {
            match self.decoder.decode(&mut self.inbuf) {
                Ok(Some(Item::Heartbeat)) => {
                    // RabbitMQ ends every frame with an EOL: that one is no heart-beat.
                    if std::mem::take(&mut self.after_frame) {
                        self.stats.eols_after_frames += 1;
                    } else {
                        self.stats.heartbeats_in += 1;
                    }
                }
                Ok(Some(Item::Frame(frame))) => {
                    self.after_frame = true;
                    self.on_frame(now, frame);
                    if self.connection != connection
                        || !matches!(self.phase, Phase::Handshaking | Phase::Open)
                    {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    let failure = Failure {
                        kind: FailureKind::Protocol,
                        detail: error.to_string(),
                        error: Some(Error::Decode(error)),
                    };
                    self.connection_failed(now, failure, true);
                    return;
                }
            }
        }
    }

    /// Runs the timers due at `now`: connect, backoff, breaker probe, heart-beats,
    /// receipts, `DISCONNECT`, queue expiry. Calling it early or twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        // A timer's action can schedule another one due at once (a zero backoff delay);
        // a few passes settle it.
        for _ in 0..8 {
            match self.poll_timeout() {
                Some(t) if t <= now => self.run_timers(now),
                _ => return,
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        let expired = self.queue.take_expired(now);
        self.report_dropped(expired, DropReason::Expired);
        match self.state {
            State::Connecting => {
                if self.connect_deadline.is_some_and(|t| t <= now) {
                    let failure = Failure {
                        kind: FailureKind::Timeout,
                        detail: match self.phase {
                            Phase::Opening => "the transport did not open in time".to_owned(),
                            _ => "no CONNECTED in time".to_owned(),
                        },
                        error: None,
                    };
                    self.connection_failed(now, failure, true);
                }
            }
            State::Reconnecting { at } if at <= now => {
                self.start_attempt(now, Cause::BackoffElapsed)
            }
            State::Failed { next_probe } if next_probe <= now => {
                self.start_attempt(now, Cause::ProbeDue);
            }
            State::Connected => {
                let dead = self.link.as_ref().and_then(|l| {
                    l.dead_after
                        .filter(|d| l.last_rx.checked_add(*d).is_some_and(|t| t <= now))
                });
                if let Some(after) = dead {
                    let failure = Failure {
                        kind: FailureKind::HeartbeatLost,
                        detail: format!("nothing received for {} ms", after.as_millis()),
                        error: None,
                    };
                    self.connection_failed(now, failure, true);
                    return;
                }
                if self.healthy_at.is_some_and(|t| t <= now) {
                    self.became_healthy(now);
                }
                self.expire_receipts(now);
                let due = self.link.as_ref().and_then(|l| {
                    l.send_every
                        .filter(|d| l.last_tx.checked_add(*d).is_some_and(|t| t <= now))
                });
                if due.is_some() {
                    self.out.put_u8(b'\n');
                    self.out_ends.push(self.out.len());
                    self.stats.heartbeats_out += 1;
                    self.stats.bytes_out += 1;
                    self.stats.last_activity = Some(now);
                    if let Some(link) = &mut self.link {
                        link.last_tx = now;
                    }
                }
            }
            State::Disconnecting => {
                if self
                    .disconnect
                    .as_ref()
                    .and_then(|d| d.deadline)
                    .is_some_and(|t| t <= now)
                {
                    self.finish_disconnect(now, Cause::DisconnectTimedOut, true);
                    return;
                }
                self.expire_receipts(now);
            }
            State::Idle | State::Closed | State::Reconnecting { .. } | State::Failed { .. } => {}
        }
    }

    fn expire_receipts(&mut self, now: Instant) {
        let mut freed = false;
        while let Some(&(deadline, n)) = self.receipt_deadlines.front() {
            if deadline > now {
                break;
            }
            self.receipt_deadlines.pop_front();
            let Some(pending) = self.receipts.remove(&n) else {
                continue;
            };
            if let ReceiptId::Send(id) = pending.id {
                freed |= self.unconfirmed.remove(&id).is_some();
            }
            if !pending.internal {
                self.events.push_back(Event::Receipt {
                    id: pending.id,
                    outcome: ReceiptOutcome::TimedOut,
                });
            }
        }
        if freed {
            self.flush_queue(now);
        }
    }

    /// The connection stayed up long enough: the backoff and failure counts start over.
    fn became_healthy(&mut self, now: Instant) {
        self.healthy_at = None;
        self.healthy = true;
        self.retry.succeeded(now);
        self.attempts_since_success = 0;
        self.oversized_in_a_row = 0;
        // Strikes count connections refused in a row: a healthy one breaks the row.
        for in_flight in self.unconfirmed.values_mut() {
            in_flight.strikes = 0;
        }
        for sub in self.subscriptions.values_mut() {
            sub.strikes = 0;
        }
        tracing::debug!(attempt = self.attempt, "connection healthy");
    }

    // ---------------------------------------------------------------- commands

    /// Subscribes. Before the connection is up the subscription is recorded and sent once
    /// connected; after every reconnect it is sent again with the same id and headers.
    ///
    /// Every `SUBSCRIBE` carries a receipt (the session's own when the caller asked none),
    /// so that an `ERROR` can be traced to the frame the broker refused.
    ///
    /// # Errors
    /// [`Error::Closing`] while disconnecting; [`Error::Encode`] when a header cannot be
    /// written in one of the offered versions.
    pub fn subscribe(&mut self, now: Instant, request: Subscribe) -> Result<SubscriptionId, Error> {
        if self.state == State::Disconnecting {
            return Err(Error::Closing);
        }
        let id = SubscriptionId(self.next_subscription);
        self.check_encodable(&subscribe_frame(id, &request, Some(u64::MAX)))?;
        self.next_subscription += 1;
        self.subscriptions.insert(
            id,
            Subscription {
                wants_receipt: request.receipt,
                request,
                pending: VecDeque::new(),
                strikes: 0,
            },
        );
        if self.state == State::Connected {
            self.write_subscribe(now, id)?;
        }
        Ok(id)
    }

    /// Unsubscribes. When not connected there is nothing to tell the broker, and a receipt
    /// asked for is confirmed at once.
    ///
    /// # Errors
    /// [`Error::UnknownSubscription`], [`Error::Closing`].
    pub fn unsubscribe(
        &mut self,
        now: Instant,
        id: SubscriptionId,
        receipt: bool,
    ) -> Result<(), Error> {
        if self.state == State::Disconnecting {
            return Err(Error::Closing);
        }
        let sub = self
            .subscriptions
            .remove(&id)
            .ok_or(Error::UnknownSubscription(id))?;
        let receipt_id = ReceiptId::Unsubscribe(id);
        if self.state == State::Connected {
            let version = self.version().unwrap_or(Version::V1_2);
            let mut b = Frame::builder(Command::Unsubscribe).header("id", id.to_string());
            if version == Version::V1_0 {
                b = b.header("destination", &sub.request.destination);
            }
            let b = self.with_receipt(now, b, receipt.then_some(receipt_id));
            self.write(now, &b.build()).map_err(Error::Encode)?;
        } else if receipt {
            self.events.push_back(Event::Receipt {
                id: receipt_id,
                outcome: ReceiptOutcome::Confirmed,
            });
        }
        if sub.wants_receipt {
            self.events.push_back(Event::Receipt {
                id: ReceiptId::Subscribe(id),
                outcome: ReceiptOutcome::ConnectionLost,
            });
        }
        Ok(())
    }

    /// Sends a message: at once when connected, else into the outbound queue (flushed in
    /// priority order after the next `CONNECTED`). While connected, a receipted message
    /// beyond the [`send_window`](SessionConfig::send_window) of unconfirmed ones, and any
    /// message while the queue is not empty, goes into the queue too: one rule online and
    /// offline.
    ///
    /// A message expired already is reported dropped at once. A message with
    /// [`receipt`](Message::receipt) outside a transaction is delivered at least once: it
    /// is re-sent after a reconnect until its receipt arrives, an `ERROR` names it, its
    /// receipt times out on an open connection, or the broker refuses it
    /// [`poison_after`](SessionConfig::poison_after) times
    /// ([`DropReason::Poisoned`]). It carries the stable
    /// [`message_id_header`](SessionConfig::message_id_header).
    ///
    /// # Errors
    /// The message comes back inside the error: queue full (with
    /// [`OverflowPolicy::RejectNew`](crate::OverflowPolicy::RejectNew)), larger than the
    /// queue or than [`max_send_frame_bytes`](SessionConfig::max_send_frame_bytes),
    /// disconnecting, transaction not open, a header the session sets, or not writable as a
    /// frame.
    pub fn send(&mut self, now: Instant, message: Message) -> Result<SendId, SendError> {
        if let Some(name) = self.reserved_header(&message) {
            return Err(SendError::new(Error::ReservedHeader(name), message));
        }
        if self.state == State::Disconnecting {
            return Err(SendError::new(Error::Closing, message));
        }
        if let Some(tx) = message.transaction {
            if self.state != State::Connected || !self.transactions.contains_key(&tx) {
                return Err(SendError::new(Error::TransactionNotOpen(tx), message));
            }
            let id = SendId(self.next_send);
            self.transmit_send(now, id, message)?;
            self.next_send += 1;
            return Ok(id);
        }
        let direct = self.state == State::Connected
            && self.queue.is_empty()
            && (!message.receipt || self.unconfirmed.len() < self.config.send_window);
        if direct {
            let id = SendId(self.next_send);
            self.transmit_send(now, id, message)?;
            self.next_send += 1;
            return Ok(id);
        }
        let id = SendId(self.next_send);
        if let Err(error) = self.check_send(id, &message) {
            return Err(SendError::new(error, message));
        }
        if message.expires_at.is_some_and(|t| t <= now) {
            self.next_send += 1;
            self.drop_message(id, message, DropReason::Expired);
            return Ok(id);
        }
        match self
            .queue
            .push(id, message, self.config.queue, self.config.overflow)
        {
            Ok(evicted) => {
                self.next_send += 1;
                self.report_dropped(evicted, DropReason::Overflow);
                Ok(id)
            }
            Err(PushError::Full(m)) => Err(SendError::new(Error::QueueFull, m)),
            Err(PushError::TooLarge(m)) => Err(SendError::new(Error::LargerThanQueue, m)),
        }
    }

    /// Acknowledges a message (cumulatively on `client` subscriptions).
    ///
    /// # Errors
    /// See [`Error`]: not connected, stale handle, `ack:auto`, already acknowledged.
    pub fn ack(&mut self, now: Instant, handle: &MessageHandle) -> Result<(), Error> {
        self.acknowledge(now, handle, AckOptions::default(), false)
    }

    /// [`ack`](Self::ack) inside a transaction and/or with a receipt.
    ///
    /// # Errors
    /// As [`ack`](Self::ack), and [`Error::UnknownTransaction`].
    pub fn ack_with(
        &mut self,
        now: Instant,
        handle: &MessageHandle,
        options: AckOptions,
    ) -> Result<(), Error> {
        self.acknowledge(now, handle, options, false)
    }

    /// Refuses a message (`NACK`; not in STOMP 1.0).
    ///
    /// # Errors
    /// As [`ack`](Self::ack), and [`Error::NackUnsupported`] on 1.0.
    pub fn nack(&mut self, now: Instant, handle: &MessageHandle) -> Result<(), Error> {
        self.acknowledge(now, handle, AckOptions::default(), true)
    }

    /// [`nack`](Self::nack) inside a transaction and/or with a receipt.
    ///
    /// # Errors
    /// As [`nack`](Self::nack), and [`Error::UnknownTransaction`].
    pub fn nack_with(
        &mut self,
        now: Instant,
        handle: &MessageHandle,
        options: AckOptions,
    ) -> Result<(), Error> {
        self.acknowledge(now, handle, options, true)
    }

    /// Begins a transaction on the current connection. If the connection drops before
    /// `COMMIT`, it is reported with [`Event::TransactionAborted`] and nothing of it is
    /// replayed. Acknowledgements made inside it take effect on `COMMIT`: after `ABORT`
    /// the messages can be acknowledged again.
    ///
    /// # Errors
    /// [`Error::NotConnected`], [`Error::Closing`].
    pub fn begin(&mut self, now: Instant, receipt: bool) -> Result<TransactionId, Error> {
        self.require_connected()?;
        let id = TransactionId(self.next_transaction);
        self.next_transaction += 1;
        let b = Frame::builder(Command::Begin).header("transaction", id.to_string());
        let b = self.with_receipt(now, b, receipt.then_some(ReceiptId::Begin(id)));
        self.write(now, &b.build()).map_err(Error::Encode)?;
        self.transactions.insert(id, TransactionAcks::default());
        Ok(id)
    }

    /// Commits a transaction.
    ///
    /// # Errors
    /// [`Error::UnknownTransaction`], [`Error::NotConnected`].
    pub fn commit(&mut self, now: Instant, id: TransactionId, receipt: bool) -> Result<(), Error> {
        self.end_transaction(
            now,
            id,
            Command::Commit,
            receipt.then_some(ReceiptId::Commit(id)),
        )
    }

    /// Aborts a transaction.
    ///
    /// # Errors
    /// [`Error::UnknownTransaction`], [`Error::NotConnected`].
    pub fn abort(&mut self, now: Instant, id: TransactionId, receipt: bool) -> Result<(), Error> {
        self.end_transaction(
            now,
            id,
            Command::Abort,
            receipt.then_some(ReceiptId::Abort(id)),
        )
    }

    /// Ends the session. Connected: writes `DISCONNECT` with a receipt and waits for it (at
    /// most [`disconnect_timeout`](SessionConfig::disconnect_timeout)); no frame is written
    /// after it. Otherwise: stops at once. Queued messages are reported dropped; open
    /// transactions aborted.
    pub fn disconnect(&mut self, now: Instant) {
        match self.state {
            State::Idle | State::Closed | State::Disconnecting => {}
            State::Connected => {
                for id in std::mem::take(&mut self.transactions).into_keys() {
                    self.events.push_back(Event::TransactionAborted {
                        id,
                        reason: AbortReason::Disconnected,
                    });
                }
                let n = self.take_receipt_number();
                let frame = Frame::builder(Command::Disconnect)
                    .header("receipt", receipt_value(n))
                    .build();
                // DISCONNECT with a numeric receipt always encodes.
                let _ = self.write(now, &frame);
                self.disconnect = Some(Disconnect {
                    receipt: n,
                    deadline: now.checked_add(self.config.disconnect_timeout),
                });
                self.set_state(State::Disconnecting, Cause::DisconnectRequested);
            }
            State::Connecting | State::Reconnecting { .. } | State::Failed { .. } => {
                if self.state == State::Connecting {
                    self.retry.cancelled(now);
                    self.end_record(now, &closed_by_user("closed by the caller"));
                }
                if self.phase != Phase::Down {
                    self.directives
                        .push_back(Directive::Close(Attempt(self.attempt)));
                }
                self.drop_connection(AbortReason::Disconnected);
                self.close_session(Cause::DisconnectRequested);
            }
        }
    }

    // ---------------------------------------------------------------- frames in

    fn on_frame(&mut self, now: Instant, frame: Frame) {
        let command = frame.command();
        self.stats.frames_in += 1;
        self.stats.frames_in_by_command.add(command);
        match (self.phase, command) {
            (Phase::Handshaking, Command::Connected) => self.on_connected(now, &frame),
            (Phase::Handshaking, Command::Error) => self.on_handshake_error(now, frame),
            (Phase::Open, Command::Message) => self.on_message(frame),
            (Phase::Open, Command::Receipt) => self.on_receipt(now, &frame),
            (Phase::Open, Command::Error) => self.on_error(now, frame),
            (phase, command) => {
                let detail = match phase {
                    Phase::Handshaking => format!("expected CONNECTED, received {command}"),
                    _ => format!("unexpected {command} from the broker"),
                };
                let failure = Failure {
                    kind: FailureKind::Protocol,
                    error: Some(Error::Protocol(detail.clone())),
                    detail,
                };
                self.connection_failed(now, failure, true);
            }
        }
    }

    fn on_connected(&mut self, now: Instant, frame: &Frame) {
        let offered = &self.config.accept_versions;
        let version = match frame.header("version") {
            None => Some(Version::V1_0),
            Some(v) => Version::from_bytes(v),
        };
        let version = match version {
            Some(v) if offered.contains(&v) => v,
            _ => {
                let chosen = frame
                    .header("version")
                    .map_or_else(|| "1.0 (no version header)".into(), String::from_utf8_lossy);
                let detail = format!(
                    "the broker chose version {chosen}, offered {}",
                    version_list(offered)
                );
                let failure = Failure {
                    kind: FailureKind::Handshake(HandshakeFailure::Version),
                    error: Some(Error::Protocol(detail.clone())),
                    detail,
                };
                self.connection_failed(now, failure, true);
                return;
            }
        };
        // STOMP 1.0 has no heart-beats, but a 1.0 broker that answers our `heart-beat`
        // (ActiveMQ) enforces what it answered: honour it in every version.
        let theirs = match frame.header("heart-beat") {
            None => Some((0, 0)),
            Some(v) => heartbeat::parse(v),
        };
        let Some(theirs) = theirs else {
            let detail = "malformed heart-beat header in CONNECTED".to_owned();
            let failure = Failure {
                kind: FailureKind::Protocol,
                error: Some(Error::Protocol(detail.clone())),
                detail,
            };
            self.connection_failed(now, failure, true);
            return;
        };
        let heart_beat = heartbeat::negotiate(self.config.heart_beat, theirs);
        self.decoder.set_version(version);
        self.encoder.set_version(version);
        self.phase = Phase::Open;
        self.connect_deadline = None;
        // A huge interval from the broker must not overflow: past what a Duration holds
        // means "never".
        let dead_after = heart_beat.expect.and_then(|d| {
            Duration::try_from_secs_f64(d.as_secs_f64() * self.config.heartbeat_grace).ok()
        });
        self.link = Some(Link {
            version,
            send_every: heart_beat.send,
            dead_after,
            last_rx: now,
            last_tx: now,
        });
        self.auth_failures = 0;
        // Only a connection that stays up counts as a success (see `became_healthy`):
        // one the broker kills at once must not reset the backoff.
        self.healthy_at = now.checked_add(self.config.healthy_after);
        if self.config.healthy_after.is_zero() {
            self.became_healthy(now);
        }
        self.stats.connections += 1;
        if self.ever_connected {
            self.stats.reconnections += 1;
        }
        self.ever_connected = true;
        self.stats.connected_since = Some(now);
        if let Some(record) = self.history.back_mut() {
            record.connected_at = Some(now);
        }
        self.set_state(State::Connected, Cause::Handshake);
        self.events.push_back(Event::Connected {
            version,
            server: frame.header_str("server").map(str::to_owned),
            session: frame.header_str("session").map(str::to_owned),
            heart_beat,
        });
        self.resume(now);
    }

    /// After `CONNECTED`: resubscribe, re-send unconfirmed receipted sends, flush the queue.
    fn resume(&mut self, now: Instant) {
        let ids: Vec<SubscriptionId> = self.subscriptions.keys().copied().collect();
        for id in ids {
            if let Err(error) = self.write_subscribe(now, id) {
                // Checked encodable in every offered version when subscribing.
                tracing::warn!(%id, %error, "resubscribe could not be written");
            }
        }
        let unconfirmed: Vec<SendId> = self.unconfirmed.keys().copied().collect();
        for id in unconfirmed {
            let Some(in_flight) = self.unconfirmed.remove(&id) else {
                continue;
            };
            self.receipts.remove(&in_flight.receipt);
            if in_flight.message.expires_at.is_some_and(|t| t <= now) {
                self.drop_message(id, in_flight.message, DropReason::Expired);
                continue;
            }
            // A fresh receipt number, so that receipt order is write order on this
            // connection (what `blame` relies on).
            if let Err(failed) = self.transmit_in_flight(now, id, in_flight) {
                let (error, message) = failed.into_parts();
                self.drop_message(id, message, DropReason::Unencodable(error));
            }
        }
        self.flush_queue(now);
    }

    /// Writes queued messages while the send window has room.
    fn flush_queue(&mut self, now: Instant) {
        if self.state != State::Connected {
            return;
        }
        while let Some(front) = self.queue.front() {
            if front.receipt && self.unconfirmed.len() >= self.config.send_window {
                return;
            }
            let Some(Queued { id, message, .. }) = self.queue.pop_front() else {
                return;
            };
            if message.expires_at.is_some_and(|t| t <= now) {
                self.drop_message(id, message, DropReason::Expired);
                continue;
            }
            if let Err(failed) = self.transmit_send(now, id, message) {
                let (error, message) = failed.into_parts();
                tracing::warn!(%id, %error, "queued message could not be written");
                self.drop_message(id, message, DropReason::Unencodable(error));
            }
        }
    }

    fn on_handshake_error(&mut self, now: Instant, frame: Frame) {
        self.stats.errors += 1;
        let message = frame.header_str("message").map(str::to_owned);
        // A broker that shares no version with us says so with a `version` header listing
        // its own (RabbitMQ sends that header on every ERROR, so only a disjoint list counts).
        let disjoint = frame.header("version").is_some_and(|v| {
            !v.split(|b| *b == b',')
                .filter_map(|t| Version::from_bytes(t.trim_ascii()))
                .any(|v| self.config.accept_versions.contains(&v))
        });
        let kind = if disjoint {
            HandshakeFailure::Version
        } else {
            HandshakeFailure::Auth
        };
        let detail = broker_text(&frame);
        let error = Error::Broker(Box::new(frame.clone()));
        self.events.push_back(Event::ServerError { message, frame });
        self.connection_failed(
            now,
            Failure {
                kind: FailureKind::Handshake(kind),
                detail,
                error: Some(error),
            },
            true,
        );
    }

    fn on_error(&mut self, now: Instant, frame: Frame) {
        self.stats.errors += 1;
        let message = frame.header_str("message").map(str::to_owned);
        let named = frame
            .header("receipt-id")
            .and_then(parse_receipt)
            .and_then(|n| self.receipts.remove(&n));
        match named {
            Some(pending) => self.refused(pending, &frame),
            None if self.state == State::Connected => self.blame(&frame),
            None => {}
        }
        let detail = broker_text(&frame);
        let error = Error::Broker(Box::new(frame.clone()));
        self.events.push_back(Event::ServerError { message, frame });
        if self.state == State::Disconnecting {
            self.finish_disconnect(now, Cause::Failure(FailureKind::ServerError), true);
        } else {
            let failure = Failure {
                kind: FailureKind::ServerError,
                detail,
                error: Some(error),
            };
            self.connection_failed(now, failure, true);
        }
    }

    /// An `ERROR` named this receipt: the frame it was for is refused for good.
    fn refused(&mut self, pending: PendingReceipt, frame: &Frame) {
        match pending.id {
            ReceiptId::Send(id) => {
                self.unconfirmed.remove(&id);
            }
            ReceiptId::Subscribe(id) => {
                if let Some(sub) = self.subscriptions.remove(&id) {
                    self.end_subscription(
                        id,
                        sub,
                        SubscriptionEnd::Refused(Box::new(frame.clone())),
                    );
                }
                return;
            }
            _ => {}
        }
        if !pending.internal {
            self.events.push_back(Event::Receipt {
                id: pending.id,
                outcome: ReceiptOutcome::Error(Box::new(frame.clone())),
            });
        }
    }

    /// An `ERROR` naming no receipt ends the connection: blame the oldest receipted frame
    /// written on it and not yet confirmed (brokers answer in order, so everything before
    /// it was accepted). What is blamed `poison_after` connections in a row is not sent
    /// again; a frame before it confirmed since clears its strikes.
    fn blame(&mut self, frame: &Frame) {
        let culprit = self
            .receipts
            .iter()
            .find(|(_, r)| r.connection == self.connection)
            .map(|(n, r)| (*n, r.id));
        let Some((n, id)) = culprit else {
            return;
        };
        let limit = self.config.poison_after;
        match id {
            ReceiptId::Send(send) => {
                let Some(in_flight) = self.unconfirmed.get_mut(&send) else {
                    return;
                };
                in_flight.strikes += 1;
                tracing::debug!(%send, strikes = in_flight.strikes, "ERROR blamed on a SEND");
                if in_flight.strikes >= limit {
                    let in_flight = self.unconfirmed.remove(&send).expect("present");
                    self.receipts.remove(&n);
                    let reason = DropReason::Poisoned(Box::new(frame.clone()));
                    self.drop_message(send, in_flight.message, reason);
                }
            }
            ReceiptId::Subscribe(sub_id) => {
                let Some(sub) = self.subscriptions.get_mut(&sub_id) else {
                    return;
                };
                sub.strikes += 1;
                tracing::debug!(subscription = %sub_id, strikes = sub.strikes, "ERROR blamed on a SUBSCRIBE");
                if sub.strikes >= limit {
                    let sub = self.subscriptions.remove(&sub_id).expect("present");
                    self.receipts.remove(&n);
                    self.end_subscription(
                        sub_id,
                        sub,
                        SubscriptionEnd::Refused(Box::new(frame.clone())),
                    );
                }
            }
            _ => {}
        }
    }

    /// Reports a subscription ended (and its pending receipt, if the caller asked one).
    fn end_subscription(&mut self, id: SubscriptionId, sub: Subscription, reason: SubscriptionEnd) {
        if sub.wants_receipt {
            let outcome = match &reason {
                SubscriptionEnd::Refused(frame) => ReceiptOutcome::Error(frame.clone()),
                SubscriptionEnd::SessionClosed => ReceiptOutcome::ConnectionLost,
            };
            self.events.push_back(Event::Receipt {
                id: ReceiptId::Subscribe(id),
                outcome,
            });
        }
        self.events
            .push_back(Event::SubscriptionEnded { id, reason });
    }

    fn on_receipt(&mut self, now: Instant, frame: &Frame) {
        let Some(n) = frame.header("receipt-id").and_then(parse_receipt) else {
            tracing::debug!("RECEIPT for a receipt we did not ask");
            return;
        };
        if self.disconnect.as_ref().is_some_and(|d| d.receipt == n) {
            self.finish_disconnect(now, Cause::DisconnectConfirmed, true);
            return;
        }
        let Some(pending) = self.receipts.remove(&n) else {
            return;
        };
        // Receipts mostly arrive in order: drop the deadlines they leave behind at the front.
        while let Some((_, front)) = self.receipt_deadlines.front() {
            if self.receipts.contains_key(front) {
                break;
            }
            self.receipt_deadlines.pop_front();
        }
        match pending.id {
            ReceiptId::Send(id) if self.unconfirmed.remove(&id).is_some() => {
                self.flush_queue(now);
            }
            ReceiptId::Subscribe(id) => {
                if let Some(sub) = self.subscriptions.get_mut(&id) {
                    sub.strikes = 0;
                    if pending.internal {
                        return;
                    }
                    sub.wants_receipt = false;
                }
            }
            _ => {}
        }
        if !pending.internal {
            self.events.push_back(Event::Receipt {
                id: pending.id,
                outcome: ReceiptOutcome::Confirmed,
            });
        }
    }

    fn on_message(&mut self, frame: Frame) {
        // One pass over the headers, keeping what the rest needs (values borrow the frame,
        // which moves into its event at the end).
        let mut subscription = None;
        let mut message_id = None;
        let mut ack = None;
        let mut destination = None;
        let mut redelivered = false;
        let mut stable_id = None;
        let id_header = self.config.message_id_header.as_deref().map(str::as_bytes);
        for (i, (name, value)) in frame.headers().enumerate() {
            match name {
                b"subscription" if subscription.is_none() => subscription = Some(value),
                b"message-id" if message_id.is_none() => message_id = Some((i, value)),
                b"ack" if ack.is_none() => ack = Some(i),
                b"destination" if destination.is_none() => destination = Some(value),
                b"redelivered" => redelivered |= value == b"true",
                _ if stable_id.is_none() && Some(name) == id_header => stable_id = Some(value),
                _ => {}
            }
        }
        let id = match subscription {
            Some(wire) => SubscriptionId::parse_wire(wire),
            // STOMP 1.0 brokers may leave the header out: match by destination.
            None => destination.and_then(|d| {
                self.subscriptions
                    .iter()
                    .find(|(_, s)| s.request.destination.as_bytes() == d)
                    .map(|(id, _)| *id)
            }),
        };
        if let Some(d) = destination {
            self.stats.destination_mut(d).received += 1;
        }
        // One lookup: the subscription is borrowed while the other fields are updated.
        let Some((id, sub)) = id.and_then(|id| Some((id, self.subscriptions.get_mut(&id)?))) else {
            self.events.push_back(Event::StrayMessage { frame });
            return;
        };
        // A producer's stable id survives its re-sends; the broker's message-id does not.
        let dedup_key = stable_id.or(message_id.map(|(_, m)| m));
        let seen = dedup_key.is_some_and(|key| self.duplicates.check_and_insert(key));
        let possibly_duplicate = redelivered || seen;
        if possibly_duplicate {
            self.stats.possible_duplicates += 1;
        }
        let delivery = DeliveryId(self.next_delivery);
        self.next_delivery += 1;
        // Only a message that will be acknowledged keeps the id its ACK carries.
        let ack_id = if sub.request.ack == AckMode::Auto {
            None
        } else {
            sub.pending.push_back(delivery);
            let message_id = message_id.map(|(i, _)| i);
            let header = match self.link.as_ref().map(|l| l.version) {
                Some(Version::V1_2) | None => ack.or(message_id),
                Some(Version::V1_0 | Version::V1_1) => message_id,
            };
            header.and_then(|i| frame.header_value_bytes(i))
        };
        let handle = MessageHandle {
            delivery,
            subscription: id,
            connection: self.connection,
            ack_id,
        };
        self.events.push_back(Event::Message {
            subscription: id,
            handle,
            frame,
            possibly_duplicate,
        });
    }

    // ---------------------------------------------------------------- lifecycle

    fn start_attempt(&mut self, now: Instant, cause: Cause) {
        if let Err(next_probe) = self.retry.try_start(now) {
            self.set_state(State::Failed { next_probe }, Cause::BreakerOpen);
            return;
        }
        self.attempt = self.attempt.saturating_add(1);
        self.attempts_since_success = self.attempts_since_success.saturating_add(1);
        self.stats.attempts += 1;
        self.connect_deadline = now.checked_add(self.config.connect_timeout);
        self.phase = Phase::Opening;
        if self.config.history > 0 {
            if self.history.len() == self.config.history {
                self.history.pop_front();
            }
            self.history.push_back(AttemptRecord {
                attempt: self.attempt,
                started_at: now,
                connected_at: None,
                ended_at: None,
                failure: None,
            });
        }
        self.set_state(State::Connecting, cause);
        self.directives
            .push_back(Directive::Open(Attempt(self.attempt)));
    }

    /// The attempt or the connection failed: tear down, then retry, wait or give up.
    fn connection_failed(&mut self, now: Instant, failure: Failure, close_transport: bool) {
        let kind = failure.kind;
        if self.state == State::Disconnecting {
            // The caller asked to end: a failure now (garbage instead of the RECEIPT) ends
            // the session as a close would, rather than starting a reconnect.
            tracing::debug!(?kind, detail = %failure.detail, "connection failed while disconnecting");
            self.finish_disconnect(now, Cause::Failure(kind), close_transport);
            return;
        }
        tracing::debug!(attempt = self.attempt, ?kind, detail = %failure.detail, "connection failed");
        self.stats.failures += 1;
        self.end_record(now, &failure);
        let oversized = !self.is_healthy()
            && matches!(
                &failure.error,
                Some(Error::Decode(stompkit_codec::Error::LimitExceeded { .. }))
            );
        self.oversized_in_a_row = if oversized {
            self.oversized_in_a_row.saturating_add(1)
        } else {
            0
        };
        self.events.push_back(Event::AttemptFailed {
            attempt: Attempt(self.attempt),
            failure,
        });
        if close_transport {
            self.directives
                .push_back(Directive::Close(Attempt(self.attempt)));
        }
        self.drop_connection(AbortReason::ConnectionLost);

        if self.oversized_in_a_row >= self.config.poison_after {
            // The broker would send the same frame again on the next connection.
            self.retry.failed_for_good(now);
            self.give_up(GiveUpReason::RepeatedFailure(kind), Cause::Failure(kind));
            return;
        }
        let retryable = match kind {
            FailureKind::Handshake(HandshakeFailure::Auth) => {
                self.auth_failures = self.auth_failures.saturating_add(1);
                self.auth_failures <= self.config.auth_retries
            }
            kind => kind.is_retryable(),
        };
        if !retryable {
            self.retry.failed_for_good(now);
            self.give_up(GiveUpReason::NonRetryable(kind), Cause::Failure(kind));
            return;
        }
        match self.retry.failed(now) {
            Decision::RetryAt(at) => {
                self.set_state(State::Reconnecting { at }, Cause::Failure(kind))
            }
            Decision::ProbeAt(next_probe) => {
                self.set_state(State::Failed { next_probe }, Cause::Failure(kind));
            }
            Decision::GiveUp => {
                self.give_up(GiveUpReason::RetriesExhausted, Cause::RetriesExhausted)
            }
        }
    }

    fn give_up(&mut self, reason: GiveUpReason, cause: Cause) {
        self.events.push_back(Event::GaveUp {
            reason,
            attempts: self.attempts_since_success,
        });
        self.close_session(cause);
    }

    fn finish_disconnect(&mut self, now: Instant, cause: Cause, close_transport: bool) {
        if close_transport {
            self.directives
                .push_back(Directive::Close(Attempt(self.attempt)));
        }
        self.end_record(now, &closed_by_user("disconnected by the caller"));
        self.drop_connection(AbortReason::Disconnected);
        self.close_session(cause);
    }

    /// Forgets everything tied to the transport. Receipted sends outside transactions stay
    /// for re-sending; other pending receipts and open transactions are reported lost.
    fn drop_connection(&mut self, abort: AbortReason) {
        self.phase = Phase::Down;
        self.link = None;
        self.connect_deadline = None;
        self.healthy_at = None;
        self.healthy = false;
        self.disconnect = None;
        self.inbuf.clear();
        for (id, message) in std::mem::take(&mut self.unpolled_sends) {
            self.drop_message(id, message, DropReason::ConnectionLost);
        }
        self.out.clear();
        self.out_ends.clear();
        self.stats.connected_since = None;
        for id in std::mem::take(&mut self.transactions).into_keys() {
            self.events
                .push_back(Event::TransactionAborted { id, reason: abort });
        }
        self.receipt_deadlines.clear();
        let receipts = std::mem::take(&mut self.receipts);
        for (n, mut pending) in receipts {
            let resend =
                matches!(pending.id, ReceiptId::Send(id) if self.unconfirmed.contains_key(&id));
            if resend {
                pending.connection = 0;
                self.receipts.insert(n, pending);
            } else if !pending.internal {
                self.events.push_back(Event::Receipt {
                    id: pending.id,
                    outcome: ReceiptOutcome::ConnectionLost,
                });
            }
        }
        for sub in self.subscriptions.values_mut() {
            sub.pending.clear();
        }
    }

    /// Enters [`State::Closed`]: nothing queued, pending or subscribed survives, each
    /// reported.
    fn close_session(&mut self, cause: Cause) {
        let queued = self.queue.drain();
        self.report_dropped(queued, DropReason::SessionClosed);
        for (id, _) in std::mem::take(&mut self.unconfirmed) {
            self.events.push_back(Event::Receipt {
                id: ReceiptId::Send(id),
                outcome: ReceiptOutcome::ConnectionLost,
            });
        }
        for (_, pending) in std::mem::take(&mut self.receipts) {
            if !matches!(pending.id, ReceiptId::Send(_)) && !pending.internal {
                self.events.push_back(Event::Receipt {
                    id: pending.id,
                    outcome: ReceiptOutcome::ConnectionLost,
                });
            }
        }
        self.receipt_deadlines.clear();
        for (id, sub) in std::mem::take(&mut self.subscriptions) {
            self.end_subscription(id, sub, SubscriptionEnd::SessionClosed);
        }
        self.set_state(State::Closed, cause);
    }

    fn end_record(&mut self, now: Instant, failure: &Failure) {
        if let Some(record) = self.history.back_mut() {
            if record.attempt == self.attempt && record.ended_at.is_none() {
                record.ended_at = Some(now);
                record.failure = Some(failure.clone());
            }
        }
    }

    fn set_state(&mut self, to: State, cause: Cause) {
        let from = self.state;
        self.state = to;
        tracing::debug!(?from, ?to, ?cause, "state changed");
        self.events
            .push_back(Event::StateChanged { from, to, cause });
    }

    fn require_connected(&self) -> Result<(), Error> {
        match self.state {
            State::Connected => Ok(()),
            State::Disconnecting | State::Closed => Err(Error::Closing),
            _ => Err(Error::NotConnected),
        }
    }

    // ---------------------------------------------------------------- frames out

    fn write(&mut self, now: Instant, frame: &Frame) -> Result<(), stompkit_codec::Error> {
        let before = self.out.len();
        self.encoder.encode(frame, &mut self.out)?;
        self.count_written(now, frame.command(), before);
        Ok(())
    }

    /// Writes a `SEND`: the one place a `SEND` is encoded, for the connection and for the
    /// size check of a message about to be queued.
    fn encode_send(
        &self,
        encoder: &Encoder,
        id: SendId,
        message: &Message,
        receipt: Option<u64>,
        out: &mut BytesMut,
    ) -> Result<(), Error> {
        let before = out.len();
        let transaction = message.transaction.map(|tx| tx.to_string());
        let receipt_value = receipt.map(|n| Numbered::new(RECEIPT_PREFIX, n));
        // Only receipted sends are re-sent, so only they need the stable id.
        let stable = match (&self.config.message_id_header, receipt) {
            (Some(name), Some(_)) => Some((
                name.as_bytes(),
                Numbered::new(&self.message_id_prefix, id.0),
            )),
            _ => None,
        };
        let headers = std::iter::once((&b"destination"[..], message.destination.as_bytes()))
            .chain(
                message
                    .headers
                    .iter()
                    .map(|(name, value)| (name.as_bytes(), value.as_bytes())),
            )
            .chain(
                stable
                    .as_ref()
                    .map(|(name, value)| (*name, value.as_bytes())),
            )
            .chain(
                transaction
                    .as_deref()
                    .map(|tx| (&b"transaction"[..], tx.as_bytes())),
            )
            .chain(
                receipt_value
                    .as_ref()
                    .map(|n| (&b"receipt"[..], n.as_bytes())),
            );
        encoder
            .encode_parts(Command::Send, headers, &message.body, out)
            .map_err(Error::Encode)?;
        let size = out.len() - before;
        if size > self.config.max_send_frame_bytes {
            out.truncate(before);
            return Err(Error::FrameTooLarge {
                size,
                limit: self.config.max_send_frame_bytes,
            });
        }
        Ok(())
    }

    /// Whether a message to be queued can be written in every offered version (it may be
    /// sent on any), at its largest (with a receipt).
    fn check_send(&self, id: SendId, message: &Message) -> Result<(), Error> {
        let mut scratch = BytesMut::new();
        for version in &self.config.accept_versions {
            let receipt = message.receipt.then_some(u64::MAX);
            let encoder = Encoder::new(*version).with_content_length(self.config.content_length);
            self.encode_send(&encoder, id, message, receipt, &mut scratch)?;
            scratch.clear();
        }
        Ok(())
    }

    fn count_written(&mut self, now: Instant, command: Command, before: usize) {
        self.out_ends.push(self.out.len());
        self.stats.frames_out += 1;
        self.stats.bytes_out += (self.out.len() - before) as u64;
        self.stats.frames_out_by_command.add(command);
        self.stats.last_activity = Some(now);
        if let Some(link) = &mut self.link {
            link.last_tx = now;
        }
    }

    fn connect_frame(&self, credentials: Credentials) -> Frame {
        let offered = &self.config.accept_versions;
        let (cx, cy) = self.config.heart_beat;
        let mut b = Frame::builder(Command::Connect)
            .header("accept-version", version_list(offered))
            .header("host", &self.config.host);
        if let Some(login) = &credentials.login {
            b = b.header("login", login);
        }
        if let Some(passcode) = &credentials.passcode {
            b = b.header("passcode", passcode);
        }
        b = b.header(
            "heart-beat",
            format!("{},{}", cx.as_millis(), cy.as_millis()),
        );
        for (name, value) in &credentials.headers {
            b = b.header(name, value);
        }
        b.build()
    }

    fn write_subscribe(&mut self, now: Instant, id: SubscriptionId) -> Result<(), Error> {
        let n = self.next_receipt;
        let Some(sub) = self.subscriptions.get(&id) else {
            return Err(Error::UnknownSubscription(id));
        };
        let internal = !sub.wants_receipt;
        let frame = subscribe_frame(id, &sub.request, Some(n));
        self.next_receipt += 1;
        self.write(now, &frame).map_err(Error::Encode)?;
        self.track_receipt(now, n, ReceiptId::Subscribe(id), internal);
        Ok(())
    }

    /// Writes a `SEND` on the open connection and tracks its receipt.
    fn transmit_send(
        &mut self,
        now: Instant,
        id: SendId,
        message: Message,
    ) -> Result<(), SendError> {
        let in_flight = InFlight {
            receipt: 0,
            strikes: 0,
            message,
        };
        self.transmit_in_flight(now, id, in_flight)
    }

    /// Writes a `SEND` (new, queued or re-sent) with a fresh receipt number if it wants one.
    fn transmit_in_flight(
        &mut self,
        now: Instant,
        id: SendId,
        mut in_flight: InFlight,
    ) -> Result<(), SendError> {
        let message = &in_flight.message;
        let receipt = message.receipt.then_some(self.next_receipt);
        let before = self.out.len();
        let mut out = std::mem::take(&mut self.out);
        let written = self.encode_send(&self.encoder, id, message, receipt, &mut out);
        self.out = out;
        if let Err(error) = written {
            return Err(SendError::new(error, in_flight.message));
        }
        self.count_written(now, Command::Send, before);
        self.stats
            .destination_mut(message.destination.as_bytes())
            .sent += 1;
        if let Some(n) = receipt {
            self.next_receipt += 1;
            self.track_receipt(now, n, ReceiptId::Send(id), false);
            if in_flight.message.transaction.is_none() {
                in_flight.receipt = n;
                self.unconfirmed.insert(id, in_flight);
            }
        } else {
            self.unpolled_sends.push((id, in_flight.message));
        }
        Ok(())
    }

    /// Records a receipt asked on the current connection, with its deadline.
    fn track_receipt(&mut self, now: Instant, n: u64, id: ReceiptId, internal: bool) {
        self.receipts.insert(
            n,
            PendingReceipt {
                id,
                connection: self.connection,
                internal,
            },
        );
        if let Some(deadline) = now.checked_add(self.config.receipt_timeout) {
            // Keep the queue in time order even if a caller's clock stepped back.
            let deadline = self
                .receipt_deadlines
                .back()
                .map_or(deadline, |(last, _)| deadline.max(*last));
            self.receipt_deadlines.push_back((deadline, n));
        }
    }

    fn acknowledge(
        &mut self,
        now: Instant,
        handle: &MessageHandle,
        options: AckOptions,
        nack: bool,
    ) -> Result<(), Error> {
        self.require_connected()?;
        if handle.connection != self.connection {
            return Err(Error::StaleHandle);
        }
        let version = self.version().unwrap_or(Version::V1_2);
        if nack && version == Version::V1_0 {
            return Err(Error::NackUnsupported);
        }
        if let Some(tx) = options.transaction {
            let Some(acks) = self.transactions.get(&tx) else {
                return Err(Error::UnknownTransaction(tx));
            };
            if acks.0.iter().any(|(_, d, _)| *d == handle.delivery) {
                return Err(Error::AlreadyAcknowledged);
            }
        }
        let sub = self
            .subscriptions
            .get(&handle.subscription)
            .ok_or(Error::UnknownSubscription(handle.subscription))?;
        let mode = sub.request.ack;
        if mode == AckMode::Auto {
            return Err(Error::AutoAck);
        }
        let position = sub
            .pending
            .iter()
            .position(|d| *d == handle.delivery)
            .ok_or(Error::AlreadyAcknowledged)?;

        let command = if nack { Command::Nack } else { Command::Ack };
        let id = handle.ack_id.as_ref().ok_or(Error::MissingAckId)?;
        // Written from its parts: one ACK per message is the consumer's hot path.
        let id_name: &[u8] = match version {
            Version::V1_2 => b"id",
            Version::V1_1 | Version::V1_0 => b"message-id",
        };
        let subscription = (version == Version::V1_1).then(|| handle.subscription.to_string());
        let transaction = options.transaction.map(|tx| tx.to_string());
        let receipt = options.receipt.then(|| {
            let receipt_id = if nack {
                ReceiptId::Nack(handle.delivery)
            } else {
                ReceiptId::Ack(handle.delivery)
            };
            let n = self.take_receipt_number();
            self.track_receipt(now, n, receipt_id, false);
            Numbered::new(RECEIPT_PREFIX, n)
        });
        let headers = std::iter::once((id_name, &id[..]))
            .chain(
                subscription
                    .as_deref()
                    .map(|s| (&b"subscription"[..], s.as_bytes())),
            )
            .chain(
                transaction
                    .as_deref()
                    .map(|tx| (&b"transaction"[..], tx.as_bytes())),
            )
            .chain(receipt.as_ref().map(|n| (&b"receipt"[..], n.as_bytes())));
        let before = self.out.len();
        self.encoder
            .encode_parts(command, headers, &[], &mut self.out)
            .map_err(Error::Encode)?;
        self.count_written(now, command, before);
        let cumulative = mode == AckMode::Client;
        match options.transaction {
            // Takes effect on COMMIT; after ABORT the broker still holds the message.
            Some(tx) => {
                let acks = self.transactions.get_mut(&tx).expect("checked above");
                acks.0
                    .push((handle.subscription, handle.delivery, cumulative));
            }
            None => {
                let sub = self
                    .subscriptions
                    .get_mut(&handle.subscription)
                    .expect("checked above");
                settle(sub, position, cumulative);
            }
        }
        Ok(())
    }

    fn end_transaction(
        &mut self,
        now: Instant,
        id: TransactionId,
        command: Command,
        receipt: Option<ReceiptId>,
    ) -> Result<(), Error> {
        self.require_connected()?;
        if !self.transactions.contains_key(&id) {
            return Err(Error::UnknownTransaction(id));
        }
        let b = Frame::builder(command).header("transaction", id.to_string());
        let b = self.with_receipt(now, b, receipt);
        self.write(now, &b.build()).map_err(Error::Encode)?;
        let acks = self.transactions.remove(&id).unwrap_or_default();
        if command == Command::Commit {
            for (sub, delivery, cumulative) in acks.0 {
                let Some(sub) = self.subscriptions.get_mut(&sub) else {
                    continue;
                };
                if let Some(position) = sub.pending.iter().position(|d| *d == delivery) {
                    settle(sub, position, cumulative);
                }
            }
        }
        Ok(())
    }

    /// Adds a `receipt` header and tracks it.
    fn with_receipt(
        &mut self,
        now: Instant,
        b: FrameBuilder,
        id: Option<ReceiptId>,
    ) -> FrameBuilder {
        match id {
            None => b,
            Some(id) => {
                let n = self.take_receipt_number();
                self.track_receipt(now, n, id, false);
                b.header("receipt", receipt_value(n))
            }
        }
    }

    fn take_receipt_number(&mut self) -> u64 {
        let n = self.next_receipt;
        self.next_receipt += 1;
        n
    }

    fn drop_message(&mut self, id: SendId, message: Message, reason: DropReason) {
        self.stats.messages_dropped += 1;
        self.events.push_back(Event::MessageDropped {
            id,
            reason,
            message: Box::new(message),
        });
    }

    fn report_dropped(&mut self, entries: Vec<Queued>, reason: DropReason) {
        for entry in entries {
            self.drop_message(entry.id, entry.message, reason.clone());
        }
    }

    fn top_version(&self) -> Version {
        *self
            .config
            .accept_versions
            .last()
            .expect("validated: never empty")
    }

    /// Whether `frame` can be written in every offered version (it may be sent on any).
    fn check_encodable(&self, frame: &Frame) -> Result<(), Error> {
        let mut scratch = BytesMut::new();
        for version in &self.config.accept_versions {
            Encoder::new(*version)
                .encode(frame, &mut scratch)
                .map_err(Error::Encode)?;
            scratch.clear();
        }
        Ok(())
    }

    /// A header of the message that the session writes itself.
    fn reserved_header(&self, message: &Message) -> Option<&'static str> {
        let stable = self.config.message_id_header.as_deref();
        message.headers.iter().find_map(|(n, _)| match n.as_str() {
            "receipt" => Some("receipt"),
            "transaction" => Some("transaction"),
            n if Some(n) == stable => Some("message id (SessionConfig::message_id_header)"),
            _ => None,
        })
    }
}

/// Removes an acknowledged delivery (and, cumulatively, every earlier one).
fn settle(sub: &mut Subscription, position: usize, cumulative: bool) {
    if cumulative {
        sub.pending.drain(..=position);
    } else {
        sub.pending.remove(position);
    }
}

fn closed_by_user(detail: &str) -> Failure {
    Failure {
        kind: FailureKind::ClosedByUser,
        detail: detail.to_owned(),
        error: None,
    }
}

fn subscribe_frame(id: SubscriptionId, request: &Subscribe, receipt: Option<u64>) -> Frame {
    let mut b = Frame::builder(Command::Subscribe)
        .header("id", id.to_string())
        .header("destination", &request.destination);
    if request.ack != AckMode::Auto {
        b = b.header("ack", request.ack.as_str());
    }
    for (name, value) in &request.headers {
        b.push_header(name.as_bytes(), value.as_bytes());
    }
    if let Some(n) = receipt {
        b = b.header("receipt", receipt_value(n));
    }
    b.build()
}

fn receipt_value(n: u64) -> String {
    format!("{RECEIPT_PREFIX}{n}")
}

fn parse_receipt(value: &[u8]) -> Option<u64> {
    let digits = value.strip_prefix(RECEIPT_PREFIX.as_bytes())?;
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn version_list(versions: &[Version]) -> String {
    versions
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// A 64-bit mix (SplitMix64's finaliser), so that nearby seeds give unrelated client ids.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
