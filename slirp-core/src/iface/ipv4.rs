//! IPv4 toward and from the guest: the input gate (lengths, checksum, source, TTL), reassembly,
//! classification of the destination, dispatch to the protocol machines, and the output path
//! every reply takes (`send_datagram`: IP id, neighbor resolution or hold, fragmentation).

use crate::host::HostSocket;
use crate::iface::fragment::{emit_frames, is_unicast_source};
use crate::iface::ip::{Arrival, IcmpError, Ingress, LinkDest, Unreach};
use crate::iface::reassembly::{Added, Reassembler};
use crate::iface::{icmp, Iface, Inner};
use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire;
use crate::wire::ipv4::HEADER_LEN as IP_LEN;
use crate::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
};
use crate::wire::{TcpPacket, TcpRepr, UdpPacket, UdpRepr};
use core::net::{IpAddr, Ipv4Addr};

/// TTL of datagrams we originate toward the guest (RFC 1340 default).
pub(crate) const DEFAULT_TTL: u8 = 64;
/// TTL of ICMP messages we originate (the original slirp uses MAXTTL).
pub(crate) const ICMP_TTL: u8 = 255;

/// Where a datagram is going, as far as the engine is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Destination {
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

/// An IPv4 frame from the guest: validated, reassembled if it is a fragment, then dispatched.
pub(crate) fn input<H: HostSocket>(
    inner: &mut Inner<'_>,
    reassembler: &mut Reassembler<'_>,
    now: Instant,
    eth: &EthernetFrame<&[u8]>,
    trusted: bool,
    host: &mut H,
) {
    let iface = &mut inner.iface;
    let Ok(packet) = Ipv4Packet::new_checked(eth.payload()) else {
        iface.stats.drop(DropReason::Ipv4Malformed);
        return;
    };
    let repr = match Ipv4Repr::parse(&packet, wire::VERIFY_CHECKSUMS) {
        Ok(r) => r,
        Err(wire::Error::Checksum) => return iface.stats.drop(DropReason::Ipv4Checksum),
        Err(_) => return iface.stats.drop(DropReason::Ipv4Malformed),
    };
    let link = Arrival {
        src_mac: eth.src_addr(),
        link_broadcast: eth.dst_addr().is_multicast(),
        verify_l4: wire::VERIFY_CHECKSUMS && !trusted,
    };
    // A verified IPv4 header from a guest address refreshes its MAC: ARP carries no checksum,
    // so one corrupted ARP frame must not misdirect the guest's traffic for long.
    // Confirmed by ARP (after the answer, so the reply to this datagram goes out first) when it
    // moved a known address.
    let moved = iface.learn_guest(now, repr.src_addr, link.src_mac);
    let header = &packet.datagram()[..packet.header_len() as usize];
    if !packet.is_fragment() {
        let ingress = ingress(now, link, &repr, header, packet.payload());
        inner.dispatch(&repr, &ingress, host);
        if moved {
            inner.iface.confirm_guest(now, repr.src_addr);
        }
        return;
    }
    if moved {
        iface.confirm_guest(now, repr.src_addr);
    }
    let timeout = iface.config.reassembly_timeout;
    match reassembler.add(now, timeout, &repr, packet.payload()) {
        Ok(Added::Pending) => {}
        Ok(Added::PendingEvicted) => iface.stats.drop(DropReason::FragmentNoSlot),
        Ok(Added::Complete(slot)) => {
            if let Some((whole, payload)) = reassembler.datagram(slot) {
                inner.iface.stats.reassembled += 1;
                let mut hdr = [0u8; IP_LEN];
                whole.emit(&mut hdr);
                let ingress = ingress(now, link, &whole, &hdr, payload);
                inner.dispatch(&whole, &ingress, host);
            }
            reassembler.release(slot);
        }
        Err(reason) => iface.stats.drop(reason),
    }
}

/// The family-neutral view of a validated IPv4 datagram.
fn ingress<'p>(now: Instant, link: Arrival, repr: &Ipv4Repr, header: &'p [u8], payload: &'p [u8]) -> Ingress<'p> {
    Ingress {
        now,
        link,
        src: IpAddr::V4(repr.src_addr),
        dst: IpAddr::V4(repr.dst_addr),
        protocol: repr.protocol,
        hop_limit: repr.ttl,
        tos: repr.tos,
        header,
        payload,
    }
}

