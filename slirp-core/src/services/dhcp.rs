//! The DHCP/BOOTP server (RFC 2131/2132, RFC 951).
//!
//! A pool of [`DHCP_POOL_SIZE`] addresses, one lease slot per address. A slot belongs to the MAC
//! that first took it, so a guest that comes back (reboot, new DISCOVER) gets the same address.
//! When every slot is taken, a slot whose lease ran out without renewal is reused; otherwise the
//! server stays silent (the client keeps retrying, as it would with a busy server).
//!
//! Deliberate choices, where the original slirp differs:
//! - a REQUEST naming another server (option 54) is ignored, as RFC 2131 §4.3.2 says (the client
//!   picked someone else's offer);
//! - a REQUEST for an address we cannot grant gets a NAK; one with neither option 50 nor ciaddr is
//!   treated like a DISCOVER+REQUEST (BOOTP clients and Windows renewals rely on that);
//! - a plain BOOTP request (no magic cookie) is answered like a REQUEST;
//! - RELEASE, DECLINE and INFORM get no reply and leave the lease in place.

use crate::config::{Config, DHCP_POOL_SIZE};
use crate::iface::ip::LinkDest;
use crate::iface::ipv4::{reply_header, DEFAULT_TTL};
use crate::iface::Iface;
use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::dhcp::{OP_REPLY, OP_REQUEST};
use crate::wire::{self, dhcp as dhcp_wire, udp as udp_wire, DhcpPacket, IpProtocol, UdpRepr};
use crate::wire::{DhcpMessageType, DhcpRepr, EthernetAddress};
use core::net::Ipv4Addr;

#[derive(Clone, Copy, Debug)]
struct Lease {
    mac: EthernetAddress,
    expires: Instant,
}

