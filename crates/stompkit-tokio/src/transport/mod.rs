//! Transports: the byte pipes STOMP frames travel over, chosen by the endpoint's scheme.
//!
//! [`connect`] opens one to an [`Endpoint`] and returns its two halves: a
//! [`TransportReader`] that appends received bytes to a buffer and a [`TransportWriter`] that
//! sends encoded frames. The halves are independent, so one task can read while another
//! writes.
//!
//! | scheme | what |
//! | --- | --- |
//! | `stomp://` | TCP; `TCP_NODELAY` on by default |
//! | `stomp+ssl://` | TLS over TCP (rustls, `ring`); server name from the host, IP addresses included; see [`TlsConfig`] |
//! | `ws://` | WebSocket over TCP; subprotocols and extra headers in [`WsConfig`] |
//! | `wss://` | WebSocket over TLS, same TLS settings as `stomp+ssl://` |
//!
//! Over WebSocket each STOMP frame (and each heart-beat EOL) goes out as its own WebSocket
//! message, cut at the `frame_ends` given to [`TransportWriter::send`]; received messages
//! are plain bytes to the reader, so a frame split over several messages or several frames in
//! one are both fine, as long as one message stays within [`WsConfig::max_message_bytes`]
//! (a [`Client`](crate::Client) sets it to the session's frame limit, so several frames
//! packed into one message must fit in one frame's limit together). Pings are answered by the reader: keep a read pending (as the client
//! driver always does) and pongs go out even while nothing is being sent.
//!
//! [`TransportConfig::connect_timeout`] bounds TCP connect, TLS and WebSocket handshakes
//! together. Nothing here retries except one case: a WebSocket server that accepts the
//! upgrade without picking any offered subprotocol is connected to again without the offer.

mod tcp;
mod tls;
mod ws;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::client::TlsStream;
use tracing::Instrument;

pub use tls::TlsConfig;
pub use ws::WsConfig;

use crate::{Endpoint, Error, Scheme};

/// How to open transports. Start from `TransportConfig::default()` and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Certificate verification for `stomp+ssl://` and `wss://`.
    pub tls: TlsConfig,
    /// WebSocket settings for `ws://` and `wss://`.
    pub ws: WsConfig,
    /// Set `TCP_NODELAY` (default `true`): frames are written whole, so waiting to coalesce
    /// them only adds latency.
    pub nodelay: bool,
    /// Bound on TCP connect plus the TLS and WebSocket handshakes (default 10 s); `None`
    /// leaves it to the operating system and the caller.
    pub connect_timeout: Option<Duration>,
    /// Free room made in the read buffer before each TCP or TLS read (default 16 KiB). One
    /// read appends at most the buffer's free room, so the caller's buffer grows by about
    /// this much per read while it keeps the bytes.
    pub read_chunk_bytes: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            tls: TlsConfig::default(),
            ws: WsConfig::default(),
            nodelay: true,
            connect_timeout: Some(Duration::from_secs(10)),
            read_chunk_bytes: 16 * 1024,
        }
    }
}

impl TransportConfig {
    /// The same configuration with these TLS settings.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// The same configuration with these WebSocket settings.
    pub fn with_ws(mut self, ws: WsConfig) -> Self {
        self.ws = ws;
        self
    }
}

/// TCP or TLS over TCP: what a WebSocket runs over.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The receiving half of a transport.
pub struct TransportReader {
    inner: ReaderInner,
    addr: String,
    read_chunk: usize,
    ws_subprotocol: Option<String>,
}

enum ReaderInner {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
    Ws(ws::WsReader),
}

/// The sending half of a transport.
pub struct TransportWriter {
    inner: WriterInner,
    addr: String,
}

enum WriterInner {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
    Ws(ws::WsWriter),
}

impl TransportReader {
    /// Appends received bytes to `buf` and returns how many; `Ok(0)` is a clean end (TCP
    /// FIN, TLS close, WebSocket close) and stays so on later calls.
    ///
    /// Cancel-safe: dropping the future (e.g. in `select!`) loses no bytes.
    pub async fn read(&mut self, buf: &mut BytesMut) -> Result<usize, Error> {
        use tokio::io::AsyncReadExt;
        let result = match &mut self.inner {
            ReaderInner::Tcp(r) => {
                buf.reserve(self.read_chunk);
                r.read_buf(buf).await
            }
            ReaderInner::Tls(r) => {
                buf.reserve(self.read_chunk);
                r.read_buf(buf).await
            }
            ReaderInner::Ws(r) => return r.read(buf).await,
        };
        result.map_err(|e| Error::io(&self.addr, e))
    }

    /// The subprotocol the WebSocket server picked (e.g. `v12.stomp`); `None` for TCP and
    /// TLS, or when the server picked none.
    pub fn ws_subprotocol(&self) -> Option<&str> {
        self.ws_subprotocol.as_deref()
    }

    /// `host:port` of the endpoint.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl TransportWriter {
    /// Sends `data`, the encoded frames in order. `frame_ends` are the sorted offsets in
    /// `data` where each frame or heart-beat EOL ends (`data.len()` may be omitted); TCP and
    /// TLS write all bytes at once, WebSocket sends one message per piece. Resolves once the
    /// bytes are handed to the operating system.
    ///
    /// Not cancel-safe: a dropped send may have written part of `data`.
    pub async fn send(&mut self, data: Bytes, frame_ends: &[usize]) -> Result<(), Error> {
        let result = match &mut self.inner {
            WriterInner::Tcp(w) => write_all(w, &data).await,
            WriterInner::Tls(w) => write_all(w, &data).await,
            WriterInner::Ws(w) => return w.send(data, frame_ends).await,
        };
        result.map_err(|e| Error::io(&self.addr, e))
    }

