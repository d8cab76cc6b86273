//! TCP through the NAT: guest connections become host connections, host listeners (port
//! forwards) become connections into the guest.
//!
//! Each connection is a flow in a bounded [`FlowTable`] keyed by the guest's four-tuple, holding
//! the guest-facing [`Tcb`] and the host socket's state; its two buffers come from a pool. All
//! work is O(1) per segment and per host event:
//! - a guest SYN to any address starts a nonblocking host connect; the SYN-ACK goes out only once
//!   it succeeds (refused → RST, unreachable → ICMP unreachable, timeout → RST); the address map
//!   is the UDP NAT's (DNS alias port 53 → upstream, gateway → host loopback unless disabled);
//! - guest bytes are written to the host socket straight from the segment; only what the host
//!   refuses stays in the receive buffer, and the window we advertise is that buffer's free space;
//! - the host socket is read only while the send ring has room, straight into the ring;
//! - flows with something to send wait on a FIFO and are served round robin, a burst each, while
//!   the guest-bound queue has room (the guest link's budget paces us, we never drop for it);
//! - timers live in a heap keyed by flow with lazy deletion.
//!
//! Half-open connections (a guest SYN not yet completed, a forwarded connection the guest has
//! not answered) hold at most [`TcpConfig::half_open_percent`] of the table and give up after
//! [`TcpConfig::handshake_timeout`] (the host connect itself after
//! [`TcpConfig::connect_timeout`]); past the share the oldest of them gives way to a new one
//! ([`DropReason::TcpHalfOpenEvicted`]), so a SYN flood costs at most that many slots and host
//! sockets and never locks working connections out. When the table is full a new connection
//! first takes the slot of the connection longest in TIME_WAIT, then of the oldest half-open
//! one, and is refused with RST only when neither exists (counted as
//! [`DropReason::TcpTableFull`]; no buffers: [`DropReason::TcpNoBuffers`]). TIME_WAIT is short
//! (see [`TcpConfig::time_wait`]) so closed connections do not pin slots.

use crate::host::{HostError, HostSocket, SocketId};
use crate::iface::icmp::Quoted;
use crate::iface::ip::{IcmpError, Ingress, LinkDest};
use crate::iface::ipv4::{reply_header, DEFAULT_TTL};
use crate::iface::Iface;
use crate::nat::forward::Forwards;
use crate::nat::{decode, encode, Kind};
use crate::offload;
use crate::services::aliases::{guest_facing, host_target, Target};
use crate::stats::{DropReason, Stats};
use crate::storage::{FlowId, FlowSlot, FlowTable, ReadyRing, SeededHasher, TimerHeap};
use crate::tcp::{is_connection_request, Events, Tcb, TcpBuffers, TcpConfig, TcpState};
use crate::time::Instant;
use crate::trace::{CloseReason, TraceEvent};
use crate::wire::ethernet::{HEADER_LEN as ETH_LEN, MIN_FRAME_LEN};
use crate::wire::ipv4::HEADER_LEN as IP_LEN;
use crate::wire::ipv6::HEADER_LEN as IP6_LEN;
use crate::wire::{EtherType, EthernetFrame, EthernetRepr};
use crate::wire::{IpProtocol, Ipv4Repr, Ipv6Repr, SeqNumber, TcpRepr};
use core::hash::{Hash, Hasher};
use core::net::{IpAddr, SocketAddr};
use managed::ManagedSlice;

/// Segments one flow may emit per turn before the next flow gets the link.
const EMIT_BURST: usize = 16;
/// Half-open connections always allowed, whatever the share (the whole table if smaller): a
/// small table must still take a burst of parallel connects.
const MIN_HALF_OPEN: usize = 16;
/// Connections accepted from one listener per readiness report.
const ACCEPT_BURST: usize = 16;
/// Buffer pairs kept for reuse when allocated on demand; more are freed as connections close.
#[cfg(feature = "alloc")]
const KEEP_FREE_BUFFERS: usize = 8;

/// The four-tuple of a guest connection, as the guest sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TcpKey {
    guest: SocketAddr,
    remote: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostConn {
    /// Connect in progress.
    Connecting,
    /// Connected (or accepted).
    Connected,
    /// Closed or reset on our side: nothing more goes to the host.
    Gone,
}

/// One TCP connection (public only so embedders can size storage).
#[derive(Debug)]
pub struct TcpFlow<'a> {
    tcb: Tcb<'a>,
    socket: SocketId,
    host: HostConn,
    /// The host said readable and we stopped before it ran dry (send ring full).
    host_readable: bool,
    host_eof: bool,
    host_shut: bool,
    queued: bool,
    timer_at: Option<Instant>,
    /// The guest's initial sequence number (quoted in ICMP errors about its SYN).
    guest_iss: SeqNumber,
    /// The host destination (or client, for forwards).
    host_peer: SocketAddr,
    forwarded: bool,
    /// On the TIME_WAIT list (reclaimed first when the table is full).
    parked: bool,
    /// On the half-open list (handshake not complete), counted in `TcpNat::half_open`.
    half_open: bool,
    /// Why it ends, for the trace (set where a reset, refusal or timeout is seen).
    close_reason: CloseReason,
}

impl<'a> TcpFlow<'a> {
    /// A new connection, half-open, toward host peer `host_peer` over `socket`.
    fn new(tcb: Tcb<'a>, socket: SocketId, host: HostConn, host_peer: SocketAddr, guest_iss: SeqNumber) -> Self {
        TcpFlow {
            tcb,
            socket,
            host,
            host_readable: false,
            host_eof: false,
            host_shut: false,
            queued: false,
            timer_at: None,
            guest_iss,
            host_peer,
            forwarded: false,
            parked: false,
            half_open: true,
            close_reason: CloseReason::Finished,
        }
    }

