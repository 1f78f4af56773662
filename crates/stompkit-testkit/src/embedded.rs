//! The broker core on tokio: TCP and WebSocket listeners on loopback.
//!
//! One task owns the [`Broker`]; every connection has a reader task (bytes to the core) and
//! a writer task (bytes from the core). The core hands a writer at most a few chunks at a
//! time and keeps the rest in the broker, which stops delivering to a connection whose
//! output is full: a slow client holds back only its own messages. TLS connections (feature
//! `tls`) are served as TCP or WebSocket ones once their handshake is done.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes, http};

use crate::{Broker, BrokerConfig, BrokerStats, ConnectionId, Dialect, Error, Held};

/// Chunks a writer may have queued before the core keeps the rest.
const WRITER_QUEUE: usize = 8;
/// Inputs waiting for the core, from all readers together.
const CORE_QUEUE: usize = 1024;
/// Bytes a reader asks the socket for at once.
const READ_CHUNK: usize = 16 * 1024;
/// The WebSocket subprotocols, preferred first.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];
/// How long a client may take over its TLS handshake or WebSocket upgrade by default (as
/// long as for `CONNECT`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start an [`EmbeddedBroker`].
#[derive(Debug, Clone)]
pub struct EmbeddedBrokerBuilder {
    config: BrokerConfig,
    tcp: SocketAddr,
    ws: Option<SocketAddr>,
    #[cfg(feature = "tls")]
    tls: Option<SocketAddr>,
    #[cfg(feature = "tls")]
    wss: Option<SocketAddr>,
    handshake_timeout: Duration,
}

impl EmbeddedBrokerBuilder {
    /// The core's configuration (default: [`BrokerConfig::default`], the RabbitMQ dialect).
    pub fn config(mut self, config: BrokerConfig) -> Self {
        self.config = config;
        self
    }

    /// Shorthand for a default configuration of `dialect`.
    pub fn dialect(mut self, dialect: Dialect) -> Self {
        self.config = BrokerConfig::new(dialect);
        self
    }

    /// The TCP listen address (default `127.0.0.1:0`, an ephemeral port).
    pub fn tcp_addr(mut self, addr: SocketAddr) -> Self {
        self.tcp = addr;
        self
    }

