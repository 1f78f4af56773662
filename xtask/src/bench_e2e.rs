//! `cargo xtask bench-e2e [--quick] [--only NAME,...]`: the end-to-end comparison through the
//! local RabbitMQ (see docs/performance.md, "End to end").
//!
//! Starts the broker (`broker start`), builds `stompkit` and the bench programs in release,
//! installs stomp.py into a venv under `<target>/e2e/venv` and `@stomp/stompjs` with `ws`
//! under `<target>/e2e/node` (pinned versions), then runs every client on every workload,
//! one process at a time, each under `/usr/bin/time` for its CPU time and peak RSS. The
//! broker's own CPU time over each run is read from `/proc/<beam pid>/stat`. Prints the
//! tables and, on a full run, writes them into docs/performance.md between the
//! `bench-e2e` markers. `--quick` runs small counts (a smoke test) and writes nothing.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{broker, cargo, root, run, target_dir};

const STOMP_PY: &str = "9.0.0";
const STOMPJS: &str = "7.5.0";
const WS: &str = "8.23.0";

const BEGIN: &str = "<!-- bench-e2e:begin (written by `cargo xtask bench-e2e`) -->";
const END: &str = "<!-- bench-e2e:end -->";

/// Bounds on installing the Python and Node packages.
const INSTALL_LIMIT_SECS: u32 = 600;

/// One workload, as the clients' common flags.
struct Workload {
    tag: &'static str,
    title: String,
    count: u64,
    size: usize,
    consumers: usize,
    ack: &'static str,
    receipts: bool,
    topic: bool,
}

fn workloads(quick: bool) -> Vec<Workload> {
    let n = |full: u64, small: u64| if quick { small } else { full };
    let (a, c, d) = (n(100_000, 5_000), n(1_000, 50), n(10_000, 500));
    vec![
        Workload {
            tag: "a",
            title: format!("(a) {a} × 200 B, 1 producer, 1 consumer, auto ack, no receipts"),
            count: a,
            size: 200,
            consumers: 1,
            ack: "auto",
            receipts: false,
            topic: false,
        },
        Workload {
            tag: "b",
            title: format!("(b) {a} × 200 B, receipt on every send, client-individual acks"),
            count: a,
            size: 200,
            consumers: 1,
            ack: "client-individual",
            receipts: true,
            topic: false,
        },
        Workload {
            tag: "c",
            title: format!("(c) {c} × 1 MiB, 1 producer, 1 consumer, auto ack"),
            count: c,
            size: 1024 * 1024,
            consumers: 1,
            ack: "auto",
            receipts: false,
            topic: false,
        },
        Workload {
            tag: "d",
            title: format!(
                "(d) fan-out: {d} × 200 B from 1 producer to 10 consumers of a topic ({} deliveries)",
                d * 10
            ),
            count: d,
            size: 200,
            consumers: 10,
            ack: "auto",
            receipts: false,
            topic: true,
        },
    ]
}

/// How a client is started: the program and its arguments before the common flags.
struct Client {
    name: &'static str,
    /// `tcp` or `ws` (the broker's STOMP or Web-STOMP listener).
    transport: &'static str,
    program: PathBuf,
    args: Vec<String>,
}

/// What one run measured.
struct Outcome {
    msgs_per_s: f64,
    delivery: Option<(f64, f64)>,
    receipt: Option<(f64, f64)>,
    sent: f64,
    cpu_s: f64,
    rss_kib: f64,
    broker_cpu_s: Option<f64>,
    wall_s: f64,
}

