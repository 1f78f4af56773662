//! The background task: one loop around the session that moves bytes, timers and commands.
//!
//! Order of work in every turn: the session's directives, then its transmits (handed to
//! the writing task), then its events; then wait for input first, then a finished connect,
//! a writer failure, commands, and only then timers (`select!` is biased in that order), so
//! that input that was waiting during a stall is read before a heart-beat deadline is
//! judged. Writes run on their own task, so a slow socket never delays reads or timers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use stompkit_session::{
    AckOptions, Attempt, CloseReason, Credentials, Directive, Event, Failure, Message,
    MessageHandle, ReceiptId, ReceiptOutcome, SendId, Session, State, Stats, Subscribe,
    SubscriptionId, TransactionId, Transmit,
};
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tracing::Instrument;

use crate::client::{ClientConfig, ClientEvent};
use crate::credentials::CredentialsSource;
use crate::metrics::Metrics;
use crate::subscription::{Delivery, Subscription, SubscriptionState};
use crate::{Client, Endpoint, Error, TransportConfig, TransportReader, TransportWriter};

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a handle asks of the task.
#[derive(Debug)]
pub(crate) enum Command {
    Send {
        message: Message,
        confirm: Option<Reply<()>>,
        reply: Reply<SendId>,
    },
    Subscribe {
        request: Subscribe,
        confirm: Option<Reply<()>>,
        reply: Reply<Subscription>,
    },
    Unsubscribe {
        id: SubscriptionId,
    },
    Ack {
        handle: MessageHandle,
        nack: bool,
        transaction: Option<TransactionId>,
        receipt: bool,
        reply: Reply<()>,
    },
    Begin {
        reply: Reply<TransactionId>,
    },
    End {
        id: TransactionId,
        commit: bool,
        reply: Reply<()>,
    },
    ReconnectNow,
    Disconnect {
        reply: Reply<()>,
    },
    Stats {
        reply: Reply<Stats>,
    },
    Status {
        reply: Reply<crate::client::Status>,
    },
}

/// What the task shares with the handles, the subscriptions and the writing tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Bytes of deliveries waiting in subscriptions.
    pub(crate) buffered: AtomicUsize,
    pub(crate) max_buffered: usize,
    /// Woken when the application took enough out of its subscriptions.
    pub(crate) resume: Notify,
    /// Woken when a writing task wrote something.
    written: Notify,
    /// Why the session gave up, for [`Client::wait_connected`].
    gave_up: Mutex<Option<Error>>,
}

impl Shared {
    pub(crate) fn gave_up(&self) -> Option<Error> {
        self.gave_up.lock().ok()?.clone()
    }
}

enum WriterMessage {
    Data(Transmit),
    Close,
}

struct Connection {
    attempt: Attempt,
    endpoint: usize,
    reader: TransportReader,
    input: BytesMut,
    writer: mpsc::UnboundedSender<WriterMessage>,
    /// Bytes handed to this connection's writing task and not written yet.
    unwritten: Arc<AtomicUsize>,
}

struct Opened {
    attempt: Attempt,
    endpoint: usize,
    result: Result<(TransportReader, TransportWriter, Credentials), Error>,
}

struct Route {
    deliveries: mpsc::UnboundedSender<Delivery>,
    state: Arc<SubscriptionState>,
}

