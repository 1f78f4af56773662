//! The benches measure real work: every corpus item decodes, with stompkit-codec and with
//! each anchor, to the frames it was built from, and every encoder's output decodes back to
//! them. Uses the same drivers as `benches/codec.rs`. No timing here.

use bytes::BytesMut;
use stompkit_benches::corpus::{ABSENT_BYTE, Corpus, Kind, Message};
use stompkit_benches::ids::{self, Direction};
use stompkit_codec::{Command, Encoder, Frame, Item, Version};

#[path = "../shared/drivers.rs"]
mod drivers;

use drivers::Counts;

fn all_headers(corpus: &Corpus) -> usize {
    corpus.messages.iter().map(|m| m.headers.len()).sum()
}

fn all_body_bytes(corpus: &Corpus) -> usize {
    corpus.messages.iter().map(|m| m.body.len()).sum()
}

/// What a decoder that returns every frame should count, given the heart-beats it reports.
fn expected(corpus: &Corpus, heartbeats: usize) -> Counts {
    Counts {
        frames: corpus.frames(),
        heartbeats,
        headers: all_headers(corpus),
        body_bytes: all_body_bytes(corpus),
    }
}

fn frames_of(bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = drivers::stompkit_decoder();
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(item) = decoder.decode(&mut buf).expect("decodes") {
        if let Item::Frame(frame) = item {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

fn same_content(frame: &Frame, message: &Message) {
    let headers: Vec<(String, String)> = frame
        .headers()
        .map(|(n, v)| {
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("UTF-8 header");
            (text(n), text(v))
        })
        .collect();
    assert_eq!(headers, message.headers);
    assert_eq!(frame.body(), &message.body[..]);
}

#[test]
fn stompkit_decodes_every_corpus() {
    for kind in Kind::ALL {
        let corpus = kind.build();
        let mut buf = BytesMut::from(&corpus.wire[..]);
        let counts = drivers::decode_stompkit(&mut drivers::stompkit_decoder(), &mut buf);
        // stompkit reports every EOL between frames, the one after each NUL included.
        assert_eq!(counts, expected(&corpus, corpus.eols()), "{kind:?}");
        assert!(buf.is_empty(), "{kind:?}");
        let in_place =
            drivers::decode_stompkit_slice(&mut drivers::stompkit_decoder(), &corpus.wire);
        assert_eq!(in_place, counts, "{kind:?} in place");

        let frames = frames_of(&corpus.wire);
        assert_eq!(frames.len(), corpus.frames(), "{kind:?}");
        for (frame, message) in frames.iter().zip(&corpus.messages) {
            assert_eq!(frame.command(), Command::Message);
            same_content(frame, message);
            assert_eq!(*frame, drivers::stompkit_frame(message));
        }
    }
}

#[test]
fn iridium_codec_decodes_every_corpus() {
    for kind in Kind::ALL {
        let corpus = kind.build();
        let mut buf = BytesMut::from(&corpus.wire[..]);
        let counts = drivers::decode_iridium_codec(&mut drivers::iridium_codec(), &mut buf);
        // It swallows the EOL right after each NUL and reports the other EOLs.
        assert_eq!(
            counts,
            expected(&corpus, corpus.extra_heartbeats),
            "{kind:?}"
        );
        assert!(buf.is_empty(), "{kind:?}");
    }
    // Header values come back unescaped.
    let corpus = Kind::Escaped.build();
    let mut codec = drivers::iridium_codec();
    let mut buf = BytesMut::from(&corpus.wire[..]);
    for message in &corpus.messages {
        let item = tokio_util::codec::Decoder::decode(&mut codec, &mut buf).unwrap();
        let Some(iridium_stomp::StompItem::Frame(frame)) = item else {
            panic!("expected a frame, got {item:?}");
        };
        assert_eq!(frame.command, "MESSAGE");
        assert_eq!(frame.headers, message.headers);
        assert_eq!(frame.body, message.body);
    }
}

#[test]
fn iridium_parser_decodes_what_it_is_benched_on() {
    let group = ids::group("decode_d_escaped");
    assert!(!group.measures(ids::IRIDIUM_PARSER), "it does not unescape");
    for kind in Kind::ALL.into_iter().filter(|&k| k != Kind::Escaped) {
        let corpus = kind.build();
        let counts = drivers::decode_iridium_parser(&corpus.wire);
        assert_eq!(counts, expected(&corpus, 0), "{kind:?}");
    }
}

#[test]
fn tokio_stomp_decodes_what_it_is_benched_on() {
    let group = ids::group("decode_d_escaped");
    assert!(!group.measures(ids::TOKIO_STOMP_2), "it does not unescape");
    for kind in Kind::ALL.into_iter().filter(|&k| k != Kind::Escaped) {
        let corpus = kind.build();
        let mut buf = BytesMut::from(&corpus.wire[..]);
        let mut codec = tokio_stomp_2::client::ClientCodec;
        let counts = drivers::decode_tokio_stomp(&mut codec, &mut buf);
        // Heart-beats are skipped as part of the next frame, never reported.
        assert_eq!(counts, expected(&corpus, 0), "{kind:?}");
        assert!(buf.is_empty(), "{kind:?}");
    }
}

#[test]
fn floors_read_the_whole_buffer() {
    for kind in Kind::ALL {
        let corpus = kind.build();
        assert_eq!(memchr::memchr(ABSENT_BYTE, &corpus.wire), None, "{kind:?}");
        let nuls = memchr::memchr_iter(0, &corpus.wire).count();
        assert_eq!(nuls, corpus.frames(), "{kind:?}");
    }
}

/// The stream without the EOLs between frames: what an encoder writes.
fn frames_only(corpus: &Corpus) -> Vec<u8> {
    let mut out = Vec::with_capacity(corpus.encoded_bytes());
    let mut after_nul = false;
    for &byte in &corpus.wire {
        if after_nul && byte == b'\n' {
            continue;
        }
        after_nul = byte == 0;
        out.push(byte);
    }
    out
}

#[test]
fn encoders_write_the_corpus() {
    let encode_groups = ids::GROUPS
        .iter()
        .filter(|g| g.direction == Direction::Encode);
    for group in encode_groups {
        let corpus = group.corpus.build();
        let name = group.name;

        // stompkit writes exactly the broker's bytes (less the EOLs between frames).
        let frames: Vec<_> = corpus
            .messages
            .iter()
            .map(drivers::stompkit_frame)
            .collect();
        let mut dst = BytesMut::new();
        drivers::encode_stompkit(&Encoder::new(Version::V1_2), &frames, &mut dst);
        assert_eq!(dst.len(), corpus.encoded_bytes(), "{name}");
        assert!(dst[..] == frames_only(&corpus)[..], "{name}: bytes differ");

        // iridium-stomp's output reads back as the same frames.
        let frames = corpus.messages.iter().map(drivers::iridium_frame).collect();
        let mut dst = BytesMut::new();
        drivers::encode_iridium(&mut drivers::iridium_codec(), frames, &mut dst);
        let decoded = frames_of(&dst);
        assert_eq!(decoded.len(), corpus.frames(), "{name}");
        for (frame, message) in decoded.iter().zip(&corpus.messages) {
            assert_eq!(frame.command(), Command::Message, "{name}");
            same_content(frame, message);
        }

        // tokio-stomp-2 writes SEND frames with the same headers (destination first).
        let sends = corpus
            .messages
            .iter()
            .map(drivers::tokio_stomp_send)
            .collect();
        let mut dst = BytesMut::new();
        drivers::encode_tokio_stomp(&mut tokio_stomp_2::client::ClientCodec, sends, &mut dst);
        let decoded = frames_of(&dst);
        assert_eq!(decoded.len(), corpus.frames(), "{name}");
        for (frame, message) in decoded.iter().zip(&corpus.messages) {
            assert_eq!(frame.command(), Command::Send, "{name}");
            assert_eq!(frame.headers().len(), message.headers.len(), "{name}");
            for (header, value) in &message.headers {
                assert_eq!(frame.header_str(header), Some(value.as_str()), "{name}");
            }
            assert_eq!(frame.body(), &message.body[..], "{name}");
        }
    }
}
