//! IPv6 toward and from the guest: the input gate (lengths, version, source, extension headers,
//! hop limit, size), Neighbor Discovery (answers for the router and DNS addresses, learning the
//! guest's MAC, solicitations for unknown guests), Router Advertisements (on solicitation and
//! periodically: prefix for SLAAC, MTU, RDNSS, DNSSL), ICMPv6 echo for our addresses, errors
//! per RFC 4443 (size and rate limited), dispatch to the NAT machines, and the output path
//! (`send_datagram6`: neighbor resolution or hold, fragment header when a datagram we originate
//! is larger than the MTU).
//!
//! Off unless [`Ipv6Config::enabled`](crate::config::Ipv6Config::enabled): then every IPv6 frame
//! is dropped and counted ([`DropReason::Ipv6Disabled`]), and nothing IPv6 is ever sent.
//!
//! Deliberate choices:
//! - the guest's fragments are reassembled in the buffers IPv4 uses, by the same rules
//!   (bounded slots, conflicting overlaps discard the packet, a timeout from the first
//!   fragment); extension headers of the unfragmentable part are processed per fragment;
//! - a packet larger than the MTU (a guest that ignores it) gets Packet Too Big, except TCP
//!   super-frames from a guest that does segmentation offload on a trusted link;
//! - Duplicate Address Detection probes (from `::`) are never answered: the guest's addresses
//!   are its own, and ours are outside what it configures.

use crate::config::Ipv6Config;
use crate::host::HostSocket;
use crate::iface::fragment::copy_range;
use crate::iface::icmp::Quoted;
use crate::iface::ip::{Arrival, IcmpError, Ingress, LinkDest, Unreach};
use crate::iface::reassembly::{Added, Reassembler};
use crate::iface::{Iface, Inner};
use crate::stats::{DropReason, Stats};
use crate::storage::FrameQueue;
use crate::time::Instant;
use crate::wire::ethernet::{HEADER_LEN as ETH_LEN, MIN_FRAME_LEN};
use crate::wire::icmpv6::{self, NdpRepr, RouterAdvert};
use crate::wire::ipv6::{self, walk_extensions, ExtensionError, FragmentHeader, HEADER_LEN as IP6_LEN};
use crate::wire::{self, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv6Packet, IpProtocol};
use crate::wire::{Ipv6Packet, Ipv6Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr};
use core::net::{IpAddr, Ipv6Addr};
use core::time::Duration;

/// Hop limit of datagrams we originate.
pub(crate) const DEFAULT_HOP_LIMIT: u8 = 64;
/// Hop limit every Neighbor Discovery message carries (and must arrive with: RFC 4861 §6.1).
pub(crate) const ND_HOP_LIMIT: u8 = 255;
/// ICMPv6 errors sent per second at most (RFC 4443 §2.4 (f): a token bucket; Linux allows
/// about one per millisecond per destination, we keep the whole guest network well under it).
pub const ICMPV6_ERRORS_PER_SECOND: u16 = 100;
/// Router lifetime we advertise (RFC 4861 default: 3 × MaxRtrAdvInterval, at most 9000 s).
const ROUTER_LIFETIME: u16 = 1800;
/// Valid and preferred lifetimes of the advertised prefix.
const PREFIX_VALID: u32 = 86400;
const PREFIX_PREFERRED: u32 = 14400;

/// The DHCPv6 server port and the all-DHCP-agents address (RFC 8415 §7).
pub(crate) const DHCPV6_SERVER_PORT: u16 = 547;
pub(crate) const ALL_DHCP_AGENTS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// Where an IPv6 packet is going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Destination {
    /// The router or DNS address (global or link-local).
    Virtual,
    /// A multicast group (all-nodes, all-routers, a solicited-node group, DHCP agents).
    Multicast,
    /// Another address of the prefix or of the link: nobody else is there.
    Local,
    /// Beyond the virtual network: the NAT's business.
    Outside,
    /// Loopback, unspecified: nowhere.
    Martian,
}

fn classify(c: &Ipv6Config, dst: Ipv6Addr, rules: &crate::nat::guest_forward::GuestForwards) -> Destination {
    if c.is_gateway(dst) || c.is_dns(dst) {
        Destination::Virtual
    } else if dst.is_multicast() {
        Destination::Multicast
    } else if c.in_prefix(dst) || ipv6::is_link_local(dst) {
        // Guest-forward rules live in the prefix: only its packets pay the lookup.
        if rules.has_addr(dst.into()) {
            Destination::Virtual
        } else {
            Destination::Local
        }
    } else if dst.is_loopback() || dst.is_unspecified() {
        Destination::Martian
    } else {
        Destination::Outside
    }
}

