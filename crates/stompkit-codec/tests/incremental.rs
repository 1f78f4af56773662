//! Decoding is incremental: any split gives the same items, and no byte is scanned twice.

mod support;

use bytes::BytesMut;
use stompkit_codec::{Decoder, Item, Limits, Version};

const STREAM: &[u8] = b"\nCONNECTED\nversion:1.2\nsession:ID:x:1\n\n\0\nMESSAGE\r\ndestination:/q\r\nx:a\\cb\r\ncontent-length:3\r\n\r\na\0c\0\n\r\nSEND\ndestination:/q\n\nplain body\0";

fn decode_in_steps(data: &[u8], step: usize) -> Vec<Item> {
    let mut decoder = Decoder::new(Version::V1_2);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        while let Some(item) = decoder.decode(&mut buf).unwrap() {
            items.push(item);
        }
    }
    assert!(decoder.decode_eof(&mut buf).unwrap().is_none());
    items
}

#[test]
fn every_chunk_size_gives_the_same_items() {
    let whole = decode_in_steps(STREAM, STREAM.len());
    assert_eq!(
        whole.iter().filter(|i| matches!(i, Item::Frame(_))).count(),
        3
    );
    for step in 1..STREAM.len() {
        assert_eq!(decode_in_steps(STREAM, step), whole, "step {step}");
    }
}

#[test]
fn a_slowly_arriving_large_frame_is_not_rescanned() {
    // A 1 MiB body without content-length, fed 64 KiB at a time: the decoder must look at
    // each byte once, so the total work is linear. We check the observable part of that
    // contract: every call returns promptly and the frame arrives intact.
    let body = vec![b'x'; 1 << 20];
    let mut wire = b"SEND\ndestination:/q\n\n".to_vec();
    wire.extend_from_slice(&body);
    wire.push(0);
    let limits = Limits::default().with_max_frame_bytes(2 << 20);
    let mut decoder = Decoder::with_limits(Version::V1_2, limits);
    let mut buf = BytesMut::new();
    let mut result = None;
    for chunk in wire.chunks(64 << 10) {
        buf.extend_from_slice(chunk);
        if let Some(item) = decoder.decode(&mut buf).unwrap() {
            result = Some(item);
        }
    }
    let frame = result.and_then(Item::into_frame).expect("frame");
    assert_eq!(frame.body().len(), body.len());
}

#[test]
fn mid_frame_state_is_visible() {
    let mut decoder = Decoder::new(Version::V1_2);
    let mut buf = BytesMut::from(&b"SEND\ndest"[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert!(decoder.is_mid_frame());
    buf.extend_from_slice(b"ination:/q\n\n\0");
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert!(!decoder.is_mid_frame());
    assert_eq!(decoder.consumed(), 22);
}

#[test]
fn truncated_input_is_an_error_at_eof() {
    for cut in 1..STREAM.len() {
        let mut decoder = Decoder::new(Version::V1_2);
        let mut buf = BytesMut::from(&STREAM[..cut]);
        let last = loop {
            match decoder.decode_eof(&mut buf) {
                Ok(Some(_)) => continue,
                other => break other,
            }
        };
        match last {
            Ok(None) => assert!(buf.is_empty()),
            Err(stompkit_codec::Error::Truncated { buffered, .. }) => assert!(buffered > 0),
            Err(e) => panic!("cut {cut}: {e:?}"),
            Ok(Some(_)) => unreachable!(),
        }
    }
}
