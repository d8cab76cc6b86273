//! The seam between the core and the host's networking.
//!
//! The core never opens a socket. Everything it needs from the host (sockets for NAT flows,
//! bound sockets for forwarded ports, the ICMP echo socket, the upstream resolver) goes through
//! [`HostSocket`], implemented by `slirp-std` over nonblocking OS sockets, by `slirp-test-host`
//! over a simulated network, and by embedders over whatever their platform offers.
//!
//! Contract:
//! - every call is nonblocking and returns at once: done, [`HostError::WouldBlock`], or a small
//!   typed error;
//! - the core names each socket with a [`SocketId`] it chooses; the host keeps its own map from id
//!   to socket and reports readiness with the same id through
//!   [`Slirp::handle_host_readable`](crate::Slirp::handle_host_readable), so the core does O(1)
//!   work per event and never scans its flows;
//! - every method has a default that refuses ([`HostError::Unsupported`]): a host with no
//!   network, like [`NoHost`], implements nothing.

use core::fmt;
use core::net::{IpAddr, SocketAddr};

/// Names one host socket. Chosen by the core, opaque to the host (use it as an event-loop token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SocketId(pub u64);

/// Why a host operation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HostError {
    /// Try again when the socket is ready.
    WouldBlock,
    /// The host has no route to the network (ENETUNREACH).
    NetUnreachable,
    /// The host could not reach the host (EHOSTUNREACH).
    HostUnreachable,
    /// The remote refused (ECONNREFUSED; for UDP, an ICMP port unreachable came back).
    Refused,
    /// Not allowed (EACCES/EPERM: broadcast, privileged port, policy).
    PermissionDenied,
    /// The local address is in use (EADDRINUSE).
    AddrInUse,
    /// The message is too large for the host to send (EMSGSIZE).
    TooLarge,
    /// A router on the way reported the TTL ran out (ICMP time exceeded): a traceroute hop.
    TtlExpired,
    /// The host has no such capability (no ping sockets, no network at all).
    Unsupported,
    /// Out of host resources (descriptors, memory).
    Exhausted,
    /// No such file (ENOENT), or not one that may be served (a directory, a device, a path
    /// that leaves the served root).
    NotFound,
    /// Anything else.
    Other,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::WouldBlock => "would block",
            HostError::NotFound => "no such file",
            HostError::NetUnreachable => "network unreachable",
            HostError::HostUnreachable => "host unreachable",
            HostError::Refused => "refused",
            HostError::PermissionDenied => "permission denied",
            HostError::AddrInUse => "address in use",
            HostError::TooLarge => "message too large",
            HostError::TtlExpired => "time to live exceeded",
            HostError::Unsupported => "unsupported",
            HostError::Exhausted => "out of resources",
            HostError::Other => "host error",
        })
    }
}

impl core::error::Error for HostError {}

impl From<HostError> for embedded_io::ErrorKind {
    fn from(e: HostError) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match e {
            HostError::WouldBlock => K::Other,
            HostError::NetUnreachable | HostError::HostUnreachable => K::NotConnected,
            HostError::Refused => K::ConnectionRefused,
            HostError::PermissionDenied => K::PermissionDenied,
            HostError::AddrInUse => K::AddrInUse,
            HostError::TooLarge => K::InvalidInput,
            HostError::TtlExpired => K::TimedOut,
            HostError::Unsupported => K::Unsupported,
            HostError::Exhausted => K::OutOfMemory,
            HostError::NotFound => K::NotFound,
            HostError::Other => K::Other,
        }
    }
}

/// What a UDP socket had to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpEvent {
    /// A datagram of `len` bytes (written to the buffer) from `from`.
    Datagram {
        /// Bytes written to the buffer.
        len: usize,
        /// Sender.
        from: SocketAddr,
    },
    /// The host reported an ICMP error for a datagram this socket sent to `dst` (Linux
    /// `IP_RECVERR`): `offender` is the address that sent the error.
    Error {
        /// The router or host that reported the error.
        offender: IpAddr,
        /// The destination of the datagram that failed.
        dst: SocketAddr,
        /// What went wrong.
        error: HostError,
    },
}

