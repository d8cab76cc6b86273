//! UDP port forwarding: host clients reach a guest UDP socket, replies leave through the rule.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::fakenet::HOST_PUBLIC_ADDR;
use slirp_test_host::slirp_core::{Config, ForwardError, HostError};
use slirp_test_host::{FakeNet, SimConfig, Simulation};

const HOST_PORT: u16 = 8053;
const GUEST_PORT: u16 = 53;
const ANY_HOST_PORT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, HOST_PORT);

fn add_forward(sim: &mut Simulation<FakeNet>, host: SocketAddrV4, guest_port: u16) -> Result<u32, ForwardError> {
    let (core, net) = sim.core_and_host_mut();
    core.add_udp_forward(net, host, SocketAddrV4::new(GUEST, guest_port))
}

/// Runs until `client` received something, or 2 s pass.
fn client_recv(sim: &mut Simulation<FakeNet>, client: SocketAddrV4) -> Option<(SocketAddrV4, Vec<u8>)> {
    let mut got = None;
    let _ = sim.run_until(
        |sim| {
            got = sim.host_mut().client_recv(client);
            got.is_some()
        },
        Duration::from_secs(2),
    );
    got
}

#[test]
fn loopback_client_reaches_the_guest_from_the_gateway() {
    let mut sim = boot_internet(51);
    let server = sim.guest_mut().udp_bind(GUEST_PORT, 4096);
    add_forward(&mut sim, ANY_HOST_PORT, GUEST_PORT).unwrap();
    let client = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 45_000);
    assert!(sim.host_mut().client_send(client, SocketAddrV4::new(Ipv4Addr::LOCALHOST, HOST_PORT), b"question"));
    let (from, data) = recv_udp(&mut sim, server, Duration::from_secs(2)).expect("the guest hears the client");
    assert_eq!(from, SocketAddrV4::new(GATEWAY, 45_000), "a loopback client appears as the gateway, same port");
    assert_eq!(data, b"question");

    sim.guest_mut().udp_send(server, from, b"answer").unwrap();
    let (reply_from, reply) = client_recv(&mut sim, client).expect("the client hears the guest");
    assert_eq!(reply_from, SocketAddrV4::new(Ipv4Addr::LOCALHOST, HOST_PORT), "through the forward's socket");
    assert_eq!(reply, b"answer");
    assert_eq!(sim.core().udp_flow_count(), 0, "forwards need no NAT mapping");
    assert_eq!(sim.host().open_sockets(), 1);
}

#[test]
fn a_client_at_the_upstream_resolvers_address_keeps_it() {
    // Only flows the guest addressed to the DNS alias show the upstream as the alias; a forward's
    // client is whoever it is, even at the resolver's address and port.
    let mut sim = boot_internet(53);
    let server = sim.guest_mut().udp_bind(GUEST_PORT, 4096);
    add_forward(&mut sim, ANY_HOST_PORT, GUEST_PORT).unwrap();
    let client = slirp_test_host::fakenet::DNS_ADDR;
    assert!(sim.host_mut().client_send(client, SocketAddrV4::new(HOST_PUBLIC_ADDR, HOST_PORT), b"hello"));
    let (from, data) = recv_udp(&mut sim, server, Duration::from_secs(2)).expect("datagram to the guest");
    assert_eq!((from, data), (client, b"hello".to_vec()));
}

#[test]
fn remote_client_is_seen_with_its_real_address() {
    let mut sim = boot_internet(52);
    let server = sim.guest_mut().udp_bind(GUEST_PORT, 4096);
    add_forward(&mut sim, ANY_HOST_PORT, GUEST_PORT).unwrap();
    let client = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 77), 5555);
    for round in 0..3u8 {
        assert!(sim.host_mut().client_send(client, SocketAddrV4::new(HOST_PUBLIC_ADDR, HOST_PORT), &[round; 10]));
        let (from, data) = recv_udp(&mut sim, server, Duration::from_secs(2)).expect("datagram to the guest");
        assert_eq!((from, data), (client, vec![round; 10]));
        sim.guest_mut().udp_send(server, client, &[round + 100; 20]).unwrap();
        let (reply_from, reply) = client_recv(&mut sim, client).expect("reply to the client");
        assert_eq!((reply_from, reply), (SocketAddrV4::new(HOST_PUBLIC_ADDR, HOST_PORT), vec![round + 100; 20]));
    }
}

