//! A bounded table of flows: O(1) insert, lookup by key, lookup by handle, removal, and
//! least-recently-active order for expiry.
//!
//! Entries live in a slab (stable indices, generational [`FlowId`]s so a stale id cannot reach a
//! reused slot). A separate open-addressing index (linear probing, backward-shift deletion) maps
//! keys to slab indices; it has twice as many buckets as the slab has entries, so probe chains
//! stay short. Every entry is also on one of a few activity lists (doubly linked by slab index),
//! ordered from least to most recently touched: the head of each list is the next to expire, so
//! expiry is O(1) per expired flow and finding the next deadline is O(lists).
//!
//! The hash is keyed with a per-instance seed so a guest cannot precompute colliding keys.
//!
//! Owned slots (with `alloc`) are made on demand: a slot vector may be shorter than its capacity,
//! and the table appends a fresh slot (within the capacity already reserved, so without
//! reallocating) when no freed slot is left. The capacity stays the bound; untouched reserved
//! memory is typically not resident, so an idle table costs little more than its index.

use core::hash::{Hash, Hasher};
use managed::ManagedSlice;

const NONE: u32 = u32::MAX;
/// An empty index bucket. Buckets hold slot number + 1, so an index fresh from the allocator
/// (zero pages) is already empty and costs no resident memory until flows land in it.
const EMPTY: u32 = 0;

/// Handle to a flow: slab index plus generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FlowId {
    index: u32,
    gen: u32,
}

impl FlowId {
    /// Packs the id into 64 bits (for event-loop tokens).
    pub const fn to_u64(self) -> u64 {
        ((self.gen as u64) << 32) | self.index as u64
    }

    /// Unpacks an id made by [`to_u64`](Self::to_u64).
    pub const fn from_u64(v: u64) -> FlowId {
        FlowId { index: v as u32, gen: (v >> 32) as u32 }
    }

    /// The slab index (dense, below the table's capacity).
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// The generation (24 bits).
    pub const fn generation(self) -> u32 {
        self.gen
    }

    /// Rebuilds an id from its parts.
    pub const fn from_parts(index: u32, gen: u32) -> FlowId {
        FlowId { index, gen: gen & 0x00ff_ffff }
    }
}

/// One slab entry (public only so embedders can size storage; its fields are private).
#[derive(Debug)]
pub struct FlowSlot<K, V> {
    gen: u32,
    entry: Option<(K, V)>,
    list: u8,
    prev: u32,
    next: u32,
}

impl<K, V> Default for FlowSlot<K, V> {
    fn default() -> Self {
        FlowSlot { gen: 0, entry: None, list: 0, prev: NONE, next: NONE }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY_LIST: List = List { head: NONE, tail: NONE };

/// Number of activity lists a table keeps.
pub const LISTS: usize = 4;

/// The table was full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull;

/// See the module documentation.
#[derive(Debug)]
pub struct FlowTable<'a, K, V> {
    slots: ManagedSlice<'a, FlowSlot<K, V>>,
    index: ManagedSlice<'a, u32>,
    free: u32,
    len: usize,
    lists: [List; LISTS],
    seed: u64,
    /// Most flows: the slots usable now plus those that can still be appended.
    capacity: usize,
}

/// A small keyed hash (FNV-style mixing, splitmix64 finish): the flow tables' bucket hash and
/// the TCP initial sequence numbers. Not cryptographic; keyed so a guest cannot precompute it.
pub(crate) struct SeededHasher(pub(crate) u64);

impl Hasher for SeededHasher {
    fn finish(&self) -> u64 {
        // Final avalanche (splitmix64).
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
        }
    }
}

