//! Any bytes, as a stream from a peer: decoding never panics and keeps its contract, in every
//! STOMP version, with small and default limits; decoded frames encode again and round trip.
//! See `stompkit_codec::fuzzing::check_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stompkit_codec::fuzzing::check_stream(data);
});