    /// Whether the connection is over: its TCB closed and nothing the guest sent is still
    /// waiting for the host socket to take it. A connection the guest finished gracefully
    /// (LAST-ACK or TIME-WAIT ran out) while the host was slow to read stays until the host has
    /// it all, as a kernel keeps a closed socket's unread data for its reader.
    fn done(&self) -> bool {
        self.tcb.is_closed() && (self.host != HostConn::Connected || self.tcb.pending_to_host().is_empty())
    }
}

/// The flow table's activity list of flows in TIME_WAIT, oldest first (all others are on list
/// 0). Every TIME_WAIT lasts as long, so the oldest is also the next to expire.
const TIME_WAIT_LIST: usize = 1;
/// The activity list of half-open flows (SYN-SENT, SYN-RECEIVED), oldest first.
const HALF_OPEN_LIST: usize = 2;

/// A slot of the TCP flow table, for sizing [`Storage`](crate::Storage).
pub type TcpFlowSlot<'a> = FlowSlot<TcpKey, TcpFlow<'a>>;

/// One TCP connection as listed by [`Slirp::tcp_connections`](crate::Slirp::tcp_connections).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConnectionInfo {
    /// The guest's end.
    pub guest: SocketAddr,
    /// The address the guest sees on the other end.
    pub remote: SocketAddr,
    /// The host-side peer (destination, or client for forwards).
    pub host_peer: SocketAddr,
    /// Guest-facing state.
    pub state: TcpState,
    /// Host bytes not yet acknowledged by the guest.
    pub send_queue: usize,
    /// Guest bytes the host has not taken yet.
    pub recv_queue: usize,
    /// Opened from a port forward.
    pub forwarded: bool,
}

/// The TCP NAT's state, owned by the engine.
#[derive(Debug)]
pub(crate) struct TcpNat<'a> {
    flows: FlowTable<'a, TcpKey, TcpFlow<'a>>,
    pool: ManagedSlice<'a, Option<TcpBuffers<'a>>>,
    pool_free: usize,
    /// With `alloc`: buffer sizes to allocate when the pool runs dry, and how many exist.
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    lazy: Option<(usize, usize)>,
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    allocated: usize,
    timers: TimerHeap<'a>,
    out: ReadyRing<'a>,
    out_fast: ReadyRing<'a>,
    /// A listener was left with connections pending because the table was full: accept again
    /// once a slot frees (an edge-triggered host will not report it again).
    accept_waiting: bool,
    pub(crate) config: TcpConfig,
    seed: u64,
    /// Flows on the half-open list, and how many may be.
    half_open: usize,
    max_half_open: usize,
}

/// Memory for the TCP NAT inside [`Storage`](crate::Storage).
#[derive(Debug)]
pub struct TcpStorage<'a> {
    /// Connection slots (the most connections at once).
    pub flows: ManagedSlice<'a, TcpFlowSlot<'a>>,
    /// Hash index over the slots: at least as long, twice is best.
    pub index: ManagedSlice<'a, u32>,
    /// Buffer pairs, one per open connection. `None` entries are filled on demand (with
    /// `alloc`, see [`Storage::with_tcp_capacity`](crate::Storage::with_tcp_capacity)); an owned
    /// vector may start empty and grows up to one entry per connection slot.
    pub buffers: ManagedSlice<'a, Option<TcpBuffers<'a>>>,
    /// Timer heap entries: twice the slots.
    pub timers: ManagedSlice<'a, (u64, u64)>,
    /// Bulk output queue entries: one per slot.
    pub out: ManagedSlice<'a, u64>,
    /// Interactive output queue entries: one per slot.
    pub out_fast: ManagedSlice<'a, u64>,
    /// With `alloc`: (send, receive) buffer sizes to allocate on demand.
    pub lazy_buffers: Option<(usize, usize)>,
}

impl Default for TcpStorage<'_> {
    fn default() -> Self {
        TcpStorage {
            flows: ManagedSlice::Borrowed(&mut []),
            index: ManagedSlice::Borrowed(&mut []),
            buffers: ManagedSlice::Borrowed(&mut []),
            timers: ManagedSlice::Borrowed(&mut []),
            out: ManagedSlice::Borrowed(&mut []),
            out_fast: ManagedSlice::Borrowed(&mut []),
            lazy_buffers: None,
        }
    }
}

impl<'a> TcpNat<'a> {
    pub(crate) fn new(storage: TcpStorage<'a>, mtu: u16, config: TcpConfig, seed: u64) -> Self {
        let mut pool = storage.buffers;
        // Compact the supplied buffers to the front: entries [0, pool_free) are free buffers.
        let mut free = 0;
        for i in 0..pool.len() {
            if pool[i].is_some() {
                pool.swap(free, i);
                free += 1;
            }
        }
        let flows = FlowTable::new(storage.flows, storage.index, seed ^ 0x7463_705f_666c_6f77);
        let share = usize::from(config.half_open_percent.clamp(1, 100));
        let max_half_open = (flows.capacity() * share / 100).max(MIN_HALF_OPEN.min(flows.capacity())).max(1);
        TcpNat {
            flows,
            pool,
            pool_free: free,
            lazy: storage.lazy_buffers,
            allocated: free,
            timers: TimerHeap::new(storage.timers),
            out: ReadyRing::new(storage.out),
            out_fast: ReadyRing::new(storage.out_fast),
            accept_waiting: false,
            config: TcpConfig { mtu: usize::from(mtu), ..config },
            seed,
            half_open: 0,
            max_half_open,
        }
    }

    /// Most buffer pairs the pool holds: a borrowed pool's length; an owned one grows as needed
    /// up to one pair per connection slot (its entries are not written ahead: idle memory).
    fn pool_limit(&self) -> usize {
        match &self.pool {
            #[cfg(feature = "alloc")]
            ManagedSlice::Owned(_) => self.flows.capacity(),
            _ => self.pool.len(),
        }
    }

