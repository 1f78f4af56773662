//! A bounded memory of recent message ids.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::stats::WordHash;

/// Remembers 64-bit fingerprints of the last `capacity` ids; the oldest is forgotten first.
///
/// Fingerprints keep memory at 16 bytes per id and cost one fast hash per message. Two ids
/// sharing a fingerprint would only flag a message as *possibly* duplicate, which a broker
/// can do anyway (`redelivered:true`), so the hash is built for speed, not to resist
/// collisions made on purpose.
#[derive(Debug)]
pub(crate) struct DuplicateFilter {
    capacity: usize,
    seen: HashSet<u64, BuildHasherDefault<Prehashed>>,
    order: VecDeque<u64>,
}

/// The keys are hashes already.
#[derive(Debug, Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A word-at-a-time hash of `id`, finished with a full avalanche so that every bit of the
/// fingerprint depends on every byte (the set uses both its high and its low bits).
fn fingerprint(id: &[u8]) -> u64 {
    let mut hasher = WordHash::default();
    hasher.write(id);
    let mut x = hasher.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl DuplicateFilter {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            // Grown as ids arrive: an idle session (a thousand of them in one process)
            // should not pay for a full filter up front.
            seen: HashSet::with_hasher(Default::default()),
            order: VecDeque::new(),
        }
    }

    /// Whether `id` was among the remembered ids; remembers it.
    pub(crate) fn check_and_insert(&mut self, id: &[u8]) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let print = fingerprint(id);
        if !self.seen.insert(print) {
            return true;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(print);
        false
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_beyond_capacity() {
        let mut filter = DuplicateFilter::new(2);
        assert!(!filter.check_and_insert(b"a"));
        assert!(filter.check_and_insert(b"a"));
        assert!(!filter.check_and_insert(b"b"));
        assert!(!filter.check_and_insert(b"c"));
        assert_eq!(filter.len(), 2);
        assert!(!filter.check_and_insert(b"a"), "a was forgotten");
        assert!(filter.check_and_insert(b"c"));
    }

    #[test]
    fn capacity_zero_disables() {
        let mut filter = DuplicateFilter::new(0);
        assert!(!filter.check_and_insert(b"a"));
        assert!(!filter.check_and_insert(b"a"));
    }
}
