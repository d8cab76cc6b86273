//! The IPv4 fragment reassembler alone, against an oracle: arbitrary fragments (keys, offsets,
//! MF, lengths, identical and conflicting overlaps, empty last fragments), time steps, expiry and
//! releases, over 0-4 slots of any size.
//!
//! The oracle is a plain byte map per slot (bytes received, a presence bit per byte, the total
//! once a last fragment named it) driven by the module's documented rules: a set lives in one
//! slot from its first fragment until its deadline (never extended); a new set takes the first
//! free or expired slot, else evicts the one with the earliest deadline; identical overlaps merge,
//! conflicting ones discard the set; more than `MAX_RANGES` disjoint received ranges discard it;
//! nothing ends past 65535 bytes of datagram. Every call must return exactly what the oracle
//! predicts, a completed datagram must be byte for byte the oracle's (with the header of the
//! last offset-0 fragment), and `poll_at`/`expire` must agree with the oracle's deadlines.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slirp_core::fuzzing::{Added, Reassembler, MAX_RANGES};
use slirp_core::wire::{IpProtocol, Ipv4Repr};
use slirp_core::{DropReason, Instant, ReassemblySlot};
use std::net::Ipv4Addr;
use std::time::Duration;

const IP_HEADER: usize = 20;
const MAX_DATAGRAM: usize = 65535;

#[derive(Arbitrary, Debug)]
enum Fill {
    /// Bytes that depend only on the absolute offset and the seed: two fragments with the same
    /// seed agree wherever they overlap, different seeds (almost always) conflict.
    Pattern(u8),
    /// Explicit bytes, repeated to the fragment's length.
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Frag {
        /// Index into a small set of (src, ident, protocol) keys, so sets collide and interleave.
        key: u8,
        /// Offset in 8-byte units (13 bits on the wire).
        units: u16,
        more: bool,
        len: u16,
        /// Round the length down to a multiple of 8 (as every fragment but the last must be).
        aligned: bool,
        ttl: u8,
        tos: u8,
        fill: Fill,
    },
    /// Moves the clock by this many milliseconds times 64 (0 to 70 minutes).
    Advance(u16),
    /// Moves the clock by up to 255 ms.
    Nudge(u8),
    Expire,
    Release(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    slots: u8,
    /// Slot buffer size: 65535 (any datagram) unless `small`, then `size_small` bytes.
    small: bool,
    size_small: u16,
    timeout_s: u8,
    steps: Vec<Step>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    protocol: IpProtocol,
}

fn key_of(k: u8) -> Key {
    Key {
        src: Ipv4Addr::new(10, 0, 2, 15 + (k >> 2 & 1)),
        dst: Ipv4Addr::new(10, 0, 2, 2),
        ident: u16::from(k & 3) * 0x1111,
        protocol: if k >> 3 & 1 == 0 { IpProtocol::Udp } else { IpProtocol::Icmp },
    }
}

fn pattern(seed: u8, at: usize) -> u8 {
    (at as u8).wrapping_mul(31) ^ ((at >> 8) as u8).wrapping_add(seed.wrapping_mul(101)) ^ seed
}

/// One slot of the oracle.
struct Model {
    key: Option<Key>,
    deadline: Instant,
    data: Vec<u8>,
    /// One bit per byte of `data`: received.
    present: Vec<u64>,
    /// Highest byte offset touched since the last clear (to keep clears cheap).
    high: usize,
    total: Option<usize>,
    first: Option<Ipv4Repr>,
}

impl Model {
    fn new(size: usize) -> Model {
        Model {
            key: None,
            deadline: Instant::ZERO,
            data: vec![0; size],
            present: vec![0; size.div_ceil(64) + 1],
            high: 0,
            total: None,
            first: None,
        }
    }

    fn clear(&mut self) {
        let words = self.high.div_ceil(64) + 1;
        for w in self.present.iter_mut().take(words) {
            *w = 0;
        }
        self.high = 0;
        self.key = None;
        self.deadline = Instant::ZERO;
        self.total = None;
        self.first = None;
    }

    fn has(&self, i: usize) -> bool {
        self.present[i / 64] >> (i % 64) & 1 == 1
    }

    /// Highest received byte + 1 (0 when nothing was received).
    fn max_end(&self) -> usize {
        let words = self.high.div_ceil(64) + 1;
        for w in (0..words.min(self.present.len())).rev() {
            let v = self.present[w];
            if v != 0 {
                return w * 64 + 64 - v.leading_zeros() as usize;
            }
        }
        0
    }

