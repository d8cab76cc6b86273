//! TCP in the fake network: host stream sockets, listeners, scripted TCP services and
//! test-driven host clients, on the virtual clock.
//!
//! A connection is two one-way [`Pipe`]s (core socket → remote, remote → core socket). A pipe
//! carries data, FIN and RST in order, each arriving one latency after it was written, and holds
//! at most its capacity (bytes on the way plus bytes arrived and unread): that is the socket
//! buffer pair of a real connection, so [`HostSocket::tcp_send`] takes only what fits (partial
//! writes, [`HostError::WouldBlock`]) and a remote service sends only as fast as the core reads.
//! Readiness follows edge-triggered epoll: readable when data arrives into an empty receive
//! buffer or FIN/RST arrives (and at accept when data already waits), writable when a connect
//! completes or when a send that fell short sees a third of the send buffer free again.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::collections::VecDeque;

use slirp_core::{HostError, Instant, SocketId};

use super::{Event, FakeNet, RouteFault, EPHEMERAL_PORTS, HOST_PUBLIC_ADDR};
use crate::dns;
use crate::sha256::{pattern, Sha256};

/// Default bytes a host TCP socket's send side holds (core → remote, on the way or unread).
pub const DEFAULT_TCP_SEND_BUFFER: usize = 64 * 1024;
/// Default bytes a host TCP socket's receive side holds (remote → core).
pub const DEFAULT_TCP_RECV_BUFFER: usize = 128 * 1024;
/// Largest chunk a remote writes in one go.
const REMOTE_CHUNK: usize = 64 * 1024;

/// A scripted TCP server of the fake internet (or of the host's loopback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpService {
    /// Sends every byte back; after the core's FIN, finishes sending and closes.
    Echo,
    /// Sends `bytes` bytes of [`pattern`](crate::sha256::pattern) stream `seed` as fast as the
    /// core reads them, then closes its side (FIN); keeps reading (and hashing) what it gets.
    Source {
        /// Bytes to send.
        bytes: u64,
        /// Pattern stream.
        seed: u64,
    },
    /// Half-closing sink: counts and hashes what it receives; after the core's FIN answers with
    /// the count (8 bytes big-endian) and the SHA-256 (32 bytes), then closes.
    Sink,
    /// Sends `bytes` bytes of pattern stream `seed`, then resets the connection (RST).
    ResetAfter {
        /// Bytes sent before the reset.
        bytes: u64,
        /// Pattern stream.
        seed: u64,
    },
    /// DNS over TCP (RFC 7766): 2-byte length-prefixed queries answered from the network's name
    /// table; closes after the core's FIN.
    Dns,
}

/// Identifies a connection of the fake network (index into [`FakeNet::tcp_conns`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub usize);

/// What the fake network knows about one TCP connection (for assertions).
#[derive(Clone, Debug)]
pub struct TcpConnRecord {
    /// The core's socket id (`None` for a host client's connection not accepted yet).
    pub socket: Option<SocketId>,
    /// The remote end: the service the core connected to, or the host client.
    pub remote: SocketAddrV4,
    /// The host end as the remote sees it.
    pub local: SocketAddrV4,
    /// The service, for connections the core opened to one.
    pub service: Option<TcpService>,
    /// A host client's connection to a listener (a port forward).
    pub client: bool,
    /// When the core asked for it (or the client connected).
    pub opened_at: Instant,
    /// When the handshake completed, if it did.
    pub connected_at: Option<Instant>,
    /// The connect failed with this error (immediately or later).
    pub failed: Option<HostError>,
    /// Bytes the remote received from the core.
    pub received: u64,
    /// SHA-256 of what the remote received, once the core's FIN arrived (services only).
    pub received_hash: Option<[u8; 32]>,
    /// Bytes the remote wrote toward the core.
    pub sent: u64,
    /// Bytes the core sent as urgent data.
    pub urgent: u64,
    /// The core's FIN reached the remote.
    pub fin_from_core: bool,
    /// The core's RST reached the remote (abort, or close with unread data).
    pub reset_by_core: bool,
    /// The remote reset the connection.
    pub reset_by_remote: bool,
    /// The remote finished sending (FIN written).
    pub remote_fin_sent: bool,
    /// The core closed or aborted its socket.
    pub core_closed: bool,
}

#[derive(Debug)]
enum Seg {
    Data(Vec<u8>),
    Fin,
    Rst,
}

