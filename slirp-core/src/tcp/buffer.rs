//! A byte ring over embedder-supplied memory, used for both directions of a connection.
//!
//! The ring keeps an explicit length, so "full" and "empty" cannot be confused (the old slirp's
//! `sbuf` compared read and write pointers). Besides the stored ("allocated") bytes it lets the
//! receive side write into the free space past them at an offset: out-of-order segments land
//! where they belong and become allocated once the hole before them fills. Every operation clamps
//! to the capacity; a zero-capacity ring is valid and simply never holds anything.

use managed::ManagedSlice;

/// See the module documentation.
#[derive(Debug)]
pub struct RingBuffer<'a> {
    storage: ManagedSlice<'a, u8>,
    read_at: usize,
    len: usize,
}

impl<'a> RingBuffer<'a> {
    /// A ring over `storage` (its whole length is the capacity).
    pub fn new(storage: impl Into<ManagedSlice<'a, u8>>) -> Self {
        RingBuffer { storage: storage.into(), read_at: 0, len: 0 }
    }

    /// Gives the memory back (for pooling by the embedder).
    pub fn into_storage(self) -> ManagedSlice<'a, u8> {
        self.storage
    }

    /// Size of the region.
    pub fn capacity(&self) -> usize {
        self.storage.len()
    }

    /// Bytes stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that could still be stored.
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    fn wrap(&self, at: usize) -> usize {
        let cap = self.capacity();
        if cap == 0 {
            0
        } else {
            at % cap
        }
    }

    /// Forgets everything and, when empty, moves the read position to the start so the free
    /// space is one contiguous run (only for rings that hold nothing past the stored bytes).
    pub fn rewind_if_empty(&mut self) {
        if self.len == 0 {
            self.read_at = 0;
        }
    }

    /// Appends as much of `data` as fits; returns how much.
    pub fn enqueue_slice(&mut self, data: &[u8]) -> usize {
        let n = self.write_unallocated(0, data);
        self.len += n;
        n
    }

    /// Lets `fill` write straight into the contiguous free space after the stored bytes and
    /// appends what it says it wrote (clamped to the space it was given).
    pub fn enqueue_with<F: FnOnce(&mut [u8]) -> usize>(&mut self, fill: F) -> usize {
        if self.free() == 0 {
            return 0;
        }
        let start = self.wrap(self.read_at + self.len);
        let end = (start + self.free()).min(self.capacity());
        let n = fill(&mut self.storage[start..end]).min(end - start);
        self.len += n;
        n
    }

    /// Writes `data` into the free space starting `offset` bytes past the stored bytes, without
    /// storing it. Clamped to the free space; returns how many bytes were written.
    pub fn write_unallocated(&mut self, offset: usize, data: &[u8]) -> usize {
        let free = self.free();
        if offset >= free {
            return 0;
        }
        let n = data.len().min(free - offset);
        let start = self.wrap(self.read_at + self.len + offset);
        let first = n.min(self.capacity() - start);
        self.storage[start..start + first].copy_from_slice(&data[..first]);
        self.storage[..n - first].copy_from_slice(&data[first..n]);
        n
    }

    /// Marks `n` bytes after the stored ones (written with [`write_unallocated`]) as stored.
    ///
    /// [`write_unallocated`]: Self::write_unallocated
    pub fn enqueue_unallocated(&mut self, n: usize) -> usize {
        let n = n.min(self.free());
        self.len += n;
        n
    }

    /// Drops up to `n` bytes from the front; returns how many.
    pub fn dequeue(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        self.read_at = self.wrap(self.read_at + n);
        self.len -= n;
        n
    }

    /// With nothing stored, moves the read position over `n` bytes of free space, as if they had
    /// been stored and consumed (bytes handed on without being buffered). Bytes written past the
    /// stored ones keep their places relative to the stream.
    pub fn skip_empty(&mut self, n: usize) {
        if self.len == 0 {
            let n = n.min(self.capacity());
            self.read_at = self.wrap(self.read_at + n);
        }
    }

    /// The stored bytes `[offset, offset + len)`, clamped to what is stored, as up to two slices
    /// (the second is non-empty when the range wraps).
    pub fn get(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        let len = len.min(self.len - offset);
        let start = self.wrap(self.read_at + offset);
        let first = len.min(self.capacity() - start);
        (&self.storage[start..start + first], &self.storage[..len - first])
    }

    /// The stored bytes from the front as up to two slices.
    pub fn front_pair(&self) -> (&[u8], &[u8]) {
        self.get(0, self.len)
    }

    /// The first contiguous run of stored bytes.
    pub fn front(&self) -> &[u8] {
        self.front_pair().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn enqueue_dequeue_wraps() {
        let mut r = RingBuffer::new(vec![0u8; 8]);
        assert_eq!(r.enqueue_slice(b"abcdef"), 6);
        assert_eq!(r.dequeue(4), 4);
        assert_eq!(r.enqueue_slice(b"ghijklmn"), 6);
        assert_eq!(r.len(), 8);
        assert_eq!(r.free(), 0);
        let (a, b) = r.front_pair();
        assert_eq!([a, b].concat(), b"efghijkl");
        let (a, b) = r.get(3, 3);
        assert_eq!([a, b].concat(), b"hij");
        assert_eq!(r.enqueue_slice(b"x"), 0);
        assert_eq!(r.dequeue(100), 8);
        assert!(r.is_empty());
    }

    #[test]
    fn enqueue_with_offers_contiguous_space() {
        let mut r = RingBuffer::new(vec![0u8; 8]);
        r.enqueue_slice(b"abcdef");
        r.dequeue(6);
        let n = r.enqueue_with(|free| {
            assert_eq!(free.len(), 2);
            free.copy_from_slice(b"gh");
            99
        });
        assert_eq!(n, 2);
        r.dequeue(2);
        r.rewind_if_empty();
        assert_eq!(r.enqueue_with(|free| free.len()), 8);
    }

    #[test]
    fn unallocated_writes_and_skip() {
        let mut r = RingBuffer::new(vec![0u8; 8]);
        r.enqueue_slice(b"abc");
        r.dequeue(3);
        assert_eq!(r.write_unallocated(2, b"XYZ"), 3);
        r.skip_empty(2);
        assert_eq!(r.enqueue_unallocated(3), 3);
        assert_eq!(r.front_pair().0.len() + r.front_pair().1.len(), 3);
        let (a, b) = r.front_pair();
        assert_eq!([a, b].concat(), b"XYZ");
        assert_eq!(r.write_unallocated(5, b"toolong"), 0);
        assert_eq!(r.write_unallocated(4, b"toolong"), 1);
    }

    #[test]
    fn zero_capacity_is_inert() {
        let mut r = RingBuffer::new(vec![]);
        assert_eq!(r.enqueue_slice(b"a"), 0);
        assert_eq!(r.enqueue_with(|f| f.len()), 0);
        assert_eq!(r.write_unallocated(0, b"a"), 0);
        r.skip_empty(5);
        assert_eq!(r.dequeue(1), 0);
        assert_eq!(r.get(0, 1), (&[][..], &[][..]));
    }
}