/// `cargo xtask bench-e2e`.
pub(crate) fn bench_e2e(args: &[String]) -> Result<(), String> {
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let list = rest.next().ok_or("--only takes a comma-separated list")?;
                only = Some(list.split(',').map(str::to_owned).collect());
            }
            _ => {
                return Err(format!(
                    "bench-e2e takes only `--quick` and `--only NAME,...`\n\n{}",
                    crate::usage()
                ));
            }
        }
    }
    let started = Instant::now();
    broker::broker(&["start".to_owned()])?;
    let env = broker_env()?;
    let tcp = with_guest(env_var(&env, "STOMPKIT_RABBITMQ_TCP")?);
    let ws = with_guest(env_var(&env, "STOMPKIT_RABBITMQ_WS")?);
    ensure_time()?;
    let cargo = cargo();
    run(Command::new(&cargo).args(["build", "--release", "--locked", "-p", "stompkit-cli"]))?;
    run(Command::new(&cargo).args([
        "build",
        "--release",
        "--locked",
        "-p",
        "stompkit-benches",
        "--features",
        "e2e",
        "--bin",
        "e2e-stompkit",
        "--bin",
        "e2e-iridium",
        "--bin",
        "e2e-async-stomp",
        "--bin",
        "e2e-floor",
    ]))?;
    let work = target_dir().join("e2e");
    fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    let python = python_venv(&work)?;
    let node_dir = node_packages(&work)?;
    let release = target_dir().join("release");
    let stompkit = release.join("stompkit");
    let mut clients = vec![
        Client {
            name: "stompkit bench",
            transport: "tcp",
            program: stompkit.clone(),
            args: vec!["bench".into(), tcp.clone(), "--json".into()],
        },
        Client {
            name: "stompkit-tokio loop",
            transport: "tcp",
            program: release.join("e2e-stompkit"),
            args: vec![tcp.clone()],
        },
        Client {
            name: "iridium-stomp 0.6",
            transport: "tcp",
            program: release.join("e2e-iridium"),
            args: vec![tcp.clone()],
        },
        Client {
            name: "async-stomp 0.7",
            transport: "tcp",
            program: release.join("e2e-async-stomp"),
            args: vec![tcp.clone()],
        },
        Client {
            name: "stomp.py 9.0",
            transport: "tcp",
            program: python,
            args: vec![
                root()
                    .join("benches/e2e/stomp_py_bench.py")
                    .display()
                    .to_string(),
                tcp.clone(),
            ],
        },
        // Not a client: what any client must spend at least (see e2e-floor.rs).
        Client {
            name: "floor (blocking sockets)",
            transport: "tcp",
            program: release.join("e2e-floor"),
            args: vec![tcp],
        },
        // Web-STOMP heart-beats off for both: RabbitMQ 3.10's Web-STOMP heart-beater
        // crashes when flow control pauses a busy connection.
        Client {
            name: "stompkit bench",
            transport: "ws",
            program: stompkit,
            args: vec![
                "bench".into(),
                ws.clone(),
                "--json".into(),
                "--heart-beat".into(),
                "0,0".into(),
            ],
        },
        Client {
            name: "stompjs 7.5 (Node)",
            transport: "ws",
            program: PathBuf::from("node"),
            args: vec![node_dir.join("stompjs_bench.mjs").display().to_string(), ws],
        },
    ];
    if let Some(only) = &only {
        clients.retain(|c| {
            only.iter().any(|o| {
                c.name.starts_with(o.as_str()) || format!("{}/{}", c.name, c.transport) == *o
            })
        });
    }
    let beam = beam_pid("rabbit@localhost");
    let limit = if quick { 60 } else { 300 };
    let mut sections = String::new();
    let mut queues = Vec::new();
    for workload in workloads(quick) {
        let mut rows = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let destination = format!(
                "/{}/stompkit-e2e-{}-{i}-{}",
                if workload.topic { "topic" } else { "queue" },
                workload.tag,
                std::process::id()
            );
            if !workload.topic {
                queues.push(destination.trim_start_matches("/queue/").to_owned());
            }
            eprintln!(
                "xtask bench-e2e: {} / {} ({})",
                workload.title, client.name, client.transport
            );
            let outcome = measure(client, &workload, &destination, limit, &work, beam);
            match &outcome {
                Ok(o) => eprintln!(
                    "xtask bench-e2e:   {:.0} msg/s, CPU {:.2} s, RSS {:.1} MiB",
                    o.msgs_per_s,
                    o.cpu_s,
                    o.rss_kib / 1024.0
                ),
                Err(e) => eprintln!("xtask bench-e2e:   failed: {e}"),
            }
            rows.push((client, outcome));
        }
        sections.push_str(&table(&workload, &rows));
    }
    delete_queues(&queues);
    eprintln!("{sections}");
    if quick {
        eprintln!("xtask bench-e2e: --quick: docs/performance.md left as it is");
    } else if only.is_some() {
        eprintln!("xtask bench-e2e: --only: docs/performance.md left as it is");
    } else {
        write_doc(&sections)?;
    }
    eprintln!("xtask bench-e2e: done in {:.0?}", started.elapsed());
    Ok(())
}

