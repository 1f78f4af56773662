//! The session's input path next to the codec alone, interleaved: each round decodes the
//! same batch of MESSAGE frames once with `Decoder::decode` and once through
//! `Session::handle_input` + `poll_event` (the order turning every round), so both see the
//! same states of a noisy machine. Prints each path's distribution and, per round, the
//! session's time over the codec's: the "within 2x of codec-only cost" comparison, paired.
//!
//! ```text
//! cargo bench -p stompkit-session --bench paired -- [ROUNDS]
//! ```
//!
//! ROUNDS defaults to 5000 (about a second). The criterion bench (`--bench session`) times
//! each path for seconds in turn, and its ratio moves with the machine. Run by `cargo test`
//! it does one round, as a smoke test, and prints nothing.

#[path = "shared/mod.rs"]
mod shared;

use std::io::Write as _;
use std::time::Instant;

use shared::{BATCH, codec_input, connected, messages, session_input};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let rounds: usize = match args.iter().find_map(|a| a.parse().ok()) {
        Some(n) if benching => n,
        _ if benching => 5000,
        _ => 1,
    };
    let wire = messages();
    let (mut session, now) = connected();
    // µs per batch: [codec, session].
    let mut times = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for round in 0..rounds {
        for k in 0..2 {
            let path = (round + k) % 2;
            let start = Instant::now();
            let frames = if path == 0 {
                codec_input(&wire)
            } else {
                session_input(&mut session, now, &wire)
            };
            times[path].push(start.elapsed().as_secs_f64() * 1e6);
            assert_eq!(frames, BATCH, "path {path}");
        }
    }
    if benching {
        let _ = std::io::stdout().write_all(report(rounds, &times).as_bytes());
    }
}

/// The distributions and the paired ratios as a markdown table.
fn report(rounds: usize, times: &[Vec<f64>; 2]) -> String {
    let ratios = sorted(times[1].iter().zip(&times[0]).map(|(s, c)| s / c).collect());
    let mut out = format!(
        "session input, {rounds} interleaved rounds, µs per {BATCH} MESSAGE frames\n\n\
         | path | min | p10 | median | p90 |\n| --- | ---: | ---: | ---: | ---: |\n"
    );
    for (name, own) in ["codec `decode`", "session `handle_input` + `poll_event`"]
        .iter()
        .zip(times)
    {
        let own = sorted(own.clone());
        out.push_str(&format!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            own[0],
            at(&own, 0.1),
            at(&own, 0.5),
            at(&own, 0.9),
        ));
    }
    out.push_str(&format!(
        "\nsession / codec, paired per round: p10 {:.2}x, median {:.2}x, p90 {:.2}x\n",
        at(&ratios, 0.1),
        at(&ratios, 0.5),
        at(&ratios, 0.9),
    ));
    out
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// The `q` quantile of sorted `values` (nearest rank).
fn at(values: &[f64], q: f64) -> f64 {
    let rank = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[rank]
}
