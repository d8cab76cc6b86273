//! UDP and ICMP echo NAT, the DNS and host-loopback aliases, and UDP port forwarding.
//!
//! **UDP.** One host socket per guest endpoint (address, port), found in O(1) in a bounded
//! [`FlowTable`]. The mapping is endpoint-independent: whoever answers the host socket reaches the
//! guest, with its real address. A flow expires 240 s after its last datagram either way, or 10 s
//! after a reply from the DNS upstream (a lookup is done). When the table is full the least
//! recently active flow is closed to make room (counted as [`DropReason::UdpFlowEvicted`]).
//!
//! **Addresses the guest sends to:**
//! - the DNS alias, port 53 only: the configured upstream resolver; replies come from alias:53.
//!   A guest endpoint's datagrams to the alias leave through a host socket of their own (the
//!   flow's key says so), and only that socket's replies from the upstream, and the ICMP errors
//!   about what it sent, are shown as coming from the alias. A guest that asks the upstream (or
//!   any other server) directly sees the real address, as it expects; one guest socket that
//!   talks to both gets each answer from the address it asked;
//! - the gateway: the host's loopback on the same port (replies come from the gateway), unless
//!   `disable_host_loopback`, which answers ICMP "administratively prohibited";
//! - any other address of the virtual subnet: nobody is there (ICMP host unreachable). The
//!   original slirp sent these to the host's loopback too; we keep the host alias to one address;
//! - broadcast and multicast: not forwarded (dropped silently);
//! - everything else: the address itself.
//!
//! **Host → guest.** A readable host socket is read only while the guest-bound queue has room for
//! a whole datagram; otherwise it waits on a FIFO ready list and is served when the guest link
//! drains. Each turn reads at most [`READ_BUDGET`] datagrams before the next ready socket gets
//! its turn (round robin), so one chatty flow cannot starve the others.
//!
//! **ICMP echo** to the outside goes through one long-lived host echo socket (ping socket or raw
//! socket, whichever the host offers; the UDP "pseudo-ping" to port 7 of the original slirp is the
//! last fallback). Requests get our own sequence numbers so several guests' and several processes'
//! pings can be in flight at once; a reply is mapped back through a fixed ring of the last
//! [`ECHO_SLOTS`] requests (no timer needed: a slot is reused after [`ECHO_SLOTS`] newer pings or
//! ignored after [`ECHO_TIMEOUT`]).
//!
//! **UDP forwarding.** A rule binds a host socket; a datagram from a host client reaches the guest
//! from the gateway address (loopback clients) or from the client's real address, keeping the
//! client's port. The guest's replies from the rule's guest port leave through the rule's socket.

pub mod tcp;

use crate::host::{EchoKind, HostError, HostSocket, SocketId, UdpEvent};
use crate::iface::{Inner, LinkDest, Slirp};
use crate::stats::DropReason;
use crate::storage::{FlowId, FlowSlot, FlowTable, ReadyRing, TableFull};
use crate::time::{earliest, Instant};
use crate::wire::icmpv4::{self, unreach};
use crate::wire::{IpProtocol, Ipv4Repr};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use managed::ManagedSlice;

/// Idle time after which a UDP mapping is closed.
pub const UDP_IDLE: Duration = Duration::from_secs(240);
/// Lifetime of a DNS mapping after the resolver answered.
pub const DNS_LINGER: Duration = Duration::from_secs(10);
/// Datagrams read from one host socket per turn.
pub const READ_BUDGET: usize = 8;
/// Echo requests remembered for matching replies.
pub const ECHO_SLOTS: usize = 128;
/// How long an echo reply is accepted after its request.
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the engine waits before asking the host for an echo socket again after it failed.
pub const ECHO_RETRY: Duration = Duration::from_secs(10);
/// Most UDP forwarding rules at once.
pub const MAX_FORWARDS: usize = 32;

const LIST_IDLE: usize = 0;
const LIST_DNS: usize = 1;

/// What a UDP flow is keyed by: the guest endpoint, and whether this is its traffic to the DNS
/// alias (public only so embedders can size storage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpKey {
    guest: SocketAddrV4,
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

