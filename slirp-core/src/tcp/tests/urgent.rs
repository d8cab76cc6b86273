//! Urgent data both ways (checklist 71-72), bounded by the bytes actually held: the old slirp's
//! CVE class.

use super::*;

#[test]
fn urgent_from_guest_counts_only_buffered_bytes_checklist_71() {
    let mut h = established();
    send!(h, g(G1).ack(S1).data(b"abcdef").urg(3));
    // Urgent data is buffered (not written in-band) so the glue can send it out of band.
    assert!(h.host.is_empty());
    assert_eq!(h.tcb.urgent_to_host(), 3);
    h.tcb.host_accepted(3);
    assert_eq!(h.tcb.urgent_to_host(), 0);
    assert_eq!(h.tcb.pending_to_host(), b"def");
}

#[test]
fn urgent_pointer_past_data_is_bounded() {
    let mut h = established();
    send!(h, g(G1).ack(S1).data(b"ab").urg(1000));
    assert_eq!(h.tcb.urgent_to_host(), 2);
    send!(h, g(G1 + 2).ack(S1).data(b"cd").urg(65535));
    // Beyond the window: ignored, and the earlier mark still bounds by what is held.
    assert!(h.tcb.urgent_to_host() <= h.tcb.recv_queue_len());
}

#[test]
fn urgent_toward_guest_marks_segments_checklist_72() {
    let mut h = established();
    h.tcb.enqueue(b"ab");
    h.tcb.host_urgent();
    h.tcb.enqueue(b"cd");
    let s = recv!(h);
    assert_eq!(s.urg, Some(2));
    send!(h, g(G1).ack(S1 + 4));
    h.tcb.enqueue(b"e");
    assert_eq!(recv!(h).urg, None);
}
