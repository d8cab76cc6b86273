//! The core's [`HostSocket`] over the host's nonblocking sockets.
//!
//! - **UDP**: one nonblocking socket per [`SocketId`] the core asks for (a NAT flow bound to
//!   `0.0.0.0:0`, or a forwarding rule bound to its host address). `IP_RECVERR` is on, so ICMP
//!   errors from remotes (port/host/net unreachable, administratively prohibited, fragmentation
//!   needed) come back as [`UdpEvent::Error`] with the router that sent them and the destination
//!   that failed. The guest's TTL is applied with `IP_TTL`, set only when it changes (one
//!   syscall per change, not per datagram). Datagrams of any size IPv4 allows go both ways.
//! - **ICMP echo**: one long-lived socket. An unprivileged ping socket (`SOCK_DGRAM`/
//!   `IPPROTO_ICMP`, allowed when our group is in `net.ipv4.ping_group_range`) is preferred; else
//!   a raw ICMP socket (needs `CAP_NET_RAW`) that only lets echo replies through (`ICMP_FILTER`)
//!   and keeps those carrying our identifier; else [`HostError::Unsupported`] and the core falls
//!   back to its UDP pseudo-ping. On a raw socket the identifier on the wire is this host's own
//!   random one (so two instances on one host never take each other's replies); replies are
//!   reported with the identifier the core asked for.
//! - **Readiness**: each socket is registered with the event loop's [`mio::Registry`] (given with
//!   [`StdHost::attach`]) under a token of its own, at or above [`FIRST_TOKEN`]; the loop turns
//!   an event back into the core's id with [`StdHost::socket_event`]. Registration is
//!   edge-triggered: the core reads until [`HostError::WouldBlock`] or keeps the socket on its
//!   own ready list, so one event is enough.
//!
//! Every operation is O(1): a hash lookup by id, a slab lookup by token.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::io::Errno;
use rustix::net::{ipproto, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use slirp_core::{EchoKind, EchoReply, HostError, HostSocket, SocketId, UdpEvent};

use crate::sys;

/// The first event-loop token used for host sockets; tokens below it belong to the loop (guest
/// link, signals, exit fd, child, waker).
pub const FIRST_TOKEN: usize = 16;

/// ICMP echo reply.
const ICMP_ECHO_REPLY: u8 = 0;
/// ICMP echo request.
const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP destination unreachable.
const ICMP_DEST_UNREACH: u8 = 3;
/// ICMP type "time exceeded".
const ICMP_TIME_EXCEEDED: u8 = 11;

/// What a host socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Udp,
    /// Unprivileged ping socket: the kernel owns the identifier and the checksum.
    Ping,
    /// Raw ICMP socket: receives whole IPv4 packets.
    Raw,
}

#[derive(Debug)]
struct Sock {
    fd: OwnedFd,
    token: Option<Token>,
    kind: Kind,
    /// The TTL last set with `IP_TTL` (`None`: the host's default).
    ttl: Option<u8>,
    /// The error queue may hold entries (an error event came, or a call returned an ICMP error).
    errqueue: bool,
    /// The identifier the core last used on a raw echo socket.
    core_ident: u16,
}

/// The host side of one slirp instance on a std platform. See the module documentation.
#[derive(Debug)]
pub struct StdHost {
    dns_upstream: Option<SocketAddr>,
    registry: Option<Registry>,
    sockets: HashMap<SocketId, Sock>,
    /// Token slab: `tokens[t - FIRST_TOKEN]` is the socket holding token `t`.
    tokens: Vec<Option<SocketId>>,
    free_tokens: Vec<usize>,
    /// Identifier of our echo requests on a raw socket.
    raw_ident: u16,
    /// Scratch for building echo requests.
    packet: Vec<u8>,
}

impl Default for StdHost {
    fn default() -> Self {
        StdHost::new(None)
    }
}

impl StdHost {
    /// A host whose DNS alias forwards to `dns_upstream`.
    pub fn new(dns_upstream: Option<SocketAddr>) -> StdHost {
        use std::hash::BuildHasher;
        let raw_ident = std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as u16;
        StdHost {
            dns_upstream,
            registry: None,
            sockets: HashMap::new(),
            tokens: Vec::new(),
            free_tokens: Vec::new(),
            raw_ident,
            packet: Vec::new(),
        }
    }

