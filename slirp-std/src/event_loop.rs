//! The event loop of one slirp instance: a guest link, the core, the clock, and the few
//! descriptors that say when to stop.
//!
//! One thread, one `epoll` (through mio). Each turn sleeps until a descriptor is ready or the
//! core's next deadline ([`Slirp::poll_at`]) comes; it never wakes up for nothing, so an idle
//! instance costs no CPU. Per wakeup it reads a bounded batch of guest frames (so a flooding
//! guest cannot starve timers or the way back), passes host sockets' readiness to the core
//! ([`Slirp::handle_host_readable`]), runs due timers, and drains guest-bound frames until the
//! core has none or the link pushes back.
//!
//! Host sockets are registered edge-triggered (see [`StdHost`]); no readiness is lost because
//! the core reads a socket until it would block, or, when the guest-bound queue fills first,
//! keeps it on its own ready list and resumes it from [`Slirp::poll_transmit`] once the link
//! takes frames again (the loop calls it whenever the link becomes writable). Writability of a
//! TCP socket (a connect finished, or a send buffer that refused bytes has room) goes to
//! [`Slirp::handle_host_writable`], readability, errors and hang-ups to
//! [`Slirp::handle_host_readable`]: O(1) per event. A TCP listener accepts a bounded burst per
//! report; when the burst took connections without draining the backlog
//! ([`StdHost::listener_backlog`]) the loop reports it again at the next turn instead of waiting
//! for an edge that would not come.
//!
//! Tokens: 0-15 belong to the loop (guest link 0-1, signals, exit fd, child, waker 2-6, the
//! control API's listener 7), host sockets count up from 16, and the control API's connections
//! use a small block far above them ([`api::TOKEN_API_CONN_BASE`]).
//!
//! The host side is [`StdHost`] by default; an embedder with a host of its own (another socket
//! layer, a proxy, a recording double) runs the same loop over it by implementing [`LoopHost`]:
//! what the loop needs beyond [`HostSocket`] (registering with the loop's mio registry, turning
//! an event's token into a [`SocketId`], flushing held-back sends, the listener backlog). The
//! loop is generic over it, so `EventLoop<StdHost>` compiles to the same code as before: no
//! indirection on the per-packet path.