/// One direction of a connection: what is on the way, and what arrived and is unread.
#[derive(Debug)]
struct Pipe {
    capacity: usize,
    latency: Duration,
    on_the_way: VecDeque<(Instant, Seg)>,
    on_the_way_bytes: usize,
    buf: VecDeque<u8>,
    fin: bool,
    rst: bool,
    fin_sent: bool,
    rst_sent: bool,
}

#[derive(Default)]
struct Arrived {
    data_into_empty: bool,
    data: bool,
    fin: bool,
    rst: bool,
}

impl Pipe {
    fn new(capacity: usize, latency: Duration) -> Pipe {
        Pipe {
            capacity,
            latency,
            on_the_way: VecDeque::new(),
            on_the_way_bytes: 0,
            buf: VecDeque::new(),
            fin: false,
            rst: false,
            fin_sent: false,
            rst_sent: false,
        }
    }

    fn closed_for_writing(&self) -> bool {
        self.fin_sent || self.rst_sent
    }

    fn free(&self) -> usize {
        self.capacity.saturating_sub(self.on_the_way_bytes + self.buf.len())
    }

    /// Writes what fits; returns (bytes taken, arrival time if any were).
    fn write(&mut self, now: Instant, data: &[u8]) -> (usize, Option<Instant>) {
        let n = data.len().min(self.free());
        if n == 0 || self.closed_for_writing() {
            return (0, None);
        }
        let at = now + self.latency;
        self.on_the_way.push_back((at, Seg::Data(data[..n].to_vec())));
        self.on_the_way_bytes += n;
        (n, Some(at))
    }

    fn control(&mut self, now: Instant, rst: bool) -> Option<Instant> {
        if self.rst_sent || (!rst && self.fin_sent) {
            return None;
        }
        let at = now + self.latency;
        if rst {
            self.rst_sent = true;
            self.on_the_way.push_back((at, Seg::Rst));
        } else {
            self.fin_sent = true;
            self.on_the_way.push_back((at, Seg::Fin));
        }
        Some(at)
    }

    fn arrive(&mut self, now: Instant) -> Arrived {
        let mut a = Arrived::default();
        while self.on_the_way.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, seg)) = self.on_the_way.pop_front() else { break };
            if self.rst {
                continue; // nothing after a reset counts
            }
            match seg {
                Seg::Data(d) => {
                    self.on_the_way_bytes -= d.len();
                    a.data_into_empty |= self.buf.is_empty();
                    a.data = true;
                    self.buf.extend(d);
                }
                Seg::Fin => {
                    self.fin = true;
                    a.fin = true;
                }
                Seg::Rst => {
                    self.rst = true;
                    a.rst = true;
                }
            }
        }
        a
    }

    fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len());
        let (a, b) = self.buf.as_slices();
        let from_a = n.min(a.len());
        out[..from_a].copy_from_slice(&a[..from_a]);
        out[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.buf.drain(..n);
        n
    }

    /// Drops everything (the receiving socket is gone).
    fn discard(&mut self) {
        self.buf.clear();
    }
}

#[derive(Debug)]
enum Phase {
    /// Connect in progress: completes at the instant (never, for `None`) with the outcome.
    Connecting(Option<Instant>, Result<(), HostError>),
    /// A host client's connection on its way into a listener's backlog.
    Arriving(Instant, SocketId),
    /// In a listener's backlog.
    Backlog,
    Open,
    Failed(HostError),
}

#[derive(Debug)]
enum App {
    Echo,
    Source { total: u64, seed: u64 },
    Sink,
    ResetAfter { total: u64, seed: u64 },
    Dns { inbuf: Vec<u8> },
    Client,
}

#[derive(Debug)]
pub(super) struct Conn {
    rec: TcpConnRecord,
    phase: Phase,
    to_remote: Pipe,
    to_core: Pipe,
    app: App,
    out: VecDeque<u8>,
    fin_pending: bool,
    hasher: Sha256,
    write_blocked: bool,
}

#[derive(Debug)]
pub(super) struct Listener {
    addr: SocketAddrV4,
    backlog: VecDeque<usize>,
    /// The last accept took a connection: more may wait with no new edge to say so.
    accepted_last: bool,
}

/// The TCP half of [`FakeNet`]'s state.
#[derive(Debug)]
pub(super) struct TcpNet {
    pub(super) services: std::collections::BTreeMap<SocketAddrV4, TcpService>,
    conns: Vec<Conn>,
    sockets: std::collections::BTreeMap<SocketId, usize>,
    listeners: std::collections::BTreeMap<SocketId, Listener>,
    send_buffer: usize,
    recv_buffer: usize,
    pub(super) writable: VecDeque<SocketId>,
    next_client_port: u16,
    /// Ids whose connect failed at once: nothing stays open, a later close is no misuse.
    failed_at_connect: std::collections::BTreeSet<SocketId>,
}

