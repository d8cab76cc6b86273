//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages and options the stack speaks
//! (RFC 4861, RFC 8106).
//!
//! [`Icmpv6Packet`] is the view with its length gate and checksum; [`NdpRepr`] parses the four
//! ND messages a router sees (RS, NS, NA; RA from a guest is parsed only to be ignored) and emits
//! what it sends (NA, NS, RA with prefix, MTU, RDNSS and DNSSL options).

use super::checksum;
use super::ethernet::EthernetAddress;
use super::ipv4::IpProtocol;
use super::ipv6::read_ip6;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Result};
use core::net::Ipv6Addr;

/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of message body).
pub const HEADER_LEN: usize = 4;

/// The shortest message the stack reads: header and a 4-byte body.
pub const MIN_LEN: usize = 8;

/// Message type: destination unreachable.
pub const DST_UNREACHABLE: u8 = 1;
/// Message type: packet too big.
pub const PACKET_TOO_BIG: u8 = 2;
/// Message type: time exceeded.
pub const TIME_EXCEEDED: u8 = 3;
/// Message type: parameter problem.
pub const PARAM_PROBLEM: u8 = 4;
/// Message type: echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Message type: echo reply.
pub const ECHO_REPLY: u8 = 129;
/// Message type: router solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// Message type: router advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// Message type: neighbor solicitation.
pub const NEIGHBOR_SOLICIT: u8 = 135;
/// Message type: neighbor advertisement.
pub const NEIGHBOR_ADVERT: u8 = 136;
/// Message type: redirect.
pub const REDIRECT: u8 = 137;

/// Destination unreachable codes.
pub mod unreach {
    /// No route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 1;
    /// Address unreachable.
    pub const ADDRESS: u8 = 3;
    /// Port unreachable.
    pub const PORT: u8 = 4;
}

/// Parameter problem codes.
pub mod param {
    /// Erroneous header field.
    pub const HEADER: u8 = 0;
    /// Unrecognized next header.
    pub const NEXT_HEADER: u8 = 1;
    /// Unrecognized IPv6 option.
    pub const OPTION: u8 = 2;
}

/// The most of the offending packet an error message quotes: the error must fit the IPv6
/// minimum MTU (RFC 4443 §2.4 (c)): 1280 - 40 (IPv6) - 8 (ICMPv6 header and body).
pub const MAX_ERROR_QUOTE: usize = 1280 - 40 - 8;

/// Whether a message type is an error (types below 128), which must never trigger another
/// error (RFC 4443 §2.4 (e)).
pub fn is_error_type(t: u8) -> bool {
    t < 128
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }
    /// A view of at least the 4-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// The length gate: the 4-byte header and the 4-byte body every defined message type has
    /// (RFC 4443 §2.1: [`MIN_LEN`] bytes).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < MIN_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }
    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }
    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 6)
    }
    /// The 32-bit word after the checksum (MTU of a Packet Too Big, pointer of a Parameter
    /// Problem).
    pub fn word(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 4)
    }
    /// Everything after the 8 bytes of header and body: an echo's data, an error's quote, ND
    /// messages' fields and options.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[8..]
    }
    /// The whole message.
    pub fn message(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// Whether the checksum verifies over the pseudo-header of `src` → `dst`.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        checksum::verifies(checksum::pseudo_header(src, dst, IpProtocol::Icmpv6, b.len() as u32) + checksum::sum(b))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Computes and writes the checksum over the pseudo-header of `src` → `dst` and the message.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        write_u16(self.buffer.as_mut(), 2, 0);
        let b = self.buffer.as_ref();
        let c =
            checksum::finish(checksum::pseudo_header(src, dst, IpProtocol::Icmpv6, b.len() as u32) + checksum::sum(b));
        write_u16(self.buffer.as_mut(), 2, c);
    }
}

/// The checksum of an ICMPv6 message whose first 8 bytes are `head` (checksum field zero) and
/// whose rest is `body` (held elsewhere: the engine sends header and quote as two parts).
pub fn checksum_parts(src: Ipv6Addr, dst: Ipv6Addr, head: &[u8], body: &[u8]) -> u16 {
    let len = (head.len() + body.len()) as u32;
    checksum::finish(
        checksum::pseudo_header(src, dst, IpProtocol::Icmpv6, len) + checksum::sum(head) + checksum::sum(body),
    )
}

