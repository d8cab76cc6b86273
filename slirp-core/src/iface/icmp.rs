//! ICMP messages the core originates: echo replies from the virtual addresses, errors about
//! datagrams the guest sent (IPv4: RFC 1812 rules, at most 576 bytes; IPv6: RFC 4443, in
//! `ipv6.rs`), and the ICMP form of a host socket's error, for both families.

use crate::host::HostError;
use crate::iface::ip::{IcmpError, Ingress, LinkDest, Unreach};
use crate::iface::ipv4::{reply_header, ICMP_TTL};
use crate::iface::Iface;
use crate::time::Instant;
use crate::wire::icmpv4::{self, is_error_type, unreach};
use crate::wire::{Icmpv4Repr, IpProtocol, Ipv4Repr};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Largest datagram an ICMP error may make: every host must accept 576 bytes, so an error
/// never needs fragmenting (RFC 1812 §4.3.2.3).
pub const MAX_ERROR_DATAGRAM: usize = 576;
/// Most bytes of the offending datagram an error quotes: 576 - 20 (IP) - 8 (ICMP).
pub const MAX_QUOTE: usize = MAX_ERROR_DATAGRAM - 20 - icmpv4::HEADER_LEN;

/// The ICMPv4 message of `err` quoting `quote`.
pub(crate) fn error_message(err: IcmpError, quote: &[u8]) -> Icmpv4Repr<'_> {
    match err {
        IcmpError::TimeExceeded => Icmpv4Repr::TimeExceeded { code: 0, quote },
        IcmpError::Unreachable(u) => Icmpv4Repr::DstUnreachable { code: v4_code(u), next_hop_mtu: 0, quote },
        IcmpError::PacketTooBig(mtu) => {
            Icmpv4Repr::DstUnreachable { code: unreach::NEED_FRAG, next_hop_mtu: mtu.min(0xffff) as u16, quote }
        }
    }
}

/// The ICMPv4 destination-unreachable code of `u`.
pub(crate) fn v4_code(u: Unreach) -> u8 {
    match u {
        Unreach::Net => unreach::NET,
        Unreach::Host => unreach::HOST,
        Unreach::Port => unreach::PORT,
        Unreach::Protocol => unreach::PROTOCOL,
        Unreach::AdminProhibited => unreach::ADMIN_PROHIBITED,
    }
}

/// Whether RFC 1812 §4.3.2.7 allows an ICMP error about this datagram: not about an ICMP error,
/// not about a non-first fragment, not about a datagram sent to a broadcast or multicast address
/// (at the IP or link layer), not about one whose source does not name a single host.
pub fn error_allowed(orig: &Ipv4Repr, payload: &[u8], link_broadcast: bool, ip_broadcast: bool) -> bool {
    if orig.frag_offset != 0 || link_broadcast || ip_broadcast || orig.dst_addr.is_multicast() {
        return false;
    }
    if !crate::iface::fragment::is_unicast_source(orig.src_addr) {
        return false;
    }
    if orig.protocol == IpProtocol::Icmp {
        // An unreadable ICMP message is treated as an error: say nothing about it.
        return payload.first().is_some_and(|&t| !is_error_type(t));
    }
    true
}

/// TOS of an error about a datagram with `orig_tos`: its precedence-free bits plus internetwork
/// control precedence (as BSD and the original slirp do).
pub fn error_tos(orig_tos: u8) -> u8 {
    (orig_tos & 0x1e) | 0xc0
}

/// The address an ICMP error is sent from.
pub fn error_source(gateway: Ipv4Addr) -> Ipv4Addr {
    gateway
}

/// The ICMP error that tells the guest about host error `e`, if any.
pub(crate) fn for_host_error(e: HostError) -> Option<IcmpError> {
    match e {
        HostError::TtlExpired => Some(IcmpError::TimeExceeded),
        e => unreach_code(e).map(IcmpError::Unreachable),
    }
}

/// The destination-unreachable reason for host error `e`, if one fits.
pub(crate) fn unreach_code(e: HostError) -> Option<Unreach> {
    match e {
        HostError::NetUnreachable => Some(Unreach::Net),
        HostError::HostUnreachable => Some(Unreach::Host),
        HostError::Refused => Some(Unreach::Port),
        HostError::PermissionDenied => Some(Unreach::AdminProhibited),
        // The host cannot send it at all; "fragmentation needed" would need a next-hop MTU
        // we do not know, and the guest did not ask for DF. Count it and stay silent.
        HostError::TooLarge => None,
        _ => None,
    }
}

/// What an ICMP error about a packet the guest sent through a host socket quotes: a rebuilt IP
/// header from `guest` to `dst` (as the guest addressed it) and the first 8 bytes `l4` of the
/// transport header (ports, and for TCP the sequence number the guest's stack checks).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Quoted {
    pub(crate) protocol: IpProtocol,
    pub(crate) guest: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) l4: [u8; 8],
}

