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
//! - everything else: the address itself.

use crate::config::Config;
use crate::stats::DropReason;
use crate::wire::icmpv4::unreach;
use core::net::{Ipv4Addr, SocketAddrV4};

/// Where a guest datagram goes on the host side.
pub(crate) enum Target {
    /// To this host-side address.
    To(SocketAddrV4),
    /// Nowhere: the guest gets ICMP destination unreachable with this code.
    Refuse(u8),
    /// Nowhere, silently, counted as this.
    Drop(DropReason),
}

/// Maps a guest destination to the host side (see the module documentation); `upstream` is the
/// host's DNS resolver, if it has one.
pub(crate) fn host_target(c: &Config, dst: SocketAddrV4, upstream: Option<SocketAddrV4>) -> Target {
    let ip = *dst.ip();
    if ip == c.dns {
        if dst.port() != 53 {
            return Target::Refuse(unreach::PORT);
        }
        return match upstream {
            Some(up) => Target::To(up),
            None => Target::Refuse(unreach::PORT),
        };
    }
    if ip == c.gateway {
        if c.disable_host_loopback {
            return Target::Refuse(unreach::ADMIN_PROHIBITED);
        }
        return Target::To(SocketAddrV4::new(Ipv4Addr::LOCALHOST, dst.port()));
    }
    if ip.is_broadcast() || ip == c.broadcast() || ip.is_multicast() {
        return Target::Drop(DropReason::Ipv4NoRoute);
    }
    if c.in_network(ip) {
        return Target::Refuse(unreach::HOST);
    }
    if ip.is_loopback() || ip.is_unspecified() || ip.octets()[0] >= 240 {
        return Target::Drop(DropReason::Ipv4NoRoute);
    }
    Target::To(dst)
}

/// The address a host-side sender appears as to the guest. `alias_upstream` is the upstream
/// resolver when the guest addressed the DNS alias (the flow is the alias's), else `None`: only
/// then is the upstream shown as alias:53. The host's loopback appears as the gateway.
pub(crate) fn guest_facing(c: &Config, from: SocketAddrV4, alias_upstream: Option<SocketAddrV4>) -> SocketAddrV4 {
    if alias_upstream == Some(from) {
        SocketAddrV4::new(c.dns, 53)
    } else if from.ip().is_loopback() {
        SocketAddrV4::new(c.gateway, from.port())
    } else {
        from
    }
}
