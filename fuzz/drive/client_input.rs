//! The body of the `client_input` fuzz target, shared through `#[path]` by the target
//! (`fuzz/fuzz_targets/client_input.rs`, nightly) and the corpus replay on stable
//! (`repo-tests/tests/fuzz_corpus.rs`): one copy of the logic.
//!
//! One input is one run of the real `stompkit_tokio::Client` against a scripted broker on
//! loopback, TCP or WebSocket, in a current-thread tokio runtime whose clock is paused (it
//! jumps to the next timer whenever every task waits, so heart-beat, receipt, connect and
//! backoff timeouts cost no wall time). The broker answers the client's `CONNECT` with the
//! `CONNECTED` of a real broker dialect, then writes the input's bytes cut and framed as the
//! input says, across as many connections as the client makes. The client subscribes
//! (`client-individual` and `auto`), sends two receipted messages and one plain one, acks
//! or nacks what it gets, then disconnects. Layout of an input (missing bytes read as 0):
//!
//! ```text
//! mode plan (size kind){plan & 7, 0 meaning 1} stream...
//! ```
//!
//! - `mode` bit 0: WebSocket (else TCP); bits 1-3: the dialect, an index into [`DIALECTS`]
//!   (7: none, the stream must carry the answer to `CONNECT` itself); bit 4: the broker
//!   answers every `receipt` header the client sends with a `RECEIPT`; bit 5: the client asks
//!   for heart-beats every 500 ms both ways (else none); bit 6: acks ask for receipts; bit 7:
//!   the application never reads its `auto` subscription (backpressure).
//! - `plan`: bits 0-2 the number of steps, bits 3-7 the pause length in 25 ms steps.
//! - Each step takes `size` bytes of the stream (0: none) and `kind` says what to do with
//!   them. TCP: `kind & 3` 0 or 1 write, 2 write then close (FIN), 3 write then reset (RST).
//!   WebSocket: `kind & 7` 0 a text message, 1 a binary one, 2 a fragment (a frame without
//!   FIN; the next text or binary step ends the message), 3 a ping, 4 a pong (both at most
//!   125 bytes), 5 raw bytes with no framing, 6 write as binary then close the TCP
//!   connection without a WebSocket close, 7 write as binary then a WebSocket close.
//!   `kind & 8`: pause after the step. Steps cycle until the stream is used up; a closed
//!   connection leaves the rest of the stream to the next one. Then the broker holds the
//!   connection.
//!
//! Invariants, each a panic when broken: nothing panics; the run ends (bounded in virtual
//! time); deliveries come on the subscription they name; while more than
//! `max_buffered_bytes` wait in the subscriptions and the application takes nothing, the
//! client reads nothing (`bytes_in` stays put), and the waiting bytes stay within
//! `max_buffered_bytes` plus what one read can decode; the client never counts more bytes
//! in than the broker wrote; `disconnect` returns, leaves the state `Closed` and the task
//! gone (`status` is `Closed`); every receipted send resolves once disconnected; and once
//! the client is dropped no task is left running.

use std::cell::Cell;
use std::time::Duration;

use stompkit_tokio::session::codec::Limits;
use stompkit_tokio::session::policy::Jitter;
use stompkit_tokio::session::{BackoffConfig, BreakerConfig};
use stompkit_tokio::{
    AckMode, Client, Delivery, Error, Message, State, Subscribe, Subscription, TransportConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, sleep_until, timeout};

/// The client's frame limit (and so its WebSocket message limit): above every frame of the
/// transcripts, small enough for the fuzzer to reach.
const MAX_FRAME: usize = 1024;
/// The client's read chunk over TCP.
const READ_CHUNK: usize = 128;
/// The client's `max_buffered_bytes`: a few deliveries (each counts its body plus 64).
const MAX_BUFFERED: usize = 256;
/// The most bytes one read hands the session: a partial frame kept from before, plus one
/// read (TCP: the chunk, at most twice over as the buffer grows; WebSocket: one message).
const ONE_INPUT: usize = MAX_FRAME
    + if 2 * READ_CHUNK > MAX_FRAME {
        2 * READ_CHUNK
    } else {
        MAX_FRAME
    };