    fn take_buffers(&mut self) -> Option<TcpBuffers<'a>> {
        if self.pool_free > 0 {
            self.pool_free -= 1;
            let b = self.pool[self.pool_free].take();
            #[cfg(feature = "alloc")]
            if let ManagedSlice::Owned(v) = &mut self.pool {
                v.truncate(self.pool_free);
            }
            return b;
        }
        #[cfg(feature = "alloc")]
        if let Some((send, recv)) = self.lazy {
            if self.allocated < self.pool_limit() {
                self.allocated += 1;
                // Fresh pages: resident only as the connection fills them.
                return Some(TcpBuffers::new(crate::storage::zeroed(0u8, send), crate::storage::zeroed(0u8, recv)));
            }
        }
        None
    }

    fn give_buffers(&mut self, b: TcpBuffers<'a>) {
        if b.recv.is_empty() && b.send.is_empty() {
            // The empty stand-ins of a connection that gave its buffers back in TIME_WAIT.
            return;
        }
        #[cfg(feature = "alloc")]
        if self.lazy.is_some() && self.pool_free >= KEEP_FREE_BUFFERS {
            // Enough spares kept for the next connections: give the memory back (a burst of
            // busy connections must not leave the process at its high-water mark for good).
            // Saturating: an embedder's storage may hold pairs that were never counted here.
            self.allocated = self.allocated.saturating_sub(1);
            drop(b);
            return;
        }
        if self.pool_free < self.pool_limit() {
            #[cfg(feature = "alloc")]
            if let ManagedSlice::Owned(v) = &mut self.pool {
                if v.len() == self.pool_free {
                    v.push(None);
                }
            }
            self.pool[self.pool_free] = Some(b);
            self.pool_free += 1;
        }
    }

    fn iss(&self, now: Instant, key: &TcpKey) -> SeqNumber {
        // RFC 6528: a keyed hash of the four-tuple plus a 4 µs clock.
        let mut h = SeededHasher(self.seed);
        key.hash(&mut h);
        SeqNumber((h.finish() as u32).wrapping_add((now.total_micros() / 4) as u32))
    }

    pub(crate) fn poll_at(&self) -> Option<Instant> {
        self.timers.peek().map(|(t, _)| t)
    }

    /// Whether a listener has clients waiting that we can take now (a slot is free).
    pub(crate) fn backlog_ready(&self, forwards: &Forwards) -> bool {
        !self.flows.is_full() && forwards.tcp_backlog()
    }

    pub(crate) fn has_output(&self) -> bool {
        self.out.len() > 0 || self.out_fast.len() > 0
    }

    fn ring(&mut self, fast: bool) -> &mut ReadyRing<'a> {
        if fast {
            &mut self.out_fast
        } else {
            &mut self.out
        }
    }

    /// Puts a flow in line for output: the interactive line when at most one segment's worth
    /// waits toward the guest, the bulk line otherwise.
    fn enqueue_out(&mut self, id: FlowId) {
        let Some(f) = self.flows.get_mut(id) else { return };
        if f.queued {
            return;
        }
        let fast = f.tcb.send_queue_len() <= f.tcb.send_mss();
        let ring = if fast { &mut self.out_fast } else { &mut self.out };
        if ring.push(encode(Kind::TcpFlow(id))) {
            f.queued = true;
        }
    }

    /// Re-arms a flow's timer after anything touched its TCB.
    fn schedule(&mut self, id: FlowId) {
        let Some(f) = self.flows.get_mut(id) else { return };
        let t = f.tcb.poll_at();
        if t == f.timer_at {
            return;
        }
        f.timer_at = t;
        let Some(t) = t else { return };
        if !self.timers.push(t, encode(Kind::TcpFlow(id)).0) {
            // Full of stale entries: rebuild from the flows' current deadlines (amortized O(1)).
            self.timers.clear();
            for (fid, _, flow) in self.flows.iter() {
                if let Some(at) = flow.timer_at {
                    let _ = self.timers.push(at, encode(Kind::TcpFlow(fid)).0);
                }
            }
        }
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.flows.len()
    }

    /// Connections still in their handshake.
    pub(crate) fn half_open_count(&self) -> usize {
        self.half_open
    }

    /// Inserts a new flow (a free slot was made sure of): it starts half-open.
    fn insert_half_open(&mut self, key: TcpKey, flow: TcpFlow<'a>) -> Option<FlowId> {
        let id = self.flows.insert(key, TcpFlow { half_open: true, ..flow }, HALF_OPEN_LIST).ok()?;
        self.half_open += 1;
        Some(id)
    }
}

fn flow_of(socket: u64) -> Option<FlowId> {
    match decode(SocketId(socket)) {
        Some(Kind::TcpFlow(f)) => Some(f),
        _ => None,
    }
}

