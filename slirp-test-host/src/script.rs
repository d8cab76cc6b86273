//! [`ScriptHost`]: a [`HostSocket`] whose sockets the test scripts, for engine-level tests that
//! want to say exactly what the host answers (a connect that completes later, a send that takes
//! four bytes, a reset, an echo reply nobody asked for) rather than simulate a network.
//!
//! It records every call the core makes ([`ScriptHost::calls`]), keeps one [`ScriptSocket`] per
//! id with its inbox (what the test queues for the core to read) and outbox (what the core sent),
//! and returns what the script says. What the test did not script is refused as [`NoHost`]
//! refuses it ([`HostError::Unsupported`]): UDP until [`udp`](ScriptHost::udp) is on, ICMP echo
//! until [`echo_kind`](ScriptHost::echo_kind) is set. TCP is always there: a connect completes
//! as [`connect_now`](ScriptHost::connect_now) says (or when the test sets the socket's
//! [`connect`](ScriptSocket::connect)).
//!
//! For a network that answers by itself (latency, buffers, services), use
//! [`FakeNet`](crate::FakeNet).
//!
//! [`NoHost`]: slirp_core::NoHost

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::fakenet::{only_v4, reachable_v4};
use slirp_core::{EchoKind, EchoReply, HostError, HostSocket, IpVersion, SocketId, UdpEvent};

/// One call the core made, in order (payloads are in the sockets' outboxes, only lengths here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostCall {
    /// `udp_bind(id, local)`.
    UdpBind(SocketId, SocketAddrV4),
    /// `udp_send_to(id, len, dst, ttl)`.
    UdpSendTo(SocketId, usize, SocketAddrV4, Option<u8>),
    /// `udp_recv_from(id)`.
    UdpRecvFrom(SocketId),
    /// `close(id)`.
    Close(SocketId),
    /// `icmp_echo_open(id)`.
    IcmpEchoOpen(SocketId),
    /// `icmp_echo_send(id, dst, ident, seq_no, len, ttl)`.
    IcmpEchoSend(SocketId, Ipv4Addr, u16, u16, usize, Option<u8>),
    /// `icmp_echo_recv(id)`.
    IcmpEchoRecv(SocketId),
    /// `tcp_connect(id, dst)`.
    TcpConnect(SocketId, SocketAddrV4),
    /// `tcp_connect_result(id)`.
    TcpConnectResult(SocketId),
    /// `tcp_send(id, len)` (the length offered; the socket's `sent` has what it took).
    TcpSend(SocketId, usize),
    /// `tcp_send_urgent(id, len)` (then recorded as a `TcpSend` too, which it is).
    TcpSendUrgent(SocketId, usize),
    /// `tcp_recv(id)`.
    TcpRecv(SocketId),
    /// `tcp_urgent_mark(id)`.
    TcpUrgentMark(SocketId),
    /// `tcp_shutdown_write(id)`.
    TcpShutdownWrite(SocketId),
    /// `tcp_abort(id)`.
    TcpAbort(SocketId),
    /// `tcp_listen(id, local)`.
    TcpListen(SocketId, SocketAddrV4),
    /// `tcp_accept(listener, id)`.
    TcpAccept(SocketId, SocketId),
}

/// One host socket, as the script sees it.
#[derive(Clone, Debug, Default)]
pub struct ScriptSocket {
    /// Where a TCP connect went.
    pub dst: Option<SocketAddrV4>,
    /// What `tcp_connect_result` says (`None`: still in progress, `WouldBlock`).
    pub connect: Option<Result<(), HostError>>,
    /// TCP outbox: every byte the socket took from the core.
    pub sent: Vec<u8>,
    /// TCP inbox: bytes for the core to read.
    pub inbox: VecDeque<u8>,
    /// After the inbox: the end of the stream (`Ok(0)`).
    pub eof: bool,
    /// Reads fail as a reset by the peer ([`HostError::Refused`]).
    pub reset: bool,
    /// The core shut the write side down (FIN).
    pub shut: bool,
    /// The core aborted the socket (RST).
    pub aborted: bool,
    /// The core closed (or aborted) the socket.
    pub closed: bool,
    /// The client, for a socket accepted from a listener.
    pub accept_from: Option<SocketAddrV4>,
    /// Bytes before the urgent byte in `inbox` (`Some(0)`: the next byte is urgent). A read
    /// stops at the mark, as Linux's does with `SO_OOBINLINE`.
    pub urgent_at: Option<usize>,
    /// UDP: the address bound.
    pub local: Option<SocketAddrV4>,
    /// UDP outbox: (destination, datagram, TTL) per send.
    pub datagrams_sent: Vec<(SocketAddrV4, Vec<u8>, Option<u8>)>,
    /// UDP inbox: what `udp_recv_from` returns next (a datagram's bytes, or an error event).
    pub datagrams: VecDeque<(UdpEvent, Vec<u8>)>,
}