/// A UDP port forward, as listed by [`Slirp::udp_forwards`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpForward {
    /// Rule id, for removal.
    pub id: u32,
    /// The host address the rule's socket is bound to.
    pub host: SocketAddrV4,
    /// The guest endpoint datagrams are delivered to.
    pub guest: SocketAddrV4,
    ready: bool,
}

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

#[derive(Clone, Copy, Debug)]
struct PendingEcho {
    our_seq: u16,
    guest: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    seq_no: u16,
    sent: Instant,
}

#[derive(Debug)]
struct EchoNat {
    kind: Option<EchoKind>,
    pseudo: bool,
    /// No way to send echo requests; try opening again after this instant.
    unavailable_until: Option<Instant>,
    ready: bool,
    next_seq: u16,
    pending: [Option<PendingEcho>; ECHO_SLOTS],
}

impl Default for EchoNat {
    fn default() -> Self {
        EchoNat {
            kind: None,
            pseudo: false,
            unavailable_until: None,
            ready: false,
            next_seq: 0,
            pending: [None; ECHO_SLOTS],
        }
    }
}

/// Which of our sockets a [`SocketId`] names. The kind lives in the top byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Flow(FlowId),
    Echo,
    PseudoPing,
    Forward(u32),
    TcpFlow(FlowId),
    TcpListener(u32),
}

const KIND_FLOW: u64 = 1;
const KIND_ECHO: u64 = 2;
const KIND_PSEUDO: u64 = 3;
const KIND_FORWARD: u64 = 4;
const KIND_TCP: u64 = 5;
const KIND_TCP_LISTENER: u64 = 6;

pub(crate) fn encode(kind: Kind) -> SocketId {
    SocketId(match kind {
        Kind::Flow(f) => (KIND_FLOW << 56) | (u64::from(f.generation()) << 32) | f.index() as u64,
        Kind::TcpFlow(f) => (KIND_TCP << 56) | (u64::from(f.generation()) << 32) | f.index() as u64,
        Kind::TcpListener(id) => (KIND_TCP_LISTENER << 56) | u64::from(id),
        Kind::Echo => KIND_ECHO << 56,
        Kind::PseudoPing => KIND_PSEUDO << 56,
        Kind::Forward(id) => (KIND_FORWARD << 56) | u64::from(id),
    })
}

pub(crate) fn decode(id: SocketId) -> Option<Kind> {
    let v = id.0;
    match v >> 56 {
        KIND_FLOW => Some(Kind::Flow(FlowId::from_parts(v as u32, (v >> 32) as u32))),
        KIND_TCP => Some(Kind::TcpFlow(FlowId::from_parts(v as u32, (v >> 32) as u32))),
        KIND_TCP_LISTENER => Some(Kind::TcpListener(v as u32)),
        KIND_ECHO => Some(Kind::Echo),
        KIND_PSEUDO => Some(Kind::PseudoPing),
        KIND_FORWARD => Some(Kind::Forward(v as u32)),
        _ => None,
    }
}

/// The NAT's state, owned by the engine.
#[derive(Debug)]
pub(crate) struct Nat<'a> {
    udp: FlowTable<'a, UdpKey, UdpFlow>,
    ready: ReadyRing<'a>,
    echo: EchoNat,
    forwards: heapless::Vec<UdpForward, MAX_FORWARDS>,
    /// Rule ids, shared by UDP and TCP forwards so an id names one rule.
    pub(crate) next_rule: u32,
    /// Identifier of our raw-socket echo requests: per instance (from the seed), so two
    /// instances on one host do not take each other's replies.
    echo_ident: u16,
}

impl<'a> Nat<'a> {
    pub(crate) fn new(
        udp_slots: ManagedSlice<'a, UdpFlowSlot>,
        udp_index: ManagedSlice<'a, u32>,
        ready: ManagedSlice<'a, u64>,
        seed: u64,
    ) -> Self {
        Nat {
            udp: FlowTable::new(udp_slots, udp_index, seed),
            ready: ReadyRing::new(ready),
            echo: EchoNat::default(),
            forwards: heapless::Vec::new(),
            next_rule: 1,
            echo_ident: ECHO_IDENT_BASE ^ (seed >> 48) as u16,
        }
    }