    /// The WebSocket listen address (default `127.0.0.1:0`); `None` for no WebSocket.
    pub fn ws_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.ws = addr;
        self
    }

    /// Serve STOMP over TLS too (`true`: on `127.0.0.1:0`, an ephemeral port), with a CA
    /// and a server certificate (for `localhost`, `127.0.0.1` and `::1`) generated at each
    /// [`start`](Self::start). Clients trust [`EmbeddedBroker::ca_pem`]. Off by default.
    #[cfg(feature = "tls")]
    pub fn tls(self, on: bool) -> Self {
        self.tls_addr(on.then(|| SocketAddr::from(([127, 0, 0, 1], 0))))
    }

    /// The TLS listen address; `None` (the default) for no TLS. See [`tls`](Self::tls).
    #[cfg(feature = "tls")]
    pub fn tls_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.tls = addr;
        self
    }

    /// The secure WebSocket (`wss://`, path `/ws`) listen address; `None` (the default) for
    /// none. It presents the same generated certificate as [`tls`](Self::tls).
    #[cfg(feature = "tls")]
    pub fn wss_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.wss = addr;
        self
    }

    /// How long a client may take to complete its handshake before the connection is
    /// dropped: the WebSocket upgrade on `ws://`, the TLS handshake on `stomp+ssl://`, both
    /// together on `wss://` (default 10 s, as for `CONNECT`).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Binds the listeners and starts serving. Needs a tokio runtime with timers.
    pub async fn start(self) -> Result<EmbeddedBroker, Error> {
        let broker = Broker::new(self.config.clone())?;
        let tcp = TcpListener::bind(self.tcp)
            .await
            .map_err(|source| Error::Bind {
                what: "TCP",
                source,
            })?;
        let tcp_addr = tcp.local_addr().map_err(|source| Error::Bind {
            what: "TCP",
            source,
        })?;
        let ws = match self.ws {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind {
                        what: "WebSocket",
                        source,
                    })?,
            ),
            None => None,
        };
        let ws_addr = match &ws {
            Some(l) => Some(l.local_addr().map_err(|source| Error::Bind {
                what: "WebSocket",
                source,
            })?),
            None => None,
        };
        #[cfg(feature = "tls")]
        let secure = if self.tls.is_some() || self.wss.is_some() {
            // One CA and certificate for both secure listeners.
            let generated = crate::tls::generate()?;
            let tls = bind_secure(self.tls, "TLS").await?;
            let wss = bind_secure(self.wss, "secure WebSocket").await?;
            Some((generated, tls, wss))
        } else {
            None
        };
        let (core_tx, core_rx) = mpsc::channel(CORE_QUEUE);
        let (refuse_tx, refuse_rx) = watch::channel(None::<Instant>);
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(self.config.limits.frame.max_frame_bytes))
            .max_frame_size(Some(self.config.limits.frame.max_frame_bytes));
        let core = Core {
            broker,
            writers: HashMap::new(),
            stash: HashMap::new(),
            closing: HashMap::new(),
            rx: core_rx,
        };
        let mut tasks = vec![tokio::spawn(core.run())];
        tasks.push(tokio::spawn(accept_loop(
            tcp,
            Transport::Tcp,
            core_tx.clone(),
            refuse_rx.clone(),
        )));
        #[cfg(feature = "tls")]
        let (tls_addr, wss_addr, ca_pem) = match secure {
            Some((generated, tls, wss)) => {
                let within = self.handshake_timeout;
                let mut addrs = (None, None);
                if let Some((listener, addr)) = tls {
                    let transport = Transport::Tls(generated.acceptor.clone(), within);
                    tasks.push(tokio::spawn(accept_loop(
                        listener,
                        transport,
                        core_tx.clone(),
                        refuse_rx.clone(),
                    )));
                    addrs.0 = Some(addr);
                }
                if let Some((listener, addr)) = wss {
                    let transport = Transport::Wss(generated.acceptor, within, ws_config);
                    tasks.push(tokio::spawn(accept_loop(
                        listener,
                        transport,
                        core_tx.clone(),
                        refuse_rx.clone(),
                    )));
                    addrs.1 = Some(addr);
                }
                (addrs.0, addrs.1, Some(generated.ca_pem))
            }
            None => (None, None, None),
        };
        if let Some(ws) = ws {
            tasks.push(tokio::spawn(accept_loop(
                ws,
                Transport::Ws(ws_config, self.handshake_timeout),
                core_tx.clone(),
                refuse_rx,
            )));
        }
        #[cfg(feature = "tls")]
        tracing::info!(%tcp_addr, ?ws_addr, ?tls_addr, ?wss_addr, "embedded broker started");
        #[cfg(not(feature = "tls"))]
        tracing::info!(%tcp_addr, ?ws_addr, "embedded broker started");
        Ok(EmbeddedBroker {
            tcp_addr,
            ws_addr,
            #[cfg(feature = "tls")]
            tls_addr,
            #[cfg(feature = "tls")]
            wss_addr,
            #[cfg(feature = "tls")]
            ca_pem,
            core: core_tx,
            refuse: refuse_tx,
            tasks,
        })
    }
}

