//! Support for the real-broker suite in `tests/`: where the RabbitMQ node and cluster are,
//! clients configured for them, unique queue names, bounded waits, and stopping a node's
//! application with a guard that always starts it again.
//!
//! The broker comes from `cargo xtask broker start` / `cargo xtask cluster start` (or
//! `cargo xtask ci`, which starts both). Without it every test here fails loudly: a test
//! that needs a broker never passes without one. See `docs/testing.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chaos;
pub mod resources;
pub mod soak;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use stompkit_tokio::session::policy::OpenDuration;
use stompkit_tokio::session::{BackoffConfig, BreakerConfig};
use stompkit_tokio::{
    Client, ClientBuilder, ClientEvent, Credentials, Delivery, Subscribe, Subscription, TlsConfig,
    TransportConfig,
};
use tokio::sync::broadcast;

/// What a test without a broker says.
pub const NO_BROKER: &str = "no RabbitMQ: run `cargo xtask broker start` (and `cargo xtask \
                             cluster start` for the cluster tests) or `cargo xtask ci`";

/// The default bound on one wait in a test. Generous: it only turns a hang into a failure.
pub const WAIT: Duration = Duration::from_secs(30);

/// Where the broker is, from the `STOMPKIT_RABBITMQ_*` variables or `target/rabbitmq/env`.
#[derive(Debug, Clone)]
pub struct BrokerEnv {
    /// `stomp://` URL of the first node.
    pub tcp: String,
    /// `stomp+ssl://` URL of the first node.
    pub tls: String,
    /// `ws://` URL of the first node.
    pub ws: String,
    /// The CA certificate that signed the TLS listener's certificate.
    pub ca: PathBuf,
    /// The first node's name, for `rabbitmqctl -n`.
    pub node: String,
    /// The cluster's `stomp://` URLs, comma-separated (cluster up only).
    pub cluster: Option<String>,
    /// The cluster's node names, in the order of `cluster` (cluster up only).
    pub nodes: Option<Vec<String>>,
}

/// The broker's environment. Panics with [`NO_BROKER`] when it is not there.
pub fn broker() -> &'static BrokerEnv {
    try_broker().unwrap_or_else(|e| panic!("{e}"))
}

/// The broker's environment, or why it is not there (for the chaos and soak binaries,
/// which report rather than panic).
///
/// # Errors
/// [`NO_BROKER`] and where it looked.
pub fn try_broker() -> Result<&'static BrokerEnv, String> {
    static ENV: OnceLock<Option<BrokerEnv>> = OnceLock::new();
    let file = workspace_root().join("target/rabbitmq/env");
    ENV.get_or_init(|| load(&file)).as_ref().ok_or_else(|| {
        format!(
            "{NO_BROKER} (looked in the environment and {})",
            file.display()
        )
    })
}

/// The cluster's URLs and node names, or why they are not there.
///
/// # Errors
/// [`NO_BROKER`] when the cluster variables are missing.
pub fn try_cluster() -> Result<(&'static str, &'static [String]), String> {
    let env = try_broker()?;
    match (&env.cluster, &env.nodes) {
        (Some(urls), Some(nodes)) if !nodes.is_empty() => Ok((urls, nodes)),
        _ => Err(format!(
            "{NO_BROKER} (the cluster variables STOMPKIT_RABBITMQ_CLUSTER and _NODES are missing)"
        )),
    }
}