    /// The next NAT deadline: the oldest flow of each expiry list.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        let at = |list: usize, timeout: Duration| {
            self.udp.oldest(list).and_then(|id| self.udp.get(id)).map(|(_, f)| f.last + timeout)
        };
        earliest(at(LIST_IDLE, UDP_IDLE), at(LIST_DNS, DNS_LINGER))
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.ready.len() > 0
    }

    /// Number of UDP mappings.
    pub(crate) fn udp_flow_count(&self) -> usize {
        self.udp.len()
    }

    /// (guest endpoint, last activity) for every UDP mapping (an endpoint that used the DNS
    /// alias and other servers has two).
    pub(crate) fn udp_flows(&self) -> impl Iterator<Item = (SocketAddrV4, Instant)> + '_ {
        self.udp.iter().map(|(_, k, f)| (k.guest, f.last))
    }

    pub(crate) fn forwards(&self) -> impl Iterator<Item = UdpForward> + '_ {
        self.forwards.iter().copied()
    }

    fn mark_ready(&mut self, id: SocketId) {
        let flag = match decode(id) {
            Some(Kind::Flow(f)) => match self.udp.get_mut(f) {
                Some(flow) => &mut flow.ready,
                None => return,
            },
            Some(Kind::Echo | Kind::PseudoPing) => &mut self.echo.ready,
            Some(Kind::Forward(r)) => match self.forwards.iter_mut().find(|f| f.id == r) {
                Some(f) => &mut f.ready,
                None => return,
            },
            Some(Kind::TcpFlow(_) | Kind::TcpListener(_)) | None => return,
        };
        // The ring has room for every socket at once, and a socket is in it at most once (the
        // flag) and leaves it when closed, so the push only fails if that invariant broke; then
        // the flag stays clear and the next readiness report tries again.
        if !*flag && self.ready.push(id) {
            *flag = true;
        }
    }

    fn clear_ready(&mut self, id: SocketId) {
        match decode(id) {
            Some(Kind::Flow(f)) => {
                if let Some(flow) = self.udp.get_mut(f) {
                    flow.ready = false;
                }
            }
            Some(Kind::Echo | Kind::PseudoPing) => self.echo.ready = false,
            Some(Kind::Forward(r)) => {
                if let Some(f) = self.forwards.iter_mut().find(|f| f.id == r) {
                    f.ready = false;
                }
            }
            Some(Kind::TcpFlow(_) | Kind::TcpListener(_)) | None => {}
        }
    }
}

/// Where a guest datagram goes on the host side.
pub(crate) enum Target {
    To(SocketAddrV4),
    Refuse(u8),
    Drop(DropReason),
}

