//! The [`Client`] handle, its configuration, and what it reports.

use std::sync::Arc;
use std::time::Duration;

use stompkit_session::{
    AbortReason, Attempt, Cause, DropReason, Failure, GiveUpReason, Message, SendId, SessionConfig,
    State, Stats, Subscribe, SubscriptionEnd, SubscriptionId, TransactionId, Version,
};
use tokio::sync::{broadcast, oneshot, watch};

use crate::credentials::{CredentialsProvider, CredentialsSource};
use crate::driver::{Driver, Handle, Shared, answered};
use crate::subscription::Subscription;
use crate::{Endpoint, Error, TransportConfig};

/// Everything a [`Client`] is configured with. Build it with [`Client::builder`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Brokers tried in turn, one per attempt (failover).
    pub endpoints: Vec<Endpoint>,
    /// The session: versions, heart-beats, timeouts, backoff, breaker, queue, limits.
    pub session: SessionConfig,
    /// Transports: TLS roots, WebSocket headers and subprotocols.
    pub transport: TransportConfig,
    /// Where the credentials come from.
    pub credentials: CredentialsSource,
    /// Most bytes of delivered messages waiting in subscriptions for the application. Past
    /// it the client stops reading the socket until the application catches up (see
    /// the crate documentation, "Backpressure").
    pub max_buffered_bytes: usize,
    /// Most bytes handed to the writing task and not yet written. Past it, commands wait.
    pub max_unwritten_bytes: usize,
    /// A name for this client in metrics (the `client` label; default `stompkit`).
    pub name: String,
    /// Lifecycle events kept for a slow [`Client::events`] receiver before it lags
    /// (default 32; each slot is allocated up front).
    pub event_capacity: usize,
}

/// Builds a [`Client`].
///
/// ```no_run
/// # async fn run() -> Result<(), stompkit_tokio::Error> {
/// use std::time::Duration;
/// use stompkit_tokio::Client;
///
/// let client = Client::builder("stomp://guest:guest@127.0.0.1:61613")?
///     .heart_beat(Duration::from_secs(10), Duration::from_secs(10))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClientBuilder {
    config: ClientConfig,
}

impl ClientBuilder {
    /// Sets the session configuration.
    pub fn session(mut self, session: SessionConfig) -> Self {
        self.config.session = session;
        self
    }

    /// Changes the session configuration.
    pub fn session_with(mut self, change: impl FnOnce(SessionConfig) -> SessionConfig) -> Self {
        self.config.session = change(self.config.session);
        self
    }

    /// Sets the heart-beat wish: how often we send, how often we want to hear the broker.
    pub fn heart_beat(mut self, send: Duration, receive: Duration) -> Self {
        self.config.session = self.config.session.with_heart_beat(send, receive);
        self
    }

    /// Sets the `host` header of `CONNECT` (RabbitMQ: the virtual host; default `/`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.config.session = self.config.session.with_host(host);
        self
    }

    /// Sets the transport configuration.
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.config.transport = transport;
        self
    }

    /// Uses these credentials for every endpoint and attempt (instead of the URL's).
    pub fn credentials(mut self, credentials: stompkit_session::Credentials) -> Self {
        self.config.credentials = CredentialsSource::Fixed(credentials);
        self
    }

    /// Asks `provider` for credentials before every attempt.
    pub fn credentials_provider(mut self, provider: impl CredentialsProvider) -> Self {
        self.config.credentials = CredentialsSource::Provider(Arc::new(provider));
        self
    }

    /// Sets [`ClientConfig::name`], the `client` label of its metrics.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Sets [`ClientConfig::event_capacity`].
    pub fn event_capacity(mut self, events: usize) -> Self {
        self.config.event_capacity = events;
        self
    }

    /// Sets [`ClientConfig::max_buffered_bytes`].
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.config.max_buffered_bytes = bytes;
        self
    }

    /// Sets [`ClientConfig::max_unwritten_bytes`] (default 256 KiB): how far a producer may
    /// run ahead of the socket before its commands wait. A frame larger than the bound is
    /// still written, once what was before it is.
    pub fn max_unwritten_bytes(mut self, bytes: usize) -> Self {
        self.config.max_unwritten_bytes = bytes;
        self
    }

    /// The configuration so far.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Starts the client and returns at once: it connects in the background, and commands
    /// given before the connection is up are queued by the session. Must be called within
    /// a tokio runtime.
    ///
    /// # Errors
    /// [`Error::NoEndpoint`], or [`Error::Session`] with an invalid session configuration.
    pub fn start(self) -> Result<Client, Error> {
        Client::start(self.config).map(|(client, _)| client)
    }

    /// Starts the client like [`start`](Self::start), with a receiver of every
    /// [`ClientEvent`] from the very first: [`Client::events`] called after `start` can
    /// miss an attempt that failed at once (a refused port).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn start_with_events(self) -> Result<(Client, broadcast::Receiver<ClientEvent>), Error> {
        Client::start(self.config)
    }

    /// Starts the client and waits for the first connection.
    ///
    /// # Errors
    /// As [`start`](Self::start), and [`Error::GaveUp`] when the session stops trying
    /// (refused credentials, the backoff's limit).
    pub async fn connect(self) -> Result<Client, Error> {
        let client = self.start()?;
        client.wait_connected().await?;
        Ok(client)
    }
}

