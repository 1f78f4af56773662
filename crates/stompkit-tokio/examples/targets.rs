//! Measures the client's connection targets against a local broker and prints a Markdown
//! table (the figures in `docs/performance.md`, "Client connections"):
//!
//! 1. connect: `Client::connect` until `CONNECTED`, over TCP and WebSocket;
//! 2. reconnect: the broker's application is stopped and started again (`rabbitmqctl
//!    stop_app` / `start_app`); the time from its STOMP port answering again to the client's
//!    `Connected` event, with the backoff's first delay set low;
//! 3. idle connections: the process's resident memory with 1 000 connected, idle clients.
//!
//! ```sh
//! ulimit -n 4096    # 1 000 connections need more than the usual 1 024 descriptors
//! cargo run --release -p stompkit-tokio --example targets
//! # The figures in docs/performance.md: the third node of the test cluster, idle
//! # connections spread over all three (space-separated URLs)
//! TARGETS_TCP=stomp://guest:guest@127.0.0.1:61633 TARGETS_WS=ws://127.0.0.1:15694/ws \
//!   TARGETS_NODE=rabbit3@localhost TARGETS_IDLE="stomp://127.0.0.1:61613 \
//!   stomp://127.0.0.1:61623 stomp://127.0.0.1:61633" \
//!   cargo run --release -p stompkit-tokio --example targets
//! ```
//!
//! The reconnect step runs `rabbitmqctl` (root or the `rabbitmq` user) and stops the broker
//! for a few seconds: do not run it against a broker others use. `TARGETS_SKIP_RESTART=1`
//! leaves it out. Linux only (`/proc/self/status`).

#![allow(clippy::print_stdout)] // it prints a report

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use stompkit_tokio::session::{BackoffConfig, BreakerConfig};
use stompkit_tokio::{Client, ClientEvent, Endpoint, TransportConfig};
use tokio::time::{Instant, sleep, timeout};

/// Connects measured one after the other, per transport.
const CONNECTS: usize = 20;
/// Broker restarts measured.
const RESTARTS: usize = 3;
/// Idle connections held at once.
const IDLE: usize = 1_000;
/// Clients started at once while opening the idle connections (the broker's listen backlog
/// is 128 on RabbitMQ).
const BATCH: usize = 100;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let tcp = var("TARGETS_TCP", "stomp://guest:guest@127.0.0.1:61613");
    let ws = var("TARGETS_WS", "ws://guest:guest@127.0.0.1:15674/ws");
    let node = var("TARGETS_NODE", "rabbit@localhost");
    let mut rows = Vec::new();

    for (name, url) in [("TCP", &tcp), ("WebSocket", &ws)] {
        let mut times = Vec::with_capacity(CONNECTS);
        for _ in 0..CONNECTS {
            let started = Instant::now();
            let client = timeout(Duration::from_secs(10), Client::connect(url)).await??;
            times.push(started.elapsed());
            client.disconnect().await?;
        }
        rows.push(row(
            &format!("connect over {name}, {CONNECTS} in a row"),
            &times,
            "< 100 ms",
        ));
    }

    if std::env::var("TARGETS_SKIP_RESTART").is_err() {
        let times = reconnects(&tcp, &node).await?;
        rows.push(row(
            &format!("port answering to Connected, {RESTARTS} restarts"),
            &times,
            "< 1 s",
        ));
    }

    // RabbitMQ takes about 830 sockets per node with the usual limit of 1 024 descriptors:
    // spread the idle connections over several nodes when one is not enough.
    let idle_urls = var("TARGETS_IDLE", &tcp);
    let idle_urls: Vec<&str> = idle_urls.split(' ').filter(|u| !u.is_empty()).collect();
    let (before, after, connected) = idle(&idle_urls).await?;
    println!();
    println!("| measure | min | median | max | target |");
    println!("|---|---|---|---|---|");
    for line in rows {
        println!("{line}");
    }
    let total = after.saturating_sub(before);
    println!(
        "| resident memory of {connected} idle connections | | {:.1} MiB ({:.1} KiB each; process {:.1} MiB) | | < 64 MiB |",
        mib(total),
        total as f64 / 1024.0 / connected.max(1) as f64,
        mib(after),
    );
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn row(what: &str, times: &[Duration], target: &str) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    format!(
        "| {what} | {} | {} | {} | {target} |",
        ms(sorted[0]),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() - 1]),
    )
}

