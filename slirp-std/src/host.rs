//! The core's [`HostSocket`] over the host's nonblocking sockets.
//!
//! - **UDP**: one nonblocking socket per [`SocketId`] the core asks for (a NAT flow bound to
//!   `0.0.0.0:0`, or a forwarding rule bound to its host address). `IP_RECVERR` is on, so ICMP
//!   errors from remotes (port/host/net unreachable, administratively prohibited, fragmentation
//!   needed) come back as [`UdpEvent::Error`] with the router that sent them and the destination
//!   that failed. The guest's TTL is applied with `IP_TTL`, set only when it changes (one
//!   syscall per change, not per datagram). Datagrams of any size IPv4 allows go both ways.
//!   With [`StdHost::set_udp_batching`] on (the `slirp` command turns it on), small datagrams to
//!   a destination the socket already reached are gathered and sent with one `sendmmsg` per
//!   socket and burst, when the owner calls [`StdHost::flush`] (the event loop does after each
//!   burst of guest frames, before it sleeps); the first datagram to a destination and large
//!   ones still go at once, so errors that say where a datagram cannot go (no route, too large)
//!   still reach the core, which answers the guest with ICMP. A datagram of the batch that the
//!   kernel refuses later is counted ([`StdHost::udp_batch_dropped`]) and its destination sent
//!   to synchronously again.
//! - **ICMP echo**: one long-lived socket. An unprivileged ping socket (`SOCK_DGRAM`/
//!   `IPPROTO_ICMP`, allowed when our group is in `net.ipv4.ping_group_range`) is preferred; else
//!   a raw ICMP socket (needs `CAP_NET_RAW`) that only lets echo replies through (`ICMP_FILTER`)
//!   and keeps those carrying our identifier; else [`HostError::Unsupported`] and the core falls
//!   back to its UDP pseudo-ping. On a raw socket the identifier on the wire is this host's own
//!   random one (so two instances on one host never take each other's replies); replies are
//!   reported with the identifier the core asked for.
//! - **TCP**: nonblocking stream sockets with `TCP_NODELAY` (the core coalesces toward the
//!   guest; the host kernel must not add Nagle's delay to interactive flows). A connect returns
//!   at once (`EINPROGRESS` is `Ok`); completion shows as writability and
//!   [`HostSocket::tcp_connect_result`] reads `SO_ERROR`. Sends use `MSG_NOSIGNAL` (a peer that
//!   went away is an error, not a SIGPIPE). [`HostSocket::tcp_abort`] sets `SO_LINGER` 0 before
//!   closing, so the peer gets a RST. Listeners (port forwards) use `SO_REUSEADDR`; accepted
//!   sockets are nonblocking, `TCP_NODELAY`, and watched like connected ones. The kernel's socket
//!   buffers are left to its autotuning.
//! - **Readiness**: each socket is registered with the event loop's [`mio::Registry`] (given with
//!   [`StdHost::attach`]) under a token of its own, at or above [`FIRST_TOKEN`]; the loop turns
//!   an event back into the core's id with [`StdHost::socket_event`]. Registration is
//!   edge-triggered: the core reads until [`HostError::WouldBlock`] or keeps the socket on its
//!   own ready list, so one event is enough. UDP, echo sockets and TCP listeners are watched for
//!   readability; TCP streams for readability and writability (a finished connect, or room in a
//!   send buffer that refused bytes). A listener whose backlog the core did not drain (it accepts
//!   a bounded burst per event) is reported by [`StdHost::listener_backlog`] so the loop can
//!   offer it again without a new edge.
//!
//! Every operation is O(1): a hash lookup by id, a slab lookup by token.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::{ipproto, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use slirp_core::wire::icmpv4::{self, Icmpv4Packet, Icmpv4Repr};
use slirp_core::wire::icmpv6;
use slirp_core::{EchoKind, EchoReply, HostError, HostSocket, IpVersion, SocketId, UdpEvent};

use crate::sys;

/// The first event-loop token used for host sockets; tokens below it belong to the loop (guest
/// link, signals, exit fd, child, waker).
pub const FIRST_TOKEN: usize = 16;

/// What a host socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Udp,
    /// Unprivileged ping socket: the kernel owns the identifier and the checksum.
    Ping,
    /// Raw ICMP socket: receives whole IPv4 packets.
    Raw,
    /// TCP stream (connecting, connected or accepted).
    Tcp,
    /// TCP listener of a port forward.
    Listener,
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
    /// Listener: the last accept took a connection (more may be waiting, and edge-triggered
    /// readiness will not say so again).
    backlog: bool,
    /// TCP: the peer sent urgent data (a priority event) whose mark we have not read past yet.
    urgent: bool,
    /// UDP: the destination of the last datagram the kernel took at once (batching defers only
    /// datagrams to it, so a destination's first send reports its errors synchronously).
    reached: Option<SocketAddr>,
    /// An IPv6 socket (`AF_INET6`).
    v6: bool,
}

/// Datagrams gathered for one `sendmmsg` (see the module documentation).
#[derive(Debug, Default)]
struct UdpBatch {
    /// The socket every datagram here goes out through.
    socket: Option<SocketId>,
    /// The datagrams' bytes, back to back (allocated once, [`BATCH_BYTES`]).
    bytes: Vec<u8>,
    /// Each datagram: start in `bytes`, length, destination.
    msgs: Vec<(usize, usize, SocketAddr)>,
}

/// Most datagrams in one batch: what one `sendmmsg` takes.
const BATCH_MSGS: usize = sys::SEND_BATCH;
/// Largest datagram that is batched; bigger ones are sent at once (the system call is a small
/// part of their cost).
const BATCH_MAX_DATAGRAM: usize = 2048;
/// Bytes of a batch: room for [`BATCH_MSGS`] datagrams of the largest batched size.
const BATCH_BYTES: usize = BATCH_MSGS * BATCH_MAX_DATAGRAM;

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
    /// Connections accepted since the start (see [`StdHost::accepted`]).
    accepted: u64,
    /// UDP datagrams waiting for [`StdHost::flush`] (only with batching on).
    batch: UdpBatch,
    batching: bool,
    /// Batched datagrams the kernel refused (see [`StdHost::udp_batch_dropped`]).
    batch_dropped: u64,
    /// Where each guest-forward rule's connections go, and the commands serving them.
    guest_forward_targets: HashMap<u32, GuestForwardTarget>,
    children: Vec<std::process::Child>,
    /// The TFTP root (a directory descriptor), and the file of each transfer.
    tftp_root: Option<OwnedFd>,
    tftp_files: [Option<std::fs::File>; slirp_core::TFTP_SESSIONS],
    /// Local addresses outgoing flows leave from (`--outbound-addr`, `--outbound-addr6`).
    outbound4: Option<std::net::Ipv4Addr>,
    outbound6: Option<std::net::Ipv6Addr>,
}

/// Code that serves one guest-forward connection: it gets the connection as a blocking
/// [`UnixStream`](std::os::unix::net::UnixStream) (`Read` gives what the guest sent, end of
/// file at its FIN; `Write` goes to the guest; `shutdown(Write)` or dropping it ends the
/// guest's stream) and the guest's endpoint, on a thread of its own (QEMU's chardev guestfwd).
pub type GuestForwardHandler = std::sync::Arc<dyn Fn(std::os::unix::net::UnixStream, SocketAddr) + Send + Sync>;

/// Where a guest-forward rule's connections go (see [`StdHost::set_guest_forward`]), as QEMU's
/// `guestfwd=` spells them, or Rust code.
#[derive(Clone)]
pub enum GuestForwardTarget {
    /// `cmd:COMMAND`: a command per connection, run by `/bin/sh -c` with the connection as its
    /// standard input and output (a Unix stream socket pair; the guest's FIN is end of input,
    /// the command's exit or closed output the guest's end of stream). `SLIRP_GUEST` holds the
    /// guest's endpoint.
    Command(String),
    /// `pty:COMMAND` (the seed's `AddExec` with `doPty`): like `cmd:`, but the command runs in
    /// a session of its own on a pseudo-terminal (its controlling terminal, via util-linux
    /// `setsid -c`), for shells and programs that want a terminal. The terminal's line
    /// discipline applies (echo, CR/LF); the guest's FIN is sent as end-of-file (^D).
    Pty(String),
    /// `unix:PATH`: a Unix stream socket to connect to.
    Unix(std::path::PathBuf),
    /// `tcp:HOST:PORT`: a TCP endpoint to connect to.
    Tcp(SocketAddr),
    /// An embedder's code, run on a thread per connection.
    Handler(GuestForwardHandler),
}