/// A STOMP broker on loopback for tests and demos, around the sans-IO [`Broker`].
///
/// It serves STOMP over TCP and over WebSocket (path `/ws`, subprotocols `v10.stomp`,
/// `v11.stomp` and `v12.stomp`) on ephemeral ports of `127.0.0.1`. It is built for many
/// clients at once: tests run 200 concurrent connections, and the target is at least 1 000
/// (bounded by [`BrokerLimits::max_connections`](crate::BrokerLimits) and the process's file
/// descriptors).
///
/// With the `tls` feature it also serves STOMP over TLS and over WebSocket over TLS, when
/// asked (`tls(true)`, `wss_addr` on the builder), with a certificate it generates.
///
/// Named queues are durable: their messages (and those delivered but not acknowledged) survive
/// [`restart`](Self::restart). Topic subscriptions end with their connections.
///
/// ```no_run
/// # async fn demo() -> Result<(), stompkit_testkit::Error> {
/// use stompkit_testkit::EmbeddedBroker;
///
/// let broker = EmbeddedBroker::builder().start().await?;
/// println!("STOMP at {} and {}", broker.stomp_url(), broker.ws_url().unwrap_or_default());
/// broker.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EmbeddedBroker {
    tcp_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    #[cfg(feature = "tls")]
    tls_addr: Option<SocketAddr>,
    #[cfg(feature = "tls")]
    wss_addr: Option<SocketAddr>,
    /// The generated CA's certificate (public; the keys stay in the TLS task).
    #[cfg(feature = "tls")]
    ca_pem: Option<String>,
    core: mpsc::Sender<ToCore>,
    refuse: watch::Sender<Option<Instant>>,
    tasks: Vec<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// A builder with the defaults: RabbitMQ dialect, TCP and WebSocket on ephemeral
    /// loopback ports.
    pub fn builder() -> EmbeddedBrokerBuilder {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        EmbeddedBrokerBuilder {
            config: BrokerConfig::default(),
            tcp: loopback,
            ws: Some(loopback),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            wss: None,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// The TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The WebSocket address, if it listens on one.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// `stomp://127.0.0.1:PORT`.
    pub fn stomp_url(&self) -> String {
        format!("stomp://{}", self.tcp_addr)
    }

    /// `ws://127.0.0.1:PORT/ws`, if it listens on WebSocket.
    pub fn ws_url(&self) -> Option<String> {
        self.ws_addr.map(|a| format!("ws://{a}/ws"))
    }

    /// The TLS address, if it listens on one ([`EmbeddedBrokerBuilder::tls`]).
    #[cfg(feature = "tls")]
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// `stomp+ssl://127.0.0.1:PORT`, if it listens on TLS.
    #[cfg(feature = "tls")]
    pub fn tls_url(&self) -> Option<String> {
        self.tls_addr.map(|a| format!("stomp+ssl://{a}"))
    }

    /// The secure WebSocket address, if it listens on one
    /// ([`EmbeddedBrokerBuilder::wss_addr`]).
    #[cfg(feature = "tls")]
    pub fn wss_addr(&self) -> Option<SocketAddr> {
        self.wss_addr
    }

    /// `wss://127.0.0.1:PORT/ws`, if it listens on secure WebSocket.
    #[cfg(feature = "tls")]
    pub fn wss_url(&self) -> Option<String> {
        self.wss_addr.map(|a| format!("wss://{a}/ws"))
    }

    /// The PEM of the CA certificate generated at start, if it listens on TLS or secure
    /// WebSocket: what clients trust to verify the broker. Its key never leaves the broker;
    /// a new one is made at each start, so a client must be given this one.
    #[cfg(feature = "tls")]
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Ends every connection at once (no `ERROR`); unacknowledged messages go back to their
    /// queues.
    pub async fn kill_connections(&self) -> Result<(), Error> {
        self.ask(ToCore::Kill).await
    }

    /// As a broker restart: ends every connection and refuses new ones (accepts and closes
    /// them at once) for `down`; queues keep their messages.
    pub async fn restart(&self, down: Duration) -> Result<(), Error> {
        // Refuse first, so no client gets back in between.
        self.refuse.send_replace(Instant::now().checked_add(down));
        self.kill_connections().await
    }

    /// Sends a message to `destination` as a client's `SEND` would.
    pub async fn publish(&self, destination: &str, body: impl Into<Bytes>) -> Result<(), Error> {
        let destination = destination.to_owned();
        let body = body.into();
        self.ask(move |reply| ToCore::Publish(destination, body, reply))
            .await?
    }

    /// What the broker holds for a queue (see [`Broker::held`]).
    pub async fn held(&self, destination: &str) -> Result<Vec<Held>, Error> {
        let destination = destination.to_owned();
        self.ask(move |reply| ToCore::Held(destination, reply))
            .await
    }

    /// The core's counters.
    pub async fn stats(&self) -> Result<BrokerStats, Error> {
        self.ask(ToCore::Stats).await
    }

    /// The connections open now, oldest first.
    pub async fn connections(&self) -> Result<Vec<ConnectionId>, Error> {
        self.ask(ToCore::Connections).await
    }

    /// The connection whose client is at `peer` (the client socket's local address), if
    /// the broker has registered it (it has once the client got its first byte back).
    pub async fn connection_from(&self, peer: SocketAddr) -> Result<Option<ConnectionId>, Error> {
        self.ask(move |reply| ToCore::Peer(peer, reply)).await
    }

    /// Fault control: stops reading from and writing to `conn`; the socket stays open.
    /// What the client sends waits in the socket; what the broker has for it waits in the
    /// broker. The broker's timers go on, so it may give up on the client's heart-beats.
    /// [`kill_connections`](Self::kill_connections) still ends a stalled connection.
    pub async fn stall(&self, conn: ConnectionId) -> Result<(), Error> {
        self.fault(conn, Fault::Gate(Gate::Stall)).await
    }

    /// Ends a [`stall`](Self::stall): reading and writing go on where they stopped.
    pub async fn resume(&self, conn: ConnectionId) -> Result<(), Error> {
        self.fault(conn, Fault::Gate(Gate::Flow)).await
    }

    /// Fault control: stops (`true`) or resumes (`false`) heart-beats to `conn`, or with
    /// `None` to every connection, later ones included (see [`Broker::mute_heartbeats`]).
    pub async fn mute_heartbeats(
        &self,
        conn: Option<ConnectionId>,
        muted: bool,
    ) -> Result<(), Error> {
        self.ask(move |reply| ToCore::Fault(conn, Fault::MuteHeartbeats(muted), reply))
            .await?
    }

    /// Fault control: sends `conn` an `ERROR` with this `message` header and body, then
    /// closes it.
    pub async fn push_error(
        &self,
        conn: ConnectionId,
        message: &str,
        body: &str,
    ) -> Result<(), Error> {
        let fault = Fault::Error(message.to_owned(), body.to_owned());
        self.fault(conn, fault).await
    }

    /// Fault control: throws away the next `n` frames clients send after `CONNECT`, on
    /// `conn` or (`None`) on any connection (see [`Broker::drop_frames`]).
    pub async fn drop_frames(&self, conn: Option<ConnectionId>, n: u64) -> Result<(), Error> {
        self.ask(move |reply| ToCore::Fault(conn, Fault::DropFrames(n), reply))
            .await?
    }

    /// Fault control: the next `n` `MESSAGE`s to `conn` or (`None`) to any connection are
    /// counted as delivered but never written (see [`Broker::drop_deliveries`]).
    pub async fn drop_deliveries(&self, conn: Option<ConnectionId>, n: u64) -> Result<(), Error> {
        self.ask(move |reply| ToCore::Fault(conn, Fault::DropDeliveries(n), reply))
            .await?
    }

    async fn fault(&self, conn: ConnectionId, fault: Fault) -> Result<(), Error> {
        self.ask(move |reply| ToCore::Fault(Some(conn), fault, reply))
            .await?
    }

    /// Stops listening and ends every connection.
    pub async fn shutdown(mut self) {
        let _ = self.kill_connections().await;
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> ToCore) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.core.send(make(tx)).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the core task is asked to do.
enum ToCore {
    /// A new transport: its writer channel and its wake-up flag; answered with its id.
    Open(Writer, oneshot::Sender<Option<ConnectionId>>),
    Connections(oneshot::Sender<Vec<ConnectionId>>),
    Peer(SocketAddr, oneshot::Sender<Option<ConnectionId>>),
    Fault(
        Option<ConnectionId>,
        Fault,
        oneshot::Sender<Result<(), Error>>,
    ),
    Input(ConnectionId, Bytes),
    Closed(ConnectionId),
    /// A writer that was full has room again.
    Drained(ConnectionId),
    Kill(oneshot::Sender<()>),
    Publish(String, Bytes, oneshot::Sender<Result<(), Error>>),
    Held(String, oneshot::Sender<Vec<Held>>),
    Stats(oneshot::Sender<BrokerStats>),
}

/// A fault control, for one connection or (where it makes sense) all.
enum Fault {
    Gate(Gate),
    MuteHeartbeats(bool),
    Error(String, String),
    DropFrames(u64),
    DropDeliveries(u64),
}

/// Whether a connection's reader and writer move bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Flow,
    Stall,
    /// End the connection (a stalled one cannot be closed the usual way).
    Cut,
}

/// Waits while the gate is stalled; false when the connection is to end.
async fn gate_open(gate: &mut watch::Receiver<Gate>) -> bool {
    // The sender goes away with the core's record of the connection: a gate left open
    // stays open for the last bytes, a stalled one ends.
    matches!(
        gate.wait_for(|g| *g != Gate::Stall).await.as_deref(),
        Ok(Gate::Flow)
    )
}

/// From the core to a writer task.
enum ToWriter {
    Bytes(Bytes),
    Close,
}

#[derive(Clone)]
struct Writer {
    tx: mpsc::Sender<ToWriter>,
    /// Set by the core when the channel was full; the writer then says `Drained`.
    blocked: Arc<AtomicBool>,
    /// Stalls or cuts the connection's reader and writer.
    gate: Arc<watch::Sender<Gate>>,
    /// The client's address.
    peer: SocketAddr,
}

struct Core {
    broker: Broker,
    writers: HashMap<ConnectionId, Writer>,
    /// A chunk that did not fit in a full writer channel.
    stash: HashMap<ConnectionId, Bytes>,
    /// Connections the broker closed whose `Close` has not reached the writer yet.
    closing: HashMap<ConnectionId, ()>,
    rx: mpsc::Receiver<ToCore>,
}

impl Core {
    async fn run(mut self) {
        loop {
            let deadline = self.broker.poll_timeout().map(Instant::from_std);
            let message = tokio::select! {
                message = self.rx.recv() => match message {
                    Some(message) => Some(message),
                    None => return,
                },
                () = sleep_until(deadline) => None,
            };
            let now = Instant::now().into_std();
            match message {
                None => self.broker.handle_timeout(now),
                Some(message) => self.handle(now, message),
            }
            // Timers that fell due while busy run before more input (a busy broker must
            // still send heart-beats).
            if self.broker.poll_timeout().is_some_and(|at| at <= now) {
                self.broker.handle_timeout(now);
            }
            self.flush();
        }
    }

    fn handle(&mut self, now: std::time::Instant, message: ToCore) {
        match message {
            ToCore::Open(writer, reply) => {
                let id = self.broker.open(now).ok();
                if let Some(id) = id {
                    self.writers.insert(id, writer);
                }
                let _ = reply.send(id);
            }
            ToCore::Input(id, bytes) => self.broker.handle_input(now, id, &bytes),
            ToCore::Closed(id) => {
                self.broker.closed(now, id);
                self.forget(id);
            }
            ToCore::Drained(id) => self.write(id),
            ToCore::Kill(reply) => {
                self.broker.kill_connections(now);
                for writer in self.writers.values() {
                    if *writer.gate.borrow() == Gate::Stall {
                        writer.gate.send_replace(Gate::Cut);
                    }
                }
                let _ = reply.send(());
            }
            ToCore::Connections(reply) => {
                let _ = reply.send(self.broker.connections());
            }
            ToCore::Peer(peer, reply) => {
                let id = self
                    .writers
                    .iter()
                    .find(|(_, w)| w.peer == peer)
                    .map(|(id, _)| *id);
                let _ = reply.send(id);
            }
            ToCore::Fault(conn, fault, reply) => {
                let _ = reply.send(self.fault(now, conn, fault));
            }
            ToCore::Publish(destination, body, reply) => {
                let _ = reply.send(self.broker.publish(&destination, &[], body));
            }
            ToCore::Held(destination, reply) => {
                let _ = reply.send(self.broker.held(&destination));
            }
            ToCore::Stats(reply) => {
                let _ = reply.send(self.broker.stats());
            }
        }
    }

    fn fault(
        &mut self,
        now: std::time::Instant,
        conn: Option<ConnectionId>,
        fault: Fault,
    ) -> Result<(), Error> {
        let one =
            |conn: Option<ConnectionId>| conn.ok_or(Error::InvalidConfig("no connection named"));
        match fault {
            Fault::Gate(gate) => {
                let id = one(conn)?;
                let writer = self.writers.get(&id).ok_or(Error::UnknownConnection(id))?;
                tracing::debug!(%id, ?gate, "fault control");
                writer.gate.send_replace(gate);
                Ok(())
            }
            Fault::MuteHeartbeats(muted) => self.broker.mute_heartbeats(conn, muted),
            Fault::Error(message, body) => self.broker.push_error(now, one(conn)?, &message, &body),
            Fault::DropFrames(n) => self.broker.drop_frames(conn, n),
            Fault::DropDeliveries(n) => self.broker.drop_deliveries(conn, n),
        }
    }

    fn forget(&mut self, id: ConnectionId) {
        self.writers.remove(&id);
        self.stash.remove(&id);
        self.closing.remove(&id);
    }

    /// Moves output to writers and closes what the broker closed.
    fn flush(&mut self) {
        while let Some(id) = self.broker.poll_output() {
            self.write(id);
        }
        while let Some(id) = self.broker.poll_close() {
            self.closing.insert(id, ());
            self.write(id);
        }
    }

    /// Hands `id`'s output to its writer, as much as fits; then its `Close` once closing
    /// and everything is handed over.
    fn write(&mut self, id: ConnectionId) {
        let Some(writer) = self.writers.get(&id).cloned() else {
            return;
        };
        let mut next = self
            .stash
            .remove(&id)
            .or_else(|| self.broker.poll_transmit(id));
        while let Some(bytes) = next {
            if let Err(bytes) = try_send(&writer, ToWriter::Bytes(bytes)) {
                if let ToWriter::Bytes(bytes) = bytes {
                    self.stash.insert(id, bytes);
                }
                return;
            }
            next = self.broker.poll_transmit(id);
        }
        if self.closing.contains_key(&id) && try_send(&writer, ToWriter::Close).is_ok() {
            // Everything is with the writer: the broker can forget the connection.
            self.broker.closed(Instant::now().into_std(), id);
            self.forget(id);
        }
    }
}

/// `try_send` that marks the writer blocked when full (before retrying once, so a writer
/// that drained in between is not missed). Gives the message back when it did not fit.
fn try_send(writer: &Writer, message: ToWriter) -> Result<(), ToWriter> {
    use mpsc::error::TrySendError;
    match writer.tx.try_send(message) {
        Ok(()) => Ok(()),
        Err(TrySendError::Closed(_)) => Ok(()),
        Err(TrySendError::Full(message)) => {
            writer.blocked.store(true, Ordering::SeqCst);
            match writer.tx.try_send(message) {
                Ok(()) | Err(TrySendError::Closed(_)) => Ok(()),
                Err(TrySendError::Full(message)) => Err(message),
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a listener's connections speak.
#[derive(Clone)]
enum Transport {
    Tcp,
    /// WebSocket, with the time the upgrade may take.
    Ws(WebSocketConfig, Duration),
    /// TLS, with the time a handshake may take.
    #[cfg(feature = "tls")]
    Tls(tokio_rustls::TlsAcceptor, Duration),
    /// WebSocket over TLS, with the time both handshakes may take.
    #[cfg(feature = "tls")]
    Wss(tokio_rustls::TlsAcceptor, Duration, WebSocketConfig),
}

/// Binds a secure listener if asked for; `what` names it in the error.
#[cfg(feature = "tls")]
async fn bind_secure(
    addr: Option<SocketAddr>,
    what: &'static str,
) -> Result<Option<(TcpListener, SocketAddr)>, Error> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { what, source })?;
    Ok(Some((listener, addr)))
}

/// Accepts connections until the listener fails.
async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    core: mpsc::Sender<ToCore>,
    refuse: watch::Receiver<Option<Instant>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of descriptors, typically: give the others a moment to close.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if refuse.borrow().is_some_and(|until| Instant::now() < until) {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let transport = transport.clone();
        tokio::spawn(async move {
            match transport {
                Transport::Tcp => {
                    let (read, write) = stream.into_split();
                    serve_stream(read, write, peer, core).await;
                }
                Transport::Ws(config, within) => {
                    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(
                        stream,
                        handshake,
                        Some(config),
                    );
                    match tokio::time::timeout(within, upgrade).await {
                        Ok(Ok(ws)) => serve_ws(ws, peer, core).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "WebSocket handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, ?within, "WebSocket upgrade timed out"),
                    }
                }
                #[cfg(feature = "tls")]
                Transport::Tls(acceptor, within) => {
                    match tokio::time::timeout(within, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let (read, write) = tokio::io::split(tls);
                            serve_stream(read, write, peer, core).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, ?within, "TLS handshake timed out"),
                    }
                }
                #[cfg(feature = "tls")]
                Transport::Wss(acceptor, within, config) => {
                    let handshakes = async {
                        let tls = acceptor.accept(stream).await.map_err(|e| e.to_string())?;
                        tokio_tungstenite::accept_hdr_async_with_config(
                            tls,
                            handshake,
                            Some(config),
                        )
                        .await
                        .map_err(|e| e.to_string())
                    };
                    match tokio::time::timeout(within, handshakes).await {
                        Ok(Ok(ws)) => serve_ws(ws, peer, core).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "wss handshake failed"),
                        Err(_) => tracing::debug!(%peer, ?within, "wss handshake timed out"),
                    }
                }
            }
        });
    }
}