/// An IPv6 frame from the guest: validated, reassembled if it is a fragment, then dispatched.
pub(crate) fn input<H: HostSocket>(
    inner: &mut Inner<'_>,
    reassembler: &mut Reassembler<'_>,
    now: Instant,
    eth: &EthernetFrame<&[u8]>,
    trusted: bool,
    host: &mut H,
) {
    let iface = &mut inner.iface;
    if !iface.config.ipv6.enabled {
        return iface.stats.drop(DropReason::Ipv6Disabled);
    }
    let Ok(packet) = Ipv6Packet::new_checked(eth.payload()) else {
        return iface.stats.drop(DropReason::Ipv6Malformed);
    };
    let Ok(repr) = Ipv6Repr::parse(&packet) else {
        return iface.stats.drop(DropReason::Ipv6Malformed);
    };
    let src = repr.src_addr;
    let c = &iface.config.ipv6;
    // Sources that name no single guest, or that are ours (RFC 4291 §2.7: never multicast).
    if src.is_multicast() || src.is_loopback() || c.is_gateway(src) || c.is_dns(src) || ipv6::is_v4_mapped(src) {
        return iface.stats.drop(DropReason::Ipv6BadSource);
    }
    let link = Arrival {
        src_mac: eth.src_addr(),
        link_broadcast: eth.dst_addr().is_multicast(),
        verify_l4: wire::VERIFY_CHECKSUMS && !trusted,
    };
    let whole = packet.packet();
    let fragment = deliver(inner, now, link, trusted, &repr, whole, false, host);
    let Some((frag, at)) = fragment else { return };
    // A fragment (RFC 8200 §4.5): into the reassembly buffers, shared with IPv4.
    let iface = &mut inner.iface;
    let timeout = iface.config.reassembly_timeout;
    match reassembler.add6(now, timeout, &repr, &frag, &whole[IP6_LEN + at..]) {
        Ok(Added::Pending) => {}
        Ok(Added::PendingEvicted) => iface.stats.drop(DropReason::FragmentNoSlot),
        Ok(Added::Complete(slot)) => {
            if let Some((full, body)) = reassembler.datagram6(slot) {
                iface.stats.reassembled += 1;
                let mut buf = [0u8; IP6_LEN];
                full.emit(&mut buf);
                // A packet rebuilt from fragments each of which fit the link.
                deliver_parts(inner, now, link, trusted, &full, &buf, body, true, host);
            }
            reassembler.release(slot);
        }
        Err(reason) => iface.stats.drop(reason),
    }
}

/// Processes a validated packet (`bytes`: fixed header and payload): extension headers, hop
/// limit, size, then the protocol machines. Returns the fragment header and where its data
/// starts (from the start of the payload) when the packet is a fragment to reassemble.
#[allow(clippy::too_many_arguments)]
fn deliver<H: HostSocket>(
    inner: &mut Inner<'_>,
    now: Instant,
    link: Arrival,
    trusted: bool,
    repr: &Ipv6Repr,
    bytes: &[u8],
    reassembled: bool,
    host: &mut H,
) -> Option<(FragmentHeader, usize)> {
    let (head, payload) = bytes.split_at(IP6_LEN);
    deliver_parts(inner, now, link, trusted, repr, head, payload, reassembled, host)
}

