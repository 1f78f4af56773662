//! The decoder follows the STOMP specifications to the letter, per version.

mod support;

use stompkit_codec::{Command, Error, Frame, Item, Version};
use support::{decode_all, error, frame, frames, headers, pairs};

const V10: Version = Version::V1_0;
const V11: Version = Version::V1_1;
const V12: Version = Version::V1_2;

#[test]
fn spec_example_connect_frame_decodes() {
    let f = frame(
        V12,
        b"CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0",
    );
    assert_eq!(f.command(), Command::Connect);
    assert_eq!(
        headers(&f),
        pairs(&[("accept-version", "1.2"), ("host", "stomp.github.org")])
    );
    assert!(f.body().is_empty());
}

#[test]
fn spec_example_send_with_body_decodes() {
    let f = frame(
        V12,
        b"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0",
    );
    assert_eq!(f.command(), Command::Send);
    assert_eq!(f.header("destination"), Some(&b"/queue/a"[..]));
    assert_eq!(f.body(), b"hello queue a\n");
}

#[test]
fn every_command_is_recognised_and_commands_are_case_sensitive() {
    for command in Command::ALL {
        let body = if command.allows_body() { "x" } else { "" };
        let wire = format!("{}\n\n{body}\0", command.as_str());
        assert_eq!(frame(V12, wire.as_bytes()).command(), command);
        let lower = format!("{}\n\n\0", command.as_str().to_lowercase());
        assert!(matches!(
            error(V12, lower.as_bytes()),
            Error::UnknownCommand { offset: 0, .. }
        ));
    }
}

#[test]
fn crlf_ends_lines_in_1_2_only() {
    let wire = b"MESSAGE\r\ndestination:/q\r\n\r\nbody\0";
    let f = frame(V12, wire);
    assert_eq!(f.header("destination"), Some(&b"/q"[..]));
    // In 1.1 the CR is an ordinary byte: the command line is "MESSAGE\r", not a command.
    assert!(matches!(error(V11, wire), Error::UnknownCommand { .. }));
    assert!(matches!(error(V10, wire), Error::UnknownCommand { .. }));
}

#[test]
fn a_cr_in_a_1_1_value_is_data() {
    let f = frame(V11, b"MESSAGE\nx:a\rb\r\n\n\0");
    assert_eq!(f.header("x"), Some(&b"a\rb\r"[..]));
}

#[test]
fn a_bare_cr_is_not_an_eol_and_is_refused_in_1_2() {
    assert!(matches!(
        error(V12, b"SEND\nx:a\rb\n\n\0"),
        Error::BareCarriageReturn { offset: 8 }
    ));
    assert!(matches!(
        error(V12, b"SEND\rx:1\n\n\0"),
        Error::BareCarriageReturn { offset: 4 }
    ));
    // Between frames, a CR must start a CRLF heart-beat.
    assert!(matches!(
        error(V12, b"\rX"),
        Error::BareCarriageReturn { offset: 0 }
    ));
}

#[test]
fn escapes_are_decoded_per_version() {
    let wire = br"MESSAGE
a:x\cy\\z\nw

";
    let mut wire = wire.to_vec();
    wire.push(0);
    for v in [V11, V12] {
        assert_eq!(frame(v, &wire).header("a"), Some(&b"x:y\\z\nw"[..]), "{v}");
    }
    // 1.0 has no escaping: the backslashes are literal.
    assert_eq!(frame(V10, &wire).header("a"), Some(&br"x\cy\\z\nw"[..]));
}

#[test]
fn backslash_r_is_defined_in_1_2_and_undefined_in_1_1() {
    assert_eq!(
        frame(V12, b"MESSAGE\na:1\\r2\n\n\0").header("a"),
        Some(&b"1\r2"[..])
    );
    assert!(matches!(
        error(V11, b"MESSAGE\na:1\\r2\n\n\0"),
        Error::InvalidEscape {
            offset: 11,
            escape: b'r',
            version: Version::V1_1
        }
    ));
}

