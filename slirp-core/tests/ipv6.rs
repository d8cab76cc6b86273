//! IPv6 toward the guest, frame by frame: Neighbor Discovery, Router Advertisements, DHCPv6,
//! ICMPv6 echo and errors, extension headers, fragments both ways, and hostile input.

mod common;

use common::*;
use core::net::Ipv6Addr;
use proptest::prelude::*;
use slirp_core::wire::dhcpv6::{self, msg, opt, Dhcpv6Message, Options, Writer};
use slirp_core::wire::icmpv6::{self, na_flags, option};
use slirp_core::wire::ipv6::{self as ip6, next_header, HEADER_LEN as IP6_LEN};
use slirp_core::wire::{EtherType, EthernetAddress, EthernetFrame, Icmpv6Packet, Ipv6Packet, Ipv6Repr, UdpPacket};
use slirp_core::{Config, DropReason, Ipv6Config};

const PREFIX: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0);
const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const DNS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const DNS_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3);
const GUEST_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 1);
const GUEST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
const WORLD6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

fn config() -> Config {
    Config {
        ipv6: Ipv6Config { enabled: true, ..Ipv6Config::with_prefix(PREFIX, 64) },
        search: Some(heapless::String::try_from("example.test").unwrap()),
        ..Config::default()
    }
}

fn net() -> Net {
    Net::with_config(config())
}

/// An IPv6 packet: fixed header (`next`, `hop`) and `payload`.
fn ip6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: next,
        payload_len: payload.len(),
        hop_limit: hop,
        traffic_class: 0,
    };
    let mut b = vec![0u8; IP6_LEN + payload.len()];
    repr.emit(&mut b);
    b[IP6_LEN..].copy_from_slice(payload);
    b
}

/// An ICMPv6 message with its checksum.
fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, t: u8, code: u8, word: u32, body: &[u8]) -> Vec<u8> {
    let mut head = [0u8; 8];
    icmpv6::emit_header(&mut head, src, dst, t, code, word, body);
    [&head[..], body].concat()
}

/// A guest frame (from GUEST_MAC) carrying an IPv6 packet to `dst_mac`.
fn frame6(dst_mac: EthernetAddress, packet: &[u8]) -> Vec<u8> {
    eth(GUEST_MAC, dst_mac, EtherType::Ipv6, packet)
}

fn mcast_mac(a: Ipv6Addr) -> EthernetAddress {
    EthernetAddress::from_ipv6_multicast(a)
}

fn ping6(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let m = icmp6(src, dst, icmpv6::ECHO_REQUEST, 0, (u32::from(ident) << 16) | u32::from(seq), data);
    frame6(GATEWAY_MAC, &ip6(src, dst, next_header::ICMPV6, hop, &m))
}

fn neighbor_solicit(src: Ipv6Addr, target: Ipv6Addr, hop: u8, with_ll: bool) -> Vec<u8> {
    let dst = if src.is_unspecified() || with_ll { ip6::solicited_node(target) } else { target };
    let mut m = [0u8; icmpv6::NEIGHBOR_MSG_LEN];
    let n = icmpv6::emit_neighbor(&mut m, icmpv6::NEIGHBOR_SOLICIT, src, dst, 0, target, GUEST_MAC);
    let m = if with_ll { &m[..n] } else { &m[..24] };
    // Without the option, the checksum must be computed over what is sent.
    let m = icmp6(src, dst, icmpv6::NEIGHBOR_SOLICIT, 0, 0, &m[8..]);
    frame6(mcast_mac(dst), &ip6(src, dst, next_header::ICMPV6, hop, &m))
}

