//! Host-to-guest backpressure: with a tiny guest RX budget the core leaves datagrams in the host
//! socket instead of dropping them, keeps each flow's order, and serves flows fairly.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::smoltcp::iface::SocketHandle;
use slirp_test_host::{FakeNet, LinkFaults, SimConfig, Simulation, UdpService};

const BURST_A: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 40), 4000);
const BURST_B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 41), 4000);

/// A guest with a one-frame RX budget behind a 1 ms link, a core with a small guest-bound
/// queue, and two burst servers answering `count` datagrams per request.
fn setup(seed: u64, count: u32, queue_limit: usize) -> Simulation<FakeNet> {
    let mut net = FakeNet::internet();
    net.add_udp_service(BURST_A, UdpService::Burst { count });
    net.add_udp_service(BURST_B, UdpService::Burst { count });
    net.set_socket_queue_limit(queue_limit);
    let mut config = SimConfig {
        guest_rx_capacity: 1,
        ..SimConfig::seeded(seed).with_faults(LinkFaults { delay: Duration::from_millis(1), ..LinkFaults::NONE })
    };
    config.storage.tx_bytes = 8 * 1024;
    boot(config, net)
}

/// The sequence numbers each socket received, until `want` in all or 10 s pass.
fn collect(sim: &mut Simulation<FakeNet>, socks: &[SocketHandle], want: usize) -> (Vec<Vec<u32>>, usize, Vec<usize>) {
    let mut got = vec![Vec::new(); socks.len()];
    let mut most_waiting_on_host = 0;
    let mut arrival_order = Vec::new();
    let _ = sim.run_until(
        |sim| {
            for (i, &s) in socks.iter().enumerate() {
                while let Some((_, data)) = sim.guest_mut().udp_recv(s) {
                    got[i].push(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
                    arrival_order.push(i);
                }
            }
            let waiting: usize = sim
                .host()
                .sockets_that_sent_to(BURST_A)
                .iter()
                .chain(sim.host().sockets_that_sent_to(BURST_B).iter())
                .map(|&id| sim.host().queued(id))
                .sum();
            most_waiting_on_host = most_waiting_on_host.max(waiting);
            got.iter().map(Vec::len).sum::<usize>() >= want
        },
        Duration::from_secs(10),
    );
    (got, most_waiting_on_host, arrival_order)
}

#[test]
fn burst_waits_in_the_host_socket_and_arrives_whole_and_in_order() {
    let mut sim = setup(61, 200, 256);
    let sock = sim.guest_mut().udp_bind(7000, 64 * 1024);
    sim.guest_mut().udp_send(sock, BURST_A, &[0xab; 100]).unwrap();
    let (got, most_waiting, _) = collect(&mut sim, &[sock], 200);
    assert_eq!(got[0], (0..200).collect::<Vec<u32>>(), "all 200, in order");
    assert!(most_waiting > 100, "the core left datagrams in the host socket (at most {most_waiting} waited)");
    assert_eq!(sim.host().stats().queue_drops, 0);
    assert!(drops(&sim).is_empty(), "unexpected drops: {:?}", drops(&sim));
}

#[test]
fn only_the_host_socket_buffer_drops() {
    let mut sim = setup(62, 200, 50);
    let sock = sim.guest_mut().udp_bind(7001, 64 * 1024);
    sim.guest_mut().udp_send(sock, BURST_A, &[0xcd; 100]).unwrap();
    sim.run_for(Duration::from_secs(2));
    let (got, _, _) = collect(&mut sim, &[sock], 200);
    let host_drops = sim.host().stats().queue_drops as usize;
    assert!(host_drops > 0, "the burst overflowed the host socket buffer");
    assert_eq!(got[0].len(), 200 - host_drops, "everything the host socket kept reached the guest");
    assert!(got[0].windows(2).all(|w| w[0] < w[1]), "in order: {:?}", got[0]);
    assert!(drops(&sim).is_empty(), "the core dropped nothing: {:?}", drops(&sim));
}

#[test]
fn two_bursting_flows_share_the_guest_link() {
    let mut sim = setup(63, 100, 256);
    let a = sim.guest_mut().udp_bind(7002, 64 * 1024);
    let b = sim.guest_mut().udp_bind(7003, 64 * 1024);
    sim.guest_mut().udp_send(a, BURST_A, b"a").unwrap();
    sim.guest_mut().udp_send(b, BURST_B, b"b").unwrap();
    let (got, _, order) = collect(&mut sim, &[a, b], 200);
    assert_eq!(got[0], (0..100).collect::<Vec<u32>>());
    assert_eq!(got[1], (0..100).collect::<Vec<u32>>());
    // Round robin: neither flow waits for the other to finish.
    let first_half = &order[..100];
    let from_a = first_half.iter().filter(|&&i| i == 0).count();
    assert!((25..=75).contains(&from_a), "{from_a} of the first 100 datagrams were flow a's");
}

/// Core bug (reported to the lead): a flow closed (evicted or expired) while waiting on the
/// ready list leaves its id there; once stale ids fill the ring, `Nat::mark_ready` drops the
/// push but still sets the flow's `ready` flag, so that flow is never read again (the host
/// socket keeps its datagrams, and an edge-triggered host never reports it again).
#[test]
fn flows_churned_while_the_guest_link_is_blocked_do_not_wedge_the_ready_list() {
    // Two UDP mappings; the ready list holds 2 + 32 + 2 ids.
    let mut config = SimConfig::seeded(64);
    config.storage.udp_flows = 2;
    config.storage.tx_bytes = 4 * 1024;
    let mut sim = boot(config, FakeNet::internet());
    let ports: Vec<u16> = (20_000..20_040).collect();
    let socks: Vec<SocketHandle> = ports.iter().map(|&p| sim.guest_mut().udp_bind(p, 4096)).collect();
    udp_round_trip(&mut sim, socks[0], slirp_test_host::fakenet::ECHO_ADDR, b"warm-up").unwrap();

    // The guest stops reading; a big echo fills the core's guest-bound queue.
    sim.set_guest_rx_capacity(0);
    sim.guest_mut().udp_send(socks[0], slirp_test_host::fakenet::ECHO_ADDR, &[7; 3000]).unwrap();
    sim.run_for(Duration::from_millis(50));
    // Each new guest port takes a mapping (evicting an older one) and gets an echo that waits.
    for &s in &socks[1..] {
        sim.guest_mut().udp_send(s, slirp_test_host::fakenet::ECHO_ADDR, b"churn").unwrap();
        sim.run_for(Duration::from_millis(20));
    }
    assert_eq!(sim.core().udp_flow_count(), 2);
    assert_eq!(sim.core().stats().dropped(slirp_test_host::slirp_core::DropReason::UdpFlowEvicted), 38);
    sim.set_guest_rx_capacity(64);
    sim.run_for(Duration::from_millis(100));
    // The two live mappings (the last two ports) get their waiting echoes...
    for &s in &socks[socks.len() - 2..] {
        let got = sim.guest_mut().udp_recv(s).map(|(_, d)| d);
        assert_eq!(got, Some(b"churn".to_vec()), "a live mapping's waiting datagram was delivered");
    }
    // ...and keep working.
    let last = socks[socks.len() - 1];
    let (from, _) = udp_round_trip(&mut sim, last, slirp_test_host::fakenet::ECHO_ADDR, b"after").expect("echo");
    assert_eq!(from, slirp_test_host::fakenet::ECHO_ADDR);
}
