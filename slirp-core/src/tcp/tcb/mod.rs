//! The TCP control block: one connection between the guest and us (RFC 9293).
//!
//! This file holds the [`Tcb`] itself (the RFC 9293 3.3.1 sequence variables, our timers and
//! counters), its constructors, the queries the glue makes, the host side of the connection
//! (connect result, EOF, bytes both ways, urgent data) and the state transitions the other parts
//! share. The rest lives with what drives it, one `impl Tcb` block per file:
//! - `input`: a segment from the guest (acceptability, RFC 5961, PAWS, ACK, data, URG, FIN);
//! - `output`: what goes to the guest next (SYN, data, probes, ACKs) and the window it offers;
//! - `timers`: `poll_at` and `on_timeout`: RTO and RTT sampling, persist, keepalive, idle, the
//!   handshake deadline and TIME_WAIT;
//! - `recovery`: congestion control and loss recovery (slow start, NewReno, SACK hole repair,
//!   spurious-timeout undo).

mod input;
mod output;
mod recovery;
mod timers;

pub use output::Emitted;

use super::assembler::Assembler;
use super::buffer::RingBuffer;
use super::rtt::RttEstimator;
use super::{Events, TcpBuffers, TcpConfig, TcpCounters, TcpState, DEFAULT_MSS, MAX_WINDOW_SHIFT};
use crate::time::Instant;
use crate::wire::{SeqNumber, TcpRepr};
use core::net::SocketAddr;
use core::time::Duration;

/// Out-of-order ranges held past `RCV.NXT`; a guest opening more holes gets the extra segments
/// dropped (it retransmits them).
const RX_HOLES: usize = 8;
/// SACK scoreboard ranges past `SND.UNA`.
const SCOREBOARD: usize = 8;
/// Largest window expressible with scaling (RFC 7323 2.3): 65535 << 14.
const MAX_WINDOW: usize = 65535 << MAX_WINDOW_SHIFT;
/// cwnd ceiling, so arithmetic on it never overflows.
const CWND_MAX: u32 = 1 << 30;
/// Timestamp option length as sent (10 bytes, padded with the header to 12; RFC 7323 3.2).
const TS_OVERHEAD: usize = 12;

/// The smallest shift that makes `cap` fit the 16-bit window field (RFC 7323 2.2).
fn window_shift_for(cap: usize) -> u8 {
    let mut s = 0;
    while s < MAX_WINDOW_SHIFT && (cap >> s) > 65535 {
        s += 1;
    }
    s
}

/// A guest-facing TCP connection. See the [module documentation](super).
///
/// Lifecycle for the glue:
/// - guest SYN: [`Tcb::accept`], start the host connect, then [`host_connected`](Tcb::host_connected)
///   (SYN-ACK goes out) or [`host_refused`](Tcb::host_refused) (RST|ACK goes out);
/// - port forward: [`Tcb::connect`] (SYN goes out), wait for [`Events::ESTABLISHED`] or
///   [`Events::REFUSED`] / [`Events::TIMED_OUT`];
/// - after every input call [`emit_next`](Tcb::emit_next) until it returns `None` (or the guest
///   link is full), and call [`on_timeout`](Tcb::on_timeout) at [`poll_at`](Tcb::poll_at);
/// - on [`Events::CLOSED`], drain `emit_next` once more (a RST may be pending), then free.
#[derive(Debug)]
pub struct Tcb<'a> {
    config: TcpConfig,
    state: TcpState,
    local: SocketAddr,
    remote: SocketAddr,
    tx: RingBuffer<'a>,
    rx: RingBuffer<'a>,
    /// SYN-RECEIVED with the host connect still pending: nothing is sent to the guest yet.
    awaiting_host: bool,

    // Send sequence space (RFC 9293 3.3.1). `snd_max` is the highest sequence sent: after a
    // timeout `snd_nxt` rewinds to `snd_una` (go-back-N) while `snd_max` stays.
    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    snd_max: SeqNumber,
    /// Sequence number of the send ring's first byte (ISS + 1 until data is acknowledged).
    tx_base: SeqNumber,
    snd_wnd: u32,
    snd_wnd_max: u32,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// Largest segment the guest takes (its MSS option, or 536), at most ours.
    snd_mss: u16,
    snd_wscale: u8,
    /// Sequence number of our FIN once the host hit EOF.
    fin_seq: Option<SeqNumber>,
    /// Sequence number just past the last urgent byte sent toward the guest.
    snd_up: Option<SeqNumber>,

    // Receive sequence space.
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Right edge of the window we last advertised (never moved back, RFC 9293 3.8.6.2.2).
    rcv_adv: SeqNumber,
    rcv_wscale: u8,
    ws_ok: bool,
    guest_fin: bool,
    /// Sequence number just past the last urgent byte from the guest.
    rcv_up: Option<SeqNumber>,
    ooo: Assembler<RX_HOLES>,

    sack_ok: bool,
    ts_ok: bool,
    ts_recent: u32,
    ts_offset: u32,

    // Acknowledgments we owe.
    ack_now: bool,
    delack_at: Option<Instant>,
    unacked_rx: usize,
    rx_mss_est: usize,

    // Reliability and congestion control.
    rtt: RttEstimator,
    rtt_probe: Option<(SeqNumber, Instant)>,
    backoff: u8,
    retries: u8,
    cwnd: u32,
    ssthresh: u32,
    dupacks: u8,
    recovery: Option<SeqNumber>,
    /// SND.MAX when loss was last detected (RFC 6582 `recover`): duplicate ACKs below it come
    /// from our own repairs and must not start another fast retransmit.
    recover: SeqNumber,
    rtx_next: SeqNumber,
    rtx_credit: u8,
    scoreboard: Assembler<SCOREBOARD>,
    /// Congestion state before the first timeout of an episode and the TSval of its
    /// retransmission, to undo a spurious timeout (RFC 3522 detection, RFC 4015 response).
    undo: Option<(u32, u32, u32)>,

    // Timers.
    rtx_at: Option<Instant>,
    persist_at: Option<Instant>,
    persist_backoff: u8,
    /// The persist timer fired on a silly-window-blocked send: the next data segment goes out
    /// even if small.
    sws_override: bool,
    probes_unanswered: u8,
    probe_now: bool,
    /// Handshake deadline, or the end of TIME_WAIT.
    close_at: Option<Instant>,
    last_rx: Instant,
    last_tx: Instant,
    keepalive_probes: u8,

    pending_rst: Option<(SeqNumber, Option<SeqNumber>)>,
    challenge_window: (Instant, u16),
    counters: TcpCounters,
}