fn router_solicit(src: Ipv6Addr) -> Vec<u8> {
    let mut body = vec![0u8; 4];
    if !src.is_unspecified() {
        body.extend_from_slice(&[option::SOURCE_LL, 1]);
        body.extend_from_slice(&GUEST_MAC.0);
    }
    let m = icmp6(src, ip6::ALL_ROUTERS, icmpv6::ROUTER_SOLICIT, 0, 0, &body[4..]);
    frame6(mcast_mac(ip6::ALL_ROUTERS), &ip6(src, ip6::ALL_ROUTERS, next_header::ICMPV6, 255, &m))
}

/// An IPv6 frame the engine sent: Ethernet destination, IPv6 header, payload.
struct Out6 {
    dst_mac: EthernetAddress,
    repr: Ipv6Repr,
    payload: Vec<u8>,
}

fn parse6(frame: &[u8]) -> Out6 {
    let f = EthernetFrame::new_checked(frame).unwrap();
    assert_eq!(f.ethertype(), EtherType::Ipv6, "not IPv6: {frame:02x?}");
    let p = Ipv6Packet::new_checked(f.payload()).unwrap();
    let repr = Ipv6Repr::parse(&p).unwrap();
    Out6 { dst_mac: f.dst_addr(), repr, payload: p.payload().to_vec() }
}

/// ICMPv6 (type, code, word, body) of an output frame, checksum verified.
fn icmp_of(o: &Out6) -> (u8, u8, u32, Vec<u8>) {
    assert_eq!(o.repr.next_header, next_header::ICMPV6);
    let p = Icmpv6Packet::new_checked(&o.payload[..]).unwrap();
    assert!(p.verify_checksum(o.repr.src_addr, o.repr.dst_addr), "ICMPv6 checksum");
    (p.msg_type(), p.code(), p.word(), o.payload[8..].to_vec())
}

/// NDP options (type, data after the 2-byte header) of a message body.
fn nd_options(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut v = Vec::new();
    while b.len() >= 8 {
        let len = usize::from(b[1]) * 8;
        assert!(len > 0 && len <= b.len(), "bad option length");
        v.push((b[0], b[2..len].to_vec()));
        b = &b[len..];
    }
    assert!(b.is_empty(), "trailing bytes after the options");
    v
}

#[test]
fn ipv6_is_dropped_and_counted_when_off() {
    let mut n = Net::new();
    n.send(&ping6(GUEST_LL, ROUTER, 64, 1, 1, b"x"));
    n.assert_silent();
    assert_eq!(n.dropped(DropReason::Ipv6Disabled), 1);
}

#[test]
fn neighbor_solicitations_for_our_addresses_are_answered() {
    let mut n = net();
    for (target, router) in [(ROUTER, true), (ROUTER_LL, true), (DNS6, false), (DNS_LL, false)] {
        let o = parse6(&n.exchange(&neighbor_solicit(GUEST_LL, target, 255, true)).pop().unwrap());
        assert_eq!(o.dst_mac, GUEST_MAC);
        assert_eq!((o.repr.src_addr, o.repr.dst_addr, o.repr.hop_limit), (target, GUEST_LL, 255));
        let (t, code, flags, body) = icmp_of(&o);
        assert_eq!((t, code), (icmpv6::NEIGHBOR_ADVERT, 0));
        let want = na_flags::SOLICITED | na_flags::OVERRIDE | if router { na_flags::ROUTER } else { 0 };
        assert_eq!(flags, want, "{target}");
        assert_eq!(&body[..16], &target.octets());
        assert_eq!(nd_options(&body[16..]), vec![(option::TARGET_LL, GATEWAY_MAC.0.to_vec())]);
    }
    // The solicitation taught the engine the guest's link-local address.
    assert!(n.slirp.neighbors().any(|(a, m)| a == GUEST_LL && m == GUEST_MAC));
    // A unicast NS without a source link-layer option is answered at the frame's MAC.
    let o = parse6(&n.exchange(&neighbor_solicit(GUEST_LL, ROUTER, 255, false)).pop().unwrap());
    assert_eq!(o.dst_mac, GUEST_MAC);
}

