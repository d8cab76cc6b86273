//! All the memory one [`Slirp`](crate::Slirp) instance works in, assembled from the storage
//! containers and the protocols' slot types.

use crate::iface::reassembly::ReassemblySlot;
#[cfg(feature = "alloc")]
use crate::nat::tcp::TcpFlowSlot;
use crate::nat::tcp::TcpStorage;
use crate::nat::UdpFlowSlot;
#[cfg(feature = "alloc")]
use crate::storage::{zeroed, DEFAULT_MAX_DATAGRAM, DEFAULT_TCP_BUFFER, DEFAULT_TCP_CONNECTIONS, DEFAULT_UDP_FLOWS};
use managed::ManagedSlice;

/// All the memory one [`Slirp`](crate::Slirp) instance works in.
#[derive(Debug)]
pub struct Storage<'a> {
    /// Frames queued toward the guest, waiting for the guest link to take them.
    pub tx: ManagedSlice<'a, u8>,
    /// Packets waiting for the guest's MAC address to be resolved by ARP.
    pub hold: ManagedSlice<'a, u8>,
    /// Reassembly buffers, one per datagram being rebuilt at once.
    pub reassembly: ManagedSlice<'a, ReassemblySlot<'a>>,
    /// UDP NAT mappings (its length is the most UDP flows at once; empty: no UDP NAT). An owned
    /// vector may be shorter than its capacity: the capacity is the limit, and slots are appended
    /// as mappings need them (see [`FlowTable::new`](crate::storage::FlowTable::new)).
    pub udp_flows: ManagedSlice<'a, UdpFlowSlot>,
    /// Hash index of the UDP mappings: at least as long as `udp_flows`, twice is best.
    pub udp_index: ManagedSlice<'a, u32>,
    /// Sockets waiting for room toward the guest: one per UDP flow, plus forwards and echo.
    pub ready: ManagedSlice<'a, u64>,
    /// Receive buffer for host datagrams; its length is the largest datagram passed to the guest
    /// (65535 carries any; longer datagrams are truncated by the host). TCP segments are also
    /// built here, so it must hold at least MTU - 20 bytes for TCP to send full segments.
    pub scratch: ManagedSlice<'a, u8>,
    /// The TCP NAT's memory (empty: no TCP connections).
    pub tcp: TcpStorage<'a>,
}

impl<'a> Storage<'a> {
    /// Storage over borrowed or owned regions.
    pub fn new(
        tx: impl Into<ManagedSlice<'a, u8>>,
        hold: impl Into<ManagedSlice<'a, u8>>,
        reassembly: impl Into<ManagedSlice<'a, ReassemblySlot<'a>>>,
    ) -> Self {
        Storage {
            tx: tx.into(),
            hold: hold.into(),
            reassembly: reassembly.into(),
            udp_flows: ManagedSlice::Borrowed(&mut []),
            udp_index: ManagedSlice::Borrowed(&mut []),
            ready: ManagedSlice::Borrowed(&mut []),
            scratch: ManagedSlice::Borrowed(&mut []),
            tcp: TcpStorage::default(),
        }
    }

    /// Owned TCP memory for `connections` at once, each with a `send_bytes` ring (host → guest,
    /// bounds the data in flight toward the guest) and a `recv_bytes` buffer (guest → host, bounds
    /// the window we advertise). Buffers are allocated when a connection needs them and reused.
    ///
    /// The connection slots (about a kilobyte each) are reserved, not built: a slot is made the
    /// first time that many connections are open at once and reused afterwards, so an idle
    /// instance keeps none of them resident. The limit is still `connections`; past it new
    /// connections are refused (the table is full).
    #[cfg(feature = "alloc")]
    pub fn with_tcp_capacity(mut self, connections: usize, send_bytes: usize, recv_bytes: usize) -> Self {
        use alloc::vec::Vec;
        let flows: Vec<TcpFlowSlot<'a>> = Vec::with_capacity(connections);
        // Grown on demand, up to one pair per connection slot (see the TCP NAT's pool).
        let buffers: Vec<Option<crate::tcp::TcpBuffers<'a>>> = Vec::new();
        self.tcp = TcpStorage {
            flows: ManagedSlice::Owned(flows),
            index: ManagedSlice::Owned(zeroed(0u32, (connections * 2).max(1))),
            buffers: ManagedSlice::Owned(buffers),
            timers: ManagedSlice::Owned(zeroed((0, 0), (connections * 2).max(16))),
            out: ManagedSlice::Owned(zeroed(0u64, connections.max(1))),
            out_fast: ManagedSlice::Owned(zeroed(0u64, connections.max(1))),
            lazy_buffers: Some((send_bytes, recv_bytes)),
        };
        self
    }