#[test]
fn an_undefined_escape_is_fatal() {
    let e = error(V12, b"MESSAGE\nkey:va\\tlue\n\n\0");
    assert!(
        matches!(
            e,
            Error::InvalidEscape {
                offset: 14,
                escape: b't',
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("byte 14"), "{e}");
}

#[test]
fn a_trailing_backslash_is_fatal() {
    assert!(matches!(
        error(V12, b"MESSAGE\nkey:value\\\n\n\0"),
        Error::TrailingBackslash { offset: 17 }
    ));
}

#[test]
fn escapes_in_header_names_are_decoded() {
    let f = frame(V12, b"MESSAGE\nx\\cy:1\n\n\0");
    assert_eq!(headers(&f), pairs(&[("x:y", "1")]));
}

#[test]
fn connect_and_connected_headers_are_never_unescaped() {
    for command in ["CONNECT", "STOMP", "CONNECTED"] {
        let wire = format!("{command}\nlogin:a\\cb\npasscode:p\\q\n\n\0");
        let f = frame(V12, wire.as_bytes());
        assert_eq!(f.header("login"), Some(&br"a\cb"[..]), "{command}");
        assert_eq!(f.header("passcode"), Some(&br"p\q"[..]), "{command}");
    }
}

#[test]
fn raw_colons_in_values_are_kept_and_the_name_ends_at_the_first() {
    // ActiveMQ's CONNECTED carries `session:ID:broker-host-1795301228868-3:9` unescaped.
    let f = frame(
        V12,
        b"CONNECTED\nsession:ID:broker-host-1:9\nversion:1.2\n\n\0",
    );
    assert_eq!(f.header("session"), Some(&b"ID:broker-host-1:9"[..]));
}

#[test]
fn repeated_headers_are_all_kept_in_order_and_the_first_wins() {
    let f = frame(V12, b"MESSAGE\nfoo:World\nfoo:Hello\nbar:1\n\n\0");
    assert_eq!(
        headers(&f),
        pairs(&[("foo", "World"), ("foo", "Hello"), ("bar", "1")])
    );
    assert_eq!(f.header("foo"), Some(&b"World"[..]));
}

#[test]
fn nothing_is_trimmed_and_empty_values_are_allowed() {
    let f = frame(V12, b"MESSAGE\n key : value \nempty:\n\n\0");
    assert_eq!(headers(&f), pairs(&[(" key ", " value "), ("empty", "")]));
}

#[test]
fn a_header_without_colon_or_name_is_refused() {
    assert!(matches!(
        error(V12, b"SEND\nnocolon\n\n\0"),
        Error::MissingColon { offset: 5 }
    ));
    assert!(matches!(
        error(V12, b"SEND\n:value\n\n\0"),
        Error::EmptyHeaderName { offset: 5 }
    ));
    // In 1.1 a CRLF line is a header line "\r", which has no colon.
    assert!(matches!(
        error(V11, b"SEND\n\r\n\0"),
        Error::MissingColon { offset: 5 }
    ));
}

#[test]
fn content_length_is_read_exactly_and_allows_nuls_in_the_body() {
    let f = frame(V12, b"MESSAGE\ncontent-length:5\n\na\0b\0c\0");
    assert_eq!(f.body(), b"a\0b\0c");
}

#[test]
fn the_byte_after_a_content_length_body_must_be_nul() {
    assert!(matches!(
        error(V12, b"MESSAGE\ncontent-length:2\n\nabc\0"),
        Error::MissingNul {
            offset: 28,
            content_length: 2
        }
    ));
}

#[test]
fn invalid_negative_or_overflowing_content_length_is_refused() {
    for bad in [
        "-1",
        "+1",
        " 1",
        "1 ",
        "",
        "0x1",
        "1.0",
        "99999999999999999999999",
    ] {
        let wire = format!("MESSAGE\ncontent-length:{bad}\n\n\0");
        let e = error(V12, wire.as_bytes());
        assert!(
            matches!(
                e,
                Error::InvalidContentLength { offset: 8, .. } | Error::LimitExceeded { .. }
            ),
            "{bad:?}: {e:?}"
        );
    }
    assert!(matches!(
        error(V12, b"MESSAGE\ncontent-length:-1\n\n\0"),
        Error::InvalidContentLength { .. }
    ));
}

#[test]
fn the_first_content_length_wins() {
    let f = frame(V12, b"MESSAGE\ncontent-length:1\ncontent-length:5\n\nx\0");
    assert_eq!(f.body(), b"x");
}

#[test]
fn heart_beats_between_frames_are_reported_never_as_frames() {
    let (items, error) = decode_all(V12, b"\n\r\nSEND\n\nx\0\n\n");
    assert!(error.is_none());
    let kinds: Vec<_> = items.iter().map(|i| matches!(i, Item::Heartbeat)).collect();
    assert_eq!(kinds, [true, true, false, true, true]);
    // 1.0/1.1 know only LF.
    let (items, _) = decode_all(V11, b"\n\n");
    assert_eq!(items, [Item::Heartbeat, Item::Heartbeat]);
}

#[test]
fn only_send_message_and_error_may_have_a_body() {
    assert!(matches!(
        error(V12, b"DISCONNECT\n\nbye\0"),
        Error::UnexpectedBody {
            offset: 12,
            command: Command::Disconnect
        }
    ));
    assert!(matches!(
        error(V12, b"RECEIPT\ncontent-length:1\n\nx\0"),
        Error::UnexpectedBody {
            command: Command::Receipt,
            ..
        }
    ));
    assert_eq!(frame(V12, b"ERROR\n\nboom\0").body(), b"boom");
}

#[test]
fn real_rabbitmq_stream_with_trailing_eols_decodes() {
    let wire = b"RECEIPT\nreceipt-id:r-commit\n\n\0\nMESSAGE\nsubscription:t\ndestination:/queue/transcript-1795304747-t\nmessage-id:T_t@@session-OojGS-k_tIItubxJJq57EA@@1\nredelivered:false\ntransaction:tx2\ncontent-length:9\n\ncommitted\0\n";
    let all = frames(V12, wire);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].header("receipt-id"), Some(&b"r-commit"[..]));
    assert_eq!(all[1].header("transaction"), Some(&b"tx2"[..]));
    assert_eq!(all[1].body(), b"committed");
}