/// Runs one client on one workload under `/usr/bin/time`, bounded by `timeout`.
fn measure(
    client: &Client,
    workload: &Workload,
    destination: &str,
    limit: u64,
    work: &Path,
    beam: Option<u32>,
) -> Result<Outcome, String> {
    let time_file = work.join("time.txt");
    let _ = fs::remove_file(&time_file);
    let mut command = Command::new("timeout");
    command
        .args(["--kill-after=10".to_owned(), (limit + 30).to_string()])
        .arg("/usr/bin/time")
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(&time_file)
        .arg(&client.program)
        .args(&client.args)
        .args([
            "--producers",
            "1",
            "--consumers",
            &workload.consumers.to_string(),
            "--size",
            &workload.size.to_string(),
            "--count",
            &workload.count.to_string(),
            "--ack",
            workload.ack,
            "--destination",
            destination,
            "--timeout",
            &limit.to_string(),
        ])
        .args(workload.receipts.then_some("--receipts"))
        .current_dir(root())
        .env_remove("STOMP_PASSCODE")
        .stdin(Stdio::null());
    let broker_before = beam.and_then(cpu_ticks);
    let output = command
        .output()
        .map_err(|e| format!("could not start {}: {e}", client.program.display()))?;
    let broker_after = beam.and_then(cpu_ticks);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let why = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("error") || l.contains("rror"))
            .or_else(|| stderr.lines().last())
            .unwrap_or("no output");
        return Err(format!("{} ({})", why.trim(), output.status));
    }
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("no JSON summary on stdout: {stdout}"))?;
    let time = fs::read_to_string(&time_file)
        .map_err(|e| format!("reading {}: {e}", time_file.display()))?;
    // `/usr/bin/time -o` may put a "Command exited…" line first; the numbers are last.
    let numbers: Vec<f64> = time
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [wall_s, user, system, rss_kib] = numbers[..] else {
        return Err(format!("unexpected /usr/bin/time output: {time}"));
    };
    let number = |key: &str| json_number(json, key).ok_or(format!("no {key} in {json}"));
    Ok(Outcome {
        msgs_per_s: number("msgs_per_s")?,
        sent: number("sent")?,
        delivery: json_latency(json, "delivery_latency_ms"),
        receipt: json_latency(json, "receipt_latency_ms"),
        cpu_s: user + system,
        rss_kib,
        broker_cpu_s: broker_before
            .zip(broker_after)
            .map(|(b, a)| (a - b) as f64 / 100.0),
        wall_s,
    })
}

/// The number after `"key":` in a flat JSON text (enough for the summaries, whose keys are
/// unique; saves xtask a JSON dependency).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// p50 and p99 of the latency object `key`, `None` when it is `null` or absent.
fn json_latency(json: &str, key: &str) -> Option<(f64, f64)> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let object = &rest[..rest.find('}')? + 1];
    if !object.starts_with('{') {
        return None;
    }
    Some((json_number(object, "p50")?, json_number(object, "p99")?))
}

fn table(workload: &Workload, rows: &[(&Client, Result<Outcome, String>)]) -> String {
    let mut out = format!("\n#### {}\n\n", workload.title);
    out.push_str(
        "| client | via | msg/s | delivery p50 / p99 (ms) | receipt p50 / p99 (ms) | client CPU µs/msg | peak RSS (MiB) | broker CPU (% of a core) |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let pair = |p: Option<(f64, f64)>| {
        p.map_or_else(
            || "-".to_owned(),
            |(a, b)| format!("{} / {}", sig(a), sig(b)),
        )
    };
    for (client, outcome) in rows {
        let _ = match outcome {
            Ok(o) => writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {:.1} | {:.1} | {} |",
                client.name,
                client.transport,
                o.msgs_per_s,
                pair(o.delivery),
                pair(o.receipt),
                o.cpu_s * 1e6 / o.sent.max(1.0),
                o.rss_kib / 1024.0,
                o.broker_cpu_s.map_or_else(
                    || "?".to_owned(),
                    |b| format!("{:.0}", 100.0 * b / o.wall_s.max(0.01))
                )
            ),
            Err(e) => writeln!(
                out,
                "| {} | {} | failed: {} | | | | | |",
                client.name,
                client.transport,
                e.replace('|', "/")
            ),
        };
    }
    out
}

