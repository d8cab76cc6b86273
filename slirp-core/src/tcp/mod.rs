//! Guest-facing TCP: one control block ([`Tcb`]) per connection between the guest and us.
//!
//! The guest is the TCB's remote peer; we impersonate whatever address the guest dialled (or the
//! host client, for port forwards). The TCB is sans-IO and allocation-free: segments come in as
//! [`TcpRepr`]s through [`Tcb::on_segment`], segments for the guest are
//! pulled with [`Tcb::emit_next`] (header, options, payload straight from the send ring, checksum)
//! whenever the guest link has room, time is a value, and [`Tcb::poll_at`] says when to call
//! [`Tcb::on_timeout`]. The host side is the glue's: it reports the host connect, host EOF and
//! host consumption, writes host bytes into the send ring and hands guest bytes to the host
//! socket directly (only what the host refuses is buffered).
//!
//! Tuned for a virtual link (microsecond RTTs, loss only from queue overflow): millisecond RTO
//! with a low floor, large scaled windows, delayed ACK of at most a millisecond that never holds
//! back more than two segments, SACK, timestamps, a short TIME_WAIT.
//!
//! What the glue does per flow:
//! - guest SYN ([`is_connection_request`]): [`Tcb::accept`], start the host connect; on success
//!   [`Tcb::host_connected`], on refusal [`Tcb::host_refused`] (RST|ACK to the guest), on
//!   unreachable [`Tcb::discard`] and an ICMP error from the glue;
//! - segments for no TCB: answer with [`reset_reply`];
//! - every guest segment: [`Tcb::on_segment`] with a closure writing to the host socket, then act
//!   on the returned [`Events`];
//! - host readable: read into [`Tcb::write_send_buffer`] while [`Tcb::send_buffer_free`] is
//!   non-zero; host EOF: [`Tcb::host_eof`]; host error: [`Tcb::abort`];
//! - host writable: write [`Tcb::pending_to_host`] (out of band for the first
//!   [`Tcb::urgent_to_host`] bytes), report with [`Tcb::host_accepted`]; once
//!   [`Tcb::should_shutdown_host_write`], shut the host socket's write side;
//! - whenever the guest link has room and [`Tcb::has_output`]: [`Tcb::emit_next`] into the TCP
//!   part of a frame (source [`Tcb::local`], destination [`Tcb::remote`]);
//! - at [`Tcb::poll_at`]: [`Tcb::on_timeout`]; on [`Events::CLOSED`], drain `emit_next`, free
//!   the slot and take the buffers back with [`Tcb::into_buffers`].

mod assembler;
mod buffer;
mod rtt;
mod tcb;
#[cfg(test)]
mod tests;

pub use assembler::{Assembler, AssemblerFull};
pub use buffer::RingBuffer;
pub use rtt::RttEstimator;
pub use tcb::{Emitted, Tcb};

use crate::wire::{SeqNumber, TcpControl, TcpRepr};
use core::fmt;
use core::ops::{BitOr, BitOrAssign};
use core::time::Duration;
use managed::ManagedSlice;

/// TCP/IPv4 header overhead without options (IPv4 20 + TCP 20): MSS = MTU - 40 (RFC 9293 3.7.1).
pub const IPV4_TCP_OVERHEAD: usize = 40;
/// The MSS assumed when the peer sends no MSS option (RFC 9293 3.7.1).
pub const DEFAULT_MSS: u16 = 536;
/// The smallest MSS we accept from a peer: a hostile MSS of 1 would make us send one-byte
/// segments (Linux clamps at 48 for the same reason, CVE-2019-11479).
pub const MIN_MSS: u16 = 64;
/// Largest window scale shift (RFC 7323 2.3).
pub const MAX_WINDOW_SHIFT: u8 = 14;

/// Keepalive probing (RFC 9293 3.8.4, RFC 1122 4.2.3.6): off unless configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes after which the connection is dropped.
    pub count: u8,
}

