//! The floor of the end-to-end workload: what any STOMP client must spend at least, measured
//! with the least a client can do. Blocking sockets and one thread per connection direction
//! (no event loop, no waking of other threads), frames written straight into a buffer and
//! sent in batches of up to 64 KiB, deliveries parsed in place from the read buffer
//! (`stompkit_codec::Decoder::decode_slice`) and the acknowledgements of one read sent in one
//! write. No reconnection, no flow control beyond the receipt window, nothing a user could
//! call a client: a yardstick for the kernel's share of the other clients' CPU. See
//! `benches/e2e/common.rs` for the command line and the summary.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use stompkit_codec::{Command, Decoder, FrameRef, ItemRef, Version};

#[path = "../../e2e/common.rs"]
mod common;

use common::{Ack, Args, Histogram, SENT_HEADER, Shared};

/// Bytes written at once, and read at once.
const BATCH: usize = 64 * 1024;
/// How often a consumer with nothing to read looks whether the run is over.
const IDLE_CHECK: Duration = Duration::from_millis(100);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = common::args();
    let code = match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    };
    // A failed or timed-out run leaves threads blocked on their sockets, which the
    // runtime would wait for without end: exit without them (the summary is flushed).
    std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 2 })
}

/// A connection after `CONNECTED`, with what was read past that frame.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    decoder: Decoder,
}