use std::io::{self, ErrorKind, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slirp_core::{Clock, ForwardError, HostSocket, Slirp, SocketId};

use crate::api::{self, ApiServer};
use crate::clock::StdClock;
use crate::host::StdHost;
use crate::link::{GuestLink, RecvOutcome, SendOutcome, MAX_FRAME, TOKEN_DATA, TOKEN_LISTENER};
use crate::pcap::PcapWriter;

const TOKEN_SIGINT: Token = Token(2);
const TOKEN_SIGTERM: Token = Token(3);
const TOKEN_EXIT_FD: Token = Token(4);
const TOKEN_CHILD: Token = Token(5);
const TOKEN_WAKER: Token = Token(6);

/// Guest frames read per wakeup before timers and the way back get their turn.
const RX_BATCH: usize = 256;
/// How often drop counters are logged at debug level (only when debug logging is on, and only
/// when they changed).
const STATS_INTERVAL: Duration = Duration::from_secs(10);

/// Why [`EventLoop::run`] returned.
#[derive(Debug)]
pub enum Exit {
    /// SIGINT or SIGTERM arrived (with [`EventLoop::handle_signals`]).
    Signal(i32),
    /// The `--exit-fd` descriptor was closed or became readable.
    ExitFd,
    /// The watched child process ended.
    Child(ExitStatus),
    /// [`StopHandle::stop`] was called.
    Stopped,
}

/// Stops a running [`EventLoop`] from another thread.
#[derive(Clone, Debug)]
pub struct StopHandle {
    waker: Arc<Waker>,
}

impl StopHandle {
    /// Asks the loop to return [`Exit::Stopped`] at its next turn.
    pub fn stop(&self) -> io::Result<()> {
        self.waker.wake()
    }
}

/// What [`EventLoop`] needs from its host side beyond [`HostSocket`]. [`StdHost`] implements it;
/// so can an embedder's own host.
///
/// Tokens below [`FIRST_TOKEN`](crate::host::FIRST_TOKEN) are the loop's, and the control API
/// uses a block from [`api::TOKEN_API_CONN_BASE`]; the host registers its sockets under the
/// tokens in between, and every event the loop does not recognize goes to
/// [`event`](Self::event).
pub trait LoopHost: HostSocket {
    /// Called once, by [`EventLoop::new`]: watch every socket, those open now and those opened
    /// later, with `registry` (edge-triggered: the core reads until it would block or keeps the
    /// socket on its ready list). From then on the loop calls [`flush`](Self::flush) after every
    /// burst of guest frames and before it sleeps, so the host may hold sends back until then
    /// ([`StdHost`] turns its UDP batching on here).
    fn start(&mut self, registry: Registry) -> io::Result<()>;

    /// The core's id for an event on `token`, or `None` when the token is not one of the host's.
    /// `error` is the event's error flag, `priority` says TCP urgent data arrived.
    fn event(&mut self, token: Token, error: bool, priority: bool) -> Option<SocketId>;

    /// Sends what the host held back. By default nothing is.
    fn flush(&mut self) {}

    /// How many connections were accepted so far, on all listeners. The loop compares it before
    /// and after handing a listener's event to the core; with
    /// [`listener_backlog`](Self::listener_backlog) it offers the listener again at the next
    /// turn. By default no listener keeps a backlog the core did not see.
    fn accepted(&self) -> u64 {
        0
    }

    /// Whether listener `id` may still hold connections with no new readiness edge to announce
    /// them (see [`StdHost::listener_backlog`]).
    fn listener_backlog(&self, id: SocketId) -> bool {
        let _ = id;
        false
    }

    /// Host sockets open (the control API's `stats`).
    fn open_sockets(&self) -> usize;

    /// Datagrams lost after [`HostSocket::udp_send_to`] had accepted them (logged with the drop
    /// counters). By default none.
    fn udp_batch_dropped(&self) -> u64 {
        0
    }

    /// Serves guest-forward rule `rule` with `target` (the control API's `add_guestfwd`);
    /// false when this host cannot serve guest forwards (the default).
    fn set_guest_forward(&mut self, rule: u32, target: crate::host::GuestForwardTarget) -> bool {
        let _ = (rule, target);
        false
    }

    /// Forgets rule `rule`'s target.
    fn remove_guest_forward(&mut self, rule: u32) {
        let _ = rule;
    }

    /// What serves rule `rule`.
    fn guest_forward_target(&self, rule: u32) -> Option<crate::host::GuestForwardTarget> {
        let _ = rule;
        None
    }
}

impl LoopHost for StdHost {
    fn start(&mut self, registry: Registry) -> io::Result<()> {
        self.set_udp_batching(true);
        StdHost::attach(self, registry)
    }
    fn event(&mut self, token: Token, error: bool, priority: bool) -> Option<SocketId> {
        self.socket_event_with(token, error, priority)
    }
    fn flush(&mut self) {
        StdHost::flush(self)
    }
    fn accepted(&self) -> u64 {
        StdHost::accepted(self)
    }
    fn listener_backlog(&self, id: SocketId) -> bool {
        StdHost::listener_backlog(self, id)
    }
    fn open_sockets(&self) -> usize {
        StdHost::open_sockets(self)
    }
    fn udp_batch_dropped(&self) -> u64 {
        StdHost::udp_batch_dropped(self)
    }
    fn set_guest_forward(&mut self, rule: u32, target: crate::host::GuestForwardTarget) -> bool {
        StdHost::set_guest_forward(self, rule, target);
        true
    }
    fn remove_guest_forward(&mut self, rule: u32) {
        StdHost::remove_guest_forward(self, rule)
    }
    fn guest_forward_target(&self, rule: u32) -> Option<crate::host::GuestForwardTarget> {
        StdHost::guest_forward_target(self, rule)
    }
}

/// One slirp instance on a std host. See the module documentation.
pub struct EventLoop<'a, H: LoopHost = StdHost> {
    slirp: Slirp<'a>,
    host: H,
    link: GuestLink,
    clock: StdClock,
    poll: Poll,
    waker: Arc<Waker>,
    pcap: Option<PcapWriter<io::BufWriter<std::fs::File>>>,
    /// Where the core's trace events go (with `Config::trace` on).
    trace: Option<crate::trace::TraceWriter<std::fs::File>>,
    signals: Vec<(UnixStream, signal_hook::SigId)>,
    exit_fd: Option<OwnedFd>,
    ready_fd: Option<OwnedFd>,
    child: Option<(Child, OwnedFd)>,
    rx_buf: Vec<u8>,
    /// Where a guest-bound frame with a partial checksum is finished before it is captured.
    pcap_buf: Vec<u8>,
    /// The link may still hold frames we did not read (batch limit hit).
    rx_pending: bool,
    /// The link refused a frame; wait for writability before offering more.
    tx_blocked: bool,
    /// A QEMU guest is waiting to be accepted.
    accept_pending: bool,
    /// Host sockets reported ready since the last turn: (id, readable/error/hang-up, writable).
    host_ready: Vec<(SocketId, bool, bool)>,
    /// The control API socket, if one is served.
    api: Option<ApiServer>,
    /// The API's rules over both families (kept here: the API server borrows the engine per turn).
    api_twins: api::Twins,
    /// Busy polling: how long to keep polling without sleeping once events come densely.
    busy_poll: Duration,
    /// The last wait suggests the next event is close: poll before sleeping.
    spin: bool,
}

