//! The core's [`HostSocket`] over the host's nonblocking sockets.
//!
//! ARP, DHCP and ICMP echo to the virtual addresses need nothing from the host, so today this
//! only carries what the later NAT work will use (the upstream resolver); the UDP/ICMP and TCP
//! NAT grow it with socket operations.

use std::net::SocketAddr;

use slirp_core::HostSocket;

/// The host side of one slirp instance on a std platform.
#[derive(Clone, Debug, Default)]
pub struct StdHost {
    dns_upstream: Option<SocketAddr>,
}

impl StdHost {
    /// A host whose DNS alias forwards to `dns_upstream` (once DNS forwarding exists).
    pub fn new(dns_upstream: Option<SocketAddr>) -> StdHost {
        StdHost { dns_upstream }
    }

    /// The resolver queries to the DNS alias go to.
    pub fn dns_upstream(&self) -> Option<SocketAddr> {
        self.dns_upstream
    }
}

impl HostSocket for StdHost {}
