//! Closing: FIN either way first, simultaneous close, TIME_WAIT and what it still answers.

use super::*;

#[test]
fn guest_fin_then_host_eof_last_ack_closed_checklist_68() {
    let mut h = established();
    let ev = send!(h, g(G1).ack(S1).data(b"req").fin());
    assert!(ev.contains(Events::GUEST_FIN));
    assert!(h.tcb.should_shutdown_host_write());
    assert_eq!(h.tcb.state(), TcpState::CloseWait);
    assert_eq!(recv!(h).ack, Some(G1 + 4));
    // The host may still answer (half-close).
    h.tcb.enqueue(b"resp");
    h.tcb.host_eof();
    assert_eq!(h.tcb.state(), TcpState::LastAck);
    let f = recv!(h);
    assert_eq!((f.control, f.payload.as_slice(), f.seq), (TcpControl::Fin, &b"resp"[..], S1));
    let ev = send!(h, g(G1 + 4).ack(S1 + 5));
    assert!(ev.contains(Events::CLOSED));
    assert!(h.tcb.is_closed());
}

#[test]
fn guest_fin_waits_for_buffered_bytes_before_shutdown() {
    let mut h = established();
    h.host_takes = 1;
    send!(h, g(G1).ack(S1).data(b"abc").fin());
    assert!(h.tcb.guest_finished());
    assert!(!h.tcb.should_shutdown_host_write());
    h.drain_to_host();
    assert!(h.tcb.should_shutdown_host_write());
    assert_eq!(h.host, b"abc");
}

#[test]
fn host_eof_fin_wait_then_guest_fin_time_wait_checklist_67() {
    let mut h = established();
    h.tcb.host_eof();
    assert_eq!(h.tcb.state(), TcpState::FinWait1);
    let f = recv!(h);
    assert_eq!((f.control, f.seq), (TcpControl::Fin, S1));
    send!(h, g(G1).ack(S1 + 1));
    assert_eq!(h.tcb.state(), TcpState::FinWait2);
    // Half-closed: the guest keeps sending.
    send!(h, g(G1).ack(S1 + 1).data(b"more"));
    assert_eq!(h.host, b"more");
    send!(h, g(G1 + 4).ack(S1 + 1).fin());
    assert_eq!(h.tcb.state(), TcpState::TimeWait);
    assert_eq!(recv!(h).ack, Some(G1 + 5));
}

#[test]
fn time_wait_expires_after_configured_time() {
    let mut h = established();
    h.tcb.host_eof();
    recv!(h);
    send!(h, g(G1).ack(S1 + 1).fin());
    assert_eq!(h.tcb.state(), TcpState::TimeWait);
    recv!(h);
    h.advance(Duration::from_millis(999));
    assert_eq!(h.tcb.state(), TcpState::TimeWait);
    // A retransmitted FIN is ACKed and restarts the timer (RFC 9293 3.10.7.4).
    send!(h, g(G1).ack(S1 + 1).fin());
    assert_eq!(recv!(h).ack, Some(G1 + 1));
    h.advance(Duration::from_millis(999));
    assert_eq!(h.tcb.state(), TcpState::TimeWait);
    h.advance(Duration::from_millis(2));
    assert!(h.tcb.is_closed());
    assert!(h.events.contains(Events::CLOSED));
}

#[test]
fn time_wait_gives_its_buffers_back_and_still_answers_a_retransmitted_fin() {
    let mut h = established();
    assert!(h.tcb.release_buffers().is_none(), "not before TIME_WAIT");
    h.tcb.host_eof();
    recv!(h);
    send!(h, g(G1).ack(S1 + 1).fin());
    assert_eq!(h.tcb.state(), TcpState::TimeWait);
    recv!(h);
    let b = h.tcb.release_buffers().expect("both buffers are empty in TIME_WAIT");
    assert!(!b.send.is_empty() && !b.recv.is_empty());
    assert!(h.tcb.release_buffers().is_none(), "released once");
    // The old incarnation's FIN again: ACKed as before, with nothing to offer.
    send!(h, g(G1).ack(S1 + 1).fin());
    let a = recv!(h);
    assert_eq!((a.ack, a.win), (Some(G1 + 1), 0));
    // Stray data from the old incarnation is not taken.
    send!(h, g(G1 + 1).ack(S1 + 1).data(b"late"));
    assert_eq!(h.tcb.state(), TcpState::TimeWait);
    h.advance(Duration::from_millis(1001));
    assert!(h.tcb.is_closed());
    assert!(h.tcb.release_buffers().is_none());
}

#[test]
fn fin_and_ack_together_go_straight_to_time_wait() {
    let mut h = established();
    h.tcb.host_eof();
    recv!(h);
    send!(h, g(G1).ack(S1 + 1).fin());
    assert_eq!(h.tcb.state(), TcpState::TimeWait);
}

#[test]
fn simultaneous_close_goes_through_closing_rfc9293_figure_13() {
    let mut h = established();
    h.tcb.host_eof();
    let f = recv!(h);
    assert_eq!(f.control, TcpControl::Fin);
    send!(h, g(G1).ack(S1).fin());
    assert_eq!(h.tcb.state(), TcpState::Closing);
    assert_eq!(recv!(h).ack, Some(G1 + 1));
    send!(h, g(G1 + 1).ack(S1 + 1));
    assert_eq!(h.tcb.state(), TcpState::TimeWait);
}

#[test]
fn out_of_order_fin_is_not_taken() {
    let mut h = established();
    send!(h, g(G1 + 10).ack(S1).data(b"tail").fin());
    assert_eq!(h.tcb.state(), TcpState::Established);
    assert!(!h.tcb.guest_finished());
    send!(h, g(G1).ack(S1).data(&[0; 10]));
    assert!(!h.tcb.guest_finished());
    // The guest retransmits the FIN segment.
    send!(h, g(G1 + 10).ack(S1).data(b"tail").fin());
    assert_eq!(h.tcb.state(), TcpState::CloseWait);
}

#[test]
fn fin_retransmitted_after_timeout() {
    let mut h = established();
    h.tcb.host_eof();
    recv!(h);
    h.fire();
    let f = recv!(h);
    assert_eq!((f.control, f.seq), (TcpControl::Fin, S1));
}

#[test]
fn time_wait_new_syn_reopens_rfc6191() {
    let mut h = established();
    h.tcb.host_eof();
    recv!(h);
    send!(h, g(G1).ack(S1 + 1).fin());
    let ev = send!(h, g(G1 + 100_000).syn());
    assert!(ev.contains(Events::REOPEN));
    let ev = send!(h, g(G1 - 10).syn());
    assert!(!ev.contains(Events::REOPEN));
}
