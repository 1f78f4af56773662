//! `Decoder::decode_slice`: frames decoded in place, borrowing the caller's buffer. That it
//! gives the same items and errors as `decode` for any input split anywhere is checked in
//! properties.rs and fast_path.rs; these tests cover what only the in-place API has.

use bytes::BytesMut;
use stompkit_codec::{Command, Decoder, Encoder, Error, Frame, Item, ItemRef, Version};

/// A CONNECTED frame with a credential-like header, then a MESSAGE with ten headers (more
/// than an inline index holds) one of them escaped, a body holding a NUL, then a heart-beat.
const STREAM: &[u8] = b"CONNECTED\nversion:1.2\nsession-token:s3cr3t\n\n\0\
MESSAGE\nsubscription:0\ndestination:/queue/a\nmessage-id:7\nx:a\\cb\\\\c\nh1:1\nh2:2\nh3:3\nh4:4\nh5:5\ncontent-length:5\n\nhe\0lo\0\n";

#[test]
fn frames_borrow_the_buffer_and_read_like_frames() {
    let mut decoder = Decoder::new(Version::V1_2);
    let (item, len) = decoder.decode_slice(STREAM).unwrap().unwrap();
    let connected = item.into_frame().expect("a frame");
    assert_eq!(connected.command(), Command::Connected);
    assert_eq!(connected.as_bytes(), &STREAM[..len]);
    assert_eq!(connected.header_str("version"), Some("1.2"));
    let shown = format!("{connected:?}");
    assert!(
        shown.contains("<redacted>") && !shown.contains("s3cr3t"),
        "{shown}"
    );
    assert_eq!(decoder.consumed(), len as u64);

    let rest = &STREAM[len..];
    let (item, len) = decoder.decode_slice(rest).unwrap().unwrap();
    let ItemRef::Frame(message) = item else {
        panic!("expected a frame, got {item:?}");
    };
    assert_eq!(message.headers().len(), 10);
    assert_eq!(message.header("x"), Some(&b"a:b\\c"[..]), "unescaped");
    assert_eq!(message.header("destination"), Some(&b"/queue/a"[..]));
    assert_eq!(message.header("missing"), None);
    let names: Vec<&[u8]> = message.headers().map(|(name, _)| name).collect();
    assert_eq!(
        names[..3],
        [&b"subscription"[..], b"destination", b"message-id"]
    );
    // The body is a slice of the caller's buffer, not a copy.
    let body = message.body();
    assert_eq!(body, b"he\0lo");
    assert!(rest.as_ptr_range().contains(&body.as_ptr()));

    // The same frame as `decode` gives, and an owned copy equal to it.
    let mut buf = BytesMut::from(rest);
    let Some(Item::Frame(decoded)) = Decoder::new(Version::V1_2).decode(&mut buf).unwrap() else {
        panic!("decode gives a frame");
    };
    assert_eq!(message, decoded);
    assert_eq!(message.to_frame(), decoded);
    assert_eq!(len, rest.len() - buf.len());

    let (item, len) = decoder.decode_slice(&rest[len..]).unwrap().unwrap();
    assert_eq!((item, len), (ItemRef::Heartbeat, 1));
    assert_eq!(decoder.decode_slice(b"").unwrap(), None);
    assert_eq!(decoder.consumed(), STREAM.len() as u64);
}

#[test]
fn a_partial_item_is_none_until_the_rest_arrives() {
    let mut decoder = Decoder::new(Version::V1_2);
    let frame = b"SEND\ndestination:/queue/a\n\nbody\0";
    for end in 0..frame.len() {
        assert_eq!(
            decoder.decode_slice(&frame[..end]).unwrap(),
            None,
            "{end} bytes"
        );
    }
    let (item, len) = decoder.decode_slice(frame).unwrap().unwrap();
    assert_eq!(len, frame.len());
    assert_eq!(item.into_frame().unwrap().body(), b"body");
    assert!(!decoder.is_mid_frame());
}

