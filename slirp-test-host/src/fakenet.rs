//! A fake host network: the host's sockets and a small internet of scripted servers, on the
//! virtual clock.
//!
//! [`FakeNet`] implements the core's [`HostSocket`] and the simulation's [`SimHost`]. It models:
//!
//! - **host sockets**: UDP sockets bound to an address (port 0 picks an ephemeral port from
//!   [`EPHEMERAL_PORTS`]), each with a receive queue of at most
//!   [`FakeNet::set_socket_queue_limit`] entries (further arrivals are dropped and counted, like
//!   a full `SO_RCVBUF`); the one ICMP echo socket (a ping socket, a raw socket, or none at all,
//!   see [`EchoMode`]); a limit on open sockets ([`FakeNet::set_socket_limit`]: binds beyond it
//!   fail with [`HostError::Exhausted`]) and on datagram size ([`FakeNet::set_max_datagram`]:
//!   larger sends fail with [`HostError::TooLarge`]);
//! - **readiness**: when a socket's queue goes from empty to non-empty, its id is reported once
//!   through [`SimHost::take_readable`] (edge-triggered, like `EPOLLET`), and the simulation
//!   calls [`Slirp::handle_host_readable`](slirp_core::Slirp::handle_host_readable). A core that
//!   stops reading before [`HostError::WouldBlock`] hears nothing more about that socket.
//!   TCP sockets are reported readable when data arrives into an empty receive buffer or FIN or
//!   RST arrives, writable through [`SimHost::take_writable`] when a connect completes or a
//!   send that fell short finds room again; a listener is reported when its backlog becomes
//!   non-empty, and again at the next round while its last accept succeeded (as `slirp-std`'s
//!   loop does; [`FakeNet::set_reoffer_listeners`] turns that off);
//! - **TCP** (see the `tcp` submodule): host stream sockets whose two directions each carry
//!   data, FIN and RST in order with the latency and hold at most a socket buffer
//!   ([`FakeNet::set_tcp_buffers`]), so sends come back short or [`HostError::WouldBlock`];
//!   scripted TCP services ([`TcpService`]: echo, a source of pseudo-random bytes, a
//!   half-closing sink that answers with a count and SHA-256, a server that resets after some
//!   bytes, DNS over TCP); a known host without the port refuses after a round trip, the
//!   loopback refuses at once, a [`RouteFault`] fails the connect at once
//!   ([`RouteFault::SendFails`]) or after a round trip ([`RouteFault::IcmpError`]) or swallows
//!   it ([`RouteFault::Blackhole`], as does any unknown address); listeners for port forwards,
//!   and host clients the test drives ([`FakeNet::tcp_client_connect`] and friends). Every
//!   connection keeps a [`TcpConnRecord`] ([`FakeNet::tcp_conns`]);
//! - **the internet**: UDP services at fixed addresses ([`UdpService`]: echo, echo from another
//!   address, a DNS resolver answering from a name table, a sink, bursts), hosts that answer
//!   pings, and faults per destination prefix ([`RouteFault`]: the send fails at once, or a
//!   router answers with an ICMP error reported on the socket as Linux's `IP_RECVERR` does, or
//!   the datagram vanishes). A datagram to a known host on a port nobody serves comes back as
//!   "port unreachable" ([`HostError::Refused`]) from that host; one to an unknown address
//!   vanishes;
//! - **the host's loopback**: services at `127.0.0.1:PORT` (what the guest reaches at the
//!   gateway alias), and the host's own sockets, which receive what is sent to their port;
//! - **host clients**: endpoints the test plays ([`FakeNet::add_client`]) that send to the
//!   host's sockets (a UDP port forward, say) and collect what is sent back to them;
//! - **time**: every datagram takes [`FakeNet::set_latency`] one way
//!   ([`FakeNet::set_loopback_latency`] on loopback); arrivals are events on the virtual clock,
//!   delivered in time order and, at one instant, in the order they were scheduled.
//!
//! Everything is deterministic: no randomness, ordered maps only. Every send is logged
//! ([`FakeNet::sent`], [`FakeNet::echoes_sent`]) with its TTL, and misuse by the core (calls on a
//! closed or unknown socket) is counted in [`FakeNetStats::unknown_socket_calls`].

use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use slirp_core::{EchoKind, EchoReply, HostError, HostSocket, Instant, IpVersion, SocketId, UdpEvent};

use crate::dns;
use crate::sim::SimHost;

mod tcp;

pub use tcp::{ConnId, TcpConnRecord, TcpService, DEFAULT_TCP_RECV_BUFFER, DEFAULT_TCP_SEND_BUFFER};

/// Ports handed out to sockets bound to port 0.
pub const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 40000..=60999;
/// Default one-way latency between the host and the fake internet.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(5);
/// Default one-way latency on the host's loopback.
pub const DEFAULT_LOOPBACK_LATENCY: Duration = Duration::from_micros(20);
/// Default number of entries a socket's receive queue holds.
pub const DEFAULT_QUEUE_LIMIT: usize = 256;
/// Default largest datagram a socket sends (the IPv4 UDP maximum).
pub const DEFAULT_MAX_DATAGRAM: usize = 65_507;
/// The identifier the host's ping socket puts in every echo request (it owns the identifier).
pub const PING_SOCKET_IDENT: u16 = 0x0b0b;

/// A scripted UDP server of the fake internet (or of the host's loopback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpService {
    /// Sends every datagram back, from its own address.
    Echo,
    /// Sends every datagram back from another address (endpoint-independent mapping tests).
    EchoFrom(SocketAddrV4),
    /// A DNS resolver answering from the network's name table ([`FakeNet::add_dns_record`]).
    Dns,
    /// Takes everything, answers nothing.
    Sink,
    /// Answers each datagram with `count` datagrams, all at once: a 4-byte big-endian sequence
    /// number (0, 1, ...) followed by the request's bytes.
    Burst {
        /// Datagrams per request.
        count: u32,
    },
}