#[test]
fn forwards_are_added_and_removed_at_runtime() {
    let mut sim = boot_internet(53);
    let server = sim.guest_mut().udp_bind(GUEST_PORT, 4096);
    let other = sim.guest_mut().udp_bind(54, 4096);
    let client = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 45_001);
    let to = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);

    let id = add_forward(&mut sim, ANY_HOST_PORT, GUEST_PORT).unwrap();
    assert_eq!(
        add_forward(&mut sim, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8054), GUEST_PORT),
        Err(ForwardError::DuplicateGuest)
    );
    assert_eq!(add_forward(&mut sim, ANY_HOST_PORT, 54), Err(ForwardError::Host(HostError::AddrInUse)));
    let (core, net) = sim.core_and_host_mut();
    assert_eq!(
        core.add_udp_forward(net, to(9000), SocketAddrV4::new(GATEWAY, 1)),
        Err(ForwardError::GuestOutsideNetwork)
    );
    let rules: Vec<_> = sim.core().udp_forwards().collect();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (rules[0].id, rules[0].host, rules[0].guest),
        (id, ANY_HOST_PORT.into(), SocketAddrV4::new(GUEST, GUEST_PORT).into())
    );

    assert!(sim.host_mut().client_send(client, to(HOST_PORT), b"one"));
    assert_eq!(recv_udp(&mut sim, server, Duration::from_secs(1)).map(|(_, d)| d), Some(b"one".to_vec()));

    let (core, net) = sim.core_and_host_mut();
    core.remove_udp_forward(net, id).unwrap();
    assert_eq!(core.remove_udp_forward(net, id), Err(ForwardError::NotFound));
    assert_eq!(sim.core().udp_forwards().count(), 0);
    assert_eq!(sim.host().open_sockets(), 0, "the rule's socket is closed");
    assert!(!sim.host_mut().client_send(client, to(HOST_PORT), b"two"), "nobody listens any more");

    // The port is free again: a new rule takes it, to another guest port.
    let id2 = add_forward(&mut sim, ANY_HOST_PORT, 54).unwrap();
    assert_ne!(id2, id);
    assert!(sim.host_mut().client_send(client, to(HOST_PORT), b"three"));
    assert_eq!(recv_udp(&mut sim, other, Duration::from_secs(1)).map(|(_, d)| d), Some(b"three".to_vec()));
    assert_eq!(sim.guest_mut().udp_recv(server), None);
    assert_eq!(sim.host().stats().unknown_socket_calls, 0);
}

#[test]
fn a_datagram_in_flight_to_a_removed_forward_is_not_delivered() {
    let mut sim = boot_internet(54);
    let server = sim.guest_mut().udp_bind(GUEST_PORT, 4096);
    let id = add_forward(&mut sim, ANY_HOST_PORT, GUEST_PORT).unwrap();
    let client = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 77), 5555);
    // The client's datagram takes 5 ms to arrive; the rule goes away before.
    assert!(sim.host_mut().client_send(client, SocketAddrV4::new(HOST_PUBLIC_ADDR, HOST_PORT), b"late"));
    let (core, net) = sim.core_and_host_mut();
    core.remove_udp_forward(net, id).unwrap();
    assert_eq!(recv_udp(&mut sim, server, Duration::from_secs(1)), None);
    assert_eq!(sim.host().stats().arrivals_after_close, 1);
}

#[test]
fn forwards_work_in_restricted_mode() {
    let config = SimConfig { core: Config { restricted: true, ..Config::default() }, ..SimConfig::seeded(55) };
    let mut sim = boot(config, FakeNet::internet());
    let server = sim.guest_mut().udp_bind(GUEST_PORT, 4096);
    add_forward(&mut sim, ANY_HOST_PORT, GUEST_PORT).unwrap();
    let client = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 45_002);
    assert!(sim.host_mut().client_send(client, SocketAddrV4::new(Ipv4Addr::LOCALHOST, HOST_PORT), b"in"));
    let (from, data) = recv_udp(&mut sim, server, Duration::from_secs(2)).expect("forwarded in");
    assert_eq!((from, data.as_slice()), (SocketAddrV4::new(GATEWAY, 45_002), &b"in"[..]));
    sim.guest_mut().udp_send(server, from, b"out").unwrap();
    assert_eq!(client_recv(&mut sim, client).map(|(_, d)| d), Some(b"out".to_vec()), "the reply leaves");
    assert_eq!(sim.core().udp_flow_count(), 0);
}