#[allow(clippy::too_many_arguments)]
fn deliver_parts<H: HostSocket>(
    inner: &mut Inner<'_>,
    now: Instant,
    link: Arrival,
    trusted: bool,
    repr: &Ipv6Repr,
    fixed: &[u8],
    payload: &[u8],
    reassembled: bool,
    host: &mut H,
) -> Option<(FragmentHeader, usize)> {
    let iface = &mut inner.iface;
    let (src, dst) = (repr.src_addr, repr.dst_addr);
    let ext = match walk_extensions(repr.next_header, payload) {
        Ok(e) => e,
        Err(ExtensionError::Truncated) => {
            iface.stats.drop(DropReason::Ipv6Malformed);
            return None;
        }
        Err(ExtensionError::Malformed { pointer } | ExtensionError::RoutingType0 { pointer }) => {
            iface.stats.drop(DropReason::Ipv6ExtensionHeader);
            let d = ingress(now, link, repr, fixed, payload, IpProtocol::Unknown(0));
            iface.param_problem(&d, icmpv6::param::HEADER, (IP6_LEN + pointer) as u32);
            return None;
        }
    };
    // Errors about the packet quote its fixed header and its upper layer (extension headers,
    // rare from a guest, are left out of the quote).
    let l4 = &payload[ext.offset..];
    let d = ingress(now, link, repr, fixed, l4, ext.protocol);
    if let Some(at) = ext.bad_option_at {
        iface.stats.drop(DropReason::Ipv6ExtensionHeader);
        // Action 10 and 11: discard and report (11 only to a unicast destination).
        let action = payload.get(at).map_or(0, |t| t >> 6);
        if action == 2 || (action == 3 && !dst.is_multicast()) {
            iface.param_problem(&d, icmpv6::param::OPTION, (IP6_LEN + at) as u32);
        }
        return None;
    }
    // A verified-enough header from a guest address refreshes its MAC, as for IPv4.
    if !src.is_unspecified() {
        iface.learn_guest6(now, src, link.src_mac);
    }
    // A packet larger than the link (only TCP super-frames from an offloading guest may be).
    let mtu = usize::from(iface.config.mtu);
    if !reassembled && IP6_LEN + payload.len() > mtu && !(trusted && ext.protocol == IpProtocol::Tcp) {
        iface.stats.drop(DropReason::Ipv6TooBig);
        iface.icmp_error6(&d, IcmpError::PacketTooBig(mtu as u32));
        return None;
    }
    if let Some(f) = ext.fragment.filter(|f| !f.is_atomic()) {
        if reassembled {
            // A fragment inside a reassembled packet.
            iface.stats.drop(DropReason::FragmentMalformed);
            return None;
        }
        return Some((f, ext.offset));
    }
    let dest = classify(&iface.config.ipv6, dst, &iface.guest_forwards);
    // Hop limit (RFC 8200 §3): a packet we would forward needs more than one hop left.
    if dest == Destination::Outside && repr.hop_limit <= 1 {
        iface.stats.drop(DropReason::Ipv6HopLimit);
        iface.icmp_error6(&d, IcmpError::TimeExceeded);
        return None;
    }
    if src.is_unspecified() && ext.protocol != IpProtocol::Icmpv6 {
        iface.stats.drop(DropReason::Ipv6BadSource);
        return None;
    }
    match ext.protocol {
        IpProtocol::Icmpv6 => inner.icmpv6_input(&d, dest, host),
        IpProtocol::Udp => inner.udp6_input(&d, dest, host),
        IpProtocol::Tcp => inner.tcp6_input(&d, dest, host),
        IpProtocol::Unknown(ipv6::next_header::NO_NEXT) => iface.stats.drop(DropReason::Ipv6NoRoute),
        _ => {
            iface.stats.drop(DropReason::Ipv4UnknownProtocol);
            if dest == Destination::Virtual {
                // RFC 8200 §4: unrecognized next header, parameter problem code 1 pointing at
                // the field that named it (the fixed header's when there are no extensions).
                let at = if ext.offset == 0 { 6 } else { IP6_LEN + last_next_header_at(repr.next_header, payload) };
                iface.param_problem(&d, icmpv6::param::NEXT_HEADER, at as u32);
            }
        }
    }
    None
}

/// Offset (in the payload) of the next-header field of the last extension header before the
/// upper layer: walks the same chain `walk_extensions` accepted.
fn last_next_header_at(first: u8, payload: &[u8]) -> usize {
    let (mut nh, mut at, mut last) = (first, 0usize, 0usize);
    for _ in 0..ipv6::MAX_EXTENSIONS {
        let len = match nh {
            ipv6::next_header::HOP_BY_HOP | ipv6::next_header::DST_OPTS | ipv6::next_header::ROUTING => {
                payload.get(at + 1).map_or(0, |l| (usize::from(*l) + 1) * 8)
            }
            ipv6::next_header::FRAGMENT => ipv6::FRAGMENT_HEADER_LEN,
            _ => break,
        };
        if len == 0 || at + len > payload.len() {
            break;
        }
        last = at;
        nh = payload[at];
        at += len;
    }
    last
}

/// The family-neutral view of a validated IPv6 packet whose upper layer is `l4`.
fn ingress<'p>(
    now: Instant,
    link: Arrival,
    repr: &Ipv6Repr,
    header: &'p [u8],
    l4: &'p [u8],
    protocol: IpProtocol,
) -> Ingress<'p> {
    Ingress {
        now,
        link,
        src: IpAddr::V6(repr.src_addr),
        dst: IpAddr::V6(repr.dst_addr),
        protocol,
        hop_limit: repr.hop_limit,
        tos: repr.traffic_class,
        header,
        payload: l4,
    }
}