/// Writes the 8-byte header of an ICMPv6 message of `msg_type`/`code` whose 4-byte body is
/// `word`, with the checksum over it and `body`.
pub fn emit_header(head: &mut [u8; 8], src: Ipv6Addr, dst: Ipv6Addr, msg_type: u8, code: u8, word: u32, body: &[u8]) {
    head[0] = msg_type;
    head[1] = code;
    write_u16(head, 2, 0);
    write_u32(head, 4, word);
    let c = checksum_parts(src, dst, head, body);
    write_u16(head, 2, c);
}

/// NDP option types.
pub mod option {
    /// Source link-layer address.
    pub const SOURCE_LL: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LL: u8 = 2;
    /// Prefix information.
    pub const PREFIX_INFO: u8 = 3;
    /// MTU.
    pub const MTU: u8 = 5;
    /// Recursive DNS server (RFC 8106).
    pub const RDNSS: u8 = 25;
    /// DNS search list (RFC 8106).
    pub const DNSSL: u8 = 31;
}

/// Neighbor Advertisement flags.
pub mod na_flags {
    /// Sender is a router.
    pub const ROUTER: u32 = 0x8000_0000;
    /// Sent in response to a solicitation.
    pub const SOLICITED: u32 = 0x4000_0000;
    /// Override an existing cache entry.
    pub const OVERRIDE: u32 = 0x2000_0000;
}

/// The ND messages the stack reads from the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NdpRepr {
    /// Router Solicitation.
    RouterSolicit {
        /// The source link-layer address option, if present.
        source_ll: Option<EthernetAddress>,
    },
    /// Neighbor Solicitation.
    NeighborSolicit {
        /// Target address.
        target: Ipv6Addr,
        /// The source link-layer address option, if present.
        source_ll: Option<EthernetAddress>,
    },
    /// Neighbor Advertisement.
    NeighborAdvert {
        /// Flags (see [`na_flags`]).
        flags: u32,
        /// Target address.
        target: Ipv6Addr,
        /// The target link-layer address option, if present.
        target_ll: Option<EthernetAddress>,
    },
    /// A Router Advertisement or Redirect (a guest is not a router: parsed to be ignored).
    Ignored,
}

impl NdpRepr {
    /// Parses an ND message (RFC 4861 §6.1.1, §7.1.1, §7.1.2 validity: code 0, options with
    /// non-zero lengths inside the message; the caller checks the hop limit of 255 and the
    /// checksum). `None` for types that are not ND.
    pub fn parse<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>) -> Option<Result<NdpRepr>> {
        let t = p.msg_type();
        if !(ROUTER_SOLICIT..=REDIRECT).contains(&t) {
            return None;
        }
        Some(Self::parse_nd(p, t))
    }

    fn parse_nd<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>, t: u8) -> Result<NdpRepr> {
        if p.code() != 0 {
            return Err(Error::Malformed);
        }
        let data = p.data();
        let (fixed, ll_type) = match t {
            ROUTER_SOLICIT => (0, option::SOURCE_LL),
            NEIGHBOR_SOLICIT => (16, option::SOURCE_LL),
            NEIGHBOR_ADVERT => (16, option::TARGET_LL),
            _ => return Ok(NdpRepr::Ignored),
        };
        if data.len() < fixed {
            return Err(Error::Truncated);
        }
        let mut ll = None;
        for o in NdpOptions::new(&data[fixed..]) {
            let (ty, body) = o?;
            if ty == ll_type && body.len() >= 6 {
                ll = Some(EthernetAddress::from_bytes(&body[..6]));
            }
        }
        Ok(match t {
            ROUTER_SOLICIT => NdpRepr::RouterSolicit { source_ll: ll },
            NEIGHBOR_SOLICIT => NdpRepr::NeighborSolicit { target: read_ip6(data, 0), source_ll: ll },
            _ => NdpRepr::NeighborAdvert { flags: p.word(), target: read_ip6(data, 0), target_ll: ll },
        })
    }
}

/// An iterator over NDP options: `(type, body after type and length)`. A zero length or one
/// that runs past the buffer yields `Err(Malformed)` once and ends the walk (RFC 4861 §4.6:
/// such a message is discarded).
pub struct NdpOptions<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> NdpOptions<'a> {
    /// Options in `b`.
    pub fn new(b: &'a [u8]) -> Self {
        NdpOptions { rest: b, failed: false }
    }
}

