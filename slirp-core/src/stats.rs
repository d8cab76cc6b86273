//! Counters: what came in, what went out, and every drop by reason.

use core::fmt;

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $name:ident => $text:literal,)*) => {
        /// Why the core dropped a frame or packet. Every drop is counted under exactly one reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[non_exhaustive]
        pub enum DropReason {
            $($(#[doc = $doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];

            /// A short stable name, for logs and the control API.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$name => $text,)* }
            }
        }
    };
}

drop_reasons! {
    /// Frame shorter than an Ethernet header.
    EthernetTruncated => "eth_truncated",
    /// EtherType we do not handle (IPv6, VLAN, ...).
    EthernetUnknownType => "eth_unknown_type",
    /// ARP frame too short or not Ethernet/IPv4.
    ArpMalformed => "arp_malformed",
    /// ARP request for an address we do not answer for.
    ArpNotForUs => "arp_not_for_us",
    /// IPv4 header truncated, wrong version or bad lengths.
    Ipv4Malformed => "ipv4_malformed",
    /// IPv4 header checksum wrong.
    Ipv4Checksum => "ipv4_checksum",
    /// IPv4 source address not acceptable (broadcast, multicast, loopback, ours).
    Ipv4BadSource => "ipv4_bad_source",
    /// IPv4 TTL expired (an ICMP time-exceeded is sent when allowed).
    Ipv4TtlExpired => "ipv4_ttl_expired",
    /// IP protocol we do not carry (GRE, SCTP, ...).
    Ipv4UnknownProtocol => "ipv4_unknown_protocol",
    /// Destination not reachable through this engine (yet): no NAT for this protocol/address.
    Ipv4NoRoute => "ipv4_no_route",
    /// IPv6 frame while IPv6 is disabled.
    Ipv6Disabled => "ipv6_disabled",
    /// IPv6 header truncated, wrong version, bad payload length or jumbogram.
    Ipv6Malformed => "ipv6_malformed",
    /// IPv6 extension headers we refuse (routing type 0, too many, hop-by-hop not first,
    /// options whose type says discard), and IPv6 fragments (not reassembled).
    Ipv6ExtensionHeader => "ipv6_extension_header",
    /// IPv6 source address not acceptable (multicast, loopback, unspecified, ours).
    Ipv6BadSource => "ipv6_bad_source",
    /// IPv6 hop limit expired (an ICMPv6 time-exceeded is sent).
    Ipv6HopLimit => "ipv6_hop_limit",
    /// IPv6 datagram larger than the link MTU (a Packet Too Big is sent).
    Ipv6TooBig => "ipv6_too_big",
    /// IPv6 destination not reachable through this engine (multicast, link-local of nobody,
    /// unknown protocol).
    Ipv6NoRoute => "ipv6_no_route",
    /// ICMPv6 message truncated, with a bad checksum, or NDP with a hop limit other than 255.
    Icmpv6Malformed => "icmpv6_malformed",
    /// ICMPv6 or NDP message we do not act on (DAD probes, solicitations for other targets,
    /// MLD, redirects).
    Icmpv6Ignored => "icmpv6_ignored",
    /// ICMPv6 error not sent: over the rate limit (RFC 4443 §2.4 (f)).
    Icmpv6RateLimited => "icmpv6_rate_limited",
    /// Fragment malformed (bad offset/length, beyond 65535 bytes).
    FragmentMalformed => "fragment_malformed",
    /// Fragment overlapping earlier data with different bytes: the datagram is discarded.
    FragmentOverlap => "fragment_overlap",
    /// Every reassembly slot was busy: the oldest incomplete datagram was discarded.
    FragmentNoSlot => "fragment_no_slot",
    /// Datagram larger than a reassembly slot's buffer, or too many holes to track.
    FragmentTooBig => "fragment_too_big",
    /// Incomplete datagram timed out.
    FragmentTimeout => "fragment_timeout",
    /// ICMP message truncated or with a bad checksum.
    IcmpMalformed => "icmp_malformed",
    /// ICMP message type we do not act on.
    IcmpIgnored => "icmp_ignored",
    /// UDP datagram truncated, bad length or bad checksum.
    UdpMalformed => "udp_malformed",
    /// TCP segment truncated or bad checksum.
    TcpMalformed => "tcp_malformed",
    /// DHCP/BOOTP request malformed or not a request.
    DhcpMalformed => "dhcp_malformed",
    /// DHCP request not answered (pool full, DHCP disabled, message type we ignore).
    DhcpIgnored => "dhcp_ignored",
    /// TFTP packet malformed (no NUL-terminated file name or mode, unknown opcode, short).
    TftpMalformed => "tftp_malformed",
    /// TFTP request refused (every transfer slot busy, write request, path outside the root,
    /// no such file, transfer mode other than octet).
    TftpRefused => "tftp_refused",
    /// TFTP transfer abandoned: the guest stopped acknowledging.
    TftpTimeout => "tftp_timeout",
    /// The guest-bound queue was full.
    TxQueueFull => "tx_queue_full",
    /// Packet for the guest could not be held while ARP resolves (queue full or too big).
    ArpHoldFull => "arp_hold_full",
    /// Held packet's ARP resolution timed out.
    ArpHoldTimeout => "arp_hold_timeout",
    /// The guest link's buffer was smaller than the frame.
    TxBufferTooSmall => "tx_buffer_too_small",
    /// Traffic refused by restricted mode.
    Restricted => "restricted",
    /// The host would not open a socket for a new UDP flow.
    UdpNoSocket => "udp_no_socket",
    /// The host refused to send a guest datagram.
    UdpSendFailed => "udp_send_failed",
    /// The UDP table was full: the least recently active mapping was closed for a new one.
    UdpFlowEvicted => "udp_flow_evicted",
    /// The host offers no way to send ICMP echo requests (or refused one).
    IcmpEchoUnavailable => "icmp_echo_unavailable",
    /// An echo reply matched no request we sent (late, duplicate or foreign).
    EchoReplyUnmatched => "echo_reply_unmatched",
    /// A TCP segment for no connection (answered with RST).
    TcpNoConnection => "tcp_no_connection",
    /// The TCP table was full: a new connection was refused with RST.
    TcpTableFull => "tcp_table_full",
    /// No TCP buffers were left: a new connection was refused with RST.
    TcpNoBuffers => "tcp_no_buffers",
    /// The host could not reach a guest's TCP destination (ICMP unreachable sent).
    TcpHostError => "tcp_host_error",
    /// The host refused a guest's TCP connection (RST sent).
    TcpRefused => "tcp_refused",
    /// A connection still in its handshake was dropped, the oldest of them, to make room for a
    /// new one (half-open share or table full: see `TcpConfig::half_open_percent`).
    TcpHalfOpenEvicted => "tcp_half_open_evicted",
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const N_REASONS: usize = DropReason::ALL.len();

/// Traffic and drop counters of one engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received from the guest.
    pub rx_frames: u64,
    /// Bytes received from the guest.
    pub rx_bytes: u64,
    /// Frames handed to the guest link.
    pub tx_frames: u64,
    /// Bytes handed to the guest link.
    pub tx_bytes: u64,
    /// ICMP errors generated toward the guest.
    pub icmp_errors_sent: u64,
    /// ARP requests sent to the guest.
    pub arp_requests_sent: u64,
    /// IPv6 Neighbor Solicitations sent to the guest (address resolution).
    pub neighbor_solicits_sent: u64,
    /// IPv6 Router Advertisements sent (solicited and periodic).
    pub router_adverts_sent: u64,
    /// DHCPv6 replies and advertisements sent.
    pub dhcp6_replies: u64,
    /// Trace events lost because the embedder did not drain the ring in time.
    pub trace_lost: u64,
    /// Pending trace events (not part of the counters' equality).
    pub(crate) events: crate::trace::TraceRing,
    /// TFTP data blocks sent (retransmissions included).
    pub tftp_blocks_sent: u64,
    /// TFTP transfers completed (last block acknowledged).
    pub tftp_transfers: u64,
    /// Datagrams rebuilt from fragments.
    pub reassembled: u64,
    /// Guest-bound packets split into fragments.
    pub fragmented: u64,
    /// TCP connections opened (either direction).
    pub tcp_connections: u64,
    /// Connections in TIME_WAIT freed early because the table was full and a new one needed the
    /// slot (not a drop: nothing was lost).
    pub tcp_time_wait_reclaimed: u64,
    drops: DropCounts,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct DropCounts([u64; N_REASONS]);

impl Default for DropCounts {
    fn default() -> Self {
        DropCounts([0; N_REASONS])
    }
}

impl Stats {
    /// How many drops were counted for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.0[reason as usize]
    }

    /// Total drops over all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.drops.0.iter().sum()
    }

    /// Every reason with a non-zero count.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.dropped(r))).filter(|&(_, n)| n > 0)
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        let c = &mut self.drops.0[reason as usize];
        *c = c.saturating_add(1);
        net_trace!("drop: {}", reason);
        self.trace(crate::trace::TraceEvent::Dropped(reason));
    }

    /// Records a trace event (when tracing is on).
    #[inline]
    pub(crate) fn trace(&mut self, ev: crate::trace::TraceEvent) {
        if self.events.push(ev) {
            self.trace_lost += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_reason() {
        let mut s = Stats::default();
        s.drop(DropReason::Ipv4Checksum);
        s.drop(DropReason::Ipv4Checksum);
        s.drop(DropReason::Restricted);
        assert_eq!(s.dropped(DropReason::Ipv4Checksum), 2);
        assert_eq!(s.dropped_total(), 3);
        assert_eq!(s.drops().count(), 2);
        assert_eq!(DropReason::Restricted.name(), "restricted");
    }
}
