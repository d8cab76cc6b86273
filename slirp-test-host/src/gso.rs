//! A software offloading link: what a Linux TAP (or a virtio-net device) does with a
//! guest-bound frame and its [`TxOffload`] before an MTU-bound guest sees it.
//!
//! - No offload: the frame passes through unchanged.
//! - A partial checksum only: the checksum is finished (summed from `start` to the end of the
//!   IPv4 datagram, the field holding the pseudo-header sum, as virtio's `NEEDS_CSUM` says); the
//!   frame keeps its length, Ethernet padding included.
//! - A TCP super-frame (`gso_size`): split as Linux TCP GSO does (`tcp_gso_segment`,
//!   `inet_gso_segment`): each segment gets a copy of the Ethernet, IPv4 and TCP headers and at
//!   most `gso_size` payload bytes; the IPv4 total length is fixed, the IP id incremented per
//!   segment and the header checksum recomputed; the TCP sequence number advances by the
//!   payload offset; FIN and PSH stay on the last segment only, CWR on the first only; the
//!   pseudo-header sum left in the checksum field is adjusted for each segment's length (as
//!   Linux does: a wrong sum from the sender stays wrong, so the guest catches it) and the
//!   checksum finished per segment. Other header fields (window, options, urgent pointer) are
//!   copied as they are.
//!
//! A frame with an offload that cannot be what it claims (not IPv4 TCP, truncated, fragmented,
//! a checksum span outside the datagram or not on the TCP checksum of a super-frame, a segment
//! size of zero) is **dropped**, as the Linux TAP driver drops a frame whose virtio-net header
//! does not match it; [`segment_offloaded`] says why in [`Segmented::Dropped`].
//!
//! The checksum arithmetic here is written independently of `slirp_core::wire::checksum` on
//! purpose: this module stands in for the guest's kernel, so a mistake in the core's checksum
//! code must not be repeated by the thing that checks it.

use slirp_core::TxOffload;

const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Why a frame with an offload was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than its headers or than its IPv4 total length says, or a checksum span past the
    /// end of the datagram.
    Truncated,
    /// Not an IPv4 datagram (for a super-frame: not an IPv4 TCP segment), or a bad IPv4 or TCP
    /// header length.
    NotIpv4Tcp,
    /// A fragment cannot be a super-frame.
    Fragment,
    /// A super-frame whose checksum span is not its TCP checksum.
    SpanMismatch,
    /// A segment size of zero.
    ZeroGsoSize,
}

/// What [`segment_offloaded`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segmented {
    /// Nothing to do: the frame went out unchanged.
    Unchanged,
    /// The partial checksum was finished; one frame went out.
    ChecksumFinished,
    /// A frame marked for segmentation went out as `segments` frames (1 if its payload fit one
    /// segment).
    Split {
        /// Frames produced.
        segments: usize,
        /// TCP payload bytes of the frame as it came.
        payload: usize,
        /// The segment size it was split at.
        gso_size: u16,
    },
    /// The frame was dropped: nothing went out.
    Dropped(Malformed),
}

/// Counters of what the offloading link did, for tests to check super-frames really flowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GsoStats {
    /// Frames that carried an offload (frames without one are not counted).
    pub offloaded: u64,
    /// Frames whose checksum was finished and that went out as one frame.
    pub checksums_finished: u64,
    /// Super-frames: marked for segmentation with a payload larger than the segment size.
    pub super_frames: u64,
    /// Frames the super-frames were split into.
    pub segments: u64,
    /// Payload bytes carried in super-frames.
    pub super_payload_bytes: u64,
    /// Frames marked for segmentation whose payload fit one segment (passed as one, finished).
    pub gso_single: u64,
    /// The largest super-frame payload seen.
    pub largest_payload: usize,
    /// The smallest segment size a super-frame asked for (0: none seen).
    pub smallest_gso_size: u16,
    /// The largest segment size a super-frame asked for.
    pub largest_gso_size: u16,
    /// Frames dropped as malformed.
    pub dropped: u64,
}