/// What the server decided about one request.
// A reply is built and emitted at once on the stack (no_std: no box to put it in).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Send this reply.
    Reply(DhcpRepr<'a>),
    /// Stay silent (pool full, another server chosen, message we do not answer).
    Ignore,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct DhcpServer {
    leases: [Option<Lease>; DHCP_POOL_SIZE],
}

/// TOS of DHCP replies (low delay, as the original slirp).
const DHCP_TOS: u8 = 0x10;

const NAK_MESSAGE: &[u8] = b"requested address not available";

impl DhcpServer {
    /// Current leases: (address, MAC).
    pub fn leases<'c>(&'c self, config: &'c Config) -> impl Iterator<Item = (Ipv4Addr, EthernetAddress)> + 'c {
        self.leases.iter().enumerate().filter_map(move |(i, l)| Some((config.dhcp_addr(i)?, l.as_ref()?.mac)))
    }

    fn slot_of(&self, mac: EthernetAddress) -> Option<usize> {
        self.leases.iter().position(|l| l.is_some_and(|l| l.mac == mac))
    }

    /// Whether slot `i` may go to `mac` now.
    fn grantable(&self, now: Instant, i: usize, mac: EthernetAddress) -> bool {
        match self.leases[i] {
            None => true,
            Some(l) => l.mac == mac || l.expires <= now,
        }
    }

    /// The slot to offer `mac`: the requested one if grantable, else its own, else a free one,
    /// else an expired one.
    fn choose(
        &self,
        now: Instant,
        config: &Config,
        mac: EthernetAddress,
        requested: Option<Ipv4Addr>,
    ) -> Option<usize> {
        if let Some(i) = requested.and_then(|a| config.dhcp_index(a)) {
            if self.grantable(now, i, mac) {
                return Some(i);
            }
        }
        self.slot_of(mac)
            .or_else(|| self.leases.iter().position(|l| l.is_none()))
            .or_else(|| self.leases.iter().position(|l| l.is_some_and(|l| l.expires <= now)))
    }

    /// Handles one request from `config`'s point of view.
    pub fn handle<'r>(&mut self, now: Instant, config: &'r Config, req: &DhcpRepr<'r>) -> Verdict<'r> {
        if req.op != OP_REQUEST || !req.chaddr.is_unicast() {
            return Verdict::Ignore;
        }
        let mac = req.chaddr;
        let kind = req.message_type.unwrap_or(DhcpMessageType::Request);
        let (reply_type, slot) = match kind {
            DhcpMessageType::Discover => match self.choose(now, config, mac, req.requested_ip) {
                Some(i) => (DhcpMessageType::Offer, i),
                None => return Verdict::Ignore,
            },
            DhcpMessageType::Request => {
                if req.server_id.is_some_and(|s| s != config.gateway) {
                    return Verdict::Ignore;
                }
                let wanted = req.requested_ip.or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
                match wanted {
                    Some(addr) => match config.dhcp_index(addr) {
                        Some(i) if self.grantable(now, i, mac) => (DhcpMessageType::Ack, i),
                        _ => return Verdict::Reply(self.nak(config, req)),
                    },
                    None => match self.choose(now, config, mac, None) {
                        Some(i) => (DhcpMessageType::Ack, i),
                        None => return Verdict::Ignore,
                    },
                }
            }
            _ => return Verdict::Ignore,
        };
        let yiaddr = match config.dhcp_addr(slot) {
            Some(a) => a,
            None => return Verdict::Ignore,
        };
        // A slot is reserved from the OFFER on, so two clients racing never get the same address.
        if let Some(old) = self.slot_of(mac).filter(|&o| o != slot) {
            self.leases[old] = None;
        }
        self.leases[slot] = Some(Lease { mac, expires: now + config.lease_time });
        let full = !config.restricted;
        Verdict::Reply(DhcpRepr {
            op: OP_REPLY,
            xid: req.xid,
            secs: 0,
            broadcast: req.broadcast,
            ciaddr: req.ciaddr,
            yiaddr,
            siaddr: config.gateway,
            giaddr: req.giaddr,
            chaddr: mac,
            message_type: Some(reply_type),
            requested_ip: None,
            server_id: Some(config.gateway),
            subnet_mask: Some(config.netmask()),
            router: full.then_some(config.gateway),
            dns: full.then_some(config.dns),
            lease_time: Some(u32::try_from(config.lease_time.as_secs()).unwrap_or(u32::MAX)),
            mtu: Some(config.mtu),
            hostname: config.hostname.as_ref().map(|h| h.as_bytes()),
            domain: config.domain.as_ref().map(|d| d.as_bytes()),
            message: None,
            // Orders the optional options as the client asked.
            parameter_request_list: req.parameter_request_list,
            sname: nonempty(config.tftp_server_name.as_deref()),
            file: nonempty(config.bootfile.as_deref()),
            tftp_server: nonempty(config.tftp_server_name.as_deref()),
            bootfile: nonempty(config.bootfile.as_deref()),
            search: config.search.as_deref().filter(|s| !s.is_empty()),
        })
    }

    fn nak<'r>(&self, config: &'r Config, req: &DhcpRepr<'_>) -> DhcpRepr<'r> {
        DhcpRepr {
            op: OP_REPLY,
            xid: req.xid,
            secs: 0,
            broadcast: true,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: req.giaddr,
            chaddr: req.chaddr,
            message_type: Some(DhcpMessageType::Nak),
            requested_ip: None,
            server_id: Some(config.gateway),
            subnet_mask: None,
            router: None,
            dns: None,
            lease_time: None,
            mtu: None,
            hostname: None,
            domain: None,
            message: Some(NAK_MESSAGE),
            parameter_request_list: None,
            sname: None,
            file: None,
            tftp_server: None,
            bootfile: None,
            search: None,
        }
    }
}

/// A configured text as option bytes; an empty one is no option.
fn nonempty(s: Option<&str>) -> Option<&[u8]> {
    s.filter(|s| !s.is_empty()).map(str::as_bytes)
}

impl DhcpServer {
    /// A DHCP/BOOTP request from the guest (the UDP payload): answered through `out` per RFC
    /// 2131, or counted as malformed or ignored.
    pub(crate) fn input(&mut self, out: &mut Iface<'_>, now: Instant, bootp: &[u8]) {
        let Ok(packet) = DhcpPacket::new_checked(bootp) else {
            return out.stats.drop(DropReason::DhcpMalformed);
        };
        let Ok(request) = DhcpRepr::parse(&packet) else {
            return out.stats.drop(DropReason::DhcpMalformed);
        };
        if out.config.disable_dhcp {
            return out.stats.drop(DropReason::DhcpIgnored);
        }
        let reply = match self.handle(now, &out.config, &request) {
            Verdict::Reply(r) => r,
            Verdict::Ignore => return out.stats.drop(DropReason::DhcpIgnored),
        };
        let mut body = [0u8; dhcp_wire::REPLY_LEN];
        reply.emit(&mut body);
        let is_nak = reply.message_type == Some(wire::DhcpMessageType::Nak);
        let is_ack = reply.message_type == Some(wire::DhcpMessageType::Ack);
        let yiaddr = reply.yiaddr;
        let chaddr = reply.chaddr;
        // RFC 2131 §4.1: a renewing client (ciaddr set) is answered by unicast; a client asking
        // for broadcast, and every NAK, by broadcast; anyone else at its own MAC with the limited
        // broadcast address (it has no address yet).
        let (dst_ip, dst_mac) = if is_nak || request.broadcast {
            (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST)
        } else if !request.ciaddr.is_unspecified() {
            (request.ciaddr, chaddr)
        } else {
            (Ipv4Addr::BROADCAST, chaddr)
        };
        if is_ack {
            out.neighbors.learn(now, yiaddr, chaddr);
            out.stats.trace(crate::trace::TraceEvent::Lease { mac: chaddr, addr: yiaddr.into() });
        }
        let src = out.config.gateway;
        let udp = UdpRepr { src_port: 67, dst_port: 68 };
        let mut head = [0u8; udp_wire::HEADER_LEN];
        udp.emit_header(&mut head, src, dst_ip, &body);
        let repr = reply_header(src, dst_ip, IpProtocol::Udp, DEFAULT_TTL, DHCP_TOS);
        out.send_datagram(now, repr, LinkDest::Mac(dst_mac), &head, &body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, n])
    }

    fn req(kind: Option<DhcpMessageType>, m: EthernetAddress) -> DhcpRepr<'static> {
        DhcpRepr {
            op: OP_REQUEST,
            xid: 42,
            secs: 0,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: m,
            message_type: kind,
            requested_ip: None,
            server_id: None,
            subnet_mask: None,
            router: None,
            dns: None,
            lease_time: None,
            mtu: None,
            hostname: None,
            domain: None,
            message: None,
            parameter_request_list: None,
            sname: None,
            file: None,
            tftp_server: None,
            bootfile: None,
            search: None,
        }
    }

    fn reply(v: Verdict<'_>) -> (DhcpMessageType, Ipv4Addr) {
        match v {
            Verdict::Reply(r) => (r.message_type.unwrap(), r.yiaddr),
            Verdict::Ignore => panic!("expected a reply"),
        }
    }

    const T0: Instant = Instant::ZERO;

    #[test]
    fn discover_offer_request_ack_checklist_9_12() {
        let c = Config::default();
        let mut s = DhcpServer::default();
        let (t, a) = reply(s.handle(T0, &c, &req(Some(DhcpMessageType::Discover), mac(1))));
        assert_eq!((t, a), (DhcpMessageType::Offer, Ipv4Addr::new(10, 0, 2, 15)));
        let mut r = req(Some(DhcpMessageType::Request), mac(1));
        r.requested_ip = Some(a);
        r.server_id = Some(c.gateway);
        let v = s.handle(T0, &c, &r);
        let Verdict::Reply(ack) = v else { panic!() };
        assert_eq!(ack.message_type, Some(DhcpMessageType::Ack));
        assert_eq!(ack.router, Some(c.gateway));
        assert_eq!(ack.dns, Some(c.dns));
        assert_eq!(ack.lease_time, Some(86400));
        assert_eq!(ack.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(ack.mtu, Some(1500));
    }

    #[test]
    fn sticky_by_mac_and_second_client_checklist_13() {
        let c = Config::default();
        let mut s = DhcpServer::default();
        let d = Some(DhcpMessageType::Discover);
        assert_eq!(reply(s.handle(T0, &c, &req(d, mac(1)))).1, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(reply(s.handle(T0, &c, &req(d, mac(2)))).1, Ipv4Addr::new(10, 0, 2, 16));
        assert_eq!(reply(s.handle(T0, &c, &req(d, mac(1)))).1, Ipv4Addr::new(10, 0, 2, 15));
    }

    #[test]
    fn nak_for_taken_or_foreign_address_checklist_14() {
        let c = Config::default();
        let mut s = DhcpServer::default();
        s.handle(T0, &c, &req(Some(DhcpMessageType::Discover), mac(1)));
        for addr in [Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(192, 168, 1, 5)] {
            let mut r = req(Some(DhcpMessageType::Request), mac(2));
            r.requested_ip = Some(addr);
            let Verdict::Reply(nak) = s.handle(T0, &c, &r) else { panic!() };
            assert_eq!(nak.message_type, Some(DhcpMessageType::Nak));
            assert_eq!(nak.yiaddr, Ipv4Addr::UNSPECIFIED);
            assert_eq!(nak.message, Some(NAK_MESSAGE));
        }
    }

    #[test]
    fn renewal_via_ciaddr_and_request_without_address_checklist_15_16() {
        let c = Config::default();
        let mut s = DhcpServer::default();
        let mut r = req(Some(DhcpMessageType::Request), mac(1));
        r.ciaddr = Ipv4Addr::new(10, 0, 2, 15);
        assert_eq!(reply(s.handle(T0, &c, &r)), (DhcpMessageType::Ack, Ipv4Addr::new(10, 0, 2, 15)));
        let r = req(Some(DhcpMessageType::Request), mac(3));
        assert_eq!(reply(s.handle(T0, &c, &r)), (DhcpMessageType::Ack, Ipv4Addr::new(10, 0, 2, 16)));
    }

    #[test]
    fn bootp_without_cookie_gets_ack_checklist_17() {
        let c = Config::default();
        let mut s = DhcpServer::default();
        assert_eq!(reply(s.handle(T0, &c, &req(None, mac(1)))).0, DhcpMessageType::Ack);
    }

    #[test]
    fn release_decline_inform_and_replies_ignored_checklist_18() {
        let c = Config::default();
        let mut s = DhcpServer::default();
        s.handle(T0, &c, &req(Some(DhcpMessageType::Discover), mac(1)));
        for k in [DhcpMessageType::Release, DhcpMessageType::Decline, DhcpMessageType::Inform] {
            assert_eq!(s.handle(T0, &c, &req(Some(k), mac(1))), Verdict::Ignore);
        }
        assert_eq!(s.leases(&c).count(), 1);
        let mut r = req(Some(DhcpMessageType::Discover), mac(2));
        r.op = OP_REPLY;
        assert_eq!(s.handle(T0, &c, &r), Verdict::Ignore);
    }

    #[test]
    fn pool_full_is_silent_until_a_lease_expires_checklist_19() {
        let c = Config { lease_time: Duration::from_secs(60), ..Config::default() };
        let mut s = DhcpServer::default();
        let d = Some(DhcpMessageType::Discover);
        for i in 0..16 {
            assert_eq!(reply(s.handle(T0, &c, &req(d, mac(i)))).0, DhcpMessageType::Offer);
        }
        assert_eq!(s.handle(T0, &c, &req(d, mac(16))), Verdict::Ignore);
        // Leases that ran out without renewal can be reused.
        let later = Instant::from_secs(61);
        assert_eq!(reply(s.handle(later, &c, &req(d, mac(16)))).1, Ipv4Addr::new(10, 0, 2, 15));
    }

    #[test]
    fn requested_free_address_is_offered_checklist_20() {
        let c = Config::default();
        let mut s = DhcpServer::default();
        let mut r = req(Some(DhcpMessageType::Discover), mac(1));
        r.requested_ip = Some(Ipv4Addr::new(10, 0, 2, 20));
        assert_eq!(reply(s.handle(T0, &c, &r)).1, Ipv4Addr::new(10, 0, 2, 20));
    }

    #[test]
    fn restricted_omits_router_and_dns_and_other_server_is_ignored() {
        let c = Config { restricted: true, ..Config::default() };
        let mut s = DhcpServer::default();
        let Verdict::Reply(o) = s.handle(T0, &c, &req(Some(DhcpMessageType::Discover), mac(1))) else { panic!() };
        assert_eq!((o.router, o.dns), (None, None));
        let mut r = req(Some(DhcpMessageType::Request), mac(1));
        r.server_id = Some(Ipv4Addr::new(10, 0, 2, 99));
        assert_eq!(s.handle(T0, &c, &r), Verdict::Ignore);
    }
}
