//! The encoder escapes per version, refuses what it cannot represent, and round-trips.

mod support;

use bytes::BytesMut;
use stompkit_codec::{Command, Encoder, Error, Forbidden, Frame, Version};
use support::{frame, headers};

fn encode(version: Version, frame: &Frame) -> Result<Vec<u8>, Error> {
    let mut out = BytesMut::new();
    Encoder::new(version).encode(frame, &mut out)?;
    Ok(out.to_vec())
}

fn send(headers: &[(&[u8], &[u8])]) -> Frame {
    let mut b = Frame::builder(Command::Send);
    for (n, v) in headers {
        b = b.header(n, v);
    }
    b.build()
}

#[test]
fn values_are_escaped_per_version() {
    let f = send(&[(b"k", b"a:b\\c\nd\re")]);
    assert_eq!(
        encode(Version::V1_2, &f).unwrap(),
        b"SEND\nk:a\\cb\\\\c\\nd\\re\n\n\0"
    );
    // 1.1 has no \r escape; a CR is ordinary data there.
    assert_eq!(
        encode(Version::V1_1, &f).unwrap(),
        b"SEND\nk:a\\cb\\\\c\\nd\re\n\n\0"
    );
}

#[test]
fn names_are_escaped_too() {
    let f = send(&[(b"a:b", b"1")]);
    assert_eq!(encode(Version::V1_2, &f).unwrap(), b"SEND\na\\cb:1\n\n\0");
}

#[test]
fn connect_headers_are_written_raw_and_a_colon_in_a_value_is_kept() {
    let f = Frame::builder(Command::Connect)
        .header("passcode", "p:a\\ss")
        .build();
    assert_eq!(
        encode(Version::V1_2, &f).unwrap(),
        b"CONNECT\npasscode:p:a\\ss\n\n\0"
    );
    assert_eq!(frame(Version::V1_2, &encode(Version::V1_2, &f).unwrap()), f);
}

#[test]
fn unescaped_frames_refuse_what_would_inject_a_header() {
    let cases: [(&[u8], &[u8], Forbidden); 4] = [
        (b"login", b"guest\nevil:1", Forbidden::LineFeed),
        (b"log:in", b"x", Forbidden::Colon),
        (b"login", b"x\r", Forbidden::CarriageReturn),
        (b"", b"x", Forbidden::EmptyName),
    ];
    for (name, value, forbidden) in cases {
        let f = Frame::builder(Command::Connect).header(name, value).build();
        let mut out = BytesMut::from(&b"before"[..]);
        let e = Encoder::new(Version::V1_2)
            .encode(&f, &mut out)
            .unwrap_err();
        assert!(
            matches!(e, Error::Unrepresentable { forbidden: got, command: Command::Connect, .. } if got == forbidden),
            "{e:?}"
        );
        assert_eq!(&out[..], b"before", "nothing is written on error");
    }
}

#[test]
fn stomp_1_0_never_escapes_and_refuses_line_feeds() {
    let f = send(&[(b"path", br"C:\jobs")]);
    assert_eq!(
        encode(Version::V1_0, &f).unwrap(),
        b"SEND\npath:C:\\jobs\n\n\0"
    );
    let bad = send(&[(b"x", b"a\nb")]);
    assert!(matches!(
        encode(Version::V1_0, &bad),
        Err(Error::Unrepresentable {
            forbidden: Forbidden::LineFeed,
            ..
        })
    ));
}

#[test]
fn a_body_with_nul_gets_a_content_length() {
    let f = Frame::builder(Command::Send)
        .header("destination", "/q")
        .body(&b"a\0b"[..])
        .build();
    let wire = encode(Version::V1_2, &f).unwrap();
    assert_eq!(wire, b"SEND\ndestination:/q\ncontent-length:3\n\na\0b\0");
    let back = frame(Version::V1_2, &wire);
    assert_eq!(back.body(), b"a\0b");
}

#[test]
fn content_length_can_be_always_written() {
    let f = Frame::builder(Command::Send).body("hi").build();
    let mut out = BytesMut::new();
    Encoder::new(Version::V1_2)
        .with_content_length(true)
        .encode(&f, &mut out)
        .unwrap();
    assert_eq!(&out[..], b"SEND\ncontent-length:2\n\nhi\0");
}

#[test]
fn a_caller_content_length_must_match_the_body() {
    let ok = Frame::builder(Command::Send)
        .header("content-length", "2")
        .body("hi")
        .build();
    assert_eq!(
        encode(Version::V1_2, &ok).unwrap(),
        b"SEND\ncontent-length:2\n\nhi\0"
    );
    let bad = Frame::builder(Command::Send)
        .header("content-length", "3")
        .body("hi")
        .build();
    assert!(matches!(
        encode(Version::V1_2, &bad),
        Err(Error::ContentLengthMismatch { actual: 2, .. })
    ));
}