impl<'a, H: LoopHost> EventLoop<'a, H> {
    /// An event loop driving `slirp` over `link`, with `host` as its host side.
    ///
    /// The engine is told the link's offloads ([`GuestLink::offload`]), and the host is started
    /// ([`LoopHost::start`]: a [`StdHost`] batches UDP sends, [`StdHost::set_udp_batching`]; the
    /// loop flushes after every burst of guest frames and before it sleeps).
    pub fn new(mut slirp: Slirp<'a>, mut host: H, mut link: GuestLink) -> io::Result<Self> {
        slirp.set_guest_offload(link.offload());
        let poll = Poll::new()?;
        link.register(poll.registry())?;
        host.start(poll.registry().try_clone()?)?;
        let waker = Arc::new(Waker::new(poll.registry(), TOKEN_WAKER)?);
        Ok(EventLoop {
            slirp,
            host,
            link,
            clock: StdClock::new(),
            poll,
            waker,
            pcap: None,
            trace: None,
            signals: Vec::new(),
            exit_fd: None,
            ready_fd: None,
            child: None,
            rx_buf: slirp_core::storage::zeroed(0u8, MAX_FRAME),
            pcap_buf: Vec::new(),
            rx_pending: true,
            tx_blocked: false,
            accept_pending: false,
            host_ready: Vec::new(),
            api: None,
            api_twins: api::Twins::default(),
            busy_poll: Duration::ZERO,
            spin: false,
        })
    }

    /// Polls for up to `budget` before going to sleep, while traffic comes densely (the last wait
    /// ended with something to read within twice the budget): a request/response exchange
    /// then costs no sleep and wake-up per packet. After a sparse gap the loop sleeps straight
    /// away, so an idle or quiet NAT burns nothing; the spin wasted per wake-up is at most
    /// `budget`. `Duration::ZERO` (the default) turns it off.
    pub fn set_busy_poll(&mut self, budget: Duration) {
        self.busy_poll = budget;
    }

    /// Writes the core's trace events (the core's configuration must have `trace` on) to
    /// `writer`, after every turn.
    pub fn trace_to(&mut self, writer: crate::trace::TraceWriter<std::fs::File>) {
        self.trace = Some(writer);
    }

    /// Records every frame of the guest link, both directions, to `pcap`.
    pub fn capture(&mut self, pcap: PcapWriter<io::BufWriter<std::fs::File>>) {
        self.pcap = Some(pcap);
    }

