//! `cargo xtask interop` (and a step of `ci`): clients nobody here wrote against
//! `stompkit broker`, and the root README's first command.
//!
//! - stomp.py (`interop/requirements.txt`, pinned) in a venv at `target/interop/venv`, over
//!   TCP, runs `interop/stomp_py_suite.py`;
//! - `@stomp/stompjs` and `ws` (`interop/package-lock.json`, pinned) under
//!   `target/interop/node`, over WebSocket, runs `interop/stompjs_suite.mjs`.
//!
//! What is missing is installed: the packages from PyPI and npm, and, as root, Debian's
//! `python3-venv` or `nodejs`/`npm` when the machine lacks them. The broker is the debug
//! build of `stompkit broker` on ephemeral loopback ports; every step runs under `timeout`
//! (coreutils) and the broker is stopped with SIGTERM whatever the suites did.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::{root, run, target_dir};

/// Bound on one suite (they take seconds; each of their waits is bounded too).
const SUITE_TIMEOUT: &str = "300";
/// Bound on an install step (`apt-get`, `pip`, `npm`).
const INSTALL_TIMEOUT: &str = "600";
/// How long the broker may take to print its URLs, and to stop after SIGTERM.
const BROKER_WAIT: Duration = Duration::from_secs(30);

/// Installs the clients, runs the README's quickstart, then both suites against one
/// `stompkit broker`.
pub(crate) fn interop(cargo: &Path) -> Result<(), String> {
    let python = python_venv()?;
    let node_dir = node_modules()?;
    quickstart()?;
    run(Command::new(cargo).args(["build", "--locked", "-p", "stompkit-cli"]))?;
    let binary = target_dir().join("debug").join("stompkit");
    let broker = DevBroker::start(&binary)?;
    eprintln!(
        "xtask: stompkit broker at {} and {}",
        broker.stomp_addr, broker.ws_url
    );
    let py = run(Command::new("timeout")
        .args(["--kill-after=10", SUITE_TIMEOUT])
        .arg(&python)
        .arg(root().join("interop/stomp_py_suite.py"))
        .arg(&broker.stomp_addr));
    let js = run(Command::new("timeout")
        .args([
            "--kill-after=10",
            SUITE_TIMEOUT,
            "node",
            "stompjs_suite.mjs",
        ])
        .arg(&broker.ws_url)
        .current_dir(&node_dir));
    let stopped = broker.stop();
    py?;
    js?;
    stopped
}

/// The root README's first command (the quickstart), exactly as written, under `timeout`.
fn quickstart() -> Result<(), String> {
    let readme = root().join("README.md");
    let text = std::fs::read_to_string(&readme)
        .map_err(|e| format!("reading {}: {e}", readme.display()))?;
    let first = text
        .split("```sh\n")
        .nth(1)
        .and_then(|block| block.lines().next())
        .ok_or("README.md has no ```sh block")?;
    if !first.starts_with("cargo run ") {
        return Err(format!(
            "README.md's first command is not a `cargo run`: {first}"
        ));
    }
    run(Command::new("timeout")
        .args(["--kill-after=10", SUITE_TIMEOUT, "sh", "-c", first])
        .env_remove("STOMP_URL"))
}

