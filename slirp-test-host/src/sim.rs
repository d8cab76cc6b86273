//! The simulation harness: core, link, guest and clock stepped together on virtual time.

use core::time::Duration;

use slirp_core::storage::{DEFAULT_MAX_DATAGRAM, DEFAULT_TCP_BUFFER, DEFAULT_TCP_CONNECTIONS, DEFAULT_UDP_FLOWS};
use slirp_core::{
    Clock, Config, ConfigError, GuestOffload, HostSocket, Instant, NoHost, Slirp, SocketId, Storage, TxOffload,
};
use smoltcp::wire::Ipv4Address;

use crate::clock::VirtualClock;
use crate::gso::{segment_offloaded, GsoStats};
use crate::guest::{DhcpLease, EchoReply, PingError, SmolGuest};
use crate::link::{Delivery, Direction, GuestLink, LinkFaults, SendReport};
use crate::pcap::PcapWriter;

/// Identifier the simulation's ping helper uses for its echo requests.
pub const PING_IDENT: u16 = 0x5150;

/// Rounds of "deliver, pull, poll" at one instant before the harness declares a livelock.
const MAX_ROUNDS_PER_INSTANT: usize = 100_000;

/// The host side of the core as the simulation sees it: a [`HostSocket`] that may also have
/// timers of its own (a fake network with scripted servers, for example) and reports readable
/// sockets.
///
/// At every round of an instant the simulation calls [`advance`](SimHost::advance), then hands
/// each id [`take_readable`](SimHost::take_readable) returns to
/// [`Slirp::handle_host_readable`] and each id [`take_writable`](SimHost::take_writable)
/// returns to [`Slirp::handle_host_writable`], then delivers the link's frames.
pub trait SimHost: HostSocket {
    /// When the host next has something to do on its own (`None`: only when called).
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Lets the host do what is due at `now` (deliver scripted replies, fire its timers).
    fn advance(&mut self, now: Instant) {
        let _ = now;
    }

    /// The next socket that became readable (and has not been reported since), if any.
    fn take_readable(&mut self) -> Option<SocketId> {
        None
    }

    /// The next socket that became writable (a TCP connect finished, or send space came back
    /// after a short write), if any.
    fn take_writable(&mut self) -> Option<SocketId> {
        None
    }
}

impl SimHost for NoHost {}

/// Sizes of the fixed memory given to the core (see [`Storage::with_capacity`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageSizes {
    /// Bytes of frames queued toward the guest.
    pub tx_bytes: usize,
    /// Bytes of packets held while waiting for ARP resolution.
    pub hold_bytes: usize,
    /// IPv4 datagrams reassembled at once.
    pub reassembly_slots: usize,
    /// Largest reassembled datagram.
    pub reassembly_slot_bytes: usize,
    /// UDP NAT mappings at once.
    pub udp_flows: usize,
    /// Largest datagram read from a host socket.
    pub max_datagram: usize,
    /// TCP connections at once.
    pub tcp_connections: usize,
    /// Each TCP connection's send ring (host → guest bytes not yet acknowledged by the guest).
    pub tcp_send_bytes: usize,
    /// Each TCP connection's receive buffer (guest → host bytes the host has not taken).
    pub tcp_recv_bytes: usize,
}

impl Default for StorageSizes {
    fn default() -> StorageSizes {
        StorageSizes {
            tx_bytes: 64 * 1024,
            hold_bytes: 16 * 1024,
            reassembly_slots: 2,
            reassembly_slot_bytes: 65_535,
            udp_flows: DEFAULT_UDP_FLOWS,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            tcp_connections: DEFAULT_TCP_CONNECTIONS,
            tcp_send_bytes: DEFAULT_TCP_BUFFER,
            tcp_recv_bytes: DEFAULT_TCP_BUFFER,
        }
    }
}