impl<'a> Inner<'a> {
    /// Maps a guest destination to the host side (see the module documentation).
    pub(crate) fn host_target<H: HostSocket>(&self, dst: SocketAddrV4, host: &H) -> Target {
        let c = &self.config;
        let ip = *dst.ip();
        if ip == c.dns {
            if dst.port() != 53 {
                return Target::Refuse(unreach::PORT);
            }
            return match host.dns_upstream() {
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
    /// resolver when the guest addressed the DNS alias (the flow is the alias's), else `None`:
    /// only then is the upstream shown as alias:53.
    pub(crate) fn guest_facing(&self, from: SocketAddrV4, alias_upstream: Option<SocketAddrV4>) -> SocketAddrV4 {
        if alias_upstream == Some(from) {
            SocketAddrV4::new(self.config.dns, 53)
        } else if from.ip().is_loopback() {
            SocketAddrV4::new(self.config.gateway, from.port())
        } else {
            from
        }
    }

    /// The ICMP error (type, code) that tells the guest about host error `e`, if any.
    pub(crate) fn icmp_for(e: HostError) -> Option<(u8, u8)> {
        match e {
            HostError::TtlExpired => Some((icmpv4::TIME_EXCEEDED, 0)),
            e => Self::icmp_unreach_code(e).map(|c| (icmpv4::DST_UNREACHABLE, c)),
        }
    }

    fn icmp_unreach_code(e: HostError) -> Option<u8> {
        match e {
            HostError::NetUnreachable => Some(unreach::NET),
            HostError::HostUnreachable => Some(unreach::HOST),
            HostError::Refused => Some(unreach::PORT),
            HostError::PermissionDenied => Some(unreach::ADMIN_PROHIBITED),
            // The host cannot send it at all; "fragmentation needed" would need a next-hop MTU
            // we do not know, and the guest did not ask for DF. Count it and stay silent.
            HostError::TooLarge => None,
            _ => None,
        }
    }

    /// A guest UDP datagram that is not DHCP. `udp` is the whole UDP packet, `data` its payload.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn udp_nat_input<H: HostSocket>(
        &mut self,
        now: Instant,
        link: crate::iface::Arrival,
        repr: &Ipv4Repr,
        header: &[u8],
        udp: &[u8],
        ports: (u16, u16),
        data: &[u8],
        host: &mut H,
    ) {
        let guest = SocketAddrV4::new(repr.src_addr, ports.0);
        let dst = SocketAddrV4::new(repr.dst_addr, ports.1);
        let ttl = Some(repr.ttl.saturating_sub(1).max(1));
        // Replies from a forwarded port leave through the rule's socket (restricted or not).
        if let Some(rule) = self.nat.forwards.iter().find(|f| f.guest == guest).copied() {
            let to = match self.host_target(dst, host) {
                Target::To(t) => t,
                Target::Refuse(_) | Target::Drop(_) => return self.stats.drop(DropReason::Ipv4NoRoute),
            };
            if let Err(e) = host.udp_send_to(encode(Kind::Forward(rule.id)), data, to, ttl) {
                self.udp_send_failed(now, link, repr, header, udp, e);
            }
            return;
        }
        if self.config.restricted {
            return self.stats.drop(DropReason::Restricted);
        }
        let to = match self.host_target(dst, host) {
            Target::To(t) => t,
            Target::Refuse(code) => {
                self.stats.drop(DropReason::Ipv4NoRoute);
                return self.icmp_error(now, link, repr, header, udp, icmpv4::DST_UNREACHABLE, code);
            }
            Target::Drop(reason) => return self.stats.drop(reason),
        };
        let key = UdpKey { guest, dns_alias: repr.dst_addr == self.config.dns };
        let id = match self.udp_flow_for(now, key, host) {
            Ok(id) => id,
            Err(e) => {
                self.stats.drop(DropReason::UdpNoSocket);
                let code = Self::icmp_unreach_code(e).unwrap_or(unreach::NET);
                return self.icmp_error(now, link, repr, header, udp, icmpv4::DST_UNREACHABLE, code);
            }
        };
        let Some(flow) = self.nat.udp.get_mut(id) else { return };
        flow.last = now;
        let socket = flow.socket;
        self.nat.udp.touch(id, LIST_IDLE);
        if let Err(e) = host.udp_send_to(socket, data, to, ttl) {
            self.udp_send_failed(now, link, repr, header, udp, e);
        }
    }

    fn udp_send_failed(
        &mut self,
        now: Instant,
        link: crate::iface::Arrival,
        repr: &Ipv4Repr,
        header: &[u8],
        udp: &[u8],
        e: HostError,
    ) {
        self.stats.drop(DropReason::UdpSendFailed);
        if let Some(code) = Self::icmp_unreach_code(e) {
            self.icmp_error(now, link, repr, header, udp, icmpv4::DST_UNREACHABLE, code);
        }
    }

    /// The flow of `key`, opening a host socket for a new one.
    fn udp_flow_for<H: HostSocket>(&mut self, now: Instant, key: UdpKey, host: &mut H) -> Result<FlowId, HostError> {
        if let Some(id) = self.nat.udp.find(&key) {
            return Ok(id);
        }
        if self.nat.udp.is_full() {
            let oldest = match (self.nat.udp.oldest(LIST_DNS), self.nat.udp.oldest(LIST_IDLE)) {
                (Some(d), _) => Some(d),
                (None, i) => i,
            };
            if let Some(victim) = oldest {
                self.close_flow(victim, host);
                self.stats.drop(DropReason::UdpFlowEvicted);
            }
        }
        let placeholder = UdpFlow { socket: SocketId(0), last: now, ready: false };
        let id = self.nat.udp.insert(key, placeholder, LIST_IDLE).map_err(|TableFull| HostError::Exhausted)?;
        let socket = encode(Kind::Flow(id));
        match host.udp_bind(socket, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)) {
            Ok(_) => {
                if let Some(f) = self.nat.udp.get_mut(id) {
                    f.socket = socket;
                }
                Ok(id)
            }
            Err(e) => {
                self.nat.udp.remove(id);
                Err(e)
            }
        }
    }

    fn close_flow<H: HostSocket>(&mut self, id: FlowId, host: &mut H) {
        if let Some((_, flow)) = self.nat.udp.remove(id) {
            if flow.ready {
                self.nat.ready.remove(flow.socket);
            }
            host.close(flow.socket);
        }
    }

    /// Closes the UDP mappings whose time is up.
    pub(crate) fn expire_flows<H: HostSocket>(&mut self, now: Instant, host: &mut H) {
        for (list, timeout) in [(LIST_IDLE, UDP_IDLE), (LIST_DNS, DNS_LINGER)] {
            while let Some(id) = self.nat.udp.oldest(list) {
                match self.nat.udp.get(id) {
                    Some((_, f)) if f.last + timeout <= now => self.close_flow(id, host),
                    _ => break,
                }
            }
        }
    }

    /// A guest echo request to an address outside the virtual subnet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn echo_nat_input<H: HostSocket>(
        &mut self,
        now: Instant,
        link: crate::iface::Arrival,
        repr: &Ipv4Repr,
        header: &[u8],
        icmp: &[u8],
        echo: (u16, u16, &[u8]),
        host: &mut H,
    ) {
        let (ident, seq_no, data) = echo;
        if self.config.restricted {
            return self.stats.drop(DropReason::Restricted);
        }
        let retry = self.nat.echo.unavailable_until.is_none_or(|t| now >= t);
        if self.nat.echo.kind.is_none() && !self.nat.echo.pseudo && retry {
            self.nat.echo.unavailable_until = None;
            match host.icmp_echo_open(encode(Kind::Echo)) {
                Ok(k) => self.nat.echo.kind = Some(k),
                Err(_) => match host.udp_bind(encode(Kind::PseudoPing), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)) {
                    Ok(_) => self.nat.echo.pseudo = true,
                    // Neither works now (out of descriptors, say): answer unreachable for a while
                    // instead of asking the host on every request, then try again.
                    Err(_) => self.nat.echo.unavailable_until = Some(now + ECHO_RETRY),
                },
            }
        }
        if self.nat.echo.kind.is_none() && !self.nat.echo.pseudo {
            self.stats.drop(DropReason::IcmpEchoUnavailable);
            return self.icmp_error(now, link, repr, header, icmp, icmpv4::DST_UNREACHABLE, unreach::NET);
        }
        let our_seq = self.nat.echo.next_seq;
        self.nat.echo.next_seq = our_seq.wrapping_add(1);
        self.nat.echo.pending[usize::from(our_seq) % ECHO_SLOTS] =
            Some(PendingEcho { our_seq, guest: repr.src_addr, dst: repr.dst_addr, ident, seq_no, sent: now });
        let ttl = Some(repr.ttl.saturating_sub(1).max(1));
        let res = if self.nat.echo.pseudo {
            host.udp_send_to(encode(Kind::PseudoPing), data, SocketAddrV4::new(repr.dst_addr, 7), ttl)
        } else {
            host.icmp_echo_send(encode(Kind::Echo), repr.dst_addr, self.nat.echo_ident, our_seq, data, ttl)
        };
        if let Err(e) = res {
            self.stats.drop(DropReason::IcmpEchoUnavailable);
            if let Some(code) = Self::icmp_unreach_code(e) {
                self.icmp_error(now, link, repr, header, icmp, icmpv4::DST_UNREACHABLE, code);
            }
        }
    }

    /// Room in the guest-bound queue for a datagram of up to `max` bytes, fragments included.
    pub(crate) fn tx_room(&self, max: usize) -> bool {
        let mtu = usize::from(self.config.mtu).max(68);
        let frames = max.div_ceil(mtu - 20).max(1);
        let need = (max + frames * (14 + 20 + 16 + 8)).min(self.tx.capacity() / 2);
        self.tx.free_bytes() >= need && self.tx.fits(mtu + 14)
    }

    /// Sends a UDP datagram from `src` to the guest endpoint `guest`.
    fn udp_to_guest(&mut self, now: Instant, src: SocketAddrV4, guest: SocketAddrV4, data: &[u8]) {
        let mut head = [0u8; 8];
        let ports = crate::wire::UdpRepr { src_port: src.port(), dst_port: guest.port() };
        crate::iface::udp_header(&ports, &mut head, *src.ip(), *guest.ip(), data);
        let repr = self.reply_header(*src.ip(), *guest.ip(), IpProtocol::Udp, 64, 0);
        self.send_datagram(now, repr, LinkDest::Resolve, &head, data);
    }

    /// Tells the guest that a datagram it sent from `guest` to `dst` (host side) failed, with an
    /// ICMP unreachable from `offender` quoting the IP and UDP headers the guest sent.
    /// `alias_upstream` is the upstream resolver if the guest sent it to the DNS alias.
    fn udp_error_to_guest(
        &mut self,
        now: Instant,
        guest: SocketAddrV4,
        offender: Ipv4Addr,
        dst: SocketAddrV4,
        error: HostError,
        alias_upstream: Option<SocketAddrV4>,
    ) {
        let seen_dst = self.guest_facing(dst, alias_upstream);
        let mut l4 = [0u8; 8];
        l4[0..2].copy_from_slice(&guest.port().to_be_bytes());
        l4[2..4].copy_from_slice(&seen_dst.port().to_be_bytes());
        l4[4..6].copy_from_slice(&8u16.to_be_bytes());
        let offender = if alias_upstream.map(|u| *u.ip()) == Some(offender) { self.config.dns } else { offender };
        self.transport_error_to_guest(now, IpProtocol::Udp, guest, seen_dst, offender, error, l4);
    }

    /// Sends the guest an ICMP error about a packet it sent from `guest` to `seen_dst` (as the
    /// guest addressed it), from `offender` (host loopback and unspecified appear as the
    /// gateway), quoting a rebuilt IP header and the first 8 bytes `l4` of the transport header
    /// (ports, and for TCP the sequence number the guest's stack checks).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn transport_error_to_guest(
        &mut self,
        now: Instant,
        protocol: IpProtocol,
        guest: SocketAddrV4,
        seen_dst: SocketAddrV4,
        offender: Ipv4Addr,
        error: HostError,
        l4: [u8; 8],
    ) {
        let Some((msg_type, code)) = Self::icmp_for(error) else { return };
        let from = if offender.is_loopback() || offender.is_unspecified() { self.config.gateway } else { offender };
        let mut quote = [0u8; 28];
        let orig = Ipv4Repr {
            src_addr: *guest.ip(),
            dst_addr: *seen_dst.ip(),
            protocol,
            payload_len: 8,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        orig.emit(&mut quote[..20]);
        quote[20..].copy_from_slice(&l4);
        let head = crate::iface::icmp::header(msg_type, code, [0; 4], &quote);
        let repr = self.reply_header(from, *guest.ip(), IpProtocol::Icmp, 255, 0xc0);
        self.stats.icmp_errors_sent += 1;
        self.send_datagram(now, repr, LinkDest::Resolve, &head, &quote);
    }

    fn echo_reply_to_guest(&mut self, now: Instant, from: Ipv4Addr, our_seq: u16, data: &[u8], pseudo: bool) {
        let slot = if pseudo {
            // The pseudo-ping carries no sequence: answer the oldest outstanding request to `from`.
            self.nat
                .echo
                .pending
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.filter(|p| p.dst == from).map(|p| (i, p)))
                .min_by_key(|(_, p)| p.sent)
                .map(|(i, _)| i)
        } else {
            let i = usize::from(our_seq) % ECHO_SLOTS;
            self.nat.echo.pending[i].filter(|p| p.our_seq == our_seq).map(|_| i)
        };
        let Some(i) = slot else {
            return self.stats.drop(DropReason::EchoReplyUnmatched);
        };
        let Some(p) = self.nat.echo.pending[i].take() else { return };
        if now.saturating_duration_since(p.sent) > ECHO_TIMEOUT {
            return self.stats.drop(DropReason::EchoReplyUnmatched);
        }
        let id = p.ident.to_be_bytes();
        let sq = p.seq_no.to_be_bytes();
        let head = crate::iface::icmp::header(icmpv4::ECHO_REPLY, 0, [id[0], id[1], sq[0], sq[1]], data);
        let src = if pseudo { p.dst } else { from };
        let repr = self.reply_header(src, p.guest, IpProtocol::Icmp, 64, 0);
        self.send_datagram(now, repr, LinkDest::Resolve, &head, data);
    }
}

