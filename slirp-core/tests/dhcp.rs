//! Engine-level behaviour tests, DHCP: OFFER/ACK/NAK, options and their order, addressing, leases,
//! restricted and disabled modes.
//!
//! Hand-built guest frames in, emitted frames checked: every one also passes
//! `common::check_frame` (valid Ethernet + ARP/IPv4, checksums, >= 60 bytes, <= MTU + 14). Test
//! names carry the item number of the checklist in `shared/reference/tinyemu-behaviours.md` §13
//! where one applies; where the engine deliberately differs from the original slirp (documented
//! in the module docs of `slirp-core`), the test checks the documented behaviour and says so.

mod common;

use common::*;
use core::net::Ipv4Addr;
use slirp_core::wire::{DhcpMessageType, EthernetAddress, IpProtocol};
use slirp_core::{Config, DropReason};

fn message_type(bootp: &[u8]) -> u8 {
    let opts = dhcp_options(bootp);
    assert_eq!(opts[0].0, 53, "option 53 comes first");
    opts[0].1[0]
}

/// The options of an OFFER/ACK with the default configuration, in wire order.
fn default_options(msg_type: u8) -> Vec<(u8, Vec<u8>)> {
    vec![
        (53, vec![msg_type]),
        (54, vec![10, 0, 2, 2]),
        (1, vec![255, 255, 255, 0]),
        (3, vec![10, 0, 2, 2]),
        (6, vec![10, 0, 2, 3]),
        (51, 86400u32.to_be_bytes().to_vec()),
        (26, 1500u16.to_be_bytes().to_vec()),
    ]
}

#[test]
fn discover_gets_offer_with_options_in_order_item_9() {
    let mut net = Net::new();
    let (_, bootp) = dhcp_reply(&net.exchange(&discover(GUEST_MAC))[0]);
    assert_eq!(bootp[0], 2, "BOOTREPLY");
    assert_eq!(&bootp[4..8], &0x1122_3344u32.to_be_bytes(), "xid echoed");
    assert_eq!(yiaddr(&bootp), GUEST_IP);
    assert_eq!(&bootp[20..24], &[10, 0, 2, 2], "siaddr");
    assert_eq!(&bootp[28..34], &GUEST_MAC.0, "chaddr");
    assert_eq!(dhcp_options(&bootp), default_options(2));
}

#[test]
fn offer_and_ack_addressing_item_10() {
    let mut net = Net::new();
    let offer = net.exchange(&discover(GUEST_MAC)).pop().unwrap();
    let ack = net.exchange(&request_for(GUEST_MAC, GUEST_IP)).pop().unwrap();
    for f in [offer, ack] {
        let (o, bootp) = dhcp_reply(&f);
        assert_eq!((o.ip.src_addr, o.ip.dst_addr), (GATEWAY, Ipv4Addr::BROADCAST));
        assert_eq!(bootp.len(), 548, "full-length BOOTP reply");
        assert_eq!((o.ip.tos, o.ip.ttl), (0x10, 64));
        assert_eq!(o.frame_len, 14 + 20 + 8 + 548);
    }
}

#[test]
fn offer_goes_to_chaddr_even_without_arp_item_11() {
    let mut net = Net::new();
    // Sent from another Ethernet source (a relay-like setup): chaddr decides.
    let mut f = discover(GUEST_MAC);
    f[6..12].copy_from_slice(&GUEST2_MAC.0);
    let out = net.exchange(&f);
    assert_eq!(out.len(), 1, "no ARP request first");
    assert_eq!(parse_ip(&out[0]).eth.dst_addr, GUEST_MAC);
    // A client asking for broadcast replies gets them (deliberate, RFC 2131 §4.1).
    let mut m = dhcp_msg(Some(DhcpMessageType::Discover), GUEST_MAC);
    m.broadcast = true;
    let o = parse_ip(&net.exchange(&dhcp_frame(&m, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST))[0]);
    assert_eq!(o.eth.dst_addr, EthernetAddress::BROADCAST);
}

#[test]
fn request_gets_ack_with_same_options_item_12() {
    let mut net = Net::new();
    net.exchange(&discover(GUEST_MAC));
    let (o, bootp) = dhcp_reply(&net.exchange(&request_for(GUEST_MAC, GUEST_IP))[0]);
    assert_eq!(o.eth.dst_addr, GUEST_MAC);
    assert_eq!(yiaddr(&bootp), GUEST_IP);
    assert_eq!(dhcp_options(&bootp), default_options(5));
    // The ACK taught us the guest's MAC: its first ping is answered without ARP.
    assert_eq!(net.slirp.leases().collect::<Vec<_>>(), vec![(GUEST_IP, GUEST_MAC)]);
    let out = net.exchange(&ping(GUEST_IP, GATEWAY, 1, 1, b"x"));
    assert_eq!(echo_reply(&out[0]).0.eth.dst_addr, GUEST_MAC);
}