    /// The resolver queries to the DNS alias go to, as configured.
    pub fn configured_dns_upstream(&self) -> Option<SocketAddr> {
        self.dns_upstream
    }

    /// Watches every socket (those open now and those opened later) with `registry`, for
    /// readability, edge-triggered. [`EventLoop`](crate::EventLoop) does this; an embedder with
    /// its own mio loop calls it once and feeds events to [`StdHost::socket_event`].
    pub fn attach(&mut self, registry: Registry) -> std::io::Result<()> {
        let ids: Vec<SocketId> = self.sockets.keys().copied().collect();
        self.registry = Some(registry);
        for id in ids {
            if let Err(e) = self.register(id) {
                let e = std::io::Error::other(format!("watching host socket: {e}"));
                return Err(e);
            }
        }
        Ok(())
    }

    /// The core's id for an event on `token`, if the token is one of our sockets'. `error` is
    /// the event's error flag: it says the socket's error queue has entries to report.
    pub fn socket_event(&mut self, token: Token, error: bool) -> Option<SocketId> {
        let slot = token.0.checked_sub(FIRST_TOKEN)?;
        let id = (*self.tokens.get(slot)?)?;
        if error {
            if let Some(s) = self.sockets.get_mut(&id) {
                s.errqueue = true;
            }
        }
        Some(id)
    }

    /// Number of host sockets open.
    pub fn open_sockets(&self) -> usize {
        self.sockets.len()
    }

    fn register(&mut self, id: SocketId) -> Result<(), HostError> {
        let Some(registry) = &self.registry else { return Ok(()) };
        let Some(sock) = self.sockets.get_mut(&id) else { return Ok(()) };
        if sock.token.is_some() {
            return Ok(());
        }
        let slot = match self.free_tokens.pop() {
            Some(s) => s,
            None => {
                self.tokens.push(None);
                self.tokens.len() - 1
            }
        };
        let token = Token(FIRST_TOKEN + slot);
        if let Err(e) = registry.register(&mut SourceFd(&sock.fd.as_raw_fd()), token, Interest::READABLE) {
            self.free_tokens.push(slot);
            log::warn!("cannot watch a host socket: {e}");
            return Err(io_error(&e));
        }
        self.tokens[slot] = Some(id);
        sock.token = Some(token);
        Ok(())
    }

    /// Adds `fd` under `id` (replacing and closing whatever had that id) and watches it.
    fn insert(&mut self, id: SocketId, fd: OwnedFd, kind: Kind) -> Result<(), HostError> {
        self.close(id);
        self.sockets.insert(id, Sock { fd, token: None, kind, ttl: None, errqueue: false, core_ident: 0 });
        if let Err(e) = self.register(id) {
            self.sockets.remove(&id);
            return Err(e);
        }
        Ok(())
    }

    fn sock(&mut self, id: SocketId, kind: Kind) -> Result<&mut Sock, HostError> {
        match self.sockets.get_mut(&id) {
            Some(s) if s.kind == kind || (kind != Kind::Udp && s.kind != Kind::Udp) => Ok(s),
            _ => Err(HostError::Other),
        }
    }

    fn open_echo(&mut self) -> Result<(OwnedFd, Kind), HostError> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let ping_err =
            match rustix::net::socket_with(AddressFamily::INET, SocketType::DGRAM, flags, Some(ipproto::ICMP)) {
                Ok(fd) => {
                    log::info!("ICMP echo through an unprivileged ping socket");
                    return Ok((fd, Kind::Ping));
                }
                Err(e) => e,
            };
        match rustix::net::socket_with(AddressFamily::INET, SocketType::RAW, flags, Some(ipproto::ICMP)) {
            Ok(fd) => {
                if let Err(e) = sys::set_icmp_filter(fd.as_fd(), &[ICMP_ECHO_REPLY]) {
                    // Still correct without the filter: replies are checked one by one.
                    log::debug!("ICMP_FILTER: {e}");
                }
                log::info!("ICMP echo through a raw socket (identifier {:#06x})", self.raw_ident);
                Ok((fd, Kind::Raw))
            }
            Err(raw_err) => {
                log::warn!(
                    "no ICMP echo socket (ping socket: {ping_err}; raw socket: {raw_err}): guest pings use the \
                     UDP port 7 fallback. Allow ping sockets with sysctl net.ipv4.ping_group_range, or grant \
                     CAP_NET_RAW"
                );
                Err(HostError::Unsupported)
            }
        }
    }
}

