//! The benchmark corpus: what a client receives from a STOMP 1.2 broker.
//!
//! Every corpus is a list of [`Message`]s (header values as the application sees them,
//! unescaped) and the bytes a broker sends for them ([`Corpus::wire`]). The bytes are written
//! here by hand, not by the encoder under test, and every frame ends with `\0\n` as RabbitMQ
//! sends it. `tests/corpus.rs` checks that stompkit-codec and the anchors read them back.
//!
//! | kind | what |
//! | --- | --- |
//! | [`Kind::Small`] (a) | 1000 MESSAGE frames of a job-offer push: 8 headers, ~100-byte JSON body |
//! | [`Kind::Body64K`] (b) | one MESSAGE frame with a 64 KiB body and `content-length` |
//! | [`Kind::Body1M`] (c) | one MESSAGE frame with a 1 MiB body and `content-length` |
//! | [`Kind::Escaped`] (d) | 1000 frames like (a) whose headers need escaping (ActiveMQ-style ids) |
//! | [`Kind::Heartbeats`] (e) | the frames of (a), each followed by two extra heart-beat EOLs |

use std::fmt::Write as _;

/// Frames in the stream corpora (a), (d) and (e).
pub const STREAM_FRAMES: usize = 1000;

/// Body size of corpus (b).
pub const BODY_64K: usize = 64 * 1024;

/// Body size of corpus (c).
pub const BODY_1M: usize = 1024 * 1024;

/// Heart-beat EOLs after each frame of corpus (e), on top of the EOL that ends every frame.
pub const HEARTBEATS_PER_FRAME: usize = 2;

/// A byte found in no corpus. The memchr floor looks for it, so it reads the whole buffer.
pub const ABSENT_BYTE: u8 = 0xFF;

/// One frame's content: headers in wire order (values unescaped) and body.
///
/// Every frame of the corpus is a `MESSAGE` and carries `content-length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `(name, value)` pairs in wire order, as the application sees them (unescaped).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Message {
    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A corpus item: its frames and the bytes a broker sends for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// Which corpus this is.
    pub kind: Kind,
    /// The frames, in stream order.
    pub messages: Vec<Message>,
    /// The stream: each frame as STOMP 1.2 bytes, ended by `\0\n`, plus any heart-beats.
    pub wire: Vec<u8>,
    /// Heart-beat EOLs in the stream besides the EOL right after each frame's NUL.
    pub extra_heartbeats: usize,
}

impl Corpus {
    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.messages.len()
    }

    /// Size of the stream in bytes.
    pub fn bytes(&self) -> usize {
        self.wire.len()
    }

    /// EOLs between frames: one after every frame's NUL, plus the extra heart-beats.
    pub fn eols(&self) -> usize {
        self.frames() + self.extra_heartbeats
    }

    /// Size of the frames alone (each ending at its NUL, no EOLs between them): what an
    /// encoder writes for [`messages`](Self::messages).
    pub fn encoded_bytes(&self) -> usize {
        self.wire.len() - self.eols()
    }
}

/// The corpus items, (a) to (e).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// (a) A stream of small MESSAGE frames.
    Small,
    /// (b) One frame with a 64 KiB body.
    Body64K,
    /// (c) One frame with a 1 MiB body.
    Body1M,
    /// (d) A stream of frames whose headers are escaped.
    Escaped,
    /// (e) The frames of (a) with heart-beats interleaved.
    Heartbeats,
}

impl Kind {
    /// All kinds, (a) to (e).
    pub const ALL: [Self; 5] = [
        Self::Small,
        Self::Body64K,
        Self::Body1M,
        Self::Escaped,
        Self::Heartbeats,
    ];

    /// The letter the docs and reports call it by.
    pub fn letter(self) -> char {
        match self {
            Self::Small => 'a',
            Self::Body64K => 'b',
            Self::Body1M => 'c',
            Self::Escaped => 'd',
            Self::Heartbeats => 'e',
        }
    }

    /// A short description for tables.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Small => "1000 small MESSAGE frames (8 headers, ~100 B JSON body)",
            Self::Body64K => "1 MESSAGE frame, 64 KiB body, content-length",
            Self::Body1M => "1 MESSAGE frame, 1 MiB body, content-length",
            Self::Escaped => "1000 MESSAGE frames with escaped headers",
            Self::Heartbeats => "1000 small frames, 2 heart-beats after each",
        }
    }

    /// Builds the corpus (deterministic: the same bytes on every call).
    pub fn build(self) -> Corpus {
        let (messages, extra_per_frame) = match self {
            Self::Small => ((0..STREAM_FRAMES).map(job_offer).collect(), 0),
            Self::Body64K => (vec![large(BODY_64K)], 0),
            Self::Body1M => (vec![large(BODY_1M)], 0),
            Self::Escaped => ((0..STREAM_FRAMES).map(escaped).collect(), 0),
            Self::Heartbeats => (
                (0..STREAM_FRAMES).map(job_offer).collect::<Vec<_>>(),
                HEARTBEATS_PER_FRAME,
            ),
        };
        let wire = render(&messages, extra_per_frame);
        Corpus {
            kind: self,
            extra_heartbeats: messages.len() * extra_per_frame,
            messages,
            wire,
        }
    }
}

/// Adds `content-length` for `body` and makes the message.
fn with_body(mut headers: Vec<(String, String)>, body: Vec<u8>) -> Message {
    headers.push(("content-length".to_owned(), body.len().to_string()));
    Message { headers, body }
}

