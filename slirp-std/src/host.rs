//! The core's [`HostSocket`] over the host's nonblocking sockets.
//!
//! ARP, DHCP and ICMP echo to the virtual addresses need nothing from the host, so today this
//! only carries what the later NAT work will use (the upstream resolver); the UDP/ICMP and TCP
//! NAT grow it with socket operations.

use std::net::{SocketAddr, SocketAddrV4};

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

    /// The resolver queries to the DNS alias go to, as configured.
    pub fn configured_dns_upstream(&self) -> Option<SocketAddr> {
        self.dns_upstream
    }
}

impl HostSocket for StdHost {
    /// The upstream resolver, when it is IPv4 (the core's NAT speaks IPv4 toward the host).
    fn dns_upstream(&self) -> Option<SocketAddrV4> {
        match self.dns_upstream {
            Some(SocketAddr::V4(a)) => Some(a),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ipv4_upstreams_reach_the_core() {
        let v4: SocketAddr = "198.51.100.1:53".parse().unwrap();
        assert_eq!(HostSocket::dns_upstream(&StdHost::new(Some(v4))), Some("198.51.100.1:53".parse().unwrap()));
        let v6: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        assert_eq!(HostSocket::dns_upstream(&StdHost::new(Some(v6))), None);
        assert_eq!(HostSocket::dns_upstream(&StdHost::default()), None);
    }
}
