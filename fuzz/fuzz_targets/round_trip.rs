//! A frame description: the encoder either writes the frame and the decoder gives it back
//! (plus the content-length the encoder adds), or it refuses for a reason the spec rules give
//! and writes nothing. See `stompkit_codec::fuzzing::{FrameInput, check_frame_input}`.
//!
//! The frame is read from the bytes by `FrameInput::parse`, a small hand-written format, not
//! `arbitrary`: the corpus then replays on stable without the fuzz crate's dependencies
//! (`crates/stompkit-codec/tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stompkit_codec::fuzzing::check_frame_input(data);
});
