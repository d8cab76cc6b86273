//! UDP through the NAT: one host socket per guest endpoint (address, port), found in O(1) in a
//! bounded [`FlowTable`]. The mapping is endpoint-independent: whoever answers the host socket
//! reaches the guest, with its real address. A flow expires 240 s after its last datagram either
//! way, or 10 s after a reply from the DNS upstream (a lookup is done). When the table is full
//! the least recently active flow is closed to make room (counted as
//! [`DropReason::UdpFlowEvicted`]). A guest endpoint's traffic to the DNS alias has a flow (and
//! a host socket) of its own, so only its replies are shown as coming from the alias (see
//! `services/aliases.rs`).

use crate::host::{HostError, HostSocket, IpVersion, SocketId, UdpEvent};
use crate::iface::icmp::{unreach_code, Quoted};
use crate::iface::ip::{IcmpError, Ingress, LinkDest, Unreach};
use crate::iface::ipv4::DEFAULT_TTL;
use crate::iface::Iface;
use crate::nat::forward::Forwards;
use crate::nat::{encode, Kind};
use crate::services::aliases::{guest_facing, host_target, Target};
use crate::stats::{DropReason, Stats};
use crate::storage::{FlowId, FlowSlot, FlowTable, TableFull};
use crate::time::{earliest, Instant};
use crate::trace::{CloseReason, TraceEvent};
use crate::wire::{IpProtocol, UdpRepr};
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use managed::ManagedSlice;

/// Idle time after which a UDP mapping is closed.
pub const UDP_IDLE: Duration = Duration::from_secs(240);
/// Lifetime of a DNS mapping after the resolver answered.
pub const DNS_LINGER: Duration = Duration::from_secs(10);

const LIST_IDLE: usize = 0;
const LIST_DNS: usize = 1;

/// What a UDP flow is keyed by: the guest endpoint, and whether this is its traffic to the DNS
/// alias (public only so embedders can size storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpKey {
    guest: SocketAddr,
    dns_alias: bool,
}

/// The mapping of one guest UDP endpoint (public only so embedders can size storage).
#[derive(Debug)]
pub struct UdpFlow {
    socket: SocketId,
    last: Instant,
    ready: bool,
}

/// A slot of the UDP flow table, for sizing [`Storage`](crate::Storage).
pub type UdpFlowSlot = FlowSlot<UdpKey, UdpFlow>;

/// The UDP mappings.
#[derive(Debug)]
pub(crate) struct UdpNat<'a> {
    flows: FlowTable<'a, UdpKey, UdpFlow>,
}

impl<'a> UdpNat<'a> {
    pub(crate) fn new(slots: ManagedSlice<'a, UdpFlowSlot>, index: ManagedSlice<'a, u32>, seed: u64) -> Self {
        UdpNat { flows: FlowTable::new(slots, index, seed) }
    }