impl Default for TcpNet {
    fn default() -> TcpNet {
        TcpNet {
            services: Default::default(),
            conns: Vec::new(),
            sockets: Default::default(),
            listeners: Default::default(),
            send_buffer: DEFAULT_TCP_SEND_BUFFER,
            recv_buffer: DEFAULT_TCP_RECV_BUFFER,
            writable: VecDeque::new(),
            next_client_port: 30000,
            failed_at_connect: Default::default(),
        }
    }
}

impl TcpNet {
    pub(super) fn open_count(&self) -> usize {
        self.sockets.len() + self.listeners.len()
    }

    pub(super) fn owns(&self, id: SocketId) -> bool {
        self.sockets.contains_key(&id) || self.listeners.contains_key(&id)
    }
}

/// Readiness and wake-ups a step produced, applied by [`FakeNet`] afterwards.
#[derive(Default)]
struct Effects {
    readable: Vec<SocketId>,
    writable: Vec<SocketId>,
    wakes: Vec<Instant>,
}

impl Conn {
    fn new(rec: TcpConnRecord, phase: Phase, app: App, send: usize, recv: usize, latency: Duration) -> Conn {
        Conn {
            rec,
            phase,
            to_remote: Pipe::new(send, latency),
            to_core: Pipe::new(recv, latency),
            app,
            out: VecDeque::new(),
            fin_pending: false,
            hasher: Sha256::new(),
            write_blocked: false,
        }
    }

    /// The remote takes what arrived for it and writes what it can toward the core.
    fn run_remote(
        &mut self,
        now: Instant,
        table: &std::collections::BTreeMap<String, Vec<Ipv4Addr>>,
        fx: &mut Effects,
    ) {
        let arrived = self.to_remote.arrive(now);
        if !matches!(self.app, App::Client) && !self.to_remote.buf.is_empty() {
            let data: Vec<u8> = self.to_remote.buf.drain(..).collect();
            self.rec.received += data.len() as u64;
            self.hasher.update(&data);
            match &mut self.app {
                App::Echo => self.out.extend(&data),
                App::Dns { inbuf } => {
                    inbuf.extend_from_slice(&data);
                    while inbuf.len() >= 2 {
                        let len = usize::from(u16::from_be_bytes([inbuf[0], inbuf[1]]));
                        if inbuf.len() < 2 + len {
                            break;
                        }
                        let query: Vec<u8> = inbuf.drain(..2 + len).skip(2).collect();
                        if let Some(answer) = dns::answer(&query, table) {
                            self.out.extend((answer.len() as u16).to_be_bytes());
                            self.out.extend(answer);
                        }
                    }
                }
                _ => {}
            }
        }
        if arrived.fin {
            self.rec.fin_from_core = true;
            if !matches!(self.app, App::Client) {
                let hash = self.hasher.finish();
                self.rec.received_hash = Some(hash);
                match self.app {
                    App::Sink => {
                        self.out.extend(self.rec.received.to_be_bytes());
                        self.out.extend(hash);
                        self.fin_pending = true;
                    }
                    App::Echo | App::Dns { .. } => self.fin_pending = true,
                    _ => {}
                }
            }
        }
        if arrived.rst {
            self.rec.reset_by_core = true;
        }
        self.pump(now, fx);
        // Room for the core again after a short write.
        if self.write_blocked && self.to_remote.free() >= self.to_remote.capacity / 3 {
            self.write_blocked = false;
            if let Some(s) = self.rec.socket {
                fx.writable.push(s);
            }
        }
    }

