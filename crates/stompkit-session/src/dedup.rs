//! A bounded memory of recent message ids.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Remembers 64-bit fingerprints of the last `capacity` ids; the oldest is forgotten first.
///
/// Fingerprints keep memory at 16 bytes per id and cost one hash per message; two ids
/// sharing a fingerprint (odds 2^-64) would only flag a message as *possibly* duplicate.
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

fn fingerprint(id: &[u8]) -> u64 {
    // SipHash with fixed keys: deterministic across runs, hard to collide on purpose.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(id);
    hasher.finish()
}

impl DuplicateFilter {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashSet::with_capacity_and_hasher(capacity.min(4096), Default::default()),
            order: VecDeque::with_capacity(capacity.min(4096)),
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
