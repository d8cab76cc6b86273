//! UDP through the NAT with a smoltcp guest on the fake internet: DNS through the alias, echo
//! (fragmented both ways), endpoint independence, expiry, host ICMP errors, full tables.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::fakenet::{
    DNS_ADDR, ECHO_ADDR, HOST_PUBLIC_ADDR, INDIRECT_ADDR, INDIRECT_REPLY_ADDR, QUIET_HOST, UNREACHABLE_ROUTER,
};
use slirp_test_host::slirp_core::DropReason;
use slirp_test_host::smoltcp::wire::Ipv4Address;
use slirp_test_host::{dns, FakeNet, RouteFault, SimConfig, Simulation};

const DNS_ALIAS_53: SocketAddrV4 = SocketAddrV4::new(DNS_ALIAS, 53);

#[test]
fn smoltcp_resolver_gets_answers_through_the_dns_alias() {
    let mut sim = boot_internet(11);
    let query = sim.guest_mut().dns_start("echo.test", &[]).unwrap();
    let mut result = None;
    sim.run_until(
        |sim| {
            result = sim.guest_mut().dns_result(query);
            result.is_some()
        },
        Duration::from_secs(5),
    )
    .unwrap();
    // smoltcp only accepts answers from a configured server (10.0.2.3, from the lease) port 53.
    let addrs = result.unwrap().expect("resolved");
    assert_eq!(addrs, [Ipv4Address::new(198, 51, 100, 7), Ipv4Address::new(203, 0, 113, 5)]);
    let log = sim.host().service_log();
    assert_eq!(log.len(), 1, "one query reached the upstream");
    assert_eq!(log[0].0, DNS_ADDR);
    assert_eq!(*log[0].1.ip(), HOST_PUBLIC_ADDR, "the upstream sees the host, not the guest");

    // An unknown name fails (NXDOMAIN), through the same path.
    let query = sim.guest_mut().dns_start("nowhere.test", &[]).unwrap();
    let mut result = None;
    sim.run_until(
        |sim| {
            result = sim.guest_mut().dns_result(query);
            result.is_some()
        },
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(result.unwrap().is_err());
    assert!(drops(&sim).is_empty(), "unexpected drops: {:?}", drops(&sim));
}

#[test]
fn hand_built_query_is_answered_from_the_alias() {
    let mut sim = boot_internet(12);
    let sock = sim.guest_mut().udp_bind(5353, 4096);
    let (from, reply) =
        udp_round_trip(&mut sim, sock, DNS_ALIAS_53, &dns::build_query(0xbeef, "example.com", dns::TYPE_A))
            .expect("an answer");
    assert_eq!(from, DNS_ALIAS_53, "the answer comes from the alias, not the upstream");
    let answer = dns::parse_response(&reply).expect("a DNS response");
    assert_eq!(answer.id, 0xbeef);
    assert_eq!(answer.rcode, dns::RCODE_NOERROR);
    assert_eq!(answer.addrs, [*ECHO_ADDR.ip()]);
    let sent = sim.host().sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, DNS_ADDR, "the alias forwards to the configured upstream");
    assert_eq!(sent[0].ttl, Some(63), "the guest's TTL less one hop");

    // Port 53 only: anything else at the alias is refused by the core itself (its ICMP errors
    // all come from the gateway address).
    let errors = icmp_errors_for_udp_port(&mut sim, 5353);
    sim.guest_mut().udp_send(sock, SocketAddrV4::new(DNS_ALIAS, 54), b"not dns").unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).expect("port unreachable");
    assert_eq!((err.from, err.msg_type, err.code), (GATEWAY, 3, 3));
    assert_eq!((err.quoted_dst, err.quoted_ports), (DNS_ALIAS, (5353, 54)));
    assert_eq!(sim.host().sent().len(), 1, "nothing more left the host");
}