/// What happens to traffic toward a prefix (see [`FakeNet::add_route_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteFault {
    /// The host has no route: the send fails at once with this error (ENETUNREACH and kin).
    SendFails(HostError),
    /// A router on the way answers with an ICMP error, which the socket reports after the round
    /// trip to that router (one latency each way) as [`UdpEvent::Error`].
    IcmpError {
        /// The router that reports it.
        router: Ipv4Addr,
        /// What it reports ([`HostError::NetUnreachable`], [`HostError::HostUnreachable`], ...).
        error: HostError,
    },
    /// The datagram vanishes.
    Blackhole,
}

/// Which ICMP echo socket the host offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoMode {
    /// An unprivileged ping socket: the host replaces the identifier with [`PING_SOCKET_IDENT`].
    PingSocket,
    /// A raw socket: identifiers go out as given.
    Raw,
    /// Neither (ping sockets disabled by `ping_group_range`, no privilege): opening fails.
    Unavailable,
}

/// A datagram a host socket sent, as logged by [`FakeNet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentDatagram {
    /// When it was sent.
    pub at: Instant,
    /// The socket that sent it.
    pub socket: SocketId,
    /// The socket's bound address.
    pub from: SocketAddrV4,
    /// Its destination.
    pub to: SocketAddrV4,
    /// The TTL the core asked for.
    pub ttl: Option<u8>,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// An echo request the host's echo socket sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentEcho {
    /// When it was sent.
    pub at: Instant,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Identifier as it left the host (the ping socket's own for [`EchoMode::PingSocket`]).
    pub ident: u16,
    /// Sequence number.
    pub seq_no: u16,
    /// The TTL the core asked for.
    pub ttl: Option<u8>,
    /// Payload length.
    pub len: usize,
}

/// Counters of a [`FakeNet`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeNetStats {
    /// Sockets opened (UDP and echo).
    pub opened: u64,
    /// Binds refused.
    pub bind_failures: u64,
    /// Sockets closed.
    pub closed: u64,
    /// Datagrams and echo requests sent by host sockets.
    pub sent: u64,
    /// Sends refused (route faults, too large).
    pub send_failures: u64,
    /// Entries queued on host sockets (datagrams, errors, echo replies).
    pub delivered: u64,
    /// Entries dropped because a socket's receive queue was full.
    pub queue_drops: u64,
    /// Entries that arrived for a socket already closed.
    pub arrivals_after_close: u64,
    /// Entries the core read from host sockets.
    pub read: u64,
    /// Calls naming a socket that is not open (closed, or never opened): a core bug.
    pub unknown_socket_calls: u64,
    /// Readiness reports handed to the simulation.
    pub readiness_reports: u64,
    /// Writability reports handed to the simulation (TCP connects done, send space back).
    pub writable_reports: u64,
    /// TCP connects the core started (accepted by `tcp_connect`).
    pub tcp_connects: u64,
    /// TCP connects that failed at once (no route, loopback refusal, socket limit).
    pub tcp_connect_failures: u64,
    /// Connections the core accepted from listeners.
    pub tcp_accepts: u64,
    /// TCP sends that took less than offered (the send buffer filled).
    pub tcp_short_sends: u64,
    /// Sends after the core shut its write side (a core bug).
    pub tcp_send_after_shutdown: u64,
    /// Reads with an empty buffer, which a real socket answers with 0 = end of stream (a core
    /// bug).
    pub tcp_empty_reads: u64,
    /// Connections the core ended with RST (abort, or close with unread data).
    pub tcp_resets_by_core: u64,
    /// Closes that discarded unread received data (Linux then sends RST).
    pub tcp_close_discarded: u64,
}

#[derive(Clone, Debug)]
enum Inbound {
    Datagram { from: SocketAddrV4, data: Vec<u8> },
    Error { offender: Ipv4Addr, dst: SocketAddrV4, error: HostError },
    Echo { from: Ipv4Addr, ident: u16, seq_no: u16, data: Vec<u8> },
}

#[derive(Debug)]
enum SockKind {
    Udp(SocketAddrV4),
    Echo(EchoKind),
}

#[derive(Debug)]
struct Sock {
    kind: SockKind,
    queue: VecDeque<Inbound>,
}

#[derive(Debug)]
enum Event {
    /// Something arrives on a host socket.
    Socket(SocketId, Inbound),
    /// A datagram arrives at a host client.
    Client { client: SocketAddrV4, from: SocketAddrV4, data: Vec<u8> },
    /// A datagram arrives at a service, which may answer.
    Service { service: SocketAddrV4, from: SocketAddrV4, socket: SocketId, data: Vec<u8> },
    /// Something of TCP connection (index) is due.
    TcpWake(usize),
}

