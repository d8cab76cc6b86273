//! Link offloads: checksum and TCP segmentation work the guest link does for us.
//!
//! A virtual link between two stacks on one machine never corrupts a frame and has no wire MTU
//! to respect: a Linux TAP opened with `IFF_VNET_HDR`, or a virtio-net device, lets both sides
//! skip transport checksums and exchange TCP "super-frames" of up to 64 KiB that stand for many
//! MSS-sized segments. That removes most of the per-frame cost at MTU 1500.
//!
//! - Guest → engine: pass what the link says about a frame with
//!   [`Slirp::handle_guest_frame_offloaded`](crate::Slirp::handle_guest_frame_offloaded). A frame
//!   with a trusted or partial checksum skips transport-checksum verification; TCP super-frames
//!   (IP datagrams longer than the MTU) need nothing special.
//! - Engine → guest: declare what the link finishes with
//!   [`Slirp::set_guest_offload`](crate::Slirp::set_guest_offload); each frame then says what it
//!   needs with [`TxFrame::offload`](crate::TxFrame::offload), as a virtio-net header if wanted.
//!
//! Only TCP data segments use transmit offloads; everything else leaves complete.

use crate::wire::ethernet::HEADER_LEN as ETH_LEN;
use crate::wire::virtio::{self, VirtioNetHdr};

/// What the guest link does for guest-bound frames (negotiated with the guest: on a Linux TAP,
/// `IFF_VNET_HDR` frames written with a virtio-net header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GuestOffload {
    /// The link (or the guest) finishes TCP checksums: data segments may carry only the
    /// pseudo-header sum.
    pub checksum: bool,
    /// The link takes TCP super-frames of up to 64 KiB together with the segment size to split
    /// them at. [`Slirp::set_guest_offload`](crate::Slirp::set_guest_offload) uses it only
    /// together with `checksum`.
    pub segmentation: bool,
}

/// What the guest link vouches for about a frame's transport (TCP/UDP) checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RxChecksum {
    /// Nothing: verify it (every link without offloads).
    #[default]
    Unverified,
    /// The checksum was verified by the sender's stack or device, or it is partial (left to the
    /// link to finish, `NEEDS_CSUM`): either way the bytes are what the guest sent, and the
    /// field must not be checked.
    Trusted,
}

impl RxChecksum {
    /// What a virtio-net header says: `NEEDS_CSUM` or `DATA_VALID` → trusted.
    pub fn from_virtio(hdr: &VirtioNetHdr) -> RxChecksum {
        if hdr.flags & (virtio::FLAG_NEEDS_CSUM | virtio::FLAG_DATA_VALID) != 0 {
            RxChecksum::Trusted
        } else {
            RxChecksum::Unverified
        }
    }
}

/// What one guest-bound frame needs from the link (see [`GuestOffload`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TxOffload {
    /// The transport checksum is partial: finish it by summing from `start` (bytes from the
    /// start of the frame) to the end and storing the complement at `start + offset`.
    pub checksum: Option<ChecksumSpan>,
    /// A TCP super-frame: split its payload into segments of this many bytes.
    pub gso_size: Option<u16>,
    /// Length of the Ethernet, IP and TCP headers (copied in front of every segment).
    pub header_len: u16,
    /// The segment is TCP over IPv6 (a super-frame is `GSO_TCPV6`).
    pub ipv6: bool,
}

/// Where a partial checksum is finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ChecksumSpan {
    /// Where summing starts, from the start of the frame.
    pub start: u16,
    /// Where the checksum field is, from `start`.
    pub offset: u16,
}

impl TxOffload {
    /// The virtio-net header a TAP with `IFF_VNET_HDR` (or a virtio-net device) wants in front
    /// of the frame.
    pub fn virtio_net_hdr(&self) -> VirtioNetHdr {
        let mut h = VirtioNetHdr::default();
        if let Some(c) = self.checksum {
            h.flags = virtio::FLAG_NEEDS_CSUM;
            h.csum_start = c.start;
            h.csum_offset = c.offset;
        }
        if let Some(size) = self.gso_size {
            h.gso_type = if self.ipv6 { virtio::GSO_TCPV6 } else { virtio::GSO_TCPV4 };
            h.gso_size = size;
            h.hdr_len = self.header_len;
        }
        h
    }

    /// Finishes what the frame leaves to the link, in software, for a link that cannot (a
    /// capture file, a link that lost its offloads): the checksum only. A super-frame stays one
    /// frame.
    pub fn finish_checksum(&self, frame: &mut [u8]) {
        let Some(c) = self.checksum else { return };
        let (start, at) = (usize::from(c.start), usize::from(c.start) + usize::from(c.offset));
        // The segment ends where its IP datagram does, not at the frame's zero padding.
        let end = if self.ipv6 {
            match frame.get(ETH_LEN + 4..ETH_LEN + 6) {
                Some(b) => ETH_LEN + 40 + usize::from(u16::from_be_bytes([b[0], b[1]])),
                None => return,
            }
        } else {
            match frame.get(ETH_LEN + 2..ETH_LEN + 4) {
                Some(b) => ETH_LEN + usize::from(u16::from_be_bytes([b[0], b[1]])),
                None => return,
            }
        };
        if at + 2 > end || end > frame.len() {
            return;
        }
        // The field holds the pseudo-header sum: summing over it includes it.
        let sum = crate::wire::checksum::finish(crate::wire::checksum::sum(&frame[start..end]));
        frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

/// How the guest-bound queue remembers a frame's offload: in its record tag.
pub(crate) mod tag {
    /// The TCP checksum is partial.
    pub(crate) const CSUM_TCP: u32 = 1 << 16;

    pub(crate) fn encode(gso_size: u16, checksum_partial: bool) -> u32 {
        u32::from(gso_size) | if checksum_partial { CSUM_TCP } else { 0 }
    }
}

/// The offload of a queued frame from its tag and bytes.
pub(crate) fn decode(tag: u32, frame: &[u8]) -> TxOffload {
    if tag & tag::CSUM_TCP == 0 {
        return TxOffload::default();
    }
    // Frames with a tag are our own TCP segments: Ethernet, then IPv4 with its header length
    // (or the 40-byte IPv6 header), then TCP with its data offset. Read defensively all the same.
    let ipv6 = frame.get(12..14) == Some(&[0x86, 0xdd][..]);
    let ihl = if ipv6 { 40 } else { frame.get(ETH_LEN).map_or(20, |b| usize::from(b & 0x0f) * 4) };
    let l4 = ETH_LEN + ihl;
    let thl = frame.get(l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4);
    let gso = (tag & 0xffff) as u16;
    TxOffload {
        checksum: Some(ChecksumSpan { start: l4 as u16, offset: 16 }),
        gso_size: (gso != 0).then_some(gso),
        header_len: (l4 + thl) as u16,
        ipv6,
    }
}