impl<'a> TcpNat<'a> {
    /// A guest TCP segment (checksum verified), arrived as `d`.
    pub(crate) fn guest_segment<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        d: &Ingress<'_>,
        seg: &TcpRepr<'_>,
        host: &mut H,
    ) {
        let now = d.now;
        let key = TcpKey { guest: SocketAddr::new(d.src, seg.src_port), remote: SocketAddr::new(d.dst, seg.dst_port) };
        if let Some(id) = self.flows.find(&key) {
            let ev = self.deliver(now, id, seg, host);
            if !ev.contains(Events::REOPEN) {
                return;
            }
            // A new SYN for a four-tuple in TIME_WAIT (RFC 6191): the old incarnation is done.
            self.finish(id, host, &mut out.stats);
        }
        if !is_connection_request(seg) {
            out.stats.drop(DropReason::TcpNoConnection);
            return out.send_reset(d, seg);
        }
        self.open(out, d, seg, key, host);
    }

    fn deliver<H: HostSocket>(&mut self, now: Instant, id: FlowId, seg: &TcpRepr<'_>, host: &mut H) -> Events {
        let Some(f) = self.flows.get_mut(id) else { return Events::NONE };
        let socket = f.socket;
        let connected = f.host == HostConn::Connected;
        let ev = f.tcb.on_segment(now, seg, |bytes| {
            if !connected {
                return 0;
            }
            host.tcp_send(socket, bytes).unwrap_or(0)
        });
        self.events(now, id, ev, host);
        ev
    }

    fn open<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        d: &Ingress<'_>,
        seg: &TcpRepr<'_>,
        key: TcpKey,
        host: &mut H,
    ) {
        let now = d.now;
        // A guest-forward endpoint: the embedder serves it (restricted mode included).
        let rule = out.guest_forwards.find(key.remote);
        if rule.is_none() && out.guest_forwards.has_addr(key.remote.ip()) {
            // A rule address, another port: closed.
            out.stats.drop(DropReason::TcpNoConnection);
            return out.send_reset(d, seg);
        }
        if out.config.restricted && rule.is_none() {
            out.stats.drop(DropReason::Restricted);
            return out.send_reset(d, seg);
        }
        let target = match rule {
            Some(_) => Target::To(key.remote),
            None => host_target(&out.config, key.remote, host.dns_upstream()),
        };
        let target = match target {
            Target::To(t) => t,
            Target::Refuse(why) => {
                out.stats.drop(if d.is_v6() { DropReason::Ipv6NoRoute } else { DropReason::Ipv4NoRoute });
                return self.icmp_about_syn(out, now, key, seg.seq_number, IcmpError::Unreachable(why));
            }
            Target::Drop(reason) => return out.stats.drop(reason),
        };
        let Some(id) = self.free_slot(out, host) else {
            out.stats.drop(DropReason::TcpTableFull);
            return out.send_reset(d, seg);
        };
        let Some(buffers) = self.take_buffers() else {
            out.stats.drop(DropReason::TcpNoBuffers);
            return out.send_reset(d, seg);
        };
        let iss = self.iss(now, &key);
        let tcb = Tcb::accept(self.config, buffers, key.remote, key.guest, seg, iss, now);
        let socket = encode(Kind::TcpFlow(id));
        let flow = TcpFlow::new(tcb, socket, HostConn::Connecting, target, seg.seq_number);
        let Some(id) = self.insert_half_open(key, flow) else {
            out.stats.drop(DropReason::TcpTableFull);
            return;
        };
        self.limit_half_open(out, host);
        out.stats.tcp_connections += 1;
        out.stats.trace(TraceEvent::TcpOpened { guest: key.guest, remote: key.remote, forwarded: false });
        let opened = match rule {
            Some(rule) => host.guest_forward_open(socket, rule, key.guest),
            None => host.tcp_connect(socket, target),
        };
        match (opened, rule) {
            (Ok(()), Some(_)) => {
                // The embedder's endpoint is there at once: SYN-ACK now.
                if let Some(f) = self.flows.get_mut(id) {
                    f.host = HostConn::Connected;
                    f.tcb.host_connected(now);
                }
            }
            // A host connect in progress, or an endpoint that reports writable once ready.
            (Ok(()), None) | (Err(HostError::WouldBlock), Some(_)) => {}
            (Err(e), _) => self.connect_failed(out, now, id, e, host),
        }
        self.schedule(id);
        self.enqueue_out(id);
    }

    /// The host connect failed: RST for a refusal, ICMP unreachable for routing errors (the TCB
    /// then goes away silently), RST otherwise.
    fn connect_failed<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        now: Instant,
        id: FlowId,
        e: HostError,
        host: &mut H,
    ) {
        let Some(f) = self.flows.get_mut(id) else { return };
        host.close(f.socket);
        f.host = HostConn::Gone;
        f.close_reason = CloseReason::Refused;
        let icmp = match e {
            HostError::NetUnreachable | HostError::HostUnreachable | HostError::PermissionDenied => {
                crate::iface::icmp::for_host_error(e)
            }
            _ => None,
        };
        match icmp {
            Some(err) => {
                f.tcb.discard();
                let (key, iss) = match self.flows.get(id) {
                    Some((k, f)) => (*k, f.guest_iss),
                    None => return,
                };
                out.stats.drop(DropReason::TcpHostError);
                self.icmp_about_syn(out, now, key, iss, err);
            }
            None => {
                f.tcb.host_refused();
                out.stats.drop(DropReason::TcpRefused);
            }
        }
        self.schedule(id);
        self.enqueue_out(id);
    }

    fn icmp_about_syn(&mut self, out: &mut Iface<'_>, now: Instant, key: TcpKey, seq: SeqNumber, err: IcmpError) {
        let mut l4 = [0u8; 8];
        l4[0..2].copy_from_slice(&key.guest.port().to_be_bytes());
        l4[2..4].copy_from_slice(&key.remote.port().to_be_bytes());
        l4[4..8].copy_from_slice(&seq.0.to_be_bytes());
        let c = &out.config;
        let to = key.remote.ip();
        let offender = if c.is_dns(to) { c.dns_for(to) } else { c.gateway_for(to) };
        let quoted = Quoted { protocol: IpProtocol::Tcp, guest: key.guest, dst: key.remote, l4 };
        out.quoted_error_to_guest(now, quoted, offender, err);
    }

    /// The table is full: frees the connection longest in TIME_WAIT, if any, and returns the
    /// slot a new one can take. A connection in TIME_WAIT has nothing left to deliver; it only
    /// waits out stray segments of the old incarnation, and a short one at that (the guest is a
    /// local stack), so under pressure it gives way, as Linux's do past `tcp_max_tw_buckets`.
    /// Without this, a guest opening short connections could not go faster than the table size
    /// per TIME_WAIT period.
    fn reclaim_time_wait<H: HostSocket>(&mut self, out: &mut Iface<'_>, host: &mut H) -> Option<FlowId> {
        let victim = self.flows.oldest(TIME_WAIT_LIST)?;
        self.finish(victim, host, &mut out.stats);
        out.stats.tcp_time_wait_reclaimed += 1;
        self.flows.next_id()
    }

    /// The slot a new guest connection takes: a free one, else the one of the connection
    /// longest in TIME_WAIT, else the one of the oldest half-open connection; `None` when every
    /// connection is established (or closing).
    fn free_slot<H: HostSocket>(&mut self, out: &mut Iface<'_>, host: &mut H) -> Option<FlowId> {
        self.flows.next_id().or_else(|| self.reclaim_time_wait(out, host)).or_else(|| {
            self.evict_half_open(out, host);
            self.flows.next_id()
        })
    }

    /// Drops the oldest half-open connection, if any: its host socket is aborted (a client or
    /// server that did connect sees a reset); the guest hears nothing, as from a kernel whose SYN
    /// backlog overflowed, and retransmits its SYN if it is still there.
    fn evict_half_open<H: HostSocket>(&mut self, out: &mut Iface<'_>, host: &mut H) {
        let Some(victim) = self.flows.oldest(HALF_OPEN_LIST) else { return };
        if let Some(f) = self.flows.get_mut(victim) {
            if f.host != HostConn::Gone {
                host.tcp_abort(f.socket);
                f.host = HostConn::Gone;
            }
            f.close_reason = CloseReason::Evicted;
        }
        self.finish(victim, host, &mut out.stats);
        out.stats.drop(DropReason::TcpHalfOpenEvicted);
    }

    /// Keeps the half-open connections within their share of the table, oldest out first.
    fn limit_half_open<H: HostSocket>(&mut self, out: &mut Iface<'_>, host: &mut H) {
        while self.half_open > self.max_half_open {
            self.evict_half_open(out, host);
        }
    }

    /// Keeps a flow on the activity list of its state: a half-open one leaves the half-open list
    /// once its handshake is done; one that reached TIME_WAIT joins the TIME_WAIT list
    /// (reclaimed first when the table is full) and, once its buffers are empty, gives them
    /// back: short connections then reuse a few buffer pairs instead of holding one each for the
    /// TIME_WAIT period.
    fn time_wait(&mut self, id: FlowId) {
        let Some(f) = self.flows.get_mut(id) else { return };
        let state = f.tcb.state();
        if f.half_open && !matches!(state, TcpState::SynSent | TcpState::SynReceived) {
            f.half_open = false;
            self.half_open -= 1;
            self.flows.touch(id, 0);
        }
        let Some(f) = self.flows.get_mut(id) else { return };
        if state != TcpState::TimeWait || f.parked {
            return;
        }
        // Reclaimable once nothing is left for the host (the buffers go back then); until the
        // host has read what the guest sent, the connection is not given away.
        if let Some(b) = f.tcb.release_buffers() {
            f.parked = true;
            self.give_buffers(b);
            self.flows.touch(id, TIME_WAIT_LIST);
        }
    }

    /// Acts on what a TCB reported.
    fn events<H: HostSocket>(&mut self, now: Instant, id: FlowId, ev: Events, host: &mut H) {
        self.time_wait(id);
        if ev.contains(Events::RESET) || ev.contains(Events::REFUSED) || ev.contains(Events::TIMED_OUT) {
            if let Some(f) = self.flows.get_mut(id) {
                f.close_reason = if ev.contains(Events::REFUSED) {
                    CloseReason::Refused
                } else if ev.contains(Events::TIMED_OUT) {
                    CloseReason::TimedOut
                } else {
                    CloseReason::Reset
                };
                if f.host != HostConn::Gone {
                    if ev.contains(Events::RESET) && f.host_eof && f.host_shut {
                        // Finished both ways (a reset in TIME-WAIT, say): the reset loses nothing,
                        // so the host socket closes as it would at the end of TIME-WAIT and the
                        // host's kernel still sends what the guest gave it. An abort would
                        // discard that and reset the peer.
                        host.close(f.socket);
                    } else {
                        host.tcp_abort(f.socket);
                    }
                    f.host = HostConn::Gone;
                }
            }
        }
        if ev.contains(Events::RECV_READY) || ev.contains(Events::GUEST_FIN) {
            self.flush_to_host(id, host);
        }
        let wants_data = ev.contains(Events::SEND_SPACE) || ev.contains(Events::ESTABLISHED);
        if wants_data && self.flows.get(id).is_some_and(|(_, f)| f.host_readable) {
            self.read_host(now, id, host);
        }
        self.schedule(id);
        self.enqueue_out(id);
    }

    /// Writes what the guest sent and the host refused earlier; shuts the host's write side
    /// once the guest finished and everything went through.
    fn flush_to_host<H: HostSocket>(&mut self, id: FlowId, host: &mut H) {
        let Some(f) = self.flows.get_mut(id) else { return };
        if f.host != HostConn::Connected {
            return;
        }
        loop {
            let urgent = f.tcb.urgent_to_host();
            let pending = f.tcb.pending_to_host();
            if pending.is_empty() {
                break;
            }
            let res = if urgent > 0 {
                host.tcp_send_urgent(f.socket, &pending[..urgent.min(pending.len())])
            } else {
                host.tcp_send(f.socket, pending)
            };
            match res {
                Ok(0) | Err(HostError::WouldBlock) => break,
                Ok(n) => f.tcb.host_accepted(n),
                Err(_) => {
                    host.tcp_abort(f.socket);
                    f.host = HostConn::Gone;
                    f.close_reason = CloseReason::Reset;
                    f.tcb.abort();
                    return;
                }
            }
        }
        if f.tcb.should_shutdown_host_write() && !f.host_shut {
            f.host_shut = true;
            let _ = host.tcp_shutdown_write(f.socket);
        }
    }

    /// Reads the host socket into the send ring while it has room.
    fn read_host<H: HostSocket>(&mut self, now: Instant, id: FlowId, host: &mut H) {
        let _ = now;
        let Some(f) = self.flows.get_mut(id) else { return };
        if f.host != HostConn::Connected || f.host_eof {
            f.host_readable = false;
            return;
        }
        f.host_readable = true;
        loop {
            if f.tcb.send_buffer_free() == 0 {
                return; // stays readable: SEND_SPACE brings us back
            }
            let socket = f.socket;
            // Urgent data from the host: read the urgent byte alone so the urgent pointer toward
            // the guest ends right after it (bounded by what is buffered, see Tcb::host_urgent).
            let urgent = host.tcp_urgent_mark(socket);
            let mut res = Ok(0);
            f.tcb.write_send_buffer(|buf| {
                let take = if urgent { buf.len().min(1) } else { buf.len() };
                res = host.tcp_recv(socket, &mut buf[..take]);
                *res.as_ref().unwrap_or(&0)
            });
            if urgent && res.as_ref().is_ok_and(|&n| n > 0) {
                f.tcb.host_urgent();
            }
            match res {
                Ok(0) => {
                    f.host_eof = true;
                    f.host_readable = false;
                    f.tcb.host_eof();
                    return;
                }
                Ok(_) => {}
                Err(HostError::WouldBlock) => {
                    f.host_readable = false;
                    return;
                }
                Err(_) => {
                    // Reset by the peer: the guest gets a RST too (the old slirp sent FIN).
                    f.host_readable = false;
                    host.tcp_abort(socket);
                    f.host = HostConn::Gone;
                    f.close_reason = CloseReason::Reset;
                    f.tcb.abort();
                    return;
                }
            }
        }
    }

    /// Frees a flow whose TCB is closed and has nothing left to send.
    fn finish<H: HostSocket>(&mut self, id: FlowId, host: &mut H, stats: &mut Stats) {
        if let Some((key, f)) = self.flows.remove(id) {
            let (reason, forwarded) = (f.close_reason, f.forwarded);
            stats.trace(TraceEvent::TcpClosed { guest: key.guest, remote: key.remote, reason, forwarded });
            if f.half_open {
                self.half_open -= 1;
            }
            if f.host != HostConn::Gone {
                host.close(f.socket);
            }
            if f.queued {
                self.out.remove(f.socket);
                self.out_fast.remove(f.socket);
            }
            let bufs = f.tcb.into_buffers();
            self.give_buffers(bufs);
        }
    }
}