    /// Returns [`Exit::Signal`] on SIGINT or SIGTERM instead of dying. Meant for a process that
    /// exits after the loop: the signal handlers stay installed (doing nothing) afterwards.
    pub fn handle_signals(&mut self) -> io::Result<()> {
        for (sig, token) in [(signal_hook::consts::SIGINT, TOKEN_SIGINT), (signal_hook::consts::SIGTERM, TOKEN_SIGTERM)]
        {
            let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
            rx.set_nonblocking(true)?;
            tx.set_nonblocking(true)?;
            let id = signal_hook::low_level::pipe::register(sig, tx)?;
            let mut rx = UnixStream::from_std(rx);
            self.poll.registry().register(&mut rx, token, Interest::READABLE)?;
            self.signals.push((rx, id));
        }
        Ok(())
    }

    /// Returns [`Exit::ExitFd`] when `fd` is closed by its other end or becomes readable
    /// (slirp4netns' `--exit-fd`).
    pub fn watch_exit_fd(&mut self, fd: OwnedFd) -> io::Result<()> {
        self.poll.registry().register(&mut SourceFd(&fd.as_raw_fd()), TOKEN_EXIT_FD, Interest::READABLE)?;
        self.exit_fd = Some(fd);
        Ok(())
    }

    /// Writes `1` to `fd` and closes it once the loop runs (slirp4netns' `--ready-fd`).
    pub fn notify_ready(&mut self, fd: OwnedFd) {
        self.ready_fd = Some(fd);
    }

    /// Returns [`Exit::Child`] when `child` ends (the loop reaps it).
    pub fn watch_child(&mut self, child: Child) -> io::Result<()> {
        let pid = rustix::process::Pid::from_child(&child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        self.poll.registry().register(&mut SourceFd(&pidfd.as_raw_fd()), TOKEN_CHILD, Interest::READABLE)?;
        self.child = Some((child, pidfd));
        Ok(())
    }

    /// Serves the control API (slirp4netns' JSON API, see [`api`]) on `server`'s socket, from
    /// this loop's thread.
    pub fn serve_api(&mut self, mut server: ApiServer) -> io::Result<()> {
        server.register(self.poll.registry())?;
        self.api = Some(server);
        Ok(())
    }

    /// A handle that stops the loop from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle { waker: self.waker.clone() }
    }