pub(crate) struct Driver {
    session: Session,
    endpoints: Arc<Vec<Endpoint>>,
    transport: Arc<TransportConfig>,
    credentials: CredentialsSource,
    max_unwritten: usize,
    commands: mpsc::Receiver<Command>,
    control: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    /// Weak, so that the task ends when the last handle is dropped.
    weak_commands: mpsc::WeakSender<Command>,
    weak_control: mpsc::WeakUnboundedSender<Command>,
    state: watch::Sender<State>,
    state_rx: watch::Receiver<State>,
    events: broadcast::Sender<ClientEvent>,
    shared: Arc<Shared>,
    connection: Option<Connection>,
    /// The attempt whose transport is being opened.
    opening: Option<Attempt>,
    opened_tx: mpsc::UnboundedSender<Opened>,
    opened_rx: mpsc::UnboundedReceiver<Opened>,
    write_failed_tx: mpsc::UnboundedSender<(Attempt, Error)>,
    write_failed_rx: mpsc::UnboundedReceiver<(Attempt, Error)>,
    routes: HashMap<SubscriptionId, Route>,
    /// `send_confirmed` waiters, with when the message was sent.
    confirmations: HashMap<SendId, (Reply<()>, Instant)>,
    metrics: Metrics,
    receipts: HashMap<ReceiptId, Reply<()>>,
    disconnecting: Vec<Reply<()>>,
    last_failure: Option<Failure>,
    /// The typed error of the last transport that failed to open.
    last_transport_error: Option<Error>,
    /// Set once the task should end when the session is closed.
    ending: bool,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Driver {
    pub(crate) fn new(
        config: ClientConfig,
        commands: mpsc::Receiver<Command>,
        control: mpsc::UnboundedReceiver<Command>,
        events: broadcast::Sender<ClientEvent>,
        weak: (
            mpsc::WeakSender<Command>,
            mpsc::WeakUnboundedSender<Command>,
        ),
    ) -> Result<(Self, watch::Receiver<State>), Error> {
        let session = Session::new(config.session, now()).map_err(Error::Session)?;
        let (state, state_rx) = watch::channel(session.state());
        let (opened_tx, opened_rx) = mpsc::unbounded_channel();
        let (write_failed_tx, write_failed_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            buffered: AtomicUsize::new(0),
            max_buffered: config.max_buffered_bytes,
            resume: Notify::new(),
            written: Notify::new(),
            gave_up: Mutex::new(None),
        });
        let driver = Self {
            session,
            endpoints: Arc::new(config.endpoints),
            transport: Arc::new(config.transport),
            credentials: config.credentials,
            max_unwritten: config.max_unwritten_bytes,
            commands,
            control,
            commands_open: true,
            weak_commands: weak.0,
            weak_control: weak.1,
            state,
            state_rx: state_rx.clone(),
            events,
            shared,
            connection: None,
            opening: None,
            opened_tx,
            opened_rx,
            write_failed_tx,
            write_failed_rx,
            routes: HashMap::new(),
            confirmations: HashMap::new(),
            metrics: Metrics::new(&config.name),
            receipts: HashMap::new(),
            disconnecting: Vec::new(),
            last_failure: None,
            last_transport_error: None,
            ending: false,
        };
        Ok((driver, state_rx))
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    pub(crate) async fn run(mut self) {
        self.session.connect(now());
        loop {
            self.drain();
            if self.ending && self.session.state() == State::Closed {
                break;
            }
            let deadline = self
                .session
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let reading = self.connection.is_some()
                && self.shared.buffered.load(Ordering::Acquire) <= self.shared.max_buffered;
            let writable = self
                .connection
                .as_ref()
                .is_none_or(|c| c.unwritten.load(Ordering::Acquire) <= self.max_unwritten);
            let accepting = self.commands_open && writable;
            tokio::select! {
                biased;
                input = read(&mut self.connection), if reading => self.on_input(input),
                Some(opened) = self.opened_rx.recv() => self.on_opened(opened),
                Some((attempt, error)) = self.write_failed_rx.recv() => self.on_write_failed(attempt, error),
                Some(command) = self.control.recv() => self.on_command(command),
                command = self.commands.recv(), if accepting => match command {
                    Some(command) => self.on_command(command),
                    None => self.every_handle_dropped(),
                },
                () = sleep_until(deadline), if deadline.is_some() => self.session.handle_timeout(now()),
                () = self.shared.resume.notified(), if self.connection.is_some() && !reading => {}
                () = self.shared.written.notified(), if self.commands_open && !writable => {}
            }
        }
        for reply in self.disconnecting.drain(..) {
            let _ = reply.send(Ok(()));
        }
        tracing::debug!("client task ended");
    }

    fn every_handle_dropped(&mut self) {
        self.commands_open = false;
        if !self.ending {
            tracing::debug!("every client handle dropped: disconnecting");
            self.ending = true;
            self.session.disconnect(now());
        }
    }

    // ------------------------------------------------------------ session outputs

    fn drain(&mut self) {
        loop {
            let mut moved = false;
            while let Some(directive) = self.session.poll_directive() {
                moved = true;
                self.on_directive(directive);
            }
            while let Some(transmit) = self.session.poll_transmit() {
                moved = true;
                match &self.connection {
                    Some(c) => {
                        c.unwritten.fetch_add(transmit.len(), Ordering::AcqRel);
                        let _ = c.writer.send(WriterMessage::Data(transmit));
                    }
                    None => tracing::warn!("bytes to write with no transport"),
                }
            }
            while let Some(event) = self.session.poll_event() {
                moved = true;
                self.on_event(event);
            }
            if !moved {
                self.metrics.levels(
                    self.session.queued(),
                    self.session.unconfirmed(),
                    self.shared.buffered.load(Ordering::Relaxed),
                );
                return;
            }
        }
    }

    fn on_directive(&mut self, directive: Directive) {
        match directive {
            Directive::Open(attempt) => {
                let index = (attempt.number().saturating_sub(1) as usize) % self.endpoints.len();
                self.opening = Some(attempt);
                let endpoints = Arc::clone(&self.endpoints);
                let transport = Arc::clone(&self.transport);
                let credentials = self.credentials.clone();
                let opened = self.opened_tx.clone();
                let span = tracing::info_span!("attempt", n = attempt.number(), endpoint = %endpoints[index]);
                tokio::spawn(
                    async move {
                        let endpoint = &endpoints[index];
                        let result = match credentials.get(endpoint, attempt).await {
                            Ok(creds) => crate::transport::connect(endpoint, &transport)
                                .await
                                .map(|(r, w)| (r, w, creds)),
                            Err(reason) => Err(Error::Credentials(reason)),
                        };
                        let _ = opened.send(Opened {
                            attempt,
                            endpoint: index,
                            result,
                        });
                    }
                    .instrument(span),
                );
            }
            Directive::Close(attempt) => {
                if self.opening == Some(attempt) {
                    self.opening = None;
                }
                if self
                    .connection
                    .as_ref()
                    .is_some_and(|c| c.attempt == attempt)
                {
                    if let Some(c) = self.connection.take() {
                        let _ = c.writer.send(WriterMessage::Close);
                    }
                }
            }
        }
    }

    fn on_opened(&mut self, opened: Opened) {
        if self.opening != Some(opened.attempt) {
            // An abandoned attempt's transport: close it unused.
            if let Ok((_, mut writer, _)) = opened.result {
                tokio::spawn(async move {
                    let _ = writer.close().await;
                });
            }
            return;
        }
        self.opening = None;
        match opened.result {
            Ok((reader, writer, credentials)) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let unwritten = Arc::new(AtomicUsize::new(0));
                tokio::spawn(write_loop(
                    writer,
                    rx,
                    opened.attempt,
                    Arc::clone(&unwritten),
                    Arc::clone(&self.shared),
                    self.write_failed_tx.clone(),
                ));
                self.connection = Some(Connection {
                    attempt: opened.attempt,
                    endpoint: opened.endpoint,
                    reader,
                    input: BytesMut::new(),
                    writer: tx,
                    unwritten,
                });
                self.session
                    .transport_connected(now(), opened.attempt, credentials);
            }
            Err(error) => {
                tracing::debug!(%error, "transport failed to open");
                // Retrying cannot fix a certificate or a TLS set-up: say so to the session.
                let reason = if error.is_fatal() {
                    CloseReason::Fatal(error.to_string())
                } else {
                    CloseReason::Error(error.to_string())
                };
                self.last_transport_error = Some(error);
                self.session.transport_closed(now(), opened.attempt, reason);
            }
        }
    }