impl Inner<'_> {
    fn icmpv6_input<H: HostSocket>(&mut self, d: &Ingress<'_>, dest: Destination, host: &mut H) {
        let out = &mut self.iface;
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (d.src, d.dst) else { return };
        let Ok(packet) = Icmpv6Packet::new_checked(d.payload) else {
            return out.stats.drop(DropReason::Icmpv6Malformed);
        };
        // The checksum covers ICMPv6 whatever the link says (offloads are for TCP and UDP).
        if wire::VERIFY_CHECKSUMS && !packet.verify_checksum(src, dst) {
            return out.stats.drop(DropReason::Icmpv6Malformed);
        }
        if let Some(nd) = NdpRepr::parse(&packet) {
            // RFC 4861 §6.1, §7.1: hop limit 255 (it did not cross a router), code 0, valid
            // options; anything else is silently discarded.
            let Ok(nd) = nd else { return out.stats.drop(DropReason::Icmpv6Malformed) };
            if d.hop_limit != ND_HOP_LIMIT {
                return out.stats.drop(DropReason::Icmpv6Malformed);
            }
            return out.nd_input(d.now, d.link, src, dst, nd);
        }
        match (packet.msg_type(), dest) {
            (icmpv6::ECHO_REQUEST, Destination::Virtual) => {
                out.echo_reply6(d, packet.echo_ident(), packet.echo_seq(), packet.data());
            }
            (icmpv6::ECHO_REQUEST, Destination::Outside) => {
                let echo = (packet.echo_ident(), packet.echo_seq(), packet.data());
                self.nat.echo_input(out, d, echo, host);
            }
            (icmpv6::ECHO_REQUEST, Destination::Local) => {
                if out.config.restricted {
                    return out.stats.drop(DropReason::Restricted);
                }
                out.stats.drop(DropReason::Ipv6NoRoute);
                out.icmp_error6(d, IcmpError::Unreachable(Unreach::Host));
            }
            _ => out.stats.drop(DropReason::Icmpv6Ignored),
        }
    }

    fn udp6_input<H: HostSocket>(&mut self, d: &Ingress<'_>, dest: Destination, host: &mut H) {
        let out = &mut self.iface;
        let Ok(packet) = UdpPacket::new_checked(d.payload) else {
            return out.stats.drop(DropReason::UdpMalformed);
        };
        let Ok(udp) = UdpRepr::parse(&packet, d.src, d.dst, d.link.verify_l4) else {
            return out.stats.drop(DropReason::UdpMalformed);
        };
        if udp.dst_port == DHCPV6_SERVER_PORT {
            let IpAddr::V6(dst) = d.dst else { return };
            // DHCPv6 is always consumed, never forwarded.
            if dst == ALL_DHCP_AGENTS || dest == Destination::Virtual {
                return self.dhcp6_input(d, udp.src_port, packet.payload());
            }
            return out.stats.drop(DropReason::DhcpIgnored);
        }
        if matches!(dest, Destination::Multicast | Destination::Martian) {
            return out.stats.drop(DropReason::Ipv6NoRoute);
        }
        self.nat.udp_input(out, &self.forwards, d, (udp.src_port, udp.dst_port, packet.payload()), host);
    }

    /// A DHCPv6 message from the guest's `port`, for the server.
    fn dhcp6_input(&mut self, d: &Ingress<'_>, port: u16, msg: &[u8]) {
        self.dhcp6.input(&mut self.iface, d, port, msg);
    }

    fn tcp6_input<H: HostSocket>(&mut self, d: &Ingress<'_>, dest: Destination, host: &mut H) {
        let out = &mut self.iface;
        let Ok(packet) = TcpPacket::new_checked(d.payload) else {
            return out.stats.drop(DropReason::TcpMalformed);
        };
        let Ok(seg) = TcpRepr::parse(&packet, d.src, d.dst, d.link.verify_l4) else {
            return out.stats.drop(DropReason::TcpMalformed);
        };
        if matches!(dest, Destination::Multicast | Destination::Martian) {
            return out.stats.drop(DropReason::Ipv6NoRoute);
        }
        self.tcp.guest_segment(out, d, &seg, host);
    }
}