impl Conn {
    fn open(args: &Args) -> Result<Self, String> {
        let stream = TcpStream::connect(args.host_port()).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (login, passcode) = args.credentials();
        let mut conn = Self {
            stream,
            buf: Vec::with_capacity(BATCH),
            decoder: Decoder::new(Version::V1_2),
        };
        conn.write(
            format!(
                "CONNECT\naccept-version:1.2\nhost:/\nlogin:{login}\npasscode:{passcode}\nheart-beat:0,0\n\n\0"
            )
            .as_bytes(),
        )?;
        conn.expect(Command::Connected)?;
        Ok(conn)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| e.to_string())
    }

    /// Reads until a whole frame is buffered and checks its command; keeps what follows it.
    fn expect(&mut self, command: Command) -> Result<(), String> {
        loop {
            if let Some((item, len)) = self
                .decoder
                .decode_slice(&self.buf)
                .map_err(|e| e.to_string())?
            {
                let got = match item {
                    ItemRef::Frame(frame) => Some(frame.command()),
                    _ => None,
                };
                self.buf.drain(..len);
                match got {
                    Some(c) if c == command => return Ok(()),
                    Some(c) => return Err(format!("expected {command:?}, got {c:?}")),
                    None => continue,
                }
            }
            self.fill()?;
        }
    }

    /// Appends one read to the buffer; `Ok(false)` when the read timed out.
    fn fill(&mut self) -> Result<bool, String> {
        let at = self.buf.len();
        self.buf.resize(at + BATCH, 0);
        let read = self.stream.read(&mut self.buf[at..]);
        match read {
            Ok(0) => Err("the broker closed the connection".into()),
            Ok(n) => {
                self.buf.truncate(at + n);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                self.buf.truncate(at);
                Ok(false)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Hands every whole frame in the buffer to `f`, in order, then drops them from it.
    fn each_frame(
        &mut self,
        mut f: impl FnMut(&FrameRef<'_, '_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut at = 0;
        while let Some((item, len)) = self
            .decoder
            .decode_slice(&self.buf[at..])
            .map_err(|e| e.to_string())?
        {
            at += len;
            if let ItemRef::Frame(frame) = item {
                f(&frame)?;
            }
        }
        self.buf.drain(..at);
        Ok(())
    }
}

fn consume(mut conn: Conn, args: &Args, shared: &Shared) -> Result<Histogram, String> {
    let mut latency = Histogram::default();
    let mut acks = Vec::with_capacity(BATCH);
    conn.stream
        .set_read_timeout(Some(IDLE_CHECK))
        .map_err(|e| e.to_string())?;
    while !shared.is_done() {
        if !conn.fill()? {
            continue;
        }
        conn.each_frame(|frame| {
            if frame.command() != Command::Message {
                return Err(format!("unexpected {:?}", frame.command()));
            }
            if args.ack != Ack::Auto {
                let id = frame.header("ack").ok_or("a MESSAGE without `ack`")?;
                acks.extend_from_slice(b"ACK\nid:");
                acks.extend_from_slice(id);
                acks.extend_from_slice(b"\n\n\0");
            }
            let sent = frame
                .header(SENT_HEADER)
                .and_then(|v| std::str::from_utf8(v).ok());
            shared.delivered(&mut latency, sent);
            Ok(())
        })?;
        if !acks.is_empty() {
            conn.write(&acks)?;
            acks.clear();
        }
    }
    Ok(latency)
}

/// The receipt window: receipts asked and not yet received, and the send time of each
/// receipt number still waiting (slot `n % in_flight`).
struct Window {
    state: Mutex<WindowState>,
    room: Condvar,
}

struct WindowState {
    waiting: u64,
    sent: Vec<Option<Instant>>,
    /// The producer sleeps until half the window is free (one wake-up per half window).
    producer_asleep: bool,
}

/// Reads the producer's `RECEIPT`s, `count` of them, opening the window for each.
fn read_receipts(mut conn: Conn, window: &Window, count: u64) -> Result<Histogram, String> {
    let mut latency = Histogram::default();
    let mut seen = 0;
    while seen < count {
        conn.fill()?;
        conn.each_frame(|frame| {
            let id = frame
                .header("receipt-id")
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .ok_or_else(|| format!("unexpected {:?}", frame.command()))?;
            let mut state = window.state.lock().map_err(|e| e.to_string())?;
            let slots = state.sent.len() as u64;
            if let Some(sent) = state.sent[(id % slots) as usize].take() {
                latency.record(sent.elapsed());
            }
            state.waiting -= 1;
            if state.producer_asleep && state.waiting <= slots / 2 {
                state.producer_asleep = false;
                window.room.notify_one();
            }
            drop(state);
            seen += 1;
            Ok(())
        })?;
    }
    Ok(latency)
}

fn produce(mut conn: Conn, args: &Args, count: u64, shared: &Shared) -> Result<Histogram, String> {
    let body = args.body();
    let in_flight = args.in_flight as u64;
    let window = Arc::new(Window {
        state: Mutex::new(WindowState {
            waiting: 0,
            sent: vec![None; args.in_flight],
            producer_asleep: false,
        }),
        room: Condvar::new(),
    });
    let reader = if args.receipts {
        let conn = Conn {
            stream: conn.stream.try_clone().map_err(|e| e.to_string())?,
            buf: std::mem::take(&mut conn.buf),
            decoder: Decoder::new(Version::V1_2),
        };
        let window = Arc::clone(&window);
        Some(std::thread::spawn(move || {
            read_receipts(conn, &window, count)
        }))
    } else {
        None
    };
    let mut out = Vec::with_capacity(BATCH + body.len() + 256);
    for n in 0..count {
        out.extend_from_slice(b"SEND\ndestination:");
        out.extend_from_slice(args.destination.as_bytes());
        out.extend_from_slice(format!("\n{SENT_HEADER}:{}\n", common::unix_nanos()).as_bytes());
        if args.receipts {
            out.extend_from_slice(format!("receipt:{n}\n").as_bytes());
            let mut state = window.state.lock().map_err(|e| e.to_string())?;
            if state.waiting >= in_flight {
                // What was asked must be on its way before its receipts are waited for.
                drop(state);
                conn.write(&out)?;
                out.clear();
                state = window.state.lock().map_err(|e| e.to_string())?;
                while state.waiting >= in_flight {
                    state.producer_asleep = true;
                    state = window.room.wait(state).map_err(|e| e.to_string())?;
                }
            }
            state.waiting += 1;
            state.sent[(n % in_flight) as usize] = Some(Instant::now());
        }
        out.extend_from_slice(format!("content-length:{}\n\n", body.len()).as_bytes());
        out.extend_from_slice(&body);
        out.push(0);
        shared.sent.fetch_add(1, Ordering::Relaxed);
        if out.len() >= BATCH {
            conn.write(&out)?;
            out.clear();
        }
    }
    conn.write(&out)?;
    match reader {
        Some(reader) => {
            let latency = reader.join().map_err(|_| "the receipt reader panicked")??;
            shared.receipted.fetch_add(count, Ordering::Relaxed);
            Ok(latency)
        }
        None => Ok(Histogram::default()),
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    let args = Arc::new(args);
    let mut consumers = Vec::new();
    for i in 0..args.consumers {
        let mut conn = Conn::open(&args)?;
        let ack = args.ack.as_str();
        conn.write(
            format!(
                "SUBSCRIBE\nid:{i}\ndestination:{}\nack:{ack}\nreceipt:subscribed\n\n\0",
                args.destination
            )
            .as_bytes(),
        )?;
        conn.expect(Command::Receipt)?;
        consumers.push(conn);
    }
    let mut producers = Vec::new();
    for _ in 0..args.producers {
        producers.push(Conn::open(&args)?);
    }
    let shared = Shared::start();
    let consumers = consumers
        .into_iter()
        .map(|conn| {
            let (args, shared) = (Arc::clone(&args), Arc::clone(&shared));
            tokio::task::spawn_blocking(move || consume(conn, &args, &shared))
        })
        .collect();
    let producers = producers
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let (args, shared) = (Arc::clone(&args), Arc::clone(&shared));
            tokio::task::spawn_blocking(move || produce(conn, &args, args.share(i), &shared))
        })
        .collect();
    Ok(common::finish(&args, "floor", shared, producers, consumers).await)
}
