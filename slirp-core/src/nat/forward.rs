//! Port forwarding rules, TCP and UDP in one table with one id space: a rule binds a host
//! socket (a UDP socket, or a TCP listener) and delivers what arrives there to a guest endpoint.
//!
//! UDP: a datagram from a host client reaches the guest from the gateway address (loopback
//! clients) or from the client's real address, keeping the client's port; the guest's replies
//! from the rule's guest port leave through the rule's socket (so at most one UDP rule per guest
//! endpoint). TCP: every accepted connection is opened toward the guest (see
//! [`crate::nat::tcp`]).

use crate::config::Config;
use crate::host::{HostError, HostSocket, SocketId};
use crate::nat::{encode, Kind};
use core::net::{IpAddr, SocketAddr};

/// Most forwarding rules at once, TCP and UDP together.
pub const MAX_FORWARDS: usize = 64;

/// Why a forward could not be added or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ForwardError {
    /// [`MAX_FORWARDS`] rules exist already.
    TableFull,
    /// The guest address is not a host address of the virtual subnet.
    GuestOutsideNetwork,
    /// Another rule already delivers to this guest endpoint.
    DuplicateGuest,
    /// No rule has this id.
    NotFound,
    /// The host refused the socket (address in use, permission...).
    Host(HostError),
}

impl core::fmt::Display for ForwardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ForwardError::TableFull => f.write_str("too many forwarding rules"),
            ForwardError::GuestOutsideNetwork => f.write_str("guest address is outside the virtual network"),
            ForwardError::DuplicateGuest => f.write_str("a rule already forwards to this guest port"),
            ForwardError::NotFound => f.write_str("no such forwarding rule"),
            ForwardError::Host(e) => write!(f, "host socket: {e}"),
        }
    }
}

impl core::error::Error for ForwardError {}

/// A UDP port forward, as listed by [`Slirp::udp_forwards`](crate::Slirp::udp_forwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpForward {
    /// Rule id, for removal.
    pub id: u32,
    /// The host address the rule's socket is bound to.
    pub host: SocketAddr,
    /// The guest endpoint datagrams are delivered to.
    pub guest: SocketAddr,
}

/// A TCP port forward, as listed by [`Slirp::tcp_forwards`](crate::Slirp::tcp_forwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpForward {
    /// Rule id, for removal.
    pub id: u32,
    /// The host address the listener is bound to.
    pub host: SocketAddr,
    /// The guest endpoint connections are opened to.
    pub guest: SocketAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Udp,
    Tcp,
}

#[derive(Clone, Copy, Debug)]
struct Rule {
    id: u32,
    proto: Proto,
    host: SocketAddr,
    guest: SocketAddr,
    /// UDP: the rule's socket waits on the ready ring. TCP: clients may still wait in the
    /// listener's backlog (we stopped accepting before the host said WouldBlock).
    pending: bool,
}

/// The forwarding rules.
#[derive(Debug)]
pub(crate) struct Forwards {
    rules: heapless::Vec<Rule, MAX_FORWARDS>,
    next_id: u32,
}

impl Default for Forwards {
    fn default() -> Self {
        Forwards { rules: heapless::Vec::new(), next_id: 1 }
    }
}

impl Forwards {
    /// The guest endpoint a new rule delivers to (0.0.0.0 means the first DHCP address, as QEMU
    /// does; `[::]` the first DHCPv6 address, the one `--configure` gives): a host address of
    /// the subnet, or an address of the IPv6 prefix, that is not one of ours. A v6 guest needs
    /// IPv6 on.
    fn check_guest(c: &Config, guest: SocketAddr) -> Result<SocketAddr, ForwardError> {
        let ip = match guest.ip() {
            IpAddr::V4(a) => {
                let ip = if a.is_unspecified() { c.dhcp_start } else { a };
                if !c.is_host(ip) || ip == c.gateway || ip == c.dns {
                    return Err(ForwardError::GuestOutsideNetwork);
                }
                IpAddr::V4(ip)
            }
            IpAddr::V6(a) => {
                let v6 = &c.ipv6;
                let ip = if a.is_unspecified() { v6.dhcp_start } else { a };
                if !v6.enabled || !v6.in_prefix(ip) || v6.is_gateway(ip) || v6.is_dns(ip) {
                    return Err(ForwardError::GuestOutsideNetwork);
                }
                IpAddr::V6(ip)
            }
        };
        Ok(SocketAddr::new(ip, guest.port()))
    }