/// What the output path of a TCP turn needs besides the TCP table: the output side, the
/// forwarding rules (a freed slot may take a client waiting in a listener's backlog) and the
/// scratch buffer (segments for a guest whose MAC is unknown are built there).
pub(crate) struct TcpOut<'o, 'a> {
    pub(crate) iface: &'o mut Iface<'a>,
    pub(crate) forwards: &'o mut Forwards,
    pub(crate) scratch: &'o mut [u8],
}

impl<'a> TcpNat<'a> {
    /// The host says connection `id`'s socket is readable.
    pub(crate) fn host_readable<H: HostSocket>(
        &mut self,
        o: &mut TcpOut<'_, '_>,
        now: Instant,
        id: FlowId,
        host: &mut H,
    ) {
        let Some(f) = self.flows.get_mut(id) else { return };
        f.host_readable = true;
        if f.host == HostConn::Connecting {
            // An error on a connecting socket shows as readable too; the writable path decides.
            return self.host_writable(o, now, id, host);
        }
        self.read_host(now, id, host);
        self.schedule(id);
        self.enqueue_out(id);
        self.emit(o, now, host);
    }

    /// The host says connection `id`'s socket is writable (connected, or room again).
    pub(crate) fn host_writable<H: HostSocket>(
        &mut self,
        o: &mut TcpOut<'_, '_>,
        now: Instant,
        id: FlowId,
        host: &mut H,
    ) {
        let Some(f) = self.flows.get_mut(id) else { return };
        if f.host == HostConn::Connecting {
            match host.tcp_connect_result(f.socket) {
                Ok(()) => {
                    f.host = HostConn::Connected;
                    f.tcb.host_connected(now);
                }
                Err(HostError::WouldBlock) => return,
                Err(e) => {
                    self.connect_failed(o.iface, now, id, e, host);
                    return self.emit(o, now, host);
                }
            }
            if f.host_readable {
                self.read_host(now, id, host);
            }
        }
        self.flush_to_host(id, host);
        self.time_wait(id);
        self.schedule(id);
        self.enqueue_out(id);
        self.emit(o, now, host);
    }

