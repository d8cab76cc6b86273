//! Engine-level behaviour tests, Ethernet and ARP: replies for the virtual addresses, learning the
//! guest's MAC, the hold queue for unresolved guests, the neighbor table.
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
use slirp_core::wire::{ArpOperation, EtherType, EthernetAddress, TcpControl};
use slirp_core::DropReason;

#[test]
fn arp_reply_for_gateway_and_dns_item_1() {
    let mut net = Net::new();
    for (target, mac) in [(GATEWAY, GATEWAY_MAC), (DNS, DNS_MAC)] {
        let f = net.exchange(&arp_request(GUEST_MAC, GUEST_IP, target)).pop().expect("a reply");
        // Deliberate deviation: padded to the 60-byte Ethernet minimum (the original sent 64).
        assert_eq!(f.len(), 60);
        assert!(f[42..].iter().all(|&b| b == 0), "zero padding");
        let (eth, arp) = parse_arp(&f);
        assert_eq!((eth.src_addr, eth.dst_addr), (mac, GUEST_MAC));
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!((arp.source_hardware_addr, arp.source_protocol_addr), (mac, target));
        assert_eq!((arp.target_hardware_addr, arp.target_protocol_addr), (GUEST_MAC, GUEST_IP));
        net.assert_silent();
    }
}

#[test]
fn arp_no_reply_for_other_addresses_item_2() {
    let mut net = Net::new();
    let targets =
        [Ipv4Addr::new(10, 0, 2, 4), GUEST2_IP, Ipv4Addr::new(10, 0, 2, 255), Ipv4Addr::new(10, 0, 2, 0), OUTSIDE];
    for t in targets {
        assert!(net.exchange(&arp_request(GUEST_MAC, GUEST_IP, t)).is_empty(), "ARP for {t}");
    }
    assert_eq!(net.dropped(DropReason::ArpNotForUs), targets.len() as u64);
    // A guest probing its own address (gratuitous ARP) gets no answer either.
    assert!(net.exchange(&arp_request(GUEST_MAC, GUEST_IP, GUEST_IP)).is_empty());
    // Item 3 (ARP for exec/forwarding addresses such as 10.0.2.4) arrives with forwarding rules.
}

#[test]
fn arp_request_teaches_guest_mac_item_4() {
    let mut net = Net::new();
    let x = EthernetAddress([0x02, 0xaa, 0, 0, 0, 0x0f]);
    assert_eq!(net.exchange(&from_mac(arp_request(x, GUEST_IP, GATEWAY), x)).len(), 1);
    assert_eq!(net.slirp.neighbors().collect::<Vec<_>>(), vec![(GUEST_IP.into(), x)]);
    // A frame that teaches nothing (zero source MAC): the reply goes to the ARP-learned MAC.
    let (o, ..) = echo_reply(&net.exchange(&anonymous_ping(1, b"hi"))[0]);
    assert_eq!(o.eth.dst_addr, x);
    // The guest changes its MAC and says so: later frames follow.
    let z = EthernetAddress([0x02, 0xbb, 0, 0, 0, 0x0f]);
    assert_eq!(net.exchange(&from_mac(arp_request(z, GUEST_IP, DNS), z)).len(), 1);
    let (o, ..) = echo_reply(&net.exchange(&anonymous_ping(2, b"hi"))[0]);
    assert_eq!(o.eth.dst_addr, z);
}

#[test]
fn verified_ip_frames_refresh_the_guest_mac() {
    // Deliberate: ARP has no checksum, so a verified IPv4 header from a guest address also
    // teaches (and corrects) its MAC.
    let mut net = Net::new();
    net.introduce_guest();
    let y = EthernetAddress([0x02, 0xcc, 0, 0, 0, 0x0f]);
    let (o, ..) = echo_reply(&net.exchange(&from_mac(ping(GUEST_IP, GATEWAY, 1, 1, b"x"), y))[0]);
    assert_eq!(o.eth.dst_addr, y);
    assert_eq!(net.slirp.neighbors().collect::<Vec<_>>(), vec![(GUEST_IP.into(), y)]);
    // A frame with a bad header checksum teaches nothing.
    let mut bad = ping(GUEST_IP, GATEWAY, 1, 2, b"x");
    bad[24] ^= 1;
    net.send(&bad);
    assert_eq!(net.slirp.neighbors().collect::<Vec<_>>(), vec![(GUEST_IP.into(), y)]);
    // Nor do frames from outside the subnet, or from a group MAC.
    net.send(&from_mac(ping(Ipv4Addr::new(192, 168, 1, 5), GATEWAY, 1, 1, b"x"), GUEST2_MAC));
    net.send(&from_mac(ping(GUEST_IP, GATEWAY, 1, 3, b"x"), EthernetAddress([0x01, 0, 0x5e, 0, 0, 1])));
    net.recv();
    assert_eq!(net.slirp.neighbors().collect::<Vec<_>>(), vec![(GUEST_IP.into(), y)]);
}

