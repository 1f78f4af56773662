//! STOMP over WebSocket (tokio-tungstenite), over TCP or TLS.

use std::fmt;
use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::header::{
    HeaderName, HeaderValue, SEC_WEBSOCKET_PROTOCOL,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::Stream;
use crate::{Endpoint, Error};

/// WebSocket settings.
///
/// Output: one WebSocket message per STOMP frame (and per heart-beat EOL). Text messages by
/// default, as stomp.js sends them and RabbitMQ's Web-STOMP and Spring expect; a frame whose
/// bytes are not UTF-8 (a binary body) goes as a binary message, since text messages must be
/// UTF-8. With [`binary`](Self::binary) set every frame goes as a binary message. Input: text
/// and binary messages alike are STOMP bytes; frames split across or packed into messages are
/// fine.
#[derive(Clone)]
#[non_exhaustive]
pub struct WsConfig {
    /// Subprotocols offered, in order of preference. Default `v12.stomp`, `v11.stomp`,
    /// `v10.stomp`. A server that picks none is accepted (logged at debug level).
    pub subprotocols: Vec<String>,
    /// Extra headers of the upgrade request, e.g. `("Authorization", "Bearer ...")`. Values
    /// are redacted in `Debug`. Beware: tungstenite logs the raw upgrade request, headers
    /// included, through the `log` crate at trace level (target
    /// `tungstenite::handshake::client`); keep that target below trace where headers carry
    /// secrets.
    pub headers: Vec<(String, String)>,
    /// Send every frame as a binary message (default `false`: text, see above).
    pub binary: bool,
    /// Largest WebSocket message or frame accepted, in bytes; bigger ones end the connection
    /// with [`Error::WsMessageTooLarge`]. Set it from the codec's frame limit; the default is
    /// the codec's default `max_frame_bytes` (8 MiB).
    pub max_message_bytes: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            subprotocols: ["v12.stomp", "v11.stomp", "v10.stomp"]
                .map(String::from)
                .to_vec(),
            headers: Vec::new(),
            binary: false,
            // The codec's default `max_frame_bytes`.
            max_message_bytes: 8 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for WsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, _)| (name.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("WsConfig")
            .field("subprotocols", &self.subprotocols)
            .field("headers", &headers)
            .field("binary", &self.binary)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish()
    }
}

pub(crate) type WsStream = WebSocketStream<Stream>;

/// What the handshake gave: the socket and the subprotocol the server picked.
pub(crate) struct Handshake {
    pub(crate) socket: WsStream,
    pub(crate) subprotocol: Option<String>,
}

/// Runs the upgrade request over `stream`. `offer_subprotocols` is false for the second try
/// at a server that picked none (tungstenite refuses such an answer to an offer).
pub(crate) async fn handshake(
    stream: Stream,
    endpoint: &Endpoint,
    config: &WsConfig,
    offer_subprotocols: bool,
) -> Result<Handshake, HandshakeError> {
    let url = endpoint.ws_url();
    let addr = endpoint.authority();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| HandshakeError::Fatal(map_error(&addr, config.max_message_bytes, e)))?;
    let headers = request.headers_mut();
    if offer_subprotocols && !config.subprotocols.is_empty() {
        let offer = config.subprotocols.join(", ");
        let value = HeaderValue::from_str(&offer).map_err(|_| {
            HandshakeError::Fatal(Error::InvalidConfig {
                reason: format!("WebSocket subprotocols `{offer}` are not a valid header value"),
            })
        })?;
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    for (name, value) in &config.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            HandshakeError::Fatal(Error::InvalidConfig {
                reason: format!("`{name}` is not a valid HTTP header name"),
            })
        })?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            HandshakeError::Fatal(Error::InvalidConfig {
                reason: format!("the value of the `{name}` header is not a valid HTTP value"),
            })
        })?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    match tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config)).await {
        Ok((socket, response)) => {
            let subprotocol = response
                .headers()
                .get(SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            tracing::debug!(?subprotocol, "WebSocket handshake done");
            Ok(Handshake {
                socket,
                subprotocol,
            })
        }
        Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        ))) => Err(HandshakeError::NoSubprotocol),
        Err(WsError::Http(response)) => Err(HandshakeError::Fatal(Error::WsHandshakeRefused {
            url,
            status: response.status().as_u16(),
        })),
        Err(e) => Err(HandshakeError::Fatal(map_error(
            &addr,
            config.max_message_bytes,
            e,
        ))),
    }
}

