//! Options: window scaling, MSS and timestamps (RTTM and PAWS), negotiated both ways.

use super::*;

#[test]
fn window_scaling_negotiated_and_applied_rfc7323_2() {
    let mut h = H::accept_with(TcpConfig::default(), buffers(64 * 1024, 1 << 20), guest_syn().ws(3).win(1000));
    h.tcb.host_connected(h.now);
    let sa = recv!(h);
    assert_eq!(sa.ws, Some(5)); // 1 MiB >> 5 fits 16 bits
    assert_eq!(sa.win, 65535); // never scaled in a SYN
    send!(h, g(G1).ack(S1).win(1000));
    assert_eq!(h.tcb.window_shifts(), (5, 3));
    assert_eq!(h.tcb.send_window(), 8000);
    send!(h, g(G1).ack(S1).data(b"x").psh());
    let a = recv!(h);
    assert_eq!(a.win, 32768);
}

#[test]
fn no_window_scaling_when_guest_does_not_offer() {
    let mut h = H::accept_with(TcpConfig::default(), buffers(64 * 1024, 1 << 20), guest_syn());
    h.tcb.host_connected(h.now);
    let sa = recv!(h);
    assert_eq!(sa.ws, None);
    send!(h, g(G1).ack(S1));
    assert_eq!(h.tcb.window_shifts(), (0, 0));
    send!(h, g(G1).ack(S1).data(b"x").psh());
    // The right edge stays where the SYN-ACK put it until it can move by an MSS.
    assert_eq!(recv!(h).win, 65534);
}

#[test]
fn guest_mss_limits_our_segments_checklist_78() {
    let mut h = established_with(plain(), buffers(8192, 8192), guest_syn().mss(536));
    h.tcb.enqueue(&data(2000));
    let lens: Vec<usize> = h.recv_all().iter().map(|s| s.payload.len()).collect();
    assert_eq!(lens, [536, 536, 536, 392]);
}

#[test]
fn missing_mss_option_means_536() {
    let mut h = established_with(plain(), buffers(8192, 8192), g(GUEST_ISN).syn());
    assert_eq!(h.tcb.send_mss(), 536);
    h.tcb.enqueue(&data(600));
    assert_eq!(recv!(h).payload.len(), 536);
}

#[test]
fn tiny_guest_mss_is_clamped() {
    let h = established_with(plain(), buffers(8192, 8192), guest_syn().mss(1));
    assert_eq!(h.tcb.send_mss(), usize::from(MIN_MSS));
}

#[test]
fn our_mss_follows_mtu_checklist_55_modernised() {
    let mut h = syn_received(TcpConfig { mtu: 65520, ..plain() });
    h.tcb.host_connected(h.now);
    assert_eq!(recv!(h).mss, Some(65480));
    assert_eq!(TcpConfig { mtu: 10, ..plain() }.mss(), MIN_MSS);
}

#[test]
fn timestamps_negotiated_and_echoed_rfc7323_3() {
    let mut h = established_opts();
    assert_eq!(h.tcb.options_negotiated(), (true, true));
    // MSS less the 12 bytes of timestamp option.
    assert_eq!(h.tcb.send_mss(), 1448);
    send!(h, g(G1).ack(S1).data(b"x").psh().ts(555, 0).win(512));
    let a = recv!(h);
    assert_eq!(a.ts.map(|t| t.1), Some(555));
}

#[test]
fn timestamps_not_sent_when_guest_does_not_offer() {
    let mut h = H::accept_with(TcpConfig::default(), buffers(4096, 4096), guest_syn().sack_perm());
    h.tcb.host_connected(h.now);
    let sa = recv!(h);
    assert_eq!((sa.ts, sa.sack_perm), (None, true));
}

#[test]
fn paws_drops_old_timestamps_rfc7323_5() {
    let mut h = established_opts();
    send!(h, g(G1).ack(S1).data(b"a").psh().ts(1000, 0).win(512));
    recv!(h);
    send!(h, g(G1 + 1).ack(S1).data(b"b").psh().ts(999, 0).win(512));
    assert_eq!(h.host, b"a");
    let a = recv!(h);
    assert_eq!(a.ack, Some(G1 + 1));
    // RSTs are exempt from PAWS (RFC 7323 5.3 R1).
    let ev = send!(h, g(G1 + 1).rst().ts(5, 0));
    assert!(ev.contains(Events::RESET));
}

#[test]
fn rtt_from_timestamps_even_for_retransmissions_rfc7323_4() {
    let mut h = established_opts();
    h.tcb.enqueue(b"x");
    let s = recv!(h);
    h.fire();
    recv!(h);
    h.advance(Duration::from_millis(50));
    send!(h, g(G1).ack(S1 + 1).ts(300, s.ts.unwrap().0).win(512));
    assert!(h.tcb.srtt() > Duration::from_millis(1));
}