impl<'a> Iterator for NdpOptions<'a> {
    type Item = Result<(u8, &'a [u8])>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let len = usize::from(*self.rest.get(1).unwrap_or(&0)) * 8;
        if self.rest.len() < 2 || len == 0 || len > self.rest.len() {
            self.failed = true;
            return Some(Err(Error::Malformed));
        }
        let (o, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(Ok((o[0], &o[2..])))
    }
}

/// Length of a Neighbor Advertisement or Solicitation with one link-layer address option.
pub const NEIGHBOR_MSG_LEN: usize = 8 + 16 + 8;

/// Writes a Neighbor Advertisement (or, with `msg_type` [`NEIGHBOR_SOLICIT`], a solicitation:
/// `flags` then must be 0 and `ll` is the source link-layer address) for `target` into
/// `buf[..NEIGHBOR_MSG_LEN]`, checksum included.
#[allow(clippy::too_many_arguments)]
pub fn emit_neighbor(
    buf: &mut [u8],
    msg_type: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    flags: u32,
    target: Ipv6Addr,
    ll: EthernetAddress,
) -> usize {
    let b = &mut buf[..NEIGHBOR_MSG_LEN];
    b[0] = msg_type;
    b[1] = 0;
    write_u16(b, 2, 0);
    write_u32(b, 4, flags);
    b[8..24].copy_from_slice(&target.octets());
    b[24] = if msg_type == NEIGHBOR_ADVERT { option::TARGET_LL } else { option::SOURCE_LL };
    b[25] = 1;
    b[26..32].copy_from_slice(&ll.0);
    Icmpv6Packet::new_unchecked(b).fill_checksum(src, dst);
    NEIGHBOR_MSG_LEN
}

/// What a Router Advertisement says.
#[derive(Clone, Copy, Debug)]
pub struct RouterAdvert<'a> {
    /// Current hop limit to advertise (0: unspecified).
    pub hop_limit: u8,
    /// Router lifetime in seconds (0: not a default router).
    pub router_lifetime: u16,
    /// The router's link-layer address (source LL option).
    pub source_ll: EthernetAddress,
    /// The link MTU (MTU option), if advertised.
    pub mtu: Option<u32>,
    /// An on-link, autonomous prefix: (prefix, length, valid lifetime, preferred lifetime).
    pub prefix: Option<(Ipv6Addr, u8, u32, u32)>,
    /// Recursive DNS servers (RDNSS option) and their lifetime.
    pub rdnss: &'a [Ipv6Addr],
    /// Lifetime of the RDNSS and DNSSL options in seconds.
    pub dns_lifetime: u32,
    /// DNS search domains, space- or comma-separated (DNSSL option); names that do not encode
    /// (empty labels, labels over 63 bytes, names over 253) are left out.
    pub dnssl: Option<&'a str>,
    /// Managed (M) flag: addresses from DHCPv6.
    pub managed: bool,
    /// Other-configuration (O) flag: other configuration from DHCPv6.
    pub other: bool,
}

impl RouterAdvert<'_> {
    /// Writes the advertisement (type 134, checksum included) into `buf` and returns its
    /// length, or `None` when `buf` is too small.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) -> Option<usize> {
        let mut w = Writer { buf, at: 0 };
        w.put(&[ROUTER_ADVERT, 0, 0, 0, self.hop_limit])?;
        w.put(&[(u8::from(self.managed) << 7) | (u8::from(self.other) << 6)])?;
        w.put(&self.router_lifetime.to_be_bytes())?;
        w.put(&[0; 8])?; // reachable time, retrans timer: unspecified
        w.put(&[option::SOURCE_LL, 1])?;
        w.put(&self.source_ll.0)?;
        if let Some(mtu) = self.mtu {
            w.put(&[option::MTU, 1, 0, 0])?;
            w.put(&mtu.to_be_bytes())?;
        }
        if let Some((prefix, len, valid, preferred)) = self.prefix {
            w.put(&[option::PREFIX_INFO, 4, len, 0xc0])?; // L and A
            w.put(&valid.to_be_bytes())?;
            w.put(&preferred.to_be_bytes())?;
            w.put(&[0; 4])?;
            w.put(&mask_prefix(prefix, len).octets())?;
        }
        if !self.rdnss.is_empty() {
            let n = self.rdnss.len().min(127);
            w.put(&[option::RDNSS, (1 + 2 * n) as u8, 0, 0])?;
            w.put(&self.dns_lifetime.to_be_bytes())?;
            for a in &self.rdnss[..n] {
                w.put(&a.octets())?;
            }
        }
        if let Some(list) = self.dnssl {
            let start = w.at;
            w.put(&[option::DNSSL, 0, 0, 0])?;
            w.put(&self.dns_lifetime.to_be_bytes())?;
            let names = w.at;
            for name in search_names(list) {
                let mut enc = [0u8; 256];
                if let Some(n) = encode_name(name, &mut enc) {
                    w.put(&enc[..n])?;
                }
            }
            if w.at == names {
                w.at = start; // nothing encodable: no option
            } else {
                while !(w.at - start).is_multiple_of(8) {
                    w.put(&[0])?;
                }
                let units = (w.at - start) / 8;
                if units > 255 {
                    w.at = start;
                } else {
                    w.buf[start + 1] = units as u8;
                }
            }
        }
        let len = w.at;
        Icmpv6Packet::new_unchecked(&mut buf[..len]).fill_checksum(src, dst);
        Some(len)
    }
}

struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, d: &[u8]) -> Option<()> {
        let end = self.at.checked_add(d.len())?;
        self.buf.get_mut(self.at..end)?.copy_from_slice(d);
        self.at = end;
        Some(())
    }
}

/// `a` with every bit past `len` cleared.
pub fn mask_prefix(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let len = u32::from(len.min(128));
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    Ipv6Addr::from(u128::from(a) & mask)
}

/// The names of a search list as configured: separated by spaces, commas or tabs, empty ones
/// skipped. (DNSSL, the DHCPv6 domain list and DHCP option 119 all read lists this way.)
pub fn search_names(list: &str) -> impl Iterator<Item = &str> {
    list.split([' ', ',', '\t']).filter(|n| !n.is_empty())
}

/// Encodes a domain name as DNS labels (RFC 1035 §3.1) ending in the root label; `None` when
/// it does not fit 255 bytes or a label is empty, longer than 63 bytes or holds a byte other
/// than letters, digits, '-' and '_'. A trailing dot is allowed.
pub fn encode_name(name: &str, out: &mut [u8; 256]) -> Option<usize> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    let mut at = 0;
    for label in name.split('.') {
        let l = label.len();
        if l == 0 || l > 63 || !label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
            return None;
        }
        out[at] = l as u8;
        out[at + 1..at + 1 + l].copy_from_slice(label.as_bytes());
        at += 1 + l;
    }
    out[at] = 0;
    Some(at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
    const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    const MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 10, 0, 2, 2]);

    #[test]
    fn neighbor_messages_roundtrip() {
        let mut b = [0u8; NEIGHBOR_MSG_LEN];
        let n =
            emit_neighbor(&mut b, NEIGHBOR_ADVERT, ROUTER, GUEST, na_flags::ROUTER | na_flags::SOLICITED, ROUTER, MAC);
        let p = Icmpv6Packet::new_checked(&b[..n]).unwrap();
        assert!(p.verify_checksum(ROUTER, GUEST));
        // Over another destination's pseudo-header it does not verify.
        assert!(!p.verify_checksum(ROUTER, crate::wire::ipv6::ALL_NODES));
        assert_eq!(
            NdpRepr::parse(&p).unwrap().unwrap(),
            NdpRepr::NeighborAdvert {
                flags: na_flags::ROUTER | na_flags::SOLICITED,
                target: ROUTER,
                target_ll: Some(MAC)
            }
        );
        let n = emit_neighbor(&mut b, NEIGHBOR_SOLICIT, ROUTER, GUEST, 0, GUEST, MAC);
        let p = Icmpv6Packet::new_checked(&b[..n]).unwrap();
        assert_eq!(
            NdpRepr::parse(&p).unwrap().unwrap(),
            NdpRepr::NeighborSolicit { target: GUEST, source_ll: Some(MAC) }
        );
    }

    #[test]
    fn bad_options_refused() {
        let mut b = [0u8; NEIGHBOR_MSG_LEN];
        emit_neighbor(&mut b, NEIGHBOR_SOLICIT, ROUTER, GUEST, 0, GUEST, MAC);
        b[25] = 0; // zero-length option
        assert_eq!(NdpRepr::parse(&Icmpv6Packet::new_unchecked(&b[..])).unwrap(), Err(Error::Malformed));
        b[25] = 2; // runs past
        assert_eq!(NdpRepr::parse(&Icmpv6Packet::new_unchecked(&b[..])).unwrap(), Err(Error::Malformed));
        assert_eq!(NdpRepr::parse(&Icmpv6Packet::new_unchecked(&b[..20])).unwrap(), Err(Error::Truncated));
        b[1] = 1; // non-zero code
        assert_eq!(NdpRepr::parse(&Icmpv6Packet::new_unchecked(&b[..])).unwrap(), Err(Error::Malformed));
        let echo = [ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1];
        assert!(NdpRepr::parse(&Icmpv6Packet::new_unchecked(&echo[..])).is_none());
    }

    #[test]
    fn router_advert_layout() {
        let dns = [Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3)];
        let ra = RouterAdvert {
            hop_limit: 64,
            router_lifetime: 1800,
            source_ll: MAC,
            mtu: Some(1500),
            prefix: Some((Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x55), 64, 86400, 14400)),
            rdnss: &dns,
            dns_lifetime: 600,
            dnssl: Some("example.test, lab.test bad..name"),
            managed: false,
            other: true,
        };
        let mut b = [0u8; 256];
        let n = ra.emit(&mut b, ROUTER, crate::wire::ipv6::ALL_NODES).unwrap();
        let p = Icmpv6Packet::new_checked(&b[..n]).unwrap();
        assert!(p.verify_checksum(ROUTER, crate::wire::ipv6::ALL_NODES));
        assert_eq!(p.msg_type(), ROUTER_ADVERT);
        assert_eq!(b[4], 64);
        assert_eq!(b[5], 0x40);
        assert_eq!(read_u16(&b, 6), 1800);
        let opts: heapless::Vec<(u8, &[u8]), 8> = NdpOptions::new(&b[16..n]).map(|o| o.unwrap()).collect();
        let types: heapless::Vec<u8, 8> = opts.iter().map(|o| o.0).collect();
        assert_eq!(&types[..], &[option::SOURCE_LL, option::MTU, option::PREFIX_INFO, option::RDNSS, option::DNSSL]);
        let pi = opts[2].1;
        assert_eq!((pi[0], pi[1]), (64, 0xc0));
        assert_eq!(read_ip6(pi, 14), Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0));
        assert_eq!(read_ip6(opts[3].1, 6), dns[0]);
        let dnssl = opts[4].1;
        assert_eq!(&dnssl[6..6 + 14], b"\x07example\x04test\x00");
        assert_eq!(&dnssl[20..20 + 10], b"\x03lab\x04test\x00");
        assert!(dnssl[30..].iter().all(|&z| z == 0));
        // Too small a buffer is refused, not overrun.
        let mut small = [0u8; 40];
        assert!(ra.emit(&mut small, ROUTER, GUEST).is_none());
    }

    #[test]
    fn names() {
        let mut o = [0u8; 256];
        assert_eq!(encode_name("a.b.", &mut o), Some(5));
        assert_eq!(&o[..5], b"\x01a\x01b\x00");
        assert_eq!(encode_name("", &mut o), None);
        assert_eq!(encode_name("a..b", &mut o), None);
        assert_eq!(encode_name("sp ace", &mut o), None);
        let long = [b'x'; 64];
        assert_eq!(encode_name(core::str::from_utf8(&long).unwrap(), &mut o), None);
    }

    #[test]
    fn prefix_mask() {
        let a = Ipv6Addr::new(0xfd00, 1, 2, 3, 4, 5, 6, 7);
        assert_eq!(mask_prefix(a, 64), Ipv6Addr::new(0xfd00, 1, 2, 3, 0, 0, 0, 0));
        assert_eq!(mask_prefix(a, 0), Ipv6Addr::UNSPECIFIED);
        assert_eq!(mask_prefix(a, 200), a);
    }

    proptest::proptest! {
        #[test]
        fn nd_parse_never_panics(d in proptest::collection::vec(proptest::num::u8::ANY, 0..120), t in 133u8..138) {
            let mut d = d;
            if d.len() >= 2 { d[0] = t; d[1] = 0; }
            if let Ok(p) = Icmpv6Packet::new_checked(&d[..]) {
                let _ = NdpRepr::parse(&p);
            }
        }
    }
}
