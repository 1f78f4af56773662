//! The client's core and its background task.
//!
//! The session and everything about it (routes to subscriptions, waiters for receipts,
//! the writing half of the connection) live in a [`Core`] behind a mutex. A handle's
//! command runs on the caller's task, under the lock: the session takes it and its bytes
//! go to the writing task at once, with no hand-off to the background task and back. The
//! background task owns what must be awaited: the reading half, transports being opened,
//! timers. It is woken by a handle only when a command needs it (an earlier deadline, a
//! connection to close, the end).
//!
//! Order of work in every turn of the task: the session's directives, then its transmits
//! (handed to the writing task), then its events; then wait for input first, then a
//! finished connect, a writer failure, commands sent from `Drop`, and only then timers
//! (`select!` is biased in that order), so that input that was waiting during a stall is
//! read before a heart-beat deadline is judged. Writes run on their own task, so a slow
//! socket never delays reads or timers.
//!
//! Nothing runs under the lock that could take it again: a `Drop` of a handle or a
//! subscription (which may happen under it) sends on the control channel instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
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

/// What is sent to the task from a `Drop`, which may run under the core's lock.
#[derive(Debug)]
pub(crate) enum Command {
    /// A [`Subscription`] was dropped.
    Unsubscribe { id: SubscriptionId },
    /// The last [`Handle`] is gone.
    HandlesDropped,
}

/// The outcome a waiter is sent; [`Error::Closed`] if the client ended first.
pub(crate) async fn answered<T>(outcome: oneshot::Receiver<Result<T, Error>>) -> Result<T, Error> {
    outcome.await.map_err(|_| Error::Closed)?
}

/// What the handles, the subscriptions, the writing tasks and the task share, outside the
/// core's lock.
pub(crate) struct Shared {
    /// Bytes of deliveries waiting in subscriptions.
    pub(crate) buffered: AtomicUsize,
    pub(crate) max_buffered: usize,
    /// Woken when the application took enough out of its subscriptions.
    pub(crate) resume: Notify,
    /// Woken (every waiter) when a writing task wrote something.
    written: Notify,
    /// Woken when a handle's command needs the task.
    wake: Notify,
    /// Why the session gave up, for [`Client::wait_connected`].
    gave_up: Mutex<Option<Error>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("buffered", &self.buffered)
            .field("max_buffered", &self.max_buffered)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn gave_up(&self) -> Option<Error> {
        self.gave_up.lock().ok()?.clone()
    }
}

/// What every clone of a [`Client`] points to; dropped with the last of them.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    core: Arc<Mutex<Core>>,
    /// For what is sent where the lock may be held already (a `Drop`).
    pub(crate) control: mpsc::UnboundedSender<Command>,
    pub(crate) state: watch::Receiver<State>,
    pub(crate) events: broadcast::Sender<ClientEvent>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("state", &*self.state.borrow())
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // May run under the core's lock (a delivery dropped there): no locking here.
        let _ = self.control.send(Command::HandlesDropped);
    }
}

impl Handle {
    /// Runs `f` on the core on the caller's task once the writing task is within
    /// `max_unwritten_bytes`, then hands the session's output on: for what puts bytes on
    /// the wire.
    pub(crate) async fn call<T>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.wait_writable().await?;
        // A producer whose sends never wait must still let other tasks run.
        tokio::task::coop::consume_budget().await;
        self.call_now(f)
    }

    /// Runs `f` on the core at once, then hands the session's output on.
    pub(crate) fn call_now<T>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut core = lock(&self.core);
        if core.ended {
            return Err(Error::Closed);
        }
        let result = f(&mut core);
        core.drain();
        let wake = core.task_needed();
        drop(core);
        if wake {
            self.shared.wake.notify_one();
        }
        result
    }

    async fn wait_writable(&self) -> Result<(), Error> {
        loop {
            let written = self.shared.written.notified();
            tokio::pin!(written);
            // Registered before looking, so that a write in between is not missed.
            written.as_mut().enable();
            {
                let core = lock(&self.core);
                if core.ended {
                    return Err(Error::Closed);
                }
                if core.writable() {
                    return Ok(());
                }
            }
            written.await;
        }
    }
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // A panic under the lock leaves the core as it was between two commands.
    core.lock().unwrap_or_else(PoisonError::into_inner)
}

enum WriterMessage {
    Data(Transmit),
    Close,
}

/// The writing half of the current connection.
struct Connection {
    attempt: Attempt,
    endpoint: usize,
    writer: mpsc::UnboundedSender<WriterMessage>,
    /// Bytes handed to this connection's writing task and not written yet.
    unwritten: Arc<AtomicUsize>,
}