    /// Ends the sending direction: TCP `shutdown(Write)`, TLS `close_notify` then shutdown,
    /// WebSocket close message. The reader goes on until the server closes too.
    pub async fn close(&mut self) -> Result<(), Error> {
        let result = match &mut self.inner {
            WriterInner::Tcp(w) => w.shutdown().await,
            WriterInner::Tls(w) => w.shutdown().await,
            WriterInner::Ws(w) => return w.close().await,
        };
        result.map_err(|e| Error::io(&self.addr, e))
    }

    /// `host:port` of the endpoint.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

async fn write_all<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> io::Result<()> {
    w.write_all(data).await?;
    w.flush().await
}

impl std::fmt::Debug for TransportReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportReader")
            .field("kind", &self.inner.kind())
            .field("addr", &self.addr)
            .field("ws_subprotocol", &self.ws_subprotocol)
            .finish()
    }
}

impl std::fmt::Debug for TransportWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            WriterInner::Tcp(_) => "tcp",
            WriterInner::Tls(_) => "tls",
            WriterInner::Ws(_) => "websocket",
        };
        f.debug_struct("TransportWriter")
            .field("kind", &kind)
            .field("addr", &self.addr)
            .finish()
    }
}

impl ReaderInner {
    fn kind(&self) -> &'static str {
        match self {
            Self::Tcp(_) => "tcp",
            Self::Tls(_) => "tls",
            Self::Ws(_) => "websocket",
        }
    }
}

/// Opens a transport to `endpoint` as its scheme says and returns its two halves.
///
/// Errors: [`Error::Connect`], [`Error::ConnectTimeout`], [`Error::TlsCertificate`],
/// [`Error::Tls`], [`Error::CaFile`], [`Error::CaCertificates`], [`Error::InvalidConfig`],
/// [`Error::WsHandshakeRefused`], [`Error::WsProtocol`], [`Error::Io`].
pub async fn connect(
    endpoint: &Endpoint,
    config: &TransportConfig,
) -> Result<(TransportReader, TransportWriter), Error> {
    let span = tracing::debug_span!("transport_connect", endpoint = %endpoint);
    async {
        tracing::debug!("connecting");
        let result = match config.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, open(endpoint, config))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::ConnectTimeout {
                        addr: endpoint.authority(),
                        after: limit,
                    })
                }),
            None => open(endpoint, config).await,
        };
        match &result {
            Ok(_) => tracing::debug!("connected"),
            Err(e) => tracing::debug!(error = %e, "connect failed"),
        }
        result
    }
    .instrument(span)
    .await
}

async fn open(
    endpoint: &Endpoint,
    config: &TransportConfig,
) -> Result<(TransportReader, TransportWriter), Error> {
    let addr = endpoint.authority();
    let halves = |reader, writer, ws_subprotocol| {
        (
            TransportReader {
                inner: reader,
                addr: addr.clone(),
                read_chunk: config.read_chunk_bytes.max(1),
                ws_subprotocol,
            },
            TransportWriter {
                inner: writer,
                addr: addr.clone(),
            },
        )
    };
    match endpoint.scheme() {
        Scheme::Tcp => {
            let (r, w) = tcp::connect(endpoint, config.nodelay).await?.into_split();
            Ok(halves(ReaderInner::Tcp(r), WriterInner::Tcp(w), None))
        }
        Scheme::Tls => {
            let (r, w) = tokio::io::split(open_stream_tls(endpoint, config).await?);
            Ok(halves(ReaderInner::Tls(r), WriterInner::Tls(w), None))
        }
        Scheme::Ws | Scheme::Wss => {
            let mut offer = true;
            let handshake = loop {
                let stream = if endpoint.scheme().is_tls() {
                    Stream::Tls(Box::new(open_stream_tls(endpoint, config).await?))
                } else {
                    Stream::Plain(tcp::connect(endpoint, config.nodelay).await?)
                };
                match ws::handshake(stream, endpoint, &config.ws, offer).await {
                    Ok(h) => break h,
                    // Bounded: the second pass offers nothing, so cannot get this answer.
                    Err(ws::HandshakeError::NoSubprotocol) if offer => {
                        tracing::debug!(
                            "the WebSocket server picked no subprotocol; connecting again \
                             without offering any"
                        );
                        offer = false;
                    }
                    Err(ws::HandshakeError::NoSubprotocol) => {
                        return Err(Error::WsProtocol {
                            addr: addr.clone(),
                            reason: "the server insists on a subprotocol answer".to_owned(),
                        });
                    }
                    Err(ws::HandshakeError::Fatal(e)) => return Err(e),
                }
            };
            let (r, w) = ws::split(handshake.socket, addr.clone(), &config.ws);
            Ok(halves(
                ReaderInner::Ws(r),
                WriterInner::Ws(w),
                handshake.subprotocol,
            ))
        }
    }
}

async fn open_stream_tls(
    endpoint: &Endpoint,
    config: &TransportConfig,
) -> Result<TlsStream<TcpStream>, Error> {
    // Configuration errors (CA file...) come before any connection attempt.
    let client_config = config.tls.client_config()?;
    let tcp = tcp::connect(endpoint, config.nodelay).await?;
    tls::connect(tcp, endpoint.host(), &config.tls, client_config).await
}
