//! A bounded set of byte ranges, relative to a moving origin.
//!
//! Used twice: on the receive side for the out-of-order data held past `RCV.NXT` (which also
//! yields the SACK blocks we send, RFC 2018), and on the send side as the SACK scoreboard of what
//! the guest reported holding past `SND.UNA` (RFC 6675). At most `N` disjoint ranges are kept, so
//! every operation is O(N) with a small constant N: a peer that opens more holes than that gets
//! its extra segments dropped (receive side) or its extra SACK blocks ignored (send side), never
//! unbounded memory.

/// The set already holds `N` ranges and the new one touches none of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AssemblerFull;

/// See the module documentation. Ranges are `[start, end)` offsets from the origin, sorted,
/// disjoint and not adjacent.
#[derive(Clone, Copy, Debug)]
pub struct Assembler<const N: usize> {
    ranges: [(u32, u32); N],
    count: usize,
    /// Start of the most recently added range's segment (for the first SACK block).
    recent: Option<u32>,
}

impl<const N: usize> Default for Assembler<N> {
    fn default() -> Self {
        Assembler { ranges: [(0, 0); N], count: 0, recent: None }
    }
}

impl<const N: usize> Assembler<N> {
    /// Whether no range is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets every range.
    pub fn clear(&mut self) {
        self.count = 0;
        self.recent = None;
    }

    /// The ranges, lowest first.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges[..self.count]
    }

    /// End of the highest range (0 when empty).
    pub fn highest(&self) -> u32 {
        self.ranges().last().map_or(0, |r| r.1)
    }

    /// Adds `[start, end)`, merging with overlapping or adjacent ranges.
    pub fn add(&mut self, start: u32, end: u32) -> Result<(), AssemblerFull> {
        if start >= end {
            return Ok(());
        }
        let mut i = 0;
        while i < self.count && self.ranges[i].1 < start {
            i += 1;
        }
        let mut j = i;
        while j < self.count && self.ranges[j].0 <= end {
            j += 1;
        }
        if i == j {
            if self.count == N {
                return Err(AssemblerFull);
            }
            self.ranges.copy_within(i..self.count, i + 1);
            self.ranges[i] = (start, end);
            self.count += 1;
        } else {
            let merged = (start.min(self.ranges[i].0), end.max(self.ranges[j - 1].1));
            self.ranges[i] = merged;
            self.ranges.copy_within(j..self.count, i + 1);
            self.count -= j - i - 1;
        }
        self.recent = Some(start);
        Ok(())
    }

    /// Length of the range starting at the origin (0 when there is none).
    pub fn front_len(&self) -> u32 {
        match self.ranges().first() {
            Some(&(0, end)) => end,
            _ => 0,
        }
    }

    /// Moves the origin forward by `n`: ranges below it are dropped or trimmed.
    pub fn shift(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        let mut kept = 0;
        for k in 0..self.count {
            let (s, e) = self.ranges[k];
            if e > n {
                self.ranges[kept] = (s.saturating_sub(n), e - n);
                kept += 1;
            }
        }
        self.count = kept;
        self.recent = self.recent.and_then(|r| r.checked_sub(n));
    }

    /// Whether `[start, end)` is wholly held.
    pub fn contains(&self, start: u32, end: u32) -> bool {
        self.ranges().iter().any(|&(s, e)| s <= start && end <= e)
    }

    /// The first gap at or after `from` and below `limit`, as `[start, end)`; gaps above the
    /// highest range are not reported (nothing says they are lost, RFC 6675's `IsLost`).
    pub fn next_gap(&self, from: u32, limit: u32) -> Option<(u32, u32)> {
        let mut pos = from;
        for &(s, e) in self.ranges() {
            if e <= pos {
                continue;
            }
            if s > pos {
                let end = s.min(limit);
                return (pos < end).then_some((pos, end));
            }
            pos = e;
        }
        None
    }

    /// Up to three ranges for SACK blocks: the one holding the most recent segment first (RFC
    /// 2018 section 4), then the others lowest first.
    pub fn sack_ranges(&self) -> [Option<(u32, u32)>; 3] {
        let mut out = [None; 3];
        let first = self.recent.and_then(|r| self.ranges().iter().position(|&(s, e)| s <= r && r < e));
        let mut n = 0;
        if let Some(f) = first {
            out[0] = Some(self.ranges[f]);
            n = 1;
        }
        for (k, &r) in self.ranges().iter().enumerate() {
            if n == 3 {
                break;
            }
            if Some(k) != first {
                out[n] = Some(r);
                n += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_bounds() {
        let mut a = Assembler::<3>::default();
        a.add(10, 20).unwrap();
        a.add(30, 40).unwrap();
        a.add(50, 60).unwrap();
        assert_eq!(a.add(70, 80), Err(AssemblerFull));
        a.add(20, 30).unwrap(); // adjacent on both sides: one range
        assert_eq!(a.ranges(), &[(10, 40), (50, 60)]);
        a.add(0, 100).unwrap();
        assert_eq!(a.ranges(), &[(0, 100)]);
        assert_eq!(a.front_len(), 100);
        a.shift(100);
        assert!(a.is_empty());
    }

    #[test]
    fn shift_trims_and_gaps() {
        let mut a = Assembler::<4>::default();
        a.add(5, 10).unwrap();
        a.add(20, 30).unwrap();
        a.shift(7);
        assert_eq!(a.ranges(), &[(0, 3), (13, 23)]);
        assert_eq!(a.next_gap(0, 100), Some((3, 13)));
        assert_eq!(a.next_gap(13, 100), None);
        assert_eq!(a.next_gap(3, 8), Some((3, 8)));
        assert!(a.contains(14, 20));
        assert!(!a.contains(2, 4));
    }

    #[test]
    fn sack_order_most_recent_first() {
        let mut a = Assembler::<8>::default();
        a.add(10, 20).unwrap();
        a.add(30, 40).unwrap();
        a.add(50, 60).unwrap();
        a.add(70, 80).unwrap();
        a.add(35, 45).unwrap();
        assert_eq!(a.sack_ranges(), [Some((30, 45)), Some((10, 20)), Some((50, 60))]);
    }
}
