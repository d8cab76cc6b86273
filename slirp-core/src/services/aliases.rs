//! The virtual addresses that stand for the host: the DNS alias (port 53 of it reaches the
//! host's upstream resolver) and the host-loopback alias (the gateway address reaches the host's
//! 127.0.0.1 on the same port). Both directions of the address map live here: where a guest
//! destination goes on the host side, and as whom a host-side sender appears to the guest.
//!
//! **Addresses the guest sends to:**
//! - the DNS alias, port 53 only: the configured upstream resolver. A guest endpoint's datagrams
//!   to the alias leave through a host socket of their own (the UDP flow key says so), and only
//!   that socket's replies from the upstream, and the ICMP errors about what it sent, are shown as
//!   coming from the alias. A guest that asks the upstream (or any other server) directly sees
//!   the real address, as it expects; one guest socket that talks to both gets each answer from
//!   the address it asked;
//! - the gateway: the host's loopback on the same port (replies come from the gateway), unless
//!   `disable_host_loopback`, which answers ICMP "administratively prohibited";
//! - any other address of the virtual subnet: nobody is there (ICMP host unreachable). The
//!   original slirp sent these to the host's loopback too; we keep the host alias to one address;
//! - broadcast and multicast: not forwarded (dropped silently);
//! - from a v6 guest, an address of the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052),
//!   or an IPv4-mapped one: the IPv4 address it embeds (so a v4 peer shown to a v6 guest, below,
//!   can be answered, and a guest with DNS64 reaches v4 hosts);
//! - everything else: the address itself.
//!
//! **As whom the host side appears:** a v4 sender appears to a v6 guest at `64:ff9b::a.b.c.d`:
//! unique per sender, and accepted by guests (Linux refuses TCP from IPv4-mapped sources).

use crate::config::Config;
use crate::iface::ip::Unreach;
use crate::stats::DropReason;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// The NAT64 well-known prefix (RFC 6052 §2.1), `64:ff9b::/96`.
pub(crate) const NAT64_PREFIX: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);

/// The IPv6 address a v4 host appears at to a v6 guest: `64:ff9b::a.b.c.d`.
pub(crate) fn v4_as_v6(a: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(NAT64_PREFIX) | u128::from(u32::from(a)))
}

/// The v4 host a v6 guest names by `a`: one of the NAT64 prefix or an IPv4-mapped address.
pub(crate) fn v6_as_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    if u128::from(a) >> 32 == u128::from(NAT64_PREFIX) >> 32 {
        return Some(Ipv4Addr::from((u128::from(a) & 0xffff_ffff) as u32));
    }
    a.to_ipv4_mapped()
}

/// Where a guest datagram goes on the host side.
pub(crate) enum Target {
    /// To this host-side address.
    To(SocketAddr),
    /// Nowhere: the guest gets ICMP destination unreachable for this reason.
    Refuse(Unreach),
    /// Nowhere, silently, counted as this.
    Drop(DropReason),
}

