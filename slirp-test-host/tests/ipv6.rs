//! A smoltcp guest speaking IPv6 through the core: static `fd00::100/64` with the default route
//! via the router's link-local `fe80::2` (its MAC found by neighbor discovery), bulk TCP both
//! ways with SHA-256 checks on a perfect and on a lossy, reordering, duplicating link, and UDP
//! up to the MTU.
//!
//! The fake internet of this crate speaks IPv4, so the guest addresses its servers through the
//! NAT64 prefix (`64:ff9b::a.b.c.d`, which the core maps to IPv4 host sockets): everything on
//! the guest side — NDP, IPv6 headers, the v6 TCP and UDP checksums, the MSS for a 40-byte
//! header, fragments — is IPv6, and the host side is the one the IPv4 tests already check. IPv6
//! host sockets are covered by the real-kernel tests (slirp-std/tests/netns_ipv6.rs).

mod common;

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use core::time::Duration;

use common::*;
use slirp_test_host::slirp_core::{DropReason, Ipv6Config};
use slirp_test_host::smoltcp::wire::Ipv6Cidr;
use slirp_test_host::{Direction, FakeNet, LinkFaults, SimConfig, Simulation, TcpService, UdpService};

const SOURCE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 20), 5001);
const SINK: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 21), 5002);
const ECHO: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 22), 7);
const GUEST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const GUEST_BUFFER: usize = 256 * 1024;
const MIB: u64 = 1024 * 1024;

/// `a` as a v6 guest names it: in the NAT64 prefix.
fn six(a: SocketAddrV4) -> SocketAddr {
    let ip = Ipv6Addr::from((0x64_u128 << 112) | (0xff9b_u128 << 96) | u128::from(u32::from(*a.ip())));
    SocketAddr::V6(SocketAddrV6::new(ip, a.port(), 0, 0))
}

fn boot6(seed: u64, net: FakeNet) -> Simulation<FakeNet> {
    let mut config = SimConfig::seeded(seed);
    config.core.ipv6 = Ipv6Config { enabled: true, ..Ipv6Config::default() };
    let mut sim = boot(config, net);
    sim.guest_mut().set_ipv6_address(Ipv6Cidr::new(GUEST6, 64), ROUTER_LL);
    sim
}

/// Downloads and uploads `len` bytes at once over IPv6, checks both hashes and that everything
/// is gone once TIME_WAIT passes; returns the virtual time the transfers took.
fn both_ways6(seed: u64, len: u64, faults: LinkFaults, up_buffer: usize, limit: Duration) -> Duration {
    let mut net = FakeNet::internet();
    net.add_tcp_service(SOURCE, TcpService::Source { bytes: len, seed: seed ^ 0xd0 });
    net.add_tcp_service(SINK, TcpService::Sink);
    let mut sim = boot6(seed, net);
    sim.link_mut().set_faults(Direction::ToCore, faults);
    sim.link_mut().set_faults(Direction::ToGuest, faults);
    let down = sim.guest_mut().tcp_connect_any(six(SOURCE), 50_001, GUEST_BUFFER);
    let up = sim.guest_mut().tcp_connect_any(six(SINK), 50_002, up_buffer);
    let mut streams = [GuestStream::new(down).hashing_only(), GuestStream::new(up).uploading(seed ^ 0xa0, len, true)];
    let result = drive(&mut sim, &mut streams, limit, |sim, s| s[0].remote_done(sim) && s[1].remote_done(sim));
    let took = result.unwrap_or_else(|e| {
        panic!(
            "seed {seed}: {e}; down {} of {len}, up {} queued; core {:?}; drops {:?}",
            streams[0].received(),
            streams[1].up_sent,
            sim.core().tcp_connections().collect::<Vec<_>>(),
            drops(&sim)
        )
    });
    check_transfers_and_settle(&mut sim, &mut streams, seed, len);
    assert!(
        sim.core().neighbors().any(|(a, _)| a == core::net::IpAddr::V6(GUEST6)),
        "the guest's v6 address was learned"
    );
    took
}

