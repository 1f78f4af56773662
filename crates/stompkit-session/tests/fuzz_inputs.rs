//! The fuzzing driver on fixed inputs, so the invariant checks run on every
//! `cargo test --features __fuzzing` (the committed fuzz corpus is replayed by the repository's
//! `repo-tests` crate, since a published crate carries no corpus).

use stompkit_session::fuzzing::drive;

#[test]
fn drive_survives_fixed_inputs() {
    // connect, open, CONNECTED 1.2, subscribe, MESSAGE, ack, send with receipt, RECEIPT,
    // time passes, drop, reconnect, disconnect.
    let script: &[u8] = &[
        0, 1, 4, 0, 255, 8, 2, 4, 3, 7, 11, 0, 9, 0x21, 4, 5, 3, 6, 20, 2, 6, 10, 1, 4, 0, 255, 12,
        0, 9, 0xa1, 12, 1, 13, 6, 50, 6, 50,
    ];
    drive(script);
    drive(&[]);
    drive(&[
        0, 1, 3, 40, b'C', b'O', b'N', b'N', 0, 0, 0, 6, 255, 6, 255, 6, 255,
    ]);
    drive(&[
        0, 1, 4, 8, 255, 6, 1, 0, 1, 4, 2, 3, 9, 0x60, 9, 0x40, 6, 30, 6, 30, 13,
    ]);
    // Deterministic pseudo-random inputs.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..300 {
        let len = (x % 400) as usize;
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