/// An echo request the core sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptEcho {
    /// Destination.
    pub dst: Ipv4Addr,
    /// Identifier.
    pub ident: u16,
    /// Sequence number.
    pub seq_no: u16,
    /// Payload.
    pub data: Vec<u8>,
    /// The TTL the core asked for.
    pub ttl: Option<u8>,
}

/// A host whose sockets the test scripts. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct ScriptHost {
    /// Every socket the core opened (or a listener accepted), by id.
    pub socks: BTreeMap<u64, ScriptSocket>,
    /// Every call, in order.
    pub calls: Vec<HostCall>,
    /// How the next `tcp_connect` goes: `Some(Err(e))` fails at once (no socket), `Some(Ok(()))`
    /// completes (reported when the core asks after writability), `None` stays in progress.
    pub connect_now: Option<Result<(), HostError>>,
    /// The most bytes any TCP socket takes in all (`None`: no limit); beyond it, `WouldBlock`.
    pub send_limit: Option<usize>,
    /// Clients waiting on the listener: each `tcp_accept` takes the first.
    pub pending_accepts: VecDeque<SocketAddrV4>,
    /// The last listener opened.
    pub listener: Option<SocketId>,
    /// The last socket `tcp_connect` opened.
    pub last_connect: Option<SocketId>,
    /// What `dns_upstream` says.
    pub dns: Option<SocketAddrV4>,
    /// UDP sockets open (bound where asked; port 0 becomes 40000 + id). Off: `Unsupported`.
    pub udp: bool,
    /// What `icmp_echo_open` says it opened (`None`: `Unsupported`).
    pub echo_kind: Option<EchoKind>,
    /// The echo socket, once open.
    pub echo: Option<SocketId>,
    /// Echo requests sent.
    pub echo_sent: Vec<ScriptEcho>,
    /// Echo replies for the core to read, in order (`len` is set from the data).
    pub echo_replies: VecDeque<(EchoReply, Vec<u8>)>,
}

impl ScriptHost {
    /// The connection under test: a socket the core opened itself and did not close, or any it
    /// connected. Panics when there is none.
    pub fn only(&self) -> (SocketId, &ScriptSocket) {
        let (id, s) = self
            .socks
            .iter()
            .find(|(_, s)| !s.closed && s.accept_from.is_none() || s.dst.is_some())
            .expect("a socket the core opened");
        (SocketId(*id), s)
    }

    /// Socket `id`, which the core must have opened.
    pub fn sock(&mut self, id: SocketId) -> &mut ScriptSocket {
        self.socks.get_mut(&id.0).expect("a socket the core opened")
    }
}

impl HostSocket for ScriptHost {
    fn udp_bind(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        self.udp_bind_v4(id, only_v4(local)?).map(SocketAddr::V4)
    }

    fn udp_send_to(&mut self, id: SocketId, data: &[u8], dst: SocketAddr, ttl: Option<u8>) -> Result<(), HostError> {
        self.udp_send_to_v4(id, data, reachable_v4(dst)?, ttl)
    }

    fn udp_recv_from(&mut self, id: SocketId, buf: &mut [u8]) -> Result<UdpEvent, HostError> {
        self.udp_recv_from_v4(id, buf)
    }

    fn icmp_echo_open(&mut self, id: SocketId, version: IpVersion) -> Result<EchoKind, HostError> {
        match version {
            IpVersion::V4 => self.icmp_echo_open_v4(id),
            IpVersion::V6 => Err(HostError::Unsupported),
        }
    }

    fn icmp_echo_send(
        &mut self,
        id: SocketId,
        dst: IpAddr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
        ttl: Option<u8>,
    ) -> Result<(), HostError> {
        let dst = reachable_v4(SocketAddr::new(dst, 0))?;
        self.icmp_echo_send_v4(id, *dst.ip(), ident, seq_no, data, ttl)
    }

    fn icmp_echo_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<EchoReply, HostError> {
        self.icmp_echo_recv_v4(id, buf)
    }

    fn dns_upstream(&self) -> Option<SocketAddr> {
        self.dns_upstream_v4().map(SocketAddr::V4)
    }

    fn tcp_connect(&mut self, id: SocketId, dst: SocketAddr) -> Result<(), HostError> {
        self.tcp_connect_v4(id, reachable_v4(dst)?)
    }

    fn tcp_listen(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        self.tcp_listen_v4(id, only_v4(local)?).map(SocketAddr::V4)
    }

    fn tcp_accept(&mut self, listener: SocketId, id: SocketId) -> Result<SocketAddr, HostError> {
        self.tcp_accept_v4(listener, id).map(SocketAddr::V4)
    }

