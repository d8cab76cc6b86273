//! Engine-level behaviour tests, IPv4: header checks, TTL, reassembly and its overlap policy,
//! fragmentation to the MTU, IP ids.
//!
//! Hand-built guest frames in, emitted frames checked: every one also passes
//! `common::check_frame` (valid Ethernet + ARP/IPv4, checksums, >= 60 bytes, <= MTU + 14). Test
//! names carry the item number of the checklist in `shared/reference/tinyemu-behaviours.md` §13
//! where one applies; where the engine deliberately differs from the original slirp (documented
//! in the module docs of `slirp-core`), the test checks the documented behaviour and says so.

mod common;

use common::*;
use core::net::Ipv4Addr;
use core::time::Duration;
use slirp_core::wire::{DhcpMessageType, EtherType, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpControl};
use slirp_core::{Config, DropReason};

#[test]
fn bad_ip_headers_silently_dropped_item_21() {
    let mut net = Net::new();
    net.introduce_guest();
    let good = ping(GUEST_IP, GATEWAY, 1, 1, b"payload");
    let mut bad_sum = good.clone();
    bad_sum[24] ^= 0x01;
    net.send(&bad_sum);
    assert_eq!(net.dropped(DropReason::Ipv4Checksum), 1);
    for first in [0x65u8, 0x44, 0x40, 0x4f] {
        let mut f = good.clone();
        f[14] = first;
        net.send(&f);
    }
    assert_eq!(net.dropped(DropReason::Ipv4Malformed), 4);
    net.assert_silent();
    assert_eq!(echo_reply(&net.exchange(&good)[0]).2, 1, "the intact frame still works");
}

#[test]
fn ip_length_beyond_frame_dropped_and_padding_ignored_item_22() {
    let mut net = Net::new();
    net.introduce_guest();
    let good = ping(GUEST_IP, GATEWAY, 1, 1, b"payload");
    let mut long = good.clone();
    let tl = u16::from_be_bytes([long[16], long[17]]) + 1;
    long[16..18].copy_from_slice(&tl.to_be_bytes());
    Ipv4Packet::new_unchecked(&mut long[14..34]).fill_checksum();
    assert!(net.exchange(&long).is_empty());
    assert_eq!(net.dropped(DropReason::Ipv4Malformed), 1);
    // Trailing bytes after the datagram (Ethernet padding, junk) are not part of it.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0xee; 30]);
    let (_, _, _, body) = echo_reply(&net.exchange(&padded)[0]);
    assert_eq!(body, b"payload");
}

#[test]
fn ttl_zero_gets_time_exceeded_quoting_the_datagram_item_23() {
    let mut net = Net::new();
    net.introduce_guest();
    let mut r = ip(GUEST_IP, GATEWAY, IpProtocol::Udp);
    r.ttl = 0;
    let dgram = ipv4_datagram(&r, &[], &udp(GUEST_IP, GATEWAY, 1234, 9999, b"ttl zero"));
    let out = net.exchange(&eth(GUEST_MAC, GATEWAY_MAC, EtherType::Ipv4, &dgram));
    let (o, t, c, quote) = icmp_error(&out[0]);
    assert_eq!((t, c), (11, 0));
    assert_eq!((o.ip.src_addr, o.ip.dst_addr, o.ip.ttl), (GATEWAY, GUEST_IP, 255));
    assert_eq!(quote, dgram, "quotes the whole (short) original datagram");
    assert_eq!(net.dropped(DropReason::Ipv4TtlExpired), 1);
}

#[test]
fn ttl_one_is_fine_for_us_but_expires_in_forwarding() {
    let mut net = Net::new();
    net.introduce_guest();
    let mut r = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    r.ttl = 1;
    assert_eq!(echo_reply(&net.exchange(&ipv4(&r, &echo_request(1, 1, b"x")))[0]).2, 1);
    r.dst_addr = OUTSIDE;
    let (_, t, c, _) = icmp_error(&net.exchange(&ipv4(&r, &echo_request(1, 1, b"x")))[0]);
    assert_eq!((t, c), (11, 0));
}

