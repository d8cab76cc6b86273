//! Property tests: any sequence of random (or mutated valid) guest segments against a TCB in any
//! state keeps its invariants and its output valid.

use super::*;
use proptest::prelude::*;

fn control() -> impl Strategy<Value = TcpControl> {
    prop_oneof![
        Just(TcpControl::None),
        Just(TcpControl::Psh),
        Just(TcpControl::Syn),
        Just(TcpControl::Fin),
        Just(TcpControl::Rst)
    ]
}

#[derive(Clone, Debug)]
struct Raw {
    control: TcpControl,
    near: bool,
    off: i64,
    rawseq: u32,
    ack: Option<(bool, i64, u32)>,
    win: u16,
    mss: Option<u16>,
    ws: Option<u8>,
    sack_perm: bool,
    sacks: Vec<(u32, u32, i64)>,
    ts: Option<(u32, u32)>,
    urg: Option<u16>,
    len: usize,
}

prop_compose! {
    fn segment()(
        control in control(),
        near in any::<bool>(),
        off in -70_000i64..70_000,
        rawseq in any::<u32>(),
        ack in proptest::option::of((any::<bool>(), -70_000i64..70_000, any::<u32>())),
        win in any::<u16>(),
        mss in proptest::option::of(any::<u16>()),
        ws in proptest::option::of(0u8..20),
        sack_perm in any::<bool>(),
        sacks in proptest::collection::vec((any::<u32>(), 0u32..100_000, -5000i64..5000), 0..3),
        ts in proptest::option::of((any::<u32>(), any::<u32>())),
        urg in proptest::option::of(any::<u16>()),
        len in 0usize..3000,
    ) -> Raw {
        Raw { control, near, off, rawseq, ack, win, mss, ws, sack_perm, sacks, ts, urg, len }
    }
}

/// Turns a random description into a segment near the TCB's sequence space (or anywhere).
fn realise(raw: &Raw, rcv: u32, snd: u32) -> Seg {
    let Raw { control, near, off, rawseq, ack, win, mss, ws, sack_perm: sp, sacks, ts, urg, len } = raw.clone();
    let seq = if near { rcv.wrapping_add(off as u32) } else { rawseq };
    let ack = ack.map(|(n, o, r)| if n { snd.wrapping_add(o as u32) } else { r });
    let mut s = g(seq).win(win);
    s.control = control;
    s.ack = ack;
    s.mss = mss;
    s.ws = ws;
    s.sack_perm = sp;
    for (i, (base, l, o)) in sacks.iter().enumerate() {
        let left = if *base % 2 == 0 { snd.wrapping_add(*o as u32) } else { *base };
        s.sacks[i] = Some((left, left.wrapping_add(*l)));
    }
    s.ts = ts;
    s.urg = urg;
    s.payload = data(len);
    s
}

fn fixture(which: u8) -> H {
    match which % 9 {
        0 => syn_received(plain()),
        1 => syn_sent(TcpConfig::default()).0,
        2 => established(),
        3 => established_opts(),
        4 => {
            let mut h = established();
            h.tcb.enqueue(&data(20_000));
            h.recv_all();
            h
        }
        5 => {
            let mut h = established();
            h.tcb.host_eof();
            h.recv_all();
            h
        }
        6 => {
            let mut h = established();
            send!(h, g(G1).ack(S1).fin());
            h.recv_all();
            h
        }
        7 => {
            let mut h = established_with(plain(), buffers(3000, 3000), guest_syn());
            h.host_takes = 0;
            send!(h, g(G1 + 100).ack(S1).data(&data(500)));
            h.tcb.enqueue(&data(3000));
            h.recv_all();
            h
        }
        _ => {
            let mut h = established();
            h.tcb.host_eof();
            h.recv_all();
            send!(h, g(G1).ack(S1 + 1).fin());
            h.recv_all();
            h
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Any segment sequence against a TCB in any state: no panic, invariants hold, output
    /// stays valid and bounded.
    #[test]
    fn random_segments_keep_invariants(
        which in any::<u8>(),
        segs in proptest::collection::vec((segment(), 0u64..3_000_000, any::<u8>()), 1..25),
    ) {
        let mut h = fixture(which);
        for (raw, dt, takes) in &segs {
            h.host_takes = usize::from(*takes) * 16;
            let s = realise(raw, G1, S1);
            h.send(s);
            h.recv_all();
            h.advance(Duration::from_micros(*dt));
            h.recv_all();
            let k = usize::from(*takes) * 3;
            h.tcb.host_accepted(k);
            h.tcb.enqueue(&data(usize::from(*takes) * 7));
            if *takes == 7 { h.tcb.host_eof(); }
            if *takes == 13 { h.tcb.host_urgent(); }
            h.tcb.check_invariants();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Valid guest segments with random bytes of their header and options overwritten (parsed
    /// without the checksum gate, as a fuzzer build does): whatever parses is handled.
    #[test]
    fn mutated_valid_segments_keep_invariants(
        which in any::<u8>(),
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..6),
        kind in 0u8..4,
        len in 0usize..2000,
    ) {
        let mut h = fixture(which);
        let base = match kind {
            0 => g(G1).ack(S1).data(&data(len)).ts(1000, 0).sack(&[(S1, S1 + 100)]),
            1 => g(G1 + 500).ack(S1).data(&data(len)).urg(7).psh(),
            2 => g(G1).ack(S1).fin().ts(1000, 0),
            _ => g(G1).syn().mss(1200).ws(9).sack_perm().ts(5, 0),
        };
        let r = base.repr();
        let mut bytes = vec![0u8; r.buffer_len()];
        r.emit(&mut bytes, *GUEST.ip(), *SERVER.ip());
        let hl = r.header_len();
        for (at, v) in flips {
            let at = at % hl;
            bytes[at] = v;
        }
        if let Ok(pkt) = TcpPacket::new_checked(&bytes[..]) {
            if let Ok(seg) = TcpRepr::parse(&pkt, *GUEST.ip(), *SERVER.ip(), false) {
                let owned = Seg::from_repr(&seg);
                h.send(owned);
                h.recv_all();
                h.advance(Duration::from_millis(5));
                h.recv_all();
                h.tcb.check_invariants();
            }
        }
    }
}
