//! The engine: one virtual network, its services, and the dispatch of every guest frame.
//!
//! A frame's path: [`Slirp::handle_guest_frame`] checks the Ethernet header and hands ARP to
//! [`Inner::arp_input`] and IPv4 to [`Slirp::ipv4_input`]; IPv4 is validated (version, lengths,
//! checksum, source, TTL), fragments go through the [`Reassembler`], and the datagram is
//! dispatched by destination and protocol ([`Inner::dispatch`]): ICMP echo to the virtual
//! addresses, DHCP, and the NAT (grown by later issues). Everything we send goes through
//! [`Inner::send_datagram`], which resolves the guest's MAC (holding the packet while ARP
//! runs), fragments to the MTU and queues frames; the caller pulls them with
//! [`Slirp::poll_transmit`] when the guest link has room.

mod fragment;
pub(crate) mod icmp;
pub(crate) mod neighbor;
pub(crate) mod reassembly;

use crate::iface::neighbor::NeighborCache;
use crate::config::{Config, ConfigError};
use crate::services::dhcp::{DhcpServer, Verdict};
use crate::host::HostSocket;
use crate::iface::reassembly::{Added, Reassembler};
use crate::iface::fragment::{emit_frames, is_unicast_source};
use crate::nat::Nat;
use crate::offload::{self, GuestOffload, RxChecksum, TxOffload};
use crate::stats::{DropReason, Stats};
use crate::memory::Storage;
use crate::storage::FrameQueue;
use crate::nat::tcp::TcpNat;
use crate::time::{earliest, Instant};
use crate::wire::ethernet::{HEADER_LEN as ETH_LEN, MIN_FRAME_LEN};
use crate::wire::icmpv4::{self, unreach};
use crate::wire::ipv4::HEADER_LEN as IP_LEN;
use crate::wire::{self, checksum, dhcp as dhcp_wire, tcp as tcp_wire, udp as udp_wire};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpPacket, DhcpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use core::net::Ipv4Addr;
use core::ops::Deref;

/// TTL of datagrams we originate toward the guest (RFC 1340 default).
const DEFAULT_TTL: u8 = 64;
/// TTL of ICMP messages we originate (the original slirp uses MAXTTL).
const ICMP_TTL: u8 = 255;
/// TOS of DHCP replies (low delay, as the original slirp).
const DHCP_TOS: u8 = 0x10;

/// How the frame carrying a datagram is addressed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LinkDest {
    /// To this MAC (we learned it from the frame we answer).
    Mac(EthernetAddress),
    /// To whatever MAC the destination address resolves to (ARP, holding the packet meanwhile).
    Resolve,
}

/// The user-mode network engine. See the [crate documentation](crate).
#[derive(Debug)]
pub struct Slirp<'a> {
    pub(crate) inner: Inner<'a>,
    reassembler: Reassembler<'a>,
    /// Receive buffer for host datagrams (see [`Storage::scratch`]).
    pub(crate) scratch: managed::ManagedSlice<'a, u8>,
}

/// Everything but the reassembly buffers, so a reassembled datagram (borrowed from the
/// reassembler) can be dispatched with `&mut Inner`.
#[derive(Debug)]
pub(crate) struct Inner<'a> {
    pub(crate) config: Config,
    pub(crate) gateway_mac: EthernetAddress,
    pub(crate) neighbors: NeighborCache,
    pub(crate) dhcp: DhcpServer,
    pub(crate) tx: FrameQueue<'a>,
    pub(crate) hold: FrameQueue<'a>,
    pub(crate) next_ip_id: u16,
    pub(crate) stats: Stats,
    pub(crate) nat: Nat<'a>,
    pub(crate) tcp: TcpNat<'a>,
    /// What the guest link finishes for guest-bound frames.
    pub(crate) offload: GuestOffload,
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
        self.slirp.inner.tx.peek().map(|r| r.data).unwrap_or(&[])
    }
}