/// A delivery counts its body plus 64 bytes and its frame has at least 29 more bytes than
/// its body (`MESSAGE`, a `subscription` header, the blank line, the NUL): one read's
/// deliveries count less than three times its bytes.
const BUFFER_BOUND: usize = MAX_BUFFERED + 3 * ONE_INPUT;
/// How long the application runs before it disconnects (virtual time).
const RUN: Duration = Duration::from_millis(1500);
/// Bound on one whole run (virtual time): far above what the timeouts below add up to.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Most script steps in one run, whatever the plan.
const MAX_STEPS: usize = 512;

/// `CONNECTED` frames of real brokers, byte for byte from `/work/shared/transcripts` (the
/// session ids vary per connection there), except Spring's, written after its simple broker.
pub(crate) const DIALECTS: [&[u8]; 7] = [
    b"CONNECTED\nserver:RabbitMQ/3.10.8\nsession:session-Q45J3gvf5uy37sPieZsAtw\nheart-beat:0,0\nversion:1.2\n\n\0\n",
    b"CONNECTED\nserver:RabbitMQ/3.10.8\nsession:session-AiWd_H2mNtVmug0BghWcIw\nheart-beat:0,0\nversion:1.1\n\n\0\n",
    b"CONNECTED\nserver:RabbitMQ/3.10.8\nsession:session-XYHHQGhDlQjVJSmZuxwopQ\nheart-beat:0,0\nversion:1.0\n\n\0\n",
    b"CONNECTED\nserver:RabbitMQ/3.10.8\nsession:session-eTxNi-eNtDTeHf3gLK6aYg\nheart-beat:1000,1000\nversion:1.2\n\n\0\n",
    b"CONNECTED\nserver:ActiveMQ/5.17.2\nheart-beat:0,0\nsession:ID:broker-host-1795301228868-3:5\nversion:1.2\n\n\0\n",
    b"CONNECTED\nserver:ActiveMQ/5.17.2\nheart-beat:500,500\nsession:ID:broker-host-1795301228868-3:12\nversion:1.2\n\n\0\n",
    b"CONNECTED\nversion:1.2\nheart-beat:0,0\nuser-name:guest\n\n\0",
];

/// An input, parsed.
#[derive(Debug)]
struct Input<'a> {
    ws: bool,
    dialect: Option<&'static [u8]>,
    echo_receipts: bool,
    heart_beat: bool,
    ack_receipts: bool,
    starve_auto: bool,
    pause: Duration,
    plan: Vec<(usize, u8)>,
    stream: &'a [u8],
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Self {
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let mode = byte(0);
        let steps = usize::from(byte(1) & 7).max(1);
        Self {
            ws: mode & 1 != 0,
            dialect: DIALECTS.get(usize::from((mode >> 1) & 7)).copied(),
            echo_receipts: mode & 0x10 != 0,
            heart_beat: mode & 0x20 != 0,
            ack_receipts: mode & 0x40 != 0,
            starve_auto: mode & 0x80 != 0,
            pause: Duration::from_millis(25 * u64::from(byte(1) >> 3)),
            plan: (0..steps)
                .map(|i| (usize::from(byte(2 + 2 * i)), byte(3 + 2 * i)))
                .collect(),
            stream: data.get(2 + 2 * steps..).unwrap_or(&[]),
        }
    }
}