#[test]
fn activemq_escaped_ack_ids_are_unescaped() {
    let wire = b"MESSAGE\nack:ID\\cbroker-host-1795301228868-4\\c52\nsubscription:sub-1\nx-path:C\\c\\\\jobs\\\\new\n\nx\0\n";
    let f = frame(V12, wire);
    assert_eq!(
        f.header("ack"),
        Some(&b"ID:broker-host-1795301228868-4:52"[..])
    );
    assert_eq!(f.header("x-path"), Some(&b"C:\\jobs\\new"[..]));
}

#[test]
fn after_an_error_the_decoder_keeps_returning_it() {
    let mut decoder = stompkit_codec::Decoder::new(V12);
    let mut buf = bytes::BytesMut::from(&b"oops\n\n\0SEND\n\n\0"[..]);
    let first = decoder.decode(&mut buf).unwrap_err();
    let second = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(first.to_string(), second.to_string());
}

#[test]
fn decoded_values_share_the_input_buffer() {
    let f = frame(V12, b"MESSAGE\ndestination:/q\n\nbody\0");
    let (name, value) = f.header_bytes(0).unwrap();
    assert_eq!((&name[..], &value[..]), (&b"destination"[..], &b"/q"[..]));
    assert!(f.header_bytes(1).is_none());
    assert_eq!(f.header_value_bytes(0).unwrap(), value);
    assert!(f.header_value_bytes(1).is_none());
}

#[test]
fn header_value_bytes_is_header_bytes_value_for_every_kind_of_index() {
    let many: String = (0..12).map(|i| format!("h{i}:v{i}\n")).collect();
    let frames = [
        // Inline index, plain head.
        frame(V12, b"MESSAGE\ndestination:/q\nx:\n\n\0"),
        // Unescaped copies of values.
        frame(V12, b"MESSAGE\na\\cb:c\\nd\ne:f\\\\\n\n\0"),
        // More headers than an inline index holds.
        frame(V12, format!("MESSAGE\n{many}\n\0").as_bytes()),
        // Built, not decoded.
        Frame::builder(Command::Send)
            .header("destination", "/q")
            .header("k", "v:w")
            .build(),
    ];
    for f in &frames {
        let count = f.headers().len();
        assert!(count > 0);
        for i in 0..=count {
            assert_eq!(
                f.header_value_bytes(i),
                f.header_bytes(i).map(|(_, value)| value),
                "header {i} of {f:?}"
            );
        }
    }
}

#[test]
fn the_body_reads_the_same_through_every_accessor_and_shares_the_input() {
    // Decoded frames keep head and body in one buffer; built frames keep the body given.
    let decoded = [
        frame(V12, b"MESSAGE\ncontent-length:5\n\na\0b\0c\0\n"),
        frame(V12, b"SEND\ndestination:/q\n\nhello\0"),
        frame(V12, b"RECEIPT\nreceipt-id:1\n\n\0"),
        frame(V12, b"MESSAGE\nid:a\\cb\n\nescaped head\0"),
    ];
    let expected: [&[u8]; 4] = [b"a\0b\0c", b"hello", b"", b"escaped head"];
    for (f, want) in decoded.iter().zip(expected) {
        assert_eq!(f.body(), want);
        assert_eq!(f.body_bytes(), want);
        assert_eq!(f.clone().into_body(), want);
        assert_eq!(f.to_builder().build().body(), want);
    }
    let shared = bytes::Bytes::from_static(b"payload");
    let built = Frame::builder(Command::Send)
        .header("destination", "/q")
        .body(shared.clone())
        .build();
    assert_eq!(built.body(), b"payload");
    assert_eq!(built.body_bytes().as_ptr(), shared.as_ptr()); // not copied
    assert_eq!(built.into_body().as_ptr(), shared.as_ptr());
    // A decoded body is a slice of the buffer the decoder was given.
    let wire = bytes::Bytes::from_static(b"SEND\ndestination:/q\n\nhello\0");
    let mut buf = bytes::BytesMut::from(&wire[..]);
    let start = buf.as_ptr() as usize;
    let mut decoder = stompkit_codec::Decoder::new(V12);
    let Some(Item::Frame(f)) = decoder.decode(&mut buf).unwrap() else {
        panic!("no frame")
    };
    assert_eq!(f.body().as_ptr() as usize, start + wire.len() - 6);
    assert_eq!(f.into_body().as_ptr() as usize, start + wire.len() - 6);
}
