//! Engine-level behaviour tests, UDP and TCP before the NAT (a host without network), checksum and
//! length rules, restricted mode, bad sources.
//!
//! Hand-built guest frames in, emitted frames checked: every one also passes
//! `common::check_frame` (valid Ethernet + ARP/IPv4, checksums, >= 60 bytes, <= MTU + 14). Test
//! names carry the item number of the checklist in `shared/reference/tinyemu-behaviours.md` §13
//! where one applies; where the engine deliberately differs from the original slirp (documented
//! in the module docs of `slirp-core`), the test checks the documented behaviour and says so.

mod common;

use common::*;
use core::net::Ipv4Addr;
use slirp_core::wire::{DhcpMessageType, EtherType, EthernetAddress, IpProtocol, TcpControl, TcpPacket, TcpRepr};
use slirp_core::{Config, DropReason};

#[test]
fn udp_refusals_by_destination_with_a_host_without_network() {
    // `NoHost` opens no sockets and has no upstream resolver (see the `nat` module docs for the
    // address map): the DNS alias answers port unreachable, other subnet addresses host
    // unreachable, and flows the host cannot open (gateway → loopback, outside) net unreachable
    // (checklist item 48: a host failure becomes ICMP unreachable net).
    let mut net = Net::new();
    net.introduce_guest();
    let cases = [(DNS, 9999, 3), (DNS, 53, 3), (NET_9, 9999, 1), (GATEWAY, 9999, 0), (OUTSIDE, 53, 0)];
    for (dst, port, code) in cases {
        let (o, t, c, _) = icmp_error(&net.exchange(&udp_frame(GUEST_IP, dst, 1000, port, b"q"))[0]);
        assert_eq!((t, c), (3, code), "{dst}:{port}");
        assert_eq!(o.ip.src_addr, GATEWAY);
    }
    assert_eq!(net.dropped(DropReason::Ipv4NoRoute), 3);
    assert_eq!(net.dropped(DropReason::UdpNoSocket), 2);
    // With the host loopback alias disabled the gateway is administratively prohibited.
    let mut net = Net::with_config(Config { disable_host_loopback: true, ..Config::default() });
    net.introduce_guest();
    let (_, t, c, _) = icmp_error(&net.exchange(&udp_frame(GUEST_IP, GATEWAY, 1000, 9999, b"q"))[0]);
    assert_eq!((t, c), (3, 13));
}

#[test]
fn udp_checksum_and_length_rules_item_40() {
    let mut net = Net::new();
    let zero = Ipv4Addr::UNSPECIFIED;
    let bcast = Ipv4Addr::BROADCAST;
    let body = dhcp_bytes(&dhcp_msg(Some(DhcpMessageType::Discover), GUEST_MAC));
    let r = ip(zero, bcast, IpProtocol::Udp);
    let good = udp(zero, bcast, 68, 67, &body);
    let send = |net: &mut Net, d: &[u8]| {
        net.exchange(&eth(GUEST_MAC, EthernetAddress::BROADCAST, EtherType::Ipv4, &ipv4_datagram(&r, &[], d)))
    };
    // A bad non-zero checksum: dropped.
    let mut bad = good.clone();
    bad[6] ^= 0x55;
    assert!(send(&mut net, &bad).is_empty());
    assert_eq!(net.dropped(DropReason::UdpMalformed), 1);
    // UDP length beyond the IP payload: dropped.
    let mut long = good.clone();
    long[4..6].copy_from_slice(&((good.len() + 1) as u16).to_be_bytes());
    assert!(send(&mut net, &long).is_empty());
    assert_eq!(net.dropped(DropReason::UdpMalformed), 2);
    // A zero checksum: accepted.
    let mut nosum = good.clone();
    nosum[6..8].copy_from_slice(&[0, 0]);
    assert_eq!(send(&mut net, &nosum).len(), 1);
    // UDP length shorter than the IP payload: the datagram is the UDP length.
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0xee; 20]);
    assert_eq!(yiaddr(&dhcp_reply(&send(&mut net, &trailing)[0]).1), GUEST_IP);
}

#[test]
fn tcp_syn_gets_rst_ack_item_52() {
    let mut net = Net::new();
    net.introduce_guest();
    // With no host network the connect is refused at once: RST|ACK from the address dialled.
    for dst in [GATEWAY, OUTSIDE] {
        let syn = tcp_seg(40000, 80, TcpControl::Syn, 1000, None);
        let o = parse_ip(&net.exchange(&tcp_frame(GUEST_IP, dst, &syn))[0]);
        assert_eq!((o.ip.src_addr, o.ip.dst_addr, o.ip.ttl), (dst, GUEST_IP, 64));
        let p = TcpPacket::new_checked(&o.payload[..]).unwrap();
        let rst = TcpRepr::parse(&p, dst, GUEST_IP, true).unwrap();
        assert_eq!((rst.src_port, rst.dst_port), (80, 40000));
        assert_eq!(rst.control, TcpControl::Rst);
        assert_eq!(rst.seq_number.0, 0);
        assert_eq!(rst.ack_number.map(|a| a.0), Some(1001));
    }
    // Nobody lives at other addresses of the subnet: ICMP host unreachable quoting the SYN
    // (ports and sequence number, which the guest's stack checks).
    let syn = tcp_seg(40000, 80, TcpControl::Syn, 1000, None);
    let o = parse_ip(&net.exchange(&tcp_frame(GUEST_IP, NET_9, &syn))[0]);
    assert_eq!((o.ip.src_addr, o.ip.protocol), (GATEWAY, IpProtocol::Icmp));
    let (t, c, _, quote) = parse_icmp(&o.payload);
    assert_eq!((t, c), (3, 1));
    assert_eq!(&quote[16..20], &NET_9.octets());
    assert_eq!(&quote[20..22], &40000u16.to_be_bytes());
    assert_eq!(&quote[24..28], &1000u32.to_be_bytes());
}