/// What the client reports about its connection, for a status indicator or a log.
/// Received from [`Client::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The session's state changed.
    StateChanged {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// Why.
        cause: Cause,
    },
    /// Connected to `endpoint`.
    Connected {
        /// The broker's URL (no passcode).
        endpoint: String,
        /// The negotiated version.
        version: Version,
        /// The broker's `server` header.
        server: Option<String>,
    },
    /// An attempt or a connection failed; its class is in `failure.kind`.
    AttemptFailed {
        /// The attempt.
        attempt: Attempt,
        /// The endpoint it was for (no passcode).
        endpoint: String,
        /// What happened.
        failure: Failure,
    },
    /// The broker sent an `ERROR`.
    ServerError {
        /// Its `message` header.
        message: Option<String>,
        /// The frame (its body usually explains more).
        frame: Box<stompkit_session::codec::Frame>,
    },
    /// The session stopped trying. [`Client::reconnect_now`] starts it again.
    GaveUp {
        /// Why.
        reason: GiveUpReason,
    },
    /// A message will not be sent (expired, overflow, poisoned, ...).
    MessageDropped {
        /// Its id.
        id: SendId,
        /// Why.
        reason: DropReason,
    },
    /// A subscription ended.
    SubscriptionEnded {
        /// Its id.
        id: SubscriptionId,
        /// Why.
        reason: SubscriptionEnd,
    },
    /// A transaction ended without `COMMIT` (the connection dropped).
    TransactionAborted {
        /// Its id.
        id: TransactionId,
        /// Why.
        reason: AbortReason,
    },
    /// A `MESSAGE` for no subscription of ours arrived: one in flight when we unsubscribed,
    /// or a reply RabbitMQ routes to a `/temp-queue/` named in `reply-to`.
    StrayMessage {
        /// The frame.
        frame: Box<stompkit_session::codec::Frame>,
    },
}

/// A cheap, cloneable handle to one STOMP connection, kept up by a background task.
///
/// Every protocol decision (reconnecting, resubscribing, re-sending what was not
/// confirmed, heart-beats) is the session's (`stompkit-session`); the task only moves
/// bytes, timers and commands. When the last handle and every [`Subscription`] is dropped,
/// the task disconnects and ends.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) handle: Arc<Handle>,
}

impl Client {
    /// A builder for a client of `urls`: one URL, or several separated by commas (tried in
    /// turn after each failure).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::UnknownScheme`], [`Error::NoEndpoint`].
    pub fn builder(urls: &str) -> Result<ClientBuilder, Error> {
        let endpoints = Endpoint::parse_list(urls)?;
        Ok(Self::builder_for(endpoints))
    }

    /// A builder for a client of these endpoints.
    pub fn builder_for(endpoints: Vec<Endpoint>) -> ClientBuilder {
        let session = SessionConfig::default().with_seed(random_seed());
        ClientBuilder {
            config: ClientConfig {
                endpoints,
                session,
                transport: TransportConfig::default(),
                credentials: CredentialsSource::FromUrl,
                max_buffered_bytes: 16 * 1024 * 1024,
                // One write batch: more only queues in the process what the socket's own
                // buffer would hold next (measured: more memory and CPU, no more speed).
                max_unwritten_bytes: 256 * 1024,
                event_capacity: 32,
                name: "stompkit".to_owned(),
            },
        }
    }

