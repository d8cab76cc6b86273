//! The bounded containers the engine is built from, over memory supplied by the embedder: the
//! frame queue, the flow table, the timer heap and the ready ring. They know nothing of the
//! protocols that use them (the bottom layer: nothing here imports from above). The memory one
//! engine works in, [`Storage`](crate::Storage), is assembled in `memory.rs`.
//!
//! Nothing in the core allocates. The embedder hands over byte regions (borrowed slices on bare
//! metal, owned vectors with the `alloc` feature) and the core carves its queues out of them. A
//! full queue is backpressure or a counted drop, never a panic and never an allocation.

mod flow_table;
mod frame_queue;
mod ready_ring;
mod timer_heap;

pub(crate) use flow_table::SeededHasher;
pub use flow_table::{FlowId, FlowSlot, FlowTable, TableFull, LISTS};
pub use frame_queue::{FrameQueue, QueueFull, Record};
pub(crate) use ready_ring::ReadyRing;
pub use timer_heap::TimerHeap;

/// UDP mappings in owned storage unless told otherwise.
pub const DEFAULT_UDP_FLOWS: usize = 1024;
/// TCP connections at once in owned storage unless told otherwise.
pub const DEFAULT_TCP_CONNECTIONS: usize = 1024;
/// Each TCP connection's send and receive buffer in owned storage unless told otherwise.
pub const DEFAULT_TCP_BUFFER: usize = 256 * 1024;
/// Largest host datagram passed to the guest in owned storage unless told otherwise.
pub const DEFAULT_MAX_DATAGRAM: usize = 65535;

/// Smallest request [`zeroed`] makes, in bytes: above what glibc's heap can serve from its top
/// chunk with default settings (its mmap threshold, top pad and trim threshold are 128 KiB), so
/// such a request gets freshly mapped pages. musl and jemalloc also map requests this large.
#[cfg(feature = "alloc")]
const FRESH_PAGES_BYTES: usize = 256 * 1024;

/// `len` zero elements (`zero` must be all zero bits, as `0u8`, `0u64` or `(0, 0)`) that cost
/// address space, not resident memory, until they are written.
///
/// A zeroed request served from the heap is cleared with `memset` when its memory was used before
/// (glibc `calloc`), which makes an idle buffer resident; a large request is mapped fresh from the
/// kernel (zero pages, made resident only when touched). So a smaller one is allocated at
/// 256 KiB and truncated: it keeps the larger capacity (address space only) and is
/// `len` elements everywhere else. This is a placement hint, not a guarantee: an allocator that
/// serves the request from memory it used before still clears it, as before.
#[cfg(feature = "alloc")]
pub fn zeroed<T: Clone>(zero: T, len: usize) -> alloc::vec::Vec<T> {
    let fresh = FRESH_PAGES_BYTES / core::mem::size_of::<T>().max(1);
    let mut v = alloc::vec![zero; len.max(fresh)];
    v.truncate(len);
    v
}
