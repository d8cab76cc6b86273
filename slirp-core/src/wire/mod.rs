//! Wire formats: zero-copy views and small parse/emit representations.
//!
//! Each packet type is a view over bytes (`XPacket<T: AsRef<[u8]>>`). `new_checked` runs the one
//! length gate (`check_len`); once it passes, no accessor can read out of bounds. Where the core
//! needs meaning it parses into a small `Repr`; `Repr::emit` writes into a buffer of exactly
//! `buffer_len()` bytes. Untrusted bytes always go through `new_checked`.

pub mod arp;
pub mod checksum;
pub mod dhcp;
pub mod dhcpv6;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod virtio;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use dhcp::{DhcpMessageType, DhcpPacket, DhcpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use icmpv6::{Icmpv6Packet, NdpRepr};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr};
pub use tcp::{SeqNumber, TcpControl, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};
pub use virtio::VirtioNetHdr;

use core::fmt;

/// Why bytes could not be read as a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// Fewer bytes than the header or a length field says.
    Truncated,
    /// A field holds a value the format does not allow.
    Malformed,
    /// The checksum does not verify.
    Checksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "bad checksum",
        })
    }
}

impl core::error::Error for Error {}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Whether checksums of guest input are verified. Under `cfg(fuzzing)` they are not, so the
/// fuzzer reaches the code behind them.
pub(crate) const VERIFY_CHECKSUMS: bool = !cfg!(fuzzing);

pub(crate) fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn write_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn write_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn read_ip(b: &[u8], at: usize) -> core::net::Ipv4Addr {
    core::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}
