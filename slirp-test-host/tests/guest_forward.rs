//! Guest-forward rules with a smoltcp guest: a virtual endpoint of the guest network served by
//! the embedder (here FakeNet's TCP services standing in for a command or a socket): ARP and
//! ping for the rule address, bulk both ways with hashes and half-close through the same TCB
//! and backpressure as the NAT, other ports refused, restricted mode, runtime removal.

mod common;

use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::slirp_core::{ForwardError, MAX_GUEST_FORWARDS};
use slirp_test_host::smoltcp::socket::tcp;
use slirp_test_host::{FakeNet, SimConfig, Simulation, TcpService};

const RULE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 100), 4321);
const SINK: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 31), 9);
const SOURCE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 32), 19);
const MIB: u64 = 1024 * 1024;

fn boot_with_rule(seed: u64, service: TcpService, restricted: bool) -> (Simulation<FakeNet>, u32) {
    let mut net = FakeNet::internet();
    let at = match service {
        TcpService::Sink => SINK,
        _ => SOURCE,
    };
    net.add_tcp_service(at, service);
    let mut config = SimConfig::seeded(seed);
    config.core.restricted = restricted;
    let mut sim = boot(config, net);
    let rule = sim.core_mut().add_guest_forward(RULE).unwrap();
    sim.host_mut().serve_guest_forward(rule, at);
    (sim, rule)
}

#[test]
fn upload_to_a_guest_forward_half_closes_and_hashes() {
    let (mut sim, rule) = boot_with_rule(1, TcpService::Sink, false);
    let up = sim.guest_mut().tcp_connect(RULE, 40_001, 64 * 1024);
    let mut streams = [GuestStream::new(up).uploading(0xa0, 4 * MIB, true)];
    drive(&mut sim, &mut streams, Duration::from_secs(120), |sim, s| s[0].remote_done(sim)).unwrap();
    let reply = streams[0].kept.as_ref().unwrap();
    assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), 4 * MIB, "the endpoint got every byte");
    assert!(reply[8..] == slirp_test_host::sha256::pattern_digest(0xa0, 4 * MIB));
    assert_eq!(sim.host().guest_forward_opens(), &[(rule, SocketAddr::new(IpAddr::V4(GUEST), 40_001))]);
}

#[test]
fn download_from_a_guest_forward_with_a_slow_guest_reader() {
    let (mut sim, _) = boot_with_rule(2, TcpService::Source { bytes: 4 * MIB, seed: 0xd0 }, false);
    // A guest with a small window, draining slowly: the endpoint's data waits in the TCB and
    // the host socket, nothing is lost.
    sim.set_guest_rx_capacity(4);
    let down = sim.guest_mut().tcp_connect(RULE, 40_002, 16 * 1024);
    let mut streams = [GuestStream::new(down).hashing_only()];
    drive(&mut sim, &mut streams, Duration::from_secs(300), |sim, s| s[0].remote_done(sim)).unwrap();
    assert_eq!(streams[0].received(), 4 * MIB);
    assert!(streams[0].down.finish() == slirp_test_host::sha256::pattern_digest(0xd0, 4 * MIB));
    // The room the embedder may offer is bounded by the TCB's send buffer.
    let conns: Vec<_> = sim.core().tcp_connections().collect();
    for c in conns {
        assert!(c.send_queue <= 256 * 1024);
    }
}

#[test]
fn the_rule_address_answers_arp_and_ping_and_other_ports_are_closed() {
    let (mut sim, _) = boot_with_rule(3, TcpService::Sink, false);
    let pong = sim.ping(*RULE.ip(), 1, b"rule", Duration::from_secs(1)).expect("the rule address answers ping");
    assert_eq!(pong.reply.payload, b"rule");
    let s = sim.guest_mut().tcp_connect(SocketAddrV4::new(*RULE.ip(), 4322), 40_003, 8192);
    let closed = wait_state(&mut sim, s, tcp::State::Closed, Duration::from_secs(2));
    assert!(closed.is_ok(), "another port of the rule address is refused (RST)");
    assert!(sim.host().guest_forward_opens().is_empty());
    assert!(sim.core().neighbors().count() >= 1);
}

