//! Per-instance tracing: with `Config::trace` on, the core records leases, TCP and UDP flows
//! opening and closing with their addresses, drops with their reason and frame summaries, for
//! the embedder to drain; a ring that is not drained loses its oldest events and says how many;
//! off, nothing is recorded.

mod common;

use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::slirp_core::trace::{CloseReason, FrameDirection, TraceEvent, TRACE_CAPACITY};
use slirp_test_host::slirp_core::DropReason;
use slirp_test_host::{FakeNet, SimConfig, Simulation, TcpService, UdpService};

const ECHO: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 40), 7);

fn traced(seed: u64) -> Simulation<FakeNet> {
    let mut net = FakeNet::internet();
    net.add_tcp_service(ECHO, TcpService::Echo);
    net.add_udp_service(ECHO, UdpService::Echo);
    let mut config = SimConfig::seeded(seed);
    config.core.trace = true;
    Simulation::with_host(config, net).unwrap()
}

/// Runs until `done`, draining the trace into `log` after every instant.
fn run_collecting(
    sim: &mut Simulation<FakeNet>,
    log: &mut Vec<TraceEvent>,
    limit: Duration,
    mut done: impl FnMut(&mut Simulation<FakeNet>) -> bool,
) {
    sim.run_until(
        |sim| {
            while let Some(e) = sim.core_mut().poll_trace() {
                log.push(e);
            }
            done(sim)
        },
        limit,
    )
    .expect("in time");
}

#[test]
fn leases_flows_drops_and_frames_are_traced() {
    let mut sim = traced(1);
    let mut log = Vec::new();
    sim.guest_mut().start_dhcp();
    run_collecting(&mut sim, &mut log, Duration::from_secs(10), |sim| sim.guest().lease().is_some());
    let guest_ip = IpAddr::V4(GUEST);
    assert!(log.iter().any(|e| matches!(e, TraceEvent::Lease { addr, .. } if *addr == guest_ip)), "{log:?}");
    assert!(log
        .iter()
        .any(|e| matches!(e, TraceEvent::Frame { direction: FrameDirection::FromGuest, ethertype: 0x0800, .. })));
    assert!(log
        .iter()
        .any(|e| matches!(e, TraceEvent::Frame { direction: FrameDirection::ToGuest, ethertype: 0x0800, .. })));

    // A TCP exchange: opened, then closed once both sides finish.
    let s = sim.guest_mut().tcp_connect(ECHO, 41_000, 16 * 1024);
    run_collecting(&mut sim, &mut log, Duration::from_secs(5), |sim| tcp_socket(sim, s).may_send());
    tcp_socket(&mut sim, s).send_slice(b"traced").unwrap();
    tcp_socket(&mut sim, s).close();
    run_collecting(&mut sim, &mut log, Duration::from_secs(120), |sim| sim.core().tcp_connection_count() == 0);
    let guest = SocketAddr::new(guest_ip, 41_000);
    let remote = SocketAddr::V4(ECHO);
    assert!(log.contains(&TraceEvent::TcpOpened { guest, remote, forwarded: false }), "{log:?}");
    assert!(log.contains(&TraceEvent::TcpClosed { guest, remote, reason: CloseReason::Finished, forwarded: false }));

    // A UDP mapping, and its expiry.
    let u = sim.guest_mut().udp_bind(41_001, 4096);
    sim.guest_mut().udp_send(u, ECHO, b"x").unwrap();
    run_collecting(&mut sim, &mut log, Duration::from_secs(2), |sim| sim.guest_mut().udp_recv(u).is_some());
    let ug = SocketAddr::new(guest_ip, 41_001);
    assert!(log.contains(&TraceEvent::UdpOpened { guest: ug, remote }));
    run_collecting(&mut sim, &mut log, Duration::from_secs(300), |sim| sim.core().udp_flow_count() == 0);
    assert!(log.contains(&TraceEvent::UdpClosed { guest: ug, reason: CloseReason::Expired }));

    // A refused connection (nobody at that port of the stand-in) is traced as such.
    let refused = SocketAddrV4::new(*ECHO.ip(), 9);
    let r = sim.guest_mut().tcp_connect(refused, 41_002, 8192);
    run_collecting(&mut sim, &mut log, Duration::from_secs(5), |sim| {
        !tcp_socket(sim, r).is_open() && sim.core().tcp_connection_count() == 0
    });
    let closed = TraceEvent::TcpClosed {
        guest: SocketAddr::new(guest_ip, 41_002),
        remote: SocketAddr::V4(refused),
        reason: CloseReason::Refused,
        forwarded: false,
    };
    assert!(log.contains(&closed), "{log:?}");

    // A drop, with its reason.
    sim.inject_from_guest(&[0u8; 10]);
    run_collecting(&mut sim, &mut log, Duration::from_millis(10), |_| true);
    assert!(log.contains(&TraceEvent::Dropped(DropReason::EthernetTruncated)));
    assert_eq!(sim.core().stats().trace_lost, 0, "drained every turn: nothing lost");
}

#[test]
fn an_undrained_ring_keeps_the_newest_and_counts_the_rest() {
    let mut sim = traced(2);
    sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    for _ in 0..TRACE_CAPACITY + 50 {
        sim.inject_from_guest(&[0u8; 10]);
    }
    sim.run_for(Duration::from_millis(10));
    let mut n = 0;
    let mut last = None;
    while let Some(e) = sim.core_mut().poll_trace() {
        n += 1;
        last = Some(e);
    }
    assert_eq!(n, TRACE_CAPACITY);
    assert_eq!(last, Some(TraceEvent::Dropped(DropReason::EthernetTruncated)), "the newest kept");
    assert!(sim.core().stats().trace_lost >= 50);
}

#[test]
fn off_records_nothing() {
    let mut sim = boot(SimConfig::seeded(3), FakeNet::internet());
    sim.inject_from_guest(&[0u8; 10]);
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.core_mut().poll_trace(), None);
    assert_eq!(sim.core().stats().trace_lost, 0);
}