/// Taking bytes off the front in the middle of a frame is the caller's mistake; when it
/// leaves fewer bytes than the call before saw, either API reports it as an error, never a
/// panic. (Only the length can be checked: bytes taken off and as many appended go
/// unnoticed.)
#[test]
fn a_buffer_that_shrank_mid_frame_is_an_error() {
    let partial = b"SEND\ndestination:/queue/a\n\nno content-length yet";

    let mut decoder = Decoder::new(Version::V1_2);
    assert_eq!(decoder.decode_slice(partial).unwrap(), None);
    let error = decoder.decode_slice(&partial[..10]).unwrap_err();
    assert!(
        matches!(
            error,
            Error::BufferShrank { offset: 0, seen, buffered: 10 } if seen == partial.len()
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("take bytes off only after"),
        "{error}"
    );
    // Fatal, like every decoding error.
    assert!(decoder.decode_slice(partial).is_err());

    let mut decoder = Decoder::new(Version::V1_2);
    let mut buf = BytesMut::from(&partial[..]);
    assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    buf.clear();
    buf.extend_from_slice(b"\0");
    let error = decoder.decode(&mut buf).unwrap_err();
    assert!(
        matches!(error, Error::BufferShrank { buffered: 1, .. }),
        "{error:?}"
    );

    // In the head, too.
    let mut decoder = Decoder::new(Version::V1_2);
    assert_eq!(decoder.decode_slice(b"SEND\ndestin").unwrap(), None);
    let error = decoder.decode_slice(b"SEND\n").unwrap_err();
    assert!(matches!(error, Error::BufferShrank { .. }), "{error:?}");
}

/// Inside a `content-length` body, too: the check is against what the call before was given.
#[test]
fn a_buffer_that_shrank_inside_a_counted_body_is_an_error() {
    let partial = b"SEND\ndestination:/queue/a\ncontent-length:9\n\nabcdef";
    let mut decoder = Decoder::new(Version::V1_2);
    assert_eq!(decoder.decode_slice(partial).unwrap(), None);
    let error = decoder
        .decode_slice(&partial[..partial.len() - 2])
        .unwrap_err();
    assert!(
        matches!(error, Error::BufferShrank { seen, .. } if seen == partial.len()),
        "{error:?}"
    );
}

#[test]
fn decode_slice_eof_reports_a_truncated_last_frame() {
    let stream = b"SEND\ndestination:/q\n\nok\0\nSEND\ndestination:/q\n";
    let mut decoder = Decoder::new(Version::V1_2);
    let mut at = 0;
    let mut frames = 0;
    let error = loop {
        match decoder.decode_slice_eof(&stream[at..]) {
            Ok(Some((item, len))) => {
                frames += usize::from(matches!(item, ItemRef::Frame(_)));
                at += len;
            }
            Ok(None) => panic!("a truncated stream ended cleanly"),
            Err(error) => break error,
        }
    };
    assert_eq!(frames, 1);
    assert!(
        matches!(error, Error::Truncated { offset, buffered } if offset == at as u64 && buffered == stream.len() - at),
        "{error:?}"
    );
    // A lone CR at the end of a 1.2 stream is a truncated CRLF, not nothing.
    let mut decoder = Decoder::new(Version::V1_2);
    assert!(matches!(
        decoder.decode_slice_eof(b"\r"),
        Err(Error::Truncated { buffered: 1, .. })
    ));
    // And a clean end is `None`.
    assert_eq!(
        Decoder::new(Version::V1_2).decode_slice_eof(b"").unwrap(),
        None
    );
}

#[test]
fn a_borrowed_frame_converts_rebuilds_and_reencodes() {
    let wire = b"MESSAGE\ndestination:/queue/a\nx:a\\cb\ncontent-length:2\n\nhi\0";
    let mut decoder = Decoder::new(Version::V1_2);
    let (item, _) = decoder.decode_slice(wire).unwrap().unwrap();
    let owned = Item::from(item);
    let frame = item.into_frame().unwrap();
    assert_eq!(owned, Item::Frame(Frame::from(frame)));

    let changed = frame.to_builder().header("y", "1").build();
    assert_eq!(changed.header("x"), Some(&b"a:b"[..]));
    assert_eq!(changed.header("y"), Some(&b"1"[..]));
    assert_eq!(changed.body(), b"hi");

    // Written again straight from the borrowed parts, it is the same frame.
    let mut out = BytesMut::new();
    Encoder::new(Version::V1_2)
        .encode_parts(frame.command(), frame.headers(), frame.body(), &mut out)
        .unwrap();
    let Some(Item::Frame(again)) = Decoder::new(Version::V1_2).decode(&mut out).unwrap() else {
        panic!("the re-encoded frame decodes");
    };
    assert_eq!(frame, again);
}

#[test]
fn each_frame_shows_its_own_headers_whichever_path_read_the_one_before() {
    // Plain heads (the fast path, index inline in the decoder) and heads with an escape or
    // more than eight headers (the careful path, index kept by the decoder), in turn.
    let plain = |n: u8| format!("MESSAGE\ndestination:/queue/{n}\ncontent-length:1\n\n{n}\0\n");
    let escaped = |n: u8| format!("MESSAGE\ndestination:/queue/{n}\nx:a\\c{n}\n\n{n}\0\n");
    let many = |n: u8| {
        let extra: String = (0..9).map(|i| format!("h{i}:{n}\n")).collect();
        format!("MESSAGE\ndestination:/queue/{n}\n{extra}\n{n}\0")
    };
    let wire = [
        plain(1),
        escaped(2),
        plain(3),
        many(4),
        plain(5),
        escaped(6),
    ]
    .concat();

    let mut expected = Vec::new();
    let mut buf = BytesMut::from(wire.as_bytes());
    let mut owned = Decoder::new(Version::V1_2);
    while let Some(item) = owned.decode(&mut buf).unwrap() {
        expected.extend(item.into_frame());
    }
    assert_eq!(expected.len(), 6);

    let mut decoder = Decoder::new(Version::V1_2);
    let (mut at, mut frames, mut bodies) = (0, Vec::new(), Vec::new());
    while let Some((item, len)) = decoder.decode_slice(&wire.as_bytes()[at..]).unwrap() {
        if let ItemRef::Frame(frame) = item {
            assert_eq!(frame, expected[frames.len()], "frame {}", frames.len() + 1);
            // Bodies borrow only the buffer: they outlive the frame and the next call.
            bodies.push(frame.body());
            frames.push(frame.to_frame());
        }
        at += len;
    }
    assert_eq!(frames, expected);
    assert_eq!(bodies, [b"1", b"2", b"3", b"4", b"5", b"6"]);
    assert_eq!(frames[1].header("x"), Some(&b"a:2"[..]));
    assert_eq!(frames[3].headers().len(), 10);
}

#[test]
fn after_an_error_a_whole_plain_frame_gets_the_same_error_through_either_entry_point() {
    // A plain frame is what the fast path reads, and it runs before the careful core: it
    // must not read past a failed stream either.
    let plain = b"SEND\ncontent-length:1\n\nx\0";
    for first_in_place in [false, true] {
        let mut decoder = Decoder::new(Version::V1_2);
        let error = if first_in_place {
            decoder.decode_slice(b"oops\n\n\0").unwrap_err()
        } else {
            decoder
                .decode(&mut BytesMut::from(&b"oops\n\n\0"[..]))
                .unwrap_err()
        };
        assert!(matches!(error, Error::UnknownCommand { .. }), "{error:?}");
        let error = format!("{error:?}");
        for _ in 0..2 {
            let again = decoder.decode_slice(plain).unwrap_err();
            assert_eq!(format!("{again:?}"), error);
            let again = decoder.decode_slice_eof(plain).unwrap_err();
            assert_eq!(format!("{again:?}"), error);
            let mut buf = BytesMut::from(&plain[..]);
            let again = decoder.decode(&mut buf).unwrap_err();
            assert_eq!(format!("{again:?}"), error);
            assert_eq!(buf.len(), plain.len(), "nothing taken off after the error");
        }
    }
}
