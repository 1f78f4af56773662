//! A virtual clock and in-memory clients around the broker core.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use stompkit_codec::{Command, Decoder, Encoder, Frame, Item, Version};
use stompkit_testkit::{Broker, BrokerConfig, ConnectionId};

pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What one in-memory client has seen.
#[derive(Debug)]
pub struct Client {
    pub version: Version,
    decoder: Decoder,
    buf: BytesMut,
    /// Every byte received.
    pub raw: Vec<u8>,
    /// Frames not yet taken.
    pub frames: Vec<Frame>,
    /// Heart-beats (EOLs between frames) received.
    pub heartbeats: usize,
    /// The broker closed the transport.
    pub closed: bool,
}

/// The broker, a clock that only moves through [`Harness::advance`], and its clients.
#[derive(Debug)]
pub struct Harness {
    pub broker: Broker,
    pub now: Instant,
    pub clients: BTreeMap<ConnectionId, Client>,
}

impl Harness {
    pub fn new(config: BrokerConfig) -> Self {
        Self {
            broker: Broker::new(config).expect("valid config"),
            now: Instant::now(),
            clients: BTreeMap::new(),
        }
    }

    pub fn rabbit() -> Self {
        Self::new(BrokerConfig::default())
    }

    /// A transport, no CONNECT yet.
    pub fn open(&mut self) -> ConnectionId {
        let id = self.broker.open(self.now).expect("room for a connection");
        self.clients.insert(
            id,
            Client {
                version: Version::V1_2,
                decoder: Decoder::new(Version::V1_2),
                buf: BytesMut::new(),
                raw: Vec::new(),
                frames: Vec::new(),
                heartbeats: 0,
                closed: false,
            },
        );
        id
    }

    /// A client connected with STOMP 1.2.
    pub fn connect(&mut self) -> ConnectionId {
        self.connect_with("1.2", &[])
    }

    /// Opens and sends CONNECT offering `versions`, with `extra` headers; takes CONNECTED.
    pub fn connect_with(&mut self, versions: &str, extra: &[(&str, &str)]) -> ConnectionId {
        let id = self.open();
        let mut headers = vec![("accept-version", versions), ("host", "/")];
        headers.extend_from_slice(extra);
        self.frame(id, Command::Connect, &headers, "");
        let connected = self.take(id);
        assert_eq!(
            connected.first().map(Frame::command),
            Some(Command::Connected),
            "{connected:?}"
        );
        id
    }

    /// Bytes from the client to the broker, then everything the broker has to say.
    pub fn send_raw(&mut self, id: ConnectionId, bytes: &[u8]) {
        self.broker.handle_input(self.now, id, bytes);
        self.pump();
    }

    /// A frame from the client, encoded in its version.
    pub fn frame(
        &mut self,
        id: ConnectionId,
        command: Command,
        headers: &[(&str, &str)],
        body: &str,
    ) {
        let version = self.clients[&id].version;
        let mut out = BytesMut::new();
        let headers = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        Encoder::new(version)
            .encode_parts(command, headers, body.as_bytes(), &mut out)
            .expect("encodable test frame");
        self.send_raw(id, &out);
    }

    pub fn subscribe(&mut self, id: ConnectionId, sub: &str, destination: &str, ack: &str) {
        self.frame(
            id,
            Command::Subscribe,
            &[("id", sub), ("destination", destination), ("ack", ack)],
            "",
        );
    }

    pub fn send(&mut self, id: ConnectionId, destination: &str, body: &str) {
        self.frame(id, Command::Send, &[("destination", destination)], body);
    }

    /// Moves every broker output to its client, and closes what the broker closes.
    pub fn pump(&mut self) {
        loop {
            let mut any = false;
            let ids: Vec<ConnectionId> = self.clients.keys().copied().collect();
            for id in ids {
                while let Some(bytes) = self.broker.poll_transmit(id) {
                    any = true;
                    let client = self.clients.get_mut(&id).expect("known client");
                    client.raw.extend_from_slice(&bytes);
                    client.buf.extend_from_slice(&bytes);
                    while let Some(item) = client
                        .decoder
                        .decode(&mut client.buf)
                        .expect("broker output decodes")
                    {
                        match item {
                            Item::Heartbeat => client.heartbeats += 1,
                            Item::Frame(frame) => {
                                if frame.command() == Command::Connected {
                                    if let Some(v) =
                                        frame.header_str("version").and_then(|v| v.parse().ok())
                                    {
                                        client.version = v;
                                        client.decoder.set_version(v);
                                    }
                                }
                                client.frames.push(frame);
                            }
                        }
                    }
                }
            }
            while let Some(id) = self.broker.poll_close() {
                any = true;
                while let Some(bytes) = self.broker.poll_transmit(id) {
                    let client = self.clients.get_mut(&id).expect("known client");
                    client.raw.extend_from_slice(&bytes);
                    client.buf.extend_from_slice(&bytes);
                    while let Ok(Some(item)) = client.decoder.decode(&mut client.buf) {
                        if let Item::Frame(frame) = item {
                            client.frames.push(frame);
                        }
                    }
                }
                self.broker.closed(self.now, id);
                self.clients.get_mut(&id).expect("known client").closed = true;
            }
            if !any {
                return;
            }
        }
    }

    /// The client's transport ends (not a DISCONNECT).
    pub fn drop_client(&mut self, id: ConnectionId) {
        self.broker.closed(self.now, id);
        self.clients.get_mut(&id).expect("known client").closed = true;
        self.pump();
    }

    /// Frames received and not yet taken.
    pub fn take(&mut self, id: ConnectionId) -> Vec<Frame> {
        std::mem::take(&mut self.clients.get_mut(&id).expect("known client").frames)
    }

    /// Bodies of the MESSAGE frames received and not yet taken.
    pub fn bodies(&mut self, id: ConnectionId) -> Vec<String> {
        self.take(id)
            .iter()
            .filter(|f| f.command() == Command::Message)
            .map(|f| String::from_utf8_lossy(f.body()).into_owned())
            .collect()
    }

    pub fn closed(&self, id: ConnectionId) -> bool {
        self.clients[&id].closed
    }

    /// Steps the clock through every broker deadline up to `now + d`.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        // Each step either reaches `end` or handles a deadline that moves on.
        for _ in 0..100_000 {
            match self.broker.poll_timeout() {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.broker.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
        self.broker.handle_timeout(self.now);
        self.pump();
    }
}

/// A header of `frame`, or a panic naming it.
pub fn header<'f>(frame: &'f Frame, name: &str) -> &'f str {
    frame
        .header_str(name)
        .unwrap_or_else(|| panic!("no {name} in {frame:?}"))
}

/// The commands of `frames`.
pub fn commands(frames: &[Frame]) -> Vec<Command> {
    frames.iter().map(Frame::command).collect()
}