/// Maps a guest destination to the host side (see the module documentation); `upstream` is the
/// host's DNS resolver, if it has one (of either family: the IPv6 DNS alias may lead to an IPv4
/// resolver and back).
pub(crate) fn host_target(c: &Config, dst: SocketAddr, upstream: Option<SocketAddr>) -> Target {
    if c.is_dns(dst.ip()) {
        if dst.port() != 53 {
            return Target::Refuse(Unreach::Port);
        }
        return match upstream {
            Some(up) => Target::To(up),
            None => Target::Refuse(Unreach::Port),
        };
    }
    if c.is_gateway(dst.ip()) {
        if c.disable_host_loopback {
            return Target::Refuse(Unreach::AdminProhibited);
        }
        let lo = match dst {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        return Target::To(SocketAddr::new(lo, dst.port()));
    }
    match dst {
        SocketAddr::V4(d) => target_v4(c, d),
        SocketAddr::V6(d) => {
            let ip = *d.ip();
            // 64:ff9b::a.b.c.d (or ::ffff:a.b.c.d) is the IPv4 host: what a v6 guest shown a v4
            // peer (a forwarded connection's client) answers to.
            if let Some(v4) = v6_as_v4(ip) {
                return target_v4(c, SocketAddrV4::new(v4, d.port()));
            }
            if ip.is_multicast() {
                return Target::Drop(DropReason::Ipv6NoRoute);
            }
            if c.ipv6.in_prefix(ip) || ip.is_unicast_link_local() {
                return Target::Refuse(Unreach::Host);
            }
            if ip.is_loopback() || ip.is_unspecified() {
                return Target::Drop(DropReason::Ipv6NoRoute);
            }
            Target::To(SocketAddr::V6(d))
        }
    }
}

fn target_v4(c: &Config, dst: SocketAddrV4) -> Target {
    let ip = *dst.ip();
    if ip.is_broadcast() || ip == c.broadcast() || ip.is_multicast() {
        return Target::Drop(DropReason::Ipv4NoRoute);
    }
    if c.in_network(ip) {
        return Target::Refuse(Unreach::Host);
    }
    if ip.is_loopback() || ip.is_unspecified() || ip.octets()[0] >= 240 {
        return Target::Drop(DropReason::Ipv4NoRoute);
    }
    Target::To(SocketAddr::V4(dst))
}

/// The address a host-side sender appears as to a guest of `guest`'s family. `alias_upstream`
/// is the upstream resolver when the guest addressed the DNS alias (the flow is the alias's),
/// else `None`: only then is the upstream shown as alias:53. The host's loopback appears as the
/// gateway. A v4 sender appears to a v6 guest at `64:ff9b::a.b.c.d` (which leads back to it);
/// a v6 sender cannot be shown to a v4 guest and appears as the gateway.
pub(crate) fn guest_facing(
    c: &Config,
    from: SocketAddr,
    alias_upstream: Option<SocketAddr>,
    guest: IpAddr,
) -> SocketAddr {
    if alias_upstream == Some(from) {
        SocketAddr::new(c.dns_for(guest), 53)
    } else if from.ip().is_loopback() || from.ip().to_canonical().is_loopback() {
        SocketAddr::new(c.gateway_for(guest), from.port())
    } else {
        match (from, guest) {
            (SocketAddr::V4(f), IpAddr::V6(_)) => SocketAddr::V6(SocketAddrV6::new(v4_as_v6(*f.ip()), f.port(), 0, 0)),
            (SocketAddr::V6(f), IpAddr::V4(_)) => match v6_as_v4(*f.ip()) {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, f.port())),
                None => SocketAddr::new(c.gateway_for(guest), f.port()),
            },
            (SocketAddr::V6(f), IpAddr::V6(_)) => SocketAddr::V6(SocketAddrV6::new(*f.ip(), f.port(), 0, 0)),
            _ => from,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Ipv6Config;

    fn config() -> Config {
        Config { ipv6: Ipv6Config { enabled: true, ..Ipv6Config::default() }, ..Config::default() }
    }

    #[test]
    fn a_v4_peer_appears_to_a_v6_guest_in_the_nat64_prefix_and_leads_back() {
        let c = config();
        let guest: IpAddr = "fd00::100".parse().unwrap();
        let peer: SocketAddr = "198.51.100.1:4000".parse().unwrap();
        let seen = guest_facing(&c, peer, None, guest);
        assert_eq!(seen, "[64:ff9b::c633:6401]:4000".parse().unwrap());
        match host_target(&c, seen, None) {
            Target::To(t) => assert_eq!(t, peer),
            _ => panic!("no way back"),
        }
        // IPv4-mapped addresses lead to the v4 host too.
        match host_target(&c, "[::ffff:203.0.113.5]:80".parse().unwrap(), None) {
            Target::To(t) => assert_eq!(t, "203.0.113.5:80".parse().unwrap()),
            _ => panic!("mapped"),
        }
        // What the v4 rules refuse stays refused through the prefix.
        assert!(matches!(host_target(&c, "[64:ff9b::a00:205]:80".parse().unwrap(), None), Target::Refuse(_)));
        assert!(matches!(host_target(&c, "[64:ff9b::7f00:1]:80".parse().unwrap(), None), Target::Drop(_)));
        assert_eq!(v6_as_v4("64:ff9b:1::1".parse().unwrap()), None, "only the /96");
    }

    #[test]
    fn the_v6_router_is_the_hosts_v6_loopback() {
        let c = config();
        match host_target(&c, "[fd00::2]:7777".parse().unwrap(), None) {
            Target::To(t) => assert_eq!(t, "[::1]:7777".parse().unwrap()),
            _ => panic!("host loopback"),
        }
        let off = Config { disable_host_loopback: true, ..config() };
        assert!(matches!(
            host_target(&off, "[fd00::2]:7777".parse().unwrap(), None),
            Target::Refuse(Unreach::AdminProhibited)
        ));
        // A loopback sender appears as the router of the guest's family.
        let seen = guest_facing(&c, "[::1]:7777".parse().unwrap(), None, "fd00::100".parse().unwrap());
        assert_eq!(seen, "[fd00::2]:7777".parse().unwrap());
    }
}