/// Per-connection TCP settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// IP MTU of the guest link; our MSS is `mtu - 40`.
    pub mtu: usize,
    /// Floor of the retransmission timeout. RFC 6298 asks for 1 s on the open Internet; the guest
    /// link's RTT is microseconds and losses are queue overflows that clear at once, so a low
    /// floor only risks a cheap spurious retransmission.
    pub min_rto: Duration,
    /// RTO before any RTT sample (RFC 6298 2.1 says 1 s). 200 ms: the first SYN or SYN-ACK on a
    /// virtual link is lost only to a full queue, which the guest drains in well under that, and
    /// a guest that takes longer to answer costs one extra SYN-ACK, not a failure.
    pub initial_rto: Duration,
    /// Ceiling of the (backed-off) RTO (RFC 6298 2.5 allows 60 s).
    pub max_rto: Duration,
    /// Delayed-ACK timer (RFC 1122 4.2.3.2 allows up to 500 ms; we keep it tiny, the link is
    /// fast and the ACK clocks our sending). `None` acknowledges every segment at once.
    pub delayed_ack: Option<Duration>,
    /// Least retransmission timeout while a single segment is in flight: the guest may hold its
    /// ACK for its delayed-ACK timer (Linux 40 ms, Windows 200 ms), so a lower value resends
    /// every lone response (RFC 8985's WCDelAckT is 200 ms). Added to twice the smoothed RTT.
    pub lone_segment_allowance: Duration,
    /// Offer window scaling (RFC 7323 2); the shift follows the receive buffer's size.
    pub window_scaling: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Offer timestamps (RFC 7323 3-5: RTTM and PAWS).
    pub timestamps: bool,
    /// Keepalive probing; `None` (the default) never probes an idle connection.
    pub keepalive: Option<Keepalive>,
    /// Drop a connection with no segment either way for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// TIME_WAIT length. 2 MSL is 4 minutes on the Internet; here it only guards the guest-side
    /// four-tuple against old duplicates on a link that delays nothing for more than a few
    /// milliseconds, while every TCB in TIME_WAIT pins a flow slot and two buffers. One second
    /// still covers the guest's retransmission of a FIN whose ACK was lost.
    pub time_wait: Duration,
    /// How long the host connect for a guest's SYN may take (75 s, the BSD and old slirp
    /// value); the guest then gets a RST.
    pub connect_timeout: Duration,
    /// How long the guest may take to complete a handshake once we answered: to acknowledge our
    /// SYN-ACK, or to answer the SYN of a forwarded connection (20 s: a guest on a local link
    /// answers in milliseconds, and retransmits for seconds; a kernel's SYN-ACK retries take
    /// about a minute because the Internet's round trips can take seconds). Half-open state is
    /// what a SYN flood piles up, so it does not get to stay long.
    pub handshake_timeout: Duration,
    /// Share of the connection table that connections still in their handshake (guest SYNs,
    /// forwarded connections the guest has not answered) may hold, in percent (1-100; 25 by
    /// default), but never fewer than 16 connections (or the whole table, if smaller), so a
    /// small table still takes a burst of parallel connects. When a new connection would pass
    /// it, the oldest half-open connection gives way (counted as `tcp_half_open_evicted`), as a
    /// kernel's SYN backlog does, so a flood of SYNs the guest never completes cannot take the
    /// table from working connections.
    pub half_open_percent: u8,
    /// Consecutive retransmission timeouts (or unanswered zero-window probes) before the
    /// connection is dropped.
    pub max_retransmits: u8,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window: u8,
    /// RFC 5961 challenge ACKs (and ACKs answering empty out-of-window segments) allowed per
    /// second on one connection.
    pub challenge_ack_limit: u16,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mtu: 1500,
            min_rto: Duration::from_millis(10),
            initial_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            delayed_ack: Some(Duration::from_millis(1)),
            lone_segment_allowance: Duration::from_millis(200),
            window_scaling: true,
            sack: true,
            timestamps: true,
            keepalive: None,
            idle_timeout: None,
            time_wait: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(75),
            handshake_timeout: Duration::from_secs(20),
            half_open_percent: 25,
            max_retransmits: 15,
            initial_window: 10,
            challenge_ack_limit: 100,
        }
    }
}

impl TcpConfig {
    /// The MSS we advertise: MTU minus the IPv4 and TCP headers, within `[MIN_MSS, 65495]`.
    pub fn mss(&self) -> u16 {
        let mss = self.mtu.saturating_sub(IPV4_TCP_OVERHEAD).clamp(usize::from(MIN_MSS), 65535 - 40);
        mss as u16
    }
}

/// Connection states (RFC 9293 3.3.2). There is no LISTEN: a TCB exists only once a SYN arrived
/// or we open toward the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TcpState {
    /// Gone: nothing more will be sent (except a pending RST) or accepted.
    Closed,
    /// We sent a SYN to the guest (port forward) and wait for its SYN-ACK.
    SynSent,
    /// The guest's SYN arrived; while the host connect is pending nothing is sent
    /// ([`Tcb::is_awaiting_host`]), then our SYN-ACK waits for the guest's ACK.
    SynReceived,
    /// Data flows both ways.
    Established,
    /// The host finished sending; our FIN is not acknowledged yet.
    FinWait1,
    /// Our FIN is acknowledged; the guest may still send.
    FinWait2,
    /// The guest finished sending; the host may still send.
    CloseWait,
    /// Both sent FIN at once; ours is not acknowledged yet.
    Closing,
    /// The guest finished first, then the host; our FIN is not acknowledged yet.
    LastAck,
    /// Both finished; waiting out delayed duplicates for [`TcpConfig::time_wait`].
    TimeWait,
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpState::Closed => "CLOSED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynReceived => "SYN_RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
        })
    }
}

/// What happened during one call, for the glue to act on (a small bit set).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Events(u16);

