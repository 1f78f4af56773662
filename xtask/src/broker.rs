//! A real RabbitMQ for the tests: `cargo xtask broker start|stop|status` (one node) and
//! `cargo xtask cluster start|stop|status` (two more nodes joined to it), all on loopback.
//!
//! `start` does every step itself, as root: installs `rabbitmq-server` (and `openssl`) from
//! Debian when missing, enables `rabbitmq_stomp` and `rabbitmq_web_stomp` offline, writes the
//! configuration, generates a CA and a server certificate, starts the node with
//! `rabbitmq-server -detached` (no systemd needed) and waits, bounded, until the node logged
//! the end of its boot and answers a STOMP CONNECT on each listener. It is idempotent: a node that already runs with the same configuration is left
//! alone (and keeps its certificates); a changed configuration restarts it.
//!
//! Nodes (all names use the host `localhost`, which always resolves to loopback, unlike the
//! machine's host name on Debian (`127.0.1.1`)):
//!
//! | node                | AMQP | Erlang dist | STOMP | STOMP TLS | Web-STOMP (`/ws`) |
//! |---------------------|------|-------------|-------|-----------|-------------------|
//! | `rabbit@localhost`  | 5672 | 25672       | 61613 | 61614     | 15674             |
//! | `rabbit2@localhost` | 5682 | 25682       | 61623 | -         | 15684             |
//! | `rabbit3@localhost` | 5692 | 25692       | 61633 | -         | 15694             |
//!
//! Every listener, epmd (`ERL_EPMD_ADDRESS`) and the CLI tools' distribution listener bind
//! to 127.0.0.1. The first node uses Debian's paths (`/etc/rabbitmq/rabbitmq.conf`,
//! `/etc/rabbitmq/rabbitmq-env.conf`, `/var/lib/rabbitmq/mnesia`, `/var/log/rabbitmq`); the
//! broker's copy of the certificates is in `/etc/rabbitmq/stompkit-tls`. The extra nodes keep
//! their configuration, data and logs in `/var/lib/rabbitmq/stompkit/<name>/`. The
//! certificates for the tests and the env file are in `target/rabbitmq/` of the workspace
//! (not `CARGO_TARGET_DIR`: there is one broker per machine).
//!
//! What tests need is written to `target/rabbitmq/env` (`KEY=VALUE` lines) and returned by
//! [`start_for_ci`]: `STOMPKIT_RABBITMQ_TCP`, `STOMPKIT_RABBITMQ_TLS`, `STOMPKIT_RABBITMQ_WS`,
//! `STOMPKIT_RABBITMQ_CA`, `STOMPKIT_RABBITMQ_NODE`, and with the cluster up
//! `STOMPKIT_RABBITMQ_CLUSTER` and `STOMPKIT_RABBITMQ_NODES` (same order).
//!
//! Stopping and starting one node's RabbitMQ application from a test (the Erlang VM keeps
//! running, so the node keeps its cluster membership and data), as root:
//!
//! ```text
//! rabbitmqctl -n rabbit2@localhost stop_app
//! rabbitmqctl -n rabbit2@localhost start_app
//! ```
//!
//! Debian's `/usr/sbin/rabbitmqctl` switches to the `rabbitmq` user itself when run as root
//! (and refuses other users). Both commands return when done; `start_app` returns after the
//! node booted, but a test should still retry its STOMP connect for a bounded time.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::probe;

/// The host part of every node name.
const HOST: &str = "localhost";
/// The first node's STOMP-over-TLS port.
const TLS_PORT: u16 = 61614;
/// The Web-STOMP path on every node.
const WS_PATH: &str = "/ws";
/// The default bound on waiting for a node to boot, overridden by `--wait SECS`.
const DEFAULT_WAIT: Duration = Duration::from_secs(120);
/// The bound on one `rabbitmqctl` call.
const CTL_TIMEOUT: Duration = Duration::from_secs(90);
/// The bound on installing packages (`apt-get update` and `install` each).
const APT_TIMEOUT: Duration = Duration::from_secs(900);

const ETC: &str = "/etc/rabbitmq";
const TLS_ETC: &str = "/etc/rabbitmq/stompkit-tls";
const EXTRA_BASE: &str = "/var/lib/rabbitmq/stompkit";
const DEBIAN_MNESIA: &str = "/var/lib/rabbitmq/mnesia";
const DEBIAN_LOG: &str = "/var/log/rabbitmq";
const PLUGINS: [&str; 2] = ["rabbitmq_stomp", "rabbitmq_web_stomp"];
/// The certificate files, as generated into `target/rabbitmq/tls` and installed in
/// [`TLS_ETC`].
const TLS_FILES: [&str; 3] = ["ca.pem", "server.pem", "server-key.pem"];

