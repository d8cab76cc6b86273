//! A FIFO of socket ids in a fixed region: the sockets waiting for room toward the guest, and
//! the TCP output lines. Bounded by its region; a push into a full ring fails.

use crate::host::SocketId;
use managed::ManagedSlice;

/// A FIFO of sockets waiting for room toward the guest, in a fixed region.
#[derive(Debug)]
pub(crate) struct ReadyRing<'a> {
    buf: ManagedSlice<'a, u64>,
    head: usize,
    len: usize,
}

impl<'a> ReadyRing<'a> {
    pub(crate) fn new(buf: ManagedSlice<'a, u64>) -> Self {
        ReadyRing { buf, head: 0, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, id: SocketId) -> bool {
        let cap = self.buf.len();
        if self.len == cap {
            return false;
        }
        self.buf[(self.head + self.len) % cap] = id.0;
        self.len += 1;
        true
    }

    /// Removes `id` wherever it waits (O(len); only when a ready socket is closed).
    pub(crate) fn remove(&mut self, id: SocketId) {
        let cap = self.buf.len();
        let mut kept = 0;
        for i in 0..self.len {
            let v = self.buf[(self.head + i) % cap];
            if v != id.0 {
                self.buf[(self.head + kept) % cap] = v;
                kept += 1;
            }
        }
        self.len = kept;
    }

    pub(crate) fn pop(&mut self) -> Option<SocketId> {
        if self.len == 0 {
            return None;
        }
        let v = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(SocketId(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_ring_remove_keeps_order() {
        let mut buf = [0u64; 4];
        let mut r = ReadyRing { buf: ManagedSlice::Borrowed(&mut buf[..]), head: 0, len: 0 };
        for i in 1..=4 {
            assert!(r.push(SocketId(i)));
        }
        assert_eq!(r.pop(), Some(SocketId(1)));
        assert!(r.push(SocketId(5)));
        r.remove(SocketId(3));
        r.remove(SocketId(9));
        let mut got = std::vec::Vec::new();
        while let Some(i) = r.pop() {
            got.push(i.0);
        }
        assert_eq!(got, [2, 4, 5]);
    }

    #[test]
    fn ready_ring_is_fifo_and_bounded() {
        let mut buf = [0u64; 2];
        let mut r = ReadyRing { buf: ManagedSlice::Borrowed(&mut buf[..]), head: 0, len: 0 };
        assert!(r.push(SocketId(1)));
        assert!(r.push(SocketId(2)));
        assert!(!r.push(SocketId(3)));
        assert_eq!(r.pop(), Some(SocketId(1)));
        assert!(r.push(SocketId(3)));
        assert_eq!(r.pop(), Some(SocketId(2)));
        assert_eq!(r.pop(), Some(SocketId(3)));
        assert_eq!(r.pop(), None);
    }
}