#[test]
fn neighbor_solicitations_that_crossed_a_router_dad_probes_and_strangers_get_nothing() {
    let mut n = net();
    let before = n.dropped(DropReason::Icmpv6Malformed);
    n.send(&neighbor_solicit(GUEST_LL, ROUTER, 64, true));
    n.assert_silent();
    assert_eq!(n.dropped(DropReason::Icmpv6Malformed), before + 1, "hop limit 64");
    // Duplicate Address Detection for the guest's own address, and for ours.
    n.send(&neighbor_solicit(Ipv6Addr::UNSPECIFIED, GUEST6, 255, false));
    n.send(&neighbor_solicit(Ipv6Addr::UNSPECIFIED, ROUTER, 255, false));
    n.assert_silent();
    // An address nobody has.
    n.send(&neighbor_solicit(GUEST_LL, Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9), 255, true));
    n.assert_silent();
}

fn check_ra(o: &Out6, search: bool) {
    assert_eq!((o.repr.src_addr, o.repr.hop_limit), (ROUTER_LL, 255));
    let (t, code, word, body) = icmp_of(o);
    assert_eq!((t, code), (icmpv6::ROUTER_ADVERT, 0));
    let [hop, flags, life_hi, life_lo] = word.to_be_bytes();
    assert_eq!(hop, 64);
    assert_eq!(flags, 0xc0, "M and O: DHCPv6 with addresses is on");
    assert!(u16::from_be_bytes([life_hi, life_lo]) >= 600, "a default router");
    let opts = nd_options(&body[8..]);
    let get = |ty| opts.iter().find(|(t, _)| *t == ty).map(|(_, d)| d.clone());
    assert_eq!(get(option::SOURCE_LL).unwrap(), GATEWAY_MAC.0);
    assert_eq!(get(option::MTU).unwrap(), [0, 0, 0, 0, 0x05, 0xdc]);
    let p = get(option::PREFIX_INFO).unwrap();
    assert_eq!((p[0], p[1]), (64, 0xc0), "on-link and autonomous");
    assert_eq!(&p[14..30], &PREFIX.octets());
    let r = get(option::RDNSS).unwrap();
    assert_eq!(&r[6..22], &DNS6.octets());
    assert_eq!(get(option::DNSSL).is_some(), search);
    if search {
        let d = get(option::DNSSL).unwrap();
        assert_eq!(&d[6..20], b"\x07example\x04test\x00");
    }
}

#[test]
fn router_solicitation_gets_a_router_advertisement_for_slaac() {
    let mut n = net();
    let o = parse6(&n.exchange(&router_solicit(GUEST_LL)).pop().unwrap());
    assert_eq!((o.repr.dst_addr, o.dst_mac), (GUEST_LL, GUEST_MAC), "unicast to the solicitor");
    check_ra(&o, true);
    // From an address-less guest: to all nodes.
    let o = parse6(&n.exchange(&router_solicit(Ipv6Addr::UNSPECIFIED)).pop().unwrap());
    assert_eq!(o.repr.dst_addr, ip6::ALL_NODES);
    assert_eq!(o.dst_mac, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
    check_ra(&o, true);
    // No search list, no DNSSL.
    let mut plain = Net::with_config(Config { search: None, ..config() });
    check_ra(&parse6(&plain.exchange(&router_solicit(GUEST_LL)).pop().unwrap()), false);
    assert_eq!(n.slirp.stats().router_adverts_sent, 2);
}

#[test]
fn router_advertisements_are_also_periodic() {
    let mut n = net();
    let interval = config().ipv6.ra_interval.as_millis() as u64;
    n.advance(1);
    let o = parse6(&n.recv_one());
    assert_eq!(o.repr.dst_addr, ip6::ALL_NODES);
    check_ra(&o, true);
    n.advance(interval - 10);
    n.assert_silent();
    n.advance(20);
    check_ra(&parse6(&n.recv_one()), true);
}

#[test]
fn echo_to_the_router_and_dns_addresses_is_answered() {
    let mut n = net();
    for (src, dst) in [(GUEST6, ROUTER), (GUEST6, DNS6), (GUEST_LL, ROUTER_LL), (GUEST_LL, DNS_LL)] {
        let o = parse6(&n.exchange(&ping6(src, dst, 64, 0x1234, 7, b"hello six")).pop().unwrap());
        assert_eq!((o.repr.src_addr, o.repr.dst_addr), (dst, src));
        let (t, code, word, body) = icmp_of(&o);
        assert_eq!((t, code, word), (icmpv6::ECHO_REPLY, 0, 0x1234_0007));
        assert_eq!(body, b"hello six");
    }
    // Another address of the prefix: nobody is there.
    let o =
        parse6(&n.exchange(&ping6(GUEST6, Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9), 64, 1, 1, b"?")).pop().unwrap());
    let (t, code, _, _) = icmp_of(&o);
    assert_eq!((t, code), (icmpv6::DST_UNREACHABLE, icmpv6::unreach::ADDRESS));
}

