//! The fuzzing driver on fixed inputs, so its invariant checks run on every
//! `cargo test --features __fuzzing` without nightly.

use stompkit_testkit::fuzzing::drive;

#[test]
fn drive_survives_fixed_inputs() {
    drive(&[]);
    // Open, CONNECT, subscribe client and client-individual, send, ack, nack, time, close.
    drive(&[
        0, 0, 2, 0, 2, 3, 2, 4, 2, 6, 2, 6, 2, 12, 2, 13, 10, 30, 10, 255, 12,
    ]);
    // Two connections, a transaction, a kill, a DISCONNECT.
    drive(&[
        1, 0, 1, 2, 0, 0x12, 1, 0x12, 5, 2, 9, 2, 8, 2, 10, 14, 0, 2, 0, 2, 16,
    ]);
    // Raw garbage after CONNECT.
    drive(&[
        0, 0, 2, 0, 8, 6, b'S', b'E', b'N', b'D', 0, b'\n', 8, 3, b'\r', b'\r', 0,
    ]);
    // Deterministic pseudo-random inputs.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        let len = (x % 300) as usize;
        let input: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        drive(&input);
    }
}
