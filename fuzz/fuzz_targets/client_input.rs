//! Bytes from a broker into the real tokio client: a scripted broker on loopback (TCP or
//! WebSocket) answers with a real broker's `CONNECTED`, then writes the input cut and framed
//! as it says; the client's invariants are checked. The logic is in
//! `fuzz/drive/client_input.rs`, shared with the stable corpus replay.
#![no_main]

#[path = "../drive/client_input.rs"]
mod client_input;

libfuzzer_sys::fuzz_target!(|data: &[u8]| client_input::drive(data));
