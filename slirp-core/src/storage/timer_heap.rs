//! A bounded min-heap of (deadline, flow) entries with lazy deletion.
//!
//! Each flow remembers the one deadline it is scheduled for; rescheduling pushes a new entry and
//! leaves the old one to be skipped when it surfaces (the caller checks the flow's current
//! deadline). When the heap fills up with such stale entries it is rebuilt from the flows' current
//! deadlines, so with room for twice the flows a rebuild happens at most once per that many
//! pushes: O(log n) per operation, amortized.

use crate::time::Instant;
use managed::ManagedSlice;

/// See the module documentation.
#[derive(Debug)]
pub struct TimerHeap<'a> {
    heap: ManagedSlice<'a, (u64, u64)>,
    len: usize,
}

impl<'a> TimerHeap<'a> {
    /// A heap over `storage` (size it at twice the number of flows or more).
    pub fn new(storage: ManagedSlice<'a, (u64, u64)>) -> Self {
        TimerHeap { heap: storage, len: 0 }
    }

    /// Entries held (stale ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a push would fail.
    pub fn is_full(&self) -> bool {
        self.len == self.heap.len()
    }

    /// Drops every entry (before a rebuild).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Adds an entry; `false` when full (rebuild, then push again).
    pub fn push(&mut self, at: Instant, key: u64) -> bool {
        if self.is_full() {
            return false;
        }
        let mut i = self.len;
        self.heap[i] = (at.total_micros(), key);
        self.len += 1;
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                break;
            }
            self.heap.swap(parent, i);
            i = parent;
        }
        true
    }

    /// The earliest entry.
    pub fn peek(&self) -> Option<(Instant, u64)> {
        (self.len > 0).then(|| (Instant::from_micros(self.heap[0].0), self.heap[0].1))
    }

    /// Removes and returns the earliest entry.
    pub fn pop(&mut self) -> Option<(Instant, u64)> {
        if self.len == 0 {
            return None;
        }
        let top = self.heap[0];
        self.len -= 1;
        self.heap[0] = self.heap[self.len];
        let mut i = 0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.len && self.heap[l].0 < self.heap[m].0 {
                m = l;
            }
            if r < self.len && self.heap[r].0 < self.heap[m].0 {
                m = r;
            }
            if m == i {
                break;
            }
            self.heap.swap(i, m);
            i = m;
        }
        Some((Instant::from_micros(top.0), top.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    proptest::proptest! {
        #[test]
        fn pops_in_order(times in proptest::collection::vec(0u64..1000, 0..64)) {
            let mut h = TimerHeap::new(ManagedSlice::Owned(vec![(0, 0); 64]));
            for (i, t) in times.iter().enumerate() {
                proptest::prop_assert!(h.push(Instant::from_micros(*t), i as u64));
            }
            let mut got: Vec<u64> = Vec::new();
            while let Some((t, _)) = h.pop() {
                got.push(t.total_micros());
            }
            let mut want = times.clone();
            want.sort_unstable();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn full_refuses() {
        let mut h = TimerHeap::new(ManagedSlice::Owned(vec![(0, 0); 1]));
        assert!(h.push(Instant::ZERO, 1));
        assert!(!h.push(Instant::ZERO, 2));
        assert_eq!(h.peek(), Some((Instant::ZERO, 1)));
        h.clear();
        assert!(h.is_empty());
    }
}
