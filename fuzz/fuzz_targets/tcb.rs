//! The TCP control block alone: a `Tcb` opened either way (guest SYN accepted, or our SYN toward
//! the guest) under an arbitrary `TcpConfig` and buffer sizes, then arbitrary guest segments
//! (sequence and acknowledgment numbers near the ones in play or anywhere, any options, SACK
//! blocks, timestamps, urgent pointers, payload), raw segment bytes, host events (connect done or
//! refused, writes into the send ring, reads from the receive side, EOF, urgent data, abort,
//! buffer release in TIME_WAIT), time steps that run the due timers, stray `on_timeout` calls,
//! and output pulls with any room and offload flags.
//!
//! Checked beyond "no panic", all from the public API:
//! - every segment it emits parses with `slirp_core::wire` (checksum verified; finished first
//!   when it is left partial for the link), between the TCB's ports, fits the room it was given,
//!   and `has_output` never said "nothing" before it;
//! - data it emits is the host stream at that sequence number, never past what was written (nor
//!   past the FIN), and segments that reach past everything sent before stay inside the guest's
//!   window and cwnd; no segment's payload and options exceed the MSS the guest may have asked
//!   for (per segment of a super-frame); GSO fields agree with the payload;
//! - the window it advertises fits the receive buffer's free space, and (while the guest's ISN is
//!   known) its ACK is exactly ISN + 1 + bytes the host took + bytes buffered (+ 1 after the
//!   guest's FIN);
//! - the bytes the host receives are exactly the guest's stream, in order (unless the guest sent
//!   conflicting copies of a range, which a real stack never does);
//! - buffers never hold more than their capacity; byte counters match what moved; a closed TCB
//!   has no timer; no more than a few empty segments (ACKs, probes, a RST) per drain.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slirp_core::tcp::{Events, Keepalive, TcpBuffers, TcpConfig, TcpState, DEFAULT_MSS, MIN_MSS};
use slirp_core::wire::{checksum, IpProtocol, SeqNumber, TcpControl, TcpPacket, TcpRepr};
use slirp_core::{GuestOffload, Instant};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const GUEST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 40000);
const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 80);

type Tcb = slirp_core::tcp::Tcb<'static>;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BufSize {
    Tiny(u8),
    Small(u16),
    K64,
    K256,
}

