//! IPv6 (RFC 8200): the fixed header, a bounded walk over extension headers, and the fragment
//! header.

use super::ipv4::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Result};
use core::net::Ipv6Addr;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The minimum link MTU every IPv6 link must carry (RFC 8200 §5); ICMPv6 errors fit in it.
pub const MIN_MTU: usize = 1280;
/// Length of the fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// The most extension headers [`walk_extensions`] reads before it gives up (a chain of tiny
/// headers must not cost unbounded work).
pub const MAX_EXTENSIONS: usize = 8;

/// Next-header values the stack knows.
pub mod next_header {
    /// Hop-by-hop options (must come first).
    pub const HOP_BY_HOP: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// Routing header.
    pub const ROUTING: u8 = 43;
    /// Fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating security payload.
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header.
    pub const NO_NEXT: u8 = 59;
    /// Destination options.
    pub const DST_OPTS: u8 = 60;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// A view that passed [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The length gate: version 6, a whole fixed header, and the payload length within the
    /// buffer. Bytes after the payload (Ethernet padding) are allowed and ignored by every
    /// accessor. A zero payload length with a hop-by-hop header would be a jumbogram (RFC 2675),
    /// which no link here carries: it is a zero-length payload like any other.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if b.len() < HEADER_LEN + self.payload_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 0) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }

    /// The first next-header value.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        read_ip6(self.buffer.as_ref(), 8)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_ip6(self.buffer.as_ref(), 24)
    }

    /// The payload, exactly `payload_len` bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }

    /// Header and payload without trailing padding.
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN + self.payload_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), 4, len);
    }
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[7] = h;
    }
    /// Sets the first next-header value.
    pub fn set_next_header(&mut self, n: u8) {
        self.buffer.as_mut()[6] = n;
    }
    /// Rewrites the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a.octets());
    }
    /// Rewrites the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[24..40].copy_from_slice(&a.octets());
    }
}

/// Reads a 16-byte address at `at`.
pub(crate) fn read_ip6(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// The fixed header's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// First next-header value (the upper-layer protocol when there are no extension headers).
    pub next_header: u8,
    /// Payload length (after the fixed header).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
}

impl Ipv6Repr {
    /// Parses a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        p.check_len()?;
        Ok(Ipv6Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len() as usize,
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
        })
    }

    /// Length of the emitted header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header into the start of `buf` (flow label zero). A payload
    /// length over 65535 is clamped.
    pub fn emit(&self, buf: &mut [u8]) {
        let b = &mut buf[..HEADER_LEN];
        write_u32(b, 0, (6 << 28) | (u32::from(self.traffic_class) << 20));
        write_u16(b, 4, self.payload_len.min(u16::MAX as usize) as u16);
        b[6] = self.next_header;
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src_addr.octets());
        b[24..40].copy_from_slice(&self.dst_addr.octets());
    }
}

/// A fragment header (RFC 8200 §4.5) found by [`walk_extensions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Identification.
    pub ident: u32,
    /// Fragment offset in bytes (a multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Where the fragment header starts, from the start of the payload.
    pub header_at: usize,
    /// The fragment header's own next-header value (the first header of the fragmentable part).
    pub next_header: u8,
}

impl FragmentHeader {
    /// Whether this is an atomic fragment (offset 0, no more fragments: RFC 6946), which is
    /// processed as a whole packet.
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// What [`walk_extensions`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extensions {
    /// The upper-layer protocol (or `NO_NEXT`, ESP, AH or an unknown value the walk stopped at).
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header from the start of the payload.
    pub offset: usize,
    /// The fragment header, if any (the walk stops after it when it is not an atomic
    /// fragment: the rest is fragmented data).
    pub fragment: Option<FragmentHeader>,
    /// Offset from the start of the payload of a hop-by-hop or destination option the node must
    /// act on (RFC 8200 §4.2 action bits 10/11: discard and send Parameter Problem code 2), when
    /// one was seen; a packet with this set is dropped.
    pub bad_option_at: Option<usize>,
}

/// Why the extension-header walk refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtensionError {
    /// A header runs past the payload, or more than [`MAX_EXTENSIONS`] headers.
    Truncated,
    /// A hop-by-hop header not first, a second fragment header, or a field that is not allowed.
    /// `pointer` is the offset (from the start of the payload) of the offending byte, for an
    /// ICMPv6 Parameter Problem.
    Malformed {
        /// Offending byte, from the start of the payload.
        pointer: usize,
    },
    /// A routing header of type 0 (deprecated by RFC 5095) with segments left.
    RoutingType0 {
        /// Offending byte, from the start of the payload.
        pointer: usize,
    },
}

