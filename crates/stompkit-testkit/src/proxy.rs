//! A fault-injecting TCP proxy to put between a client and any broker.
//!
//! Each accepted connection gets its own upstream connection and one task that moves bytes
//! both ways. The controls live in a `watch` channel that every connection reads, so a
//! fault applies to the connections open now and to later ones alike.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::Error;

/// Bytes read from a socket at once.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction of a connection (read, not yet written): with
/// [`CHUNK`], at most 256 KiB held per direction whatever the latency.
const CHUNKS: usize = 16;

/// Which way bytes go through the [`Proxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the upstream broker.
    ToUpstream,
    /// From the upstream broker to the client.
    ToClient,
}

impl Direction {
    const fn index(self) -> usize {
        match self {
            Self::ToUpstream => 0,
            Self::ToClient => 1,
        }
    }
}

/// A fault the [`Proxy`] can apply, at once with [`Proxy::apply`] or at a time with a
/// [`FaultSchedule`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Closes every open connection (both sides); new ones are accepted as usual.
    CutAll,
    /// Connections stay open but nothing passes, for a while or (`None`) until
    /// [`Fault::Resume`]. Bytes already read are held, not lost.
    Stall(Option<Duration>),
    /// Ends a stall.
    Resume,
    /// Holds every chunk this long before passing it on (replaces the previous latency).
    Latency(Direction, Duration),
    /// Passes at most this many bytes per second (`None`: no limit).
    Bandwidth(Direction, Option<u64>),
    /// The connection that carries the next this many bytes in this direction is cut right
    /// after them, typically in the middle of a frame; other connections go on. Once.
    CutAfter(Direction, u64),
    /// New connections are accepted and closed at once, for a while or (`None`) until
    /// [`Fault::Accept`]. Open connections go on.
    Refuse(Option<Duration>),
    /// Ends a refusal.
    Accept,
}

/// A list of faults and when to apply them, counted from the proxy's start.
///
/// Faults are placed at fixed times ([`at`](Self::at)) or at random ones
/// ([`every`](Self::every)): gaps drawn from the seed, between half and one and a half
/// times the mean. The same seed always gives the same schedule, so a failing run can be
/// replayed. A random `CutAfter(dir, n)` cuts after 1 to `n` bytes, a random
/// `Stall(Some(d))` lasts `d/2` to `3d/2`, both drawn from the seed as well.
///
/// ```
/// use std::time::Duration;
/// use stompkit_testkit::{Direction, Fault, FaultSchedule};
///
/// let schedule = FaultSchedule::seeded(7)
///     .every(Duration::from_secs(3), Fault::CutAll)
///     .every(Duration::from_secs(5), Fault::CutAfter(Direction::ToClient, 200))
///     .at(Duration::from_secs(1), Fault::Latency(Direction::ToClient, Duration::from_millis(50)))
///     .until(Duration::from_secs(60));
/// let first: Vec<_> = schedule.iter().take(5).collect();
/// assert_eq!(first, FaultSchedule::clone(&schedule).iter().take(5).collect::<Vec<_>>());
/// assert!(first.windows(2).all(|w| w[0].0 <= w[1].0));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultSchedule {
    seed: u64,
    fixed: Vec<(Duration, Fault)>,
    rates: Vec<(Duration, Fault)>,
    until: Option<Duration>,
}

impl FaultSchedule {
    /// An empty schedule (seed 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty schedule whose random times come from `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Applies `fault` at `at` after the start.
    pub fn at(mut self, at: Duration, fault: Fault) -> Self {
        let i = self.fixed.partition_point(|(t, _)| *t <= at);
        self.fixed.insert(i, (at, fault));
        self
    }

    /// Applies `fault` again and again, on average every `mean` (at least a millisecond).
    pub fn every(mut self, mean: Duration, fault: Fault) -> Self {
        self.rates.push((mean.max(Duration::from_millis(1)), fault));
        self
    }

    /// Nothing after `end` (random faults otherwise go on for as long as the proxy runs).
    pub fn until(mut self, end: Duration) -> Self {
        self.until = Some(end);
        self
    }