impl TxFrame<'_, '_> {
    /// What the frame leaves to the link: nothing unless offloads were declared with
    /// [`Slirp::set_guest_offload`]; then a TCP data segment may carry a partial checksum and
    /// be a super-frame (write [`TxOffload::virtio_net_hdr`] in front of it on a virtio link).
    pub fn offload(&self) -> TxOffload {
        self.slirp.inner.tx.peek().map(|r| offload::decode(r.tag, r.data)).unwrap_or_default()
    }

    /// The guest link took the frame: remove it from the queue.
    pub fn consume(self) {
        let inner = &mut self.slirp.inner;
        let len = inner.tx.peek().map_or(0, |r| r.data.len());
        inner.tx.pop();
        inner.stats.tx_frames += 1;
        inner.stats.tx_bytes += len as u64;
    }
}

impl<'a> Slirp<'a> {
    /// An engine for the network `config` describes, working in `storage`.
    pub fn new(config: Config, storage: Storage<'a>) -> Result<Slirp<'a>, ConfigError> {
        config.validate()?;
        let gateway_mac = EthernetAddress::slirp_virtual(config.gateway);
        let seed = config.seed;
        let (mtu, tcp_config) = (config.mtu, config.tcp);
        Ok(Slirp {
            inner: Inner {
                config,
                gateway_mac,
                neighbors: NeighborCache::default(),
                dhcp: DhcpServer::default(),
                tx: FrameQueue::new(storage.tx),
                hold: FrameQueue::new(storage.hold),
                next_ip_id: 0,
                nat: Nat::new(storage.udp_flows, storage.udp_index, storage.ready, seed),
                tcp: TcpNat::new(storage.tcp, mtu, tcp_config, seed),
                stats: Stats::default(),
                offload: GuestOffload::default(),
            },
            reassembler: Reassembler::new(storage.reassembly),
            scratch: storage.scratch,
        })
    }

    /// Declares what the guest link finishes for guest-bound frames (default: nothing). With
    /// offloads on, read each frame's needs with [`TxFrame::offload`]: a link that ignores them
    /// would hand the guest TCP segments with wrong checksums.
    pub fn set_guest_offload(&mut self, offload: GuestOffload) {
        self.inner.offload = GuestOffload { segmentation: offload.segmentation && offload.checksum, ..offload };
    }

    /// The guest link's offloads in force (see [`set_guest_offload`](Self::set_guest_offload)).
    pub fn guest_offload(&self) -> GuestOffload {
        self.inner.offload
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The MAC address the gateway answers with (and every frame toward the guest comes from).
    pub fn gateway_mac(&self) -> EthernetAddress {
        self.inner.gateway_mac
    }

    /// Traffic and drop counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// DHCP leases handed out: (address, MAC).
    pub fn leases(&self) -> impl Iterator<Item = (Ipv4Addr, EthernetAddress)> + '_ {
        self.inner.dhcp.leases(&self.inner.config)
    }

    /// Guest addresses whose MAC is known: (address, MAC).
    pub fn neighbors(&self) -> impl Iterator<Item = (Ipv4Addr, EthernetAddress)> + '_ {
        self.inner.neighbors.iter()
    }

