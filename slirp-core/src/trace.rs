//! Per-instance structured tracing (the seed's `Tracer`): what happened in the last turns, as
//! events the embedder drains with [`Slirp::poll_trace`](crate::Slirp::poll_trace).
//!
//! Off unless [`Config::trace`](crate::Config::trace) is set: then one branch per site, nothing
//! else. On, events go into a ring of [`TRACE_CAPACITY`]; when the embedder does not drain it
//! in time the oldest event gives way and [`Stats::trace_lost`](crate::Stats::trace_lost)
//! counts it. Events carry no time: they belong to the turn that just ran, which the embedder
//! timestamps. Logs (`log`, `defmt`) stay for humans.

use crate::stats::DropReason;
use crate::wire::EthernetAddress;
use core::net::{IpAddr, SocketAddr};

/// Events the ring holds before the oldest gives way.
pub const TRACE_CAPACITY: usize = 128;

/// Which way a frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameDirection {
    /// From the guest.
    FromGuest,
    /// To the guest.
    ToGuest,
}

/// Why a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CloseReason {
    /// Both sides finished (FIN both ways, TIME-WAIT done or reclaimed).
    Finished,
    /// A reset: from the guest, or the host side's connection failed or was reset.
    Reset,
    /// Refused: the host's connect failed (RST or ICMP to the guest), or the guest refused a
    /// forwarded connection.
    Refused,
    /// The handshake or the peer timed out.
    TimedOut,
    /// Gave way to a new flow (a full table: the oldest half-open TCP connection, the oldest
    /// UDP mapping).
    Evicted,
    /// A UDP mapping idle for its timeout.
    Expired,
}

impl CloseReason {
    /// A short lowercase name (`finished`, `reset`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::Finished => "finished",
            CloseReason::Reset => "reset",
            CloseReason::Refused => "refused",
            CloseReason::TimedOut => "timed_out",
            CloseReason::Evicted => "evicted",
            CloseReason::Expired => "expired",
        }
    }
}

/// One thing that happened. (No `defmt::Format`: defmt cannot print socket addresses; a
/// defmt embedder formats the fields it wants.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// A frame crossed the guest link: its length and EtherType.
    Frame {
        /// Which way.
        direction: FrameDirection,
        /// Bytes (a super-frame of the offloads counts whole).
        len: u32,
        /// EtherType (0 when the frame had none).
        ethertype: u16,
    },
    /// Something was dropped (as counted in [`Stats`](crate::Stats)).
    Dropped(DropReason),
    /// A TCP connection opened: by the guest (`forwarded` false) or from a port forward.
    TcpOpened {
        /// The guest's endpoint.
        guest: SocketAddr,
        /// The endpoint the guest sees on the other side.
        remote: SocketAddr,
        /// Opened from a host port forward.
        forwarded: bool,
    },
    /// A TCP connection ended.
    TcpClosed {
        /// The guest's endpoint.
        guest: SocketAddr,
        /// The endpoint the guest saw.
        remote: SocketAddr,
        /// Why.
        reason: CloseReason,
        /// It came from a host port forward.
        forwarded: bool,
    },
    /// A UDP mapping was created for a guest endpoint.
    UdpOpened {
        /// The guest's endpoint.
        guest: SocketAddr,
        /// Where its first datagram went on the host side (after the DNS and host-loopback
        /// aliases: the upstream resolver for a query to the DNS alias).
        remote: SocketAddr,
    },
    /// A UDP mapping expired or gave way.
    UdpClosed {
        /// The guest's endpoint.
        guest: SocketAddr,
        /// [`CloseReason::Expired`] or [`CloseReason::Evicted`].
        reason: CloseReason,
    },
    /// A DHCP lease (or DHCPv6 binding) was granted or renewed.
    Lease {
        /// The client.
        mac: EthernetAddress,
        /// Its address.
        addr: IpAddr,
    },
}

/// The ring (kept with the counters, which every site reaches).
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceRing {
    pub(crate) on: bool,
    events: heapless::Deque<TraceEvent, TRACE_CAPACITY>,
}

impl TraceRing {
    /// Records `ev` (when on); returns true when an older event had to give way.
    #[inline]
    pub(crate) fn push(&mut self, ev: TraceEvent) -> bool {
        if !self.on {
            return false;
        }
        let lost = self.events.is_full() && self.events.pop_front().is_some();
        let _ = self.events.push_back(ev);
        lost
    }

    pub(crate) fn pop(&mut self) -> Option<TraceEvent> {
        self.events.pop_front()
    }
}

/// Equality of [`Stats`](crate::Stats) is about counters: pending events do not take part.
impl PartialEq for TraceRing {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TraceRing {}