#[test]
fn second_client_gets_next_address_and_first_keeps_its_own_item_13() {
    let mut net = Net::new();
    assert_eq!(yiaddr(&dhcp_reply(&net.exchange(&discover(GUEST_MAC))[0]).1), GUEST_IP);
    assert_eq!(yiaddr(&dhcp_reply(&net.exchange(&discover(GUEST2_MAC))[0]).1), GUEST2_IP);
    assert_eq!(yiaddr(&dhcp_reply(&net.exchange(&discover(GUEST_MAC))[0]).1), GUEST_IP);
}

#[test]
fn request_for_unavailable_address_gets_nak_item_14() {
    let mut net = Net::new();
    net.exchange(&discover(GUEST_MAC));
    for addr in [GUEST_IP, Ipv4Addr::new(192, 168, 1, 5)] {
        let (o, bootp) = dhcp_reply(&net.exchange(&request_for(GUEST2_MAC, addr))[0]);
        assert_eq!(yiaddr(&bootp), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            dhcp_options(&bootp),
            vec![(53, vec![6]), (54, vec![10, 0, 2, 2]), (56, b"requested address not available".to_vec())]
        );
        // NAKs are broadcast (RFC 2131 §4.3.2).
        assert_eq!((o.eth.dst_addr, o.ip.dst_addr), (EthernetAddress::BROADCAST, Ipv4Addr::BROADCAST));
    }
    assert_eq!(net.slirp.leases().collect::<Vec<_>>(), vec![(GUEST_IP, GUEST_MAC)]);
}

#[test]
fn renewal_via_ciaddr_is_answered_by_unicast_item_15() {
    let mut net = Net::new();
    net.exchange(&discover(GUEST_MAC));
    net.exchange(&request_for(GUEST_MAC, GUEST_IP));
    let mut m = dhcp_msg(Some(DhcpMessageType::Request), GUEST_MAC);
    m.ciaddr = GUEST_IP;
    let (o, bootp) = dhcp_reply(&net.exchange(&dhcp_frame(&m, GUEST_IP, GATEWAY))[0]);
    assert_eq!(message_type(&bootp), 5);
    assert_eq!(yiaddr(&bootp), GUEST_IP);
    assert_eq!(&bootp[12..16], &GUEST_IP.octets(), "ciaddr echoed");
    assert_eq!((o.eth.dst_addr, o.ip.dst_addr), (GUEST_MAC, GUEST_IP));
}

#[test]
fn request_without_address_allocates_one_item_16() {
    let mut net = Net::new();
    net.exchange(&discover(GUEST_MAC));
    let m = dhcp_msg(Some(DhcpMessageType::Request), GUEST2_MAC);
    let (_, bootp) = dhcp_reply(&net.exchange(&dhcp_frame(&m, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST))[0]);
    assert_eq!((message_type(&bootp), yiaddr(&bootp)), (5, GUEST2_IP));
}

#[test]
fn bootp_without_magic_cookie_gets_ack_item_17() {
    let mut net = Net::new();
    let m = dhcp_msg(None, GUEST_MAC);
    let (_, bootp) = dhcp_reply(&net.exchange(&dhcp_frame(&m, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST))[0]);
    assert_eq!((message_type(&bootp), yiaddr(&bootp)), (5, GUEST_IP));
}

#[test]
fn release_decline_inform_and_bootreplies_ignored_item_18() {
    let mut net = Net::new();
    net.exchange(&discover(GUEST_MAC));
    for kind in [DhcpMessageType::Release, DhcpMessageType::Decline, DhcpMessageType::Inform] {
        let m = dhcp_msg(Some(kind), GUEST_MAC);
        assert!(net.exchange(&dhcp_frame(&m, GUEST_IP, GATEWAY)).is_empty(), "{kind:?}");
    }
    let mut reply = dhcp_msg(Some(DhcpMessageType::Discover), GUEST2_MAC);
    reply.op = 2;
    assert!(net.exchange(&dhcp_frame(&reply, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)).is_empty());
    assert_eq!(net.dropped(DropReason::DhcpIgnored), 4);
    assert_eq!(net.slirp.leases().collect::<Vec<_>>(), vec![(GUEST_IP, GUEST_MAC)]);
}

