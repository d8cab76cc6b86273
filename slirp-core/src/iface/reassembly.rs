//! IPv4 and IPv6 fragment reassembly (RFC 791 §3.2 and RFC 8200 §4.5, with RFC 815's hole
//! bookkeeping). Both families share the slots and every rule below.
//!
//! Bounded on every axis: a fixed number of slots (one datagram each), each with a fixed buffer;
//! at most [`MAX_RANGES`] disjoint received ranges per datagram; the reassembled size is capped
//! at 65535 bytes (no "ping of death"); a set that does not complete within the timeout is
//! discarded silently (no ICMP for incomplete sets). The timer starts at the first fragment and
//! is never extended, so a trickle of fragments cannot pin a slot.
//!
//! Overlaps: exact or partial duplicates carrying the same bytes are accepted (a retransmitted
//! datagram re-fragmented along other boundaries is legitimate). Overlapping fragments that
//! disagree are the signature of evasion attacks; as modern stacks do (Linux since 4.19, RFC 5722
//! for IPv6), the whole datagram is discarded rather than picking a winner as the old BSD
//! trimming rules did.

use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::ipv4::{HEADER_LEN, MAX_DATAGRAM};
use crate::wire::ipv6::FragmentHeader;
use crate::wire::{IpProtocol, Ipv4Repr, Ipv6Repr};
use core::net::IpAddr;
#[cfg(test)]
use core::net::Ipv4Addr;
use core::time::Duration;
use managed::ManagedSlice;

/// Most disjoint ranges tracked per datagram; a set with more holes is discarded.
pub const MAX_RANGES: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    ident: u32,
    protocol: IpProtocol,
}

/// The header of a datagram's first fragment, which the reassembled datagram takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum First {
    V4(Ipv4Repr),
    /// The fixed header, its next header set to the fragmentable part's first header.
    V6(Ipv6Repr),
}

/// The bookkeeping of one slot.
#[derive(Debug, Default)]
pub struct SlotState {
    key: Option<Key>,
    deadline: Instant,
    ranges: heapless::Vec<(usize, usize), MAX_RANGES>,
    total: Option<usize>,
    first: Option<First>,
}

impl SlotState {
    fn clear(&mut self) {
        *self = SlotState::default();
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Reassembler<'a> {
    slots: ManagedSlice<'a, ReassemblySlot<'a>>,
}

/// Outcome of adding a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Stored; the datagram is still incomplete.
    Pending,
    /// Stored, after discarding the oldest incomplete datagram to make room.
    PendingEvicted,
    /// The datagram in this slot is complete: read it with [`Reassembler::datagram`], then
    /// [`Reassembler::release`] it.
    Complete(usize),
}

impl<'a> Reassembler<'a> {
    /// A reassembler over the given slots.
    pub fn new(slots: ManagedSlice<'a, ReassemblySlot<'a>>) -> Self {
        let mut r = Reassembler { slots };
        for s in r.slots.iter_mut() {
            s.state.clear();
        }
        r
    }

    /// Adds one fragment (`repr` is its header, `payload` its data). Errors name the drop reason;
    /// the caller counts it.
    pub fn add(
        &mut self,
        now: Instant,
        timeout: Duration,
        repr: &Ipv4Repr,
        payload: &[u8],
    ) -> Result<Added, DropReason> {
        let offset = repr.frag_offset as usize;
        let end = offset + payload.len();
        if (repr.more_frags && (payload.is_empty() || !payload.len().is_multiple_of(8)))
            || HEADER_LEN + end > MAX_DATAGRAM
        {
            return Err(DropReason::FragmentMalformed);
        }
        let key = Key {
            src: IpAddr::V4(repr.src_addr),
            dst: IpAddr::V4(repr.dst_addr),
            ident: u32::from(repr.ident),
            protocol: repr.protocol,
        };
        self.add_keyed(now, timeout, key, (offset, end, repr.more_frags), First::V4(*repr), payload)
    }