/// The cluster's URLs (comma-separated) and node names. Panics with [`NO_BROKER`] when the
/// cluster is not up.
pub fn cluster() -> (&'static str, &'static [String]) {
    let env = broker();
    match (&env.cluster, &env.nodes) {
        (Some(urls), Some(nodes)) if !nodes.is_empty() => (urls, nodes),
        _ => panic!(
            "{NO_BROKER} (the cluster variables STOMPKIT_RABBITMQ_CLUSTER and _NODES are missing)"
        ),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Each variable from the process environment first, then from the file.
fn load(file: &Path) -> Option<BrokerEnv> {
    load_from(|key| std::env::var(key).ok(), file)
}

fn load_from(var: impl Fn(&str) -> Option<String>, file: &Path) -> Option<BrokerEnv> {
    let from_file: HashMap<String, String> = std::fs::read_to_string(file)
        .map(|text| {
            text.lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let get = |name: &str| {
        let key = format!("STOMPKIT_RABBITMQ_{name}");
        var(&key)
            .or_else(|| from_file.get(&key).cloned())
            .filter(|v| !v.is_empty())
    };
    Some(BrokerEnv {
        tcp: get("TCP")?,
        tls: get("TLS")?,
        ws: get("WS")?,
        ca: PathBuf::from(get("CA")?),
        node: get("NODE")?,
        cluster: get("CLUSTER"),
        nodes: get("NODES").map(|v| v.split(',').map(str::to_owned).collect()),
    })
}

/// A name no other test (in this process or another) uses: `stompkit-suite-{what}-{pid}-{n}`.
pub fn unique(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "stompkit-suite-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A test queue: declared by [`subscribe`](Self::subscribe) on `/queue/{name}` with an
/// `x-expires` argument (RabbitMQ deletes it once unused for a while, so runs leave nothing
/// behind), written to through `/amq/queue/{name}`, which does not declare and so never
/// disagrees with the declaration's arguments.
#[derive(Debug, Clone)]
pub struct TestQueue {
    /// The queue's name.
    pub name: String,
}

/// How long an unused test queue lives on the broker (milliseconds).
const QUEUE_EXPIRES_MS: &str = "300000";

impl TestQueue {
    /// A new unique queue (nothing is declared yet).
    pub fn new(what: &str) -> Self {
        Self { name: unique(what) }
    }

    /// The destination to subscribe to (declares the queue).
    pub fn subscribe_destination(&self) -> String {
        format!("/queue/{}", self.name)
    }

    /// The destination to send to (the queue must exist: subscribe first).
    pub fn send_destination(&self) -> String {
        format!("/amq/queue/{}", self.name)
    }

    /// A SUBSCRIBE request for it, with its declaration arguments and a receipt.
    pub fn subscribe(&self) -> Subscribe {
        Subscribe::new(self.subscribe_destination())
            .header("x-expires", QUEUE_EXPIRES_MS)
            .receipt()
    }
}

/// A builder for `urls` with the stock `guest` login, virtual host `/`, a 5 s receipt
/// timeout and a fast reconnect (200 ms between attempts, a breaker that opens for 1 s only).
pub fn builder(urls: &str) -> ClientBuilder {
    Client::builder(urls)
        .unwrap_or_else(|e| panic!("bad broker URL {urls}: {e}"))
        .credentials(Credentials::login("guest", "guest"))
        .host("/")
        .transport(transport())
        .session_with(|s| {
            s.with_backoff(BackoffConfig::constant(Duration::from_millis(200)))
                .with_breaker(
                    BreakerConfig::default().open_for(OpenDuration::Fixed(Duration::from_secs(1))),
                )
                .with_receipt_timeout(Duration::from_secs(10))
        })
}

/// The transport configuration that trusts the test CA (for `stomp+ssl://`).
pub fn transport() -> TransportConfig {
    TransportConfig::default().with_tls(TlsConfig::with_ca_file(&broker().ca))
}

/// Connects with [`builder`], bounded by [`WAIT`].
pub async fn connect(urls: &str) -> Client {
    let client = builder(urls).start().expect("client starts");
    within("the first connection", client.wait_connected())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {urls}: {e}"));
    client
}

/// Subscribes, bounded by [`WAIT`]. With [`TestQueue::subscribe`]'s receipt the queue exists once
/// this returns.
pub async fn subscribe(client: &Client, request: Subscribe) -> Subscription {
    within("the SUBSCRIBE receipt", client.subscribe(request))
        .await
        .expect("subscribed")
}

/// Waits at most `bound` for `future`; a hang fails the test naming `what`.
pub async fn within_for<F: Future>(what: &str, bound: Duration, future: F) -> F::Output {
    match tokio::time::timeout(bound, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {bound:?} waiting for {what}"),
    }
}

/// [`within_for`] with [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    within_for(what, WAIT, future).await
}

/// The next delivery, which must come within [`WAIT`].
pub async fn next(subscription: &mut Subscription) -> Delivery {
    within("a delivery", subscription.next_delivery())
        .await
        .unwrap_or_else(|| panic!("the subscription ended: {:?}", subscription.end_reason()))
}

/// The body as text.
pub fn text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(delivery.body()).into_owned()
}

/// Waits for the first event `pick` returns `Some` for, at most `bound`.
pub async fn wait_event<T>(
    events: &mut broadcast::Receiver<ClientEvent>,
    bound: Duration,
    mut pick: impl FnMut(&ClientEvent) -> Option<T>,
) -> T {
    within_for("a client event", bound, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the client's events ended"),
            }
        }
    })
    .await
}

