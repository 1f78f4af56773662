//! Turns the criterion results of the `codec` bench into the tables of `docs/performance.md`.
//!
//! ```text
//! cargo bench -p stompkit-benches --bench codec -- --warm-up-time 1 --measurement-time 3
//! cargo run -p stompkit-benches --bin perf-report [-- --criterion DIR] [--out FILE]
//! ```
//!
//! For every group and bench it reads `<criterion>/<group>/<bench>/new/estimates.json` (the
//! mean's point estimate and 95% confidence interval, in ns per iteration) and writes, between
//! the `perf-report:begin` and `perf-report:end` markers of the output file (created with them
//! if missing): the bars of the issue with PASS/FAIL, then one table per group with time,
//! frames/s, GB/s, speed-up over the best anchor and time relative to the floor. The defaults
//! are `$CARGO_TARGET_DIR/criterion` (or the workspace's `target/criterion`) and the
//! workspace's `docs/performance.md`.
//!
//! When `cargo xtask bench` has also measured the decode (a) bar's benches in repeated
//! runs (criterion baselines `repeat-1`, `repeat-2`, ... next to `new`), that bar is judged
//! on the median of the repeats' ratios, and the full run's own ratio is shown beside it.
//!
//! It judges only what criterion measured; it never times anything itself.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::SystemTime;
use std::{env, fs, io};

use stompkit_benches::corpus::{Corpus, Kind};
use stompkit_benches::ids::{self, Direction, Group, Role, Row};

const BEGIN: &str = "<!-- perf-report:begin -->";
/// Written by `cargo xtask bench` into the criterion directory as it starts: the revision
/// being measured (`git describe --always --dirty`).
const CODE_STAMP: &str = "code.txt";
/// Written by `cargo xtask bench` into the criterion directory: the interleaved decode (a)
/// comparison (`benches/interleaved.rs`), a Markdown table.
const INTERLEAVED: &str = "interleaved.md";
const END: &str = "<!-- perf-report:end -->";
/// The criterion baselines `cargo xtask bench` saves when it measures the decode (a) bar's
/// benches again: this prefix and the repeat's number, from 1.
const REPEAT_BASELINE: &str = "repeat-";

/// A mean time per iteration with its 95% confidence interval, in ns.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    mean: f64,
    lower: f64,
    upper: f64,
    written: SystemTime,
}

/// One result of a group, with what it is compared to.
#[derive(Debug)]
struct Measured<'a> {
    row: &'a Row,
    estimate: Option<Estimate>,
}

/// A performance bar of the issue.
#[derive(Debug)]
struct Bar {
    what: &'static str,
    group: &'static str,
    /// The stompkit row judged.
    bench: &'static str,
    check: Check,
}

#[derive(Debug, Clone, Copy)]
enum Check {
    /// stompkit's frames/s at least this many times the best anchor's.
    SpeedupOverBestAnchor(f64),
    /// stompkit's time at most this fraction of the floor's.
    TimeOverFloorAtMost(f64),
}