/// One node's name and ports.
#[derive(Debug)]
struct Node {
    short: &'static str,
    amqp: u16,
    dist: u16,
    stomp: u16,
    web_stomp: u16,
}

const FIRST: Node = Node {
    short: "rabbit",
    amqp: 5672,
    dist: 25672,
    stomp: 61613,
    web_stomp: 15674,
};
const EXTRA: [Node; 2] = [
    Node {
        short: "rabbit2",
        amqp: 5682,
        dist: 25682,
        stomp: 61623,
        web_stomp: 15684,
    },
    Node {
        short: "rabbit3",
        amqp: 5692,
        dist: 25692,
        stomp: 61633,
        web_stomp: 15694,
    },
];

impl Node {
    fn name(&self) -> String {
        format!("{}@{HOST}", self.short)
    }

    fn is_first(&self) -> bool {
        self.short == FIRST.short
    }

    /// The extra node's own directory (configuration, data, logs).
    fn home(&self) -> PathBuf {
        Path::new(EXTRA_BASE).join(self.short)
    }

    fn config_file(&self) -> PathBuf {
        if self.is_first() {
            Path::new(ETC).join("rabbitmq.conf")
        } else {
            self.home().join("rabbitmq.conf")
        }
    }

    fn mnesia_dir(&self) -> PathBuf {
        if self.is_first() {
            Path::new(DEBIAN_MNESIA).join(self.name())
        } else {
            self.home().join("mnesia").join(self.name())
        }
    }

    fn log_file(&self) -> PathBuf {
        let dir = if self.is_first() {
            PathBuf::from(DEBIAN_LOG)
        } else {
            self.home().join("log")
        };
        dir.join(format!("{}.log", self.name()))
    }

    /// The environment `rabbitmq-server` runs with; variables set here take precedence
    /// over `rabbitmq-env.conf`.
    fn server_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("RABBITMQ_NODENAME", self.name()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", self.amqp.to_string()),
            ("RABBITMQ_DIST_PORT", self.dist.to_string()),
        ];
        if !self.is_first() {
            let home = self.home();
            env.extend([
                (
                    "RABBITMQ_CONFIG_FILE",
                    self.config_file().display().to_string(),
                ),
                (
                    "RABBITMQ_MNESIA_BASE",
                    home.join("mnesia").display().to_string(),
                ),
                ("RABBITMQ_LOG_BASE", home.join("log").display().to_string()),
            ]);
        }
        env
    }

    fn config_text(&self) -> String {
        let mut text = String::from(
            "# Written by `cargo xtask broker start` / `cluster start` (stompkit's real-broker\n\
             # tests); rewritten on each start. Every listener is on loopback.\n",
        );
        text += &format!("listeners.tcp.default = 127.0.0.1:{}\n", self.amqp);
        text += &format!("stomp.listeners.tcp.1 = 127.0.0.1:{}\n", self.stomp);
        if self.is_first() {
            text += &format!("stomp.listeners.ssl.1 = 127.0.0.1:{TLS_PORT}\n");
            for (key, file) in [
                ("cacertfile", "ca.pem"),
                ("certfile", "server.pem"),
                ("keyfile", "server-key.pem"),
            ] {
                text += &format!("ssl_options.{key} = {TLS_ETC}/{file}\n");
            }
            text += "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n";
        }
        text += &format!(
            // Binary WebSocket frames: a text frame must be UTF-8, and bodies need not be.
            "web_stomp.tcp.ip = 127.0.0.1\nweb_stomp.tcp.port = {}\nweb_stomp.ws_path = {WS_PATH}\nweb_stomp.ws_frame = binary\n",
            self.web_stomp
        );
        text
    }

    /// The Erlang VM runs (its distribution port is open only then).
    fn vm_up(&self) -> bool {
        probe::port_open(self.dist)
    }

    /// The RabbitMQ application runs: STOMP answers a CONNECT.
    fn app_up(&self) -> bool {
        probe::stomp_tcp(self.stomp).is_ok()
    }
}