/// Base of the identifier our raw-socket echo requests carry (mixed with the seed).
const ECHO_IDENT_BASE: u16 = 0x51e7;

/// Outcome of one turn of reading a host socket.
enum Turn {
    /// The socket has nothing more (or is gone): not ready any more.
    Drained,
    /// Budget used up or the guest queue filled: come back later.
    More,
}

impl<'a> Slirp<'a> {
    /// The host says socket `id` is readable. Reads it (and other waiting sockets) while the
    /// guest-bound queue has room; what cannot be read now is read when the guest link drains.
    pub fn handle_host_readable<H: HostSocket>(&mut self, now: Instant, id: SocketId, host: &mut H) {
        match decode(id) {
            Some(Kind::TcpFlow(flow)) => self.tcp_host_readable(now, flow, host),
            Some(Kind::TcpListener(rule)) => self.tcp_accept_ready(now, rule, host),
            _ => {
                self.inner.nat.mark_ready(id);
                self.service_ready(now, host);
            }
        }
    }

    /// The host says socket `id` is writable (a TCP connect completed, or a full socket buffer
    /// drained).
    pub fn handle_host_writable<H: HostSocket>(&mut self, now: Instant, id: SocketId, host: &mut H) {
        if let Some(Kind::TcpFlow(flow)) = decode(id) {
            self.tcp_host_writable(now, flow, host);
        }
    }