impl Inner<'_> {
    /// Sends a datagram to the machine that serves its protocol and destination.
    fn dispatch<H: HostSocket>(&mut self, repr: &Ipv4Repr, d: &Ingress<'_>, host: &mut H) {
        let payload = d.payload;
        let out = &mut self.iface;
        let dest = out.classify(repr.dst_addr);
        let dhcp_request = repr.protocol == IpProtocol::Udp && payload.get(2..4) == Some(&[0, 67][..]);
        let dhcp_from_nowhere = repr.src_addr.is_unspecified() && dhcp_request;
        if !is_unicast_source(repr.src_addr) && !dhcp_from_nowhere {
            return out.stats.drop(DropReason::Ipv4BadSource);
        }
        // Our own addresses, and the subnet's directed broadcast (RFC 1122 §3.2.1.3: never a
        // source; a reply or ICMP error to it would be addressed to the whole subnet).
        let c = &out.config;
        if repr.src_addr == c.gateway || repr.src_addr == c.dns || repr.src_addr == c.broadcast() {
            return out.stats.drop(DropReason::Ipv4BadSource);
        }
        // TTL (RFC 1812 §5.3.1): a datagram we would forward needs TTL > 1; one for us, > 0.
        let local = matches!(dest, Destination::Virtual | Destination::Broadcast);
        if repr.ttl == 0 || (!local && repr.ttl == 1) {
            out.stats.drop(DropReason::Ipv4TtlExpired);
            out.icmp_error(d, IcmpError::TimeExceeded);
            return;
        }
        match repr.protocol {
            IpProtocol::Udp => self.udp_input(d, dest, host),
            IpProtocol::Icmp => self.icmp_input(d, dest, host),
            IpProtocol::Tcp => self.tcp_input(d, dest, host),
            IpProtocol::Icmpv6 | IpProtocol::Unknown(_) => {
                out.stats.drop(DropReason::Ipv4UnknownProtocol);
                if dest == Destination::Virtual {
                    // RFC 1812 §4.3.3.1: protocol unreachable for a protocol the router does not
                    // speak. Datagrams to be forwarded (GRE, SCTP...) cannot be NATed: silence.
                    out.icmp_error(d, IcmpError::Unreachable(Unreach::Protocol));
                }
            }
        }
    }

    fn icmp_input<H: HostSocket>(&mut self, d: &Ingress<'_>, dest: Destination, host: &mut H) {
        let out = &mut self.iface;
        let Ok(packet) = Icmpv4Packet::new_checked(d.payload) else {
            return out.stats.drop(DropReason::IcmpMalformed);
        };
        let msg = match Icmpv4Repr::parse(&packet, wire::VERIFY_CHECKSUMS) {
            Ok(m) => m,
            Err(_) => return out.stats.drop(DropReason::IcmpMalformed),
        };
        match (msg, dest) {
            (Icmpv4Repr::EchoRequest { ident, seq_no, data }, Destination::Virtual) => {
                out.echo_reply(d, ident, seq_no, data);
            }
            (Icmpv4Repr::EchoRequest { ident, seq_no, data }, Destination::Outside) => {
                self.nat.echo_input(out, d, (ident, seq_no, data), host);
            }
            (Icmpv4Repr::EchoRequest { .. }, Destination::Subnet) => {
                if out.config.restricted {
                    return out.stats.drop(DropReason::Restricted);
                }
                // Nobody lives at other addresses of the virtual subnet.
                out.unreachable(d, dest, Unreach::Host);
            }
            _ => out.stats.drop(DropReason::IcmpIgnored),
        }
    }

    fn udp_input<H: HostSocket>(&mut self, d: &Ingress<'_>, dest: Destination, host: &mut H) {
        let out = &mut self.iface;
        let Ok(packet) = UdpPacket::new_checked(d.payload) else {
            return out.stats.drop(DropReason::UdpMalformed);
        };
        let Ok(udp) = UdpRepr::parse(&packet, d.src, d.dst, d.link.verify_l4) else {
            return out.stats.drop(DropReason::UdpMalformed);
        };
        if udp.dst_port == 67 {
            // DHCP requests are always consumed, never forwarded, whatever their destination.
            if matches!(dest, Destination::Broadcast) || d.dst == IpAddr::V4(out.config.gateway) {
                self.dhcp.input(out, d.now, packet.payload());
            } else {
                out.stats.drop(DropReason::DhcpIgnored);
            }
            return;
        }
        if udp.dst_port == crate::services::tftp::TFTP_PORT
            && out.config.tftp
            && d.dst == IpAddr::V4(out.config.gateway)
        {
            return self.tftp.input(out, d, udp.src_port, packet.payload(), host);
        }
        self.nat.udp_input(out, &self.forwards, d, (udp.src_port, udp.dst_port, packet.payload()), host);
    }

    fn tcp_input<H: HostSocket>(&mut self, d: &Ingress<'_>, dest: Destination, host: &mut H) {
        let out = &mut self.iface;
        let Ok(packet) = TcpPacket::new_checked(d.payload) else {
            return out.stats.drop(DropReason::TcpMalformed);
        };
        let Ok(seg) = TcpRepr::parse(&packet, d.src, d.dst, d.link.verify_l4) else {
            return out.stats.drop(DropReason::TcpMalformed);
        };
        if matches!(dest, Destination::Broadcast | Destination::Martian) {
            return out.stats.drop(DropReason::Ipv4NoRoute);
        }
        self.tcp.guest_segment(out, d, &seg, host);
    }
}