pub(crate) enum HandshakeError {
    /// The server accepted the upgrade without picking an offered subprotocol.
    NoSubprotocol,
    Fatal(Error),
}

/// Turns a tungstenite error into ours.
fn map_error(addr: &str, max: usize, e: WsError) -> Error {
    match e {
        WsError::Io(e) => Error::io(addr, e),
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            Error::WsMessageTooLarge {
                size,
                max: max_size.min(max),
            }
        }
        WsError::ConnectionClosed | WsError::AlreadyClosed => Error::io(
            addr,
            io::Error::new(io::ErrorKind::BrokenPipe, "the WebSocket is closed"),
        ),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Error::WsProtocol {
            addr: addr.to_owned(),
            reason: "the server closed the connection without a WebSocket close".to_owned(),
        },
        e => Error::WsProtocol {
            addr: addr.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// The receiving half.
pub(crate) struct WsReader {
    stream: SplitStream<WsStream>,
    addr: String,
    max: usize,
    closed: bool,
}

/// The sending half.
pub(crate) struct WsWriter {
    sink: SplitSink<WsStream, Message>,
    addr: String,
    max: usize,
    binary: bool,
}

pub(crate) fn split(socket: WsStream, addr: String, config: &WsConfig) -> (WsReader, WsWriter) {
    let (sink, stream) = socket.split();
    (
        WsReader {
            stream,
            addr: addr.clone(),
            max: config.max_message_bytes,
            closed: false,
        },
        WsWriter {
            sink,
            addr,
            max: config.max_message_bytes,
            binary: config.binary,
        },
    )
}

impl WsReader {
    /// Appends the next non-empty message's payload; `Ok(0)` once the server closed.
    ///
    /// Pongs to pings (and the reply to a close) are queued by tungstenite and written by
    /// its next read, which this loop makes straight away, so they go out while the writer
    /// is idle as long as the caller keeps reading.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> Result<usize, Error> {
        while !self.closed {
            let payload = match self.stream.next().await {
                None => {
                    self.closed = true;
                    break;
                }
                Some(Err(e)) => return Err(map_error(&self.addr, self.max, e)),
                Some(Ok(Message::Text(text))) => Bytes::from(text),
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    tracing::debug!(?frame, "WebSocket close received");
                    self.closed = true;
                    // One poll writes the queued close reply; the result does not matter.
                    let _ = self.stream.next().now_or_never();
                    break;
                }
            };
            if !payload.is_empty() {
                buf.extend_from_slice(&payload);
                return Ok(payload.len());
            }
        }
        Ok(0)
    }
}

impl WsWriter {
    /// One message per piece of `data`, cut at `frame_ends`, then one flush.
    pub(crate) async fn send(&mut self, data: Bytes, frame_ends: &[usize]) -> Result<(), Error> {
        let mut start = 0;
        for &end in frame_ends.iter().chain(std::iter::once(&data.len())) {
            // Ends out of order or past the data are skipped rather than trusted.
            if end <= start || end > data.len() {
                continue;
            }
            let message = self.message(data.slice(start..end));
            start = end;
            self.sink
                .feed(message)
                .await
                .map_err(|e| map_error(&self.addr, self.max, e))?;
        }
        self.sink
            .flush()
            .await
            .map_err(|e| map_error(&self.addr, self.max, e))
    }

    fn message(&self, piece: Bytes) -> Message {
        if self.binary {
            return Message::Binary(piece);
        }
        match Utf8Bytes::try_from(piece.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(piece),
        }
    }

    /// Sends a WebSocket close (without waiting for the server's reply, which the reader
    /// sees as `Ok(0)`).
    pub(crate) async fn close(&mut self) -> Result<(), Error> {
        self.sink
            .close()
            .await
            .map_err(|e| map_error(&self.addr, self.max, e))
    }
}