/// The fake host network. See the [module documentation](self).
#[derive(Debug)]
pub struct FakeNet {
    now: Instant,
    latency: Duration,
    loopback_latency: Duration,
    queue_limit: usize,
    max_datagram: usize,
    socket_limit: Option<usize>,
    echo_mode: EchoMode,
    sockets: BTreeMap<SocketId, Sock>,
    bound: BTreeMap<SocketAddrV4, SocketId>,
    next_port: u16,
    services: BTreeMap<SocketAddrV4, UdpService>,
    ping_hosts: BTreeSet<Ipv4Addr>,
    known_hosts: BTreeSet<Ipv4Addr>,
    faults: Vec<(Ipv4Addr, u8, RouteFault)>,
    dns_upstream: Option<SocketAddrV4>,
    dns_table: BTreeMap<String, Vec<Ipv4Addr>>,
    clients: BTreeMap<SocketAddrV4, VecDeque<(SocketAddrV4, Vec<u8>)>>,
    events: BTreeMap<(Instant, u64), Event>,
    next_event: u64,
    readable: VecDeque<SocketId>,
    sent: Vec<SentDatagram>,
    echoes: Vec<SentEcho>,
    service_log: Vec<(SocketAddrV4, SocketAddrV4, Vec<u8>)>,
    closed: Vec<SocketId>,
    stats: FakeNetStats,
    tcp: tcp::TcpNet,
    reoffer_listeners: bool,
    tftp_files: BTreeMap<String, std::rc::Rc<Vec<u8>>>,
    tftp_open: BTreeMap<u8, std::rc::Rc<Vec<u8>>>,
    tftp_opens: u64,
    guest_forward_targets: BTreeMap<u32, SocketAddrV4>,
    guest_forward_opens: Vec<(u32, SocketAddr)>,
    pushed_rules: BTreeSet<u32>,
    pushed: BTreeMap<SocketId, PushedConn>,
}

/// A guest-forward connection the test feeds itself (see [`FakeNet::serve_guest_forward_pushed`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushedConn {
    /// What the guest sent.
    pub from_guest: Vec<u8>,
    /// The guest finished its stream (FIN).
    pub guest_done: bool,
    /// The core closed the connection.
    pub closed: bool,
}

impl Default for FakeNet {
    fn default() -> FakeNet {
        FakeNet::new()
    }
}

fn in_prefix(addr: Ipv4Addr, prefix: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
    u32::from(addr) & mask == u32::from(prefix) & mask
}

impl FakeNet {
    /// An empty network: no services, ping sockets available, default latencies and limits.
    pub fn new() -> FakeNet {
        FakeNet {
            now: Instant::ZERO,
            latency: DEFAULT_LATENCY,
            loopback_latency: DEFAULT_LOOPBACK_LATENCY,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            socket_limit: None,
            echo_mode: EchoMode::PingSocket,
            sockets: BTreeMap::new(),
            bound: BTreeMap::new(),
            next_port: *EPHEMERAL_PORTS.start(),
            services: BTreeMap::new(),
            ping_hosts: BTreeSet::new(),
            known_hosts: BTreeSet::new(),
            faults: Vec::new(),
            dns_upstream: None,
            dns_table: BTreeMap::new(),
            clients: BTreeMap::new(),
            events: BTreeMap::new(),
            next_event: 0,
            readable: VecDeque::new(),
            sent: Vec::new(),
            echoes: Vec::new(),
            service_log: Vec::new(),
            closed: Vec::new(),
            stats: FakeNetStats::default(),
            tcp: tcp::TcpNet::default(),
            reoffer_listeners: true,
            tftp_files: BTreeMap::new(),
            tftp_open: BTreeMap::new(),
            tftp_opens: 0,
            guest_forward_targets: BTreeMap::new(),
            guest_forward_opens: Vec::new(),
            pushed_rules: BTreeSet::new(),
            pushed: BTreeMap::new(),
        }
    }

    /// A small internet most tests need (the addresses are the `*_ADDR` constants of this
    /// module): a UDP and TCP echo server at 198.51.100.7:7 that also answers pings, a server at
    /// 203.0.113.5:9 that echoes from 203.0.113.6:99, a DNS resolver at 198.51.100.53:53 (UDP
    /// and TCP) that knows `example.com` (198.51.100.7) and `echo.test` (198.51.100.7,
    /// 203.0.113.5), a host at 198.51.100.9 that answers pings but serves no port (TCP connects
    /// are refused), and 192.0.2.0/24 behind a router (192.0.2.254) that reports it unreachable
    /// (TCP connects fail with [`HostError::NetUnreachable`] after a round trip). Addresses
    /// nobody knows swallow TCP SYNs (the connect never completes).
    pub fn internet() -> FakeNet {
        let mut net = FakeNet::new();
        net.add_udp_service(ECHO_ADDR, UdpService::Echo);
        net.add_tcp_service(ECHO_ADDR, TcpService::Echo);
        net.add_ping_host(*ECHO_ADDR.ip());
        net.add_udp_service(INDIRECT_ADDR, UdpService::EchoFrom(INDIRECT_REPLY_ADDR));
        net.set_dns_server(DNS_ADDR);
        net.add_tcp_service(DNS_ADDR, TcpService::Dns);
        net.add_dns_record("example.com", &[*ECHO_ADDR.ip()]);
        net.add_dns_record("echo.test", &[*ECHO_ADDR.ip(), *INDIRECT_ADDR.ip()]);
        net.add_ping_host(QUIET_HOST);
        net.add_route_fault(
            UNREACHABLE_NET,
            24,
            RouteFault::IcmpError { router: UNREACHABLE_ROUTER, error: HostError::NetUnreachable },
        );
        net
    }

    // ------------------------------------------------------------------ scripting

    /// Sets the one-way latency to the fake internet.
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    /// Sets the one-way latency on the host's loopback.
    pub fn set_loopback_latency(&mut self, latency: Duration) {
        self.loopback_latency = latency;
    }

    /// Sets how many entries each socket's receive queue holds (`SO_RCVBUF`).
    pub fn set_socket_queue_limit(&mut self, entries: usize) {
        self.queue_limit = entries;
    }

    /// Sets the largest datagram a host socket may send.
    pub fn set_max_datagram(&mut self, bytes: usize) {
        self.max_datagram = bytes;
    }

    /// Limits the open sockets (`None`: no limit). Binds beyond fail with
    /// [`HostError::Exhausted`] (EMFILE).
    pub fn set_socket_limit(&mut self, limit: Option<usize>) {
        self.socket_limit = limit;
    }

    /// Chooses which ICMP echo socket the host offers (takes effect on the next open).
    pub fn set_echo_mode(&mut self, mode: EchoMode) {
        self.echo_mode = mode;
    }

