//! The TCP control block: one connection between the guest and us (RFC 9293).

use super::assembler::Assembler;
use super::buffer::RingBuffer;
use super::rtt::RttEstimator;
use super::{Events, TcpBuffers, TcpConfig, TcpCounters, TcpState, DEFAULT_MSS, MAX_WINDOW_SHIFT, MIN_MSS};
use crate::offload::GuestOffload;
use crate::time::{earliest, Instant};
use crate::wire::tcp::HEADER_LEN;
use crate::wire::{SeqNumber, TcpControl, TcpPacket, TcpRepr};
use core::net::SocketAddrV4;
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
/// Largest TCP segment (header and payload) one IPv4 datagram can carry: the bound of a
/// super-frame.
const MAX_SUPER_PAYLOAD: usize = 65535 - 20;

/// A segment [`Tcb::emit_next_offloaded`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Emitted {
    /// Bytes of TCP header and payload.
    pub len: usize,
    /// When the payload is longer than one segment may be: the payload bytes per segment when
    /// the link splits it; 0 otherwise.
    pub gso_size: u16,
    /// The checksum field holds only the pseudo-header sum; the link must finish it.
    pub checksum_partial: bool,
    /// How many segments the link makes of it (1 unless it is split at `gso_size`).
    pub segments: u16,
}

impl Emitted {
    /// A segment with a complete checksum that the link passes on as it is.
    fn plain(len: usize) -> Emitted {
        Emitted { len, gso_size: 0, checksum_partial: false, segments: 1 }
    }
}

/// `a - b` as a length, zero when `a` is not after `b`.
fn seq_sub(a: SeqNumber, b: SeqNumber) -> usize {
    let d = a.diff(b);
    if d > 0 {
        d as usize
    } else {
        0
    }
}

/// `a - n` (sequence numbers wrap).
fn seq_back(a: SeqNumber, n: usize) -> SeqNumber {
    SeqNumber(a.0.wrapping_sub(n as u32))
}

fn seq_max(a: SeqNumber, b: SeqNumber) -> SeqNumber {
    if a.diff(b) >= 0 {
        a
    } else {
        b
    }
}

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
    local: SocketAddrV4,
    remote: SocketAddrV4,
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