fn pair(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// A job-offer push as RabbitMQ delivers it to a STOMP 1.2 subscriber (client ack).
fn job_offer(n: usize) -> Message {
    let id = format!(
        "T_sub-job-offers@@session-Jc9rV2cZ8ed2Uq3uX1rG4w@@{}",
        n + 1
    );
    let headers = vec![
        pair("subscription", "sub-job-offers"),
        pair("destination", "/queue/job-offers"),
        pair("message-id", id.clone()),
        pair("redelivered", "false"),
        pair("ack", id),
        pair("content-type", "application/json"),
        pair("persistent", "true"),
    ];
    with_body(headers, job_json(n).into_bytes())
}

/// About 100 bytes of JSON, a little different per frame.
fn job_json(n: usize) -> String {
    let shifts = ["early", "late", "night"];
    format!(
        "{{\"jobId\":{},\"title\":\"Forklift operator\",\"site\":\"DUB-{}\",\"rate\":{}.50,\"shift\":\"{}\",\"ttl\":900}}",
        4_100_000 + n * 7,
        n % 9 + 1,
        14 + n % 8,
        shifts[n % shifts.len()],
    )
}

/// A job-offer push as ActiveMQ delivers it: ids and a routing header with colons, a
/// header with a backslash and one with a line feed, all escaped on the wire.
fn escaped(n: usize) -> Message {
    let id = format!("ID:jobhost-40123-1717171717171-1:1:1:1:{}", n + 1);
    let headers = vec![
        pair("destination", "/queue/job-offers"),
        pair("message-id", id.clone()),
        pair("subscription", "sub:0"),
        pair("ack", id),
        pair("content-type", "application/json"),
        pair("x-route", format!("eu\\west:{}", n % 4)),
        pair("x-note", "line one\nline two"),
    ];
    with_body(headers, job_json(n).into_bytes())
}

/// A frame whose body is `len` bytes of printable ASCII (no NUL, no [`ABSENT_BYTE`]).
fn large(len: usize) -> Message {
    let mut body = Vec::with_capacity(len);
    // A simple xorshift keeps the body from being one repeated run.
    let mut state: u32 = 0x9E37_79B9;
    while body.len() < len {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        body.push(b' ' + (state % 95) as u8);
    }
    let headers = vec![
        pair("subscription", "sub-reports"),
        pair("destination", "/queue/reports"),
        pair(
            "message-id",
            "T_sub-reports@@session-Jc9rV2cZ8ed2Uq3uX1rG4w@@1",
        ),
        pair("redelivered", "false"),
        pair("ack", "T_sub-reports@@session-Jc9rV2cZ8ed2Uq3uX1rG4w@@1"),
        pair("content-type", "application/octet-stream"),
        pair("persistent", "true"),
    ];
    with_body(headers, body)
}

/// STOMP 1.2 header escaping (spec: "Value Encoding").
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            ':' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

/// The stream a broker sends: each message as a `MESSAGE` frame ending `\0\n`, then
/// `extra_per_frame` more EOLs.
fn render(messages: &[Message], extra_per_frame: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut head = String::new();
    for message in messages {
        head.clear();
        head.push_str("MESSAGE\n");
        for (name, value) in &message.headers {
            // Writing to a String cannot fail.
            let _ = writeln!(head, "{}:{}", escape(name), escape(value));
        }
        head.push('\n');
        wire.extend_from_slice(head.as_bytes());
        wire.extend_from_slice(&message.body);
        wire.extend_from_slice(b"\0\n");
        wire.extend(std::iter::repeat_n(b'\n', extra_per_frame));
    }
    wire
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let small = Kind::Small.build();
        assert_eq!(small.frames(), STREAM_FRAMES);
        assert!(small.messages.iter().all(|m| m.headers.len() == 8));
        let body = small.messages[0].body.len();
        assert!((90..=110).contains(&body), "body of {body} bytes");
        assert!(
            small
                .wire
                .starts_with(b"MESSAGE\nsubscription:sub-job-offers\n")
        );
        assert!(small.wire.ends_with(b"}\0\n"));

        let heartbeats = Kind::Heartbeats.build();
        assert_eq!(
            heartbeats.eols(),
            STREAM_FRAMES * (1 + HEARTBEATS_PER_FRAME)
        );
        assert_eq!(heartbeats.encoded_bytes(), small.encoded_bytes());

        let escaped = Kind::Escaped.build();
        let head_end = escaped.wire.windows(2).position(|w| w == b"\n\n").unwrap();
        let head = std::str::from_utf8(&escaped.wire[..head_end]).unwrap();
        assert!(head.contains("\nmessage-id:ID\\cjobhost-40123-1717171717171-1\\c1\\c1\\c1\\c1\n"));
        assert!(head.contains("\nx-route:eu\\\\west\\c0\n"));
        assert!(head.contains("\nx-note:line one\\nline two\n"));

        for kind in Kind::ALL {
            let corpus = kind.build();
            assert!(!corpus.wire.contains(&ABSENT_BYTE), "{kind:?}");
            assert_eq!(
                memchr_free_nul_count(&corpus.wire),
                corpus.frames(),
                "{kind:?}"
            );
            for m in &corpus.messages {
                assert_eq!(m.header("content-length"), Some(&*m.body.len().to_string()));
            }
        }
        assert_eq!(Kind::Body1M.build().messages[0].body.len(), BODY_1M);
    }

    fn memchr_free_nul_count(bytes: &[u8]) -> usize {
        bytes.iter().filter(|&&b| b == 0).count()
    }
}
