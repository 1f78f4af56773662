//! The decode (a) comparison, interleaved: each round decodes corpus (a) once with each
//! decoder, one after the other (the order turning every round), so that every decoder sees
//! the same states of a noisy machine. Prints each decoder's distribution and, per round,
//! the anchor's time over stompkit's (a paired ratio, measured within milliseconds).
//!
//! ```text
//! cargo bench -p stompkit-benches --bench interleaved -- [ROUNDS] [--out FILE]
//! ```
//!
//! ROUNDS defaults to 2000 (about 3 s). With `--out`, the table is also written to FILE;
//! `cargo xtask bench` writes it next to criterion's results, where `perf-report` puts it
//! into `docs/performance.md`.
//!
//! The criterion run (`--bench codec`) times each decoder for seconds in turn; on a machine
//! whose speed changes from one second to the next, its ratios move with the machine. This
//! one is meant to say how the decoders compare under the same conditions. Run by
//! `cargo test` it does one round, as a smoke test, and prints nothing.

use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use stompkit_benches::corpus::Kind;

#[path = "../shared/drivers.rs"]
#[allow(dead_code)]
mod drivers;

/// A decoder of the comparison: its name and one run over a fresh copy of the stream.
struct Contender {
    name: &'static str,
    run: fn(&[u8]) -> (drivers::Counts, Duration),
}

/// Times `decode` on a fresh copy of `wire`; the copy and the decoder are made and freed
/// outside the timing, as in the criterion bench.
fn timed<D>(
    wire: &[u8],
    make: impl FnOnce() -> D,
    decode: impl FnOnce(&mut D, &mut BytesMut) -> drivers::Counts,
) -> (drivers::Counts, Duration) {
    let mut buf = BytesMut::from(wire);
    let mut decoder = make();
    let start = Instant::now();
    let counts = decode(&mut decoder, &mut buf);
    let elapsed = start.elapsed();
    black_box((decoder, buf));
    (counts, elapsed)
}

const CONTENDERS: [Contender; 3] = [
    Contender {
        name: "stompkit-codec decode",
        run: |wire| timed(wire, drivers::stompkit_decoder, drivers::decode_stompkit),
    },
    Contender {
        name: "stompkit-codec decode_slice",
        run: |wire| {
            timed(wire, drivers::stompkit_decoder, |decoder, buf| {
                drivers::decode_stompkit_slice(decoder, buf)
            })
        },
    },
    Contender {
        name: "iridium-stomp 0.6 parse_frame_slice",
        run: |wire| timed(wire, || (), |(), buf| drivers::decode_iridium_parser(buf)),
    },
];

/// The anchor: the last contender.
const ANCHOR: usize = CONTENDERS.len() - 1;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let rounds: usize = match args.iter().find_map(|a| a.parse().ok()) {
        Some(n) if benching => n,
        _ if benching => 2000,
        _ => 1,
    };
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1));
    // As in the criterion bench: a warmed-up allocator (see `warm_allocator` there).
    drop(black_box(Vec::<u8>::with_capacity(16 * 1024 * 1024)));
    let corpus = Kind::Small.build();
    let wire = &corpus.wire[..];

    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); CONTENDERS.len()];
    for round in 0..rounds {
        for k in 0..CONTENDERS.len() {
            let which = (round + k) % CONTENDERS.len();
            let (counts, elapsed) = (CONTENDERS[which].run)(wire);
            assert_eq!(counts.frames, corpus.frames(), "{}", CONTENDERS[which].name);
            times[which].push(elapsed.as_secs_f64() * 1e6);
        }
    }
    if benching {
        let table = report(rounds, &times);
        let _ = std::io::stdout().write_all(table.as_bytes());
        if let Some(path) = out {
            std::fs::write(path, &table).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        }
    }
}

/// The distributions and the paired ratios as a markdown table.
fn report(rounds: usize, times: &[Vec<f64>]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "decode (a), {rounds} interleaved rounds, µs per corpus (1000 frames)\n\n\
         | decoder | min | p10 | median | p90 | anchor / this, paired per round: p10 | median | p90 |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    ));
    for (k, contender) in CONTENDERS.iter().enumerate() {
        let own = sorted(times[k].clone());
        let paired = sorted(
            times[ANCHOR]
                .iter()
                .zip(&times[k])
                .map(|(anchor, this)| anchor / this)
                .collect(),
        );
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x | {:.2}x |\n",
            contender.name,
            own[0],
            at(&own, 0.1),
            at(&own, 0.5),
            at(&own, 0.9),
            at(&paired, 0.1),
            at(&paired, 0.5),
            at(&paired, 0.9),
        ));
    }
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
