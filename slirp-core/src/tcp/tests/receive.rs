//! Guest → host data: straight to the host or buffered, the receive window we advertise, delayed
//! ACKs, out-of-order segments and the SACK blocks that describe them.

use super::*;

#[test]
fn in_order_data_goes_to_host_without_buffering() {
    let mut h = established();
    send!(h, g(G1).ack(S1).data(b"hello"));
    assert_eq!(h.host, b"hello");
    assert_eq!(h.tcb.recv_queue_len(), 0);
    assert_eq!(h.tcb.counters().bytes_to_host, 5);
}

#[test]
fn bytes_the_host_refuses_are_buffered_and_offered_again() {
    let mut h = established();
    h.host_takes = 2;
    let ev = send!(h, g(G1).ack(S1).data(b"hello"));
    assert!(ev.contains(Events::RECV_READY));
    assert_eq!(h.host, b"he");
    assert_eq!(h.tcb.pending_to_host(), b"llo");
    // Later data queues behind the buffered bytes (order), not straight to the host.
    send!(h, g(G1 + 5).ack(S1).data(b"!"));
    assert_eq!(h.host, b"he");
    h.drain_to_host();
    assert_eq!(h.host, b"hello!");
}

#[test]
fn advertised_window_is_real_free_space() {
    let mut h = established_with(plain(), buffers(4096, 2000), guest_syn());
    h.host_takes = 0;
    send!(h, g(G1).ack(S1).data(&data(1000)));
    h.advance(Duration::from_millis(2));
    let a = recv!(h);
    assert_eq!((a.ack, a.win), (Some(G1 + 1000), 1000));
    h.tcb.host_accepted(400);
    // 400 < min(half the buffer, MSS): the right edge holds still (receiver SWS avoidance).
    recv_nothing!(h);
    h.tcb.host_accepted(600);
    let u = recv!(h);
    assert_eq!(u.win, 2000);
}

#[test]
fn data_beyond_window_is_trimmed_and_acked() {
    let mut h = established_with(plain(), buffers(4096, 1000), guest_syn());
    h.host_takes = 0;
    send!(h, g(G1).ack(S1).data(&data(1500)));
    let a = recv!(h);
    assert_eq!((a.ack, a.win), (Some(G1 + 1000), 0));
    assert_eq!(h.tcb.recv_queue_len(), 1000);
    // The rest of the segment arrives again into a zero window: dropped, ACKed.
    send!(h, g(G1 + 1000).ack(S1).data(&data(500)));
    assert_eq!(recv!(h).ack, Some(G1 + 1000));
    h.drain_to_host();
    let u = recv!(h);
    assert_eq!(u.win, 1000);
}

#[test]
fn zero_window_still_accepts_ack_and_fin_rfc9293_3_10_7_4() {
    let mut h = established_with(plain(), buffers(4096, 100), guest_syn());
    h.host_takes = 0;
    send!(h, g(G1).ack(S1).data(&data(100)));
    h.advance(Duration::from_millis(2));
    assert_eq!(recv!(h).win, 0);
    h.tcb.enqueue(b"x");
    let ev = send!(h, g(G1 + 100).ack(S1).fin());
    assert!(ev.contains(Events::GUEST_FIN));
    assert_eq!(h.tcb.state(), TcpState::CloseWait);
}

#[test]
fn delayed_ack_fires_after_timer_rfc1122_4_2_3_2() {
    let mut h = established();
    send!(h, g(G1).ack(S1).data(b"abc"));
    recv_nothing!(h);
    let t = h.tcb.poll_at().unwrap();
    assert_eq!(t - h.now, Duration::from_millis(1));
    h.fire();
    let a = recv!(h);
    assert_eq!(a.ack, Some(G1 + 3));
    recv_nothing!(h);
}

#[test]
fn ack_every_second_full_segment_rfc5681_4_2() {
    let mut h = established();
    let d = data(1460);
    send!(h, g(G1).ack(S1).data(&d));
    recv_nothing!(h);
    send!(h, g(G1 + 1460).ack(S1).data(&d));
    assert_eq!(recv!(h).ack, Some(G1 + 2920));
    send!(h, g(G1 + 2920).ack(S1).data(&d));
    recv_nothing!(h);
}

#[test]
fn psh_with_empty_queue_acks_at_once() {
    let mut h = established();
    send!(h, g(G1).ack(S1).data(b"ls\n").psh());
    assert_eq!(recv!(h).ack, Some(G1 + 3));
}

#[test]
fn psh_with_data_still_buffered_waits_for_delack() {
    let mut h = established();
    h.host_takes = 0;
    send!(h, g(G1).ack(S1).data(b"ls\n").psh());
    recv_nothing!(h);
}

#[test]
fn no_delayed_ack_config_acks_every_segment() {
    let mut h = established_with(TcpConfig { delayed_ack: None, ..plain() }, buffers(4096, 4096), guest_syn());
    send!(h, g(G1).ack(S1).data(b"a"));
    assert_eq!(recv!(h).ack, Some(G1 + 1));
}