impl<'a, K: Hash + Eq + Copy, V> FlowTable<'a, K, V> {
    /// A table over `slots` and `index` (at least as many buckets as slots; twice as many keeps
    /// probes short). `seed` keys the hash.
    ///
    /// The capacity is the length of borrowed `slots`; for owned `slots` it is the vector's
    /// capacity, and the slots past its length are appended only when a flow needs one (build it
    /// with `Vec::with_capacity(n)` to reserve `n` slots without touching them). Either way it is
    /// at most the number of index buckets; slots beyond that are never used. When every slot is
    /// taken, [`insert`](Self::insert) returns [`TableFull`].
    pub fn new(slots: ManagedSlice<'a, FlowSlot<K, V>>, index: ManagedSlice<'a, u32>, seed: u64) -> Self {
        let limit = index.len().min(NONE as usize - 2);
        let reserved = match &slots {
            #[cfg(feature = "alloc")]
            ManagedSlice::Owned(v) => v.capacity(),
            _ => slots.len(),
        };
        let capacity = reserved.min(limit);
        let mut t = FlowTable { slots, index, free: NONE, len: 0, lists: [EMPTY_LIST; LISTS], seed, capacity };
        // The index must be able to hold every entry; ignore the slots that would not fit.
        let usable = t.slots.len().min(limit);
        // Only buckets that are not already empty are written: reading a fresh page maps the
        // shared zero page, writing would make it resident.
        for b in t.index.iter_mut().filter(|b| **b != EMPTY) {
            *b = EMPTY;
        }
        for i in (0..usable).rev() {
            let s = &mut t.slots[i];
            s.entry = None;
            s.next = t.free;
            t.free = i as u32;
        }
        t
    }

    /// Owned storage for `capacity` flows (slots made on demand, see [`new`](Self::new)).
    #[cfg(feature = "alloc")]
    pub fn with_capacity(capacity: usize, seed: u64) -> FlowTable<'static, K, V>
    where
        K: 'static,
        V: 'static,
    {
        use alloc::vec::Vec;
        let slots: Vec<FlowSlot<K, V>> = Vec::with_capacity(capacity);
        let index = super::zeroed(EMPTY, (capacity * 2).max(1));
        FlowTable::new(ManagedSlice::Owned(slots), ManagedSlice::Owned(index), seed)
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether no more flows fit.
    pub fn is_full(&self) -> bool {
        self.free == NONE && self.slots.len() >= self.capacity
    }

    /// The most flows the table holds at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A free slot's index: the head of the free list, else a slot appended to an owned vector
    /// within its reserved capacity (no reallocation). `None` when the table is full.
    fn take_free(&mut self) -> Option<u32> {
        if self.free != NONE {
            let i = self.free;
            self.free = self.slots[i as usize].next;
            return Some(i);
        }
        #[cfg(feature = "alloc")]
        if let ManagedSlice::Owned(v) = &mut self.slots {
            if v.len() < self.capacity && v.len() < v.capacity() {
                v.push(FlowSlot::default());
                return Some((v.len() - 1) as u32);
            }
        }
        None
    }

    fn bucket_of(&self, key: &K) -> usize {
        let mut h = SeededHasher(self.seed ^ 0xcbf2_9ce4_8422_2325);
        key.hash(&mut h);
        (h.finish() % self.index.len() as u64) as usize
    }

    fn find_bucket(&self, key: &K) -> Option<usize> {
        let n = self.index.len();
        if n == 0 {
            return None;
        }
        let mut b = self.bucket_of(key);
        for _ in 0..n {
            let e = self.index[b];
            if e == EMPTY {
                return None;
            }
            if let Some((k, _)) = &self.slots[e as usize - 1].entry {
                if k == key {
                    return Some(b);
                }
            }
            b = (b + 1) % n;
        }
        None
    }

    /// The flow with `key`.
    pub fn find(&self, key: &K) -> Option<FlowId> {
        let b = self.find_bucket(key)?;
        let i = self.index[b] - 1;
        Some(FlowId { index: i, gen: self.slots[i as usize].gen })
    }

    /// The key and value of a live flow.
    pub fn get(&self, id: FlowId) -> Option<(&K, &V)> {
        let s = self.slots.get(id.index as usize)?;
        if s.gen != id.gen {
            return None;
        }
        s.entry.as_ref().map(|(k, v)| (k, v))
    }

    /// The value of a live flow, mutably.
    pub fn get_mut(&mut self, id: FlowId) -> Option<&mut V> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.gen != id.gen {
            return None;
        }
        s.entry.as_mut().map(|(_, v)| v)
    }

