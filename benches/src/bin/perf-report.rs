//! Turns the results of `cargo xtask bench` into the tables of `docs/performance.md`.
//!
//! ```text
//! cargo run -p stompkit-benches --bin perf-report [-- --criterion DIR] [--out FILE]
//! ```
//!
//! For every group and bench it reads `<criterion>/<group>/<bench>/new/estimates.json` (the
//! mean's point estimate and 95% confidence interval, in ns per iteration) and writes one table
//! per group (time, frames/s, GB/s, speed-up over the best anchor, time relative to the floor),
//! then the interleaved decode (a) table that `cargo xtask bench` leaves in
//! `<criterion>/interleaved.md`, between the `perf-report:begin` and `perf-report:end` markers
//! of the output file (created with them if missing). The defaults are
//! `$CARGO_TARGET_DIR/criterion` (or the workspace's `target/criterion`) and the workspace's
//! `docs/performance.md`.
//!
//! It reports only what the benches measured; it never times anything itself.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::{env, fs, io};

use stompkit_benches::corpus::{Corpus, Kind};
use stompkit_benches::ids::{self, Direction, Group, Role};

const BEGIN: &str = "<!-- perf-report:begin -->";
const END: &str = "<!-- perf-report:end -->";
/// Written by `cargo xtask bench` into the criterion directory as it starts: the revision
/// measured (`git describe --always --dirty`). Criterion's results carry none.
const CODE_STAMP: &str = "code.txt";
/// Written by `cargo xtask bench` into the criterion directory: the interleaved decode (a)
/// comparison (`benches/benches/interleaved.rs`), a Markdown table.
const INTERLEAVED: &str = "interleaved.md";

/// A mean time per iteration with its 95% confidence interval, in ns.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    mean: f64,
    lower: f64,
    upper: f64,
}

type Results = HashMap<(&'static str, &'static str), Estimate>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(io::stderr(), "perf-report: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace directory")?
        .to_path_buf();
    let mut criterion = env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from)
        .join("criterion");
    let mut out = workspace.join("docs").join("performance.md");
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--criterion" => criterion = PathBuf::from(value()?),
            "--out" => out = PathBuf::from(value()?),
            _ => {
                return Err(format!(
                    "unknown argument {arg:?} (try --criterion DIR, --out FILE)"
                ));
            }
        }
    }

    let mut results = Results::new();
    for group in &ids::GROUPS {
        for row in group.rows.iter().filter(|r| r.not_applicable.is_none()) {
            let path = criterion
                .join(group.name)
                .join(row.bench)
                .join("new")
                .join("estimates.json");
            if let Some(estimate) = read_estimate(&path)? {
                results.insert((group.name, row.bench), estimate);
            }
        }
    }
    if results.is_empty() {
        return Err(format!(
            "no results under {}: run the bench first",
            criterion.display()
        ));
    }
    let interleaved = read_optional(&criterion.join(INTERLEAVED))?;
    let code = read_optional(&criterion.join(CODE_STAMP))?
        .map(|code| code.trim().to_owned())
        .filter(|code| !code.is_empty());

    let corpora: HashMap<Kind, Corpus> = Kind::ALL.into_iter().map(|k| (k, k.build())).collect();
    let mut section = summary(results.len(), code.as_deref(), &workspace);
    for group in &ids::GROUPS {
        render_group(&mut section, group, &corpora[&group.corpus], &results);
    }
    if let Some(table) = &interleaved {
        section.push_str(&interleaved_section(table));
    }
    let document = match fs::read_to_string(&out) {
        Ok(text) => splice(&text, &section)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => template(&section),
        Err(e) => return Err(format!("reading {}: {e}", out.display())),
    };
    fs::write(&out, document).map_err(|e| format!("writing {}: {e}", out.display()))?;
    let _ = writeln!(io::stdout(), "wrote {}", out.display());
    Ok(())
}

/// The contents of a file a bench run leaves; `None` when that run was not made (the file is
/// missing). Any other failure to read it is an error.
fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Reads one `estimates.json`; `None` when the bench has not been run.
fn read_estimate(path: &Path) -> Result<Option<Estimate>, String> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    let number = |pointer: &str| {
        json.pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("{} has no {pointer}", path.display()))
    };
    Ok(Some(Estimate {
        mean: number("/mean/point_estimate")?,
        lower: number("/mean/confidence_interval/lower_bound")?,
        upper: number("/mean/confidence_interval/upper_bound")?,
    }))
}

/// The line that says what the tables were measured on, and how to read them.
fn summary(results: usize, code: Option<&str>, workspace: &Path) -> String {
    let code = code.map_or_else(
        || format!("{} (the workspace when reported)", git_describe(workspace)),
        |code| format!("`{code}`"),
    );
    format!(
        "_Generated by `perf-report` from {results} criterion results. Machine: {}. Code: \
         {code}. {}._\n\n\
         Time is criterion's mean per iteration (one iteration = the whole corpus item) with \
         the 95% confidence interval's half-width. GB/s counts the stream's bytes (decode) or \
         the encoded frames' bytes (encode); a decoder above memory bandwidth did not read the \
         body. **vs best anchor** = best anchor's time / this time (higher is faster). \
         **/ floor** = this time / the floor's time (memchr scan for decode, memcpy of the \
         output for encode).\n\n",
        machine(),
        rustc_version(),
    )
}

