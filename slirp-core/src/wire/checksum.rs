//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! `sum` returns an unfolded 32-bit-or-wider partial sum so headers and payloads can be summed
//! separately and combined; `finish` folds and complements it.

use super::ipv4::IpProtocol;
use core::net::IpAddr;

/// Partial one's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded
/// with zero). Not folded, not complemented: combine with `+` and finish with [`finish`].
pub fn sum(data: &[u8]) -> u64 {
    // Summing 32-bit words into a 64-bit accumulator is equivalent modulo 0xffff (2^16 ≡ 1), and
    // does a quarter of the additions of the 16-bit loop.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

/// Folds a partial sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Folds and complements a partial sum: the value to put in a checksum field.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The checksum of `data` alone.
pub fn data(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Partial sum of the pseudo-header UDP, TCP and ICMPv6 checksums cover: the IPv4 one (RFC 793,
/// RFC 768) or the IPv6 one (RFC 8200 §8.1). Both sum to the same thing (the two addresses, the
/// protocol and the upper-layer length), so one function serves both families. `src` and `dst`
/// are of the same family on every path the stack takes.
pub fn pseudo_header(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, protocol: IpProtocol, len: u32) -> u64 {
    addr_sum(src.into()) + addr_sum(dst.into()) + u64::from(u8::from(protocol)) + u64::from(len)
}

fn addr_sum(a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v >> 96) as u64 + ((v >> 64) as u32) as u64 + ((v >> 32) as u32) as u64 + (v as u32) as u64
        }
    }
}

/// Whether `data` (which includes its checksum field) sums to all ones, i.e. verifies.
pub fn verifies(acc: u64) -> bool {
    fold(acc) == 0xffff
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit field changes from `old` to `new`.
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!check) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// The new checksum after a 32-bit field (an address) changes from `old` to `new`.
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let check = update16(check, (old >> 16) as u16, (new >> 16) as u16);
    update16(check, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let w = if pair.len() == 2 { u16::from_be_bytes([pair[0], pair[1]]) } else { u16::from(pair[0]) << 8 };
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(data(&d), !0xddf2);
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut hdr = [0x45u8, 0, 0, 84, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 2, 15, 8, 8, 8, 8];
        let c = data(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(sum(&hdr)));
        // Rewrite the destination 8.8.8.8 -> 127.0.0.1 incrementally.
        let new = u32::from_be_bytes([127, 0, 0, 1]);
        let upd = update32(c, u32::from_be_bytes([8, 8, 8, 8]), new);
        hdr[16..20].copy_from_slice(&new.to_be_bytes());
        hdr[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(upd, data(&hdr));
    }

    #[test]
    fn ipv6_pseudo_header_matches_rfc8200_layout() {
        use core::net::Ipv6Addr;
        let src = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
        let dst = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        // The pseudo-header written out: src, dst, 32-bit length, 3 zero bytes, next header.
        let mut ph = [0u8; 40];
        ph[..16].copy_from_slice(&src.octets());
        ph[16..32].copy_from_slice(&dst.octets());
        ph[32..36].copy_from_slice(&1234u32.to_be_bytes());
        ph[39] = 17;
        assert_eq!(fold(pseudo_header(src, dst, IpProtocol::Udp, 1234)), fold(sum(&ph)));
        // And the IPv4 one: src, dst, zero, protocol, 16-bit length.
        let (a, b) = (core::net::Ipv4Addr::new(10, 0, 2, 15), core::net::Ipv4Addr::new(198, 51, 100, 1));
        let mut ph4 = [0u8; 12];
        ph4[..4].copy_from_slice(&a.octets());
        ph4[4..8].copy_from_slice(&b.octets());
        ph4[9] = 6;
        ph4[10..12].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(fold(pseudo_header(a, b, IpProtocol::Tcp, 40)), fold(sum(&ph4)));
    }

    proptest::proptest! {
        #[test]
        fn wide_sum_equals_16bit_sum(d in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            proptest::prop_assert_eq!(data(&d), reference(&d));
        }

        #[test]
        fn update16_equals_recompute(d in proptest::collection::vec(proptest::num::u8::ANY, 2..64), w in proptest::num::u16::ANY) {
            let mut d = d;
            if d.len() % 2 == 1 { d.pop(); }
            let c = data(&d);
            let old = u16::from_be_bytes([d[0], d[1]]);
            d[0..2].copy_from_slice(&w.to_be_bytes());
            let fresh = data(&d);
            let inc = update16(c, old, w);
            // 0x0000 and 0xffff are the same value in one's complement.
            proptest::prop_assert!(inc == fresh || (inc == 0 && fresh == 0xffff) || (inc == 0xffff && fresh == 0));
        }
    }
}
