//! Time: [`Tcb::poll_at`] (the earliest armed deadline) and [`Tcb::on_timeout`], which runs what
//! is due: the handshake deadline and the end of TIME_WAIT, idle and keepalive (RFC 9293 3.8.4),
//! the retransmission timer (RFC 6298: RTT sampling, backoff, the allowance for a lone segment,
//! giving up), the persist timer for zero and silly-small windows (RFC 9293 3.8.6.1) and the
//! delayed ACK. `reconcile_timers` keeps the RTO and persist timers consistent with what is
//! outstanding after every input and output.

use super::Tcb;
use crate::tcp::{Events, TcpState};
use crate::time::{earliest, Instant};
use crate::wire::{SeqNumber, TcpRepr};
use core::time::Duration;

impl<'a> Tcb<'a> {
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
                    // Host connect or handshake timeout: a reset tells the guest at once instead
                    // of leaving it to time out on its own.
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
                // RFC 6298 5.4-5.6: backed off above; resend from the first unacknowledged byte
                // with the window collapsed, and restart the timer.
                self.timeout_response(now);
                self.rtx_at = Some(now + self.rto_for_flight());
            }
            _ => {}
        }
    }

    /// The retransmission timeout for what is in flight now. A lone segment is acknowledged by a
    /// guest that delays ACKs (Linux 40 ms, Windows 200 ms) only when its delayed-ACK timer fires,
    /// so it gets [`TcpConfig::lone_segment_allowance`] (RFC 8985's worst-case delayed-ACK
    /// allowance): otherwise every lone response would be sent twice. Several segments in flight
    /// are ACKed at once (every second segment), and keep the low floor that makes recovery fast
    /// on a virtual link.
    ///
    /// [`TcpConfig::lone_segment_allowance`]: crate::tcp::TcpConfig::lone_segment_allowance
    pub(super) fn rto_for_flight(&self) -> Duration {
        let rto = self.rtt.backed_off(self.backoff);
        if self.snd_max.saturating_sub(self.snd_una) <= self.send_mss() {
            rto.max(self.rtt.srtt() * 2 + self.config.lone_segment_allowance).min(self.config.max_rto)
        } else {
            rto
        }
    }

    /// Keeps the retransmission and persist timers consistent with what is outstanding.
    pub(super) fn reconcile_timers(&mut self, now: Instant) {
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
        let unsent = self.sending() && self.tx.len() > self.snd_nxt.saturating_sub(self.tx_base);
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

    /// An RTT sample from an acceptable ACK up to `ack`: the echoed timestamp when timestamps are
    /// on, else the one segment being timed once `ack` covers it.
    pub(super) fn sample_rtt(&mut self, now: Instant, ack: SeqNumber, seg: &TcpRepr) {
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
            if ack >= end {
                self.rtt.sample(now - at);
                self.rtt_probe = None;
            }
        }
    }
}