    /// Accepts pending connections on a forward's listener and opens them toward the guest.
    pub(crate) fn accept_ready<H: HostSocket>(
        &mut self,
        o: &mut TcpOut<'_, '_>,
        now: Instant,
        rule: u32,
        host: &mut H,
    ) {
        let Some(guest) = o.forwards.tcp_guest(rule) else { return };
        let listener = encode(Kind::TcpListener(rule));
        // Until the host says WouldBlock, clients may be waiting: an edge-triggered host will not
        // report the listener again, so we remember and come back when a slot frees.
        let mut backlog = true;
        for _ in 0..ACCEPT_BURST {
            // Not the oldest half-open connection's slot: the client may not be there (the last
            // turn of this loop finds the backlog empty), and it may be one just accepted.
            let Some(id) = self.flows.next_id().or_else(|| self.reclaim_time_wait(o.iface, host)) else {
                o.iface.stats.drop(DropReason::TcpTableFull);
                // The listener's backlog holds the rest until a slot frees.
                self.accept_waiting = true;
                break;
            };
            let socket = encode(Kind::TcpFlow(id));
            let peer = match host.tcp_accept(listener, socket) {
                Ok(p) => p,
                Err(_) => {
                    backlog = false;
                    break;
                }
            };
            let seen = guest_facing(&o.iface.config, peer, None, guest.ip());
            let key = TcpKey { guest, remote: seen };
            if self.flows.find(&key).is_some() {
                host.tcp_abort(socket);
                continue;
            }
            let Some(buffers) = self.take_buffers() else {
                o.iface.stats.drop(DropReason::TcpNoBuffers);
                host.tcp_abort(socket);
                continue;
            };
            let iss = self.iss(now, &key);
            let tcb = Tcb::connect(self.config, buffers, seen, guest, iss, now);
            // Accepted: connected, and readable until the host says otherwise.
            let flow = TcpFlow {
                host_readable: true,
                forwarded: true,
                ..TcpFlow::new(tcb, socket, HostConn::Connected, peer, SeqNumber(0))
            };
            match self.insert_half_open(key, flow) {
                Some(id) => {
                    self.limit_half_open(o.iface, host);
                    o.iface.stats.tcp_connections += 1;
                    o.iface.stats.trace(TraceEvent::TcpOpened { guest, remote: seen, forwarded: true });
                    self.schedule(id);
                    self.enqueue_out(id);
                }
                None => host.tcp_abort(socket),
            }
        }
        if let Some(pending) = o.forwards.pending_mut(true, rule) {
            *pending = backlog;
        }
        self.emit(o, now, host);
    }