/// A registered transport: its id, what the core sends its writer, the writer's full flag
/// and the fault gate.
type Registered = (
    ConnectionId,
    mpsc::Receiver<ToWriter>,
    Arc<AtomicBool>,
    watch::Receiver<Gate>,
);

/// Registers a new transport with the core; `None` when the broker is full or gone.
async fn register(core: &mpsc::Sender<ToCore>, peer: SocketAddr) -> Option<Registered> {
    let (tx, rx) = mpsc::channel(WRITER_QUEUE);
    let blocked = Arc::new(AtomicBool::new(false));
    let (gate, gate_rx) = watch::channel(Gate::Flow);
    let (reply, answer) = oneshot::channel();
    let writer = Writer {
        tx,
        blocked: blocked.clone(),
        gate: Arc::new(gate),
        peer,
    };
    core.send(ToCore::Open(writer, reply)).await.ok()?;
    let id = answer.await.ok()??;
    Some((id, rx, blocked, gate_rx))
}

/// Serves a byte stream (TCP, or TLS once its handshake is done) given as its two halves.
async fn serve_stream<R, W>(mut read: R, mut write: W, peer: SocketAddr, core: mpsc::Sender<ToCore>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Some((id, mut rx, blocked, mut read_gate)) = register(&core, peer).await else {
        return;
    };
    let mut write_gate = read_gate.clone();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let writer_core = core.clone();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            match message {
                ToWriter::Bytes(bytes) => {
                    // TLS may keep encrypted bytes until flushed; on TCP flushing is free.
                    if !gate_open(&mut write_gate).await
                        || write.write_all(&bytes).await.is_err()
                        || write.flush().await.is_err()
                    {
                        break;
                    }
                }
                ToWriter::Close => break,
            }
            if blocked.swap(false, Ordering::SeqCst)
                && writer_core.send(ToCore::Drained(id)).await.is_err()
            {
                break;
            }
        }
        let _ = write.shutdown().await;
        let _ = stop_tx.send(());
    });
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            read = gated_read(&mut read, &mut buf, &mut read_gate) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if core.send(ToCore::Input(id, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        break;
                    }
                }
            },
            _ = &mut stop_rx => break,
        }
    }
    let _ = core.send(ToCore::Closed(id)).await;
    writer.abort();
}