    /// Runs `service` at `addr` (an internet address, or `127.0.0.1:PORT` on the host's
    /// loopback). The address's host becomes known (unserved ports answer "port unreachable").
    pub fn add_udp_service(&mut self, addr: SocketAddrV4, service: UdpService) {
        self.services.insert(addr, service);
        self.known_hosts.insert(*addr.ip());
    }

    /// Stops the service at `addr`.
    pub fn remove_udp_service(&mut self, addr: SocketAddrV4) {
        self.services.remove(&addr);
    }

    /// Makes `ip` answer pings (and exist: unserved ports answer "port unreachable").
    pub fn add_ping_host(&mut self, ip: Ipv4Addr) {
        self.ping_hosts.insert(ip);
        self.known_hosts.insert(ip);
    }

    /// Makes traffic to `prefix/len` suffer `fault`. The most recently added matching rule wins.
    pub fn add_route_fault(&mut self, prefix: Ipv4Addr, len: u8, fault: RouteFault) {
        self.faults.push((prefix, len, fault));
    }

    /// Runs the DNS resolver at `addr` and names it as the host's upstream resolver.
    pub fn set_dns_server(&mut self, addr: SocketAddrV4) {
        self.add_udp_service(addr, UdpService::Dns);
        self.dns_upstream = Some(addr);
    }

    /// Serves the connections of guest-forward rule `rule` with the TCP service at `service`
    /// (as an embedder's endpoint: opened by `guest_forward_open`, ready once the fake
    /// connection is, with its latency, buffers and backpressure).
    pub fn serve_guest_forward(&mut self, rule: u32, service: SocketAddrV4) {
        self.guest_forward_targets.insert(rule, service);
    }

    /// Serves rule `rule`'s connections as an embedder that pushes data itself
    /// ([`Slirp::connection_write`](slirp_core::Slirp::connection_write)): opens succeed at once,
    /// what the guest sends is collected in [`FakeNet::pushed`], and `tcp_recv` has nothing.
    pub fn serve_guest_forward_pushed(&mut self, rule: u32) {
        self.pushed_rules.insert(rule);
    }

    /// The pushed guest-forward connections, by the core's socket id.
    pub fn pushed(&self) -> &BTreeMap<SocketId, PushedConn> {
        &self.pushed
    }

    /// Every `guest_forward_open` call: (rule, guest endpoint).
    pub fn guest_forward_opens(&self) -> &[(u32, SocketAddr)] {
        &self.guest_forward_opens
    }

    /// Serves `data` as TFTP file `path` (relative to the TFTP root, `/`-separated).
    pub fn add_tftp_file(&mut self, path: &str, data: Vec<u8>) {
        self.tftp_files.insert(path.to_string(), std::rc::Rc::new(data));
    }

    /// TFTP files open now (transfers in progress), and opened in all.
    pub fn tftp_files_open(&self) -> (usize, u64) {
        (self.tftp_open.len(), self.tftp_opens)
    }

    /// Adds A records for `name` to the resolver's table.
    pub fn add_dns_record(&mut self, name: &str, addrs: &[Ipv4Addr]) {
        let key = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.dns_table.entry(key).or_default().extend_from_slice(addrs);
    }

    /// Registers a host client at `addr` (a remote address, or `127.0.0.1:PORT` for a program on
    /// the host): what host sockets send to it is collected for [`FakeNet::client_recv`].
    pub fn add_client(&mut self, addr: SocketAddrV4) {
        self.clients.entry(addr).or_default();
        self.known_hosts.insert(*addr.ip());
    }

    /// Client `from` sends `data` to the host socket bound at `to` (an exact bind, or one bound
    /// to `0.0.0.0` on that port). It arrives after the latency. Returns false, sending nothing,
    /// if no socket is bound there.
    pub fn client_send(&mut self, from: SocketAddrV4, to: SocketAddrV4, data: &[u8]) -> bool {
        let Some(id) = self.socket_at(to) else { return false };
        self.add_client(from);
        let at = self.now + self.one_way(*from.ip());
        self.schedule(at, Event::Socket(id, Inbound::Datagram { from, data: data.to_vec() }));
        true
    }

    /// The next datagram client `client` received: (sender, bytes).
    pub fn client_recv(&mut self, client: SocketAddrV4) -> Option<(SocketAddrV4, Vec<u8>)> {
        self.clients.get_mut(&client)?.pop_front()
    }

    // ------------------------------------------------------------------ inspection

    /// The upstream resolver, if one is set.
    pub fn dns_server(&self) -> Option<SocketAddrV4> {
        self.dns_upstream
    }

    /// The network's virtual time (the last instant the simulation advanced it to).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Counters.
    pub fn stats(&self) -> FakeNetStats {
        self.stats
    }

    /// Open sockets: UDP, echo, TCP connections and listeners.
    pub fn open_sockets(&self) -> usize {
        self.sockets.len() + self.tcp.open_count()
    }

    /// Whether socket `id` (of any kind) is open.
    pub fn is_open(&self, id: SocketId) -> bool {
        self.sockets.contains_key(&id) || self.tcp.owns(id)
    }

    /// The address UDP socket `id` is bound to.
    pub fn local_addr(&self, id: SocketId) -> Option<SocketAddrV4> {
        match self.sockets.get(&id)?.kind {
            SockKind::Udp(addr) => Some(addr),
            SockKind::Echo(_) => None,
        }
    }

    /// Entries waiting on socket `id` (0 for closed sockets).
    pub fn queued(&self, id: SocketId) -> usize {
        self.sockets.get(&id).map_or(0, |s| s.queue.len())
    }

    /// Sockets closed so far, in order.
    pub fn closed(&self) -> &[SocketId] {
        &self.closed
    }