#[test]
fn a_body_on_a_bodiless_frame_is_refused() {
    let f = Frame::builder(Command::Ack)
        .header("id", "1")
        .body("x")
        .build();
    assert!(matches!(
        encode(Version::V1_2, &f),
        Err(Error::BodyNotAllowed {
            command: Command::Ack
        })
    ));
}

#[test]
fn head_only_encoding_leaves_the_body_to_the_caller() {
    let f = Frame::builder(Command::Send)
        .header("destination", "/q")
        .body("payload")
        .build();
    let mut out = BytesMut::new();
    Encoder::new(Version::V1_2)
        .encode_head(&f, &mut out)
        .unwrap();
    assert_eq!(&out[..], b"SEND\ndestination:/q\n\n");
}

#[test]
fn decode_then_encode_reproduces_a_canonical_frame() {
    let wire = b"MESSAGE\ndestination:/q\nx:a\\cb\nrepeat:1\nrepeat:2\ncontent-length:4\n\nab\0c\0";
    let f = frame(Version::V1_2, wire);
    assert_eq!(encode(Version::V1_2, &f).unwrap(), wire);
}

#[test]
fn copied_plain_lines_encode_like_header_by_header() {
    // The LF head is taken by the decoder's fast path, whose plain lines the encoder copies;
    // the CRLF head goes through the careful path and is re-encoded header by header.
    let lf = b"MESSAGE\ndestination:/q\nmessage-id:T_1@@s@@1\ncontent-length:2\n\nhi\0";
    let crlf = b"MESSAGE\r\ndestination:/q\r\nmessage-id:T_1@@s@@1\r\ncontent-length:2\r\n\r\nhi\0";
    let (a, b) = (frame(Version::V1_2, lf), frame(Version::V1_2, crlf));
    assert_eq!(a, b);
    for version in Version::ALL {
        assert_eq!(
            encode(version, &a).unwrap(),
            encode(version, &b).unwrap(),
            "{version}"
        );
    }
    // A raw colon in a value must still be escaped when the frame is re-encoded.
    let colon = frame(Version::V1_2, b"MESSAGE\nx:a:b\n\n\0");
    assert_eq!(
        encode(Version::V1_2, &colon).unwrap(),
        b"MESSAGE\nx:a\\cb\n\n\0"
    );
    let built = Frame::builder(Command::Message).header("x", "a:b").build();
    assert_eq!(
        encode(Version::V1_2, &built).unwrap(),
        b"MESSAGE\nx:a\\cb\n\n\0"
    );
}

#[test]
fn builder_round_trips_in_every_version() {
    for version in Version::ALL {
        let f = Frame::builder(Command::Message)
            .header("destination", "/queue/job-offers-42")
            .header("dup", "1")
            .header("dup", "2")
            .body(&b"{\"jobId\":123}"[..])
            .build();
        let back = frame(version, &encode(version, &f).unwrap());
        assert_eq!(back, f, "{version}");
        assert_eq!(headers(&back)[1..], headers(&f)[1..]);
    }
}

#[test]
fn debug_output_redacts_credentials() {
    let f = Frame::builder(Command::Connect)
        .header("login", "guest")
        .header("passcode", "hunter2")
        .header("Authorization", "Bearer eyJhbGciOi.secret")
        .header("X-Auth-Token", "t0k3n")
        .build();
    let debug = format!("{f:?}");
    assert!(debug.contains("guest"));
    for secret in ["hunter2", "eyJhbGciOi", "t0k3n"] {
        assert!(!debug.contains(secret), "{secret} leaked: {debug}");
    }
}

#[test]
fn encoding_parts_matches_encoding_a_frame() {
    let headers: [(&[u8], &[u8]); 3] = [(b"destination", b"/q"), (b"x", b"a:b\n"), (b"x", b"2")];
    for version in [Version::V1_1, Version::V1_2] {
        let mut built = Frame::builder(Command::Send);
        for (n, v) in headers {
            built = built.header(n, v);
        }
        let built = built.body(&b"a\0b"[..]).build();
        let mut parts = BytesMut::new();
        Encoder::new(version)
            .encode_parts(Command::Send, headers, b"a\0b", &mut parts)
            .unwrap();
        assert_eq!(
            parts.to_vec(),
            encode(version, &built).unwrap(),
            "{version}"
        );
    }
    // The same refusals, and nothing written.
    let mut out = BytesMut::new();
    let bad: [(&[u8], &[u8]); 1] = [(b"login", b"a\nb")];
    assert!(
        Encoder::new(Version::V1_2)
            .encode_parts(Command::Connect, bad, b"", &mut out)
            .is_err()
    );
    assert!(
        Encoder::new(Version::V1_2)
            .encode_parts(Command::Ack, [], b"x", &mut out)
            .is_err()
    );
    assert!(out.is_empty());
}
