//! The decoder reads whole plain heads on a fast path and everything else on a careful path.
//! These tests feed each input whole (fast path when it applies) and in small pieces (careful
//! path only) and require the same items and the same error, on the inputs where the fast
//! path's own checks sit: header counts around its inline limit of eight, name lengths around
//! its 16-byte colon probe, control bytes and backslashes anywhere, limits near their edges,
//! and heads ending at the very end of the buffer.

mod support;

use bytes::BytesMut;
use stompkit_codec::{Decoder, Item, Limits, Version, fuzzing};

/// Items and error from feeding `data` in pieces of `chunk` bytes (everything when 0).
/// Items, and the error as its `Debug` text (it names the offset and the reason).
fn decode(
    version: Version,
    limits: Limits,
    data: &[u8],
    chunk: usize,
) -> (Vec<Item>, Option<String>) {
    let mut decoder = Decoder::with_limits(version, limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let pieces: Vec<&[u8]> = if chunk == 0 {
        vec![data]
    } else {
        data.chunks(chunk).collect()
    };
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(error) => return (items, Some(format!("{error:?}"))),
            }
        }
    }
    match decoder.decode_eof(&mut buf) {
        Ok(Some(item)) => panic!("an item at EOF after None: {item:?}"),
        Ok(None) => (items, None),
        Err(error) => (items, Some(format!("{error:?}"))),
    }
}

/// [`decode`] through `Decoder::decode_slice` (see `fuzzing::decode_slice_chunked`).
fn decode_in_place(
    version: Version,
    limits: Limits,
    data: &[u8],
    chunk: usize,
) -> (Vec<Item>, Option<String>) {
    let chunks: &[usize] = if chunk == 0 { &[] } else { &[chunk] };
    let (items, error) = fuzzing::decode_slice_chunked(version, limits, data, chunks);
    (items, error.map(|e| format!("{e:?}")))
}

/// Whole and in pieces of 1 and 7 bytes give the same, through `decode` and through
/// `decode_slice`; returns the whole result.
#[track_caller]
fn same_both_ways(version: Version, limits: Limits, data: &[u8]) -> (Vec<Item>, Option<String>) {
    let whole = decode(version, limits, data, 0);
    for chunk in [0, 1, 7] {
        if chunk > 0 {
            assert_eq!(
                decode(version, limits, data, chunk),
                whole,
                "whole vs {chunk}-byte pieces of {:?}",
                String::from_utf8_lossy(data)
            );
        }
        assert_eq!(
            decode_in_place(version, limits, data, chunk),
            whole,
            "decode vs decode_slice in {chunk}-byte pieces of {:?}",
            String::from_utf8_lossy(data)
        );
    }
    whole
}

fn message(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = b"MESSAGE\n".to_vec();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}:{value}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out.extend_from_slice(b"\0\n");
    out
}

fn frames(items: &[Item]) -> usize {
    items.iter().filter(|i| matches!(i, Item::Frame(_))).count()
}

#[test]
fn header_counts_around_the_inline_index() {
    for n in 0..=12 {
        let names: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
        let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v:w")).collect();
        for body in [&b""[..], b"payload"] {
            let (items, error) =
                same_both_ways(Version::V1_2, Limits::default(), &message(&headers, body));
            assert_eq!(error, None);
            let Some(Item::Frame(frame)) = items.first() else {
                panic!("no frame")
            };
            assert_eq!(frame.headers().len(), n);
            assert_eq!(frame.body(), body);
            assert_eq!(
                frame.headers().next_back().map(|(_, v)| v),
                (n > 0).then_some(&b"v:w"[..])
            );
        }
    }
}

#[test]
fn max_headers_around_the_header_count() {
    let headers: Vec<(String, &str)> = (0..8).map(|i| (format!("h{i}"), "v")).collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let data = message(&headers, b"x");
    for max in 0..=9 {
        let (items, error) = same_both_ways(
            Version::V1_2,
            Limits::default().with_max_headers(max),
            &data,
        );
        assert_eq!(error.is_some(), max < 8, "max_headers {max}");
        assert_eq!(frames(&items), usize::from(max >= 8));
    }
}

#[test]
fn name_lengths_around_the_colon_probe() {
    for len in 1..=40 {
        let name = "n".repeat(len);
        for value in ["", "v", "a:b", &"w".repeat(70)] {
            let (items, error) = same_both_ways(
                Version::V1_2,
                Limits::default(),
                &message(&[(name.as_str(), value), ("after", "x")], b""),
            );
            assert_eq!(error, None);
            let Some(Item::Frame(frame)) = items.first() else {
                panic!("no frame")
            };
            assert_eq!(frame.header(&name), Some(value.as_bytes()));
            assert_eq!(frame.header("after"), Some(&b"x"[..]));
        }
    }
}

#[test]
fn lines_without_a_colon_or_with_an_empty_name() {
    for bad in [
        "novalue",
        ":empty-name",
        "a",
        ":",
        "x-very-long-header-name-without-colon",
    ] {
        let data = format!("MESSAGE\nfirst:1\n{bad}\nlast:2\n\n\0");
        let (_, error) = same_both_ways(Version::V1_2, Limits::default(), data.as_bytes());
        assert!(error.is_some(), "{bad:?}");
    }
}

#[test]
fn control_bytes_and_backslashes_anywhere_in_the_head() {
    // Each special byte placed in a name, in a value, and right after the blank line.
    for special in [b'\t', b'\0', b'\r', b'\\', 0x01, 0x0b, 0x0c] {
        for at in ["name", "value", "body"] {
            let mut data = b"MESSAGE\nsubscription:s-1\n".to_vec();
            match at {
                "name" => data.extend_from_slice(&[b'x', special, b':', b'v', b'\n', b'\n']),
                "value" => data.extend_from_slice(&[b'x', b':', b'v', special, b'w', b'\n', b'\n']),
                _ => data.extend_from_slice(&[b'x', b':', b'v', b'\n', b'\n', special]),
            }
            data.extend_from_slice(b"\0\n");
            for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
                same_both_ways(version, Limits::default(), &data);
            }
        }
    }
}

