//! Opening a connection: the guest's SYN while the host connect is pending and after it
//! (checklist 51-55), and our SYN toward the guest for a port forward (checklist 77-81).

use super::*;

// Guest-initiated.

#[test]
fn accept_sends_nothing_until_host_connects_checklist_51() {
    let mut h = syn_received(plain());
    assert!(h.tcb.is_awaiting_host());
    recv_nothing!(h);
    h.advance(Duration::from_secs(5));
    recv_nothing!(h);
    h.tcb.host_connected(h.now);
    let sa = recv!(h);
    assert_eq!(sa.control, TcpControl::Syn);
    assert_eq!((sa.seq, sa.ack), (OUR_ISS, Some(G1)));
    assert_eq!(sa.mss, Some(1460));
    assert_eq!(sa.win, 65535);
    recv_nothing!(h);
}

#[test]
fn duplicate_syns_absorbed_while_connecting_checklist_51() {
    let mut h = syn_received(plain());
    for _ in 0..3 {
        send!(h, guest_syn());
        recv_nothing!(h);
    }
    assert_eq!(h.tcb.counters().syns_absorbed, 3);
    h.tcb.host_connected(h.now);
    assert_eq!(recv!(h).control, TcpControl::Syn);
    recv_nothing!(h);
}

#[test]
fn new_isn_while_connecting_is_adopted() {
    let mut h = syn_received(plain());
    send!(h, g(7777).syn().mss(1000));
    h.tcb.host_connected(h.now);
    let sa = recv!(h);
    assert_eq!(sa.ack, Some(7778));
}

#[test]
fn host_refused_sends_rst_ack_seq0_ack_isn_plus_1_checklist_52() {
    let mut h = syn_received(plain());
    h.tcb.host_refused();
    let r = recv!(h);
    assert_eq!((r.control, r.seq, r.ack, r.win), (TcpControl::Rst, 0, Some(G1), 0));
    recv_nothing!(h);
    assert!(h.tcb.is_closed());
}

#[test]
fn discard_sends_nothing() {
    let mut h = syn_received(plain());
    h.tcb.discard();
    recv_nothing!(h);
    assert!(h.tcb.is_closed());
    assert_eq!(h.tcb.poll_at(), None);
}

#[test]
fn host_connect_timeout_resets_guest_checklist_54() {
    let mut h = syn_received(plain());
    h.advance(Duration::from_secs(74));
    assert!(!h.tcb.is_closed());
    h.advance(Duration::from_secs(2));
    assert!(h.events.contains(Events::TIMED_OUT | Events::CLOSED));
    let r = recv!(h);
    assert_eq!((r.control, r.seq, r.ack), (TcpControl::Rst, 0, Some(G1)));
}

#[test]
fn guest_rst_while_connecting_closes() {
    let mut h = syn_received(plain());
    let ev = send!(h, g(G1).rst());
    assert!(ev.contains(Events::RESET | Events::CLOSED));
    recv_nothing!(h);
}

#[test]
fn other_segments_while_connecting_are_dropped() {
    let mut h = syn_received(plain());
    send!(h, g(G1).ack(S1).data(b"early"));
    send!(h, g(G1 + 5).rst()); // not exact
    recv_nothing!(h);
    assert!(h.tcb.is_awaiting_host());
    assert_eq!(h.tcb.counters().dropped, 2);
}

#[test]
fn ack_of_syn_ack_establishes_rfc9293_3_5() {
    let mut h = syn_received(plain());
    h.tcb.host_connected(h.now);
    recv!(h);
    let ev = send!(h, g(G1).ack(S1));
    assert!(ev.contains(Events::ESTABLISHED));
    assert_eq!(h.tcb.state(), TcpState::Established);
}

#[test]
fn bad_ack_in_syn_received_draws_rst_rfc9293_3_10_7_4() {
    let mut h = syn_received(plain());
    h.tcb.host_connected(h.now);
    recv!(h);
    send!(h, g(G1).ack(S1 + 1000));
    let r = recv!(h);
    assert_eq!((r.control, r.seq, r.ack), (TcpControl::Rst, S1 + 1000, None));
    assert_eq!(h.tcb.state(), TcpState::SynReceived);
}

#[test]
fn repeated_syn_after_syn_ack_resends_syn_ack() {
    let mut h = syn_received(plain());
    h.tcb.host_connected(h.now);
    recv!(h);
    send!(h, guest_syn());
    let sa = recv!(h);
    assert_eq!((sa.control, sa.seq, sa.ack), (TcpControl::Syn, OUR_ISS, Some(G1)));
    recv_nothing!(h);
}

#[test]
fn syn_ack_retransmitted_with_backoff_then_reset_at_deadline() {
    let mut h = syn_received(plain());
    h.tcb.host_connected(h.now);
    let t0 = h.now;
    recv!(h);
    let mut times = vec![];
    while !h.tcb.is_closed() {
        h.fire();
        if let Some(s) = h.recv() {
            if s.control == TcpControl::Syn {
                times.push((h.now - t0).as_millis());
            } else {
                assert_eq!(s.control, TcpControl::Rst);
                assert_eq!((s.seq, s.ack), (S1, Some(G1)));
            }
        }
    }
    // Initial RTO 200 ms, doubling: 200, 600, 1400, 3000, ...
    assert_eq!(&times[..4], &[200, 600, 1400, 3000]);
    assert!(h.events.contains(Events::TIMED_OUT));
    // The guest had the handshake timeout to answer, not the host connect's 75 s.
    assert!((h.now - t0) >= plain().handshake_timeout && (h.now - t0) < Duration::from_secs(75));
}