    /// The faults in time order, computed as they are needed (an endless schedule costs
    /// no memory).
    pub fn iter(&self) -> FaultIter<'_> {
        let rates = self
            .rates
            .iter()
            .enumerate()
            .map(|(i, (mean, fault))| {
                let mut rng =
                    SplitMix(self.seed ^ (i as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
                let first = jitter(&mut rng, *mean);
                RateState {
                    mean: *mean,
                    fault: fault.clone(),
                    rng,
                    next: first,
                }
            })
            .collect();
        FaultIter {
            fixed: &self.fixed,
            next_fixed: 0,
            rates,
            until: self.until,
        }
    }
}

/// The faults of a [`FaultSchedule`] in time order.
#[derive(Debug)]
pub struct FaultIter<'a> {
    fixed: &'a [(Duration, Fault)],
    next_fixed: usize,
    rates: Vec<RateState>,
    until: Option<Duration>,
}

#[derive(Debug)]
struct RateState {
    mean: Duration,
    fault: Fault,
    rng: SplitMix,
    next: Duration,
}

impl Iterator for FaultIter<'_> {
    type Item = (Duration, Fault);

    fn next(&mut self) -> Option<(Duration, Fault)> {
        let fixed = self.fixed.get(self.next_fixed);
        let rate = self
            .rates
            .iter_mut()
            .enumerate()
            .min_by_key(|(i, r)| (r.next, *i))
            .map(|(i, _)| i);
        let take_fixed = match (fixed, rate) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((at, _)), Some(i)) => *at <= self.rates[i].next,
        };
        let item = if take_fixed {
            self.next_fixed += 1;
            fixed.cloned()?
        } else {
            let r = &mut self.rates[rate?];
            let at = r.next;
            let fault = match &r.fault {
                Fault::CutAfter(dir, n) => Fault::CutAfter(*dir, 1 + r.rng.next() % (*n).max(1)),
                Fault::Stall(Some(d)) => Fault::Stall(Some(jitter(&mut r.rng, *d))),
                other => other.clone(),
            };
            let gap = jitter(&mut r.rng, r.mean).max(Duration::from_millis(1));
            r.next = at.saturating_add(gap);
            (at, fault)
        };
        match self.until {
            Some(end) if item.0 > end => None,
            _ => Some(item),
        }
    }
}

/// A small, fixed pseudo-random generator (SplitMix64), so schedules do not change with a
/// dependency's version.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `d` times a factor drawn between 0.5 and 1.5.
fn jitter(rng: &mut SplitMix, d: Duration) -> Duration {
    let factor = 0.5 + (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(factor)
}

/// A stall or a refusal: off, for a while, or until lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Off,
    Until(Instant),
    Indefinite,
}

impl Hold {
    fn new(for_: Option<Duration>) -> Self {
        match for_.and_then(|d| Instant::now().checked_add(d)) {
            Some(until) => Self::Until(until),
            None => Self::Indefinite,
        }
    }

    fn active(self, now: Instant) -> bool {
        match self {
            Self::Off => false,
            Self::Until(until) => now < until,
            Self::Indefinite => true,
        }
    }
}

/// What every connection obeys.
#[derive(Debug, Clone)]
struct Controls {
    stall: Hold,
    refuse: Hold,
    latency: [Duration; 2],
    bandwidth: [Option<u64>; 2],
    /// Bumped by [`Fault::CutAll`]; a connection ends when it changes.
    cut_epoch: u64,
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted and passed on.
    pub accepted: u64,
    /// Connections refused (a refusal, the connection limit, or the upstream unreachable).
    pub refused: u64,
    /// Connections open now.
    pub active: usize,
    /// Connections the proxy cut ([`Fault::CutAll`], [`Fault::CutAfter`]).
    pub cut: u64,
    /// Bytes handed to upstream sockets.
    pub to_upstream: u64,
    /// Bytes handed to client sockets.
    pub to_client: u64,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    connect_timeout: Duration,
    max_connections: usize,
    controls: watch::Sender<Controls>,
    /// Bytes left before a [`Fault::CutAfter`] fires, per direction.
    cut_after: Mutex<[Option<u64>; 2]>,
    accepted: AtomicU64,
    refused: AtomicU64,
    active: AtomicUsize,
    cut: AtomicU64,
    bytes: [AtomicU64; 2],
}