/// Everything a simulation run is made of; the same value gives the same run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the link faults and of the guest's own randomness.
    pub seed: u64,
    /// The core's configuration.
    pub core: Config,
    /// The core's memory.
    pub storage: StorageSizes,
    /// Faults of frames from the guest to the core.
    pub to_core: LinkFaults,
    /// Faults of frames from the core to the guest.
    pub to_guest: LinkFaults,
    /// Frames the guest can hold unread (its RX ring), counting those on the wire toward it.
    /// The core's frames are pulled only while there is room.
    pub guest_rx_capacity: usize,
    /// Whether to record a pcap of every delivered frame.
    pub capture: bool,
    /// Whether the guest link has checksum and segmentation offloads (a TAP with
    /// `IFF_VNET_HDR` and TSO): the core is told so with [`Slirp::set_guest_offload`] and may
    /// send partial checksums and TCP super-frames, which the link finishes and splits
    /// ([`segment_offloaded`]) before the wire's faults apply. Off by default.
    pub offload: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            seed: 0,
            core: Config::default(),
            storage: StorageSizes::default(),
            to_core: LinkFaults::NONE,
            to_guest: LinkFaults::NONE,
            guest_rx_capacity: 256,
            capture: false,
            offload: false,
        }
    }
}

impl SimConfig {
    /// The default configuration with `seed`.
    pub fn seeded(seed: u64) -> SimConfig {
        SimConfig { seed, ..SimConfig::default() }
    }

    /// Sets the same faults in both directions.
    pub fn with_faults(mut self, faults: LinkFaults) -> SimConfig {
        self.to_core = faults;
        self.to_guest = faults;
        self
    }

    /// Turns pcap recording on.
    pub fn with_capture(mut self) -> SimConfig {
        self.capture = true;
        self
    }

    /// Turns the guest link's checksum and segmentation offloads on (see
    /// [`offload`](SimConfig::offload)).
    pub fn with_offload(mut self) -> SimConfig {
        self.offload = true;
        self
    }
}

/// What a trace hook is told about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// The frame was put on the wire; the report says what the link's faults did with it.
    Sent(SendReport),
    /// The frame (one copy, as it arrived) was handed to the receiver.
    Delivered,
}

/// One frame event on the link, as seen by a hook set with [`Simulation::set_tracer`].
#[derive(Clone, Copy, Debug)]
pub struct TraceEvent<'a> {
    /// Virtual time of the event.
    pub at: Instant,
    /// Which way the frame travels.
    pub direction: Direction,
    /// What happened.
    pub kind: TraceKind,
    /// The frame's bytes (as sent for [`TraceKind::Sent`], as received for
    /// [`TraceKind::Delivered`]).
    pub frame: &'a [u8],
}

/// A trace hook.
pub type Tracer = Box<dyn FnMut(&TraceEvent<'_>)>;

/// Why a run stopped without reaching its goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimError {
    /// The virtual time limit passed first.
    TimedOut {
        /// The virtual time when the run gave up.
        at: Instant,
    },
    /// The echo request could not be queued.
    Ping(PingError),
}

impl core::fmt::Display for SimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SimError::TimedOut { at } => write!(f, "timed out at virtual time {at}"),
            SimError::Ping(e) => write!(f, "ping not sent: {e}"),
        }
    }
}

impl std::error::Error for SimError {}

/// A ping that came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PingReply {
    /// Virtual time from queuing the request to receiving the reply.
    pub rtt: Duration,
    /// The reply itself.
    pub reply: EchoReply,
}