#[test]
fn replies_are_ttl_64_for_udp_tcp_and_255_for_icmp_item_24() {
    // Forwarding (and so "TTL not decremented") arrives with the NAT; what we originate has
    // TTL 64 (DHCP, RST) or 255 (ICMP).
    let mut net = Net::new();
    net.introduce_guest();
    let syn = tcp_seg(40000, 80, TcpControl::Syn, 1, None);
    assert_eq!(parse_ip(&net.exchange(&tcp_frame(GUEST_IP, OUTSIDE, &syn))[0]).ip.ttl, 64);
    assert_eq!(parse_ip(&net.exchange(&discover(GUEST_MAC))[0]).ip.ttl, 64);
    assert_eq!(parse_ip(&net.exchange(&ping(GUEST_IP, GATEWAY, 1, 1, b""))[0]).ip.ttl, 255);
    assert_eq!(parse_ip(&net.exchange(&udp_frame(GUEST_IP, GATEWAY, 1, 2, b""))[0]).ip.ttl, 255);
}

#[test]
fn gre_silently_dropped_item_25() {
    let mut net = Net::new();
    net.introduce_guest();
    let gre = ipv4(&ip(GUEST_IP, OUTSIDE, IpProtocol::from(47)), &[0u8; 24]);
    assert!(net.exchange(&gre).is_empty());
    assert_eq!(net.dropped(DropReason::Ipv4UnknownProtocol), 1);
    // Deliberate (RFC 1812 §4.3.3.1): a protocol sent to the router itself that it does not
    // speak gets protocol unreachable.
    let gre = ipv4(&ip(GUEST_IP, GATEWAY, IpProtocol::from(47)), &[0u8; 24]);
    let (_, t, c, _) = icmp_error(&net.exchange(&gre)[0]);
    assert_eq!((t, c), (3, 2));
}

#[test]
fn fragmented_udp_reassembled_in_order_or_shuffled_item_26() {
    let body = dhcp_bytes(&dhcp_msg(Some(DhcpMessageType::Discover), GUEST_MAC));
    let zero = Ipv4Addr::UNSPECIFIED;
    let dgram = udp(zero, Ipv4Addr::BROADCAST, 68, 67, &body);
    let frags = split(&dgram, 200);
    assert_eq!(frags.len(), 3);
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]] {
        let mut net = Net::new();
        let mut base = ip(zero, Ipv4Addr::BROADCAST, IpProtocol::Udp);
        base.ident = 77;
        for (n, &i) in order.iter().enumerate() {
            let (off, more, bytes) = &frags[i];
            let out = net.exchange(&fragment(&base, *off, *more, bytes));
            assert_eq!(out.len(), usize::from(n == 2), "order {order:?}");
            if n == 2 {
                assert_eq!(yiaddr(&dhcp_reply(&out[0]).1), GUEST_IP);
            }
        }
        assert_eq!(net.slirp.stats().reassembled, 1);
    }
}

#[test]
fn error_about_a_fragmented_datagram_quotes_the_reassembled_header_item_26() {
    let mut net = Net::new();
    net.introduce_guest();
    // The DNS alias serves port 53 only: anything else is port unreachable, whatever the host.
    let dgram = udp(GUEST_IP, DNS, 5000, 9999, &data(1000));
    let mut base = ip(GUEST_IP, DNS, IpProtocol::Udp);
    base.ident = 0x4242;
    let frags = split(&dgram, 512);
    for (off, more, bytes) in &frags {
        net.send(&fragment(&base, *off, *more, bytes));
    }
    let (_, t, c, quote) = icmp_error(&net.recv_one());
    assert_eq!((t, c), (3, 3));
    let q = Ipv4Packet::new_unchecked(&quote[..20]);
    assert_eq!(q.total_len() as usize, 20 + dgram.len());
    assert!(!q.is_fragment());
    assert_eq!(q.ident(), 0x4242);
    assert_eq!(&quote[20..], &dgram[..quote.len() - 20]);
}