/// How much longer the IPv6 header is than the IPv4 one without options.
const IPV6_EXTRA_HEADER: usize = 20;

impl<'a> Tcb<'a> {
    fn blank(
        config: TcpConfig,
        buffers: TcpBuffers<'a>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        iss: SeqNumber,
        now: Instant,
    ) -> Self {
        let (local, remote) = (local.into(), remote.into());
        // `config.mtu` is the link's; over IPv6 the network header is 20 bytes longer, and so
        // the segments (and the MSS we advertise) 20 bytes shorter.
        let mut config = config;
        if local.is_ipv6() {
            config.mtu = config.mtu.saturating_sub(IPV6_EXTRA_HEADER);
        }
        let rx = RingBuffer::new(buffers.recv);
        let mss = u32::from(config.mss());
        let rtt = RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto);
        Tcb {
            config,
            state: TcpState::Closed,
            local,
            remote,
            tx: RingBuffer::new(buffers.send),
            rcv_wscale: if config.window_scaling { window_shift_for(rx.capacity()) } else { 0 },
            rx,
            awaiting_host: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            tx_base: iss + 1,
            snd_wnd: 0,
            snd_wnd_max: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_mss: DEFAULT_MSS.min(config.mss()),
            snd_wscale: 0,
            fin_seq: None,
            snd_up: None,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_adv: SeqNumber(0),
            ws_ok: false,
            guest_fin: false,
            rcv_up: None,
            ooo: Assembler::default(),
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            // RFC 7323 5.4 / RFC 9293: a per-connection offset so TSval does not reveal uptime.
            ts_offset: iss.0.rotate_left(13) ^ 0x5bd1_e995,
            ack_now: false,
            delack_at: None,
            unacked_rx: 0,
            rx_mss_est: usize::from(DEFAULT_MSS.min(config.mss())),
            rtt,
            rtt_probe: None,
            backoff: 0,
            retries: 0,
            // RFC 5681 3.1 with RFC 6928's initial window.
            cwnd: (u32::from(config.initial_window.max(1)) * mss).min(CWND_MAX),
            ssthresh: CWND_MAX,
            dupacks: 0,
            recovery: None,
            recover: iss,
            rtx_next: iss,
            rtx_credit: 0,
            scoreboard: Assembler::default(),
            undo: None,
            rtx_at: None,
            persist_at: None,
            persist_backoff: 0,
            sws_override: false,
            probes_unanswered: 0,
            probe_now: false,
            close_at: None,
            last_rx: now,
            last_tx: now,
            keepalive_probes: 0,
            pending_rst: None,
            challenge_window: (now, 0),
            counters: TcpCounters::default(),
        }
    }

    /// A TCB for the guest's connection request `syn` (see [`super::is_connection_request`]),
    /// from `remote` (the guest) to `local` (the address it dialled, which we impersonate).
    ///
    /// The TCB waits in SYN-RECEIVED, sending nothing, until the glue's host connect completes
    /// ([`host_connected`](Self::host_connected)) or fails ([`host_refused`](Self::host_refused));
    /// retransmitted SYNs meanwhile are absorbed. `iss` is our initial sequence number (RFC 6528:
    /// the glue derives it from a keyed hash of the four-tuple and a clock).
    pub fn accept(
        config: TcpConfig,
        buffers: TcpBuffers<'a>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        syn: &TcpRepr,
        iss: SeqNumber,
        now: Instant,
    ) -> Self {
        let mut t = Tcb::blank(config, buffers, local, remote, iss, now);
        t.state = TcpState::SynReceived;
        t.awaiting_host = true;
        t.take_syn(syn);
        t.close_at = Some(now + config.connect_timeout);
        t
    }

    /// A TCB that opens a connection toward the guest at `remote` from `local` (port forwarding):
    /// the first [`emit_next`](Self::emit_next) writes our SYN.
    pub fn connect(
        config: TcpConfig,
        buffers: TcpBuffers<'a>,
        local: impl Into<SocketAddr>,
        remote: impl Into<SocketAddr>,
        iss: SeqNumber,
        now: Instant,
    ) -> Self {
        let mut t = Tcb::blank(config, buffers, local, remote, iss, now);
        t.state = TcpState::SynSent;
        t.close_at = Some(now + config.handshake_timeout);
        t
    }

    /// In TIME_WAIT with nothing left in either buffer, hands the buffers back for another
    /// connection: from here on the TCB only answers a retransmitted FIN (with an ACK and a zero
    /// window), which needs none. `None` in any other case, or when already released.
    pub fn release_buffers(&mut self) -> Option<TcpBuffers<'a>> {
        if self.state != TcpState::TimeWait || !self.tx.is_empty() || !self.rx.is_empty() || self.rx.capacity() == 0 {
            return None;
        }
        let tx = core::mem::replace(&mut self.tx, RingBuffer::new(managed::ManagedSlice::Borrowed(&mut [])));
        let rx = core::mem::replace(&mut self.rx, RingBuffer::new(managed::ManagedSlice::Borrowed(&mut [])));
        self.ooo = Assembler::default();
        // No room any more: the right edge we advertised comes back to RCV.NXT (the guest sent
        // its FIN; nothing more may come).
        self.rcv_adv = self.rcv_nxt;
        Some(TcpBuffers { send: tx.into_storage(), recv: rx.into_storage() })
    }

    /// Gives the buffers back (for pooling).
    pub fn into_buffers(self) -> TcpBuffers<'a> {
        TcpBuffers { send: self.tx.into_storage(), recv: self.rx.into_storage() }
    }

    // ----------------------------------------------------------------------------------------
    // Queries.

    /// The connection state.
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// Whether the TCB waits for the host connect before answering the guest's SYN.
    pub fn is_awaiting_host(&self) -> bool {
        self.awaiting_host && self.state == TcpState::SynReceived
    }

    /// Whether the TCB is closed (free it once [`emit_next`](Self::emit_next) returns `None`).
    pub fn is_closed(&self) -> bool {
        self.state == TcpState::Closed
    }

    /// The address we speak as (source of our segments).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The guest's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Counters.
    pub fn counters(&self) -> &TcpCounters {
        &self.counters
    }

    /// Our MSS toward the guest (what we put in segments' payload, before options).
    pub fn send_mss(&self) -> usize {
        let opts = if self.ts_ok { TS_OVERHEAD } else { 0 };
        usize::from(self.snd_mss).saturating_sub(opts).max(1)
    }

    /// The guest's current window, scaled.
    pub fn send_window(&self) -> u32 {
        self.snd_wnd
    }

    /// The congestion window.
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    /// The current retransmission timeout, without backoff.
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// The smoothed RTT (zero before the first sample).
    pub fn srtt(&self) -> Duration {
        self.rtt.srtt()
    }

    /// Window scale shifts in use: (ours, the guest's); zero when not negotiated.
    pub fn window_shifts(&self) -> (u8, u8) {
        (self.rcv_wscale, self.snd_wscale)
    }

    /// Whether SACK and timestamps were negotiated.
    pub fn options_negotiated(&self) -> (bool, bool) {
        (self.sack_ok, self.ts_ok)
    }

    /// Room in the send ring for more host bytes (read the host socket only while this is
    /// non-zero; zero once the host hit EOF or the connection closed).
    pub fn send_buffer_free(&self) -> usize {
        if self.fin_seq.is_some() || self.state == TcpState::Closed {
            0
        } else {
            self.tx.free()
        }
    }

    /// Host bytes held: sent but not acknowledged, plus not yet sent.
    pub fn send_queue_len(&self) -> usize {
        self.tx.len()
    }

    /// Guest bytes waiting for the host.
    pub fn recv_queue_len(&self) -> usize {
        self.rx.len()
    }

    /// Whether the guest sent FIN (all its bytes are in or through the receive buffer).
    pub fn guest_finished(&self) -> bool {
        self.guest_fin
    }

    /// Whether the host socket's write side should be shut down now: the guest finished and
    /// every byte it sent reached the host.
    pub fn should_shutdown_host_write(&self) -> bool {
        self.guest_fin && self.rx.is_empty()
    }

    // ----------------------------------------------------------------------------------------
    // Host side.

    /// The host connect for the guest's SYN succeeded: the SYN-ACK goes out next.
    pub fn host_connected(&mut self, now: Instant) {
        if self.is_awaiting_host() {
            self.awaiting_host = false;
            self.snd_nxt = self.iss;
            self.close_at = Some(now + self.config.handshake_timeout);
        }
    }

    /// The host refused the connect: the guest gets `RST|ACK, seq 0, ack ISN+1` (RFC 9293
    /// 3.10.7.1 for a SYN we never acknowledged) and the TCB closes.
    pub fn host_refused(&mut self) {
        if self.is_awaiting_host() {
            self.pending_rst = Some((SeqNumber(0), Some(self.rcv_nxt)));
            let mut ev = Events::NONE;
            self.enter_closed(&mut ev);
        }
    }

    /// Closes without sending anything (for example when the glue answers the guest's SYN with
    /// an ICMP unreachable instead).
    pub fn discard(&mut self) {
        self.pending_rst = None;
        let mut ev = Events::NONE;
        self.enter_closed(&mut ev);
    }

    /// Aborts the connection (host reset, resource pressure): a RST goes to the guest when it
    /// knows our sequence numbers (RFC 9293 3.10.4 ABORT), and the TCB closes.
    pub fn abort(&mut self) {
        match self.state {
            TcpState::Closed => return,
            TcpState::SynSent => {}
            TcpState::SynReceived if self.awaiting_host => {
                self.pending_rst = Some((SeqNumber(0), Some(self.rcv_nxt)));
            }
            _ => self.pending_rst = Some((self.snd_max, Some(self.rcv_nxt))),
        }
        let mut ev = Events::NONE;
        self.enter_closed(&mut ev);
    }

    /// The host will send nothing more: our FIN follows the buffered bytes (RFC 9293 3.10.4
    /// CLOSE: ESTABLISHED → FIN-WAIT-1, CLOSE-WAIT → LAST-ACK).
    pub fn host_eof(&mut self) {
        if self.fin_seq.is_some() || self.state == TcpState::Closed {
            return;
        }
        self.fin_seq = Some(self.tx_base + self.tx.len());
        match self.state {
            TcpState::Established => self.state = TcpState::FinWait1,
            TcpState::CloseWait => self.state = TcpState::LastAck,
            _ => {} // SYN states: the transition happens when the handshake completes.
        }
    }

    /// Appends host bytes to the send ring; returns how many fit.
    pub fn enqueue(&mut self, data: &[u8]) -> usize {
        if self.send_buffer_free() == 0 {
            return 0;
        }
        self.tx.enqueue_slice(data)
    }

    /// Lets `fill` read host bytes straight into the send ring's contiguous free space and keeps
    /// what it says it wrote (call again for the part after the wrap).
    pub fn write_send_buffer<F: FnOnce(&mut [u8]) -> usize>(&mut self, fill: F) -> usize {
        if self.send_buffer_free() == 0 {
            return 0;
        }
        self.tx.enqueue_with(fill)
    }

    /// The host sent urgent (out-of-band) data: everything buffered so far is urgent, and
    /// segments toward the guest carry URG up to its end (bounded by the bytes actually held).
    pub fn host_urgent(&mut self) {
        if !self.tx.is_empty() {
            self.snd_up = Some(self.tx_base + self.tx.len());
        }
    }

    /// Guest bytes waiting for the host, the first contiguous run.
    pub fn pending_to_host(&self) -> &[u8] {
        self.rx.front()
    }

    /// Guest bytes waiting for the host, as up to two slices (for a vectored write).
    pub fn pending_to_host_pair(&self) -> (&[u8], &[u8]) {
        self.rx.front_pair()
    }

    /// How many of the bytes waiting for the host are urgent (send them out of band); never more
    /// than are buffered.
    pub fn urgent_to_host(&self) -> usize {
        match self.rcv_up {
            Some(up) => up.saturating_sub(self.rcv_nxt - self.rx.len()).min(self.rx.len()),
            None => 0,
        }
    }

    /// The host took `n` bytes of [`pending_to_host`](Self::pending_to_host); the window reopens
    /// and a window update goes out once it grew enough (RFC 9293 3.8.6.2.2).
    pub fn host_accepted(&mut self, n: usize) {
        let n = self.rx.dequeue(n);
        self.counters.bytes_to_host = self.counters.bytes_to_host.saturating_add(n as u64);
        if let Some(up) = self.rcv_up {
            if up <= self.rcv_nxt - self.rx.len() {
                self.rcv_up = None;
            }
        }
        if n > 0 && self.receiving() && self.window_update_due() {
            self.ack_now = true;
        }
    }

    // ----------------------------------------------------------------------------------------
    // State shared by input, output and timers.

    fn receiving(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2)
    }

    fn sending(&self) -> bool {
        matches!(
            self.state,
            TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::Closing | TcpState::LastAck
        )
    }

    fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.snd_una > f)
    }

    fn ts_val(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// The receive window we could absorb right now.
    fn rx_window(&self) -> usize {
        self.rx.free().min(MAX_WINDOW)
    }

    fn enter_closed(&mut self, ev: &mut Events) {
        self.state = TcpState::Closed;
        self.awaiting_host = false;
        self.rtx_at = None;
        self.persist_at = None;
        self.delack_at = None;
        self.close_at = None;
        self.ack_now = false;
        self.probe_now = false;
        *ev |= Events::CLOSED;
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = TcpState::TimeWait;
        self.close_at = Some(now + self.config.time_wait);
        self.rtx_at = None;
        self.persist_at = None;
    }

    fn enter_established(&mut self, ev: &mut Events) {
        self.state = if self.fin_seq.is_some() { TcpState::FinWait1 } else { TcpState::Established };
        self.close_at = None;
        self.backoff = 0;
        // Initial window in units of the now-known sender MSS (RFC 5681 3.1, RFC 6928).
        self.cwnd = (u32::from(self.config.initial_window.max(1)) * self.send_mss() as u32).min(CWND_MAX);
        *ev |= Events::ESTABLISHED;
    }

    // ----------------------------------------------------------------------------------------
    // Test support.

    /// A one-line dump of the sequence state (tests).
    #[cfg(test)]
    pub(crate) fn summary(&self) -> std::string::String {
        std::format!(
            concat!(
                "{} una={} nxt={} max={} base={} fin={:?} tx={} wnd={} cwnd={} rcv_nxt={} rx={} ",
                "rtx={:?} persist={:?} close={:?} ack_now={} delack={:?} rec={:?}"
            ),
            self.state,
            self.snd_una.0,
            self.snd_nxt.0,
            self.snd_max.0,
            self.tx_base.0,
            self.fin_seq.map(|f| f.0),
            self.tx.len(),
            self.snd_wnd,
            self.cwnd,
            self.rcv_nxt.0,
            self.rx.len(),
            self.rtx_at,
            self.persist_at,
            self.close_at,
            self.ack_now,
            self.delack_at,
            self.recovery.map(|r| r.0)
        )
    }

    /// Checks the internal invariants (used by the tests and property tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        assert!(self.snd_una <= self.snd_nxt, "snd_una {:?} > snd_nxt {:?}", self.snd_una, self.snd_nxt);
        assert!(self.snd_nxt <= self.snd_max, "snd_nxt > snd_max");
        assert!(self.tx.len() <= self.tx.capacity());
        assert!(self.rx.len() <= self.rx.capacity());
        assert!(self.window_to_advertise() <= self.rx.free(), "advertising more than free space");
        assert!(self.rcv_adv <= self.rcv_nxt + self.rx.free(), "advertised edge beyond buffer");
        assert!(self.ooo.highest() as usize <= self.rx.free(), "out-of-order data beyond the buffer");
        assert!(self.urgent_to_host() <= self.rx.len());
        assert!(self.snd_max.saturating_sub(self.snd_una) <= self.tx.len() + 2, "in flight beyond buffer");
        assert!(self.cwnd <= CWND_MAX);
    }
}
