//! Two of our TCBs over a lossy, reordering, duplicating in-memory link: one plays the guest (a
//! port-forward style connect), the other is slirp's side; both byte streams must arrive intact.

use super::*;
use proptest::prelude::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Side {
    tcb: Tcb<'static>,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    to_send: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    eof_sent: bool,
}

impl Side {
    fn feed(&mut self, rng: &mut Rng) {
        if self.sent < self.to_send.len() {
            let chunk = (rng.below(5000) as usize + 1).min(self.to_send.len() - self.sent);
            let n = self.tcb.enqueue(&self.to_send[self.sent..self.sent + chunk]);
            self.sent += n;
        } else if !self.eof_sent && self.tcb.state() != TcpState::SynSent && self.tcb.state() != TcpState::SynReceived {
            self.tcb.host_eof();
            self.eof_sent = true;
        }
        // The host drains at a random pace.
        let take = rng.below(3000) as usize;
        let p = self.tcb.pending_to_host();
        let n = p.len().min(take);
        self.got.extend_from_slice(&p[..n]);
        self.tcb.host_accepted(n);
    }

    fn emit(&mut self, now: Instant, out: &mut Vec<(Instant, Vec<u8>)>, rng: &mut Rng, loss: u64) {
        let mut buf = vec![0u8; 1600];
        for _ in 0..64 {
            let promised = self.tcb.has_output(now);
            let Some(n) = self.tcb.emit_next(now, &mut buf) else { break };
            assert!(promised, "has_output() said nothing was due");
            self.tcb.check_invariants();
            if rng.below(1000) < loss {
                continue;
            }
            let delay = Duration::from_micros(rng.below(400));
            out.push((now + delay, buf[..n].to_vec()));
            if rng.below(100) < 2 {
                out.push((now + delay + Duration::from_micros(50), buf[..n].to_vec()));
            }
        }
    }

    /// Delivers one segment; returns the RST a closed side's stack answers with (the glue's
    /// `send_reset`, or the guest's kernel), for the other side.
    fn deliver(&mut self, now: Instant, bytes: &[u8], rng: &mut Rng) -> Option<Vec<u8>> {
        let pkt = TcpPacket::new_checked(bytes).unwrap();
        let r = TcpRepr::parse(&pkt, *self.dst.ip(), *self.src.ip(), true).unwrap();
        if self.tcb.is_closed() {
            let rst = crate::tcp::reset_reply(&r)?;
            let mut out = vec![0u8; rst.buffer_len()];
            rst.emit(&mut out, *self.src.ip(), *self.dst.ip());
            return Some(out);
        }
        let take = rng.below(4000) as usize;
        let got = &mut self.got;
        self.tcb.on_segment(now, &r, |d| {
            let n = d.len().min(take);
            got.extend_from_slice(&d[..n]);
            n
        });
        self.tcb.check_invariants();
        None
    }
}

