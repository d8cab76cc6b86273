//! The NAT: guest flows become host sockets. One module per protocol machine, each with its own
//! state: [`udp`] (UDP mappings), [`echo`] (ICMP echo), [`tcp`] (TCP connections), and
//! [`forward`] (host ports forwarded into the guest, TCP and UDP in one table). The address map
//! they share (DNS and host-loopback aliases) is `services/aliases.rs`.
//!
//! Every host socket the NAT opens is named by a [`SocketId`] that says which machine and which
//! entry own it (its kind lives in the top byte), so a host event reaches its owner in O(1).
//!
//! **Host → guest.** A readable UDP or echo socket is read only while the guest-bound queue has
//! room for a whole datagram; otherwise it waits on a FIFO ready ring and is served when the
//! guest link drains. Each turn reads at most [`READ_BUDGET`] datagrams before the next ready
//! socket gets its turn (round robin), so one chatty flow cannot starve the others.

pub mod echo;
pub mod forward;
pub mod guest_forward;
pub mod tcp;
pub mod udp;

pub use echo::{ECHO_RETRY, ECHO_SLOTS, ECHO_TIMEOUT};
pub use forward::{ForwardError, TcpForward, UdpForward, MAX_FORWARDS};
pub use udp::{UdpFlow, UdpFlowSlot, UdpKey, DNS_LINGER, UDP_IDLE};

use crate::host::{HostSocket, IpVersion, SocketId, UdpEvent};
use crate::iface::ip::Ingress;
use crate::iface::Iface;
use crate::nat::echo::EchoNat;
use crate::nat::forward::Forwards;
use crate::nat::udp::UdpNat;
use crate::stats::DropReason;
use crate::storage::{FlowId, ReadyRing};
use crate::time::Instant;
use core::net::SocketAddr;
use managed::ManagedSlice;

/// Datagrams read from one host socket per turn.
pub const READ_BUDGET: usize = 8;

/// Which of our sockets a [`SocketId`] names. The kind lives in the top byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A UDP mapping.
    UdpFlow(FlowId),
    /// The ICMP (v4) or ICMPv6 echo socket.
    Echo(IpVersion),
    /// The UDP socket of the pseudo-ping fallback of one version.
    PseudoPing(IpVersion),
    /// The socket of UDP forward rule `id`.
    Forward(u32),
    /// A TCP connection.
    TcpFlow(FlowId),
    /// The listener of TCP forward rule `id`.
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
        Kind::UdpFlow(f) => (KIND_FLOW << 56) | (u64::from(f.generation()) << 32) | f.index() as u64,
        Kind::TcpFlow(f) => (KIND_TCP << 56) | (u64::from(f.generation()) << 32) | f.index() as u64,
        Kind::TcpListener(id) => (KIND_TCP_LISTENER << 56) | u64::from(id),
        Kind::Echo(v) => (KIND_ECHO << 56) | version_bit(v),
        Kind::PseudoPing(v) => (KIND_PSEUDO << 56) | version_bit(v),
        Kind::Forward(id) => (KIND_FORWARD << 56) | u64::from(id),
    })
}

pub(crate) fn decode(id: SocketId) -> Option<Kind> {
    let v = id.0;
    match v >> 56 {
        KIND_FLOW => Some(Kind::UdpFlow(FlowId::from_parts(v as u32, (v >> 32) as u32))),
        KIND_TCP => Some(Kind::TcpFlow(FlowId::from_parts(v as u32, (v >> 32) as u32))),
        KIND_TCP_LISTENER => Some(Kind::TcpListener(v as u32)),
        KIND_ECHO => Some(Kind::Echo(bit_version(v))),
        KIND_PSEUDO => Some(Kind::PseudoPing(bit_version(v))),
        KIND_FORWARD => Some(Kind::Forward(v as u32)),
        _ => None,
    }
}

fn version_bit(v: IpVersion) -> u64 {
    match v {
        IpVersion::V4 => 0,
        IpVersion::V6 => 1,
    }
}

fn bit_version(v: u64) -> IpVersion {
    if v & 1 == 0 {
        IpVersion::V4
    } else {
        IpVersion::V6
    }
}

/// The datagram side of the NAT (UDP mappings, UDP forwards' sockets, ICMP echo) and the ring of
/// its sockets waiting for room toward the guest.
#[derive(Debug)]
pub(crate) struct Nat<'a> {
    pub(crate) udp: UdpNat<'a>,
    pub(crate) echo: EchoNat,
    ready: ReadyRing<'a>,
}

/// Outcome of one turn of reading a host socket.
enum Turn {
    /// The socket has nothing more (or is gone): not ready any more.
    Drained,
    /// Budget used up or the guest queue filled: come back later.
    More,
}

impl<'a> Nat<'a> {
    pub(crate) fn new(
        udp_slots: ManagedSlice<'a, UdpFlowSlot>,
        udp_index: ManagedSlice<'a, u32>,
        ready: ManagedSlice<'a, u64>,
        seed: u64,
    ) -> Self {
        Nat { udp: UdpNat::new(udp_slots, udp_index, seed), echo: EchoNat::new(seed), ready: ReadyRing::new(ready) }
    }