impl Events {
    /// No event.
    pub const NONE: Events = Events(0);
    /// The handshake completed: start moving data (read the host socket).
    pub const ESTABLISHED: Events = Events(1 << 0);
    /// The guest sent FIN: once [`Tcb::pending_to_host`] is empty, shut down the host socket's
    /// write side.
    pub const GUEST_FIN: Events = Events(1 << 1);
    /// The guest reset the connection: close the host socket at once (with RST if possible).
    pub const RESET: Events = Events(1 << 2);
    /// The guest refused our SYN (RST): close the host client's connection.
    pub const REFUSED: Events = Events(1 << 3);
    /// The connection timed out (handshake, retransmissions, keepalive or idle).
    pub const TIMED_OUT: Events = Events(1 << 4);
    /// The TCB reached CLOSED: drain [`Tcb::emit_next`] (a RST may be pending) and free it.
    pub const CLOSED: Events = Events(1 << 5);
    /// The guest acknowledged data: there is room in the send ring for more host bytes.
    pub const SEND_SPACE: Events = Events(1 << 6);
    /// Guest bytes wait in the receive buffer for the host ([`Tcb::pending_to_host`]).
    pub const RECV_READY: Events = Events(1 << 7);
    /// A new SYN arrived in TIME_WAIT for the same four-tuple (RFC 6191): close this TCB and
    /// treat the segment as a new connection request.
    pub const REOPEN: Events = Events(1 << 8);

    /// Whether every event of `other` is set.
    pub fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no event is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 9] = [
            "ESTABLISHED",
            "GUEST_FIN",
            "RESET",
            "REFUSED",
            "TIMED_OUT",
            "CLOSED",
            "SEND_SPACE",
            "RECV_READY",
            "REOPEN",
        ];
        f.write_str("Events(")?;
        let mut first = true;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(n)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// Per-connection counters (saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TcpCounters {
    /// Segments handed to [`Tcb::on_segment`].
    pub segments_in: u64,
    /// Segments written by [`Tcb::emit_next`].
    pub segments_out: u64,
    /// Guest bytes passed to the host (directly or from the receive buffer).
    pub bytes_to_host: u64,
    /// Host bytes acknowledged by the guest.
    pub bytes_to_guest: u64,
    /// Segments sent again (timeouts, fast retransmits, hole repair).
    pub retransmits: u32,
    /// Retransmission timeouts.
    pub timeouts: u32,
    /// Timeouts found spurious by the echoed timestamp and undone (RFC 3522, RFC 4015).
    pub spurious_timeouts: u32,
    /// Fast retransmits (entries into loss recovery, RFC 5681 3.2).
    pub fast_retransmits: u32,
    /// Duplicate ACKs received.
    pub dup_acks: u32,
    /// Segments that arrived out of order and were kept.
    pub out_of_order: u32,
    /// Segments dropped: outside the window, failing PAWS, too many holes, or not allowed in the
    /// state.
    pub dropped: u32,
    /// Challenge ACKs sent (RFC 5961).
    pub challenge_acks: u32,
    /// Duplicate SYNs absorbed while the host connect was pending.
    pub syns_absorbed: u32,
    /// Zero-window and keepalive probes sent.
    pub probes: u32,
}

/// The two byte regions a TCB works in, supplied by the embedder (pooled per flow slot).
#[derive(Debug)]
pub struct TcpBuffers<'a> {
    /// Host bytes not yet acknowledged by the guest.
    pub send: ManagedSlice<'a, u8>,
    /// Guest bytes the host has not taken yet, and out-of-order guest bytes; its size bounds the
    /// window we advertise.
    pub recv: ManagedSlice<'a, u8>,
}

impl<'a> TcpBuffers<'a> {
    /// Buffers over two regions.
    pub fn new(send: impl Into<ManagedSlice<'a, u8>>, recv: impl Into<ManagedSlice<'a, u8>>) -> Self {
        TcpBuffers { send: send.into(), recv: recv.into() }
    }
}

/// Whether a segment may open a connection: SYN without ACK (RFC 9293 3.10.7.2).
pub fn is_connection_request(seg: &TcpRepr) -> bool {
    seg.control == TcpControl::Syn && seg.ack_number.is_none()
}

/// The reset answering a segment that reached no connection (RFC 9293 3.10.7.1): `None` for a
/// RST (never answer one). With ACK: `RST, seq = SEG.ACK`; without: `RST|ACK, seq 0,
/// ack = SEG.SEQ + SEG.LEN`. Ports are swapped; the caller swaps the addresses.
pub fn reset_reply(seg: &TcpRepr) -> Option<TcpRepr<'static>> {
    if seg.control == TcpControl::Rst {
        return None;
    }
    let (seq, ack) = match seg.ack_number {
        Some(ack) => (ack, None),
        None => (SeqNumber(0), Some(seg.seq_number + seg.segment_len())),
    };
    Some(TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        control: TcpControl::Rst,
        seq_number: seq,
        ack_number: ack,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        urgent_at: None,
        payload: &[],
    })
}