/// The reading half of the current connection, owned by the task.
struct Reader {
    attempt: Attempt,
    reader: TransportReader,
    input: BytesMut,
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

/// The session and what goes with it; behind the mutex every handle and the task share.
pub(crate) struct Core {
    session: Session,
    endpoints: Arc<Vec<Endpoint>>,
    transport: Arc<TransportConfig>,
    credentials: CredentialsSource,
    max_unwritten: usize,
    /// For the handles given out with deliveries and subscriptions.
    handle: Weak<Handle>,
    state: watch::Sender<State>,
    events: broadcast::Sender<ClientEvent>,
    shared: Arc<Shared>,
    connection: Option<Connection>,
    /// The attempt whose transport is being opened.
    opening: Option<Attempt>,
    opened_tx: mpsc::UnboundedSender<Opened>,
    write_failed_tx: mpsc::UnboundedSender<(Attempt, Error)>,
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
    /// Set when the task ended: commands fail with [`Error::Closed`].
    ended: bool,
    /// The deadline the task sleeps until.
    armed: Option<Instant>,
    /// Set when something happened that the task must look at.
    needs_task: bool,
}

/// The background task: what is awaited.
pub(crate) struct Driver {
    core: Arc<Mutex<Core>>,
    shared: Arc<Shared>,
    reader: Option<Reader>,
    control: mpsc::UnboundedReceiver<Command>,
    opened_rx: mpsc::UnboundedReceiver<Opened>,
    write_failed_rx: mpsc::UnboundedReceiver<(Attempt, Error)>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Driver {
    /// The task and the handle the first [`Client`] wraps.
    pub(crate) fn new(
        config: ClientConfig,
        events: broadcast::Sender<ClientEvent>,
    ) -> Result<(Self, Arc<Handle>), Error> {
        let session = Session::new(config.session, now()).map_err(Error::Session)?;
        let (state, state_rx) = watch::channel(session.state());
        let (opened_tx, opened_rx) = mpsc::unbounded_channel();
        let (write_failed_tx, write_failed_rx) = mpsc::unbounded_channel();
        let (control_tx, control) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            buffered: AtomicUsize::new(0),
            max_buffered: config.max_buffered_bytes,
            resume: Notify::new(),
            written: Notify::new(),
            wake: Notify::new(),
            gave_up: Mutex::new(None),
        });
        let core = Arc::new(Mutex::new(Core {
            session,
            endpoints: Arc::new(config.endpoints),
            transport: Arc::new(config.transport),
            credentials: config.credentials,
            max_unwritten: config.max_unwritten_bytes,
            handle: Weak::new(),
            state,
            events: events.clone(),
            shared: Arc::clone(&shared),
            connection: None,
            opening: None,
            opened_tx,
            write_failed_tx,
            routes: HashMap::new(),
            confirmations: HashMap::new(),
            metrics: Metrics::new(&config.name),
            receipts: HashMap::new(),
            disconnecting: Vec::new(),
            last_failure: None,
            last_transport_error: None,
            ending: false,
            ended: false,
            armed: None,
            needs_task: false,
        }));
        let handle = Arc::new(Handle {
            shared: Arc::clone(&shared),
            core: Arc::clone(&core),
            control: control_tx,
            state: state_rx,
            events,
        });
        lock(&core).handle = Arc::downgrade(&handle);
        let driver = Self {
            core,
            shared,
            reader: None,
            control,
            opened_rx,
            write_failed_rx,
        };
        Ok((driver, handle))
    }

    pub(crate) async fn run(mut self) {
        lock(&self.core).session.connect(now());
        loop {
            let (deadline, reading) = {
                let mut core = lock(&self.core);
                core.drain();
                if core.ending && core.session.state() == State::Closed {
                    break;
                }
                let current = core.connection.as_ref().map(|c| c.attempt);
                if self
                    .reader
                    .as_ref()
                    .is_some_and(|r| Some(r.attempt) != current)
                {
                    // The session closed that connection.
                    self.reader = None;
                }
                let deadline = core.session.poll_timeout();
                core.armed = deadline;
                core.needs_task = false;
                let reading = self.reader.is_some()
                    && self.shared.buffered.load(Ordering::Acquire) <= self.shared.max_buffered;
                (deadline.map(tokio::time::Instant::from_std), reading)
            };
            tokio::select! {
                biased;
                input = read(&mut self.reader), if reading => self.on_input(input),
                Some(opened) = self.opened_rx.recv() => self.on_opened(opened),
                Some((attempt, error)) = self.write_failed_rx.recv() => lock(&self.core).on_write_failed(attempt, error),
                Some(command) = self.control.recv() => lock(&self.core).on_command(command),
                () = sleep_until(deadline), if deadline.is_some() => lock(&self.core).session.handle_timeout(now()),
                () = self.shared.wake.notified() => {}
                () = self.shared.resume.notified(), if self.reader.is_some() && !reading => {}
            }
        }
        self.reader = None;
        let (disconnecting, leftovers) = lock(&self.core).end();
        // Outside the lock: what is dropped here may hold handles.
        drop(leftovers);
        for reply in disconnecting {
            let _ = reply.send(Ok(()));
        }
        tracing::debug!("client task ended");
    }