impl Iface<'_> {
    pub(crate) fn classify(&self, dst: Ipv4Addr) -> Destination {
        let c = &self.config;
        if dst == c.gateway || dst == c.dns {
            Destination::Virtual
        } else if dst.is_broadcast() || dst == c.broadcast() {
            Destination::Broadcast
        } else if c.in_network(dst) {
            // Guest-forward rules live in the network: only its packets pay the lookup.
            if self.guest_forwards.has_addr(dst.into()) {
                Destination::Virtual
            } else {
                Destination::Subnet
            }
        } else if dst.is_multicast() || dst.is_loopback() || dst.is_unspecified() || dst.octets()[0] >= 240 {
            Destination::Martian
        } else {
            Destination::Outside
        }
    }

    /// The Ethernet header of an IPv4 frame from the gateway to `dst`.
    pub(crate) fn ipv4_frame(&self, dst: EthernetAddress) -> EthernetRepr {
        EthernetRepr { src_addr: self.gateway_mac, dst_addr: dst, ethertype: EtherType::Ipv4 }
    }

    fn next_ident(&mut self) -> u16 {
        let id = self.next_ip_id;
        self.next_ip_id = id.wrapping_add(1);
        id
    }

    /// Room in the guest-bound queue for a datagram of up to `max` bytes, fragments included.
    pub(crate) fn tx_room(&self, max: usize) -> bool {
        let mtu = usize::from(self.config.mtu).max(68);
        let frames = max.div_ceil(mtu - 20).max(1);
        let need = (max + frames * (14 + 20 + 16 + 8)).min(self.tx.capacity() / 2);
        self.tx.free_bytes() >= need && self.tx.fits(mtu + 14)
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
            let eth = self.ipv4_frame(mac);
            emit_frames(&mut self.tx, &mut self.stats, mtu, &eth, &repr, head, body);
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

    /// Sends an ICMPv4 error about the IPv4 datagram `d`, if RFC 1812 allows one.
    pub(crate) fn icmp_error4(&mut self, d: &Ingress<'_>, err: IcmpError) {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (d.src, d.dst) else { return };
        // Errors are only sent about whole datagrams (after reassembly).
        let orig = reply_header(src, dst, d.protocol, d.hop_limit, d.tos);
        let ip_broadcast = self.classify(dst) == Destination::Broadcast;
        if !icmp::error_allowed(&orig, d.payload, d.link.link_broadcast, ip_broadcast) {
            return;
        }
        // Quote the header and as much payload as keeps the error within 576 bytes.
        let mut quote = [0u8; icmp::MAX_QUOTE];
        let hl = d.header.len().min(quote.len());
        quote[..hl].copy_from_slice(&d.header[..hl]);
        let pl = d.payload.len().min(quote.len() - hl);
        quote[hl..hl + pl].copy_from_slice(&d.payload[..pl]);
        let quote = &quote[..hl + pl];
        let head = icmp::error_message(err, quote).emit_header();
        let from = icmp::error_source(self.config.gateway);
        let repr = reply_header(from, src, IpProtocol::Icmp, ICMP_TTL, icmp::error_tos(orig.tos));
        self.stats.icmp_errors_sent += 1;
        self.send_datagram(d.now, repr, self.reply_link(d.link, d.src), &head, quote);
    }

    /// Refuses a datagram nobody serves: ICMP unreachable where allowed, counted as no route.
    pub(crate) fn unreachable(&mut self, d: &Ingress<'_>, dest: Destination, port_code: Unreach) {
        self.stats.drop(DropReason::Ipv4NoRoute);
        let code = match dest {
            Destination::Virtual => port_code,
            Destination::Subnet => Unreach::Host,
            Destination::Outside => Unreach::Net,
            Destination::Broadcast | Destination::Martian => return,
        };
        self.icmp_error(d, IcmpError::Unreachable(code));
    }
}

/// The header of a datagram we originate (`send_datagram` fills in the length and id).
pub(crate) fn reply_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, ttl: u8, tos: u8) -> Ipv4Repr {
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