/// `rabbitmq-env.conf`, shared by every node and the CLI tools (they source it).
fn env_conf_text() -> String {
    format!(
        "# Written by `cargo xtask broker start` (stompkit's real-broker tests).\n\
         # `localhost` always resolves to 127.0.0.1; Debian maps the host name to 127.0.1.1,\n\
         # where epmd (bound to 127.0.0.1 below) would not answer.\n\
         NODENAME={name}\n\
         ERL_EPMD_ADDRESS=127.0.0.1\n\
         SERVER_ADDITIONAL_ERL_ARGS=\"-kernel inet_dist_use_interface {{127,0,0,1}}\"\n\
         CTL_ERL_ARGS=\"-kernel inet_dist_use_interface {{127,0,0,1}}\"\n",
        name = FIRST.name()
    )
}

/// `target/rabbitmq` in the workspace.
fn state_dir() -> PathBuf {
    crate::root().join("target").join("rabbitmq")
}

fn tls_dir() -> PathBuf {
    state_dir().join("tls")
}

fn env_file() -> PathBuf {
    state_dir().join("env")
}

/// `cargo xtask broker start|stop|status`.
pub(crate) fn broker(args: &[String]) -> Result<(), String> {
    match args {
        [cmd, rest @ ..] if cmd == "start" => {
            let wait = wait_arg(rest)?;
            let started = Instant::now();
            start_broker(wait)?;
            write_env_file(&env_pairs(cluster_running()))?;
            eprintln!(
                "xtask broker: {} ready in {:.1?}; env in {}",
                FIRST.name(),
                started.elapsed(),
                env_file().display()
            );
            Ok(())
        }
        [cmd] if cmd == "stop" => {
            require_root()?;
            for node in EXTRA.iter().rev() {
                stop_node(node)?;
            }
            stop_node(&FIRST)?;
            match fs::remove_file(env_file()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("removing {}: {e}", env_file().display()))
                }
                _ => Ok(()),
            }
        }
        [cmd] if cmd == "status" => broker_status(),
        _ => Err(format!(
            "usage: cargo xtask broker start [--wait SECS] | stop | status\n\n{}",
            crate::usage()
        )),
    }
}

/// `cargo xtask cluster start|stop|status`.
pub(crate) fn cluster(args: &[String]) -> Result<(), String> {
    match args {
        [cmd, rest @ ..] if cmd == "start" => {
            let wait = wait_arg(rest)?;
            let started = Instant::now();
            start_broker(wait)?;
            start_cluster(wait)?;
            write_env_file(&env_pairs(true))?;
            eprintln!(
                "xtask cluster: three nodes ready in {:.1?}; env in {}",
                started.elapsed(),
                env_file().display()
            );
            Ok(())
        }
        [cmd] if cmd == "stop" => {
            require_root()?;
            for node in EXTRA.iter().rev() {
                stop_node(node)?;
            }
            if FIRST.vm_up() {
                write_env_file(&env_pairs(false))?;
            }
            Ok(())
        }
        [cmd] if cmd == "status" => cluster_status(),
        _ => Err(format!(
            "usage: cargo xtask cluster start [--wait SECS] | stop | status\n\n{}",
            crate::usage()
        )),
    }
}

/// For `cargo xtask ci`: starts the broker and the cluster (idempotent) and returns the
/// variables the real-broker tests read, also written to `target/rabbitmq/env`.
pub(crate) fn start_for_ci() -> Result<Vec<(String, String)>, String> {
    let started = Instant::now();
    start_broker(DEFAULT_WAIT)?;
    start_cluster(DEFAULT_WAIT)?;
    let pairs = env_pairs(true);
    write_env_file(&pairs)?;
    eprintln!(
        "xtask: RabbitMQ broker and cluster ready in {:.1?}",
        started.elapsed()
    );
    Ok(pairs)
}

fn wait_arg(args: &[String]) -> Result<Duration, String> {
    match args {
        [] => Ok(DEFAULT_WAIT),
        [flag, n] if flag == "--wait" => n
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("--wait takes a positive whole number of seconds, not `{n}`")),
        _ => Err(format!("unexpected arguments {args:?}; only `--wait SECS`")),
    }
}