    /// Every datagram host sockets sent, in order.
    pub fn sent(&self) -> &[SentDatagram] {
        &self.sent
    }

    /// Every echo request the echo socket sent, in order.
    pub fn echoes_sent(&self) -> &[SentEcho] {
        &self.echoes
    }

    /// Every datagram a service received: (service, sender as the service saw it, bytes).
    pub fn service_log(&self) -> &[(SocketAddrV4, SocketAddrV4, Vec<u8>)] {
        &self.service_log
    }

    /// The sockets that sent anything to `dst`, in order of first send, without repeats.
    pub fn sockets_that_sent_to(&self, dst: SocketAddrV4) -> Vec<SocketId> {
        let mut out = Vec::new();
        for d in self.sent.iter().filter(|d| d.to == dst) {
            if !out.contains(&d.socket) {
                out.push(d.socket);
            }
        }
        out
    }

    // ------------------------------------------------------------------ machinery

    fn one_way(&self, peer: Ipv4Addr) -> Duration {
        if peer.is_loopback() {
            self.loopback_latency
        } else {
            self.latency
        }
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.events.insert((at, self.next_event), event);
        self.next_event += 1;
    }

    fn socket_at(&self, addr: SocketAddrV4) -> Option<SocketId> {
        self.bound
            .get(&addr)
            .or_else(|| self.bound.get(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, addr.port())))
            .copied()
    }

    fn port_in_use(&self, port: u16) -> bool {
        self.bound.keys().any(|a| a.port() == port)
    }

    fn fault_for(&self, dst: Ipv4Addr) -> Option<RouteFault> {
        self.faults.iter().rev().find(|(p, l, _)| in_prefix(dst, *p, *l)).map(|&(_, _, f)| f)
    }

    fn open(&mut self, id: SocketId, kind: SockKind) -> Result<(), HostError> {
        if self.sockets.contains_key(&id) {
            // The core reused an id that is still open: a bug on its side.
            self.stats.unknown_socket_calls += 1;
            self.stats.bind_failures += 1;
            return Err(HostError::Other);
        }
        if self.socket_limit.is_some_and(|limit| self.open_sockets() >= limit) {
            self.stats.bind_failures += 1;
            return Err(HostError::Exhausted);
        }
        self.sockets.insert(id, Sock { kind, queue: VecDeque::new() });
        self.stats.opened += 1;
        Ok(())
    }

    fn arrive(&mut self, id: SocketId, item: Inbound) {
        let limit = self.queue_limit;
        let Some(sock) = self.sockets.get_mut(&id) else {
            self.stats.arrivals_after_close += 1;
            return;
        };
        if sock.queue.len() >= limit {
            self.stats.queue_drops += 1;
            return;
        }
        let was_empty = sock.queue.is_empty();
        sock.queue.push_back(item);
        self.stats.delivered += 1;
        if was_empty {
            self.readable.push_back(id);
        }
    }

    /// A service at `service` got `data` from `from` (sent by host socket `socket`).
    fn serve(&mut self, service: SocketAddrV4, from: SocketAddrV4, socket: SocketId, data: Vec<u8>) {
        let Some(kind) = self.services.get(&service).copied() else {
            // Stopped while the datagram was on its way: port unreachable.
            let back = self.now + self.one_way(*service.ip());
            let error = Inbound::Error { offender: *service.ip(), dst: service, error: HostError::Refused };
            self.schedule(back, Event::Socket(socket, error));
            return;
        };
        self.service_log.push((service, from, data.clone()));
        let back = self.now + self.one_way(*service.ip());
        let reply = |from: SocketAddrV4, data: Vec<u8>| Event::Socket(socket, Inbound::Datagram { from, data });
        match kind {
            UdpService::Echo => self.schedule(back, reply(service, data)),
            UdpService::EchoFrom(other) => self.schedule(back, reply(other, data)),
            UdpService::Dns => {
                if let Some(answer) = dns::answer(&data, &self.dns_table) {
                    self.schedule(back, reply(service, answer));
                }
            }
            UdpService::Sink => {}
            UdpService::Burst { count } => {
                for seq in 0..count {
                    let mut d = seq.to_be_bytes().to_vec();
                    d.extend_from_slice(&data);
                    self.schedule(back, reply(service, d));
                }
            }
        }
    }

    fn check(&mut self, id: SocketId) -> Option<&mut Sock> {
        if !self.sockets.contains_key(&id) {
            self.stats.unknown_socket_calls += 1;
        }
        self.sockets.get_mut(&id)
    }
}

/// The fake internet's UDP echo server (also answers pings).
pub const ECHO_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 7);
/// A server that echoes from [`INDIRECT_REPLY_ADDR`] instead of its own address.
pub const INDIRECT_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 5), 9);
/// Where [`INDIRECT_ADDR`]'s replies come from.
pub const INDIRECT_REPLY_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 6), 99);
/// The fake upstream resolver.
pub const DNS_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 53), 53);
/// A host that answers pings and serves no UDP port.
pub const QUIET_HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
/// A network a router reports unreachable.
pub const UNREACHABLE_NET: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 0);
/// The router that reports [`UNREACHABLE_NET`] unreachable.
pub const UNREACHABLE_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

impl HostSocket for FakeNet {
    fn guest_forward_open(&mut self, id: SocketId, rule: u32, guest: SocketAddr) -> Result<(), HostError> {
        self.guest_forward_opens.push((rule, guest));
        if self.pushed_rules.contains(&rule) {
            self.pushed.insert(id, PushedConn::default());
            return Ok(());
        }
        let target = *self.guest_forward_targets.get(&rule).ok_or(HostError::Refused)?;
        self.tcp_connect_v4(id, target)?;
        // In progress: writable (and `tcp_connect_result`) once the fake connection is up.
        Err(HostError::WouldBlock)
    }