    /// The id the next [`insert`](Self::insert) will return (`None` when full), so a host socket
    /// can be named before the flow exists.
    pub fn next_id(&self) -> Option<FlowId> {
        if self.free != NONE {
            return Some(FlowId { index: self.free, gen: self.slots[self.free as usize].gen });
        }
        // The slot `insert` would append (a fresh slot starts at generation 0).
        (!self.is_full()).then(|| FlowId { index: self.slots.len() as u32, gen: 0 })
    }

    /// Inserts a new flow on activity list `list` (as most recent). The key must not be present.
    pub fn insert(&mut self, key: K, value: V, list: usize) -> Result<FlowId, TableFull> {
        if list >= LISTS {
            return Err(TableFull);
        }
        let i = self.take_free().ok_or(TableFull)?;
        let n = self.index.len();
        let mut b = self.bucket_of(&key);
        while self.index[b] != EMPTY {
            b = (b + 1) % n;
        }
        let slot = &mut self.slots[i as usize];
        slot.entry = Some((key, value));
        slot.list = list as u8;
        let id = FlowId { index: i, gen: slot.gen };
        self.index[b] = i + 1;
        self.len += 1;
        self.link_tail(i, list);
        Ok(id)
    }

    /// Removes a flow, returning its key and value.
    pub fn remove(&mut self, id: FlowId) -> Option<(K, V)> {
        let (key, _) = self.get(id)?;
        let key = *key;
        let b = self.find_bucket(&key)?;
        self.unlink(id.index);
        let slot = &mut self.slots[id.index as usize];
        let entry = slot.entry.take();
        // Generations are 24 bits so a FlowId fits an event-loop token with room for a kind tag.
        slot.gen = slot.gen.wrapping_add(1) & 0x00ff_ffff;
        slot.next = self.free;
        self.free = id.index;
        self.len -= 1;
        self.unindex(b);
        entry
    }

    /// Empties index bucket `b`.
    fn unindex(&mut self, b: usize) {
        // Backward-shift deletion keeps every probe chain unbroken without tombstones.
        let n = self.index.len();
        let mut hole = b;
        let mut j = (b + 1) % n;
        loop {
            let e = self.index[j];
            if e == EMPTY {
                break;
            }
            let home = match &self.slots[e as usize - 1].entry {
                Some((k, _)) => self.bucket_of(k),
                None => j,
            };
            // Move entry j into the hole if its home is not in the cyclic range (hole, j].
            let in_range = if hole <= j { home > hole && home <= j } else { home > hole || home <= j };
            if !in_range {
                self.index[hole] = e;
                hole = j;
            }
            j = (j + 1) % n;
        }
        self.index[hole] = EMPTY;
    }

    /// Changes the key of a live flow, keeping its id. Fails if `new` is taken.
    pub fn rekey(&mut self, id: FlowId, new: K) -> Result<(), TableFull> {
        if self.find(&new).is_some() {
            return Err(TableFull);
        }
        let old = match self.get(id) {
            Some((k, _)) => *k,
            None => return Err(TableFull),
        };
        let b = self.find_bucket(&old).ok_or(TableFull)?;
        self.unindex(b);
        if let Some((k, _)) = &mut self.slots[id.index as usize].entry {
            *k = new;
        }
        let n = self.index.len();
        let mut b = self.bucket_of(&new);
        while self.index[b] != EMPTY {
            b = (b + 1) % n;
        }
        self.index[b] = id.index + 1;
        Ok(())
    }

    /// Marks a flow as just active and moves it to the tail of `list`.
    pub fn touch(&mut self, id: FlowId, list: usize) {
        if self.get(id).is_none() || list >= LISTS {
            return;
        }
        self.unlink(id.index);
        self.slots[id.index as usize].list = list as u8;
        self.link_tail(id.index, list);
    }

    /// The least recently active flow of `list`.
    pub fn oldest(&self, list: usize) -> Option<FlowId> {
        let i = self.lists.get(list)?.head;
        (i != NONE).then(|| FlowId { index: i, gen: self.slots[i as usize].gen })
    }