    /// A writing task failed: that connection is over (its reader too).
    fn on_write_failed(&mut self, attempt: Attempt, error: Error) {
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.attempt == attempt)
        {
            self.connection = None;
        }
        self.session
            .transport_closed(now(), attempt, CloseReason::Error(error.to_string()));
    }

    fn on_input(&mut self, input: (Attempt, Result<usize, Error>)) {
        let (attempt, result) = input;
        match result {
            Ok(0) => {
                self.connection = None;
                self.session
                    .transport_closed(now(), attempt, CloseReason::PeerClosed);
            }
            Ok(_) => {
                let now = now();
                if let Some(c) = &mut self.connection {
                    self.session.handle_input(now, attempt, &c.input);
                    c.input.clear();
                }
                // Input comes first, but a broker that never pauses must not starve the
                // timers (our heart-beats): run what is due once this input is in.
                if self.session.poll_timeout().is_some_and(|t| t <= now) {
                    self.session.handle_timeout(now);
                }
            }
            Err(error) => {
                self.connection = None;
                self.session.transport_closed(
                    now(),
                    attempt,
                    CloseReason::Error(error.to_string()),
                );
            }
        }
    }

    fn endpoint_name(&self) -> String {
        self.connection
            .as_ref()
            .map(|c| c.endpoint)
            .or_else(|| {
                self.session
                    .attempt()
                    .map(|a| (a.number().saturating_sub(1) as usize) % self.endpoints.len())
            })
            .map(|i| self.endpoints[i].to_string())
            .unwrap_or_default()
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::StateChanged { from, to, cause } => {
                self.state.send_replace(to);
                if (from == State::Connected) != (to == State::Connected) {
                    self.metrics.connected(to == State::Connected);
                }
                self.publish(ClientEvent::StateChanged { from, to, cause });
            }
            Event::Connected {
                version, server, ..
            } => {
                if let Ok(mut gave_up) = self.shared.gave_up.lock() {
                    *gave_up = None;
                }
                self.last_transport_error = None;
                let endpoint = self.endpoint_name();
                tracing::info!(%endpoint, %version, "connected");
                self.publish(ClientEvent::Connected {
                    endpoint,
                    version,
                    server,
                });
            }
            Event::Message {
                subscription,
                handle,
                frame,
                possibly_duplicate,
            } => self.deliver(subscription, handle, frame, possibly_duplicate),
            Event::StrayMessage { frame } => self.publish(ClientEvent::StrayMessage {
                frame: Box::new(frame),
            }),
            Event::Receipt { id, outcome } => {
                let (label, result) = match outcome {
                    ReceiptOutcome::Confirmed => ("confirmed", Ok(())),
                    ReceiptOutcome::Error(frame) => ("error", Err(Error::Broker(frame))),
                    ReceiptOutcome::TimedOut => ("timed_out", Err(Error::ReceiptTimeout)),
                    _ => ("connection_lost", Err(Error::ConnectionLost)),
                };
                let waiter = match id {
                    ReceiptId::Send(send) => {
                        let waiter = self.confirmations.remove(&send);
                        let after = waiter.as_ref().map(|(_, sent)| sent.elapsed());
                        self.metrics.receipt(label, after);
                        waiter.map(|(reply, _)| reply)
                    }
                    other => self.receipts.remove(&other),
                };
                if let Some(waiter) = waiter {
                    let _ = waiter.send(result);
                }
            }
            Event::ServerError { message, frame } => {
                tracing::warn!(
                    message = message.as_deref().unwrap_or(""),
                    "broker sent ERROR"
                );
                self.publish(ClientEvent::ServerError {
                    message,
                    frame: Box::new(frame),
                });
            }
            Event::TransactionAborted { id, reason } => {
                self.publish(ClientEvent::TransactionAborted { id, reason });
            }
            Event::MessageDropped {
                id,
                reason,
                message,
            } => {
                tracing::warn!(%id, ?reason, destination = message.destination(), "message dropped");
                self.metrics.dropped();
                self.publish(ClientEvent::MessageDropped {
                    id,
                    reason: reason.clone(),
                });
                if let Some((waiter, _)) = self.confirmations.remove(&id) {
                    let _ = waiter.send(Err(Error::Dropped { reason, message }));
                }
            }
            Event::AttemptFailed { attempt, failure } => {
                let endpoint = self.endpoint_name();
                tracing::info!(%attempt, %endpoint, kind = ?failure.kind, detail = %failure.detail, "attempt failed");
                self.metrics.failure(failure.kind);
                self.last_failure = Some(failure.clone());
                self.publish(ClientEvent::AttemptFailed {
                    attempt,
                    endpoint,
                    failure,
                });
            }
            Event::GaveUp { reason, .. } => {
                tracing::warn!(?reason, "gave up connecting");
                if let Ok(mut gave_up) = self.shared.gave_up.lock() {
                    *gave_up = Some(Error::GaveUp {
                        reason,
                        last: self.last_failure.clone(),
                        transport: self.last_transport_error.clone().map(Box::new),
                    });
                }
                self.publish(ClientEvent::GaveUp { reason });
            }
            Event::SubscriptionEnded { id, reason } => {
                if let Some(route) = self.routes.remove(&id) {
                    if let Ok(mut end) = route.state.end.lock() {
                        *end = Some(reason.clone());
                    }
                }
                if let Some(waiter) = self.receipts.remove(&ReceiptId::Subscribe(id)) {
                    let _ = waiter.send(Err(Error::SubscriptionEnded(reason.clone())));
                }
                self.publish(ClientEvent::SubscriptionEnded { id, reason });
            }
            other => tracing::debug!(event = ?other, "event not handled"),
        }
    }

    fn publish(&self, event: ClientEvent) {
        // No receiver is fine: events are for whoever listens.
        let _ = self.events.send(event);
    }

    fn client(&self) -> Option<Client> {
        Some(Client {
            commands: self.weak_commands.upgrade()?,
            control: self.weak_control.upgrade()?,
            state: self.state_rx.clone(),
            events: self.events.clone(),
            shared: Arc::clone(&self.shared),
        })
    }

    fn deliver(
        &mut self,
        subscription: SubscriptionId,
        handle: MessageHandle,
        frame: stompkit_session::codec::Frame,
        possibly_duplicate: bool,
    ) {
        let Some(route) = self.routes.get(&subscription) else {
            // Dropped by the application; the UNSUBSCRIBE is on its way. Unacknowledged,
            // the broker redelivers it elsewhere.
            tracing::debug!(%subscription, "message for a dropped subscription");
            return;
        };
        let Some(client) = self.client() else {
            return;
        };
        let delivery = Delivery {
            frame,
            handle,
            possibly_duplicate,
            client,
        };
        let size = delivery.size();
        self.metrics.received();
        self.shared.buffered.fetch_add(size, Ordering::AcqRel);
        if route.deliveries.send(delivery).is_err() {
            self.shared.buffered.fetch_sub(size, Ordering::AcqRel);
        }
    }

    // ------------------------------------------------------------ commands

    fn on_command(&mut self, command: Command) {
        let now = now();
        match command {
            Command::Send {
                message,
                confirm,
                reply,
            } => match self.session.send(now, message) {
                Ok(id) => {
                    self.metrics.sent();
                    if let Some(confirm) = confirm {
                        self.confirmations.insert(id, (confirm, Instant::now()));
                    }
                    let _ = reply.send(Ok(id));
                }
                Err(error) => {
                    let _ = reply.send(Err(Error::Send(Box::new(error))));
                }
            },
            Command::Subscribe {
                request,
                confirm,
                reply,
            } => {
                let result = self.session.subscribe(now, request).map_err(Error::Session);
                let result = result.and_then(|id| {
                    let client = self.client().ok_or(Error::Closed)?;
                    let (tx, rx) = mpsc::unbounded_channel();
                    let state = Arc::new(SubscriptionState::default());
                    self.routes.insert(
                        id,
                        Route {
                            deliveries: tx,
                            state: Arc::clone(&state),
                        },
                    );
                    if let Some(confirm) = confirm {
                        self.receipts.insert(ReceiptId::Subscribe(id), confirm);
                    }
                    Ok(Subscription {
                        id,
                        deliveries: rx,
                        state,
                        client,
                    })
                });
                let _ = reply.send(result);
            }
            Command::Unsubscribe { id } => {
                if self.routes.remove(&id).is_some() {
                    let _ = self.session.unsubscribe(now, id, false);
                }
            }
            Command::Ack {
                handle,
                nack,
                transaction,
                receipt,
                reply,
            } => {
                let options = AckOptions {
                    transaction,
                    receipt,
                };
                let result = if nack {
                    self.session.nack_with(now, &handle, options)
                } else {
                    self.session.ack_with(now, &handle, options)
                };
                match result {
                    Ok(()) if receipt => {
                        let id = if nack {
                            ReceiptId::Nack(handle.delivery())
                        } else {
                            ReceiptId::Ack(handle.delivery())
                        };
                        self.receipts.insert(id, reply);
                    }
                    other => {
                        let _ = reply.send(other.map_err(Error::Session));
                    }
                }
            }
            Command::Begin { reply } => {
                let _ = reply.send(self.session.begin(now, false).map_err(Error::Session));
            }
            Command::End { id, commit, reply } => {
                let (result, receipt) = if commit {
                    (self.session.commit(now, id, true), ReceiptId::Commit(id))
                } else {
                    (self.session.abort(now, id, true), ReceiptId::Abort(id))
                };
                match result {
                    Ok(()) => {
                        self.receipts.insert(receipt, reply);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(Error::Session(error)));
                    }
                }
            }
            Command::ReconnectNow => {
                if self.session.state() == State::Closed && !self.ending {
                    self.session.connect(now);
                } else {
                    self.session.reconnect_now(now);
                }
            }
            Command::Disconnect { reply } => {
                self.ending = true;
                self.disconnecting.push(reply);
                self.session.disconnect(now);
            }
            Command::Stats { reply } => {
                let _ = reply.send(Ok(self.session.stats().clone()));
            }
            Command::Status { reply } => {
                let _ = reply.send(Ok(crate::client::Status {
                    state: self.session.state(),
                    stats: self.session.stats().clone(),
                    queued: self.session.queued(),
                    unconfirmed: self.session.unconfirmed(),
                    buffered_bytes: self.shared.buffered.load(Ordering::Relaxed),
                    last_failure: self.last_failure.clone(),
                }));
            }
        }
    }
}

