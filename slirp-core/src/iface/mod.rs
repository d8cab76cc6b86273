//! The engine's interface to the guest: [`Slirp`] and every public method, and the layers a
//! frame crosses before a protocol machine takes it.
//!
//! A frame's path: [`Slirp::handle_guest_frame`] checks the Ethernet header and hands ARP to
//! [`ethernet`] and IPv4 to [`ipv4`]; IPv4 is validated (version, lengths, checksum, source,
//! TTL), fragments go through the [`reassembly`] buffers, and the datagram is dispatched by
//! destination and protocol ([`Inner::dispatch`]): ICMP to the virtual addresses ([`icmp`]),
//! DHCP ([`crate::services`]), and the NAT ([`crate::nat`]: UDP, ICMP echo, TCP). Everything we
//! send goes through [`Iface::send_datagram`], which resolves the guest's MAC (holding the
//! packet while ARP runs), fragments to the MTU ([`fragment`]) and queues frames; the caller
//! pulls them with [`Slirp::poll_transmit`] when the guest link has room.
//!
//! The protocol machines own their state and take the [`Iface`] (the output side: config,
//! counters, neighbor table, queues) as a narrow context; host events are dispatched by socket
//! id ([`crate::nat::Kind`]) to the machine that owns the socket.

pub(crate) mod ethernet;
mod fragment;
pub(crate) mod icmp;
pub(crate) mod ip;
pub(crate) mod ipv4;
pub(crate) mod ipv6;
pub(crate) mod neighbor;
pub(crate) mod reassembly;

use crate::config::{Config, ConfigError};
use crate::host::{HostSocket, SocketId};
use crate::iface::neighbor::NeighborCache;
use crate::iface::reassembly::Reassembler;
use crate::memory::Storage;
use crate::nat::forward::{ForwardError, Forwards};
use crate::nat::tcp::{TcpConnectionInfo, TcpNat, TcpOut};
use crate::nat::{decode, Kind, Nat, TcpForward, UdpForward};
use crate::offload::{self, GuestOffload, RxChecksum, TxOffload};
use crate::services::dhcp::DhcpServer;
use crate::services::dhcp6::Dhcp6Server;
use crate::services::tftp::TftpServer;
use crate::stats::{DropReason, Stats};
use crate::storage::FrameQueue;
use crate::time::{earliest, Instant};
use crate::wire::{EtherType, EthernetAddress, EthernetFrame};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::ops::Deref;

/// The user-mode network engine. See the [crate documentation](crate).
#[derive(Debug)]
pub struct Slirp<'a> {
    pub(crate) inner: Inner<'a>,
    reassembler: Reassembler<'a>,
    /// Receive buffer for host datagrams (see [`Storage::scratch`]).
    pub(crate) scratch: managed::ManagedSlice<'a, u8>,
}

/// The output side every protocol machine sends through: the configuration, the counters, the
/// guest's neighbor table and the guest-bound queues.
#[derive(Debug)]
pub(crate) struct Iface<'a> {
    pub(crate) config: Config,
    pub(crate) gateway_mac: EthernetAddress,
    pub(crate) neighbors: NeighborCache,
    pub(crate) tx: FrameQueue<'a>,
    pub(crate) hold: FrameQueue<'a>,
    pub(crate) next_ip_id: u16,
    /// Identification of the next IPv6 packet we fragment.
    pub(crate) next_ip6_id: u32,
    /// ICMPv6 error budget: (start of the current second, errors sent in it).
    pub(crate) icmp6_budget: (Instant, u16),
    /// When the next unsolicited Router Advertisement goes out (IPv6 on; `None`: at once).
    pub(crate) next_router_advert: Option<Instant>,
    pub(crate) stats: Stats,
    /// What the guest link finishes for guest-bound frames.
    pub(crate) offload: GuestOffload,
    /// Guest-forward rules (their addresses answer ARP and neighbor solicitations).
    pub(crate) guest_forwards: crate::nat::guest_forward::GuestForwards,
}

