//! STOMP frame commands.

use std::fmt;

/// A STOMP command: the first line of every frame.
///
/// Commands are case-sensitive on the wire: `send` is not `SEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    // Client commands.
    /// `CONNECT`: opens a session (all versions).
    Connect,
    /// `STOMP`: opens a session (1.1+ alternative to `CONNECT`).
    Stomp,
    /// `SEND`: sends a message to a destination.
    Send,
    /// `SUBSCRIBE`: registers interest in a destination.
    Subscribe,
    /// `UNSUBSCRIBE`: removes a subscription.
    Unsubscribe,
    /// `ACK`: acknowledges a message.
    Ack,
    /// `NACK`: rejects a message (1.1+).
    Nack,
    /// `BEGIN`: starts a transaction.
    Begin,
    /// `COMMIT`: commits a transaction.
    Commit,
    /// `ABORT`: rolls back a transaction.
    Abort,
    /// `DISCONNECT`: ends the session gracefully.
    Disconnect,
    // Server commands.
    /// `CONNECTED`: the server accepted the session.
    Connected,
    /// `MESSAGE`: a message delivered to a subscription.
    Message,
    /// `RECEIPT`: confirms a frame that asked for a receipt.
    Receipt,
    /// `ERROR`: something went wrong; the server closes the connection after it.
    Error,
}

impl Command {
    /// Every command, client commands first.
    pub const ALL: [Self; 15] = [
        Self::Connect,
        Self::Stomp,
        Self::Send,
        Self::Subscribe,
        Self::Unsubscribe,
        Self::Ack,
        Self::Nack,
        Self::Begin,
        Self::Commit,
        Self::Abort,
        Self::Disconnect,
        Self::Connected,
        Self::Message,
        Self::Receipt,
        Self::Error,
    ];

    /// The command as written on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Stomp => "STOMP",
            Self::Send => "SEND",
            Self::Subscribe => "SUBSCRIBE",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::Ack => "ACK",
            Self::Nack => "NACK",
            Self::Begin => "BEGIN",
            Self::Commit => "COMMIT",
            Self::Abort => "ABORT",
            Self::Disconnect => "DISCONNECT",
            Self::Connected => "CONNECTED",
            Self::Message => "MESSAGE",
            Self::Receipt => "RECEIPT",
            Self::Error => "ERROR",
        }
    }

    /// Parses a command exactly as written on the wire (case-sensitive).
    pub fn from_bytes(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"MESSAGE" => Self::Message,
            b"SEND" => Self::Send,
            b"ACK" => Self::Ack,
            b"RECEIPT" => Self::Receipt,
            b"SUBSCRIBE" => Self::Subscribe,
            b"UNSUBSCRIBE" => Self::Unsubscribe,
            b"NACK" => Self::Nack,
            b"BEGIN" => Self::Begin,
            b"COMMIT" => Self::Commit,
            b"ABORT" => Self::Abort,
            b"CONNECT" => Self::Connect,
            b"STOMP" => Self::Stomp,
            b"CONNECTED" => Self::Connected,
            b"DISCONNECT" => Self::Disconnect,
            b"ERROR" => Self::Error,
            _ => return None,
        })
    }

    /// Whether the spec lets this frame carry a body: only `SEND`, `MESSAGE` and `ERROR` may.
    pub const fn allows_body(self) -> bool {
        matches!(self, Self::Send | Self::Message | Self::Error)
    }

    /// Whether this frame's headers are escaped (in 1.1+).
    ///
    /// `CONNECT`, `STOMP` and `CONNECTED` never are, for compatibility with 1.0 (spec 1.2,
    /// "Value Encoding").
    pub const fn escapes_headers(self) -> bool {
        !matches!(self, Self::Connect | Self::Stomp | Self::Connected)
    }

    /// Whether a client sends this command (as opposed to a server).
    pub const fn is_client_command(self) -> bool {
        !matches!(
            self,
            Self::Connected | Self::Message | Self::Receipt | Self::Error
        )
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