fn run_loop(seed: u64, loss: u64, cfg: TcpConfig, a_len: usize, b_len: usize) {
    let mut rng = Rng(seed | 1);
    let mut now = Instant::from_secs(1);
    let guest_cfg = cfg;
    let up = data(a_len);
    let down: Vec<u8> = data(b_len).iter().map(|b| b ^ 0x5a).collect();
    let mut guest = Side {
        tcb: Tcb::connect(guest_cfg, buffers(32 * 1024, 48 * 1024), GUEST, SERVER, SeqNumber(rng.next() as u32), now),
        src: GUEST,
        dst: SERVER,
        to_send: up.clone(),
        sent: 0,
        got: vec![],
        eof_sent: false,
    };
    // The guest's SYN reaches slirp (retrying if lost is the guest TCB's job; here the first
    // one goes through).
    let mut buf = vec![0u8; 1600];
    let n = guest.tcb.emit_next(now, &mut buf).unwrap();
    let pkt = TcpPacket::new_checked(&buf[..n]).unwrap();
    let syn = TcpRepr::parse(&pkt, *GUEST.ip(), *SERVER.ip(), true).unwrap();
    let mut ours = Side {
        tcb: Tcb::accept(cfg, buffers(64 * 1024, 40 * 1024), SERVER, GUEST, &syn, SeqNumber(rng.next() as u32), now),
        src: SERVER,
        dst: GUEST,
        to_send: down.clone(),
        sent: 0,
        got: vec![],
        eof_sent: false,
    };
    ours.tcb.host_connected(now);
    let mut to_guest: Vec<(Instant, Vec<u8>)> = vec![];
    let mut to_ours: Vec<(Instant, Vec<u8>)> = vec![];
    let deadline = now + Duration::from_secs(600);
    let mut steps = 0u32;
    // Over when both are closed and each host has read everything (a closed TCB still holds
    // what its host has not taken yet).
    let over = |s: &Side| s.tcb.is_closed() && s.tcb.pending_to_host().is_empty();
    while !(over(&guest) && over(&ours)) {
        steps += 1;
        assert!(
            now < deadline && steps < 2_000_000,
            "stalled at {:?}: guest {} ours {}\n{}\n{}",
            now,
            guest.tcb.state(),
            ours.tcb.state(),
            guest.tcb.summary(),
            ours.tcb.summary()
        );
        // Deliver whatever is due, in arrival order (random delays reorder). A side that has
        // closed answers with RST, as a real stack does (a lost final ACK then ends the
        // peer's retransmissions instead of leaving it to back off for minutes).
        let mut resets = [vec![], vec![]];
        for (i, (q, side)) in [(&mut to_guest, &mut guest), (&mut to_ours, &mut ours)].into_iter().enumerate() {
            q.sort_by_key(|(t, _)| *t);
            let due = q.iter().take_while(|(t, _)| *t <= now).count();
            for (_, bytes) in q.drain(..due).collect::<Vec<_>>() {
                resets[i].extend(side.deliver(now, &bytes, &mut rng));
            }
        }
        let [from_guest, from_ours] = resets;
        to_ours.extend(from_guest.into_iter().map(|r| (now + Duration::from_micros(50), r)));
        to_guest.extend(from_ours.into_iter().map(|r| (now + Duration::from_micros(50), r)));
        for side in [&mut guest, &mut ours] {
            if side.tcb.poll_at().is_some_and(|t| t <= now) {
                side.tcb.on_timeout(now);
                side.tcb.check_invariants();
            }
        }
        // Like the glue: after all inputs, let the hosts move bytes and pull every segment.
        guest.feed(&mut rng);
        ours.feed(&mut rng);
        guest.emit(now, &mut to_ours, &mut rng, loss);
        ours.emit(now, &mut to_guest, &mut rng, loss);
        // Next instant: the earliest of queued arrivals and timers (and a short step while a
        // host still has bytes to give or take), at least a microsecond on.
        let busy = [&guest, &ours]
            .iter()
            .any(|s| s.sent < s.to_send.len() || !s.eof_sent || !s.tcb.pending_to_host().is_empty());
        let mut next = if busy { now + Duration::from_micros(100) } else { deadline };
        for t in [guest.tcb.poll_at(), ours.tcb.poll_at()].into_iter().flatten() {
            next = next.min(t);
        }
        for (t, _) in to_guest.iter().chain(to_ours.iter()) {
            next = next.min(*t);
        }
        now = next.max(now + Duration::from_micros(1));
    }
    // An ACK war (each side finding the other's ACKs out of window) shows up as a flood.
    let segs = guest.tcb.counters().segments_in + ours.tcb.counters().segments_in;
    assert!(segs < 20 * ((a_len + b_len) as u64 / 500 + 50), "{segs} segments for the transfer");
    assert_eq!(ours.got.len(), up.len(), "guest → host length");
    assert!(ours.got == up, "guest → host bytes differ");
    assert_eq!(guest.got.len(), down.len(), "host → guest length");
    assert!(guest.got == down, "host → guest bytes differ");
}

/// A seed that stalls a harness pulling segments before it delivers the inputs of the same
/// instant (`run_loop` delivers first, as the glue does).
#[test]
fn regression_seed_fin_after_last_ack() {
    run_loop(4497323140873006432, 5, plain(), 110692, 43934);
}

/// A seed that ends in an ACK war unless ACKs carry SND.MAX: after a timeout, an ACK with the
/// rewound SND.NXT is out of the other side's window, and each side answers the other's ACKs.
#[test]
fn regression_seed_ack_war() {
    run_loop(991066262587464094, 8, TcpConfig::default(), 105976, 132781);
}

/// A seed where the guest, in CLOSING, retransmits its FIN after our side has left TIME_WAIT:
/// only the RST a closed side answers with ends it.
#[test]
fn regression_seed_closing_after_time_wait() {
    run_loop(15026478046472154088, 23, TcpConfig::default(), 4345, 98385);
}

/// A seed where the guest's FIN is acknowledged and the connection closes (LAST-ACK) while
/// 4 kB the guest sent still wait for a slow host reader: a closed TCB keeps them for the host
/// (the glue finishes the connection only once they are taken).
#[test]
fn regression_seed_closed_with_data_for_the_host() {
    run_loop(1306308782609130446, 3, plain(), 147006, 91630);
}

#[test]
fn stream_through_clean_loop_arrives_intact() {
    run_loop(1, 0, TcpConfig::default(), 300_000, 500_000);
    run_loop(2, 0, plain(), 100_000, 100_000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Both directions arrive intact through loss (up to 5%), reordering and duplication,
    /// with and without SACK/timestamps/window scaling.
    #[test]
    fn stream_through_lossy_loop_arrives_intact(
        seed in any::<u64>(),
        loss in 0u64..50,
        opts in any::<bool>(),
        a_len in 0usize..150_000,
        b_len in 0usize..150_000,
    ) {
        let cfg = if opts { TcpConfig::default() } else { plain() };
        run_loop(seed, loss, cfg, a_len, b_len);
    }
}
