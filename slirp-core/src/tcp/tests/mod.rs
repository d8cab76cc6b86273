//! Segment-level tests: build a TCB in a named state, `send!` guest segments, `recv!` what we
//! emit, `recv_nothing!` when silence is the behaviour. One behaviour per test, named after it.
//!
//! This file holds the shared harness (segments as plain values, the TCB with a virtual clock and
//! a fake host socket, the macros, the fixtures that build each state); the tests live in one
//! file per behaviour: opening, receiving, sending, closing, resets, retransmission, the other
//! timers, options, urgent data, edge cases, and the property tests (random segments; two TCBs
//! over a lossy link).

use super::*;
use crate::time::Instant;
use crate::wire::{SeqNumber, TcpControl, TcpPacket, TcpRepr};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::vec;
use std::vec::Vec;

const GUEST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), 40000);
const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 80);
const GUEST_ISN: u32 = 1000;
const OUR_ISS: u32 = 5000;
/// First sequence number of guest data / of our data.
const G1: u32 = GUEST_ISN + 1;
const S1: u32 = OUR_ISS + 1;

// ------------------------------------------------------------------------------------------------
// Segments as plain values.

#[derive(Clone, Debug, PartialEq, Eq)]
struct Seg {
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
    win: u16,
    ws: Option<u8>,
    mss: Option<u16>,
    sack_perm: bool,
    sacks: [Option<(u32, u32)>; 3],
    ts: Option<(u32, u32)>,
    urg: Option<u16>,
    payload: Vec<u8>,
}

/// A guest segment at `seq` with a 64000-byte window and nothing else.
fn g(seq: u32) -> Seg {
    Seg {
        control: TcpControl::None,
        seq,
        ack: None,
        win: 64000,
        ws: None,
        mss: None,
        sack_perm: false,
        sacks: [None; 3],
        ts: None,
        urg: None,
        payload: vec![],
    }
}

impl Seg {
    fn ack(mut self, a: u32) -> Self {
        self.ack = Some(a);
        self
    }
    fn syn(mut self) -> Self {
        self.control = TcpControl::Syn;
        self
    }
    fn fin(mut self) -> Self {
        self.control = TcpControl::Fin;
        self
    }
    fn rst(mut self) -> Self {
        self.control = TcpControl::Rst;
        self
    }
    fn psh(mut self) -> Self {
        self.control = TcpControl::Psh;
        self
    }
    fn win(mut self, w: u16) -> Self {
        self.win = w;
        self
    }
    fn data(mut self, d: &[u8]) -> Self {
        self.payload = d.to_vec();
        self
    }
    fn mss(mut self, m: u16) -> Self {
        self.mss = Some(m);
        self
    }
    fn ws(mut self, s: u8) -> Self {
        self.ws = Some(s);
        self
    }
    fn sack_perm(mut self) -> Self {
        self.sack_perm = true;
        self
    }
    fn sack(mut self, blocks: &[(u32, u32)]) -> Self {
        for (i, b) in blocks.iter().take(3).enumerate() {
            self.sacks[i] = Some(*b);
        }
        self
    }
    fn ts(mut self, v: u32, e: u32) -> Self {
        self.ts = Some((v, e));
        self
    }
    fn urg(mut self, u: u16) -> Self {
        self.urg = Some(u);
        self
    }
    fn repr(&self) -> TcpRepr<'_> {
        TcpRepr {
            src_port: GUEST.port(),
            dst_port: SERVER.port(),
            control: self.control,
            seq_number: SeqNumber(self.seq),
            ack_number: self.ack.map(SeqNumber),
            window_len: self.win,
            window_scale: self.ws,
            max_seg_size: self.mss,
            sack_permitted: self.sack_perm,
            sack_ranges: self.sacks,
            timestamp: self.ts,
            urgent_at: self.urg,
            payload: &self.payload,
        }
    }
    fn from_repr(r: &TcpRepr) -> Seg {
        Seg {
            control: r.control,
            seq: r.seq_number.0,
            ack: r.ack_number.map(|a| a.0),
            win: r.window_len,
            ws: r.window_scale,
            mss: r.max_seg_size,
            sack_perm: r.sack_permitted,
            sacks: r.sack_ranges,
            ts: r.timestamp,
            urg: r.urgent_at,
            payload: r.payload.to_vec(),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The harness: one TCB, a virtual clock, a fake host socket.

struct H {
    tcb: Tcb<'static>,
    now: Instant,
    /// Bytes the host socket took.
    host: Vec<u8>,
    /// How many bytes the host takes per write.
    host_takes: usize,
    events: Events,
}

/// No options, and no lone-segment allowance, so RTO arithmetic shows plainly (the allowance
/// has its own test).
fn plain() -> TcpConfig {
    TcpConfig {
        window_scaling: false,
        sack: false,
        timestamps: false,
        lone_segment_allowance: Duration::ZERO,
        ..TcpConfig::default()
    }
}

fn buffers(send: usize, recv: usize) -> TcpBuffers<'static> {
    TcpBuffers::new(vec![0u8; send], vec![0u8; recv])
}

fn guest_syn() -> Seg {
    g(GUEST_ISN).syn().mss(1460).win(64000)
}

impl H {
    fn accept_with(config: TcpConfig, bufs: TcpBuffers<'static>, syn: Seg) -> H {
        let now = Instant::from_secs(100);
        let tcb = Tcb::accept(config, bufs, SERVER, GUEST, &syn.repr(), SeqNumber(OUR_ISS), now);
        H { tcb, now, host: vec![], host_takes: usize::MAX, events: Events::NONE }
    }

    fn send(&mut self, s: Seg) -> Events {
        let (host, takes) = (&mut self.host, self.host_takes);
        let ev = self.tcb.on_segment(self.now, &s.repr(), |d| {
            let n = d.len().min(takes);
            host.extend_from_slice(&d[..n]);
            n
        });
        self.tcb.check_invariants();
        self.events |= ev;
        ev
    }

    fn recv(&mut self) -> Option<Seg> {
        let mut buf = vec![0u8; 70000];
        let promised = self.tcb.has_output(self.now);
        let n = self.tcb.emit_next(self.now, &mut buf)?;
        assert!(promised, "has_output() said nothing was due");
        let pkt = TcpPacket::new_checked(&buf[..n]).expect("header");
        let r = TcpRepr::parse(&pkt, *SERVER.ip(), *GUEST.ip(), true).expect("valid segment with checksum");
        assert_eq!((r.src_port, r.dst_port), (SERVER.port(), GUEST.port()));
        self.tcb.check_invariants();
        Some(Seg::from_repr(&r))
    }

    fn recv_all(&mut self) -> Vec<Seg> {
        let mut v = vec![];
        while let Some(s) = self.recv() {
            v.push(s);
            assert!(v.len() < 10_000, "emit_next never stops");
        }
        v
    }

    /// Moves the clock by `d`, running every timer due on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.tcb.poll_at() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            let ev = self.tcb.on_timeout(self.now);
            self.events |= ev;
            self.tcb.check_invariants();
        }
        self.now = end;
    }

    /// Jumps to the next timer and runs it.
    fn fire(&mut self) -> Events {
        let t = self.tcb.poll_at().expect("a timer is armed");
        self.now = self.now.max(t);
        let ev = self.tcb.on_timeout(self.now);
        self.events |= ev;
        self.tcb.check_invariants();
        ev
    }

    /// Drains the host-bound buffer into `host`.
    fn drain_to_host(&mut self) {
        loop {
            let p = self.tcb.pending_to_host().to_vec();
            if p.is_empty() {
                break;
            }
            self.host.extend_from_slice(&p);
            self.tcb.host_accepted(p.len());
        }
    }
}