#[test]
fn seventeenth_client_gets_no_reply_item_19() {
    let mut net = Net::new();
    for i in 0..16u8 {
        let mac = EthernetAddress([2, 0, 0, 0, 1, i]);
        let (_, bootp) = dhcp_reply(&net.exchange(&discover(mac))[0]);
        assert_eq!(yiaddr(&bootp), Ipv4Addr::new(10, 0, 2, 15 + i));
    }
    assert!(net.exchange(&discover(EthernetAddress([2, 0, 0, 0, 1, 99]))).is_empty());
    assert_eq!(net.dropped(DropReason::DhcpIgnored), 1);
}

#[test]
fn requested_free_address_is_offered_item_20() {
    let mut net = Net::new();
    let mut m = dhcp_msg(Some(DhcpMessageType::Discover), GUEST_MAC);
    m.requested_ip = Some(Ipv4Addr::new(10, 0, 2, 20));
    let (_, bootp) = dhcp_reply(&net.exchange(&dhcp_frame(&m, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST))[0]);
    assert_eq!(yiaddr(&bootp), Ipv4Addr::new(10, 0, 2, 20));
}

#[test]
fn dhcp_to_a_foreign_server_is_consumed_not_forwarded_item_46() {
    let mut net = Net::new();
    let m = dhcp_msg(Some(DhcpMessageType::Discover), GUEST_MAC);
    assert!(net.exchange(&dhcp_frame(&m, Ipv4Addr::UNSPECIFIED, OUTSIDE)).is_empty());
    assert_eq!(net.dropped(DropReason::DhcpIgnored), 1);
    assert_eq!(net.slirp.stats().icmp_errors_sent, 0);
}

#[test]
fn short_or_malformed_bootp_dropped() {
    let mut net = Net::new();
    let body = dhcp_bytes(&dhcp_msg(Some(DhcpMessageType::Discover), GUEST_MAC));
    let zero = Ipv4Addr::UNSPECIFIED;
    for cut in [0, 100, 235] {
        let f = ipv4(
            &ip(zero, Ipv4Addr::BROADCAST, IpProtocol::Udp),
            &udp(zero, Ipv4Addr::BROADCAST, 68, 67, &body[..cut]),
        );
        assert!(net.exchange(&f).is_empty());
    }
    // An option running past the end (no END before it).
    let mut bad = body.clone();
    bad[240..].fill(0);
    bad[545..548].copy_from_slice(&[50, 10, 1]);
    let f = ipv4(&ip(zero, Ipv4Addr::BROADCAST, IpProtocol::Udp), &udp(zero, Ipv4Addr::BROADCAST, 68, 67, &bad));
    assert!(net.exchange(&f).is_empty());
    assert_eq!(net.dropped(DropReason::DhcpMalformed), 4);
    assert_eq!(net.slirp.leases().count(), 0);
}

#[test]
fn disabled_dhcp_stays_silent() {
    let mut net = Net::with_config(Config { disable_dhcp: true, ..Config::default() });
    assert!(net.exchange(&discover(GUEST_MAC)).is_empty());
    assert_eq!(net.dropped(DropReason::DhcpIgnored), 1);
}

#[test]
fn restricted_dhcp_omits_router_and_dns() {
    let mut net = Net::with_config(Config { restricted: true, ..Config::default() });
    let (_, bootp) = dhcp_reply(&net.exchange(&discover(GUEST_MAC))[0]);
    let codes: Vec<u8> = dhcp_options(&bootp).iter().map(|o| o.0).collect();
    assert_eq!(codes, vec![53, 54, 1, 51, 26]);
}

#[test]
fn configured_hostname_domain_and_mtu_are_offered() {
    let mut hostname = heapless::String::new();
    hostname.push_str("guest").unwrap();
    let mut domain = heapless::String::new();
    domain.push_str("example.test").unwrap();
    let config = Config { hostname: Some(hostname), domain: Some(domain), mtu: 9000, ..Config::default() };
    let mut net = Net::with_config(config);
    let (_, bootp) = dhcp_reply(&net.exchange(&discover(GUEST_MAC))[0]);
    let opts = dhcp_options(&bootp);
    let codes: Vec<u8> = opts.iter().map(|o| o.0).collect();
    assert_eq!(codes, vec![53, 54, 1, 3, 6, 51, 26, 12, 15]);
    assert_eq!(opts[6].1, 9000u16.to_be_bytes());
    assert_eq!(opts[7].1, b"guest");
    assert_eq!(opts[8].1, b"example.test");
}