/// Reads the current connection; pending forever without one (the branch is off then).
async fn read(connection: &mut Option<Connection>) -> (Attempt, Result<usize, Error>) {
    match connection {
        Some(c) => (c.attempt, c.reader.read(&mut c.input).await),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes one connection's transmits in order; closes it when told, or stops when the
/// connection is dropped.
async fn write_loop(
    mut writer: TransportWriter,
    mut transmits: mpsc::UnboundedReceiver<WriterMessage>,
    attempt: Attempt,
    unwritten: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    failed: mpsc::UnboundedSender<(Attempt, Error)>,
) {
    let mut batch = BytesMut::new();
    let mut ends = Vec::new();
    let mut closing = false;
    while let Some(message) = transmits.recv().await {
        let WriterMessage::Data(first) = message else {
            closing = true;
            break;
        };
        // Whatever else is queued goes out in the same write: one system call for many
        // frames when the application sends faster than the socket takes them.
        let (data, len) = if transmits.is_empty() {
            let len = first.len();
            ends.clear();
            ends.extend_from_slice(first.frame_ends());
            (first.into_bytes(), len)
        } else {
            batch.clear();
            ends.clear();
            append(&mut batch, &mut ends, &first);
            while batch.len() < WRITE_BATCH_BYTES {
                match transmits.try_recv() {
                    Ok(WriterMessage::Data(next)) => append(&mut batch, &mut ends, &next),
                    Ok(WriterMessage::Close) => {
                        closing = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let len = batch.len();
            (batch.split().freeze(), len)
        };
        let result = writer.send(data, &ends).await;
        unwritten.fetch_sub(len, Ordering::AcqRel);
        shared.written.notify_one();
        if let Err(error) = result {
            let _ = failed.send((attempt, error));
            return;
        }
        if closing {
            break;
        }
    }
    if closing {
        // Bounded: a peer that stopped reading must not keep the task forever.
        let close = writer.close();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), close).await;
    }
}

/// Most bytes gathered into one write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Appends a transmit to a batch, its frame ends shifted to the batch's offsets.
fn append(batch: &mut BytesMut, ends: &mut Vec<usize>, transmit: &Transmit) {
    let base = batch.len();
    batch.extend_from_slice(transmit);
    ends.extend(transmit.frame_ends().iter().map(|end| base + end));
}
