//! Every limit is configurable and violations are typed errors naming the limit; nothing is
//! buffered beyond a limit.

mod support;

use bytes::BytesMut;
use stompkit_codec::{Decoder, Error, Limit, Limits, Version};
use support::decode_limited;

fn limit_error(limits: Limits, data: &[u8]) -> (Limit, u64, usize) {
    match decode_limited(Version::V1_2, limits, data).1 {
        Some(Error::LimitExceeded { limit, offset, max }) => (limit, offset, max),
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn defaults_protect_a_client() {
    let l = Limits::default();
    assert_eq!(
        (l.max_frame_bytes, l.max_headers, l.max_header_line_bytes),
        (8 << 20, 128, 16 << 10)
    );
}

#[test]
fn frame_size_limit_names_itself_and_the_frame_offset() {
    let limits = Limits::default().with_max_frame_bytes(20);
    let (limit, offset, max) = limit_error(limits, b"\nSEND\n\n0123456789012345678901234\0");
    assert_eq!((limit, offset, max), (Limit::FrameBytes, 1, 20));
    let e = decode_limited(
        Version::V1_2,
        limits,
        b"SEND\n\n0123456789012345678901234\0",
    )
    .1
    .unwrap();
    assert!(e.to_string().contains("max_frame_bytes"), "{e}");
}

#[test]
fn a_frame_exactly_at_the_limit_is_accepted() {
    let wire = b"SEND\n\n0123456789\0"; // 17 bytes
    let limits = Limits::default().with_max_frame_bytes(wire.len());
    assert!(decode_limited(Version::V1_2, limits, wire).1.is_none());
    let limits = Limits::default().with_max_frame_bytes(wire.len() - 1);
    assert_eq!(limit_error(limits, wire).0, Limit::FrameBytes);
}

#[test]
fn header_count_limit() {
    let limits = Limits::default().with_max_headers(2);
    assert!(
        decode_limited(Version::V1_2, limits, b"SEND\na:1\nb:2\n\n\0")
            .1
            .is_none()
    );
    let (limit, offset, max) = limit_error(limits, b"SEND\na:1\nb:2\nc:3\n\n\0");
    assert_eq!((limit, offset, max), (Limit::Headers, 13, 2));
}

#[test]
fn header_line_limit_counts_bytes_before_the_line_feed() {
    let limits = Limits::default().with_max_header_line_bytes(5);
    assert!(
        decode_limited(Version::V1_2, limits, b"SEND\nab:cd\n\n\0")
            .1
            .is_none()
    );
    let (limit, offset, _) = limit_error(limits, b"SEND\nab:cde\n\n\0");
    assert_eq!((limit, offset), (Limit::HeaderLineBytes, 5));
    // The command line counts too.
    assert_eq!(
        limit_error(limits, b"MESSAGE\n\n\0").0,
        Limit::HeaderLineBytes
    );
}

#[test]
fn a_huge_content_length_is_refused_before_any_body_arrives() {
    let mut decoder = Decoder::new(Version::V1_2);
    let mut buf = BytesMut::from(&b"MESSAGE\ncontent-length:1000000000000\n\n"[..]);
    let e = decoder.decode(&mut buf).unwrap_err();
    assert!(
        matches!(
            e,
            Error::LimitExceeded {
                limit: Limit::FrameBytes,
                offset: 0,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_line_that_never_ends_is_refused_once_it_passes_the_limit() {
    let limits = Limits::default().with_max_header_line_bytes(64);
    let mut decoder = Decoder::with_limits(Version::V1_2, limits);
    let mut buf = BytesMut::from(&b"SEND\nx:"[..]);
    let mut fed = buf.len();
    let error = loop {
        match decoder.decode(&mut buf) {
            Ok(None) => {
                buf.extend_from_slice(b"y");
                fed += 1;
                assert!(fed < 200, "never refused");
            }
            Ok(Some(item)) => panic!("unexpected {item:?}"),
            Err(e) => break e,
        }
    };
    assert!(matches!(
        error,
        Error::LimitExceeded {
            limit: Limit::HeaderLineBytes,
            offset: 5,
            ..
        }
    ));
    assert_eq!(fed, 5 + 64 + 1, "refused at the first byte past the limit");
}

#[test]
fn a_body_without_content_length_is_bounded_too() {
    let limits = Limits::default().with_max_frame_bytes(100);
    let mut decoder = Decoder::with_limits(Version::V1_2, limits);
    let mut buf = BytesMut::from(&b"SEND\n\n"[..]);
    for _ in 0..100 {
        match decoder.decode(&mut buf) {
            Ok(None) => buf.extend_from_slice(&[b'x'; 10]),
            Err(Error::LimitExceeded {
                limit: Limit::FrameBytes,
                ..
            }) => {
                assert!(buf.len() <= 110, "buffered {} bytes", buf.len());
                return;
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("never refused");
}