// ------------------------------------------------------------------ rabbitmqctl

/// Bound on one `rabbitmqctl` command.
const RABBITMQCTL_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `rabbitmqctl ARGS`, bounded in time; the output, or why it failed.
///
/// # Errors
/// The command could not start, timed out (it is killed) or exited non-zero.
pub fn rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let mut child = Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run rabbitmqctl {args:?}: {e} (needs root or the rabbitmq user)")
        })?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > RABBITMQCTL_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "rabbitmqctl {args:?} timed out after {RABBITMQCTL_TIMEOUT:?}"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("rabbitmqctl {args:?}: {e}")),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("rabbitmqctl {args:?}: {e}"))?;
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "rabbitmqctl {args:?} failed ({}): {}{}",
            output.status,
            out,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A node whose RabbitMQ application is stopped; dropping it (also while a test panics)
/// starts the application again and waits until it booted.
#[derive(Debug)]
#[must_use = "dropping the guard starts the node again at once"]
pub struct StoppedNode {
    node: String,
    restarted: bool,
}

impl StoppedNode {
    /// Runs `rabbitmqctl -n NODE stop_app` (blocking, about a second) and returns the guard.
    ///
    /// # Panics
    /// When the command fails.
    pub fn stop(node: &str) -> Self {
        let guard = Self {
            node: node.to_owned(),
            restarted: false,
        };
        if let Err(e) = rabbitmqctl(&["-n", node, "stop_app"]) {
            panic!("cannot stop {node}: {e}");
        }
        guard
    }

    /// [`stop`](Self::stop) off the async runtime's threads.
    pub async fn stop_async(node: &str) -> Self {
        let node = node.to_owned();
        tokio::task::spawn_blocking(move || Self::stop(&node))
            .await
            .expect("stop_app task")
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Starts the application again now (off the async runtime's threads).
    ///
    /// # Panics
    /// When `start_app` fails.
    pub async fn start(mut self) {
        let node = self.node.clone();
        self.restarted = true;
        tokio::task::spawn_blocking(move || rabbitmqctl(&["-n", &node, "start_app"]))
            .await
            .expect("start_app task")
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.node));
    }
}

impl Drop for StoppedNode {
    fn drop(&mut self) {
        if !self.restarted {
            if let Err(e) = rabbitmqctl(&["-n", &self.node, "start_app"]) {
                // Not a panic: this may run while a test already panics.
                eprintln!(
                    "could not start {} again: {e}; run `cargo xtask cluster start`",
                    self.node
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_means_no_broker() {
        assert!(load_from(|_| None, Path::new("/nonexistent/stompkit/env")).is_none());
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let dir = std::env::temp_dir().join(unique("env-test"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("env");
        std::fs::write(
            &file,
            "STOMPKIT_RABBITMQ_TCP=stomp://127.0.0.1:1\nSTOMPKIT_RABBITMQ_TLS=stomp+ssl://localhost:2\n\
             STOMPKIT_RABBITMQ_WS=ws://127.0.0.1:3/ws\nSTOMPKIT_RABBITMQ_CA=/ca.pem\n\
             STOMPKIT_RABBITMQ_NODE=rabbit@localhost\n",
        )
        .expect("env file");
        let env = load_from(
            |key| (key == "STOMPKIT_RABBITMQ_TCP").then(|| "stomp://127.0.0.1:9".to_owned()),
            &file,
        )
        .expect("complete");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(env.tcp, "stomp://127.0.0.1:9");
        assert_eq!(env.ws, "ws://127.0.0.1:3/ws");
        assert_eq!(env.ca, PathBuf::from("/ca.pem"));
        assert!(env.cluster.is_none() && env.nodes.is_none());
    }
}
