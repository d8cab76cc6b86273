//! Engine-level behaviour tests, ICMP: echo replies from the virtual addresses, unreachables beyond
//! them, malformed messages, and the rules for ICMP errors (RFC 1812).
//!
//! Hand-built guest frames in, emitted frames checked: every one also passes
//! `common::check_frame` (valid Ethernet + ARP/IPv4, checksums, >= 60 bytes, <= MTU + 14). Test
//! names carry the item number of the checklist in `shared/reference/tinyemu-behaviours.md` §13
//! where one applies; where the engine deliberately differs from the original slirp (documented
//! in the module docs of `slirp-core`), the test checks the documented behaviour and says so.

mod common;

use common::*;
use core::net::Ipv4Addr;
use slirp_core::wire::{EtherType, EthernetAddress, IpProtocol};
use slirp_core::DropReason;

#[test]
fn echo_reply_from_gateway_and_dns_item_32() {
    let mut net = Net::new();
    net.introduce_guest();
    for target in [GATEWAY, DNS] {
        let mut r = ip(GUEST_IP, target, IpProtocol::Icmp);
        r.tos = 0x10;
        r.ttl = 17;
        let out = net.exchange(&ipv4(&r, &echo_request(0xbeef, 42, b"0123456789abcdef")));
        let (o, ident, seq, body) = echo_reply(&out[0]);
        assert_eq!((o.ip.src_addr, o.ip.dst_addr), (target, GUEST_IP));
        assert_eq!((ident, seq, &body[..]), (0xbeef, 42, &b"0123456789abcdef"[..]));
        assert_eq!((o.ip.ttl, o.ip.tos), (255, 0x10));
    }
}

#[test]
fn echo_request_with_ip_options_gets_reply_with_ihl_5_item_33() {
    let mut net = Net::new();
    net.introduce_guest();
    // Router alert + record-route-ish padding: 8 bytes of options (IHL 7).
    let opts = [0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00];
    let dgram = ipv4_datagram(&ip(GUEST_IP, GATEWAY, IpProtocol::Icmp), &opts, &echo_request(1, 2, b"opts"));
    assert_eq!(dgram[0], 0x47);
    let out = net.exchange(&eth(GUEST_MAC, GATEWAY_MAC, EtherType::Ipv4, &dgram));
    let (o, _, _, body) = echo_reply(&out[0]);
    assert_eq!(o.header.len(), 20);
    assert_eq!(body, b"opts");
}

#[test]
fn echo_beyond_the_virtual_addresses_gets_unreachable_items_34_to_36() {
    // Until the ICMP NAT arrives: outside → net unreachable, other subnet hosts → host
    // unreachable (documented in the engine).
    let mut net = Net::new();
    net.introduce_guest();
    for (dst, code) in [(OUTSIDE, 0), (NET_9, 1)] {
        let req = ping(GUEST_IP, dst, 1, 1, b"x");
        let (o, t, c, quote) = icmp_error(&net.exchange(&req)[0]);
        assert_eq!((t, c), (3, code), "{dst}");
        assert_eq!(o.ip.src_addr, GATEWAY);
        assert_eq!(quote, &req[14..]);
    }
}

#[test]
fn bad_short_and_unsupported_icmp_dropped_item_37() {
    let mut net = Net::new();
    net.introduce_guest();
    let r = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    let mut bad = echo_request(1, 1, b"x");
    bad[2] ^= 1;
    net.send(&ipv4(&r, &bad));
    net.send(&ipv4(&r, &echo_request(1, 1, b"")[..7]));
    assert_eq!(net.dropped(DropReason::IcmpMalformed), 2);
    let quoted = ping(GUEST_IP, GATEWAY, 1, 1, b"x")[14..42].to_vec();
    let others = [
        icmp_message(13, 0, &[0; 12]), // timestamp
        icmp_message(17, 0, &[0; 4]),  // address mask request
        icmp_message(3, 3, &quoted),   // unreachable
        icmp_message(11, 0, &quoted),  // time exceeded
        icmp_message(5, 1, &quoted),   // redirect
        icmp_message(0, 0, &[]),       // echo reply
        icmp_message(8, 1, &[]),       // echo request with a non-zero code
    ];
    for m in &others {
        net.send(&ipv4(&r, m));
    }
    assert_eq!(net.dropped(DropReason::IcmpIgnored), others.len() as u64);
    net.assert_silent();
}

#[test]
fn no_icmp_error_about_errors_fragments_or_broadcasts_item_38() {
    let mut net = Net::new();
    net.introduce_guest();
    // TTL 0 ICMP unreachable: no error about an error.
    let mut r = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    r.ttl = 0;
    assert!(net.exchange(&ipv4(&r, &icmp_message(3, 1, &[0; 28]))).is_empty());
    // But an error about a query is fine.
    let (_, t, _, _) = icmp_error(&net.exchange(&ipv4(&r, &echo_request(1, 1, b"")))[0]);
    assert_eq!(t, 11);
    // A lone non-first fragment with TTL 0: nothing (it waits for its set, silently).
    let mut frag = ip(GUEST_IP, OUTSIDE, IpProtocol::Udp);
    frag.ttl = 0;
    frag.frag_offset = 1480;
    assert!(net.exchange(&ipv4(&frag, &[0; 16])).is_empty());
    // Broadcast and multicast destinations, link broadcast, and unspecified sources.
    let quiet = [
        udp_frame(GUEST_IP, Ipv4Addr::new(10, 0, 2, 255), 1, 9999, b"x"),
        udp_frame(GUEST_IP, Ipv4Addr::BROADCAST, 1, 9999, b"x"),
        udp_frame(GUEST_IP, Ipv4Addr::new(224, 0, 0, 251), 5353, 5353, b"x"),
        {
            let mut f = udp_frame(GUEST_IP, GATEWAY, 1, 9999, b"x");
            f[..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
            f
        },
        udp_frame(Ipv4Addr::UNSPECIFIED, GATEWAY, 1, 9999, b"x"),
        udp_frame(Ipv4Addr::new(224, 0, 0, 1), GATEWAY, 1, 9999, b"x"),
    ];
    for f in &quiet {
        assert!(net.exchange(f).is_empty());
    }
    assert_eq!(net.slirp.stats().icmp_errors_sent, 1);
}

#[test]
fn icmp_error_quote_tos_ttl_and_source_item_39() {
    let mut net = Net::new();
    net.introduce_guest();
    let mut r = ip(GUEST_IP, DNS, IpProtocol::Udp);
    r.tos = 0xff;
    let dgram = ipv4_datagram(&r, &[], &udp(GUEST_IP, DNS, 1000, 9999, &data(1000)));
    let out = net.exchange(&eth(GUEST_MAC, GATEWAY_MAC, EtherType::Ipv4, &dgram));
    let (o, t, c, quote) = icmp_error(&out[0]);
    assert_eq!((t, c), (3, 3));
    assert_eq!(quote.len(), 548);
    assert_eq!(quote, &dgram[..548]);
    assert_eq!(20 + o.payload.len(), 576);
    assert_eq!((o.ip.tos, o.ip.ttl, o.ip.src_addr, o.ip.dst_addr), (0xde, 255, GATEWAY, GUEST_IP));
    assert_eq!(o.eth.dst_addr, GUEST_MAC);
}
