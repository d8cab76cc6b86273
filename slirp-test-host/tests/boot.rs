//! A smoltcp guest boots against the core on a perfect link: DHCP, then pings.

use core::time::Duration;

use slirp_test_host::smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use slirp_test_host::{Direction, SimConfig, Simulation, GUEST_MAC};

const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const DNS: Ipv4Address = Ipv4Address::new(10, 0, 2, 3);

#[test]
fn dhcp_gives_first_pool_address_router_and_dns() {
    let mut sim = Simulation::new(SimConfig::seeded(1)).unwrap();
    let lease = sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    assert_eq!(lease.address, Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24));
    assert_eq!(lease.router, Some(GATEWAY));
    assert_eq!(lease.dns_servers, vec![DNS]);
    assert_eq!(sim.guest().ipv4_addr(), Some(Ipv4Address::new(10, 0, 2, 15)));
    // On a perfect link with microsecond latency nothing waits for a retry timer.
    assert!(sim.now().total_millis() < 100, "lease took until {}", sim.now());
    let leases: Vec<_> = sim.core().leases().collect();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].0, core::net::Ipv4Addr::new(10, 0, 2, 15));
    assert_eq!(leases[0].1 .0, GUEST_MAC.0);
}

#[test]
fn guest_pings_gateway_and_dns_alias() {
    let mut sim = Simulation::new(SimConfig::seeded(2)).unwrap();
    sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    for (seq, dst) in [GATEWAY, DNS, GATEWAY].into_iter().enumerate() {
        let payload: Vec<u8> = (0..56u8).map(|b| b.wrapping_mul(seq as u8 + 3)).collect();
        let pong = sim.ping(dst, seq as u16, &payload, Duration::from_secs(2)).unwrap();
        assert_eq!(pong.reply.from, dst);
        assert_eq!(pong.reply.seq_no, seq as u16);
        assert_eq!(pong.reply.payload, payload);
    }
    // Every frame crossing the perfect link is accounted for on both ends, and none was dropped.
    let stats = sim.core().stats();
    assert_eq!(stats.rx_frames, sim.link().stats(Direction::ToCore).delivered);
    assert_eq!(stats.tx_frames, sim.link().stats(Direction::ToGuest).sent);
    let drops: Vec<_> = stats.drops().collect();
    assert!(drops.is_empty(), "unexpected drops: {drops:?}");
}