#[test]
fn udp_echo_small_and_fragmented_both_ways() {
    let mut sim = boot_internet(13);
    let sock = sim.guest_mut().udp_bind(40_000, 16 * 1024);
    let small = b"hello, fake internet".to_vec();
    let (from, reply) = udp_round_trip(&mut sim, sock, ECHO_ADDR, &small).expect("small echo");
    assert_eq!((from, reply), (ECHO_ADDR, small));

    let big: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
    let reassembled = sim.core().stats().reassembled;
    let fragmented = sim.core().stats().fragmented;
    let (from, reply) = udp_round_trip(&mut sim, sock, ECHO_ADDR, &big).expect("big echo");
    assert_eq!(from, ECHO_ADDR);
    assert!(reply == big, "4000 bytes came back intact");
    assert_eq!(sim.core().stats().reassembled, reassembled + 1, "the guest's datagram came in fragments");
    assert_eq!(sim.core().stats().fragmented, fragmented + 1, "the reply went out in fragments");
    assert_eq!(sim.host().sent().last().map(|d| d.data.len()), Some(4000), "one 4000-byte datagram on the host");
    assert_eq!(sim.core().udp_flow_count(), 1);
    assert_eq!(sim.host().sockets_that_sent_to(ECHO_ADDR).len(), 1, "one host socket for the guest endpoint");
    assert!(drops(&sim).is_empty(), "unexpected drops: {:?}", drops(&sim));
}

#[test]
fn mapping_is_endpoint_independent() {
    let mut sim = boot_internet(14);
    let sock = sim.guest_mut().udp_bind(40_001, 4096);
    let (from, reply) = udp_round_trip(&mut sim, sock, INDIRECT_ADDR, b"who answers?").expect("an answer");
    assert_eq!(from, INDIRECT_REPLY_ADDR, "the reply shows its real source");
    assert_eq!(reply, b"who answers?");
    // The same guest endpoint talks to a second remote through the same host socket.
    let (from, _) = udp_round_trip(&mut sim, sock, ECHO_ADDR, b"and you?").expect("echo");
    assert_eq!(from, ECHO_ADDR);
    assert_eq!(sim.core().udp_flow_count(), 1);
    let sockets = sim.host().sent().iter().map(|d| d.socket).collect::<Vec<_>>();
    assert_eq!(sockets.len(), 2);
    assert_eq!(sockets[0], sockets[1]);
    // A remote the guest never wrote to reaches it too (endpoint-independent filtering): a host
    // client sends to the flow's public port.
    let public = sim.host().local_addr(sockets[0]).unwrap();
    let stranger = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 200), 4444);
    assert!(sim.host_mut().client_send(stranger, SocketAddrV4::new(HOST_PUBLIC_ADDR, public.port()), b"hi there"));
    let (from, data) = recv_udp(&mut sim, sock, Duration::from_secs(1)).expect("the stranger's datagram");
    assert_eq!((from, data.as_slice()), (stranger, &b"hi there"[..]));
}

#[test]
fn udp_mapping_expires_after_240_seconds_idle() {
    let mut sim = boot_internet(15);
    let sock = sim.guest_mut().udp_bind(40_002, 4096);
    udp_round_trip(&mut sim, sock, ECHO_ADDR, b"ping").expect("echo");
    let host_socket = sim.host().sockets_that_sent_to(ECHO_ADDR)[0];
    let last = sim.core().udp_flows().next().unwrap().1;
    assert_eq!(sim.now() - last, Duration::ZERO, "the reply refreshed the mapping");

    sim.run_for(Duration::from_secs(239));
    assert_eq!(sim.core().udp_flow_count(), 1, "still mapped after 239 s");
    assert!(sim.host().is_open(host_socket));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.core().udp_flow_count(), 0, "gone after 240 s idle");
    assert!(!sim.host().is_open(host_socket), "and its host socket closed");
    assert_eq!(sim.host().closed(), [host_socket]);

    // The guest can start over: a new mapping, a new host socket.
    let (from, _) = udp_round_trip(&mut sim, sock, ECHO_ADDR, b"again").expect("echo after expiry");
    assert_eq!(from, ECHO_ADDR);
    assert_eq!(sim.host().sockets_that_sent_to(ECHO_ADDR).len(), 2);
    assert_eq!(sim.host().stats().unknown_socket_calls, 0);
}