fn env_pairs(cluster: bool) -> Vec<(String, String)> {
    let mut pairs = vec![
        (
            "STOMPKIT_RABBITMQ_TCP",
            format!("stomp://127.0.0.1:{}", FIRST.stomp),
        ),
        (
            "STOMPKIT_RABBITMQ_TLS",
            format!("stomp+ssl://{HOST}:{TLS_PORT}"),
        ),
        (
            "STOMPKIT_RABBITMQ_WS",
            format!("ws://127.0.0.1:{}{WS_PATH}", FIRST.web_stomp),
        ),
        (
            "STOMPKIT_RABBITMQ_CA",
            tls_dir().join("ca.pem").display().to_string(),
        ),
        ("STOMPKIT_RABBITMQ_NODE", FIRST.name()),
    ];
    if cluster {
        let nodes = || std::iter::once(&FIRST).chain(EXTRA.iter());
        pairs.push((
            "STOMPKIT_RABBITMQ_CLUSTER",
            nodes()
                .map(|n| format!("stomp://127.0.0.1:{}", n.stomp))
                .collect::<Vec<_>>()
                .join(","),
        ));
        pairs.push((
            "STOMPKIT_RABBITMQ_NODES",
            nodes().map(Node::name).collect::<Vec<_>>().join(","),
        ));
    }
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn write_env_file(pairs: &[(String, String)]) -> Result<(), String> {
    let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    fs::create_dir_all(state_dir())
        .and_then(|()| fs::write(env_file(), text))
        .map_err(|e| format!("writing {}: {e}", env_file().display()))
}

fn cluster_running() -> bool {
    EXTRA.iter().all(Node::app_up)
}

/// Installs, configures and starts the first node; see the module docs.
fn start_broker(wait: Duration) -> Result<(), String> {
    ensure_installed()?;
    require_root()?;
    fs::create_dir_all(tls_dir()).map_err(|e| format!("creating {}: {e}", tls_dir().display()))?;
    enable_plugins()?;
    let vm_up = FIRST.vm_up();
    let mut changed =
        write_if_changed(&Path::new(ETC).join("rabbitmq-env.conf"), &env_conf_text())?;
    // New certificates for each run of the node; a running node keeps the ones it loaded,
    // and a second checkout using it takes a copy of them (rather than replacing them and
    // restarting the node under the first checkout's tests).
    if vm_up && !tls_installed() && copy_installed_certificates(&tls_dir()).is_ok() {
        eprintln!("xtask broker: using the running node's certificates");
    }
    if !(vm_up && tls_installed()) {
        generate_certificates(&tls_dir())?;
        install_certificates(&tls_dir())?;
        changed = true;
    }
    changed |= write_if_changed(&FIRST.config_file(), &FIRST.config_text())?;
    if vm_up && changed {
        eprintln!(
            "xtask broker: configuration changed; restarting {}",
            FIRST.name()
        );
        stop_node(&FIRST)?;
    }
    if !FIRST.vm_up() {
        // A node that was not the last of its cluster to stop waits minutes for the others
        // at boot; the first node is the authority here, so it boots without waiting.
        if FIRST.mnesia_dir().is_dir() && !EXTRA.iter().any(Node::vm_up) {
            ctl(&FIRST, &["force_boot"])?;
        }
        let mark = log_mark(&FIRST);
        boot(&FIRST)?;
        wait_ready(&FIRST, wait, mark)
    } else if !FIRST.app_up() {
        eprintln!(
            "xtask broker: {} runs but its application does not answer; start_app",
            FIRST.name()
        );
        let mark = log_mark(&FIRST);
        ctl(&FIRST, &["start_app"])?;
        wait_ready(&FIRST, wait, mark)
    } else {
        eprintln!("xtask broker: {} already running", FIRST.name());
        Ok(())
    }
}

/// Starts the extra nodes (the first one runs) and joins them to the first.
fn start_cluster(wait: Duration) -> Result<(), String> {
    let members = cluster_nodes(&FIRST)?;
    let mut booting = Vec::new();
    for node in &EXTRA {
        let home = node.home();
        for dir in [home.join("mnesia"), home.join("log")] {
            fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let changed = write_if_changed(&node.config_file(), &node.config_text())?;
        chown_rabbitmq(&home)?;
        if node.vm_up() {
            if !changed {
                if !node.app_up() {
                    let mark = log_mark(node);
                    ctl(node, &["start_app"])?;
                    wait_ready(node, wait, mark)?;
                }
                continue;
            }
            eprintln!(
                "xtask cluster: configuration changed; restarting {}",
                node.name()
            );
            stop_node(node)?;
        }
        let known = members.disk.contains(&node.name());
        let has_data = node.mnesia_dir().is_dir();
        if known && !has_data {
            // The first node lists a member whose data is gone: it must forget it before a
            // fresh node of that name can join.
            ctl(&FIRST, &["forget_cluster_node", &node.name()])?;
        } else if !known && has_data {
            // Data from a cluster the first node no longer knows would make the node wait
            // for peers at boot; it is test data, so it goes.
            let dir = node.mnesia_dir();
            fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
        let mark = log_mark(node);
        boot(node)?;
        booting.push((node, mark));
    }
    for (node, mark) in booting {
        wait_ready(node, wait, mark)?;
    }
    // Joins one at a time: concurrent schema changes in one cluster can fail.
    let mut members = cluster_nodes(&FIRST)?;
    for node in &EXTRA {
        if !members.running.contains(&node.name()) {
            eprintln!("xtask cluster: joining {} to {}", node.name(), FIRST.name());
            ctl(node, &["stop_app"])?;
            ctl(node, &["reset"])?;
            ctl(node, &["join_cluster", &FIRST.name()])?;
            let mark = log_mark(node);
            ctl(node, &["start_app"])?;
            wait_ready(node, wait, mark)?;
            members = cluster_nodes(&FIRST)?;
        }
    }
    let missing: Vec<String> = std::iter::once(&FIRST)
        .chain(EXTRA.iter())
        .map(Node::name)
        .filter(|n| !members.running.contains(n))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "cluster formed without {missing:?}; running: {:?}",
            members.running
        ))
    }
}