    /// The engine (for its statistics and tables).
    pub fn slirp(&self) -> &Slirp<'a> {
        &self.slirp
    }

    /// The host side (for its open sockets).
    pub fn host(&self) -> &H {
        &self.host
    }

    /// Forwards UDP datagrams arriving at `host` to the guest endpoint `guest` (guest address
    /// 0.0.0.0: the first DHCP address, `[::]`: the first DHCPv6 address); returns the rule id. See
    /// [`Slirp::add_udp_forward`].
    pub fn add_udp_forward(&mut self, host: SocketAddr, guest: SocketAddr) -> Result<u32, ForwardError> {
        self.slirp.add_udp_forward(&mut self.host, host, guest)
    }

    /// Removes UDP forwarding rule `id` and closes its host socket.
    pub fn remove_udp_forward(&mut self, id: u32) -> Result<(), ForwardError> {
        self.slirp.remove_udp_forward(&mut self.host, id)
    }

    /// Listens on `host` and opens every accepted connection toward the guest endpoint `guest`
    /// (guest address 0.0.0.0: the first DHCP address); returns the rule id (one id space with
    /// UDP forwards). See [`Slirp::add_tcp_forward`].
    pub fn add_tcp_forward(&mut self, host: SocketAddr, guest: SocketAddr) -> Result<u32, ForwardError> {
        self.slirp.add_tcp_forward(&mut self.host, host, guest)
    }

    /// Removes TCP forwarding rule `id` and closes its listener (open connections go on).
    pub fn remove_tcp_forward(&mut self, id: u32) -> Result<(), ForwardError> {
        self.slirp.remove_tcp_forward(&mut self.host, id)
    }

    /// Runs until a stop condition (see [`Exit`]) or a fatal error of the guest link.
    pub fn run(&mut self) -> io::Result<Exit> {
        if let Some(fd) = self.ready_fd.take() {
            let mut f = std::fs::File::from(fd);
            f.write_all(b"1").map_err(|e| io::Error::new(e.kind(), format!("--ready-fd: {e}")))?;
        }
        let mut events = Events::with_capacity(64);
        let debug = log::log_enabled!(log::Level::Debug);
        let mut next_stats = self.clock.now() + STATS_INTERVAL;
        let mut logged_drops = self.slirp.stats().dropped_total();
        loop {
            let timeout = self.timeout(debug.then_some(next_stats));
            match self.wait(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                match ev.token() {
                    TOKEN_DATA => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.rx_pending = true;
                        }
                        if ev.is_writable() {
                            self.tx_blocked = false;
                        }
                    }
                    TOKEN_LISTENER => {
                        // Accepted after the current guest's input is read, so a guest that
                        // hung up just before reconnecting is seen gone first.
                        self.accept_pending = true;
                        self.rx_pending = true;
                    }
                    TOKEN_SIGINT => return Ok(Exit::Signal(signal_hook::consts::SIGINT)),
                    TOKEN_SIGTERM => return Ok(Exit::Signal(signal_hook::consts::SIGTERM)),
                    TOKEN_EXIT_FD => {
                        let mut buf = [0u8; 64];
                        if let Some(fd) = &self.exit_fd {
                            // Whatever it says (EOF, data, error), the owner wants us gone.
                            let _ = rustix::io::read(fd, &mut buf);
                        }
                        return Ok(Exit::ExitFd);
                    }
                    TOKEN_CHILD => {
                        if let Some((child, _)) = &mut self.child {
                            if let Some(status) = child.try_wait()? {
                                return Ok(Exit::Child(status));
                            }
                        }
                    }
                    TOKEN_WAKER => return Ok(Exit::Stopped),
                    token if self.api.as_mut().is_some_and(|a| a.event(token)) => {}
                    token => {
                        if let Some(id) = self.host.event(token, ev.is_error(), ev.is_priority()) {
                            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                            // An error also ends a pending connect or a blocked send.
                            let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                            self.host_ready.push((id, readable, writable));
                        }
                    }
                }
            }
            self.turn()?;
            if debug && self.clock.now() >= next_stats {
                next_stats = self.clock.now() + STATS_INTERVAL;
                let total = self.slirp.stats().dropped_total();
                if total != logged_drops {
                    logged_drops = total;
                    self.log_stats(log::Level::Debug);
                }
            }
        }
    }

    /// Waits for events up to `timeout`: first polling without sleeping for up to the busy-poll
    /// budget when events have been coming densely (see [`set_busy_poll`](Self::set_busy_poll)).
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) || self.busy_poll.is_zero() {
            return self.poll.poll(events, timeout);
        }
        let started = std::time::Instant::now();
        if self.spin {
            let budget = timeout.map_or(self.busy_poll, |t| t.min(self.busy_poll));
            loop {
                self.poll.poll(events, Some(Duration::ZERO))?;
                if !events.is_empty() {
                    return Ok(());
                }
                if started.elapsed() >= budget {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
        self.poll.poll(events, left)?;
        // Dense: something to read came within twice the budget of starting to wait for it.
        // (A writable report alone, which follows our own writes, says nothing about traffic.)
        self.spin = started.elapsed() < self.busy_poll * 2 && events.iter().any(|e| e.is_readable());
        Ok(())
    }

    /// How long the next poll may sleep.
    fn timeout(&self, next_stats: Option<slirp_core::Instant>) -> Option<Duration> {
        if self.rx_pending && self.link.is_connected() {
            return Some(Duration::ZERO);
        }
        if !self.host_ready.is_empty() || self.api.as_ref().is_some_and(ApiServer::has_pending) {
            return Some(Duration::ZERO);
        }
        let api_deadline = self.api.as_ref().and_then(ApiServer::poll_at);
        let deadline = [self.slirp.poll_at(), next_stats, api_deadline].into_iter().flatten().min();
        deadline.map(|d| {
            // Round up to the next millisecond: epoll sleeps in whole milliseconds, and waking
            // a fraction early would only spin once more.
            let d = self.clock.until(d);
            let ms = d.as_micros().div_ceil(1000);
            Duration::from_millis(ms as u64)
        })
    }

    /// One round of work after a wakeup.
    fn turn(&mut self) -> io::Result<()> {
        if self.rx_pending {
            let mut n = 0;
            self.rx_pending = false;
            while n < RX_BATCH {
                match self.link.recv(self.poll.registry(), &mut self.rx_buf)? {
                    RecvOutcome::Frame(len, checksum) => {
                        let frame = &self.rx_buf[..len];
                        if let Some(p) = &mut self.pcap {
                            p.write_frame(frame)?;
                        }
                        let now = self.clock.now();
                        self.slirp.handle_guest_frame_offloaded(now, frame, checksum, &mut self.host);
                        n += 1;
                        // Answers go out as we go, so the core's queue never fills from one
                        // burst of requests.
                        if n & 31 == 0 {
                            self.transmit()?;
                        }
                    }
                    RecvOutcome::Empty => break,
                }
            }
            // The burst's UDP datagrams leave together (one sendmmsg per socket).
            self.host.flush();
            if n == RX_BATCH {
                self.rx_pending = true;
            }
        }
        if self.accept_pending {
            self.accept_pending = false;
            if self.link.accept(self.poll.registry())? {
                // A fresh guest is offered whatever is queued, and read at the next turn.
                self.tx_blocked = false;
                self.rx_pending = true;
            }
        }
        if !self.host_ready.is_empty() {
            let mut ready = std::mem::take(&mut self.host_ready);
            let mut again = Vec::new();
            for (id, readable, writable) in ready.drain(..) {
                let now = self.clock.now();
                // Writable first: a finished connect, and room for what the guest sent (which
                // opens the guest's window), before reading the reply.
                if writable {
                    self.slirp.handle_host_writable(now, id, &mut self.host);
                }
                if readable {
                    let accepted = self.host.accepted();
                    self.slirp.handle_host_readable(now, id, &mut self.host);
                    if self.host.accepted() != accepted && self.host.listener_backlog(id) {
                        again.push((id, true, false));
                    }
                }
                // What the socket had for the guest goes out before the next one is read.
                self.transmit()?;
            }
            ready.extend(again);
            self.host_ready = ready;
        }
        if let Some(server) = &mut self.api {
            let mut cx = api::Context {
                slirp: &mut self.slirp,
                host: &mut self.host,
                now: self.clock.now(),
                default_guest: server.default_guest(),
                local_targets: server.local_targets(),
                twins: &mut self.api_twins,
            };
            server.turn(self.poll.registry(), &mut cx);
        }
        let now = self.clock.now();
        if self.slirp.poll_at().is_some_and(|t| t <= now) {
            self.slirp.handle_timeout(now, &mut self.host);
        }
        // Nothing the core sent waits past this turn.
        self.host.flush();
        self.transmit()?;
        if let Some(p) = &mut self.pcap {
            p.flush()?;
        }
        if let Some(w) = &mut self.trace {
            let t = self.clock.now().total_micros() as f64 / 1e6;
            while let Some(ev) = self.slirp.poll_trace() {
                w.write(&ev, t)?;
            }
            w.flush()?;
        }
        Ok(())
    }

    /// Offers guest-bound frames to the link until the core has none or the link is full.
    fn transmit(&mut self) -> io::Result<()> {
        let registry = self.poll.registry();
        if self.tx_blocked {
            // Stream links may have room again after a partial write.
            if self.link.flush(registry)? {
                self.tx_blocked = false;
            } else {
                return Ok(());
            }
        }
        let now = self.clock.now();
        while let Some(frame) = self.slirp.poll_transmit(now, &mut self.host) {
            let offload = frame.offload();
            match self.link.send(registry, &frame, offload)? {
                SendOutcome::Taken => {
                    if let Some(p) = &mut self.pcap {
                        if offload.checksum.is_some() {
                            // The capture shows what the guest gets: the checksum finished.
                            self.pcap_buf.clear();
                            self.pcap_buf.extend_from_slice(&frame);
                            offload.finish_checksum(&mut self.pcap_buf);
                            p.write_frame(&self.pcap_buf)?;
                        } else {
                            p.write_frame(&frame)?;
                        }
                    }
                    frame.consume();
                }
                SendOutcome::WouldBlock => {
                    self.tx_blocked = true;
                    break;
                }
            }
        }
        if !self.link.flush(registry)? {
            self.tx_blocked = true;
        }
        Ok(())
    }

    /// Logs traffic and drop counters at `level`.
    pub fn log_stats(&self, level: log::Level) {
        let s = self.slirp.stats();
        let mut drops = String::new();
        for (reason, n) in s.drops() {
            drops.push_str(&format!(" {}={n}", reason.name()));
        }
        let batch_dropped = self.host.udp_batch_dropped();
        if batch_dropped > 0 {
            drops.push_str(&format!(" udp-batch-send-failed={batch_dropped}"));
        }
        if drops.is_empty() {
            drops.push_str(" none");
        }
        log::log!(
            level,
            "stats: rx {} frames {} bytes, tx {} frames {} bytes; drops:{drops}",
            s.rx_frames,
            s.rx_bytes,
            s.tx_frames,
            s.tx_bytes
        );
    }

    /// Flushes the capture and releases what the loop owns; returns the child process, if one
    /// was watched and has not been reaped.
    pub fn finish(mut self) -> io::Result<Option<Child>> {
        for (_, id) in self.signals.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        if let Some(mut p) = self.pcap.take() {
            p.flush()?;
        }
        if let Some(mut w) = self.trace.take() {
            w.flush()?;
        }
        Ok(self.child.take().map(|(c, _)| c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slirp_core::Config;
    use std::io::Read;
    use std::os::unix::net::UnixStream as StdStream;

    /// An ARP request from 52:54:00:12:34:56 / 10.0.2.15 for 10.0.2.2.
    fn arp_request() -> Vec<u8> {
        let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2]);
        f
    }

    fn is_arp_reply_from_gateway(f: &[u8]) -> bool {
        f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] && f[22..28] == [0x52, 0x55, 10, 0, 2, 2]
    }

    /// Runs a loop over `link` on a thread (the link is a socketpair: nothing can leave the
    /// process), lets `guest` talk to it, then stops it.
    fn with_loop(link: GuestLink, guest: impl FnOnce()) {
        let slirp = Slirp::new(Config::default(), crate::default_storage()).unwrap();
        let mut ev = EventLoop::new(slirp, StdHost::default(), link).unwrap();
        let stop = ev.stop_handle();
        let t = std::thread::spawn(move || {
            let exit = ev.run().unwrap();
            (exit, ev.slirp().stats().rx_frames)
        });
        guest();
        stop.stop().unwrap();
        let (exit, rx) = t.join().unwrap();
        assert!(matches!(exit, Exit::Stopped), "{exit:?}");
        assert!(rx >= 1);
    }

    #[test]
    fn stream_link_speaks_qemu_framing() {
        let (ours, mut guest) = StdStream::pair().unwrap();
        guest.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        with_loop(GuestLink::stream(ours).unwrap(), || {
            // A frame split across writes, as a byte stream may deliver it.
            let f = arp_request();
            let mut bytes = (f.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&f);
            guest.write_all(&bytes[..3]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            guest.write_all(&bytes[3..]).unwrap();
            let mut len = [0u8; 4];
            guest.read_exact(&mut len).unwrap();
            let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
            guest.read_exact(&mut reply).unwrap();
            assert!(is_arp_reply_from_gateway(&reply), "{reply:02x?}");
        });
    }

    /// A datagram guest link (our end) and the guest's end, which waits at most 5 s for a frame.
    fn seqpacket_pair() -> (OwnedFd, std::fs::File) {
        let (ours, guest) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::sockopt::set_socket_timeout(
            &guest,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_secs(5)),
        )
        .unwrap();
        (ours, std::fs::File::from(guest))
    }

    /// CPU ticks (user + system) of thread `tid` of this process.
    fn thread_ticks(tid: i32) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        // Fields after the command name (which ends with the last ')'): utime is the 12th, stime
        // the 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    #[test]
    fn busy_poll_answers_a_dense_exchange_and_sleeps_when_it_stops() {
        let (ours, mut guest) = seqpacket_pair();
        let slirp = Slirp::new(Config::default(), crate::default_storage()).unwrap();
        let mut ev = EventLoop::new(slirp, StdHost::default(), GuestLink::datagram(ours).unwrap()).unwrap();
        // A generous budget, so spinning while idle would show plainly.
        ev.set_busy_poll(Duration::from_millis(2));
        let stop = ev.stop_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(rustix::thread::gettid().as_raw_nonzero().get()).unwrap();
            ev.run().unwrap()
        });
        let tid = rx.recv().unwrap();
        let mut buf = [0u8; 2048];
        for _ in 0..500 {
            guest.write_all(&arp_request()).unwrap();
            let n = guest.read(&mut buf).unwrap();
            assert!(is_arp_reply_from_gateway(&buf[..n]), "{:02x?}", &buf[..n]);
        }
        // Then sparse traffic, one exchange every 20 ms: gaps far beyond the budget, so the loop
        // sleeps straight away each time instead of polling for 2 ms after every packet.
        std::thread::sleep(Duration::from_millis(50));
        let before = thread_ticks(tid);
        for _ in 0..40 {
            guest.write_all(&arp_request()).unwrap();
            let n = guest.read(&mut buf).unwrap();
            assert!(is_arp_reply_from_gateway(&buf[..n]));
            std::thread::sleep(Duration::from_millis(20));
        }
        let spent = thread_ticks(tid) - before;
        stop.stop().unwrap();
        assert!(matches!(t.join().unwrap(), Exit::Stopped));
        // Spinning 2 ms after each of the 40 packets would be 80 ms (8 ticks).
        assert!(spent <= 3, "the loop used {spent} ticks on sparse traffic");
    }

    /// An embedder's host: no network at all, and a count of the loop's flushes.
    #[derive(Default)]
    struct Offline {
        started: bool,
        flushes: u64,
    }

    impl HostSocket for Offline {}

    impl LoopHost for Offline {
        fn start(&mut self, _: Registry) -> io::Result<()> {
            self.started = true;
            Ok(())
        }
        fn event(&mut self, _: Token, _: bool, _: bool) -> Option<SocketId> {
            None
        }
        fn flush(&mut self) {
            self.flushes += 1;
        }
        fn open_sockets(&self) -> usize {
            0
        }
    }

    #[test]
    fn the_loop_runs_over_an_embedders_own_host() {
        let (ours, mut guest) = seqpacket_pair();
        let slirp = Slirp::new(Config::default(), crate::default_storage()).unwrap();
        let mut ev = EventLoop::new(slirp, Offline::default(), GuestLink::datagram(ours).unwrap()).unwrap();
        assert!(ev.host().started);
        let stop = ev.stop_handle();
        let t = std::thread::spawn(move || {
            let exit = ev.run().unwrap();
            (exit, ev.host().flushes)
        });
        guest.write_all(&arp_request()).unwrap();
        let mut buf = [0u8; 2048];
        let n = guest.read(&mut buf).unwrap();
        assert!(is_arp_reply_from_gateway(&buf[..n]), "{:02x?}", &buf[..n]);
        stop.stop().unwrap();
        let (exit, flushes) = t.join().unwrap();
        assert!(matches!(exit, Exit::Stopped), "{exit:?}");
        assert!(flushes >= 1, "the loop flushes its host after a burst of guest frames");
    }

    #[test]
    fn datagram_link_carries_one_frame_per_message() {
        let (ours, mut guest) = seqpacket_pair();
        with_loop(GuestLink::datagram(ours).unwrap(), || {
            guest.write_all(&arp_request()).unwrap();
            let mut buf = [0u8; 2048];
            let n = guest.read(&mut buf).unwrap();
            assert!(is_arp_reply_from_gateway(&buf[..n]), "{:02x?}", &buf[..n]);
        });
    }
}