#[test]
fn out_of_order_acked_at_once_with_sack_rfc2018() {
    let mut h = established_opts();
    send!(h, g(G1 + 100).ack(S1).data(&data(100)).ts(200, 0));
    let a = recv!(h);
    assert_eq!(a.ack, Some(G1));
    assert_eq!(a.sacks, [Some((G1 + 100, G1 + 200)), None, None]);
    send!(h, g(G1 + 300).ack(S1).data(&data(50)).ts(201, 0));
    let a = recv!(h);
    // Most recent block first (RFC 2018 4).
    assert_eq!(a.sacks, [Some((G1 + 300, G1 + 350)), Some((G1 + 100, G1 + 200)), None]);
    assert!(h.host.is_empty());
    assert_eq!(h.tcb.counters().out_of_order, 2);
}

#[test]
fn sack_blocks_follow_hole_filling_rfc2018() {
    let mut h = established_opts();
    let d = data(400);
    let seg = |from: usize, to: usize, ts: u32| g(G1 + from as u32).ack(S1).data(&d[from..to]).ts(ts, 0);
    send!(h, seg(100, 200, 200));
    send!(h, seg(300, 400, 201));
    h.recv_all();
    send!(h, seg(0, 100, 202));
    let a = recv!(h);
    assert_eq!(a.ack, Some(G1 + 200));
    assert_eq!(a.sacks, [Some((G1 + 300, G1 + 400)), None, None]);
    send!(h, seg(200, 300, 203));
    let a = recv!(h);
    assert_eq!((a.ack, a.sacks), (Some(G1 + 400), [None; 3]));
    assert_eq!(h.host, &d[..100]);
    h.drain_to_host();
    assert_eq!(h.host, d);
}

#[test]
fn segments_with_sack_blocks_still_fit_the_mtu_rfc6691() {
    let mut h = established_opts();
    send!(h, g(G1 + 100).ack(S1).data(&data(10)).ts(200, 0).win(65535));
    send!(h, g(G1 + 300).ack(S1).data(&data(10)).ts(201, 0).win(65535));
    h.recv_all();
    h.tcb.enqueue(&data(5000));
    let mut buf = vec![0u8; 9000];
    let mut sent = 0;
    while let Some(n) = h.tcb.emit_next(h.now, &mut buf) {
        assert!(n <= 1500 - 20, "TCP segment of {n} bytes exceeds the MTU");
        let pkt = TcpPacket::new_checked(&buf[..n]).unwrap();
        let r = TcpRepr::parse(&pkt, *SERVER.ip(), *GUEST.ip(), true).unwrap();
        assert!(r.sack_ranges[0].is_some());
        sent += r.payload.len();
    }
    assert_eq!(sent, 5000);
}

#[test]
fn data_after_guest_fin_is_ignored() {
    let mut h = established();
    send!(h, g(G1).ack(S1).fin());
    h.recv_all();
    send!(h, g(G1 + 1).ack(S1).data(b"late"));
    assert!(h.host.is_empty());
    assert_eq!(recv!(h).ack, Some(G1 + 1));
}

#[test]
fn filling_the_hole_delivers_everything_checklist_59() {
    let mut h = established();
    let d = data(300);
    send!(h, g(G1 + 200).ack(S1).data(&d[200..]));
    assert_eq!(recv!(h).ack, Some(G1));
    send!(h, g(G1 + 100).ack(S1).data(&d[100..200]));
    assert_eq!(recv!(h).ack, Some(G1));
    send!(h, g(G1).ack(S1).data(&d[..100]));
    // Hole filled: ACK at once for everything.
    assert_eq!(recv!(h).ack, Some(G1 + 300));
    assert_eq!(h.host, &d[..100]);
    h.drain_to_host();
    assert_eq!(h.host, d);
}

#[test]
fn overlapping_retransmissions_are_trimmed() {
    let mut h = established();
    let d = data(300);
    send!(h, g(G1).ack(S1).data(&d[..150]));
    send!(h, g(G1 + 100).ack(S1).data(&d[100..300]));
    send!(h, g(G1 + 50).ack(S1).data(&d[50..120]));
    assert_eq!(h.host, d);
}

#[test]
fn too_many_holes_drop_the_extra_segments() {
    let mut h = established();
    for i in 0..12u32 {
        send!(h, g(G1 + 10 + i * 20).ack(S1).data(&[1; 10]));
    }
    assert_eq!(h.tcb.counters().out_of_order, 8);
    assert_eq!(h.tcb.counters().dropped, 4);
    h.recv_all();
}

#[test]
fn old_duplicate_data_is_acked_at_once() {
    let mut h = established();
    send!(h, g(G1).ack(S1).data(b"abc").psh());
    recv!(h);
    send!(h, g(G1).ack(S1).data(b"abc"));
    assert_eq!(recv!(h).ack, Some(G1 + 3));
    assert_eq!(h.host, b"abc");
}