/// A node's view of its cluster, from `rabbitmqctl cluster_status --formatter json`.
#[derive(Debug, Default)]
struct Members {
    disk: Vec<String>,
    running: Vec<String>,
}

fn cluster_nodes(node: &Node) -> Result<Members, String> {
    let out = ctl(node, &["cluster_status", "--formatter", "json"])?;
    let disk = json_names(&out, "disk_nodes");
    let running = json_names(&out, "running_nodes");
    if disk.is_empty() {
        return Err(format!("cluster_status lists no disk nodes:\n{out}"));
    }
    Ok(Members { disk, running })
}

/// The strings in the array `"key":[...]` of `json`. Enough for cluster_status, whose node
/// names hold no quotes, commas or brackets; saves xtask a JSON dependency.
fn json_names(json: &str, key: &str) -> Vec<String> {
    let needle = format!("\"{key}\":[");
    let Some(start) = json.find(&needle).map(|i| i + needle.len()) else {
        return Vec::new();
    };
    let body = json[start..].split(']').next().unwrap_or_default();
    body.split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn broker_status() -> Result<(), String> {
    let mut failed = 0;
    let mut report = |what: &str, result: Result<String, String>| match result {
        Ok(server) => eprintln!("ok      {what} ({server})"),
        Err(e) => {
            failed += 1;
            eprintln!("FAILED  {what}: {e}");
        }
    };
    report(
        &format!("STOMP CONNECT over TCP, 127.0.0.1:{}", FIRST.stomp),
        probe::stomp_tcp(FIRST.stomp),
    );
    let ca = tls_dir().join("ca.pem");
    report(
        &format!(
            "STOMP CONNECT over TLS, 127.0.0.1:{TLS_PORT} as `{HOST}`, CA {}",
            ca.display()
        ),
        probe::stomp_tls(TLS_PORT, HOST, &ca),
    );
    report(
        &format!(
            "STOMP CONNECT over WebSocket, ws://127.0.0.1:{}{WS_PATH} (v12.stomp)",
            FIRST.web_stomp
        ),
        probe::stomp_ws(FIRST.web_stomp, WS_PATH),
    );
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} of 3 broker checks failed"))
    }
}

fn cluster_status() -> Result<(), String> {
    let mut failed = 0;
    let all: Vec<&Node> = std::iter::once(&FIRST).chain(EXTRA.iter()).collect();
    match cluster_nodes(&FIRST) {
        Ok(members) => {
            for node in &all {
                if members.running.contains(&node.name()) {
                    eprintln!("ok      {} runs in the cluster", node.name());
                } else {
                    failed += 1;
                    eprintln!(
                        "FAILED  {} is not running in the cluster (running: {:?})",
                        node.name(),
                        members.running
                    );
                }
            }
        }
        Err(e) => {
            failed += 1;
            eprintln!("FAILED  rabbitmqctl cluster_status: {e}");
        }
    }
    for node in &all {
        match probe::stomp_tcp(node.stomp) {
            Ok(server) => eprintln!(
                "ok      STOMP CONNECT to {} on 127.0.0.1:{} ({server})",
                node.name(),
                node.stomp
            ),
            Err(e) => {
                failed += 1;
                eprintln!(
                    "FAILED  STOMP CONNECT to {} on 127.0.0.1:{}: {e}",
                    node.name(),
                    node.stomp
                );
            }
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} cluster checks failed"))
    }
}