/// How the host sends ICMP echo requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EchoKind {
    /// Unprivileged ping socket (SOCK_DGRAM/IPPROTO_ICMP): the host owns the identifier.
    Datagram,
    /// Raw ICMP socket: we choose the identifier.
    Raw,
}

/// An IP version: which family of echo socket to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IpVersion {
    /// IPv4 (ICMP).
    V4,
    /// IPv6 (ICMPv6).
    V6,
}

impl IpVersion {
    /// The version of `addr`.
    pub fn of(addr: IpAddr) -> IpVersion {
        match addr {
            IpAddr::V4(_) => IpVersion::V4,
            IpAddr::V6(_) => IpVersion::V6,
        }
    }

    /// The unspecified address of this version, port 0: what an outbound socket binds.
    pub fn any(self) -> SocketAddr {
        match self {
            IpVersion::V4 => SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0),
            IpVersion::V6 => SocketAddr::new(IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED), 0),
        }
    }
}

/// An echo reply the host received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoReply {
    /// Who answered.
    pub from: IpAddr,
    /// Identifier as received (meaningful for raw sockets; ping sockets rewrite it).
    pub ident: u16,
    /// Sequence number as received.
    pub seq_no: u16,
    /// Payload bytes written to the buffer.
    pub len: usize,
}

/// Operations the core asks of the host. See the module documentation.
pub trait HostSocket {
    /// Opens a UDP socket bound to `local` (`0.0.0.0:0` or `[::]:0` for an outbound NAT flow: the
    /// family is the destination's) and starts watching it for readability under `id`. Returns
    /// the address actually bound.
    fn udp_bind(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        let _ = (id, local);
        Err(HostError::Unsupported)
    }

    /// Sends one datagram. `ttl`, when given, is applied to the outgoing packet where the OS
    /// allows (so a guest's traceroute works).
    fn udp_send_to(&mut self, id: SocketId, data: &[u8], dst: SocketAddr, ttl: Option<u8>) -> Result<(), HostError> {
        let _ = (id, data, dst, ttl);
        Err(HostError::Unsupported)
    }

    /// Receives one datagram (or one queued error) into `buf`. `WouldBlock` when none is queued.
    /// A datagram longer than `buf` is truncated to it.
    fn udp_recv_from(&mut self, id: SocketId, buf: &mut [u8]) -> Result<UdpEvent, HostError> {
        let _ = (id, buf);
        Err(HostError::Unsupported)
    }

    /// Closes a socket and stops watching it. Unknown ids are ignored.
    fn close(&mut self, id: SocketId) {
        let _ = id;
    }

    /// Opens the (one per IP version, long-lived) ICMP or ICMPv6 echo socket under `id` and says
    /// which kind it is.
    fn icmp_echo_open(&mut self, id: SocketId, version: IpVersion) -> Result<EchoKind, HostError> {
        let _ = (id, version);
        Err(HostError::Unsupported)
    }

    /// Sends an echo request to `dst` (of the socket's version). Ping sockets replace `ident`
    /// with their own. `ttl` is the hop limit over IPv6.
    fn icmp_echo_send(
        &mut self,
        id: SocketId,
        dst: IpAddr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
        ttl: Option<u8>,
    ) -> Result<(), HostError> {
        let _ = (id, dst, ident, seq_no, data, ttl);
        Err(HostError::Unsupported)
    }

    /// Receives one echo reply into `buf`.
    fn icmp_echo_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<EchoReply, HostError> {
        let _ = (id, buf);
        Err(HostError::Unsupported)
    }

    /// The upstream resolver the DNS aliases (IPv4 and IPv6) forward to, if any: of either
    /// version, whatever the guest's.
    fn dns_upstream(&self) -> Option<SocketAddr> {
        None
    }