impl Iface<'_> {
    /// Records that guest address `ip` is at `mac`: only addresses of the prefix or the link
    /// that are not ours, at a unicast MAC. Releases packets held for it.
    pub(crate) fn learn_guest6(&mut self, now: Instant, ip: Ipv6Addr, mac: EthernetAddress) {
        let c = &self.config.ipv6;
        if !(c.in_prefix(ip) || ipv6::is_link_local(ip)) || c.is_gateway(ip) || c.is_dns(ip) || !mac.is_unicast() {
            return;
        }
        if self.neighbors.lookup(ip) == Some(mac) {
            return;
        }
        self.neighbors.learn(now, ip, mac);
        self.release_held(now);
    }

    /// A Neighbor Discovery message from the guest (validated: hop limit 255, code 0, options).
    fn nd_input(&mut self, now: Instant, link: Arrival, src: Ipv6Addr, dst: Ipv6Addr, nd: NdpRepr) {
        let c = &self.config.ipv6;
        match nd {
            NdpRepr::RouterSolicit { source_ll } => {
                // RFC 4861 §6.1.1: from `::` no source link-layer option is allowed.
                if src.is_unspecified() && source_ll.is_some() {
                    return self.stats.drop(DropReason::Icmpv6Malformed);
                }
                if let Some(mac) = source_ll {
                    self.learn_guest6(now, src, mac);
                }
                // Answer the solicitor directly when it has an address (its MAC is the frame's),
                // else all nodes.
                if src.is_unspecified() {
                    self.send_router_advert(now, ipv6::ALL_NODES, LinkDest::Mac(multicast_mac(ipv6::ALL_NODES)));
                } else {
                    self.send_router_advert(now, src, LinkDest::Mac(source_ll.unwrap_or(link.src_mac)));
                }
            }
            NdpRepr::NeighborSolicit { target, source_ll } => {
                if src.is_unspecified() {
                    // Duplicate Address Detection (RFC 4862 §5.4.3): never answered.
                    if source_ll.is_some() || !dst.is_multicast() {
                        self.stats.drop(DropReason::Icmpv6Malformed);
                    } else {
                        self.stats.drop(DropReason::Icmpv6Ignored);
                    }
                    return;
                }
                if target.is_multicast() {
                    return self.stats.drop(DropReason::Icmpv6Malformed);
                }
                let (is_router, is_dns) =
                    (c.is_gateway(target), c.is_dns(target) || self.guest_forwards.has_addr(target.into()));
                if let Some(mac) = source_ll {
                    self.learn_guest6(now, src, mac);
                }
                if !(is_router || is_dns) {
                    return self.stats.drop(DropReason::Icmpv6Ignored);
                }
                let flags = icmpv6::na_flags::SOLICITED
                    | icmpv6::na_flags::OVERRIDE
                    | if is_router { icmpv6::na_flags::ROUTER } else { 0 };
                let to = LinkDest::Mac(source_ll.unwrap_or(link.src_mac));
                self.send_neighbor(now, icmpv6::NEIGHBOR_ADVERT, target, src, flags, target, to);
            }
            NdpRepr::NeighborAdvert { flags, target, target_ll } => {
                if target.is_multicast() || (dst.is_multicast() && flags & icmpv6::na_flags::SOLICITED != 0) {
                    return self.stats.drop(DropReason::Icmpv6Malformed);
                }
                self.learn_guest6(now, target, target_ll.unwrap_or(link.src_mac));
            }
            NdpRepr::Ignored => self.stats.drop(DropReason::Icmpv6Ignored),
        }
    }

    /// Sends an NA or NS from `src` to `dst` about `target` (our MAC in the link-layer option).
    #[allow(clippy::too_many_arguments)]
    fn send_neighbor(
        &mut self,
        now: Instant,
        msg_type: u8,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        flags: u32,
        target: Ipv6Addr,
        link: LinkDest,
    ) {
        let mut msg = [0u8; icmpv6::NEIGHBOR_MSG_LEN];
        let n = icmpv6::emit_neighbor(&mut msg, msg_type, src, dst, flags, target, self.gateway_mac);
        self.send_datagram6(now, src, dst, IpProtocol::Icmpv6, ND_HOP_LIMIT, link, &msg[..n], &[]);
    }

    /// Sends a Router Advertisement to `dst` (all nodes, or a soliciting guest) and schedules
    /// the next unsolicited one.
    pub(crate) fn send_router_advert(&mut self, now: Instant, dst: Ipv6Addr, link: LinkDest) {
        let c = &self.config;
        let v6 = &c.ipv6;
        let dns = [v6.dns];
        let interval = v6.ra_interval.as_secs().min(u64::from(u32::MAX / 3)) as u32;
        let ra = RouterAdvert {
            hop_limit: DEFAULT_HOP_LIMIT,
            router_lifetime: ROUTER_LIFETIME,
            source_ll: self.gateway_mac,
            mtu: Some(u32::from(c.mtu)),
            prefix: Some((v6.prefix, v6.prefix_len, PREFIX_VALID, PREFIX_PREFERRED)),
            rdnss: &dns,
            dns_lifetime: (3 * interval).max(1200),
            dnssl: c.search.as_deref().or(c.domain.as_deref()),
            // SLAAC and RDNSS/DNSSL carry everything; DHCPv6 is there for clients that ask
            // (M: addresses, when the pool is on; O: DNS and search list).
            managed: v6.dhcp_stateful && !c.disable_dhcp,
            other: !c.disable_dhcp,
        };
        let mut buf = [0u8; 512];
        let src = Ipv6Config::LINK_LOCAL_GATEWAY;
        let Some(n) = ra.emit(&mut buf, src, dst) else {
            return self.stats.drop(DropReason::TxBufferTooSmall);
        };
        self.stats.router_adverts_sent += 1;
        self.next_router_advert = Some(now + v6.ra_interval);
        self.send_datagram6(now, src, dst, IpProtocol::Icmpv6, ND_HOP_LIMIT, link, &buf[..n], &[]);
    }

    /// Periodic unsolicited Router Advertisements, when due.
    pub(crate) fn router_advert_timer(&mut self, now: Instant) {
        if !self.config.ipv6.enabled {
            return;
        }
        match self.next_router_advert {
            Some(at) if at > now => {}
            _ => self.send_router_advert(now, ipv6::ALL_NODES, LinkDest::Mac(multicast_mac(ipv6::ALL_NODES))),
        }
    }

    /// Answers an ICMPv6 echo request to one of our addresses.
    fn echo_reply6(&mut self, d: &Ingress<'_>, ident: u16, seq: u16, data: &[u8]) {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (d.src, d.dst) else { return };
        let mut head = [0u8; 8];
        icmpv6::emit_header(
            &mut head,
            dst,
            src,
            icmpv6::ECHO_REPLY,
            0,
            (u32::from(ident) << 16) | u32::from(seq),
            data,
        );
        let to = self.reply_link(d.link, d.src);
        self.send_datagram6(d.now, dst, src, IpProtocol::Icmpv6, DEFAULT_HOP_LIMIT, to, &head, data);
    }

    /// Parameter Problem about `d`, pointing at byte `pointer` of the packet.
    fn param_problem(&mut self, d: &Ingress<'_>, code: u8, pointer: u32) {
        self.send_icmp6_error(d, icmpv6::PARAM_PROBLEM, code, pointer, code == icmpv6::param::OPTION);
    }

    /// Sends an ICMPv6 error about the IPv6 packet `d`, if RFC 4443 §2.4 allows one.
    pub(crate) fn icmp_error6(&mut self, d: &Ingress<'_>, err: IcmpError) {
        let (t, code, word) = icmp6_message(err);
        self.send_icmp6_error(d, t, code, word, t == icmpv6::PACKET_TOO_BIG);
    }

    fn send_icmp6_error(&mut self, d: &Ingress<'_>, msg_type: u8, code: u8, word: u32, multicast_ok: bool) {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (d.src, d.dst) else { return };
        // RFC 4443 §2.4 (e): not about an error or a redirect, not about a packet to a
        // multicast address or link-layer multicast (except Packet Too Big and Parameter
        // Problem code 2), not about a packet whose source names no single node.
        if d.protocol == IpProtocol::Icmpv6
            && d.payload.first().is_none_or(|&t| icmpv6::is_error_type(t) || t == icmpv6::REDIRECT)
        {
            return;
        }
        if (dst.is_multicast() || d.link.link_broadcast) && !multicast_ok {
            return;
        }
        if src.is_unspecified() || src.is_multicast() {
            return;
        }
        if !self.icmp6_rate_ok(d.now) {
            return self.stats.drop(DropReason::Icmpv6RateLimited);
        }
        // Quote as much of the packet as keeps the error within the minimum MTU.
        let mut quote = [0u8; icmpv6::MAX_ERROR_QUOTE];
        let hl = d.header.len().min(quote.len());
        quote[..hl].copy_from_slice(&d.header[..hl]);
        let pl = d.payload.len().min(quote.len() - hl);
        quote[hl..hl + pl].copy_from_slice(&d.payload[..pl]);
        let quote = &quote[..hl + pl];
        let from = self.error_source6(src, dst);
        let mut head = [0u8; 8];
        icmpv6::emit_header(&mut head, from, src, msg_type, code, word, quote);
        self.stats.icmp_errors_sent += 1;
        let to = self.reply_link(d.link, d.src);
        self.send_datagram6(d.now, from, src, IpProtocol::Icmpv6, DEFAULT_HOP_LIMIT, to, &head, quote);
    }

    /// The address an error to `guest` about a packet to `dst` comes from: the address the
    /// guest used when it is ours, else the router's address of the guest's scope.
    fn error_source6(&self, guest: Ipv6Addr, dst: Ipv6Addr) -> Ipv6Addr {
        let c = &self.config.ipv6;
        if c.is_gateway(dst) || c.is_dns(dst) {
            dst
        } else if ipv6::is_link_local(guest) {
            Ipv6Config::LINK_LOCAL_GATEWAY
        } else {
            c.gateway
        }
    }

    /// The token bucket of RFC 4443 §2.4 (f): [`ICMPV6_ERRORS_PER_SECOND`], refilled each
    /// second.
    fn icmp6_rate_ok(&mut self, now: Instant) -> bool {
        let (since, count) = &mut self.icmp6_budget;
        if now.saturating_duration_since(*since) >= Duration::from_secs(1) || *since > now {
            *since = now;
            *count = 0;
        }
        if *count >= ICMPV6_ERRORS_PER_SECOND {
            return false;
        }
        *count += 1;
        true
    }

    /// Tells a v6 guest that a packet it sent (`quoted`) failed on the host side, from `from`.
    pub(crate) fn quoted_error_to_guest6(&mut self, now: Instant, quoted: Quoted, from: Ipv6Addr, err: IcmpError) {
        let (IpAddr::V6(guest), IpAddr::V6(dst)) = (quoted.guest.ip(), quoted.dst.ip()) else { return };
        let mut quote = [0u8; IP6_LEN + 8];
        Ipv6Repr {
            src_addr: guest,
            dst_addr: dst,
            next_header: quoted.protocol.into(),
            payload_len: 8,
            hop_limit: DEFAULT_HOP_LIMIT,
            traffic_class: 0,
        }
        .emit(&mut quote);
        quote[IP6_LEN..].copy_from_slice(&quoted.l4);
        let (t, code, word) = icmp6_message(err);
        if !self.icmp6_rate_ok(now) {
            return self.stats.drop(DropReason::Icmpv6RateLimited);
        }
        let mut head = [0u8; 8];
        icmpv6::emit_header(&mut head, from, guest, t, code, word, &quote);
        self.stats.icmp_errors_sent += 1;
        self.send_datagram6(now, from, guest, IpProtocol::Icmpv6, DEFAULT_HOP_LIMIT, LinkDest::Resolve, &head, &quote);
    }

    /// Sends a datagram from `src` to `dst` with payload `head ‖ body` toward the guest:
    /// resolves the guest's MAC (holding the packet and soliciting while unknown), and sends it
    /// in fragments (RFC 8200 §4.5) when larger than the MTU.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_datagram6(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        protocol: IpProtocol,
        hop_limit: u8,
        link: LinkDest,
        head: &[u8],
        body: &[u8],
    ) {
        let len = head.len() + body.len();
        if len > usize::from(u16::MAX) - ipv6::FRAGMENT_HEADER_LEN {
            return self.stats.drop(DropReason::TxBufferTooSmall);
        }
        let repr = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol.into(),
            payload_len: len,
            hop_limit,
            traffic_class: 0,
        };
        let dst_mac = match link {
            LinkDest::Mac(m) => Some(m),
            LinkDest::Resolve if dst.is_multicast() => Some(multicast_mac(dst)),
            LinkDest::Resolve => self.neighbors.lookup(dst),
        };
        if let Some(mac) = dst_mac {
            self.emit_frames6(mac, &repr, head, body);
            return;
        }
        // Unknown guest MAC: hold the packet (whole) and solicit.
        let deadline = now + self.config.arp_hold_timeout;
        let held = self.hold.push_with(IP6_LEN + len, 0, deadline, |buf| {
            repr.emit(buf);
            buf[IP6_LEN..IP6_LEN + head.len()].copy_from_slice(head);
            buf[IP6_LEN + head.len()..].copy_from_slice(body);
            IP6_LEN + len
        });
        if held.is_err() {
            return self.stats.drop(DropReason::ArpHoldFull);
        }
        if self.neighbors.should_request(now, dst) {
            self.solicit(now, dst);
        }
    }

    /// Sends a Neighbor Solicitation for guest address `target`.
    pub(crate) fn solicit(&mut self, now: Instant, target: Ipv6Addr) {
        let src = if ipv6::is_link_local(target) { Ipv6Config::LINK_LOCAL_GATEWAY } else { self.config.ipv6.gateway };
        let group = ipv6::solicited_node(target);
        self.stats.neighbor_solicits_sent += 1;
        self.send_neighbor(now, icmpv6::NEIGHBOR_SOLICIT, src, group, 0, target, LinkDest::Mac(multicast_mac(group)));
    }

    /// Writes the packet `repr` (payload `head ‖ body`) to `mac` (see [`emit_frames6`]).
    pub(crate) fn emit_frames6(&mut self, mac: EthernetAddress, repr: &Ipv6Repr, head: &[u8], body: &[u8]) {
        let out = Out6 {
            tx: &mut self.tx,
            stats: &mut self.stats,
            gateway_mac: self.gateway_mac,
            mtu: usize::from(self.config.mtu),
            next_id: &mut self.next_ip6_id,
        };
        emit_frames6(out, mac, repr, head, body);
    }
}

