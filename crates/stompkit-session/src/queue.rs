//! The outbound queue: messages sent while disconnected, by priority then arrival.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::{Message, OverflowPolicy, QueueLimits, SendId};

#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) id: SendId,
    pub(crate) message: Message,
    size: usize,
}

/// Highest priority first; first in, first out within a priority.
#[derive(Debug, Default)]
pub(crate) struct OutboundQueue {
    entries: BTreeMap<Key, Queued>,
    /// Expiry times, earliest first, so the next one is found without a scan.
    expiries: BTreeSet<(Instant, Key)>,
    bytes: usize,
    next_seq: u64,
}

type Key = (Reverse<u8>, u64);

#[derive(Debug)]
pub(crate) enum PushError {
    Full(Message),
    TooLarge(Message),
}

impl OutboundQueue {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues `message`. With [`OverflowPolicy::DropOldest`], returns what was evicted to
    /// make room: the oldest entries of the lowest priority present, which is the new
    /// message itself when its priority is below every other.
    pub(crate) fn push(
        &mut self,
        id: SendId,
        message: Message,
        limits: QueueLimits,
        policy: OverflowPolicy,
    ) -> Result<Vec<Queued>, PushError> {
        let size = message.wire_size();
        if size > limits.max_bytes || limits.max_messages == 0 {
            return Err(PushError::TooLarge(message));
        }
        let over = |q: &Self| q.entries.len() > limits.max_messages || q.bytes > limits.max_bytes;
        let fits =
            self.entries.len() < limits.max_messages && self.bytes + size <= limits.max_bytes;
        if !fits && policy == OverflowPolicy::RejectNew {
            return Err(PushError::Full(message));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size;
        let key = (Reverse(message.priority), seq);
        if let Some(at) = message.expires_at {
            self.expiries.insert((at, key));
        }
        self.entries.insert(key, Queued { id, message, size });
        let mut evicted = Vec::new();
        while over(self) {
            match self.pop_oldest_lowest() {
                Some(old) => evicted.push(old),
                None => break,
            }
        }
        Ok(evicted)
    }

    /// The oldest entry of the lowest priority present.
    fn pop_oldest_lowest(&mut self) -> Option<Queued> {
        let (&(lowest, _), _) = self.entries.last_key_value()?;
        let key = *self
            .entries
            .range((lowest, 0)..=(lowest, u64::MAX))
            .next()?
            .0;
        self.remove(key)
    }

    fn remove(&mut self, key: Key) -> Option<Queued> {
        let entry = self.entries.remove(&key)?;
        self.bytes -= entry.size;
        if let Some(at) = entry.message.expires_at {
            self.expiries.remove(&(at, key));
        }
        Some(entry)
    }

    /// The next message to send, left in place.
    pub(crate) fn front(&self) -> Option<&Message> {
        self.entries.first_key_value().map(|(_, q)| &q.message)
    }

    /// The next message to send.
    pub(crate) fn pop_front(&mut self) -> Option<Queued> {
        let key = *self.entries.first_key_value()?.0;
        self.remove(key)
    }

    /// Removes and returns every message expired at `now`, in queue order.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Queued> {
        let mut expired = Vec::new();
        while let Some(&(at, key)) = self.expiries.first() {
            if at > now {
                break;
            }
            expired.extend(self.remove(key));
        }
        // Queue order, as documented (the index is in expiry order).
        expired.sort_by_key(|q| (Reverse(q.message.priority), q.id));
        expired
    }

    /// The earliest expiry time in the queue.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Everything, in queue order.
    pub(crate) fn drain(&mut self) -> Vec<Queued> {
        self.bytes = 0;
        self.expiries.clear();
        std::mem::take(&mut self.entries).into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &'static str, priority: u8) -> Message {
        Message::new("/q", body).priority(priority)
    }

    #[test]
    fn priority_first_then_fifo() {
        let mut q = OutboundQueue::default();
        let limits = QueueLimits::default();
        for (i, p) in [0u8, 5, 0, 5].into_iter().enumerate() {
            assert!(
                q.push(
                    SendId(i as u64),
                    msg("x", p),
                    limits,
                    OverflowPolicy::RejectNew
                )
                .is_ok()
            );
        }
        let order: Vec<u64> = std::iter::from_fn(|| q.pop_front())
            .map(|e| e.id.0)
            .collect();
        assert_eq!(order, [1, 3, 0, 2]);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn drop_oldest_evicts_the_oldest_of_the_lowest_priority() {
        let mut q = OutboundQueue::default();
        let limits = QueueLimits {
            max_messages: 2,
            max_bytes: 1 << 20,
        };
        let p = OverflowPolicy::DropOldest;
        assert!(
            q.push(SendId(0), msg("a", 1), limits, p)
                .unwrap()
                .is_empty()
        );
        assert!(
            q.push(SendId(1), msg("b", 0), limits, p)
                .unwrap()
                .is_empty()
        );
        let evicted = q.push(SendId(2), msg("c", 0), limits, p).unwrap();
        assert_eq!(evicted.iter().map(|e| e.id.0).collect::<Vec<_>>(), [1]);
        assert_eq!(q.len(), 2);
        // A new message below every queued priority is the one dropped.
        let mut q = OutboundQueue::default();
        assert!(
            q.push(SendId(0), msg("a", 5), limits, p)
                .unwrap()
                .is_empty()
        );
        assert!(
            q.push(SendId(1), msg("b", 5), limits, p)
                .unwrap()
                .is_empty()
        );
        let evicted = q.push(SendId(2), msg("c", 1), limits, p).unwrap();
        assert_eq!(evicted.iter().map(|e| e.id.0).collect::<Vec<_>>(), [2]);
    }
}