#[test]
fn dns_mapping_expires_10_seconds_after_the_answer() {
    let mut sim = boot_internet(16);
    let sock = sim.guest_mut().udp_bind(5353, 4096);
    let query = dns::build_query(1, "example.com", dns::TYPE_A);
    udp_round_trip(&mut sim, sock, DNS_ALIAS_53, &query).expect("answer");
    let host_socket = sim.host().sockets_that_sent_to(DNS_ADDR)[0];
    sim.run_for(Duration::from_secs(9));
    assert_eq!(sim.core().udp_flow_count(), 1, "still mapped 9 s after the answer");
    sim.run_for(Duration::from_millis(1500));
    assert_eq!(sim.core().udp_flow_count(), 0, "gone 10 s after the answer");
    assert!(!sim.host().is_open(host_socket));

    // A lookup still waiting for its answer is not cut short: with a silent upstream the
    // mapping lives on the 240 s idle timer.
    let mut net = FakeNet::internet();
    net.add_udp_service(DNS_ADDR, slirp_test_host::UdpService::Sink);
    let mut sim = boot(SimConfig::seeded(16), net);
    let sock = sim.guest_mut().udp_bind(5353, 4096);
    sim.guest_mut().udp_send(sock, DNS_ALIAS_53, &query).unwrap();
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.core().udp_flow_count(), 1);
}

/// A router that reports expired TTLs.
const TTL_ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);

#[test]
fn host_icmp_errors_reach_the_guest() {
    let mut net = FakeNet::internet();
    let no_route = Ipv4Addr::new(203, 0, 113, 128);
    net.add_route_fault(no_route, 25, RouteFault::SendFails(slirp_test_host::slirp_core::HostError::NetUnreachable));
    net.add_route_fault(
        Ipv4Addr::new(203, 0, 113, 200),
        32,
        RouteFault::IcmpError { router: TTL_ROUTER, error: slirp_test_host::slirp_core::HostError::TtlExpired },
    );
    let mut sim = boot(SimConfig::seeded(17), net);
    let port = 40_003;
    let sock = sim.guest_mut().udp_bind(port, 4096);
    let errors = icmp_errors_for_udp_port(&mut sim, port);

    // Port unreachable from a remote host (reported asynchronously, IP_RECVERR style).
    let closed = SocketAddrV4::new(QUIET_HOST, 5);
    sim.guest_mut().udp_send(sock, closed, b"anyone?").unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).expect("port unreachable");
    assert_eq!((err.from, err.msg_type, err.code), (QUIET_HOST, 3, 3));
    assert_eq!((err.quoted_dst, err.quoted_ports), (QUIET_HOST, (port, 5)));

    // A router says the network is unreachable: the error comes from the router.
    let far = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 53);
    sim.guest_mut().udp_send(sock, far, b"far away").unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).expect("net unreachable");
    assert_eq!((err.from, err.msg_type, err.code), (UNREACHABLE_ROUTER, 3, 0));
    assert_eq!((err.quoted_dst, err.quoted_ports), (*far.ip(), (port, 53)));

    // The host has no route at all: the send fails at once and the gateway says so.
    let nowhere = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 130), 9);
    sim.guest_mut().udp_send(sock, nowhere, b"no route").unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).expect("net unreachable");
    assert_eq!((err.from, err.msg_type, err.code), (GATEWAY, 3, 0));
    assert_eq!(err.quoted_dst, *nowhere.ip());
    assert_eq!(sim.core().stats().dropped(DropReason::UdpSendFailed), 1);
    // A router says the TTL ran out (a traceroute hop): time exceeded from that router.
    let hop = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 200), 33434);
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2));
    assert!(err.is_none(), "nothing pending before the traceroute probe");
    sim.guest_mut().udp_send(sock, hop, b"probe").unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).expect("time exceeded");
    assert_eq!((err.from, err.msg_type, err.code), (TTL_ROUTER, 11, 0));
    assert_eq!((err.quoted_dst, err.quoted_ports), (*hop.ip(), (port, 33434)));
    // The flow survives all of this and still works.
    let (from, _) = udp_round_trip(&mut sim, sock, ECHO_ADDR, b"still here").expect("echo");
    assert_eq!(from, ECHO_ADDR);
}