/// Installs `rabbitmq-server` and `openssl` from Debian when missing.
fn ensure_installed() -> Result<(), String> {
    let mut missing = Vec::new();
    if !Path::new("/usr/sbin/rabbitmq-server").exists()
        || !Path::new("/usr/sbin/rabbitmqctl").exists()
    {
        missing.push("rabbitmq-server");
    }
    if exec(
        Command::new("openssl").arg("version"),
        Duration::from_secs(30),
    )
    .is_err()
    {
        missing.push("openssl");
    }
    if missing.is_empty() {
        return Ok(());
    }
    require_root()?;
    eprintln!("xtask broker: installing {} from Debian", missing.join(" "));
    // Without systemd, the package's postinst would start the service through
    // /etc/init.d with Debian's defaults; policy-rc.d (exit 101) tells it not to.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        fs::write(
            policy,
            "#!/bin/sh\n# Written by cargo xtask broker for one install.\nexit 101\n",
        )
        .and_then(|()| fs::set_permissions(policy, fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("writing {}: {e}", policy.display()))?;
    }
    let result = (|| {
        let apt = || {
            let mut c = Command::new("apt-get");
            c.env("DEBIAN_FRONTEND", "noninteractive")
                // Waits for another apt/dpkg run rather than failing on its lock.
                .args(["-o", "DPkg::Lock::Timeout=600"]);
            c
        };
        exec_shown(apt().args(["update", "-q"]), APT_TIMEOUT)?;
        exec_shown(
            apt()
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing),
            APT_TIMEOUT,
        )
    })();
    if ours {
        let _ = fs::remove_file(policy);
    }
    result.map(|_| ())
}

fn enable_plugins() -> Result<(), String> {
    let file = Path::new(ETC).join("enabled_plugins");
    let enabled = fs::read_to_string(&file).unwrap_or_default();
    if PLUGINS.iter().all(|p| enabled.contains(p)) {
        return Ok(());
    }
    let mut cmd = Command::new("rabbitmq-plugins");
    cmd.args(["enable", "--offline"]).args(PLUGINS);
    exec_shown(&mut cmd, CTL_TIMEOUT).map(|_| ())
}

/// Writes `text` to `path` unless it holds exactly that; returns whether it wrote.
fn write_if_changed(path: &Path, text: &str) -> Result<bool, String> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(true)
}

/// The broker's copies of the certificates equal the ones in `target/rabbitmq/tls`.
fn tls_installed() -> bool {
    TLS_FILES.iter().all(|f| {
        let ours = fs::read(tls_dir().join(f));
        let theirs = fs::read(Path::new(TLS_ETC).join(f));
        matches!((ours, theirs), (Ok(a), Ok(b)) if a == b)
    })
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it (P-256 keys),
/// into `dir`, through the `openssl` CLI.
fn generate_certificates(dir: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    fs::write(
        dir.join("server.ext"),
        "basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n\
         subjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid\n",
    )
    .map_err(|e| format!("writing {}: {e}", dir.join("server.ext").display()))?;
    let openssl = |args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(dir).args(args);
        exec(&mut cmd, Duration::from_secs(60)).map(|_| ())
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "365",
                "-subj",
                "/CN=stompkit test CA",
            ][..],
            &key,
            &["-keyout", "ca-key.pem", "-out", "ca.pem"],
        ]
        .concat(),
    )?;
    openssl(
        &[
            &["req", "-new", "-subj", "/CN=localhost"][..],
            &key,
            &["-keyout", "server-key.pem", "-out", "server.csr"],
        ]
        .concat(),
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "365",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])
}

/// Copies the certificates where the broker (user `rabbitmq`) reads them: the workspace may
/// sit under a home directory it cannot enter.
/// Copies the certificates the broker loaded into `to` (the public CA included; the
/// server's key stays readable by root only, as in the broker's directory).
fn copy_installed_certificates(to: &Path) -> Result<(), String> {
    for file in TLS_FILES {
        let (src, dst) = (Path::new(TLS_ETC).join(file), to.join(file));
        fs::copy(&src, &dst)
            .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
    }
    Ok(())
}

fn install_certificates(from: &Path) -> Result<(), String> {
    let to = Path::new(TLS_ETC);
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    for file in TLS_FILES {
        let (src, dst) = (from.join(file), to.join(file));
        fs::copy(&src, &dst)
            .map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
        let mode = if file.ends_with("key.pem") {
            0o600
        } else {
            0o644
        };
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", dst.display()))?;
    }
    fs::set_permissions(to, fs::Permissions::from_mode(0o750))
        .map_err(|e| format!("chmod {}: {e}", to.display()))?;
    chown_rabbitmq(to)
}

