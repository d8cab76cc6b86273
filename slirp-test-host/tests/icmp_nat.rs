//! ICMP echo through the NAT: ping sockets, raw sockets, the pseudo-ping fallback, and none.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::fakenet::{ECHO_ADDR, PING_SOCKET_IDENT, QUIET_HOST};
use slirp_test_host::slirp_core::DropReason;
use slirp_test_host::smoltcp::wire::Ipv4Address;
use slirp_test_host::{EchoMode, FakeNet, SimConfig, Simulation, PING_IDENT};

const ECHO_HOST: Ipv4Address = Ipv4Address::new(198, 51, 100, 7);

/// Sends `count` pings to `dst` at once (payloads differ per sequence number) and collects the
/// replies, in arrival order.
fn ping_burst(sim: &mut Simulation<FakeNet>, dst: Ipv4Address, count: u16) -> Vec<slirp_test_host::EchoReply> {
    for seq in 0..count {
        let payload: Vec<u8> = (0..40 + seq).map(|i| (i as u8).wrapping_mul(seq as u8 + 1)).collect();
        sim.guest_mut().send_ping(dst, PING_IDENT, seq, &payload).unwrap();
    }
    let mut replies = Vec::new();
    let _ = sim.run_until(
        |sim| {
            while let Some(r) = sim.guest_mut().recv_ping() {
                replies.push(r);
            }
            replies.len() >= usize::from(count)
        },
        Duration::from_secs(5),
    );
    replies
}

fn check_replies(replies: &[slirp_test_host::EchoReply], dst: Ipv4Address, count: u16) {
    let mut seqs: Vec<u16> = replies.iter().map(|r| r.seq_no).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..count).collect::<Vec<_>>(), "one reply per request");
    for r in replies {
        let payload: Vec<u8> = (0..40 + r.seq_no).map(|i| (i as u8).wrapping_mul(r.seq_no as u8 + 1)).collect();
        assert_eq!(r.from, dst);
        assert_eq!(r.ident, PING_IDENT, "the guest's own identifier comes back");
        assert_eq!(r.payload, payload, "the guest's own payload comes back");
    }
}

#[test]
fn pings_through_the_hosts_ping_socket_several_in_flight() {
    let mut sim = boot_internet(31);
    // Resolve the gateway first so the burst leaves together.
    sim.ping(Ipv4Address::new(10, 0, 2, 2), 100, b"warm-up", Duration::from_secs(3)).unwrap();
    let replies = ping_burst(&mut sim, ECHO_HOST, 6);
    check_replies(&replies, ECHO_HOST, 6);
    let echoes = sim.host().echoes_sent();
    assert_eq!(echoes.len(), 6, "one echo request per guest request, none before");
    assert!(echoes.iter().all(|e| e.ident == PING_SOCKET_IDENT && e.dst == *ECHO_ADDR.ip()));
    let mut host_seqs: Vec<u16> = echoes.iter().map(|e| e.seq_no).collect();
    host_seqs.dedup();
    assert_eq!(host_seqs.len(), 6, "each request in flight has its own host sequence number");
    assert!(echoes.iter().all(|e| e.ttl == Some(63)), "the guest's TTL less one hop");
    assert_eq!(sim.host().open_sockets(), 1, "one long-lived echo socket");
    assert!(drops(&sim).is_empty(), "unexpected drops: {:?}", drops(&sim));

    // A second round reuses the same socket.
    let pong = sim.ping(ECHO_HOST, 7, b"again", Duration::from_secs(3)).unwrap();
    assert_eq!(pong.reply.payload, b"again");
    assert_eq!(sim.host().stats().opened, 1);
}

#[test]
fn pings_through_a_raw_socket() {
    let mut net = FakeNet::internet();
    net.set_echo_mode(EchoMode::Raw);
    let mut sim = boot(SimConfig::seeded(32), net);
    let replies = ping_burst(&mut sim, Ipv4Address::new(198, 51, 100, 9), 3);
    check_replies(&replies, Ipv4Address::new(198, 51, 100, 9), 3);
    assert!(sim.host().echoes_sent().iter().all(|e| e.dst == QUIET_HOST));
}

#[test]
fn pseudo_ping_over_udp_port_7_when_no_echo_socket() {
    let mut net = FakeNet::internet();
    net.set_echo_mode(EchoMode::Unavailable);
    let mut sim = boot(SimConfig::seeded(33), net);
    let replies = ping_burst(&mut sim, ECHO_HOST, 3);
    check_replies(&replies, ECHO_HOST, 3);
    assert!(sim.host().echoes_sent().is_empty());
    let sent = sim.host().sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|d| d.to == SocketAddrV4::new(*ECHO_ADDR.ip(), 7)), "UDP to port 7: {sent:?}");
    assert_eq!(sim.host().sockets_that_sent_to(ECHO_ADDR).len(), 1, "one long-lived pseudo-ping socket");
}

#[test]
fn no_echo_socket_and_no_udp_socket_answers_unreachable() {
    let mut net = FakeNet::internet();
    net.set_echo_mode(EchoMode::Unavailable);
    net.set_socket_limit(Some(0));
    let mut sim = boot(SimConfig::seeded(34), net);
    // The guest's ping gets no echo reply; the core counts it.
    assert!(sim.ping(ECHO_HOST, 1, b"nobody", Duration::from_secs(2)).is_err());
    assert!(sim.core().stats().dropped(DropReason::IcmpEchoUnavailable) >= 1);
    assert!(sim.core().stats().icmp_errors_sent >= 1, "the guest was told (network unreachable)");
}

#[test]
fn ping_to_a_silent_address_times_out_and_late_traffic_is_harmless() {
    let mut sim = boot_internet(35);
    let silent = Ipv4Address::new(198, 51, 100, 200);
    assert!(sim.ping(silent, 1, b"hello?", Duration::from_secs(3)).is_err());
    // Other pings still work afterwards.
    let pong = sim.ping(ECHO_HOST, 2, b"still alive", Duration::from_secs(3)).unwrap();
    assert_eq!(pong.reply.from, ECHO_HOST);
    assert_eq!(sim.host().echoes_sent().iter().filter(|e| e.dst == Ipv4Addr::new(198, 51, 100, 200)).count(), 1);
}