#[test]
fn host_refusals_become_icmp_errors() {
    let mut net = FakeNet::internet();
    // (Small sizes: smoltcp ignores ICMP errors whose quote is shorter than the quoted header's
    // total length, and the core quotes at most 576 bytes.)
    net.set_max_datagram(100);
    let mut sim = boot(SimConfig::seeded(18), net);
    let sock = sim.guest_mut().udp_bind(40_004, 4096);
    let errors = icmp_errors_for_udp_port(&mut sim, 40_004);
    sim.guest_mut().udp_send(sock, ECHO_ADDR, &[1; 200]).unwrap();
    // The host cannot send it at all. "Fragmentation needed" would need a next-hop MTU nobody
    // knows, for a datagram that did not ask for DF: the core counts it and stays silent.
    assert!(recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).is_none(), "no ICMP for a host size limit");
    assert_eq!(sim.core().stats().dropped(DropReason::UdpSendFailed), 1);

    // Out of host sockets: the datagram is refused with an ICMP error, counted.
    let mut net = FakeNet::internet();
    net.set_socket_limit(Some(0));
    let mut sim = boot(SimConfig::seeded(18), net);
    let sock = sim.guest_mut().udp_bind(40_005, 4096);
    let errors = icmp_errors_for_udp_port(&mut sim, 40_005);
    sim.guest_mut().udp_send(sock, ECHO_ADDR, b"no socket for me").unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).expect("unreachable");
    assert_eq!((err.from, err.msg_type), (GATEWAY, 3));
    assert_eq!(sim.core().stats().dropped(DropReason::UdpNoSocket), 1);
    assert_eq!(sim.core().udp_flow_count(), 0, "no half-made mapping is left behind");
}

#[test]
fn full_table_evicts_the_least_recently_active_flow() {
    let mut config = SimConfig::seeded(19);
    config.storage.udp_flows = 2;
    let mut sim = boot(config, FakeNet::internet());
    let a = sim.guest_mut().udp_bind(41_000, 4096);
    let b = sim.guest_mut().udp_bind(41_001, 4096);
    let c = sim.guest_mut().udp_bind(41_002, 4096);
    udp_round_trip(&mut sim, a, ECHO_ADDR, b"a1").expect("a");
    sim.run_for(Duration::from_secs(1));
    udp_round_trip(&mut sim, b, ECHO_ADDR, b"b1").expect("b");
    sim.run_for(Duration::from_secs(1));
    udp_round_trip(&mut sim, a, ECHO_ADDR, b"a2").expect("a again");
    let sockets = sim.host().sockets_that_sent_to(ECHO_ADDR);
    let (sock_a, sock_b) = (sockets[0], sockets[1]);
    assert_eq!(sim.core().udp_flow_count(), 2);

    // A third endpoint: b was the least recently active, so b goes.
    let (from, _) = udp_round_trip(&mut sim, c, ECHO_ADDR, b"c1").expect("c gets a mapping");
    assert_eq!(from, ECHO_ADDR);
    assert_eq!(sim.core().udp_flow_count(), 2);
    assert_eq!(sim.core().stats().dropped(DropReason::UdpFlowEvicted), 1);
    assert!(sim.host().is_open(sock_a), "the active flow stays");
    assert!(!sim.host().is_open(sock_b), "the idle flow's socket is closed");
    let mut mapped: Vec<u16> = sim.core().udp_flows().map(|(g, _)| g.port()).collect();
    mapped.sort_unstable();
    assert_eq!(mapped, [41_000, 41_002]);
    // a still works through its old socket.
    udp_round_trip(&mut sim, a, ECHO_ADDR, b"a3").expect("a still mapped");
    assert_eq!(sim.host().sent().last().unwrap().socket, sock_a);
}

#[test]
fn same_seed_same_bytes() {
    fn run(seed: u64) -> Vec<u8> {
        let mut sim = Simulation::with_host(SimConfig::seeded(seed).with_capture(), FakeNet::internet()).unwrap();
        sim.wait_for_lease(Duration::from_secs(10)).unwrap();
        let sock = sim.guest_mut().udp_bind(5000, 16 * 1024);
        udp_round_trip(&mut sim, sock, DNS_ALIAS_53, &dns::build_query(3, "example.com", dns::TYPE_A)).unwrap();
        udp_round_trip(&mut sim, sock, ECHO_ADDR, &[9; 3000]).unwrap();
        sim.ping(Ipv4Address::new(198, 51, 100, 7), 1, b"determinism", Duration::from_secs(3)).unwrap();
        sim.run_for(Duration::from_secs(300));
        sim.pcap_bytes().unwrap().to_vec()
    }
    let first = run(20);
    assert!(first.len() > 8000, "the capture holds the run");
    assert!(first == run(20), "same seed, same capture");
}