impl Iface<'_> {
    /// Answers an IPv4 echo request to a virtual address.
    pub(crate) fn echo_reply(&mut self, d: &Ingress<'_>, ident: u16, seq_no: u16, data: &[u8]) {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (d.src, d.dst) else { return };
        let head = Icmpv4Repr::EchoReply { ident, seq_no, data }.emit_header();
        // A fresh 20-byte header: the request's IP options are not echoed.
        let reply = reply_header(dst, src, IpProtocol::Icmp, ICMP_TTL, d.tos);
        let to = self.reply_link(d.link, d.src);
        self.send_datagram(d.now, reply, to, &head, data);
    }

    /// Sends an ICMP error of the datagram's family about the datagram `d`, if the rules
    /// (RFC 1812 for IPv4, RFC 4443 for IPv6) allow one.
    pub(crate) fn icmp_error(&mut self, d: &Ingress<'_>, err: IcmpError) {
        if d.is_v6() {
            self.icmp_error6(d, err);
        } else {
            self.icmp_error4(d, err);
        }
    }

    /// Tells the guest that a packet it sent (`quoted`) failed on the host side with `error`,
    /// from `offender` (host loopback and unspecified appear as the gateway).
    pub(crate) fn host_error_to_guest(&mut self, now: Instant, quoted: Quoted, offender: IpAddr, error: HostError) {
        let Some(err) = for_host_error(error) else { return };
        self.quoted_error_to_guest(now, quoted, offender, err);
    }

    /// Sends the guest ICMP error `err` (of the guest's family) about the packet `quoted`, from
    /// `offender` (host loopback and unspecified, or an address of the other family, appear as
    /// the gateway).
    pub(crate) fn quoted_error_to_guest(&mut self, now: Instant, quoted: Quoted, offender: IpAddr, err: IcmpError) {
        let local = offender.is_loopback() || offender.is_unspecified();
        let (SocketAddr::V4(guest), SocketAddr::V4(dst)) = (quoted.guest, quoted.dst) else {
            let from = match offender {
                IpAddr::V6(o) if !local => o,
                IpAddr::V4(o) if !local => crate::services::aliases::v4_as_v6(o),
                _ => self.config.ipv6.gateway,
            };
            return self.quoted_error_to_guest6(now, quoted, from, err);
        };
        let from = match offender {
            IpAddr::V4(o) if !local => o,
            _ => self.config.gateway,
        };
        let mut quote = [0u8; 28];
        let orig = Ipv4Repr {
            src_addr: *guest.ip(),
            dst_addr: *dst.ip(),
            protocol: quoted.protocol,
            payload_len: 8,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        orig.emit(&mut quote[..20]);
        quote[20..].copy_from_slice(&quoted.l4);
        let head = error_message(err, &quote).emit_header();
        let repr = reply_header(from, *guest.ip(), IpProtocol::Icmp, ICMP_TTL, 0xc0);
        self.stats.icmp_errors_sent += 1;
        self.send_datagram(now, repr, LinkDest::Resolve, &head, &quote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Icmpv4Packet, Icmpv4Repr};

    fn orig(proto: IpProtocol) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 2, 15),
            dst_addr: Ipv4Addr::new(10, 0, 2, 2),
            protocol: proto,
            payload_len: 8,
            ttl: 0,
            tos: 0,
            ident: 1,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        }
    }

    #[test]
    fn header_checksum_covers_body() {
        let body = [1u8, 2, 3];
        let h = Icmpv4Repr::EchoReply { ident: 7, seq_no: 9, data: &body }.emit_header();
        let mut msg = h.to_vec();
        msg.extend_from_slice(&body);
        let p = Icmpv4Packet::new_checked(&msg[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(matches!(Icmpv4Repr::parse(&p, true), Ok(Icmpv4Repr::EchoReply { ident: 7, seq_no: 9, .. })));
    }

    #[test]
    fn rfc1812_rules_checklist_38() {
        assert!(error_allowed(&orig(IpProtocol::Udp), &[], false, false));
        assert!(!error_allowed(&orig(IpProtocol::Udp), &[], true, false));
        assert!(!error_allowed(&orig(IpProtocol::Udp), &[], false, true));
        let mut frag = orig(IpProtocol::Udp);
        frag.frag_offset = 8;
        assert!(!error_allowed(&frag, &[], false, false));
        assert!(!error_allowed(&orig(IpProtocol::Icmp), &[3, 0], false, false));
        assert!(!error_allowed(&orig(IpProtocol::Icmp), &[], false, false));
        assert!(error_allowed(&orig(IpProtocol::Icmp), &[8, 0], false, false));
        let mut zero = orig(IpProtocol::Udp);
        zero.src_addr = Ipv4Addr::UNSPECIFIED;
        assert!(!error_allowed(&zero, &[], false, false));
        assert_eq!(error_tos(0xff), 0xde);
    }
}