impl std::fmt::Debug for GuestForwardTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl PartialEq for GuestForwardTarget {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (GuestForwardTarget::Command(a), GuestForwardTarget::Command(b)) => a == b,
            (GuestForwardTarget::Pty(a), GuestForwardTarget::Pty(b)) => a == b,
            (GuestForwardTarget::Unix(a), GuestForwardTarget::Unix(b)) => a == b,
            (GuestForwardTarget::Tcp(a), GuestForwardTarget::Tcp(b)) => a == b,
            (GuestForwardTarget::Handler(a), GuestForwardTarget::Handler(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for GuestForwardTarget {}

/// Starts `cmd` on a new pseudo-terminal and bridges the terminal to `conn` (one end of a
/// socket pair) with two threads: the connection's bytes go to the terminal (its end of stream
/// as ^D), the terminal's output to the connection (until the command and its session close
/// the terminal, then end of stream).
fn spawn_on_pty(cmd: &str, guest: SocketAddr, conn: OwnedFd) -> std::io::Result<std::process::Child> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use std::io::{Read, Write};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave =
        rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, rustix::fs::Mode::empty())?;
    let (out, err) = (slave.try_clone()?, slave.try_clone()?);
    let child = std::process::Command::new("setsid")
        .args(["-c", "/bin/sh", "-c", cmd])
        .env("SLIRP_GUEST", guest.to_string())
        .env("TERM", "vt100")
        .stdin(std::process::Stdio::from(slave))
        .stdout(std::process::Stdio::from(out))
        .stderr(std::process::Stdio::from(err))
        .spawn()?;
    let mut to_term = std::fs::File::from(master.try_clone()?);
    let mut from_term = std::fs::File::from(master);
    let mut sock_in = std::os::unix::net::UnixStream::from(conn);
    let mut sock_out = sock_in.try_clone()?;
    std::thread::Builder::new().name("guestfwd-pty-in".into()).spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match sock_in.read(&mut buf) {
                Ok(0) => {
                    // The guest finished: end-of-file for a terminal reader.
                    let _ = to_term.write_all(&[4]);
                    return;
                }
                Ok(n) => {
                    if to_term.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    })?;
    std::thread::Builder::new().name("guestfwd-pty-out".into()).spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from_term.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: every process closed the terminal (the command is done).
                Ok(0) | Err(_) => {
                    let _ = sock_out.shutdown(std::net::Shutdown::Write);
                    return;
                }
                Ok(n) => {
                    if sock_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    })?;
    Ok(child)
}

impl GuestForwardTarget {
    /// Parses QEMU's spelling: `cmd:COMMAND`, `unix:PATH` or `tcp:HOST:PORT`.
    pub fn parse(s: &str) -> Result<GuestForwardTarget, String> {
        if let Some(cmd) = s.strip_prefix("cmd:") {
            if cmd.trim().is_empty() {
                return Err("empty command".into());
            }
            Ok(GuestForwardTarget::Command(cmd.to_string()))
        } else if let Some(cmd) = s.strip_prefix("pty:") {
            if cmd.trim().is_empty() {
                return Err("empty command".into());
            }
            Ok(GuestForwardTarget::Pty(cmd.to_string()))
        } else if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("empty path".into());
            }
            Ok(GuestForwardTarget::Unix(path.into()))
        } else if let Some(ep) = s.strip_prefix("tcp:") {
            ep.parse().map(GuestForwardTarget::Tcp).map_err(|_| "the tcp: target is not HOST:PORT".into())
        } else {
            Err("unknown target (cmd:, pty:, unix: or tcp:)".into())
        }
    }
}

impl std::fmt::Display for GuestForwardTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestForwardTarget::Command(c) => write!(f, "cmd:{c}"),
            GuestForwardTarget::Pty(c) => write!(f, "pty:{c}"),
            GuestForwardTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            GuestForwardTarget::Tcp(a) => write!(f, "tcp:{a}"),
            GuestForwardTarget::Handler(_) => f.write_str("handler"),
        }
    }
}

impl Default for StdHost {
    fn default() -> Self {
        StdHost::new(None)
    }
}

impl Drop for StdHost {
    fn drop(&mut self) {
        // Datagrams the core handed over leave even if nobody flushed.
        self.flush();
        // Commands still serving guest-forward connections end with us (by PID).
        for c in &mut self.children {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
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
            accepted: 0,
            batch: UdpBatch::default(),
            batching: false,
            batch_dropped: 0,
            tftp_root: None,
            tftp_files: Default::default(),
            guest_forward_targets: HashMap::new(),
            children: Vec::new(),
            outbound4: None,
            outbound6: None,
        }
    }

    /// Makes the guest's outgoing TCP connections, UDP flows and pings leave from these local
    /// addresses (slirp4netns' `--outbound-addr` and `--outbound-addr6`; `None`: the kernel
    /// picks, by route). Traffic toward the host's loopback is left alone, and forwards keep the
    /// address they were given.
    pub fn set_outbound(&mut self, v4: Option<std::net::Ipv4Addr>, v6: Option<std::net::Ipv6Addr>) {
        self.outbound4 = v4;
        self.outbound6 = v6;
    }

    /// The outbound address for a flow of `v6`'s family, as a socket address with port 0.
    fn outbound(&self, v6: bool) -> Option<SocketAddr> {
        if v6 {
            self.outbound6.map(|a| SocketAddr::new(IpAddr::V6(a), 0))
        } else {
            self.outbound4.map(|a| SocketAddr::new(IpAddr::V4(a), 0))
        }
    }

    /// Serves the connections of guest-forward rule `rule` (from
    /// [`Slirp::add_guest_forward`](slirp_core::Slirp::add_guest_forward)) with `target`.
    pub fn set_guest_forward(&mut self, rule: u32, target: GuestForwardTarget) {
        self.guest_forward_targets.insert(rule, target);
    }

    /// What serves rule `rule`.
    pub fn guest_forward_target(&self, rule: u32) -> Option<GuestForwardTarget> {
        self.guest_forward_targets.get(&rule).cloned()
    }

    /// Forgets rule `rule`'s target (open connections go on).
    pub fn remove_guest_forward(&mut self, rule: u32) {
        self.guest_forward_targets.remove(&rule);
    }

    /// Commands started for guest-forward connections that are still running.
    pub fn guest_forward_commands(&mut self) -> usize {
        self.reap_children();
        self.children.len()
    }

    /// Collects the commands that exited.
    fn reap_children(&mut self) {
        self.children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }

    /// Serves the files under `dir` over TFTP (with [`Config::tftp`](slirp_core::Config::tftp)
    /// on): regular files only, nothing that resolves outside `dir` (symbolic links inside it
    /// that stay inside are followed).
    pub fn set_tftp_root(&mut self, dir: &std::path::Path) -> std::io::Result<()> {
        let fd = rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, rustix::fs::Mode::empty())?;
        self.tftp_root = Some(fd);
        Ok(())
    }

    /// Opens `path` (relative, checked by the core) beneath the TFTP root: `openat2` with
    /// `RESOLVE_BENEATH` where the kernel has it (5.6+), else a walk that follows no symbolic
    /// link at all.
    fn open_beneath(root: &OwnedFd, path: &str) -> Result<OwnedFd, Errno> {
        use rustix::fs::{Mode, ResolveFlags};
        let read = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        match rustix::fs::openat2(root, path, read, Mode::empty(), ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS)
        {
            Err(Errno::NOSYS) => {}
            r => return r,
        }
        let mut parts = path.split('/').peekable();
        let mut dir: Option<OwnedFd> = None;
        while let Some(part) = parts.next() {
            let at = dir.as_ref().unwrap_or(root);
            if parts.peek().is_none() {
                return rustix::fs::openat(at, part, read | OFlags::NOFOLLOW, Mode::empty());
            }
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            dir = Some(rustix::fs::openat(at, part, flags, Mode::empty())?);
        }
        Err(Errno::NOENT)
    }

    /// Turns UDP send batching on or off (off by default; see the module documentation). With
    /// it on, whoever drives this host must call [`flush`](Self::flush) after each burst of guest
    /// frames and before sleeping, or gathered datagrams wait. Turning it off flushes.
    pub fn set_udp_batching(&mut self, on: bool) {
        if !on {
            self.flush();
        }
        self.batching = on;
    }

    /// Sends the UDP datagrams gathered by batching (one `sendmmsg` per 32). A datagram the
    /// kernel refuses is counted in [`udp_batch_dropped`](Self::udp_batch_dropped) and logged;
    /// its socket's next datagram is sent at once, so the error reaches the core then.
    pub fn flush(&mut self) {
        let Some(id) = self.batch.socket.take() else { return };
        let msgs = std::mem::take(&mut self.batch.msgs);
        if let Some(sock) = self.sockets.get_mut(&id) {
            let mut done = 0;
            let mut retried_async = false;
            while done < msgs.len() {
                match sys::send_datagrams(sock.fd.as_fd(), &self.batch.bytes, &msgs[done..]) {
                    Ok(n) => done += n.max(1),
                    Err(e) => {
                        let errno = Errno::from_io_error(&e);
                        // An ICMP error that arrived earlier fails the next send once, as in
                        // `udp_send_to`: note the error queue and try the datagram again.
                        if !retried_async && errno.is_some_and(is_async_icmp_error) {
                            sock.errqueue = true;
                            retried_async = true;
                            continue;
                        }
                        log::debug!("batched datagram to {} refused: {e}", msgs[done].2);
                        self.batch_dropped += 1;
                        sock.reached = None;
                        done += 1;
                    }
                }
            }
        }
        self.batch.bytes.clear();
        self.batch.msgs = msgs;
        self.batch.msgs.clear();
    }

    /// Batched UDP datagrams the kernel refused after [`udp_send_to`](HostSocket::udp_send_to)
    /// had accepted them (they are lost, as UDP allows; the count is for the stats).
    pub fn udp_batch_dropped(&self) -> u64 {
        self.batch_dropped
    }

    /// Whether `udp_send_to` may defer this datagram: batching on, small, and to the destination
    /// the socket last reached at once, with the same TTL.
    fn batchable(&self, id: SocketId, len: usize, dst: SocketAddr, ttl: Option<u8>) -> bool {
        self.batching
            && len <= BATCH_MAX_DATAGRAM
            && self.sockets.get(&id).is_some_and(|s| s.kind == Kind::Udp && s.reached == Some(dst) && s.ttl == ttl)
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
        self.socket_event_with(token, error, false)
    }

    /// Like [`socket_event`](Self::socket_event), also noting a priority event (TCP urgent
    /// data arrived).
    pub fn socket_event_with(&mut self, token: Token, error: bool, priority: bool) -> Option<SocketId> {
        let slot = token.0.checked_sub(FIRST_TOKEN)?;
        let id = (*self.tokens.get(slot)?)?;
        if let Some(s) = self.sockets.get_mut(&id) {
            s.errqueue |= error;
            s.urgent |= priority && s.kind == Kind::Tcp;
        }
        Some(id)
    }

    /// Number of host sockets open.
    pub fn open_sockets(&self) -> usize {
        self.sockets.len()
    }

    /// Whether `id` is a TCP listener whose last accept succeeded, so connections may still wait
    /// in its backlog with no new readiness edge to announce them. The event loop offers such a
    /// listener to the core again at its next turn (after a turn in which the core accepted
    /// nothing, for instance because its table is full, the flag stays as it was, and the loop
    /// stops offering: see [`EventLoop`](crate::EventLoop)).
    pub fn listener_backlog(&self, id: SocketId) -> bool {
        self.sockets.get(&id).is_some_and(|s| s.kind == Kind::Listener && s.backlog)
    }

    /// How many connections were accepted so far, on all listeners (the loop compares it before
    /// and after handing a listener's event to the core).
    pub fn accepted(&self) -> u64 {
        self.accepted
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
        let interest = match sock.kind {
            // PRIORITY: urgent data arrived (EPOLLPRI), so `tcp_urgent_mark` only asks the kernel
            // (an ioctl) on sockets that have some, never per read.
            Kind::Tcp => Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY,
            _ => Interest::READABLE,
        };
        if let Err(e) = registry.register(&mut SourceFd(&sock.fd.as_raw_fd()), token, interest) {
            self.free_tokens.push(slot);
            log::warn!("cannot watch a host socket: {e}");
            return Err(io_error(&e));
        }
        self.tokens[slot] = Some(id);
        sock.token = Some(token);
        Ok(())
    }

    /// Adds `fd` under `id` (replacing and closing whatever had that id) and watches it.
    fn insert(&mut self, id: SocketId, fd: OwnedFd, kind: Kind, v6: bool) -> Result<(), HostError> {
        self.close(id);
        self.sockets.insert(
            id,
            Sock {
                fd,
                token: None,
                kind,
                ttl: None,
                errqueue: false,
                core_ident: 0,
                backlog: false,
                urgent: false,
                reached: None,
                v6,
            },
        );
        if let Err(e) = self.register(id) {
            self.sockets.remove(&id);
            return Err(e);
        }
        Ok(())
    }

    fn sock(&mut self, id: SocketId, kind: Kind) -> Result<&mut Sock, HostError> {
        match self.sockets.get_mut(&id) {
            Some(s) if s.kind == kind || (kind == Kind::Ping && s.kind == Kind::Raw) => Ok(s),
            _ => Err(HostError::Other),
        }
    }

    fn open_echo(&mut self, version: IpVersion) -> Result<(OwnedFd, Kind), HostError> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let (family, proto, name) = match version {
            IpVersion::V4 => (AddressFamily::INET, ipproto::ICMP, "ICMP"),
            IpVersion::V6 => (AddressFamily::INET6, ipproto::ICMPV6, "ICMPv6"),
        };
        let ping_err = match rustix::net::socket_with(family, SocketType::DGRAM, flags, Some(proto)) {
            Ok(fd) => {
                log::info!("{name} echo through an unprivileged ping socket");
                return Ok((fd, Kind::Ping));
            }
            Err(e) => e,
        };
        match rustix::net::socket_with(family, SocketType::RAW, flags, Some(proto)) {
            Ok(fd) => {
                let filtered = match version {
                    IpVersion::V4 => sys::set_icmp_filter(fd.as_fd(), &[icmpv4::ECHO_REPLY]),
                    IpVersion::V6 => sys::set_icmp6_filter(fd.as_fd(), &[icmpv6::ECHO_REPLY]),
                };
                if let Err(e) = filtered {
                    // Still correct without the filter: replies are checked one by one.
                    log::debug!("{name} filter: {e}");
                }
                log::info!("{name} echo through a raw socket (identifier {:#06x})", self.raw_ident);
                Ok((fd, Kind::Raw))
            }
            Err(raw_err) => {
                log::warn!(
                    "no {name} echo socket (ping socket: {ping_err}; raw socket: {raw_err}): guest pings use the \
                     UDP port 7 fallback. Allow ping sockets with sysctl net.ipv4.ping_group_range, or grant \
                     CAP_NET_RAW"
                );
                Err(HostError::Unsupported)
            }
        }
    }
}

/// Pending connections a forward's listener holds for us (the kernel caps it at somaxconn).
const LISTEN_BACKLOG: i32 = 1024;

/// Urgent bytes stay in the stream (read in order, their position told by `SIOCATMARK`), so
/// none is lost and the urgent pointer toward the guest lands on the right byte.
fn set_oobinline(fd: &OwnedFd) {
    if let Err(e) = rustix::net::sockopt::set_socket_oobinline(fd, true) {
        log::debug!("SO_OOBINLINE: {e}");
    }
}

/// The socket family of `addr`.
fn family(addr: &SocketAddr) -> AddressFamily {
    if addr.is_ipv6() {
        AddressFamily::INET6
    } else {
        AddressFamily::INET
    }
}

/// A fresh nonblocking TCP socket of `family` with `TCP_NODELAY`.
fn tcp_socket(family: AddressFamily) -> Result<OwnedFd, HostError> {
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::STREAM, flags, Some(ipproto::TCP)).map_err(map_errno)?;
    if let Err(e) = rustix::net::sockopt::set_tcp_nodelay(&fd, true) {
        // Still correct, only slower for small writes.
        log::debug!("TCP_NODELAY: {e}");
    }
    set_oobinline(&fd);
    Ok(fd)
}