impl GsoStats {
    /// Counts one result of [`segment_offloaded`].
    pub fn record(&mut self, result: &Segmented) {
        match *result {
            Segmented::Unchanged => return,
            Segmented::ChecksumFinished => self.checksums_finished += 1,
            Segmented::Split { segments, payload, gso_size } => {
                if payload > usize::from(gso_size) {
                    self.super_frames += 1;
                    self.segments += segments as u64;
                    self.super_payload_bytes += payload as u64;
                    self.largest_payload = self.largest_payload.max(payload);
                    self.largest_gso_size = self.largest_gso_size.max(gso_size);
                    self.smallest_gso_size =
                        if self.smallest_gso_size == 0 { gso_size } else { self.smallest_gso_size.min(gso_size) };
                } else {
                    self.gso_single += 1;
                }
            }
            Segmented::Dropped(_) => self.dropped += 1,
        }
        self.offloaded += 1;
    }
}

/// Turns one guest-bound `frame` and what it asks of the link (`offload`, from
/// [`TxFrame::offload`](slirp_core::TxFrame::offload)) into the frames a Linux TAP would hand
/// an MTU-bound guest, appended to `out` (see the [module documentation](self)). Never panics;
/// a malformed frame with an offload adds nothing to `out`.
pub fn segment_offloaded(frame: &[u8], offload: &TxOffload, out: &mut Vec<Vec<u8>>) -> Segmented {
    match (offload.checksum, offload.gso_size) {
        (None, None) => {
            out.push(frame.to_vec());
            Segmented::Unchanged
        }
        (Some(span), None) => {
            let (start, at) = (usize::from(span.start), usize::from(span.start) + usize::from(span.offset));
            let end = match ipv4_end(frame) {
                Ok(end) => end,
                Err(e) => return Segmented::Dropped(e),
            };
            if start > end || at + 2 > end {
                return Segmented::Dropped(Malformed::Truncated);
            }
            let mut f = frame.to_vec();
            let sum = !fold(sum(&f[start..end]));
            f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
            out.push(f);
            Segmented::ChecksumFinished
        }
        (span, Some(gso_size)) => split(frame, span.map(|s| (s.start, s.offset)), gso_size, out),
    }
}

/// Where the IPv4 datagram in `frame` ends (its padding excluded).
fn ipv4_end(frame: &[u8]) -> Result<usize, Malformed> {
    let Some(head) = frame.get(..ETH_LEN + 20) else { return Err(Malformed::Truncated) };
    if be16(head, 12) != ETHERTYPE_IPV4 || head[ETH_LEN] >> 4 != 4 {
        return Err(Malformed::NotIpv4Tcp);
    }
    let ihl = usize::from(head[ETH_LEN] & 0x0f) * 4;
    let total = usize::from(be16(head, ETH_LEN + 2));
    if ihl < 20 || total < ihl {
        return Err(Malformed::NotIpv4Tcp);
    }
    if ETH_LEN + total > frame.len() {
        return Err(Malformed::Truncated);
    }
    Ok(ETH_LEN + total)
}

