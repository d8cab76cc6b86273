//! A FIFO of variable-length records in one fixed byte region.
//!
//! Each record is a 16-byte header (length, a 32-bit tag, a deadline) followed by its bytes, and
//! is always contiguous: when a record does not fit before the end of the region it starts again
//! at offset 0 and the tail end is left unused until the reader passes it. Push and pop are O(1);
//! a full queue refuses the push and the caller decides (backpressure or a counted drop).

use crate::time::Instant;
use managed::ManagedSlice;

const HEADER: usize = 16;

/// The queue had no room for the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// A record at the head of a [`FrameQueue`].
#[derive(Debug)]
pub struct Record<'q> {
    /// The record's bytes.
    pub data: &'q [u8],
    /// The caller's 32-bit tag (for example the destination address a held packet waits for).
    pub tag: u32,
    /// The caller's deadline for this record.
    pub deadline: Instant,
}

/// See the module documentation.
#[derive(Debug)]
pub struct FrameQueue<'a> {
    buf: ManagedSlice<'a, u8>,
    head: usize,
    tail: usize,
    /// When the writer has wrapped to offset 0, the end of the valid data before the wrap.
    wrap_end: Option<usize>,
    count: usize,
}

impl<'a> FrameQueue<'a> {
    /// A queue over `buf`.
    pub fn new(buf: impl Into<ManagedSlice<'a, u8>>) -> Self {
        FrameQueue { buf: buf.into(), head: 0, tail: 0, wrap_end: None, count: 0 }
    }

    /// Number of records queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no record is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the region in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Bytes not in use (not necessarily contiguous), less one record header.
    pub fn free_bytes(&self) -> usize {
        let used = match self.wrap_end {
            None => self.tail - self.head,
            Some(end) => (end - self.head) + self.tail,
        };
        self.buf.len().saturating_sub(used).saturating_sub(HEADER)
    }

    /// The longest record body that would fit now (contiguous room, less the record header).
    pub fn max_fit(&self) -> usize {
        let room = match self.wrap_end {
            None => (self.buf.len() - self.tail).max(self.head),
            Some(_) => self.head - self.tail,
        };
        room.saturating_sub(HEADER)
    }

    /// Whether a record of `len` bytes would fit now.
    pub fn fits(&self, len: usize) -> bool {
        self.place(HEADER.saturating_add(len)).is_some()
    }

    /// Where a record of `need` bytes would start, and whether placing it wraps.
    fn place(&self, need: usize) -> Option<(usize, bool)> {
        let cap = self.buf.len();
        match self.wrap_end {
            None => {
                if cap - self.tail >= need {
                    Some((self.tail, false))
                } else if self.head >= need {
                    // Wrap: everything before `head` is free. `head == need` leaves the writer
                    // touching the reader, which `wrap_end` disambiguates.
                    Some((0, true))
                } else {
                    None
                }
            }
            Some(_) => (self.head - self.tail >= need).then_some((self.tail, false)),
        }
    }

