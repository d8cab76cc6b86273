//! The boot sequence survives a hostile link: every seed gets its lease and its pongs.

use core::time::Duration;

use slirp_test_host::smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use slirp_test_host::{Direction, LinkFaults, SimConfig, SimError, Simulation};

const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const DNS: Ipv4Address = Ipv4Address::new(10, 0, 2, 3);

/// 10 % loss, plus duplicates, reordering and bit flips, both ways.
const HOSTILE: LinkFaults = LinkFaults::chaos();

/// Pings `dst` once a second until a reply with the right payload comes back (a new sequence
/// number per try), at most `tries` times.
fn ping_with_retries(sim: &mut Simulation, dst: Ipv4Address, seq: &mut u16, tries: u32) -> Result<(), String> {
    for _ in 0..tries {
        *seq += 1;
        let payload: Vec<u8> = (0..64).map(|i| (i as u16 ^ *seq) as u8).collect();
        match sim.ping(dst, *seq, &payload, Duration::from_secs(1)) {
            Ok(pong) => {
                assert_eq!(pong.reply.payload, payload, "echo payload from {dst}");
                return Ok(());
            }
            Err(SimError::TimedOut { .. }) => continue,
            Err(e) => return Err(format!("ping {dst}: {e}")),
        }
    }
    Err(format!("no reply from {dst} after {tries} tries"))
}

fn boot_and_ping(seed: u64) -> Result<(), String> {
    let mut sim = Simulation::new(SimConfig::seeded(seed).with_faults(HOSTILE)).unwrap();
    let lease = sim.wait_for_lease(Duration::from_secs(300)).map_err(|e| format!("no lease: {e}"))?;
    assert_eq!(lease.address, Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24));
    assert_eq!(lease.router, Some(GATEWAY));
    assert_eq!(lease.dns_servers, vec![DNS]);
    let mut seq = 0;
    ping_with_retries(&mut sim, GATEWAY, &mut seq, 30)?;
    ping_with_retries(&mut sim, DNS, &mut seq, 30)?;
    Ok(())
}

#[test]
fn boot_and_ping_survive_faults_for_50_seeds() {
    let failures: Vec<String> =
        (0..50u64).filter_map(|seed| boot_and_ping(seed).err().map(|e| format!("seed {seed}: {e}"))).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn faults_really_happen() {
    // Guard against a silently perfect link making the test above vacuous.
    let mut sim = Simulation::new(SimConfig::seeded(99).with_faults(HOSTILE)).unwrap();
    sim.wait_for_lease(Duration::from_secs(300)).unwrap();
    let mut seq = 0;
    for _ in 0..20 {
        ping_with_retries(&mut sim, GATEWAY, &mut seq, 30).unwrap();
    }
    let mut total = slirp_test_host::LinkStats::default();
    for direction in [Direction::ToCore, Direction::ToGuest] {
        let s = sim.link().stats(direction);
        total.lost += s.lost;
        total.duplicated += s.duplicated;
        total.corrupted += s.corrupted;
        total.reordered += s.reordered;
    }
    assert!(total.lost > 0 && total.duplicated > 0, "{total:?}");
    assert!(total.corrupted > 0 && total.reordered > 0, "{total:?}");
    // The core saw the damage and counted it instead of answering garbage.
    assert!(sim.core().stats().dropped_total() > 0);
}

#[test]
fn heavy_corruption_never_yields_a_wrong_answer() {
    // Half the frames get a flipped bit: the core must drop what it cannot trust (and count
    // it), never answer with altered data or hand out a wrong lease. ARP has no checksum, so a
    // flip in a sender MAC can misdirect traffic until the guest ARPs again (smoltcp: after its
    // 60 s cache lifetime); the retry budget covers that.
    let corrupt = LinkFaults { corrupt: 0.5, ..LinkFaults::NONE };
    let mut drops = 0;
    for seed in 0..20u64 {
        let mut sim = Simulation::new(SimConfig::seeded(seed).with_faults(corrupt)).unwrap();
        let lease = sim.wait_for_lease(Duration::from_secs(300)).unwrap();
        assert_eq!(lease.address, Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24), "seed {seed}");
        assert_eq!(lease.router, Some(GATEWAY), "seed {seed}");
        let mut seq = 0;
        for _ in 0..5 {
            ping_with_retries(&mut sim, GATEWAY, &mut seq, 90).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        drops += sim.core().stats().drops().map(|(_, n)| n).sum::<u64>();
    }
    assert!(drops > 0, "corrupted frames were noticed and dropped");
}