    /// The next expiry: the oldest flow of each expiry list.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        let at = |list: usize, timeout: Duration| {
            self.flows.oldest(list).and_then(|id| self.flows.get(id)).map(|(_, f)| f.last + timeout)
        };
        earliest(at(LIST_IDLE, UDP_IDLE), at(LIST_DNS, DNS_LINGER))
    }

    pub(crate) fn len(&self) -> usize {
        self.flows.len()
    }

    /// (guest endpoint, last activity) for every UDP mapping (an endpoint that used the DNS
    /// alias and other servers has two).
    pub(crate) fn flows(&self) -> impl Iterator<Item = (SocketAddr, Instant)> + '_ {
        self.flows.iter().map(|(_, k, f)| (k.guest, f.last))
    }

    pub(crate) fn ready_flag(&mut self, id: FlowId) -> Option<&mut bool> {
        self.flows.get_mut(id).map(|f| &mut f.ready)
    }

    /// A guest UDP datagram that is not DHCP: `d.payload` is the whole UDP packet, `dgram` its
    /// (source port, destination port, payload). `off_ring` takes an evicted flow's socket off
    /// the ready ring.
    pub(crate) fn input<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        forwards: &Forwards,
        d: &Ingress<'_>,
        dgram: (u16, u16, &[u8]),
        host: &mut H,
        off_ring: impl FnMut(SocketId),
    ) {
        let (ports, data) = ((dgram.0, dgram.1), dgram.2);
        let guest = SocketAddr::new(d.src, ports.0);
        let dst = SocketAddr::new(d.dst, ports.1);
        let ttl = d.forward_ttl();
        // Replies from a forwarded port leave through the rule's socket (restricted or not).
        if let Some(rule) = forwards.udp_rule_for(guest) {
            let to = match host_target(&out.config, dst, host.dns_upstream()) {
                Target::To(t) => t,
                Target::Refuse(_) | Target::Drop(_) => return out.stats.drop(DropReason::Ipv4NoRoute),
            };
            if let Err(e) = host.udp_send_to(encode(Kind::Forward(rule)), data, to, ttl) {
                send_failed(out, d, e);
            }
            return;
        }
        if out.config.restricted {
            return out.stats.drop(DropReason::Restricted);
        }
        let to = match host_target(&out.config, dst, host.dns_upstream()) {
            Target::To(t) => t,
            Target::Refuse(code) => {
                out.stats.drop(if d.is_v6() { DropReason::Ipv6NoRoute } else { DropReason::Ipv4NoRoute });
                return out.icmp_error(d, IcmpError::Unreachable(code));
            }
            Target::Drop(reason) => return out.stats.drop(reason),
        };
        let key = UdpKey { guest, dns_alias: out.config.is_dns(d.dst) };
        let id = match self.flow_for(out, d.now, key, to, host, off_ring) {
            Ok(id) => id,
            Err(e) => {
                out.stats.drop(DropReason::UdpNoSocket);
                let code = unreach_code(e).unwrap_or(Unreach::Net);
                return out.icmp_error(d, IcmpError::Unreachable(code));
            }
        };
        let Some(flow) = self.flows.get_mut(id) else { return };
        flow.last = d.now;
        let socket = flow.socket;
        self.flows.touch(id, LIST_IDLE);
        if let Err(e) = host.udp_send_to(socket, data, to, ttl) {
            send_failed(out, d, e);
        }
    }

    /// The flow of `key`, opening a host socket of `family` for a new one (the family of the
    /// first destination: a guest endpoint's later datagrams to the other family fail on that
    /// socket and are answered unreachable, as on a host with a single-stack socket).
    fn flow_for<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        now: Instant,
        key: UdpKey,
        first: SocketAddr,
        host: &mut H,
        off_ring: impl FnMut(SocketId),
    ) -> Result<FlowId, HostError> {
        let family = IpVersion::of(first.ip());
        if let Some(id) = self.flows.find(&key) {
            return Ok(id);
        }
        if self.flows.is_full() {
            let oldest = match (self.flows.oldest(LIST_DNS), self.flows.oldest(LIST_IDLE)) {
                (Some(d), _) => Some(d),
                (None, i) => i,
            };
            if let Some(victim) = oldest {
                self.close(victim, host, &mut out.stats, CloseReason::Evicted, off_ring);
                out.stats.drop(DropReason::UdpFlowEvicted);
            }
        }
        let placeholder = UdpFlow { socket: SocketId(0), last: now, ready: false };
        let id = self.flows.insert(key, placeholder, LIST_IDLE).map_err(|TableFull| HostError::Exhausted)?;
        let socket = encode(Kind::UdpFlow(id));
        match host.udp_bind(socket, family.any()) {
            Ok(_) => {
                if let Some(f) = self.flows.get_mut(id) {
                    f.socket = socket;
                }
                out.stats.trace(TraceEvent::UdpOpened { guest: key.guest, remote: first });
                Ok(id)
            }
            Err(e) => {
                self.flows.remove(id);
                Err(e)
            }
        }
    }

    fn close<H: HostSocket>(
        &mut self,
        id: FlowId,
        host: &mut H,
        stats: &mut Stats,
        reason: CloseReason,
        mut off_ring: impl FnMut(SocketId),
    ) {
        if let Some((key, flow)) = self.flows.remove(id) {
            stats.trace(TraceEvent::UdpClosed { guest: key.guest, reason });
            if flow.ready {
                off_ring(flow.socket);
            }
            host.close(flow.socket);
        }
    }

    /// Closes the mappings whose time is up.
    pub(crate) fn expire<H: HostSocket>(
        &mut self,
        now: Instant,
        host: &mut H,
        stats: &mut Stats,
        mut off_ring: impl FnMut(SocketId),
    ) {
        for (list, timeout) in [(LIST_IDLE, UDP_IDLE), (LIST_DNS, DNS_LINGER)] {
            while let Some(id) = self.flows.oldest(list) {
                match self.flows.get(id) {
                    Some((_, f)) if f.last + timeout <= now => {
                        self.close(id, host, stats, CloseReason::Expired, &mut off_ring)
                    }
                    _ => break,
                }
            }
        }
    }

    /// Reads one datagram (or error) from flow `fid`'s socket `id` into `buf` and passes it to
    /// the guest; false when the socket has nothing more or the flow is gone.
    pub(crate) fn read_flow<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        buf: &mut [u8],
        now: Instant,
        id: SocketId,
        fid: FlowId,
        host: &mut H,
    ) -> bool {
        let Some((&key, _)) = self.flows.get(fid) else { return false };
        let (guest, upstream) = (key.guest, key.dns_alias.then(|| host.dns_upstream()).flatten());
        match host.udp_recv_from(id, buf) {
            Ok(UdpEvent::Datagram { len, from }) => {
                let src = guest_facing(&out.config, from, upstream, guest.ip());
                let dns = host.dns_upstream() == Some(from);
                if let Some(f) = self.flows.get_mut(fid) {
                    f.last = now;
                }
                self.flows.touch(fid, if dns { LIST_DNS } else { LIST_IDLE });
                to_guest(out, now, src, guest, &buf[..len]);
            }
            Ok(UdpEvent::Error { offender, dst, error }) => {
                error_to_guest(out, now, guest, offender, dst, error, upstream)
            }
            Err(_) => return false,
        }
        true
    }

    /// Reads one datagram (or error) from a UDP forward's socket `id` for guest endpoint
    /// `guest`; false when the socket has nothing more.
    pub(crate) fn read_forward<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        buf: &mut [u8],
        now: Instant,
        id: SocketId,
        guest: SocketAddr,
        host: &mut H,
    ) -> bool {
        match host.udp_recv_from(id, buf) {
            Ok(UdpEvent::Datagram { len, from }) => {
                let src = guest_facing(&out.config, from, None, guest.ip());
                to_guest(out, now, src, guest, &buf[..len]);
            }
            Ok(UdpEvent::Error { offender, dst, error }) => error_to_guest(out, now, guest, offender, dst, error, None),
            Err(_) => return false,
        }
        true
    }
}