/// A deterministic world: the core, a host, the link with its faults, a smoltcp guest and the
/// virtual clock.
///
/// Guest-bound frames that ask something of the link ([`TxFrame::offload`], with
/// [`SimConfig::offload`]) are finished and split by [`segment_offloaded`] as they leave the
/// core, so the link's faults apply to the segments, as on a real wire. A super-frame is pulled
/// whole once the guest's RX budget has room for one frame: its segments may take the guest
/// past its budget by up to one super-frame's worth.
///
/// [`TxFrame::offload`]: slirp_core::TxFrame::offload
///
/// Each round at one instant delivers the frames due, fires the core's timer if due, pulls the
/// core's frames while the guest's RX budget has room, and polls the guest; rounds repeat until
/// nothing moves. Then the clock jumps to the earliest deadline of the core, the guest, the host
/// and the frames on the wire.
pub struct Simulation<H: SimHost = NoHost> {
    clock: VirtualClock,
    core: Slirp<'static>,
    host: H,
    link: GuestLink,
    guest: SmolGuest,
    guest_rx_capacity: usize,
    pcap: Option<PcapWriter<Vec<u8>>>,
    tracer: Option<Tracer>,
    gso: GsoStats,
    segments: Vec<Vec<u8>>,
}

impl<H: SimHost> core::fmt::Debug for Simulation<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Simulation")
            .field("now", &self.clock.now())
            .field("link", &self.link)
            .field("guest", &self.guest)
            .field("guest_rx_capacity", &self.guest_rx_capacity)
            .finish_non_exhaustive()
    }
}

impl Simulation<NoHost> {
    /// A simulation whose core has no host network ([`NoHost`]).
    pub fn new(config: SimConfig) -> Result<Simulation<NoHost>, ConfigError> {
        Simulation::with_host(config, NoHost)
    }
}

impl<H: SimHost> Simulation<H> {
    /// A simulation whose core reaches the outside through `host`.
    pub fn with_host(config: SimConfig, host: H) -> Result<Simulation<H>, ConfigError> {
        let sizes = config.storage;
        let storage = Storage::with_capacity(
            sizes.tx_bytes,
            sizes.hold_bytes,
            sizes.reassembly_slots,
            sizes.reassembly_slot_bytes,
        )
        .with_udp_capacity(sizes.udp_flows, sizes.max_datagram)
        .with_tcp_capacity(sizes.tcp_connections, sizes.tcp_send_bytes, sizes.tcp_recv_bytes);
        let mut core = Slirp::new(config.core, storage)?;
        if config.offload {
            core.set_guest_offload(GuestOffload { checksum: true, segmentation: true });
        }
        let clock = VirtualClock::new();
        let mut link = GuestLink::new(config.seed);
        link.set_faults(Direction::ToCore, config.to_core);
        link.set_faults(Direction::ToGuest, config.to_guest);
        // A different stream than the link's, so the guest's choices do not mirror its faults.
        let guest = SmolGuest::new(config.seed.rotate_left(32) ^ 0x0067_7565_7374, clock.now());
        let pcap = if config.capture {
            // Writing into a Vec cannot fail.
            PcapWriter::new(Vec::new(), crate::pcap::SNAPLEN).ok()
        } else {
            None
        };
        Ok(Simulation {
            clock,
            core,
            host,
            link,
            guest,
            guest_rx_capacity: config.guest_rx_capacity,
            pcap,
            tracer: None,
            gso: GsoStats::default(),
            segments: Vec::new(),
        })
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The virtual clock.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// The core.
    pub fn core(&self) -> &Slirp<'static> {
        &self.core
    }

    /// The core, to call its API between steps.
    pub fn core_mut(&mut self) -> &mut Slirp<'static> {
        &mut self.core
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// The host, to script it between steps.
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// The core and the host together, for core calls that take the host (port forwards).
    pub fn core_and_host_mut(&mut self) -> (&mut Slirp<'static>, &mut H) {
        (&mut self.core, &mut self.host)
    }

    /// The link.
    pub fn link(&self) -> &GuestLink {
        &self.link
    }

    /// The link, to change its faults between steps.
    pub fn link_mut(&mut self) -> &mut GuestLink {
        &mut self.link
    }

    /// The guest.
    pub fn guest(&self) -> &SmolGuest {
        &self.guest
    }

    /// The guest, to use its sockets between steps.
    pub fn guest_mut(&mut self) -> &mut SmolGuest {
        &mut self.guest
    }