#[test]
fn guest_forwards_work_in_restricted_mode() {
    let (mut sim, _) = boot_with_rule(4, TcpService::Sink, true);
    let up = sim.guest_mut().tcp_connect(RULE, 40_004, 64 * 1024);
    let mut streams = [GuestStream::new(up).uploading(0xa1, 256 * 1024, true)];
    drive(&mut sim, &mut streams, Duration::from_secs(60), |sim, s| s[0].remote_done(sim)).unwrap();
    let reply = streams[0].kept.as_ref().unwrap();
    assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), 256 * 1024);
    // While the world stays out of reach.
    let out = sim.guest_mut().tcp_connect(SINK, 40_005, 8192);
    sim.run_for(Duration::from_secs(2));
    assert_ne!(tcp_socket(&mut sim, out).state(), tcp::State::Established);
}

#[test]
fn an_endpoint_that_refuses_resets_the_guest_and_removal_stops_new_connections() {
    let (mut sim, rule) = boot_with_rule(5, TcpService::Sink, false);
    // A second rule nobody serves: the host refuses the open.
    let unserved = sim.core_mut().add_guest_forward(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 101), 1)).unwrap();
    let s = sim.guest_mut().tcp_connect(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 101), 1), 40_006, 8192);
    assert!(wait_state(&mut sim, s, tcp::State::Closed, Duration::from_secs(2)).is_ok());
    assert_eq!(sim.host().guest_forward_opens().last().map(|o| o.0), Some(unserved));
    // Conflicts and a full table are errors.
    assert_eq!(sim.core_mut().add_guest_forward(RULE), Err(ForwardError::DuplicateGuest));
    let dns: SocketAddrV4 = "10.0.2.3:53".parse().unwrap();
    assert_eq!(sim.core_mut().add_guest_forward(dns), Err(ForwardError::DuplicateGuest));
    for p in 2..MAX_GUEST_FORWARDS as u16 {
        sim.core_mut().add_guest_forward(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 102), p)).unwrap();
    }
    assert_eq!(
        sim.core_mut().add_guest_forward(SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 103), 1)),
        Err(ForwardError::TableFull)
    );
    // Removed: its address no longer answers, a new connection is not opened.
    sim.core_mut().remove_guest_forward(rule).unwrap();
    let opens = sim.host().guest_forward_opens().len();
    let s = sim.guest_mut().tcp_connect(RULE, 40_007, 8192);
    sim.run_for(Duration::from_secs(3));
    assert_ne!(tcp_socket(&mut sim, s).state(), tcp::State::Established);
    assert_eq!(sim.host().guest_forward_opens().len(), opens);
}

#[test]
fn an_embedder_pushes_data_within_the_room_and_finishes() {
    let mut sim = boot(SimConfig::seeded(6), FakeNet::internet());
    let rule = sim.core_mut().add_guest_forward(RULE).unwrap();
    sim.host_mut().serve_guest_forward_pushed(rule);
    let s = sim.guest_mut().tcp_connect(RULE, 40_010, 16 * 1024);
    let mut streams = [GuestStream::new(s).hashing_only()];
    sim.run_for(Duration::from_millis(50));
    let id = *sim.host().pushed().keys().next().expect("the connection opened");
    tcp_socket(&mut sim, s).send_slice(b"hello from the guest").unwrap();
    // The embedder writes 2 MiB of pattern 0xd5, never more than the room says (the seed's
    // SocketCanRecv / SocketRecv), while the guest reads.
    let total = 2 * MIB;
    let mut pending: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut written = 0u64;
    let mut finished = false;
    drive(&mut sim, &mut streams, Duration::from_secs(120), |sim, s| {
        let now = sim.now();
        let (core, host) = sim.core_and_host_mut();
        let room = core.connection_room(id).expect("open");
        if pending.is_empty() && offset < total {
            let n = (room.min(8192) as u64).min(total - offset) as usize;
            pending = vec![0; n];
            slirp_test_host::sha256::pattern(0xd5, offset, &mut pending);
            offset += n as u64;
        }
        if !pending.is_empty() && room > 0 {
            let n = core.connection_write(now, id, &pending, host).expect("open");
            assert!(n <= room, "took {n} with room {room}");
            written += n as u64;
            pending.drain(..n);
        }
        if written == total && !finished {
            finished = core.connection_finish(now, id, host);
        }
        s[0].remote_done(sim)
    })
    .unwrap();
    assert_eq!(streams[0].received(), total);
    assert!(streams[0].down.finish() == slirp_test_host::sha256::pattern_digest(0xd5, total));
    assert_eq!(sim.host().pushed()[&id].from_guest, b"hello from the guest", "the other way too");
    // Done: no more writes.
    let now = sim.now();
    let (core, host) = sim.core_and_host_mut();
    assert_eq!(core.connection_write(now, id, b"late", host), None);
}
