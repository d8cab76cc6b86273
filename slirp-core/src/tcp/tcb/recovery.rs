//! Congestion control and loss recovery, everything that moves cwnd and ssthresh after the
//! handshake: what a new ACK does (slow start and congestion avoidance, RFC 5681; leaving
//! recovery on a full ACK, repairing on a partial one, RFC 6582), undoing a timeout the echoed
//! timestamp shows was spurious (RFC 3522, RFC 4015), duplicate ACKs and fast retransmit (RFC
//! 5681 3.2, sized by the SACK scoreboard as RFC 6675 does), which hole the next repair segment
//! fills, the response to a retransmission timeout and the restart after idle (RFC 5681 4.1).
//! The timers decide when; input and output call in here for what.

use super::{Tcb, CWND_MAX};
use crate::tcp::Events;
use crate::time::Instant;
use crate::wire::{SeqNumber, TcpRepr};

impl<'a> Tcb<'a> {
    /// An ACK of new data (`SND.UNA < ack <= SND.MAX`): frees the acknowledged bytes, samples
    /// the RTT, undoes a spurious timeout or grows the window (or moves recovery on), and
    /// restarts or stops the retransmission timer.
    pub(super) fn ack_new_data(&mut self, now: Instant, seg: &TcpRepr, ack: SeqNumber, ev: &mut Events) {
        let acked = ack.saturating_sub(self.snd_una);
        let data_acked = ack.saturating_sub(self.tx_base).min(self.tx.len());
        if data_acked > 0 {
            self.tx.dequeue(data_acked);
            self.tx_base += data_acked;
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
            Some(recover) if ack >= recover => {
                // Full acknowledgment: leave recovery (RFC 6582 3.2 step 3).
                let flight = self.snd_max.saturating_sub(ack) as u32;
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
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        if self.rtx_next < ack {
            self.rtx_next = ack;
        }
        if let Some(up) = self.snd_up {
            if up <= ack {
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

    /// A duplicate ACK (RFC 5681 2: nothing new acknowledged, no data, same window, data
    /// outstanding).
    pub(super) fn dup_ack(&mut self) {
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
        if self.dupacks == 3 && self.snd_una >= self.recover {
            // Fast retransmit (RFC 5681 3.2): halve, retransmit the first unacknowledged segment.
            let flight = self.snd_max.saturating_sub(self.snd_una) as u32;
            self.ssthresh = (flight / 2).max(2 * mss);
            self.cwnd = self.ssthresh.saturating_add(3 * mss).min(CWND_MAX);
            self.recovery = Some(self.snd_max);
            self.recover = self.snd_max;
            self.rtx_next = self.snd_una;
            // With SACK, the holes below the highest SACKed byte count as lost and the bytes
            // SACKed as delivered (RFC 6675 pipe): the reduced window covers repairing several
            // holes at once. Without SACK, one segment (RFC 6582).
            let above = self.snd_max.saturating_sub(self.snd_una + self.scoreboard.highest() as usize) as u32;
            self.rtx_credit = if self.scoreboard.is_empty() {
                1
            } else {
                (self.ssthresh.saturating_sub(above) / mss).clamp(1, 8) as u8
            };
            self.rtt_probe = None;
            self.counters.fast_retransmits = self.counters.fast_retransmits.saturating_add(1);
        }
    }

    /// The congestion response to a retransmission timeout (RFC 5681 3.1 equation 4, RFC 6298
    /// 5.4): ssthresh from half the flight, cwnd one segment, SND.NXT back to SND.UNA
    /// (go-back-N), out of fast recovery. The first timeout of an episode keeps the window it
    /// replaces, for [`ack_new_data`](Self::ack_new_data) to restore if the echoed timestamp shows
    /// the timeout was spurious.
    pub(super) fn timeout_response(&mut self, now: Instant) {
        if self.ts_ok && self.backoff == 1 {
            self.undo = Some((self.cwnd, self.ssthresh, self.ts_val(now)));
        }
        let mss = self.send_mss() as u32;
        let flight = self.snd_max.saturating_sub(self.snd_una) as u32;
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.snd_nxt = self.snd_una;
        self.recover = self.snd_max;
        self.recovery = None;
        self.rtx_credit = 0;
        self.dupacks = 0;
        // The guest may renege on SACKed data (RFC 2018 section 8): start afresh.
        self.scoreboard.clear();
    }

    /// RFC 5681 4.1: after an idle period longer than the RTO, sending restarts from no more than
    /// the initial window.
    pub(super) fn restart_after_idle(&mut self, now: Instant) {
        if self.snd_una == self.snd_max && now - self.last_tx > self.rtt.rto() {
            let iw = u32::from(self.config.initial_window.max(1)) * self.send_mss() as u32;
            self.cwnd = self.cwnd.min(iw);
        }
    }

    /// In loss recovery: the next hole to repair, as (seq, len, fin).
    pub(super) fn recovery_segment(&mut self, room: usize) -> Option<(SeqNumber, usize, bool)> {
        let recover = self.recovery?;
        if self.rtx_credit == 0 {
            return None;
        }
        let from = self.rtx_next.max(self.snd_una).saturating_sub(self.snd_una) as u32;
        let limit_seq = recover.min(self.snd_max);
        let limit = limit_seq.saturating_sub(self.snd_una) as u32;
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
        let avail = self.tx.len().saturating_sub(seq.saturating_sub(self.tx_base));
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
}
