//! The virtio-net packet header (`struct virtio_net_hdr`, virtio 1.x section 5.1.6), as a Linux
//! TAP opened with `IFF_VNET_HDR` and a virtio-net device put in front of every frame.
//!
//! It carries the two offloads that make a virtual link fast: checksum offload (a frame whose
//! transport checksum holds only the pseudo-header sum, to be finished by whoever needs it) and
//! segmentation offload (one TCP "super-frame" of up to 64 KiB standing for many MSS-sized
//! segments). The 10-byte legacy layout is used; fields are little-endian (virtio 1.x, and what a
//! TAP uses on a little-endian host or after `TUNSETVNETLE`).

use super::{Error, Result};

/// Length of the header.
pub const HEADER_LEN: usize = 10;

/// `flags`: the transport checksum is partial: sum from `csum_start`, store at
/// `csum_start + csum_offset`.
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `flags`: the frame's checksums were verified by the sender.
pub const FLAG_DATA_VALID: u8 = 2;

/// `gso_type`: not a super-frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: an IPv4 TCP super-frame.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: an IPv4 UDP super-frame (UFO, legacy).
pub const GSO_UDP: u8 = 3;
/// `gso_type`: an IPv6 TCP super-frame.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the TCP super-frame uses ECN (CWR must go on the first segment only).
pub const GSO_ECN: u8 = 0x80;

/// A parsed virtio-net header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VirtioNetHdr {
    /// [`FLAG_NEEDS_CSUM`], [`FLAG_DATA_VALID`].
    pub flags: u8,
    /// [`GSO_NONE`], [`GSO_TCPV4`], ... possibly with [`GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers to copy in front of every segment (a hint; may be 0).
    pub hdr_len: u16,
    /// Payload bytes per segment of a super-frame.
    pub gso_size: u16,
    /// Where the checksummed part starts, from the start of the frame.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// Reads the header from the first [`HEADER_LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<VirtioNetHdr> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(Error::Truncated)?;
        let le = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        Ok(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// Whether the frame is a segmentation-offload super-frame.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let h = VirtioNetHdr {
            flags: FLAG_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let b = h.to_bytes();
        assert_eq!(b, [1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0]);
        assert_eq!(VirtioNetHdr::parse(&b), Ok(h));
        assert!(h.is_gso());
        assert!(!VirtioNetHdr { gso_type: GSO_ECN, ..h }.is_gso());
    }

    #[test]
    fn short_input_is_truncated() {
        assert_eq!(VirtioNetHdr::parse(&[0u8; 9]), Err(Error::Truncated));
    }
}
