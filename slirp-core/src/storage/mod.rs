//! Fixed memory supplied by the embedder.
//!
//! Nothing in the core allocates. The embedder hands over byte regions (borrowed slices on bare
//! metal, owned vectors with the `alloc` feature) and the core carves its queues out of them. A
//! full queue is backpressure or a counted drop, never a panic and never an allocation.

mod flow_table;
mod frame_queue;

pub use flow_table::{FlowId, FlowSlot, FlowTable, TableFull, LISTS};
pub use frame_queue::{FrameQueue, QueueFull, Record};

use managed::ManagedSlice;

/// A buffer for reassembling one fragmented IPv4 datagram.
///
/// Its size bounds the largest datagram it can rebuild (65535 bytes covers every IPv4 datagram).
#[derive(Debug)]
pub struct ReassemblySlot<'a> {
    pub(crate) buf: ManagedSlice<'a, u8>,
    pub(crate) state: crate::ip::reassembly::SlotState,
}

impl<'a> ReassemblySlot<'a> {
    /// A slot over `buf`.
    pub fn new(buf: impl Into<ManagedSlice<'a, u8>>) -> Self {
        ReassemblySlot { buf: buf.into(), state: Default::default() }
    }
}

/// All the memory one [`Slirp`](crate::Slirp) instance works in.
#[derive(Debug)]
pub struct Storage<'a> {
    /// Frames queued toward the guest, waiting for the guest link to take them.
    pub tx: ManagedSlice<'a, u8>,
    /// Packets waiting for the guest's MAC address to be resolved by ARP.
    pub hold: ManagedSlice<'a, u8>,
    /// Reassembly buffers, one per datagram being rebuilt at once.
    pub reassembly: ManagedSlice<'a, ReassemblySlot<'a>>,
}

impl<'a> Storage<'a> {
    /// Storage over borrowed or owned regions.
    pub fn new(
        tx: impl Into<ManagedSlice<'a, u8>>,
        hold: impl Into<ManagedSlice<'a, u8>>,
        reassembly: impl Into<ManagedSlice<'a, ReassemblySlot<'a>>>,
    ) -> Self {
        Storage { tx: tx.into(), hold: hold.into(), reassembly: reassembly.into() }
    }

    /// Owned storage: `tx_bytes` for the guest-bound queue, `hold_bytes` for packets awaiting
    /// ARP, and `reassembly_slots` buffers of `reassembly_slot_bytes` each.
    #[cfg(feature = "alloc")]
    pub fn with_capacity(
        tx_bytes: usize,
        hold_bytes: usize,
        reassembly_slots: usize,
        reassembly_slot_bytes: usize,
    ) -> Storage<'static> {
        use alloc::vec;
        use alloc::vec::Vec;
        let slots: Vec<ReassemblySlot<'static>> =
            (0..reassembly_slots).map(|_| ReassemblySlot::new(vec![0u8; reassembly_slot_bytes])).collect();
        Storage {
            tx: ManagedSlice::Owned(vec![0u8; tx_bytes]),
            hold: ManagedSlice::Owned(vec![0u8; hold_bytes]),
            reassembly: ManagedSlice::Owned(slots),
        }
    }
}