    /// Serves the ready sockets, round robin, while the guest-bound queue has room.
    pub(crate) fn service_ready<H: HostSocket>(&mut self, now: Instant, host: &mut H) {
        let mut turns = self.inner.nat.ready.len();
        while turns > 0 {
            turns -= 1;
            if !self.inner.tx_room(self.scratch.len()) {
                return;
            }
            let Some(id) = self.inner.nat.ready.pop() else { return };
            match self.read_turn(now, id, host) {
                Turn::Drained => self.inner.nat.clear_ready(id),
                Turn::More => {
                    self.inner.nat.ready.push(id);
                }
            }
        }
    }

    fn read_turn<H: HostSocket>(&mut self, now: Instant, id: SocketId, host: &mut H) -> Turn {
        let kind = match decode(id) {
            Some(Kind::TcpFlow(_) | Kind::TcpListener(_)) | None => return Turn::Drained,
            Some(k) => k,
        };
        for _ in 0..READ_BUDGET {
            if !self.inner.tx_room(self.scratch.len()) {
                return Turn::More;
            }
            let inner = &mut self.inner;
            let buf = &mut self.scratch[..];
            match kind {
                Kind::Flow(fid) => {
                    let Some((&key, _)) = inner.nat.udp.get(fid) else { return Turn::Drained };
                    let (guest, upstream) = (key.guest, key.dns_alias.then(|| host.dns_upstream()).flatten());
                    match host.udp_recv_from(id, buf) {
                        Ok(UdpEvent::Datagram { len, from }) => {
                            let src = inner.guest_facing(from, upstream);
                            let dns = host.dns_upstream() == Some(from);
                            if let Some(f) = inner.nat.udp.get_mut(fid) {
                                f.last = now;
                            }
                            inner.nat.udp.touch(fid, if dns { LIST_DNS } else { LIST_IDLE });
                            inner.udp_to_guest(now, src, guest, &buf[..len]);
                        }
                        Ok(UdpEvent::Error { offender, dst, error }) => {
                            inner.udp_error_to_guest(now, guest, offender, dst, error, upstream);
                        }
                        Err(_) => return Turn::Drained,
                    }
                }
                Kind::Forward(rule) => {
                    let Some(fwd) = inner.nat.forwards.iter().find(|f| f.id == rule).copied() else {
                        return Turn::Drained;
                    };
                    match host.udp_recv_from(id, buf) {
                        Ok(UdpEvent::Datagram { len, from }) => {
                            let src = inner.guest_facing(from, None);
                            inner.udp_to_guest(now, src, fwd.guest, &buf[..len]);
                        }
                        Ok(UdpEvent::Error { offender, dst, error }) => {
                            inner.udp_error_to_guest(now, fwd.guest, offender, dst, error, None);
                        }
                        Err(_) => return Turn::Drained,
                    }
                }
                Kind::Echo => match host.icmp_echo_recv(id, buf) {
                    Ok(reply) => inner.echo_reply_to_guest(now, reply.from, reply.seq_no, &buf[..reply.len], false),
                    Err(_) => return Turn::Drained,
                },
                Kind::TcpFlow(_) | Kind::TcpListener(_) => return Turn::Drained,
                Kind::PseudoPing => match host.udp_recv_from(id, buf) {
                    Ok(UdpEvent::Datagram { len, from }) if from.port() == 7 => {
                        inner.echo_reply_to_guest(now, *from.ip(), 0, &buf[..len], true)
                    }
                    Ok(_) => inner.stats.drop(DropReason::EchoReplyUnmatched),
                    Err(_) => return Turn::Drained,
                },
            }
        }
        Turn::More
    }