/// `target/interop/venv/bin/python` with `interop/requirements.txt` installed.
fn python_venv() -> Result<PathBuf, String> {
    let venv = target_dir().join("interop").join("venv");
    let python = venv.join("bin").join("python");
    let requirements = root().join("interop/requirements.txt");
    let stamp = venv.join("stompkit-requirements.txt");
    if python.is_file() && same_file_contents(&requirements, &stamp) {
        return Ok(python);
    }
    ensure_python_venv()?;
    run(Command::new("timeout")
        .args([INSTALL_TIMEOUT, "python3", "-m", "venv", "--clear"])
        .arg(&venv))?;
    run(Command::new("timeout")
        .arg(INSTALL_TIMEOUT)
        .arg(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::copy(&requirements, &stamp)
        .map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(python)
}

/// `target/interop/node` with `interop/package-lock.json` installed (`npm ci`) and the
/// suite copied next to its `node_modules` (Node resolves imports from the script's place).
fn node_modules() -> Result<PathBuf, String> {
    let dir = target_dir().join("interop").join("node");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    ensure_node()?;
    let lock = root().join("interop/package-lock.json");
    let installed = dir.join("package-lock.json");
    if !(dir.join("node_modules/@stomp/stompjs").is_dir() && same_file_contents(&lock, &installed))
    {
        for name in ["package.json", "package-lock.json"] {
            copy(&root().join("interop").join(name), &dir.join(name))?;
        }
        run(Command::new("timeout")
            .args([INSTALL_TIMEOUT, "npm", "ci", "--no-audit", "--no-fund"])
            .current_dir(&dir))?;
    }
    copy(
        &root().join("interop/stompjs_suite.mjs"),
        &dir.join("stompjs_suite.mjs"),
    )?;
    Ok(dir)
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn same_file_contents(a: &Path, b: &Path) -> bool {
    matches!((std::fs::read(a), std::fs::read(b)), (Ok(a), Ok(b)) if a == b)
}

/// `python3` with `venv` and `ensurepip`, installed from Debian when missing.
pub(crate) fn ensure_python_venv() -> Result<(), String> {
    let has_venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_venv {
        return Ok(());
    }
    apt_install(&["python3", "python3-venv"])
}

/// `node` and `npm`, installed from Debian when missing.
pub(crate) fn ensure_node() -> Result<(), String> {
    let has_node = ["node", "npm"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if has_node {
        return Ok(());
    }
    apt_install(&["nodejs", "npm"])
}

/// Installs Debian packages, which needs root (as `xtask broker start` does for RabbitMQ).
pub(crate) fn apt_install(packages: &[&str]) -> Result<(), String> {
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root_user {
        return Err(format!(
            "this step needs {}: install them (`apt-get install {}`) or run as root",
            packages.join(" and "),
            packages.join(" ")
        ));
    }
    run(Command::new("timeout")
        .args([INSTALL_TIMEOUT, "apt-get", "update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("timeout")
        .args([INSTALL_TIMEOUT, "apt-get", "install", "-y", "-q"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// A running `stompkit broker` and the addresses it printed.
struct DevBroker {
    child: Child,
    /// `127.0.0.1:PORT`, as stomp.py takes it.
    stomp_addr: String,
    ws_url: String,
}

impl DevBroker {
    fn start(binary: &Path) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .args(["broker", "--listen", "127.0.0.1:0", "--ws", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {} broker: {e}", binary.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        // Reads the banner, then keeps draining (and echoing) so the broker never blocks
        // on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("broker: {line}");
                let _ = tx.send(line);
            }
        });
        let (mut stomp, mut ws) = (None, None);
        while stomp.is_none() || ws.is_none() {
            let Ok(line) = rx.recv_timeout(BROKER_WAIT) else {
                let _ = child.kill();
                let _ = child.wait();
                return Err("stompkit broker did not print its URLs".into());
            };
            let line = line.trim();
            if let Some(addr) = line.strip_prefix("stomp://") {
                stomp = Some(addr.to_owned());
            } else if line.starts_with("ws://") {
                ws = Some(line.to_owned());
            }
        }
        Ok(Self {
            child,
            stomp_addr: stomp.unwrap_or_default(),
            ws_url: ws.unwrap_or_default(),
        })
    }

    /// SIGTERM and a bounded wait; an error if it did not stop cleanly.
    fn stop(mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let step = Duration::from_millis(100);
        for _ in 0..(BROKER_WAIT.as_millis() / step.as_millis()) {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!("stompkit broker exited with {status} on SIGTERM"));
                }
                Ok(None) => thread::sleep(step),
                Err(e) => return Err(format!("waiting for stompkit broker: {e}")),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "stompkit broker did not stop within {BROKER_WAIT:?} of SIGTERM"
        ))
    }
}
