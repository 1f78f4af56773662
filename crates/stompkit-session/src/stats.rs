//! Counters, cheap to read at any time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use stompkit_codec::Command;

/// Messages sent to and received from one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestinationStats {
    /// `SEND` frames written.
    pub sent: u64,
    /// `MESSAGE` frames received.
    pub received: u64,
}

/// Frames counted by command (index: position in [`Command::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommandCounts([u64; Command::ALL.len()]);

impl CommandCounts {
    /// Frames with this command.
    pub fn get(&self, command: Command) -> u64 {
        self.0[index(command)]
    }

    pub(crate) fn add(&mut self, command: Command) {
        self.0[index(command)] += 1;
    }
}

fn index(command: Command) -> usize {
    match command {
        Command::Connect => 0,
        Command::Stomp => 1,
        Command::Send => 2,
        Command::Subscribe => 3,
        Command::Unsubscribe => 4,
        Command::Ack => 5,
        Command::Nack => 6,
        Command::Begin => 7,
        Command::Commit => 8,
        Command::Abort => 9,
        Command::Disconnect => 10,
        Command::Connected => 11,
        Command::Message => 12,
        Command::Receipt => 13,
        Command::Error => 14,
    }
}

/// Session statistics. Read with [`Session::stats`](crate::Session::stats); nothing is
/// computed on read except [`uptime`](Self::uptime).
///
/// Per-destination counts are bounded: after
/// [`max_tracked_destinations`](crate::SessionConfig::max_tracked_destinations) distinct
/// destinations, further ones are added to [`other_destinations`](Self::other_destinations).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// When the session was created.
    pub created_at: Option<Instant>,
    /// Connection attempts started.
    pub attempts: u64,
    /// Attempts that reached `CONNECTED`.
    pub connections: u64,
    /// Successful connections after the first.
    pub reconnections: u64,
    /// Attempts and connections that failed.
    pub failures: u64,
    /// `ERROR` frames received.
    pub errors: u64,
    /// When the current connection was established; `None` when not connected.
    pub connected_since: Option<Instant>,
    /// Frames received.
    pub frames_in: u64,
    /// Frames written.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Heart-beats received: end-of-lines between frames, except one directly after a
    /// frame (RabbitMQ ends every frame with one; see
    /// [`eols_after_frames`](Self::eols_after_frames)). A heart-beat from a broker that
    /// sends it at once after a frame is counted there too.
    pub heartbeats_in: u64,
    /// End-of-lines received directly after a frame's NUL.
    pub eols_after_frames: u64,
    /// Heart-beats written.
    pub heartbeats_out: u64,
    /// Messages dropped from the outbound queue (each also reported as an event).
    pub messages_dropped: u64,
    /// Messages delivered flagged as possibly duplicate.
    pub possible_duplicates: u64,
    /// The last time anything was received or written.
    pub last_activity: Option<Instant>,
    /// Frames received, by command.
    pub frames_in_by_command: CommandCounts,
    /// Frames written, by command.
    pub frames_out_by_command: CommandCounts,
    /// Messages to and from destinations beyond the tracked ones.
    pub other_destinations: DestinationStats,
    /// Tracked destinations, in the order first seen; `index` finds them by their bytes.
    destinations: Vec<(String, DestinationStats)>,
    index: HashMap<Box<[u8]>, usize, BuildHasherDefault<WordHash>>,
    /// The destination found last: messages mostly come in runs from one destination.
    last: usize,
    max_destinations: usize,
}

impl Stats {
    pub(crate) fn new(max_destinations: usize) -> Self {
        Self {
            max_destinations,
            ..Self::default()
        }
    }

    /// How long the current connection has been up; `None` when not connected.
    pub fn uptime(&self, now: Instant) -> Option<Duration> {
        self.connected_since
            .map(|since| now.saturating_duration_since(since))
    }

    /// Counts for one destination, if it is tracked.
    pub fn destination(&self, destination: &str) -> Option<&DestinationStats> {
        let &i = self.index.get(destination.as_bytes())?;
        Some(&self.destinations[i].1)
    }