#[test]
fn unknown_guest_mac_holds_packet_and_sends_arp_request_item_5() {
    let mut net = Net::new();
    // Deliberate deviation: the reply is held (not dropped) while we ask.
    let out = net.exchange(&anonymous_ping(9, b"held ping"));
    assert_eq!(out.len(), 1);
    let f = &out[0];
    assert_eq!(f.len(), 60, "ARP request padded to 60 bytes (original: 42)");
    let (eth, arp) = parse_arp(f);
    assert_eq!((eth.src_addr, eth.dst_addr), (GATEWAY_MAC, EthernetAddress::BROADCAST));
    assert_eq!(arp.operation, ArpOperation::Request);
    assert_eq!((arp.source_hardware_addr, arp.source_protocol_addr), (GATEWAY_MAC, GATEWAY));
    assert_eq!((arp.target_hardware_addr, arp.target_protocol_addr), (EthernetAddress::ZERO, GUEST_IP));
    assert_eq!(net.slirp.stats().arp_requests_sent, 1);
    assert_eq!(net.slirp.poll_at(), Some(net.now + Duration::from_secs(1)));
    // The guest answers: the held reply goes out to it.
    let out = net.exchange(&arp_reply(GUEST_MAC, GUEST_IP));
    assert_eq!(out.len(), 1);
    let (o, ident, seq, body) = echo_reply(&out[0]);
    assert_eq!(o.eth.dst_addr, GUEST_MAC);
    assert_eq!((ident, seq, &body[..]), (7, 9, &b"held ping"[..]));
    assert_eq!(net.slirp.poll_at(), None);
}

#[test]
fn held_packet_dropped_after_arp_hold_timeout() {
    let mut net = Net::new();
    assert_eq!(net.exchange(&anonymous_ping(1, b"x")).len(), 1);
    net.advance(999);
    assert_eq!(net.dropped(DropReason::ArpHoldTimeout), 0);
    net.advance(1);
    assert_eq!(net.dropped(DropReason::ArpHoldTimeout), 1);
    assert_eq!(net.slirp.poll_at(), None);
    // A late answer releases nothing.
    assert!(net.exchange(&arp_reply(GUEST_MAC, GUEST_IP)).is_empty());
}

#[test]
fn burst_for_unresolved_guest_sends_one_arp_request_and_releases_in_order() {
    let mut net = Net::new();
    for seq in 0..3 {
        net.send(&anonymous_ping(seq, b"burst"));
    }
    assert_eq!(net.recv().len(), 1, "one ARP request for the burst");
    // After 250 ms a new packet asks again.
    net.advance(250);
    net.send(&anonymous_ping(3, b"burst"));
    assert_eq!(parse_arp(&net.recv_one()).1.target_protocol_addr, GUEST_IP);
    let out = net.exchange(&arp_reply(GUEST_MAC, GUEST_IP));
    let seqs: Vec<u16> = out.iter().map(|f| echo_reply(f).2).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
}