/// Runs one input; panics when an invariant breaks.
pub(crate) fn drive(data: &[u8]) {
    let input = Input::parse(data);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener");
        let port = listener.local_addr().expect("its address").port();
        let url = if input.ws {
            format!("ws://127.0.0.1:{port}/ws")
        } else {
            format!("stomp://guest:guest@127.0.0.1:{port}")
        };
        let written = Cell::new(0u64);
        let run = async {
            tokio::select! {
                () = broker(&listener, &input, &written) => unreachable!("the broker accepts until dropped"),
                () = application(&url, &input, &written) => {}
            }
        };
        timeout(RUN_LIMIT, run)
            .await
            .expect("the run ends within its bound");
        // The broker and its sockets are gone: every task of the client must end.
        let handle = tokio::runtime::Handle::current();
        let dropped = Instant::now();
        loop {
            let alive = handle.metrics().num_alive_tasks();
            if alive == 0 {
                break;
            }
            assert!(
                dropped.elapsed() < Duration::from_secs(30),
                "{alive} tasks still alive 30 s after the client was dropped"
            );
            sleep(Duration::from_millis(10)).await;
        }
    });
}

// ---------------------------------------------------------------- the application

async fn application(url: &str, input: &Input<'_>, written: &Cell<u64>) {
    let heart_beat = if input.heart_beat {
        Duration::from_millis(500)
    } else {
        Duration::ZERO
    };
    let mut transport = TransportConfig::default();
    transport.read_chunk_bytes = READ_CHUNK;
    transport.connect_timeout = Some(Duration::from_secs(1));
    let client = Client::builder(url)
        .expect("a valid URL")
        .session_with(|c| {
            c.with_seed(1)
                .with_heart_beat(heart_beat, heart_beat)
                .with_connect_timeout(Duration::from_millis(300))
                .with_receipt_timeout(Duration::from_millis(400))
                .with_disconnect_timeout(Duration::from_millis(200))
                .with_limits(Limits::default().with_max_frame_bytes(MAX_FRAME))
                .with_backoff(
                    BackoffConfig::exponential(
                        Duration::from_millis(20),
                        2.0,
                        Duration::from_millis(200),
                    )
                    .jitter(Jitter::None)
                    .max_attempts(Some(3)),
                )
                .with_breaker(BreakerConfig::default().no_consecutive_failures())
        })
        .transport(transport)
        .max_buffered_bytes(MAX_BUFFERED)
        .start()
        .expect("the client starts");

    // Commands before the connection is up are queued by the session.
    let mut individual = client
        .subscribe(Subscribe::new("/queue/b").ack(AckMode::ClientIndividual))
        .await
        .expect("a subscription is taken offline");
    let mut auto = client
        .subscribe(Subscribe::new("/queue/a"))
        .await
        .expect("a subscription is taken offline");
    let mut confirmations = Vec::new();
    for body in ["one", "two"] {
        let confirmation = client
            .send_with_receipt(Message::new("/queue/a", body))
            .await
            .expect("a receipted send is taken offline");
        confirmations.push(confirmation);
    }
    client
        .send(Message::new("/queue/b", "three"))
        .await
        .expect("a send is taken offline");

    let mut gate = Gate::default();
    let (mut individual_open, mut auto_open) = (true, true);
    let mut received = 0u32;
    let end = Instant::now() + RUN;
    loop {
        tokio::select! {
            () = sleep_until(end) => break,
            delivery = individual.next_delivery(), if individual_open => match delivery {
                Some(delivery) => {
                    gate.taken = true;
                    received += 1;
                    check_route(&delivery, &individual);
                    // Typed errors (not connected, 1.0 has no NACK...) are fine; hanging is not
                    // (the run's bound).
                    let _ = if received % 4 == 3 {
                        delivery.nack().await
                    } else if input.ack_receipts {
                        delivery.ack_confirmed().await
                    } else {
                        delivery.ack().await
                    };
                }
                None => individual_open = false,
            },
            delivery = auto.next_delivery(), if auto_open && !input.starve_auto => match delivery {
                Some(delivery) => {
                    gate.taken = true;
                    check_route(&delivery, &auto);
                }
                None => auto_open = false,
            },
            () = sleep(Duration::from_millis(20)) => gate.check(&client, written).await,
        }
    }
    gate.check(&client, written).await;

    let disconnected = client.disconnect().await;
    assert!(
        matches!(disconnected, Ok(()) | Err(Error::Closed)),
        "disconnect: {disconnected:?}"
    );
    assert_eq!(*client.state().borrow(), State::Closed, "after disconnect");
    for confirmation in confirmations {
        // Ok or a typed error, but an outcome.
        let outcome = timeout(Duration::from_secs(1), confirmation.confirmed()).await;
        assert!(
            outcome.is_ok(),
            "a receipted send still unresolved after disconnect"
        );
    }
    let status = client.status().await;
    assert!(
        matches!(status, Err(Error::Closed)),
        "the client task still answers after disconnect: {status:?}"
    );
}