    /// Adds one IPv6 fragment: `repr` is its fixed header, `frag` its fragment header and
    /// `payload` the fragment's data (after the fragment header). The unfragmentable part's
    /// extension headers were processed by the caller and are not kept. Same rules as
    /// [`add`](Self::add); the reassembled packet (payload length at most 65535) is read with
    /// [`datagram6`](Self::datagram6).
    pub fn add6(
        &mut self,
        now: Instant,
        timeout: Duration,
        repr: &Ipv6Repr,
        frag: &FragmentHeader,
        payload: &[u8],
    ) -> Result<Added, DropReason> {
        let offset = usize::from(frag.offset);
        let end = offset + payload.len();
        if (frag.more && (payload.is_empty() || !payload.len().is_multiple_of(8))) || end > usize::from(u16::MAX) {
            return Err(DropReason::FragmentMalformed);
        }
        let key = Key {
            src: IpAddr::V6(repr.src_addr),
            dst: IpAddr::V6(repr.dst_addr),
            ident: frag.ident,
            protocol: IpProtocol::from(frag.next_header),
        };
        let first = First::V6(Ipv6Repr { next_header: frag.next_header, ..*repr });
        self.add_keyed(now, timeout, key, (offset, end, frag.more), first, payload)
    }

    fn add_keyed(
        &mut self,
        now: Instant,
        timeout: Duration,
        key: Key,
        (offset, end, more): (usize, usize, bool),
        first: First,
        payload: &[u8],
    ) -> Result<Added, DropReason> {
        let mut evicted = false;
        let idx = match self.slots.iter().position(|s| s.state.key == Some(key) && s.state.deadline > now) {
            Some(i) => i,
            None => {
                let i = match self.slots.iter().position(|s| s.state.key.is_none() || s.state.deadline <= now) {
                    Some(i) => i,
                    None => {
                        // All slots busy with live sets: give up the oldest one. On a lossy link
                        // a set that lost a fragment would otherwise block reassembly for a whole
                        // timeout; the newest datagram is the one most likely to complete.
                        let oldest = self
                            .slots
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, s)| s.state.deadline)
                            .map(|(i, _)| i)
                            .ok_or(DropReason::FragmentNoSlot)?;
                        evicted = true;
                        oldest
                    }
                };
                let st = &mut self.slots[i].state;
                st.clear();
                st.key = Some(key);
                st.deadline = now + timeout;
                i
            }
        };
        let slot = &mut self.slots[idx];
        let result = Self::insert(slot, first, more, offset, end, payload);
        match result {
            Ok(true) => Ok(Added::Complete(idx)),
            Ok(false) if evicted => Ok(Added::PendingEvicted),
            Ok(false) => Ok(Added::Pending),
            Err(e) => {
                slot.state.clear();
                Err(e)
            }
        }
    }

    fn insert(
        slot: &mut ReassemblySlot<'a>,
        first: First,
        more: bool,
        offset: usize,
        end: usize,
        payload: &[u8],
    ) -> Result<bool, DropReason> {
        let st = &mut slot.state;
        if end > slot.buf.len() {
            return Err(DropReason::FragmentTooBig);
        }
        if !more {
            if st.total.is_some_and(|t| t != end) || st.ranges.iter().any(|&(_, e)| e > end) {
                return Err(DropReason::FragmentMalformed);
            }
            st.total = Some(end);
        } else if st.total.is_some_and(|t| end > t) {
            return Err(DropReason::FragmentMalformed);
        }
        // Overlaps must carry the same bytes.
        for &(s, e) in st.ranges.iter() {
            let (lo, hi) = (s.max(offset), e.min(end));
            if lo < hi && slot.buf[lo..hi] != payload[lo - offset..hi - offset] {
                return Err(DropReason::FragmentOverlap);
            }
        }
        slot.buf[offset..end].copy_from_slice(payload);
        if offset == 0 {
            st.first = Some(first);
        }
        // Merge [offset, end) into the sorted, disjoint, non-adjacent range list.
        let mut merged = (offset, end);
        let mut out: heapless::Vec<(usize, usize), MAX_RANGES> = heapless::Vec::new();
        let mut placed = false;
        for &(s, e) in st.ranges.iter() {
            if e < merged.0 {
                out.push((s, e)).map_err(|_| DropReason::FragmentTooBig)?;
            } else if s > merged.1 {
                if !placed {
                    out.push(merged).map_err(|_| DropReason::FragmentTooBig)?;
                    placed = true;
                }
                out.push((s, e)).map_err(|_| DropReason::FragmentTooBig)?;
            } else {
                merged = (merged.0.min(s), merged.1.max(e));
            }
        }
        if !placed {
            out.push(merged).map_err(|_| DropReason::FragmentTooBig)?;
        }
        st.ranges = out;
        Ok(match (st.total, st.ranges.as_slice()) {
            (Some(t), [(0, e)]) => *e == t && st.first.is_some(),
            _ => false,
        })
    }

    /// The header (of the first fragment, fragment fields cleared, `payload_len` the whole
    /// datagram's) and payload of a complete datagram.
    pub fn datagram(&self, idx: usize) -> Option<(Ipv4Repr, &[u8])> {
        let slot = self.slots.get(idx)?;
        let total = slot.state.total?;
        let First::V4(mut repr) = slot.state.first? else { return None };
        repr.more_frags = false;
        repr.frag_offset = 0;
        repr.payload_len = total;
        Some((repr, &slot.buf[..total]))
    }

    /// The fixed header (next header: the fragmentable part's first header; payload length the
    /// whole packet's) and payload of a complete IPv6 packet.
    pub fn datagram6(&self, idx: usize) -> Option<(Ipv6Repr, &[u8])> {
        let slot = self.slots.get(idx)?;
        let total = slot.state.total?;
        let First::V6(mut repr) = slot.state.first? else { return None };
        repr.payload_len = total;
        Some((repr, &slot.buf[..total]))
    }

    /// Frees a slot.
    pub fn release(&mut self, idx: usize) {
        if let Some(s) = self.slots.get_mut(idx) {
            s.state.clear();
        }
    }

    /// The earliest deadline of any datagram in progress.
    pub fn poll_at(&self) -> Option<Instant> {
        self.slots.iter().filter(|s| s.state.key.is_some()).map(|s| s.state.deadline).min()
    }

    /// Discards timed-out sets; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if s.state.key.is_some() && s.state.deadline <= now {
                s.state.clear();
                n += 1;
            }
        }
        n
    }

    /// Number of datagrams in progress.
    #[cfg(test)]
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.state.key.is_some()).count()
    }
}