impl Shared {
    fn apply(&self, fault: Fault) {
        tracing::debug!(?fault, "proxy fault");
        match fault {
            Fault::CutAfter(dir, n) => {
                self.cut_after.lock().unwrap_or_else(|e| e.into_inner())[dir.index()] = Some(n);
            }
            other => self.controls.send_modify(|c| match other {
                Fault::CutAll => c.cut_epoch += 1,
                Fault::Stall(for_) => c.stall = Hold::new(for_),
                Fault::Resume => c.stall = Hold::Off,
                Fault::Latency(dir, latency) => c.latency[dir.index()] = latency,
                Fault::Bandwidth(dir, rate) => c.bandwidth[dir.index()] = rate.map(|r| r.max(1)),
                Fault::Refuse(for_) => c.refuse = Hold::new(for_),
                Fault::Accept => c.refuse = Hold::Off,
                Fault::CutAfter(..) => {}
            }),
        }
    }

    /// Of `n` bytes read in `dir`, how many to pass before cutting, if a cut is due.
    fn cut_point(&self, dir: Direction, n: usize) -> Option<usize> {
        let mut slots = self.cut_after.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut slots[dir.index()];
        let left = (*slot)?;
        if (n as u64) < left {
            *slot = Some(left - n as u64);
            return None;
        }
        *slot = None;
        // `left <= n`, a `usize`.
        Some(usize::try_from(left).unwrap_or(n))
    }
}

/// How to start a [`Proxy`].
#[derive(Debug, Clone)]
pub struct ProxyBuilder {
    upstream: String,
    listen: SocketAddr,
    schedule: Option<FaultSchedule>,
    max_connections: usize,
    connect_timeout: Duration,
}

impl ProxyBuilder {
    /// The listen address (default `127.0.0.1:0`, an ephemeral port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Faults the proxy applies by itself, timed from [`start`](Self::start).
    pub fn schedule(mut self, schedule: FaultSchedule) -> Self {
        self.schedule = Some(schedule);
        self
    }

    /// Connections open at once; more are refused (default 1 024).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// How long to wait for the upstream to accept a connection (default 10 s); the
    /// client's connection is closed when it does not.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Checks that the upstream address resolves, binds the listener and starts serving.
    /// Needs a tokio runtime with timers.
    pub async fn start(self) -> Result<Proxy, Error> {
        let upstream = self.upstream;
        let resolved = tokio::net::lookup_host(upstream.as_str())
            .await
            .map(|mut addrs| addrs.next().is_some());
        match resolved {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::Upstream {
                    upstream,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
                });
            }
            Err(source) => return Err(Error::Upstream { upstream, source }),
        }
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| Error::Bind {
                what: "proxy",
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            what: "proxy",
            source,
        })?;
        let (controls, _) = watch::channel(Controls {
            stall: Hold::Off,
            refuse: Hold::Off,
            latency: [Duration::ZERO; 2],
            bandwidth: [None; 2],
            cut_epoch: 0,
        });
        let shared = Arc::new(Shared {
            upstream,
            connect_timeout: self.connect_timeout,
            max_connections: self.max_connections,
            controls,
            cut_after: Mutex::new([None; 2]),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            cut: AtomicU64::new(0),
            bytes: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let mut tasks = vec![tokio::spawn(accept_loop(listener, shared.clone()))];
        if let Some(schedule) = self.schedule {
            let shared = shared.clone();
            let start = Instant::now();
            tasks.push(tokio::spawn(async move {
                for (at, fault) in schedule.iter() {
                    tokio::time::sleep_until(start + at).await;
                    shared.apply(fault);
                }
            }));
        }
        tracing::info!(%local_addr, upstream = %shared.upstream, "proxy started");
        Ok(Proxy {
            local_addr,
            shared,
            tasks,
        })
    }
}

