//! The state machine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use stompkit_codec::{Command, Decoder, Encoder, Frame, FrameBuilder, Item, Version};

use crate::dedup::DuplicateFilter;
use crate::heartbeat;
use crate::queue::{OutboundQueue, PushError, Queued};
use crate::retry::{Decision, Retry};
use crate::{
    AbortReason, AckMode, AckOptions, AttemptRecord, Cause, CloseReason, CommandError, Credentials,
    DeliveryId, DropReason, Event, Failure, FailureKind, GiveUpReason, HandshakeFailure, HeartBeat,
    Message, MessageHandle, ReceiptId, ReceiptOutcome, SendError, SendId, SessionConfig, State,
    Stats, Subscribe, SubscriptionId, TransactionId,
};

/// Prefix of the `receipt` header values the session writes.
const RECEIPT_PREFIX: &[u8] = b"rcpt-";

/// Where the current transport stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No transport.
    Down,
    /// `OpenTransport` emitted; waiting for `transport_connected`.
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
    /// A receipt was asked and the first `SUBSCRIBE` has not been written yet.
    wants_receipt: bool,
}

/// A receipted `SEND` outside a transaction, kept until confirmed so it can be re-sent.
#[derive(Debug)]
struct InFlight {
    message: Message,
    receipt: u64,
}

#[derive(Debug)]
struct PendingReceipt {
    id: ReceiptId,
    /// `None` while the frame waits for a connection to be re-sent on.
    deadline: Option<Instant>,
}