#[test]
fn identical_overlaps_merge_item_27() {
    let mut net = Net::new();
    net.introduce_guest();
    let msg = echo_request(5, 6, &data(1992));
    let mut base = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    base.ident = 1;
    for (s, e) in [(0, 1000), (800, 1600), (1592, 2000), (0, 8)] {
        net.send(&fragment(&base, s as u16, e != 2000, &msg[s..e]));
    }
    let out = net.recv();
    assert_eq!(out.len(), 2, "reply in two fragments");
    let frags: Vec<IpOut> = out.iter().map(|f| parse_ip(f)).collect();
    let (_, whole) = reassemble(&frags);
    assert_eq!(&whole[8..], &data(1992)[..]);
}

#[test]
fn conflicting_overlaps_discard_the_datagram_item_27() {
    // Deliberate deviation from the BSD trimming rules: disagreeing overlaps discard the set.
    let mut net = Net::new();
    net.introduce_guest();
    let msg = echo_request(5, 6, &data(1992));
    let mut base = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    base.ident = 1;
    net.send(&fragment(&base, 0, true, &msg[..1000]));
    let mut evil = msg[800..1600].to_vec();
    evil[100] ^= 0xff;
    net.send(&fragment(&base, 800, true, &evil));
    net.send(&fragment(&base, 1592, false, &msg[1592..]));
    net.assert_silent();
    assert_eq!(net.dropped(DropReason::FragmentOverlap), 1);
    // A fresh, clean set goes through.
    base.ident = 2;
    for (off, more, bytes) in split(&msg, 1480) {
        net.send(&fragment(&base, off, more, &bytes));
    }
    assert_eq!(net.recv().len(), 2);
}

#[test]
fn incomplete_fragments_discarded_after_timeout_without_icmp_item_28() {
    let mut net = Net::new();
    net.introduce_guest();
    let msg = echo_request(1, 1, &data(1992));
    let base = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    net.send(&fragment(&base, 0, true, &msg[..1480]));
    assert_eq!(net.slirp.poll_at(), Some(net.now + Duration::from_secs(30)));
    net.advance(29_999);
    assert_eq!(net.dropped(DropReason::FragmentTimeout), 0);
    net.advance(1);
    assert_eq!(net.dropped(DropReason::FragmentTimeout), 1);
    assert_eq!(net.slirp.poll_at(), None);
    // The late tail starts a new set that never completes.
    net.send(&fragment(&base, 1480, false, &msg[1480..]));
    net.assert_silent();
    assert_eq!(net.slirp.stats().icmp_errors_sent, 0);
}

#[test]
fn big_ping_in_three_fragments_gets_reply_fragmented_to_mtu_item_29() {
    let mut net = Net::new();
    net.introduce_guest();
    let payload = data(4000 - 8);
    let msg = echo_request(0x77, 3, &payload);
    let mut base = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    base.ident = 900;
    let frags = split(&msg, 1480);
    assert_eq!(frags.len(), 3);
    for (off, more, bytes) in frags.iter().rev() {
        net.send(&fragment(&base, *off, *more, bytes));
    }
    let out: Vec<IpOut> = net.recv().iter().map(|f| parse_ip(f)).collect();
    let sizes: Vec<(usize, bool)> = out.iter().map(|o| (o.payload.len(), o.ip.more_frags)).collect();
    assert_eq!(sizes, vec![(1480, true), (1480, true), (1040, false)]);
    assert!(out.iter().all(|o| o.frame_len <= 1514 && !o.ip.dont_frag));
    let (_, whole) = reassemble(&out);
    let m = Icmpv4Packet::new_checked(&whole[..]).unwrap();
    assert!(m.verify_checksum());
    assert_eq!((m.msg_type(), m.echo_ident(), m.echo_seq_no()), (0, 0x77, 3));
    assert_eq!(m.data(), &payload[..]);
    assert_eq!((net.slirp.stats().reassembled, net.slirp.stats().fragmented), (1, 1));
}