/// A read that waits while the gate is stalled, before and after (bytes that came in while
/// stalling are held until it resumes). A cut reads as the end of the stream.
async fn gated_read(
    read: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
    gate: &mut watch::Receiver<Gate>,
) -> std::io::Result<usize> {
    if !gate_open(gate).await {
        return Ok(0);
    }
    let n = read.read(buf).await?;
    if !gate_open(gate).await {
        return Ok(0);
    }
    Ok(n)
}

/// Serves a WebSocket whose handshake is done (over TCP or TLS).
async fn serve_ws<S>(ws: WebSocketStream<S>, peer: SocketAddr, core: mpsc::Sender<ToCore>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some((id, mut rx, blocked, mut read_gate)) = register(&core, peer).await else {
        return;
    };
    let mut write_gate = read_gate.clone();
    let (mut sink, mut source) = ws.split();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let writer_core = core.clone();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            match message {
                ToWriter::Bytes(bytes) => {
                    if !gate_open(&mut write_gate).await {
                        break;
                    }
                    // Text when it is (STOMP frames usually are), as browsers' clients expect.
                    let message = match Utf8Bytes::try_from(bytes.clone()) {
                        Ok(text) => Message::Text(text),
                        Err(_) => Message::Binary(bytes),
                    };
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                ToWriter::Close => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            }
            if blocked.swap(false, Ordering::SeqCst)
                && writer_core.send(ToCore::Drained(id)).await.is_err()
            {
                break;
            }
        }
        let _ = sink.close().await;
        let _ = stop_tx.send(());
    });
    loop {
        tokio::select! {
            message = gated_next(&mut source, &mut read_gate) => match message {
                Some(Ok(Message::Text(text))) => {
                    if core.send(ToCore::Input(id, Bytes::from(text))).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(bytes))) => {
                    if core.send(ToCore::Input(id, bytes)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = &mut stop_rx => break,
        }
    }
    let _ = core.send(ToCore::Closed(id)).await;
    writer.abort();
}

/// [`gated_read`] for WebSocket messages.
async fn gated_next<S>(source: &mut S, gate: &mut watch::Receiver<Gate>) -> Option<S::Item>
where
    S: futures_util::Stream + Unpin,
{
    if !gate_open(gate).await {
        return None;
    }
    let message = source.next().await;
    if !gate_open(gate).await {
        return None;
    }
    message
}

/// Accepts the upgrade on `/ws` only, choosing the highest STOMP subprotocol offered.
#[allow(clippy::result_large_err)]
fn handshake(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() != "/ws" {
        let mut refusal = ErrorResponse::new(Some("STOMP is served at /ws".to_owned()));
        *refusal.status_mut() = http::StatusCode::NOT_FOUND;
        return Err(refusal);
    }
    let offered: Vec<String> = request
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    if let Some(chosen) = SUBPROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
    {
        response.headers_mut().insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            http::HeaderValue::from_static(chosen),
        );
    }
    Ok(response)
}