/// `send` on a stream, again after EINTR; `WouldBlock` when the buffer is full.
fn send_retrying(sock: &Sock, data: &[u8], flags: SendFlags) -> Result<usize, HostError> {
    loop {
        match rustix::net::send(&sock.fd, data, flags) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(map_errno(e)),
        }
    }
}

/// Applies the guest's TTL to a socket, with one syscall only when it changes.
fn apply_ttl(sock: &mut Sock, ttl: Option<u8>) {
    if sock.ttl == ttl {
        return;
    }
    let res = match (ttl, sock.v6) {
        // IPV6_UNICAST_HOPS takes -1 ("the default") for None.
        (t, true) => {
            rustix::net::sockopt::set_ipv6_unicast_hops(&sock.fd, t.map(|t| t.max(1))).map_err(std::io::Error::from)
        }
        (Some(t), false) => {
            rustix::net::sockopt::set_ip_ttl(&sock.fd, u32::from(t.max(1))).map_err(std::io::Error::from)
        }
        (None, false) => sys::reset_ip_ttl(sock.fd.as_fd()),
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
        Errno::TIMEDOUT => HostError::HostUnreachable,
        // A reset (or a write after one) is the core's "refused".
        Errno::CONNREFUSED | Errno::CONNRESET | Errno::CONNABORTED | Errno::PIPE => HostError::Refused,
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
        (sys::EE_ORIGIN_ICMP6, icmpv6::DST_UNREACHABLE, code) => match code {
            icmpv6::unreach::NO_ROUTE => HostError::NetUnreachable,
            icmpv6::unreach::ADMIN_PROHIBITED => HostError::PermissionDenied,
            icmpv6::unreach::PORT => HostError::Refused,
            _ => HostError::HostUnreachable,
        },
        (sys::EE_ORIGIN_ICMP6, icmpv6::PACKET_TOO_BIG, _) => HostError::TooLarge,
        (sys::EE_ORIGIN_ICMP6, icmpv6::TIME_EXCEEDED, 0) => HostError::TtlExpired,
        (sys::EE_ORIGIN_ICMP, icmpv4::DST_UNREACHABLE, code) => match code {
            0 | 6 | 9 | 11 => HostError::NetUnreachable,
            2 | 3 => HostError::Refused,
            4 => HostError::TooLarge,
            10 | 13 => HostError::PermissionDenied,
            _ => HostError::HostUnreachable,
        },
        (sys::EE_ORIGIN_ICMP, icmpv4::TIME_EXCEEDED, 0) => HostError::TtlExpired,
        (sys::EE_ORIGIN_LOCAL, _, _) if q.errno == Errno::MSGSIZE.raw_os_error() as u32 => HostError::TooLarge,
        _ => return None,
    };
    let dst = q.dst?;
    let offender = q.offender.map(|a| a.to_canonical()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Some(UdpEvent::Error { offender, dst: canonical(dst), error })
}

/// An IPv4 or IPv6 socket address from the kernel (IPv4-mapped IPv6 addresses as IPv4, scope
/// ids dropped: the core's addresses have none).
fn inet(addr: Option<rustix::net::SocketAddrAny>) -> Option<SocketAddr> {
    addr.and_then(|a| SocketAddr::try_from(a).ok()).map(canonical)
}

fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => SocketAddr::V6(std::net::SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)),
        },
        v4 => v4,
    }
}

impl HostSocket for StdHost {
    fn udp_bind(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let fd = rustix::net::socket_with(family(&local), SocketType::DGRAM, flags, Some(ipproto::UDP))
            .map_err(map_errno)?;
        let v6 = local.is_ipv6();
        if v6 {
            // `[::]` means IPv6 only: IPv4 has a socket of its own.
            let _ = rustix::net::sockopt::set_ipv6_v6only(&fd, true);
        }
        if let Err(e) = sys::set_ip_recverr(fd.as_fd(), v6) {
            // Still usable: ICMP errors from remotes are just not reported.
            log::debug!("IP_RECVERR: {e}");
        }
        // A flow's socket (any address, any port; forwards name theirs) leaves from the
        // outbound address when one is set.
        let local = match self.outbound(v6) {
            Some(out) if local.ip().is_unspecified() && local.port() == 0 => out,
            _ => local,
        };
        rustix::net::bind(&fd, &local).map_err(map_errno)?;
        let bound = inet(rustix::net::getsockname(&fd).ok()).unwrap_or(local);
        self.insert(id, fd, Kind::Udp, v6)?;
        Ok(bound)
    }

    fn udp_send_to(&mut self, id: SocketId, data: &[u8], dst: SocketAddr, ttl: Option<u8>) -> Result<(), HostError> {
        // Datagrams leave in the order the core sent them: a batch for another socket, or one
        // this datagram cannot join, goes first.
        let batchable = self.batchable(id, data.len(), dst, ttl);
        if self.batch.socket.is_some_and(|s| s != id) || (!batchable && self.batch.socket.is_some()) {
            self.flush();
        }
        if batchable {
            let b = &mut self.batch;
            if b.bytes.capacity() == 0 {
                b.bytes.reserve_exact(BATCH_BYTES);
                b.msgs.reserve_exact(BATCH_MSGS);
            }
            b.socket = Some(id);
            b.msgs.push((b.bytes.len(), data.len(), dst));
            b.bytes.extend_from_slice(data);
            // Full (the bytes cannot run out first: each datagram is at most BATCH_MAX_DATAGRAM).
            if b.msgs.len() == BATCH_MSGS {
                self.flush();
            }
            return Ok(());
        }
        let sock = self.sock(id, Kind::Udp)?;
        if sock.v6 != dst.is_ipv6() {
            // The core opens a flow's socket in the family of its first destination; a guest
            // endpoint that then talks to the other family cannot go through it.
            return Err(HostError::Unsupported);
        }
        apply_ttl(sock, ttl);
        let mut first = true;
        loop {
            match rustix::net::sendto(&sock.fd, data, SendFlags::empty(), &dst) {
                Ok(_) => {
                    sock.reached = Some(dst);
                    return Ok(());
                }
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
                Ok((len, _, from)) => match inet(from) {
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
            offender: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            error: HostError::Other,
        })
    }

    fn close(&mut self, id: SocketId) {
        // What the socket was asked to send leaves before it closes.
        if self.batch.socket == Some(id) {
            self.flush();
        }
        let Some(sock) = self.sockets.remove(&id) else { return };
        if let Some(token) = sock.token {
            // No EPOLL_CTL_DEL: closing the descriptor (we never duplicate it) takes it out of
            // the epoll set, one system call fewer per connection. A readiness report already
            // collected for the token is harmless: the token is reused only by a later socket,
            // and a spurious report to a nonblocking socket finds nothing to do.
            let slot = token.0 - FIRST_TOKEN;
            self.tokens[slot] = None;
            self.free_tokens.push(slot);
        }
    }

    fn icmp_echo_open(&mut self, id: SocketId, version: IpVersion) -> Result<EchoKind, HostError> {
        if let Some(s) = self.sockets.get(&id) {
            match s.kind {
                Kind::Ping => return Ok(EchoKind::Datagram),
                Kind::Raw => return Ok(EchoKind::Raw),
                Kind::Udp | Kind::Tcp | Kind::Listener => {}
            }
        }
        let (fd, kind) = self.open_echo(version)?;
        if let Some(local) = self.outbound(version == IpVersion::V6) {
            rustix::net::bind(&fd, &local).map_err(map_errno)?;
        }
        self.insert(id, fd, kind, version == IpVersion::V6)?;
        Ok(if kind == Kind::Ping { EchoKind::Datagram } else { EchoKind::Raw })
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
            if sock.v6 != dst.is_ipv6() {
                return Err(HostError::Unsupported);
            }
            packet.clear();
            if sock.v6 {
                // The kernel fills in the ICMPv6 checksum on ping and raw sockets alike (it
                // needs the source address it picks).
                packet.extend_from_slice(&[icmpv6::ECHO_REQUEST, 0, 0, 0]);
                packet.extend_from_slice(&wire_ident.to_be_bytes());
                packet.extend_from_slice(&seq_no.to_be_bytes());
                packet.extend_from_slice(data);
            } else {
                // Ping sockets fill in the checksum themselves; raw ones send what we give.
                let echo = Icmpv4Repr::EchoRequest { ident: wire_ident, seq_no, data };
                packet.resize(echo.buffer_len(), 0);
                echo.emit(&mut packet);
            }
            let dst = SocketAddr::new(dst, 0);
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
            let Some(from) = inet(from) else { continue };
            if sock.v6 {
                // Raw and ping ICMPv6 sockets both deliver the ICMPv6 message alone.
                if n < 8 || buf[0] != icmpv6::ECHO_REPLY || buf[1] != 0 {
                    continue;
                }
                let ident = u16::from_be_bytes([buf[4], buf[5]]);
                let seq_no = u16::from_be_bytes([buf[6], buf[7]]);
                let ident = if sock.kind == Kind::Raw {
                    // Another process's reply (the kernel verified the checksum).
                    if ident != raw_ident {
                        continue;
                    }
                    sock.core_ident
                } else {
                    ident
                };
                buf.copy_within(8..n, 0);
                return Ok(EchoReply { from: from.ip(), ident, seq_no, len: n - 8 });
            }
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
            // At least the 8-byte header, checked above.
            let icmp = Icmpv4Packet::new_unchecked(&buf[start..n]);
            if icmp.msg_type() != icmpv4::ECHO_REPLY || icmp.code() != 0 {
                continue;
            }
            let (ident, seq_no) = (icmp.echo_ident(), icmp.echo_seq_no());
            let ident = if sock.kind == Kind::Raw {
                // Another process's reply, or a damaged one.
                if ident != raw_ident || !icmp.verify_checksum() {
                    continue;
                }
                sock.core_ident
            } else {
                ident
            };
            buf.copy_within(start + 8..n, 0);
            return Ok(EchoReply { from: from.ip(), ident, seq_no, len: n - start - 8 });
        }
    }

