//! Decodes corpus (a) with stompkit-codec, exactly as the `codec` bench does, a given number
//! of times: a target for instruction-level profiling, which is repeatable where wall-clock
//! time on a shared machine is not.
//!
//! ```text
//! cargo build --release -p stompkit-benches --bin decode-profile
//! valgrind --tool=callgrind --toggle-collect='*decode_corpus*' \
//!     target/release/decode-profile 20
//! ```
//!
//! Instructions per frame = the `Ir` total / (runs x 1000 frames). It times nothing.

use std::hint::black_box;
use std::io::Write as _;
use std::process::ExitCode;

use bytes::BytesMut;
use stompkit_benches::corpus::Kind;
use stompkit_codec::{Decoder, Item, Limits, Version};

/// One run over a fresh copy of the stream, as the bench's iteration does; returns the
/// frames and header count seen. Not inlined, so that a profiler can select it.
#[inline(never)]
fn decode_corpus(decoder: &mut Decoder, buf: &mut BytesMut) -> (usize, usize) {
    let (mut frames, mut headers) = (0, 0);
    while let Some(item) = decoder.decode(buf).expect("the corpus decodes") {
        if let Item::Frame(frame) = item {
            frames += 1;
            headers += frame.headers().len() + usize::from(!frame.body().is_empty());
        }
    }
    (frames, headers)
}

fn main() -> ExitCode {
    let runs: usize = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 20,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: decode-profile [RUNS]");
            return ExitCode::from(2);
        }
    };
    let corpus = Kind::Small.build();
    let limits = Limits::default().with_max_frame_bytes(4 * 1024 * 1024);
    let mut total = 0;
    for _ in 0..runs {
        let mut buf = BytesMut::from(&corpus.wire[..]);
        let mut decoder = Decoder::with_limits(Version::V1_2, limits);
        let (frames, headers) = decode_corpus(&mut decoder, &mut buf);
        assert_eq!(frames, corpus.frames());
        total += black_box(headers);
    }
    let _ = writeln!(
        std::io::stdout(),
        "decoded corpus (a) {runs} times ({} frames each, {total} headers and bodies seen)",
        corpus.frames()
    );
    ExitCode::SUCCESS
}