fn chown_rabbitmq(path: &Path) -> Result<(), String> {
    let mut cmd = Command::new("chown");
    cmd.args(["-R", "rabbitmq:rabbitmq"]).arg(path);
    exec(&mut cmd, Duration::from_secs(30)).map(|_| ())
}

fn require_root() -> Result<(), String> {
    let out = exec(Command::new("id").arg("-u"), Duration::from_secs(10))?;
    if out.trim() == "0" {
        Ok(())
    } else {
        Err("the broker tasks install and configure RabbitMQ system-wide: run them as root".into())
    }
}

/// `rabbitmq-server -detached` for `node`; its output goes to a file, never to our pipes
/// (the detached VM must not hold a CI job's output open).
fn boot(node: &Node) -> Result<(), String> {
    eprintln!("xtask broker: starting {}", node.name());
    let out_path = state_dir().join(format!("{}-start.out", node.short));
    let out =
        fs::File::create(&out_path).map_err(|e| format!("creating {}: {e}", out_path.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cloning {}: {e}", out_path.display()))?;
    let mut cmd = Command::new("rabbitmq-server");
    cmd.arg("-detached")
        .envs(node.server_env())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start rabbitmq-server: {e}"))?;
    let deadline = Instant::now() + CTL_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "rabbitmq-server -detached for {} failed ({status}):\n{}\n{}",
                    node.name(),
                    tail(&out_path, 0, 20),
                    tail(&node.log_file(), 0, 30)
                ));
            }
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "rabbitmq-server -detached for {} hung",
                    node.name()
                ));
            }
            Err(e) => return Err(format!("waiting for rabbitmq-server: {e}")),
        }
    }
}

/// Where `node`'s log ends now: [`wait_ready`] reads only what the node logs after it.
fn log_mark(node: &Node) -> u64 {
    fs::metadata(node.log_file()).map_or(0, |m| m.len())
}

/// Waits until `node` logged the end of its boot after byte `log_start` of its log and
/// answers a STOMP CONNECT on each of its listeners (a listener may answer for a moment
/// before a later plugin fails the boot). Fails at `wait`, or as soon as the log reports a
/// failed boot, with the log's tail.
fn wait_ready(node: &Node, wait: Duration, log_start: u64) -> Result<(), String> {
    let log = node.log_file();
    let started = Instant::now();
    let ca = tls_dir().join("ca.pem");
    loop {
        let booted = tail(&log, log_start, 400).contains("Server startup complete");
        if booted
            && node.app_up()
            && probe::stomp_ws(node.web_stomp, WS_PATH).is_ok()
            && (!node.is_first() || probe::stomp_tls(TLS_PORT, HOST, &ca).is_ok())
        {
            eprintln!(
                "xtask broker: {} answers STOMP on 127.0.0.1:{} after {:.1?}",
                node.name(),
                node.stomp,
                started.elapsed()
            );
            return Ok(());
        }
        let failed = tail(&log, log_start, 200).contains("BOOT FAILED");
        if failed || started.elapsed() >= wait {
            let why = if failed {
                "its boot failed".to_owned()
            } else {
                format!("no STOMP answer within {wait:?}")
            };
            return Err(format!(
                "{} did not start: {why}. Last lines of {}:\n{}",
                node.name(),
                log.display(),
                tail(&log, log_start, 40)
            ));
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Stops `node`'s VM if it runs and waits, bounded, until it is gone.
fn stop_node(node: &Node) -> Result<(), String> {
    if !node.vm_up() {
        eprintln!("xtask broker: {} is not running", node.name());
        return Ok(());
    }
    eprintln!("xtask broker: stopping {}", node.name());
    // With its pid file, `stop` also waits for the VM to exit, not only to leave the network.
    let pid_file = node.mnesia_dir().with_extension("pid");
    if pid_file.is_file() {
        ctl(node, &["stop", &pid_file.display().to_string()])?;
    } else {
        ctl(node, &["stop"])?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.vm_up() {
        if Instant::now() >= deadline {
            return Err(format!("{} still runs 60 s after `stop`", node.name()));
        }
        thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// `rabbitmqctl -n <node> <args>`, bounded; returns its output.
fn ctl(node: &Node, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new("rabbitmqctl");
    cmd.arg("-n").arg(node.name()).args(args);
    exec_shown(&mut cmd, CTL_TIMEOUT)
}

fn exec_shown(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    eprintln!("xtask: $ {}", shown(cmd));
    exec(cmd, timeout)
}

fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` in its own process group with stdout and stderr captured, killing the group at
/// `timeout`. `Ok(stdout)` on success; an error with both outputs otherwise.
fn exec(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let what = shown(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("could not start `{what}`: {e}"))?;
    let (tx, rx) = mpsc::channel();
    for (n, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.by_ref().take(1 << 20).read_to_end(&mut text);
            }
            let _ = tx.send((n, String::from_utf8_lossy(&text).into_owned()));
        });
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                // The whole group: rabbitmqctl runs as `sh` -> `su` -> `erl`. `kill` may be
                // missing on a minimal system; the direct child is killed either way.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{what}` did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("waiting for `{what}`: {e}")),
        }
    };
    // A daemon the command started may still hold a pipe: wait a little, not forever.
    let mut outputs = [String::new(), String::new()];
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..2 {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        if let Ok((n, text)) = rx.recv_timeout(left) {
            outputs[n] = text;
        }
    }
    let [stdout, stderr] = outputs;
    if status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`{what}` failed ({status}):\n{}{}",
            stdout.trim_end(),
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!("\n{}", stderr.trim_end())
            }
        ))
    }
}