    /// Takes clients left in listeners' backlogs once a connection slot is free.
    pub(crate) fn retry_backlog<H: HostSocket>(&mut self, o: &mut TcpOut<'_, '_>, now: Instant, host: &mut H) {
        for rule in o.forwards.tcp_ids() {
            if !self.backlog_ready(o.forwards) {
                return;
            }
            if o.forwards.pending_mut(true, rule).is_some_and(|p| *p) {
                self.accept_ready(o, now, rule, host);
            }
        }
    }

    /// Emits segments while the guest queue has room: interactive flows first (little queued
    /// toward the guest: keystrokes, requests, ACKs), then bulk flows round robin, a burst each.
    pub(crate) fn emit<H: HostSocket>(&mut self, o: &mut TcpOut<'_, '_>, now: Instant, host: &mut H) {
        for fast in [true, false] {
            let mut turns = self.ring(fast).len();
            while turns > 0 {
                turns -= 1;
                if !o.iface.tx_room(usize::from(o.iface.config.mtu)) {
                    return;
                }
                let Some(sock) = self.ring(fast).pop() else { break };
                let Some(id) = flow_of(sock.0) else { continue };
                self.emit_turn(o, now, id, host);
            }
        }
    }

    /// A slot freed: accept what listeners left pending while the table was full.
    fn accept_waiting<H: HostSocket>(&mut self, o: &mut TcpOut<'_, '_>, now: Instant, host: &mut H) {
        if !self.accept_waiting {
            return;
        }
        self.accept_waiting = false;
        for rule in o.forwards.tcp_ids() {
            self.accept_ready(o, now, rule, host);
        }
    }

    /// One flow's turn: up to [`EMIT_BURST`] segments.
    fn emit_turn<H: HostSocket>(&mut self, o: &mut TcpOut<'_, '_>, now: Instant, id: FlowId, host: &mut H) {
        let mtu = usize::from(o.iface.config.mtu);
        let ip_len = match self.flows.get(id) {
            Some((k, _)) if k.guest.is_ipv6() => IP6_LEN,
            _ => IP_LEN,
        };
        let seg_room = (mtu - ip_len).min(o.scratch.len());
        let mut drained = false;
        for _ in 0..EMIT_BURST {
            if !o.iface.tx_room(mtu) {
                break;
            }
            match self.emit_one(o, now, id, seg_room) {
                Some(true) => {}
                Some(false) => {
                    drained = true;
                    break;
                }
                None => return,
            }
        }
        let Some(f) = self.flows.get_mut(id) else { return };
        f.queued = false;
        if !drained {
            // Budget used or the guest queue filled: back in line.
            self.enqueue_out(id);
        } else if f.done() {
            self.finish(id, host, &mut o.iface.stats);
            return self.accept_waiting(o, now, host);
        } else if f.host_readable && f.tcb.send_buffer_free() > 0 {
            // The host was waiting for send space, which the guest's ACKs made.
            self.read_host(now, id, host);
            self.enqueue_out(id);
        }
        self.schedule(id);
    }