/// Applies the guest's TTL to a socket, with one syscall only when it changes.
fn apply_ttl(sock: &mut Sock, ttl: Option<u8>) {
    if sock.ttl == ttl {
        return;
    }
    let res = match ttl {
        Some(t) => rustix::net::sockopt::set_ip_ttl(&sock.fd, u32::from(t.max(1))).map_err(std::io::Error::from),
        None => sys::reset_ip_ttl(sock.fd.as_fd()),
    };
    match res {
        Ok(()) => sock.ttl = ttl,
        // The datagram still goes, with the previous TTL.
        Err(e) => log::debug!("IP_TTL {ttl:?}: {e}"),
    }
}

/// The core's name for an errno.
fn map_errno(e: Errno) -> HostError {
    match e {
        Errno::AGAIN | Errno::INTR => HostError::WouldBlock,
        Errno::NETUNREACH | Errno::NETDOWN => HostError::NetUnreachable,
        Errno::HOSTUNREACH | Errno::HOSTDOWN => HostError::HostUnreachable,
        Errno::CONNREFUSED => HostError::Refused,
        Errno::ACCESS | Errno::PERM => HostError::PermissionDenied,
        Errno::ADDRINUSE => HostError::AddrInUse,
        Errno::MSGSIZE => HostError::TooLarge,
        Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM => HostError::Exhausted,
        Errno::AFNOSUPPORT | Errno::PROTONOSUPPORT | Errno::ADDRNOTAVAIL => HostError::Unsupported,
        _ => HostError::Other,
    }
}

fn io_error(e: &std::io::Error) -> HostError {
    e.raw_os_error().map(|n| map_errno(Errno::from_raw_os_error(n))).unwrap_or(HostError::Other)
}

/// Errors the kernel may report on a later call of a socket with `IP_RECVERR` because an ICMP
/// error arrived (`sk_err`), rather than because of the call itself.
fn is_async_icmp_error(e: Errno) -> bool {
    matches!(
        e,
        Errno::CONNREFUSED | Errno::HOSTUNREACH | Errno::NETUNREACH | Errno::MSGSIZE | Errno::PROTO | Errno::NOPROTOOPT
    )
}

/// What an error-queue entry means to the core; `None` for entries it has no use for
/// (reassembly time exceeded, parameter problem, local errors other than a too-large datagram).
fn queued_error_event(q: &sys::QueuedError) -> Option<UdpEvent> {
    let error = match (q.origin, q.icmp_type, q.icmp_code) {
        (sys::EE_ORIGIN_ICMP, ICMP_DEST_UNREACH, code) => match code {
            0 | 6 | 9 | 11 => HostError::NetUnreachable,
            2 | 3 => HostError::Refused,
            4 => HostError::TooLarge,
            10 | 13 => HostError::PermissionDenied,
            _ => HostError::HostUnreachable,
        },
        (sys::EE_ORIGIN_ICMP, ICMP_TIME_EXCEEDED, 0) => HostError::TtlExpired,
        (sys::EE_ORIGIN_LOCAL, _, _) if q.errno == Errno::MSGSIZE.raw_os_error() as u32 => HostError::TooLarge,
        _ => return None,
    };
    let dst = q.dst?;
    Some(UdpEvent::Error { offender: q.offender.unwrap_or(Ipv4Addr::UNSPECIFIED), dst, error })
}

/// The Internet checksum of `data`.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn v4(addr: Option<rustix::net::SocketAddrAny>) -> Option<SocketAddrV4> {
    addr.and_then(|a| SocketAddrV4::try_from(a).ok())
}