#[test]
fn held_packet_behind_an_unresolved_one_waits_at_most_one_timeout() {
    // Documented: the hold queue is FIFO, so a resolved packet behind an unresolved head goes
    // out when the head times out.
    let mut net = Net::new();
    net.send(&anonymous_ping(1, b"for .15"));
    net.send(&from_mac(ping(GUEST2_IP, GATEWAY, 7, 2, b"for .16"), EthernetAddress::ZERO));
    let asked: Vec<Ipv4Addr> = net.recv().iter().map(|f| parse_arp(f).1.target_protocol_addr).collect();
    assert_eq!(asked, vec![GUEST_IP, GUEST2_IP]);
    assert!(net.exchange(&arp_reply(GUEST2_MAC, GUEST2_IP)).is_empty());
    net.advance(1_000);
    let out = net.recv();
    assert_eq!(out.len(), 1);
    let (o, _, seq, _) = echo_reply(&out[0]);
    assert_eq!((o.eth.dst_addr, o.ip.dst_addr, seq), (GUEST2_MAC, GUEST2_IP, 2));
    assert_eq!(net.dropped(DropReason::ArpHoldTimeout), 1);
}

#[test]
fn neighbor_table_full_evicts_the_entry_seen_longest_ago() {
    let mut net = Net::new();
    // The table holds 32 addresses (both families share it).
    for i in 0..32u8 {
        let mac = EthernetAddress([2, 0, 0, 0, 2, i]);
        net.send(&from_mac(arp_request(mac, Ipv4Addr::new(10, 0, 2, 15 + i), GATEWAY), mac));
        net.advance(10);
    }
    assert_eq!(net.slirp.neighbors().count(), 32);
    net.send(&from_mac(arp_request(GUEST2_MAC, Ipv4Addr::new(10, 0, 2, 60), GATEWAY), GUEST2_MAC));
    assert_eq!(net.slirp.neighbors().count(), 32);
    assert!(net.slirp.neighbors().all(|(ip, _)| ip != GUEST_IP), "10.0.2.15 was seen longest ago");
    net.recv();
    // A reply to the evicted guest needs ARP again.
    assert_eq!(parse_arp(&net.exchange(&anonymous_ping(1, b"x"))[0]).1.target_protocol_addr, GUEST_IP);
}

#[test]
fn arp_reply_from_other_ip_does_not_resolve_item_6() {
    let mut net = Net::new();
    assert_eq!(net.exchange(&anonymous_ping(1, b"x")).len(), 1);
    // Another guest's reply teaches us that guest (deliberate: any subnet host), nothing more.
    assert!(net.exchange(&arp_reply(GUEST2_MAC, GUEST2_IP)).is_empty());
    assert_eq!(net.slirp.neighbors().collect::<Vec<_>>(), vec![(GUEST2_IP.into(), GUEST2_MAC)]);
    // Replies claiming our addresses, outside addresses, broadcast, or a group MAC teach nothing.
    let bogus = [
        arp_reply(GUEST_MAC, GATEWAY),
        arp_reply(GUEST_MAC, DNS),
        arp_reply(GUEST_MAC, OUTSIDE),
        arp_reply(GUEST_MAC, Ipv4Addr::new(10, 0, 2, 255)),
        arp_reply(EthernetAddress::BROADCAST, GUEST_IP),
        arp_reply(EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]), GUEST_IP),
        arp_reply(EthernetAddress::ZERO, GUEST_IP),
    ];
    for f in &bogus {
        assert!(net.exchange(f).is_empty());
    }
    assert_eq!(net.slirp.neighbors().count(), 1);
    // The queried guest's reply resolves it.
    let out = net.exchange(&arp_reply(GUEST_MAC, GUEST_IP));
    assert_eq!(echo_reply(&out[0]).0.eth.dst_addr, GUEST_MAC);
}

#[test]
fn gratuitous_arp_teaches_guest_mac() {
    let mut net = Net::new();
    assert!(net.exchange(&arp_request(GUEST_MAC, GUEST_IP, GUEST_IP)).is_empty());
    let out = net.exchange(&anonymous_ping(1, b"x"));
    assert_eq!(echo_reply(&out[0]).0.eth.dst_addr, GUEST_MAC);
}

#[test]
fn guest_outside_the_subnet_is_answered_at_its_source_mac() {
    let mut net = Net::new();
    let stray = Ipv4Addr::new(192, 168, 1, 5);
    let out = net.exchange(&ping(stray, GATEWAY, 1, 1, b"x"));
    let (o, ..) = echo_reply(&out[0]);
    assert_eq!((o.eth.dst_addr, o.ip.dst_addr), (GUEST_MAC, stray));
    assert_eq!(net.slirp.stats().arp_requests_sent, 0);
}

