//! Host → guest data: segment sizes, the initial and the guest's window, the send ring.

use super::*;

#[test]
fn host_data_in_mss_segments_psh_on_last_checklist_61() {
    let mut h = established();
    let d = data(4000);
    assert_eq!(h.tcb.enqueue(&d), 4000);
    let segs = h.recv_all();
    let lens: Vec<usize> = segs.iter().map(|s| s.payload.len()).collect();
    assert_eq!(lens, [1460, 1460, 1080]);
    assert_eq!(segs[0].seq, S1);
    assert_eq!(segs[2].control, TcpControl::Psh);
    assert_eq!(segs[0].control, TcpControl::None);
    let all: Vec<u8> = segs.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(all, d);
    let ev = send!(h, g(G1).ack(S1 + 4000));
    assert!(ev.contains(Events::SEND_SPACE));
    assert_eq!(h.tcb.send_queue_len(), 0);
}

#[test]
fn write_send_buffer_fills_ring_in_place() {
    let mut h = established();
    let n = h.tcb.write_send_buffer(|free| {
        free[..4].copy_from_slice(b"ping");
        4
    });
    assert_eq!(n, 4);
    assert_eq!(recv!(h).payload, b"ping");
    assert_eq!(h.tcb.send_buffer_free(), 64 * 1024 - 4);
}

#[test]
fn initial_window_is_ten_segments_rfc6928() {
    let mut h = established_with(plain(), buffers(256 * 1024, 64 * 1024), guest_syn().win(65535));
    h.tcb.enqueue(&data(100_000));
    let segs = h.recv_all();
    assert_eq!(segs.len(), 10);
    // Slow start: each ACK of a full segment grows cwnd by one segment.
    send!(h, g(G1).ack(S1 + 1460).win(65535));
    assert_eq!(h.recv_all().len(), 2);
}

#[test]
fn sending_respects_guest_window() {
    let mut h = established_with(plain(), buffers(64 * 1024, 64 * 1024), guest_syn().win(3000));
    h.tcb.enqueue(&data(10_000));
    let segs = h.recv_all();
    let total: usize = segs.iter().map(|s| s.payload.len()).sum();
    // Two full segments; the 80-byte tail of the window waits (sender SWS avoidance).
    assert_eq!(total, 2920);
}

#[test]
fn small_output_buffer_trims_payload_and_keeps_the_rest() {
    let mut h = established();
    h.tcb.enqueue(b"0123456789");
    let mut tiny = [0u8; 10];
    assert_eq!(h.tcb.emit_next(h.now, &mut tiny), None, "no room for a header");
    let mut small = [0u8; 24];
    let n = h.tcb.emit_next(h.now, &mut small).unwrap();
    assert_eq!(n, 24);
    let pkt = TcpPacket::new_checked(&small[..]).unwrap();
    let r = TcpRepr::parse(&pkt, *SERVER.ip(), *GUEST.ip(), true).unwrap();
    assert_eq!(r.payload, b"0123");
    let rest = recv!(h);
    assert_eq!((rest.seq, rest.payload.as_slice()), (S1 + 4, &b"456789"[..]));
}

#[test]
fn host_urgent_with_nothing_buffered_is_ignored() {
    let mut h = established();
    h.tcb.host_urgent();
    h.tcb.enqueue(b"x");
    assert_eq!(recv!(h).urg, None);
}

#[test]
fn enqueue_refused_after_host_eof() {
    let mut h = established();
    h.tcb.host_eof();
    assert_eq!(h.tcb.enqueue(b"late"), 0);
    assert_eq!(h.tcb.send_buffer_free(), 0);
}