    /// The guest's RX budget in frames.
    pub fn guest_rx_capacity(&self) -> usize {
        self.guest_rx_capacity
    }

    /// Changes the guest's RX budget.
    pub fn set_guest_rx_capacity(&mut self, frames: usize) {
        self.guest_rx_capacity = frames;
    }

    /// The pcap recorded so far, if capture is on.
    pub fn pcap_bytes(&self) -> Option<&[u8]> {
        self.pcap.as_ref().map(|p| p.get_ref().as_slice())
    }

    /// What the offloading link did with the core's frames (all zero without offloads).
    pub fn gso_stats(&self) -> &GsoStats {
        &self.gso
    }

    /// Installs a hook told about every frame sent or delivered (replacing any earlier one).
    pub fn set_tracer(&mut self, tracer: impl FnMut(&TraceEvent<'_>) + 'static) {
        self.tracer = Some(Box::new(tracer));
    }

    /// Puts a hand-made frame on the wire as if the guest had sent it (bypassing smoltcp).
    pub fn inject_from_guest(&mut self, frame: &[u8]) -> SendReport {
        self.send(Direction::ToCore, frame)
    }

    fn send(&mut self, direction: Direction, frame: &[u8]) -> SendReport {
        let now = self.clock.now();
        let report = self.link.send(direction, now, frame);
        if let Some(tracer) = &mut self.tracer {
            tracer(&TraceEvent { at: now, direction, kind: TraceKind::Sent(report), frame });
        }
        report
    }

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.clock.now();
        if let Some(pcap) = &mut self.pcap {
            // Writing into a Vec cannot fail.
            let _ = pcap.write_frame(now, &delivery.frame);
        }
        if let Some(tracer) = &mut self.tracer {
            tracer(&TraceEvent {
                at: now,
                direction: delivery.direction,
                kind: TraceKind::Delivered,
                frame: &delivery.frame,
            });
        }
        match delivery.direction {
            Direction::ToCore => self.core.handle_guest_frame(now, &delivery.frame, &mut self.host),
            Direction::ToGuest => self.guest.push_rx(delivery.frame),
        }
    }

    /// Frames the guest can still take: its budget less those on the wire and unread.
    pub fn guest_rx_room(&self) -> usize {
        let used = self.link.in_flight(Direction::ToGuest) + self.guest.rx_pending();
        self.guest_rx_capacity.saturating_sub(used)
    }

    /// Pulls the core's frames onto the link while the guest has room; true if any moved.
    fn drain_core(&mut self) -> bool {
        let now = self.clock.now();
        let mut moved = false;
        while self.guest_rx_room() > 0 {
            let Some(frame) = self.core.poll_transmit(now, &mut self.host) else {
                break;
            };
            let offload = frame.offload();
            let bytes = frame.to_vec();
            frame.consume();
            moved = true;
            if offload == TxOffload::default() {
                self.send(Direction::ToGuest, &bytes);
                continue;
            }
            // The link finishes and splits it; the wire (and its faults) sees the segments.
            let mut segments = core::mem::take(&mut self.segments);
            let result = segment_offloaded(&bytes, &offload, &mut segments);
            self.gso.record(&result);
            for segment in segments.drain(..) {
                self.send(Direction::ToGuest, &segment);
            }
            self.segments = segments;
        }
        moved
    }

    /// Polls the guest and puts what it sent on the link; true if it read or sent anything.
    fn poll_guest(&mut self) -> bool {
        let now = self.clock.now();
        let had_rx = self.guest.rx_pending() > 0;
        self.guest.poll(now);
        let mut sent = false;
        while let Some(frame) = self.guest.pop_tx() {
            self.send(Direction::ToCore, &frame);
            sent = true;
        }
        had_rx || sent
    }