    /// The next NAT deadline (UDP expiry).
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        self.udp.poll_at()
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.ready.len() > 0
    }

    /// Number of UDP mappings.
    pub(crate) fn udp_flow_count(&self) -> usize {
        self.udp.len()
    }

    /// (guest endpoint, last activity) for every UDP mapping.
    pub(crate) fn udp_flows(&self) -> impl Iterator<Item = (SocketAddr, Instant)> + '_ {
        self.udp.flows()
    }

    /// A guest UDP datagram that is not DHCP (see [`UdpNat::input`]).
    pub(crate) fn udp_input<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        forwards: &Forwards,
        d: &Ingress<'_>,
        dgram: (u16, u16, &[u8]),
        host: &mut H,
    ) {
        let ready = &mut self.ready;
        self.udp.input(out, forwards, d, dgram, host, |socket| ready.remove(socket));
    }

    /// A guest echo request to the outside (see [`EchoNat::input`]).
    pub(crate) fn echo_input<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        d: &Ingress<'_>,
        echo: (u16, u16, &[u8]),
        host: &mut H,
    ) {
        self.echo.input(out, d, echo, host);
    }

    /// Closes the UDP mappings whose time is up.
    pub(crate) fn expire_flows<H: HostSocket>(&mut self, now: Instant, host: &mut H, stats: &mut crate::stats::Stats) {
        let ready = &mut self.ready;
        self.udp.expire(now, host, stats, |socket| ready.remove(socket));
    }

    /// The host says `id` is readable: it joins the ready ring (once).
    pub(crate) fn mark_ready(&mut self, forwards: &mut Forwards, id: SocketId) {
        let Nat { udp, echo, ready } = self;
        let Some(flag) = ready_flag(udp, echo, forwards, id) else { return };
        // The ring has room for every socket at once, and a socket is in it at most once (the
        // flag) and leaves it when closed, so the push only fails if that invariant broke; then
        // the flag stays clear and the next readiness report tries again.
        if !*flag && ready.push(id) {
            *flag = true;
        }
    }

    fn clear_ready(&mut self, forwards: &mut Forwards, id: SocketId) {
        if let Some(flag) = ready_flag(&mut self.udp, &mut self.echo, forwards, id) {
            *flag = false;
        }
    }

    /// Takes a socket that is going away off the ready ring.
    pub(crate) fn forget_ready(&mut self, id: SocketId) {
        self.ready.remove(id);
    }

    /// Serves the ready sockets, round robin, while the guest-bound queue has room.
    pub(crate) fn service_ready<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        forwards: &mut Forwards,
        scratch: &mut [u8],
        now: Instant,
        host: &mut H,
    ) {
        let mut turns = self.ready.len();
        while turns > 0 {
            turns -= 1;
            if !out.tx_room(scratch.len()) {
                return;
            }
            let Some(id) = self.ready.pop() else { return };
            match self.read_turn(out, forwards, scratch, now, id, host) {
                Turn::Drained => self.clear_ready(forwards, id),
                Turn::More => {
                    self.ready.push(id);
                }
            }
        }
    }

    fn read_turn<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        forwards: &Forwards,
        buf: &mut [u8],
        now: Instant,
        id: SocketId,
        host: &mut H,
    ) -> Turn {
        let kind = match decode(id) {
            Some(Kind::TcpFlow(_) | Kind::TcpListener(_)) | None => return Turn::Drained,
            Some(k) => k,
        };
        for _ in 0..READ_BUDGET {
            if !out.tx_room(buf.len()) {
                return Turn::More;
            }
            let more = match kind {
                Kind::UdpFlow(fid) => self.udp.read_flow(out, buf, now, id, fid, host),
                Kind::Forward(rule) => match forwards.udp_guest(rule) {
                    Some(guest) => self.udp.read_forward(out, buf, now, id, guest, host),
                    None => false,
                },
                Kind::Echo(_) => match host.icmp_echo_recv(id, buf) {
                    Ok(reply) => {
                        self.echo.reply_to_guest(out, now, reply.from, reply.seq_no, &buf[..reply.len], false);
                        true
                    }
                    Err(_) => false,
                },
                Kind::PseudoPing(_) => match host.udp_recv_from(id, buf) {
                    Ok(UdpEvent::Datagram { len, from }) if from.port() == 7 => {
                        self.echo.reply_to_guest(out, now, from.ip(), 0, &buf[..len], true);
                        true
                    }
                    Ok(_) => {
                        out.stats.drop(DropReason::EchoReplyUnmatched);
                        true
                    }
                    Err(_) => false,
                },
                Kind::TcpFlow(_) | Kind::TcpListener(_) => false,
            };
            if !more {
                return Turn::Drained;
            }
        }
        Turn::More
    }
}

/// The ready flag of socket `id`, wherever its owner keeps it.
fn ready_flag<'f>(
    udp: &'f mut UdpNat<'_>,
    echo: &'f mut EchoNat,
    forwards: &'f mut Forwards,
    id: SocketId,
) -> Option<&'f mut bool> {
    match decode(id)? {
        Kind::UdpFlow(f) => udp.ready_flag(f),
        Kind::Echo(v) | Kind::PseudoPing(v) => Some(&mut echo.socket(v).ready),
        Kind::Forward(r) => forwards.pending_mut(false, r),
        Kind::TcpFlow(_) | Kind::TcpListener(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_round_trip() {
        let f = FlowId::from_parts(12345, 0xabcdef);
        for k in [
            Kind::UdpFlow(f),
            Kind::Echo(IpVersion::V4),
            Kind::Echo(IpVersion::V6),
            Kind::PseudoPing(IpVersion::V4),
            Kind::PseudoPing(IpVersion::V6),
            Kind::Forward(77),
            Kind::TcpFlow(f),
            Kind::TcpListener(3),
        ] {
            assert_eq!(decode(encode(k)), Some(k));
        }
        assert_eq!(decode(SocketId(0)), None);
    }
}