#[test]
fn hop_limit_one_to_the_world_is_time_exceeded() {
    let mut n = net();
    let sent = ping6(GUEST6, WORLD6, 1, 5, 5, b"ttl");
    let o = parse6(&n.exchange(&sent).pop().unwrap());
    assert_eq!((o.repr.src_addr, o.repr.dst_addr), (ROUTER, GUEST6));
    let (t, code, _, quote) = icmp_of(&o);
    assert_eq!((t, code), (icmpv6::TIME_EXCEEDED, 0));
    assert_eq!(quote, &sent[14..], "the whole packet is quoted");
    assert_eq!(n.dropped(DropReason::Ipv6HopLimit), 1);
}

#[test]
fn a_packet_larger_than_the_mtu_gets_packet_too_big() {
    let mut n = net();
    let data = vec![0x5a; 1600];
    let sent = ping6(GUEST6, WORLD6, 64, 9, 9, &data);
    // The engine's input accepts what the link carries; the guest ignored the MTU.
    let out = n.exchange(&sent);
    let o = parse6(&out[0]);
    let (t, code, mtu, quote) = icmp_of(&o);
    assert_eq!((t, code, mtu), (icmpv6::PACKET_TOO_BIG, 0, 1500));
    assert!(IP6_LEN + o.payload.len() <= 1280, "an error fits the minimum MTU");
    assert_eq!(&quote[..], &sent[14..14 + quote.len()]);
    assert_eq!(n.dropped(DropReason::Ipv6TooBig), 1);
}

#[test]
fn unknown_next_header_and_routing_type_0_get_parameter_problems() {
    let mut n = net();
    let o = parse6(&n.exchange(&frame6(GATEWAY_MAC, &ip6(GUEST6, ROUTER, 253, 64, &[0; 16]))).pop().unwrap());
    let (t, code, pointer, _) = icmp_of(&o);
    assert_eq!((t, code, pointer), (icmpv6::PARAM_PROBLEM, icmpv6::param::NEXT_HEADER, 6));
    // Behind a destination options header, the pointer names that header's next-header field.
    let mut payload = vec![253, 0, 1, 4, 0, 0, 0, 0];
    payload.extend_from_slice(&[0; 8]);
    let o = parse6(
        &n.exchange(&frame6(GATEWAY_MAC, &ip6(GUEST6, ROUTER, next_header::DST_OPTS, 64, &payload))).pop().unwrap(),
    );
    assert_eq!(icmp_of(&o).2, 40);
    // Routing header type 0 with segments left (RFC 5095).
    let mut rh0 = vec![next_header::NO_NEXT, 2, 0, 1, 0, 0, 0, 0];
    rh0.extend_from_slice(&WORLD6.octets());
    let o =
        parse6(&n.exchange(&frame6(GATEWAY_MAC, &ip6(GUEST6, WORLD6, next_header::ROUTING, 64, &rh0))).pop().unwrap());
    let (t, code, _, _) = icmp_of(&o);
    assert_eq!((t, code), (icmpv6::PARAM_PROBLEM, icmpv6::param::HEADER));
    assert!(n.dropped(DropReason::Ipv6ExtensionHeader) >= 1);
}