    fn tftp_open(&mut self, session: u8, path: &str) -> Result<u64, HostError> {
        let file = self.tftp_files.get(path).cloned().ok_or(HostError::NotFound)?;
        let len = file.len() as u64;
        self.tftp_open.insert(session, file);
        self.tftp_opens += 1;
        Ok(len)
    }

    fn tftp_read(&mut self, session: u8, offset: u64, buf: &mut [u8]) -> Result<usize, HostError> {
        let Some(file) = self.tftp_open.get(&session) else {
            self.stats.unknown_socket_calls += 1;
            return Err(HostError::Other);
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(file.len());
        let n = buf.len().min(file.len() - start);
        buf[..n].copy_from_slice(&file[start..start + n]);
        Ok(n)
    }

    fn tftp_close(&mut self, session: u8) {
        self.tftp_open.remove(&session);
    }

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
        if let Some(p) = self.pushed.get_mut(&id) {
            p.closed = true;
            return;
        }
        if self.tcp_close_impl(id, false) {
            return;
        }
        let Some(sock) = self.check(id) else { return };
        if let SockKind::Udp(addr) = sock.kind {
            self.bound.remove(&addr);
        }
        self.sockets.remove(&id);
        self.readable.retain(|&r| r != id);
        self.closed.push(id);
        self.stats.closed += 1;
    }

    fn tcp_connect_result(&mut self, id: SocketId) -> Result<(), HostError> {
        self.tcp_connect_result_impl(id)
    }

    fn tcp_send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        if let Some(p) = self.pushed.get_mut(&id) {
            p.from_guest.extend_from_slice(data);
            return Ok(data.len());
        }
        self.tcp_send_impl(id, data, false)
    }

    fn tcp_send_urgent(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        self.tcp_send_impl(id, data, true)
    }

    fn tcp_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<usize, HostError> {
        if self.pushed.contains_key(&id) {
            return Err(HostError::WouldBlock);
        }
        self.tcp_recv_impl(id, buf)
    }

    fn tcp_shutdown_write(&mut self, id: SocketId) -> Result<(), HostError> {
        if let Some(p) = self.pushed.get_mut(&id) {
            p.guest_done = true;
            return Ok(());
        }
        self.tcp_shutdown_write_impl(id)
    }

    fn tcp_abort(&mut self, id: SocketId) {
        if let Some(p) = self.pushed.get_mut(&id) {
            p.closed = true;
            return;
        }
        if !self.tcp_close_impl(id, true) {
            self.close(id);
        }
    }
}

impl FakeNet {
    fn udp_bind_v4(&mut self, id: SocketId, local: SocketAddrV4) -> Result<SocketAddrV4, HostError> {
        let port = if local.port() == 0 {
            let span = u32::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
            let mut found = None;
            for _ in 0..span {
                let p = self.next_port;
                self.next_port = if p == *EPHEMERAL_PORTS.end() { *EPHEMERAL_PORTS.start() } else { p + 1 };
                if !self.port_in_use(p) {
                    found = Some(p);
                    break;
                }
            }
            match found {
                Some(p) => p,
                None => {
                    self.stats.bind_failures += 1;
                    return Err(HostError::AddrInUse);
                }
            }
        } else {
            let clash = self.bound.keys().any(|a| {
                a.port() == local.port()
                    && (a.ip() == local.ip() || a.ip().is_unspecified() || local.ip().is_unspecified())
            });
            if clash || self.services.contains_key(&local) {
                self.stats.bind_failures += 1;
                return Err(HostError::AddrInUse);
            }
            local.port()
        };
        let addr = SocketAddrV4::new(*local.ip(), port);
        self.open(id, SockKind::Udp(addr))?;
        self.bound.insert(addr, id);
        Ok(addr)
    }

    fn udp_send_to_v4(
        &mut self,
        id: SocketId,
        data: &[u8],
        dst: SocketAddrV4,
        ttl: Option<u8>,
    ) -> Result<(), HostError> {
        let Some(sock) = self.check(id) else { return Err(HostError::Other) };
        let SockKind::Udp(local) = sock.kind else { return Err(HostError::Other) };
        if data.len() > self.max_datagram {
            self.stats.send_failures += 1;
            return Err(HostError::TooLarge);
        }
        let ip = *dst.ip();
        if !ip.is_loopback() {
            match self.fault_for(ip) {
                Some(RouteFault::SendFails(e)) => {
                    self.stats.send_failures += 1;
                    return Err(e);
                }
                Some(RouteFault::IcmpError { router, error }) => {
                    self.log_send(id, local, dst, ttl, data);
                    let at = self.now + self.latency * 2;
                    self.schedule(at, Event::Socket(id, Inbound::Error { offender: router, dst, error }));
                    return Ok(());
                }
                Some(RouteFault::Blackhole) => {
                    self.log_send(id, local, dst, ttl, data);
                    return Ok(());
                }
                None => {}
            }
        }
        self.log_send(id, local, dst, ttl, data);
        // As the receiver sees the sender: a loopback peer sees 127.0.0.1, others the host.
        let src_ip = if ip.is_loopback() { Ipv4Addr::LOCALHOST } else { HOST_PUBLIC_ADDR };
        let from = SocketAddrV4::new(src_ip, local.port());
        let at = self.now + self.one_way(ip);
        if self.clients.contains_key(&dst) {
            self.schedule(at, Event::Client { client: dst, from, data: data.to_vec() });
        } else if self.services.contains_key(&dst) {
            self.schedule(at, Event::Service { service: dst, from, socket: id, data: data.to_vec() });
        } else if let Some(peer) = (ip.is_loopback() || ip == HOST_PUBLIC_ADDR).then(|| self.socket_at(dst)).flatten() {
            self.schedule(at, Event::Socket(peer, Inbound::Datagram { from, data: data.to_vec() }));
        } else if ip.is_loopback() || self.known_hosts.contains(&ip) {
            let offender = if ip.is_loopback() { Ipv4Addr::LOCALHOST } else { ip };
            let back = at + self.one_way(ip);
            self.schedule(back, Event::Socket(id, Inbound::Error { offender, dst, error: HostError::Refused }));
        }
        Ok(())
    }