/// Three significant digits at most, no exponent.
fn sig(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Replaces what is between the markers in docs/performance.md (re-read just before:
/// others write the rest of the file).
fn write_doc(sections: &str) -> Result<(), String> {
    let path = root().join("docs/performance.md");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!(
            "{} lacks the bench-e2e markers ({BEGIN} … {END}) in its \"End to end\" section",
            path.display()
        ));
    };
    let updated = format!(
        "{}{BEGIN}\n{}\n{}",
        &text[..begin],
        sections.trim_end(),
        &text[end..]
    );
    fs::write(&path, updated).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("xtask bench-e2e: tables written to {}", path.display());
    Ok(())
}

fn broker_env() -> Result<Vec<(String, String)>, String> {
    let path = root().join("target/rabbitmq/env");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

fn env_var<'a>(env: &'a [(String, String)], key: &str) -> Result<&'a str, String> {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .ok_or(format!("{key} is not in target/rabbitmq/env"))
}

/// The URL with RabbitMQ's stock loopback credentials.
fn with_guest(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if !rest.contains('@') => format!("{scheme}://guest:guest@{rest}"),
        _ => url.to_owned(),
    }
}

/// GNU time, from Debian when missing.
fn ensure_time() -> Result<(), String> {
    if Path::new("/usr/bin/time").is_file() {
        return Ok(());
    }
    crate::interop::apt_install(&["time"])
}

/// A venv with stomp.py at the pinned version; returns its python.
fn python_venv(work: &Path) -> Result<PathBuf, String> {
    let venv = work.join("venv");
    let python = venv.join("bin/python");
    let pinned = Command::new(&python)
        .args([
            "-c",
            &format!("import stomp, sys; sys.exit(stomp.__version__ != '{STOMP_PY}')"),
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if pinned {
        return Ok(python);
    }
    // A venv left half made (no pip) by an interrupted run is made again.
    if !(python.is_file() && venv.join("bin/pip").is_file()) {
        crate::interop::ensure_python_venv()?;
        run(Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv))?;
    }
    run(Command::new("timeout")
        .arg(INSTALL_LIMIT_SECS.to_string())
        .arg(venv.join("bin/pip"))
        .args(["install", "--quiet", &format!("stomp-py=={STOMP_PY}")]))?;
    Ok(python)
}

/// `@stomp/stompjs` and `ws` at the pinned versions in `<work>/node`, with the bench
/// script copied next to them (Node resolves packages from the script's folder).
fn node_packages(work: &Path) -> Result<PathBuf, String> {
    let dir = work.join("node");
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let manifest = format!(
        "{{\"private\":true,\"type\":\"module\",\"dependencies\":{{\"@stomp/stompjs\":\"{STOMPJS}\",\"ws\":\"{WS}\"}}}}\n"
    );
    let installed = |package: &str, version: &str| {
        fs::read_to_string(dir.join("node_modules").join(package).join("package.json"))
            .is_ok_and(|t| t.contains(&format!("\"version\": \"{version}\"")))
    };
    if !(installed("@stomp/stompjs", STOMPJS) && installed("ws", WS)) {
        crate::interop::ensure_node()?;
        fs::write(dir.join("package.json"), manifest)
            .map_err(|e| format!("writing {}/package.json: {e}", dir.display()))?;
        run(Command::new("timeout")
            .arg(INSTALL_LIMIT_SECS.to_string())
            .args(["npm", "install", "--no-audit", "--no-fund"])
            .current_dir(&dir))?;
    }
    let script = root().join("benches/e2e/stompjs_bench.mjs");
    fs::copy(&script, dir.join("stompjs_bench.mjs"))
        .map_err(|e| format!("copying {}: {e}", script.display()))?;
    Ok(dir)
}

/// The Erlang VM of the node `name` (its environment names it).
fn beam_pid(name: &str) -> Option<u32> {
    let wanted = format!("RABBITMQ_NODENAME={name}");
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
        if !cmdline.starts_with(b"/") || !String::from_utf8_lossy(&cmdline).contains("beam.smp") {
            return None;
        }
        let environ = fs::read(entry.path().join("environ")).ok()?;
        environ
            .split(|&b| b == 0)
            .any(|v| v == wanted.as_bytes())
            .then_some(pid)
    })
}

/// User plus system CPU ticks (1/100 s) of a process.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Deletes the (drained) queues the runs declared; best effort, each call bounded.
fn delete_queues(queues: &[String]) {
    for queue in queues {
        let _ = Command::new("timeout")
            .args(["30", "rabbitmqctl", "delete_queue", queue])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