/// One group's table; rows without a result say "not run".
fn render_group(s: &mut String, group: &Group, corpus: &Corpus, results: &Results) {
    let (verb, bytes) = match group.direction {
        Direction::Decode => ("decode", corpus.bytes()),
        Direction::Encode => ("encode", corpus.encoded_bytes()),
    };
    let _ = writeln!(
        s,
        "### {verb} ({}): {}, {} (`{}`)\n",
        corpus.kind.letter(),
        corpus.kind.describe(),
        size(bytes),
        group.name,
    );
    let _ = writeln!(
        s,
        "| implementation | time | ± | frames/s | GB/s | vs best anchor | / floor | notes |"
    );
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let mean = |bench| results.get(&(group.name, bench)).map(|e| e.mean);
    let best = group
        .rows
        .iter()
        .filter(|r| r.role == Role::Anchor)
        .filter_map(|r| mean(r.bench))
        .min_by(f64::total_cmp);
    let floor = group
        .rows
        .iter()
        .filter(|r| r.role == Role::Floor)
        .find_map(|r| mean(r.bench));
    for row in group.rows {
        let label = match row.role {
            Role::Subject => format!("**{}**", row.label),
            _ => row.label.to_owned(),
        };
        let note = row.note.unwrap_or("");
        match (row.not_applicable, results.get(&(group.name, row.bench))) {
            (Some(why), _) => {
                let _ = writeln!(s, "| {label} | n/a | | | | | | {why} |");
            }
            (None, None) => {
                let _ = writeln!(s, "| {label} | not run | | | | | | {note} |");
            }
            (None, Some(e)) => {
                let half = (e.upper - e.lower) / 2.0 / e.mean * 100.0;
                let frames_per_s = corpus.frames() as f64 / e.mean * 1e9;
                let gbps = bytes as f64 / e.mean;
                let vs_best = best.map_or_else(|| "–".to_owned(), |b| ratio(b / e.mean));
                let vs_floor = floor.map_or_else(|| "–".to_owned(), |f| ratio(e.mean / f));
                let _ = writeln!(
                    s,
                    "| {label} | {} | {half:.1}% | {} | {gbps:.2} | {vs_best} | {vs_floor} | {note} |",
                    time(e.mean),
                    rate(frames_per_s),
                );
            }
        }
    }
    let _ = writeln!(s);
}

/// The interleaved comparison's table, under its own heading.
fn interleaved_section(table: &str) -> String {
    format!(
        "### decode (a), interleaved\n\n\
         `cargo bench -p stompkit-benches --bench interleaved`: each round decodes (a) once \
         with each decoder, the order turning; the paired ratio is the anchor's time over this \
         decoder's in the same round.\n\n{}\n",
        table.trim_end()
    )
}

/// Replaces the generated section of `text`.
fn splice(text: &str, section: &str) -> Result<String, String> {
    let begin = text.find(BEGIN).ok_or(format!("no {BEGIN} marker"))?;
    let end = text.find(END).ok_or(format!("no {END} marker"))?;
    if end < begin {
        return Err("markers out of order".to_owned());
    }
    Ok(format!(
        "{}{BEGIN}\n{section}{}",
        &text[..begin],
        &text[end..]
    ))
}

fn template(section: &str) -> String {
    format!("# Performance\n\n```sh\ncargo xtask bench\n```\n\n{BEGIN}\n{section}{END}\n")
}

fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

fn ratio(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.1}x")
    } else if x >= 0.01 {
        format!("{x:.2}x")
    } else {
        format!("{x:.4}x")
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// CPU model and core count, from `/proc/cpuinfo` where there is one.
fn machine() -> String {
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

fn git_describe(workspace: &Path) -> String {
    command_output(
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(["describe", "--always", "--dirty"]),
    )
    .map_or_else(|| "unknown revision".to_owned(), |r| format!("`{r}`"))
}

fn rustc_version() -> String {
    command_output(Command::new("rustc").arg("--version"))
        .unwrap_or_else(|| "unknown rustc".to_owned())
}

fn command_output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_between_markers() {
        let doc = format!("intro\n{BEGIN}\nold\n{END}\noutro\n");
        let new = splice(&doc, "new\n").unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\nnew\n{END}\noutro\n"));
        assert!(splice("no markers", "x").is_err());
        assert!(splice(&format!("{END}{BEGIN}"), "x").is_err());
    }

    #[test]
    fn a_table_compares_with_the_best_anchor_and_the_floor() {
        let group = ids::group("decode_a_small");
        let corpus = group.corpus.build();
        let at = |mean| Estimate {
            mean,
            lower: mean * 0.99,
            upper: mean * 1.01,
        };
        // Two anchors: the faster one (800 ns) is the best; the floor takes 10 ns.
        let results: Results = [
            ((group.name, ids::STOMPKIT), at(100.0)),
            ((group.name, ids::IRIDIUM_PARSER), at(800.0)),
            ((group.name, ids::IRIDIUM_CODEC), at(2000.0)),
            ((group.name, ids::MEMCHR_SCAN), at(10.0)),
        ]
        .into_iter()
        .collect();
        let mut s = String::new();
        render_group(&mut s, group, &corpus, &results);
        let line = |label: &str| {
            s.lines()
                .find(|l| l.starts_with(&format!("| {label} |")))
                .unwrap_or_else(|| panic!("no row {label} in\n{s}"))
                .to_owned()
        };
        let ours = line("**stompkit-codec**");
        assert!(
            ours.contains("| 100.0 ns | 1.0% |") && ours.contains("| 8.00x | 10.0x |"),
            "{ours}"
        );
        assert!(line("**stompkit-codec decode_slice**").contains("| not run |"));
    }
}
