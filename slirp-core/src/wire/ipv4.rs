//! IPv4 headers (RFC 791).

use super::checksum;
use super::{read_ip, read_u16, write_u16, Error, Result};
use core::net::Ipv4Addr;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest IPv4 datagram.
pub const MAX_DATAGRAM: usize = 65535;

/// Flag: don't fragment.
pub const FLAG_DF: u16 = 0x4000;
/// Flag: more fragments.
pub const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// The protocol field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IpProtocol {
    /// 1.
    Icmp,
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// 58 (ICMPv6, RFC 4443).
    Icmpv6,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            o => IpProtocol::Unknown(o),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> u8 {
        match v {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(o) => o,
        }
    }
}

/// A view of an IPv4 datagram.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// A view that passed [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The length gate: version 4, header length within 20..=total length, total length within
    /// the buffer. Bytes after the total length (Ethernet padding) are allowed and ignored by
    /// every accessor.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len() as usize;
        let tl = self.total_len() as usize;
        if hl < HEADER_LEN || tl < hl {
            return Err(Error::Malformed);
        }
        if b.len() < tl {
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
    /// Header length in bytes.
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[0] & 0x0f) * 4
    }
    /// Type of service / DSCP+ECN byte.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Total length of the datagram (header and payload).
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }
    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), 6) & FLAG_DF != 0
    }
    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), 6) & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), 6) & OFFSET_MASK) << 3
    }
    /// Whether this datagram is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), 6) & (FLAG_MF | OFFSET_MASK) != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }
    /// Protocol.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[9])
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 10)
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), 12)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), 16)
    }
    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        let hl = self.header_len() as usize;
        checksum::verifies(checksum::sum(&self.buffer.as_ref()[..hl]))
    }
    /// Options bytes (empty without options).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len() as usize]
    }
    /// The datagram's payload, exactly `total_len - header_len` bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len() as usize..self.total_len() as usize]
    }
    /// The datagram itself (header and payload, without trailing padding).
    pub fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets identification.
    pub fn set_ident(&mut self, id: u16) {
        write_u16(self.buffer.as_mut(), 4, id);
    }
    /// Sets the flags and fragment offset (offset in bytes, a multiple of 8).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        write_u16(self.buffer.as_mut(), 6, v);
    }
    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), 2, len);
    }
    /// Recomputes the header checksum.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len() as usize;
        write_u16(self.buffer.as_mut(), 10, 0);
        let c = checksum::data(&self.buffer.as_ref()[..hl]);
        write_u16(self.buffer.as_mut(), 10, c);
    }
    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len() as usize, self.total_len() as usize);
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// A parsed IPv4 header (options are not represented: the core strips them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Type of service.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
    /// More-fragments flag.
    pub more_frags: bool,
    /// Fragment offset in bytes.
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Parses a checked packet, verifying the header checksum when `verify` is set.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, verify: bool) -> Result<Self> {
        p.check_len()?;
        if verify && !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() as usize - p.header_len() as usize,
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
        })
    }

    /// Length of the emitted header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header (with checksum) into the start of `buf`. `payload_len` must be
    /// at most 65515 so the total fits the field; larger values are clamped.
    pub fn emit(&self, buf: &mut [u8]) {
        let total = (HEADER_LEN + self.payload_len).min(MAX_DATAGRAM) as u16;
        buf[0] = 0x45;
        buf[1] = self.tos;
        write_u16(buf, 2, total);
        write_u16(buf, 4, self.ident);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_frag(self.dont_frag, self.more_frags, self.frag_offset);
        let b = p.into_inner();
        b[8] = self.ttl;
        b[9] = self.protocol.into();
        b[12..16].copy_from_slice(&self.src_addr.octets());
        b[16..20].copy_from_slice(&self.dst_addr.octets());
        Ipv4Packet::new_unchecked(b).fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 2, 15),
            dst_addr: Ipv4Addr::new(10, 0, 2, 2),
            protocol: IpProtocol::Icmp,
            payload_len: 8,
            ttl: 64,
            tos: 0x10,
            ident: 0x1234,
            dont_frag: false,
            more_frags: true,
            frag_offset: 1480,
        }
    }

    #[test]
    fn round_trip() {
        let r = repr();
        let mut buf = [0u8; 28];
        r.emit(&mut buf);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p, true).unwrap(), r);
        assert!(p.is_fragment());
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn padding_is_ignored_and_truncation_rejected() {
        let r = repr();
        let mut buf = [0u8; 46];
        r.emit(&mut buf);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
        assert_eq!(p.datagram().len(), 28);
        assert_eq!(Ipv4Packet::new_checked(&buf[..27]).err(), Some(Error::Truncated));
    }

    #[test]
    fn bad_headers() {
        let mut buf = [0u8; 28];
        repr().emit(&mut buf);
        let mut v6 = buf;
        v6[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&v6[..]).err(), Some(Error::Malformed));
        let mut ihl = buf;
        ihl[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&ihl[..]).err(), Some(Error::Malformed));
        let mut tl = buf;
        tl[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&tl[..]).err(), Some(Error::Malformed));
        let mut ck = buf;
        ck[10] ^= 1;
        let p = Ipv4Packet::new_checked(&ck[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, true), Err(Error::Checksum));
    }

    #[test]
    fn protocol_numbers() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
    }
}
