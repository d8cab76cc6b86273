//! Large datagrams: a 4000-byte ping is fragmented by the guest, reassembled by the core, and
//! the reply is fragmented by the core and reassembled by the guest.

use core::time::Duration;
use std::cell::RefCell;
use std::rc::Rc;

use slirp_test_host::smoltcp::wire::Ipv4Address;
use slirp_test_host::smoltcp::wire::{EthernetFrame, EthernetProtocol, Ipv4Packet};
use slirp_test_host::{Direction, LinkFaults, SimConfig, Simulation, TraceKind};

const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const DNS: Ipv4Address = Ipv4Address::new(10, 0, 2, 3);

/// (direction, fragment offset, more-fragments flag) of every delivered IPv4 fragment.
type FragmentLog = Rc<RefCell<Vec<(Direction, u16, bool)>>>;

fn log_fragments(sim: &mut Simulation) -> FragmentLog {
    let log = FragmentLog::default();
    let sink = Rc::clone(&log);
    sim.set_tracer(move |event| {
        if event.kind != TraceKind::Delivered {
            return;
        }
        let Ok(eth) = EthernetFrame::new_checked(event.frame) else { return };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return };
        if ip.more_frags() || ip.frag_offset() != 0 {
            sink.borrow_mut().push((event.direction, ip.frag_offset(), ip.more_frags()));
        }
    });
    log
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn ping_4000_bytes_round_trips_in_fragments_both_ways() {
    let mut sim = Simulation::new(SimConfig::seeded(3)).unwrap();
    sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    let log = log_fragments(&mut sim);
    let data = payload(4000);
    let pong = sim.ping(GATEWAY, 1, &data, Duration::from_secs(3)).unwrap();
    assert_eq!(pong.reply.payload, data);

    // 4008 bytes of ICMP at a 1500-byte MTU: offsets 0, 1480, 2960 each way.
    let expected = [(0, true), (1480, true), (2960, false)];
    for direction in [Direction::ToCore, Direction::ToGuest] {
        let seen: Vec<(u16, bool)> = log.borrow().iter().filter(|f| f.0 == direction).map(|f| (f.1, f.2)).collect();
        assert_eq!(seen, expected, "{direction:?}");
    }
    assert_eq!(sim.core().stats().reassembled, 1);
    assert_eq!(sim.core().stats().fragmented, 1);
}

#[test]
fn large_ping_to_dns_alias_round_trips() {
    let mut sim = Simulation::new(SimConfig::seeded(4)).unwrap();
    sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    let data = payload(6000);
    let pong = sim.ping(DNS, 9, &data, Duration::from_secs(3)).unwrap();
    assert_eq!(pong.reply.payload, data);
}

#[test]
fn reordered_fragments_are_reassembled() {
    // Every frame is held back by a random amount, so fragments arrive shuffled both ways.
    let shuffle = LinkFaults { reorder: 1.0, reorder_delay: Duration::from_millis(5), ..LinkFaults::NONE };
    let mut sim = Simulation::new(SimConfig::seeded(8).with_faults(shuffle)).unwrap();
    sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    let log = log_fragments(&mut sim);
    let mut shuffled = false;
    for seq in 0..6 {
        log.borrow_mut().clear();
        let data = payload(4000 + usize::from(seq));
        let pong = sim.ping(GATEWAY, seq, &data, Duration::from_secs(3)).unwrap();
        assert_eq!(pong.reply.payload, data);
        let to_core: Vec<u16> = log.borrow().iter().filter(|f| f.0 == Direction::ToCore).map(|f| f.1).collect();
        shuffled |= to_core.windows(2).any(|w| w[0] > w[1]);
    }
    assert!(shuffled, "the seed never delivered fragments out of order: pick another");
    assert_eq!(sim.core().stats().reassembled, 6);
}