/// Everything but the reassembly buffers and the scratch buffer, so a reassembled datagram
/// (borrowed from the reassembler) can be dispatched with `&mut Inner`: the output side and the
/// protocol machines, each with its own state.
#[derive(Debug)]
pub(crate) struct Inner<'a> {
    pub(crate) iface: Iface<'a>,
    pub(crate) dhcp: DhcpServer,
    pub(crate) dhcp6: Dhcp6Server,
    pub(crate) tftp: TftpServer,
    pub(crate) nat: Nat<'a>,
    pub(crate) tcp: TcpNat<'a>,
    pub(crate) forwards: Forwards,
}

/// The frame at the head of the guest-bound queue, lent out by [`Slirp::poll_transmit`].
///
/// Dereferences to the frame's bytes. Call [`consume`](TxFrame::consume) once the guest link took
/// it; dropping it without consuming leaves it at the head (the link was full: backpressure).
#[derive(Debug)]
pub struct TxFrame<'s, 'a> {
    slirp: &'s mut Slirp<'a>,
}

impl Deref for TxFrame<'_, '_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.slirp.inner.iface.tx.peek().map(|r| r.data).unwrap_or(&[])
    }
}

impl TxFrame<'_, '_> {
    /// What the frame leaves to the link: nothing unless offloads were declared with
    /// [`Slirp::set_guest_offload`]; then a TCP data segment may carry a partial checksum and
    /// be a super-frame (write [`TxOffload::virtio_net_hdr`] in front of it on a virtio link).
    pub fn offload(&self) -> TxOffload {
        self.slirp.inner.iface.tx.peek().map(|r| offload::decode(r.tag, r.data)).unwrap_or_default()
    }

    /// The guest link took the frame: remove it from the queue.
    pub fn consume(self) {
        let iface = &mut self.slirp.inner.iface;
        let (len, ethertype) = iface.tx.peek().map_or((0, 0), |r| (r.data.len(), ethertype_of(r.data)));
        iface.tx.pop();
        iface.stats.tx_frames += 1;
        iface.stats.tx_bytes += len as u64;
        let direction = crate::trace::FrameDirection::ToGuest;
        iface.stats.trace(crate::trace::TraceEvent::Frame { direction, len: len as u32, ethertype });
    }
}

