//! ICMP echo to the outside: the guest's pings leave through one long-lived host echo socket
//! (ping socket or raw socket, whichever the host offers; the UDP "pseudo-ping" to port 7 of the
//! original slirp is the last fallback). Requests get our own sequence numbers so several
//! guests' and several processes' pings can be in flight at once; a reply is mapped back through
//! a fixed ring of the last [`ECHO_SLOTS`] requests (no timer needed: a slot is reused after
//! [`ECHO_SLOTS`] newer pings or ignored after [`ECHO_TIMEOUT`]).

use crate::host::{EchoKind, HostSocket, IpVersion};
use crate::iface::icmp::unreach_code;
use crate::iface::ip::{IcmpError, Ingress, LinkDest, Unreach};
use crate::iface::ipv4::DEFAULT_TTL;
use crate::iface::Iface;
use crate::nat::{encode, Kind};
use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::icmpv6;
use crate::wire::{Icmpv4Repr, IpProtocol};
use core::net::{IpAddr, SocketAddr};
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
    guest: IpAddr,
    dst: IpAddr,
    ident: u16,
    seq_no: u16,
    sent: Instant,
}

/// The host's echo socket of one IP version.
#[derive(Debug, Default)]
pub(crate) struct EchoSocket {
    kind: Option<EchoKind>,
    pub(crate) pseudo: bool,
    /// No way to send echo requests; try opening again after this instant.
    unavailable_until: Option<Instant>,
    /// The socket waits on the ready ring.
    pub(crate) ready: bool,
}

/// The echo NAT's state: one host socket per IP version, one ring of outstanding requests.
#[derive(Debug)]
pub(crate) struct EchoNat {
    sockets: [EchoSocket; 2],
    next_seq: u16,
    pending: [Option<PendingEcho>; ECHO_SLOTS],
    /// Identifier of our raw-socket echo requests: per instance (from the seed), so two
    /// instances on one host do not take each other's replies.
    ident: u16,
}

fn index(v: IpVersion) -> usize {
    match v {
        IpVersion::V4 => 0,
        IpVersion::V6 => 1,
    }
}

impl EchoNat {
    pub(crate) fn new(seed: u64) -> Self {
        EchoNat {
            sockets: Default::default(),
            next_seq: 0,
            pending: [None; ECHO_SLOTS],
            ident: ECHO_IDENT_BASE ^ (seed >> 48) as u16,
        }
    }

    /// The socket state of version `v`.
    pub(crate) fn socket(&mut self, v: IpVersion) -> &mut EchoSocket {
        &mut self.sockets[index(v)]
    }

    /// A guest echo request `(ident, seq_no, data)` to an address outside the virtual network,
    /// of either family.
    pub(crate) fn input<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        d: &Ingress<'_>,
        echo: (u16, u16, &[u8]),
        host: &mut H,
    ) {
        let (ident, seq_no, data) = echo;
        let now = d.now;
        if out.config.restricted {
            return out.stats.drop(DropReason::Restricted);
        }
        let v = IpVersion::of(d.dst);
        let sock = &mut self.sockets[index(v)];
        let retry = sock.unavailable_until.is_none_or(|t| now >= t);
        if sock.kind.is_none() && !sock.pseudo && retry {
            sock.unavailable_until = None;
            match host.icmp_echo_open(encode(Kind::Echo(v)), v) {
                Ok(k) => sock.kind = Some(k),
                Err(_) => match host.udp_bind(encode(Kind::PseudoPing(v)), v.any()) {
                    Ok(_) => sock.pseudo = true,
                    // Neither works now (out of descriptors, say): answer unreachable for a while
                    // instead of asking the host on every request, then try again.
                    Err(_) => sock.unavailable_until = Some(now + ECHO_RETRY),
                },
            }
        }
        if sock.kind.is_none() && !sock.pseudo {
            out.stats.drop(DropReason::IcmpEchoUnavailable);
            return out.icmp_error(d, IcmpError::Unreachable(Unreach::Net));
        }
        let pseudo = sock.pseudo;
        let our_seq = self.next_seq;
        self.next_seq = our_seq.wrapping_add(1);
        self.pending[usize::from(our_seq) % ECHO_SLOTS] =
            Some(PendingEcho { our_seq, guest: d.src, dst: d.dst, ident, seq_no, sent: now });
        let ttl = d.forward_ttl();
        let res = if pseudo {
            host.udp_send_to(encode(Kind::PseudoPing(v)), data, SocketAddr::new(d.dst, 7), ttl)
        } else {
            host.icmp_echo_send(encode(Kind::Echo(v)), d.dst, self.ident, our_seq, data, ttl)
        };
        if let Err(e) = res {
            out.stats.drop(DropReason::IcmpEchoUnavailable);
            if let Some(u) = unreach_code(e) {
                out.icmp_error(d, IcmpError::Unreachable(u));
            }
        }
    }

    /// A reply from `from` to our request `our_seq` (pseudo-ping replies carry no sequence):
    /// sent to the guest that asked, with its identifier and sequence number.
    pub(crate) fn reply_to_guest(
        &mut self,
        out: &mut Iface<'_>,
        now: Instant,
        from: IpAddr,
        our_seq: u16,
        data: &[u8],
        pseudo: bool,
    ) {
        let from = from.to_canonical();
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
        // The reply comes from whom the guest pinged (a ping socket may report the address in
        // another form; the guest matches replies by address).
        let src = if pseudo || IpVersion::of(from) != IpVersion::of(p.dst) { p.dst } else { from };
        match (src, p.guest) {
            (IpAddr::V4(_), IpAddr::V4(_)) => {
                let head = Icmpv4Repr::EchoReply { ident: p.ident, seq_no: p.seq_no, data }.emit_header();
                out.send_ip(now, src, p.guest, IpProtocol::Icmp, DEFAULT_TTL, LinkDest::Resolve, &head, data);
            }
            (IpAddr::V6(s), IpAddr::V6(g)) => {
                let mut head = [0u8; 8];
                let word = (u32::from(p.ident) << 16) | u32::from(p.seq_no);
                icmpv6::emit_header(&mut head, s, g, icmpv6::ECHO_REPLY, 0, word, data);
                out.send_ip(now, src, p.guest, IpProtocol::Icmpv6, DEFAULT_TTL, LinkDest::Resolve, &head, data);
            }
            _ => out.stats.drop(DropReason::EchoReplyUnmatched),
        }
    }
}
