//! The gateway alias to the host's loopback, `disable_host_loopback`, and restricted mode.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::fakenet::{DNS_ADDR, ECHO_ADDR};
use slirp_test_host::slirp_core::{Config, DropReason};
use slirp_test_host::smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use slirp_test_host::{dns, FakeNet, SimConfig, UdpService};

const LOOPBACK_SERVICE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5300);

fn net_with_loopback_service() -> FakeNet {
    let mut net = FakeNet::internet();
    net.add_udp_service(LOOPBACK_SERVICE, UdpService::Echo);
    net
}

#[test]
fn gateway_alias_reaches_the_hosts_loopback() {
    let mut sim = boot(SimConfig::seeded(41), net_with_loopback_service());
    let sock = sim.guest_mut().udp_bind(6000, 4096);
    let (from, reply) =
        udp_round_trip(&mut sim, sock, SocketAddrV4::new(GATEWAY, 5300), b"to the host").expect("loopback echo");
    assert_eq!(from, SocketAddrV4::new(GATEWAY, 5300), "replies appear from the gateway");
    assert_eq!(reply, b"to the host");
    assert_eq!(sim.host().sent()[0].to, LOOPBACK_SERVICE);
    assert_eq!(*sim.host().service_log()[0].1.ip(), Ipv4Addr::LOCALHOST);

    // A loopback port nobody serves: port unreachable, quoting the gateway the guest wrote to.
    let errors = icmp_errors_for_udp_port(&mut sim, 6000);
    sim.guest_mut().udp_send(sock, SocketAddrV4::new(GATEWAY, 5301), b"closed").unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(1)).expect("port unreachable");
    assert_eq!((err.from, err.msg_type, err.code), (GATEWAY, 3, 3));
    assert_eq!((err.quoted_dst, err.quoted_ports), (GATEWAY, (6000, 5301)));
}

#[test]
fn other_subnet_addresses_are_unreachable_hosts() {
    let mut sim = boot(SimConfig::seeded(42), net_with_loopback_service());
    // smoltcp would ARP for 10.0.2.77 itself (nobody answers), so the datagram is made by hand,
    // as a guest with a /32 address and a default route would send it.
    sim.ping(Ipv4Address::new(10, 0, 2, 2), 1, b"learn the gateway", Duration::from_secs(3)).unwrap();
    let errors = icmp_errors_for_udp_port(&mut sim, 6001);
    let nobody = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 77), 5300);
    let frame = udp_frame(&sim, SocketAddrV4::new(GUEST, 6001), nobody, b"anyone?");
    sim.inject_from_guest(&frame);
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(1)).expect("host unreachable");
    assert_eq!((err.from, err.msg_type, err.code), (GATEWAY, 3, 1));
    assert_eq!((err.quoted_dst, err.quoted_ports), (*nobody.ip(), (6001, 5300)));
    assert!(sim.host().sent().is_empty(), "nothing reached the host");
    assert_eq!(sim.host().open_sockets(), 0);
}

#[test]
fn disable_host_loopback_answers_prohibited() {
    let config =
        SimConfig { core: Config { disable_host_loopback: true, ..Config::default() }, ..SimConfig::seeded(43) };
    let mut sim = boot(config, net_with_loopback_service());
    let sock = sim.guest_mut().udp_bind(6002, 4096);
    let errors = icmp_errors_for_udp_port(&mut sim, 6002);
    sim.guest_mut().udp_send(sock, SocketAddrV4::new(GATEWAY, 5300), b"let me in").unwrap();
    let err = recv_icmp_error(&mut sim, errors, Duration::from_secs(1)).expect("an ICMP error");
    assert_eq!((err.from, err.msg_type, err.code), (GATEWAY, 3, 13), "administratively prohibited");
    assert!(sim.host().sent().is_empty(), "nothing reached the host's loopback");
    assert_eq!(sim.host().open_sockets(), 0);
    // The rest of the world is still reachable, and so is the gateway itself.
    let (from, _) = udp_round_trip(&mut sim, sock, ECHO_ADDR, b"outside").expect("echo");
    assert_eq!(from, ECHO_ADDR);
    sim.ping(Ipv4Address::new(10, 0, 2, 2), 1, b"gw", Duration::from_secs(3)).unwrap();
}

#[test]
fn restricted_mode_confines_the_guest() {
    let config = SimConfig { core: Config { restricted: true, ..Config::default() }, ..SimConfig::seeded(44) };
    let mut sim = boot(config, net_with_loopback_service());
    // DHCP works (without a router or DNS server to use); give the guest a route anyway, as a
    // guest that ignores DHCP would.
    let lease = sim.guest().lease().cloned().unwrap();
    assert_eq!(lease.address, Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24));
    assert_eq!((lease.router, lease.dns_servers.len()), (None, 0), "no router or DNS offered");
    sim.guest_mut().set_static_address(lease.address, Some(Ipv4Address::new(10, 0, 2, 2)));

    // Pings to the virtual addresses still work.
    sim.ping(Ipv4Address::new(10, 0, 2, 2), 1, b"gw", Duration::from_secs(3)).unwrap();
    sim.ping(Ipv4Address::new(10, 0, 2, 3), 2, b"dns", Duration::from_secs(3)).unwrap();

    let sock = sim.guest_mut().udp_bind(6003, 4096);
    let query = dns::build_query(5, "example.com", dns::TYPE_A);
    let before = sim.core().stats().dropped(DropReason::Restricted);
    assert_eq!(udp_round_trip(&mut sim, sock, SocketAddrV4::new(DNS_ALIAS, 53), &query), None, "no DNS");
    assert_eq!(udp_round_trip(&mut sim, sock, ECHO_ADDR, b"out"), None, "no UDP out");
    assert_eq!(udp_round_trip(&mut sim, sock, SocketAddrV4::new(GATEWAY, 5300), b"lo"), None, "no loopback");
    assert!(sim.ping(Ipv4Address::new(198, 51, 100, 7), 3, b"out", Duration::from_secs(2)).is_err(), "no ping out");
    assert_eq!(sim.core().stats().dropped(DropReason::Restricted), before + 4);
    assert!(sim.host().sent().is_empty() && sim.host().echoes_sent().is_empty(), "nothing reached the host");
    assert!(sim.host().service_log().iter().all(|(s, _, _)| *s != DNS_ADDR));
    assert_eq!(sim.host().open_sockets(), 0, "no host socket was even opened");
    assert_eq!(sim.core().udp_flow_count(), 0);
}