#[test]
fn eight_mib_each_way_over_ipv6_on_a_perfect_link() {
    let took = both_ways6(61, 8 * MIB, LinkFaults::NONE, GUEST_BUFFER, Duration::from_secs(60));
    eprintln!("IPv6, 8 MiB each way: {took:?} virtual");
}

#[test]
fn ipv6_segments_use_the_v6_mss_and_nothing_is_dropped_as_malformed() {
    let mut net = FakeNet::internet();
    net.add_tcp_service(SOURCE, TcpService::Source { bytes: 256 * 1024, seed: 9 });
    let mut sim = boot6(62, net);
    let log = record_frames(&mut sim);
    let down = sim.guest_mut().tcp_connect_any(six(SOURCE), 50_003, GUEST_BUFFER);
    let mut streams = [GuestStream::new(down).hashing_only()];
    drive(&mut sim, &mut streams, Duration::from_secs(30), |sim, s| s[0].remote_done(sim)).unwrap();
    assert_eq!(streams[0].received(), 256 * 1024);
    // Every segment toward the guest is IPv6 and at most MTU - 40 - 20 bytes of payload.
    let frames = log.borrow();
    let mut data_segments = 0;
    for (_, dir, f) in frames.iter() {
        if *dir != Direction::ToGuest || f.len() < 14 || f[12..14] != [0x86, 0xdd] || f[14 + 6] != 6 {
            continue;
        }
        let tcp = &f[14 + 40..];
        let header = usize::from(tcp[12] >> 4) * 4;
        let payload = usize::from(u16::from_be_bytes([f[18], f[19]])) - header;
        assert!(payload <= 1500 - 60, "a {payload}-byte segment over a 1500-byte link");
        data_segments += usize::from(payload > 0);
    }
    assert!(data_segments >= 180, "{data_segments} v6 data segments for 256 KiB");
    for r in [DropReason::Ipv6Malformed, DropReason::TcpMalformed, DropReason::Icmpv6Malformed] {
        assert_eq!(sim.core().stats().dropped(r), 0, "{r}");
    }
}

/// Over loss (0.5 % to 5 %), duplicates, reordering and delay, 12 seeds.
#[test]
fn twelve_seeds_two_mib_each_way_over_ipv6_under_faults() {
    let t = std::time::Instant::now();
    for seed in 600..612u64 {
        let loss = [0.005, 0.01, 0.02, 0.05][(seed % 4) as usize];
        both_ways6(seed, 2 * MIB, faults(loss), 16 * 1024, Duration::from_secs(900));
    }
    eprintln!("12 seeds x 2 MiB each way over IPv6: {:?} real", t.elapsed());
}

/// Up to the largest datagram that fits the link (smoltcp does not fragment IPv6 on Ethernet;
/// v6 fragments both ways are checked at the engine level and with the real kernel).
#[test]
fn udp_over_ipv6_up_to_the_mtu() {
    let mut net = FakeNet::internet();
    net.add_udp_service(ECHO, UdpService::Echo);
    let mut sim = boot6(63, net);
    let sock = sim.guest_mut().udp_bind(40_000, 16 * 1024);
    for len in [1usize, 512, 1452] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        sim.guest_mut().udp_send_any(sock, six(ECHO), &data).unwrap();
        let mut got = None;
        sim.run_until(
            |sim| {
                got = sim.guest_mut().udp_recv_any(sock);
                got.is_some()
            },
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("{len}-byte datagram: {e}; drops {:?}", drops(&sim)));
        let (from, echoed) = got.unwrap();
        assert_eq!(from, six(ECHO), "the reply comes from the address the guest asked");
        assert_eq!(echoed, data, "{len} bytes");
    }
    assert_eq!(sim.core().udp_flow_count(), 1, "one endpoint-independent mapping");
}