    fn on_opened(&mut self, opened: Opened) {
        let mut core = lock(&self.core);
        if core.opening != Some(opened.attempt) {
            // An abandoned attempt's transport: close it unused.
            if let Ok((_, mut writer, _)) = opened.result {
                tokio::spawn(async move {
                    let _ = writer.close().await;
                });
            }
            return;
        }
        core.opening = None;
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
                    core.write_failed_tx.clone(),
                ));
                core.connection = Some(Connection {
                    attempt: opened.attempt,
                    endpoint: opened.endpoint,
                    writer: tx,
                    unwritten,
                });
                self.reader = Some(Reader {
                    attempt: opened.attempt,
                    reader,
                    input: BytesMut::new(),
                });
                core.session
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
                core.last_transport_error = Some(error);
                core.session.transport_closed(now(), opened.attempt, reason);
            }
        }
    }

    fn on_input(&mut self, input: (Attempt, Result<usize, Error>)) {
        let (attempt, result) = input;
        let mut core = lock(&self.core);
        match result {
            Ok(0) => {
                self.reader = None;
                core.connection_ended(attempt);
                core.session
                    .transport_closed(now(), attempt, CloseReason::PeerClosed);
            }
            Ok(_) => {
                let now = now();
                if let Some(r) = &mut self.reader {
                    core.session.handle_input(now, attempt, &r.input);
                    r.input.clear();
                }
                // Input comes first, but a broker that never pauses must not starve the
                // timers (our heart-beats): run what is due once this input is in.
                if core.session.poll_timeout().is_some_and(|t| t <= now) {
                    core.session.handle_timeout(now);
                }
            }
            Err(error) => {
                self.reader = None;
                core.connection_ended(attempt);
                core.session.transport_closed(
                    now(),
                    attempt,
                    CloseReason::Error(error.to_string()),
                );
            }
        }
    }
}

/// What [`Core::end`] hands back to be dropped outside the lock.
type Leftovers = (
    HashMap<SubscriptionId, Route>,
    HashMap<SendId, (Reply<()>, Instant)>,
    HashMap<ReceiptId, Reply<()>>,
    Option<Connection>,
);

impl Core {
    /// The task is ending: nothing will answer the waiters any more.
    fn end(&mut self) -> (Vec<Reply<()>>, Leftovers) {
        self.ended = true;
        // Watchers of the state see the end (the handles outlive the task).
        self.state = watch::channel(State::Closed).0;
        let leftovers = (
            std::mem::take(&mut self.routes),
            std::mem::take(&mut self.confirmations),
            std::mem::take(&mut self.receipts),
            self.connection.take(),
        );
        // Commands waiting for write room see the end instead of a write that never comes.
        self.shared.written.notify_waiters();
        (std::mem::take(&mut self.disconnecting), leftovers)
    }

    /// Whether the task must be woken after a handle's command.
    fn task_needed(&mut self) -> bool {
        let earlier = match (self.session.poll_timeout(), self.armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let needed = self.needs_task || earlier;
        self.needs_task = false;
        needed
    }

    /// Whether the writing task is within `max_unwritten_bytes`.
    fn writable(&self) -> bool {
        self.connection
            .as_ref()
            .is_none_or(|c| c.unwritten.load(Ordering::Acquire) <= self.max_unwritten)
    }

    /// The reading half saw that connection end: its writing half goes too.
    fn connection_ended(&mut self, attempt: Attempt) {
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.attempt == attempt)
        {
            self.connection = None;
            // No write of that connection will wake the commands waiting for room in it.
            self.shared.written.notify_waiters();
        }
    }