    fn close(&mut self, id: SocketId) {
        self.calls.push(HostCall::Close(id));
        if let Some(s) = self.socks.get_mut(&id.0) {
            s.closed = true;
        }
    }

    fn tcp_connect_result(&mut self, id: SocketId) -> Result<(), HostError> {
        self.calls.push(HostCall::TcpConnectResult(id));
        self.socks.get(&id.0).and_then(|s| s.connect).unwrap_or(Err(HostError::WouldBlock))
    }

    fn tcp_send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        self.calls.push(HostCall::TcpSend(id, data.len()));
        let limit = self.send_limit.unwrap_or(usize::MAX);
        let s = self.socks.get_mut(&id.0).ok_or(HostError::Other)?;
        let n = data.len().min(limit.saturating_sub(s.sent.len()));
        if n == 0 {
            return Err(HostError::WouldBlock);
        }
        s.sent.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn tcp_send_urgent(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        self.calls.push(HostCall::TcpSendUrgent(id, data.len()));
        self.tcp_send(id, data)
    }

    fn tcp_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<usize, HostError> {
        self.calls.push(HostCall::TcpRecv(id));
        let s = self.socks.get_mut(&id.0).ok_or(HostError::Other)?;
        if s.reset {
            return Err(HostError::Refused);
        }
        if s.inbox.is_empty() {
            return if s.eof { Ok(0) } else { Err(HostError::WouldBlock) };
        }
        let n = match s.urgent_at {
            Some(k) if k > 0 => buf.len().min(s.inbox.len()).min(k),
            _ => buf.len().min(s.inbox.len()),
        };
        for (b, byte) in buf.iter_mut().zip(s.inbox.drain(..n)) {
            *b = byte;
        }
        s.urgent_at = match s.urgent_at {
            Some(k) if k >= n && k > 0 => Some(k - n),
            _ => None,
        };
        Ok(n)
    }

    fn tcp_urgent_mark(&mut self, id: SocketId) -> bool {
        self.calls.push(HostCall::TcpUrgentMark(id));
        self.socks.get(&id.0).is_some_and(|s| s.urgent_at == Some(0))
    }

    fn tcp_shutdown_write(&mut self, id: SocketId) -> Result<(), HostError> {
        self.calls.push(HostCall::TcpShutdownWrite(id));
        self.socks.get_mut(&id.0).ok_or(HostError::Other)?.shut = true;
        Ok(())
    }

    fn tcp_abort(&mut self, id: SocketId) {
        self.calls.push(HostCall::TcpAbort(id));
        if let Some(s) = self.socks.get_mut(&id.0) {
            s.aborted = true;
            s.closed = true;
        }
    }
}

impl ScriptHost {
    fn udp_bind_v4(&mut self, id: SocketId, local: SocketAddrV4) -> Result<SocketAddrV4, HostError> {
        self.calls.push(HostCall::UdpBind(id, local));
        if !self.udp {
            return Err(HostError::Unsupported);
        }
        let port = if local.port() == 0 { 40000u16.wrapping_add(id.0 as u16) } else { local.port() };
        let bound = SocketAddrV4::new(*local.ip(), port);
        self.socks.entry(id.0).or_default().local = Some(bound);
        Ok(bound)
    }

    fn udp_send_to_v4(
        &mut self,
        id: SocketId,
        data: &[u8],
        dst: SocketAddrV4,
        ttl: Option<u8>,
    ) -> Result<(), HostError> {
        self.calls.push(HostCall::UdpSendTo(id, data.len(), dst, ttl));
        let s = self.socks.get_mut(&id.0).filter(|s| s.local.is_some()).ok_or(HostError::Unsupported)?;
        s.datagrams_sent.push((dst, data.to_vec(), ttl));
        Ok(())
    }

    fn udp_recv_from_v4(&mut self, id: SocketId, buf: &mut [u8]) -> Result<UdpEvent, HostError> {
        self.calls.push(HostCall::UdpRecvFrom(id));
        let s = self.socks.get_mut(&id.0).ok_or(HostError::Unsupported)?;
        let (event, data) = s.datagrams.pop_front().ok_or(HostError::WouldBlock)?;
        Ok(match event {
            UdpEvent::Datagram { from, .. } => {
                let len = data.len().min(buf.len());
                buf[..len].copy_from_slice(&data[..len]);
                UdpEvent::Datagram { len, from }
            }
            error => error,
        })
    }

    fn icmp_echo_open_v4(&mut self, id: SocketId) -> Result<EchoKind, HostError> {
        self.calls.push(HostCall::IcmpEchoOpen(id));
        let kind = self.echo_kind.ok_or(HostError::Unsupported)?;
        self.echo = Some(id);
        Ok(kind)
    }