#[derive(Debug)]
struct Disconnect {
    receipt: u64,
    deadline: Instant,
}

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
/// 2. then drains [`poll_transmit`](Self::poll_transmit) (write the bytes, in order, to the
///    transport) and [`poll_event`](Self::poll_event) (act on `OpenTransport` and
///    `CloseTransport`, hand the rest to the application);
/// 3. sleeps until input arrives or [`poll_timeout`](Self::poll_timeout) passes.
///
/// Drain transmits before handing the session new input from another transport: bytes left
/// in the session when the transport drops are discarded with it.
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
    events: VecDeque<Event>,
    retry: Retry,
    /// Attempts over the session's life; the number of the current one.
    attempt: u32,
    attempts_since_success: u32,
    auth_failures: u32,
    ever_connected: bool,
    connect_deadline: Option<Instant>,
    /// Counts transports; tells handles of an earlier connection apart.
    connection: u64,
    link: Option<Link>,
    disconnect: Option<Disconnect>,
    subscriptions: BTreeMap<SubscriptionId, Subscription>,
    transactions: BTreeSet<TransactionId>,
    queue: OutboundQueue,
    unconfirmed: BTreeMap<SendId, InFlight>,
    receipts: BTreeMap<u64, PendingReceipt>,
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
    pub fn new(mut config: SessionConfig, now: Instant) -> Self {
        config.accept_versions.sort();
        config.accept_versions.dedup();
        if config.accept_versions.is_empty() {
            config.accept_versions.push(Version::V1_0);
        }
        if config.heartbeat_grace.is_nan() || config.heartbeat_grace < 1.0 {
            config.heartbeat_grace = 1.0;
        }
        let top = *config.accept_versions.last().expect("not empty");
        let mut stats = Stats::new(config.max_tracked_destinations);
        stats.created_at = Some(now);
        Self {
            retry: Retry::new(config.backoff.clone(), config.breaker.clone(), config.seed),
            decoder: Decoder::with_limits(top, config.limits),
            encoder: Encoder::new(top),
            duplicates: DuplicateFilter::new(config.duplicate_filter),
            history: VecDeque::with_capacity(config.history.min(64)),
            stats,
            config,
            state: State::Idle,
            phase: Phase::Down,
            inbuf: BytesMut::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            attempt: 0,
            attempts_since_success: 0,
            auth_failures: 0,
            ever_connected: false,
            connect_deadline: None,
            connection: 0,
            link: None,
            disconnect: None,
            subscriptions: BTreeMap::new(),
            transactions: BTreeSet::new(),
            queue: OutboundQueue::default(),
            unconfirmed: BTreeMap::new(),
            receipts: BTreeMap::new(),
            next_subscription: 1,
            next_transaction: 1,
            next_send: 1,
            next_delivery: 1,
            next_receipt: 1,
        }
    }

    // ---------------------------------------------------------------- observation

    /// The configuration (after normalisation: versions sorted, grace at least 1.0).
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
        self.transactions.iter().copied()
    }

    // ---------------------------------------------------------------- outputs

    /// Bytes to write to the transport, in order. Everything written since the last call
    /// comes out as one buffer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        let chunk = self.out.split().freeze();
        // Start the next buffer at the size this one reached, so a burst of frames does not
        // grow it by doubling again every time (bounded, so one huge frame is not repeated).
        self.out.reserve(chunk.len().min(64 * 1024));
        Some(chunk)
    }

    /// The next event.
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
                    consider(link.dead_after.map(|d| link.last_rx + d));
                    consider(link.send_every.map(|d| link.last_tx + d));
                }
                consider(self.next_receipt_deadline());
            }
            State::Disconnecting => {
                consider(self.disconnect.as_ref().map(|d| d.deadline));
                consider(self.next_receipt_deadline());
            }
            State::Idle | State::Closed => {}
        }
        if !self.queue.is_empty() {
            consider(self.queue.next_expiry());
        }
        next
    }

    fn next_receipt_deadline(&self) -> Option<Instant> {
        self.receipts.values().filter_map(|r| r.deadline).min()
    }

    // ---------------------------------------------------------------- inputs

    /// Starts connecting (from [`State::Idle`] or [`State::Closed`]); does nothing in other
    /// states. Emits [`Event::OpenTransport`] unless the circuit breaker is open.
    pub fn connect(&mut self, now: Instant) {
        if matches!(self.state, State::Idle | State::Closed) {
            self.attempts_since_success = 0;
            self.auth_failures = 0;
            self.start_attempt(now, Cause::ConnectRequested);
        }
    }

    /// The transport asked for by [`Event::OpenTransport`] is open. Writes `CONNECT` with
    /// `credentials`, asked from the caller for every attempt so expired tokens are not
    /// replayed. Ignored when no transport was asked for.
    pub fn transport_connected(&mut self, now: Instant, credentials: Credentials) {
        if self.state != State::Connecting || self.phase != Phase::Opening {
            tracing::debug!(state = ?self.state, "transport_connected ignored: no transport was asked for");
            return;
        }
        self.connection += 1;
        self.phase = Phase::Handshaking;
        let top = self.top_version();
        self.decoder = Decoder::with_limits(top, self.config.limits);
        self.encoder = Encoder::new(top);
        self.inbuf.clear();
        self.out.clear();

        let frame = self.connect_frame(credentials);
        if let Err(error) = self.write(now, &frame) {
            let failure = Failure {
                kind: FailureKind::Handshake(HandshakeFailure::Credentials),
                detail: format!("CONNECT cannot carry the credentials: {error}"),
            };
            self.connection_failed(now, failure, true);
        }
    }

    /// The transport closed, or could not be opened. Ignored when there is no transport.
    pub fn transport_closed(&mut self, now: Instant, reason: CloseReason) {
        if self.phase == Phase::Down {
            return;
        }
        if self.state == State::Disconnecting {
            self.finish_disconnect(now, Cause::TransportClosed, false);
            return;
        }
        let detail = match reason {
            CloseReason::PeerClosed => "the broker closed the connection".to_owned(),
            CloseReason::Error(e) => e,
        };
        let failure = Failure {
            kind: FailureKind::Network,
            detail,
        };
        self.connection_failed(now, failure, false);
    }

    /// Bytes received from the transport.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if !matches!(self.phase, Phase::Handshaking | Phase::Open) || data.is_empty() {
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
                Ok(Some(Item::Heartbeat)) => self.stats.heartbeats_in += 1,
                Ok(Some(Item::Frame(frame))) => {
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
                let dead = self
                    .link
                    .as_ref()
                    .and_then(|l| l.dead_after.filter(|d| l.last_rx + *d <= now));
                if let Some(after) = dead {
                    let failure = Failure {
                        kind: FailureKind::HeartbeatLost,
                        detail: format!("nothing received for {} ms", after.as_millis()),
                    };
                    self.connection_failed(now, failure, true);
                    return;
                }
                self.expire_receipts(now);
                let due = self
                    .link
                    .as_ref()
                    .and_then(|l| l.send_every.filter(|d| l.last_tx + *d <= now));
                if due.is_some() {
                    self.out.put_u8(b'\n');
                    self.stats.heartbeats_out += 1;
                    self.stats.bytes_out += 1;
                    self.stats.last_activity = Some(now);
                    if let Some(link) = &mut self.link {
                        link.last_tx = now;
                    }
                }
            }
            State::Disconnecting => {
                if self.disconnect.as_ref().is_some_and(|d| d.deadline <= now) {
                    self.finish_disconnect(now, Cause::DisconnectTimedOut, true);
                    return;
                }
                self.expire_receipts(now);
            }
            State::Idle | State::Closed | State::Reconnecting { .. } | State::Failed { .. } => {}
        }
    }

    fn expire_receipts(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .receipts
            .iter()
            .filter(|(_, r)| r.deadline.is_some_and(|t| t <= now))
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            if let Some(pending) = self.receipts.remove(&n) {
                if let ReceiptId::Send(id) = pending.id {
                    self.unconfirmed.remove(&id);
                }
                self.events.push_back(Event::Receipt {
                    id: pending.id,
                    outcome: ReceiptOutcome::TimedOut,
                });
            }
        }
    }

    // ---------------------------------------------------------------- commands

    /// Subscribes. Before the connection is up the subscription is recorded and sent once
    /// connected; after every reconnect it is sent again with the same id and headers.
    ///
    /// # Errors
    /// [`CommandError::Closing`] while disconnecting; [`CommandError::Invalid`] when a
    /// header cannot be written in one of the offered versions.
    pub fn subscribe(
        &mut self,
        now: Instant,
        request: Subscribe,
    ) -> Result<SubscriptionId, CommandError> {
        if self.state == State::Disconnecting {
            return Err(CommandError::Closing);
        }
        let id = SubscriptionId(self.next_subscription);
        let probe = subscribe_frame(id, &request, None, self.version().unwrap_or(Version::V1_2));
        self.check_encodable(&probe)
            .map_err(CommandError::Invalid)?;
        self.next_subscription += 1;
        self.subscriptions.insert(
            id,
            Subscription {
                wants_receipt: request.receipt,
                request,
                pending: VecDeque::new(),
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
    /// [`CommandError::UnknownSubscription`], [`CommandError::Closing`].
    pub fn unsubscribe(
        &mut self,
        now: Instant,
        id: SubscriptionId,
        receipt: bool,
    ) -> Result<(), CommandError> {
        if self.state == State::Disconnecting {
            return Err(CommandError::Closing);
        }
        let sub = self
            .subscriptions
            .remove(&id)
            .ok_or(CommandError::UnknownSubscription(id))?;
        let receipt_id = ReceiptId::Unsubscribe(id);
        if self.state == State::Connected {
            let version = self.version().unwrap_or(Version::V1_2);
            let mut b = Frame::builder(Command::Unsubscribe).header("id", id.to_string());
            if version == Version::V1_0 {
                b = b.header("destination", &sub.request.destination);
            }
            let b = self.with_receipt(now, b, receipt.then_some(receipt_id));
            self.write(now, &b.build())
                .map_err(|e| CommandError::Invalid(e.to_string()))?;
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
    /// priority order after the next `CONNECTED`).
    ///
    /// A message expired already is reported dropped at once. A message with
    /// [`receipt`](Message::receipt) outside a transaction is delivered at least once: it
    /// is re-sent after a reconnect until its receipt arrives, an `ERROR` names it, or its
    /// receipt times out on an open connection.
    ///
    /// # Errors
    /// The message comes back inside the error: queue full (with
    /// [`OverflowPolicy::RejectNew`](crate::OverflowPolicy::RejectNew)), too large,
    /// disconnecting, transaction not open, or not writable as a frame.
    pub fn send(&mut self, now: Instant, message: Message) -> Result<SendId, SendError> {
        if let Some(reason) = reserved_header(&message) {
            return Err(SendError::Invalid {
                message: Box::new(message),
                reason,
            });
        }
        match self.state {
            State::Disconnecting => Err(SendError::Closing(Box::new(message))),
            State::Connected => {
                if let Some(tx) = message.transaction {
                    if !self.transactions.contains(&tx) {
                        return Err(SendError::TransactionNotOpen(Box::new(message)));
                    }
                }
                let id = SendId(self.next_send);
                match self.transmit_send(now, id, message) {
                    Ok(()) => {
                        self.next_send += 1;
                        Ok(id)
                    }
                    Err(failed) => {
                        let (message, error) = *failed;
                        Err(SendError::Invalid {
                            message: Box::new(message),
                            reason: error.to_string(),
                        })
                    }
                }
            }
            _ => {
                if message.transaction.is_some() {
                    return Err(SendError::TransactionNotOpen(Box::new(message)));
                }
                if let Err(reason) = self.check_encodable(&send_frame(&message, Some(0))) {
                    return Err(SendError::Invalid {
                        message: Box::new(message),
                        reason,
                    });
                }
                let id = SendId(self.next_send);
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
                    Err(PushError::Full(m)) => Err(SendError::QueueFull(Box::new(m))),
                    Err(PushError::TooLarge(m)) => Err(SendError::TooLarge(Box::new(m))),
                }
            }
        }
    }

    /// Acknowledges a message (cumulatively on `client` subscriptions).
    ///
    /// # Errors
    /// See [`CommandError`]: not connected, stale handle, `ack:auto`, already acknowledged.
    pub fn ack(&mut self, now: Instant, handle: &MessageHandle) -> Result<(), CommandError> {
        self.acknowledge(now, handle, AckOptions::default(), false)
    }

    /// [`ack`](Self::ack) inside a transaction and/or with a receipt.
    ///
    /// # Errors
    /// As [`ack`](Self::ack), and [`CommandError::UnknownTransaction`].
    pub fn ack_with(
        &mut self,
        now: Instant,
        handle: &MessageHandle,
        options: AckOptions,
    ) -> Result<(), CommandError> {
        self.acknowledge(now, handle, options, false)
    }

    /// Refuses a message (`NACK`; not in STOMP 1.0).
    ///
    /// # Errors
    /// As [`ack`](Self::ack), and [`CommandError::NackUnsupported`] on 1.0.
    pub fn nack(&mut self, now: Instant, handle: &MessageHandle) -> Result<(), CommandError> {
        self.acknowledge(now, handle, AckOptions::default(), true)
    }

    /// [`nack`](Self::nack) inside a transaction and/or with a receipt.
    ///
    /// # Errors
    /// As [`nack`](Self::nack), and [`CommandError::UnknownTransaction`].
    pub fn nack_with(
        &mut self,
        now: Instant,
        handle: &MessageHandle,
        options: AckOptions,
    ) -> Result<(), CommandError> {
        self.acknowledge(now, handle, options, true)
    }

    /// Begins a transaction on the current connection. If the connection drops before
    /// `COMMIT`, it is reported with [`Event::TransactionAborted`] and nothing of it is
    /// replayed.
    ///
    /// # Errors
    /// [`CommandError::NotConnected`], [`CommandError::Closing`].
    pub fn begin(&mut self, now: Instant, receipt: bool) -> Result<TransactionId, CommandError> {
        self.require_connected()?;
        let id = TransactionId(self.next_transaction);
        self.next_transaction += 1;
        let b = Frame::builder(Command::Begin).header("transaction", id.to_string());
        let b = self.with_receipt(now, b, receipt.then_some(ReceiptId::Begin(id)));
        self.write(now, &b.build())
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
        self.transactions.insert(id);
        Ok(id)
    }

    /// Commits a transaction.
    ///
    /// # Errors
    /// [`CommandError::UnknownTransaction`], [`CommandError::NotConnected`].
    pub fn commit(
        &mut self,
        now: Instant,
        id: TransactionId,
        receipt: bool,
    ) -> Result<(), CommandError> {
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
    /// [`CommandError::UnknownTransaction`], [`CommandError::NotConnected`].
    pub fn abort(
        &mut self,
        now: Instant,
        id: TransactionId,
        receipt: bool,
    ) -> Result<(), CommandError> {
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
                for id in std::mem::take(&mut self.transactions) {
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
                    deadline: now + self.config.disconnect_timeout,
                });
                self.set_state(State::Disconnecting, Cause::DisconnectRequested);
            }
            State::Connecting | State::Reconnecting { .. } | State::Failed { .. } => {
                if self.state == State::Connecting {
                    self.retry.cancelled(now);
                    self.end_record(now, FailureKind::ClosedByUser, "closed by the caller");
                }
                if self.phase != Phase::Down {
                    self.events.push_back(Event::CloseTransport);
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
                let failure = Failure {
                    kind: FailureKind::Protocol,
                    detail: match phase {
                        Phase::Handshaking => format!("expected CONNECTED, received {command}"),
                        _ => format!("unexpected {command} from the broker"),
                    },
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
                let failure = Failure {
                    kind: FailureKind::Handshake(HandshakeFailure::Version),
                    detail: format!(
                        "the broker chose version {chosen}, offered {}",
                        version_list(offered)
                    ),
                };
                self.connection_failed(now, failure, true);
                return;
            }
        };
        let heart_beat = if version == Version::V1_0 {
            HeartBeat::default()
        } else {
            let theirs = match frame.header("heart-beat") {
                None => Some((0, 0)),
                Some(v) => heartbeat::parse(v),
            };
            let Some(theirs) = theirs else {
                let failure = Failure {
                    kind: FailureKind::Protocol,
                    detail: "malformed heart-beat header in CONNECTED".to_owned(),
                };
                self.connection_failed(now, failure, true);
                return;
            };
            heartbeat::negotiate(self.config.heart_beat, theirs)
        };
        self.decoder.set_version(version);
        self.encoder.set_version(version);
        self.phase = Phase::Open;
        self.connect_deadline = None;
        self.link = Some(Link {
            version,
            send_every: heart_beat.send,
            dead_after: heart_beat
                .expect
                .map(|d| d.mul_f64(self.config.heartbeat_grace)),
            last_rx: now,
            last_tx: now,
        });
        self.retry.succeeded(now);
        self.auth_failures = 0;
        self.attempts_since_success = 0;
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
            if self.write_subscribe(now, id).is_err() {
                tracing::warn!(%id, "resubscribe could not be written");
            }
        }
        let unconfirmed: Vec<SendId> = self.unconfirmed.keys().copied().collect();
        for id in unconfirmed {
            let Some(in_flight) = self.unconfirmed.get(&id) else {
                continue;
            };
            let receipt = in_flight.receipt;
            if in_flight.message.expires_at.is_some_and(|t| t <= now) {
                let in_flight = self.unconfirmed.remove(&id).expect("present");
                self.receipts.remove(&receipt);
                self.drop_message(id, in_flight.message, DropReason::Expired);
                continue;
            }
            let frame = send_frame(&in_flight.message, Some(receipt));
            if self.write(now, &frame).is_ok() {
                self.count_sent(&frame);
                if let Some(pending) = self.receipts.get_mut(&receipt) {
                    pending.deadline = Some(now + self.config.receipt_timeout);
                }
            }
        }
        while let Some(Queued { id, message, .. }) = self.queue.pop_front() {
            if message.expires_at.is_some_and(|t| t <= now) {
                self.drop_message(id, message, DropReason::Expired);
                continue;
            }
            if let Err(failed) = self.transmit_send(now, id, message) {
                let (message, error) = *failed;
                tracing::warn!(%id, %error, "queued message could not be written");
                self.drop_message(id, message, DropReason::Unencodable);
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
        let detail = error_detail(message.as_deref(), &frame);
        self.events.push_back(Event::ServerError { message, frame });
        self.connection_failed(
            now,
            Failure {
                kind: FailureKind::Handshake(kind),
                detail,
            },
            true,
        );
    }

    fn on_error(&mut self, now: Instant, frame: Frame) {
        self.stats.errors += 1;
        let message = frame.header_str("message").map(str::to_owned);
        if let Some(n) = frame.header("receipt-id").and_then(parse_receipt) {
            if let Some(pending) = self.receipts.remove(&n) {
                if let ReceiptId::Send(id) = pending.id {
                    self.unconfirmed.remove(&id);
                }
                self.events.push_back(Event::Receipt {
                    id: pending.id,
                    outcome: ReceiptOutcome::Error(Box::new(frame.clone())),
                });
            }
        }
        let detail = error_detail(message.as_deref(), &frame);
        self.events.push_back(Event::ServerError { message, frame });
        if self.state == State::Disconnecting {
            self.finish_disconnect(now, Cause::Failure(FailureKind::ServerError), true);
        } else {
            let failure = Failure {
                kind: FailureKind::ServerError,
                detail,
            };
            self.connection_failed(now, failure, true);
        }
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
        if let Some(pending) = self.receipts.remove(&n) {
            if let ReceiptId::Send(id) = pending.id {
                self.unconfirmed.remove(&id);
            }
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
        for (i, (name, value)) in frame.headers().enumerate() {
            match name {
                b"subscription" if subscription.is_none() => subscription = Some(value),
                b"message-id" if message_id.is_none() => message_id = Some((i, value)),
                b"ack" if ack.is_none() => ack = Some(i),
                b"destination" if destination.is_none() => destination = Some(value),
                b"redelivered" => redelivered |= value == b"true",
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
        let seen = message_id.is_some_and(|(_, m)| self.duplicates.check_and_insert(m));
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
        self.connect_deadline = Some(now + self.config.connect_timeout);
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
        self.events.push_back(Event::OpenTransport {
            attempt: self.attempt,
        });
    }

    /// The attempt or the connection failed: tear down, then retry, wait or give up.
    fn connection_failed(&mut self, now: Instant, failure: Failure, close_transport: bool) {
        let kind = failure.kind;
        tracing::debug!(attempt = self.attempt, ?kind, detail = %failure.detail, "connection failed");
        self.stats.failures += 1;
        self.end_record(now, kind, &failure.detail);
        self.events.push_back(Event::AttemptFailed {
            attempt: self.attempt,
            failure,
        });
        if close_transport {
            self.events.push_back(Event::CloseTransport);
        }
        self.drop_connection(AbortReason::ConnectionLost);

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
            self.events.push_back(Event::CloseTransport);
        }
        self.end_record(now, FailureKind::ClosedByUser, "disconnected by the caller");
        self.drop_connection(AbortReason::Disconnected);
        self.close_session(cause);
    }

    /// Forgets everything tied to the transport. Receipted sends outside transactions stay
    /// for re-sending; other pending receipts and open transactions are reported lost.
    fn drop_connection(&mut self, abort: AbortReason) {
        self.phase = Phase::Down;
        self.link = None;
        self.connect_deadline = None;
        self.disconnect = None;
        self.inbuf.clear();
        self.out.clear();
        self.stats.connected_since = None;
        for id in std::mem::take(&mut self.transactions) {
            self.events
                .push_back(Event::TransactionAborted { id, reason: abort });
        }
        let receipts = std::mem::take(&mut self.receipts);
        for (n, mut pending) in receipts {
            let resend =
                matches!(pending.id, ReceiptId::Send(id) if self.unconfirmed.contains_key(&id));
            if resend {
                pending.deadline = None;
                self.receipts.insert(n, pending);
            } else {
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

    /// Enters [`State::Closed`]: nothing queued or pending survives, each reported.
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
            if !matches!(pending.id, ReceiptId::Send(_)) {
                self.events.push_back(Event::Receipt {
                    id: pending.id,
                    outcome: ReceiptOutcome::ConnectionLost,
                });
            }
        }
        for (id, sub) in std::mem::take(&mut self.subscriptions) {
            if sub.wants_receipt {
                self.events.push_back(Event::Receipt {
                    id: ReceiptId::Subscribe(id),
                    outcome: ReceiptOutcome::ConnectionLost,
                });
            }
        }
        self.set_state(State::Closed, cause);
    }

    fn end_record(&mut self, now: Instant, kind: FailureKind, detail: &str) {
        if let Some(record) = self.history.back_mut() {
            if record.attempt == self.attempt && record.ended_at.is_none() {
                record.ended_at = Some(now);
                record.failure = Some(Failure {
                    kind,
                    detail: detail.to_owned(),
                });
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

    fn require_connected(&self) -> Result<(), CommandError> {
        match self.state {
            State::Connected => Ok(()),
            State::Disconnecting | State::Closed => Err(CommandError::Closing),
            _ => Err(CommandError::NotConnected),
        }
    }

    // ---------------------------------------------------------------- frames out

    fn write(&mut self, now: Instant, frame: &Frame) -> Result<(), stompkit_codec::Error> {
        let before = self.out.len();
        self.encoder.encode(frame, &mut self.out)?;
        self.count_written(now, frame.command(), before);
        Ok(())
    }

    /// Writes a `SEND` straight from the message, without building a [`Frame`] first.
    fn write_send(
        &mut self,
        now: Instant,
        message: &Message,
        receipt: Option<u64>,
    ) -> Result<(), stompkit_codec::Error> {
        let transaction = message.transaction.map(|tx| tx.to_string());
        let receipt = receipt.map(receipt_value);
        let headers = std::iter::once((&b"destination"[..], message.destination.as_bytes()))
            .chain(
                message
                    .headers
                    .iter()
                    .map(|(name, value)| (name.as_bytes(), value.as_bytes())),
            )
            .chain(
                transaction
                    .as_deref()
                    .map(|tx| (&b"transaction"[..], tx.as_bytes())),
            )
            .chain(receipt.as_deref().map(|n| (&b"receipt"[..], n.as_bytes())));
        let before = self.out.len();
        self.encoder
            .encode_parts(Command::Send, headers, &message.body, &mut self.out)?;
        self.count_written(now, Command::Send, before);
        Ok(())
    }

    fn count_written(&mut self, now: Instant, command: Command, before: usize) {
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

    fn write_subscribe(&mut self, now: Instant, id: SubscriptionId) -> Result<(), CommandError> {
        let version = self.version().unwrap_or(Version::V1_2);
        let Some(sub) = self.subscriptions.get_mut(&id) else {
            return Err(CommandError::UnknownSubscription(id));
        };
        let receipt = if sub.wants_receipt {
            sub.wants_receipt = false;
            Some(self.take_receipt_number())
        } else {
            None
        };
        let sub = &self.subscriptions[&id];
        let frame = subscribe_frame(id, &sub.request, receipt, version);
        if let Some(n) = receipt {
            self.receipts.insert(
                n,
                PendingReceipt {
                    id: ReceiptId::Subscribe(id),
                    deadline: Some(now + self.config.receipt_timeout),
                },
            );
        }
        self.write(now, &frame)
            .map_err(|e| CommandError::Invalid(e.to_string()))
    }

    /// Writes a `SEND` on the open connection and tracks its receipt.
    fn transmit_send(
        &mut self,
        now: Instant,
        id: SendId,
        message: Message,
    ) -> Result<(), Box<(Message, stompkit_codec::Error)>> {
        let receipt = message.receipt.then_some(self.next_receipt);
        if let Err(error) = self.write_send(now, &message, receipt) {
            return Err(Box::new((message, error)));
        }
        self.stats
            .destination_mut(message.destination.as_bytes())
            .sent += 1;
        if let Some(n) = receipt {
            self.next_receipt += 1;
            self.receipts.insert(
                n,
                PendingReceipt {
                    id: ReceiptId::Send(id),
                    deadline: Some(now + self.config.receipt_timeout),
                },
            );
            if message.transaction.is_none() {
                self.unconfirmed.insert(
                    id,
                    InFlight {
                        message,
                        receipt: n,
                    },
                );
            }
        }
        Ok(())
    }

    fn count_sent(&mut self, frame: &Frame) {
        if let Some(d) = frame.header("destination") {
            self.stats.destination_mut(d).sent += 1;
        }
    }

    fn acknowledge(
        &mut self,
        now: Instant,
        handle: &MessageHandle,
        options: AckOptions,
        nack: bool,
    ) -> Result<(), CommandError> {
        self.require_connected()?;
        if handle.connection != self.connection {
            return Err(CommandError::StaleHandle);
        }
        let version = self.version().unwrap_or(Version::V1_2);
        if nack && version == Version::V1_0 {
            return Err(CommandError::NackUnsupported);
        }
        if let Some(tx) = options.transaction {
            if !self.transactions.contains(&tx) {
                return Err(CommandError::UnknownTransaction(tx));
            }
        }
        let sub = self
            .subscriptions
            .get(&handle.subscription)
            .ok_or(CommandError::UnknownSubscription(handle.subscription))?;
        let mode = sub.request.ack;
        if mode == AckMode::Auto {
            return Err(CommandError::AutoAck);
        }
        let position = sub
            .pending
            .iter()
            .position(|d| *d == handle.delivery)
            .ok_or(CommandError::AlreadyAcknowledged)?;

        let command = if nack { Command::Nack } else { Command::Ack };
        let mut b = Frame::builder(command);
        let id = handle.ack_id.as_ref().ok_or(CommandError::MissingAckId)?;
        b = match version {
            Version::V1_2 => b.header("id", id),
            Version::V1_1 => b
                .header("message-id", id)
                .header("subscription", handle.subscription.to_string()),
            Version::V1_0 => b.header("message-id", id),
        };
        if let Some(tx) = options.transaction {
            b = b.header("transaction", tx.to_string());
        }
        let receipt_id = if nack {
            ReceiptId::Nack(handle.delivery)
        } else {
            ReceiptId::Ack(handle.delivery)
        };
        let b = self.with_receipt(now, b, options.receipt.then_some(receipt_id));
        self.write(now, &b.build())
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
        let sub = self
            .subscriptions
            .get_mut(&handle.subscription)
            .expect("checked above");
        match mode {
            // Cumulative: this one and every earlier one.
            AckMode::Client => drop(sub.pending.drain(..=position)),
            _ => drop(sub.pending.remove(position)),
        }
        Ok(())
    }

    fn end_transaction(
        &mut self,
        now: Instant,
        id: TransactionId,
        command: Command,
        receipt: Option<ReceiptId>,
    ) -> Result<(), CommandError> {
        self.require_connected()?;
        if !self.transactions.contains(&id) {
            return Err(CommandError::UnknownTransaction(id));
        }
        let b = Frame::builder(command).header("transaction", id.to_string());
        let b = self.with_receipt(now, b, receipt);
        self.write(now, &b.build())
            .map_err(|e| CommandError::Invalid(e.to_string()))?;
        self.transactions.remove(&id);
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
                self.receipts.insert(
                    n,
                    PendingReceipt {
                        id,
                        deadline: Some(now + self.config.receipt_timeout),
                    },
                );
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
            self.drop_message(entry.id, entry.message, reason);
        }
    }

    fn top_version(&self) -> Version {
        *self.config.accept_versions.last().expect("never empty")
    }

    /// Whether `frame` can be written in every offered version (it may be sent on any).
    fn check_encodable(&self, frame: &Frame) -> Result<(), String> {
        let mut scratch = BytesMut::new();
        for version in &self.config.accept_versions {
            Encoder::new(*version)
                .encode(frame, &mut scratch)
                .map_err(|e| e.to_string())?;
            scratch.clear();
        }
        Ok(())
    }
}

fn send_frame(message: &Message, receipt: Option<u64>) -> Frame {
    let mut b = Frame::builder(Command::Send).header("destination", &message.destination);
    for (name, value) in &message.headers {
        b.push_header(name.as_bytes(), value.as_bytes());
    }
    if let Some(tx) = message.transaction {
        b = b.header("transaction", tx.to_string());
    }
    if let Some(n) = receipt {
        b = b.header("receipt", receipt_value(n));
    }
    b.body(message.body.clone()).build()
}

fn subscribe_frame(
    id: SubscriptionId,
    request: &Subscribe,
    receipt: Option<u64>,
    _version: Version,
) -> Frame {
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

fn reserved_header(message: &Message) -> Option<String> {
    message
        .headers
        .iter()
        .find(|(n, _)| n == "receipt" || n == "transaction")
        .map(|(n, _)| format!("the {n:?} header is set by the session"))
}

fn receipt_value(n: u64) -> String {
    format!("rcpt-{n}")
}

fn parse_receipt(value: &[u8]) -> Option<u64> {
    let digits = value.strip_prefix(RECEIPT_PREFIX)?;
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

fn error_detail(message: Option<&str>, frame: &Frame) -> String {
    let body = String::from_utf8_lossy(&frame.body()[..frame.body().len().min(200)]);
    let body = body.trim();
    match (message, body.is_empty()) {
        (Some(m), true) => m.to_owned(),
        (Some(m), false) => format!("{m}: {body}"),
        (None, _) => body.to_owned(),
    }
}