    /// Frames waiting for the guest link.
    pub fn tx_queue_len(&self) -> usize {
        self.inner.tx.len()
    }

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
        self.inner.stats.rx_frames += 1;
        self.inner.stats.rx_bytes += frame.len() as u64;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.inner.stats.drop(DropReason::EthernetTruncated);
            return;
        };
        match eth.ethertype() {
            EtherType::Arp => self.inner.arp_input(now, &eth),
            EtherType::Ipv4 => self.ipv4_input(now, &eth, checksum == RxChecksum::Trusted, host),
            _ => self.inner.stats.drop(DropReason::EthernetUnknownType),
        }
    }

    /// Runs the timers that are due: held packets whose ARP resolution timed out, incomplete
    /// fragment sets.
    pub fn handle_timeout<H: HostSocket>(&mut self, now: Instant, host: &mut H) {
        self.inner.release_held(now);
        self.inner.expire_flows(now, host);
        if self.inner.nat.has_ready() {
            self.service_ready(now, host);
        }
        self.tcp_timeouts(now, host);
        if self.inner.tcp.backlog_ready() {
            self.tcp_retry_backlog(now, host);
        }
        for _ in 0..self.reassembler.expire(now) {
            self.inner.stats.drop(DropReason::FragmentTimeout);
        }
    }

    /// The next frame for the guest, if any. See [`TxFrame`].
    pub fn poll_transmit<H: HostSocket>(&mut self, now: Instant, host: &mut H) -> Option<TxFrame<'_, 'a>> {
        if self.inner.nat.has_ready() {
            // The guest link drained: read host sockets that were waiting for room.
            self.service_ready(now, host);
        }
        if self.inner.tcp.backlog_ready() {
            self.tcp_retry_backlog(now, host);
        }
        if self.inner.tcp.has_output() {
            self.tcp_emit(now, host);
        }
        if self.inner.tx.is_empty() {
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
            frame.slirp.inner.tx.pop();
            frame.slirp.inner.stats.drop(DropReason::TxBufferTooSmall);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next, or `None` if no timer is set.
    pub fn poll_at(&self) -> Option<Instant> {
        // Host sockets still ready to read (a turn used its budget without filling the guest
        // queue, say on unmatched echo replies) need another turn now, not at the next packet.
        // When the guest queue is full instead, draining it with `poll_transmit` resumes them.
        if self.inner.nat.has_ready() && self.inner.tx_room(self.scratch.len()) {
            return Some(Instant::ZERO);
        }
        if self.inner.tcp.has_output() && self.inner.tx_room(usize::from(self.inner.config.mtu)) {
            return Some(Instant::ZERO);
        }
        if self.inner.tcp.backlog_ready() {
            return Some(Instant::ZERO);
        }
        let held = self.inner.hold.peek().map(|r| r.deadline);
        let t = earliest(held, self.reassembler.poll_at());
        earliest(earliest(t, self.inner.nat.poll_at()), self.inner.tcp.poll_at())
    }

    fn ipv4_input<H: HostSocket>(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>, trusted: bool, host: &mut H) {
        let inner = &mut self.inner;
        let Ok(packet) = Ipv4Packet::new_checked(eth.payload()) else {
            inner.stats.drop(DropReason::Ipv4Malformed);
            return;
        };
        let repr = match Ipv4Repr::parse(&packet, wire::VERIFY_CHECKSUMS) {
            Ok(r) => r,
            Err(wire::Error::Checksum) => return inner.stats.drop(DropReason::Ipv4Checksum),
            Err(_) => return inner.stats.drop(DropReason::Ipv4Malformed),
        };
        let link = Arrival {
            src_mac: eth.src_addr(),
            link_broadcast: eth.dst_addr().is_multicast(),
            verify_l4: wire::VERIFY_CHECKSUMS && !trusted,
        };
        // A verified IPv4 header from a guest address refreshes its MAC: ARP carries no checksum,
        // so one corrupted ARP frame must not misdirect the guest's traffic for long.
        inner.learn_guest(now, repr.src_addr, link.src_mac);
        let header = &packet.datagram()[..packet.header_len() as usize];
        if !packet.is_fragment() {
            inner.dispatch(now, link, &repr, header, packet.payload(), host);
            return;
        }
        let timeout = inner.config.reassembly_timeout;
        match self.reassembler.add(now, timeout, &repr, packet.payload()) {
            Ok(Added::Pending) => {}
            Ok(Added::PendingEvicted) => self.inner.stats.drop(DropReason::FragmentNoSlot),
            Ok(Added::Complete(slot)) => {
                if let Some((whole, payload)) = self.reassembler.datagram(slot) {
                    self.inner.stats.reassembled += 1;
                    let mut hdr = [0u8; IP_LEN];
                    whole.emit(&mut hdr);
                    self.inner.dispatch(now, link, &whole, &hdr, payload, host);
                }
                self.reassembler.release(slot);
            }
            Err(reason) => self.inner.stats.drop(reason),
        }
    }
}

/// How a datagram reached us on the link.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    src_mac: EthernetAddress,
    link_broadcast: bool,
    /// Whether the TCP/UDP checksum must be verified (the link did not vouch for it).
    verify_l4: bool,
}