/// The parts of the output side IPv6 framing writes to (borrowed apart from the hold queue,
/// which a held packet being released still occupies).
pub(crate) struct Out6<'o, 'a> {
    pub(crate) tx: &'o mut FrameQueue<'a>,
    pub(crate) stats: &'o mut Stats,
    pub(crate) gateway_mac: EthernetAddress,
    pub(crate) mtu: usize,
    pub(crate) next_id: &'o mut u32,
}

/// Writes the packet `repr` (payload `head ‖ body`) to `mac` as one frame, or as fragments
/// of at most the MTU when it is larger (RFC 8200 §4.5: the fragment header follows the fixed
/// header; offsets in 8-byte units; a fresh identification per packet).
pub(crate) fn emit_frames6(o: Out6<'_, '_>, mac: EthernetAddress, repr: &Ipv6Repr, head: &[u8], body: &[u8]) {
    let eth = EthernetRepr { src_addr: o.gateway_mac, dst_addr: mac, ethertype: EtherType::Ipv6 };
    let total = head.len() + body.len();
    if IP6_LEN + total <= o.mtu {
        let frame_len = (ETH_LEN + IP6_LEN + total).max(MIN_FRAME_LEN);
        let repr = Ipv6Repr { payload_len: total, ..*repr };
        let res = o.tx.push_with(frame_len, 0, Instant::ZERO, |buf| {
            eth.emit(&mut EthernetFrame::new_unchecked(&mut *buf));
            repr.emit(&mut buf[ETH_LEN..]);
            let at = ETH_LEN + IP6_LEN;
            buf[at..at + head.len()].copy_from_slice(head);
            buf[at + head.len()..at + total].copy_from_slice(body);
            frame_len
        });
        if res.is_err() {
            o.stats.drop(DropReason::TxQueueFull);
        }
        return;
    }
    let chunk = o.mtu.saturating_sub(IP6_LEN + ipv6::FRAGMENT_HEADER_LEN) & !7;
    if chunk == 0 {
        return o.stats.drop(DropReason::TxBufferTooSmall);
    }
    let ident = *o.next_id;
    *o.next_id = ident.wrapping_add(1);
    o.stats.fragmented += 1;
    let mut off = 0;
    while off < total {
        let n = (total - off).min(chunk);
        let more = off + n < total;
        let frag =
            Ipv6Repr { next_header: ipv6::next_header::FRAGMENT, payload_len: ipv6::FRAGMENT_HEADER_LEN + n, ..*repr };
        let at = ETH_LEN + IP6_LEN + ipv6::FRAGMENT_HEADER_LEN;
        let frame_len = (at + n).max(MIN_FRAME_LEN);
        let res = o.tx.push_with(frame_len, 0, Instant::ZERO, |buf| {
            eth.emit(&mut EthernetFrame::new_unchecked(&mut *buf));
            frag.emit(&mut buf[ETH_LEN..]);
            ipv6::emit_fragment_header(&mut buf[ETH_LEN + IP6_LEN..], repr.next_header, off as u16, more, ident);
            copy_range(head, body, off, &mut buf[at..at + n]);
            frame_len
        });
        if res.is_err() {
            return o.stats.drop(DropReason::TxQueueFull);
        }
        off += n;
    }
}