    /// Starts a nonblocking TCP connect to `dst` under `id` and watches the socket for
    /// readability and writability. `Ok` means connected or in progress: completion is reported
    /// as writability, after which [`tcp_connect_result`](Self::tcp_connect_result) tells the
    /// outcome. Immediate failures (refused, unreachable) are errors here.
    fn tcp_connect(&mut self, id: SocketId, dst: SocketAddr) -> Result<(), HostError> {
        let _ = (id, dst);
        Err(HostError::Unsupported)
    }

    /// The outcome of a connect once the socket became writable: `Ok` connected, `WouldBlock`
    /// still in progress, or why it failed (SO_ERROR).
    fn tcp_connect_result(&mut self, id: SocketId) -> Result<(), HostError> {
        let _ = id;
        Err(HostError::Unsupported)
    }

    /// Writes bytes; returns how many the socket took (`WouldBlock` when none).
    fn tcp_send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        let _ = (id, data);
        Err(HostError::Unsupported)
    }

    /// Writes urgent (out-of-band) bytes, MSG_OOB.
    fn tcp_send_urgent(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        self.tcp_send(id, data)
    }

    /// Reads bytes into `buf`; `Ok(0)` is the end of the stream, `WouldBlock` when none wait.
    /// A reset by the peer is [`HostError::Refused`].
    fn tcp_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<usize, HostError> {
        let _ = (id, buf);
        Err(HostError::Unsupported)
    }

    /// Whether the next byte [`tcp_recv`](Self::tcp_recv) returns is urgent data the peer sent
    /// out of band (received inline: `SO_OOBINLINE`, and `SIOCATMARK` says the mark is next).
    /// The core then reads that byte alone and marks it urgent toward the guest.
    fn tcp_urgent_mark(&mut self, id: SocketId) -> bool {
        let _ = id;
        false
    }

    /// Shuts down the write side (sends FIN); reading goes on.
    fn tcp_shutdown_write(&mut self, id: SocketId) -> Result<(), HostError> {
        let _ = id;
        Err(HostError::Unsupported)
    }

    /// Closes with a reset (SO_LINGER 0) and stops watching. Unknown ids are ignored.
    fn tcp_abort(&mut self, id: SocketId) {
        self.close(id)
    }

    /// Listens on `local` under `id` (watched for readability = a connection to accept).
    /// Returns the address actually bound.
    fn tcp_listen(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        let _ = (id, local);
        Err(HostError::Unsupported)
    }

    /// Accepts one pending connection of `listener` as socket `id` (watched like a connected
    /// socket); returns the client's address. `WouldBlock` when none is pending.
    fn tcp_accept(&mut self, listener: SocketId, id: SocketId) -> Result<SocketAddr, HostError> {
        let _ = (listener, id);
        Err(HostError::Unsupported)
    }

    /// Opens the embedder's endpoint for a guest connection to guest-forward rule `rule` (see
    /// [`Slirp::add_guest_forward`](crate::Slirp::add_guest_forward)) from `guest`, as socket
    /// `id`. From then on `id` is used like a connected TCP socket: [`tcp_send`](Self::tcp_send)
    /// takes what the guest sent, [`tcp_recv`](Self::tcp_recv) gives what goes to the guest
    /// (0 = end of stream), [`tcp_shutdown_write`](Self::tcp_shutdown_write) is the guest's FIN,
    /// [`tcp_abort`](Self::tcp_abort) its reset, [`close`](Self::close) the end; the host
    /// reports readiness under `id` (`handle_host_readable` when it has bytes for the guest,
    /// `handle_host_writable` when it can take more). `Ok` means the endpoint is ready (the
    /// guest gets its SYN-ACK at once); [`HostError::WouldBlock`] that it will be: the host then
    /// reports `id` writable and answers [`tcp_connect_result`](Self::tcp_connect_result);
    /// another error refuses the connection (RST).
    fn guest_forward_open(&mut self, id: SocketId, rule: u32, guest: SocketAddr) -> Result<(), HostError> {
        let _ = (id, rule, guest);
        Err(HostError::Unsupported)
    }

    /// Opens file `path` of the TFTP root for reading as transfer `session` (below
    /// [`TFTP_SESSIONS`](crate::TFTP_SESSIONS); a session's earlier file is
    /// closed first) and returns its size. The core has already refused absolute escapes and
    /// `..` components: `path` is relative, `/`-separated, without empty, `.` or `..` parts.
    /// The host must still refuse what leaves the root another way (a symbolic link) and what
    /// is not a regular file, with [`HostError::NotFound`]. Without a TFTP root:
    /// [`HostError::Unsupported`].
    fn tftp_open(&mut self, session: u8, path: &str) -> Result<u64, HostError> {
        let _ = (session, path);
        Err(HostError::Unsupported)
    }

    /// Reads up to `buf.len()` bytes of transfer `session`'s file at `offset`; fewer only at
    /// the end of the file.
    fn tftp_read(&mut self, session: u8, offset: u64, buf: &mut [u8]) -> Result<usize, HostError> {
        let _ = (session, offset, buf);
        Err(HostError::Unsupported)
    }

    /// The transfer `session` is over: its file can be closed.
    fn tftp_close(&mut self, session: u8) {
        let _ = session;
    }
}