fn check_route(delivery: &Delivery, subscription: &Subscription) {
    assert_eq!(
        delivery.subscription(),
        subscription.id(),
        "a delivery on the wrong subscription"
    );
}

/// The read gate, seen through `status()`.
#[derive(Debug, Default)]
struct Gate {
    /// Buffered bytes and bytes in at the last sample.
    last: Option<(usize, u64)>,
    /// Whether the application took a delivery since.
    taken: bool,
}

impl Gate {
    async fn check(&mut self, client: &Client, written: &Cell<u64>) {
        let status = client
            .status()
            .await
            .expect("the client answers until disconnected");
        let (buffered, bytes_in) = (status.buffered_bytes, status.stats.bytes_in);
        assert!(
            buffered <= BUFFER_BOUND,
            "{buffered} bytes buffered, above the bound {BUFFER_BOUND}"
        );
        assert!(
            bytes_in <= written.get(),
            "{bytes_in} bytes counted in, the broker wrote {}",
            written.get()
        );
        let taken = self.taken;
        if let Some((before, bytes_before)) = self.last.filter(|&(b, _)| b > MAX_BUFFERED && !taken)
        {
            assert_eq!(
                bytes_in, bytes_before,
                "read while {before} bytes were buffered (limit {MAX_BUFFERED}) and the \
                 application took nothing"
            );
        }
        self.last = Some((buffered, bytes_in));
        self.taken = false;
    }
}

// ---------------------------------------------------------------- the broker

/// Where the script is: shared by the connections one after another.
#[derive(Debug, Default)]
struct Script {
    at: usize,
    steps: usize,
}

/// Accepts connections one at a time and plays the script on them; never returns while the
/// listener works.
async fn broker(listener: &TcpListener, input: &Input<'_>, written: &Cell<u64>) {
    let mut script = Script::default();
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        let mut peer = Peer {
            stream,
            ws: input.ws,
            raw: Vec::new(),
            inbox: Vec::new(),
            fragmenting: false,
            written,
        };
        // However the connection ended, the next one goes on with the script.
        let _ = peer.play(input, &mut script).await;
    }
    std::future::pending::<()>().await;
}

struct Peer<'w> {
    stream: TcpStream,
    ws: bool,
    /// WebSocket bytes from the client not parsed yet.
    raw: Vec<u8>,
    /// STOMP bytes from the client not looked at yet.
    inbox: Vec<u8>,
    /// Inside a fragmented WebSocket message.
    fragmenting: bool,
    written: &'w Cell<u64>,
}

/// Why a connection's script stops.
#[derive(Debug)]
struct Over;