const BARS: [Bar; 5] = [
    Bar {
        what: "decode (a): frames/s vs best anchor, `decode` (`Bytes` frames)",
        group: "decode_a_small",
        bench: ids::STOMPKIT,
        check: Check::SpeedupOverBestAnchor(10.0),
    },
    Bar {
        what: "decode (a): frames/s vs best anchor, `decode_slice` (in place)",
        group: "decode_a_small",
        bench: ids::STOMPKIT_SLICE,
        check: Check::SpeedupOverBestAnchor(10.0),
    },
    Bar {
        what: "decode (c): time vs memchr scan of the same 1 MiB buffer, `decode`",
        group: "decode_c_1m",
        bench: ids::STOMPKIT,
        check: Check::TimeOverFloorAtMost(0.1),
    },
    Bar {
        what: "decode (c): time vs memchr scan of the same 1 MiB buffer, `decode_slice`",
        group: "decode_c_1m",
        bench: ids::STOMPKIT_SLICE,
        check: Check::TimeOverFloorAtMost(0.1),
    },
    Bar {
        what: "encode (a): frames/s vs best anchor",
        group: "encode_a_small",
        bench: ids::STOMPKIT,
        check: Check::SpeedupOverBestAnchor(5.0),
    },
];

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

    let corpora: HashMap<Kind, Corpus> = Kind::ALL.into_iter().map(|k| (k, k.build())).collect();
    let mut results = HashMap::new();
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
    let repeats = read_repeats(&criterion)?;

    let interleaved = Interleaved::read(&criterion.join(INTERLEAVED))?;
    let mut section = render(
        &corpora,
        &results,
        &repeats,
        &workspace,
        &criterion,
        interleaved.as_ref(),
    );
    if let Some(interleaved) = &interleaved {
        section.push_str(&interleaved.section());
    }
    let document = match fs::read_to_string(&out) {
        Ok(text) => splice(&text, &section)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => template(&section),
        Err(e) => return Err(format!("reading {}: {e}", out.display())),
    };
    fs::write(&out, document).map_err(|e| format!("writing {}: {e}", out.display()))?;

    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "wrote {}", out.display());
    for bar in &BARS {
        let (measured, pass) = judge(bar, &results, &repeats);
        let verdict = match pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "not measured",
        };
        let _ = writeln!(stdout, "{verdict:>12}  {}: {measured}", bar.what);
    }
    Ok(())
}

/// Reads one `estimates.json`; `None` when the bench has not been run.
fn read_estimate(path: &Path) -> Result<Option<Estimate>, String> {
    let Some((text, written)) = read_written(path)? else {
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
        written,
    }))
}

/// A file a bench run writes, and when it was written; `None` when that run has not been
/// made (the file is missing). Any other failure to read it is an error.
fn read_written(path: &Path) -> Result<Option<(String, SystemTime)>, String> {
    let failed = |e: io::Error| format!("reading {}: {e}", path.display());
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let written = fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(failed)?;
    Ok(Some((text, written)))
}

type Results = HashMap<(&'static str, &'static str), Estimate>;

/// The repeated runs of a bench (baselines `repeat-1`, `repeat-2`, ...), in run order.
type Repeats = HashMap<(&'static str, &'static str), Vec<Estimate>>;

/// Every bench's repeated runs, as far as they go without a gap.
fn read_repeats(criterion: &Path) -> Result<Repeats, String> {
    let mut repeats = Repeats::new();
    for group in &ids::GROUPS {
        for row in group.rows {
            let dir = criterion.join(group.name).join(row.bench);
            let mut runs = Vec::new();
            while let Some(estimate) = read_estimate(
                &dir.join(format!("{REPEAT_BASELINE}{}", runs.len() + 1))
                    .join("estimates.json"),
            )? {
                runs.push(estimate);
            }
            if !runs.is_empty() {
                repeats.insert((group.name, row.bench), runs);
            }
        }
    }
    Ok(repeats)
}

/// The median of `values` (not empty).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn measured<'a>(group: &'a Group, results: &Results) -> Vec<Measured<'a>> {
    group
        .rows
        .iter()
        .map(|row| Measured {
            row,
            estimate: results.get(&(group.name, row.bench)).copied(),
        })
        .collect()
}