    fn icmp_echo_send_v4(
        &mut self,
        id: SocketId,
        dst: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
        ttl: Option<u8>,
    ) -> Result<(), HostError> {
        self.calls.push(HostCall::IcmpEchoSend(id, dst, ident, seq_no, data.len(), ttl));
        if self.echo != Some(id) {
            return Err(HostError::Unsupported);
        }
        self.echo_sent.push(ScriptEcho { dst, ident, seq_no, data: data.to_vec(), ttl });
        Ok(())
    }

    fn icmp_echo_recv_v4(&mut self, id: SocketId, buf: &mut [u8]) -> Result<EchoReply, HostError> {
        self.calls.push(HostCall::IcmpEchoRecv(id));
        let (reply, data) = self.echo_replies.pop_front().ok_or(HostError::WouldBlock)?;
        let len = data.len().min(buf.len());
        buf[..len].copy_from_slice(&data[..len]);
        Ok(EchoReply { len, ..reply })
    }

    fn dns_upstream_v4(&self) -> Option<SocketAddrV4> {
        self.dns
    }

    fn tcp_connect_v4(&mut self, id: SocketId, dst: SocketAddrV4) -> Result<(), HostError> {
        self.calls.push(HostCall::TcpConnect(id, dst));
        if let Some(Err(e)) = self.connect_now {
            return Err(e);
        }
        self.last_connect = Some(id);
        let s = self.socks.entry(id.0).or_default();
        s.dst = Some(dst);
        s.connect = self.connect_now;
        Ok(())
    }

    fn tcp_listen_v4(&mut self, id: SocketId, local: SocketAddrV4) -> Result<SocketAddrV4, HostError> {
        self.calls.push(HostCall::TcpListen(id, local));
        self.listener = Some(id);
        Ok(local)
    }

    fn tcp_accept_v4(&mut self, listener: SocketId, id: SocketId) -> Result<SocketAddrV4, HostError> {
        self.calls.push(HostCall::TcpAccept(listener, id));
        let peer = self.pending_accepts.pop_front().ok_or(HostError::WouldBlock)?;
        self.socks
            .insert(id.0, ScriptSocket { accept_from: Some(peer), connect: Some(Ok(())), ..ScriptSocket::default() });
        Ok(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SocketId = SocketId(1);

    #[test]
    fn unscripted_protocols_are_refused_like_no_host() {
        let mut h = ScriptHost::default();
        let any = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        assert_eq!(h.udp_bind(A, std::net::SocketAddr::V4(any)), Err(HostError::Unsupported));
        assert_eq!(h.icmp_echo_open(A, IpVersion::V4), Err(HostError::Unsupported));
        assert_eq!(h.dns_upstream(), None);
        assert_eq!(h.calls, [HostCall::UdpBind(A, any), HostCall::IcmpEchoOpen(A)]);
    }

    #[test]
    fn udp_datagrams_go_to_the_outbox_and_come_from_the_inbox() {
        let mut h = ScriptHost { udp: true, ..ScriptHost::default() };
        let bound = h.udp_bind(A, std::net::SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))).unwrap();
        assert_eq!(bound.port(), 40001);
        let dst = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 53);
        h.udp_send_to(A, b"query", std::net::SocketAddr::V4(dst), Some(3)).unwrap();
        assert_eq!(h.sock(A).datagrams_sent, [(dst, b"query".to_vec(), Some(3))]);
        let mut buf = [0u8; 4];
        assert_eq!(h.udp_recv_from(A, &mut buf), Err(HostError::WouldBlock));
        h.sock(A)
            .datagrams
            .push_back((UdpEvent::Datagram { len: 0, from: std::net::SocketAddr::V4(dst) }, b"answer".to_vec()));
        assert_eq!(
            h.udp_recv_from(A, &mut buf),
            Ok(UdpEvent::Datagram { len: 4, from: std::net::SocketAddr::V4(dst) }),
            "truncated"
        );
        assert_eq!(&buf, b"answ");
    }

    #[test]
    fn tcp_reads_stop_at_the_urgent_mark() {
        let mut h = ScriptHost { connect_now: Some(Ok(())), ..ScriptHost::default() };
        h.tcp_connect(A, std::net::SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 80))).unwrap();
        assert_eq!(h.tcp_connect_result(A), Ok(()));
        let s = h.sock(A);
        s.inbox.extend(b"ab!cd");
        s.urgent_at = Some(2);
        let mut buf = [0u8; 8];
        assert_eq!(h.tcp_recv(A, &mut buf), Ok(2));
        assert!(h.tcp_urgent_mark(A));
        assert_eq!(h.tcp_recv(A, &mut buf), Ok(3));
        assert_eq!(&buf[..3], b"!cd");
        assert_eq!(h.tcp_recv(A, &mut buf), Err(HostError::WouldBlock));
        h.sock(A).eof = true;
        assert_eq!(h.tcp_recv(A, &mut buf), Ok(0));
    }
}
