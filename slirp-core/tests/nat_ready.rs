//! The ready list and `poll_at`: a host socket left ready after a turn that produced nothing for
//! the guest must be served again at once, not at the host's next packet.

mod common;

use common::*;
use core::net::{Ipv4Addr, SocketAddrV4};
use slirp_core::{Config, DropReason, EchoKind, EchoReply, HostError, HostSocket, Instant, Slirp, SocketId};
use std::collections::VecDeque;

/// A host with one ping socket and a queue of echo replies nobody asked for.
#[derive(Default)]
struct Replies {
    queue: VecDeque<u16>,
    echo: Option<SocketId>,
}

impl HostSocket for Replies {
    fn icmp_echo_open(&mut self, id: SocketId) -> Result<EchoKind, HostError> {
        self.echo = Some(id);
        Ok(EchoKind::Datagram)
    }
    fn icmp_echo_send(
        &mut self,
        _: SocketId,
        _: Ipv4Addr,
        _: u16,
        _: u16,
        _: &[u8],
        _: Option<u8>,
    ) -> Result<(), HostError> {
        Ok(())
    }
    fn icmp_echo_recv(&mut self, _: SocketId, buf: &mut [u8]) -> Result<EchoReply, HostError> {
        let seq_no = self.queue.pop_front().ok_or(HostError::WouldBlock)?;
        buf[..4].copy_from_slice(b"late");
        Ok(EchoReply { from: OUTSIDE, ident: 1, seq_no, len: 4 })
    }
    fn dns_upstream(&self) -> Option<SocketAddrV4> {
        None
    }
}

#[test]
fn socket_left_ready_after_a_fruitless_turn_is_due_at_once() {
    let mut slirp = Slirp::new(Config::default(), big_storage()).unwrap();
    let mut host = Replies::default();
    let t = Instant::from_millis(10);
    // One real ping opens the echo socket (our sequence 0).
    slirp.handle_guest_frame(t, &ping(GUEST_IP, OUTSIDE, 7, 1, b"hello"), &mut host);
    let echo = host.echo.expect("echo socket opened");
    // 20 replies that match nothing, then the real one: more than one turn's budget of junk.
    host.queue.extend(1000..1020);
    host.queue.push_back(0);
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
    assert!(host.queue.is_empty(), "every reply was read");
    assert_eq!(slirp.stats().dropped(DropReason::EchoReplyUnmatched), 20);
    let replies: Vec<_> = frames.iter().map(|f| parse_ip(f)).filter(|p| p.ip.src_addr == OUTSIDE).collect();
    assert_eq!(replies.len(), 1, "the guest's own ping got its reply");
    assert_ne!(slirp.poll_at(), Some(Instant::ZERO), "nothing left to read: not due any more");
}