#[test]
fn ip_id_starts_at_zero_and_increments_item_30() {
    let mut net = Net::new();
    net.introduce_guest(); // ARP carries no IP id
    let id = |f: &Vec<u8>| parse_ip(f).ip.ident;
    assert_eq!(id(&net.exchange(&ping(GUEST_IP, GATEWAY, 1, 1, b"x"))[0]), 0);
    assert_eq!(id(&net.exchange(&discover(GUEST_MAC))[0]), 1);
    assert_eq!(id(&net.exchange(&udp_frame(GUEST_IP, GATEWAY, 1, 2, b""))[0]), 2);
    let big = net.exchange(&ping(GUEST_IP, GATEWAY, 1, 2, &data(3000)));
    assert_eq!(big.len(), 3);
    assert!(big.iter().all(|f| id(f) == 3), "fragments share one id");
    assert_eq!(id(&net.exchange(&ping(GUEST_IP, GATEWAY, 1, 3, b"x"))[0]), 4);
}

#[test]
fn guest_fragmented_2000_byte_ping_gets_two_fragments_back_item_31() {
    let mut net = Net::new();
    net.introduce_guest();
    let msg = echo_request(1, 1, &data(2000 - 8));
    let mut base = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    base.dont_frag = true; // whatever the guest says, our reply may be fragmented
    for (off, more, bytes) in split(&msg, 1480) {
        net.send(&fragment(&base, off, more, &bytes));
    }
    let out: Vec<IpOut> = net.recv().iter().map(|f| parse_ip(f)).collect();
    let sizes: Vec<usize> = out.iter().map(|o| o.payload.len()).collect();
    assert_eq!(sizes, vec![1480, 520]);
    assert!(out.iter().all(|o| !o.ip.dont_frag));
}

#[test]
fn oversized_unfragmented_df_echo_gets_a_fragmented_reply_item_31() {
    // Deviation: the original reflected the request's DF bit and so dropped the reply. Our echo
    // reply is a fresh datagram without DF (as Linux sends it) and is fragmented to the MTU.
    let mut net = Net::new();
    net.introduce_guest();
    let mut r = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    r.dont_frag = true;
    let out = net.exchange(&ipv4(&r, &echo_request(1, 1, &data(1992))));
    let frags: Vec<IpOut> = out.iter().map(|f| parse_ip(f)).collect();
    assert_eq!(frags.len(), 2);
    assert_eq!(&reassemble(&frags).1[8..], &data(1992)[..]);
}

#[test]
fn mtu_65520_sends_a_big_echo_reply_unfragmented() {
    let config = Config { mtu: 65520, ..Config::default() };
    let mut net = Net::with_config(config);
    net.introduce_guest();
    let payload = data(60_000);
    let msg = echo_request(1, 1, &payload);
    let mut base = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    base.ident = 3;
    for (off, more, bytes) in split(&msg, 1480) {
        net.send(&fragment(&base, off, more, &bytes));
    }
    let out = net.recv();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 14 + 20 + 8 + 60_000);
    assert_eq!(echo_reply(&out[0]).3, payload);
    // The largest possible echo (65535-byte datagram) still needs two fragments at 65520.
    let msg = echo_request(1, 2, &data(65535 - 28));
    base.ident = 4;
    for (off, more, bytes) in split(&msg, 1480) {
        net.send(&fragment(&base, off, more, &bytes));
    }
    let frags: Vec<IpOut> = net.recv().iter().map(|f| parse_ip(f)).collect();
    let sizes: Vec<usize> = frags.iter().map(|o| o.payload.len()).collect();
    assert_eq!(sizes, vec![65496, 65515 - 65496]);
}
