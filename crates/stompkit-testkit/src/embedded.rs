//! The broker core on tokio: TCP and WebSocket listeners on loopback.
//!
//! One task owns the [`Broker`]; every connection has a reader task (bytes to the core) and
//! a writer task (bytes from the core). The core hands a writer at most a few chunks at a
//! time and keeps the rest in the broker, which stops delivering to a connection whose
//! output is full: a slow client holds back only its own messages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
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

/// How to start an [`EmbeddedBroker`].
#[derive(Debug, Clone)]
pub struct EmbeddedBrokerBuilder {
    config: BrokerConfig,
    tcp: SocketAddr,
    ws: Option<SocketAddr>,
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
            None,
            core_tx.clone(),
            refuse_rx.clone(),
        )));
        if let Some(ws) = ws {
            tasks.push(tokio::spawn(accept_loop(
                ws,
                Some(ws_config),
                core_tx.clone(),
                refuse_rx,
            )));
        }
        tracing::info!(%tcp_addr, ?ws_addr, "embedded broker started");
        Ok(EmbeddedBroker {
            tcp_addr,
            ws_addr,
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
    Input(ConnectionId, Bytes),
    Closed(ConnectionId),
    /// A writer that was full has room again.
    Drained(ConnectionId),
    Kill(oneshot::Sender<()>),
    Publish(String, Bytes, oneshot::Sender<Result<(), Error>>),
    Held(String, oneshot::Sender<Vec<Held>>),
    Stats(oneshot::Sender<BrokerStats>),
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
                let _ = reply.send(());
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

/// Accepts connections until the listener fails; WebSocket ones when `ws` is set.
async fn accept_loop(
    listener: TcpListener,
    ws: Option<WebSocketConfig>,
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
        tokio::spawn(async move {
            match ws {
                None => serve_tcp(stream, core).await,
                Some(config) => {
                    if let Err(e) = serve_ws(stream, config, core).await {
                        tracing::debug!(%peer, error = %e, "WebSocket handshake failed");
                    }
                }
            }
        });
    }
}

/// Registers a new transport with the core; `None` when the broker is full or gone.
async fn register(
    core: &mpsc::Sender<ToCore>,
) -> Option<(ConnectionId, mpsc::Receiver<ToWriter>, Arc<AtomicBool>)> {
    let (tx, rx) = mpsc::channel(WRITER_QUEUE);
    let blocked = Arc::new(AtomicBool::new(false));
    let (reply, answer) = oneshot::channel();
    let writer = Writer {
        tx,
        blocked: blocked.clone(),
    };
    core.send(ToCore::Open(writer, reply)).await.ok()?;
    let id = answer.await.ok()??;
    Some((id, rx, blocked))
}

async fn serve_tcp(stream: TcpStream, core: mpsc::Sender<ToCore>) {
    let Some((id, mut rx, blocked)) = register(&core).await else {
        return;
    };
    let (mut read, mut write) = stream.into_split();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let writer_core = core.clone();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            match message {
                ToWriter::Bytes(bytes) => {
                    if write.write_all(&bytes).await.is_err() {
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
            read = read.read(&mut buf) => match read {
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

async fn serve_ws(
    stream: TcpStream,
    config: WebSocketConfig,
    core: mpsc::Sender<ToCore>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, handshake, Some(config)).await?;
    let Some((id, mut rx, blocked)) = register(&core).await else {
        return Ok(());
    };
    let (mut sink, mut source) = ws.split();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let writer_core = core.clone();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            match message {
                ToWriter::Bytes(bytes) => {
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
            message = source.next() => match message {
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
    Ok(())
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