#[test]
fn segment_without_connection_gets_rst_item_56() {
    let mut net = Net::new();
    net.introduce_guest();
    let rst_of = |net: &mut Net, seg: &TcpRepr<'_>| {
        let o = parse_ip(&net.exchange(&tcp_frame(GUEST_IP, OUTSIDE, seg))[0]);
        let p = TcpPacket::new_checked(&o.payload[..]).unwrap();
        let r = TcpRepr::parse(&p, OUTSIDE, GUEST_IP, true).unwrap();
        assert_eq!(r.control, TcpControl::Rst);
        (r.seq_number.0, r.ack_number.map(|a| a.0))
    };
    // With ACK: seq = their ack, no ACK flag.
    assert_eq!(rst_of(&mut net, &tcp_seg(40000, 80, TcpControl::None, 5, Some(777))), (777, None));
    // Without ACK: RST|ACK acking the segment's sequence space.
    let mut data_seg = tcp_seg(40000, 80, TcpControl::Psh, 100, None);
    data_seg.payload = b"0123456789";
    assert_eq!(rst_of(&mut net, &data_seg), (0, Some(110)));
    assert_eq!(rst_of(&mut net, &tcp_seg(40000, 80, TcpControl::Fin, 100, None)), (0, Some(101)));
    // A RST is never answered; broadcasts get nothing; a bad checksum is dropped.
    assert!(net.exchange(&tcp_frame(GUEST_IP, OUTSIDE, &tcp_seg(1, 2, TcpControl::Rst, 5, None))).is_empty());
    let syn = tcp_seg(40000, 80, TcpControl::Syn, 1, None);
    assert!(net.exchange(&tcp_frame(GUEST_IP, Ipv4Addr::new(10, 0, 2, 255), &syn)).is_empty());
    let mut bad = tcp_frame(GUEST_IP, OUTSIDE, &syn);
    bad[14 + 20 + 16] ^= 1;
    assert!(net.exchange(&bad).is_empty());
    assert_eq!(net.dropped(DropReason::TcpMalformed), 1);
}

#[test]
fn restricted_mode_drops_outside_traffic() {
    let mut net = Net::with_config(Config { restricted: true, ..Config::default() });
    net.introduce_guest();
    assert!(net.exchange(&udp_frame(GUEST_IP, OUTSIDE, 1, 53, b"q")).is_empty());
    assert!(net.exchange(&udp_frame(GUEST_IP, NET_9, 1, 53, b"q")).is_empty());
    assert!(net.exchange(&ping(GUEST_IP, OUTSIDE, 1, 1, b"x")).is_empty());
    assert_eq!(net.dropped(DropReason::Restricted), 3);
    // TCP is refused with a RST (fails fast), still counted.
    let syn = tcp_seg(40000, 443, TcpControl::Syn, 1, None);
    let o = parse_ip(&net.exchange(&tcp_frame(GUEST_IP, OUTSIDE, &syn))[0]);
    assert_eq!(TcpPacket::new_checked(&o.payload[..]).unwrap().flags() & 0x04, 0x04);
    assert_eq!(net.dropped(DropReason::Restricted), 4);
    // UDP to the virtual addresses is not forwarded either (no host loopback, no DNS).
    assert!(net.exchange(&udp_frame(GUEST_IP, GATEWAY, 1, 9999, b"q")).is_empty());
    assert!(net.exchange(&udp_frame(GUEST_IP, DNS, 1, 53, b"q")).is_empty());
    assert_eq!(net.dropped(DropReason::Restricted), 6);
    // The link services still answer: ping and DHCP.
    assert_eq!(echo_reply(&net.exchange(&ping(GUEST_IP, GATEWAY, 1, 1, b"x"))[0]).2, 1);
    assert_eq!(net.exchange(&discover(GUEST_MAC)).len(), 1);
}

#[test]
fn bad_sources_dropped() {
    let mut net = Net::new();
    net.introduce_guest();
    for src in [
        GATEWAY,
        DNS,
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 5),
        Ipv4Addr::new(10, 0, 2, 255),
    ] {
        assert!(net.exchange(&ping(src, GATEWAY, 1, 1, b"x")).is_empty(), "{src}");
    }
    assert_eq!(net.dropped(DropReason::Ipv4BadSource), 6);
}