/// Where a datagram is going, as far as the engine is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Destination {
    /// The gateway or DNS alias.
    Virtual,
    /// 255.255.255.255 or the subnet's broadcast address.
    Broadcast,
    /// Another address inside the virtual subnet.
    Subnet,
    /// Beyond the virtual subnet: the NAT's business.
    Outside,
    /// Multicast, loopback, 0.0.0.0 or reserved: nowhere.
    Martian,
}

impl<'a> Inner<'a> {
    fn classify(&self, dst: Ipv4Addr) -> Destination {
        let c = &self.config;
        if dst == c.gateway || dst == c.dns {
            Destination::Virtual
        } else if dst.is_broadcast() || dst == c.broadcast() {
            Destination::Broadcast
        } else if c.in_network(dst) {
            Destination::Subnet
        } else if dst.is_multicast() || dst.is_loopback() || dst.is_unspecified() || dst.octets()[0] >= 240 {
            Destination::Martian
        } else {
            Destination::Outside
        }
    }

    // ---------------------------------------------------------------- ARP

    fn arp_input(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>) {
        let repr = match ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(_) => return self.stats.drop(DropReason::ArpMalformed),
        };
        let sender = repr.source_protocol_addr;
        let c = &self.config;
        // Learn guests only: an address of the subnet that is not ours, at a unicast MAC.
        // Requests, replies and gratuitous ARP all teach us.
        if c.is_host(sender) && sender != c.gateway && sender != c.dns && repr.source_hardware_addr.is_unicast() {
            self.neighbors.learn(now, sender, repr.source_hardware_addr);
            self.release_held(now);
        }
        if repr.operation != ArpOperation::Request {
            return;
        }
        let target = repr.target_protocol_addr;
        if !self.answers_arp_for(target) || sender == target {
            if sender != target {
                self.stats.drop(DropReason::ArpNotForUs);
            }
            return;
        }
        let our_mac = EthernetAddress::slirp_virtual(target);
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: our_mac,
            source_protocol_addr: target,
            target_hardware_addr: repr.source_hardware_addr,
            target_protocol_addr: sender,
        };
        let eth_repr = EthernetRepr { src_addr: our_mac, dst_addr: eth.src_addr(), ethertype: EtherType::Arp };
        self.queue_arp(&eth_repr, &reply);
    }

    /// Records that guest address `ip` is at `mac`: only addresses of the subnet that are not
    /// ours, at a unicast MAC. Releases packets held for it.
    fn learn_guest(&mut self, now: Instant, ip: Ipv4Addr, mac: EthernetAddress) {
        let c = &self.config;
        if !c.is_host(ip) || ip == c.gateway || ip == c.dns || !mac.is_unicast() {
            return;
        }
        if self.neighbors.lookup(ip) == Some(mac) {
            self.neighbors.learn(now, ip, mac);
            return;
        }
        self.neighbors.learn(now, ip, mac);
        self.release_held(now);
    }

    /// The virtual addresses that answer ARP. (Forwarding rules to virtual addresses will join
    /// this list with the NAT issues.)
    fn answers_arp_for(&self, ip: Ipv4Addr) -> bool {
        ip == self.config.gateway || ip == self.config.dns
    }

    fn queue_arp(&mut self, eth: &EthernetRepr, arp: &ArpRepr) {
        let res = self.tx.push_with(MIN_FRAME_LEN, 0, Instant::ZERO, |buf| {
            eth.emit(&mut EthernetFrame::new_unchecked(&mut *buf));
            arp.emit(&mut buf[ETH_LEN..]);
            MIN_FRAME_LEN // zero-padded to the Ethernet minimum
        });
        if res.is_err() {
            self.stats.drop(DropReason::TxQueueFull);
        }
    }

    fn send_arp_request(&mut self, target: Ipv4Addr) {
        let eth = EthernetRepr {
            src_addr: self.gateway_mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        };
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.gateway_mac,
            source_protocol_addr: self.config.gateway,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: target,
        };
        self.stats.arp_requests_sent += 1;
        self.queue_arp(&eth, &arp);
    }

    /// Moves held packets whose destination resolved to the guest-bound queue and drops those
    /// that waited too long. The hold queue is FIFO and every packet waits the same time, so
    /// only its head can be due; a packet behind an unresolved one waits at most one timeout.
    fn release_held(&mut self, now: Instant) {
        while let Some(rec) = self.hold.peek() {
            let dst = Ipv4Addr::from(rec.tag);
            if let Some(mac) = self.neighbors.lookup(dst) {
                // We wrote this datagram ourselves; its header parses.
                if let Ok(p) = Ipv4Packet::new_checked(rec.data) {
                    if let Ok(repr) = Ipv4Repr::parse(&p, false) {
                        let mtu = usize::from(self.config.mtu);
                        emit_frames(&mut self.tx, &mut self.stats, mtu, self.gateway_mac, mac, &repr, &[], p.payload());
                    }
                }
            } else if rec.deadline <= now {
                self.stats.drop(DropReason::ArpHoldTimeout);
            } else {
                return;
            }
            self.hold.pop();
        }
    }

    // ---------------------------------------------------------------- IPv4 output

    /// How to address a reply to `src` that arrived from `link`: a guest of our subnet is
    /// reached through the neighbor table, as a router would (the guest's ARP for its gateway
    /// has taught us its MAC; if not, we ask and hold the reply). A guest using an address
    /// outside the subnet can only be answered at the MAC it wrote from.
    fn reply_link(&self, link: Arrival, src: Ipv4Addr) -> LinkDest {
        if self.config.is_host(src) {
            LinkDest::Resolve
        } else {
            LinkDest::Mac(link.src_mac)
        }
    }

    fn next_ident(&mut self) -> u16 {
        let id = self.next_ip_id;
        self.next_ip_id = id.wrapping_add(1);
        id
    }

    /// Sends the datagram `repr` with payload `head ‖ body` toward the guest. `repr.ident` and
    /// `repr.payload_len` are filled in here.
    pub(crate) fn send_datagram(&mut self, now: Instant, mut repr: Ipv4Repr, link: LinkDest, head: &[u8], body: &[u8]) {
        let len = head.len() + body.len();
        if IP_LEN + len > wire::ipv4::MAX_DATAGRAM {
            self.stats.drop(DropReason::TxBufferTooSmall);
            return;
        }
        repr.payload_len = len;
        repr.ident = self.next_ident();
        let dst_mac = match link {
            LinkDest::Mac(m) => Some(m),
            LinkDest::Resolve if self.classify(repr.dst_addr) == Destination::Broadcast => {
                Some(EthernetAddress::BROADCAST)
            }
            LinkDest::Resolve => self.neighbors.lookup(repr.dst_addr),
        };
        let mtu = usize::from(self.config.mtu);
        if let Some(mac) = dst_mac {
            emit_frames(&mut self.tx, &mut self.stats, mtu, self.gateway_mac, mac, &repr, head, body);
            return;
        }
        // Unknown guest MAC: hold the datagram (unfragmented) and ask. The original slirp dropped
        // the packet here and relied on the sender retrying.
        let deadline = now + self.config.arp_hold_timeout;
        let held = self.hold.push_with(IP_LEN + len, u32::from(repr.dst_addr), deadline, |buf| {
            repr.emit(buf);
            buf[IP_LEN..IP_LEN + head.len()].copy_from_slice(head);
            buf[IP_LEN + head.len()..].copy_from_slice(body);
            IP_LEN + len
        });
        if held.is_err() {
            self.stats.drop(DropReason::ArpHoldFull);
            return;
        }
        if self.neighbors.should_request(now, repr.dst_addr) {
            self.send_arp_request(repr.dst_addr);
        }
    }

    pub(crate) fn reply_header(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        ttl: u8,
        tos: u8,
    ) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol,
            payload_len: 0,
            ttl,
            tos,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        }
    }

    /// Sends an ICMP error about the datagram `orig` (header bytes `orig_header`, payload
    /// `orig_payload`), if RFC 1812 allows one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn icmp_error(
        &mut self,
        now: Instant,
        link: Arrival,
        orig: &Ipv4Repr,
        orig_header: &[u8],
        orig_payload: &[u8],
        msg_type: u8,
        code: u8,
    ) {
        let ip_broadcast = self.classify(orig.dst_addr) == Destination::Broadcast;
        if !icmp::error_allowed(orig, orig_payload, link.link_broadcast, ip_broadcast) {
            return;
        }
        // Quote the header and as much payload as keeps the error within 576 bytes.
        let mut quote = [0u8; icmp::MAX_QUOTE];
        let hl = orig_header.len().min(quote.len());
        quote[..hl].copy_from_slice(&orig_header[..hl]);
        let pl = orig_payload.len().min(quote.len() - hl);
        quote[hl..hl + pl].copy_from_slice(&orig_payload[..pl]);
        let quote = &quote[..hl + pl];
        let head = icmp::header(msg_type, code, [0; 4], quote);
        let src = icmp::error_source(self.config.gateway);
        let repr = self.reply_header(src, orig.src_addr, IpProtocol::Icmp, ICMP_TTL, icmp::error_tos(orig.tos));
        self.stats.icmp_errors_sent += 1;
        self.send_datagram(now, repr, self.reply_link(link, orig.src_addr), &head, quote);
    }

    // ---------------------------------------------------------------- dispatch

    fn dispatch<H: HostSocket>(
        &mut self,
        now: Instant,
        link: Arrival,
        repr: &Ipv4Repr,
        header: &[u8],
        payload: &[u8],
        host: &mut H,
    ) {
        let dest = self.classify(repr.dst_addr);
        let dhcp_request = repr.protocol == IpProtocol::Udp && payload.get(2..4) == Some(&[0, 67][..]);
        let dhcp_from_nowhere = repr.src_addr.is_unspecified() && dhcp_request;
        if !is_unicast_source(repr.src_addr) && !dhcp_from_nowhere {
            return self.stats.drop(DropReason::Ipv4BadSource);
        }
        // Our own addresses, and the subnet's directed broadcast (RFC 1122 §3.2.1.3: never a
        // source; a reply or ICMP error to it would be addressed to the whole subnet).
        let c = &self.config;
        if repr.src_addr == c.gateway || repr.src_addr == c.dns || repr.src_addr == c.broadcast() {
            return self.stats.drop(DropReason::Ipv4BadSource);
        }
        // TTL (RFC 1812 §5.3.1): a datagram we would forward needs TTL > 1; one for us, > 0.
        let local = matches!(dest, Destination::Virtual | Destination::Broadcast);
        if repr.ttl == 0 || (!local && repr.ttl == 1) {
            self.stats.drop(DropReason::Ipv4TtlExpired);
            self.icmp_error(now, link, repr, header, payload, icmpv4::TIME_EXCEEDED, 0);
            return;
        }
        match repr.protocol {
            IpProtocol::Udp => self.udp_input(now, link, repr, header, payload, dest, host),
            IpProtocol::Icmp => self.icmp_input(now, link, repr, header, payload, dest, host),
            IpProtocol::Tcp => self.tcp_input(now, link, repr, payload, dest, host),
            IpProtocol::Unknown(_) => {
                self.stats.drop(DropReason::Ipv4UnknownProtocol);
                if dest == Destination::Virtual {
                    // RFC 1812 §4.3.3.1: protocol unreachable for a protocol the router does not
                    // speak. Datagrams to be forwarded (GRE, SCTP...) cannot be NATed: silence.
                    self.icmp_error(now, link, repr, header, payload, icmpv4::DST_UNREACHABLE, unreach::PROTOCOL);
                }
            }
        }
    }

    /// Refuses a datagram nobody serves: ICMP unreachable where allowed, counted as `reason`.
    #[allow(clippy::too_many_arguments)]
    fn unreachable(
        &mut self,
        now: Instant,
        link: Arrival,
        repr: &Ipv4Repr,
        header: &[u8],
        payload: &[u8],
        dest: Destination,
        port_code: u8,
    ) {
        self.stats.drop(DropReason::Ipv4NoRoute);
        let code = match dest {
            Destination::Virtual => port_code,
            Destination::Subnet => unreach::HOST,
            Destination::Outside => unreach::NET,
            Destination::Broadcast | Destination::Martian => return,
        };
        self.icmp_error(now, link, repr, header, payload, icmpv4::DST_UNREACHABLE, code);
    }

    #[allow(clippy::too_many_arguments)]
    fn icmp_input<H: HostSocket>(
        &mut self,
        now: Instant,
        link: Arrival,
        repr: &Ipv4Repr,
        header: &[u8],
        payload: &[u8],
        dest: Destination,
        host: &mut H,
    ) {
        let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
            return self.stats.drop(DropReason::IcmpMalformed);
        };
        let msg = match Icmpv4Repr::parse(&packet, wire::VERIFY_CHECKSUMS) {
            Ok(m) => m,
            Err(_) => return self.stats.drop(DropReason::IcmpMalformed),
        };
        match (msg, dest) {
            (Icmpv4Repr::EchoRequest { ident, seq_no, data }, Destination::Virtual) => {
                let id = ident.to_be_bytes();
                let sq = seq_no.to_be_bytes();
                let head = icmp::header(icmpv4::ECHO_REPLY, 0, [id[0], id[1], sq[0], sq[1]], data);
                // A fresh 20-byte header: the request's IP options are not echoed.
                let reply = self.reply_header(repr.dst_addr, repr.src_addr, IpProtocol::Icmp, ICMP_TTL, repr.tos);
                let to = self.reply_link(link, repr.src_addr);
                self.send_datagram(now, reply, to, &head, data);
            }
            (Icmpv4Repr::EchoRequest { ident, seq_no, data }, Destination::Outside) => {
                self.echo_nat_input(now, link, repr, header, payload, (ident, seq_no, data), host);
            }
            (Icmpv4Repr::EchoRequest { .. }, Destination::Subnet) => {
                if self.config.restricted {
                    return self.stats.drop(DropReason::Restricted);
                }
                // Nobody lives at other addresses of the virtual subnet.
                self.unreachable(now, link, repr, header, payload, dest, unreach::HOST);
            }
            _ => self.stats.drop(DropReason::IcmpIgnored),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn udp_input<H: HostSocket>(
        &mut self,
        now: Instant,
        link: Arrival,
        repr: &Ipv4Repr,
        header: &[u8],
        payload: &[u8],
        dest: Destination,
        host: &mut H,
    ) {
        let Ok(packet) = UdpPacket::new_checked(payload) else {
            return self.stats.drop(DropReason::UdpMalformed);
        };
        let Ok(udp) = UdpRepr::parse(&packet, repr.src_addr, repr.dst_addr, link.verify_l4) else {
            return self.stats.drop(DropReason::UdpMalformed);
        };
        if udp.dst_port == 67 {
            // DHCP requests are always consumed, never forwarded, whatever their destination.
            if matches!(dest, Destination::Broadcast) || repr.dst_addr == self.config.gateway {
                self.dhcp_input(now, link, packet.payload());
            } else {
                self.stats.drop(DropReason::DhcpIgnored);
            }
            return;
        }
        let data = packet.payload();
        self.udp_nat_input(now, link, repr, header, payload, (udp.src_port, udp.dst_port), data, host);
    }

    fn dhcp_input(&mut self, now: Instant, link: Arrival, bootp: &[u8]) {
        let Ok(packet) = DhcpPacket::new_checked(bootp) else {
            return self.stats.drop(DropReason::DhcpMalformed);
        };
        let Ok(request) = DhcpRepr::parse(&packet) else {
            return self.stats.drop(DropReason::DhcpMalformed);
        };
        if self.config.disable_dhcp {
            return self.stats.drop(DropReason::DhcpIgnored);
        }
        let reply = match self.dhcp.handle(now, &self.config, &request) {
            Verdict::Reply(r) => r,
            Verdict::Ignore => return self.stats.drop(DropReason::DhcpIgnored),
        };
        let mut body = [0u8; dhcp_wire::REPLY_LEN];
        reply.emit(&mut body);
        let is_nak = reply.message_type == Some(wire::DhcpMessageType::Nak);
        let is_ack = reply.message_type == Some(wire::DhcpMessageType::Ack);
        let yiaddr = reply.yiaddr;
        let chaddr = reply.chaddr;
        let _ = link;
        // RFC 2131 §4.1: a renewing client (ciaddr set) is answered by unicast; a client asking
        // for broadcast, and every NAK, by broadcast; anyone else at its own MAC with the limited
        // broadcast address (it has no address yet).
        let (dst_ip, dst_mac) = if is_nak || request.broadcast {
            (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST)
        } else if !request.ciaddr.is_unspecified() {
            (request.ciaddr, chaddr)
        } else {
            (Ipv4Addr::BROADCAST, chaddr)
        };
        if is_ack {
            self.neighbors.learn(now, yiaddr, chaddr);
        }
        let src = self.config.gateway;
        let udp = UdpRepr { src_port: 67, dst_port: 68 };
        let mut head = [0u8; udp_wire::HEADER_LEN];
        udp_header(&udp, &mut head, src, dst_ip, &body);
        let repr = self.reply_header(src, dst_ip, IpProtocol::Udp, DEFAULT_TTL, DHCP_TOS);
        self.send_datagram(now, repr, LinkDest::Mac(dst_mac), &head, &body);
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp_input<H: HostSocket>(
        &mut self,
        now: Instant,
        link: Arrival,
        repr: &Ipv4Repr,
        payload: &[u8],
        dest: Destination,
        host: &mut H,
    ) {
        let Ok(packet) = TcpPacket::new_checked(payload) else {
            return self.stats.drop(DropReason::TcpMalformed);
        };
        let Ok(seg) = TcpRepr::parse(&packet, repr.src_addr, repr.dst_addr, link.verify_l4) else {
            return self.stats.drop(DropReason::TcpMalformed);
        };
        if matches!(dest, Destination::Broadcast | Destination::Martian) {
            return self.stats.drop(DropReason::Ipv4NoRoute);
        }
        self.tcp_guest_segment(now, link, repr, &seg, host);
    }

    pub(crate) fn send_reset(&mut self, now: Instant, link: Arrival, repr: &Ipv4Repr, seg: &TcpRepr<'_>) {
        // Never answer a reset; otherwise RFC 9293 3.10.7.1's reply to a segment for no connection.
        let Some(rst) = crate::tcp::reset_reply(seg) else { return };
        let mut head = [0u8; tcp_wire::HEADER_LEN];
        rst.emit(&mut head, repr.dst_addr, repr.src_addr);
        let reply = self.reply_header(repr.dst_addr, repr.src_addr, IpProtocol::Tcp, DEFAULT_TTL, 0);
        let to = self.reply_link(link, repr.src_addr);
        self.send_datagram(now, reply, to, &head, &[]);
    }
}

/// Writes a UDP header for `body` (checksum over pseudo-header, header and body) into `head`.
pub(crate) fn udp_header(
    udp: &UdpRepr,
    head: &mut [u8; udp_wire::HEADER_LEN],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    body: &[u8],
) {
    let len = (udp_wire::HEADER_LEN + body.len()) as u16;
    head[0..2].copy_from_slice(&udp.src_port.to_be_bytes());
    head[2..4].copy_from_slice(&udp.dst_port.to_be_bytes());
    head[4..6].copy_from_slice(&len.to_be_bytes());
    head[6..8].copy_from_slice(&[0, 0]);
    let acc =
        checksum::pseudo_header(src, dst, IpProtocol::Udp, u32::from(len)) + checksum::sum(head) + checksum::sum(body);
    let c = match checksum::finish(acc) {
        0 => 0xffff,
        c => c,
    };
    head[6..8].copy_from_slice(&c.to_be_bytes());
}