/// The fastest anchor's mean time in `group`, and its row.
fn best_anchor<'a>(rows: &[Measured<'a>]) -> Option<(f64, &'a Row)> {
    rows.iter()
        .filter(|m| m.row.role == Role::Anchor)
        .filter_map(|m| m.estimate.map(|e| (e.mean, m.row)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// The floor's mean time in `group` (the first floor row: memchr scan or memcpy).
fn floor(rows: &[Measured<'_>]) -> Option<f64> {
    rows.iter()
        .filter(|m| m.row.role == Role::Floor)
        .find_map(|m| m.estimate.map(|e| e.mean))
}

/// The mean time of the stompkit row `bench`.
fn subject(rows: &[Measured<'_>], bench: &str) -> Option<f64> {
    rows.iter()
        .filter(|m| m.row.role == Role::Subject && m.row.bench == bench)
        .find_map(|m| m.estimate.map(|e| e.mean))
}

/// What a bar measured, and whether it passes (`None`: not measured).
///
/// A speed-up bar whose stompkit row and best anchor were also measured in repeated runs
/// (`cargo xtask bench` does this for decode (a)) is judged on the median of the repeats'
/// ratios, each taken between two criterion runs seconds apart; the full run's own ratio is
/// shown next to it. Otherwise it is judged on the full run.
fn judge(bar: &Bar, results: &Results, repeats: &Repeats) -> (String, Option<bool>) {
    let rows = measured(ids::group(bar.group), results);
    let Some(ours) = subject(&rows, bar.bench) else {
        return (format!("{} not measured", bar.bench), None);
    };
    match bar.check {
        Check::SpeedupOverBestAnchor(target) => match best_anchor(&rows) {
            Some((anchor, row)) => {
                let speedup = anchor / ours;
                let label = row.label;
                let ratios: Vec<f64> = match (
                    repeats.get(&(bar.group, row.bench)),
                    repeats.get(&(bar.group, bar.bench)),
                ) {
                    (Some(theirs), Some(ours)) => theirs
                        .iter()
                        .zip(ours)
                        .map(|(a, o)| a.mean / o.mean)
                        .collect(),
                    _ => Vec::new(),
                };
                if ratios.is_empty() {
                    return (
                        format!("{speedup:.2}x {label} (target >= {target}x)"),
                        Some(speedup >= target),
                    );
                }
                let median = median(&ratios);
                let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
                (
                    format!(
                        "{median:.2}x {label}: the median of {} repeated criterion runs of \
                         the two ({}, in run order); the full run below alone: \
                         {speedup:.2}x (target >= {target}x)",
                        ratios.len(),
                        each.join(", ")
                    ),
                    Some(median >= target),
                )
            }
            None => ("no anchor measured".to_owned(), None),
        },
        Check::TimeOverFloorAtMost(target) => match floor(&rows) {
            Some(floor) => {
                let ratio = ours / floor;
                (
                    format!(
                        "{ratio:.4}x the scan ({} vs {}; target <= {target}x)",
                        time(ours),
                        time(floor)
                    ),
                    Some(ratio <= target),
                )
            }
            None => ("floor not measured".to_owned(), None),
        },
    }
}

fn render(
    corpora: &HashMap<Kind, Corpus>,
    results: &Results,
    repeats: &Repeats,
    workspace: &Path,
    criterion: &Path,
    interleaved: Option<&Interleaved>,
) -> String {
    let mut s = String::new();
    let repeated = repeats.values().map(Vec::len).sum::<usize>();
    let (oldest, newest) =
        results
            .values()
            .chain(repeats.values().flatten())
            .fold((None, None), |(lo, hi), e| {
                (
                    Some(lo.map_or(e.written, |t: SystemTime| t.min(e.written))),
                    Some(hi.map_or(e.written, |t: SystemTime| t.max(e.written))),
                )
            });
    let span = match (oldest, newest) {
        (Some(lo), Some(hi)) => hi.duration_since(lo).unwrap_or_default().as_secs(),
        _ => 0,
    };
    let _ = writeln!(
        s,
        "_Generated by `perf-report` from {} criterion results{} written {} (all within {} \
         s). Machine: {}. Code: {}. {}._\n",
        results.len(),
        if repeated == 0 {
            String::new()
        } else {
            format!(" and {repeated} repeated runs of the decode (a) bar's benches")
        },
        newest.map_or_else(|| "?".to_owned(), utc),
        span,
        machine(),
        code_measured(criterion, oldest, workspace),
        rustc_version(),
    );

    let _ = writeln!(s, "### Bars\n");
    let _ = writeln!(s, "| bar | measured | result |");
    let _ = writeln!(s, "| --- | --- | --- |");
    for bar in &BARS {
        let (measured, pass) = judge(bar, results, repeats);
        let verdict = match pass {
            Some(true) => "**PASS**",
            Some(false) => "**FAIL**",
            None => "not measured",
        };
        let _ = writeln!(s, "| {} | {measured} | {verdict} |", bar.what);
    }
    let flat = match (
        results.get(&("decode_b_64k", ids::STOMPKIT)),
        results.get(&("decode_c_1m", ids::STOMPKIT)),
    ) {
        (Some(b), Some(c)) => format!(
            "{:.2}x ({} for 64 KiB, {} for 1 MiB)",
            c.mean / b.mean,
            time(b.mean),
            time(c.mean)
        ),
        _ => "not measured".to_owned(),
    };
    let _ = writeln!(
        s,
        "| decode (c) time / decode (b) time, body 16x larger (flat is ~1x) | {flat} | info |"
    );
    if let Some(paired) = interleaved.and_then(Interleaved::paired_medians) {
        let _ = writeln!(
            s,
            "| decode (a): anchor / stompkit, median of the per-round ratios of the \
             interleaved comparison below (same state for both in each round) | {paired} | info |"
        );
    }
    s.push('\n');

    let _ = writeln!(s, "### Results\n");
    let _ = writeln!(
        s,
        "Time is criterion's mean per iteration (one iteration = the whole corpus item) with \
         the 95% confidence interval's half-width. GB/s counts the stream's bytes (decode) or \
         the encoded frames' bytes (encode); a decoder above memory bandwidth did not read \
         the body. **vs best anchor** = best anchor's time / this time (higher is faster). \
         **/ floor** = this time / the floor's time (memchr scan for decode, memcpy of the \
         output for encode).\n"
    );
    for group in &ids::GROUPS {
        let corpus = &corpora[&group.corpus];
        render_group(&mut s, group, corpus, results);
    }
    s
}

/// The interleaved decode (a) comparison that `cargo xtask bench` writes next to criterion's
/// results: its Markdown table, and when it was written.
struct Interleaved {
    table: String,
    written: SystemTime,
}

impl Interleaved {
    /// The comparison at `path`; `None` when it has not been run.
    fn read(path: &Path) -> Result<Option<Self>, String> {
        Ok(read_written(path)?.map(|(table, written)| Self { table, written }))
    }

    /// The median paired ratio of each stompkit decoder (the table's rows
    /// `| stompkit-codec <entry point> | ... |`, the paired median in the seventh column),
    /// e.g. "`decode` 7.23x, `decode_slice` 11.63x"; `None` when the table has no such row.
    fn paired_medians(&self) -> Option<String> {
        let medians: Vec<String> = self
            .table
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let entry = cells.get(1)?.strip_prefix("stompkit-codec ")?;
                Some(format!("`{entry}` {}", cells.get(7)?))
            })
            .collect();
        (!medians.is_empty()).then(|| medians.join(", "))
    }

    /// The comparison as a subsection of the report.
    fn section(&self) -> String {
        format!(
            "### Interleaved decode (a)\n\n\
             `cargo bench -p stompkit-benches --bench interleaved`, written {}: each round \
             decodes (a) once with each decoder, the order turning; the paired ratio is the \
             anchor's time over this decoder's in the same round.\n\n{}\n",
            utc(self.written),
            self.table
        )
    }
}

fn render_group(s: &mut String, group: &Group, corpus: &Corpus, results: &Results) {
    let (verb, bytes) = match group.direction {
        Direction::Decode => ("decode", corpus.bytes()),
        Direction::Encode => ("encode", corpus.encoded_bytes()),
    };
    let _ = writeln!(
        s,
        "#### {verb} ({}): {}, {} (`{}`)\n",
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
    let rows = measured(group, results);
    let best = best_anchor(&rows).map(|(t, _)| t);
    let floor = floor(&rows);
    for m in &rows {
        let label = match m.row.role {
            Role::Subject => format!("**{}**", m.row.label),
            _ => m.row.label.to_owned(),
        };
        let note = m.row.note.unwrap_or("");
        match (m.row.not_applicable, m.estimate) {
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
    format!(
        "# Performance\n\n```sh\ncargo bench -p stompkit-benches --bench codec -- --warm-up-time 1 \
         --measurement-time 3 && cargo run -p stompkit-benches --bin perf-report\n```\n\n\
         {BEGIN}\n{section}{END}\n"
    )
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

/// The code the results measured: the revision `cargo xtask bench` wrote into
/// `<criterion>/code.txt` as it started, when that was before the oldest result; otherwise
/// the workspace's revision now, said to be so (the results may be older).
fn code_measured(criterion: &Path, oldest: Option<SystemTime>, workspace: &Path) -> String {
    let stamp = criterion.join(CODE_STAMP);
    let stamped = fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .ok()
        .zip(oldest)
        .filter(|(stamped, oldest)| stamped <= oldest)
        .and_then(|_| fs::read_to_string(&stamp).ok())
        .map(|code| code.trim().to_owned())
        .filter(|code| !code.is_empty());
    match stamped {
        Some(code) => format!("`{code}` (when `cargo xtask bench` started)"),
        None => format!(
            "{} (the workspace when reported; no `cargo xtask bench` stamp older than the results)",
            git_describe(workspace)
        ),
    }
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

/// `time` as `YYYY-MM-DD HH:MM UTC`.
fn utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Gregorian date of the `days`-th day after 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Count from 0000-03-01 so that leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
    }

    #[test]
    fn splices_between_markers() {
        let doc = format!("intro\n{BEGIN}\nold\n{END}\noutro\n");
        let new = splice(&doc, "new\n").unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\nnew\n{END}\noutro\n"));
        assert!(splice("no markers", "x").is_err());
    }

    fn estimate(mean: f64) -> Estimate {
        Estimate {
            mean,
            lower: mean,
            upper: mean,
            written: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[9.0, 1.0, 5.0]), 5.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 8.0]), 3.0);
    }

    #[test]
    fn the_decode_a_bar_is_judged_on_the_median_of_the_repeats() {
        const GROUP: &str = "decode_a_small";
        let bar = &BARS[1];
        assert_eq!((bar.group, bar.bench), (GROUP, ids::STOMPKIT_SLICE));
        // The full run alone: 8x, a fail.
        let results: Results = [
            ((GROUP, ids::STOMPKIT_SLICE), estimate(100.0)),
            ((GROUP, ids::IRIDIUM_PARSER), estimate(800.0)),
            ((GROUP, ids::IRIDIUM_CODEC), estimate(2000.0)),
        ]
        .into_iter()
        .collect();
        let (measured, pass) = judge(bar, &results, &Repeats::new());
        assert_eq!(pass, Some(false), "{measured}");
        assert!(measured.starts_with("8.00x"), "{measured}");
        // Repeats at 12x, 6x and 11x: the median, 11x, passes.
        let repeats: Repeats = [
            (
                (GROUP, ids::STOMPKIT_SLICE),
                vec![estimate(100.0), estimate(200.0), estimate(100.0)],
            ),
            (
                (GROUP, ids::IRIDIUM_PARSER),
                vec![estimate(1200.0), estimate(1200.0), estimate(1100.0)],
            ),
        ]
        .into_iter()
        .collect();
        let (measured, pass) = judge(bar, &results, &repeats);
        assert_eq!(pass, Some(true), "{measured}");
        assert!(
            measured.starts_with("11.00x") && measured.contains("(12.00x, 6.00x, 11.00x,"),
            "{measured}"
        );
        // Repeats of the stompkit row alone are not enough: the full run decides.
        let ours_only: Repeats = repeats
            .into_iter()
            .filter(|(key, _)| key.1 == ids::STOMPKIT_SLICE)
            .collect();
        assert_eq!(judge(bar, &results, &ours_only).1, Some(false));
    }
}