    /// Writes the remote's output toward the core while the pipe has room.
    fn pump(&mut self, now: Instant, fx: &mut Effects) {
        if !matches!(self.phase, Phase::Open | Phase::Backlog | Phase::Arriving(..)) {
            return;
        }
        loop {
            if self.to_core.closed_for_writing() || self.to_remote.rst || self.rec.core_closed && self.to_core.rst {
                return;
            }
            let free = self.to_core.free().min(REMOTE_CHUNK);
            match self.app {
                App::Source { total, seed } | App::ResetAfter { total, seed } if self.out.is_empty() => {
                    let left = total - self.rec.sent;
                    if left == 0 {
                        let rst = matches!(self.app, App::ResetAfter { .. });
                        if let Some(at) = self.to_core.control(now, rst) {
                            fx.wakes.push(at);
                        }
                        self.rec.remote_fin_sent |= !rst;
                        self.rec.reset_by_remote |= rst;
                        return;
                    }
                    if free == 0 {
                        return;
                    }
                    let n = (left.min(free as u64)) as usize;
                    let mut chunk = vec![0u8; n];
                    pattern(seed, self.rec.sent, &mut chunk);
                    let (w, at) = self.to_core.write(now, &chunk);
                    self.rec.sent += w as u64;
                    fx.wakes.extend(at);
                }
                _ => {
                    if self.out.is_empty() {
                        if self.fin_pending {
                            if let Some(at) = self.to_core.control(now, false) {
                                fx.wakes.push(at);
                                self.rec.remote_fin_sent = true;
                            }
                        }
                        return;
                    }
                    if free == 0 {
                        return;
                    }
                    let n = free.min(self.out.len());
                    let chunk: Vec<u8> = self.out.drain(..n).collect();
                    let (w, at) = self.to_core.write(now, &chunk);
                    debug_assert_eq!(w, n);
                    self.rec.sent += w as u64;
                    fx.wakes.extend(at);
                }
            }
        }
    }

    /// What arrived for the core's socket; readiness for it.
    fn run_core_side(&mut self, now: Instant, fx: &mut Effects) {
        let arrived = self.to_core.arrive(now);
        if self.rec.core_closed {
            self.to_core.discard();
            return;
        }
        let Some(s) = self.rec.socket else { return };
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        if arrived.data_into_empty || arrived.fin || arrived.rst {
            fx.readable.push(s);
        }
    }
}

impl FakeNet {
    // ------------------------------------------------------------------ TCP scripting

    /// Runs TCP `service` at `addr` (an internet address, or `127.0.0.1:PORT` on the host's
    /// loopback). The address's host becomes known: its other ports refuse connections.
    pub fn add_tcp_service(&mut self, addr: SocketAddrV4, service: TcpService) {
        self.tcp.services.insert(addr, service);
        self.known_hosts.insert(*addr.ip());
    }

    /// Stops the TCP service at `addr` (open connections go on; new ones are refused).
    pub fn remove_tcp_service(&mut self, addr: SocketAddrV4) {
        self.tcp.services.remove(&addr);
    }

    /// Sets the send and receive buffer sizes of TCP sockets opened from now on.
    pub fn set_tcp_buffers(&mut self, send: usize, recv: usize) {
        self.tcp.send_buffer = send.max(1);
        self.tcp.recv_buffer = recv.max(1);
    }