    fn tcp_connect(&mut self, id: SocketId, dst: SocketAddr) -> Result<(), HostError> {
        let fd = tcp_socket(family(&dst))?;
        if let Some(local) = self.outbound(dst.is_ipv6()).filter(|_| !dst.ip().is_loopback()) {
            rustix::net::bind(&fd, &local).map_err(map_errno)?;
        }
        match rustix::net::connect(&fd, &dst) {
            Ok(()) | Err(Errno::INPROGRESS) => {}
            // Interrupted: the connect goes on in the background, as with EINPROGRESS.
            Err(Errno::INTR) => {}
            Err(e) => return Err(map_errno(e)),
        }
        self.insert(id, fd, Kind::Tcp, dst.is_ipv6())
    }

    fn tcp_connect_result(&mut self, id: SocketId) -> Result<(), HostError> {
        let sock = self.sock(id, Kind::Tcp)?;
        // A peer name means connected: one call in the usual case.
        match rustix::net::getpeername(&sock.fd) {
            Ok(_) => return Ok(()),
            Err(Errno::NOTCONN) => {}
            Err(e) => return Err(map_errno(e)),
        }
        // Not connected: failed (the pending error says why), or still on its way (a readiness
        // report that came early).
        match rustix::net::sockopt::socket_error(&sock.fd) {
            Ok(Ok(())) => Err(HostError::WouldBlock),
            Ok(Err(e)) | Err(e) => Err(map_errno(e)),
        }
    }