/// Fragments of `packet` (its payload after the fixed header), each carrying `chunk` bytes.
fn fragments(packet: &[u8], ident: u32, chunk: usize) -> Vec<Vec<u8>> {
    let repr = Ipv6Repr::parse(&Ipv6Packet::new_checked(packet).unwrap()).unwrap();
    let body = &packet[IP6_LEN..];
    let mut out = Vec::new();
    let mut off = 0;
    while off < body.len() {
        let n = (body.len() - off).min(chunk);
        let more = off + n < body.len();
        let mut p = vec![0u8; 8 + n];
        ip6::emit_fragment_header(&mut p, repr.next_header, off as u16, more, ident);
        p[8..].copy_from_slice(&body[off..off + n]);
        out.push(frame6(GATEWAY_MAC, &ip6(repr.src_addr, repr.dst_addr, next_header::FRAGMENT, 64, &p)));
        off += n;
    }
    out
}

#[test]
fn fragmented_echo_is_reassembled_and_the_reply_fragmented() {
    let mut n = net();
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let whole = ping6(GUEST6, ROUTER, 64, 0x77, 3, &data);
    let mut frags = fragments(&whole[14..], 0xdead_beef, 1232);
    frags.reverse();
    let mut out = Vec::new();
    for f in &frags {
        out.extend(n.exchange(f));
    }
    assert_eq!(n.slirp.stats().reassembled, 1);
    assert!(out.len() >= 3, "a 3 kB reply in MTU-sized fragments");
    // Put the reply back together.
    let mut body = Vec::new();
    let mut ident = None;
    for f in &out {
        let o = parse6(f);
        assert_eq!(o.repr.next_header, next_header::FRAGMENT);
        let off = usize::from(u16::from_be_bytes([o.payload[2], o.payload[3]]) & !7);
        let id = u32::from_be_bytes(o.payload[4..8].try_into().unwrap());
        assert_eq!(*ident.get_or_insert(id), id, "one identification");
        assert_eq!(off, body.len(), "in order");
        body.extend_from_slice(&o.payload[8..]);
    }
    assert_eq!(body[0], icmpv6::ECHO_REPLY);
    assert_eq!(&body[8..], &data[..]);
    assert_eq!(checksum_of(ROUTER, GUEST6, &body), 0xffff, "the reassembled reply's checksum verifies");
}

fn checksum_of(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    use slirp_core::wire::{checksum, IpProtocol};
    let acc = checksum::pseudo_header(src, dst, IpProtocol::Icmpv6, icmp.len() as u32) + checksum::sum(icmp);
    checksum::fold(acc)
}

// ------------------------------------------------------------------------------------------
// DHCPv6

const DUID: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1];

fn dhcp6(t: u8, server: Option<&[u8]>, extra: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    let mut w = Writer::new(&mut buf, t, [1, 2, 3]).unwrap();
    w.option(opt::CLIENTID, DUID).unwrap();
    if let Some(s) = server {
        w.option(opt::SERVERID, s).unwrap();
    }
    w.option(opt::ELAPSED_TIME, &[0, 0]).unwrap();
    for (c, d) in extra {
        w.option(*c, d).unwrap();
    }
    let len = w.len();
    buf.truncate(len);
    let udp = slirp_core::wire::UdpRepr { src_port: dhcpv6::CLIENT_PORT, dst_port: dhcpv6::SERVER_PORT };
    let mut head = [0u8; 8];
    udp.emit_header(&mut head, GUEST_LL, dhcpv6::ALL_AGENTS, &buf);
    let packet = ip6(GUEST_LL, dhcpv6::ALL_AGENTS, next_header::UDP, 1, &[&head[..], &buf].concat());
    frame6(mcast_mac(dhcpv6::ALL_AGENTS), &packet)
}