    /// Adds the NAT's memory to borrowed storage: UDP mapping slots, their index (at least as many
    /// entries as slots), the ready list (slots + [`MAX_FORWARDS`](crate::nat::MAX_FORWARDS) + 2)
    /// and the host receive buffer.
    pub fn with_nat(
        mut self,
        udp_flows: impl Into<ManagedSlice<'a, UdpFlowSlot>>,
        udp_index: impl Into<ManagedSlice<'a, u32>>,
        ready: impl Into<ManagedSlice<'a, u64>>,
        scratch: impl Into<ManagedSlice<'a, u8>>,
    ) -> Self {
        self.udp_flows = udp_flows.into();
        self.udp_index = udp_index.into();
        self.ready = ready.into();
        self.scratch = scratch.into();
        self
    }

    /// Owned NAT memory for `udp_flows` UDP mappings and datagrams up to `max_datagram` bytes.
    /// The mapping slots are reserved and made on demand, as in
    /// [`with_tcp_capacity`](Self::with_tcp_capacity); at most `udp_flows` exist at once.
    #[cfg(feature = "alloc")]
    pub fn with_udp_capacity(mut self, udp_flows: usize, max_datagram: usize) -> Self {
        use alloc::vec::Vec;
        let slots: Vec<UdpFlowSlot> = Vec::with_capacity(udp_flows);
        self.udp_flows = ManagedSlice::Owned(slots);
        self.udp_index = ManagedSlice::Owned(zeroed(0u32, (udp_flows * 2).max(1)));
        self.ready = ManagedSlice::Owned(zeroed(0u64, udp_flows + crate::nat::MAX_FORWARDS + 2));
        self.scratch = ManagedSlice::Owned(zeroed(0u8, max_datagram));
        self
    }

    /// Owned storage: `tx_bytes` for the guest-bound queue, `hold_bytes` for packets awaiting
    /// ARP, `reassembly_slots` buffers of `reassembly_slot_bytes` each, and NAT memory for
    /// [`DEFAULT_UDP_FLOWS`] UDP mappings and datagrams up to [`DEFAULT_MAX_DATAGRAM`] bytes
    /// (change it with [`with_udp_capacity`](Self::with_udp_capacity)) and
    /// [`DEFAULT_TCP_CONNECTIONS`] TCP connections with [`DEFAULT_TCP_BUFFER`] each way (change it
    /// with [`with_buffers`](Self::with_buffers) and [`with_tcp_capacity`](Self::with_tcp_capacity),
    /// which do not allocate the defaults first).
    #[cfg(feature = "alloc")]
    pub fn with_capacity(
        tx_bytes: usize,
        hold_bytes: usize,
        reassembly_slots: usize,
        reassembly_slot_bytes: usize,
    ) -> Storage<'static> {
        Storage::with_buffers(tx_bytes, hold_bytes, reassembly_slots, reassembly_slot_bytes)
            .with_udp_capacity(DEFAULT_UDP_FLOWS, DEFAULT_MAX_DATAGRAM)
            .with_tcp_capacity(DEFAULT_TCP_CONNECTIONS, DEFAULT_TCP_BUFFER, DEFAULT_TCP_BUFFER)
    }

    /// Owned storage without NAT memory (no UDP mappings, no TCP connections; add them with
    /// [`with_udp_capacity`](Self::with_udp_capacity) and
    /// [`with_tcp_capacity`](Self::with_tcp_capacity)): `tx_bytes` for the guest-bound queue,
    /// `hold_bytes` for packets awaiting ARP and `reassembly_slots` buffers of
    /// `reassembly_slot_bytes` each. Each buffer is requested from the allocator zeroed and
    /// large enough to be mapped fresh (see `zeroed`), so it becomes resident only as it
    /// is used: an idle instance keeps almost none of it in memory.
    #[cfg(feature = "alloc")]
    pub fn with_buffers(
        tx_bytes: usize,
        hold_bytes: usize,
        reassembly_slots: usize,
        reassembly_slot_bytes: usize,
    ) -> Storage<'static> {
        use alloc::vec::Vec;
        let slots: Vec<ReassemblySlot<'static>> =
            (0..reassembly_slots).map(|_| ReassemblySlot::new(zeroed(0u8, reassembly_slot_bytes))).collect();
        Storage::new(zeroed(0u8, tx_bytes), zeroed(0u8, hold_bytes), slots)
    }
}