    fn add(
        &mut self,
        c: &Config,
        proto: Proto,
        guest: SocketAddr,
        bind: impl FnOnce(SocketId) -> Result<SocketAddr, HostError>,
    ) -> Result<u32, ForwardError> {
        let guest = Self::check_guest(c, guest)?;
        if self.rules.is_full() {
            return Err(ForwardError::TableFull);
        }
        // A UDP rule answers for its guest endpoint (the guest's replies leave through it).
        if proto == Proto::Udp && self.rules.iter().any(|r| r.proto == Proto::Udp && r.guest == guest) {
            return Err(ForwardError::DuplicateGuest);
        }
        let id = self.next_id;
        let socket = encode(match proto {
            Proto::Udp => Kind::Forward(id),
            Proto::Tcp => Kind::TcpListener(id),
        });
        let host = bind(socket).map_err(ForwardError::Host)?;
        self.next_id = id.wrapping_add(1).max(1);
        let _ = self.rules.push(Rule { id, proto, host, guest, pending: false });
        Ok(id)
    }

    /// Adds a UDP forward from `host_addr` to `guest`; returns its id.
    pub(crate) fn add_udp<H: HostSocket>(
        &mut self,
        c: &Config,
        host: &mut H,
        host_addr: SocketAddr,
        guest: SocketAddr,
    ) -> Result<u32, ForwardError> {
        self.add(c, Proto::Udp, guest, |socket| host.udp_bind(socket, host_addr))
    }

    /// Adds a TCP forward from `host_addr` to `guest`; returns its id.
    pub(crate) fn add_tcp<H: HostSocket>(
        &mut self,
        c: &Config,
        host: &mut H,
        host_addr: SocketAddr,
        guest: SocketAddr,
    ) -> Result<u32, ForwardError> {
        self.add(c, Proto::Tcp, guest, |socket| host.tcp_listen(socket, host_addr))
    }

    fn take(&mut self, proto: Proto, id: u32) -> Result<Rule, ForwardError> {
        let pos = self.rules.iter().position(|r| r.proto == proto && r.id == id).ok_or(ForwardError::NotFound)?;
        Ok(self.rules.swap_remove(pos))
    }

    /// Removes UDP rule `id` and closes its socket; `off_ring` takes the socket off the ready
    /// ring if it waits there.
    pub(crate) fn remove_udp<H: HostSocket>(
        &mut self,
        host: &mut H,
        id: u32,
        off_ring: impl FnOnce(SocketId),
    ) -> Result<(), ForwardError> {
        let rule = self.take(Proto::Udp, id)?;
        let socket = encode(Kind::Forward(id));
        if rule.pending {
            off_ring(socket);
        }
        host.close(socket);
        Ok(())
    }

    /// Removes TCP rule `id` and closes its listener (open connections go on).
    pub(crate) fn remove_tcp<H: HostSocket>(&mut self, host: &mut H, id: u32) -> Result<(), ForwardError> {
        self.take(Proto::Tcp, id)?;
        host.close(encode(Kind::TcpListener(id)));
        Ok(())
    }

    /// The UDP rules.
    pub(crate) fn udp(&self) -> impl Iterator<Item = UdpForward> + '_ {
        self.rules.iter().filter(|r| r.proto == Proto::Udp).map(|r| UdpForward {
            id: r.id,
            host: r.host,
            guest: r.guest,
        })
    }

    /// The TCP rules.
    pub(crate) fn tcp(&self) -> impl Iterator<Item = TcpForward> + '_ {
        self.rules.iter().filter(|r| r.proto == Proto::Tcp).map(|r| TcpForward {
            id: r.id,
            host: r.host,
            guest: r.guest,
        })
    }

    /// The UDP rule whose guest endpoint is `guest` (its replies leave through the rule).
    pub(crate) fn udp_rule_for(&self, guest: SocketAddr) -> Option<u32> {
        self.rules.iter().find(|r| r.proto == Proto::Udp && r.guest == guest).map(|r| r.id)
    }

    /// The guest endpoint of UDP rule `id`.
    pub(crate) fn udp_guest(&self, id: u32) -> Option<SocketAddr> {
        self.rules.iter().find(|r| r.proto == Proto::Udp && r.id == id).map(|r| r.guest)
    }

    /// The guest endpoint of TCP rule `id`.
    pub(crate) fn tcp_guest(&self, id: u32) -> Option<SocketAddr> {
        self.rules.iter().find(|r| r.proto == Proto::Tcp && r.id == id).map(|r| r.guest)
    }

    /// The pending flag of rule `id` (see [`Rule::pending`]), if it exists.
    pub(crate) fn pending_mut(&mut self, tcp: bool, id: u32) -> Option<&mut bool> {
        let proto = if tcp { Proto::Tcp } else { Proto::Udp };
        self.rules.iter_mut().find(|r| r.proto == proto && r.id == id).map(|r| &mut r.pending)
    }

    /// Whether a TCP listener may still have clients waiting in its backlog.
    pub(crate) fn tcp_backlog(&self) -> bool {
        self.rules.iter().any(|r| r.proto == Proto::Tcp && r.pending)
    }

    /// Ids of the TCP rules, in table order.
    pub(crate) fn tcp_ids(&self) -> heapless::Vec<u32, MAX_FORWARDS> {
        self.rules.iter().filter(|r| r.proto == Proto::Tcp).map(|r| r.id).collect()
    }
}
