//! UDP (RFC 768).

use super::checksum;
use super::ipv4::IpProtocol;
use super::{read_u16, write_u16, Error, Result};
use core::net::IpAddr;
#[cfg(test)]
use core::net::Ipv4Addr;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// A view that passed the length gate.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// The length gate: header present, length field within 8..=buffer. A length field shorter
    /// than the buffer truncates the datagram (RFC 768); a longer one is `Truncated`.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }
    /// Length field (header and payload).
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }
    /// Whether the length field is zero (never true after the gate).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checksum field (0 means none).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 6)
    }
    /// Payload, as long as the length field says.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Whether the checksum verifies. Over IPv4 a zero checksum means "not computed" and
    /// passes; over IPv6 the checksum is mandatory (RFC 8200 §8.1) and a zero one fails.
    pub fn verify_checksum(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> bool {
        let (src, dst) = (src.into(), dst.into());
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let l = self.len();
        let acc = checksum::pseudo_header(src, dst, IpProtocol::Udp, u32::from(l))
            + checksum::sum(&self.buffer.as_ref()[..l as usize]);
        checksum::verifies(acc)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Computes and writes the checksum over `len()` bytes.
    pub fn fill_checksum(&mut self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        let l = self.len();
        write_u16(self.buffer.as_mut(), 6, 0);
        let acc = checksum::pseudo_header(src, dst, IpProtocol::Udp, u32::from(l))
            + checksum::sum(&self.buffer.as_ref()[..l as usize]);
        let c = match checksum::finish(acc) {
            0 => 0xffff, // RFC 768: a computed zero is sent as all ones.
            c => c,
        };
        write_u16(self.buffer.as_mut(), 6, c);
    }
    /// Payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
}

/// A parsed UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Parses a datagram, verifying the checksum against the pseudo-header when `verify` is set.
    pub fn parse<T: AsRef<[u8]>>(
        p: &UdpPacket<T>,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        verify: bool,
    ) -> Result<Self> {
        p.check_len()?;
        if verify && !p.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(UdpRepr { src_port: p.src_port(), dst_port: p.dst_port() })
    }

    /// Length of the emitted header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header for a payload of `payload_len` bytes already in place after it in
    /// `buf`, then the checksum over header and payload.
    pub fn emit(&self, buf: &mut [u8], src: impl Into<IpAddr>, dst: impl Into<IpAddr>, payload_len: usize) {
        let len = (HEADER_LEN + payload_len).min(u16::MAX as usize) as u16;
        write_u16(buf, 0, self.src_port);
        write_u16(buf, 2, self.dst_port);
        write_u16(buf, 4, len);
        UdpPacket::new_unchecked(&mut buf[..len as usize]).fill_checksum(src, dst);
    }

    /// Writes the 8-byte header for a datagram whose payload `body` lies elsewhere (the engine
    /// sends header and payload as two parts, without copying the payload next to the header),
    /// checksum over the pseudo-header, the header and `body` included.
    pub fn emit_header(
        &self,
        head: &mut [u8; HEADER_LEN],
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        body: &[u8],
    ) {
        let len = (HEADER_LEN + body.len()).min(u16::MAX as usize) as u16;
        write_u16(head, 0, self.src_port);
        write_u16(head, 2, self.dst_port);
        write_u16(head, 4, len);
        write_u16(head, 6, 0);
        let acc = checksum::pseudo_header(src, dst, IpProtocol::Udp, u32::from(len))
            + checksum::sum(head)
            + checksum::sum(body);
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        let c = match checksum::finish(acc) {
            0 => 0xffff,
            c => c,
        };
        write_u16(head, 6, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 255);

    #[test]
    fn round_trip() {
        let r = UdpRepr { src_port: 67, dst_port: 68 };
        let mut buf = [0u8; 13];
        buf[8..].copy_from_slice(b"hello");
        r.emit(&mut buf, SRC, DST, 5);
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(UdpRepr::parse(&p, SRC, DST, true).unwrap(), r);
        assert_eq!(p.payload(), b"hello");
        assert!(UdpRepr::parse(&p, DST, SRC, true).is_ok(), "addresses swap keeps the sum");
        assert_eq!(UdpRepr::parse(&p, Ipv4Addr::new(1, 1, 1, 1), DST, true), Err(Error::Checksum));
    }

    #[test]
    fn zero_checksum_accepted_and_lengths() {
        let mut buf = [0u8, 1, 0, 2, 0, 10, 0, 0, 1, 2, 3, 4];
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(p.payload(), &[1, 2], "length field truncates");
        buf[5] = 13;
        assert_eq!(UdpPacket::new_checked(&buf[..]).err(), Some(Error::Truncated));
        buf[5] = 7;
        assert_eq!(UdpPacket::new_checked(&buf[..]).err(), Some(Error::Malformed));
    }
}