    /// Appends a record of at most `max_len` bytes; `fill` writes the body into a zeroed buffer
    /// of `max_len` bytes and returns how many it used (clamped to `max_len`).
    pub fn push_with(
        &mut self,
        max_len: usize,
        tag: u32,
        deadline: Instant,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<usize, QueueFull> {
        let need = HEADER.checked_add(max_len).ok_or(QueueFull)?;
        let (start, wraps) = self.place(need).ok_or(QueueFull)?;
        let body = &mut self.buf[start + HEADER..start + need];
        body.fill(0);
        let used = fill(body).min(max_len);
        let hdr = &mut self.buf[start..start + HEADER];
        hdr[0..4].copy_from_slice(&(used as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&tag.to_le_bytes());
        hdr[8..16].copy_from_slice(&deadline.total_micros().to_le_bytes());
        if wraps {
            self.wrap_end = Some(self.tail);
        }
        self.tail = start + HEADER + used;
        self.count += 1;
        Ok(used)
    }

    /// Like [`push_with`](Self::push_with) without zeroing the body first, for the hot path:
    /// `fill` must write every one of the bytes it reports (only those become visible) and
    /// returns them with the record's tag, or `None` to cancel (nothing is queued).
    pub(crate) fn push_with_unzeroed(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<(usize, u32)>,
    ) -> Result<Option<usize>, QueueFull> {
        let need = HEADER.checked_add(max_len).ok_or(QueueFull)?;
        let (start, wraps) = self.place(need).ok_or(QueueFull)?;
        let Some((used, tag)) = fill(&mut self.buf[start + HEADER..start + need]) else { return Ok(None) };
        let used = used.min(max_len);
        let hdr = &mut self.buf[start..start + HEADER];
        hdr[0..4].copy_from_slice(&(used as u32).to_le_bytes());
        hdr[4..8].copy_from_slice(&tag.to_le_bytes());
        hdr[8..16].fill(0);
        if wraps {
            self.wrap_end = Some(self.tail);
        }
        self.tail = start + HEADER + used;
        self.count += 1;
        Ok(Some(used))
    }

    /// Appends a copy of `data`.
    pub fn push(&mut self, data: &[u8], tag: u32, deadline: Instant) -> Result<(), QueueFull> {
        self.push_with(data.len(), tag, deadline, |buf| {
            buf.copy_from_slice(data);
            data.len()
        })
        .map(|_| ())
    }

    fn header_at(&self, pos: usize) -> (usize, u32, Instant) {
        let h = &self.buf[pos..pos + HEADER];
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let tag = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let mut d = [0u8; 8];
        d.copy_from_slice(&h[8..16]);
        (len, tag, Instant::from_micros(u64::from_le_bytes(d)))
    }

    /// The record at the head, if any.
    pub fn peek(&self) -> Option<Record<'_>> {
        if self.count == 0 {
            return None;
        }
        let (len, tag, deadline) = self.header_at(self.head);
        let start = self.head + HEADER;
        Some(Record { data: &self.buf[start..start + len], tag, deadline })
    }

    /// Removes the record at the head (no-op when empty).
    pub fn pop(&mut self) {
        if self.count == 0 {
            return;
        }
        let (len, _, _) = self.header_at(self.head);
        self.head += HEADER + len;
        self.count -= 1;
        if let Some(end) = self.wrap_end {
            if self.head >= end {
                self.head = 0;
                self.wrap_end = None;
            }
        }
        if self.count == 0 {
            self.head = 0;
            self.tail = 0;
            self.wrap_end = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn max_fit_is_the_largest_record_that_fits() {
        let mut q = FrameQueue::new(vec![0u8; 256]);
        assert_eq!(q.max_fit(), 256 - HEADER);
        assert!(q.fits(q.max_fit()) && !q.fits(q.max_fit() + 1));
        q.push(&[1; 100], 0, Instant::ZERO).unwrap();
        q.push(&[2; 50], 0, Instant::ZERO).unwrap();
        assert_eq!(q.max_fit(), 256 - 2 * HEADER - 150 - HEADER);
        assert!(q.fits(q.max_fit()) && !q.fits(q.max_fit() + 1));
        // Once the head moves on, the room before it counts (a wrap).
        q.pop();
        assert_eq!(q.max_fit(), 116 - HEADER);
        assert!(q.fits(q.max_fit()) && !q.fits(q.max_fit() + 1));
        let pushed = q.push_with_unzeroed(q.max_fit(), |b| Some((b.len(), 9))).unwrap();
        assert_eq!(pushed, Some(100));
        // Wrapped: only the gap up to the head remains.
        assert_eq!(q.max_fit(), 0);
        q.pop();
        assert_eq!(q.peek().map(|r| (r.data.len(), r.tag)), Some((100, 9)));
    }

    #[test]
    fn fifo_order_and_wrap() {
        let mut q = FrameQueue::new(vec![0u8; 100]);
        assert!(q.push(&[1; 30], 1, Instant::ZERO).is_ok()); // 46 bytes
        assert!(q.push(&[2; 30], 2, Instant::ZERO).is_ok()); // 92 bytes
        assert_eq!(q.push(&[3; 30], 3, Instant::ZERO), Err(QueueFull));
        q.pop();
        // Now 46 bytes are free at the start: a 30-byte body wraps there.
        assert!(q.push(&[3; 30], 3, Instant::ZERO).is_ok());
        assert_eq!(q.peek().map(|r| r.tag), Some(2));
        q.pop();
        let r = q.peek().map(|r| (r.tag, r.data.to_vec()));
        assert_eq!(r, Some((3, vec![3; 30])));
        q.pop();
        assert!(q.is_empty());
        assert!(q.peek().is_none());
    }

    #[test]
    fn oversized_and_full_are_refused() {
        let mut q = FrameQueue::new(vec![0u8; 64]);
        assert_eq!(q.push(&[0; 49], 0, Instant::ZERO), Err(QueueFull));
        assert!(q.push(&[0; 48], 0, Instant::ZERO).is_ok());
        assert_eq!(q.push(&[], 0, Instant::ZERO), Err(QueueFull));
    }

    #[test]
    fn shrinking_fill_and_zeroed_body() {
        let mut q = FrameQueue::new(vec![0xAAu8; 64]);
        let used = q.push_with(40, 7, Instant::from_millis(3), |b| {
            assert!(b.iter().all(|&x| x == 0), "body must not hold stale bytes");
            b[0] = 9;
            1
        });
        assert_eq!(used, Ok(1));
        let r = q.peek().map(|r| (r.data.to_vec(), r.tag, r.deadline));
        assert_eq!(r, Some((vec![9], 7, Instant::from_millis(3))));
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_a_deque(ops in proptest::collection::vec((0u8..3, 0usize..70), 0..200)) {
            let mut q = FrameQueue::new(vec![0u8; 256]);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut n = 0u8;
            for (op, len) in ops {
                if op < 2 {
                    n = n.wrapping_add(1);
                    let data = vec![n; len];
                    if q.push(&data, n as u32, Instant::ZERO).is_ok() {
                        model.push_back(data);
                    } else {
                        // Refusal is only allowed when the bytes really don't fit.
                        let used: usize = model.iter().map(|d| d.len() + HEADER).sum();
                        proptest::prop_assert!(used + len + HEADER > 256 / 2 || !model.is_empty());
                    }
                } else {
                    let got = q.peek().map(|r| r.data.to_vec());
                    proptest::prop_assert_eq!(got.as_ref(), model.front());
                    q.pop();
                    model.pop_front();
                }
                proptest::prop_assert_eq!(q.len(), model.len());
            }
            while let Some(front) = model.pop_front() {
                let got = q.peek().map(|r| r.data.to_vec());
                proptest::prop_assert_eq!(got, Some(front));
                q.pop();
            }
            proptest::prop_assert!(q.is_empty());
        }
    }
}