    /// Every TCP connection so far, in order of opening.
    pub fn tcp_conns(&self) -> impl Iterator<Item = (ConnId, &TcpConnRecord)> + '_ {
        self.tcp.conns.iter().enumerate().map(|(i, c)| (ConnId(i), &c.rec))
    }

    /// One connection's record.
    pub fn tcp_conn(&self, id: ConnId) -> &TcpConnRecord {
        &self.tcp.conns[id.0].rec
    }

    /// The connection behind the core's socket `id`, if it is open.
    pub fn tcp_conn_of(&self, socket: SocketId) -> Option<ConnId> {
        self.tcp.sockets.get(&socket).map(|&i| ConnId(i))
    }

    /// Open TCP sockets of the core (connections and listeners).
    pub fn open_tcp_sockets(&self) -> usize {
        self.tcp.open_count()
    }

    /// The address listener `id` is bound to.
    pub fn tcp_listener_addr(&self, id: SocketId) -> Option<SocketAddrV4> {
        self.tcp.listeners.get(&id).map(|l| l.addr)
    }

    /// Bytes waiting unread in the core socket's receive buffer (0 if not open).
    pub fn tcp_unread(&self, socket: SocketId) -> usize {
        self.tcp.sockets.get(&socket).map_or(0, |&i| self.tcp.conns[i].to_core.buf.len())
    }

    // ------------------------------------------------------------------ host clients

    /// A host client at `from` connects to `to`, where the core listens (an exact bind, or one
    /// on `0.0.0.0` with that port). The handshake completes one latency later, when the
    /// connection enters the listener's backlog (as a kernel does before `accept`). `from` with
    /// port 0 picks a client port. Fails with [`HostError::Refused`] if nothing listens there.
    pub fn tcp_client_connect(&mut self, from: SocketAddrV4, to: SocketAddrV4) -> Result<ConnId, HostError> {
        let listener = self
            .tcp
            .listeners
            .iter()
            .find(|(_, l)| l.addr == to)
            .or_else(|| {
                self.tcp.listeners.iter().find(|(_, l)| l.addr.port() == to.port() && l.addr.ip().is_unspecified())
            })
            .map(|(&id, _)| id)
            .ok_or(HostError::Refused)?;
        let from = if from.port() == 0 {
            self.tcp.next_client_port = self.tcp.next_client_port.wrapping_add(1).max(30000);
            SocketAddrV4::new(*from.ip(), self.tcp.next_client_port)
        } else {
            from
        };
        self.known_hosts.insert(*from.ip());
        let latency = self.one_way(*from.ip());
        let at = self.now + latency;
        let rec = TcpConnRecord {
            socket: None,
            remote: from,
            local: to,
            service: None,
            client: true,
            opened_at: self.now,
            connected_at: Some(at),
            failed: None,
            received: 0,
            received_hash: None,
            sent: 0,
            urgent: 0,
            fin_from_core: false,
            reset_by_core: false,
            reset_by_remote: false,
            remote_fin_sent: false,
            core_closed: false,
        };
        // The accepted socket sends to the client (to_remote) with its send buffer.
        let conn = Conn::new(
            rec,
            Phase::Arriving(at, listener),
            App::Client,
            self.tcp.send_buffer,
            self.tcp.recv_buffer,
            latency,
        );
        self.tcp.conns.push(conn);
        let c = self.tcp.conns.len() - 1;
        self.schedule(at, Event::TcpWake(c));
        Ok(ConnId(c))
    }

    /// Queues `data` for the client to send (it leaves as the core's receive buffer allows).
    pub fn tcp_client_send(&mut self, c: ConnId, data: &[u8]) {
        let conn = &mut self.tcp.conns[c.0];
        conn.out.extend(data);
        self.tcp_run(c.0);
    }

    /// Takes everything the client received so far.
    pub fn tcp_client_recv(&mut self, c: ConnId) -> Vec<u8> {
        let conn = &mut self.tcp.conns[c.0];
        let data: Vec<u8> = conn.to_remote.buf.drain(..).collect();
        conn.rec.received += data.len() as u64;
        // The window opens for the core one latency later.
        let at = self.now + conn.to_remote.latency;
        self.schedule(at, Event::TcpWake(c.0));
        data
    }

    /// The client shuts its write side (FIN after what it queued).
    pub fn tcp_client_shutdown(&mut self, c: ConnId) {
        self.tcp.conns[c.0].fin_pending = true;
        self.tcp_run(c.0);
    }

    /// The client resets the connection.
    pub fn tcp_client_abort(&mut self, c: ConnId) {
        let now = self.now;
        let conn = &mut self.tcp.conns[c.0];
        conn.rec.reset_by_remote = true;
        if let Some(at) = conn.to_core.control(now, true) {
            self.schedule(at, Event::TcpWake(c.0));
        }
    }

    /// Whether the core's FIN reached the client (and everything before it).
    pub fn tcp_client_eof(&self, c: ConnId) -> bool {
        let conn = &self.tcp.conns[c.0];
        conn.to_remote.fin && conn.to_remote.buf.is_empty()
    }

    /// Whether the connection was reset toward the client (by the core, or the listener went
    /// away before accepting it).
    pub fn tcp_client_reset(&self, c: ConnId) -> bool {
        self.tcp.conns[c.0].to_remote.rst
    }

    /// Whether the client's connection is established (handshake done, not failed).
    pub fn tcp_client_connected(&self, c: ConnId) -> bool {
        let conn = &self.tcp.conns[c.0];
        matches!(conn.phase, Phase::Open | Phase::Backlog)
    }

    /// Whether listeners whose last accept took a connection are reported again at the next
    /// round (as `slirp-std`'s event loop does, see `StdHost::listener_backlog`: the core
    /// accepts a bounded burst per report, and edge-triggered readiness will not announce the
    /// rest). On by default; off models a bare edge-triggered host.
    pub fn set_reoffer_listeners(&mut self, on: bool) {
        self.reoffer_listeners = on;
    }

    /// Re-reports listeners whose last accept succeeded (see
    /// [`set_reoffer_listeners`](Self::set_reoffer_listeners)).
    pub(super) fn tcp_reoffer(&mut self) {
        if !self.reoffer_listeners {
            return;
        }
        for (&id, l) in self.tcp.listeners.iter_mut() {
            if l.accepted_last {
                l.accepted_last = false;
                if !self.readable.contains(&id) {
                    self.readable.push_back(id);
                }
            }
        }
    }

    // ------------------------------------------------------------------ machinery

    /// Event handler: something of connection `c` is due.
    pub(super) fn tcp_wake(&mut self, c: usize) {
        let now = self.now;
        let mut fx = Effects::default();
        {
            let conn = &mut self.tcp.conns[c];
            match conn.phase {
                Phase::Connecting(Some(at), outcome) if at <= now => {
                    match outcome {
                        Ok(()) => {
                            conn.phase = Phase::Open;
                            conn.rec.connected_at = Some(now);
                        }
                        Err(e) => {
                            conn.phase = Phase::Failed(e);
                            conn.rec.failed = Some(e);
                        }
                    }
                    if let Some(s) = conn.rec.socket {
                        fx.writable.push(s);
                    }
                }
                Phase::Arriving(at, listener) if at <= now => match self.tcp.listeners.get_mut(&listener) {
                    Some(l) => {
                        conn.phase = Phase::Backlog;
                        if l.backlog.is_empty() {
                            fx.readable.push(listener);
                        }
                        l.backlog.push_back(c);
                    }
                    None => {
                        // The listener closed meanwhile: the client is refused.
                        conn.phase = Phase::Failed(HostError::Refused);
                        conn.rec.failed = Some(HostError::Refused);
                        conn.to_remote.rst = true;
                    }
                },
                _ => {}
            }
        }
        self.tcp_step_with(c, &mut fx);
        self.apply(c, fx);
    }

    fn tcp_step_with(&mut self, c: usize, fx: &mut Effects) {
        let now = self.now;
        let conn = &mut self.tcp.conns[c];
        conn.run_core_side(now, fx);
        conn.run_remote(now, &self.dns_table, fx);
    }

    /// Applies a step's readiness and schedules its wake-ups (all for connection `c`).
    fn apply(&mut self, c: usize, fx: Effects) {
        for s in fx.readable {
            if !self.readable.contains(&s) {
                self.readable.push_back(s);
            }
        }
        for s in fx.writable {
            if !self.tcp.writable.contains(&s) {
                self.tcp.writable.push_back(s);
            }
        }
        for at in fx.wakes {
            self.schedule(at, Event::TcpWake(c));
        }
    }

    fn conn_of(&mut self, id: SocketId) -> Option<usize> {
        match self.tcp.sockets.get(&id) {
            Some(&c) => Some(c),
            None => {
                self.stats.unknown_socket_calls += 1;
                None
            }
        }
    }

    /// Runs a step of connection `c` now.
    fn tcp_run(&mut self, c: usize) {
        let mut fx = Effects::default();
        self.tcp_step_with(c, &mut fx);
        self.apply(c, fx);
    }

    // ------------------------------------------------------------------ HostSocket

    pub(super) fn tcp_connect_impl(&mut self, id: SocketId, dst: SocketAddrV4) -> Result<(), HostError> {
        if self.tcp.sockets.contains_key(&id) || self.sockets.contains_key(&id) {
            self.stats.unknown_socket_calls += 1;
            return Err(HostError::Other);
        }
        self.tcp.failed_at_connect.remove(&id);
        if self.socket_limit.is_some_and(|limit| self.open_sockets() >= limit) {
            self.stats.tcp_connect_failures += 1;
            self.tcp.failed_at_connect.insert(id);
            return Err(HostError::Exhausted);
        }
        let ip = *dst.ip();
        let latency = self.one_way(ip);
        let rtt = latency * 2;
        let service = self.tcp.services.get(&dst).copied();
        let (phase, app) = match (ip.is_loopback(), self.fault_for(ip), service) {
            (false, Some(RouteFault::SendFails(e)), _) => {
                self.stats.tcp_connect_failures += 1;
                self.tcp.failed_at_connect.insert(id);
                return Err(e);
            }
            (false, Some(RouteFault::IcmpError { error, .. }), _) => {
                (Phase::Connecting(Some(self.now + rtt), Err(error)), App::Sink)
            }
            (false, Some(RouteFault::Blackhole), _) => (Phase::Connecting(None, Err(HostError::Other)), App::Sink),
            (_, _, Some(s)) => {
                let app = match s {
                    TcpService::Echo => App::Echo,
                    TcpService::Source { bytes, seed } => App::Source { total: bytes, seed },
                    TcpService::Sink => App::Sink,
                    TcpService::ResetAfter { bytes, seed } => App::ResetAfter { total: bytes, seed },
                    TcpService::Dns => App::Dns { inbuf: Vec::new() },
                };
                (Phase::Connecting(Some(self.now + rtt), Ok(())), app)
            }
            (true, _, None) => {
                // Linux refuses a loopback connect to a closed port before connect() returns.
                self.stats.tcp_connect_failures += 1;
                self.tcp.failed_at_connect.insert(id);
                return Err(HostError::Refused);
            }
            (false, None, None) if self.known_hosts.contains(&ip) => {
                (Phase::Connecting(Some(self.now + rtt), Err(HostError::Refused)), App::Sink)
            }
            // Nobody there: the SYNs vanish.
            (false, None, None) => (Phase::Connecting(None, Err(HostError::Other)), App::Sink),
        };
        let port = self.tcp_ephemeral_port();
        let local_ip = if ip.is_loopback() { Ipv4Addr::LOCALHOST } else { HOST_PUBLIC_ADDR };
        let done_at = match phase {
            Phase::Connecting(at, _) => at,
            _ => None,
        };
        let rec = TcpConnRecord {
            socket: Some(id),
            remote: dst,
            local: SocketAddrV4::new(local_ip, port),
            service,
            client: false,
            opened_at: self.now,
            connected_at: None,
            failed: None,
            received: 0,
            received_hash: None,
            sent: 0,
            urgent: 0,
            fin_from_core: false,
            reset_by_core: false,
            reset_by_remote: false,
            remote_fin_sent: false,
            core_closed: false,
        };
        let (send, recv) = (self.tcp.send_buffer, self.tcp.recv_buffer);
        self.tcp.conns.push(Conn::new(rec, phase, app, send, recv, latency));
        let c = self.tcp.conns.len() - 1;
        self.tcp.sockets.insert(id, c);
        self.stats.opened += 1;
        self.stats.tcp_connects += 1;
        if let Some(at) = done_at {
            self.schedule(at, Event::TcpWake(c));
        }
        Ok(())
    }

    fn tcp_ephemeral_port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p == *EPHEMERAL_PORTS.end() { *EPHEMERAL_PORTS.start() } else { p + 1 };
        p
    }

    pub(super) fn tcp_connect_result_impl(&mut self, id: SocketId) -> Result<(), HostError> {
        let c = self.conn_of(id).ok_or(HostError::Other)?;
        match self.tcp.conns[c].phase {
            Phase::Connecting(..) => Err(HostError::WouldBlock),
            Phase::Failed(e) => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) fn tcp_send_impl(&mut self, id: SocketId, data: &[u8], urgent: bool) -> Result<usize, HostError> {
        let now = self.now;
        let c = self.conn_of(id).ok_or(HostError::Other)?;
        let conn = &mut self.tcp.conns[c];
        match conn.phase {
            Phase::Connecting(..) => return Err(HostError::WouldBlock),
            Phase::Failed(e) => return Err(e),
            _ => {}
        }
        if conn.to_core.rst {
            return Err(HostError::Refused);
        }
        if conn.to_remote.closed_for_writing() {
            self.stats.tcp_send_after_shutdown += 1;
            return Err(HostError::Other);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let (n, at) = conn.to_remote.write(now, data);
        if urgent {
            conn.rec.urgent += n as u64;
        }
        if n < data.len() {
            conn.write_blocked = true;
            self.stats.tcp_short_sends += 1;
        }
        if let Some(at) = at {
            self.schedule(at, Event::TcpWake(c));
        }
        if n == 0 {
            return Err(HostError::WouldBlock);
        }
        Ok(n)
    }

    pub(super) fn tcp_recv_impl(&mut self, id: SocketId, buf: &mut [u8]) -> Result<usize, HostError> {
        let c = self.conn_of(id).ok_or(HostError::Other)?;
        let conn = &mut self.tcp.conns[c];
        match conn.phase {
            Phase::Connecting(..) => return Err(HostError::WouldBlock),
            Phase::Failed(e) => return Err(e),
            _ => {}
        }
        if buf.is_empty() {
            // A real recv(len 0) returns 0, which reads as end of stream: count the misuse.
            self.stats.tcp_empty_reads += 1;
            return Ok(0);
        }
        let n = conn.to_core.read(buf);
        if n > 0 {
            // The remote sees the window open one latency later.
            let at = self.now + conn.to_core.latency;
            self.schedule(at, Event::TcpWake(c));
            return Ok(n);
        }
        if conn.to_core.rst {
            Err(HostError::Refused)
        } else if conn.to_core.fin {
            Ok(0)
        } else {
            Err(HostError::WouldBlock)
        }
    }

    pub(super) fn tcp_shutdown_write_impl(&mut self, id: SocketId) -> Result<(), HostError> {
        let now = self.now;
        let c = self.conn_of(id).ok_or(HostError::Other)?;
        let conn = &mut self.tcp.conns[c];
        if !matches!(conn.phase, Phase::Open) {
            return Err(HostError::Other);
        }
        if let Some(at) = conn.to_remote.control(now, false) {
            self.schedule(at, Event::TcpWake(c));
        }
        Ok(())
    }

    /// Closes (gracefully, or with RST when `abort` or when unread data is discarded, as Linux
    /// does) the core's TCP socket or listener `id`. Returns false if `id` is not a TCP socket.
    pub(super) fn tcp_close_impl(&mut self, id: SocketId, abort: bool) -> bool {
        let now = self.now;
        if let Some(l) = self.tcp.listeners.remove(&id) {
            // Connections never accepted are reset.
            for c in l.backlog {
                let conn = &mut self.tcp.conns[c];
                conn.phase = Phase::Failed(HostError::Refused);
                conn.rec.reset_by_core = true;
                conn.to_remote.rst = true;
            }
            self.readable.retain(|&r| r != id);
            self.closed.push(id);
            self.stats.closed += 1;
            return true;
        }
        if self.tcp.failed_at_connect.remove(&id) {
            return true;
        }
        let Some(c) = self.tcp.sockets.remove(&id) else { return false };
        self.readable.retain(|&r| r != id);
        self.tcp.writable.retain(|&r| r != id);
        self.closed.push(id);
        self.stats.closed += 1;
        let conn = &mut self.tcp.conns[c];
        conn.rec.core_closed = true;
        let unread = !conn.to_core.buf.is_empty();
        conn.to_core.discard();
        if matches!(conn.phase, Phase::Open) {
            let rst = abort || unread;
            if rst {
                self.stats.tcp_resets_by_core += 1;
                if unread && !abort {
                    self.stats.tcp_close_discarded += 1;
                }
            }
            if let Some(at) = conn.to_remote.control(now, rst) {
                self.schedule(at, Event::TcpWake(c));
            }
        } else if matches!(conn.phase, Phase::Connecting(..)) {
            conn.phase = Phase::Failed(HostError::Other);
        }
        true
    }

    pub(super) fn tcp_listen_impl(&mut self, id: SocketId, local: SocketAddrV4) -> Result<SocketAddrV4, HostError> {
        if self.tcp.owns(id) || self.sockets.contains_key(&id) {
            self.stats.unknown_socket_calls += 1;
            return Err(HostError::Other);
        }
        let clash = |a: &SocketAddrV4, port: u16, ip: &Ipv4Addr| {
            a.port() == port && (a.ip() == ip || a.ip().is_unspecified() || ip.is_unspecified())
        };
        let port = if local.port() == 0 {
            let mut found = None;
            for _ in EPHEMERAL_PORTS {
                let p = self.tcp_ephemeral_port();
                if !self.tcp.listeners.values().any(|l| l.addr.port() == p) {
                    found = Some(p);
                    break;
                }
            }
            found.ok_or(HostError::AddrInUse)?
        } else {
            if self.tcp.listeners.values().any(|l| clash(&l.addr, local.port(), local.ip()))
                || self.tcp.services.contains_key(&local)
            {
                self.stats.bind_failures += 1;
                return Err(HostError::AddrInUse);
            }
            local.port()
        };
        let addr = SocketAddrV4::new(*local.ip(), port);
        self.tcp.listeners.insert(id, Listener { addr, backlog: VecDeque::new(), accepted_last: false });
        self.stats.opened += 1;
        Ok(addr)
    }

    pub(super) fn tcp_accept_impl(&mut self, listener: SocketId, id: SocketId) -> Result<SocketAddrV4, HostError> {
        let Some(l) = self.tcp.listeners.get_mut(&listener) else {
            self.stats.unknown_socket_calls += 1;
            return Err(HostError::Other);
        };
        if self.tcp.sockets.contains_key(&id) || self.sockets.contains_key(&id) {
            self.stats.unknown_socket_calls += 1;
            return Err(HostError::Other);
        }
        let Some(c) = l.backlog.pop_front() else {
            l.accepted_last = false;
            return Err(HostError::WouldBlock);
        };
        l.accepted_last = true;
        let conn = &mut self.tcp.conns[c];
        conn.phase = Phase::Open;
        conn.rec.socket = Some(id);
        let peer = conn.rec.remote;
        let waiting = !conn.to_core.buf.is_empty() || conn.to_core.fin || conn.to_core.rst;
        self.tcp.sockets.insert(id, c);
        self.stats.opened += 1;
        self.stats.tcp_accepts += 1;
        if waiting && !self.readable.contains(&id) {
            self.readable.push_back(id);
        }
        self.tcp_run(c);
        Ok(peer)
    }
}