#[test]
fn every_ip_frame_comes_from_gateway_mac_item_7() {
    let mut net = Net::new();
    net.introduce_guest();
    let (o, ..) = echo_reply(&net.exchange(&ping(GUEST_IP, DNS, 1, 1, b"x"))[0]);
    assert_eq!((o.ip.src_addr, o.eth.src_addr), (DNS, GATEWAY_MAC));
    let syn = tcp_seg(40000, 80, TcpControl::Syn, 1, None);
    let o = parse_ip(&net.exchange(&tcp_frame(GUEST_IP, OUTSIDE, &syn))[0]);
    assert_eq!((o.ip.src_addr, o.eth.src_addr), (OUTSIDE, GATEWAY_MAC));
    let o = parse_ip(&net.exchange(&udp_frame(GUEST_IP, OUTSIDE, 1, 53, b"q"))[0]);
    assert_eq!((o.ip.src_addr, o.eth.src_addr), (GATEWAY, GATEWAY_MAC));
}

#[test]
fn short_frames_and_other_ethertypes_ignored_item_8() {
    let mut net = Net::new();
    for len in 0..14 {
        net.send(&vec![0xffu8; len]);
    }
    assert_eq!(net.dropped(DropReason::EthernetTruncated), 14);
    let v6 = eth(GUEST_MAC, GATEWAY_MAC, EtherType::Ipv6, &[0x60; 40]);
    let vlan = eth(GUEST_MAC, GATEWAY_MAC, EtherType::Unknown(0x8100), &ping(GUEST_IP, GATEWAY, 1, 1, b"x")[12..]);
    net.send(&v6);
    net.send(&vlan);
    // IPv6 is off by default: counted as such, never answered.
    assert_eq!(net.dropped(DropReason::Ipv6Disabled), 1);
    assert_eq!(net.dropped(DropReason::EthernetUnknownType), 1);
    net.assert_silent();
    assert_eq!(net.slirp.stats().rx_frames, 16);
}

#[test]
fn frames_processed_whatever_their_destination_mac_item_8() {
    let mut net = Net::new();
    let mut f = arp_request(GUEST_MAC, GUEST_IP, GATEWAY);
    f[..6].copy_from_slice(&[0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
    assert_eq!(net.exchange(&f).len(), 1);
    let mut p = ping(GUEST_IP, GATEWAY, 1, 1, b"x");
    p[..6].copy_from_slice(&[0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
    assert_eq!(echo_reply(&net.exchange(&p)[0]).2, 1);
}

#[test]
fn a_frame_that_moves_a_known_guest_mac_is_confirmed_by_arp() {
    // Nothing covers a frame's source MAC once the link dropped its FCS: a frame damaged there
    // (IP and transport checksums intact) must not send the guest's traffic to a MAC nobody has
    // for good. The core asks; the real guest's answer puts its MAC back.
    let mut net = Net::new();
    net.introduce_guest();
    let damaged = EthernetAddress([0x0a, 0x00, 0x00, 0x00, 0x00, 0x01]);
    let out = net.exchange(&from_mac(ping(GUEST_IP, GATEWAY, 1, 1, b"x"), damaged));
    assert_eq!(out.len(), 2, "the echo reply, then an ARP request");
    let (o, ..) = echo_reply(&out[0]);
    assert_eq!(o.eth.dst_addr, damaged, "the reply goes where the request came from");
    let (eth, arp) = parse_arp(&out[1]);
    assert_eq!((eth.dst_addr, arp.operation), (EthernetAddress::BROADCAST, ArpOperation::Request));
    assert_eq!(arp.target_protocol_addr, GUEST_IP);
    assert!(net.exchange(&arp_reply(GUEST_MAC, GUEST_IP)).is_empty());
    assert_eq!(net.slirp.neighbors().collect::<Vec<_>>(), vec![(GUEST_IP.into(), GUEST_MAC)]);
    // A frame from the MAC already known asks nothing.
    let out = net.exchange(&from_mac(ping(GUEST_IP, GATEWAY, 1, 2, b"x"), GUEST_MAC));
    assert_eq!(out.len(), 1, "only the echo reply");
}
