//! The timers besides the RTO: which one `poll_at` reports, zero-window persist (RFC 9293
//! 3.8.6.1), keepalive and the idle timeout.

use super::*;

#[test]
fn poll_at_is_the_earliest_timer() {
    let mut h = established();
    assert_eq!(h.tcb.poll_at(), None);
    h.tcb.enqueue(b"x");
    recv!(h);
    assert_eq!(h.tcb.poll_at(), Some(h.now + Duration::from_millis(10)));
    send!(h, g(G1).ack(S1).data(b"y"));
    assert_eq!(h.tcb.poll_at(), Some(h.now + Duration::from_millis(1)));
}

// Zero window and persist.

#[test]
fn zero_window_persist_probes_then_reopen() {
    let mut h = established();
    h.tcb.enqueue(&data(3000));
    let segs = h.recv_all();
    assert_eq!(segs.len(), 3);
    send!(h, g(G1).ack(S1 + 3000).win(0));
    h.tcb.enqueue(&data(100));
    recv_nothing!(h);
    let t0 = h.now;
    let mut gaps = vec![];
    for _ in 0..3 {
        h.fire();
        let p = recv!(h);
        assert_eq!((p.seq, p.payload.len()), (S1 + 2999, 0), "probe one below SND.UNA");
        gaps.push((h.now - t0).as_millis());
        send!(h, g(G1).ack(S1 + 3000).win(0));
    }
    assert!(gaps[1] - gaps[0] > gaps[0], "probes back off: {gaps:?}");
    assert!(!h.tcb.is_closed());
    send!(h, g(G1).ack(S1 + 3000).win(1000));
    let s = recv!(h);
    assert_eq!((s.seq, s.payload.len()), (S1 + 3000, 100));
}

#[test]
fn persist_never_gives_up_while_guest_answers() {
    let mut h = established_with(TcpConfig { max_retransmits: 2, ..plain() }, buffers(4096, 4096), guest_syn().win(0));
    h.tcb.enqueue(b"x");
    recv_nothing!(h);
    for _ in 0..10 {
        h.fire();
        recv!(h);
        send!(h, g(G1).ack(S1).win(0));
    }
    assert!(!h.tcb.is_closed());
    for _ in 0..3 {
        h.fire();
        h.recv_all();
    }
    assert!(h.tcb.is_closed());
}

// Keepalive and idle.

#[test]
fn idle_connection_never_dropped_by_default_checklist_74() {
    let mut h = established();
    assert_eq!(h.tcb.poll_at(), None);
    h.advance(Duration::from_secs(100_000));
    assert_eq!(h.tcb.state(), TcpState::Established);
}

#[test]
fn keepalive_probes_then_drop() {
    let ka = Keepalive { idle: Duration::from_secs(10), interval: Duration::from_secs(1), count: 2 };
    let mut h = established_with(TcpConfig { keepalive: Some(ka), ..plain() }, buffers(1024, 1024), guest_syn());
    h.advance(Duration::from_secs(10));
    let p = recv!(h);
    assert_eq!((p.seq, p.payload.len()), (OUR_ISS, 0));
    // An answer resets the idle clock.
    send!(h, g(G1).ack(S1));
    h.advance(Duration::from_secs(9));
    recv_nothing!(h);
    h.advance(Duration::from_secs(1));
    recv!(h);
    h.advance(Duration::from_secs(1));
    recv!(h);
    h.advance(Duration::from_secs(1));
    assert!(h.tcb.is_closed());
    assert!(h.events.contains(Events::TIMED_OUT));
    assert_eq!(recv!(h).control, TcpControl::Rst);
}

#[test]
fn idle_timeout_aborts() {
    let mut h = established_with(
        TcpConfig { idle_timeout: Some(Duration::from_secs(30)), ..plain() },
        buffers(1024, 1024),
        guest_syn(),
    );
    h.advance(Duration::from_secs(29));
    assert!(!h.tcb.is_closed());
    h.advance(Duration::from_secs(1));
    assert!(h.tcb.is_closed());
    assert!(h.events.contains(Events::TIMED_OUT | Events::CLOSED));
}
