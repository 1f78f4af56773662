//! Decodes corpus (a) with stompkit-codec, exactly as the `codec` bench does, a given number
//! of times: a target for instruction-level profiling, which is repeatable where wall-clock
//! time on a shared machine is not. `--in-place` uses `Decoder::decode_slice` (the
//! `stompkit_slice` bench) instead of `Decoder::decode`; `--escaped` decodes corpus (d), the
//! frames with escaped headers, instead of (a).
//!
//! ```text
//! cargo build --release -p stompkit-benches --bin decode-profile
//! valgrind --tool=callgrind --toggle-collect='*decode_corpus*' \
//!     target/release/decode-profile 20 [--in-place] [--escaped]
//! ```
//!
//! Instructions per frame = the `Ir` total / (runs x 1000 frames). It times nothing.

use std::hint::black_box;
use std::io::Write as _;
use std::process::ExitCode;

use bytes::BytesMut;
use stompkit_benches::corpus::Kind;
use stompkit_benches::stompkit::{
    Counts, decode_stompkit, decode_stompkit_slice, stompkit_decoder,
};
use stompkit_codec::Decoder;

/// One run over a fresh copy of the stream: the bench's own driver. Not inlined, so that a
/// profiler can select it.
#[inline(never)]
fn decode_corpus(decoder: &mut Decoder, buf: &mut BytesMut, in_place: bool) -> Counts {
    if in_place {
        decode_stompkit_slice(decoder, buf)
    } else {
        decode_stompkit(decoder, buf)
    }
}

fn main() -> ExitCode {
    let mut runs = 20;
    let mut in_place = false;
    let mut kind = Kind::Small;
    for arg in std::env::args().skip(1) {
        match (arg.as_str(), arg.parse()) {
            ("--in-place", _) => in_place = true,
            ("--escaped", _) => kind = Kind::Escaped,
            (_, Ok(n)) => runs = n,
            _ => {
                eprintln!("usage: decode-profile [RUNS] [--in-place] [--escaped]");
                return ExitCode::from(2);
            }
        }
    }
    let corpus = kind.build();
    let mut headers = 0;
    for _ in 0..runs {
        let mut buf = BytesMut::from(&corpus.wire[..]);
        let counts = decode_corpus(&mut stompkit_decoder(), &mut buf, in_place);
        assert_eq!(counts.frames, corpus.frames());
        headers += black_box(counts.headers);
    }
    let _ = writeln!(
        std::io::stdout(),
        "decoded corpus {kind:?} {runs} times ({} frames each, {headers} headers seen)",
        corpus.frames()
    );
    ExitCode::SUCCESS
}
