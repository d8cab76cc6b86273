//! Edges of the arithmetic and of the memory: sequence numbers wrapping in both directions,
//! buffers handed back, zero-sized buffers.

use super::*;

#[test]
fn sequence_numbers_wrap_both_ways() {
    let syn = g(u32::MAX - 2).syn().mss(1460);
    let now = Instant::from_secs(1);
    let tcb = Tcb::accept(plain(), buffers(8192, 8192), SERVER, GUEST, &syn.repr(), SeqNumber(u32::MAX - 1), now);
    let mut h = H { tcb, now, host: vec![], host_takes: usize::MAX, events: Events::NONE };
    h.tcb.host_connected(now);
    recv!(h);
    send!(h, g(u32::MAX - 1).ack(u32::MAX));
    assert_eq!(h.tcb.state(), TcpState::Established);
    let d = data(3000);
    send!(h, g(u32::MAX - 1).ack(u32::MAX).data(&d[..1000]));
    send!(h, g(998).ack(u32::MAX).data(&d[1000..]));
    assert_eq!(h.host, d);
    h.tcb.enqueue(&d);
    let segs = h.recv_all();
    assert_eq!(segs[0].seq, u32::MAX);
    send!(h, g(2998).ack(2998));
    assert_eq!(h.tcb.send_queue_len(), 1);
}

#[test]
fn buffers_are_given_back() {
    let h = established();
    let b = h.tcb.into_buffers();
    assert_eq!((b.send.len(), b.recv.len()), (64 * 1024, 64 * 1024));
}

#[test]
fn zero_sized_buffers_do_not_panic() {
    let mut h = established_with(plain(), buffers(0, 0), guest_syn());
    assert_eq!(h.tcb.enqueue(b"x"), 0);
    h.host_takes = 0;
    send!(h, g(G1).ack(S1).data(b"abc"));
    let a = recv!(h);
    assert_eq!((a.ack, a.win), (Some(G1), 0));
}