    /// Adds a UDP port forward: binds `host_addr` on the host and delivers what arrives there to
    /// `guest` (a guest address of 0.0.0.0 means the first DHCP address, as QEMU does). Returns
    /// the rule id.
    pub fn add_udp_forward<H: HostSocket>(
        &mut self,
        host: &mut H,
        host_addr: SocketAddrV4,
        guest: SocketAddrV4,
    ) -> Result<u32, ForwardError> {
        let c = &self.inner.config;
        let guest_ip = if guest.ip().is_unspecified() { c.dhcp_start } else { *guest.ip() };
        if !c.is_host(guest_ip) || guest_ip == c.gateway || guest_ip == c.dns {
            return Err(ForwardError::GuestOutsideNetwork);
        }
        let guest = SocketAddrV4::new(guest_ip, guest.port());
        let nat = &mut self.inner.nat;
        if nat.forwards.is_full() {
            return Err(ForwardError::TableFull);
        }
        if nat.forwards.iter().any(|f| f.guest == guest) {
            return Err(ForwardError::DuplicateGuest);
        }
        let id = nat.next_rule;
        let bound = host.udp_bind(encode(Kind::Forward(id)), host_addr).map_err(ForwardError::Host)?;
        nat.next_rule = nat.next_rule.wrapping_add(1).max(1);
        let _ = nat.forwards.push(UdpForward { id, host: bound, guest, ready: false });
        Ok(id)
    }