    /// Connects to `urls` with the defaults (see [`builder`](Self::builder)).
    ///
    /// # Errors
    /// As [`ClientBuilder::connect`].
    pub async fn connect(urls: &str) -> Result<Self, Error> {
        Self::builder(urls)?.connect().await
    }

    fn start(mut config: ClientConfig) -> Result<(Self, broadcast::Receiver<ClientEvent>), Error> {
        if config.endpoints.is_empty() {
            return Err(Error::NoEndpoint);
        }
        // One WebSocket message carries one frame: the same limit as the decoder's.
        config.transport.ws.max_message_bytes = config.session.limits.max_frame_bytes;
        let (events, first_events) = broadcast::channel(config.event_capacity.max(1));
        let (driver, handle) = Driver::new(config, events)?;
        tokio::spawn(driver.run());
        Ok((Self { handle }, first_events))
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Waits until the session is connected.
    ///
    /// # Errors
    /// [`Error::GaveUp`] if the session stops trying first, [`Error::Closed`].
    pub async fn wait_connected(&self) -> Result<(), Error> {
        let mut state = self.handle.state.clone();
        loop {
            match *state.borrow_and_update() {
                State::Connected => return Ok(()),
                State::Closed => {
                    if let Some(error) = self.shared().gave_up() {
                        return Err(error);
                    }
                }
                _ => {}
            }
            state.changed().await.map_err(|_| Error::Closed)?;
        }
    }

    /// Sends a message. Resolves when the session took it: written, or queued while
    /// disconnected or beyond the send window. Ask a [`receipt`](Message::receipt) for
    /// at-least-once delivery, and use [`send_confirmed`](Self::send_confirmed) to wait for it.
    ///
    /// # Errors
    /// [`Error::Send`] hands the message back (queue full, too large, ...); [`Error::Closed`].
    pub async fn send(&self, message: Message) -> Result<SendId, Error> {
        self.handle.call(|core| core.send(message, None)).await
    }

    /// Sends a message with a receipt and resolves with its outcome: `Ok` once the broker
    /// confirmed it (re-sent after reconnects as needed).
    ///
    /// # Errors
    /// [`Error::Broker`] (an `ERROR` named it), [`Error::ReceiptTimeout`],
    /// [`Error::Dropped`] (expired, poisoned, ...), [`Error::ConnectionLost`] (the session
    /// closed first), [`Error::Send`], [`Error::Closed`].
    pub async fn send_confirmed(&self, message: Message) -> Result<SendId, Error> {
        self.send_with_receipt(message).await?.confirmed().await
    }

    /// Sends a message with a receipt in two steps: resolves when the session took it
    /// (so messages sent one after another keep their order), handing back a
    /// [`Confirmation`] to await the receipt later. Lets a producer keep many messages in
    /// flight without waiting for each receipt in turn.
    ///
    /// # Errors
    /// [`Error::Send`], [`Error::Closed`]; the [`Confirmation`] has the receipt's errors.
    pub async fn send_with_receipt(&self, message: Message) -> Result<Confirmation, Error> {
        let (tx, rx) = oneshot::channel();
        let id = self
            .handle
            .call(|core| core.send(message.receipt(), Some(tx)))
            .await?;
        Ok(Confirmation { id, outcome: rx })
    }

    /// Subscribes. The returned [`Subscription`] is a `Stream` of deliveries; dropping it
    /// unsubscribes. The subscription survives reconnects. With
    /// [`Subscribe::receipt`], resolves once the broker confirmed it.
    ///
    /// # Errors
    /// [`Error::Session`], [`Error::Broker`] (receipted and refused), [`Error::Closed`].
    pub async fn subscribe(&self, request: Subscribe) -> Result<Subscription, Error> {
        let (tx, rx) = oneshot::channel();
        let wants_receipt = request.wants_receipt();
        let subscription = self
            .handle
            .call(|core| core.subscribe(request, wants_receipt.then_some(tx)))
            .await?;
        if wants_receipt {
            answered(rx).await?;
        }
        Ok(subscription)
    }

    /// Begins a transaction on the current connection.
    ///
    /// # Errors
    /// [`Error::Session`] when not connected; [`Error::Closed`].
    pub async fn begin(&self) -> Result<Transaction, Error> {
        let id = self.handle.call(|core| core.begin()).await?;
        Ok(Transaction {
            id,
            client: self.clone(),
        })
    }

    /// Skips the rest of the backoff delay and tries now (the application knows the network
    /// is back); after the session gave up, starts it again.
    pub fn reconnect_now(&self) {
        let _ = self.handle.call_now(|core| {
            core.reconnect_now();
            Ok(())
        });
    }

    /// Disconnects gracefully (`DISCONNECT` with a receipt, bounded by the session's
    /// `disconnect_timeout`) and ends the background task. Queued messages are reported
    /// dropped, waiters get their errors.
    ///
    /// # Errors
    /// [`Error::Closed`] if the client was closed already.
    pub async fn disconnect(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.handle.call_now(|core| {
            core.disconnect(tx);
            Ok(())
        })?;
        answered(rx).await
    }

    /// The connection state, to watch.
    pub fn state(&self) -> watch::Receiver<State> {
        self.handle.state.clone()
    }

    /// Lifecycle events from now on.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.handle.events.subscribe()
    }