    /// Does everything due at the current instant, until nothing moves.
    ///
    /// # Panics
    /// If frames keep moving without end at one instant (a livelock between the core and the
    /// guest, which is a bug worth a loud failure).
    pub fn settle(&mut self) {
        let now = self.clock.now();
        for _ in 0..MAX_ROUNDS_PER_INSTANT {
            let mut busy = false;
            // The host first, so what the core sends it below is stamped with this instant.
            self.host.advance(now);
            while let Some(id) = self.host.take_readable() {
                self.core.handle_host_readable(now, id, &mut self.host);
                busy = true;
            }
            while let Some(id) = self.host.take_writable() {
                self.core.handle_host_writable(now, id, &mut self.host);
                busy = true;
            }
            while let Some(delivery) = self.link.pop_due(now) {
                self.deliver(delivery);
                busy = true;
            }
            if self.core.poll_at().is_some_and(|at| at <= now) {
                self.core.handle_timeout(now, &mut self.host);
            }
            busy |= self.drain_core();
            busy |= self.poll_guest();
            // Something the core or the guest did may have made the host act at this instant.
            busy |= self.host.poll_at().is_some_and(|at| at <= now);
            if !busy {
                return;
            }
        }
        panic!("simulation livelock at {now}: frames still moving after {MAX_ROUNDS_PER_INSTANT} rounds");
    }

    /// The earliest instant anything in the world wants to act (`None`: nothing will happen
    /// until someone calls in).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        let now = self.clock.now();
        [self.core.poll_at(), self.guest.poll_at(now), self.link.next_due(), self.host.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Settles the current instant, then moves the clock to the next deadline (at least one
    /// microsecond later, at most `limit`). Returns the new time.
    pub fn step(&mut self, limit: Instant) -> Instant {
        self.settle();
        let now = self.clock.now();
        let next = self.next_deadline().unwrap_or(limit).max(now + Duration::from_micros(1)).min(limit);
        self.clock.set(next);
        self.clock.now()
    }

    /// Runs until `done` returns true (checked after each instant settles) or `limit` of virtual
    /// time passes. Returns the virtual time it took.
    pub fn run_until(
        &mut self,
        mut done: impl FnMut(&mut Simulation<H>) -> bool,
        limit: Duration,
    ) -> Result<Duration, SimError> {
        let start = self.clock.now();
        let end = start + limit;
        loop {
            self.settle();
            if done(self) {
                return Ok(self.clock.now() - start);
            }
            if self.clock.now() >= end {
                return Err(SimError::TimedOut { at: self.clock.now() });
            }
            self.step(end);
        }
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let _ = self.run_until(|_| false, duration);
    }

    /// Starts the guest's DHCP client (if not running) and runs until it holds a lease.
    pub fn wait_for_lease(&mut self, limit: Duration) -> Result<DhcpLease, SimError> {
        if self.guest.lease().is_none() {
            self.guest.start_dhcp();
        }
        self.run_until(|sim| sim.guest.lease().is_some(), limit)?;
        self.guest.lease().cloned().ok_or(SimError::TimedOut { at: self.clock.now() })
    }

    /// Sends one echo request from the guest to `dst` (identifier [`PING_IDENT`]) and runs until
    /// the reply with the same sequence number comes back from `dst`, or `limit` passes.
    /// Replies to other sequence numbers (late or duplicated) are discarded.
    pub fn ping(
        &mut self,
        dst: Ipv4Address,
        seq_no: u16,
        payload: &[u8],
        limit: Duration,
    ) -> Result<PingReply, SimError> {
        self.guest.send_ping(dst, PING_IDENT, seq_no, payload).map_err(SimError::Ping)?;
        let sent_at = self.clock.now();
        let mut answer = None;
        let rtt = self.run_until(
            |sim| {
                while let Some(reply) = sim.guest.recv_ping() {
                    if reply.seq_no == seq_no && reply.from == dst {
                        answer = Some(reply);
                        return true;
                    }
                }
                false
            },
            limit,
        )?;
        debug_assert_eq!(self.clock.now() - sent_at, rtt);
        answer.map(|reply| PingReply { rtt, reply }).ok_or(SimError::TimedOut { at: self.clock.now() })
    }
}