impl Peer<'_> {
    async fn play(&mut self, input: &Input<'_>, script: &mut Script) -> Result<(), Over> {
        if self.ws {
            self.handshake().await?;
        }
        // The CONNECT (or whatever the client sends first).
        while !self.inbox.contains(&0) {
            self.fill().await?;
        }
        self.inbox.clear();
        if let Some(connected) = input.dialect {
            self.send_stomp(connected).await?;
        }
        while script.at < input.stream.len() && script.steps < MAX_STEPS {
            let (size, kind) = input.plan[script.steps % input.plan.len()];
            script.steps += 1;
            let rest = &input.stream[script.at..];
            let control = self.ws && matches!(kind & 7, 3 | 4);
            let size = size
                .min(rest.len())
                .min(if control { 125 } else { usize::MAX });
            let chunk = &rest[..size];
            script.at += size;
            self.step(kind, chunk).await?;
            let pause = if kind & 8 != 0 {
                input.pause
            } else {
                Duration::ZERO
            };
            self.service(pause, input.echo_receipts).await?;
        }
        // The script is played: hold the connection until the client leaves.
        loop {
            self.service(Duration::from_secs(3600), input.echo_receipts)
                .await?;
        }
    }

    async fn step(&mut self, kind: u8, chunk: &[u8]) -> Result<(), Over> {
        if !self.ws {
            self.write(chunk).await?;
            match kind & 3 {
                2 => {
                    let _ = self.stream.shutdown().await;
                    // Until the client closes its side too.
                    self.drain().await;
                    return Err(Over);
                }
                3 => {
                    let _ = self.stream.set_zero_linger();
                    return Err(Over);
                }
                _ => return Ok(()),
            }
        }
        match kind & 7 {
            0 => self.message(0x1, chunk).await,
            1 => self.message(0x2, chunk).await,
            2 => {
                let opcode = if self.fragmenting { 0x0 } else { 0x2 };
                self.fragmenting = true;
                self.write(&ws_frame(false, opcode, chunk)).await
            }
            3 => self.write(&ws_frame(true, 0x9, chunk)).await,
            4 => self.write(&ws_frame(true, 0xA, chunk)).await,
            5 => self.write(chunk).await,
            6 => {
                self.message(0x2, chunk).await?;
                Err(Over)
            }
            _ => {
                self.message(0x2, chunk).await?;
                self.write(&ws_frame(true, 0x8, &1000u16.to_be_bytes()))
                    .await?;
                // Until the client answers and leaves, briefly.
                let _ = timeout(Duration::from_millis(500), self.drain()).await;
                Err(Over)
            }
        }
    }

    /// One whole WebSocket message (ending a fragmented one if need be).
    async fn message(&mut self, opcode: u8, payload: &[u8]) -> Result<(), Over> {
        let opcode = if self.fragmenting { 0x0 } else { opcode };
        self.fragmenting = false;
        self.write(&ws_frame(true, opcode, payload)).await
    }

    async fn send_stomp(&mut self, bytes: &[u8]) -> Result<(), Over> {
        if self.ws {
            self.message(0x1, bytes).await
        } else {
            self.write(bytes).await
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Over> {
        self.stream.write_all(bytes).await.map_err(|_| Over)?;
        self.written.set(self.written.get() + bytes.len() as u64);
        Ok(())
    }

    /// Reads until the client leaves.
    async fn drain(&mut self) {
        while self.fill().await.is_ok() {}
    }

    /// One read from the client; `Over` at its end.
    async fn fill(&mut self) -> Result<(), Over> {
        let mut buf = [0u8; 4096];
        let n = self.stream.read(&mut buf).await.map_err(|_| Over)?;
        if n == 0 {
            return Err(Over);
        }
        if !self.ws {
            self.inbox.extend_from_slice(&buf[..n]);
            return Ok(());
        }
        self.raw.extend_from_slice(&buf[..n]);
        if self.inbox.len() + self.raw.len() > 1 << 20 {
            return Err(Over);
        }
        match unframe(&mut self.raw, &mut self.inbox) {
            Unframed::Open => Ok(()),
            Unframed::Closed => Err(Over),
        }
    }

    /// Reads (and answers receipts when asked) for `wait`; with no wait, lets the client run
    /// and takes what it already wrote.
    async fn service(&mut self, wait: Duration, echo: bool) -> Result<(), Over> {
        if wait.is_zero() {
            tokio::task::yield_now().await;
            if let Ok(read) = timeout(Duration::ZERO, self.fill()).await {
                read?;
            }
            return self.answer(echo).await;
        }
        let deadline = Instant::now() + wait;
        while let Ok(read) = tokio::time::timeout_at(deadline, self.fill()).await {
            read?;
            self.answer(echo).await?;
        }
        Ok(())
    }

    /// Answers the `receipt` headers of the complete frames received.
    async fn answer(&mut self, echo: bool) -> Result<(), Over> {
        let Some(end) = self.inbox.iter().rposition(|&b| b == 0) else {
            return Ok(());
        };
        let frames: Vec<u8> = self.inbox.drain(..=end).collect();
        if !echo {
            return Ok(());
        }
        for frame in frames.split(|&b| b == 0) {
            let head = frame
                .windows(2)
                .position(|w| w == b"\n\n")
                .map_or(frame, |at| &frame[..at]);
            for line in head.split(|&b| b == b'\n') {
                if let Some(id) = line.strip_prefix(b"receipt:") {
                    let mut receipt = b"RECEIPT\nreceipt-id:".to_vec();
                    receipt.extend_from_slice(id);
                    receipt.extend_from_slice(b"\n\n\0");
                    self.send_stomp(&receipt).await?;
                }
            }
        }
        Ok(())
    }

    /// The server side of the WebSocket upgrade, picking `v12.stomp` when offered.
    async fn handshake(&mut self) -> Result<(), Over> {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        let end = loop {
            if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if request.len() > 16 * 1024 {
                return Err(Over);
            }
            let n = self.stream.read(&mut buf).await.map_err(|_| Over)?;
            if n == 0 {
                return Err(Over);
            }
            request.extend_from_slice(&buf[..n]);
        };
        self.raw.extend_from_slice(&request[end..]);
        let head = String::from_utf8_lossy(&request[..end]).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let key = header("sec-websocket-key").ok_or(Over)?;
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let protocol = if header("sec-websocket-protocol").is_some() {
            "Sec-WebSocket-Protocol: v12.stomp\r\n"
        } else {
            ""
        };
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n{protocol}\r\n"
        );
        self.write(response.as_bytes()).await
    }
}