    /// Removes a UDP port forward and closes its host socket.
    pub fn remove_udp_forward<H: HostSocket>(&mut self, host: &mut H, id: u32) -> Result<(), ForwardError> {
        let nat = &mut self.inner.nat;
        let pos = nat.forwards.iter().position(|f| f.id == id).ok_or(ForwardError::NotFound)?;
        let rule = nat.forwards.swap_remove(pos);
        let socket = encode(Kind::Forward(id));
        if rule.ready {
            nat.ready.remove(socket);
        }
        host.close(socket);
        Ok(())
    }

    /// The UDP forwarding rules.
    pub fn udp_forwards(&self) -> impl Iterator<Item = UdpForward> + '_ {
        self.inner.nat.forwards()
    }

    /// Number of UDP NAT mappings.
    pub fn udp_flow_count(&self) -> usize {
        self.inner.nat.udp_flow_count()
    }

    /// Every UDP NAT mapping: (guest endpoint, last activity).
    pub fn udp_flows(&self) -> impl Iterator<Item = (SocketAddrV4, Instant)> + '_ {
        self.inner.nat.udp_flows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_round_trip() {
        let f = FlowId::from_parts(12345, 0xabcdef);
        for k in
            [Kind::Flow(f), Kind::Echo, Kind::PseudoPing, Kind::Forward(77), Kind::TcpFlow(f), Kind::TcpListener(3)]
        {
            assert_eq!(decode(encode(k)), Some(k));
        }
        assert_eq!(decode(SocketId(0)), None);
    }
}