    fn tcp_send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        let sock = self.sock(id, Kind::Tcp)?;
        send_retrying(sock, data, SendFlags::NOSIGNAL)
    }

    fn tcp_send_urgent(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        let sock = self.sock(id, Kind::Tcp)?;
        send_retrying(sock, data, SendFlags::NOSIGNAL | SendFlags::OOB)
    }

    fn tcp_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<usize, HostError> {
        let sock = self.sock(id, Kind::Tcp)?;
        if buf.is_empty() {
            return Err(HostError::WouldBlock);
        }
        loop {
            match rustix::net::recv(&sock.fd, &mut *buf, RecvFlags::empty()) {
                Ok((n, _)) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(map_errno(e)),
            }
        }
    }

    fn tcp_urgent_mark(&mut self, id: SocketId) -> bool {
        let Ok(sock) = self.sock(id, Kind::Tcp) else { return false };
        if !sock.urgent {
            return false;
        }
        match sys::at_urgent_mark(sock.fd.as_fd()) {
            Ok(true) => {
                // The core reads the urgent byte next; the mark is then behind us.
                sock.urgent = false;
                true
            }
            Ok(false) => false,
            Err(_) => {
                sock.urgent = false;
                false
            }
        }
    }

    fn tcp_shutdown_write(&mut self, id: SocketId) -> Result<(), HostError> {
        let sock = self.sock(id, Kind::Tcp)?;
        match rustix::net::shutdown(&sock.fd, rustix::net::Shutdown::Write) {
            // Already reset or never connected: nothing left to finish.
            Ok(()) | Err(Errno::NOTCONN) => Ok(()),
            Err(e) => Err(map_errno(e)),
        }
    }

    fn tcp_abort(&mut self, id: SocketId) {
        if let Some(sock) = self.sockets.get(&id) {
            if sock.kind == Kind::Tcp {
                // A zero linger time makes close() send a RST and drop unsent data.
                if let Err(e) = rustix::net::sockopt::set_socket_linger(&sock.fd, Some(std::time::Duration::ZERO)) {
                    log::debug!("SO_LINGER 0: {e}");
                }
            }
        }
        self.close(id);
    }

    fn tcp_listen(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let fd = rustix::net::socket_with(family(&local), SocketType::STREAM, flags, Some(ipproto::TCP))
            .map_err(map_errno)?;
        if local.is_ipv6() {
            // `[::]:port` listens on IPv6 only, so a v4 forward of the same port can coexist.
            let _ = rustix::net::sockopt::set_ipv6_v6only(&fd, true);
        }
        // A forward re-added right after its removal (or after a restart) must not wait out
        // TIME_WAIT connections on the port.
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true).map_err(map_errno)?;
        rustix::net::bind(&fd, &local).map_err(map_errno)?;
        rustix::net::listen(&fd, LISTEN_BACKLOG).map_err(map_errno)?;
        let bound = inet(rustix::net::getsockname(&fd).ok()).unwrap_or(local);
        self.insert(id, fd, Kind::Listener, local.is_ipv6())?;
        Ok(bound)
    }

    fn tcp_accept(&mut self, listener: SocketId, id: SocketId) -> Result<SocketAddr, HostError> {
        let sock = self.sock(listener, Kind::Listener)?;
        let v6 = sock.v6;
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        // Bounded: each round consumes one pending connection (or an interruption).
        let (fd, peer) = (|| {
            for _ in 0..64 {
                match rustix::net::acceptfrom_with(&sock.fd, flags) {
                    Ok((fd, from)) => match inet(from) {
                        Some(peer) => return Ok((fd, peer)),
                        None => continue,
                    },
                    // The client gave up before we got to it: try the next one.
                    Err(Errno::INTR | Errno::CONNABORTED | Errno::PROTO) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(Errno::AGAIN)
        })()
        .map_err(|e| {
            if e == Errno::AGAIN {
                sock.backlog = false;
            }
            map_errno(e)
        })?;
        sock.backlog = true;
        self.accepted += 1;
        if let Err(e) = rustix::net::sockopt::set_tcp_nodelay(&fd, true) {
            log::debug!("TCP_NODELAY: {e}");
        }
        set_oobinline(&fd);
        self.insert(id, fd, Kind::Tcp, v6)?;
        Ok(peer)
    }

    /// The upstream resolver, of either family.
    fn dns_upstream(&self) -> Option<SocketAddr> {
        self.dns_upstream
    }

    fn tftp_open(&mut self, session: u8, path: &str) -> Result<u64, HostError> {
        let slot = self.tftp_files.get_mut(usize::from(session)).ok_or(HostError::Other)?;
        *slot = None;
        let Some(root) = &self.tftp_root else { return Err(HostError::Unsupported) };
        let fd = Self::open_beneath(root, path).map_err(|e| match e {
            // Outside the root (EXDEV), a symbolic link on the fallback walk (ELOOP, ENOTDIR).
            Errno::NOENT | Errno::XDEV | Errno::LOOP | Errno::NOTDIR | Errno::ISDIR => HostError::NotFound,
            e => map_errno(e),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(map_errno)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(HostError::NotFound);
        }
        *slot = Some(std::fs::File::from(fd));
        Ok(st.st_size as u64)
    }

    fn tftp_read(&mut self, session: u8, offset: u64, buf: &mut [u8]) -> Result<usize, HostError> {
        use std::os::unix::fs::FileExt;
        let file = self.tftp_files.get(usize::from(session)).and_then(|f| f.as_ref()).ok_or(HostError::Other)?;
        loop {
            match file.read_at(buf, offset) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r.map_err(|e| io_error(&e)),
            }
        }
    }

    fn tftp_close(&mut self, session: u8) {
        if let Some(f) = self.tftp_files.get_mut(usize::from(session)) {
            *f = None;
        }
    }

    fn guest_forward_open(&mut self, id: SocketId, rule: u32, guest: SocketAddr) -> Result<(), HostError> {
        self.reap_children();
        let target = self.guest_forward_targets.get(&rule).cloned().ok_or(HostError::Refused)?;
        match target {
            GuestForwardTarget::Command(cmd) => {
                let (ours, theirs) =
                    rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
                        .map_err(map_errno)?;
                // Ours is polled; the command's stays blocking, as programs expect of stdin.
                rustix::io::ioctl_fionbio(&ours, true).map_err(map_errno)?;
                let stdout = theirs.try_clone().map_err(|e| io_error(&e))?;
                let child = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&cmd)
                    .env("SLIRP_GUEST", guest.to_string())
                    .stdin(std::process::Stdio::from(theirs))
                    .stdout(std::process::Stdio::from(stdout))
                    .spawn()
                    .map_err(|e| {
                        log::warn!("guestfwd cmd:{cmd}: {e}");
                        HostError::Refused
                    })?;
                log::debug!("guestfwd rule {rule}: {guest} served by pid {}", child.id());
                self.children.push(child);
                self.insert(id, ours, Kind::Tcp, false)
            }
            GuestForwardTarget::Pty(cmd) => {
                let (ours, theirs) =
                    rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
                        .map_err(map_errno)?;
                rustix::io::ioctl_fionbio(&ours, true).map_err(map_errno)?;
                let child = spawn_on_pty(&cmd, guest, theirs).map_err(|e| {
                    log::warn!("guestfwd pty:{cmd}: {e}");
                    HostError::Refused
                })?;
                log::debug!("guestfwd rule {rule}: {guest} served by pid {} on a terminal", child.id());
                self.children.push(child);
                self.insert(id, ours, Kind::Tcp, false)
            }
            GuestForwardTarget::Unix(path) => {
                let fd = rustix::net::socket_with(
                    AddressFamily::UNIX,
                    SocketType::STREAM,
                    SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                    None,
                )
                .map_err(map_errno)?;
                let addr = rustix::net::SocketAddrUnix::new(&path).map_err(map_errno)?;
                match rustix::net::connect(&fd, &addr) {
                    Ok(()) => self.insert(id, fd, Kind::Tcp, false),
                    // A full backlog, a missing or refusing socket: the guest gets RST.
                    Err(e) => Err(match e {
                        Errno::AGAIN | Errno::NOENT | Errno::CONNREFUSED => HostError::Refused,
                        e => map_errno(e),
                    }),
                }
            }
            GuestForwardTarget::Tcp(dst) => {
                self.tcp_connect(id, dst)?;
                // In progress: writable, then tcp_connect_result, as for any connect.
                Err(HostError::WouldBlock)
            }
            GuestForwardTarget::Handler(handler) => {
                let (ours, theirs) =
                    rustix::net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
                        .map_err(map_errno)?;
                rustix::io::ioctl_fionbio(&ours, true).map_err(map_errno)?;
                let stream = std::os::unix::net::UnixStream::from(theirs);
                std::thread::Builder::new()
                    .name(format!("guestfwd-{rule}"))
                    .spawn(move || handler(stream, guest))
                    .map_err(|_| HostError::Exhausted)?;
                self.insert(id, ours, Kind::Tcp, false)
            }
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

    fn any() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
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

    fn peer() -> (UdpSocket, SocketAddr) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    }

    #[test]
    fn upstreams_of_both_families_reach_the_core() {
        let v4: SocketAddr = "198.51.100.1:53".parse().unwrap();
        assert_eq!(HostSocket::dns_upstream(&StdHost::new(Some(v4))), Some("198.51.100.1:53".parse().unwrap()));
        let v6: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
        assert_eq!(HostSocket::dns_upstream(&StdHost::new(Some(v6))), Some(v6));
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
        assert_eq!(
            ev,
            UdpEvent::Error { offender: IpAddr::V4(Ipv4Addr::LOCALHOST), dst: closed, error: HostError::Refused }
        );
        assert_eq!(host.udp_recv_from(A, &mut buf), Err(HostError::WouldBlock));
    }

    /// Everything `remote` has queued now, without waiting.
    fn drain(remote: &UdpSocket) -> Vec<Vec<u8>> {
        remote.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut got = vec![0u8; 65535];
        while let Ok((n, _)) = remote.recv_from(&mut got) {
            out.push(got[..n].to_vec());
        }
        remote.set_nonblocking(false).unwrap();
        out
    }

    /// Datagram `i` of the batching tests: distinct bytes, sizes around the batching limit.
    fn datagram(i: usize) -> Vec<u8> {
        let len = if i == 40 { 3000 } else { 1 + (i * 97) % BATCH_MAX_DATAGRAM };
        (0..len).map(|j| (i * 31 + j) as u8).collect()
    }

    #[test]
    fn batched_udp_sends_wait_for_flush_and_leave_in_order() {
        let mut host = StdHost::default();
        host.set_udp_batching(true);
        host.udp_bind(A, any()).unwrap();
        let (remote, raddr) = peer();
        // A destination's first datagram goes at once (its errors must reach the core).
        host.udp_send_to(A, &datagram(0), raddr, Some(64)).unwrap();
        assert_eq!(drain(&remote), vec![datagram(0)]);
        // Then small ones wait for the flush; a full batch (32) leaves by itself, and a large
        // one (number 40) pushes out what is gathered before going itself.
        for i in 1..=20 {
            host.udp_send_to(A, &datagram(i), raddr, Some(64)).unwrap();
        }
        assert_eq!(drain(&remote), Vec::<Vec<u8>>::new(), "gathered, not sent yet");
        // Read as we go: the receiving socket's buffer holds only a few dozen of them.
        let mut got = Vec::new();
        for i in 21..=100 {
            host.udp_send_to(A, &datagram(i), raddr, Some(64)).unwrap();
            got.extend(drain(&remote));
        }
        host.flush();
        std::thread::sleep(Duration::from_millis(20));
        got.extend(drain(&remote));
        assert_eq!(got.len(), 100);
        for (k, d) in got.iter().enumerate() {
            assert!(*d == datagram(k + 1), "datagram {} out of order or damaged", k + 1);
        }
        assert_eq!(host.udp_batch_dropped(), 0);
        // Sizes the kernel refuses are still refused synchronously.
        assert_eq!(host.udp_send_to(A, &vec![0u8; 65508], raddr, Some(64)), Err(HostError::TooLarge));
    }

    #[test]
    fn batching_flushes_before_another_socket_destination_ttl_or_close() {
        let mut host = StdHost::default();
        host.set_udp_batching(true);
        host.udp_bind(A, any()).unwrap();
        host.udp_bind(B, any()).unwrap();
        let (remote, raddr) = peer();
        let (other, oaddr) = peer();
        host.udp_send_to(A, b"a0", raddr, Some(64)).unwrap();
        host.udp_send_to(B, b"b0", raddr, Some(64)).unwrap();
        host.udp_send_to(A, b"a1", raddr, Some(64)).unwrap();
        // Another socket: A's batch leaves first.
        host.udp_send_to(B, b"b1", raddr, Some(64)).unwrap();
        // Another destination: sent at once, after B's batch.
        host.udp_send_to(B, b"to-other", oaddr, Some(64)).unwrap();
        // Another TTL: sent at once, after what was gathered.
        host.udp_send_to(A, b"a2", raddr, Some(64)).unwrap();
        host.udp_send_to(A, b"a3-ttl9", raddr, Some(9)).unwrap();
        assert_eq!(rustix::net::sockopt::ip_ttl(&host.sockets[&A].fd).unwrap(), 9);
        // Closing a socket sends what it was given.
        host.udp_send_to(A, b"a4", raddr, Some(9)).unwrap();
        host.close(A);
        std::thread::sleep(Duration::from_millis(20));
        let got: Vec<Vec<u8>> = drain(&remote);
        let want: Vec<&[u8]> = vec![b"a0", b"b0", b"a1", b"b1", b"a2", b"a3-ttl9", b"a4"];
        assert_eq!(got, want.iter().map(|w| w.to_vec()).collect::<Vec<_>>());
        assert_eq!(drain(&other), vec![b"to-other".to_vec()]);
    }

    #[test]
    fn a_refused_batch_reports_its_icmp_error_and_keeps_sending() {
        let mut host = StdHost::default();
        host.set_udp_batching(true);
        host.udp_bind(A, any()).unwrap();
        // A port that is open for the first datagram and closed for the batch.
        let (gone, gaddr) = peer();
        host.udp_send_to(A, b"first", gaddr, Some(64)).unwrap();
        drop(gone);
        host.udp_send_to(A, b"into-the-void", gaddr, Some(64)).unwrap();
        host.flush();
        // Loopback answers with a port unreachable at once; the next send meets it.
        std::thread::sleep(Duration::from_millis(50));
        let (remote, raddr) = peer();
        host.udp_send_to(A, b"hello", raddr, Some(64)).unwrap();
        host.udp_send_to(A, b"again", raddr, Some(64)).unwrap();
        host.flush();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(drain(&remote), vec![b"hello".to_vec(), b"again".to_vec()]);
        let mut buf = vec![0u8; 2048];
        let ev = wait(|| host.udp_recv_from(A, &mut buf)).unwrap();
        assert_eq!(
            ev,
            UdpEvent::Error { offender: IpAddr::V4(Ipv4Addr::LOCALHOST), dst: gaddr, error: HostError::Refused }
        );
        assert_eq!(host.udp_batch_dropped(), 0, "the ICMP error is reported, not a lost datagram");
    }

    #[test]
    fn dropping_the_host_flushes() {
        let (remote, raddr) = peer();
        {
            let mut host = StdHost::default();
            host.set_udp_batching(true);
            host.udp_bind(A, any()).unwrap();
            host.udp_send_to(A, b"one", raddr, None).unwrap();
            host.udp_send_to(A, b"two", raddr, None).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(drain(&remote), vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn errors_map_to_the_core_names() {
        let q = |origin, t, c| sys::QueuedError {
            origin,
            icmp_type: t,
            icmp_code: c,
            errno: 0,
            info: 0,
            offender: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
            dst: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)), 7)),
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
        // TCP: a reset is the core's "refused"; a connect that timed out is an unreachable host.
        assert_eq!(map_errno(Errno::CONNREFUSED), HostError::Refused);
        assert_eq!(map_errno(Errno::CONNRESET), HostError::Refused);
        assert_eq!(map_errno(Errno::PIPE), HostError::Refused);
        assert_eq!(map_errno(Errno::HOSTUNREACH), HostError::HostUnreachable);
        assert_eq!(map_errno(Errno::TIMEDOUT), HostError::HostUnreachable);
        assert_eq!(map_errno(Errno::INPROGRESS), HostError::Other);
    }

    #[test]
    fn forward_bind_reports_address_and_conflicts() {
        let mut host = StdHost::default();
        let bound = host.udp_bind(A, local(0)).unwrap();
        assert_eq!(bound.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
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
        let bound = host.udp_bind(B, local(0)).unwrap();
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
        let kind = match host.icmp_echo_open(ECHO, IpVersion::V4) {
            Ok(k) => k,
            Err(e) => {
                // Neither ping sockets (ping_group_range) nor CAP_NET_RAW here.
                assert_eq!(e, HostError::Unsupported);
                eprintln!("echo_to_loopback: no echo socket on this host, nothing more to check");
                return;
            }
        };
        assert_eq!(host.icmp_echo_open(ECHO, IpVersion::V4), Ok(kind), "one long-lived socket");
        let mut buf = vec![0u8; 65535];
        for (seq, size) in [(1u16, 56usize), (2, 3000)] {
            let data: Vec<u8> = (0..size).map(|i| (i as u8) ^ 0x5a).collect();
            host.icmp_echo_send(ECHO, IpAddr::V4(Ipv4Addr::LOCALHOST), 0x51e7, seq, &data, Some(64)).unwrap();
            let r = wait(|| host.icmp_echo_recv(ECHO, &mut buf)).unwrap();
            assert_eq!(r.from, IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert_eq!(r.seq_no, seq);
            assert_eq!(&buf[..r.len], &data[..]);
            if kind == EchoKind::Raw {
                assert_eq!(r.ident, 0x51e7, "reported with the core's identifier");
            }
        }
        assert_eq!(host.icmp_echo_recv(ECHO, &mut buf), Err(HostError::WouldBlock));
    }

    /// Skips a test when the machine has no IPv6 loopback (IPv6 disabled by sysctl).
    fn have_ipv6_loopback() -> bool {
        UdpSocket::bind("[::1]:0").is_ok()
    }

    #[test]
    fn ipv6_udp_tcp_and_echo_over_loopback() {
        if !have_ipv6_loopback() {
            eprintln!("no IPv6 loopback here: nothing to check");
            return;
        }
        let lo6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        let mut host = StdHost::default();
        // UDP: a v6 flow socket, both ways, and a refused destination as an ICMPv6 error.
        let bound = host.udp_bind(A, IpVersion::V6.any()).unwrap();
        assert!(bound.is_ipv6());
        let remote = UdpSocket::bind("[::1]:0").unwrap();
        remote.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let raddr = remote.local_addr().unwrap();
        host.udp_send_to(A, b"six", raddr, Some(7)).unwrap();
        let mut got = [0u8; 16];
        let (n, from) = remote.recv_from(&mut got).unwrap();
        assert_eq!(&got[..n], b"six");
        remote.send_to(b"back", from).unwrap();
        let mut buf = vec![0u8; 2048];
        match wait(|| host.udp_recv_from(A, &mut buf)).unwrap() {
            UdpEvent::Datagram { len, from } => assert_eq!((&buf[..len], from), (&b"back"[..], raddr)),
            e => panic!("{e:?}"),
        }
        // A v4 destination cannot go through the v6 socket.
        assert_eq!(host.udp_send_to(A, b"x", local(9), None), Err(HostError::Unsupported));
        let closed = {
            let s = UdpSocket::bind("[::1]:0").unwrap();
            s.local_addr().unwrap()
        };
        host.udp_send_to(A, b"nobody", closed, None).unwrap();
        // The ICMPv6 port unreachable arrives; the next send notices it and still goes out.
        std::thread::sleep(Duration::from_millis(50));
        host.udp_send_to(A, b"again", raddr, None).unwrap();
        assert_eq!(remote.recv_from(&mut got).unwrap().0, 5);
        let ev = wait(|| host.udp_recv_from(A, &mut buf)).unwrap();
        assert_eq!(ev, UdpEvent::Error { offender: lo6, dst: closed, error: HostError::Refused });
        // TCP over [::1].
        let lb = host.tcp_listen(L, SocketAddr::new(lo6, 0)).unwrap();
        assert_eq!(lb.ip(), lo6);
        host.tcp_connect(T1, lb).unwrap();
        assert_eq!(wait(|| host.tcp_connect_result(T1)), Ok(()));
        let peer = wait(|| host.tcp_accept(L, T2)).unwrap();
        assert_eq!(peer.ip(), lo6);
        assert_eq!(wait(|| host.tcp_send(T1, b"hello six")), Ok(9));
        let n = wait(|| host.tcp_recv(T2, &mut buf)).unwrap();
        assert_eq!(&buf[..n], b"hello six");
        // ICMPv6 echo, where the host allows an echo socket.
        match host.icmp_echo_open(ECHO6, IpVersion::V6) {
            Ok(kind) => {
                host.icmp_echo_send(ECHO6, lo6, 0x51e7, 9, b"ping six", Some(64)).unwrap();
                let r = wait(|| host.icmp_echo_recv(ECHO6, &mut buf)).unwrap();
                assert_eq!((r.from, r.seq_no, &buf[..r.len]), (lo6, 9, &b"ping six"[..]));
                if kind == EchoKind::Raw {
                    assert_eq!(r.ident, 0x51e7);
                }
            }
            Err(e) => assert_eq!(e, HostError::Unsupported),
        }
    }

    const ECHO6: SocketId = SocketId(2 << 56 | 1);
    const T1: SocketId = SocketId(5 << 56 | 1);
    const T2: SocketId = SocketId(5 << 56 | 2);
    const L: SocketId = SocketId(6 << 56 | 1);

    fn local(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    /// Sends all of `data`, waiting while the socket is full.
    fn send_all(host: &mut StdHost, id: SocketId, mut data: &[u8]) {
        while !data.is_empty() {
            let n = wait(|| host.tcp_send(id, data)).unwrap();
            data = &data[n..];
        }
    }

    /// Reads until `want` bytes or EOF.
    fn recv_n(host: &mut StdHost, id: SocketId, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.len() < want {
            let n = wait(|| host.tcp_recv(id, &mut buf)).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn tcp_connect_send_recv_half_close_through_a_listener() {
        let mut host = StdHost::default();
        let bound = host.tcp_listen(L, local(0)).unwrap();
        assert_eq!(bound.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_ne!(bound.port(), 0);
        assert_eq!(host.tcp_accept(L, T2), Err(HostError::WouldBlock), "nobody connected yet");
        assert!(!host.listener_backlog(L));
        host.tcp_connect(T1, bound).unwrap();
        assert_eq!(wait(|| host.tcp_connect_result(T1)), Ok(()));
        let peer = wait(|| host.tcp_accept(L, T2)).unwrap();
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(host.listener_backlog(L), "an accept succeeded: more may wait");
        assert_eq!(host.accepted(), 1);
        assert_eq!(host.tcp_accept(L, SocketId(T2.0 + 1)), Err(HostError::WouldBlock));
        assert!(!host.listener_backlog(L), "drained");
        // TCP_NODELAY on both ends.
        assert!(rustix::net::sockopt::tcp_nodelay(&host.sockets[&T1].fd).unwrap());
        assert!(rustix::net::sockopt::tcp_nodelay(&host.sockets[&T2].fd).unwrap());
        // More than a socket buffer holds each way (the writer sees WouldBlock and waits).
        let data: Vec<u8> = (0..3 << 20).map(|i: usize| (i * 13 + i / 4099) as u8).collect();
        let mut got = Vec::new();
        let mut sent = 0;
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < data.len() {
            assert!(Instant::now() < deadline, "stalled at {} of {}", got.len(), data.len());
            if sent < data.len() {
                match host.tcp_send(T1, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(HostError::WouldBlock) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            match host.tcp_recv(T2, &mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(HostError::WouldBlock) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert!(got == data, "bytes damaged on the way");
        // Half-close: T1 finishes, T2 reads EOF and can still answer.
        host.tcp_shutdown_write(T1).unwrap();
        assert_eq!(wait(|| host.tcp_recv(T2, &mut buf)), Ok(0), "EOF after shutdown");
        send_all(&mut host, T2, b"still here");
        assert_eq!(recv_n(&mut host, T1, 10), b"still here");
        host.close(T2);
        assert_eq!(wait(|| host.tcp_recv(T1, &mut buf)), Ok(0));
        host.close(T1);
        host.close(L);
        assert_eq!(host.open_sockets(), 0);
    }

    #[test]
    fn tcp_abort_resets_the_peer_and_refusals_are_refused() {
        let mut host = StdHost::default();
        let bound = host.tcp_listen(L, local(0)).unwrap();
        host.tcp_connect(T1, bound).unwrap();
        assert_eq!(wait(|| host.tcp_connect_result(T1)), Ok(()));
        wait(|| host.tcp_accept(L, T2)).unwrap();
        host.tcp_abort(T1);
        let mut buf = [0u8; 16];
        assert_eq!(wait(|| host.tcp_recv(T2, &mut buf)), Err(HostError::Refused), "ECONNRESET");
        assert_eq!(host.tcp_send(T1, b"x"), Err(HostError::Other), "unknown id after abort");
        host.close(L);
        // A port nobody listens on: refused at once or when the connect completes.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let res = host.tcp_connect(T1, local(closed)).and_then(|()| wait(|| host.tcp_connect_result(T1)));
        assert_eq!(res, Err(HostError::Refused));
        // A listener's address in use by another listener.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        assert_eq!(host.tcp_listen(L, local(port)), Err(HostError::AddrInUse));
    }

    #[test]
    fn tcp_sockets_are_watched_for_writability_and_listeners_for_readability() {
        let mut poll = mio::Poll::new().unwrap();
        let mut host = StdHost::default();
        host.attach(poll.registry().try_clone().unwrap()).unwrap();
        let bound = host.tcp_listen(L, local(0)).unwrap();
        host.tcp_connect(T1, bound).unwrap();
        let mut events = mio::Events::with_capacity(8);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !(seen.contains(&(T1, false, true)) && seen.iter().any(|e| e.0 == L && e.1)) {
            assert!(Instant::now() < deadline, "events so far: {seen:?}");
            poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
            for e in events.iter() {
                let id = host.socket_event(e.token(), e.is_error()).unwrap();
                seen.push((id, e.is_readable(), e.is_writable()));
            }
        }
        assert_eq!(host.tcp_connect_result(T1), Ok(()));
    }

    #[test]
    fn urgent_byte_is_found_in_the_stream_after_a_priority_event() {
        let mut poll = mio::Poll::new().unwrap();
        let mut host = StdHost::default();
        host.attach(poll.registry().try_clone().unwrap()).unwrap();
        let bound = host.tcp_listen(L, local(0)).unwrap();
        host.tcp_connect(T1, bound).unwrap();
        assert_eq!(wait(|| host.tcp_connect_result(T1)), Ok(()));
        wait(|| host.tcp_accept(L, T2)).unwrap();
        send_all(&mut host, T2, b"abc");
        assert_eq!(wait(|| host.tcp_send_urgent(T2, b"!")), Ok(1));
        send_all(&mut host, T2, b"def");
        // Wait for the priority event on T1 and let the host note it.
        let mut events = mio::Events::with_capacity(8);
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut priority = false;
        while !priority {
            assert!(Instant::now() < deadline, "no priority event");
            poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
            for e in events.iter() {
                let id = host.socket_event_with(e.token(), e.is_error(), e.is_priority());
                priority |= id == Some(T1) && e.is_priority();
            }
        }
        // The stream reads in order; the urgent byte is announced right before it.
        let mut buf = [0u8; 16];
        assert!(!host.tcp_urgent_mark(T1), "three ordinary bytes come first");
        assert_eq!(wait(|| host.tcp_recv(T1, &mut buf)), Ok(3), "a read stops at the mark");
        assert_eq!(&buf[..3], b"abc");
        assert!(host.tcp_urgent_mark(T1), "the urgent byte is next");
        assert_eq!(host.tcp_recv(T1, &mut buf[..1]), Ok(1));
        assert_eq!(buf[0], b'!');
        assert!(!host.tcp_urgent_mark(T1), "past the mark");
        assert_eq!(recv_n(&mut host, T1, 3), b"def");
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2, so the checksum is !0xddf2.
        // The checksum is the core's (slirp_core::wire), as is the echo layout.
        use slirp_core::wire::checksum::data as internet_checksum;
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        let mut with = vec![8, 0, 0, 0, 1, 2, 3, 4, 5];
        let c = internet_checksum(&with);
        with[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(internet_checksum(&with), 0);
    }

    #[test]
    fn a_rust_handler_serves_a_guest_forward_connection() {
        use std::io::{Read, Write};
        let mut host = StdHost::new(None);
        let handler: GuestForwardHandler = std::sync::Arc::new(|mut s: std::os::unix::net::UnixStream, guest| {
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            let reply = format!("{} from {guest}", String::from_utf8_lossy(&got).to_uppercase());
            s.write_all(reply.as_bytes()).unwrap();
        });
        host.set_guest_forward(7, GuestForwardTarget::Handler(handler));
        let id = SocketId(42);
        let guest: SocketAddr = "10.0.2.15:40000".parse().unwrap();
        host.guest_forward_open(id, 7, guest).unwrap();
        assert_eq!(host.tcp_send(id, b"hello").unwrap(), 5);
        host.tcp_shutdown_write(id).unwrap();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut buf = [0u8; 64];
            match host.tcp_recv(id, &mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(HostError::WouldBlock) => {
                    assert!(std::time::Instant::now() < deadline, "no answer");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(out, b"HELLO from 10.0.2.15:40000");
        host.close(id);
        // An unknown rule is refused.
        assert_eq!(host.guest_forward_open(SocketId(43), 8, guest), Err(HostError::Refused));
    }
}
