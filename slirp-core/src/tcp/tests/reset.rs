//! Resets: the guest's RST in every state and RFC 5961's defences (challenge ACKs and their rate
//! limit, unacceptable ACKs), our aborts, and the reset answering a segment for no connection.

use super::*;

#[test]
fn exact_rst_resets_rfc5961_3_2() {
    let mut h = established();
    let ev = send!(h, g(G1).rst());
    assert!(ev.contains(Events::RESET | Events::CLOSED));
    recv_nothing!(h);
}

#[test]
fn exact_rst_closes_every_synchronized_state_rfc9293_3_10_7_4() {
    // (state builder, RCV.NXT the RST must carry)
    let builders: [(fn() -> H, u32); 7] = [
        (
            || {
                let mut h = syn_received(plain());
                h.tcb.host_connected(h.now);
                h.recv_all();
                h
            },
            G1,
        ),
        (established, G1),
        (
            || {
                let mut h = established();
                h.tcb.host_eof();
                h.recv_all();
                h
            },
            G1,
        ),
        (
            || {
                let mut h = established();
                h.tcb.host_eof();
                h.recv_all();
                send!(h, g(G1).ack(S1 + 1));
                h
            },
            G1,
        ),
        (
            || {
                let mut h = established();
                send!(h, g(G1).ack(S1).fin());
                h.recv_all();
                h
            },
            G1 + 1,
        ),
        (
            || {
                let mut h = established();
                h.tcb.host_eof();
                h.recv_all();
                send!(h, g(G1).ack(S1).fin());
                h.recv_all();
                h
            },
            G1 + 1,
        ),
        (
            || {
                let mut h = established();
                send!(h, g(G1).ack(S1).fin());
                h.tcb.host_eof();
                h.recv_all();
                h
            },
            G1 + 1,
        ),
    ];
    let expect = [
        TcpState::SynReceived,
        TcpState::Established,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::CloseWait,
        TcpState::Closing,
        TcpState::LastAck,
    ];
    for ((build, rcv_nxt), state) in builders.iter().zip(expect) {
        let mut h = build();
        assert_eq!(h.tcb.state(), state);
        send!(h, g(rcv_nxt + 1).rst());
        assert_eq!(h.tcb.state(), state, "inexact RST in {state}");
        h.recv_all();
        let ev = send!(h, g(*rcv_nxt).rst());
        assert!(ev.contains(Events::RESET | Events::CLOSED), "{state}: {ev:?}");
        recv_nothing!(h);
    }
}

#[test]
fn rst_in_time_wait_frees_it_early() {
    // RFC 1337 would ignore it; we are the NAT end and the host side is gone already, so a
    // reset only frees the slot sooner.
    let mut h = established();
    h.tcb.host_eof();
    h.recv_all();
    send!(h, g(G1).ack(S1 + 1).fin());
    h.recv_all();
    let ev = send!(h, g(G1 + 1).rst());
    assert!(ev.contains(Events::CLOSED));
}

#[test]
fn in_window_inexact_rst_draws_challenge_ack_rfc5961_3_2() {
    let mut h = established();
    send!(h, g(G1 + 10).rst());
    assert_eq!(h.tcb.state(), TcpState::Established);
    let a = recv!(h);
    assert_eq!((a.control, a.seq, a.ack), (TcpControl::None, S1, Some(G1)));
    assert_eq!(h.tcb.counters().challenge_acks, 1);
}

#[test]
fn out_of_window_rst_is_ignored() {
    let mut h = established();
    send!(h, g(G1 + 1_000_000).rst());
    send!(h, g(G1 - 1).rst());
    assert_eq!(h.tcb.state(), TcpState::Established);
    recv_nothing!(h);
}

#[test]
fn syn_in_established_draws_challenge_ack_rfc5961_4_2() {
    let mut h = established();
    send!(h, g(G1 + 5).syn());
    assert_eq!(h.tcb.state(), TcpState::Established);
    assert_eq!(recv!(h).ack, Some(G1));
}

#[test]
fn challenge_acks_are_rate_limited() {
    let mut h = established_with(TcpConfig { challenge_ack_limit: 2, ..plain() }, buffers(1024, 1024), guest_syn());
    for _ in 0..5 {
        send!(h, g(G1 + 10).rst());
        h.recv_all();
    }
    assert_eq!(h.tcb.counters().challenge_acks, 2);
    h.advance(Duration::from_secs(1));
    send!(h, g(G1 + 10).rst());
    assert_eq!(h.tcb.counters().challenge_acks, 3);
}

#[test]
fn ack_of_unsent_data_is_acked_and_dropped() {
    let mut h = established();
    send!(h, g(G1).ack(S1 + 50).data(b"x"));
    assert_eq!(recv!(h).ack, Some(G1));
    assert!(h.host.is_empty());
}

#[test]
fn ancient_ack_draws_challenge_rfc5961_5_2() {
    let mut h = established();
    send!(h, g(G1).ack(S1.wrapping_sub(1_000_000)).data(b"x"));
    assert!(h.host.is_empty());
    assert_eq!(h.tcb.counters().challenge_acks, 1);
}

#[test]
fn segment_without_ack_is_dropped() {
    let mut h = established();
    send!(h, g(G1).data(b"noack"));
    assert!(h.host.is_empty());
}

#[test]
fn abort_sends_rst_with_our_sequence() {
    let mut h = established();
    h.tcb.enqueue(b"abc");
    recv!(h);
    h.tcb.abort();
    let r = recv!(h);
    assert_eq!((r.control, r.seq, r.ack), (TcpControl::Rst, S1 + 3, Some(G1)));
    recv_nothing!(h);
}

#[test]
fn reset_reply_for_unknown_segments_checklist_56() {
    let with_ack = g(123).ack(456).data(b"xy");
    let r = reset_reply(&with_ack.repr()).unwrap();
    assert_eq!((r.control, r.seq_number, r.ack_number), (TcpControl::Rst, SeqNumber(456), None));
    assert_eq!((r.src_port, r.dst_port), (SERVER.port(), GUEST.port()));
    let without = g(123).data(b"xy").fin();
    let r = reset_reply(&without.repr()).unwrap();
    assert_eq!((r.seq_number, r.ack_number), (SeqNumber(0), Some(SeqNumber(126))));
    assert!(reset_reply(&g(1).rst().repr()).is_none());
    assert!(is_connection_request(&guest_syn().repr()));
    assert!(!is_connection_request(&guest_syn().ack(1).repr()));
}
