//! Guest-forward rules: a virtual address and TCP port of the guest network whose connections
//! the embedder serves (QEMU's `guestfwd=tcp:ADDR:PORT-cmd:...` and `-chardev`, the seed's
//! `AddExec` and control sockets).
//!
//! A guest's SYN to a rule's endpoint opens a connection whose host side is the embedder's:
//! the core calls [`HostSocket::guest_forward_open`](crate::HostSocket::guest_forward_open)
//! instead of `tcp_connect`, then treats the socket like any connected TCP socket (`tcp_send`
//! takes what the guest sent, `tcp_recv` gives what goes to the guest, `tcp_shutdown_write` is
//! the guest's FIN, readiness comes back through `handle_host_readable`/`writable`), so the TCB,
//! backpressure and half-close are the NAT's own. Rule addresses answer ARP (and, for IPv6
//! rules, neighbor solicitations) and ping; their other ports refuse with RST. Rules work in
//! restricted mode. At most [`MAX_GUEST_FORWARDS`] rules: a lookup scans at most that many.

use crate::config::Config;
use crate::nat::forward::ForwardError;
use core::net::{IpAddr, SocketAddr};

/// Most guest-forward rules at once.
pub const MAX_GUEST_FORWARDS: usize = 16;

/// A guest-forward rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestForward {
    /// Rule id, for removal (and given to the host when a connection opens).
    pub id: u32,
    /// The virtual endpoint in the guest network.
    pub addr: SocketAddr,
}

/// The rules.
#[derive(Debug, Default)]
pub(crate) struct GuestForwards {
    rules: heapless::Vec<GuestForward, MAX_GUEST_FORWARDS>,
    next_id: u32,
}

impl GuestForwards {
    /// Adds a rule for `addr` (TCP).
    pub(crate) fn add(&mut self, c: &Config, addr: SocketAddr) -> Result<u32, ForwardError> {
        let ok = match addr.ip() {
            IpAddr::V4(a) => c.is_host(a),
            IpAddr::V6(a) => c.ipv6.enabled && c.ipv6.in_prefix(a) && !a.is_multicast(),
        };
        if !ok || addr.port() == 0 {
            return Err(ForwardError::GuestOutsideNetwork);
        }
        // The DNS alias's port 53 is the resolver's while DNS goes through it.
        if addr.port() == 53 && c.is_dns(addr.ip()) {
            return Err(ForwardError::DuplicateGuest);
        }
        if self.rules.iter().any(|r| r.addr == addr) {
            return Err(ForwardError::DuplicateGuest);
        }
        let id = self.next_id;
        self.rules.push(GuestForward { id, addr }).map_err(|_| ForwardError::TableFull)?;
        self.next_id = self.next_id.wrapping_add(1);
        Ok(id)
    }

    /// Removes rule `id` (connections it opened go on).
    pub(crate) fn remove(&mut self, id: u32) -> Result<(), ForwardError> {
        let at = self.rules.iter().position(|r| r.id == id).ok_or(ForwardError::NotFound)?;
        self.rules.swap_remove(at);
        Ok(())
    }

    /// The rule for endpoint `addr`.
    pub(crate) fn find(&self, addr: SocketAddr) -> Option<u32> {
        self.rules.iter().find(|r| r.addr == addr).map(|r| r.id)
    }

    /// Whether some rule uses address `ip`.
    pub(crate) fn has_addr(&self, ip: IpAddr) -> bool {
        self.rules.iter().any(|r| r.addr.ip() == ip)
    }

    /// Every rule.
    pub(crate) fn iter(&self) -> impl Iterator<Item = GuestForward> + '_ {
        self.rules.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ipv6Config;

    #[test]
    fn rules_are_checked_bounded_and_found() {
        let c = Config { ipv6: Ipv6Config { enabled: true, ..Ipv6Config::default() }, ..Config::default() };
        let mut g = GuestForwards::default();
        let a = g.add(&c, "10.0.2.100:4321".parse().unwrap()).unwrap();
        assert_eq!(g.add(&c, "10.0.2.100:4321".parse().unwrap()), Err(ForwardError::DuplicateGuest));
        assert_eq!(g.add(&c, "10.0.2.3:53".parse().unwrap()), Err(ForwardError::DuplicateGuest), "DNS");
        assert_eq!(g.add(&c, "10.0.3.1:1".parse().unwrap()), Err(ForwardError::GuestOutsideNetwork));
        assert_eq!(g.add(&c, "10.0.2.255:1".parse().unwrap()), Err(ForwardError::GuestOutsideNetwork));
        assert_eq!(g.add(&c, "10.0.2.100:0".parse().unwrap()), Err(ForwardError::GuestOutsideNetwork));
        let b = g.add(&c, "[fd00::64]:80".parse().unwrap()).unwrap();
        assert_eq!(g.find("10.0.2.100:4321".parse().unwrap()), Some(a));
        assert_eq!(g.find("[fd00::64]:80".parse().unwrap()), Some(b));
        assert!(g.has_addr("10.0.2.100".parse().unwrap()));
        assert_eq!(g.find("10.0.2.100:4322".parse().unwrap()), None);
        for p in 1..MAX_GUEST_FORWARDS as u16 - 1 {
            g.add(&c, SocketAddr::new("10.0.2.101".parse().unwrap(), p)).unwrap();
        }
        assert_eq!(g.add(&c, "10.0.2.102:1".parse().unwrap()), Err(ForwardError::TableFull));
        g.remove(a).unwrap();
        assert_eq!(g.remove(a), Err(ForwardError::NotFound));
        assert!(!g.has_addr("10.0.2.100".parse().unwrap()));
        g.add(&c, "10.0.2.102:1".parse().unwrap()).unwrap();
    }
}