fn send_failed(out: &mut Iface<'_>, d: &Ingress<'_>, e: HostError) {
    out.stats.drop(DropReason::UdpSendFailed);
    if let Some(code) = unreach_code(e) {
        out.icmp_error(d, IcmpError::Unreachable(code));
    }
}

/// Sends a UDP datagram from `src` to the guest endpoint `guest`.
fn to_guest(out: &mut Iface<'_>, now: Instant, src: SocketAddr, guest: SocketAddr, data: &[u8]) {
    let mut head = [0u8; crate::wire::udp::HEADER_LEN];
    UdpRepr { src_port: src.port(), dst_port: guest.port() }.emit_header(&mut head, src.ip(), guest.ip(), data);
    out.send_ip(now, src.ip(), guest.ip(), IpProtocol::Udp, DEFAULT_TTL, LinkDest::Resolve, &head, data);
}

/// Tells the guest that a datagram it sent from `guest` to `dst` (host side) failed, with an
/// ICMP error from `offender` quoting the IP and UDP headers the guest sent. `alias_upstream` is
/// the upstream resolver if the guest sent it to the DNS alias.
fn error_to_guest(
    out: &mut Iface<'_>,
    now: Instant,
    guest: SocketAddr,
    offender: IpAddr,
    dst: SocketAddr,
    error: HostError,
    alias_upstream: Option<SocketAddr>,
) {
    let seen_dst = guest_facing(&out.config, dst, alias_upstream, guest.ip());
    let mut l4 = [0u8; 8];
    l4[0..2].copy_from_slice(&guest.port().to_be_bytes());
    l4[2..4].copy_from_slice(&seen_dst.port().to_be_bytes());
    l4[4..6].copy_from_slice(&8u16.to_be_bytes());
    let offender =
        if alias_upstream.map(|u| u.ip()) == Some(offender) { out.config.dns_for(guest.ip()) } else { offender };
    let quoted = Quoted { protocol: IpProtocol::Udp, guest, dst: seen_dst, l4 };
    out.host_error_to_guest(now, quoted, offender, error);
}