/// The ICMPv6 (type, code, word) of an error (RFC 4443 §3; a protocol unreachable is IPv6's
/// parameter problem "unrecognized next header", pointing at the fixed header's field).
fn icmp6_message(err: IcmpError) -> (u8, u8, u32) {
    match err {
        IcmpError::Unreachable(u) => match u {
            Unreach::Net => (icmpv6::DST_UNREACHABLE, icmpv6::unreach::NO_ROUTE, 0),
            Unreach::Host => (icmpv6::DST_UNREACHABLE, icmpv6::unreach::ADDRESS, 0),
            Unreach::Port => (icmpv6::DST_UNREACHABLE, icmpv6::unreach::PORT, 0),
            Unreach::AdminProhibited => (icmpv6::DST_UNREACHABLE, icmpv6::unreach::ADMIN_PROHIBITED, 0),
            Unreach::Protocol => (icmpv6::PARAM_PROBLEM, icmpv6::param::NEXT_HEADER, 6),
        },
        IcmpError::TimeExceeded => (icmpv6::TIME_EXCEEDED, 0, 0),
        IcmpError::PacketTooBig(mtu) => (icmpv6::PACKET_TOO_BIG, 0, mtu),
    }
}

/// The MAC of an IPv6 multicast group.
fn multicast_mac(group: Ipv6Addr) -> EthernetAddress {
    EthernetAddress::from_ipv6_multicast(group)
}