fn ia_na(iaid: u32) -> (u16, Vec<u8>) {
    let mut d = iaid.to_be_bytes().to_vec();
    d.extend_from_slice(&[0; 8]);
    (opt::IA_NA, d)
}

/// A DHCPv6 reply frame: (message type, options).
fn dhcp6_reply(frame: &[u8]) -> (u8, Vec<(u16, Vec<u8>)>) {
    let o = parse6(frame);
    assert_eq!((o.repr.src_addr, o.repr.dst_addr, o.dst_mac), (ROUTER_LL, GUEST_LL, GUEST_MAC));
    assert_eq!(o.repr.next_header, next_header::UDP);
    let u = UdpPacket::new_checked(&o.payload[..]).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (dhcpv6::SERVER_PORT, dhcpv6::CLIENT_PORT));
    let m = Dhcpv6Message::new_checked(u.payload()).unwrap();
    assert_eq!(m.transaction_id(), [1, 2, 3]);
    (m.msg_type(), m.options().map(|(c, d)| (c, d.to_vec())).collect())
}

fn find(opts: &[(u16, Vec<u8>)], code: u16) -> Option<Vec<u8>> {
    opts.iter().find(|(c, _)| *c == code).map(|(_, d)| d.clone())
}

fn ia_address(opts: &[(u16, Vec<u8>)]) -> Option<Ipv6Addr> {
    let ia = find(opts, opt::IA_NA)?;
    Options::new(&ia[12..])
        .find(|(c, _)| *c == opt::IAADDR)
        .map(|(_, d)| Ipv6Addr::from(<[u8; 16]>::try_from(&d[..16]).unwrap()))
}

#[test]
fn dhcpv6_stateful_exchange_over_the_wire() {
    let mut n = net();
    let (t, adv) = dhcp6_reply(&n.exchange(&dhcp6(msg::SOLICIT, None, &[ia_na(1)])).pop().unwrap());
    assert_eq!(t, msg::ADVERTISE);
    let server = find(&adv, opt::SERVERID).unwrap();
    assert_eq!(&server[..4], &[0, 3, 0, 1], "DUID-LL");
    assert_eq!(&server[4..], &GATEWAY_MAC.0);
    let offered = ia_address(&adv).unwrap();
    assert_eq!(offered, Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x200));
    assert_eq!(find(&adv, opt::DNS_SERVERS).unwrap(), DNS6.octets());
    let (t, rep) = dhcp6_reply(&n.exchange(&dhcp6(msg::REQUEST, Some(&server), &[ia_na(1)])).pop().unwrap());
    assert_eq!(t, msg::REPLY);
    assert_eq!(ia_address(&rep), Some(offered));
    let bindings: Vec<_> = n.slirp.dhcp6_bindings().map(|(a, d, i)| (a, d.to_vec(), i)).collect();
    assert_eq!(bindings, vec![(offered, DUID.to_vec(), 1)]);
    // The address is known to be the guest's at once.
    assert!(n.slirp.neighbors().any(|(a, m)| a == offered && m == GUEST_MAC));
    // Stateless information request.
    let oro = [opt::DNS_SERVERS.to_be_bytes(), opt::DOMAIN_LIST.to_be_bytes()].concat();
    let (t, info) = dhcp6_reply(&n.exchange(&dhcp6(msg::INFORMATION_REQUEST, None, &[(opt::ORO, oro)])).pop().unwrap());
    assert_eq!(t, msg::REPLY);
    assert_eq!(find(&info, opt::DOMAIN_LIST).unwrap(), b"\x07example\x04test\x00");
    assert_eq!(n.slirp.stats().dhcp6_replies, 3);
}