macro_rules! send {
    ($h:expr, $s:expr) => {
        $h.send($s)
    };
}

macro_rules! recv {
    ($h:expr) => {
        $h.recv().expect("expected a segment")
    };
}

macro_rules! recv_nothing {
    ($h:expr) => {{
        let s = $h.recv();
        assert!(s.is_none(), "expected nothing, got {:?}", s);
    }};
}

/// Guest SYN accepted, host connect pending.
fn syn_received(config: TcpConfig) -> H {
    H::accept_with(config, buffers(64 * 1024, 64 * 1024), guest_syn())
}

/// Established with no options (plain config), 64 KiB buffers, guest window 64000.
fn established() -> H {
    established_with(plain(), buffers(64 * 1024, 64 * 1024), guest_syn())
}

fn established_with(config: TcpConfig, bufs: TcpBuffers<'static>, syn: Seg) -> H {
    let mut h = H::accept_with(config, bufs, syn.clone());
    h.tcb.host_connected(h.now);
    let sa = recv!(h);
    assert_eq!(sa.control, TcpControl::Syn);
    let mut ack = g(G1).ack(S1).win(syn.win);
    if let (Some((v, _)), Some((_, _))) = (syn.ts, sa.ts) {
        ack = ack.ts(v + 1, sa.ts.unwrap().0);
    }
    let ev = send!(h, ack);
    assert!(ev.contains(Events::ESTABLISHED));
    assert_eq!(h.tcb.state(), TcpState::Established);
    recv_nothing!(h);
    h.events = Events::NONE;
    h
}

/// Established with every option negotiated (WS 7 from the guest, SACK, timestamps).
fn established_opts() -> H {
    established_with(
        TcpConfig::default(),
        buffers(256 * 1024, 256 * 1024),
        guest_syn().ws(7).sack_perm().ts(100, 0).win(65535),
    )
}

/// Host-initiated: our SYN is out, state SYN-SENT.
fn syn_sent(config: TcpConfig) -> (H, Seg) {
    let now = Instant::from_secs(100);
    let tcb = Tcb::connect(config, buffers(64 * 1024, 64 * 1024), SERVER, GUEST, SeqNumber(OUR_ISS), now);
    let mut h = H { tcb, now, host: vec![], host_takes: usize::MAX, events: Events::NONE };
    let syn = recv!(h);
    assert_eq!(h.tcb.state(), TcpState::SynSent);
    (h, syn)
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

// The test modules come after the macros: `macro_rules!` scope is textual.
mod close;
mod edges;
mod open;
mod options;
mod props;
mod receive;
mod reset;
mod retransmit;
mod send;
mod stream_loop;
mod timers;
mod urgent;