fn split(frame: &[u8], span: Option<(u16, u16)>, gso_size: u16, out: &mut Vec<Vec<u8>>) -> Segmented {
    if gso_size == 0 {
        return Segmented::Dropped(Malformed::ZeroGsoSize);
    }
    let ip_end = match ipv4_end(frame) {
        Ok(end) => end,
        Err(e) => return Segmented::Dropped(e),
    };
    let l4 = ETH_LEN + usize::from(frame[ETH_LEN] & 0x0f) * 4;
    if frame[ETH_LEN + 9] != PROTO_TCP {
        return Segmented::Dropped(Malformed::NotIpv4Tcp);
    }
    if be16(frame, ETH_LEN + 6) & 0x3fff != 0 {
        return Segmented::Dropped(Malformed::Fragment);
    }
    if l4 + 20 > ip_end {
        return Segmented::Dropped(Malformed::Truncated);
    }
    let thl = usize::from(frame[l4 + 12] >> 4) * 4;
    let hdr_end = l4 + thl;
    if thl < 20 {
        return Segmented::Dropped(Malformed::NotIpv4Tcp);
    }
    if hdr_end > ip_end {
        return Segmented::Dropped(Malformed::Truncated);
    }
    let tcp_len = ip_end - l4;
    // The pseudo-header sum for the whole super-frame: the partial checksum the sender left, or
    // (no checksum offload, as Linux does then) computed here.
    let pseudo = match span {
        Some((start, 16)) if usize::from(start) == l4 => be16(frame, l4 + 16),
        Some(_) => return Segmented::Dropped(Malformed::SpanMismatch),
        None => pseudo_sum(frame, tcp_len),
    };
    let payload = &frame[hdr_end..ip_end];
    let seq = u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]]);
    let ip_id = be16(frame, ETH_LEN + 4);
    let flags = frame[l4 + 13];
    let size = usize::from(gso_size);
    let count = payload.len().div_ceil(size).max(1);
    for i in 0..count {
        let chunk = &payload[(i * size).min(payload.len())..((i + 1) * size).min(payload.len())];
        let mut seg = Vec::with_capacity(hdr_end + chunk.len());
        seg.extend_from_slice(&frame[..hdr_end]);
        seg.extend_from_slice(chunk);
        // IPv4: length, id, header checksum.
        let ip_len = (seg.len() - ETH_LEN) as u16;
        seg[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&ip_len.to_be_bytes());
        seg[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&ip_id.wrapping_add(i as u16).to_be_bytes());
        seg[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        let ip_sum = !fold(sum(&seg[ETH_LEN..l4]));
        seg[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&ip_sum.to_be_bytes());
        // TCP: sequence number, flags, checksum.
        seg[l4 + 4..l4 + 8].copy_from_slice(&seq.wrapping_add((i * size) as u32).to_be_bytes());
        let mut f = flags;
        if i + 1 < count {
            f &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            f &= !TCP_CWR;
        }
        seg[l4 + 13] = f;
        // The pseudo-header sum for this segment's length: take the whole length out (add its
        // one's complement), put this one in.
        let seg_tcp_len = (seg.len() - l4) as u16;
        let adjusted = fold(u64::from(pseudo) + u64::from(!(tcp_len as u16)) + u64::from(seg_tcp_len));
        seg[l4 + 16..l4 + 18].copy_from_slice(&adjusted.to_be_bytes());
        let tcp_sum = !fold(sum(&seg[l4..]));
        seg[l4 + 16..l4 + 18].copy_from_slice(&tcp_sum.to_be_bytes());
        out.push(seg);
    }
    Segmented::Split { segments: count, payload: payload.len(), gso_size }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The one's complement sum of `data` as 16-bit big-endian words (odd length: zero padded),
/// not folded.
fn sum(data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    let mut acc: u64 = chunks.by_ref().map(|c| u64::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (not complemented).
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The folded TCP pseudo-header sum of the IPv4 datagram in `frame` for a TCP length `len`.
fn pseudo_sum(frame: &[u8], len: usize) -> u16 {
    let addrs = &frame[ETH_LEN + 12..ETH_LEN + 20];
    fold(sum(addrs) + u64::from(PROTO_TCP) + len as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slirp_core::offload::ChecksumSpan;

    const HL: usize = 14 + 20 + 32; // Ethernet, IPv4, TCP with 12 bytes of options.
    const SEQ: u32 = 0xffff_f000; // wraps within a super-frame

    /// An Ethernet/IPv4/TCP frame with `payload`, TCP `flags`, IP id `id`, and a TCP
    /// checksum that is partial (the pseudo-header sum) or complete.
    fn tcp_frame(payload: &[u8], flags: u8, id: u16, partial: bool) -> Vec<u8> {
        let mut f = vec![0u8; HL];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[0x52, 0x55, 10, 0, 2, 2]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + 32 + payload.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[8] = 64;
        ip[9] = PROTO_TCP;
        ip[12..16].copy_from_slice(&[198, 51, 100, 20]);
        ip[16..20].copy_from_slice(&[10, 0, 2, 15]);
        let s = !fold(sum(ip));
        ip[10..12].copy_from_slice(&s.to_be_bytes());
        let tcp = &mut f[34..HL];
        tcp[0..2].copy_from_slice(&5001u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&50001u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&SEQ.to_be_bytes());
        tcp[8..12].copy_from_slice(&77u32.to_be_bytes());
        tcp[12] = 8 << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&1000u16.to_be_bytes());
        // Timestamps option: NOP NOP kind 8 len 10.
        tcp[20..24].copy_from_slice(&[1, 1, 8, 10]);
        tcp[24..28].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        f.extend_from_slice(payload);
        let tcp_len = f.len() - 34;
        let pseudo = pseudo_sum(&f, tcp_len);
        f[50..52].copy_from_slice(&pseudo.to_be_bytes());
        if !partial {
            let s = !fold(sum(&f[34..]));
            f[50..52].copy_from_slice(&s.to_be_bytes());
        }
        f
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 255) as u8).collect()
    }

    fn offload(gso: Option<u16>) -> TxOffload {
        TxOffload {
            checksum: Some(ChecksumSpan { start: 34, offset: 16 }),
            gso_size: gso,
            header_len: HL as u16,
            ipv6: false,
        }
    }

    /// Checks the IPv4 header checksum and the TCP checksum (over the datagram, not padding).
    fn verifies(f: &[u8]) -> (bool, bool) {
        let total = usize::from(be16(f, 16));
        let ip_ok = fold(sum(&f[14..34])) == 0xffff;
        let tcp_ok = fold(sum(&f[34..14 + total]) + u64::from(pseudo_sum(f, total - 20))) == 0xffff;
        (ip_ok, tcp_ok)
    }

    #[test]
    fn a_frame_without_offload_passes_unchanged() {
        let f = tcp_frame(&body(3000), 0x18, 9, false);
        let mut out = Vec::new();
        assert_eq!(segment_offloaded(&f, &TxOffload::default(), &mut out), Segmented::Unchanged);
        assert_eq!(out.len(), 1);
        assert!(out[0] == f, "frame changed");
        // Not even a checksum is touched, right or wrong.
        let mut bad = f.clone();
        bad[50] ^= 0xff;
        out.clear();
        segment_offloaded(&bad, &TxOffload::default(), &mut out);
        assert!(out[0] == bad, "frame changed");
    }

    #[test]
    fn a_partial_checksum_alone_is_finished_in_place_padding_kept() {
        let f = tcp_frame(&body(1000), 0x18, 9, true);
        assert_eq!(verifies(&f), (true, false), "partial before");
        let mut out = Vec::new();
        assert_eq!(segment_offloaded(&f, &offload(None), &mut out), Segmented::ChecksumFinished);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), f.len());
        assert_eq!(verifies(&out[0]), (true, true));
        assert!(out[0][..50] == f[..50] && out[0][52..] == f[52..], "only the checksum changes");
        assert!(out[0] == tcp_frame(&body(1000), 0x18, 9, false), "same as computed whole");
        let mut by_core = f.clone();
        offload(None).finish_checksum(&mut by_core);
        assert!(out[0] == by_core, "same as TxOffload::finish_checksum");

        // A one-byte segment padded to 60 bytes: the padding is kept and not summed.
        let mut small = tcp_frame(&[0x42], 0x18, 1, true);
        small.resize(small.len() + 9, 0xee);
        out.clear();
        segment_offloaded(&small, &offload(None), &mut out);
        assert_eq!(out[0].len(), small.len());
        assert_eq!(verifies(&out[0]), (true, true));
        assert!(out[0][HL + 1..].iter().all(|&b| b == 0xee), "padding kept");
    }

    #[test]
    fn a_super_frame_is_split_at_the_segment_size_with_fixed_headers() {
        let gso = 1448u16;
        let data = body(10_000);
        // ACK, PSH, FIN, CWR set on the super-frame.
        let f = tcp_frame(&data, 0x10 | TCP_PSH | TCP_FIN | TCP_CWR, 0xfffe, true);
        let mut out = Vec::new();
        let r = segment_offloaded(&f, &offload(Some(gso)), &mut out);
        assert_eq!(r, Segmented::Split { segments: 7, payload: 10_000, gso_size: gso });
        let sizes: Vec<usize> = out.iter().map(|s| s.len() - HL).collect();
        assert_eq!(sizes, [1448, 1448, 1448, 1448, 1448, 1448, 1312]);
        assert!(out.iter().all(|s| s.len() <= 1514), "every segment fits the MTU");
        let mut joined = Vec::new();
        for (i, s) in out.iter().enumerate() {
            let last = i + 1 == out.len();
            assert_eq!(verifies(s), (true, true), "segment {i} checksums");
            assert_eq!(usize::from(be16(s, 16)), s.len() - 14, "segment {i} IPv4 length");
            assert_eq!(be16(s, 18), 0xfffeu16.wrapping_add(i as u16), "segment {i} IP id");
            let seq = u32::from_be_bytes(s[38..42].try_into().unwrap());
            assert_eq!(seq, SEQ.wrapping_add((i * 1448) as u32), "segment {i} sequence number");
            let flags = s[47];
            assert_eq!(flags & 0x10, 0x10, "segment {i} keeps ACK");
            assert_eq!(flags & TCP_FIN != 0, last, "segment {i}: FIN on the last only");
            assert_eq!(flags & TCP_PSH != 0, last, "segment {i}: PSH on the last only");
            assert_eq!(flags & TCP_CWR != 0, i == 0, "segment {i}: CWR on the first only");
            // Everything else in the headers is the super-frame's.
            assert!(s[..16] == f[..16], "segment {i}: Ethernet and first IPv4 bytes");
            assert!(s[20..24] == f[20..24] && s[26..38] == f[26..38], "segment {i}: IPv4 rest, ports");
            assert!(s[42..47] == f[42..47] && s[48..50] == f[48..50], "segment {i}: ack, offset, window");
            assert!(s[52..HL] == f[52..HL], "segment {i}: urgent pointer, options");
            joined.extend_from_slice(&s[HL..]);
        }
        assert!(joined == data, "payload intact and in order");
    }

    #[test]
    fn an_exact_multiple_splits_evenly_and_a_small_frame_marked_for_gso_stays_whole() {
        let f = tcp_frame(&body(3 * 1000), 0x18, 5, true);
        let mut out = Vec::new();
        let r = segment_offloaded(&f, &offload(Some(1000)), &mut out);
        assert_eq!(r, Segmented::Split { segments: 3, payload: 3000, gso_size: 1000 });
        assert!(out.iter().all(|s| s.len() == HL + 1000));
        assert!(out.iter().all(|s| verifies(s) == (true, true)));
        assert_eq!(out.iter().filter(|s| s[47] & TCP_PSH != 0).count(), 1);

        out.clear();
        let small = tcp_frame(&body(500), 0x18, 5, true);
        let r = segment_offloaded(&small, &offload(Some(1000)), &mut out);
        assert_eq!(r, Segmented::Split { segments: 1, payload: 500, gso_size: 1000 });
        assert_eq!(verifies(&out[0]), (true, true));
        assert!(out[0] == tcp_frame(&body(500), 0x18, 5, false), "finished, otherwise unchanged");

        let mut stats = GsoStats::default();
        stats.record(&r);
        stats.record(&Segmented::Split { segments: 3, payload: 3000, gso_size: 1000 });
        stats.record(&Segmented::Unchanged);
        assert_eq!((stats.offloaded, stats.super_frames, stats.segments, stats.gso_single), (2, 1, 3, 1));
        assert_eq!((stats.largest_payload, stats.smallest_gso_size, stats.largest_gso_size), (3000, 1000, 1000));
    }

    #[test]
    fn a_64k_super_frame_splits_and_a_wrong_pseudo_header_sum_stays_wrong() {
        let data = body(65_535 - 20 - 32);
        let f = tcp_frame(&data, 0x18, 0, true);
        let mut out = Vec::new();
        let r = segment_offloaded(&f, &offload(Some(1448)), &mut out);
        assert_eq!(r, Segmented::Split { segments: 46, payload: data.len(), gso_size: 1448 });
        assert!(out.iter().all(|s| verifies(s) == (true, true)));
        assert_eq!(out.iter().map(|s| s.len() - HL).sum::<usize>(), data.len());

        // Like Linux, the link adjusts the sum the sender left: a wrong one is not repaired.
        let mut bad = f.clone();
        bad[51] ^= 0x01;
        out.clear();
        segment_offloaded(&bad, &offload(Some(1448)), &mut out);
        assert!(out.iter().all(|s| verifies(s) == (true, false)), "every segment's checksum fails");
    }

    #[test]
    fn gso_without_a_checksum_offload_computes_the_checksums() {
        let f = tcp_frame(&body(4000), 0x18, 3, false);
        let mut out = Vec::new();
        let off = TxOffload { checksum: None, gso_size: Some(1448), header_len: HL as u16, ipv6: false };
        assert_eq!(
            segment_offloaded(&f, &off, &mut out),
            Segmented::Split { segments: 3, payload: 4000, gso_size: 1448 }
        );
        assert!(out.iter().all(|s| verifies(s) == (true, true)));
    }

    #[test]
    fn malformed_frames_with_an_offload_are_dropped_without_panicking() {
        let f = tcp_frame(&body(5000), 0x18, 3, true);
        let mut out = Vec::new();
        // Every truncation, with and without segmentation.
        for len in 0..f.len() {
            for gso in [None, Some(1448)] {
                let r = segment_offloaded(&f[..len], &offload(gso), &mut out);
                assert!(matches!(r, Segmented::Dropped(_)), "length {len}: {r:?}");
            }
        }
        assert!(out.is_empty());
        let drop = |frame: &[u8], off: TxOffload| {
            let mut out = Vec::new();
            let r = segment_offloaded(frame, &off, &mut out);
            assert!(out.is_empty(), "{r:?}");
            r
        };
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(drop(&arp, offload(Some(1448))), Segmented::Dropped(Malformed::NotIpv4Tcp));
        assert_eq!(drop(&arp, offload(None)), Segmented::Dropped(Malformed::NotIpv4Tcp));
        let mut udp = f.clone();
        udp[23] = 17;
        assert_eq!(drop(&udp, offload(Some(1448))), Segmented::Dropped(Malformed::NotIpv4Tcp));
        let mut frag = f.clone();
        frag[20] |= 0x20; // more fragments
        assert_eq!(drop(&frag, offload(Some(1448))), Segmented::Dropped(Malformed::Fragment));
        let mut ihl = f.clone();
        ihl[14] = 0x44;
        assert_eq!(drop(&ihl, offload(Some(1448))), Segmented::Dropped(Malformed::NotIpv4Tcp));
        let mut thl = f.clone();
        thl[46] = 4 << 4;
        assert_eq!(drop(&thl, offload(Some(1448))), Segmented::Dropped(Malformed::NotIpv4Tcp));
        let mut long_thl = tcp_frame(&[], 0x10, 3, true);
        long_thl[46] = 15 << 4;
        assert_eq!(drop(&long_thl, offload(Some(1448))), Segmented::Dropped(Malformed::Truncated));
        assert_eq!(drop(&f, offload(Some(0))), Segmented::Dropped(Malformed::ZeroGsoSize));
        let off_span = |start, offset| TxOffload {
            checksum: Some(ChecksumSpan { start, offset }),
            gso_size: Some(1448),
            header_len: HL as u16,
            ipv6: false,
        };
        assert_eq!(drop(&f, off_span(34, 6)), Segmented::Dropped(Malformed::SpanMismatch));
        assert_eq!(drop(&f, off_span(30, 16)), Segmented::Dropped(Malformed::SpanMismatch));
        let far = TxOffload { gso_size: None, ..off_span(u16::MAX, u16::MAX) };
        assert_eq!(drop(&f, far), Segmented::Dropped(Malformed::Truncated));
        // The IPv4 total length claims more than the frame holds.
        let mut short = f.clone();
        short.truncate(f.len() - 1);
        assert_eq!(drop(&short, offload(Some(1448))), Segmented::Dropped(Malformed::Truncated));
    }
}