#[test]
fn dhcpv6_is_off_with_dhcp_and_ignores_what_is_not_for_a_server() {
    let mut off = Net::with_config(Config { disable_dhcp: true, ..config() });
    off.send(&dhcp6(msg::SOLICIT, None, &[ia_na(1)]));
    off.assert_silent();
    assert_eq!(off.dropped(DropReason::DhcpIgnored), 1);
    // The RA then says not to ask.
    let o = parse6(&off.exchange(&router_solicit(GUEST_LL)).pop().unwrap());
    assert_eq!(icmp_of(&o).2.to_be_bytes()[1], 0, "M and O clear");
    let mut n = net();
    n.send(&dhcp6(msg::REPLY, Some(&[0, 3, 0, 1, 1, 1, 1, 1, 1, 1]), &[]));
    n.send(&dhcp6(msg::REQUEST, Some(&[0, 3, 0, 1, 1, 1, 1, 1, 1, 1]), &[ia_na(1)]));
    n.assert_silent();
    assert_eq!(n.dropped(DropReason::DhcpIgnored), 2);
    // Truncated options.
    let mut bad = dhcp6(msg::SOLICIT, None, &[]);
    let at = bad.len() - 6; // the elapsed-time option's length field
    bad[at + 3] = 40;
    n.send(&bad);
    n.assert_silent();
    assert!(n.dropped(DropReason::DhcpMalformed) + n.dropped(DropReason::UdpMalformed) >= 1);
}

// ------------------------------------------------------------------------------------------
// Hostile input

fn seeds() -> Vec<Vec<u8>> {
    let data: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
    let mut v = vec![
        ping6(GUEST6, ROUTER, 64, 1, 1, b"abc"),
        ping6(GUEST6, WORLD6, 64, 1, 1, b"abc"),
        neighbor_solicit(GUEST_LL, ROUTER, 255, true),
        router_solicit(GUEST_LL),
        dhcp6(msg::SOLICIT, None, &[ia_na(1)]),
        frame6(GATEWAY_MAC, &ip6(GUEST6, ROUTER, next_header::DST_OPTS, 64, &[58, 0, 1, 4, 0, 0, 0, 0])),
    ];
    v.extend(fragments(&ping6(GUEST6, ROUTER, 64, 2, 2, &data)[14..], 9, 1000));
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Flipped bytes, truncations and extensions of valid IPv6 frames: never a panic, and
    /// every frame the engine sends is well formed (checked by the harness).
    #[test]
    fn hostile_ipv6_frames_never_panic(
        picks in proptest::collection::vec((0usize..16, 0usize..2100, proptest::num::u8::ANY, 0usize..80), 1..24),
    ) {
        let mut n = net();
        let seeds = seeds();
        for (which, at, byte, cut) in picks {
            let mut f = seeds[which % seeds.len()].clone();
            if at < f.len() {
                f[at] ^= byte | 1;
            }
            if cut < 40 {
                f.truncate(f.len().saturating_sub(cut));
            } else {
                f.extend(std::iter::repeat_n(byte, cut - 40));
            }
            n.send(&f);
            n.advance(3);
            n.recv();
        }
        n.advance(60_000);
        n.recv();
    }
}

#[test]
fn many_errors_are_rate_limited() {
    let mut n = net();
    let mut sent = 0;
    for i in 0..300u16 {
        sent += n.exchange(&ping6(GUEST6, WORLD6, 1, 1, i, b"x")).len();
    }
    assert_eq!(sent, slirp_core::ICMPV6_ERRORS_PER_SECOND as usize);
    assert_eq!(n.dropped(DropReason::Icmpv6RateLimited), 300 - sent as u64);
    n.advance(1001);
    n.recv();
    assert_eq!(n.exchange(&ping6(GUEST6, WORLD6, 1, 1, 999, b"x")).len(), 1, "refilled after a second");
}
