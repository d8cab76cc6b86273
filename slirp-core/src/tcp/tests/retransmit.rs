//! Retransmission and loss recovery: RTO with backoff (RFC 6298), go-back-N after a timeout
//! (RFC 5681), fast retransmit and NewReno (RFC 6582), SACK hole repair (RFC 6675), and undoing a
//! spurious timeout (RFC 4015).

use super::*;

#[test]
fn rto_retransmits_with_exponential_backoff_rfc6298_5_5() {
    let mut h = established();
    h.tcb.enqueue(b"data");
    let t0 = h.now;
    recv!(h);
    let mut times = vec![];
    for _ in 0..4 {
        h.fire();
        let s = recv!(h);
        assert_eq!((s.seq, s.payload.as_slice()), (S1, &b"data"[..]));
        times.push((h.now - t0).as_millis());
    }
    // The handshake RTT sample is ~0, so RTO sits at the 10 ms floor, then doubles.
    assert_eq!(times, [10, 30, 70, 150]);
    assert_eq!(h.tcb.counters().timeouts, 4);
    // An ACK of new data resets the backoff.
    send!(h, g(G1).ack(S1 + 4));
    assert_eq!(h.tcb.poll_at(), None);
}

#[test]
fn lone_segment_waits_for_a_delayed_ack_rfc8985() {
    let cfg = TcpConfig { lone_segment_allowance: Duration::from_millis(200), ..plain() };
    let mut h = established_with(cfg, buffers(64 * 1024, 64 * 1024), guest_syn());
    h.tcb.enqueue(b"response");
    recv!(h);
    // One segment in flight: the guest may sit on its ACK for up to 200 ms.
    assert_eq!(h.tcb.poll_at(), Some(h.now + Duration::from_millis(200)));
    send!(h, g(G1).ack(S1 + 8));
    // A full window in flight keeps the low floor: ACKs come every second segment.
    h.tcb.enqueue(&data(10 * 1460));
    let t0 = h.now;
    while h.tcb.emit_next(h.now, &mut [0u8; 2000]).is_some() {}
    assert_eq!(h.tcb.poll_at(), Some(t0 + Duration::from_millis(10)));
}

#[test]
fn rto_capped_at_max() {
    let cfg = TcpConfig { max_rto: Duration::from_millis(100), max_retransmits: 50, ..plain() };
    let mut h = established_with(cfg, buffers(1024, 1024), guest_syn());
    h.tcb.enqueue(b"x");
    recv!(h);
    let mut last = h.now;
    for i in 0..10 {
        h.fire();
        recv!(h);
        let gap = h.now - last;
        last = h.now;
        assert!(gap <= Duration::from_millis(100), "gap {gap:?} at {i}");
    }
}

#[test]
fn rto_tracks_measured_rtt() {
    let mut h = established_opts();
    for i in 0..8u32 {
        h.tcb.enqueue(b"x");
        let s = recv!(h);
        h.advance(Duration::from_millis(40));
        send!(h, g(G1).ack(S1 + i + 1).ts(200 + i, s.ts.unwrap().0).win(65535));
        h.recv_all();
    }
    // Eight samples of 40 ms after a first one of ~0: srtt converges by 1/8 per sample.
    assert!(h.tcb.srtt() >= Duration::from_millis(25), "{:?}", h.tcb.srtt());
    assert!(h.tcb.rto() >= Duration::from_millis(40));
}

#[test]
fn gives_up_after_max_retransmits() {
    let cfg = TcpConfig { max_retransmits: 3, ..plain() };
    let mut h = established_with(cfg, buffers(1024, 1024), guest_syn());
    h.tcb.enqueue(b"x");
    recv!(h);
    for _ in 0..3 {
        h.fire();
        recv!(h);
    }
    let ev = h.fire();
    assert!(ev.contains(Events::TIMED_OUT | Events::CLOSED));
    let r = recv!(h);
    assert_eq!(r.control, TcpControl::Rst);
}

#[test]
fn timeout_collapses_cwnd_and_goes_back_n_rfc5681_3_1() {
    let mut h = established();
    h.tcb.enqueue(&data(5000));
    assert_eq!(h.recv_all().len(), 4);
    h.fire();
    let segs = h.recv_all();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].seq, S1);
    assert_eq!(h.tcb.cwnd(), 1460);
    send!(h, g(G1).ack(S1 + 1460));
    let segs = h.recv_all();
    assert_eq!(segs[0].seq, S1 + 1460);
}

