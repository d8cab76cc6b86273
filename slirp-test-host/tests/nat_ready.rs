//! The ready list and `poll_at`: a host socket left ready after a turn that produced nothing for
//! the guest must be served again at once, not at the host's next packet.

// The engine-level fixtures have one home, slirp-core's tests (which cannot use this crate).
#[path = "../../slirp-core/tests/common/mod.rs"]
mod common;

use common::*;
use slirp_core::{Config, DropReason, EchoKind, EchoReply, Instant, Slirp};
use slirp_test_host::ScriptHost;

/// An echo reply nobody asked for (or the one that was), as the host's ping socket hands it over.
fn late(seq_no: u16) -> (EchoReply, Vec<u8>) {
    (EchoReply { from: std::net::IpAddr::V4(OUTSIDE), ident: 1, seq_no, len: 4 }, b"late".to_vec())
}

#[test]
fn socket_left_ready_after_a_fruitless_turn_is_due_at_once() {
    let mut slirp = Slirp::new(Config::default(), big_storage()).unwrap();
    // A host with one ping socket and a queue of echo replies nobody asked for.
    let mut host = ScriptHost { echo_kind: Some(EchoKind::Datagram), ..ScriptHost::default() };
    let t = Instant::from_millis(10);
    // One real ping opens the echo socket (our sequence 0).
    slirp.handle_guest_frame(t, &ping(GUEST_IP, OUTSIDE, 7, 1, b"hello"), &mut host);
    let echo = host.echo.expect("echo socket opened");
    // 20 replies that match nothing, then the real one: more than one turn's budget of junk.
    host.echo_replies.extend((1000..1020).map(late));
    host.echo_replies.push_back(late(0));
    slirp.handle_host_readable(t, echo, &mut host);
    assert_eq!(slirp.poll_at(), Some(Instant::ZERO), "the socket still holds data: due now");
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 2048];
    for _ in 0..10 {
        if slirp.poll_at().is_some_and(|at| at <= t) {
            slirp.handle_timeout(t, &mut host);
        }
        while let Some(n) = slirp.poll_transmit_into(t, &mut host, &mut buf) {
            frames.push(buf[..n].to_vec());
        }
    }
    assert!(host.echo_replies.is_empty(), "every reply was read");
    assert_eq!(slirp.stats().dropped(DropReason::EchoReplyUnmatched), 20);
    let replies: Vec<_> = frames.iter().map(|f| parse_ip(f)).filter(|p| p.ip.src_addr == OUTSIDE).collect();
    assert_eq!(replies.len(), 1, "the guest's own ping got its reply");
    assert_ne!(slirp.poll_at(), Some(Instant::ZERO), "nothing left to read: not due any more");
}
