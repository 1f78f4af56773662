//! Names of the criterion groups and benches, and what each row of the report is.
//!
//! Criterion stores each result under `target/criterion/<group>/<bench>/`; the benches use
//! these names and the report generator reads them back.

use crate::corpus::Kind;

/// Whether a group measures reading or writing frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bytes to frames.
    Decode,
    /// Frames to bytes.
    Encode,
}

/// What a row is compared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The code under test, stompkit-codec.
    Subject,
    /// An existing Rust STOMP codec.
    Anchor,
    /// A lower bound on the time: the memory traffic alone.
    Floor,
}

/// One implementation in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Criterion's bench name (the directory under the group).
    pub bench: &'static str,
    /// What the report calls it.
    pub label: &'static str,
    /// How it is compared.
    pub role: Role,
    /// Why it is not measured in this group, if it is not.
    pub not_applicable: Option<&'static str>,
    /// A caveat shown next to its figures.
    pub note: Option<&'static str>,
}

/// One criterion group: a direction over one corpus item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// Criterion's group name.
    pub name: &'static str,
    /// Decode or encode.
    pub direction: Direction,
    /// The corpus item.
    pub corpus: Kind,
    /// The rows, subjects first, floor last.
    pub rows: &'static [Row],
}

/// stompkit-codec: `Decoder::decode` / `Encoder::encode`.
pub const STOMPKIT: &str = "stompkit";
/// stompkit-codec in place: `Decoder::decode_slice` over the stream.
pub const STOMPKIT_SLICE: &str = "stompkit_slice";
/// iridium-stomp's `StompCodec` (tokio-util `Decoder` / `Encoder`).
pub const IRIDIUM_CODEC: &str = "iridium_codec";
/// iridium-stomp's `parser::parse_frame_slice` over the stream.
pub const IRIDIUM_PARSER: &str = "iridium_parser";
/// tokio-stomp-2's `client::ClientCodec` (tokio-util `Decoder` / `Encoder`).
pub const TOKIO_STOMP_2: &str = "tokio_stomp_2";
/// `memchr::memchr` of a byte absent from the buffer: one full scan.
pub const MEMCHR_SCAN: &str = "memchr_scan";
/// `memchr::memchr_iter` counting the NULs of the buffer.
pub const MEMCHR_NUL_ITER: &str = "memchr_nul_iter";
/// Copying the encoded bytes into the output buffer.
pub const MEMCPY: &str = "memcpy";

const fn row(bench: &'static str, label: &'static str, role: Role) -> Row {
    Row {
        bench,
        label,
        role,
        not_applicable: None,
        note: None,
    }
}

const fn noted(mut r: Row, note: &'static str) -> Row {
    r.note = Some(note);
    r
}

const fn not_applicable(mut r: Row, why: &'static str) -> Row {
    r.not_applicable = Some(why);
    r
}

const SUBJECT: Row = row(STOMPKIT, "stompkit-codec", Role::Subject);
const SUBJECT_IN_PLACE: Row = noted(
    row(STOMPKIT_SLICE, "stompkit-codec decode_slice", Role::Subject),
    "in place: frames borrow the buffer, no reference count per frame",
);
const IRIDIUM: Row = row(IRIDIUM_CODEC, "iridium-stomp 0.6 StompCodec", Role::Anchor);
const IRIDIUM_RAW: Row = noted(
    row(
        IRIDIUM_PARSER,
        "iridium-stomp 0.6 parse_frame_slice",
        Role::Anchor,
    ),
    "raw parser: no unescaping, no UTF-8 check, heart-beats skipped",
);
const TOKIO: Row = row(TOKIO_STOMP_2, "tokio-stomp-2 0.3 ClientCodec", Role::Anchor);
const SCAN: Row = row(MEMCHR_SCAN, "memchr scan (floor)", Role::Floor);
const NUL_ITER: Row = noted(
    row(MEMCHR_NUL_ITER, "memchr_iter NUL count", Role::Floor),
    "finds every frame end; not used as the floor",
);
const COPY: Row = row(MEMCPY, "memcpy of the output (floor)", Role::Floor);

const IRIDIUM_EOL: &str = "swallows the EOL after each NUL (not reported as a heart-beat)";
const TOKIO_NO_ESCAPES: &str = "does not unescape headers";
const TOKIO_SEND: &str = "client-only encoder: writes SEND frames with the same headers";

/// Every group, in report order.
pub const GROUPS: [Group; 8] = [
    Group {
        name: "decode_a_small",
        direction: Direction::Decode,
        corpus: Kind::Small,
        rows: &[
            SUBJECT,
            SUBJECT_IN_PLACE,
            noted(IRIDIUM, IRIDIUM_EOL),
            IRIDIUM_RAW,
            noted(TOKIO, "skips EOLs between frames without reporting them"),
            SCAN,
            NUL_ITER,
        ],
    },
    Group {
        name: "decode_b_64k",
        direction: Direction::Decode,
        corpus: Kind::Body64K,
        rows: &[SUBJECT, SUBJECT_IN_PLACE, IRIDIUM, IRIDIUM_RAW, TOKIO, SCAN],
    },
    Group {
        name: "decode_c_1m",
        direction: Direction::Decode,
        corpus: Kind::Body1M,
        rows: &[SUBJECT, SUBJECT_IN_PLACE, IRIDIUM, IRIDIUM_RAW, TOKIO, SCAN],
    },
    Group {
        name: "decode_d_escaped",
        direction: Direction::Decode,
        corpus: Kind::Escaped,
        rows: &[
            SUBJECT,
            SUBJECT_IN_PLACE,
            IRIDIUM,
            not_applicable(IRIDIUM_RAW, "returns header values still escaped"),
            not_applicable(TOKIO, TOKIO_NO_ESCAPES),
            SCAN,
        ],
    },
    Group {
        name: "decode_e_heartbeats",
        direction: Direction::Decode,
        corpus: Kind::Heartbeats,
        rows: &[
            SUBJECT,
            SUBJECT_IN_PLACE,
            noted(IRIDIUM, IRIDIUM_EOL),
            IRIDIUM_RAW,
            noted(TOKIO, "skips heart-beats without reporting them"),
            SCAN,
        ],
    },
    Group {
        name: "encode_a_small",
        direction: Direction::Encode,
        corpus: Kind::Small,
        rows: &[SUBJECT, IRIDIUM, noted(TOKIO, TOKIO_SEND), COPY],
    },
    Group {
        name: "encode_c_1m",
        direction: Direction::Encode,
        corpus: Kind::Body1M,
        rows: &[SUBJECT, IRIDIUM, noted(TOKIO, TOKIO_SEND), COPY],
    },
    Group {
        name: "encode_d_escaped",
        direction: Direction::Encode,
        corpus: Kind::Escaped,
        rows: &[SUBJECT, IRIDIUM, noted(TOKIO, TOKIO_SEND), COPY],
    },
];

/// The group called `name`.
///
/// # Panics
/// If there is none: the benches and [`GROUPS`] must agree.
pub fn group(name: &str) -> &'static Group {
    GROUPS
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no bench group {name:?} in ids::GROUPS"))
}

impl Group {
    /// Whether `bench` is measured in this group.
    pub fn measures(&self, bench: &str) -> bool {
        self.rows
            .iter()
            .any(|r| r.bench == bench && r.not_applicable.is_none())
    }
}
