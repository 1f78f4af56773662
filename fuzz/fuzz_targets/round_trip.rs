//! A frame description: the encoder either writes the frame and the decoder gives it back
//! (plus the content-length the encoder adds), or it refuses for a reason the spec rules give
//! and writes nothing. See `stompkit_codec::fuzzing::{FrameInput, check_frame}`.
//!
//! The input is structured: libFuzzer's bytes become a `FrameInput` through its `Arbitrary`
//! impl, which reads a small fixed layout so that hand-written seeds stay readable. The corpus
//! replay on stable (`repo-tests/tests/fuzz_corpus.rs`) builds it the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stompkit_codec::fuzzing::FrameInput;

fuzz_target!(|input: FrameInput| {
    stompkit_codec::fuzzing::check_frame(&input);
});