    fn udp_recv_from_v4(&mut self, id: SocketId, buf: &mut [u8]) -> Result<UdpEvent, HostError> {
        let Some(sock) = self.check(id) else { return Err(HostError::Other) };
        if !matches!(sock.kind, SockKind::Udp(_)) {
            return Err(HostError::Other);
        }
        let Some(item) = sock.queue.pop_front() else { return Err(HostError::WouldBlock) };
        self.stats.read += 1;
        match item {
            Inbound::Datagram { from, data } => {
                let len = data.len().min(buf.len());
                buf[..len].copy_from_slice(&data[..len]);
                Ok(UdpEvent::Datagram { len, from: from.into() })
            }
            Inbound::Error { offender, dst, error } => {
                Ok(UdpEvent::Error { offender: offender.into(), dst: dst.into(), error })
            }
            Inbound::Echo { .. } => Err(HostError::Other),
        }
    }

    fn icmp_echo_open_v4(&mut self, id: SocketId) -> Result<EchoKind, HostError> {
        let kind = match self.echo_mode {
            EchoMode::PingSocket => EchoKind::Datagram,
            EchoMode::Raw => EchoKind::Raw,
            EchoMode::Unavailable => {
                self.stats.bind_failures += 1;
                return Err(HostError::PermissionDenied);
            }
        };
        self.open(id, SockKind::Echo(kind))?;
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
        let Some(sock) = self.check(id) else { return Err(HostError::Other) };
        let SockKind::Echo(kind) = sock.kind else { return Err(HostError::Other) };
        if data.len() + 8 > self.max_datagram {
            self.stats.send_failures += 1;
            return Err(HostError::TooLarge);
        }
        match self.fault_for(dst) {
            Some(RouteFault::SendFails(e)) if !dst.is_loopback() => {
                self.stats.send_failures += 1;
                return Err(e);
            }
            _ => {}
        }
        let ident = if kind == EchoKind::Datagram { PING_SOCKET_IDENT } else { ident };
        self.stats.sent += 1;
        self.echoes.push(SentEcho { at: self.now, dst, ident, seq_no, ttl, len: data.len() });
        let faulty = self.fault_for(dst).is_some() && !dst.is_loopback();
        if !faulty && (self.ping_hosts.contains(&dst) || dst.is_loopback()) {
            let at = self.now + self.one_way(dst) * 2;
            self.schedule(at, Event::Socket(id, Inbound::Echo { from: dst, ident, seq_no, data: data.to_vec() }));
        }
        Ok(())
    }

    fn icmp_echo_recv_v4(&mut self, id: SocketId, buf: &mut [u8]) -> Result<EchoReply, HostError> {
        let Some(sock) = self.check(id) else { return Err(HostError::Other) };
        if !matches!(sock.kind, SockKind::Echo(_)) {
            return Err(HostError::Other);
        }
        let Some(item) = sock.queue.pop_front() else { return Err(HostError::WouldBlock) };
        self.stats.read += 1;
        match item {
            Inbound::Echo { from, ident, seq_no, data } => {
                let len = data.len().min(buf.len());
                buf[..len].copy_from_slice(&data[..len]);
                Ok(EchoReply { from: from.into(), ident, seq_no, len })
            }
            _ => Err(HostError::Other),
        }
    }

    fn dns_upstream_v4(&self) -> Option<SocketAddrV4> {
        self.dns_upstream
    }

    fn tcp_connect_v4(&mut self, id: SocketId, dst: SocketAddrV4) -> Result<(), HostError> {
        self.tcp_connect_impl(id, dst)
    }

    fn tcp_listen_v4(&mut self, id: SocketId, local: SocketAddrV4) -> Result<SocketAddrV4, HostError> {
        self.tcp_listen_impl(id, local)
    }

    fn tcp_accept_v4(&mut self, listener: SocketId, id: SocketId) -> Result<SocketAddrV4, HostError> {
        self.tcp_accept_impl(listener, id)
    }
}

impl FakeNet {
    fn log_send(&mut self, socket: SocketId, from: SocketAddrV4, to: SocketAddrV4, ttl: Option<u8>, data: &[u8]) {
        self.stats.sent += 1;
        self.sent.push(SentDatagram { at: self.now, socket, from, to, ttl, data: data.to_vec() });
    }
}

/// The host's own address on the fake internet: remote services see datagrams from it.
pub const HOST_PUBLIC_ADDR: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);

impl SimHost for FakeNet {
    fn poll_at(&self) -> Option<Instant> {
        self.events.keys().next().map(|&(at, _)| at)
    }

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.tcp_reoffer();
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            match entry.remove() {
                Event::Socket(id, item) => self.arrive(id, item),
                Event::Client { client, from, data } => {
                    if let Some(inbox) = self.clients.get_mut(&client) {
                        inbox.push_back((from, data));
                    }
                }
                Event::Service { service, from, socket, data } => self.serve(service, from, socket, data),
                Event::TcpWake(c) => self.tcp_wake(c),
            }
        }
    }

    fn take_readable(&mut self) -> Option<SocketId> {
        let id = self.readable.pop_front()?;
        self.stats.readiness_reports += 1;
        Some(id)
    }

    fn take_writable(&mut self) -> Option<SocketId> {
        let id = self.tcp.writable.pop_front()?;
        self.stats.writable_reports += 1;
        Some(id)
    }
}

