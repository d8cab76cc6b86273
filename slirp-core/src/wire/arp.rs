//! ARP for Ethernet and IPv4 (RFC 826).

use super::ethernet::EthernetAddress;
use super::{read_ip, read_u16, write_u16, Error, Result};
use core::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ArpOperation {
    /// 1.
    Request,
    /// 2.
    Reply,
}

/// A view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// A view of a buffer holding at least the fixed Ethernet/IPv4 ARP packet.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The length gate. Only Ethernet/IPv4 ARP is understood, so the gate is its fixed size.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Hardware type.
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }
    /// Protocol type.
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }
    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[4]
    }
    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[5]
    }
    /// Operation code.
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 6)
    }
    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[8..14])
    }
    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), 14)
    }
    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[18..24])
    }
    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), 24)
    }
}

/// An Ethernet/IPv4 ARP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IP.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in requests).
    pub target_hardware_addr: EthernetAddress,
    /// Target IP.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a packet; anything but Ethernet/IPv4 request or reply is `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        p.check_len()?;
        if p.hardware_type() != 1 || p.protocol_type() != 0x0800 || p.hardware_len() != 6 || p.protocol_len() != 4 {
            return Err(Error::Malformed);
        }
        let operation = match p.operation() {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            _ => return Err(Error::Malformed),
        };
        Ok(ArpRepr {
            operation,
            source_hardware_addr: p.source_hardware_addr(),
            source_protocol_addr: p.source_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    /// Length of the emitted packet.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet into the first 28 bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        write_u16(buf, 0, 1);
        write_u16(buf, 2, 0x0800);
        buf[4] = 6;
        buf[5] = 4;
        write_u16(buf, 6, if self.operation == ArpOperation::Request { 1 } else { 2 });
        buf[8..14].copy_from_slice(&self.source_hardware_addr.0);
        buf[14..18].copy_from_slice(&self.source_protocol_addr.octets());
        buf[18..24].copy_from_slice(&self.target_hardware_addr.0);
        buf[24..28].copy_from_slice(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let repr = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress([0x52, 0x55, 10, 0, 2, 2]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 2, 2),
            target_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 2, 15),
        };
        let mut buf = [0u8; PACKET_LEN];
        repr.emit(&mut buf);
        let p = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn rejects_short_and_foreign() {
        assert_eq!(ArpPacket::new_checked(&[0u8; 27][..]).err(), Some(Error::Truncated));
        let mut buf = [0u8; PACKET_LEN];
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress::ZERO,
            source_protocol_addr: Ipv4Addr::UNSPECIFIED,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: Ipv4Addr::UNSPECIFIED,
        }
        .emit(&mut buf);
        buf[7] = 3; // RARP request
        assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&buf[..])), Err(Error::Malformed));
        buf[7] = 1;
        buf[5] = 16; // IPv6-sized protocol address
        assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&buf[..])), Err(Error::Malformed));
    }
}