impl<'a> Tcb<'a> {
    fn blank(
        config: TcpConfig,
        buffers: TcpBuffers<'a>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNumber,
        now: Instant,
    ) -> Self {
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
        local: SocketAddrV4,
        remote: SocketAddrV4,
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
        local: SocketAddrV4,
        remote: SocketAddrV4,
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

    /// Reads the peer's SYN: its ISN and the options it offers (RFC 9293 3.7.1, RFC 7323, RFC
    /// 2018). Options are used only when both sides offer them.
    fn take_syn(&mut self, syn: &TcpRepr) {
        self.irs = syn.seq_number;
        self.rcv_nxt = syn.seq_number + 1;
        self.rcv_adv = self.rcv_nxt;
        let ours = self.config.mss();
        self.snd_mss = syn.max_seg_size.unwrap_or(DEFAULT_MSS).clamp(MIN_MSS.min(ours), ours);
        self.ws_ok = self.config.window_scaling && syn.window_scale.is_some();
        if self.ws_ok {
            self.snd_wscale = syn.window_scale.unwrap_or(0).min(MAX_WINDOW_SHIFT);
            self.rcv_wscale = window_shift_for(self.rx.capacity());
        } else {
            self.snd_wscale = 0;
            self.rcv_wscale = 0;
        }
        self.sack_ok = self.config.sack && syn.sack_permitted;
        match (self.config.timestamps, syn.timestamp) {
            (true, Some((tsval, _))) => {
                self.ts_ok = true;
                self.ts_recent = tsval;
            }
            _ => self.ts_ok = false,
        }
        // The window in a SYN is never scaled (RFC 7323 2.2).
        self.snd_wnd = u32::from(syn.window_len);
        self.snd_wnd_max = self.snd_wnd;
        self.snd_wl1 = syn.seq_number;
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
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The guest's address.
    pub fn remote(&self) -> SocketAddrV4 {
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
            Some(up) => seq_sub(up, seq_back(self.rcv_nxt, self.rx.len())).min(self.rx.len()),
            None => 0,
        }
    }

    /// The host took `n` bytes of [`pending_to_host`](Self::pending_to_host); the window reopens
    /// and a window update goes out once it grew enough (RFC 9293 3.8.6.2.2).
    pub fn host_accepted(&mut self, n: usize) {
        let n = self.rx.dequeue(n);
        self.counters.bytes_to_host = self.counters.bytes_to_host.saturating_add(n as u64);
        if let Some(up) = self.rcv_up {
            if up.diff(seq_back(self.rcv_nxt, self.rx.len())) <= 0 {
                self.rcv_up = None;
            }
        }
        if n > 0 && self.receiving() && self.window_update_due() {
            self.ack_now = true;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Helpers.

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
        self.fin_seq.is_some_and(|f| self.snd_una.diff(f) > 0)
    }

    fn ts_val(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// The receive window we could absorb right now.
    fn rx_window(&self) -> usize {
        self.rx.free().min(MAX_WINDOW)
    }

    /// Growth of the right edge worth announcing: min(half the buffer, one MSS) (RFC 9293
    /// 3.8.6.2.2 receiver-side silly window avoidance).
    fn sws_threshold(&self) -> usize {
        (self.rx.capacity() / 2).min(usize::from(self.config.mss())).max(1)
    }

    /// The window to put in the next segment: the real free space rounded down to the scale,
    /// but small growths of the right edge are held back. Never more than we can absorb.
    fn window_to_advertise(&self) -> usize {
        let s = self.rcv_wscale;
        let real = (self.rx_window() >> s).min(65535) << s;
        let growth = (self.rcv_nxt + real).diff(self.rcv_adv);
        if growth > 0 && (growth as usize) < self.sws_threshold() {
            seq_sub(self.rcv_adv, self.rcv_nxt).min(real)
        } else {
            real
        }
    }

    fn window_update_due(&self) -> bool {
        let s = self.rcv_wscale;
        let real = (self.rx_window() >> s).min(65535) << s;
        let growth = (self.rcv_nxt + real).diff(self.rcv_adv);
        growth > 0 && growth as usize >= self.sws_threshold()
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

    /// Owes an ACK unless this second's budget is spent. Used for challenge ACKs (RFC 5961 7)
    /// and for answers to out-of-window segments without payload: two stacks that each find the
    /// other's ACKs unacceptable would otherwise answer each other forever.
    fn rate_limited_ack(&mut self, now: Instant) -> bool {
        let (start, count) = self.challenge_window;
        let (start, count) = if now - start >= Duration::from_secs(1) { (now, 0) } else { (start, count) };
        let allowed = count < self.config.challenge_ack_limit;
        if allowed {
            self.ack_now = true;
        }
        self.challenge_window = (start, count + u16::from(allowed));
        allowed
    }

    fn challenge_ack(&mut self, now: Instant) {
        if self.rate_limited_ack(now) {
            self.counters.challenge_acks = self.counters.challenge_acks.saturating_add(1);
        }
    }

    /// An ACK answering a segment we drop: always for one carrying data or FIN (the guest needs
    /// it to recover), rate-limited for empty ones.
    fn ack_dropped(&mut self, now: Instant, seg: &TcpRepr) {
        if seg.segment_len() > 0 {
            self.ack_now = true;
        } else {
            self.rate_limited_ack(now);
        }
    }

    fn sample_rtt(&mut self, now: Instant, ack: SeqNumber, seg: &TcpRepr) {
        if self.ts_ok {
            // RFC 7323 4.1: the echoed timestamp times every acknowledged segment, even a
            // retransmitted one (no Karn ambiguity).
            if let Some((_, ecr)) = seg.timestamp {
                let ms = self.ts_val(now).wrapping_sub(ecr);
                if u64::from(ms) <= self.config.max_rto.as_millis() as u64 {
                    self.rtt.sample(Duration::from_millis(u64::from(ms)));
                }
            }
        } else if let Some((end, at)) = self.rtt_probe {
            if ack.diff(end) >= 0 {
                self.rtt.sample(now - at);
                self.rtt_probe = None;
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Input.

    /// Processes one segment from the guest (already demultiplexed to this TCB; checksum
    /// verified).
    ///
    /// In-order payload is first offered to `to_host` (write it to the host socket and return how
    /// many bytes the host took), but only when nothing older waits in the receive buffer; what
    /// the host does not take is buffered and later offered through
    /// [`pending_to_host`](Self::pending_to_host). Any input is handled without panicking.
    pub fn on_segment<F: FnMut(&[u8]) -> usize>(&mut self, now: Instant, seg: &TcpRepr, mut to_host: F) -> Events {
        self.counters.segments_in = self.counters.segments_in.saturating_add(1);
        let mut ev = Events::NONE;
        match self.state {
            TcpState::Closed => self.counters.dropped = self.counters.dropped.saturating_add(1),
            TcpState::SynSent => self.input_syn_sent(now, seg, &mut ev),
            TcpState::SynReceived if self.awaiting_host => self.input_awaiting_host(seg, &mut ev),
            _ => self.input_synchronized(now, seg, &mut to_host, &mut ev),
        }
        self.reconcile_timers(now);
        ev
    }

    /// SYN-SENT (RFC 9293 3.10.7.3).
    fn input_syn_sent(&mut self, now: Instant, seg: &TcpRepr, ev: &mut Events) {
        let ack_ok = seg.ack_number.map(|a| a.diff(self.iss) > 0 && a.diff(self.snd_max) <= 0);
        if ack_ok == Some(false) {
            if seg.control != TcpControl::Rst {
                self.pending_rst = seg.ack_number.map(|a| (a, None));
            }
            self.counters.dropped = self.counters.dropped.saturating_add(1);
            return;
        }
        match seg.control {
            TcpControl::Rst => {
                if ack_ok == Some(true) {
                    self.enter_closed(ev);
                    *ev |= Events::REFUSED;
                } else {
                    self.counters.dropped = self.counters.dropped.saturating_add(1);
                }
            }
            TcpControl::Syn => {
                self.take_syn(seg);
                self.last_rx = now;
                match seg.ack_number {
                    Some(ack) => {
                        self.sample_rtt(now, ack, seg);
                        self.snd_una = ack;
                        if self.snd_nxt.diff(ack) < 0 {
                            self.snd_nxt = ack;
                        }
                        self.snd_wl1 = seg.seq_number;
                        self.snd_wl2 = ack;
                        self.rtx_at = None;
                        self.ack_now = true;
                        self.enter_established(ev);
                    }
                    None => {
                        // Simultaneous open (RFC 9293 3.5 figure 8): answer with SYN,ACK.
                        self.state = TcpState::SynReceived;
                        self.snd_nxt = self.iss;
                    }
                }
            }
            _ => self.counters.dropped = self.counters.dropped.saturating_add(1),
        }
    }

    /// SYN-RECEIVED while the host connect is pending: absorb the guest's retransmitted SYNs
    /// (answering them would promise a connection the host may refuse).
    fn input_awaiting_host(&mut self, seg: &TcpRepr, ev: &mut Events) {
        match seg.control {
            TcpControl::Syn if seg.ack_number.is_none() => {
                if seg.seq_number != self.irs {
                    // The guest gave up on the old ISN and retries the same four-tuple afresh.
                    self.take_syn(seg);
                }
                self.counters.syns_absorbed = self.counters.syns_absorbed.saturating_add(1);
            }
            TcpControl::Rst if seg.seq_number == self.rcv_nxt => {
                self.enter_closed(ev);
                *ev |= Events::RESET;
            }
            _ => self.counters.dropped = self.counters.dropped.saturating_add(1),
        }
    }

    /// RFC 9293 3.10.7.4 acceptability test, lenient in one way: a segment starting exactly at
    /// `RCV.NXT` is let through a zero window so its ACK, RST and FIN count (the data is trimmed).
    fn acceptable(&self, seq: SeqNumber, seg_len: usize) -> bool {
        let wnd = self.rx_window();
        let off = seq.diff(self.rcv_nxt);
        let in_wnd = |o: i64| o >= 0 && (o as u64) < wnd as u64;
        if off == 0 {
            return true;
        }
        if seg_len == 0 {
            in_wnd(i64::from(off))
        } else {
            in_wnd(i64::from(off)) || in_wnd(i64::from(off) + seg_len as i64 - 1)
        }
    }

    fn input_synchronized<F: FnMut(&[u8]) -> usize>(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        to_host: &mut F,
        ev: &mut Events,
    ) {
        let seq = seg.seq_number;
        // TIME-WAIT: a new SYN above the old sequence space reopens the four-tuple (RFC 6191).
        if self.state == TcpState::TimeWait && super::is_connection_request(seg) && seq.diff(self.rcv_nxt) > 0 {
            let ts_newer = match (self.ts_ok, seg.timestamp) {
                (true, Some((v, _))) => (v.wrapping_sub(self.ts_recent) as i32) > 0,
                _ => true,
            };
            if ts_newer {
                *ev |= Events::REOPEN;
                return;
            }
        }
        // Our SYN-ACK was lost: the guest repeats its SYN.
        if self.state == TcpState::SynReceived && seg.control == TcpControl::Syn && seg.ack_number.is_none() {
            if seq == self.irs {
                self.snd_nxt = self.iss;
                self.counters.syns_absorbed = self.counters.syns_absorbed.saturating_add(1);
            } else {
                self.counters.dropped = self.counters.dropped.saturating_add(1);
            }
            return;
        }
        // PAWS (RFC 7323 5.3): an older timestamp is an old duplicate.
        if self.ts_ok && seg.control != TcpControl::Rst {
            if let Some((tsval, _)) = seg.timestamp {
                if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.counters.dropped = self.counters.dropped.saturating_add(1);
                    self.ack_dropped(now, seg);
                    return;
                }
            }
        }
        if !self.acceptable(seq, seg.segment_len()) {
            self.counters.dropped = self.counters.dropped.saturating_add(1);
            if seg.control != TcpControl::Rst {
                self.ack_dropped(now, seg);
            }
            if self.state == TcpState::TimeWait && seg.control == TcpControl::Fin {
                // The guest repeats its FIN: our last ACK was lost; restart the wait (RFC 9293
                // 3.10.7.4, TIME-WAIT).
                self.close_at = Some(now + self.config.time_wait);
            }
            return;
        }
        // RFC 5961 3.2: only an exact RST resets; an in-window one draws a challenge ACK.
        if seg.control == TcpControl::Rst {
            if seq == self.rcv_nxt {
                self.enter_closed(ev);
                *ev |= Events::RESET;
            } else {
                self.challenge_ack(now);
            }
            return;
        }
        // RFC 5961 4.2: a SYN in a synchronized state draws a challenge ACK.
        if seg.control == TcpControl::Syn {
            self.challenge_ack(now);
            return;
        }
        let Some(ack) = seg.ack_number else {
            self.counters.dropped = self.counters.dropped.saturating_add(1);
            return;
        };
        if self.ts_ok && seq.diff(self.rcv_nxt) <= 0 {
            if let Some((tsval, _)) = seg.timestamp {
                self.ts_recent = tsval;
            }
        }
        self.last_rx = now;
        self.keepalive_probes = 0;
        self.probes_unanswered = 0;

        if self.state == TcpState::SynReceived {
            if ack.diff(self.snd_una) > 0 && ack.diff(self.snd_max) <= 0 {
                self.snd_wnd = u32::from(seg.window_len) << self.snd_wscale;
                self.snd_wnd_max = self.snd_wnd_max.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.enter_established(ev);
            } else {
                self.pending_rst = Some((ack, None));
                self.counters.dropped = self.counters.dropped.saturating_add(1);
                return;
            }
        }

        if !self.process_ack(now, seg, ack, ev) {
            return;
        }
        if self.state == TcpState::Closed {
            return;
        }

        self.process_urgent(seg);
        let took_fin_position = self.process_data(now, seg, to_host, ev);
        if seg.control == TcpControl::Fin {
            self.process_fin(now, took_fin_position, ev);
        }
    }

    /// ACK processing (RFC 9293 3.10.7.4 fifth check, RFC 5681, RFC 6582, RFC 5961 5.2).
    /// Returns false when the segment must be dropped.
    fn process_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber, ev: &mut Events) -> bool {
        if ack.diff(self.snd_max) > 0 {
            // Acknowledges something never sent: answer with an ACK and drop.
            self.ack_now = true;
            self.counters.dropped = self.counters.dropped.saturating_add(1);
            return false;
        }
        let max_back = self.snd_wnd_max.max(u32::from(self.snd_mss)).min(i32::MAX as u32) as i32;
        if ack.diff(self.snd_una) < -max_back {
            self.challenge_ack(now);
            self.counters.dropped = self.counters.dropped.saturating_add(1);
            return false;
        }
        let scaled_wnd = u32::from(seg.window_len) << self.snd_wscale;
        // SACK blocks first, so a third duplicate ACK sizes its repair with them (RFC 6675).
        // Offsets are from the old SND.UNA; acknowledging new data shifts them.
        if self.sack_ok {
            for &(l, r) in seg.sack_ranges.iter().flatten() {
                let (l, r) = (SeqNumber(l), SeqNumber(r));
                let l = seq_max(l, self.snd_una);
                if r.diff(l) > 0 && r.diff(self.snd_max) <= 0 {
                    let _ = self.scoreboard.add(seq_sub(l, self.snd_una) as u32, seq_sub(r, self.snd_una) as u32);
                }
            }
        }
        if ack.diff(self.snd_una) > 0 {
            self.ack_new_data(now, seg, ack, ev);
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && seg.control != TcpControl::Fin
            && self.snd_max != self.snd_una
            && scaled_wnd == self.snd_wnd
        {
            self.dup_ack();
        }
        // Window update only from a newer segment (RFC 9293 3.10.7.4, SND.WL1/SND.WL2).
        if self.snd_wl1.diff(seg.seq_number) < 0 || (self.snd_wl1 == seg.seq_number && self.snd_wl2.diff(ack) <= 0) {
            self.snd_wnd = scaled_wnd;
            self.snd_wnd_max = self.snd_wnd_max.max(scaled_wnd);
            self.snd_wl1 = seg.seq_number;
            self.snd_wl2 = ack;
            if scaled_wnd > 0 {
                self.persist_backoff = 0;
            }
        }
        if self.fin_acked() {
            match self.state {
                TcpState::FinWait1 => self.state = TcpState::FinWait2,
                TcpState::Closing => self.enter_time_wait(now),
                TcpState::LastAck => {
                    self.enter_closed(ev);
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    fn ack_new_data(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber, ev: &mut Events) {
        let acked = seq_sub(ack, self.snd_una);
        let data_acked = seq_sub(ack, self.tx_base).min(self.tx.len());
        if data_acked > 0 {
            self.tx.dequeue(data_acked);
            self.tx_base = self.tx_base + data_acked;
            self.tx.rewind_if_empty();
            self.counters.bytes_to_guest = self.counters.bytes_to_guest.saturating_add(data_acked as u64);
            *ev |= Events::SEND_SPACE;
        }
        self.sample_rtt(now, ack, seg);
        let mss = self.send_mss() as u32;
        let acked32 = acked.min(CWND_MAX as usize) as u32;
        // A guest that merely delayed its ACK past our (low) RTO echoes the original
        // transmission's timestamp: the timeout was spurious, so restore the window and carry on
        // after the highest byte sent instead of resending what already arrived.
        let spurious = match (self.undo.take(), seg.timestamp) {
            (Some((cwnd, ssthresh, rtx_ts)), Some((_, ecr))) if (ecr.wrapping_sub(rtx_ts) as i32) < 0 => {
                self.cwnd = cwnd;
                self.ssthresh = ssthresh;
                self.snd_nxt = self.snd_max;
                self.counters.spurious_timeouts = self.counters.spurious_timeouts.saturating_add(1);
                true
            }
            _ => false,
        };
        match self.recovery {
            _ if spurious => {}
            Some(recover) if ack.diff(recover) >= 0 => {
                // Full acknowledgment: leave recovery (RFC 6582 3.2 step 3).
                let flight = seq_sub(self.snd_max, ack) as u32;
                self.cwnd = self.ssthresh.min(flight.saturating_add(mss)).max(mss);
                self.recovery = None;
                self.rtx_credit = 0;
            }
            Some(_) => {
                // Partial acknowledgment: repair the next hole, deflate (RFC 6582 3.2 step 4).
                self.cwnd = self.cwnd.saturating_sub(acked32).saturating_add(mss).max(mss);
                self.rtx_next = ack;
                self.rtx_credit = self.rtx_credit.saturating_add(1);
            }
            None if self.cwnd < self.ssthresh => {
                // Slow start (RFC 5681 3.1, byte counting limited to one SMSS per ACK).
                self.cwnd = self.cwnd.saturating_add(acked32.min(mss));
            }
            None => {
                // Congestion avoidance: about one SMSS per RTT.
                self.cwnd = self.cwnd.saturating_add((mss * mss / self.cwnd.max(1)).max(1));
            }
        }
        self.cwnd = self.cwnd.min(CWND_MAX);
        self.snd_una = ack;
        if self.snd_nxt.diff(ack) < 0 {
            self.snd_nxt = ack;
        }
        if self.rtx_next.diff(ack) < 0 {
            self.rtx_next = ack;
        }
        if let Some(up) = self.snd_up {
            if up.diff(ack) <= 0 {
                self.snd_up = None;
            }
        }
        self.scoreboard.shift(acked.min(u32::MAX as usize) as u32);
        self.dupacks = 0;
        self.backoff = 0;
        self.retries = 0;
        // RFC 6298 5.2 and 5.3: stop the timer when all is acknowledged, else restart it.
        self.rtx_at = (self.snd_max != self.snd_una).then(|| now + self.rtt.rto());
    }

    fn dup_ack(&mut self) {
        self.counters.dup_acks = self.counters.dup_acks.saturating_add(1);
        let mss = self.send_mss() as u32;
        if self.recovery.is_some() {
            // Each further duplicate means a segment left the network (RFC 6582 3.2 step 3,
            // RFC 6675's pipe in spirit): inflate and allow one more hole repair.
            self.cwnd = self.cwnd.saturating_add(mss).min(CWND_MAX);
            self.rtx_credit = self.rtx_credit.saturating_add(1).min(8);
            return;
        }
        self.dupacks = self.dupacks.saturating_add(1);
        if self.dupacks == 3 && self.snd_una.diff(self.recover) >= 0 {
            // Fast retransmit (RFC 5681 3.2): halve, retransmit the first unacknowledged segment.
            let flight = seq_sub(self.snd_max, self.snd_una) as u32;
            self.ssthresh = (flight / 2).max(2 * mss);
            self.cwnd = self.ssthresh.saturating_add(3 * mss).min(CWND_MAX);
            self.recovery = Some(self.snd_max);
            self.recover = self.snd_max;
            self.rtx_next = self.snd_una;
            // With SACK, the holes below the highest SACKed byte count as lost and the bytes
            // SACKed as delivered (RFC 6675 pipe): the reduced window covers repairing several
            // holes at once. Without SACK, one segment (RFC 6582).
            let above = seq_sub(self.snd_max, self.snd_una + self.scoreboard.highest() as usize) as u32;
            self.rtx_credit = if self.scoreboard.is_empty() {
                1
            } else {
                (self.ssthresh.saturating_sub(above) / mss).clamp(1, 8) as u8
            };
            self.rtt_probe = None;
            self.counters.fast_retransmits = self.counters.fast_retransmits.saturating_add(1);
        }
    }

    /// URG from the guest (RFC 9293 3.8.5, RFC 6093): remember where the urgent bytes end, but
    /// only inside what the receive buffer can hold (the old slirp trusted the pointer).
    fn process_urgent(&mut self, seg: &TcpRepr) {
        let Some(up) = seg.urgent_at else { return };
        if up == 0 || !self.receiving() {
            return;
        }
        let up_seq = seg.seq_number + usize::from(up);
        let consumed = seq_back(self.rcv_nxt, self.rx.len());
        let ahead = up_seq.diff(self.rcv_nxt);
        if up_seq.diff(consumed) > 0 && i64::from(ahead) <= self.rx_window() as i64 {
            self.rcv_up = Some(match self.rcv_up {
                Some(old) => seq_max(old, up_seq),
                None => up_seq,
            });
        }
    }

    /// Payload (RFC 9293 3.10.7.4 seventh check). Returns whether every payload byte before the
    /// segment's FIN is now received (so the FIN is in order).
    fn process_data<F: FnMut(&[u8]) -> usize>(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        to_host: &mut F,
        ev: &mut Events,
    ) -> bool {
        let payload = seg.payload;
        let seq = seg.seq_number;
        if payload.is_empty() {
            return seq == self.rcv_nxt;
        }
        if !self.receiving() {
            // After the guest's FIN no data can be valid; TIME-WAIT and friends just ACK.
            self.ack_now = true;
            return false;
        }
        let skip = seq_sub(self.rcv_nxt, seq);
        if skip >= payload.len() {
            // Entirely old: a retransmission whose ACK was lost; ACK at once (RFC 5681 4.2).
            self.ack_now = true;
            return seq + payload.len() == self.rcv_nxt;
        }
        let data = &payload[skip..];
        let offset = seq_sub(seq, self.rcv_nxt);
        let room = self.rx_window().saturating_sub(offset);
        let take = data.len().min(room);
        let truncated = take < data.len();
        let mut data = &data[..take];
        if truncated {
            self.ack_now = true;
        }
        if data.is_empty() {
            return false;
        }
        self.rx_mss_est = self.rx_mss_est.max(payload.len()).min(usize::from(self.config.mss()));
        if offset > 0 {
            // Out of order: keep it where it belongs and ACK at once with SACK (RFC 5681 4.2,
            // RFC 2018), unless it would open more holes than we track.
            let (s, e) = (offset as u32, (offset + data.len()) as u32);
            if self.ooo.add(s, e).is_ok() {
                self.rx.write_unallocated(offset, data);
                self.counters.out_of_order = self.counters.out_of_order.saturating_add(1);
            } else {
                self.counters.dropped = self.counters.dropped.saturating_add(1);
            }
            self.ack_now = true;
            return false;
        }
        let had_holes = !self.ooo.is_empty();
        let mut advanced = 0usize;
        if self.rx.is_empty() && self.rcv_up.is_none() {
            // Nothing older waits: hand the bytes to the host without buffering them.
            let n = to_host(data).min(data.len());
            if n > 0 {
                self.rx.skip_empty(n);
                self.ooo.shift(n as u32);
                self.rcv_nxt = self.rcv_nxt + n;
                self.counters.bytes_to_host = self.counters.bytes_to_host.saturating_add(n as u64);
                data = &data[n..];
                advanced += n;
            }
        }
        if !data.is_empty() {
            let n = self.rx.write_unallocated(0, data);
            self.rx.enqueue_unallocated(n);
            self.ooo.shift(n as u32);
            self.rcv_nxt = self.rcv_nxt + n;
            advanced += n;
        }
        let joined = self.ooo.front_len();
        if joined > 0 {
            let n = self.rx.enqueue_unallocated(joined as usize);
            self.ooo.shift(joined);
            self.rcv_nxt = self.rcv_nxt + n;
            advanced += n;
        }
        if !self.rx.is_empty() {
            *ev |= Events::RECV_READY;
        }
        // Delayed ACK (RFC 1122 4.2.3.2, RFC 5681 4.2): at once when a hole was filled, every
        // second full-sized segment, or on PSH once everything reached the host.
        self.unacked_rx = self.unacked_rx.saturating_add(advanced);
        let push_drained = seg.control == TcpControl::Psh && self.rx.is_empty();
        if had_holes || self.unacked_rx >= 2 * self.rx_mss_est || push_drained {
            self.ack_now = true;
        } else {
            match self.config.delayed_ack {
                Some(d) if self.delack_at.is_none() => self.delack_at = Some(now + d),
                Some(_) => {}
                None => self.ack_now = true,
            }
        }
        !truncated && seq + payload.len() == self.rcv_nxt
    }

    /// FIN (RFC 9293 3.10.7.4 eighth check).
    fn process_fin(&mut self, now: Instant, in_order: bool, ev: &mut Events) {
        match self.state {
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 if in_order => {
                self.rcv_nxt = self.rcv_nxt + 1;
                self.guest_fin = true;
                self.ack_now = true;
                self.rcv_adv = seq_max(self.rcv_adv, self.rcv_nxt);
                *ev |= Events::GUEST_FIN;
                match self.state {
                    TcpState::Established => self.state = TcpState::CloseWait,
                    TcpState::FinWait1 if self.fin_acked() => self.enter_time_wait(now),
                    TcpState::FinWait1 => self.state = TcpState::Closing,
                    _ => self.enter_time_wait(now),
                }
            }
            TcpState::TimeWait => {
                self.ack_now = true;
                self.close_at = Some(now + self.config.time_wait);
            }
            TcpState::CloseWait | TcpState::Closing | TcpState::LastAck => self.ack_now = true,
            _ => {}
        }
    }

    // ----------------------------------------------------------------------------------------
    // Timers.

    fn keepalive_at(&self) -> Option<Instant> {
        let k = self.config.keepalive?;
        if !matches!(self.state, TcpState::Established | TcpState::CloseWait | TcpState::FinWait2) {
            return None;
        }
        let probing = k.interval.checked_mul(u32::from(self.keepalive_probes)).unwrap_or(Duration::MAX);
        Some(self.last_rx + k.idle + probing)
    }

    fn idle_at(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout?;
        if self.state == TcpState::Closed {
            return None;
        }
        Some(self.last_rx.max(self.last_tx) + idle)
    }

    /// The next instant [`on_timeout`](Self::on_timeout) must run (`None`: no timer). Segments
    /// that can go out now are not timers: call [`emit_next`](Self::emit_next) after every input.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.state == TcpState::Closed {
            return None;
        }
        let t = earliest(self.rtx_at, self.persist_at);
        let t = earliest(t, self.delack_at);
        let t = earliest(t, self.close_at);
        let t = earliest(t, self.keepalive_at());
        earliest(t, self.idle_at())
    }

    /// Runs the timers due at `now`.
    pub fn on_timeout(&mut self, now: Instant) -> Events {
        let mut ev = Events::NONE;
        if self.state == TcpState::Closed {
            return ev;
        }
        if self.close_at.is_some_and(|t| t <= now) {
            self.close_at = None;
            match self.state {
                TcpState::TimeWait => self.enter_closed(&mut ev),
                TcpState::SynSent => {
                    self.enter_closed(&mut ev);
                    ev |= Events::TIMED_OUT;
                }
                TcpState::SynReceived => {
                    // Host connect or handshake timeout: tell the guest with a reset rather than
                    // leaving it to time out (the old slirp sent one from a blank template).
                    self.abort();
                    ev |= Events::TIMED_OUT | Events::CLOSED;
                }
                _ => {}
            }
            if self.state == TcpState::Closed {
                return ev;
            }
        }
        if self.idle_at().is_some_and(|t| t <= now) || self.keepalive_expired(now) {
            self.abort();
            return Events::TIMED_OUT | Events::CLOSED;
        }
        if self.rtx_at.is_some_and(|t| t <= now) {
            self.retransmit_timeout(now, &mut ev);
            if self.state == TcpState::Closed {
                return ev;
            }
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            // Zero-window probe (RFC 9293 3.8.6.1), backing off like the RTO; a guest that keeps
            // answering is probed forever (RFC 1122 4.2.2.17).
            self.probes_unanswered = self.probes_unanswered.saturating_add(1);
            if self.probes_unanswered > self.config.max_retransmits {
                self.abort();
                return Events::TIMED_OUT | Events::CLOSED;
            }
            if self.snd_wnd > 0 {
                // Silly-window-blocked: send the small segment after all (override timeout).
                self.sws_override = true;
            } else {
                self.probe_now = true;
            }
            self.persist_backoff = self.persist_backoff.saturating_add(1);
            self.persist_at = Some(now + self.rtt.backed_off(self.persist_backoff));
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            self.ack_now = true;
        }
        self.reconcile_timers(now);
        ev
    }

    fn keepalive_expired(&mut self, now: Instant) -> bool {
        let (Some(k), Some(at)) = (self.config.keepalive, self.keepalive_at()) else { return false };
        if at > now {
            return false;
        }
        if self.keepalive_probes >= k.count {
            return true;
        }
        self.keepalive_probes += 1;
        self.probe_now = true;
        false
    }

    fn retransmit_timeout(&mut self, now: Instant, ev: &mut Events) {
        self.rtx_at = None;
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => {
                self.counters.timeouts = self.counters.timeouts.saturating_add(1);
                self.backoff = self.backoff.saturating_add(1).min(32);
                self.rtt_probe = None;
                // Resend SYN or SYN-ACK; the handshake deadline decides when to give up.
                self.snd_nxt = self.iss;
                self.rtx_at = Some(now + self.rto_for_flight());
            }
            TcpState::TimeWait | TcpState::FinWait2 | TcpState::Closed => {}
            _ if self.snd_max != self.snd_una => {
                self.counters.timeouts = self.counters.timeouts.saturating_add(1);
                self.backoff = self.backoff.saturating_add(1).min(32);
                self.rtt_probe = None;
                self.retries = self.retries.saturating_add(1);
                if self.retries > self.config.max_retransmits {
                    self.abort();
                    *ev |= Events::TIMED_OUT | Events::CLOSED;
                    return;
                }
                // RFC 5681 3.1 (equation 4) and RFC 6298 5.4-5.6: collapse to one segment,
                // back off, go back to the first unacknowledged byte.
                if self.ts_ok && self.backoff == 1 {
                    self.undo = Some((self.cwnd, self.ssthresh, self.ts_val(now)));
                }
                let mss = self.send_mss() as u32;
                let flight = seq_sub(self.snd_max, self.snd_una) as u32;
                self.ssthresh = (flight / 2).max(2 * mss);
                self.cwnd = mss;
                self.snd_nxt = self.snd_una;
                self.recover = self.snd_max;
                self.recovery = None;
                self.rtx_credit = 0;
                self.dupacks = 0;
                // The guest may renege on SACKed data (RFC 2018 section 8): start afresh.
                self.scoreboard.clear();
                self.rtx_at = Some(now + self.rto_for_flight());
            }
            _ => {}
        }
    }

    /// The retransmission timeout for what is in flight now. A lone segment is acknowledged by a
    /// guest that delays ACKs (Linux 40 ms, Windows 200 ms) only when its delayed-ACK timer fires,
    /// so it gets [`TcpConfig::lone_segment_allowance`] (RFC 8985's worst-case delayed-ACK
    /// allowance): otherwise every lone response would be sent twice. Several segments in flight are ACKed at once (every second segment), and
    /// keep the low floor that makes recovery fast on a virtual link.
    fn rto_for_flight(&self) -> Duration {
        let rto = self.rtt.backed_off(self.backoff);
        if seq_sub(self.snd_max, self.snd_una) <= self.send_mss() {
            rto.max(self.rtt.srtt() * 2 + self.config.lone_segment_allowance).min(self.config.max_rto)
        } else {
            rto
        }
    }

    /// Keeps the retransmission and persist timers consistent with what is outstanding.
    fn reconcile_timers(&mut self, now: Instant) {
        match self.state {
            TcpState::Closed => {
                self.rtx_at = None;
                self.persist_at = None;
                self.delack_at = None;
                return;
            }
            TcpState::SynSent | TcpState::SynReceived => return,
            TcpState::TimeWait => {
                self.rtx_at = None;
                self.persist_at = None;
                return;
            }
            _ => {}
        }
        let outstanding = self.snd_nxt != self.snd_una;
        let unsent = self.sending() && self.tx.len() > seq_sub(self.snd_nxt, self.tx_base);
        // A window too small for sender-side silly window avoidance blocks us as surely as a
        // zero window: without a timer, a lost window update (or a vanished guest) would stall
        // the connection forever (RFC 9293 3.8.6.2.1's override timeout).
        let sws_blocked =
            self.snd_wnd > 0 && (self.snd_wnd as usize) < self.send_mss() && self.snd_wnd < self.snd_wnd_max / 2;
        if !outstanding && (self.snd_wnd == 0 || sws_blocked) && (unsent || self.snd_max != self.snd_una) {
            // Nothing can go out until the window opens: probe instead of retransmitting.
            self.rtx_at = None;
            if self.persist_at.is_none() {
                self.persist_at = Some(now + self.rtt.backed_off(self.persist_backoff));
            }
        } else {
            self.persist_at = None;
            if self.snd_max == self.snd_una {
                self.rtx_at = None;
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Output.

    fn header_repr(&self, now: Instant, control: TcpControl, seq: SeqNumber) -> TcpRepr<'static> {
        let mut sack_ranges = [None; 3];
        if self.sack_ok {
            for (slot, r) in sack_ranges.iter_mut().zip(self.ooo.sack_ranges()) {
                *slot = r.map(|(s, e)| ((self.rcv_nxt + s as usize).0, (self.rcv_nxt + e as usize).0));
            }
        }
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            control,
            seq_number: seq,
            ack_number: Some(self.rcv_nxt),
            window_len: (self.window_to_advertise() >> self.rcv_wscale).min(65535) as u16,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges,
            timestamp: self.ts_ok.then(|| (self.ts_val(now), self.ts_recent)),
            urgent_at: None,
            payload: &[],
        }
    }

    /// Bookkeeping after a segment carrying our ACK and a window of `adv` bytes went out.
    fn after_ack_sent(&mut self, now: Instant, adv: usize) {
        self.ack_now = false;
        self.delack_at = None;
        self.unacked_rx = 0;
        self.rcv_adv = seq_max(self.rcv_adv, self.rcv_nxt + adv);
        self.last_tx = now;
        self.counters.segments_out = self.counters.segments_out.saturating_add(1);
    }

    /// Writes the next segment for the guest into `buf` (the TCP header with options, payload
    /// copied from the send ring, checksum over the pseudo-header of [`local`](Self::local) →
    /// [`remote`](Self::remote)) and returns its length, or `None` when nothing is due or `buf`
    /// is too small for a header. Payload is sized to fit `buf`; pass MTU-sized buffers.
    pub fn emit_next(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.emit_next_offloaded(now, buf, GuestOffload::default()).map(|e| e.len)
    }

    /// [`emit_next`](Self::emit_next) for a link that finishes checksums and/or segments TCP
    /// super-frames itself (virtio-net offloads): with `offload.checksum`, a data segment carries
    /// only the pseudo-header sum in its checksum field ([`Emitted::checksum_partial`]); with
    /// `offload.segmentation`, one data segment may carry up to `buf`'s room in payload (many
    /// MSS-sized segments' worth, [`Emitted::gso_size`] bytes each when split). Sequence, window,
    /// congestion and retransmission bookkeeping is the same as for that many separate segments.
    pub fn emit_next_offloaded(&mut self, now: Instant, buf: &mut [u8], offload: GuestOffload) -> Option<Emitted> {
        if let Some((seq, ack)) = self.pending_rst {
            let repr = TcpRepr {
                control: TcpControl::Rst,
                ack_number: ack,
                window_len: 0,
                sack_ranges: [None; 3],
                timestamp: None,
                ..self.header_repr(now, TcpControl::Rst, seq)
            };
            let n = repr.buffer_len();
            let out = buf.get_mut(..n)?;
            repr.emit(out, *self.local.ip(), *self.remote.ip());
            self.pending_rst = None;
            self.counters.segments_out = self.counters.segments_out.saturating_add(1);
            return Some(Emitted::plain(n));
        }
        let out = match self.state {
            TcpState::Closed => None,
            TcpState::SynSent if self.snd_nxt == self.iss => self.emit_syn(now, buf, false).map(Emitted::plain),
            TcpState::SynSent => None,
            TcpState::SynReceived if self.awaiting_host => None,
            TcpState::SynReceived if self.snd_nxt == self.iss => self.emit_syn(now, buf, true).map(Emitted::plain),
            _ => self.emit_synchronized(now, buf, offload),
        };
        // Host bytes may have arrived into a zero window since the last input: arm persist.
        self.reconcile_timers(now);
        out
    }

    /// Whether [`emit_next`](Self::emit_next) may have a segment now (never false when it has
    /// one; may be true when sender-side silly window avoidance then holds a small segment back).
    /// Cheap, for a glue that keeps a list of flows with output.
    pub fn has_output(&self, now: Instant) -> bool {
        if self.pending_rst.is_some() {
            return true;
        }
        match self.state {
            TcpState::Closed => false,
            TcpState::SynSent => self.snd_nxt == self.iss,
            TcpState::SynReceived if self.awaiting_host => false,
            TcpState::SynReceived if self.snd_nxt == self.iss => true,
            _ => {
                self.ack_now
                    || self.probe_now
                    || self.delack_at.is_some_and(|t| t <= now)
                    || (self.sending() && (self.recovery.is_some() && self.rtx_credit > 0 || self.has_sendable()))
            }
        }
    }

    fn has_sendable(&self) -> bool {
        let avail = self.tx.len().saturating_sub(seq_sub(self.snd_nxt, self.tx_base));
        if avail == 0 {
            return self.fin_seq.is_some_and(|f| self.snd_nxt.diff(f) <= 0);
        }
        self.snd_wnd.min(self.cwnd) as usize > seq_sub(self.snd_nxt, self.snd_una)
    }

    fn emit_syn(&mut self, now: Instant, buf: &mut [u8], synack: bool) -> Option<usize> {
        let repr = TcpRepr {
            control: TcpControl::Syn,
            ack_number: synack.then_some(self.rcv_nxt),
            // Never scaled in a SYN (RFC 7323 2.2).
            window_len: self.rx_window().min(65535) as u16,
            max_seg_size: Some(self.config.mss()),
            window_scale: if synack {
                self.ws_ok.then_some(self.rcv_wscale)
            } else {
                self.config.window_scaling.then_some(self.rcv_wscale)
            },
            sack_permitted: if synack { self.sack_ok } else { self.config.sack },
            timestamp: if synack {
                self.ts_ok.then(|| (self.ts_val(now), self.ts_recent))
            } else {
                self.config.timestamps.then(|| (self.ts_val(now), 0))
            },
            sack_ranges: [None; 3],
            ..self.header_repr(now, TcpControl::Syn, self.iss)
        };
        let n = repr.buffer_len();
        let out = buf.get_mut(..n)?;
        repr.emit(out, *self.local.ip(), *self.remote.ip());
        if self.snd_max != self.iss {
            self.counters.retransmits = self.counters.retransmits.saturating_add(1);
        } else {
            self.rtt_probe = Some((self.iss + 1, now));
        }
        self.snd_nxt = self.iss + 1;
        self.snd_max = seq_max(self.snd_max, self.snd_nxt);
        if self.rtx_at.is_none() {
            self.rtx_at = Some(now + self.rto_for_flight());
        }
        if synack {
            // The SYN-ACK's window is unscaled.
            self.after_ack_sent(now, usize::from(repr.window_len));
        } else {
            self.last_tx = now;
            self.counters.segments_out = self.counters.segments_out.saturating_add(1);
        }
        Some(n)
    }

    fn emit_synchronized(&mut self, now: Instant, buf: &mut [u8], offload: GuestOffload) -> Option<Emitted> {
        if self.delack_at.is_some_and(|t| t <= now) {
            self.ack_now = true;
        }
        if self.sending() {
            let hl = self.header_repr(now, TcpControl::Psh, self.snd_nxt).header_len();
            // RFC 6691: the guest's MSS bounds payload plus options (timestamps, and SACK blocks
            // while we hold out-of-order guest data), so a segment always fits its MTU.
            let seg_max = usize::from(self.snd_mss).saturating_sub(hl - HEADER_LEN).max(1);
            let room = buf.len().checked_sub(hl)?;
            if let Some((seq, len, fin)) = self.recovery_segment(room.min(seg_max)) {
                return self.emit_data(now, buf, seq, len, fin, seg_max, offload);
            }
            // A super-frame only when the link segments it, and never larger than the IP
            // datagram it travels in can be.
            let burst = if offload.segmentation { room.min(MAX_SUPER_PAYLOAD - hl) } else { room.min(seg_max) };
            if let Some((len, fin)) = self.next_data(now, burst, seg_max) {
                return self.emit_data(now, buf, self.snd_nxt, len, fin, seg_max, offload);
            }
        }
        if self.probe_now {
            // Zero-window and keepalive probes: an empty segment one below SND.UNA, which the
            // guest must answer with an ACK carrying its window (the Linux way; it puts no new
            // byte in flight).
            self.probe_now = false;
            self.counters.probes = self.counters.probes.saturating_add(1);
            return self.emit_ack(now, buf, seq_back(self.snd_una, 1)).map(Emitted::plain);
        }
        if self.ack_now {
            // SND.MAX, not SND.NXT: after a timeout rewound SND.NXT the guest has already seen
            // higher sequence numbers and would find an ACK below them out of its window.
            return self.emit_ack(now, buf, self.snd_max).map(Emitted::plain);
        }
        None
    }

    fn emit_ack(&mut self, now: Instant, buf: &mut [u8], seq: SeqNumber) -> Option<usize> {
        let repr = self.header_repr(now, TcpControl::None, seq);
        let n = repr.header_len();
        let out = buf.get_mut(..n)?;
        repr.emit(out, *self.local.ip(), *self.remote.ip());
        self.after_ack_sent(now, usize::from(repr.window_len) << self.rcv_wscale);
        Some(n)
    }

    /// In loss recovery: the next hole to repair, as (seq, len, fin).
    fn recovery_segment(&mut self, room: usize) -> Option<(SeqNumber, usize, bool)> {
        let recover = self.recovery?;
        if self.rtx_credit == 0 {
            return None;
        }
        let from = seq_sub(seq_max(self.rtx_next, self.snd_una), self.snd_una) as u32;
        let limit_seq = if recover.diff(self.snd_max) < 0 { recover } else { self.snd_max };
        let limit = seq_sub(limit_seq, self.snd_una) as u32;
        let gap = if self.scoreboard.is_empty() {
            // NewReno without SACK: only the segment at SND.UNA (RFC 6582).
            (from == 0 && limit > 0).then_some((0, limit))
        } else {
            self.scoreboard.next_gap(from, limit.min(self.scoreboard.highest()))
        };
        let Some((s, e)) = gap else {
            self.rtx_credit = 0;
            return None;
        };
        let seq = self.snd_una + s as usize;
        let avail = self.tx.len().saturating_sub(seq_sub(seq, self.tx_base));
        let len = ((e - s) as usize).min(self.send_mss()).min(room).min(avail);
        let fin = self.fin_seq == Some(seq + len) && (e - s) as usize > len;
        if len == 0 && !fin {
            self.rtx_credit = 0;
            return None;
        }
        self.rtx_next = seq + len + usize::from(fin);
        self.rtx_credit -= 1;
        Some((seq, len, fin))
    }

    /// New data (or a resend after a timeout) at SND.NXT, as (len, fin).
    fn next_data(&mut self, now: Instant, room: usize, seg_max: usize) -> Option<(usize, bool)> {
        let off = seq_sub(self.snd_nxt, self.tx_base);
        let avail = self.tx.len().saturating_sub(off);
        let fin_pending = self.fin_seq.is_some_and(|f| self.snd_nxt.diff(f) <= 0);
        if avail == 0 && !fin_pending {
            return None;
        }
        // RFC 5681 4.1: after an idle period longer than the RTO, restart from the initial
        // window.
        if self.snd_una == self.snd_max && now - self.last_tx > self.rtt.rto() {
            let iw = u32::from(self.config.initial_window.max(1)) * self.send_mss() as u32;
            self.cwnd = self.cwnd.min(iw);
        }
        let wnd = self.snd_wnd.min(self.cwnd) as usize;
        let win_room = wnd.saturating_sub(seq_sub(self.snd_nxt, self.snd_una));
        let mss = seg_max;
        let len = avail.min(win_room).min(room);
        // A super-frame (longer than one segment) that is not the end of the queued data ends
        // on a segment boundary, so the link splits it into full segments only; the rest goes
        // with the next one (Linux: `tcp_mss_split_point`).
        let len = if len > mss && len < avail { len - len % mss } else { len };
        let fin = fin_pending && len == avail;
        if len == 0 && !fin {
            return None;
        }
        // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1): a window-limited partial
        // segment waits unless it is at least half the largest window the guest offered.
        if len < avail && len < mss && len == win_room && (len as u32) < self.snd_wnd_max / 2 && !self.sws_override {
            return None;
        }
        Some((len, fin))
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_data(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        seq: SeqNumber,
        len: usize,
        fin: bool,
        seg_max: usize,
        offload: GuestOffload,
    ) -> Option<Emitted> {
        if len > 0 {
            self.sws_override = false;
        }
        let off = seq_sub(seq, self.tx_base);
        let to_end = off + len == self.tx.len();
        let control = if fin {
            TcpControl::Fin
        } else if to_end && len > 0 {
            TcpControl::Psh
        } else {
            TcpControl::None
        };
        let mut repr = self.header_repr(now, control, seq);
        if let Some(up) = self.snd_up {
            let d = up.diff(seq);
            if d > 0 {
                repr.urgent_at = Some(d.min(65535) as u16);
            }
        }
        let hl = repr.header_len();
        let out = buf.get_mut(..hl + len)?;
        let (a, b) = self.tx.get(off, len);
        if a.len() + b.len() != len {
            return None;
        }
        out[hl..hl + a.len()].copy_from_slice(a);
        out[hl + a.len()..].copy_from_slice(b);
        repr.emit(&mut out[..hl], *self.local.ip(), *self.remote.ip());
        if offload.checksum {
            TcpPacket::new_unchecked(&mut *out).fill_partial_checksum(*self.local.ip(), *self.remote.ip());
        } else {
            TcpPacket::new_unchecked(&mut *out).fill_checksum(*self.local.ip(), *self.remote.ip());
        }

        let end = seq + len + usize::from(fin);
        if seq.diff(self.snd_max) < 0 {
            self.counters.retransmits = self.counters.retransmits.saturating_add(1);
            if self.rtt_probe.is_some_and(|(e, _)| e.diff(seq) > 0) {
                self.rtt_probe = None; // Karn: never time a retransmitted segment.
            }
        } else if !self.ts_ok && self.rtt_probe.is_none() {
            self.rtt_probe = Some((end, now));
        }
        if seq == self.snd_nxt {
            self.snd_nxt = end;
        }
        self.snd_max = seq_max(self.snd_max, end);
        if self.rtx_at.is_some() && seq_sub(self.snd_max, self.snd_una) > self.send_mss() {
            // The flight grew past one segment: the lone-segment allowance no longer applies.
            let cap = now + self.rtt.backed_off(self.backoff);
            if self.rtx_at.is_some_and(|t| t > cap) {
                self.rtx_at = Some(cap);
            }
        }
        if self.rtx_at.is_none() {
            self.rtx_at = Some(now + self.rto_for_flight());
        }
        self.persist_at = None;
        // Any segment answers for a pending keepalive or window probe.
        self.probe_now = false;
        self.after_ack_sent(now, usize::from(repr.window_len) << self.rcv_wscale);
        let (gso_size, segments) = if len > seg_max {
            (seg_max.min(usize::from(u16::MAX)) as u16, len.div_ceil(seg_max).min(usize::from(u16::MAX)) as u16)
        } else {
            (0, 1)
        };
        Some(Emitted { len: hl + len, gso_size, checksum_partial: offload.checksum, segments })
    }

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
        assert!(self.snd_una.diff(self.snd_nxt) <= 0, "snd_una {:?} > snd_nxt {:?}", self.snd_una, self.snd_nxt);
        assert!(self.snd_nxt.diff(self.snd_max) <= 0, "snd_nxt > snd_max");
        assert!(self.tx.len() <= self.tx.capacity());
        assert!(self.rx.len() <= self.rx.capacity());
        assert!(self.window_to_advertise() <= self.rx.free(), "advertising more than free space");
        assert!(self.rcv_adv.diff(self.rcv_nxt + self.rx.free()) <= 0, "advertised edge beyond buffer");
        assert!(self.ooo.highest() as usize <= self.rx.free(), "out-of-order data beyond the buffer");
        assert!(self.urgent_to_host() <= self.rx.len());
        assert!(seq_sub(self.snd_max, self.snd_una) <= self.tx.len() + 2, "in flight beyond buffer");
        assert!(self.cwnd <= CWND_MAX);
    }
}