impl BufSize {
    fn bytes(self) -> usize {
        match self {
            BufSize::Tiny(n) => usize::from(n).max(1),
            BufSize::Small(n) => usize::from(n).max(1),
            BufSize::K64 => 64 * 1024,
            BufSize::K256 => 256 * 1024,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Cfg {
    mtu: u8,
    raw_mtu: u16,
    window_scaling: bool,
    sack: bool,
    timestamps: bool,
    delayed_ack_ms: Option<u8>,
    keepalive: Option<(u8, u8, u8)>,
    idle_s: Option<u8>,
    time_wait_ms: u16,
    connect_timeout_s: u8,
    max_retransmits: u8,
    initial_window: u8,
    challenge_ack_limit: u8,
    min_rto_ms: u8,
    initial_rto_ms: u16,
    max_rto_s: u8,
    lone_ms: u8,
}

impl Cfg {
    fn config(&self) -> TcpConfig {
        let mtu = match self.mtu % 6 {
            0 => 1500,
            1 => 576,
            2 => 9000,
            3 => 65520,
            4 => 1280,
            _ => usize::from(self.raw_mtu),
        };
        let min_rto = Duration::from_millis(u64::from(self.min_rto_ms).max(1));
        TcpConfig {
            mtu,
            min_rto,
            initial_rto: Duration::from_millis(u64::from(self.initial_rto_ms).max(1)),
            max_rto: Duration::from_secs(u64::from(self.max_rto_s % 120)).max(min_rto),
            delayed_ack: self.delayed_ack_ms.map(|ms| Duration::from_millis(u64::from(ms % 50))),
            lone_segment_allowance: Duration::from_millis(u64::from(self.lone_ms)),
            window_scaling: self.window_scaling,
            sack: self.sack,
            timestamps: self.timestamps,
            keepalive: self.keepalive.map(|(idle, interval, count)| Keepalive {
                idle: Duration::from_secs(u64::from(idle)),
                interval: Duration::from_millis(u64::from(interval).max(1) * 100),
                count: count % 16,
            }),
            idle_timeout: self.idle_s.map(|s| Duration::from_secs(u64::from(s).max(1))),
            time_wait: Duration::from_millis(u64::from(self.time_wait_ms)),
            connect_timeout: Duration::from_secs(u64::from(self.connect_timeout_s)),
            max_retransmits: self.max_retransmits % 32,
            initial_window: self.initial_window % 64,
            challenge_ack_limit: u16::from(self.challenge_ack_limit),
            // Fields added later keep their defaults until this target learns them.
            ..TcpConfig::default()
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct SynOpts {
    mss: Option<u16>,
    ws: Option<u8>,
    sack_perm: bool,
    ts: Option<u32>,
    win: u16,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ctl {
    None,
    Psh,
    Syn,
    Fin,
    Rst,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SeqSel {
    /// Relative to the last ACK we sent (the guest's next byte).
    Next(i16),
    /// Ahead of it, anywhere in a 64 KiB window.
    Ahead(u16),
    /// The guest's ISN plus this.
    Isn(u16),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum AckSel {
    /// Relative to the highest sequence number we sent.
    Max(i16),
    /// Relative to the first byte still in our send ring (SND.UNA for data).
    Una(i16),
    /// Into what we sent: `Una` plus this.
    Into(u16),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum TsSel {
    /// The guest's clock moves on by this much; echoes our last TSval (or zero).
    Fresh {
        step: u8,
        echo: bool,
    },
    Raw(u32, u32),
}

#[derive(Arbitrary, Debug, Clone)]
struct Seg {
    control: Ctl,
    seq: SeqSel,
    ack: Option<AckSel>,
    win: u16,
    mss: Option<u16>,
    ws: Option<u8>,
    sack_perm: bool,
    sacks: Vec<(AckSel, u16)>,
    ts: Option<TsSel>,
    urg: Option<u16>,
    len: u16,
    /// Payload bytes that disagree with the guest's stream.
    corrupt: bool,
}

impl Seg {
    fn plain(control: Ctl, len: u16, win: u16) -> Seg {
        Seg {
            control,
            seq: SeqSel::Next(0),
            ack: Some(AckSel::Max(0)),
            win,
            mss: None,
            ws: None,
            sack_perm: false,
            sacks: Vec::new(),
            ts: Some(TsSel::Fresh { step: 1, echo: true }),
            urg: None,
            len,
            corrupt: false,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Delay {
    Micros(u16),
    Millis(u16),
    Secs(u16),
}

impl Delay {
    fn duration(self) -> Duration {
        match self {
            Delay::Micros(n) => Duration::from_micros(u64::from(n)),
            Delay::Millis(n) => Duration::from_millis(u64::from(n)),
            Delay::Secs(n) => Duration::from_secs(u64::from(n)),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    Seg(Seg),
    /// A well-behaved guest's pure ACK: at its next byte, acknowledging all we sent, timestamps
    /// echoed.
    Ack {
        win: u16,
    },
    /// A well-behaved guest's next data (and FIN), acknowledging all we sent.
    Data {
        len: u16,
        fin: bool,
        psh: bool,
        win: u16,
    },
    /// The guest's SYN-ACK to our SYN (or a fresh SYN), at its ISN.
    Syn {
        ack: bool,
        opts: SynOpts,
    },
    RawSeg(Vec<u8>),
    HostConnected,
    HostRefused,
    Discard,
    Abort,
    HostEof,
    HostUrgent,
    /// Host bytes into the send ring (`enqueue`, or `write_send_buffer` when `direct`).
    Enqueue {
        len: u16,
        direct: bool,
    },
    /// The host takes up to this many bytes of what waits for it.
    HostRead(u16),
    /// How much the host socket takes per direct write (0: nothing).
    HostTakes(u16),
    /// Time passes; every timer due on the way runs.
    Advance(Delay),
    /// `on_timeout` now, due or not.
    Timeout,
    Emit {
        count: u8,
        room: Room,
        checksum: bool,
        segmentation: bool,
    },
    ReleaseBuffers,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Room {
    /// One IP datagram at the MTU (what the glue passes).
    Mtu,
    /// The largest IPv4 datagram (super-frames).
    Max,
    Raw(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Drain the output after every step, as the glue does (else only on `Emit`).
    drain: Option<(bool, bool)>,
    cfg: Cfg,
    send: BufSize,
    recv: BufSize,
    iss: u32,
    guest_isn: u32,
    /// `Some`: the guest opened (its SYN's options); `None`: we open toward the guest.
    accept: Option<SynOpts>,
    steps: Vec<Step>,
}

/// The guest's stream: the byte at sequence number `seq`.
fn guest_byte(seq: u32) -> u8 {
    (seq.wrapping_mul(0x9e37_79b1) >> 24) as u8
}

/// The host's stream: its `i`th byte.
fn host_byte(i: u64) -> u8 {
    ((i as u32).wrapping_mul(0x85eb_ca6b).rotate_left(7) >> 24) as u8 ^ (i >> 32) as u8
}

fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

struct Harness {
    tcb: Tcb,
    config: TcpConfig,
    now: Instant,
    iss: u32,
    guest_isn: u32,
    /// The TCB's idea of the guest's ISN is `guest_isn` (no other SYN could have been adopted).
    isn_known: bool,
    /// The guest never sent bytes that disagree with its stream.
    content_ok: bool,
    send_cap: usize,
    recv_cap: usize,
    /// Host bytes the TCB accepted into its send ring, in total.
    enqueued: u64,
    /// The stream length when the host hit EOF.
    eof_at: Option<u64>,
    /// Guest bytes the host took (directly or from the receive buffer).
    host_got: u64,
    host_takes: usize,
    /// Highest sequence number we sent (SYN and FIN included), and the last ACK we sent.
    snd_max: u32,
    rcv_est: u32,
    guest_ts: u32,
    our_ts: u32,
    /// Largest MSS the guest may have announced (clamped as the TCB clamps it).
    mss_bound: usize,
    out: Vec<u8>,
    payload: Vec<u8>,
}

impl Harness {
    fn clamp_mss(&self, m: Option<u16>) -> usize {
        let ours = self.config.mss();
        usize::from(m.unwrap_or(DEFAULT_MSS).clamp(MIN_MSS.min(ours), ours))
    }

    /// First sequence number still in the send ring.
    fn tx_base(&self) -> u32 {
        let acked = self.enqueued - self.tcb.send_queue_len() as u64;
        self.iss.wrapping_add(1).wrapping_add(acked as u32)
    }

    fn check_state(&self) {
        let t = &self.tcb;
        assert!(t.send_queue_len() <= self.send_cap, "send ring over capacity");
        assert!(t.recv_queue_len() <= self.recv_cap, "receive buffer over capacity");
        assert!(t.send_buffer_free() <= self.send_cap - t.send_queue_len());
        assert!(t.urgent_to_host() <= t.recv_queue_len());
        assert!(t.pending_to_host().len() <= t.recv_queue_len());
        let (a, b) = t.pending_to_host_pair();
        assert_eq!(a.len() + b.len(), t.recv_queue_len());
        assert_eq!(t.counters().bytes_to_guest, self.enqueued - t.send_queue_len() as u64, "acked bytes");
        assert_eq!(t.counters().bytes_to_host, self.host_got, "bytes to host");
        if t.is_closed() {
            assert_eq!(t.poll_at(), None, "a closed TCB keeps a timer");
            assert_eq!(t.send_buffer_free(), 0);
        }
        if self.eof_at.is_some() {
            assert_eq!(t.send_buffer_free(), 0, "room for host bytes after EOF");
        }
    }

    fn events(&mut self, ev: Events) {
        if ev.contains(Events::CLOSED) {
            assert!(self.tcb.is_closed(), "CLOSED event but state {:?}", self.tcb.state());
        }
        if ev.contains(Events::GUEST_FIN) {
            assert!(self.tcb.guest_finished());
        }
    }

    fn check_host_bytes(&self, data: &[u8], at: u64) {
        if !(self.isn_known && self.content_ok) {
            return;
        }
        for (k, &b) in data.iter().enumerate() {
            let seq = self.guest_isn.wrapping_add(1).wrapping_add((at + k as u64) as u32);
            assert_eq!(b, guest_byte(seq), "host got the wrong guest byte {} of the stream", at + k as u64);
        }
    }

    fn segment(&mut self, repr: &TcpRepr) {
        let st = self.tcb.state();
        if repr.control == TcpControl::Syn
            && repr.seq_number.0 != self.guest_isn
            && (st == TcpState::SynSent || self.tcb.is_awaiting_host())
        {
            // The TCB may adopt this SYN's ISN: the stream no longer starts where we think.
            self.isn_known = false;
        }
        if repr.control == TcpControl::Syn && matches!(st, TcpState::SynSent | TcpState::SynReceived) {
            self.mss_bound = self.mss_bound.max(self.clamp_mss(repr.max_seg_size));
        }
        let (takes, mut got) = (self.host_takes, Vec::new());
        let ev = self.tcb.on_segment(self.now, repr, |d| {
            let n = d.len().min(takes);
            got.extend_from_slice(&d[..n]);
            n
        });
        self.check_host_bytes(&got, self.host_got);
        self.host_got += got.len() as u64;
        self.events(ev);
        if ev.contains(Events::REOPEN) {
            // A new SYN in TIME_WAIT: the glue closes this TCB and accepts the SYN afresh.
            assert_eq!(st, TcpState::TimeWait);
            let bufs = core::mem::replace(&mut self.tcb, dummy()).into_buffers();
            let bufs = TcpBuffers::new(
                if bufs.send.is_empty() { vec![0u8; self.send_cap.max(1)] } else { bufs.send.to_vec() },
                if bufs.recv.is_empty() { vec![0u8; self.recv_cap.max(1)] } else { bufs.recv.to_vec() },
            );
            self.send_cap = bufs.send.len();
            self.recv_cap = bufs.recv.len();
            self.iss = self.iss.wrapping_add(0x1000_0000);
            self.tcb = Tcb::accept(self.config, bufs, SERVER, GUEST, repr, SeqNumber(self.iss), self.now);
            self.guest_isn = repr.seq_number.0;
            self.isn_known = true;
            self.content_ok = true;
            self.enqueued = 0;
            self.eof_at = None;
            self.host_got = 0;
            self.snd_max = self.iss;
            self.rcv_est = self.guest_isn.wrapping_add(1);
            self.mss_bound = self.clamp_mss(repr.max_seg_size);
        }
    }

    fn build(&mut self, s: &Seg) -> Vec<u8> {
        let seq = match s.seq {
            SeqSel::Next(o) => self.rcv_est.wrapping_add(o as i32 as u32),
            SeqSel::Ahead(o) => self.rcv_est.wrapping_add(u32::from(o)),
            SeqSel::Isn(o) => self.guest_isn.wrapping_add(u32::from(o)),
            SeqSel::Raw(v) => v,
        };
        let ack_of = |h: &Harness, a: AckSel| match a {
            AckSel::Max(o) => h.snd_max.wrapping_add(o as i32 as u32),
            AckSel::Una(o) => h.tx_base().wrapping_add(o as i32 as u32),
            AckSel::Into(o) => h.tx_base().wrapping_add(u32::from(o)),
            AckSel::Raw(v) => v,
        };
        let mut sacks = [None; 3];
        for (slot, &(left, len)) in sacks.iter_mut().zip(s.sacks.iter()) {
            let l = ack_of(self, left);
            *slot = Some((l, l.wrapping_add(u32::from(len))));
        }
        let timestamp = s.ts.map(|t| match t {
            TsSel::Fresh { step, echo } => {
                self.guest_ts = self.guest_ts.wrapping_add(u32::from(step));
                (self.guest_ts, if echo { self.our_ts } else { 0 })
            }
            TsSel::Raw(v, e) => (v, e),
        });
        let len = usize::from(s.len).min(65000);
        self.payload.clear();
        self.payload
            .extend((0..len).map(|k| guest_byte(seq.wrapping_add(k as u32)) ^ if s.corrupt { 0x5a } else { 0 }));
        if s.corrupt && len > 0 {
            self.content_ok = false;
        }
        let repr = TcpRepr {
            src_port: GUEST.port(),
            dst_port: SERVER.port(),
            control: match s.control {
                Ctl::None => TcpControl::None,
                Ctl::Psh => TcpControl::Psh,
                Ctl::Syn => TcpControl::Syn,
                Ctl::Fin => TcpControl::Fin,
                Ctl::Rst => TcpControl::Rst,
            },
            seq_number: SeqNumber(seq),
            ack_number: s.ack.map(|a| SeqNumber(ack_of(self, a))),
            window_len: s.win,
            window_scale: s.ws,
            max_seg_size: s.mss,
            sack_permitted: s.sack_perm,
            sack_ranges: sacks,
            timestamp,
            urgent_at: s.urg,
            payload: &self.payload,
        };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut bytes, *GUEST.ip(), *SERVER.ip());
        bytes
    }

    /// Feeds segment bytes the way the glue does: whatever parses (checksum not verified, as in
    /// a fuzzing build of the core) reaches the TCB.
    fn feed(&mut self, bytes: &[u8], raw: bool) {
        let Ok(pkt) = TcpPacket::new_checked(bytes) else { return };
        let Ok(repr) = TcpRepr::parse(&pkt, *GUEST.ip(), *SERVER.ip(), false) else { return };
        if raw && !repr.payload.is_empty() {
            // Raw bytes carry any payload.
            self.content_ok = false;
        }
        self.segment(&repr);
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        let (mut runs, mut same) = (0, 0);
        while let Some(t) = self.tcb.poll_at() {
            if t > end || runs >= 2000 {
                break;
            }
            if t <= self.now {
                same += 1;
                assert!(same < 64, "timer at {t:?} keeps firing at {:?}", self.now);
            } else {
                same = 0;
            }
            self.now = self.now.max(t);
            let ev = self.tcb.on_timeout(self.now);
            self.events(ev);
            self.check_state();
            runs += 1;
        }
        self.now = end;
    }

    fn emit(&mut self, count: u8, room: Room, offload: GuestOffload) {
        let room = match room {
            Room::Mtu => self.config.mtu.saturating_sub(20),
            Room::Max => 65535 - 20,
            Room::Raw(n) => usize::from(n),
        };
        if self.out.len() < room {
            self.out.resize(room, 0);
        }
        let mut empty = 0;
        for _ in 0..count {
            let promised = self.tcb.has_output(self.now);
            let Some(e) = self.tcb.emit_next_offloaded(self.now, &mut self.out[..room], offload) else { break };
            assert!(promised, "has_output() said nothing was due");
            assert!(e.len <= room, "segment of {} bytes in {} of room", e.len, room);
            let mut seg = self.out[..e.len].to_vec();
            if e.checksum_partial {
                assert!(offload.checksum, "partial checksum without checksum offload");
                let pseudo = checksum::pseudo_header(*SERVER.ip(), *GUEST.ip(), IpProtocol::Tcp, seg.len() as u32);
                assert_eq!(u16::from_be_bytes([seg[16], seg[17]]), checksum::fold(pseudo), "partial checksum");
                // What the link does: complete the sum over the segment as it stands.
                let c = checksum::data(&seg);
                seg[16..18].copy_from_slice(&c.to_be_bytes());
            }
            let pkt = TcpPacket::new_checked(&seg[..]).expect("emitted segment has a valid header");
            let r = TcpRepr::parse(&pkt, *SERVER.ip(), *GUEST.ip(), true).expect("emitted segment parses");
            assert_eq!((r.src_port, r.dst_port), (SERVER.port(), GUEST.port()));
            self.check_segment(&r, pkt.header_len().into(), e.gso_size, e.segments, offload);
            if r.payload.is_empty() && !matches!(r.control, TcpControl::Syn | TcpControl::Fin) {
                empty += 1;
                assert!(empty <= 3, "emit_next keeps producing empty segments");
            }
        }
        self.check_state();
    }

    fn check_segment(&mut self, r: &TcpRepr, hl: usize, gso: u16, segments: u16, offload: GuestOffload) {
        let seq = r.seq_number.0;
        let len = r.payload.len();
        if gso == 0 {
            assert_eq!(segments, 1);
        } else {
            assert!(offload.segmentation, "a super-frame without segmentation offload");
            assert!(len > usize::from(gso));
            assert_eq!(usize::from(segments), len.div_ceil(usize::from(gso)));
        }
        if let Some(ts) = r.timestamp {
            self.our_ts = ts.0;
        }
        // Window: never more than the receive buffer can take.
        let shift = if r.control == TcpControl::Syn { 0 } else { self.tcb.window_shifts().0 };
        let free = self.recv_cap - self.tcb.recv_queue_len();
        assert!((usize::from(r.window_len) << shift) <= free, "window {}<<{shift} with {free} free", r.window_len);
        if r.control == TcpControl::Rst {
            assert_eq!(len, 0);
            if r.ack_number.is_none() {
                return; // The answer to an unacceptable ACK: seq is that ACK.
            }
        }
        if let Some(ack) = r.ack_number {
            if self.isn_known {
                let fin = u64::from(self.tcb.guest_finished());
                let at = self.host_got + self.tcb.recv_queue_len() as u64 + fin;
                let want = self.guest_isn.wrapping_add(1).wrapping_add(at as u32);
                assert_eq!(ack.0, want, "ACK is not what the guest delivered");
            }
            self.rcv_est = ack.0;
        }
        if r.control == TcpControl::Rst {
            return;
        }
        if r.control == TcpControl::Syn {
            assert_eq!(seq, self.iss, "SYN not at the ISS");
            assert_eq!(len, 0);
            if !seq_after(self.snd_max, seq.wrapping_add(1)) {
                self.snd_max = seq.wrapping_add(1);
            }
            return;
        }
        // Data: the host stream at that position, and no further than it goes.
        let off = seq.wrapping_sub(self.iss.wrapping_add(1));
        if len > 0 {
            assert!(u64::from(off) + len as u64 <= self.enqueued, "data past the host stream");
            for (k, &b) in r.payload.iter().enumerate() {
                assert_eq!(b, host_byte(u64::from(off) + k as u64), "wrong byte at stream offset {}", off as usize + k);
            }
            // Payload and options within the guest's MSS, per segment (RFC 6691).
            let per = if gso > 0 { usize::from(gso) } else { len };
            assert!(per + hl - 20 <= self.mss_bound, "{per} payload + {} options over MSS {}", hl - 20, self.mss_bound);
        }
        if r.control == TcpControl::Fin {
            let eof = self.eof_at.expect("FIN before host EOF");
            assert_eq!(u64::from(off) + len as u64, eof, "FIN not at the end of the stream");
        }
        let end = seq.wrapping_add(len as u32);
        if len > 0 && seq_after(end, self.snd_max) {
            // New data: inside what the guest's window and our cwnd allow.
            let flight = end.wrapping_sub(self.tx_base());
            assert!(
                flight <= self.tcb.send_window(),
                "sent {flight} past SND.UNA into a window of {}",
                self.tcb.send_window()
            );
            assert!(flight <= self.tcb.cwnd(), "sent {flight} past SND.UNA with cwnd {}", self.tcb.cwnd());
        }
        let end = end.wrapping_add(u32::from(r.control == TcpControl::Fin));
        if seq_after(end, self.snd_max) {
            self.snd_max = end;
        }
    }
}

fn dummy() -> Tcb {
    Tcb::connect(
        TcpConfig::default(),
        TcpBuffers::new(Vec::new(), Vec::new()),
        SERVER,
        GUEST,
        SeqNumber(0),
        Instant::ZERO,
    )
}

fuzz_target!(|input: Input| {
    let config = input.cfg.config();
    let (send_cap, recv_cap) = (input.send.bytes(), input.recv.bytes());
    let bufs = TcpBuffers::new(vec![0u8; send_cap], vec![0u8; recv_cap]);
    let now = Instant::from_secs(100);
    let mut syn_bytes = Vec::new();
    let tcb = match &input.accept {
        Some(o) => {
            let syn = TcpRepr {
                src_port: GUEST.port(),
                dst_port: SERVER.port(),
                control: TcpControl::Syn,
                seq_number: SeqNumber(input.guest_isn),
                ack_number: None,
                window_len: o.win,
                window_scale: o.ws,
                max_seg_size: o.mss,
                sack_permitted: o.sack_perm,
                sack_ranges: [None; 3],
                timestamp: o.ts.map(|v| (v, 0)),
                urgent_at: None,
                payload: &[],
            };
            syn_bytes.resize(syn.buffer_len(), 0);
            syn.emit(&mut syn_bytes, *GUEST.ip(), *SERVER.ip());
            let pkt = TcpPacket::new_checked(&syn_bytes[..]).expect("syn");
            let syn = TcpRepr::parse(&pkt, *GUEST.ip(), *SERVER.ip(), true).expect("syn");
            Tcb::accept(config, bufs, SERVER, GUEST, &syn, SeqNumber(input.iss), now)
        }
        None => Tcb::connect(config, bufs, SERVER, GUEST, SeqNumber(input.iss), now),
    };
    let mut h = Harness {
        tcb,
        config,
        now,
        iss: input.iss,
        guest_isn: input.guest_isn,
        isn_known: true,
        content_ok: true,
        send_cap,
        recv_cap,
        enqueued: 0,
        eof_at: None,
        host_got: 0,
        host_takes: usize::MAX,
        snd_max: input.iss,
        rcv_est: input.guest_isn.wrapping_add(1),
        guest_ts: input.accept.as_ref().and_then(|o| o.ts).unwrap_or(1),
        our_ts: 0,
        mss_bound: 0,
        out: Vec::new(),
        payload: Vec::new(),
    };
    h.mss_bound = h.clamp_mss(input.accept.as_ref().and_then(|o| o.mss));
    h.check_state();
    for step in input.steps.into_iter().take(200) {
        match step {
            Step::Seg(s) => {
                let bytes = h.build(&s);
                h.feed(&bytes, false);
            }
            Step::RawSeg(b) => h.feed(&b, true),
            Step::Ack { win } => {
                let s = Seg::plain(Ctl::None, 0, win);
                let bytes = h.build(&s);
                h.feed(&bytes, false);
            }
            Step::Data { len, fin, psh, win } => {
                let ctl = match (fin, psh) {
                    (true, _) => Ctl::Fin,
                    (false, true) => Ctl::Psh,
                    _ => Ctl::None,
                };
                let bytes = h.build(&Seg::plain(ctl, len, win));
                h.feed(&bytes, false);
            }
            Step::Syn { ack, opts } => {
                let s = Seg {
                    control: Ctl::Syn,
                    seq: SeqSel::Isn(0),
                    ack: ack.then_some(AckSel::Max(0)),
                    win: opts.win,
                    mss: opts.mss,
                    ws: opts.ws,
                    sack_perm: opts.sack_perm,
                    sacks: Vec::new(),
                    ts: opts.ts.map(|v| TsSel::Raw(v, 0)),
                    urg: None,
                    len: 0,
                    corrupt: false,
                };
                if let Some(v) = opts.ts {
                    h.guest_ts = v;
                }
                let bytes = h.build(&s);
                h.feed(&bytes, false);
            }
            Step::HostConnected => h.tcb.host_connected(h.now),
            Step::HostRefused => h.tcb.host_refused(),
            Step::Discard => h.tcb.discard(),
            Step::Abort => h.tcb.abort(),
            Step::HostEof => {
                if h.eof_at.is_none() && !h.tcb.is_closed() {
                    h.eof_at = Some(h.enqueued);
                }
                h.tcb.host_eof();
            }
            Step::HostUrgent => h.tcb.host_urgent(),
            Step::Enqueue { len, direct } => {
                let free = h.tcb.send_buffer_free();
                let start = h.enqueued;
                let n = if direct {
                    let mut offered = 0;
                    let n = h.tcb.write_send_buffer(|buf| {
                        let n = buf.len().min(usize::from(len));
                        for (k, b) in buf[..n].iter_mut().enumerate() {
                            *b = host_byte(start + k as u64);
                        }
                        offered = buf.len();
                        n
                    });
                    assert!(offered <= free);
                    n
                } else {
                    let data: Vec<u8> = (0..u64::from(len)).map(|k| host_byte(start + k)).collect();
                    h.tcb.enqueue(&data)
                };
                assert!(n <= free && n <= usize::from(len), "took {n} of {len} with {free} free");
                h.enqueued += n as u64;
            }
            Step::HostRead(n) => {
                let mut left = usize::from(n);
                while left > 0 {
                    let p = h.tcb.pending_to_host();
                    if p.is_empty() {
                        break;
                    }
                    let k = p.len().min(left);
                    let chunk = p[..k].to_vec();
                    h.check_host_bytes(&chunk, h.host_got);
                    h.host_got += k as u64;
                    h.tcb.host_accepted(k);
                    left -= k;
                }
            }
            Step::HostTakes(n) => h.host_takes = usize::from(n),
            Step::Advance(d) => h.advance(d.duration()),
            Step::Timeout => {
                let ev = h.tcb.on_timeout(h.now);
                h.events(ev);
            }
            Step::Emit { count, room, checksum, segmentation } => {
                h.emit(count, room, GuestOffload { checksum, segmentation })
            }
            Step::ReleaseBuffers => {
                if let Some(b) = h.tcb.release_buffers() {
                    assert_eq!(h.tcb.state(), TcpState::TimeWait);
                    assert_eq!((b.send.len(), b.recv.len()), (h.send_cap, h.recv_cap));
                    h.send_cap = 0;
                    h.recv_cap = 0;
                }
            }
        }
        if let Some((checksum, segmentation)) = input.drain {
            let room = if segmentation { Room::Max } else { Room::Mtu };
            h.emit(255, room, GuestOffload { checksum, segmentation });
        }
        h.check_state();
    }
    // What the glue does at the end of every turn: drain the output.
    h.emit(64, Room::Mtu, GuestOffload::default());
});
