//! TCP headers (RFC 9293) with the options a modern stack uses: MSS, window scale (RFC 7323),
//! SACK-permitted and SACK blocks (RFC 2018), timestamps (RFC 7323).

use super::checksum;
use super::ipv4::IpProtocol;
use super::{read_u16, read_u32, write_u16, write_u32, Error, Result};
use core::cmp::Ordering;
use core::net::IpAddr;
#[cfg(test)]
use core::net::Ipv4Addr;
use core::ops;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Longest header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;

/// A TCP sequence number, compared modulo 2^32 (RFC 1982-style serial arithmetic).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// Signed distance from `other` to `self`; positive when `self` is later.
    pub fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self - other` as a length: how far `self` is past `other`, zero when it is not after it.
    pub fn saturating_sub(self, other: SeqNumber) -> usize {
        let d = self.diff(other);
        if d > 0 {
            d as usize
        } else {
            0
        }
    }

    /// The later of the two (`self` when they are equal).
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self.diff(other) >= 0 {
            self
        } else {
            other
        }
    }

    /// The earlier of the two (`self` when they are equal).
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self.diff(other) <= 0 {
            self
        } else {
            other
        }
    }
}

impl ops::Add<usize> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl ops::AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl ops::Sub<usize> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

/// The control flags that matter for the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TcpControl {
    /// No SYN, FIN or RST.
    None,
    /// PSH (data to push).
    Psh,
    /// SYN.
    Syn,
    /// FIN.
    Fin,
    /// RST.
    Rst,
}

/// Flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
    /// URG.
    pub const URG: u16 = 0x020;
    /// ECE.
    pub const ECE: u16 = 0x040;
    /// CWR.
    pub const CWR: u16 = 0x080;
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }
    /// A view that passed the length gate.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// The length gate: header present and data offset within 20..=buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > b.len() {
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
    /// Sequence number.
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(read_u32(self.buffer.as_ref(), 4))
    }
    /// Acknowledgment number.
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(read_u32(self.buffer.as_ref(), 8))
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[12] >> 4) * 4
    }
    /// Flag bits (see [`flags`]).
    pub fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 12) & 0x01ff
    }
    /// Window field (unscaled).
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 14)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 16)
    }
    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 18)
    }
    /// Option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len() as usize]
    }
    /// Segment payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len() as usize..]
    }
    /// Whether the checksum over the whole buffer verifies.
    pub fn verify_checksum(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_header(src, dst, IpProtocol::Tcp, b.len() as u32) + checksum::sum(b);
        checksum::verifies(acc)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Writes the checksum as a link with checksum offload wants it: the folded pseudo-header
    /// sum alone (not complemented), to be finished over the segment by the link (virtio-net's
    /// `NEEDS_CSUM`, Linux's `CHECKSUM_PARTIAL`).
    pub fn fill_partial_checksum(&mut self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        let len = self.buffer.as_ref().len() as u32;
        write_u16(self.buffer.as_mut(), 16, checksum::fold(checksum::pseudo_header(src, dst, IpProtocol::Tcp, len)));
    }

    /// Computes and writes the checksum over the pseudo-header of `src` → `dst` and the segment.
    pub fn fill_checksum(&mut self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        write_u16(self.buffer.as_mut(), 16, 0);
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_header(src, dst, IpProtocol::Tcp, b.len() as u32) + checksum::sum(b);
        write_u16(self.buffer.as_mut(), 16, checksum::finish(acc));
    }
}

/// Up to three SACK blocks (left edge, right edge).
pub type SackBlocks = [Option<(u32, u32)>; 3];

/// A parsed TCP header and its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SYN, FIN, RST, PSH or none (SYN+FIN and the like are rejected at parse time).
    pub control: TcpControl,
    /// Sequence number.
    pub seq_number: SeqNumber,
    /// Acknowledgment number, when ACK is set.
    pub ack_number: Option<SeqNumber>,
    /// Window field as sent (unscaled).
    pub window_len: u16,
    /// Window scale option.
    pub window_scale: Option<u8>,
    /// MSS option.
    pub max_seg_size: Option<u16>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// SACK blocks.
    pub sack_ranges: SackBlocks,
    /// Timestamps option (value, echo reply).
    pub timestamp: Option<(u32, u32)>,
    /// Urgent pointer, when URG is set.
    pub urgent_at: Option<u16>,
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Parses a segment, verifying the checksum when `verify` is set. Option lists that run past
    /// the header or have bad lengths are `Malformed`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        p: &'a TcpPacket<&'a T>,
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        verify: bool,
    ) -> Result<Self> {
        p.check_len()?;
        if verify && !p.verify_checksum(src.into(), dst.into()) {
            return Err(Error::Checksum);
        }
        let f = p.flags();
        let control = match (f & flags::SYN != 0, f & flags::FIN != 0, f & flags::RST != 0) {
            (false, false, false) if f & flags::PSH != 0 => TcpControl::Psh,
            (false, false, false) => TcpControl::None,
            (true, false, false) => TcpControl::Syn,
            (false, true, false) => TcpControl::Fin,
            (false, false, true) => TcpControl::Rst,
            _ => return Err(Error::Malformed),
        };
        let mut r = TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            control,
            seq_number: p.seq_number(),
            ack_number: (f & flags::ACK != 0).then(|| p.ack_number()),
            window_len: p.window_len(),
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            urgent_at: (f & flags::URG != 0).then(|| p.urgent_at()),
            payload: p.payload(),
        };
        let mut opts = p.options();
        while let Some(&kind) = opts.first() {
            match kind {
                0 => break,
                1 => opts = &opts[1..],
                _ => {
                    let len = *opts.get(1).ok_or(Error::Malformed)? as usize;
                    if len < 2 || len > opts.len() {
                        return Err(Error::Malformed);
                    }
                    let body = &opts[2..len];
                    match (kind, body.len()) {
                        (2, 2) => r.max_seg_size = Some(read_u16(body, 0)),
                        (3, 1) => r.window_scale = Some(body[0].min(14)),
                        (4, 0) => r.sack_permitted = true,
                        (5, n) if n % 8 == 0 && n <= 32 => {
                            for (i, chunk) in body.chunks_exact(8).take(3).enumerate() {
                                r.sack_ranges[i] = Some((read_u32(chunk, 0), read_u32(chunk, 4)));
                            }
                        }
                        (8, 8) => r.timestamp = Some((read_u32(body, 0), read_u32(body, 4))),
                        (2..=5 | 8, _) => return Err(Error::Malformed),
                        _ => {} // unknown options are skipped
                    }
                    opts = &opts[len..];
                }
            }
        }
        Ok(r)
    }

    fn options_len(&self) -> usize {
        let mut n = 0;
        if self.max_seg_size.is_some() {
            n += 4;
        }
        if self.window_scale.is_some() {
            n += 3;
        }
        if self.sack_permitted {
            n += 2;
        }
        if self.timestamp.is_some() {
            n += 10;
        }
        let sacks = self.sack_ranges.iter().flatten().count();
        if sacks > 0 {
            n += 2 + 8 * sacks;
        }
        n
    }

    /// Header length including options (padded to a multiple of 4, at most 60).
    pub fn header_len(&self) -> usize {
        (HEADER_LEN + self.options_len().min(40)).div_ceil(4) * 4
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes header, options, payload and checksum into exactly `buffer_len()` bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8], src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        let hl = self.header_len();
        let buf = &mut buf[..self.buffer_len()];
        write_u16(buf, 0, self.src_port);
        write_u16(buf, 2, self.dst_port);
        write_u32(buf, 4, self.seq_number.0);
        write_u32(buf, 8, self.ack_number.map_or(0, |a| a.0));
        let mut f = match self.control {
            TcpControl::None => 0,
            TcpControl::Psh => flags::PSH,
            TcpControl::Syn => flags::SYN,
            TcpControl::Fin => flags::FIN,
            TcpControl::Rst => flags::RST,
        };
        if self.ack_number.is_some() {
            f |= flags::ACK;
        }
        if self.urgent_at.is_some() {
            f |= flags::URG;
        }
        write_u16(buf, 12, ((hl as u16 / 4) << 12) | f);
        write_u16(buf, 14, self.window_len);
        write_u16(buf, 16, 0);
        write_u16(buf, 18, self.urgent_at.unwrap_or(0));
        let mut o = HEADER_LEN;
        let mut put = |bytes: &[u8], o: &mut usize| {
            if *o + bytes.len() <= hl {
                buf[*o..*o + bytes.len()].copy_from_slice(bytes);
                *o += bytes.len();
            }
        };
        if let Some(mss) = self.max_seg_size {
            let m = mss.to_be_bytes();
            put(&[2, 4, m[0], m[1]], &mut o);
        }
        if let Some(ws) = self.window_scale {
            put(&[3, 3, ws], &mut o);
        }
        if self.sack_permitted {
            put(&[4, 2], &mut o);
        }
        if let Some((v, e)) = self.timestamp {
            let (v, e) = (v.to_be_bytes(), e.to_be_bytes());
            put(&[8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3]], &mut o);
        }
        let sacks = self.sack_ranges.iter().flatten().count();
        if sacks > 0 {
            put(&[5, (2 + 8 * sacks) as u8], &mut o);
            for &(l, r) in self.sack_ranges.iter().flatten() {
                let (l, r) = (l.to_be_bytes(), r.to_be_bytes());
                put(&[l[0], l[1], l[2], l[3], r[0], r[1], r[2], r[3]], &mut o);
            }
        }
        // End-of-options padding (the buffer may hold stale bytes: write every byte).
        buf[o..hl].fill(0);
        buf[hl..].copy_from_slice(self.payload);
        TcpPacket::new_unchecked(buf).fill_checksum(src, dst);
    }

    /// Sequence space the segment occupies (payload plus one for SYN or FIN).
    pub fn segment_len(&self) -> usize {
        self.payload.len() + matches!(self.control, TcpControl::Syn | TcpControl::Fin) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
    const B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    fn base() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            control: TcpControl::Syn,
            seq_number: SeqNumber(0xfffffff0),
            ack_number: None,
            window_len: 64240,
            window_scale: Some(7),
            max_seg_size: Some(1460),
            sack_permitted: true,
            sack_ranges: [None; 3],
            timestamp: Some((1, 0)),
            urgent_at: None,
            payload: &[],
        }
    }

    #[test]
    fn round_trip_syn_with_options() {
        let r = base();
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, A, B);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(A, B));
        assert_eq!(TcpRepr::parse(&p, A, B, true).unwrap(), r);
        assert_eq!(r.segment_len(), 1);
    }

    #[test]
    fn round_trip_data_with_sack_and_urgent() {
        let r = TcpRepr {
            control: TcpControl::Psh,
            ack_number: Some(SeqNumber(5)),
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [Some((10, 20)), Some((30, 40)), None],
            urgent_at: Some(3),
            payload: b"data",
            ..base()
        };
        let mut buf = vec![0xeeu8; r.buffer_len()];
        r.emit(&mut buf, A, B);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, A, B, true).unwrap(), r);
    }

    #[test]
    fn rejects_bad_flags_and_options() {
        let r = base();
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, A, B);
        let mut synfin = buf.clone();
        synfin[13] |= 0x01;
        let p = TcpPacket::new_checked(&synfin[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, A, B, false), Err(Error::Malformed));
        let mut badopt = buf.clone();
        badopt[21] = 40; // MSS option claiming 40 bytes
        let p = TcpPacket::new_checked(&badopt[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, A, B, false), Err(Error::Malformed));
        let mut short = buf.clone();
        short[12] = 0x40; // data offset 16 bytes
        assert_eq!(TcpPacket::new_checked(&short[..]).err(), Some(Error::Malformed));
        assert_eq!(TcpPacket::new_checked(&buf[..19]).err(), Some(Error::Truncated));
    }

    #[test]
    fn seq_wraps() {
        assert!(SeqNumber(5) > SeqNumber(0xffff_fff0));
        assert_eq!((SeqNumber(0xffff_ffff) + 2).0, 1);
        assert_eq!(SeqNumber(1).diff(SeqNumber(0xffff_ffff)), 2);
    }

    #[test]
    fn seq_arithmetic_wraps() {
        let (a, b) = (SeqNumber(0xffff_fff0), SeqNumber(5));
        assert_eq!(b.saturating_sub(a), 21);
        assert_eq!(a.saturating_sub(b), 0);
        assert_eq!((a.max(b), b.max(a)), (b, b));
        assert_eq!((a.min(b), b.min(a)), (a, a));
        assert_eq!(b - 21, a);
        let mut c = a;
        c += 21;
        assert_eq!(c, b);
    }
}