/// A server-to-client WebSocket frame (unmasked).
fn ws_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n @ 0..=125 => frame.push(n as u8),
        n @ 126..=0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

#[derive(Debug)]
enum Unframed {
    Open,
    Closed,
}

/// Moves the payloads of the complete client frames in `raw` (masked, as clients send them)
/// into `inbox`.
fn unframe(raw: &mut Vec<u8>, inbox: &mut Vec<u8>) -> Unframed {
    loop {
        let [first, second, ..] = raw[..] else {
            return Unframed::Open;
        };
        let (len, mut at) = match second & 0x7F {
            126 if raw.len() >= 4 => (usize::from(u16::from_be_bytes([raw[2], raw[3]])), 4),
            127 if raw.len() >= 10 => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&raw[2..10]);
                match usize::try_from(u64::from_be_bytes(bytes)) {
                    Ok(n) => (n, 10),
                    Err(_) => return Unframed::Closed,
                }
            }
            126 | 127 => return Unframed::Open,
            n => (usize::from(n), 2),
        };
        let mask = if second & 0x80 != 0 {
            let Some(key) = raw.get(at..at + 4) else {
                return Unframed::Open;
            };
            let key = [key[0], key[1], key[2], key[3]];
            at += 4;
            key
        } else {
            [0; 4]
        };
        let Some(payload) = raw.get(at..).and_then(|rest| rest.get(..len)) else {
            return Unframed::Open;
        };
        let opcode = first & 0x0F;
        if opcode == 0x8 {
            return Unframed::Closed;
        }
        if opcode <= 0x2 {
            inbox.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        raw.drain(..at + len);
    }
}
