//! What IPv4 and IPv6 share once a datagram is past its version's gate: the [`Ingress`] a
//! protocol machine receives (addresses as `IpAddr`), how a reply is addressed on the link, the
//! ICMP errors the machines ask for in family-neutral terms ([`IcmpError`]), and
//! [`Iface::send_ip`], which hands a datagram to the IPv4 or IPv6 output path by its addresses.
//!
//! The NAT machines (UDP, echo, TCP) are written once against this and serve both families.

use crate::iface::ipv4::{reply_header, DEFAULT_TTL};
use crate::iface::Iface;
use crate::time::Instant;
use crate::wire::tcp::HEADER_LEN as TCP_LEN;
use crate::wire::{EthernetAddress, IpProtocol, TcpRepr};
use core::net::IpAddr;

/// How the frame carrying a datagram is addressed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LinkDest {
    /// To this MAC (we learned it from the frame we answer).
    Mac(EthernetAddress),
    /// To whatever MAC the destination address resolves to (ARP or Neighbor Discovery, holding
    /// the packet meanwhile).
    Resolve,
}

/// How a datagram reached us on the link.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    pub(crate) src_mac: EthernetAddress,
    pub(crate) link_broadcast: bool,
    /// Whether the TCP/UDP checksum must be verified (the link did not vouch for it).
    pub(crate) verify_l4: bool,
}

/// A datagram from the guest as a protocol machine receives it: when, how it arrived, its
/// addresses, and its header bytes (for ICMP errors that quote it) and payload (the whole
/// transport packet).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ingress<'p> {
    pub(crate) now: Instant,
    pub(crate) link: Arrival,
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    /// The transport protocol (IPv6: after the extension headers).
    pub(crate) protocol: IpProtocol,
    /// TTL or hop limit as received.
    pub(crate) hop_limit: u8,
    /// IPv4 type of service or IPv6 traffic class.
    pub(crate) tos: u8,
    /// The IP header as received (IPv6: with its extension headers).
    pub(crate) header: &'p [u8],
    pub(crate) payload: &'p [u8],
}

impl Ingress<'_> {
    /// Whether the datagram is IPv6.
    pub(crate) fn is_v6(&self) -> bool {
        self.src.is_ipv6()
    }

    /// The hop limit a datagram forwarded on the guest's behalf leaves with (one less, at
    /// least one), so the guest's traceroute works.
    pub(crate) fn forward_ttl(&self) -> Option<u8> {
        Some(self.hop_limit.saturating_sub(1).max(1))
    }
}

/// Why a destination cannot be reached, in terms both ICMP versions have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unreach {
    /// No route to the network (v4 code 0, v6 code 0 "no route").
    Net,
    /// The host does not answer (v4 code 1, v6 code 3 "address unreachable").
    Host,
    /// Nobody listens on the port (v4 code 3, v6 code 4).
    Port,
    /// The protocol is not spoken here (v4 unreachable code 2; v6 parameter problem code 1).
    Protocol,
    /// Administratively prohibited (v4 code 13, v6 code 1).
    AdminProhibited,
}

/// An ICMP error a machine asks the output side to send about a guest datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpError {
    /// Destination unreachable.
    Unreachable(Unreach),
    /// The TTL or hop limit ran out.
    TimeExceeded,
    /// The datagram is larger than the link (IPv6 only: IPv4 guests' datagrams are fragmented
    /// or, with DF, get "fragmentation needed").
    PacketTooBig(u32),
}

impl Iface<'_> {
    /// Sends a datagram from `src` to `dst` (both of one family) with payload `head ‖ body`
    /// through the output path of that family.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_ip(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        protocol: IpProtocol,
        hop_limit: u8,
        link: LinkDest,
        head: &[u8],
        body: &[u8],
    ) {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.send_datagram(now, reply_header(s, d, protocol, hop_limit, 0), link, head, body)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => self.send_datagram6(now, s, d, protocol, hop_limit, link, head, body),
            // A machine mixed families: a bug, never a panic.
            _ => self.stats.drop(crate::stats::DropReason::Ipv6NoRoute),
        }
    }

    /// Answers a TCP segment for no connection with a reset (RFC 9293 3.10.7.1), unless it is
    /// one.
    pub(crate) fn send_reset(&mut self, d: &Ingress<'_>, seg: &TcpRepr<'_>) {
        let Some(rst) = crate::tcp::reset_reply(seg) else { return };
        let mut head = [0u8; TCP_LEN];
        rst.emit(&mut head, d.dst, d.src);
        let to = self.reply_link(d.link, d.src);
        self.send_ip(d.now, d.dst, d.src, IpProtocol::Tcp, DEFAULT_TTL, to, &head, &[]);
    }

    /// How to address a reply to `src` that arrived from `link`: a guest of our subnet or
    /// prefix is reached through the neighbor table, as a router would (the guest's ARP or
    /// neighbor solicitation for its gateway has taught us its MAC; if not, we ask and hold the
    /// reply). A guest using an address outside them can only be answered at the MAC it wrote
    /// from.
    pub(crate) fn reply_link(&self, link: Arrival, src: IpAddr) -> LinkDest {
        let ours = match src {
            IpAddr::V4(a) => self.config.is_host(a),
            IpAddr::V6(a) => self.config.ipv6.in_prefix(a) || a.is_unicast_link_local(),
        };
        if ours {
            LinkDest::Resolve
        } else {
            LinkDest::Mac(link.src_mac)
        }
    }
}
