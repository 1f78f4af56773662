//! A split plan then a stream: decoding the stream whole, in the planned chunks and one byte
//! at a time gives the same items and the same error, in every version.
//! See `stompkit_codec::fuzzing::{split_plan, check_decode}`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stompkit_codec::fuzzing::check_split_input(data);
});