    fn every_handle_dropped(&mut self) {
        if !self.ending {
            tracing::debug!("every client handle dropped: disconnecting");
            self.needs_task = true;
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
        // The task owns the reading half and the transport being opened.
        self.needs_task = true;
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
                        self.shared.written.notify_waiters();
                    }
                }
            }
        }
    }

    /// A writing task failed: that connection is over (its reader too, which the task
    /// drops on its next turn).
    fn on_write_failed(&mut self, attempt: Attempt, error: Error) {
        self.connection_ended(attempt);
        self.session
            .transport_closed(now(), attempt, CloseReason::Error(error.to_string()));
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
                self.needs_task = true;
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
            handle: self.handle.upgrade()?,
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

    /// Hands a message to the session; `confirm` is told its receipt's outcome.
    pub(crate) fn send(
        &mut self,
        message: Message,
        confirm: Option<Reply<()>>,
    ) -> Result<SendId, Error> {
        let now = now();
        match self.session.send(now, message) {
            Ok(id) => {
                self.metrics.sent();
                if let Some(confirm) = confirm {
                    self.confirmations.insert(id, (confirm, now));
                }
                Ok(id)
            }
            Err(error) => Err(Error::Send(Box::new(error))),
        }
    }

    /// Acknowledges (or refuses) a delivery; `receipt` is told the broker's receipt for it.
    pub(crate) fn ack(
        &mut self,
        handle: &MessageHandle,
        nack: bool,
        transaction: Option<TransactionId>,
        receipt: Option<Reply<()>>,
    ) -> Result<(), Error> {
        let options = AckOptions {
            transaction,
            receipt: receipt.is_some(),
        };
        let result = if nack {
            self.session.nack_with(now(), handle, options)
        } else {
            self.session.ack_with(now(), handle, options)
        };
        result.map_err(Error::Session)?;
        if let Some(receipt) = receipt {
            let id = if nack {
                ReceiptId::Nack(handle.delivery())
            } else {
                ReceiptId::Ack(handle.delivery())
            };
            self.receipts.insert(id, receipt);
        }
        Ok(())
    }

    pub(crate) fn stats(&self) -> Stats {
        self.session.stats().clone()
    }

    pub(crate) fn status(&self) -> crate::client::Status {
        crate::client::Status {
            state: self.session.state(),
            stats: self.session.stats().clone(),
            queued: self.session.queued(),
            unconfirmed: self.session.unconfirmed(),
            buffered_bytes: self.shared.buffered.load(Ordering::Relaxed),
            last_failure: self.last_failure.clone(),
        }
    }

    /// Creates a subscription; `confirm` is told the broker's receipt for it.
    pub(crate) fn subscribe(
        &mut self,
        request: Subscribe,
        confirm: Option<Reply<()>>,
    ) -> Result<Subscription, Error> {
        let id = self
            .session
            .subscribe(now(), request)
            .map_err(Error::Session)?;
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
    }

    pub(crate) fn begin(&mut self) -> Result<TransactionId, Error> {
        self.session.begin(now(), false).map_err(Error::Session)
    }

    /// Commits or aborts; `done` is told the broker's receipt.
    pub(crate) fn end_transaction(
        &mut self,
        id: TransactionId,
        commit: bool,
        done: Reply<()>,
    ) -> Result<(), Error> {
        let (result, receipt) = if commit {
            (self.session.commit(now(), id, true), ReceiptId::Commit(id))
        } else {
            (self.session.abort(now(), id, true), ReceiptId::Abort(id))
        };
        result.map_err(Error::Session)?;
        self.receipts.insert(receipt, done);
        Ok(())
    }

    pub(crate) fn reconnect_now(&mut self) {
        self.needs_task = true;
        if self.session.state() == State::Closed && !self.ending {
            self.session.connect(now());
        } else {
            self.session.reconnect_now(now());
        }
    }

    /// Disconnects; `done` is told once the task ended.
    pub(crate) fn disconnect(&mut self, done: Reply<()>) {
        self.needs_task = true;
        self.ending = true;
        self.disconnecting.push(done);
        self.session.disconnect(now());
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Unsubscribe { id } => {
                if self.routes.remove(&id).is_some() {
                    let _ = self.session.unsubscribe(now(), id, false);
                }
            }
            Command::HandlesDropped => self.every_handle_dropped(),
        }
    }
}

/// Reads the current connection; pending forever without one (the branch is off then).
async fn read(reader: &mut Option<Reader>) -> (Attempt, Result<usize, Error>) {
    match reader {
        Some(r) => (r.attempt, r.reader.read(&mut r.input).await),
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
        shared.written.notify_waiters();
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