    /// Every tracked destination's counts, in the order they were first seen.
    pub fn destinations(&self) -> impl Iterator<Item = (&str, &DestinationStats)> {
        self.destinations.iter().map(|(d, s)| (d.as_str(), s))
    }

    /// The counts for `destination`: one comparison when it is the destination found last,
    /// one hash lookup when it is tracked already. A new destination is checked for UTF-8
    /// once; one that is not, or one past the tracking limit, counts under
    /// `other_destinations`.
    pub(crate) fn destination_mut(&mut self, destination: &[u8]) -> &mut DestinationStats {
        let last = self.last;
        if self
            .destinations
            .get(last)
            .is_some_and(|(name, _)| name.as_bytes() == destination)
        {
            return &mut self.destinations[last].1;
        }
        let i = match self.index.get(destination) {
            Some(&i) => i,
            None => {
                let Ok(text) = std::str::from_utf8(destination) else {
                    return &mut self.other_destinations;
                };
                if self.destinations.len() >= self.max_destinations {
                    return &mut self.other_destinations;
                }
                self.destinations
                    .push((text.to_owned(), DestinationStats::default()));
                let i = self.destinations.len() - 1;
                self.index.insert(destination.into(), i);
                i
            }
        };
        self.last = i;
        &mut self.destinations[i].1
    }
}

/// A word-at-a-time multiplicative hash: destinations are short and come from our own
/// subscriptions or a broker we chose, and the map is bounded, so speed matters more here
/// than resistance to chosen collisions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WordHash(u64);

impl Default for WordHash {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

/// One step of [`WordHash`]: `state` absorbs `word`.
#[inline]
fn mix(state: u64, word: u64) -> u64 {
    (state.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// The 8 bytes of `bytes` from `at`, little-endian.
#[inline]
fn word(bytes: &[u8], at: usize) -> u64 {
    let chunk: [u8; 8] = bytes[at..at + 8].try_into().expect("8 bytes");
    u64::from_le_bytes(chunk)
}

impl Hasher for WordHash {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Two lanes take alternate words, so that the two chains of multiplies (the latency
    /// of the hash) run side by side; they are mixed into one at the end.
    fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        let (mut a, mut b) = (self.0, self.0.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15);
        let mut at = 0;
        while at + 16 <= len {
            a = mix(a, word(bytes, at));
            b = mix(b, word(bytes, at + 8));
            at += 16;
        }
        if at + 8 <= len {
            a = mix(a, word(bytes, at));
            at += 8;
        }
        let rest = len - at;
        let last = match rest {
            0 => 0,
            // The last 8 bytes, shifted down to the ones not read yet.
            _ if len >= 8 => word(bytes, len - 8) >> (64 - 8 * rest),
            _ => {
                let mut last = [0u8; 8];
                last[..rest].copy_from_slice(&bytes[at..]);
                u64::from_le_bytes(last)
            }
        };
        // The length tells "ab" from "ab\0".
        b = mix(b, last ^ ((rest as u64) << 59));
        self.0 = mix(a, b);
    }
}

#[cfg(test)]
mod tests {
    use super::WordHash;
    use std::collections::HashSet;
    use std::hash::Hasher;

    fn hash(bytes: &[u8]) -> u64 {
        let mut hasher = WordHash::default();
        hasher.write(bytes);
        hasher.finish()
    }

    #[test]
    fn word_hash_tells_apart_lengths_trailing_zeros_and_each_byte() {
        // Every prefix of a 40-byte text (both lanes, every tail length), the same with a
        // NUL appended, and each single-byte change of the whole text: all distinct.
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        let mut seen = HashSet::new();
        for len in 0..=text.len() {
            assert!(seen.insert(hash(&text[..len])), "prefix {len}");
            let mut padded = text[..len].to_vec();
            padded.push(0);
            assert!(seen.insert(hash(&padded)), "prefix {len} + NUL");
        }
        for at in 0..text.len() {
            let mut changed = text.clone();
            changed[at] ^= 0x20;
            assert!(seen.insert(hash(&changed)), "byte {at} changed");
        }
    }
}