#[test]
fn fast_retransmit_after_three_dup_acks_rfc5681_3_2() {
    let mut h = established();
    h.tcb.enqueue(&data(8 * 1460));
    assert_eq!(h.recv_all().len(), 8);
    send!(h, g(G1).ack(S1 + 1460));
    h.recv_all();
    for _ in 0..2 {
        send!(h, g(G1).ack(S1 + 1460));
        recv_nothing!(h);
    }
    send!(h, g(G1).ack(S1 + 1460));
    let r = recv!(h);
    assert_eq!(r.seq, S1 + 1460);
    assert_eq!(h.tcb.counters().fast_retransmits, 1);
    assert_eq!(h.tcb.counters().dup_acks, 3);
    // Partial ACK: the next hole goes at once (NewReno, RFC 6582).
    send!(h, g(G1).ack(S1 + 2 * 1460));
    let r = recv!(h);
    assert_eq!(r.seq, S1 + 2 * 1460);
    // Full ACK leaves recovery.
    send!(h, g(G1).ack(S1 + 8 * 1460));
    assert_eq!(h.tcb.send_queue_len(), 0);
}

#[test]
fn no_fast_retransmit_from_dup_acks_after_a_timeout_rfc6582_3_2() {
    let mut h = established();
    h.tcb.enqueue(&data(6 * 1460));
    assert_eq!(h.recv_all().len(), 6);
    h.fire();
    h.recv_all();
    // The guest had the later segments: our go-back-N repeats draw duplicate ACKs below
    // `recover`, which must not start a fast retransmit.
    for _ in 0..4 {
        send!(h, g(G1).ack(S1 + 1460));
    }
    send!(h, g(G1).ack(S1 + 1460));
    assert_eq!(h.tcb.counters().fast_retransmits, 0);
}

#[test]
fn sack_recovery_resends_only_holes_rfc6675() {
    let mut h = established_opts();
    let mss = h.tcb.send_mss() as u32;
    h.tcb.enqueue(&data(8 * mss as usize));
    let segs = h.recv_all();
    assert_eq!(segs.len(), 8);
    let ts = segs[7].ts.unwrap().0;
    // Segments 0 and 3 lost; the guest SACKs 1-2 and 4-7.
    let a = |blocks: &[(u32, u32)]| g(G1).ack(S1).ts(300, ts).win(65535).sack(blocks);
    send!(h, a(&[(S1 + mss, S1 + 3 * mss)]));
    send!(h, a(&[(S1 + 4 * mss, S1 + 5 * mss), (S1 + mss, S1 + 3 * mss)]));
    send!(h, a(&[(S1 + 4 * mss, S1 + 8 * mss), (S1 + mss, S1 + 3 * mss)]));
    let r = h.recv_all();
    let seqs: Vec<u32> = r.iter().map(|s| s.seq).collect();
    assert_eq!(seqs[0], S1);
    assert!(seqs.contains(&(S1 + 3 * mss)), "{seqs:?}");
    assert!(!seqs.contains(&(S1 + mss)), "resent SACKed data: {seqs:?}");
    assert!(!seqs.contains(&(S1 + 5 * mss)), "resent SACKed data: {seqs:?}");
}

#[test]
fn spurious_timeout_is_undone_rfc4015() {
    let mut h = established_opts();
    h.tcb.enqueue(&data(3 * 1448));
    let segs = h.recv_all();
    assert_eq!(segs.len(), 3);
    let cwnd = h.tcb.cwnd();
    h.fire();
    let r = recv!(h);
    assert_eq!(r.seq, S1);
    assert_eq!(h.tcb.cwnd(), 1448);
    // The guest's delayed ACK for the originals arrives, echoing their timestamp.
    send!(h, g(G1).ack(S1 + 3 * 1448).ts(300, segs[2].ts.unwrap().0).win(65535));
    assert_eq!(h.tcb.counters().spurious_timeouts, 1);
    assert!(h.tcb.cwnd() >= cwnd);
    recv_nothing!(h);
}

#[test]
fn genuine_timeout_is_not_undone() {
    let mut h = established_opts();
    h.tcb.enqueue(&data(1448));
    recv!(h);
    // A lone segment: the RTO includes the delayed-ACK allowance.
    h.advance(Duration::from_millis(200));
    let r = recv!(h);
    h.advance(Duration::from_millis(1));
    send!(h, g(G1).ack(S1 + 1448).ts(300, r.ts.unwrap().0).win(65535));
    assert_eq!(h.tcb.counters().spurious_timeouts, 0);
}