    /// Disjoint, non-adjacent ranges the reassembler would hold: runs of received bytes, plus
    /// the zero-length range an empty last fragment leaves when nothing ends at the total.
    fn ranges(&self) -> usize {
        let words = (self.high.div_ceil(64) + 1).min(self.present.len());
        let mut runs = 0usize;
        let mut carry = 0u64;
        for &w in &self.present[..words] {
            // A run starts at every set bit whose predecessor is clear.
            let prev = (w << 1) | carry;
            runs += (w & !prev).count_ones() as usize;
            carry = w >> 63;
        }
        let marker = self.total.is_some_and(|t| t == 0 || !self.has(t - 1));
        runs + usize::from(marker)
    }

    fn complete(&self) -> bool {
        // One range from 0 to the total: a single run of received bytes (nothing lies past the
        // total) that holds the first and the last byte, or only the empty last fragment's
        // marker when the total is 0.
        match self.total {
            Some(t) => self.first.is_some() && self.ranges() == 1 && (t == 0 || (self.has(0) && self.has(t - 1))),
            None => false,
        }
    }

    /// The reassembler's `insert` on this slot, by the documented rules.
    fn insert(&mut self, repr: &Ipv4Repr, offset: usize, payload: &[u8]) -> Result<bool, DropReason> {
        let end = offset + payload.len();
        if end > self.data.len() {
            return Err(DropReason::FragmentTooBig);
        }
        if !repr.more_frags {
            if self.total.is_some_and(|t| t != end) || self.max_end() > end {
                return Err(DropReason::FragmentMalformed);
            }
            self.total = Some(end);
        } else if self.total.is_some_and(|t| end > t) {
            return Err(DropReason::FragmentMalformed);
        }
        // Byte by byte where bytes were received before, a 64-byte word at a time elsewhere.
        for w in offset / 64..end.div_ceil(64) {
            let (lo, hi) = ((w * 64).max(offset), (w * 64 + 64).min(end));
            let mask = word_mask(lo % 64, hi - w * 64);
            let seen = self.present[w] & mask;
            if seen == 0 {
                continue;
            }
            for i in lo..hi {
                if seen >> (i % 64) & 1 == 1 && self.data[i] != payload[i - offset] {
                    return Err(DropReason::FragmentOverlap);
                }
            }
        }
        self.data[offset..end].copy_from_slice(payload);
        for w in offset / 64..end.div_ceil(64) {
            let (lo, hi) = ((w * 64).max(offset), (w * 64 + 64).min(end));
            self.present[w] |= word_mask(lo % 64, hi - w * 64);
        }
        self.high = self.high.max(end);
        if offset == 0 {
            self.first = Some(*repr);
        }
        if self.ranges() > MAX_RANGES {
            return Err(DropReason::FragmentTooBig);
        }
        Ok(self.complete())
    }
}

/// Bits `from..to` of a word (`to` at most 64).
fn word_mask(from: usize, to: usize) -> u64 {
    let upper = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
    upper & !((1u64 << from) - 1)
}

struct Oracle {
    slots: Vec<Model>,
}

impl Oracle {
    fn add(&mut self, now: Instant, timeout: Duration, repr: &Ipv4Repr, payload: &[u8]) -> Result<Added, DropReason> {
        let offset = usize::from(repr.frag_offset);
        let end = offset + payload.len();
        if (repr.more_frags && (payload.is_empty() || !payload.len().is_multiple_of(8)))
            || IP_HEADER + end > MAX_DATAGRAM
        {
            return Err(DropReason::FragmentMalformed);
        }
        let key = Key { src: repr.src_addr, dst: repr.dst_addr, ident: repr.ident, protocol: repr.protocol };
        let mut evicted = false;
        let idx = match self.slots.iter().position(|s| s.key == Some(key) && s.deadline > now) {
            Some(i) => i,
            None => {
                let i = match self.slots.iter().position(|s| s.key.is_none() || s.deadline <= now) {
                    Some(i) => i,
                    None => {
                        // The earliest deadline; the first such slot on a tie.
                        let mut best: Option<usize> = None;
                        for (i, s) in self.slots.iter().enumerate() {
                            if best.is_none_or(|b| s.deadline < self.slots[b].deadline) {
                                best = Some(i);
                            }
                        }
                        evicted = true;
                        best.ok_or(DropReason::FragmentNoSlot)?
                    }
                };
                let s = &mut self.slots[i];
                s.clear();
                s.key = Some(key);
                s.deadline = now + timeout;
                i
            }
        };
        match self.slots[idx].insert(repr, offset, payload) {
            Ok(true) => Ok(Added::Complete(idx)),
            Ok(false) if evicted => Ok(Added::PendingEvicted),
            Ok(false) => Ok(Added::Pending),
            Err(e) => {
                self.slots[idx].clear();
                Err(e)
            }
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        self.slots.iter().filter(|s| s.key.is_some()).map(|s| s.deadline).min()
    }

    fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for s in &mut self.slots {
            if s.key.is_some() && s.deadline <= now {
                s.clear();
                n += 1;
            }
        }
        n
    }
}

fuzz_target!(|input: Input| {
    let nslots = usize::from(input.slots % 5);
    let size = if input.small { usize::from(input.size_small) } else { MAX_DATAGRAM };
    let timeout = Duration::from_secs(u64::from(input.timeout_s % 60) + 1);
    let slots: Vec<ReassemblySlot<'static>> = (0..nslots).map(|_| ReassemblySlot::new(vec![0u8; size])).collect();
    let mut r = Reassembler::new(slots.into());
    let mut oracle = Oracle { slots: (0..nslots).map(|_| Model::new(size)).collect() };
    let mut now = Instant::from_secs(1000);
    let mut payload = Vec::new();
    for step in input.steps.into_iter().take(256) {
        match step {
            Step::Frag { key, units, more, len, aligned, ttl, tos, fill } => {
                let k = key_of(key);
                let offset = usize::from(units & 0x1fff) * 8;
                let len = if aligned { usize::from(len) & !7 } else { usize::from(len) };
                payload.clear();
                match &fill {
                    Fill::Pattern(seed) => payload.extend((offset..offset + len).map(|at| pattern(*seed, at))),
                    Fill::Bytes(b) if b.is_empty() => payload.resize(len, 0),
                    Fill::Bytes(b) => payload.extend(b.iter().copied().cycle().take(len)),
                }
                let repr = Ipv4Repr {
                    src_addr: k.src,
                    dst_addr: k.dst,
                    protocol: k.protocol,
                    payload_len: len,
                    ttl,
                    tos,
                    ident: k.ident,
                    dont_frag: false,
                    more_frags: more,
                    frag_offset: offset as u16,
                };
                let got = r.add(now, timeout, &repr, &payload);
                let want = oracle.add(now, timeout, &repr, &payload);
                assert_eq!(got, want, "fragment {repr:?} ({} bytes)", payload.len());
                if let Ok(Added::Complete(i)) = got {
                    let (h, data) = r.datagram(i).expect("a completed slot has a datagram");
                    let m = &oracle.slots[i];
                    let total = m.total.expect("complete");
                    assert!(IP_HEADER + data.len() <= MAX_DATAGRAM, "datagram of {} bytes", data.len());
                    assert_eq!(data.len(), total);
                    assert_eq!(data, &m.data[..total], "reassembled bytes differ from the fragments'");
                    let mut first = m.first.expect("complete");
                    first.more_frags = false;
                    first.frag_offset = 0;
                    first.payload_len = total;
                    assert_eq!(h, first, "header is not the first fragment's");
                }
            }
            Step::Advance(ms) => now = now + Duration::from_millis(u64::from(ms) * 64),
            Step::Nudge(ms) => now = now + Duration::from_millis(u64::from(ms)),
            Step::Expire => assert_eq!(r.expire(now), oracle.expire(now)),
            Step::Release(i) => {
                let i = usize::from(i) % (nslots + 1);
                r.release(i);
                if let Some(s) = oracle.slots.get_mut(i) {
                    s.clear();
                }
            }
        }
        assert_eq!(r.poll_at(), oracle.poll_at());
        // A datagram is readable exactly while its slot holds a complete set (released,
        // expired-and-reused or discarded slots have none).
        for i in 0..nslots {
            let m = &oracle.slots[i];
            assert_eq!(r.datagram(i).is_some(), m.key.is_some() && m.total.is_some() && m.first.is_some(), "slot {i}");
        }
    }
});