#[test]
fn errors_from_the_upstream_resolver_appear_from_the_alias() {
    let mut net = FakeNet::internet();
    net.remove_udp_service(DNS_ADDR);
    let mut sim = boot(SimConfig::seeded(21), net);
    let sock = sim.guest_mut().udp_bind(5354, 4096);
    let errors = icmp_errors_for_udp_port(&mut sim, 5354);
    sim.guest_mut().udp_send(sock, DNS_ALIAS_53, &dns::build_query(4, "example.com", dns::TYPE_A)).unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).expect("port unreachable");
    assert_eq!((err.from, err.msg_type, err.code), (DNS_ALIAS, 3, 3), "the upstream's address stays hidden");
    assert_eq!((err.quoted_dst, err.quoted_ports), (DNS_ALIAS, (5354, 53)));
}

#[test]
fn a_query_to_the_upstream_itself_is_answered_from_the_upstream() {
    // A guest whose resolv.conf names the host's resolver directly (as `slirp run` inherits it)
    // must see the answer from the server it asked, or its resolver library drops it.
    let mut sim = boot_internet(22);
    let sock = sim.guest_mut().udp_bind(5355, 4096);
    let (from, reply) = udp_round_trip(&mut sim, sock, DNS_ADDR, &dns::build_query(0x1234, "example.com", dns::TYPE_A))
        .expect("an answer");
    assert_eq!(from, DNS_ADDR, "the answer comes from the server the guest asked");
    assert_eq!(dns::parse_response(&reply).expect("a DNS response").id, 0x1234);
    assert!(drops(&sim).is_empty(), "unexpected drops: {:?}", drops(&sim));
}

#[test]
fn one_socket_asking_the_alias_and_the_upstream_hears_each_from_the_address_it_asked() {
    let mut sim = boot_internet(23);
    let sock = sim.guest_mut().udp_bind(5356, 4096);
    for round in 0..3u16 {
        let (from, reply) =
            udp_round_trip(&mut sim, sock, DNS_ALIAS_53, &dns::build_query(round, "example.com", dns::TYPE_A))
                .expect("an answer through the alias");
        assert_eq!((from, dns::parse_response(&reply).unwrap().id), (DNS_ALIAS_53, round));
        let (from, reply) =
            udp_round_trip(&mut sim, sock, DNS_ADDR, &dns::build_query(100 + round, "example.com", dns::TYPE_A))
                .expect("an answer from the upstream");
        assert_eq!((from, dns::parse_response(&reply).unwrap().id), (DNS_ADDR, 100 + round));
    }
    // The alias's traffic has a host socket of its own: two mappings for one guest endpoint.
    assert_eq!(sim.core().udp_flow_count(), 2);
    let alias_sockets = sim.host().sockets_that_sent_to(DNS_ADDR);
    assert_eq!(alias_sockets.len(), 2, "one host socket per way of asking");
}

#[test]
fn errors_about_a_direct_query_come_from_the_upstream_itself() {
    let mut net = FakeNet::internet();
    net.remove_udp_service(DNS_ADDR);
    let mut sim = boot(SimConfig::seeded(24), net);
    let sock = sim.guest_mut().udp_bind(5357, 4096);
    let errors = icmp_errors_for_udp_port(&mut sim, 5357);
    sim.guest_mut().udp_send(sock, DNS_ADDR, &dns::build_query(5, "example.com", dns::TYPE_A)).unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(2)).expect("port unreachable");
    assert_eq!((err.from, err.msg_type, err.code), (*DNS_ADDR.ip(), 3, 3));
    assert_eq!((err.quoted_dst, err.quoted_ports), (*DNS_ADDR.ip(), (5357, 53)));
}
