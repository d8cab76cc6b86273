//! ICMP echo to the outside: the guest's pings leave through one long-lived host echo socket
//! (ping socket or raw socket, whichever the host offers; the UDP "pseudo-ping" to port 7 of the
//! original slirp is the last fallback). Requests get our own sequence numbers so several
//! guests' and several processes' pings can be in flight at once; a reply is mapped back through
//! a fixed ring of the last [`ECHO_SLOTS`] requests (no timer needed: a slot is reused after
//! [`ECHO_SLOTS`] newer pings or ignored after [`ECHO_TIMEOUT`]).

use crate::host::{EchoKind, HostSocket};
use crate::iface::icmp::unreach_code;
use crate::iface::ipv4::{reply_header, Ingress, LinkDest, DEFAULT_TTL};
use crate::iface::Iface;
use crate::nat::{encode, Kind};
use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::icmpv4::{self, unreach};
use crate::wire::{Icmpv4Repr, IpProtocol};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

/// Echo requests remembered for matching replies.
pub const ECHO_SLOTS: usize = 128;
/// How long an echo reply is accepted after its request.
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the engine waits before asking the host for an echo socket again after it failed.
pub const ECHO_RETRY: Duration = Duration::from_secs(10);

/// Base of the identifier our raw-socket echo requests carry (mixed with the seed).
const ECHO_IDENT_BASE: u16 = 0x51e7;

#[derive(Clone, Copy, Debug)]
struct PendingEcho {
    our_seq: u16,
    guest: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    seq_no: u16,
    sent: Instant,
}

/// The echo NAT's state.
#[derive(Debug)]
pub(crate) struct EchoNat {
    kind: Option<EchoKind>,
    pub(crate) pseudo: bool,
    /// No way to send echo requests; try opening again after this instant.
    unavailable_until: Option<Instant>,
    /// The echo socket waits on the ready ring.
    pub(crate) ready: bool,
    next_seq: u16,
    pending: [Option<PendingEcho>; ECHO_SLOTS],
    /// Identifier of our raw-socket echo requests: per instance (from the seed), so two
    /// instances on one host do not take each other's replies.
    ident: u16,
}

impl EchoNat {
    pub(crate) fn new(seed: u64) -> Self {
        EchoNat {
            kind: None,
            pseudo: false,
            unavailable_until: None,
            ready: false,
            next_seq: 0,
            pending: [None; ECHO_SLOTS],
            ident: ECHO_IDENT_BASE ^ (seed >> 48) as u16,
        }
    }

    /// A guest echo request `(ident, seq_no, data)` to an address outside the virtual subnet.
    pub(crate) fn input<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        d: &Ingress<'_>,
        echo: (u16, u16, &[u8]),
        host: &mut H,
    ) {
        let (ident, seq_no, data) = echo;
        let (now, repr) = (d.now, d.ip);
        if out.config.restricted {
            return out.stats.drop(DropReason::Restricted);
        }
        let retry = self.unavailable_until.is_none_or(|t| now >= t);
        if self.kind.is_none() && !self.pseudo && retry {
            self.unavailable_until = None;
            match host.icmp_echo_open(encode(Kind::Echo)) {
                Ok(k) => self.kind = Some(k),
                Err(_) => match host.udp_bind(encode(Kind::PseudoPing), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)) {
                    Ok(_) => self.pseudo = true,
                    // Neither works now (out of descriptors, say): answer unreachable for a while
                    // instead of asking the host on every request, then try again.
                    Err(_) => self.unavailable_until = Some(now + ECHO_RETRY),
                },
            }
        }
        if self.kind.is_none() && !self.pseudo {
            out.stats.drop(DropReason::IcmpEchoUnavailable);
            return out.icmp_error(d, icmpv4::DST_UNREACHABLE, unreach::NET);
        }
        let our_seq = self.next_seq;
        self.next_seq = our_seq.wrapping_add(1);
        self.pending[usize::from(our_seq) % ECHO_SLOTS] =
            Some(PendingEcho { our_seq, guest: repr.src_addr, dst: repr.dst_addr, ident, seq_no, sent: now });
        let ttl = Some(repr.ttl.saturating_sub(1).max(1));
        let res = if self.pseudo {
            host.udp_send_to(encode(Kind::PseudoPing), data, SocketAddrV4::new(repr.dst_addr, 7), ttl)
        } else {
            host.icmp_echo_send(encode(Kind::Echo), repr.dst_addr, self.ident, our_seq, data, ttl)
        };
        if let Err(e) = res {
            out.stats.drop(DropReason::IcmpEchoUnavailable);
            if let Some(code) = unreach_code(e) {
                out.icmp_error(d, icmpv4::DST_UNREACHABLE, code);
            }
        }
    }

    /// A reply from `from` to our request `our_seq` (pseudo-ping replies carry no sequence):
    /// sent to the guest that asked, with its identifier and sequence number.
    pub(crate) fn reply_to_guest(
        &mut self,
        out: &mut Iface<'_>,
        now: Instant,
        from: Ipv4Addr,
        our_seq: u16,
        data: &[u8],
        pseudo: bool,
    ) {
        let slot = if pseudo {
            // The pseudo-ping carries no sequence: answer the oldest outstanding request to `from`.
            self.pending
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.filter(|p| p.dst == from).map(|p| (i, p)))
                .min_by_key(|(_, p)| p.sent)
                .map(|(i, _)| i)
        } else {
            let i = usize::from(our_seq) % ECHO_SLOTS;
            self.pending[i].filter(|p| p.our_seq == our_seq).map(|_| i)
        };
        let Some(i) = slot else {
            return out.stats.drop(DropReason::EchoReplyUnmatched);
        };
        let Some(p) = self.pending[i].take() else { return };
        if now.saturating_duration_since(p.sent) > ECHO_TIMEOUT {
            return out.stats.drop(DropReason::EchoReplyUnmatched);
        }
        let head = Icmpv4Repr::EchoReply { ident: p.ident, seq_no: p.seq_no, data }.emit_header();
        let src = if pseudo { p.dst } else { from };
        let repr = reply_header(src, p.guest, IpProtocol::Icmp, DEFAULT_TTL, 0);
        out.send_datagram(now, repr, LinkDest::Resolve, &head, data);
    }
}