#[test]
fn escapes_and_crlf_still_read_right() {
    let data = b"MESSAGE\r\nid:a\\cb\\\\c\\nd\r\nx:y\r\n\r\nbody\0\n";
    let (items, error) = same_both_ways(Version::V1_2, Limits::default(), data);
    assert_eq!(error, None);
    let Some(Item::Frame(frame)) = items.first() else {
        panic!("no frame")
    };
    assert_eq!(frame.header("id"), Some(&b"a:b\\c\nd"[..]));
    assert_eq!(frame.body(), b"body");
}

#[test]
fn line_limits_near_the_fast_path_block() {
    let value = "v".repeat(60);
    let data = message(&[("name", value.as_str()), ("n2", "short")], b"b");
    let line = "name:".len() + value.len();
    for max in (line - 3)..=(line + 70) {
        let limits = Limits::default().with_max_header_line_bytes(max);
        let (items, error) = same_both_ways(Version::V1_2, limits, &data);
        assert_eq!(error.is_some(), max < line, "max_header_line_bytes {max}");
        assert_eq!(frames(&items), usize::from(max >= line));
    }
}

#[test]
fn frame_limits_near_the_head() {
    let data = message(
        &[("destination", "/queue/a"), ("content-length", "3")],
        b"abc",
    );
    for max in 1..data.len() + 2 {
        same_both_ways(
            Version::V1_2,
            Limits::default().with_max_frame_bytes(max),
            &data,
        );
    }
}

#[test]
fn content_length_first_wins_and_bad_values_fail() {
    let (items, error) = same_both_ways(
        Version::V1_2,
        Limits::default(),
        &message(&[("content-length", "3"), ("content-length", "9")], b"a\0c"),
    );
    assert_eq!(error, None);
    let Some(Item::Frame(frame)) = items.first() else {
        panic!("no frame")
    };
    assert_eq!(frame.body(), b"a\0c");
    for bad in ["", "-1", "3 ", "0x3", "99999999999999999999999"] {
        let (_, error) = same_both_ways(
            Version::V1_2,
            Limits::default(),
            &message(&[("content-length", bad)], b"abc"),
        );
        assert!(error.is_some(), "content-length {bad:?}");
    }
}

#[test]
fn heads_ending_at_the_end_of_the_buffer() {
    let data = message(&[("destination", "/queue/a"), ("x", "y")], b"");
    for end in 0..=data.len() {
        let (items, error) = decode(Version::V1_2, Limits::default(), &data[..end], 0);
        let complete = end >= data.len() - 1; // the frame, with or without its trailing EOL
        assert_eq!(frames(&items), usize::from(complete), "first {end} bytes");
        assert_eq!(error.is_some(), !complete && end > 0, "first {end} bytes");
    }
}

#[test]
fn heads_past_the_inline_index_range_take_the_careful_path() {
    for len in [65_000, 65_600, 70_000] {
        let value = "v".repeat(len);
        let data = message(&[("big", value.as_str()), ("after", "x")], b"b");
        let (items, error) = decode(
            Version::V1_2,
            Limits::default().with_max_header_line_bytes(100_000),
            &data,
            0,
        );
        assert_eq!(error, None);
        let Some(Item::Frame(frame)) = items.first() else {
            panic!("no frame")
        };
        assert_eq!(frame.header("big").map(<[u8]>::len), Some(len));
        assert_eq!(frame.header("after"), Some(&b"x"[..]));
        assert_eq!(frame.body(), b"b");
    }
}

#[test]
fn back_to_back_frames_of_every_kind() {
    let mut stream = Vec::new();
    stream.extend_from_slice(b"CONNECTED\nversion:1.2\nserver:x\\y\n\n\0\n");
    stream.extend_from_slice(&message(
        &[("subscription", "s"), ("message-id", "1")],
        b"one",
    ));
    stream.extend_from_slice(b"\n\r\n");
    stream.extend_from_slice(b"RECEIPT\nreceipt-id:r-1\n\n\0");
    stream.extend_from_slice(b"ERROR\r\nmessage:bad\r\n\r\noops\0");
    let (items, error) = same_both_ways(Version::V1_2, Limits::default(), &stream);
    assert_eq!(error, None);
    assert_eq!(frames(&items), 4);
    let Some(Item::Frame(connected)) = items.first() else {
        panic!("no frame")
    };
    assert_eq!(connected.header("server"), Some(&b"x\\y"[..])); // never unescaped
}

#[test]
fn line_limits_at_the_command_line() {
    // The fast path reads only heads no longer than the line limit (plus the line feed that
    // ends the command line), so no line in them can break it; the command line is the
    // first and can be the longest. A head of just the command line and the blank line,
    // then heart-beats, so that the fast path (which wants 16 bytes to look at) applies:
    for command in stompkit_codec::Command::ALL {
        let name = command.as_str();
        let data = format!("{name}\n\n\0{}", "\n".repeat(16));
        for max in name.len().saturating_sub(2)..=name.len() + 2 {
            let limits = Limits::default().with_max_header_line_bytes(max);
            let (items, error) = same_both_ways(Version::V1_2, limits, data.as_bytes());
            assert_eq!(
                error.is_some(),
                max < name.len(),
                "{name} with max_header_line_bytes {max}: {error:?}"
            );
            assert_eq!(frames(&items), usize::from(max >= name.len()));
        }
    }
}