// Host-initiated.

#[test]
fn connect_sends_syn_with_our_options_checklist_77() {
    let (_, syn) = syn_sent(TcpConfig::default());
    assert_eq!((syn.control, syn.seq, syn.ack), (TcpControl::Syn, OUR_ISS, None));
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(syn.ws, Some(1)); // 64 KiB receive buffer needs one shift
    assert!(syn.sack_perm);
    assert_eq!(syn.ts.map(|t| t.1), Some(0));
}

#[test]
fn syn_ack_from_guest_establishes() {
    let (mut h, _) = syn_sent(plain());
    let ev = send!(h, g(GUEST_ISN).syn().ack(S1).mss(536));
    assert!(ev.contains(Events::ESTABLISHED));
    let a = recv!(h);
    assert_eq!((a.control, a.seq, a.ack), (TcpControl::None, S1, Some(G1)));
    assert_eq!(h.tcb.send_mss(), 536);
}

#[test]
fn guest_rst_refuses_connect_checklist_79() {
    let (mut h, _) = syn_sent(plain());
    let ev = send!(h, g(0).rst().ack(S1));
    assert!(ev.contains(Events::REFUSED | Events::CLOSED));
    recv_nothing!(h);
}

#[test]
fn rst_without_ack_in_syn_sent_is_ignored_rfc9293_3_10_7_3() {
    let (mut h, _) = syn_sent(plain());
    send!(h, g(0).rst());
    assert_eq!(h.tcb.state(), TcpState::SynSent);
}

#[test]
fn bad_ack_in_syn_sent_draws_rst() {
    let (mut h, _) = syn_sent(plain());
    send!(h, g(GUEST_ISN).syn().ack(OUR_ISS));
    let r = recv!(h);
    assert_eq!((r.control, r.seq), (TcpControl::Rst, OUR_ISS));
    assert_eq!(h.tcb.state(), TcpState::SynSent);
}

#[test]
fn silent_guest_gets_syn_retries_then_timeout_checklist_80() {
    let (mut h, _) = syn_sent(plain());
    let t0 = h.now;
    let mut syns = 0;
    while !h.tcb.is_closed() {
        h.fire();
        while let Some(s) = h.recv() {
            assert_eq!(s.control, TcpControl::Syn);
            syns += 1;
        }
    }
    assert!(syns >= 5, "only {syns} retransmissions");
    assert!(h.events.contains(Events::TIMED_OUT | Events::CLOSED));
    assert_eq!(h.now - t0, plain().handshake_timeout);
}

#[test]
fn connect_negotiates_options_from_syn_ack_rfc7323_rfc2018() {
    let (mut h, syn) = syn_sent(TcpConfig::default());
    send!(h, g(GUEST_ISN).syn().ack(S1).mss(1400).ws(2).sack_perm().ts(77, syn.ts.unwrap().0).win(1000));
    assert_eq!(h.tcb.window_shifts(), (1, 2));
    assert_eq!(h.tcb.options_negotiated(), (true, true));
    assert_eq!(h.tcb.send_mss(), 1388);
    // The SYN-ACK's own window is unscaled.
    assert_eq!(h.tcb.send_window(), 1000);
    let a = recv!(h);
    assert_eq!(a.ts.map(|t| t.1), Some(77));
    send!(h, g(G1).ack(S1).win(1000).ts(78, 0));
    assert_eq!(h.tcb.send_window(), 4000);
}

#[test]
fn connect_without_options_in_syn_ack_uses_none() {
    let (mut h, _) = syn_sent(TcpConfig::default());
    send!(h, g(GUEST_ISN).syn().ack(S1).win(1000));
    assert_eq!(h.tcb.window_shifts(), (0, 0));
    assert_eq!(h.tcb.options_negotiated(), (false, false));
    assert_eq!(h.tcb.send_mss(), 536);
}

#[test]
fn simultaneous_open_rfc9293_figure_8() {
    let (mut h, _) = syn_sent(plain());
    send!(h, g(GUEST_ISN).syn());
    assert_eq!(h.tcb.state(), TcpState::SynReceived);
    let sa = recv!(h);
    assert_eq!((sa.control, sa.seq, sa.ack), (TcpControl::Syn, OUR_ISS, Some(G1)));
    let ev = send!(h, g(G1).ack(S1));
    assert!(ev.contains(Events::ESTABLISHED));
}

#[test]
fn host_eof_before_handshake_sends_fin_after_it() {
    let (mut h, _) = syn_sent(plain());
    h.tcb.enqueue(b"bye");
    h.tcb.host_eof();
    send!(h, g(GUEST_ISN).syn().ack(S1));
    assert_eq!(h.tcb.state(), TcpState::FinWait1);
    let s = recv!(h);
    assert_eq!((s.control, s.payload.as_slice()), (TcpControl::Fin, &b"bye"[..]));
}
