//! Segments from the guest (RFC 9293 3.10.7): the per-state processing of SYN-SENT, of
//! SYN-RECEIVED while the host connect is pending, and of the synchronized states, in the RFC's
//! order of checks: sequence acceptability (with PAWS, RFC 7323 5), RST and SYN (RFC 5961's
//! challenge ACKs, rate-limited), ACK (with SACK blocks for the scoreboard and the window update),
//! urgent pointer, payload (straight to the host, into the ring, or out of order into the
//! assembler) and FIN. What an ACK does to the congestion window is `recovery`'s.

use super::{window_shift_for, Tcb};
use crate::tcp::{is_connection_request, Events, TcpState, DEFAULT_MSS, MAX_WINDOW_SHIFT, MIN_MSS};
use crate::time::Instant;
use crate::wire::{SeqNumber, TcpControl, TcpRepr};
use core::time::Duration;

impl<'a> Tcb<'a> {
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

    /// Reads the peer's SYN: its ISN and the options it offers (RFC 9293 3.7.1, RFC 7323, RFC
    /// 2018). Options are used only when both sides offer them.
    pub(super) fn take_syn(&mut self, syn: &TcpRepr) {
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

    /// SYN-SENT (RFC 9293 3.10.7.3).
    fn input_syn_sent(&mut self, now: Instant, seg: &TcpRepr, ev: &mut Events) {
        let ack_ok = seg.ack_number.map(|a| a > self.iss && a <= self.snd_max);
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
                        if self.snd_nxt < ack {
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

    /// Every state from SYN-RECEIVED (host connected) on: [`screen`](Self::screen), then the
    /// handshake's completion, ACK, urgent pointer, payload and FIN in the RFC's order.
    fn input_synchronized<F: FnMut(&[u8]) -> usize>(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        to_host: &mut F,
        ev: &mut Events,
    ) {
        let Some(ack) = self.screen(now, seg, ev) else { return };
        let seq = seg.seq_number;
        if self.ts_ok && seq <= self.rcv_nxt {
            if let Some((tsval, _)) = seg.timestamp {
                self.ts_recent = tsval;
            }
        }
        self.last_rx = now;
        self.keepalive_probes = 0;
        self.probes_unanswered = 0;

        if self.state == TcpState::SynReceived {
            if ack > self.snd_una && ack <= self.snd_max {
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

    /// The checks a segment passes before it may act in a synchronized state (RFC 9293 3.10.7.4
    /// first to fourth, with RFC 6191's reopen from TIME-WAIT, PAWS and RFC 5961): answers or
    /// drops what fails them and returns the segment's ACK when the rest of the processing is due.
    fn screen(&mut self, now: Instant, seg: &TcpRepr, ev: &mut Events) -> Option<SeqNumber> {
        let seq = seg.seq_number;
        // TIME-WAIT: a new SYN above the old sequence space reopens the four-tuple (RFC 6191).
        if self.state == TcpState::TimeWait && is_connection_request(seg) && seq > self.rcv_nxt {
            let ts_newer = match (self.ts_ok, seg.timestamp) {
                (true, Some((v, _))) => (v.wrapping_sub(self.ts_recent) as i32) > 0,
                _ => true,
            };
            if ts_newer {
                *ev |= Events::REOPEN;
                return None;
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
            return None;
        }
        // PAWS (RFC 7323 5.3): an older timestamp is an old duplicate.
        if self.ts_ok && seg.control != TcpControl::Rst {
            if let Some((tsval, _)) = seg.timestamp {
                if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    self.counters.dropped = self.counters.dropped.saturating_add(1);
                    self.ack_dropped(now, seg);
                    return None;
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
            return None;
        }
        // RFC 5961 3.2: only an exact RST resets; an in-window one draws a challenge ACK.
        if seg.control == TcpControl::Rst {
            if seq == self.rcv_nxt {
                self.enter_closed(ev);
                *ev |= Events::RESET;
            } else {
                self.challenge_ack(now);
            }
            return None;
        }
        // RFC 5961 4.2: a SYN in a synchronized state draws a challenge ACK.
        if seg.control == TcpControl::Syn {
            self.challenge_ack(now);
            return None;
        }
        let Some(ack) = seg.ack_number else {
            self.counters.dropped = self.counters.dropped.saturating_add(1);
            return None;
        };
        Some(ack)
    }

    /// ACK processing (RFC 9293 3.10.7.4 fifth check, RFC 5681, RFC 6582, RFC 5961 5.2).
    /// Returns false when the segment must be dropped.
    fn process_ack(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber, ev: &mut Events) -> bool {
        if ack > self.snd_max {
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
                let l = l.max(self.snd_una);
                if r > l && r <= self.snd_max {
                    let _ = self
                        .scoreboard
                        .add(l.saturating_sub(self.snd_una) as u32, r.saturating_sub(self.snd_una) as u32);
                }
            }
        }
        if ack > self.snd_una {
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
        if self.snd_wl1 < seg.seq_number || (self.snd_wl1 == seg.seq_number && self.snd_wl2 <= ack) {
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

    /// URG from the guest (RFC 9293 3.8.5, RFC 6093): remember where the urgent bytes end, but
    /// only inside what the receive buffer can hold (a pointer taken on trust is the old slirp's
    /// CVE class).
    fn process_urgent(&mut self, seg: &TcpRepr) {
        let Some(up) = seg.urgent_at else { return };
        if up == 0 || !self.receiving() {
            return;
        }
        let up_seq = seg.seq_number + usize::from(up);
        let consumed = self.rcv_nxt - self.rx.len();
        let ahead = up_seq.diff(self.rcv_nxt);
        if up_seq > consumed && i64::from(ahead) <= self.rx_window() as i64 {
            self.rcv_up = Some(match self.rcv_up {
                Some(old) => old.max(up_seq),
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
        let skip = self.rcv_nxt.saturating_sub(seq);
        if skip >= payload.len() {
            // Entirely old: a retransmission whose ACK was lost; ACK at once (RFC 5681 4.2).
            self.ack_now = true;
            return seq + payload.len() == self.rcv_nxt;
        }
        let data = &payload[skip..];
        let offset = seq.saturating_sub(self.rcv_nxt);
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
                self.rcv_nxt += n;
                self.counters.bytes_to_host = self.counters.bytes_to_host.saturating_add(n as u64);
                data = &data[n..];
                advanced += n;
            }
        }
        if !data.is_empty() {
            let n = self.rx.write_unallocated(0, data);
            self.rx.enqueue_unallocated(n);
            self.ooo.shift(n as u32);
            self.rcv_nxt += n;
            advanced += n;
        }
        let joined = self.ooo.front_len();
        if joined > 0 {
            let n = self.rx.enqueue_unallocated(joined as usize);
            self.ooo.shift(joined);
            self.rcv_nxt += n;
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
                self.rcv_nxt += 1;
                self.guest_fin = true;
                self.ack_now = true;
                self.rcv_adv = self.rcv_adv.max(self.rcv_nxt);
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
    // Answers to segments we drop.

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
}