/// A host with no network: every flow toward the outside is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHost;

impl HostSocket for NoHost {}

impl<H: HostSocket + ?Sized> HostSocket for &mut H {
    fn udp_bind(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        (**self).udp_bind(id, local)
    }
    fn udp_send_to(&mut self, id: SocketId, data: &[u8], dst: SocketAddr, ttl: Option<u8>) -> Result<(), HostError> {
        (**self).udp_send_to(id, data, dst, ttl)
    }
    fn udp_recv_from(&mut self, id: SocketId, buf: &mut [u8]) -> Result<UdpEvent, HostError> {
        (**self).udp_recv_from(id, buf)
    }
    fn close(&mut self, id: SocketId) {
        (**self).close(id)
    }
    fn icmp_echo_open(&mut self, id: SocketId, version: IpVersion) -> Result<EchoKind, HostError> {
        (**self).icmp_echo_open(id, version)
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
        (**self).icmp_echo_send(id, dst, ident, seq_no, data, ttl)
    }
    fn icmp_echo_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<EchoReply, HostError> {
        (**self).icmp_echo_recv(id, buf)
    }
    fn dns_upstream(&self) -> Option<SocketAddr> {
        (**self).dns_upstream()
    }
    fn tcp_connect(&mut self, id: SocketId, dst: SocketAddr) -> Result<(), HostError> {
        (**self).tcp_connect(id, dst)
    }
    fn tcp_connect_result(&mut self, id: SocketId) -> Result<(), HostError> {
        (**self).tcp_connect_result(id)
    }
    fn tcp_send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        (**self).tcp_send(id, data)
    }
    fn tcp_send_urgent(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        (**self).tcp_send_urgent(id, data)
    }
    fn tcp_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<usize, HostError> {
        (**self).tcp_recv(id, buf)
    }
    fn tcp_shutdown_write(&mut self, id: SocketId) -> Result<(), HostError> {
        (**self).tcp_shutdown_write(id)
    }
    fn tcp_urgent_mark(&mut self, id: SocketId) -> bool {
        (**self).tcp_urgent_mark(id)
    }
    fn tcp_abort(&mut self, id: SocketId) {
        (**self).tcp_abort(id)
    }
    fn tcp_listen(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        (**self).tcp_listen(id, local)
    }
    fn tcp_accept(&mut self, listener: SocketId, id: SocketId) -> Result<SocketAddr, HostError> {
        (**self).tcp_accept(listener, id)
    }
    fn tftp_open(&mut self, session: u8, path: &str) -> Result<u64, HostError> {
        (**self).tftp_open(session, path)
    }
    fn tftp_read(&mut self, session: u8, offset: u64, buf: &mut [u8]) -> Result<usize, HostError> {
        (**self).tftp_read(session, offset, buf)
    }
    fn tftp_close(&mut self, session: u8) {
        (**self).tftp_close(session)
    }
    fn guest_forward_open(&mut self, id: SocketId, rule: u32, guest: SocketAddr) -> Result<(), HostError> {
        (**self).guest_forward_open(id, rule, guest)
    }
}