    /// A snapshot of the session's statistics.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.handle.call_now(|core| Ok(core.stats()))
    }

    /// A snapshot for a status line or a health check: the state, the counters, what waits
    /// to be sent or confirmed, and the last failure.
    ///
    /// # Errors
    /// [`Error::Closed`].
    pub async fn status(&self) -> Result<Status, Error> {
        self.handle.call_now(|core| Ok(core.status()))
    }
}

/// What [`Client::status`] reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Status {
    /// The session's state.
    pub state: State,
    /// The session's counters.
    pub stats: Stats,
    /// Messages in the outbound queue (offline, or beyond the send window).
    pub queued: usize,
    /// Receipted sends not yet confirmed.
    pub unconfirmed: usize,
    /// Bytes of deliveries the application has not taken yet.
    pub buffered_bytes: usize,
    /// The last failed attempt or connection, if any.
    pub last_failure: Option<Failure>,
}

/// The pending receipt of a message sent with [`Client::send_with_receipt`].
#[derive(Debug)]
pub struct Confirmation {
    id: SendId,
    outcome: oneshot::Receiver<Result<(), Error>>,
}

impl Confirmation {
    /// The message's id.
    pub fn id(&self) -> SendId {
        self.id
    }

    /// Waits for the outcome: `Ok` once the broker confirmed it.
    ///
    /// # Errors
    /// As [`Client::send_confirmed`].
    pub async fn confirmed(self) -> Result<SendId, Error> {
        answered(self.outcome).await?;
        Ok(self.id)
    }
}

/// An open transaction. Sends and acknowledgements made with it take effect on
/// [`commit`](Self::commit); if the connection drops first it is aborted by the broker and
/// reported ([`ClientEvent::TransactionAborted`]); nothing of it is replayed.
#[derive(Debug)]
pub struct Transaction {
    id: TransactionId,
    client: Client,
}

impl Transaction {
    /// Its id.
    pub fn id(&self) -> TransactionId {
        self.id
    }

    /// Sends a message inside the transaction.
    ///
    /// # Errors
    /// As [`Client::send`].
    pub async fn send(&self, message: Message) -> Result<SendId, Error> {
        self.client.send(message.transaction(self.id)).await
    }

    /// Commits, waiting for the broker's receipt.
    ///
    /// # Errors
    /// [`Error::Session`] (not connected any more), [`Error::Broker`],
    /// [`Error::ConnectionLost`], [`Error::Closed`].
    pub async fn commit(self) -> Result<(), Error> {
        self.end(true).await
    }

    /// Aborts, waiting for the broker's receipt.
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub async fn abort(self) -> Result<(), Error> {
        self.end(false).await
    }
}

impl Transaction {
    async fn end(self, commit: bool) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let id = self.id;
        self.client
            .handle
            .call(|core| core.end_transaction(id, commit, tx))
            .await?;
        answered(rx).await
    }
}

/// A seed for the backoff's jitter and the stable message ids, different per client (no
/// dependency on a random number crate: the standard library's hasher is randomly keyed).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