/// The last `lines` lines of `path` after byte `from` (at most its last 64 KiB).
fn tail(path: &Path, from: u64, lines: usize) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return format!("({} not readable)", path.display());
    };
    let len = file.metadata().map_or(0, |m| m.len());
    // A log shorter than the offset was rotated: all of it is new.
    let from = if from > len { 0 } else { from };
    let start = from.max(len.saturating_sub(64 * 1024));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return format!("({} not readable)", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_have_distinct_ports() {
        let mut ports: Vec<u16> = std::iter::once(&FIRST)
            .chain(EXTRA.iter())
            .flat_map(|n| [n.amqp, n.dist, n.stomp, n.web_stomp])
            .chain([TLS_PORT])
            .collect();
        let count = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), count);
    }

    #[test]
    fn configuration_binds_loopback_only() {
        for node in std::iter::once(&FIRST).chain(EXTRA.iter()) {
            let text = node.config_text();
            for line in text
                .lines()
                .filter(|l| l.contains("listeners.") && !l.starts_with('#'))
            {
                assert!(line.contains("= 127.0.0.1:"), "{line}");
            }
            assert!(text.contains("web_stomp.tcp.ip = 127.0.0.1"));
        }
        assert!(
            FIRST
                .config_text()
                .contains("stomp.listeners.ssl.1 = 127.0.0.1:61614")
        );
        assert!(!EXTRA[0].config_text().contains("ssl"));
    }

    #[test]
    fn env_lists_the_cluster_only_when_up() {
        let keys = |c| env_pairs(c).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert!(!keys(false).contains(&"STOMPKIT_RABBITMQ_CLUSTER".to_owned()));
        let pairs = env_pairs(true);
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("STOMPKIT_RABBITMQ_CLUSTER").as_deref(),
            Some("stomp://127.0.0.1:61613,stomp://127.0.0.1:61623,stomp://127.0.0.1:61633")
        );
        assert_eq!(
            get("STOMPKIT_RABBITMQ_NODES").as_deref(),
            Some("rabbit@localhost,rabbit2@localhost,rabbit3@localhost")
        );
    }

    #[test]
    fn reads_node_lists_from_cluster_status() {
        let json = r#"{"disk_nodes":["rabbit@localhost","rabbit2@localhost"],"running_nodes":["rabbit@localhost"],"alarms":[]}"#;
        assert_eq!(
            json_names(json, "disk_nodes"),
            ["rabbit@localhost", "rabbit2@localhost"]
        );
        assert_eq!(json_names(json, "running_nodes"), ["rabbit@localhost"]);
        assert!(json_names(json, "alarms").is_empty());
        assert!(json_names(json, "ram_nodes").is_empty());
    }

    #[test]
    fn tail_keeps_the_last_lines_after_an_offset() {
        let dir = std::env::temp_dir().join(format!("xtask-tail-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("log");
        fs::write(&file, "old\na\nb\nc\n").unwrap();
        assert_eq!(tail(&file, 0, 2), "b\nc");
        assert_eq!(tail(&file, 4, 10), "a\nb\nc");
        assert_eq!(tail(&file, 100, 1), "c");
        fs::remove_dir_all(&dir).unwrap();
    }
}