    /// Every live flow (slab order).
    pub fn iter(&self) -> impl Iterator<Item = (FlowId, &K, &V)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.entry.as_ref().map(|(k, v)| (FlowId { index: i as u32, gen: s.gen }, k, v)))
    }

    fn link_tail(&mut self, i: u32, list: usize) {
        let tail = self.lists[list].tail;
        {
            let s = &mut self.slots[i as usize];
            s.prev = tail;
            s.next = NONE;
        }
        if tail == NONE {
            self.lists[list].head = i;
        } else {
            self.slots[tail as usize].next = i;
        }
        self.lists[list].tail = i;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next, list) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next, s.list as usize)
        };
        if prev == NONE {
            self.lists[list].head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NONE {
            self.lists[list].tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[i as usize];
        s.prev = NONE;
        s.next = NONE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::vec::Vec;

    #[test]
    fn insert_find_remove_and_stale_ids() {
        let mut t: FlowTable<'static, u32, &str> = FlowTable::with_capacity(2, 7);
        let a = t.insert(1, "a", 0).unwrap();
        let b = t.insert(2, "b", 0).unwrap();
        assert_eq!(t.insert(3, "c", 0), Err(TableFull));
        assert_eq!(t.find(&1), Some(a));
        assert_eq!(t.get(b).map(|(k, v)| (*k, *v)), Some((2, "b")));
        assert_eq!(t.remove(a), Some((1, "a")));
        assert_eq!(t.get(a), None, "stale id");
        assert_eq!(t.find(&1), None);
        let next = t.next_id();
        let c = t.insert(3, "c", 0).unwrap();
        assert_eq!(next, Some(c));
        assert_eq!(t.next_id(), None);
        assert_eq!(c.index(), a.index());
        assert_ne!(c, a);
        assert_eq!(FlowId::from_u64(c.to_u64()), c);
    }

    #[test]
    fn owned_slots_are_made_on_demand_up_to_the_capacity() {
        let mut t: FlowTable<'static, u32, u8> = FlowTable::with_capacity(3, 5);
        assert_eq!((t.slots.len(), t.capacity()), (0, 3), "nothing made up front");
        assert!(!t.is_full());
        let next = t.next_id();
        let a = t.insert(1, 1, 0).unwrap();
        assert_eq!(next, Some(a));
        let b = t.insert(2, 2, 1).unwrap();
        assert_eq!(t.slots.len(), 2);
        t.remove(a);
        let a2 = t.insert(3, 3, 0).unwrap();
        assert_eq!(a2.index(), a.index(), "a freed slot is reused before a new one is made");
        assert_ne!(a2, a);
        assert_eq!(t.slots.len(), 2);
        let next = t.next_id();
        let c = t.insert(4, 4, 0).unwrap();
        assert_eq!(next, Some(c));
        assert!(t.is_full());
        assert_eq!(t.next_id(), None);
        assert_eq!(t.insert(5, 5, 0), Err(TableFull));
        assert_eq!(t.slots.len(), 3);
        assert_eq!(t.find(&2), Some(b));
        assert_eq!(t.iter().count(), 3);
    }

    #[test]
    fn capacity_is_bounded_by_the_index() {
        // Borrowed slots: their length; owned: the reserved capacity; both at most the index.
        let mut slots: [FlowSlot<u32, ()>; 4] = Default::default();
        let mut index = [0u32; 2];
        let mut t = FlowTable::new(ManagedSlice::Borrowed(&mut slots[..]), ManagedSlice::Borrowed(&mut index[..]), 1);
        assert_eq!(t.capacity(), 2);
        t.insert(1, (), 0).unwrap();
        t.insert(2, (), 0).unwrap();
        assert_eq!(t.insert(3, (), 0), Err(TableFull));
        let owned: FlowTable<'static, u32, ()> =
            FlowTable::new(ManagedSlice::Owned(Vec::with_capacity(8)), ManagedSlice::Owned(std::vec![0; 4]), 1);
        assert_eq!(owned.capacity(), 4);
    }

    #[test]
    fn a_borrowed_index_with_stale_contents_starts_empty() {
        // An embedder's static buffer may hold anything (a previous instance, garbage).
        let mut slots: [FlowSlot<u32, u8>; 4] = Default::default();
        let mut index = [7u32, u32::MAX, 1, 3, 0, 2, 9, 4];
        let mut t = FlowTable::new(ManagedSlice::Borrowed(&mut slots[..]), ManagedSlice::Borrowed(&mut index[..]), 5);
        assert_eq!(t.len(), 0);
        for k in 0..8 {
            assert_eq!(t.find(&k), None);
        }
        let a = t.insert(3, 30, 0).unwrap();
        let b = t.insert(4, 40, 0).unwrap();
        assert_eq!(t.find(&3), Some(a));
        assert_eq!(t.find(&4), Some(b));
        assert_eq!(t.remove(a), Some((3, 30)));
        assert_eq!(t.find(&3), None);
        assert_eq!(t.find(&4), Some(b));
    }

    #[test]
    fn rekey_keeps_the_id() {
        let mut t: FlowTable<'static, u32, u8> = FlowTable::with_capacity(4, 3);
        let a = t.insert(1, 10, 0).unwrap();
        let b = t.insert(2, 20, 0).unwrap();
        assert_eq!(t.rekey(a, 2), Err(TableFull), "taken");
        assert_eq!(t.rekey(a, 7), Ok(()));
        assert_eq!(t.find(&7), Some(a));
        assert_eq!(t.find(&1), None);
        assert_eq!(t.find(&2), Some(b));
        assert_eq!(t.get(a).map(|(k, v)| (*k, *v)), Some((7, 10)));
        assert_eq!(t.remove(a), Some((7, 10)));
    }

    #[test]
    fn activity_order() {
        let mut t: FlowTable<'static, u32, ()> = FlowTable::with_capacity(4, 1);
        let a = t.insert(1, (), 0).unwrap();
        let b = t.insert(2, (), 0).unwrap();
        let c = t.insert(3, (), 1).unwrap();
        assert_eq!(t.oldest(0), Some(a));
        t.touch(a, 0);
        assert_eq!(t.oldest(0), Some(b));
        t.touch(b, 1);
        assert_eq!(t.oldest(0), Some(a));
        assert_eq!(t.oldest(1), Some(c));
        t.remove(c);
        assert_eq!(t.oldest(1), Some(b));
        t.remove(b);
        t.remove(a);
        assert_eq!((t.oldest(0), t.oldest(1)), (None, None));
    }

    proptest::proptest! {
        #[test]
        fn matches_a_hashmap(ops in proptest::collection::vec((0u8..3, 0u16..40), 0..400)) {
            let mut t: FlowTable<'static, u16, u16> = FlowTable::with_capacity(16, 99);
            let mut model: HashMap<u16, (FlowId, u16)> = HashMap::new();
            for (op, k) in ops {
                match op {
                    0 => {
                        if model.contains_key(&k) { continue; }
                        match t.insert(k, k * 2, (k % 2) as usize) {
                            Ok(id) => { model.insert(k, (id, k * 2)); }
                            Err(TableFull) => proptest::prop_assert_eq!(model.len(), 16),
                        }
                    }
                    1 => {
                        if let Some((id, _)) = model.remove(&k) {
                            proptest::prop_assert_eq!(t.remove(id), Some((k, k * 2)));
                        }
                    }
                    _ => {
                        let got = t.find(&k);
                        proptest::prop_assert_eq!(got, model.get(&k).map(|e| e.0));
                    }
                }
                proptest::prop_assert_eq!(t.len(), model.len());
            }
            let mut seen: Vec<u16> = Vec::new();
            for l in 0..2 {
                let mut cur = t.oldest(l);
                while let Some(id) = cur {
                    let k = *t.get(id).unwrap().0;
                    seen.push(k);
                    t.remove(id);
                    cur = t.oldest(l);
                }
            }
            proptest::prop_assert_eq!(seen.len(), model.len());
        }
    }
}
