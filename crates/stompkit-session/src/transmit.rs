//! What the session hands the driver to write.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Bytes to write to the transport, in order, with the end of each STOMP frame and of each
/// heart-beat marked, so that a message-oriented transport (WebSocket) can write one frame
/// per message. A stream transport writes [`bytes`](Self::bytes) whole.
///
/// Derefs to the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    bytes: Bytes,
    ends: Vec<usize>,
}

/// One piece of a [`Transmit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole STOMP frame (with the EOL some brokers expect after it, if any).
    Frame(Bytes),
    /// A heart-beat: one EOL.
    Heartbeat,
}

impl Transmit {
    pub(crate) fn new(bytes: Bytes, ends: Vec<usize>) -> Self {
        debug_assert_eq!(ends.last().copied().unwrap_or(0), bytes.len());
        Self { bytes, ends }
    }

    /// All the bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// All the bytes, without a copy.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Offsets into [`bytes`](Self::bytes) where each frame or heart-beat ends, increasing;
    /// the last is the length.
    pub fn frame_ends(&self) -> &[usize] {
        &self.ends
    }

    /// The frames and heart-beats, in order (each a cheap slice of the same buffer).
    pub fn pieces(&self) -> impl ExactSizeIterator<Item = Piece> + '_ {
        self.ends.iter().enumerate().map(|(i, &end)| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            if end - start == 1 && self.bytes[start] == b'\n' {
                Piece::Heartbeat
            } else {
                Piece::Frame(self.bytes.slice(start..end))
            }
        })
    }
}

impl Deref for Transmit {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Transmit {
    /// Sizes only: the bytes may hold a `CONNECT` with credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transmit")
            .field("len", &self.bytes.len())
            .field("pieces", &self.ends.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_follow_the_frame_ends_and_tell_heart_beats_apart() {
        let t = Transmit::new(
            Bytes::from_static(b"SEND\n\nA\0\nSEND\n\nB\0"),
            vec![8, 9, 17],
        );
        let pieces: Vec<_> = t.pieces().collect();
        assert_eq!(
            pieces,
            [
                Piece::Frame(Bytes::from_static(b"SEND\n\nA\0")),
                Piece::Heartbeat,
                Piece::Frame(Bytes::from_static(b"SEND\n\nB\0")),
            ]
        );
        assert_eq!(&t[..4], b"SEND");
        assert_eq!(format!("{t:?}"), "Transmit { len: 17, pieces: 3 }");
    }
}