/// A fault-injecting TCP proxy in front of a broker (any broker: it only moves bytes).
///
/// Controls act at once, on open connections and later ones: cut every connection, stall
/// (connections stay open, nothing passes), added latency and a bandwidth limit per
/// [`Direction`], a cut after the next N bytes (in the middle of a frame), refusing new
/// connections. A [`FaultSchedule`] given to the builder runs by itself.
///
/// ```no_run
/// # async fn demo() -> Result<(), stompkit_testkit::Error> {
/// use std::time::Duration;
/// use stompkit_testkit::{Direction, EmbeddedBroker, Proxy};
///
/// let broker = EmbeddedBroker::builder().start().await?;
/// let proxy = Proxy::builder(broker.tcp_addr().to_string()).start().await?;
/// let url = proxy.url(); // give this to the client under test
/// # let _ = url;
/// proxy.latency(Direction::ToClient, Duration::from_millis(50));
/// proxy.cut_all();
/// proxy.refuse(Some(Duration::from_secs(1)));
/// proxy.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Proxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// A builder for a proxy to `upstream`, a `host:port` (a `stomp://` or `tcp://` prefix
    /// and a trailing `/...` are ignored), resolved again for each connection.
    pub fn builder(upstream: impl Into<String>) -> ProxyBuilder {
        let upstream = upstream.into();
        let bare = upstream
            .strip_prefix("stomp://")
            .or_else(|| upstream.strip_prefix("tcp://"))
            .unwrap_or(&upstream);
        let bare = bare.split('/').next().unwrap_or(bare).to_owned();
        ProxyBuilder {
            upstream: bare,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            schedule: None,
            max_connections: 1024,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `stomp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("stomp://{}", self.local_addr)
    }

    /// Applies a fault now.
    pub fn apply(&self, fault: Fault) {
        self.shared.apply(fault);
    }

    /// [`Fault::CutAll`]: closes every open connection.
    pub fn cut_all(&self) {
        self.apply(Fault::CutAll);
    }

    /// [`Fault::Stall`]: nothing passes, for `for_` or until [`resume`](Self::resume).
    pub fn stall(&self, for_: Option<Duration>) {
        self.apply(Fault::Stall(for_));
    }

    /// [`Fault::Resume`]: ends a stall.
    pub fn resume(&self) {
        self.apply(Fault::Resume);
    }

    /// [`Fault::Latency`]: holds bytes going `dir` for `latency`.
    pub fn latency(&self, dir: Direction, latency: Duration) {
        self.apply(Fault::Latency(dir, latency));
    }

    /// [`Fault::Bandwidth`]: at most `bytes_per_second` going `dir` (`None`: no limit).
    pub fn bandwidth(&self, dir: Direction, bytes_per_second: Option<u64>) {
        self.apply(Fault::Bandwidth(dir, bytes_per_second));
    }

    /// [`Fault::CutAfter`]: cuts the connection that carries the next `bytes` going `dir`.
    pub fn cut_after(&self, dir: Direction, bytes: u64) {
        self.apply(Fault::CutAfter(dir, bytes));
    }

    /// [`Fault::Refuse`]: accepts and closes new connections, for `for_` or until
    /// [`accept`](Self::accept).
    pub fn refuse(&self, for_: Option<Duration>) {
        self.apply(Fault::Refuse(for_));
    }

    /// [`Fault::Accept`]: ends a refusal.
    pub fn accept(&self) {
        self.apply(Fault::Accept);
    }

    /// Counters.
    pub fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            active: s.active.load(Ordering::Relaxed),
            cut: s.cut.load(Ordering::Relaxed),
            to_upstream: s.bytes[0].load(Ordering::Relaxed),
            to_client: s.bytes[1].load(Ordering::Relaxed),
        }
    }

    /// Stops listening and closes every connection.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept task owns the connections' tasks: aborting it ends them.
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (client, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                // Out of descriptors, typically: give the others a moment to close.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let refusing = shared.controls.borrow().refuse.active(Instant::now());
        if refusing || conns.len() >= shared.max_connections {
            tracing::debug!(%peer, refusing, "proxy refused a connection");
            shared.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        conns.spawn(serve(client, shared.clone()));
    }
}

/// How one direction of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The sender closed its side; the close was passed on.
    Eof,
    /// A [`Fault::CutAfter`] fired.
    Cut,
    /// Reading or writing failed.
    Failed,
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let mut controls = shared.controls.subscribe();
    let epoch = controls.borrow().cut_epoch;
    let connect = TcpStream::connect(shared.upstream.as_str());
    let upstream = match tokio::time::timeout(shared.connect_timeout, connect).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(e)) => {
            tracing::debug!(upstream = %shared.upstream, error = %e, "proxy upstream refused");
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            tracing::debug!(upstream = %shared.upstream, "proxy upstream connect timed out");
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    shared.active.fetch_add(1, Ordering::Relaxed);
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let mut up = pin!(direction(
        Direction::ToUpstream,
        client_read,
        upstream_write,
        &shared
    ));
    let mut down = pin!(direction(
        Direction::ToClient,
        upstream_read,
        client_write,
        &shared
    ));
    let (mut up_done, mut down_done) = (false, false);
    let cut = loop {
        tokio::select! {
            outcome = &mut up, if !up_done => match outcome {
                Outcome::Eof => up_done = true,
                Outcome::Cut => break true,
                Outcome::Failed => break false,
            },
            outcome = &mut down, if !down_done => match outcome {
                Outcome::Eof => down_done = true,
                Outcome::Cut => break true,
                Outcome::Failed => break false,
            },
            // A closed channel means the proxy is gone: end as well.
            _ = controls.wait_for(|c| c.cut_epoch != epoch) => break true,
        }
        if up_done && down_done {
            break false;
        }
    };
    if cut {
        shared.cut.fetch_add(1, Ordering::Relaxed);
    }
    shared.active.fetch_sub(1, Ordering::Relaxed);
    // Dropping the halves closes both sockets.
}

/// Moves bytes one way until the sender closes, a write fails or a cut fires.
async fn direction(
    dir: Direction,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: &Shared,
) -> Outcome {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes, bool)>(CHUNKS);
    let mut read_controls = shared.controls.subscribe();
    let mut write_controls = shared.controls.subscribe();
    // Moved in, so that the sender goes (and the writer sees the end) when reading ends.
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            unstalled(&mut read_controls).await;
            let n = match from.read(&mut buf).await {
                Ok(0) => return Outcome::Eof,
                Ok(n) => n,
                Err(_) => return Outcome::Failed,
            };
            // Bytes that came in as a stall began are held with the rest.
            unstalled(&mut read_controls).await;
            let (n, last) = match shared.cut_point(dir, n) {
                Some(k) => (k, true),
                None => (n, false),
            };
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            if tx.send((Instant::now(), chunk, last)).await.is_err() || last {
                return Outcome::Eof;
            }
        }
    };
    let writer = async move {
        let mut next_free = Instant::now();
        while let Some((read_at, chunk, last)) = rx.recv().await {
            let latency = write_controls.borrow().latency[dir.index()];
            tokio::time::sleep_until(read_at + latency).await;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                unstalled(&mut write_controls).await;
                let rate = write_controls.borrow().bandwidth[dir.index()];
                let piece = match rate {
                    // Pieces of a twentieth of a second keep the pace smooth.
                    Some(rate) => rest
                        .len()
                        .min(usize::try_from(rate / 20).unwrap_or(usize::MAX).max(1)),
                    None => rest.len(),
                };
                if let Some(rate) = rate {
                    tokio::time::sleep_until(next_free).await;
                    let cost = Duration::from_secs_f64(piece as f64 / rate as f64);
                    next_free = next_free.max(Instant::now()) + cost;
                }
                // Counted when handed over, so a reader never sees more than the count.
                shared.bytes[dir.index()].fetch_add(piece as u64, Ordering::Relaxed);
                if to.write_all(&rest[..piece]).await.is_err() {
                    return Outcome::Failed;
                }
                rest = &rest[piece..];
            }
            if last {
                tracing::debug!(?dir, "proxy cut a connection after the set bytes");
                return Outcome::Cut;
            }
        }
        let _ = to.shutdown().await;
        Outcome::Eof
    };
    let mut reader = pin!(reader);
    let mut writer = pin!(writer);
    let mut reading = true;
    loop {
        tokio::select! {
            outcome = &mut writer => return outcome,
            outcome = &mut reader, if reading => {
                if outcome == Outcome::Failed {
                    return Outcome::Failed;
                }
                // The writer passes on what is left, then the end of the stream.
                reading = false;
            }
        }
    }
}

/// Returns once no stall is in force (or the proxy is gone).
async fn unstalled(controls: &mut watch::Receiver<Controls>) {
    loop {
        let stall = controls.borrow_and_update().stall;
        match stall {
            Hold::Off => return,
            Hold::Until(until) if until <= Instant::now() => return,
            Hold::Until(until) => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => return,
                    changed = controls.changed() => if changed.is_err() { return },
                }
            }
            Hold::Indefinite => {
                if controls.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}