/// A buffer for reassembling one fragmented IPv4 datagram.
///
/// Its size bounds the largest datagram it can rebuild (65535 bytes covers every IPv4 datagram).
#[derive(Debug)]
pub struct ReassemblySlot<'a> {
    pub(crate) buf: ManagedSlice<'a, u8>,
    pub(crate) state: SlotState,
}

impl<'a> ReassemblySlot<'a> {
    /// A slot over `buf`.
    pub fn new(buf: impl Into<ManagedSlice<'a, u8>>) -> Self {
        ReassemblySlot { buf: buf.into(), state: Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const T: Duration = Duration::from_secs(30);

    fn frag(ident: u16, offset: u16, more: bool, len: usize) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 2, 15),
            dst_addr: Ipv4Addr::new(10, 0, 2, 2),
            protocol: IpProtocol::Udp,
            payload_len: len,
            ttl: 64,
            tos: 0,
            ident,
            dont_frag: false,
            more_frags: more,
            frag_offset: offset,
        }
    }

    fn reasm(slots: usize, size: usize) -> Reassembler<'static> {
        let s: Vec<ReassemblySlot<'static>> = (0..slots).map(|_| ReassemblySlot::new(vec![0u8; size])).collect();
        Reassembler::new(ManagedSlice::Owned(s))
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn feed(r: &mut Reassembler, pieces: &[(usize, usize)], total: usize, d: &[u8]) -> Result<Added, DropReason> {
        let mut last = Ok(Added::Pending);
        for &(o, e) in pieces {
            last = Ok(r.add(Instant::ZERO, T, &frag(1, o as u16, e != total, e - o), &d[o..e])?);
        }
        last
    }

    #[test]
    fn in_order_reorder_and_duplicates_checklist_26() {
        let d = data(3000);
        for order in [
            vec![(0, 1480), (1480, 2960), (2960, 3000)],
            vec![(2960, 3000), (0, 1480), (1480, 2960)],
            vec![(1480, 2960), (1480, 2960), (2960, 3000), (0, 1480)],
        ] {
            let mut r = reasm(2, 65535);
            let res = feed(&mut r, &order, 3000, &d);
            let Ok(Added::Complete(i)) = res else { panic!("{order:?}: {res:?}") };
            let (h, p) = r.datagram(i).unwrap();
            assert_eq!(p, &d[..]);
            assert_eq!(h.payload_len, 3000);
            assert!(!h.more_frags && h.frag_offset == 0);
            r.release(i);
            assert_eq!(r.in_progress(), 0);
        }
    }

    #[test]
    fn consistent_overlap_is_merged_checklist_27() {
        let d = data(2000);
        let mut r = reasm(1, 65535);
        let res = feed(&mut r, &[(0, 1000), (800, 1600), (1592, 2000)], 2000, &d);
        assert!(matches!(res, Ok(Added::Complete(0))));
        assert_eq!(r.datagram(0).unwrap().1, &d[..]);
    }

    #[test]
    fn conflicting_overlap_discards_datagram() {
        let d = data(2000);
        let mut r = reasm(1, 65535);
        assert_eq!(r.add(Instant::ZERO, T, &frag(1, 0, true, 1000), &d[..1000]), Ok(Added::Pending));
        let mut bad = d[800..1600].to_vec();
        bad[100] ^= 0xff; // byte 900: inside the overlap with [0, 1000)
        assert_eq!(r.add(Instant::ZERO, T, &frag(1, 800, true, 800), &bad), Err(DropReason::FragmentOverlap));
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn timeout_discards_without_completing_checklist_28() {
        let d = data(100);
        let mut r = reasm(1, 65535);
        assert_eq!(r.add(Instant::ZERO, T, &frag(1, 0, true, 48), &d[..48]), Ok(Added::Pending));
        assert_eq!(r.poll_at(), Some(Instant::ZERO + T));
        assert_eq!(r.expire(Instant::from_secs(29)), 0);
        assert_eq!(r.expire(Instant::from_secs(30)), 1);
        // The tail arriving later starts a new, incomplete set.
        assert_eq!(r.add(Instant::from_secs(31), T, &frag(1, 48, false, 52), &d[48..]), Ok(Added::Pending));
    }

    #[test]
    fn bounds_checked() {
        let mut r = reasm(1, 4096);
        // Ends past 65535.
        assert_eq!(r.add(Instant::ZERO, T, &frag(1, 65528, false, 16), &[0; 16]), Err(DropReason::FragmentMalformed));
        // Non-multiple-of-8 middle fragment.
        assert_eq!(r.add(Instant::ZERO, T, &frag(1, 0, true, 13), &[0; 13]), Err(DropReason::FragmentMalformed));
        // Bigger than the slot buffer.
        assert_eq!(r.add(Instant::ZERO, T, &frag(1, 4096, false, 8), &[0; 8]), Err(DropReason::FragmentTooBig));
        // Slot taken: a second datagram evicts the oldest incomplete one; after expiry, a new
        // set just takes the slot.
        assert_eq!(r.add(Instant::ZERO, T, &frag(2, 0, true, 8), &[0; 8]), Ok(Added::Pending));
        assert_eq!(r.add(Instant::ZERO, T, &frag(3, 0, true, 8), &[0; 8]), Ok(Added::PendingEvicted));
        assert_eq!(r.add(Instant::from_secs(30), T, &frag(3, 0, true, 8), &[0; 8]), Ok(Added::Pending));
        // Conflicting last fragments.
        assert_eq!(r.add(Instant::from_secs(30), T, &frag(3, 16, false, 8), &[0; 8]), Ok(Added::Pending));
        assert_eq!(
            r.add(Instant::from_secs(30), T, &frag(3, 32, false, 8), &[0; 8]),
            Err(DropReason::FragmentMalformed)
        );
    }

    #[test]
    fn too_many_holes() {
        let mut r = reasm(1, 65535);
        let mut res = Ok(Added::Pending);
        for i in 0..=MAX_RANGES {
            res = r.add(Instant::ZERO, T, &frag(1, (i * 16) as u16, true, 8), &[0; 8]);
        }
        assert_eq!(res, Err(DropReason::FragmentTooBig));
    }

    proptest::proptest! {
        #[test]
        fn any_permutation_reassembles(seed in proptest::num::u64::ANY, n in 1usize..20) {
            let total = n * 64 + 5;
            let d = data(total);
            let mut pieces: Vec<(usize, usize)> = (0..n).map(|i| (i * 64, if i == n - 1 { total } else { (i + 1) * 64 })).collect();
            // Shuffle deterministically and duplicate one piece.
            let mut s = seed;
            for i in (1..pieces.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                pieces.swap(i, (s >> 33) as usize % (i + 1));
            }
            let dup = pieces[(seed as usize) % pieces.len()];
            pieces.insert(0, dup);
            let mut r = reasm(1, 65535);
            let mut done = None;
            for &(o, e) in &pieces {
                match r.add(Instant::ZERO, T, &frag(9, o as u16, e != total, e - o), &d[o..e]) {
                    Ok(Added::Complete(i)) => done = Some(i),
                    Ok(Added::Pending) | Ok(Added::PendingEvicted) => {}
                    Err(e) => proptest::prop_assert!(false, "{:?}", e),
                }
            }
            let i = done.unwrap();
            proptest::prop_assert_eq!(r.datagram(i).unwrap().1, &d[..]);
        }
    }
}
