//! The guest side of ARP and Neighbor Discovery: which guest address (of either family) lives at
//! which MAC.
//!
//! The table is small and fixed: a virtual network has a handful of guests, and an IPv6 guest
//! brings a few addresses (link-local, SLAAC, temporary). When it is full, the entry seen
//! longest ago is replaced. Entries are learned from the guest's ARP and ND messages (requests,
//! replies, gratuitous ARP, solicitations, advertisements) and from verified IP headers; they
//! never expire on their own, as a guest that moved would announce itself again.

use crate::time::Instant;
use crate::wire::EthernetAddress;
use core::net::IpAddr;
#[cfg(test)]
use core::net::Ipv4Addr;

/// Capacity of the neighbor table.
pub const NEIGHBOR_CAPACITY: usize = 32;

#[derive(Clone, Copy, Debug)]
struct Neighbor {
    mac: EthernetAddress,
    seen: Instant,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct NeighborCache {
    map: heapless::FnvIndexMap<IpAddr, Neighbor, NEIGHBOR_CAPACITY>,
    /// Target and time of the last ARP request or neighbor solicitation we sent, so a burst of
    /// packets for one unresolved guest sends one request, not one per packet.
    last_request: Option<(IpAddr, Instant)>,
}

impl NeighborCache {
    /// The MAC of `ip`, if known.
    pub fn lookup(&self, ip: impl Into<IpAddr>) -> Option<EthernetAddress> {
        self.map.get(&ip.into()).map(|n| n.mac)
    }

    /// Records that `ip` is at `mac`.
    pub fn learn(&mut self, now: Instant, ip: impl Into<IpAddr>, mac: EthernetAddress) {
        let ip = ip.into();
        if let Some(n) = self.map.get_mut(&ip) {
            n.mac = mac;
            n.seen = now;
            return;
        }
        if self.map.len() == NEIGHBOR_CAPACITY {
            // Bounded scan of the table's entries, only when a new guest address appears on a full table.
            if let Some(oldest) = self.map.iter().min_by_key(|(_, n)| n.seen).map(|(ip, _)| *ip) {
                self.map.remove(&oldest);
            }
        }
        let _ = self.map.insert(ip, Neighbor { mac, seen: now });
        if self.last_request.is_some_and(|(t, _)| t == ip) {
            self.last_request = None;
        }
    }

    /// Whether an ARP request or neighbor solicitation for `ip` should go out now (none sent for
    /// it in the last 250 ms).
    pub fn should_request(&mut self, now: Instant, ip: impl Into<IpAddr>) -> bool {
        let ip = ip.into();
        const RETRY: core::time::Duration = core::time::Duration::from_millis(250);
        match self.last_request {
            Some((t, at)) if t == ip && now < at + RETRY => false,
            _ => {
                self.last_request = Some((ip, now));
                true
            }
        }
    }

    /// Every known (address, MAC) pair.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, EthernetAddress)> + '_ {
        self.map.iter().map(|(ip, n)| (*ip, n.mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, n])
    }

    #[test]
    fn learn_update_and_evict_oldest_when_full() {
        let mut c = NeighborCache::default();
        for i in 0..NEIGHBOR_CAPACITY as u8 {
            c.learn(Instant::from_millis(u64::from(i)), Ipv4Addr::new(10, 0, 2, 15 + i), mac(i));
        }
        let v6 = core::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
        assert_eq!(c.lookup(v6), None);
        c.learn(Instant::from_millis(100), Ipv4Addr::new(10, 0, 2, 15), mac(99));
        assert_eq!(c.lookup(Ipv4Addr::new(10, 0, 2, 15)), Some(mac(99)));
        // Full: the new address replaces the one seen longest ago (.16, seen at 1 ms).
        c.learn(Instant::from_millis(200), Ipv4Addr::new(10, 0, 2, 100), mac(50));
        assert_eq!(c.lookup(Ipv4Addr::new(10, 0, 2, 16)), None);
        assert_eq!(c.lookup(Ipv4Addr::new(10, 0, 2, 100)), Some(mac(50)));
        assert_eq!(c.iter().count(), NEIGHBOR_CAPACITY);
    }

    #[test]
    fn requests_are_rate_limited_per_target() {
        let mut c = NeighborCache::default();
        let a = Ipv4Addr::new(10, 0, 2, 15);
        assert!(c.should_request(Instant::ZERO, a));
        assert!(!c.should_request(Instant::from_millis(100), a));
        assert!(c.should_request(Instant::from_millis(250), a));
        assert!(c.should_request(Instant::from_millis(260), Ipv4Addr::new(10, 0, 2, 16)));
    }
}
