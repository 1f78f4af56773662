//! Invariant checks shared by the cargo-fuzz targets and the corpus replay test.
//! Not a public API.

use bytes::BytesMut;

use crate::{Decoder, Encoder, Error, Frame, Item, Limits, Version};

/// Small limits so the fuzzer reaches them.
pub fn fuzz_limits() -> Limits {
    Limits::default()
        .with_max_frame_bytes(4096)
        .with_max_headers(16)
        .with_max_header_line_bytes(256)
}

/// Decodes `data` fed in chunks of the given sizes (cycled; a 0 means 1), then at EOF.
/// Returns the items, and the error's text if any.
pub fn decode_chunked(
    version: Version,
    limits: Limits,
    data: &[u8],
    chunks: &[usize],
) -> (Vec<Item>, Option<String>) {
    let mut decoder = Decoder::with_limits(version, limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = data;
    let mut sizes = chunks.iter().copied().cycle();
    loop {
        let take = if chunks.is_empty() {
            rest.len()
        } else {
            sizes.next().unwrap_or(1).max(1).min(rest.len())
        };
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            let step = if rest.is_empty() {
                decoder.decode_eof(&mut buf)
            } else {
                decoder.decode(&mut buf)
            };
            match step {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(describe(&e))),
            }
        }
        if rest.is_empty() {
            return (items, None);
        }
    }
}

fn describe(e: &Error) -> String {
    e.to_string()
}

/// Checks that decoding `data` whole and split at `chunks` agree, and that every decoded
/// frame survives encode -> decode. Panics on a violation.
pub fn check_decode(data: &[u8], chunks: &[usize]) {
    for version in Version::ALL {
        let whole = decode_chunked(version, fuzz_limits(), data, &[]);
        let split = decode_chunked(version, fuzz_limits(), data, chunks);
        assert_eq!(whole, split, "split decode differs ({version})");
        for item in whole.0 {
            if let Item::Frame(frame) = item {
                check_round_trip(version, &frame);
            }
        }
    }
}

/// Encodes `frame`; if the encoder accepts it, decoding must give it back.
pub fn check_round_trip(version: Version, frame: &Frame) {
    let mut wire = BytesMut::new();
    if Encoder::new(version).encode(frame, &mut wire).is_err() {
        assert!(wire.is_empty(), "a failed encode must not write");
        return;
    }
    let limits = Limits::default().with_max_frame_bytes(usize::MAX / 2);
    let mut decoder = Decoder::with_limits(version, limits);
    let item = decoder.decode(&mut wire).expect("encoded frame decodes");
    assert_eq!(
        item,
        Some(Item::Frame(frame.clone())),
        "round trip ({version})"
    );
    assert!(wire.is_empty(), "encoded frame fully consumed");
}