    /// Emits one segment of flow `id`: `Some(true)` sent, `Some(false)` nothing to send, `None`
    /// no such flow. When the guest's MAC is known (the usual case) the segment is written in
    /// place into the guest-bound queue behind its Ethernet and IP headers: no copy.
    fn emit_one(&mut self, o: &mut TcpOut<'_, '_>, now: Instant, id: FlowId, seg_room: usize) -> Option<bool> {
        let out = &mut *o.iface;
        let f = self.flows.get_mut(id)?;
        let (src, dst) = (f.tcb.local().ip(), f.tcb.remote().ip());
        let (ethertype, ip_len) = match dst {
            IpAddr::V4(_) => (EtherType::Ipv4, IP_LEN),
            IpAddr::V6(_) => (EtherType::Ipv6, IP6_LEN),
        };
        if let Some(mac) = out.neighbors.lookup(dst) {
            let eth = EthernetRepr { src_addr: out.gateway_mac, dst_addr: mac, ethertype };
            let next_ip_id = &mut out.next_ip_id;
            let offload = out.offload;
            let hop = ip_len;
            // A super-frame takes whatever contiguous room the queue has, up to a whole IP
            // datagram; never less than one MTU-sized segment (`tx_room` checked that).
            let seg_room = if offload.segmentation {
                out.tx.max_fit().saturating_sub(ETH_LEN + hop).clamp(seg_room, u16::MAX as usize - IP_LEN)
            } else {
                seg_room
            };
            let pushed = out.tx.push_with_unzeroed((ETH_LEN + hop + seg_room).max(MIN_FRAME_LEN), |buf| {
                let seg = &mut buf[ETH_LEN + hop..ETH_LEN + hop + seg_room];
                let emitted = f.tcb.emit_next_offloaded(now, seg, offload)?;
                let n = emitted.len;
                eth.emit(&mut EthernetFrame::new_unchecked(&mut *buf));
                match (src, dst) {
                    (IpAddr::V4(s4), IpAddr::V4(d4)) => {
                        let ip = Ipv4Repr {
                            payload_len: n,
                            ident: *next_ip_id,
                            ..reply_header(s4, d4, IpProtocol::Tcp, DEFAULT_TTL, 0)
                        };
                        // A super-frame becomes several datagrams on the guest's side, each with
                        // the next id (Linux GSO increments it per segment): keep those ids ours.
                        *next_ip_id = next_ip_id.wrapping_add(emitted.segments);
                        ip.emit(&mut buf[ETH_LEN..ETH_LEN + IP_LEN]);
                    }
                    (IpAddr::V6(s6), IpAddr::V6(d6)) => Ipv6Repr {
                        src_addr: s6,
                        dst_addr: d6,
                        next_header: IpProtocol::Tcp.into(),
                        payload_len: n,
                        hop_limit: DEFAULT_TTL,
                        traffic_class: 0,
                    }
                    .emit(&mut buf[ETH_LEN..ETH_LEN + IP6_LEN]),
                    _ => return None,
                }
                // Every byte of the frame is ours: pad a short one with zeros.
                let len = (ETH_LEN + hop + n).max(MIN_FRAME_LEN);
                buf[ETH_LEN + hop + n..len].fill(0);
                Some((len, offload::tag::encode(emitted.gso_size, emitted.checksum_partial)))
            });
            return match pushed {
                Ok(Some(_)) => Some(true),
                Ok(None) => Some(false),
                Err(_) => {
                    out.stats.drop(DropReason::TxQueueFull);
                    Some(false)
                }
            };
        }
        // The guest's MAC is unknown: build the segment aside and let the output path hold it
        // while neighbor resolution runs.
        let Some(n) = f.tcb.emit_next(now, &mut o.scratch[..seg_room]) else { return Some(false) };
        out.send_ip(now, src, dst, IpProtocol::Tcp, DEFAULT_TTL, LinkDest::Resolve, &[], &o.scratch[..n]);
        Some(true)
    }

    /// Runs the TCP timers due at `now`.
    pub(crate) fn timeouts<H: HostSocket>(&mut self, o: &mut TcpOut<'_, '_>, now: Instant, host: &mut H) {
        while let Some((at, key)) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(id) = flow_of(key) else { continue };
            let Some(f) = self.flows.get_mut(id) else { continue };
            if f.timer_at != Some(at) {
                continue; // stale entry
            }
            f.timer_at = None;
            let ev = f.tcb.on_timeout(now);
            self.events(now, id, ev, host);
        }
        self.emit(o, now, host);
    }

    /// Pushes `data` toward the guest on the connection of host socket `id` (at most the room
    /// there is), or, with `data` empty and `eof`, ends the stream; returns the bytes taken.
    pub(crate) fn host_push<H: HostSocket>(
        &mut self,
        o: &mut TcpOut<'_, '_>,
        now: Instant,
        id: SocketId,
        data: &[u8],
        eof: bool,
        host: &mut H,
    ) -> Option<usize> {
        let Some(Kind::TcpFlow(flow)) = decode(id) else { return None };
        let f = self.flows.get_mut(flow)?;
        if f.socket != id || f.host != HostConn::Connected || f.host_eof {
            return None;
        }
        let n = f.tcb.enqueue(data);
        if eof && n == data.len() {
            f.host_eof = true;
            f.tcb.host_eof();
        }
        self.schedule(flow);
        self.enqueue_out(flow);
        self.emit(o, now, host);
        Some(n)
    }

    /// Room toward the guest of the connection on host socket `id`.
    pub(crate) fn room(&self, id: SocketId) -> Option<usize> {
        let Some(Kind::TcpFlow(flow)) = decode(id) else { return None };
        let (_, f) = self.flows.get(flow)?;
        (f.socket == id).then(|| f.tcb.send_buffer_free())
    }

    /// Every TCP connection (slab order).
    pub(crate) fn connections(&self) -> impl Iterator<Item = TcpConnectionInfo> + use<'_, 'a> {
        self.flows.iter().map(|(_, k, f)| TcpConnectionInfo {
            guest: k.guest,
            remote: k.remote,
            host_peer: f.host_peer,
            state: f.tcb.state(),
            send_queue: f.tcb.send_queue_len(),
            recv_queue: f.tcb.recv_queue_len(),
            forwarded: f.forwarded,
        })
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::memory::Storage;

    #[test]
    fn buffers_beyond_the_spares_are_freed_when_connections_close() {
        let storage = Storage::with_capacity(4096, 4096, 1, 1024).with_tcp_capacity(64, 16384, 16384);
        let mut nat = TcpNat::new(storage.tcp, 1500, TcpConfig::default(), 1);
        let taken: std::vec::Vec<_> = (0..40).map(|_| nat.take_buffers().expect("within the table size")).collect();
        assert_eq!(nat.allocated, 40);
        for b in taken {
            nat.give_buffers(b);
        }
        // Eight kept for the next connections, the other 32 freed.
        assert_eq!((nat.pool_free, nat.allocated), (KEEP_FREE_BUFFERS, KEEP_FREE_BUFFERS));
        // The spares are reused first; then new ones are allocated, up to the table size.
        let again: std::vec::Vec<_> = (0..64).map(|_| nat.take_buffers().expect("within the table size")).collect();
        assert_eq!((nat.pool_free, nat.allocated), (0, 64));
        assert!(nat.take_buffers().is_none(), "never more pairs than connection slots");
        drop(again);
    }
}