/// Restarts the broker's application `RESTARTS` times under one connected client and
/// returns, for each, the time from the STOMP port answering to the client's `Connected`.
async fn reconnects(url: &str, node: &str) -> Result<Vec<Duration>, Box<dyn Error>> {
    let endpoint: Endpoint = url.parse()?;
    let addr: SocketAddr = format!("{}:{}", endpoint.host(), endpoint.port()).parse()?;
    let client = Client::builder(url)?
        .session_with(|c| {
            // Low first delay, low cap; no breaker, which would otherwise stop attempts for
            // 30 s after five failures in a row during the outage.
            c.with_backoff(BackoffConfig::exponential(
                Duration::from_millis(50),
                2.0,
                Duration::from_millis(400),
            ))
            .with_breaker(BreakerConfig::default().no_consecutive_failures())
        })
        .connect()
        .await?;
    let mut times = Vec::with_capacity(RESTARTS);
    for round in 1..=RESTARTS {
        let mut events = client.events();
        rabbitmqctl(node, "stop_app").await?;
        // The port is closed once stop_app returned; start the broker and watch for it.
        let start = tokio::spawn({
            let node = node.to_owned();
            async move { rabbitmqctl(&node, "start_app").await }
        });
        let answered = port_answers(addr, Duration::from_secs(120)).await?;
        let connected = timeout(Duration::from_secs(60), async {
            loop {
                match events.recv().await {
                    Ok(ClientEvent::Connected { .. }) => return Ok(Instant::now()),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await??;
        start.await??;
        let took = connected.saturating_duration_since(answered);
        println!("restart {round}: Connected {took:?} after the port answered");
        times.push(took);
        // Let the connection count as healthy (the backoff starts over) before the next one.
        sleep(Duration::from_secs(6)).await;
    }
    client.disconnect().await?;
    Ok(times)
}

/// Polls `addr` every 5 ms until a TCP connect succeeds; when it did.
async fn port_answers(addr: SocketAddr, within: Duration) -> Result<Instant, Box<dyn Error>> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Ok(_)) = timeout(
            Duration::from_millis(100),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            return Ok(Instant::now());
        }
        sleep(Duration::from_millis(5)).await;
    }
    Err(format!("{addr} did not answer within {within:?}").into())
}

async fn rabbitmqctl(node: &str, command: &str) -> Result<(), String> {
    let mut child = tokio::process::Command::new("rabbitmqctl")
        .args(["-n", node, command])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run rabbitmqctl: {e}"))?;
    match timeout(Duration::from_secs(120), child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("rabbitmqctl {command} failed ({status})")),
        Ok(Err(e)) => Err(format!("rabbitmqctl {command}: {e}")),
        Err(_) => Err(format!("rabbitmqctl {command} took over 120 s")),
    }
}

/// Resident memory before and with `IDLE` connected clients, and how many connected.
async fn idle(urls: &[&str]) -> Result<(u64, u64, usize), Box<dyn Error>> {
    if let Some(limit) = open_files_limit() {
        if limit < IDLE as u64 + 64 {
            return Err(format!(
                "{IDLE} connections need more file descriptors than the limit of {limit}: \
                 raise it first (`ulimit -n 4096`)"
            )
            .into());
        }
    }
    // Warm the runtime and the allocator with one connection first, so that `before` holds
    // what any client program has.
    let warm = Client::connect(urls[0]).await?;
    warm.disconnect().await?;
    let before = rss()?;
    let mut clients = Vec::with_capacity(IDLE);
    for _ in 0..IDLE / BATCH {
        let batch: Vec<Client> = (clients.len()..clients.len() + BATCH)
            .map(|i| idle_client(urls[i % urls.len()]))
            .collect::<Result<_, _>>()?;
        for client in &batch {
            timeout(Duration::from_secs(30), client.wait_connected())
                .await
                .map_err(|_| format!("{} connected, the next not within 30 s", clients.len()))??;
        }
        clients.extend(batch);
        println!("{} idle connections", clients.len());
    }
    // Idle for a while: heart-beats flow (10 s by default), nothing else.
    sleep(Duration::from_secs(12)).await;
    let after = rss()?;
    let connected = clients
        .iter()
        .filter(|c| *c.state().borrow() == stompkit_tokio::State::Connected)
        .count();
    for client in &clients {
        client.disconnect().await?;
    }
    Ok((before, after, connected))
}

/// A client with the defaults, or with `TARGETS_IDLE_LEAN=1` a smaller duplicate filter
/// (64 ids instead of 1 024) and read chunk (4 KiB instead of 16 KiB), to see what they cost.
fn idle_client(url: &str) -> Result<Client, stompkit_tokio::Error> {
    let mut builder = Client::builder(url)?;
    if std::env::var("TARGETS_IDLE_LEAN").is_ok() {
        let mut transport = TransportConfig::default();
        transport.read_chunk_bytes = 4 * 1024;
        builder = builder
            .session_with(|c| c.with_duplicate_filter(64))
            .transport(transport);
    }
    builder.start()
}

/// `VmRSS` of this process, in bytes.
fn rss() -> Result<u64, Box<dyn Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

/// The soft limit of open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