/// Walks the extension headers of a payload whose first next-header value is `first`, at most
/// [`MAX_EXTENSIONS`] of them: hop-by-hop (only first), destination options, routing, fragment.
/// Unknown options in hop-by-hop and destination options headers are skipped when their
/// action bits say so (00) and reported otherwise. A routing header with segments left is
/// refused when of type 0 and ignored otherwise (we are the final destination of everything the
/// guest sends). The walk stops at the upper-layer header or after a non-atomic fragment header.
pub fn walk_extensions(first: u8, payload: &[u8]) -> core::result::Result<Extensions, ExtensionError> {
    let mut nh = first;
    let mut at = 0usize;
    let mut fragment = None;
    let mut bad_option_at = None;
    for i in 0..=MAX_EXTENSIONS {
        match nh {
            next_header::HOP_BY_HOP | next_header::DST_OPTS | next_header::ROUTING => {
                if i == MAX_EXTENSIONS {
                    return Err(ExtensionError::Truncated);
                }
                if nh == next_header::HOP_BY_HOP && i != 0 {
                    // The pointer names the next-header field that named it.
                    return Err(ExtensionError::Malformed { pointer: at });
                }
                if payload.len() < at + 8 {
                    return Err(ExtensionError::Truncated);
                }
                let len = (usize::from(payload[at + 1]) + 1) * 8;
                if payload.len() < at + len {
                    return Err(ExtensionError::Truncated);
                }
                let h = &payload[at..at + len];
                if nh == next_header::ROUTING {
                    let (routing_type, segments_left) = (h[2], h[3]);
                    if routing_type == 0 && segments_left != 0 {
                        return Err(ExtensionError::RoutingType0 { pointer: at + 2 });
                    }
                } else if bad_option_at.is_none() {
                    bad_option_at = scan_options(&h[2..]).map(|o| at + 2 + o);
                }
                nh = h[0];
                at += len;
            }
            next_header::FRAGMENT => {
                if i == MAX_EXTENSIONS {
                    return Err(ExtensionError::Truncated);
                }
                if fragment.is_some() {
                    return Err(ExtensionError::Malformed { pointer: at });
                }
                if payload.len() < at + FRAGMENT_HEADER_LEN {
                    return Err(ExtensionError::Truncated);
                }
                let h = &payload[at..at + FRAGMENT_HEADER_LEN];
                let off_flags = read_u16(h, 2);
                let f = FragmentHeader {
                    ident: read_u32(h, 4),
                    offset: off_flags & !7,
                    more: off_flags & 1 != 0,
                    header_at: at,
                    next_header: h[0],
                };
                fragment = Some(f);
                nh = h[0];
                at += FRAGMENT_HEADER_LEN;
                if !f.is_atomic() {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(Extensions { protocol: IpProtocol::from(nh), offset: at, fragment, bad_option_at })
}

/// Scans TLV options; returns the offset of the first option whose action bits demand a
/// discard (01, 10, 11), or None. Malformed option lengths also count (at their offset).
fn scan_options(opts: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < opts.len() {
        let t = opts[i];
        if t == 0 {
            // Pad1.
            i += 1;
            continue;
        }
        if i + 2 > opts.len() {
            return Some(i);
        }
        let len = usize::from(opts[i + 1]);
        if i + 2 + len > opts.len() {
            return Some(i);
        }
        // PadN (1) and unknown options with action 00 are skipped.
        if t != 1 && t >> 6 != 0 {
            return Some(i);
        }
        i += 2 + len;
    }
    None
}

/// Writes a fragment header into `buf[..8]`.
pub fn emit_fragment_header(buf: &mut [u8], next_header: u8, offset: u16, more: bool, ident: u32) {
    let b = &mut buf[..FRAGMENT_HEADER_LEN];
    b[0] = next_header;
    b[1] = 0;
    write_u16(b, 2, (offset & !7) | u16::from(more));
    write_u32(b, 4, ident);
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// All-nodes multicast, ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers multicast, ff02::2.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Whether `a` is link-local unicast (fe80::/10).
pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Whether `a` is an IPv4-mapped address (::ffff:a.b.c.d).
pub fn is_v4_mapped(a: Ipv6Addr) -> bool {
    a.to_ipv4_mapped().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(next: u8, payload: &[u8]) -> [u8; 128] {
        let mut b = [0u8; 128];
        Ipv6Repr {
            src_addr: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100),
            dst_addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            next_header: next,
            payload_len: payload.len(),
            hop_limit: 64,
            traffic_class: 0xb8,
        }
        .emit(&mut b);
        b[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
        b
    }

    #[test]
    fn header_roundtrip_and_padding_ignored() {
        let b = packet(next_header::UDP, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        let r = Ipv6Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 8);
        assert_eq!(r.traffic_class, 0xb8);
        assert_eq!(r.hop_limit, 64);
        assert_eq!(p.flow_label(), 0);
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(p.packet().len(), 48);
    }

    #[test]
    fn gate() {
        let b = packet(next_header::UDP, &[0; 8]);
        assert_eq!(Ipv6Packet::new_checked(&b[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Ipv6Packet::new_checked(&b[..47]).unwrap_err(), Error::Truncated);
        let mut v4 = b;
        v4[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&v4[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn extensions_walked_to_upper_layer() {
        // Hop-by-hop (PadN) → destination options (unknown option with action 00) → UDP.
        let mut p = [0u8; 24];
        p[0] = next_header::DST_OPTS;
        p[2] = 1; // PadN
        p[3] = 4;
        p[8] = next_header::UDP;
        p[10] = 0x1e; // action 00, skip
        p[11] = 4;
        let e = walk_extensions(next_header::HOP_BY_HOP, &p).unwrap();
        assert_eq!(e.protocol, IpProtocol::Udp);
        assert_eq!(e.offset, 16);
        assert_eq!(e.bad_option_at, None);
        assert_eq!(e.fragment, None);
        // An option whose action says discard is reported.
        p[10] = 0x80;
        assert_eq!(walk_extensions(next_header::HOP_BY_HOP, &p).unwrap().bad_option_at, Some(10));
    }

    #[test]
    fn hop_by_hop_not_first_and_routing_type0_refused() {
        let mut p = [0u8; 16];
        p[0] = next_header::HOP_BY_HOP;
        assert!(matches!(walk_extensions(next_header::DST_OPTS, &p), Err(ExtensionError::Malformed { .. })));
        let mut r = [0u8; 8];
        r[0] = next_header::UDP;
        r[2] = 0;
        r[3] = 1;
        assert_eq!(walk_extensions(next_header::ROUTING, &r), Err(ExtensionError::RoutingType0 { pointer: 2 }));
        r[3] = 0; // no segments left: ignored
        assert_eq!(walk_extensions(next_header::ROUTING, &r).unwrap().protocol, IpProtocol::Udp);
        p[0] = next_header::UDP;
        p[1] = 5; // runs past
        assert_eq!(walk_extensions(next_header::DST_OPTS, &p), Err(ExtensionError::Truncated));
    }

    #[test]
    fn long_chain_bounded() {
        let mut p = [0u8; 8 * 12];
        for c in p.chunks_mut(8) {
            c[0] = next_header::DST_OPTS;
        }
        assert_eq!(walk_extensions(next_header::DST_OPTS, &p), Err(ExtensionError::Truncated));
    }

    #[test]
    fn fragment_header() {
        let mut p = [0u8; 16];
        emit_fragment_header(&mut p, next_header::UDP, 1448, true, 0xdead_beef);
        let e = walk_extensions(next_header::FRAGMENT, &p).unwrap();
        let f = e.fragment.unwrap();
        assert_eq!((f.offset, f.more, f.ident, f.next_header, f.header_at), (1448, true, 0xdead_beef, 17, 0));
        assert_eq!(e.offset, 8);
        // Atomic fragments are walked through.
        emit_fragment_header(&mut p, next_header::UDP, 0, false, 7);
        let e = walk_extensions(next_header::FRAGMENT, &p).unwrap();
        assert!(e.fragment.unwrap().is_atomic());
        assert_eq!(e.protocol, IpProtocol::Udp);
        // Two fragment headers.
        emit_fragment_header(&mut p, next_header::FRAGMENT, 0, false, 7);
        emit_fragment_header(&mut p[8..], next_header::UDP, 0, false, 7);
        assert!(matches!(walk_extensions(next_header::FRAGMENT, &p), Err(ExtensionError::Malformed { .. })));
    }

    #[test]
    fn solicited_node_address() {
        let a = Ipv6Addr::new(0xfd00, 0, 0, 0, 0x1234, 0x5678, 0x9abc, 0xdef0);
        assert_eq!(solicited_node(a), Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xffbc, 0xdef0));
        assert!(is_link_local(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)));
        assert!(!is_link_local(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)));
    }

    proptest::proptest! {
        #[test]
        fn walk_never_panics(first in proptest::num::u8::ANY, d in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(e) = walk_extensions(first, &d) {
                proptest::prop_assert!(e.offset <= d.len());
            }
        }
    }
}
