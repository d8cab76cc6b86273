//! A seed replays a run exactly: the pcap of two runs with one seed is byte-identical.

use core::time::Duration;

use slirp_test_host::smoltcp::wire::Ipv4Address;
use slirp_test_host::{Direction, LinkFaults, SimConfig, Simulation};

/// Boots, pings the gateway and the DNS alias a few times (small and large), returns the pcap.
fn scenario(seed: u64, faults: LinkFaults) -> (Vec<u8>, u64) {
    let config = SimConfig::seeded(seed).with_faults(faults).with_capture();
    let mut sim = Simulation::new(config).unwrap();
    sim.wait_for_lease(Duration::from_secs(300)).unwrap();
    for seq in 0..12u16 {
        let dst = Ipv4Address::new(10, 0, 2, 2 + (seq % 2) as u8);
        let size = if seq % 4 == 3 { 3000 } else { 40 };
        let payload = vec![seq as u8; size];
        // Lost pings are part of the recorded story; only the bytes matter here.
        let _ = sim.ping(dst, seq, &payload, Duration::from_millis(500));
    }
    let delivered = [Direction::ToCore, Direction::ToGuest].iter().map(|&d| sim.link().stats(d).delivered).sum();
    (sim.pcap_bytes().unwrap().to_vec(), delivered)
}

/// Frame records in a classic pcap (after the 24-byte header).
fn count_records(pcap: &[u8]) -> u64 {
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
        n += 1;
    }
    assert_eq!(at, pcap.len(), "records tile the file exactly");
    n
}

#[test]
fn same_seed_same_pcap_bytes_with_faults() {
    let (a, delivered) = scenario(42, LinkFaults::chaos());
    let (b, _) = scenario(42, LinkFaults::chaos());
    assert_eq!(count_records(&a), delivered, "every delivered frame is recorded");
    assert!(delivered > 20);
    assert!(a == b, "two runs of seed 42 differ");
}

#[test]
fn same_seed_same_pcap_bytes_on_a_perfect_link() {
    assert!(scenario(5, LinkFaults::NONE).0 == scenario(5, LinkFaults::NONE).0);
}

#[test]
fn different_seeds_give_different_runs() {
    let (a, _) = scenario(1, LinkFaults::chaos());
    let (b, _) = scenario(2, LinkFaults::chaos());
    assert!(a != b, "seeds 1 and 2 produced the same capture");
}

/// A TCP run through the NAT on the fake internet (an echo of 256 KiB and a 256 KiB download
/// at once, under loss, duplication, reordering and jitter); returns the pcap and the bytes the
/// guest received.
fn tcp_scenario(seed: u64) -> (Vec<u8>, usize) {
    use core::net::{Ipv4Addr, SocketAddrV4};
    use slirp_test_host::fakenet::ECHO_ADDR;
    use slirp_test_host::smoltcp::socket::tcp;
    use slirp_test_host::{FakeNet, TcpService};

    let source = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 60), 6000);
    let mut net = FakeNet::internet();
    net.add_tcp_service(source, TcpService::Source { bytes: 256 * 1024, seed });
    let faults = LinkFaults {
        loss: 0.02,
        duplicate: 0.01,
        reorder: 0.02,
        jitter: Duration::from_micros(300),
        ..LinkFaults::NONE
    };
    let mut sim = Simulation::with_host(SimConfig::seeded(seed).with_faults(faults).with_capture(), net).unwrap();
    sim.wait_for_lease(Duration::from_secs(60)).unwrap();
    let echo = sim.guest_mut().tcp_connect(ECHO_ADDR, 40_000, 32 * 1024);
    let down = sim.guest_mut().tcp_connect(source, 40_001, 64 * 1024);
    let payload: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut received = 0;
    let _ = sim.run_until(
        |sim| {
            let s = sim.guest_mut().socket_mut::<tcp::Socket>(echo);
            if s.can_send() && sent < payload.len() {
                sent += s.send_slice(&payload[sent..]).unwrap_or(0);
            }
            for h in [echo, down] {
                let s = sim.guest_mut().socket_mut::<tcp::Socket>(h);
                while s.can_recv() {
                    received += s.recv(|b| (b.len(), b.len())).unwrap_or(0);
                }
            }
            received == 2 * payload.len()
        },
        Duration::from_secs(120),
    );
    (sim.pcap_bytes().unwrap().to_vec(), received)
}

#[test]
fn same_seed_same_pcap_bytes_for_a_tcp_run() {
    let (a, got) = tcp_scenario(9);
    assert_eq!(got, 2 * 256 * 1024, "the transfers completed");
    let (b, _) = tcp_scenario(9);
    assert!(a == b, "two TCP runs of seed 9 differ");
    let (c, _) = tcp_scenario(10);
    assert!(a != c, "seeds 9 and 10 produced the same capture");
}
