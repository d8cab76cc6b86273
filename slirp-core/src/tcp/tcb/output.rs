//! Segments toward the guest, pulled by the glue whenever its link has room: a pending RST, our
//! SYN or SYN-ACK, then in a synchronized state loss repair first, new data (sized by window,
//! cwnd, MSS and the buffer, held back by sender-side silly window avoidance, or one super-frame
//! when the link segments), probes and ACKs. Every segment carries the receive window chosen
//! here (receiver-side silly window avoidance, never moving the right edge back), and the timers
//! a send arms are set here too.

use super::Tcb;
use crate::offload::GuestOffload;
use crate::tcp::TcpState;
use crate::time::Instant;
use crate::wire::tcp::HEADER_LEN;
use crate::wire::{SeqNumber, TcpControl, TcpPacket, TcpRepr};

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

/// Largest TCP segment (header and payload) one IPv4 datagram can carry: the bound of a
/// super-frame.
const MAX_SUPER_PAYLOAD: usize = 65535 - 20;

impl<'a> Tcb<'a> {
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
            repr.emit(out, self.local.ip(), self.remote.ip());
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
        let avail = self.tx.len().saturating_sub(self.snd_nxt.saturating_sub(self.tx_base));
        if avail == 0 {
            return self.fin_seq.is_some_and(|f| self.snd_nxt <= f);
        }
        self.snd_wnd.min(self.cwnd) as usize > self.snd_nxt.saturating_sub(self.snd_una)
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
        repr.emit(out, self.local.ip(), self.remote.ip());
        if self.snd_max != self.iss {
            self.counters.retransmits = self.counters.retransmits.saturating_add(1);
        } else {
            self.rtt_probe = Some((self.iss + 1, now));
        }
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
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
            return self.emit_ack(now, buf, self.snd_una - 1).map(Emitted::plain);
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
        repr.emit(out, self.local.ip(), self.remote.ip());
        self.after_ack_sent(now, usize::from(repr.window_len) << self.rcv_wscale);
        Some(n)
    }

    /// New data (or a resend after a timeout) at SND.NXT, as (len, fin).
    fn next_data(&mut self, now: Instant, room: usize, seg_max: usize) -> Option<(usize, bool)> {
        let off = self.snd_nxt.saturating_sub(self.tx_base);
        let avail = self.tx.len().saturating_sub(off);
        let fin_pending = self.fin_seq.is_some_and(|f| self.snd_nxt <= f);
        if avail == 0 && !fin_pending {
            return None;
        }
        self.restart_after_idle(now);
        let wnd = self.snd_wnd.min(self.cwnd) as usize;
        let win_room = wnd.saturating_sub(self.snd_nxt.saturating_sub(self.snd_una));
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
        let off = seq.saturating_sub(self.tx_base);
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
        repr.emit(&mut out[..hl], self.local.ip(), self.remote.ip());
        if offload.checksum {
            TcpPacket::new_unchecked(&mut *out).fill_partial_checksum(self.local.ip(), self.remote.ip());
        } else {
            TcpPacket::new_unchecked(&mut *out).fill_checksum(self.local.ip(), self.remote.ip());
        }

        let end = seq + len + usize::from(fin);
        if seq < self.snd_max {
            self.counters.retransmits = self.counters.retransmits.saturating_add(1);
            if self.rtt_probe.is_some_and(|(e, _)| e > seq) {
                self.rtt_probe = None; // Karn: never time a retransmitted segment.
            }
        } else if !self.ts_ok && self.rtt_probe.is_none() {
            self.rtt_probe = Some((end, now));
        }
        if seq == self.snd_nxt {
            self.snd_nxt = end;
        }
        self.snd_max = self.snd_max.max(end);
        if self.rtx_at.is_some() && self.snd_max.saturating_sub(self.snd_una) > self.send_mss() {
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
        self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + adv);
        self.last_tx = now;
        self.counters.segments_out = self.counters.segments_out.saturating_add(1);
    }

    // ----------------------------------------------------------------------------------------
    // The window we advertise.

    /// Growth of the right edge worth announcing: min(half the buffer, one MSS) (RFC 9293
    /// 3.8.6.2.2 receiver-side silly window avoidance).
    fn sws_threshold(&self) -> usize {
        (self.rx.capacity() / 2).min(usize::from(self.config.mss())).max(1)
    }

    /// The window to put in the next segment: the real free space rounded down to the scale,
    /// but small growths of the right edge are held back. Never more than we can absorb.
    pub(super) fn window_to_advertise(&self) -> usize {
        let s = self.rcv_wscale;
        let real = (self.rx_window() >> s).min(65535) << s;
        let growth = (self.rcv_nxt + real).diff(self.rcv_adv);
        if growth > 0 && (growth as usize) < self.sws_threshold() {
            self.rcv_adv.saturating_sub(self.rcv_nxt).min(real)
        } else {
            real
        }
    }

    pub(super) fn window_update_due(&self) -> bool {
        let s = self.rcv_wscale;
        let real = (self.rx_window() >> s).min(65535) << s;
        let growth = (self.rcv_nxt + real).diff(self.rcv_adv);
        growth > 0 && growth as usize >= self.sws_threshold()
    }
}
