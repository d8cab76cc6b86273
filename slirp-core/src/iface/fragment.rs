//! IPv4 output: Ethernet framing and fragmentation to the link MTU, and the source check.

use crate::stats::{DropReason, Stats};
use crate::storage::FrameQueue;
use crate::time::Instant;
use crate::wire::ethernet::{HEADER_LEN as ETH_LEN, MIN_FRAME_LEN};
use crate::wire::ipv4::HEADER_LEN as IP_LEN;
use crate::wire::{EthernetFrame, EthernetRepr, Ipv4Repr};
use core::net::Ipv4Addr;

/// Whether `addr` may appear as the source of a datagram we answer (RFC 1812 §5.3.7 martians).
pub fn is_unicast_source(addr: Ipv4Addr) -> bool {
    !(addr.is_unspecified()
        || addr.is_broadcast()
        || addr.is_multicast()
        || addr.is_loopback()
        || addr.octets()[0] >= 240)
}

/// Copies bytes `[off, off + dst.len())` of the concatenation `head ‖ body` into `dst`.
pub(crate) fn copy_range(head: &[u8], body: &[u8], off: usize, dst: &mut [u8]) {
    let mut written = 0;
    if off < head.len() {
        let n = (head.len() - off).min(dst.len());
        dst[..n].copy_from_slice(&head[off..off + n]);
        written = n;
    }
    if written < dst.len() {
        let boff = off + written - head.len();
        let n = dst.len() - written;
        dst[written..].copy_from_slice(&body[boff..boff + n]);
    }
}

/// Writes the datagram `repr` (payload `head ‖ body`) as one or more Ethernet frames between the
/// addresses of `eth` into `tx`,
/// fragmenting to `mtu` (RFC 791 §3.2). Frames shorter than 60 bytes are zero-padded. Returns
/// false (and counts the drop) when the queue had no room for every fragment; fragments already
/// queued still go out, and the receiver's reassembly timeout cleans up, as on any lossy link.
pub fn emit_frames(
    tx: &mut FrameQueue<'_>,
    stats: &mut Stats,
    mtu: usize,
    eth: &EthernetRepr,
    repr: &Ipv4Repr,
    head: &[u8],
    body: &[u8],
) -> bool {
    let total = head.len() + body.len();
    let max_payload = mtu.saturating_sub(IP_LEN);
    let chunk = if IP_LEN + total <= mtu {
        total.max(1)
    } else {
        if repr.dont_frag {
            stats.drop(DropReason::TxBufferTooSmall);
            return false;
        }
        max_payload & !7
    };
    if chunk == 0 {
        return false;
    }
    let frames = total.div_ceil(chunk).max(1);
    if frames > 1 {
        stats.fragmented += 1;
    }
    let mut off = 0;
    loop {
        let n = (total - off).min(chunk);
        let more = off + n < total;
        let frame_len = (ETH_LEN + IP_LEN + n).max(MIN_FRAME_LEN);
        let mut ip = *repr;
        ip.payload_len = n;
        ip.more_frags = more;
        ip.frag_offset = off as u16;
        let res = tx.push_with(frame_len, 0, Instant::ZERO, |buf| {
            eth.emit(&mut EthernetFrame::new_unchecked(&mut *buf));
            ip.emit(&mut buf[ETH_LEN..]);
            copy_range(head, body, off, &mut buf[ETH_LEN + IP_LEN..ETH_LEN + IP_LEN + n]);
            frame_len
        });
        if res.is_err() {
            stats.drop(DropReason::TxQueueFull);
            return false;
        }
        off += n;
        if !more {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EtherType, EthernetAddress, IpProtocol, Ipv4Packet};
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn copy_range_spans_head_and_body() {
        let mut d = [0u8; 4];
        copy_range(&[1, 2, 3], &[4, 5, 6], 1, &mut d);
        assert_eq!(d, [2, 3, 4, 5]);
        let mut d = [0u8; 2];
        copy_range(&[1, 2, 3], &[4, 5, 6], 4, &mut d);
        assert_eq!(d, [5, 6]);
    }

    #[test]
    fn fragments_3000_bytes_as_1480_1480_40_checklist_29() {
        let mut tx = FrameQueue::new(vec![0u8; 16 * 1024]);
        let mut stats = Stats::default();
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 2, 2),
            dst_addr: Ipv4Addr::new(10, 0, 2, 15),
            protocol: IpProtocol::Udp,
            payload_len: 0,
            ttl: 64,
            tos: 0,
            ident: 77,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        let body: Vec<u8> = (0..2992u32).map(|i| i as u8).collect();
        let head = [0xabu8; 8];
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        assert!(emit_frames(
            &mut tx,
            &mut stats,
            1500,
            &EthernetRepr { src_addr: mac, dst_addr: mac, ethertype: EtherType::Ipv4 },
            &repr,
            &head,
            &body
        ));
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Some(r) = tx.peek() {
            let p = Ipv4Packet::new_checked(&r.data[ETH_LEN..]).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(p.ident(), 77);
            assert_eq!(p.frag_offset() as usize, got.len());
            sizes.push((p.payload().len(), p.more_frags()));
            got.extend_from_slice(p.payload());
            tx.pop();
        }
        assert_eq!(sizes, vec![(1480, true), (1480, true), (40, false)]);
        let mut want = head.to_vec();
        want.extend_from_slice(&body);
        assert_eq!(got, want);
        assert_eq!(stats.fragmented, 1);
    }

    #[test]
    fn martian_sources() {
        assert!(is_unicast_source(Ipv4Addr::new(10, 0, 2, 15)));
        for a in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(240, 0, 0, 1),
        ] {
            assert!(!is_unicast_source(a), "{a}");
        }
    }
}