impl HostSocket for StdHost {
    fn udp_bind(&mut self, id: SocketId, local: SocketAddrV4) -> Result<SocketAddrV4, HostError> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let fd = rustix::net::socket_with(AddressFamily::INET, SocketType::DGRAM, flags, Some(ipproto::UDP))
            .map_err(map_errno)?;
        if let Err(e) = sys::set_ip_recverr(fd.as_fd()) {
            // Still usable: ICMP errors from remotes are just not reported.
            log::debug!("IP_RECVERR: {e}");
        }
        rustix::net::bind(&fd, &local).map_err(map_errno)?;
        let bound = v4(rustix::net::getsockname(&fd).ok()).unwrap_or(local);
        self.insert(id, fd, Kind::Udp)?;
        Ok(bound)
    }

    fn udp_send_to(&mut self, id: SocketId, data: &[u8], dst: SocketAddrV4, ttl: Option<u8>) -> Result<(), HostError> {
        let sock = self.sock(id, Kind::Udp)?;
        apply_ttl(sock, ttl);
        let mut first = true;
        loop {
            match rustix::net::sendto(&sock.fd, data, SendFlags::empty(), &dst) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                // An ICMP error that arrived earlier (for any destination) makes the next call
                // fail once; it is on the error queue for the core to read. Send again.
                Err(e) if first && is_async_icmp_error(e) => {
                    sock.errqueue = true;
                    first = false;
                }
                Err(e) => return Err(map_errno(e)),
            }
        }
    }

    fn udp_recv_from(&mut self, id: SocketId, buf: &mut [u8]) -> Result<UdpEvent, HostError> {
        let sock = self.sock(id, Kind::Udp)?;
        // Bounded: each round consumes a datagram, an error-queue entry or a pending error.
        for _ in 0..64 {
            if sock.errqueue {
                match sys::recv_error_queue(sock.fd.as_fd()) {
                    Ok(Some(q)) => {
                        if let Some(ev) = queued_error_event(&q) {
                            return Ok(ev);
                        }
                        log::trace!("ignored queued socket error {q:?}");
                        continue;
                    }
                    Ok(None) => sock.errqueue = false,
                    Err(e) => {
                        log::debug!("reading the error queue: {e}");
                        sock.errqueue = false;
                    }
                }
            }
            match rustix::net::recvfrom(&sock.fd, &mut *buf, RecvFlags::empty()) {
                Ok((len, _, from)) => match v4(from) {
                    Some(from) => return Ok(UdpEvent::Datagram { len, from }),
                    None => continue,
                },
                Err(Errno::AGAIN) => return Err(HostError::WouldBlock),
                Err(Errno::INTR) => continue,
                Err(e) if is_async_icmp_error(e) => sock.errqueue = true,
                Err(e) => return Err(map_errno(e)),
            }
        }
        // Come back later; the core keeps the socket on its ready list.
        Ok(UdpEvent::Error {
            offender: Ipv4Addr::UNSPECIFIED,
            dst: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
            error: HostError::Other,
        })
    }

    fn close(&mut self, id: SocketId) {
        let Some(sock) = self.sockets.remove(&id) else { return };
        if let Some(token) = sock.token {
            if let Some(registry) = &self.registry {
                let _ = registry.deregister(&mut SourceFd(&sock.fd.as_raw_fd()));
            }
            let slot = token.0 - FIRST_TOKEN;
            self.tokens[slot] = None;
            self.free_tokens.push(slot);
        }
    }

    fn icmp_echo_open(&mut self, id: SocketId) -> Result<EchoKind, HostError> {
        if let Some(s) = self.sockets.get(&id) {
            match s.kind {
                Kind::Ping => return Ok(EchoKind::Datagram),
                Kind::Raw => return Ok(EchoKind::Raw),
                Kind::Udp => {}
            }
        }
        let (fd, kind) = self.open_echo()?;
        self.insert(id, fd, kind)?;
        Ok(if kind == Kind::Ping { EchoKind::Datagram } else { EchoKind::Raw })
    }

    fn icmp_echo_send(
        &mut self,
        id: SocketId,
        dst: Ipv4Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
        ttl: Option<u8>,
    ) -> Result<(), HostError> {
        let raw_ident = self.raw_ident;
        let mut packet = std::mem::take(&mut self.packet);
        let res = (|| {
            let sock = self.sock(id, Kind::Ping)?;
            apply_ttl(sock, ttl);
            let wire_ident = if sock.kind == Kind::Raw {
                sock.core_ident = ident;
                raw_ident
            } else {
                ident
            };
            packet.clear();
            packet.extend_from_slice(&[ICMP_ECHO_REQUEST, 0, 0, 0]);
            packet.extend_from_slice(&wire_ident.to_be_bytes());
            packet.extend_from_slice(&seq_no.to_be_bytes());
            packet.extend_from_slice(data);
            // Ping sockets fill in the checksum themselves; raw ones send what we give.
            let c = internet_checksum(&packet);
            packet[2..4].copy_from_slice(&c.to_be_bytes());
            let dst = SocketAddrV4::new(dst, 0);
            loop {
                match rustix::net::sendto(&sock.fd, &packet, SendFlags::empty(), &dst) {
                    Ok(_) => return Ok(()),
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(map_errno(e)),
                }
            }
        })();
        self.packet = packet;
        res
    }

    fn icmp_echo_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<EchoReply, HostError> {
        let raw_ident = self.raw_ident;
        let sock = self.sock(id, Kind::Ping)?;
        loop {
            let (n, _, from) = match rustix::net::recvfrom(&sock.fd, &mut *buf, RecvFlags::empty()) {
                Ok(r) => r,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(map_errno(e)),
            };
            let Some(from) = v4(from) else { continue };
            // Where the ICMP message starts: ping sockets strip the IP header, raw ones do not.
            let start = match sock.kind {
                Kind::Raw => {
                    let ihl = usize::from(buf.first().copied().unwrap_or(0) & 0x0f) * 4;
                    if ihl < 20 || n < ihl + 8 {
                        continue;
                    }
                    ihl
                }
                _ => {
                    if n < 8 {
                        continue;
                    }
                    0
                }
            };
            let icmp = &buf[start..n];
            if icmp[0] != ICMP_ECHO_REPLY || icmp[1] != 0 {
                continue;
            }
            let ident = u16::from_be_bytes([icmp[4], icmp[5]]);
            let seq_no = u16::from_be_bytes([icmp[6], icmp[7]]);
            let ident = if sock.kind == Kind::Raw {
                // Another process's reply, or a damaged one.
                if ident != raw_ident || internet_checksum(icmp) != 0 {
                    continue;
                }
                sock.core_ident
            } else {
                ident
            };
            buf.copy_within(start + 8..n, 0);
            return Ok(EchoReply { from: *from.ip(), ident, seq_no, len: n - start - 8 });
        }
    }

    /// The upstream resolver, when it is IPv4 (the core's NAT speaks IPv4 toward the host).
    fn dns_upstream(&self) -> Option<SocketAddrV4> {
        match self.dns_upstream {
            Some(SocketAddr::V4(a)) => Some(a),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Over the loopback interface only: nothing leaves the machine.
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    const A: SocketId = SocketId(1 << 56 | 1);
    const B: SocketId = SocketId(1 << 56 | 2);
    const ECHO: SocketId = SocketId(2 << 56);

    fn any() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)
    }

    /// Polls `f` until it stops saying WouldBlock (2 s at most).
    fn wait<T>(mut f: impl FnMut() -> Result<T, HostError>) -> Result<T, HostError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match f() {
                Err(HostError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                r => return r,
            }
        }
    }

    fn peer() -> (UdpSocket, SocketAddrV4) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let SocketAddr::V4(a) = s.local_addr().unwrap() else { unreachable!() };
        (s, a)
    }

    #[test]
    fn only_ipv4_upstreams_reach_the_core() {
        let v4: SocketAddr = "198.51.100.1:53".parse().unwrap();
        assert_eq!(HostSocket::dns_upstream(&StdHost::new(Some(v4))), Some("198.51.100.1:53".parse().unwrap()));
        let v6: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        assert_eq!(HostSocket::dns_upstream(&StdHost::new(Some(v6))), None);
        assert_eq!(HostSocket::dns_upstream(&StdHost::default()), None);
    }

    #[test]
    fn udp_round_trip_small_and_largest_datagrams() {
        let mut host = StdHost::default();
        let bound = host.udp_bind(A, any()).unwrap();
        assert_ne!(bound.port(), 0);
        let (remote, raddr) = peer();
        let mut buf = vec![0u8; 65535];
        for size in [1usize, 4000, 65507] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            host.udp_send_to(A, &data, raddr, Some(64)).unwrap();
            let mut got = vec![0u8; 65535];
            let (n, from) = remote.recv_from(&mut got).unwrap();
            assert_eq!(&got[..n], &data[..], "host -> remote, {size} bytes");
            assert_eq!(from.port(), bound.port());
            remote.send_to(&data, from).unwrap();
            match wait(|| host.udp_recv_from(A, &mut buf)).unwrap() {
                UdpEvent::Datagram { len, from } => {
                    assert_eq!(from, raddr);
                    assert_eq!(&buf[..len], &data[..], "remote -> host, {size} bytes");
                }
                e => panic!("{e:?}"),
            }
        }
        assert_eq!(host.udp_recv_from(A, &mut buf), Err(HostError::WouldBlock));
        // Longer than IPv4 allows: refused by the host, as the core expects.
        assert_eq!(host.udp_send_to(A, &vec![0u8; 65508], raddr, None), Err(HostError::TooLarge));
    }

    #[test]
    fn ttl_is_set_only_when_it_changes() {
        let mut host = StdHost::default();
        host.udp_bind(A, any()).unwrap();
        let (_remote, raddr) = peer();
        let ttl = |host: &StdHost| rustix::net::sockopt::ip_ttl(&host.sockets[&A].fd).unwrap();
        let default = ttl(&host);
        host.udp_send_to(A, b"x", raddr, Some(3)).unwrap();
        assert_eq!(ttl(&host), 3);
        assert_eq!(host.sockets[&A].ttl, Some(3));
        host.udp_send_to(A, b"x", raddr, Some(3)).unwrap();
        host.udp_send_to(A, b"x", raddr, Some(200)).unwrap();
        assert_eq!(ttl(&host), 200);
        host.udp_send_to(A, b"x", raddr, None).unwrap();
        assert_eq!(ttl(&host), default);
    }

    #[test]
    fn port_unreachable_comes_back_as_an_error_event_and_does_not_poison_the_next_send() {
        let mut host = StdHost::default();
        host.udp_bind(A, any()).unwrap();
        // A port nobody listens on: bind, note it, close.
        let closed = peer().1;
        host.udp_send_to(A, b"anyone?", closed, Some(64)).unwrap();
        // The ICMP error arrives; a send to someone else must still go out.
        std::thread::sleep(Duration::from_millis(50));
        let (remote, raddr) = peer();
        host.udp_send_to(A, b"hello", raddr, Some(64)).unwrap();
        let mut got = [0u8; 16];
        assert_eq!(remote.recv_from(&mut got).unwrap().0, 5);
        let mut buf = vec![0u8; 2048];
        let ev = wait(|| host.udp_recv_from(A, &mut buf)).unwrap();
        assert_eq!(ev, UdpEvent::Error { offender: Ipv4Addr::LOCALHOST, dst: closed, error: HostError::Refused });
        assert_eq!(host.udp_recv_from(A, &mut buf), Err(HostError::WouldBlock));
    }

    #[test]
    fn errors_map_to_the_core_names() {
        let q = |origin, t, c| sys::QueuedError {
            origin,
            icmp_type: t,
            icmp_code: c,
            errno: 0,
            info: 0,
            offender: Some(Ipv4Addr::new(198, 51, 100, 1)),
            dst: Some(SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 9), 7)),
        };
        let err = |origin, t, c| match queued_error_event(&q(origin, t, c)) {
            Some(UdpEvent::Error { error, .. }) => Some(error),
            _ => None,
        };
        let icmp = sys::EE_ORIGIN_ICMP;
        assert_eq!(err(icmp, 3, 0), Some(HostError::NetUnreachable));
        assert_eq!(err(icmp, 3, 1), Some(HostError::HostUnreachable));
        assert_eq!(err(icmp, 3, 3), Some(HostError::Refused));
        assert_eq!(err(icmp, 3, 4), Some(HostError::TooLarge));
        assert_eq!(err(icmp, 3, 13), Some(HostError::PermissionDenied));
        assert_eq!(err(icmp, 11, 0), Some(HostError::TtlExpired), "a traceroute hop");
        assert_eq!(err(icmp, 11, 1), None, "reassembly time exceeded is not about our datagram");
        assert_eq!(map_errno(Errno::NETUNREACH), HostError::NetUnreachable);
        assert_eq!(map_errno(Errno::ADDRINUSE), HostError::AddrInUse);
        assert_eq!(map_errno(Errno::ACCESS), HostError::PermissionDenied);
        assert_eq!(map_errno(Errno::MFILE), HostError::Exhausted);
    }

    #[test]
    fn forward_bind_reports_address_and_conflicts() {
        let mut host = StdHost::default();
        let bound = host.udp_bind(A, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        assert_eq!(*bound.ip(), Ipv4Addr::LOCALHOST);
        assert_eq!(host.udp_bind(B, bound), Err(HostError::AddrInUse));
        assert_eq!(host.open_sockets(), 1);
        host.close(A);
        host.close(A);
        assert_eq!(host.open_sockets(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(host.udp_recv_from(A, &mut buf), Err(HostError::Other));
    }

    #[test]
    fn events_name_the_socket_and_tokens_are_reused() {
        let poll = mio::Poll::new().unwrap();
        let mut host = StdHost::default();
        host.udp_bind(A, any()).unwrap();
        host.attach(poll.registry().try_clone().unwrap()).unwrap();
        let bound = host.udp_bind(B, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        let tok = |h: &StdHost, id| h.sockets[&id].token.unwrap();
        assert!(tok(&host, A).0 >= FIRST_TOKEN && tok(&host, B).0 >= FIRST_TOKEN);
        assert_ne!(tok(&host, A), tok(&host, B));
        let (remote, _) = peer();
        remote.send_to(b"ping", bound).unwrap();
        let mut poll = poll;
        let mut events = mio::Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_secs(2))).unwrap();
        let ids: Vec<_> = events.iter().filter_map(|e| host.socket_event(e.token(), e.is_error())).collect();
        assert_eq!(ids, vec![B]);
        assert_eq!(host.socket_event(Token(3), false), None, "the loop's own tokens are not ours");
        let old = tok(&host, B);
        host.close(B);
        assert_eq!(host.socket_event(old, false), None);
        host.udp_bind(SocketId(B.0 + 1), any()).unwrap();
        assert_eq!(tok(&host, SocketId(B.0 + 1)), old, "freed token reused");
    }

    #[test]
    fn echo_to_loopback() {
        let mut host = StdHost::default();
        let kind = match host.icmp_echo_open(ECHO) {
            Ok(k) => k,
            Err(e) => {
                // Neither ping sockets (ping_group_range) nor CAP_NET_RAW here.
                assert_eq!(e, HostError::Unsupported);
                eprintln!("echo_to_loopback: no echo socket on this host, nothing more to check");
                return;
            }
        };
        assert_eq!(host.icmp_echo_open(ECHO), Ok(kind), "one long-lived socket");
        let mut buf = vec![0u8; 65535];
        for (seq, size) in [(1u16, 56usize), (2, 3000)] {
            let data: Vec<u8> = (0..size).map(|i| (i as u8) ^ 0x5a).collect();
            host.icmp_echo_send(ECHO, Ipv4Addr::LOCALHOST, 0x51e7, seq, &data, Some(64)).unwrap();
            let r = wait(|| host.icmp_echo_recv(ECHO, &mut buf)).unwrap();
            assert_eq!(r.from, Ipv4Addr::LOCALHOST);
            assert_eq!(r.seq_no, seq);
            assert_eq!(&buf[..r.len], &data[..]);
            if kind == EchoKind::Raw {
                assert_eq!(r.ident, 0x51e7, "reported with the core's identifier");
            }
        }
        assert_eq!(host.icmp_echo_recv(ECHO, &mut buf), Err(HostError::WouldBlock));
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2, so the checksum is !0xddf2.
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        let mut with = vec![8, 0, 0, 0, 1, 2, 3, 4, 5];
        let c = internet_checksum(&with);
        with[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(internet_checksum(&with), 0);
    }
}