/// The EtherType of an Ethernet frame (0 when it is too short to have one).
fn ethertype_of(frame: &[u8]) -> u16 {
    frame.get(12..14).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

impl<'a> Slirp<'a> {
    /// An engine for the network `config` describes, working in `storage`.
    pub fn new(config: Config, storage: Storage<'a>) -> Result<Slirp<'a>, ConfigError> {
        config.validate()?;
        let gateway_mac = EthernetAddress::slirp_virtual(config.gateway);
        let seed = config.seed;
        let (mtu, tcp_config) = (config.mtu, config.tcp);
        let mut stats = Stats::default();
        stats.events.on = config.trace;
        Ok(Slirp {
            inner: Inner {
                iface: Iface {
                    config,
                    gateway_mac,
                    neighbors: NeighborCache::default(),
                    tx: FrameQueue::new(storage.tx),
                    hold: FrameQueue::new(storage.hold),
                    next_ip_id: 0,
                    next_ip6_id: seed as u32,
                    icmp6_budget: (Instant::ZERO, 0),
                    next_router_advert: None,
                    stats,
                    offload: GuestOffload::default(),
                    guest_forwards: Default::default(),
                },
                dhcp: DhcpServer::default(),
                dhcp6: Dhcp6Server::default(),
                tftp: TftpServer::default(),
                nat: Nat::new(storage.udp_flows, storage.udp_index, storage.ready, seed),
                tcp: TcpNat::new(storage.tcp, mtu, tcp_config, seed),
                forwards: Forwards::default(),
            },
            reassembler: Reassembler::new(storage.reassembly),
            scratch: storage.scratch,
        })
    }

    /// Declares what the guest link finishes for guest-bound frames (default: nothing). With
    /// offloads on, read each frame's needs with [`TxFrame::offload`]: a link that ignores them
    /// would hand the guest TCP segments with wrong checksums.
    pub fn set_guest_offload(&mut self, offload: GuestOffload) {
        self.inner.iface.offload = GuestOffload { segmentation: offload.segmentation && offload.checksum, ..offload };
    }

    /// The guest link's offloads in force (see [`set_guest_offload`](Self::set_guest_offload)).
    pub fn guest_offload(&self) -> GuestOffload {
        self.inner.iface.offload
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.iface.config
    }

    /// The MAC address the gateway answers with (and every frame toward the guest comes from).
    pub fn gateway_mac(&self) -> EthernetAddress {
        self.inner.iface.gateway_mac
    }

    /// Traffic and drop counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.iface.stats
    }

    /// DHCP leases handed out: (address, MAC).
    pub fn leases(&self) -> impl Iterator<Item = (Ipv4Addr, EthernetAddress)> + '_ {
        self.inner.dhcp.leases(&self.inner.iface.config)
    }

    /// The oldest trace event not taken yet (with [`Config::trace`] on; see [`crate::trace`]).
    pub fn poll_trace(&mut self) -> Option<crate::trace::TraceEvent> {
        self.inner.iface.stats.events.pop()
    }

    /// TFTP transfers in progress.
    pub fn tftp_sessions(&self) -> usize {
        self.inner.tftp.sessions()
    }

    /// DHCPv6 bindings handed out: (address, client DUID, IAID).
    pub fn dhcp6_bindings(&self) -> impl Iterator<Item = (Ipv6Addr, &[u8], u32)> + '_ {
        self.inner.dhcp6.bindings(&self.inner.iface.config.ipv6)
    }

    /// Guest addresses (both families) whose MAC is known: (address, MAC).
    pub fn neighbors(&self) -> impl Iterator<Item = (IpAddr, EthernetAddress)> + '_ {
        self.inner.iface.neighbors.iter()
    }

    /// Frames waiting for the guest link.
    pub fn tx_queue_len(&self) -> usize {
        self.inner.iface.tx.len()
    }

    // ------------------------------------------------------------------------------ guest side

    /// Takes one Ethernet frame from the guest. Malformed, hostile or unsupported frames are
    /// counted in [`stats`](Self::stats) and dropped; nothing here panics or allocates.
    pub fn handle_guest_frame<H: HostSocket>(&mut self, now: Instant, frame: &[u8], host: &mut H) {
        self.handle_guest_frame_offloaded(now, frame, RxChecksum::Unverified, host);
    }

    /// [`handle_guest_frame`](Self::handle_guest_frame) for a link with receive offloads: with
    /// [`RxChecksum::Trusted`] the TCP or UDP checksum is not verified (it may be partial). The
    /// IPv4 header checksum always is. A TCP super-frame (a datagram longer than the MTU, from a
    /// guest doing segmentation offload) is taken like any segment.
    pub fn handle_guest_frame_offloaded<H: HostSocket>(
        &mut self,
        now: Instant,
        frame: &[u8],
        checksum: RxChecksum,
        host: &mut H,
    ) {
        let iface = &mut self.inner.iface;
        iface.stats.rx_frames += 1;
        iface.stats.rx_bytes += frame.len() as u64;
        let (direction, len) = (crate::trace::FrameDirection::FromGuest, frame.len() as u32);
        iface.stats.trace(crate::trace::TraceEvent::Frame { direction, len, ethertype: ethertype_of(frame) });
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            iface.stats.drop(DropReason::EthernetTruncated);
            return;
        };
        match eth.ethertype() {
            EtherType::Arp => iface.arp_input(now, &eth),
            EtherType::Ipv4 => {
                ipv4::input(&mut self.inner, &mut self.reassembler, now, &eth, checksum == RxChecksum::Trusted, host)
            }
            EtherType::Ipv6 => {
                ipv6::input(&mut self.inner, &mut self.reassembler, now, &eth, checksum == RxChecksum::Trusted, host)
            }
            _ => iface.stats.drop(DropReason::EthernetUnknownType),
        }
    }

    /// Runs the timers that are due: held packets whose ARP resolution timed out, incomplete
    /// fragment sets, UDP mappings, TCP timers.
    pub fn handle_timeout<H: HostSocket>(&mut self, now: Instant, host: &mut H) {
        let Inner { iface, nat, tcp, forwards, tftp, .. } = &mut self.inner;
        iface.release_held(now);
        iface.router_advert_timer(now);
        if tftp.poll_at().is_some_and(|t| t <= now) {
            tftp.timeout(iface, now, host);
        }
        nat.expire_flows(now, host, &mut iface.stats);
        if nat.has_ready() {
            nat.service_ready(iface, forwards, &mut self.scratch, now, host);
        }
        let mut o = TcpOut { iface, forwards, scratch: &mut self.scratch };
        tcp.timeouts(&mut o, now, host);
        if tcp.backlog_ready(o.forwards) {
            tcp.retry_backlog(&mut o, now, host);
        }
        for _ in 0..self.reassembler.expire(now) {
            o.iface.stats.drop(DropReason::FragmentTimeout);
        }
    }

    /// The next frame for the guest, if any. See [`TxFrame`].
    pub fn poll_transmit<H: HostSocket>(&mut self, now: Instant, host: &mut H) -> Option<TxFrame<'_, 'a>> {
        let Inner { iface, nat, tcp, forwards, .. } = &mut self.inner;
        if nat.has_ready() {
            // The guest link drained: read host sockets that were waiting for room.
            nat.service_ready(iface, forwards, &mut self.scratch, now, host);
        }
        let mut o = TcpOut { iface, forwards, scratch: &mut self.scratch };
        if tcp.backlog_ready(o.forwards) {
            tcp.retry_backlog(&mut o, now, host);
        }
        if tcp.has_output() {
            tcp.emit(&mut o, now, host);
        }
        if self.inner.iface.tx.is_empty() {
            None
        } else {
            Some(TxFrame { slirp: self })
        }
    }

    /// Copies the next frame for the guest into `buf` and removes it from the queue; returns its
    /// length. A frame larger than `buf` cannot be carried by that link: it is dropped and counted
    /// ([`DropReason::TxBufferTooSmall`]) and the next one is tried. A partial checksum (with
    /// [`set_guest_offload`](Self::set_guest_offload)) is finished in the copy.
    pub fn poll_transmit_into<H: HostSocket>(&mut self, now: Instant, host: &mut H, buf: &mut [u8]) -> Option<usize> {
        loop {
            let frame = self.poll_transmit(now, host)?;
            let len = frame.len();
            if len <= buf.len() {
                buf[..len].copy_from_slice(&frame);
                frame.offload().finish_checksum(&mut buf[..len]);
                frame.consume();
                return Some(len);
            }
            let iface = &mut frame.slirp.inner.iface;
            iface.tx.pop();
            iface.stats.drop(DropReason::TxBufferTooSmall);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next, or `None` if no timer is set.
    pub fn poll_at(&self) -> Option<Instant> {
        let Inner { iface, nat, tcp, forwards, tftp, .. } = &self.inner;
        // Host sockets still ready to read (a turn used its budget without filling the guest
        // queue, say on unmatched echo replies) need another turn now, not at the next packet.
        // When the guest queue is full instead, draining it with `poll_transmit` resumes them.
        if nat.has_ready() && iface.tx_room(self.scratch.len()) {
            return Some(Instant::ZERO);
        }
        if tcp.has_output() && iface.tx_room(usize::from(iface.config.mtu)) {
            return Some(Instant::ZERO);
        }
        if tcp.backlog_ready(forwards) {
            return Some(Instant::ZERO);
        }
        let held = iface.hold.peek().map(|r| r.deadline);
        let t = earliest(held, self.reassembler.poll_at());
        let ra = iface.config.ipv6.enabled.then(|| iface.next_router_advert.unwrap_or(Instant::ZERO));
        let t = earliest(earliest(t, ra), tftp.poll_at());
        earliest(earliest(t, nat.poll_at()), tcp.poll_at())
    }

    // ------------------------------------------------------------------------------- host side

    /// The host says socket `id` is readable. Reads it (and other waiting sockets) while the
    /// guest-bound queue has room; what cannot be read now is read when the guest link drains.
    pub fn handle_host_readable<H: HostSocket>(&mut self, now: Instant, id: SocketId, host: &mut H) {
        let Inner { iface, nat, tcp, forwards, .. } = &mut self.inner;
        match decode(id) {
            Some(Kind::TcpFlow(flow)) => {
                tcp.host_readable(&mut TcpOut { iface, forwards, scratch: &mut self.scratch }, now, flow, host)
            }
            Some(Kind::TcpListener(rule)) => {
                tcp.accept_ready(&mut TcpOut { iface, forwards, scratch: &mut self.scratch }, now, rule, host)
            }
            _ => {
                nat.mark_ready(forwards, id);
                nat.service_ready(iface, forwards, &mut self.scratch, now, host);
            }
        }
    }

    /// The host says socket `id` is writable (a TCP connect completed, or a full socket buffer
    /// drained).
    pub fn handle_host_writable<H: HostSocket>(&mut self, now: Instant, id: SocketId, host: &mut H) {
        if let Some(Kind::TcpFlow(flow)) = decode(id) {
            let Inner { iface, tcp, forwards, .. } = &mut self.inner;
            tcp.host_writable(&mut TcpOut { iface, forwards, scratch: &mut self.scratch }, now, flow, host);
        }
    }

    // -------------------------------------------------------------------------------- forwards

    /// Adds a UDP port forward: binds `host_addr` on the host and delivers what arrives there to
    /// `guest` (a guest address of 0.0.0.0 means the first DHCP address, as QEMU does; `[::]`
    /// the first DHCPv6 address). Either side may be of either family: a v4 client reaches a v6
    /// guest from `64:ff9b::` and its IPv4 address (RFC 6052). Returns the rule id.
    pub fn add_udp_forward<H: HostSocket>(
        &mut self,
        host: &mut H,
        host_addr: impl Into<SocketAddr>,
        guest: impl Into<SocketAddr>,
    ) -> Result<u32, ForwardError> {
        self.inner.forwards.add_udp(&self.inner.iface.config, host, host_addr.into(), guest.into())
    }

    /// Removes a UDP port forward and closes its host socket.
    pub fn remove_udp_forward<H: HostSocket>(&mut self, host: &mut H, id: u32) -> Result<(), ForwardError> {
        let Inner { nat, forwards, .. } = &mut self.inner;
        forwards.remove_udp(host, id, |socket| nat.forget_ready(socket))
    }

    /// The UDP forwarding rules.
    pub fn udp_forwards(&self) -> impl Iterator<Item = UdpForward> + '_ {
        self.inner.forwards.udp()
    }

    /// Adds a TCP port forward: listens on `host_addr` and opens every accepted connection toward
    /// `guest` (0.0.0.0 means the first DHCP address, `[::]` the first DHCPv6 address; the
    /// families may differ, as for [`add_udp_forward`](Self::add_udp_forward)). Returns the
    /// rule id.
    pub fn add_tcp_forward<H: HostSocket>(
        &mut self,
        host: &mut H,
        host_addr: impl Into<SocketAddr>,
        guest: impl Into<SocketAddr>,
    ) -> Result<u32, ForwardError> {
        self.inner.forwards.add_tcp(&self.inner.iface.config, host, host_addr.into(), guest.into())
    }

    /// Removes a TCP port forward (its listener closes; open connections go on).
    pub fn remove_tcp_forward<H: HostSocket>(&mut self, host: &mut H, id: u32) -> Result<(), ForwardError> {
        self.inner.forwards.remove_tcp(host, id)
    }

    /// The TCP forwarding rules.
    pub fn tcp_forwards(&self) -> impl Iterator<Item = TcpForward> + '_ {
        self.inner.forwards.tcp()
    }

    /// Adds a guest-forward rule: guest connections to `addr` (a host address of the guest
    /// network, or of the IPv6 prefix with IPv6 on; TCP) are served by the embedder through
    /// [`HostSocket::guest_forward_open`]. The address answers ARP (neighbor solicitations) and
    /// ping from then on. Errors: outside the network, the DNS alias's port 53, a rule for that
    /// endpoint already, [`MAX_GUEST_FORWARDS`](crate::MAX_GUEST_FORWARDS)
    /// rules already. Returns the rule id.
    pub fn add_guest_forward(&mut self, addr: impl Into<SocketAddr>) -> Result<u32, ForwardError> {
        let iface = &mut self.inner.iface;
        iface.guest_forwards.add(&iface.config, addr.into())
    }

    /// Removes a guest-forward rule (open connections go on).
    pub fn remove_guest_forward(&mut self, id: u32) -> Result<(), ForwardError> {
        self.inner.iface.guest_forwards.remove(id)
    }

    /// The guest-forward rules.
    pub fn guest_forwards(&self) -> impl Iterator<Item = crate::GuestForward> + '_ {
        self.inner.iface.guest_forwards.iter()
    }

    /// Writes `data` toward the guest on the connection of host socket `id` (the seed's
    /// `SocketRecv`: an embedder feeding a guest-forward connection itself, instead of
    /// answering [`HostSocket::tcp_recv`]); takes at most
    /// [`connection_room`](Self::connection_room) bytes and returns how many it took, `None`
    /// when `id` is no open connection (or its stream toward the guest has ended). Segments go
    /// out at once, as far as the guest's window allows.
    pub fn connection_write<H: HostSocket>(
        &mut self,
        now: Instant,
        id: SocketId,
        data: &[u8],
        host: &mut H,
    ) -> Option<usize> {
        let Inner { iface, tcp, forwards, .. } = &mut self.inner;
        tcp.host_push(&mut TcpOut { iface, forwards, scratch: &mut self.scratch }, now, id, data, false, host)
    }

    /// Ends the stream toward the guest on the connection of host socket `id` (a FIN follows
    /// what is buffered), as an end of stream from [`HostSocket::tcp_recv`] would. `false` when
    /// `id` is no open connection or its stream had ended.
    pub fn connection_finish<H: HostSocket>(&mut self, now: Instant, id: SocketId, host: &mut H) -> bool {
        let Inner { iface, tcp, forwards, .. } = &mut self.inner;
        tcp.host_push(&mut TcpOut { iface, forwards, scratch: &mut self.scratch }, now, id, &[], true, host).is_some()
    }

    /// How many bytes the connection on host socket `id` can take toward the guest now (room in
    /// its send buffer): what an embedder feeding a guest-forward connection may offer before
    /// it reports the socket readable. `None` when `id` is no open connection.
    pub fn connection_room(&self, id: SocketId) -> Option<usize> {
        self.inner.tcp.room(id)
    }

    // ------------------------------------------------------------------------------- NAT state

    /// Number of UDP NAT mappings.
    pub fn udp_flow_count(&self) -> usize {
        self.inner.nat.udp_flow_count()
    }

    /// Every UDP NAT mapping: (guest endpoint, last activity).
    pub fn udp_flows(&self) -> impl Iterator<Item = (SocketAddr, Instant)> + '_ {
        self.inner.nat.udp_flows()
    }

    /// Open TCP connections.
    pub fn tcp_connection_count(&self) -> usize {
        self.inner.tcp.connection_count()
    }

    /// TCP connections still in their handshake (at most
    /// [`TcpConfig::half_open_percent`](crate::tcp::TcpConfig::half_open_percent) of the table).
    pub fn tcp_half_open_count(&self) -> usize {
        self.inner.tcp.half_open_count()
    }

    /// Every TCP connection (slab order).
    pub fn tcp_connections(&self) -> impl Iterator<Item = TcpConnectionInfo> + use<'_, 'a> {
        self.inner.tcp.connections()
    }
}