/// The fake host speaks IPv4 only (its internet has no IPv6): binding an IPv6 address is
/// unsupported, as on a host with IPv6 disabled.
pub(crate) fn only_v4(a: SocketAddr) -> Result<SocketAddrV4, HostError> {
    match a {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(HostError::Unsupported),
    }
}

/// An IPv4 destination (IPv4-mapped IPv6 included); IPv6 ones have no route here.
pub(crate) fn reachable_v4(a: SocketAddr) -> Result<SocketAddrV4, HostError> {
    match a {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => Ok(SocketAddrV4::new(v4, v6.port())),
            None => Err(HostError::NetUnreachable),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANY: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);

    fn run(net: &mut FakeNet, until: Instant) -> Vec<SocketId> {
        let mut ready = Vec::new();
        while let Some(at) = net.poll_at().filter(|&at| at <= until) {
            net.advance(at);
            while let Some(id) = net.take_readable() {
                ready.push(id);
            }
        }
        net.advance(until);
        ready
    }

    #[test]
    fn echo_after_round_trip_then_would_block() {
        let mut net = FakeNet::internet();
        let id = SocketId(1);
        let local = net.udp_bind(id, std::net::SocketAddr::V4(ANY)).unwrap();
        assert_eq!(local.port(), *EPHEMERAL_PORTS.start());
        net.udp_send_to(id, b"hi", std::net::SocketAddr::V4(ECHO_ADDR), Some(63)).unwrap();
        assert!(run(&mut net, Instant::from_millis(9)).is_empty());
        assert_eq!(run(&mut net, Instant::from_millis(10)), [id]);
        let mut buf = [0u8; 16];
        assert_eq!(
            net.udp_recv_from(id, &mut buf),
            Ok(UdpEvent::Datagram { len: 2, from: std::net::SocketAddr::V4(ECHO_ADDR) })
        );
        assert_eq!(net.udp_recv_from(id, &mut buf), Err(HostError::WouldBlock));
        assert_eq!(net.service_log()[0].1, SocketAddrV4::new(HOST_PUBLIC_ADDR, local.port()));
        assert_eq!(net.sent()[0].ttl, Some(63));
    }

    #[test]
    fn refused_unreachable_and_limits() {
        let mut net = FakeNet::internet();
        net.set_socket_limit(Some(1));
        let id = SocketId(1);
        net.udp_bind(id, std::net::SocketAddr::V4(ANY)).unwrap();
        assert_eq!(net.udp_bind(SocketId(2), std::net::SocketAddr::V4(ANY)), Err(HostError::Exhausted));
        let closed_port = SocketAddrV4::new(QUIET_HOST, 5);
        net.udp_send_to(id, b"x", std::net::SocketAddr::V4(closed_port), None).unwrap();
        let far = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 5);
        net.udp_send_to(id, b"x", std::net::SocketAddr::V4(far), None).unwrap();
        net.set_max_datagram(100);
        assert_eq!(net.udp_send_to(id, &[0; 101], std::net::SocketAddr::V4(ECHO_ADDR), None), Err(HostError::TooLarge));
        run(&mut net, Instant::from_secs(1));
        let mut buf = [0u8; 4];
        assert_eq!(
            net.udp_recv_from(id, &mut buf),
            Ok(UdpEvent::Error {
                offender: std::net::IpAddr::V4(QUIET_HOST),
                dst: std::net::SocketAddr::V4(closed_port),
                error: HostError::Refused
            })
        );
        assert_eq!(
            net.udp_recv_from(id, &mut buf),
            Ok(UdpEvent::Error {
                offender: std::net::IpAddr::V4(UNREACHABLE_ROUTER),
                dst: std::net::SocketAddr::V4(far),
                error: HostError::NetUnreachable
            })
        );
        net.close(id);
        net.close(id);
        assert_eq!(net.stats().unknown_socket_calls, 1);
        assert_eq!(net.open_sockets(), 0);
    }

    #[test]
    fn ping_socket_rewrites_ident_and_queue_limit_drops() {
        let mut net = FakeNet::internet();
        net.set_socket_queue_limit(2);
        let id = SocketId(9);
        assert_eq!(net.icmp_echo_open(id, IpVersion::V4), Ok(EchoKind::Datagram));
        for seq in 0..3 {
            net.icmp_echo_send(id, std::net::IpAddr::V4(*ECHO_ADDR.ip()), 77, seq, b"abc", None).unwrap();
        }
        assert_eq!(run(&mut net, Instant::from_secs(1)), [id]);
        let mut buf = [0u8; 8];
        let r = net.icmp_echo_recv(id, &mut buf).unwrap();
        assert_eq!((r.from, r.ident, r.seq_no, r.len), (IpAddr::V4(*ECHO_ADDR.ip()), PING_SOCKET_IDENT, 0, 3));
        assert_eq!(net.stats().queue_drops, 1);
    }

    #[test]
    fn clients_reach_bound_sockets_and_hear_back() {
        let mut net = FakeNet::new();
        let fwd = SocketId(4);
        net.udp_bind(fwd, std::net::SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5353))).unwrap();
        assert_eq!(
            net.udp_bind(SocketId(5), std::net::SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5353))),
            Err(HostError::AddrInUse)
        );
        let client = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 33333);
        assert!(net.client_send(client, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5353), b"q"));
        assert!(!net.client_send(client, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5354), b"q"));
        run(&mut net, Instant::from_millis(1));
        let mut buf = [0u8; 4];
        assert_eq!(
            net.udp_recv_from(fwd, &mut buf),
            Ok(UdpEvent::Datagram { len: 1, from: std::net::SocketAddr::V4(client) })
        );
        net.udp_send_to(fwd, b"a", std::net::SocketAddr::V4(client), None).unwrap();
        run(&mut net, Instant::from_millis(2));
        assert_eq!(net.client_recv(client), Some((SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5353), b"a".to_vec())));
    }
}
